"""Model parameters and patients.

The model is declared in ``data/model.toml`` (compartments, parameters with units, ranges
and sources, the differences between forms); patient presets in ``data/patients.toml``.
This module loads them into frozen, validated objects:

* :class:`ParameterSpec` -- one declared parameter (value, unit, range, status, source);
* :class:`Parameters` -- an immutable set of parameter values, with ``replace`` for overrides;
* :class:`Patient` -- a patient (phenotype settings, diet, baseline) built directly or from a
  preset with :meth:`Patient.preset`;
* :func:`lab_bands` -- the laboratory bands the seed documents give.

All amounts are in micrograms (ug), times in days unless a name says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .._data import data_path
from ..errors import FileFormatError, ParameterError, PatientError, UnknownNameError
from ..io import as_finite_float, echo

__all__ = [
    "ParameterSpec",
    "Parameters",
    "Patient",
    "PRESETS",
    "default_parameters",
    "parameter_table",
    "lab_bands",
    "pg_per_ml_to_pmol_per_l",
    "pmol_per_l_to_pg_per_ml",
    "form_property",
    "ParameterUncertainty",
    "parameter_uncertainty",
]

# Settings a patient may carry, with their allowed closed ranges (inclusive).
_PATIENT_RANGES = {
    "intrinsic_factor": (0.0, 1.0),
    "food_release": (0.0, 1.0),
    "ileal_resection_cm": (0.0, 600.0),
    "egfr_ml_min": (1.0, 200.0),
    "diet_ug_per_day": (0.0, 1000.0),
    "baseline_serum_pmol_per_l": (1.0, 100_000.0),
    "baseline_stores_ug": (0.0, 100_000.0),
    "baseline_mma_nmol_per_l": (10.0, 100_000.0),
    "baseline_hcy_umol_per_l": (1.0, 500.0),
}


class FrozenDict(dict):
    """A read-only ``dict`` (hashable, picklable), used for parameter values and overrides."""

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping is read-only; use .replace(...) to change values")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __deepcopy__(self, memo: dict) -> "FrozenDict":
        return self

    def __copy__(self) -> "FrozenDict":
        return self


def _read_toml(name: str) -> dict[str, Any]:
    path = data_path(name)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - shipped file
        raise FileFormatError(f"{path}: not valid TOML ({exc})") from exc


@dataclass(frozen=True)
class ParameterSpec:
    """One model parameter as declared in ``data/model.toml``.

    Attributes
    ----------
    name : str
        Parameter name (unit suffix included where it has one).
    value : float
        Default value, in ``unit``.
    unit : str
        Unit of the value.
    low, high : float
        Plausible range; values outside it are rejected.
    status : str
        ``sourced``, ``derived``, ``assumed`` or ``fitted``.
    source : str
        Where the value comes from (reference key and location, or the assumption).
    description : str
        What the parameter means.
    """

    name: str
    value: float
    unit: str
    low: float
    high: float
    status: str
    source: str
    description: str = ""

    def __post_init__(self) -> None:
        if self.status not in ("sourced", "derived", "assumed", "fitted"):
            raise FileFormatError(
                f"parameter {self.name!r}: status {self.status!r} is not one of "
                "sourced, derived, assumed, fitted")
        if not self.source.strip():
            raise FileFormatError(f"parameter {self.name!r} has no source")
        _check_value(self.name, self.value, self.low, self.high)


def _check_value(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers too
        raise ParameterError(f"parameter {name!r} must be a number, got {echo(value)}")
    if as_finite_float(value) is None:
        raise ParameterError(f"parameter {name!r} is {echo(value)}; accepted: a finite number "
                             f"in [{low:g}, {high:g}]")
    if not (low <= value <= high):
        raise ParameterError(f"parameter {name!r} = {value:g} is outside its accepted "
                             f"range [{low:g}, {high:g}]")


@lru_cache(maxsize=1)
def _model_file() -> dict[str, Any]:
    return _read_toml("model.toml")


@lru_cache(maxsize=1)
def _specs() -> Mapping[str, ParameterSpec]:
    specs = {}
    for name, entry in _model_file()["parameters"].items():
        low, high = entry["range"]
        specs[name] = ParameterSpec(
            name=name, value=float(entry["value"]), unit=entry["unit"], low=float(low),
            high=float(high), status=entry["status"], source=entry["source"],
            description=entry.get("description", ""))
    return MappingProxyType(specs)


def parameter_range(name: str) -> tuple[float, float] | None:
    """Declared plausible range ``(low, high)`` of a model parameter (None: no such name)."""
    spec = _specs().get(name)
    return None if spec is None else (spec.low, spec.high)


def form_property(form: str, prop: str, params: "Parameters") -> float:
    """A form-specific model quantity (``renal_clearance_factor``, ``depot_half_life``).

    ``data/model.toml`` gives each as a number or as the name of a parameter, so that it can
    be overridden like any other parameter.
    """
    try:
        value = _model_file()["forms"][form][prop]
    except KeyError:
        raise UnknownNameError(f"unknown form {form!r} or property {prop!r}; accepted forms: "
                               f"{', '.join(_model_file()['forms'])}") from None
    return params[value] if isinstance(value, str) else float(value)


@dataclass(frozen=True)
class Parameters:
    """An immutable set of model parameter values.

    Build the defaults with :func:`default_parameters` and change values with
    :meth:`replace`; every value is checked against its declared range.

    Parameters
    ----------
    values : Mapping[str, float]
        Value of every parameter declared in ``data/model.toml``, in its declared unit.
    """

    values: Mapping[str, float]

    def __post_init__(self) -> None:
        specs = _specs()
        unknown = set(self.values) - set(specs)
        if unknown:
            raise UnknownNameError(_unknown_params_message(sorted(unknown)))
        missing = set(specs) - set(self.values)
        if missing:
            raise ParameterError(f"parameters missing: {', '.join(sorted(missing))}")
        for name, value in self.values.items():
            spec = specs[name]
            _check_value(name, value, spec.low, spec.high)
        object.__setattr__(self, "values", FrozenDict(
            {k: float(v) for k, v in self.values.items()}))

    def __deepcopy__(self, memo: dict) -> "Parameters":
        return self   # immutable (frozen, read-only values): a copy is the same object

    def __getitem__(self, name: str) -> float:
        try:
            return self.values[name]
        except KeyError:
            raise UnknownNameError(_unknown_params_message([name])) from None

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def replace(self, **overrides: float) -> "Parameters":
        """Return a copy with some parameters changed.

        Raises
        ------
        UnknownNameError
            If a name is not a declared parameter.
        ParameterError
            If a value is not finite or outside the declared range.
        """
        unknown = sorted(set(overrides) - set(self.values))
        if unknown:
            raise UnknownNameError(_unknown_params_message(unknown))
        merged = dict(self.values)
        merged.update(overrides)
        return Parameters(merged)

    def as_dict(self) -> dict[str, float]:
        """Plain ``dict`` of the values."""
        return dict(self.values)


def _unknown_params_message(names: list[str]) -> str:
    import difflib

    known = sorted(_specs())
    shown = ", ".join(echo(n, 40) for n in names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else "")
    close = difflib.get_close_matches(str(names[0]), known, n=3, cutoff=0.6) if names else []
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (f"unknown parameter name(s): {shown}{hint}; accepted: the {len(known)} names "
            "that `b12pk parameters` lists")


def default_parameters() -> Parameters:
    """The parameter values declared in ``data/model.toml``."""
    return Parameters({name: spec.value for name, spec in _specs().items()})


@dataclass(frozen=True)
class ParameterUncertainty:
    """The fitted parameters' uncertainty (``data/calibration.toml [uncertainty]``, written
    by ``python tools/fit_parameters.py --write``): an approximate posterior, multivariate
    normal on each parameter's scale ("log" or "linear") around its value.

    Parameters
    ----------
    names : tuple of str
        The parameters that vary (the others stay as given).
    scales : tuple of str
        ``"log"`` or ``"linear"`` for each.
    sd : tuple of float
        Standard deviation on that scale.
    correlation : tuple of tuple of float
        Correlation matrix (joint least-squares fits; other pairs 0).
    """

    names: tuple[str, ...]
    scales: tuple[str, ...]
    sd: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        c = np.asarray(self.correlation, dtype=float)
        if not (len(self.scales) == len(self.sd) == n and c.shape == (n, n)):
            raise FileFormatError("calibration.toml [uncertainty]: names, scales, sd and "
                                  "correlations do not match")
        if set(self.scales) - {"log", "linear"} or not all(
                math.isfinite(x) and x >= 0.0 for x in self.sd):
            raise FileFormatError("calibration.toml [uncertainty]: scale must be log or "
                                  "linear and sd a finite number >= 0")
        if not set(self.names) <= set(_specs()):
            raise FileFormatError("calibration.toml [uncertainty]: unknown parameter(s) "
                                  f"{', '.join(sorted(set(self.names) - set(_specs())))}")

    def draw(self, base: "Parameters", n: int, seed: int = 0) -> list["Parameters"]:
        """``n`` parameter sets around ``base`` (its values are the centre), each value
        clipped to its declared range; the same seed gives the same sets."""
        rng = np.random.default_rng(seed)
        sd = np.asarray(self.sd)
        cov = np.asarray(self.correlation) * np.outer(sd, sd)
        z = rng.multivariate_normal(np.zeros(len(sd)), cov, size=n, method="eigh")
        specs = _specs()
        out = []
        for row in z:
            values = {}
            for name, scale, dz in zip(self.names, self.scales, row):
                v = base[name] * math.exp(dz) if scale == "log" else base[name] + dz
                values[name] = min(max(v, specs[name].low), specs[name].high)
            out.append(base.replace(**values))
        return out


@lru_cache(maxsize=1)
def parameter_uncertainty() -> ParameterUncertainty:
    """The fitted parameters' uncertainty from ``data/calibration.toml [uncertainty]``."""
    doc = _read_toml("calibration.toml").get("uncertainty")
    if not doc or "parameters" not in doc:
        raise FileFormatError("calibration.toml has no [uncertainty] table; run "
                              "python tools/fit_parameters.py --write")
    names = tuple(doc["parameters"])
    idx = {nm: i for i, nm in enumerate(names)}
    corr = np.eye(len(names))
    for entry in doc.get("correlations", []):
        a, b, r = entry
        if a not in idx or b not in idx or a == b or not -1.0 < float(r) < 1.0:
            raise FileFormatError(f"calibration.toml [uncertainty]: correlation {entry!r} "
                                  "must name two different parameters of the table and lie "
                                  "strictly between -1 and 1")
        corr[idx[a], idx[b]] = corr[idx[b], idx[a]] = float(r)
    if np.linalg.eigvalsh(corr).min() <= 0.0:
        raise FileFormatError("calibration.toml [uncertainty]: the correlations do not form "
                              "a valid correlation matrix")
    return ParameterUncertainty(
        names=names, scales=tuple(str(doc["parameters"][nm]["scale"]) for nm in names),
        sd=tuple(float(doc["parameters"][nm]["sd"]) for nm in names),
        correlation=tuple(tuple(float(x) for x in row) for row in corr))


