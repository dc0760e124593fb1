"""The model: its structure declared once in ``data/model.toml`` (:mod:`.declaration`), the
rate laws (:mod:`.laws`), and the parameters and patients (:mod:`.parameters`).

Lowest layer above ``io``: imports nothing of b12pk but ``_data``, ``errors``, ``limits``
and ``io``.
"""

from .declaration import Declaration, declaration
from .parameters import (PRESETS, Parameters, ParameterSpec, Patient, default_parameters,
                         form_property, lab_bands, parameter_table, pg_per_ml_to_pmol_per_l,
                         pmol_per_l_to_pg_per_ml, serum_bands_pmol_per_l)

__all__ = ["Declaration", "declaration", "PRESETS", "Parameters", "ParameterSpec", "Patient",
           "default_parameters", "form_property", "lab_bands", "parameter_table",
           "pg_per_ml_to_pmol_per_l", "pmol_per_l_to_pg_per_ml", "serum_bands_pmol_per_l"]
