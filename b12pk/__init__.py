"""b12pk: a physiological pharmacokinetic model of vitamin B12 (cobalamin) therapy.

Simulate serum B12 and body stores for any regimen and patient, compare regimens, plot
the curves and write reports. Educational: a simulation is not a prescription.

>>> import b12pk
>>> regimen = b12pk.Regimen.daily(2000, route="oral", form="cyanocobalamin")
>>> patient = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
>>> result = b12pk.simulate(regimen, patient, days=365)   # a pandas DataFrame
"""

from .about import DISCLAIMER, __version__
from .compare import Comparison, NamedPatient, NamedRegimen, compare, summarize
from .engine import MAX_DAYS, simulate, steady_state_stores_ug
from .errors import (B12pkError, B12pkWarning, DoseError, EventTableError, FileFormatError,
                     HorizonError, InputError, ParameterError, PatientError, RegimenSyntaxError,
                     ResourceError, UnknownNameError)
from .evidence import evaluate_claims, evidence_markdown, load_claims, write_evidence
from .events import read_event_table, to_event_table, write_event_table
from .model import (PRESETS, Parameters, Patient, default_parameters, lab_bands,
                    parameter_table, pg_per_ml_to_pmol_per_l, pmol_per_l_to_pg_per_ml)
from .plot import (plot_band_probabilities, plot_comparison, plot_fan, plot_holotc,
                   plot_regimen_grid, plot_serum, plot_stores, plot_summary, save_figure)
from .population import (Covariate, PopulationResult, PopulationSpec, covariate_sets,
                         simulate_population, write_population)
from .sbml import SBMLUnavailableError, check_sbml, to_sbml, write_sbml
from .regimen import (FORMS, ROUTES, DoseEvent, Regimen, load_regimens, parse_regimen,
                      regimen_variants)
from .report import write_report


__all__ = [
    # simulate
    "simulate", "steady_state_stores_ug", "MAX_DAYS",
    # compare, plot, report
    "compare", "summarize", "Comparison", "NamedRegimen", "NamedPatient", "write_report",
    "plot_serum", "plot_holotc", "plot_stores", "plot_summary", "plot_comparison",
    "plot_regimen_grid", "plot_fan", "plot_band_probabilities", "save_figure",
    # evidence analysis
    "evaluate_claims", "load_claims", "write_evidence", "evidence_markdown",
    # model exchange (needs b12pk[sbml])
    "to_sbml", "write_sbml", "check_sbml", "SBMLUnavailableError",
    # populations
    "PopulationSpec", "PopulationResult", "Covariate", "covariate_sets",
    "simulate_population", "write_population",
    # regimens
    "Regimen", "DoseEvent", "parse_regimen", "regimen_variants", "load_regimens",
    "ROUTES", "FORMS",
    "to_event_table", "write_event_table", "read_event_table",
    # patients and parameters
    "Patient", "PRESETS", "Parameters", "default_parameters", "parameter_table", "lab_bands",
    "pg_per_ml_to_pmol_per_l", "pmol_per_l_to_pg_per_ml",
    # errors
    "B12pkError", "InputError", "DoseError", "UnknownNameError", "ParameterError",
    "PatientError", "HorizonError", "RegimenSyntaxError", "FileFormatError", "EventTableError",
    "ResourceError", "B12pkWarning",
    "DISCLAIMER", "__version__",
]