def parameter_spec(name: str) -> ParameterSpec:
    """One declared parameter (value, unit, range, status, source) by name.

    Raises
    ------
    UnknownNameError
        No parameter of that name in data/model.toml.
    """
    spec = _specs().get(name)
    if spec is None:
        raise UnknownNameError(f"unknown model parameter {name!r}")
    return spec


def parameter_table() -> "Any":
    """All declared parameters as a pandas DataFrame (name, value, unit, range, status, source)."""
    import pandas as pd

    rows = [dataclasses.asdict(s) for s in _specs().values()]
    return pd.DataFrame(rows, columns=["name", "value", "unit", "low", "high", "status",
                                       "source", "description"])


# --------------------------------------------------------------------------------------
# Units

def _pmol_per_pg() -> float:
    # 1 pg/mL = 1e-9 g/L; divided by g/mol gives mol/L; times 1e12 gives pmol/L.
    return 1e3 / _specs()["molar_mass_g_per_mol"].value


def pg_per_ml_to_pmol_per_l(x: float) -> float:
    """Convert serum B12 from pg/mL (= ng/L) to pmol/L (factor 0.7378, cyanocobalamin 1355.37 g/mol)."""
    return x * _pmol_per_pg()


def serum_to_pmol_per_l(value: float, unit: str) -> float:
    """A serum B12 value in pmol/L from ``unit`` (pmol/L, pg/mL or ng/L).

    Raises
    ------
    FileFormatError
        Any other unit.
    """
    unit = str(unit).strip()
    if unit == "pmol/L":
        return float(value)
    if unit in ("pg/mL", "ng/L"):
        return pg_per_ml_to_pmol_per_l(float(value))
    raise FileFormatError(f"serum unit {unit!r} not understood; accepted: pmol/L, pg/mL, ng/L")


