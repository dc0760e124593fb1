"""Figures: plot functions take results and an optional matplotlib ``Axes`` and return the
``Axes`` (or a ``Figure`` for grids); :func:`save_figure` writes PNG and SVG.
:mod:`.figures` draws simulations, comparisons and populations; :mod:`.validation` and
:mod:`.evidence` draw a validation and the evidence analysis (imported on use:
``b12pk.plot.validation.plot_validation``).

Layer: above ``analysis``; below ``report``.
"""

from .figures import (TIME_UNITS, UNITS, plot_band_probabilities, plot_comparison, plot_fan,
                      plot_holotc, plot_regimen_grid, plot_serum, plot_stores, plot_summary,
                      save_figure)

__all__ = ["plot_serum", "plot_holotc", "plot_stores", "plot_summary", "plot_comparison",
           "plot_regimen_grid", "plot_fan", "plot_band_probabilities", "save_figure", "UNITS",
           "TIME_UNITS"]
