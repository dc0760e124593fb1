"""The package's version and the disclaimer every output carries (imported by every layer;
imports nothing)."""

__all__ = ["__version__", "DISCLAIMER"]

__version__ = "0.1.0"

DISCLAIMER = ("Educational simulation only: b12pk results are model predictions, not medical "
              "advice or a prescription. Treatment decisions belong to a clinician.")