def pmol_per_l_to_pg_per_ml(x: float) -> float:
    """Convert serum B12 from pmol/L to pg/mL (= ng/L)."""
    return x / _pmol_per_pg()


# --------------------------------------------------------------------------------------
# Patients

@lru_cache(maxsize=1)
def _patients_file() -> dict[str, Any]:
    return _read_toml("patients.toml")


def setting(name: str) -> float:
    return float(_patients_file()["settings"][name]["value"])


def _preset_table() -> dict[str, dict[str, Any]]:
    return _patients_file()["presets"]


def _preset_aliases() -> dict[str, str]:
    aliases = {}
    for name, entry in _preset_table().items():
        aliases[name] = name
        for alias in entry.get("aliases", []):
            aliases[alias] = name
    return aliases


PRESETS: tuple[str, ...] = tuple(_preset_table())
"""Names of the patient presets (American spellings are accepted as aliases)."""


def _canonical_preset(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    key = key.replace("anemia", "anaemia") if key not in _preset_aliases() else key
    aliases = _preset_aliases()
    if key not in aliases:
        raise UnknownNameError(
            f"unknown patient preset {name!r}; accepted: {', '.join(PRESETS)} "
            "(American spellings such as 'pernicious-anemia' also accepted)")
    return aliases[key]


@dataclass(frozen=True)
class Patient:
    """A patient: what changes B12 absorption, loss and intake, and where they start.

    Parameters
    ----------
    name : str
        Display name (a preset's name, or anything).
    intrinsic_factor : float
        Fraction of normal intrinsic-factor secretion, 0-1 (0 = pernicious anaemia).
    food_release : float
        Fraction of food-bound B12 released by gastric acid and pepsin, 0-1.
    ileal_resection_cm : float
        Length of distal ileum resected, cm (>= 20 cm removes IF-route absorption).
    egfr_ml_min : float
        Estimated GFR, mL/min/1.73 m^2 (1-200).
    metformin : bool
        Long-term metformin use (reduces IF-route absorption).
    diet_ug_per_day : float
        Dietary B12 intake, ug/day (0-1000).
    baseline_serum_pmol_per_l : float or None
        Serum B12 at the start, pmol/L. ``None`` with no baseline stores = the steady state of
        the diet without treatment.
    baseline_stores_ug : float or None
        Body stores at the start, ug (alternative to the serum baseline; give at most one).
    baseline_mma_nmol_per_l, baseline_hcy_umol_per_l : float or None
        Methylmalonic acid (nmol/L) and total homocysteine (umol/L) measured at the start:
        the patient's own marker level, used in place of the model's typical level at the
        baseline stores (see :func:`b12pk.engine.core.marker_terms`). ``None``: typical.
    overrides : Mapping[str, float]
        Model parameters changed for this patient, by name (see ``data/model.toml``).
    """

    name: str = "custom"
    intrinsic_factor: float = 1.0
    food_release: float = 1.0
    ileal_resection_cm: float = 0.0
    egfr_ml_min: float = 100.0
    metformin: bool = False
    diet_ug_per_day: float = 5.0
    baseline_serum_pmol_per_l: float | None = None
    baseline_stores_ug: float | None = None
    baseline_mma_nmol_per_l: float | None = None
    baseline_hcy_umol_per_l: float | None = None
    overrides: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise PatientError(f"patient name must be text, got {self.name!r}")
        for name, (low, high) in _PATIENT_RANGES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PatientError(f"patient setting {name} must be a number, got "
                                   f"{echo(value)}")
            x = as_finite_float(value)
            if x is None or not (low <= x <= high):
                raise PatientError(
                    f"patient setting {name} = {echo(value)} is not accepted; accepted: a "
                    f"finite number in [{low:g}, {high:g}]")
            if not isinstance(value, (int, float)):  # numpy numbers are stored as float
                object.__setattr__(self, name, x)
        if self.baseline_serum_pmol_per_l is not None and self.baseline_stores_ug is not None:
            raise PatientError("give either baseline_serum_pmol_per_l or baseline_stores_ug, "
                               "not both")
        if not isinstance(self.metformin, bool):
            raise PatientError(f"patient setting metformin must be true or false, "
                               f"got {self.metformin!r}")
        if not isinstance(self.overrides, Mapping):
            raise PatientError(f"patient overrides must be a mapping of parameter name to "
                               f"value, got {self.overrides!r}")
        overrides = dict(self.overrides)
        default_parameters().replace(**overrides)  # validates names and values
        object.__setattr__(self, "overrides", FrozenDict(overrides))

    @classmethod
    def preset(cls, name: str, **settings: Any) -> "Patient":
        """Build a patient from a named preset, changing any setting by keyword.

        Parameters
        ----------
        name : str
            One of :data:`PRESETS` (``healthy``, ``vegan``, ``atrophic-gastritis``,
            ``pernicious-anaemia``, ``ileal-resection``, ``roux-en-y``,
            ``sleeve-gastrectomy``, ``renal-impairment``, ``metformin``); American
            spellings are accepted.
        **settings
            Any :class:`Patient` field, e.g. ``serum_pmol_per_l=110`` (short for
            ``baseline_serum_pmol_per_l``), ``stores_ug=800``, ``egfr_ml_min=20``,
            ``overrides={"passive_fraction": 0.01}``.

        Raises
        ------
        UnknownNameError
            Unknown preset or setting name.
        PatientError
            A setting outside its accepted range.
        """
        key = _canonical_preset(name)
        entry = _preset_table()[key]
        kwargs: dict[str, Any] = {"name": key}
        for fname in ("intrinsic_factor", "food_release", "ileal_resection_cm", "egfr_ml_min",
                      "metformin", "diet_ug_per_day"):
            if fname in entry:
                kwargs[fname] = entry[fname]
        if entry.get("baseline") == "deficient":
            kwargs["baseline_serum_pmol_per_l"] = setting("deficient_baseline_serum_pmol_per_l")
        short = {"serum_pmol_per_l": "baseline_serum_pmol_per_l",
                 "stores_ug": "baseline_stores_ug",
                 "mma_nmol_per_l": "baseline_mma_nmol_per_l",
                 "hcy_umol_per_l": "baseline_hcy_umol_per_l"}
        valid = {f.name for f in dataclasses.fields(cls)} - {"name"}
        for sname, value in settings.items():
            target = short.get(sname, sname)
            if target not in valid:
                raise UnknownNameError(
                    f"unknown patient setting {sname!r}; accepted: "
                    f"{', '.join(sorted(valid | set(short)))}")
            kwargs[target] = value
        if "baseline_stores_ug" in kwargs and kwargs["baseline_stores_ug"] is not None \
                and "baseline_serum_pmol_per_l" not in {short.get(s, s) for s in settings}:
            kwargs.pop("baseline_serum_pmol_per_l", None)
        return cls(**kwargs)

    # ----- derived physiology --------------------------------------------------------
    @property
    def ileal_function(self) -> float:
        """Fraction of IF-receptor (cubam) function left in the ileum, 0-1.

        1 up to ``ileal_resection_onset_cm``, falling linearly to 0 at
        ``ileal_resection_complete_cm`` (``data/patients.toml``).
        """
        onset = setting("ileal_resection_onset_cm")
        complete = setting("ileal_resection_complete_cm")
        frac = (complete - self.ileal_resection_cm) / (complete - onset)
        return min(1.0, max(0.0, frac))

    @property
    def if_route_factor(self) -> float:
        """Fraction of the normal IF-route capacity: secretion x ileum x metformin, 0-1."""
        factor = self.intrinsic_factor * self.ileal_function
        if self.metformin:
            factor *= setting("metformin_if_factor")
        return factor

    @property
    def renal_factor(self) -> float:
        """Renal clearance of unbound B12 relative to the reference GFR."""
        return self.egfr_ml_min / default_parameters()["gfr_reference_ml_min"]

    def __deepcopy__(self, memo: dict) -> "Patient":
        return self   # immutable (frozen, read-only overrides): a copy is the same object

    def parameters(self, base: Parameters | None = None) -> Parameters:
        """Model parameters for this patient: ``base`` (defaults) with the overrides applied."""
        base = default_parameters() if base is None else base
        return base.replace(**self.overrides) if self.overrides else base

    def describe(self) -> str:
        """One-line description of the preset or settings."""
        entry = _preset_table().get(self.name)
        return entry["description"] if entry else "custom patient"


def preset_descriptions() -> dict[str, str]:
    """Preset name -> description."""
    return {k: v["description"] for k, v in _preset_table().items()}


# --------------------------------------------------------------------------------------
# Laboratory bands

@lru_cache(maxsize=1)
def lab_bands() -> Mapping[str, Any]:
    """Laboratory bands from the seed documents (``data/lab_bands.toml``).

    Returns
    -------
    Mapping
        ``total_b12`` and ``holotc`` band lists (name, low, high in pmol/L, label, source)
        and the MMA threshold.
    """
    data = _read_toml("lab_bands.toml")
    return MappingProxyType(data)


@lru_cache(maxsize=1)
def marker_variability() -> Mapping[str, float]:
    """Each functional marker's column -> between-patient CV of its reference level
    (``data/variability.toml [markers]``; 0 for a marker without an entry)."""
    from .declaration import declaration

    table = _read_toml("variability.toml").get("markers", {})
    return MappingProxyType({m.column: float(table.get(m.column, {}).get("cv", 0.0))
                             for m in declaration().markers})


@lru_cache(maxsize=1)
def marker_limits() -> Mapping[str, tuple[float, str]]:
    """Each functional marker's column -> (level below which it reads as normal, label),
    from the table of ``data/lab_bands.toml`` that ``data/model.toml [markers]`` names."""
    from .declaration import declaration

    bands = lab_bands()
    out = {}
    for m in declaration().markers:
        entry = bands.get(m.band)
        if not isinstance(entry, Mapping) or "normal_below" not in entry:
            raise FileFormatError(f"data/lab_bands.toml: marker {m.column} names table "
                                  f"[{m.band}], which lacks normal_below")
        out[m.column] = (float(entry["normal_below"]), str(entry.get("label", m.words)))
    return MappingProxyType(out)


def serum_bands_pmol_per_l() -> list[tuple[str, float, float]]:
    """Total serum B12 bands as (name, low, high) in pmol/L, low to high."""
    out = []
    for band in lab_bands()["total_b12"]:
        low = pg_per_ml_to_pmol_per_l(band["low_ng_per_l"])
        high = band.get("high_ng_per_l")
        high = math.inf if high is None else pg_per_ml_to_pmol_per_l(high)
        out.append((band["name"], low, high))
    return out
