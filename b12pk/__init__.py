"""b12pk: a physiological pharmacokinetic model of vitamin B12 (cobalamin) therapy.

Simulate serum B12 and body stores for any regimen and patient, compare regimens, plot
the curves and write reports. Educational: a simulation is not a prescription.

>>> import b12pk
>>> regimen = b12pk.Regimen.daily(2000, route="oral", form="cyanocobalamin")
>>> patient = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
>>> result = b12pk.simulate(regimen, patient, days=365)   # a pandas DataFrame
"""

import importlib

from .about import DISCLAIMER, __version__
from .errors import (B12pkError, B12pkWarning, DoseError, EventTableError, FileFormatError,
                     HorizonError, InputError, ModelError, OutputError, ParameterError,
                     PatientError,
                     RegimenSyntaxError, ResourceError, UnknownNameError)

#: Where each public name lives; modules are imported on first use, so ``import b12pk`` (and
#: the command line's start, where Ctrl-C must already be handled) stays light.
_LAZY = {
    "analysis.compare": ("compare", "Comparison", "NamedPatient", "NamedRegimen", "summarize"),
    "engine.core": ("MAX_DAYS", "simulate", "steady_state_stores_ug"),
    "analysis.evidence": ("evaluate_claims", "load_claims"),
    "report.evidence": ("evidence_markdown", "write_evidence"),
    "regimen.events": ("read_event_table", "to_event_table", "write_event_table"),
    "model.parameters": ("PRESETS", "Parameters", "Patient", "default_parameters",
                         "lab_bands", "parameter_table", "pg_per_ml_to_pmol_per_l",
                         "pmol_per_l_to_pg_per_ml"),
    "plot.figures": ("plot_band_probabilities", "plot_comparison", "plot_fan", "plot_holotc",
                     "plot_markers",
                     "plot_regimen_grid", "plot_serum", "plot_stores", "plot_summary",
                     "save_figure"),
    "population.core": ("Covariate", "PopulationResult", "PopulationSpec", "covariate_sets",
                        "simulate_population"),
    "report.population": ("write_population",),
    "exchange.sbml": ("SBMLUnavailableError", "check_sbml", "to_sbml", "write_sbml"),
    "regimen.language": ("FORMS", "ROUTES", "DoseEvent", "Regimen", "load_regimens",
                         "parse_regimen", "regimen_variants"),
    "report.comparison": ("write_report",),
    "analysis.design": ("design", "SearchSpace", "DesignResult"),
    "analysis.targets": ("Target",),
    "report.design": ("write_design",),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    try:  # a subpackage: b12pk.plot, b12pk.report, b12pk.analysis, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    # simulate
    "simulate", "steady_state_stores_ug", "MAX_DAYS",
    # compare, plot, report
    "compare", "summarize", "Comparison", "NamedRegimen", "NamedPatient", "write_report",
    "plot_serum", "plot_holotc", "plot_stores", "plot_markers", "plot_summary", "plot_comparison",
    "plot_regimen_grid", "plot_fan", "plot_band_probabilities", "save_figure",
    # evidence analysis
    "evaluate_claims", "load_claims", "write_evidence", "evidence_markdown",
    # regimen design
    "design", "SearchSpace", "DesignResult", "Target", "write_design",
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
    "ResourceError", "ModelError", "OutputError", "B12pkWarning",
    "DISCLAIMER", "__version__",
]
