"""Virtual populations (:mod:`.core`): between-patient variability, covariates, outcome
probabilities, a vectorised engine over patients.

Layer: above ``engine``; below ``analysis``. Writing a population's outputs is
:func:`b12pk.report.write_population`.
"""

from .core import (BLOCK, MAX_PATIENTS, QUANTILES, Covariate, PopulationResult,
                   PopulationSpec, Watch, covariate_sets, default_variability,
                   sample_patients, simulate_population)

__all__ = ["PopulationSpec", "PopulationResult", "Watch", "Covariate", "covariate_sets",
           "simulate_population", "sample_patients", "default_variability", "BLOCK",
           "MAX_PATIENTS", "QUANTILES"]
