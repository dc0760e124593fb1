"""Virtual populations: between-patient variability, outcome probabilities, a fast engine.

A :class:`PopulationSpec` names a patient (preset), a size and a seed; every patient gets
log-normal variability on the quantities in ``data/variability.toml`` (the preset's value is
the median). :func:`simulate_population` runs the population in blocks of
:data:`BLOCK` patients, vectorised with numpy, and accumulates per-time histograms of serum
B12 and stores, band counts, time to repletion and the trough before each injection. Memory
is bounded by the block, not by the population; merged aggregates are integer counts, so
the same seed gives identical results for any number of threads or Dask workers, and for any
chunking of an oral regimen. With injections, a chunk takes the transient's short steps
until the day on which its last patient's injection pools are empty, and the slow flows'
midpoint fluxes differ slightly between short and day-long steps, so another chunk size
can change the means by up to about 1e-7 relative (and a histogram count where a value sits on a
bin edge); threads and Dask never change them.

Engine
------
Between injection transients the model is linear: the slow states (ileum, enterocyte,
holoTC, holoHC, protein-bound, stores) are advanced exactly with matrix exponentials,
interpolated per patient (4-point Lagrange in log store-loss rate, on a fixed grid of 65
points) when store turnover varies, and computed exactly when it does not. During an
injection or intranasal transient the fast pools (depot, nasal, unbound) are stepped with an
exponential integrator in a Strang splitting around the exact slow propagator: half a fast
step, the slow step, half a fast step (so that haptocorrin is topped up at every step's end,
as it is continuously). The fast step is a predictor-corrector on the saturable uptake and
the binder's room, the corrector taking the predictor's mean unbound amount over the step.
Steps start at 3.75 minutes and double up to 20 % of the dose's age, at most half an hour; a
patient's transient ends once its pools hold at most TRANSIENT_END_UG (what is left goes
where it would have gone). Oral-only regimens are therefore exact; with injections the fast
method agrees with the exact one to about 6e-4 in mean serum (tests: within 1e-2; with
numba the transient runs in one compiled call, :func:`b12pk.engine._span.run_transient`,
equal to the numpy steps to rounding).

Methods
-------
``method="fast"`` (default) is the engine above: written by hand for the model structure of
``data/model.toml`` at signature :data:`_FAST_MODEL`, and refused (:class:`ModelError`) when
the declaration's structure changes, rather than silently simulating an older model.
``method="exact"`` runs every patient, with the same draws, through
:func:`b12pk.engine.core.run_patient`, the engine of :func:`b12pk.simulate` built from the
declaration: a population of one is ``simulate`` to the last bit, at about 20 ms per
patient-year with injections (checks, small populations, and any model structure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .._data import data_path
from ..engine.linalg import expm
from .. import limits
from ..engine.core import (as_regimen, check_days, check_memory, events_from, format_bytes,
                           parenteral_forms, patient_quantities, rate_values, regimen_like,
                           run_patient, System)
from ..errors import (FileFormatError, InputError, ModelError, ResourceError,
                      UnknownNameError, quiet_warnings)
from ..errors import warn as b12pk_warn
from ..io import as_finite_float, echo
from ..limits import (MAX_CHUNK, MAX_PATIENTS, MAX_POPULATION_PATIENT_DAYS,
                      MAX_POPULATION_TRANSIENTS, MAX_QUANTILES, MAX_TRAJECTORY_VALUES)
from ..model import laws
from ..model.parameters import Patient, default_parameters, parameter_table, serum_bands_pmol_per_l
from ..model.parameters import setting as _patient_setting
from ..model.declaration import LAW_PARAMETERS, declaration
from ..regimen.language import PARENTERAL_ROUTES, DoseEvent, Regimen

__all__ = ["PopulationSpec", "PopulationResult", "Watch", "Covariate", "covariate_sets",
           "simulate_population", "sample_patients", "engine_settings",
           "check_population_work", "BLOCK",
           "MAX_PATIENTS", "QUANTILES", "default_variability"]

BLOCK = 1024
"""Patients per random-number block: patient i's draws depend only on (seed, i // BLOCK)."""

QUANTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
"""Default percentiles of :func:`simulate_population`."""

TRANSIENT_STEP_DAYS = 1.0 / 384.0
TRANSIENT_AGE_FRACTION = 0.2
TRANSIENT_MAX_STEP_DAYS = 1.0 / 48.0
"""Steps while an injection's fast pools are not yet empty (days): they double from
TRANSIENT_STEP_DAYS as the dose ages (at most TRANSIENT_AGE_FRACTION of its age) up to
TRANSIENT_MAX_STEP_DAYS (tests compare with the exact method: within 1 %)."""
TRANSIENT_END_UG = 1e-3
"""The population engine ends an injection transient once no patient's injection pools hold
more than this (ug): what is left goes at once where it would have gone (depot and unbound
B12 to the tissues, haptocorrin, protein binding and urine in the proportions of their
rates). At most 1e-3 ug changes serum by less than 0.05 pmol/L for the hours it would
have stayed (the single-patient engine goes on to 1e-9 ug)."""
_FLUSH_DAYS = 1e3
"""A step long enough to empty the injection pools (exp(-rate x step) is 0 for every
rate of 1/day and above): the fast step over it is the flush of TRANSIENT_END_UG."""
# Histogram bins (pmol/L or ug): the float64 exponent and the top _HIST_MANT mantissa bits,
# i.e. 2**_HIST_MANT bins per doubling from 2**_HIST_EXP[0] to 2**_HIST_EXP[1] (0.0625 to
# about 1e6); a bin is 0.4-0.8% wide. The index is an integer shift of the float's bits.
_HIST_MANT = 7
_HIST_EXP = (-4, 20)
_HIST_BINS = (_HIST_EXP[1] - _HIST_EXP[0]) << _HIST_MANT
_HIST_SHIFT = 52 - _HIST_MANT
_HIST_LO_BITS = int(np.float64(2.0 ** _HIST_EXP[0]).view(np.int64)) >> _HIST_SHIFT
_HIST_LO, _HIST_HI = 2.0 ** _HIST_EXP[0], 2.0 ** _HIST_EXP[1]
_SLOW = tuple(c.name for c in declaration().compartments if c.body and not c.per_form)
"""The slow states: the body pools that are not per form (the declaration's order)."""
_NS = len(_SLOW)
_PLASMA = np.array([_SLOW.index(c) for c in ("holotc", "holohc", "protein_bound")],
                   dtype=np.int64)
"""The slow states measured in serum per plasma volume (the serum output's bound part)."""
_STORES = _SLOW.index("stores")
_BOUND = _SLOW.index("protein_bound")
PARENTERAL = PARENTERAL_ROUTES
_ORAL = tuple(name for name, r in declaration().routes.items()
              if r.enters == "absorption" and r.rest is None)
"""Routes whose whole dose passes the oral absorption step (the route table's)."""
_INJECTED = tuple(name for name, r in declaration().routes.items()
                  if r.parenteral and r.rest is None)
"""Routes whose whole dose enters a parenteral pool: injections (troughs come before them)."""

_FAST_MODEL = "30b8bc01fd7f"
MAX_WATCH_VALUES = 1_000_000
"""The most patients whose per-check lowest readings ``watch_values`` returns."""
POP_SLOW_STEP_DAYS = 1.0
POP_SLOW_STEP_RATE = 0.2
"""The population engine holds the slow flows (out of the stores) at their midpoint flux
over substeps of at most POP_SLOW_STEP_DAYS days and at most POP_SLOW_STEP_RATE over the
fastest slow flow's rate (1/day; coarser than the single-patient engine's: tests require
agreement with the exact method to 1 %)."""
"""Signature (:func:`model_signature`) of the model structure the fast method is written
for. The slow pools (every body pool not per form), their linear flows and slow flows, and
their quasi-steady state for given stores are read from the declaration; the injection
transient's flows, the serum formula and how drawn parameters enter the rates are written
by hand, so a change to
the compartments, flows, rates, absorption step, routes or serum output of
``data/model.toml`` disables it (:class:`ModelError`) until it is brought in step; the
exact method follows the declaration and keeps working."""


def model_signature() -> str:
    """A short hash of the model structure the fast method depends on (compartments,
    flows, rate expressions, absorption step, routes, serum output)."""
    import hashlib

    d = declaration()
    parts = (tuple((c.name, c.per_form, c.body) for c in d.compartments),
             tuple((f.src, f.dst, f.law, f.bound, tuple(sorted(f.params.items())))
                   for f in d.flows),
             tuple((name, e.text) for name, e in d.rates),
             (d.absorption.into, d.absorption.rest, d.absorption.capacity, d.absorption.km,
              d.absorption.recovery, d.absorption.passive, d.absorption.meals),
             tuple(sorted((k, r.enters, r.fraction.text if r.fraction else None, r.rest)
                          for k, r in d.routes.items())),
             dict(d.outputs)["serum_pmol_per_l"].text)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _check_fast_method() -> None:
    if model_signature() != _FAST_MODEL:
        raise ModelError(
            "the fast population method is written for an earlier structure of the model "
            f"(signature {_FAST_MODEL}, now {model_signature()}); use method='exact' "
            "(--method exact), or bring the fast method in step with data/model.toml")
_ORDER = ("if_capacity_ug", "passive_fraction", "other_loss_fraction_per_day",
          "uptake_vmax_ug_per_day", "nasal_bioavailability", "diet_ug_per_day",
          "baseline_serum_pmol_per_l", "baseline_stores_ug")


def default_variability() -> dict[str, float]:
    """CV of every varying quantity, from ``data/variability.toml``."""
    with open(data_path("variability.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    out = {k: float(v["cv"]) for k, v in doc["parameters"].items()}
    out.update({k: float(v["cv"]) for k, v in doc["patient"].items()})
    out.update({k: float(v["cv"]) for k, v in doc.get("markers", {}).items()})
    return out


_DISTRIBUTIONS = {"normal": ("mean", "sd"), "lognormal": ("median", "cv"),
                  "uniform": ("low", "high"), "fixed": ("value",)}
_COVARIATE_ORDER = ("age_years", "egfr_ml_min", "ileal_resection_cm")


@functools.lru_cache(maxsize=1)
def _covariates_file() -> dict[str, Any]:
    with open(data_path("covariates.toml"), "rb") as fh:
        return tomllib.load(fh)


def covariate_sets() -> dict[str, dict[str, str]]:
    """Named covariate sets of ``data/covariates.toml``: set name -> {covariate: text}."""
    sets = _covariates_file()["sets"]
    return {name: {k: v for k, v in body.items() if k in _COVARIATE_ORDER}
            for name, body in sets.items()}


@dataclass(frozen=True)
class Covariate:
    """A distribution of one patient characteristic across a population.

    Parameters
    ----------
    name : str
        ``age_years``, ``egfr_ml_min`` (mL/min/1.73 m2) or ``ileal_resection_cm`` (cm).
    distribution : str
        ``normal`` (mean, sd), ``lognormal`` (median, cv), ``uniform`` (low, high) or
        ``fixed`` (value), in the covariate's unit.
    params : tuple of float
        The distribution's parameters, as listed above.

    Draws are clipped to the covariate's range in ``data/covariates.toml``.
    """

    name: str
    distribution: str
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        ranges = {k: tuple(v["range"]) for k, v in _covariates_file()["covariates"].items()}
        if self.name not in ranges:
            raise UnknownNameError(f"unknown covariate {self.name!r}; accepted: "
                                   f"{', '.join(_COVARIATE_ORDER)}")
        if self.distribution not in _DISTRIBUTIONS:
            raise InputError(f"unknown distribution {self.distribution!r} for {self.name}; "
                             f"accepted: {', '.join(_DISTRIBUTIONS)}")
        names = _DISTRIBUTIONS[self.distribution]
        params = tuple(self.params)
        if len(params) != len(names) or any(
                isinstance(v, bool) or not isinstance(v, (int, float, np.floating))
                or not math.isfinite(v) for v in params):
            raise InputError(f"{self.distribution} for {self.name} takes {len(names)} finite "
                             f"number(s) ({', '.join(names)}), got {self.params!r}")
        params = tuple(float(v) for v in params)
        lo, hi = ranges[self.name]
        a = params[0]
        ok = {"normal": lambda: lo <= a <= hi and params[1] >= 0,
              "lognormal": lambda: lo < a <= hi and a > 0 and 0 <= params[1] <= 3,
              "uniform": lambda: lo <= a < params[1] <= hi,
              "fixed": lambda: lo <= a <= hi}[self.distribution]()
        if not ok:
            raise InputError(f"{self.distribution}({', '.join(f'{v:g}' for v in params)}) "
                             f"for {self.name} is not accepted: values must lie in "
                             f"{lo:g}-{hi:g}, sd >= 0, cv 0-3, low < high")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "range", (float(lo), float(hi)))

    @classmethod
    def parse(cls, name: str, text: str) -> "Covariate":
        """``Covariate.parse("age_years", "normal(80, 5)")``."""
        import re

        m = re.fullmatch(r"\s*([a-z]+)\s*\(([^()]*)\)\s*", str(text))
        if not m:
            raise InputError(f"covariate {name}: cannot read {text!r}; accepted: "
                             "normal(mean, sd), lognormal(median, cv), uniform(low, high), "
                             "fixed(value)")
        try:
            params = tuple(float(v) for v in m.group(2).split(",")) if m.group(2).strip() \
                else ()
        except ValueError:
            raise InputError(f"covariate {name}: {text!r} has a parameter that is not a "
                             "number") from None
        return cls(name, m.group(1), params)

    def to_text(self) -> str:
        return f"{self.distribution}({', '.join(f'{v:g}' for v in self.params)})"

    def sample(self, z: np.ndarray) -> np.ndarray:
        """Values for standard-normal draws z, clipped to the covariate's range."""
        from scipy.special import ndtr

        a = self.params
        if self.distribution == "normal":
            x = a[0] + a[1] * z
        elif self.distribution == "lognormal":
            x = a[0] * np.exp(math.sqrt(math.log1p(a[1] ** 2)) * z)
        elif self.distribution == "uniform":
            x = a[0] + (a[1] - a[0]) * ndtr(z)
        else:
            x = np.full(z.shape, a[0])
        return np.clip(x, *self.range)


def _as_covariates(value: Any) -> dict[str, Covariate]:
    if value is None:
        return {}
    if isinstance(value, str):
        sets = covariate_sets()
        if value not in sets:
            raise UnknownNameError(f"unknown covariate set {value!r}; accepted: "
                                   f"{', '.join(sorted(sets))}")
        value = sets[value]
    if not isinstance(value, Mapping):
        raise InputError(f"covariates must be a set name or a mapping of covariate name to "
                         f"distribution, got {type(value).__name__}")
    out = {}
    for name, dist in value.items():
        cov = dist if isinstance(dist, Covariate) else Covariate.parse(name, dist)
        if cov.name != name:
            raise InputError(f"covariate given as {name!r} is a {cov.name!r} distribution")
        out[name] = cov
    return {k: out[k] for k in _COVARIATE_ORDER if k in out}


@dataclass(frozen=True)
class PopulationSpec:
    """A virtual population.

    Parameters
    ----------
    patient : Patient or str
        The typical patient (a preset name or a :class:`Patient`).
    n : int
        Number of patients, 1 to :data:`MAX_PATIENTS`.
    seed : int
        Seed (>= 0); the same seed gives the same population.
    variability : Mapping[str, float], optional
        Coefficient of variation by quantity (names in ``data/variability.toml``); missing
        names take their default, ``{}``-like zeros remove variability. ``None``: defaults.
    covariates : str or Mapping[str, str | Covariate], optional
        Patient characteristics drawn per patient: a set name of ``data/covariates.toml``
        (``older-adults``, ``pernicious-anaemia-age``, ``crohn-ileocaecal``, ``ckd-3-4``) or
        a mapping such as ``{"age_years": "normal(80, 5)"}``. Age sets eGFR (unless eGFR is
        drawn) and the chance of atrophic gastritis; eGFR sets renal clearance; resection
        length sets IF-route absorption and biliary reabsorption. ``None``: every patient
        has the preset's settings.
    parameter_uncertainty : bool
        Also draw the fitted model parameters per patient from their approximate posterior
        (``data/calibration.toml [uncertainty]``), so that the spread covers what the
        calibration leaves open as well as between-patient variability. Needs
        ``method="exact"`` (the fast method shares the fitted parameters).
    """

    patient: Any
    n: int
    seed: int = 0
    variability: Mapping[str, float] | None = None
    covariates: Any = None
    parameter_uncertainty: bool = False

    def __post_init__(self) -> None:
        patient = Patient.preset(self.patient) if isinstance(self.patient, str) else self.patient
        if not isinstance(patient, Patient):
            raise InputError(f"population patient must be a Patient or preset name, got "
                             f"{self.patient!r}")
        object.__setattr__(self, "patient", patient)
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or \
                not 1 <= int(self.n) <= MAX_PATIENTS:
            raise InputError(f"population size n={self.n!r} is not accepted; accepted: a whole "
                             f"number from 1 to {MAX_PATIENTS:,}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or \
                self.seed < 0:
            raise InputError(f"seed={self.seed!r} is not accepted; accepted: a whole number >= 0")
        cvs = default_variability()
        given = dict(self.variability or {})
        unknown = sorted(set(given) - set(cvs))
        if unknown:
            raise UnknownNameError(f"unknown variability name(s): {', '.join(unknown)}; "
                                   f"accepted: {', '.join(sorted(cvs))}")
        for k, v in given.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or v > 3:
                raise InputError(f"variability of {k} = {v!r} is not accepted; accepted: a "
                                 "coefficient of variation from 0 to 3")
        cvs.update({k: float(v) for k, v in given.items()})
        object.__setattr__(self, "variability", cvs)
        object.__setattr__(self, "covariates", _as_covariates(self.covariates))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.parameter_uncertainty, (bool, np.bool_)):
            raise InputError(f"parameter_uncertainty={self.parameter_uncertainty!r} is not "
                             "accepted; accepted: True or False")
        object.__setattr__(self, "parameter_uncertainty", bool(self.parameter_uncertainty))

    @classmethod
    def without_variability(cls, patient: Any, n: int = 1, seed: int = 0) -> "PopulationSpec":
        """A population of identical typical patients (for checks)."""
        return cls(patient, n, seed, {k: 0.0 for k in default_variability()})

    def covariates_text(self) -> dict[str, str]:
        """The covariates as text, e.g. ``{"age_years": "normal(80, 5)"}``."""
        return {k: c.to_text() for k, c in self.covariates.items()}


@functools.lru_cache(maxsize=1)
def _ranges() -> dict[str, tuple[float, float]]:
    """Accepted range of each varying quantity (read once: model.toml does not change)."""
    t = parameter_table()
    out = {r.name: (r.low, r.high) for r in t.itertuples()}
    out["diet_ug_per_day"] = (0.0, 1000.0)
    out["baseline_serum_pmol_per_l"] = (1.0, 100_000.0)
    out["baseline_stores_ug"] = (0.0, 100_000.0)
    return out


def _typical(spec: PopulationSpec, p: Any) -> dict[str, float]:
    """The typical (median) value of every varying quantity this population has."""
    patient = spec.patient
    typical = {"if_capacity_ug": p["if_capacity_ug"], "passive_fraction": p["passive_fraction"],
               "other_loss_fraction_per_day": p["other_loss_fraction_per_day"],
               "uptake_vmax_ug_per_day": p["uptake_vmax_ug_per_day"],
               "nasal_bioavailability": p["nasal_bioavailability"],
               "diet_ug_per_day": patient.diet_ug_per_day}
    if patient.baseline_serum_pmol_per_l is not None:
        typical["baseline_serum_pmol_per_l"] = patient.baseline_serum_pmol_per_l
    if patient.baseline_stores_ug is not None:
        typical["baseline_stores_ug"] = patient.baseline_stores_ug
    return typical


def _sample_block(spec: PopulationSpec, block: int, typical: Mapping[str, float]
                  ) -> dict[str, np.ndarray]:
    """Draw the varying quantities of the patients in one block (log-normal, median = typical)."""
    size = min(BLOCK, spec.n - block * BLOCK)
    rng = np.random.default_rng([spec.seed, block])
    # a full block is always drawn (then cut), so a patient's draws do not depend on n
    z = rng.standard_normal((len(_ORDER), BLOCK))[:, :size]
    ranges = _ranges()
    out = {}
    for k, name in enumerate(_ORDER):
        base = typical.get(name)
        if base is None:
            continue
        cv = spec.variability.get(name, 0.0)
        if cv == 0.0 or base == 0.0:
            out[name] = np.full(size, float(base))
            continue
        sigma = math.sqrt(math.log1p(cv * cv))
        lo, hi = ranges[name]
        out[name] = np.clip(base * np.exp(sigma * z[k]), lo, hi)
    return out


def _covariate_block(spec: PopulationSpec, block: int) -> dict[str, np.ndarray]:
    """Covariates and the patient settings they set, for the patients of one block.

    Empty when the population has no covariates. Drawn from their own stream
    (seed, block, 1), so adding covariates does not change the parameter draws.
    """
    if not spec.covariates:
        return {}
    size = min(BLOCK, spec.n - block * BLOCK)
    rng = np.random.default_rng([spec.seed, block, 1])
    z = rng.standard_normal((4, BLOCK))[:, :size]
    u = rng.random(BLOCK)[:size]
    patient = spec.patient
    doc = _covariates_file()
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(_COVARIATE_ORDER):
        if name in spec.covariates:
            out[name] = spec.covariates[name].sample(z[k])
    if "age_years" in out and "egfr_ml_min" not in out:
        eff = doc["effects"]["age_on_egfr"]
        lo, hi = doc["covariates"]["egfr_ml_min"]["range"]
        excess = np.maximum(out["age_years"] - eff["anchor_age_years"], 0.0)
        rel = np.maximum(1.0 - eff["slope_per_year"] * excess, 0.0)
        sigma = math.sqrt(math.log1p(eff["residual_cv"] ** 2))
        out["egfr_ml_min"] = np.clip(patient.egfr_ml_min * rel * np.exp(sigma * z[3]), lo, hi)
    food = np.full(size, float(patient.food_release))
    intrinsic = np.full(size, float(patient.intrinsic_factor))
    if "age_years" in out:
        eff = doc["effects"]["age_on_atrophic_gastritis"]
        prob = np.interp(out["age_years"], eff["ages_years"], eff["prevalence"])
        ag = u < prob
        out["atrophic_gastritis"] = ag
        food = np.where(ag, np.minimum(food, eff["food_release"]), food)
        intrinsic = np.where(ag, np.minimum(intrinsic, eff["intrinsic_factor"]), intrinsic)
    resection = out.get("ileal_resection_cm", np.full(size, float(patient.ileal_resection_cm)))
    onset = _patient_setting("ileal_resection_onset_cm")
    complete = _patient_setting("ileal_resection_complete_cm")
    ileal = np.clip((complete - resection) / (complete - onset), 0.0, 1.0)
    factor = intrinsic * ileal
    if patient.metformin:
        factor = factor * _patient_setting("metformin_if_factor")
    out["food_release"] = food
    out["intrinsic_factor"] = intrinsic
    out["if_route_factor"] = factor
    return out


@dataclass(frozen=True)
class Watch:
    """A per-patient check: does the patient's ``quantity`` ("serum": total serum B12, or
    "holotc": holotranscobalamin, both pmol/L) stay at or above ``threshold_pmol_per_l`` at
    every reading from ``start_day`` to ``end_day``? ``reading``: "trough" (just before
    each injection after the first within the window, and at the window's last day, so a
    window without an injection is still read; each day for a regimen without injections,
    sampled before that day's dose is absorbed) or "daily"."""

    threshold_pmol_per_l: float
    reading: str
    start_day: float
    end_day: float
    quantity: str = "serum"


WATCHED = ("serum", "holotc")
"""Quantities a Watch can read per patient (the declaration's serum_pmol_per_l and
holotc_pmol_per_l outputs)."""


def _check_watch(watch: Any) -> tuple[Watch, ...]:
    out = []
    for w in watch or ():
        try:
            w = Watch(float(w.threshold_pmol_per_l), str(w.reading), float(w.start_day),
                      float(w.end_day), str(getattr(w, "quantity", "serum")))
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"watch entries need threshold_pmol_per_l, reading, start_day "
                             f"and end_day; got {echo(w)}") from None
        if w.reading not in ("trough", "daily") or not (w.threshold_pmol_per_l > 0) or \
                not (0.0 <= w.start_day < w.end_day) or w.quantity not in WATCHED:
            raise InputError(f"watch entry {echo(w)} is not accepted: quantity "
                             f"{' or '.join(WATCHED)}, reading 'trough' or 'daily', a threshold "
                             "> 0 and 0 <= start_day < end_day")
        out.append(w)
    return tuple(out)


# --------------------------------------------------------------------------------------
# Aggregates (mergeable integer counts)

def _bin_edges() -> np.ndarray:
    bits = (np.arange(_HIST_BINS + 1, dtype=np.int64) + _HIST_LO_BITS) << _HIST_SHIFT
    return bits.view(np.float64)


def _bin_index(x: np.ndarray) -> np.ndarray:
    """Histogram bin of each value (values below or above the range go to the end bins)."""
    idx = np.ascontiguousarray(np.maximum(x, 0.0), dtype=np.float64).view(np.int64)
    idx = idx >> _HIST_SHIFT
    idx -= _HIST_LO_BITS
    return np.clip(idx, 0, _HIST_BINS - 1, out=idx)


@dataclass
class _Aggregate:
    n_times: int
    n_troughs: int
    n: int = 0
    serum: np.ndarray = field(default=None)  # type: ignore[assignment]
    stores: np.ndarray = field(default=None)  # type: ignore[assignment]
    bands: np.ndarray = field(default=None)  # type: ignore[assignment]
    repletion: np.ndarray = field(default=None)  # type: ignore[assignment]
    troughs: np.ndarray = field(default=None)  # type: ignore[assignment]
    trough_below: np.ndarray = field(default=None)  # type: ignore[assignment]
    trough_not_replete: np.ndarray = field(default=None)  # type: ignore[assignment]
    sums: dict = field(default_factory=dict)  # block -> (2, n_times) serum and stores sums
    sum_total: Any = None  # sums of blocks 0 .. next_block - 1, added in block order
    next_block: int = 0
    above_capacity: int = 0  # patients whose baseline needs stores above the capacity
    n_watch: int = 0
    watch_met: np.ndarray = field(default=None)  # type: ignore[assignment]
    keep_watch: bool = False  # keep each patient's lowest reading per check
    watch_min: dict = field(default_factory=dict)  # first block -> (n_watch, patients)

    def __post_init__(self) -> None:
        # int32 counts: a bin holds at most MAX_PATIENTS (< 2**31) patients
        self.serum = np.zeros((self.n_times, _HIST_BINS), np.int32)
        self.stores = np.zeros((self.n_times, _HIST_BINS), np.int32)
        self.bands = np.zeros((self.n_times, 3), np.int64)
        self.repletion = np.zeros(self.n_times + 1, np.int64)  # last = never
        self.troughs = np.zeros((self.n_troughs, _HIST_BINS), np.int32)
        self.trough_below = np.zeros(self.n_troughs, np.int64)
        self.trough_not_replete = np.zeros(self.n_troughs, np.int64)
        self.watch_met = np.zeros(self.n_watch + 1 if self.n_watch else 0, np.int64)

    def add_patient(self, serum: np.ndarray, stores: np.ndarray, trough_serum: np.ndarray,
                    cut: float, upper: float) -> None:
        """Count one patient's serum and stores at every output time and serum before each
        trough (the exact method's per-patient path; sums are the caller's)."""
        k = np.arange(self.n_times)
        self.serum[k, _bin_index(serum)] += 1
        self.stores[k, _bin_index(stores)] += 1
        self.bands[k, np.where(serum < cut, 0, np.where(serum >= upper, 2, 1))] += 1
        above = np.nonzero(serum >= cut)[0]
        self.repletion[above[0] if above.size else self.n_times] += 1
        if self.n_troughs:
            self.troughs[np.arange(self.n_troughs), _bin_index(trough_serum)] += 1
            self.trough_below += trough_serum < cut
            self.trough_not_replete += trough_serum < upper
        self.n += 1

    def merge(self, other: "_Aggregate") -> "_Aggregate":
        for name in ("serum", "stores", "bands", "repletion", "troughs", "trough_below",
                     "trough_not_replete", "watch_met"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.n += other.n
        self.above_capacity += other.above_capacity
        self.sums.update(other.sums)
        self.watch_min.update(other.watch_min)
        self._fold()
        return self

    def _fold(self) -> None:
        """Add the per-block sums into the running total in block order, as blocks arrive
        (the total does not depend on chunking; memory does not grow with n)."""
        if self.sum_total is None:
            self.sum_total = np.zeros((2, self.n_times))
        while self.next_block in self.sums:
            self.sum_total += self.sums.pop(self.next_block)
            self.next_block += 1

    def means(self) -> np.ndarray:
        """Mean serum and stores per time, summed in block order (chunking-independent)."""
        self._fold()
        if self.sums:
            raise RuntimeError(f"population blocks missing before {min(self.sums)}")
        return self.sum_total / self.n


# --------------------------------------------------------------------------------------
# Vectorised engine for one block

class _Locked:
    """A cache shared by threads: ``self._lock`` guards it; pickled without the lock (Dask)."""

    _lock: threading.Lock

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _Propagators(_Locked):
    """exp(A dt) and the responses to constant inputs for a set of (store-loss,
    reabsorption) rates: ``E`` (K, ns, ns) and ``G`` (K, ns, inputs), from
    ``exp(dt [A B; 0 0])`` with ``B`` the input columns (a unit inflow into the ileum, then
    each slow flow at unit flux).

    Each pair (kl, kr) sets the stores' diagonal entry as for a store-loss rate kl at the
    typical reabsorption, and the stores -> ileum (biliary reabsorption) entry to kr.

    Computed by a batched matrix exponential once for a base step h0 (1/768 day), then by exact binary
    composition for any dt that is a whole multiple of h0 (all steps the population engine
    takes when doses and outputs fall on the 1/768-day grid); other dt use expm directly.
    """

    H0 = 1.0 / 768.0

    def __init__(self, A0: np.ndarray, k0: float, pairs: np.ndarray, inputs: np.ndarray):
        self.inputs = inputs
        self.mats = []
        s = _SLOW.index("stores")
        ileum = _SLOW.index("ileum")
        for kl, kr in np.atleast_2d(pairs):
            A = A0.copy()
            A[s, s] += k0 - kl
            A[ileum, s] = kr
            self.mats.append(A)
        self.mats = np.stack(self.mats)
        self._cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._pow: list[tuple[np.ndarray, np.ndarray]] = [self._direct(self.H0)]
        self._lock = threading.Lock()

    def _direct(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        K = len(self.mats)
        c = self.inputs.shape[1]
        ns = _NS
        M = np.zeros((K, ns + c, ns + c))
        M[:, :ns, :ns] = self.mats
        M[:, :ns, ns:] = self.inputs
        E = expm(M * dt)  # batched
        return E[:, :ns, :ns].copy(), E[:, :ns, ns:].copy()

    def get(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:  # chunks run in threads share the cache
            return self._get(dt)

    def _get(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        key = round(dt, 9)
        if key in self._cache:
            return self._cache[key]
        m = round(key / self.H0)
        if m >= 1 and abs(m * self.H0 - key) < 1e-9:
            E = g = None
            bit = 0
            while m:
                while len(self._pow) <= bit:  # E(2h) = E(h)^2, g(2h) = E(h) g(h) + g(h)
                    Ep, gp = self._pow[-1]
                    self._pow.append((Ep @ Ep, np.einsum("kij,kjc->kic", Ep, gp) + gp))
                if m & 1:
                    Ep, gp = self._pow[bit]
                    if E is None:
                        E, g = Ep.copy(), gp.copy()
                    else:
                        E, g = Ep @ E, np.einsum("kij,kjc->kic", Ep, g) + gp
                m >>= 1
                bit += 1
            out = (E, g)
        else:
            out = self._direct(key)
        self._cache[key] = out
        return out


def _lagrange4(x: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """4-point Lagrange interpolation on nodes 0 .. n_nodes - 1 at positions x: first node
    index j0 (N,) and weights (4, N)."""
    j0 = np.clip(np.floor(x).astype(int) - 1, 0, n_nodes - 4)
    u = x - j0
    w = np.empty((4, x.size))
    for q in range(4):
        w[q] = 1.0
        for m in range(4):
            if m != q:
                w[q] *= (u - m) / (q - m)
    return j0, w


class _BlockEngine(_Locked):
    """Slow-state propagators, per patient.

    Exact when all patients share the store-loss rate kl and the reabsorption rate kr;
    otherwise interpolated (4-point Lagrange) on a grid: 65 points in log kl, and, when kr
    varies too (covariates), 9 points of kr from 0 to its largest value. The propagators are
    analytic in both rates and these are slow rates (1/day and below), so the interpolation
    error is near rounding (tests compare with direct matrix exponentials).
    """

    N_KR = 9

    def __init__(self, sys_: System, k_loss_grid: np.ndarray, k_reab_max: float):
        L = sys_.L
        self.sys = sys_
        self.idx = [getattr(L, s) for s in _SLOW]
        self.A0 = sys_.A[np.ix_(self.idx, self.idx)].copy()
        self.k_loss0 = sys_.k_loss
        self.k_reab0 = sys_.k_reab
        self.slow = _slow_flows(sys_)
        self.inputs = np.zeros((_NS, 1 + len(self.slow)))
        self.inputs[_SLOW.index("ileum"), 0] = 1.0
        # the quasi-steady state for given stores (plasma_for in _run_block): the other
        # slow pools' block of A inverted once; the stores' column without the biliary
        # reabsorption into the ileum (each patient's own rate)
        self.rest = np.array([i for i in range(_NS) if i != _STORES])
        self.rest_inverse = np.linalg.inv(self.A0[np.ix_(self.rest, self.rest)])
        self.rest_ileum = int(np.nonzero(self.rest == _SLOW.index("ileum"))[0][0])
        self.store_column = self.A0[self.rest, _STORES].copy()
        self.store_column[self.rest_ileum] = 0.0
        self.slow_from_stores = all(src == _STORES for src, _d, _l in self.slow)
        for q, (src, dst, _law) in enumerate(self.slow):
            self.inputs[src, 1 + q] -= 1.0
            if dst >= 0:
                self.inputs[dst, 1 + q] += 1.0
        self.grid = k_loss_grid
        self.log_grid = np.log(k_loss_grid)
        self.kr_grid = np.linspace(0.0, max(k_reab_max, 1e-12), self.N_KR)
        self._tables: dict[Any, _Propagators] = {}
        self._exact: dict[tuple[float, float], _Propagators] = {}
        self._lock = threading.Lock()

    def _table(self, kr: float | None) -> _Propagators:
        """Grid propagators: in kl at one kr, or (kr None) on the kl x kr grid."""
        with self._lock:
            tab = self._tables.get(kr)
            if tab is None:
                if kr is None:
                    pairs = np.array([(kl, r) for kl in self.grid for r in self.kr_grid])
                else:
                    pairs = np.column_stack([self.grid, np.full(self.grid.size, kr)])
                tab = self._tables[kr] = _Propagators(self.A0, self.k_loss0, pairs,
                                                      self.inputs)
            return tab

    def table(self, dt: float, kr: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        if kr is None:
            kr = self.k_reab0
        return self._table(float(kr)).get(dt)

    def table_2d(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        return self._table(None).get(dt)

    def propagators(self, k_loss: np.ndarray, dt: float,
                    k_reab: np.ndarray | float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-patient E (ns, ns, N) and G (ns, inputs, N) for step dt (see
        :class:`_Propagators`; ns slow states).

        k_loss: store-loss rates at the typical reabsorption (1/day); k_reab: reabsorption
        rates (1/day), one per patient or one for all (default: the typical patient's).
        """
        n = k_loss.size
        kr = np.broadcast_to(np.asarray(self.k_reab0 if k_reab is None else k_reab,
                                        dtype=float), (n,))
        one_kr = bool(np.all(kr == kr[0]))
        if one_kr and np.all(k_loss == k_loss[0]):
            key = (float(k_loss[0]), float(kr[0]))
            with self._lock:
                prop = self._exact.get(key)
                if prop is None:
                    prop = self._exact[key] = _Propagators(self.A0, self.k_loss0,
                                                           np.array([key]), self.inputs)
            E, g = prop.get(dt)
            c = g.shape[2]
            return (np.broadcast_to(E[0][:, :, None], (_NS, _NS, n)),
                    np.broadcast_to(g[0][:, :, None], (_NS, c, n)))
        x = (np.log(k_loss) - self.log_grid[0]) / (self.log_grid[1] - self.log_grid[0])
        j0, w = _lagrange4(x, len(self.grid))
        if one_kr:
            E_tab, g_tab = self.table(dt, float(kr[0]))
            terms = [(j0 + q, w[q]) for q in range(4)]
        else:
            E_tab, g_tab = self.table_2d(dt)
            step = self.kr_grid[1] - self.kr_grid[0]
            i0, v = _lagrange4(kr / step, self.N_KR)
            terms = [((j0 + q) * self.N_KR + (i0 + r), w[q] * v[r])
                     for q in range(4) for r in range(4)]
        c = g_tab.shape[2]
        E = np.zeros((_NS, _NS, n))
        g = np.zeros((_NS, c, n))
        for idx, wq in terms:
            E += E_tab[idx].transpose(1, 2, 0) * wq
            g += g_tab[idx].transpose(1, 2, 0) * wq
        return E, g


def _slow_flows(sys_: System) -> list[tuple[int, int, int]]:
    """The slow flows (out of the stores) as (source, destination or -1 when it leaves the
    slow state, law code); their parameters are each patient's."""
    out = []
    for src, dst, law in zip(sys_.qsrc, sys_.qdst, sys_.qlaw):
        names = [n for n in _SLOW if sys_.L.index(n) == src]
        if not names:  # pragma: no cover - a declaration with another slow source
            raise ModelError("the fast population engine takes slow flows out of its slow "
                             "states only; use method='exact'")
        dname = [n for n in _SLOW if sys_.L.index(n) == dst]
        out.append((_SLOW.index(names[0]), _SLOW.index(dname[0]) if dname else -1, int(law)))
    return out


def _apply(E: np.ndarray, G: np.ndarray, y: np.ndarray, r: np.ndarray,
           f: Sequence[np.ndarray] = ()) -> np.ndarray:
    """E y + G [r; f] per patient (E: (ns, ns, N), G: (ns, inputs, N), y: (ns, N), r and each
    slow flow's flux in f: (N,))."""
    out = np.einsum("ijn,jn->in", E, y)
    out += G[:, 0] * r
    for q, fq in enumerate(f):
        out += G[:, 1 + q] * fq
    return out


def _patient_rates(spec: PopulationSpec, p: Any, draw: Mapping[str, np.ndarray],
                   cov: Mapping[str, np.ndarray], forms: tuple[str, ...]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The declared rates for a block's patients (arrays where they differ): the preset's
    parameters and quantities with the drawn values and the covariates' settings."""
    values = {**p.as_dict(), **patient_quantities(spec.patient)}
    values.update({k: v for k, v in draw.items() if k in values})  # parameters and diet
    values.update({k: cov[k] for k in ("egfr_ml_min", "food_release", "if_route_factor")
                   if k in cov})
    return rate_values(values, None), [rate_values(values, f) for f in forms]


@functools.lru_cache(maxsize=1)
def _saturable_flow() -> Any:
    return next(f for f in declaration().flows if f.law == "saturable")


def _run_block(spec: PopulationSpec, regimen_events: Sequence[DoseEvent],
               days: float, blocks: Sequence[int], forms: tuple[str, ...], typical_sys: System,
               engine: _BlockEngine, out_times: np.ndarray, trough_times: Sequence[float],
               cut: float, upper: float, fast: Any = None,
               agg: "_Aggregate | None" = None, traj: "tuple[str, int] | None" = None,
               watch: Sequence[Watch] = (), daily: bool = True,
               keep_watch: bool = False) -> _Aggregate:
    s = typical_sys
    p = s.p
    typical = _typical(spec, p)
    parts = [_sample_block(spec, b, typical) for b in blocks]
    draw = {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}
    sizes = [d["if_capacity_ug"].size for d in parts]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    n = draw["if_capacity_ug"].size
    if agg is None:
        agg = _Aggregate(len(out_times) if daily else 0, len(trough_times),
                         n_watch=len(watch), keep_watch=keep_watch)
    n_rec = agg.n_times  # output times recorded (none without daily)
    agg.n += n
    # per-patient checks: the lowest serum at the times each one reads
    w_min = np.full((len(watch), n), np.inf)
    w_daily = [w.reading == "daily" or not len(trough_times) for w in watch]
    # per-patient settings set by covariates (scalars: the preset's, the same for all)
    cov_parts = [_covariate_block(spec, b) for b in blocks]
    cov = {k: np.concatenate([d[k] for d in cov_parts]) for k in cov_parts[0]}
    # per-patient rates, from the declaration's rate expressions on the drawn values
    rates, form_rates = _patient_rates(spec, p, draw, cov, forms)
    a = declaration().absorption

    def each(x: Any) -> np.ndarray:
        return np.array(np.broadcast_to(x, (n,)), dtype=float)

    if_cap, passive = each(rates[a.capacity]), each(rates[a.passive])
    # reabsorption, the actual loss to faeces and the store loss at the typical
    # reabsorption (the propagator grid's variable)
    k_reab, k_loss_true = each(rates["k_reab"]), each(rates["k_loss"])
    k_loss = k_loss_true - s.k_reab + k_reab
    vmax = each(rates[_saturable_flow().params["vmax"]])
    diet = each(rates["diet_ug_per_day"])
    meals = float(rates[a.meals])
    m = each(rates["food_release"]) * diet / meals
    with np.errstate(invalid="ignore", divide="ignore"):
        per_meal = np.where(m > 0, laws.if_absorbed(if_cap, s.if_km, m), 0.0) + passive * m
    r_diet = np.minimum(per_meal * meals, diet)
    # the slow flows (out of the stores), with each patient's parameters
    slow = engine.slow
    slow_decl = [f for f in declaration().flows if f.slow]
    qa = np.ascontiguousarray([each(rates[f.params[LAW_PARAMETERS[f.law][0]]])
                               for f in slow_decl]).reshape(len(slow), n)
    qb = np.ascontiguousarray([each(rates[f.params[LAW_PARAMETERS[f.law][1]]])
                               for f in slow_decl]).reshape(len(slow), n)
    q_src = np.array([x[0] for x in slow], dtype=np.int64)
    q_law = np.array([x[2] for x in slow], dtype=np.int64)
    hc = _SLOW.index("holohc")

    def fluxes(state: np.ndarray) -> list[np.ndarray]:
        return [laws.slow_flux(law, qa[q], qb[q], state[src])
                for q, (src, _dst, law) in enumerate(slow)]

    # the fastest slow flow's rate bounds the step over which fluxes are held
    fastest = max([float(np.max(qa[q] / qb[q])) if law == laws.SLOW_SATURABLE
                   else float(np.max(qa[q])) for q, (_s, _d, law) in enumerate(slow)]
                  + [0.0])
    h_slow = min(POP_SLOW_STEP_DAYS, POP_SLOW_STEP_RATE / fastest) if fastest > 0 \
        else POP_SLOW_STEP_DAYS

    def substeps(dt: float) -> int:
        return max(1, math.ceil(dt / h_slow - 1e-9)) if slow else 1

    # initial state (quasi-steady plasma for the stores that give the baseline serum)
    Vp, Vf = p["plasma_volume_l"], p["free_volume_l"]
    to_pmol = 1e3 / p["molar_mass_g_per_mol"] * 1e3  # ug/L -> pmol/L

    def plasma_for(stores: np.ndarray) -> np.ndarray:
        """The quasi-steady slow state for ``stores`` (as
        :meth:`b12pk.engine.core.System.plasma_given_stores`, per patient): the other slow
        pools at the steady state of the declared linear flows, the diet and biliary
        reabsorption into the absorption step's pool, and the slow flows at their flux."""
        state = np.zeros((_NS, n))
        state[_STORES] = stores
        base = np.outer(engine.store_column, stores)
        base[engine.rest_ileum] += r_diet + k_reab * stores
        for _ in range(1 if engine.slow_from_stores else 100):
            b = base.copy()
            for q, f in enumerate(fluxes(state)):
                b += engine.inputs[engine.rest, 1 + q][:, None] * f
            new = -(engine.rest_inverse @ b)
            done = engine.slow_from_stores or np.allclose(new, state[engine.rest],
                                                            rtol=1e-14, atol=1e-300)
            state[engine.rest] = new
            if done:
                break
        return state

    def bisect(fn: Callable[[np.ndarray], np.ndarray], hi: np.ndarray) -> np.ndarray:
        """Per patient, the root of ``fn`` (increasing) in [0, hi]."""
        lo = np.zeros(n)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            up = fn(mid) > 0.0
            hi = np.where(up, mid, hi)
            lo = np.where(up, lo, mid)
        return 0.5 * (lo + hi)

    def serum_for(stores: np.ndarray) -> np.ndarray:
        q = plasma_for(stores)
        return q[_PLASMA].sum(axis=0) / Vp * to_pmol

    if "baseline_serum_pmol_per_l" in draw:
        target = draw["baseline_serum_pmol_per_l"]
        hi = np.full(n, 1e4)
        for _ in range(60):
            low = serum_for(hi) < target
            if not low.any():
                break
            hi = np.where(low, 2.0 * hi, hi)
        stores0 = bisect(lambda x: serum_for(x) - target, hi)
        stores0[serum_for(np.zeros(n)) >= target] = 0.0
    elif "baseline_stores_ug" in draw:
        stores0 = draw["baseline_stores_ug"]
    else:  # the diet's steady state: absorbed = lost (faeces, and slow flows leaving)
        def excess_loss(x: np.ndarray) -> np.ndarray:
            state = plasma_for(x)
            out = k_loss_true * x - r_diet
            for (_src, dst, _law), f in zip(slow, fluxes(state)):
                if dst < 0:
                    out = out + f
            return out
        stores0 = bisect(excess_loss, r_diet / k_loss_true)
    y = plasma_for(stores0)
    for q, (src, _dst, law) in enumerate(slow):  # baselines that need stores above capacity
        if law == laws.SLOW_OVERFLOW and src == _STORES:
            agg.above_capacity += int(np.count_nonzero(stores0 > qb[q]))
    nf = len(forms)
    depot = np.zeros((nf, n))
    nasal = np.zeros((nf, n))
    free = np.zeros((nf, n))
    k_dep = s.k_depot
    k_nas = p["nasal_absorption_rate_per_day"]
    k_ren = [each(fr["k_renal"]) for fr in form_rates]
    k_pb = [each(fr["k_pb"]) for fr in form_rates]
    k_dep_arr = np.array(k_dep, dtype=float).reshape(nf)
    k_ren_arr = np.ascontiguousarray(np.array(k_ren).reshape(nf, n))
    k_pb_arr = np.ascontiguousarray(np.array(k_pb).reshape(nf, n))
    deficit = np.zeros(n)
    t_last_oral = 0.0
    replete_at = np.full(n, n_rec, dtype=np.int64)

    routes = declaration().routes
    pools = {"depot": depot, "nasal": nasal, "free": free}
    env = {**p.as_dict(), **draw}
    fractions = {name: r.fraction(env) for name, r in routes.items() if r.fraction is not None}

    def serum_of() -> np.ndarray:
        return y[_PLASMA].sum(axis=0) / Vp * to_pmol + free.sum(axis=0) / Vf * to_pmol

    sums = np.zeros((len(blocks), 2, n_rec))
    agg.sums.update({b: sums[j] for j, b in enumerate(blocks)})
    never = n_rec
    block_of = np.repeat(np.arange(len(blocks)), sizes)

    # per-patient trajectories (the first traj[1] patients of the population), if asked
    ids = np.concatenate([b * BLOCK + np.arange(z) for b, z in zip(blocks, sizes)])
    keep = np.nonzero(ids < traj[1])[0] if traj is not None else np.zeros(0, np.int64)
    traj_rows: list[tuple[int, np.ndarray, np.ndarray]] = []

    def holotc_of() -> np.ndarray:
        return y[_SLOW.index("holotc")] / Vp * to_pmol

    def reads(daily: bool, te: float, last: bool = False) -> list[bool]:
        """Which checks read at time te: the daily ones inside their window, the others
        at their window's last whole day (``last``: an output time)."""
        return [(w_daily[iw] == daily and w.start_day <= te <= w.end_day) or
                (last and not w_daily[iw] and te == math.floor(w.end_day + 1e-9))
                for iw, w in enumerate(watch)]

    w_holotc = np.array([w.quantity != "serum" for w in watch], dtype=np.bool_)

    def read_watch(daily: bool, te: float, ser: np.ndarray, last: bool = False) -> None:
        for iw, read in enumerate(reads(daily, te, last)):
            if read:
                np.minimum(w_min[iw], holotc_of() if w_holotc[iw] else ser, out=w_min[iw])

    def record(k: int) -> None:
        ser = serum_of()
        read_watch(True, float(out_times[k]), ser, last=True)
        if not daily:
            return
        if keep.size:
            traj_rows.append((k, ser[keep].copy(), np.asarray(y[_STORES])[keep].copy()))
        if fast is not None:
            stores = np.ascontiguousarray(y[_STORES])
            fast.record_step(ser, stores, ser.view(np.int64), stores.view(np.int64), k, cut,
                             upper, _HIST_LO_BITS, _HIST_SHIFT, _HIST_BINS, agg.serum,
                             agg.stores, agg.bands, replete_at, never, block_of, sums)
            return
        sums[:, 0, k] = np.add.reduceat(ser, starts)
        sums[:, 1, k] = np.add.reduceat(y[_STORES], starts)
        agg.serum[k] += np.bincount(_bin_index(ser), minlength=_HIST_BINS)
        agg.stores[k] += np.bincount(_bin_index(y[_STORES]), minlength=_HIST_BINS)
        below = int(np.count_nonzero(ser < cut))
        above = int(np.count_nonzero(ser >= upper))
        agg.bands[k] += (below, ser.size - below - above, above)
        newly = (replete_at == never) & (ser >= cut)
        replete_at[newly] = k

    def fast_step(h: float) -> None:
        """Fast pools over h: exponential integrator, predictor-corrector on the saturable
        terms; haptocorrin binding limited to the free capacity (mass-conserving)."""
        room = laws.binding_room(s.hc_cap, y[hc]) * s.hc_cap
        ftot = free.sum(axis=0)
        g = laws.binding_room(s.hc_cap, y[hc])
        f_new = free
        bound_pred = np.zeros(n)
        outs: list[np.ndarray] = []
        lam: list[np.ndarray] = []
        for corrector in (False, True):
            # the corrector: the predictor's mean unbound amount over the step (left / rate)
            F_mid = ftot if not corrector else sum(o / l for o, l in zip(outs, lam)) / h
            if corrector:
                g = laws.binding_room(s.hc_cap, y[hc] + 0.5 * bound_pred)
            u = laws.saturable(vmax, s.km, np.maximum(F_mid, 0.0), 1.0)  # per ug free
            lam = [k_ren[i] + k_pb[i] + s.k_bind * g + u for i in range(nf)]
            f_new = np.empty_like(free)
            outs = []
            for i in range(nf):
                li = lam[i]
                acc = free[i] * np.exp(-li * h)
                for k_src, amt in ((k_dep[i], depot[i]), (k_nas, nasal[i])):
                    diff = li - k_src
                    safe = np.abs(diff) > 1e-9
                    term = np.where(safe, k_src * amt * (np.exp(-k_src * h) - np.exp(-li * h))
                                    / np.where(safe, diff, 1.0),
                                    k_src * amt * h * np.exp(-li * h))
                    acc = acc + term
                f_new[i] = acc
                d_in = depot[i] * (1.0 - math.exp(-k_dep[i] * h)) + \
                    nasal[i] * (1.0 - math.exp(-k_nas * h))
                outs.append(free[i] + d_in - f_new[i])
            bound_pred = np.minimum(sum(o * (s.k_bind * g) / l for o, l in zip(outs, lam)),
                                    room)
        want = [o * (s.k_bind * g) / l for o, l in zip(outs, lam)]
        scale = np.where(sum(want) > room, room / np.maximum(sum(want), 1e-300), 1.0)
        for i in range(nf):
            bound = want[i] * scale
            y[hc] += bound
            y[_STORES] += outs[i] * u / lam[i]
            y[_BOUND] += outs[i] * k_pb[i] / lam[i]
            f_new[i] += want[i] - bound  # binding beyond the capacity stays unbound
            depot[i] *= math.exp(-k_dep[i] * h)
            nasal[i] *= math.exp(-k_nas * h)
        free[:] = f_new

    prop_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def props(dt: float) -> tuple[np.ndarray, np.ndarray]:
        # steps are keyed to 1e-9 day (0.1 ms): float drift in t must not defeat the cache
        key = round(dt, 9)
        if key not in prop_cache:
            E, g = engine.propagators(k_loss, key, k_reab)
            prop_cache[key] = (np.ascontiguousarray(E), np.ascontiguousarray(g))
        return prop_cache[key]

    transient_live = False  # True from a parenteral dose until its pools are emptied

    def in_transient() -> bool:
        nonlocal transient_live
        if not transient_live:
            return False
        pools = depot.sum(axis=0) + nasal.sum(axis=0) + free.sum(axis=0)
        ending = (pools <= TRANSIENT_END_UG) & (pools != 0.0)
        if ending.any():
            end_transient(ending)
        transient_live = bool(np.any(pools > TRANSIENT_END_UG))
        return transient_live

    def end_transient(ending: np.ndarray) -> None:
        """For the patients ``ending``: what is left in their injection pools goes where it
        would go (a fast step of _FLUSH_DAYS), then the pools are emptied."""
        rows = [hc, _STORES, _BOUND]
        keep = ~ending
        kept = [y[rows][:, keep].copy()] + [x[:, keep].copy() for x in (depot, nasal, free)]
        fast_step(_FLUSH_DAYS)
        y[np.ix_(rows, np.nonzero(keep)[0])] = kept[0]
        for x, old in zip((depot, nasal, free), kept[1:]):
            x[:, keep] = old
            x[:, ending] = 0.0

    last_parenteral = 0.0

    def slow_advance(dt: float) -> None:
        """The slow state over ``dt`` days: exact for the linear part and the diet, the slow
        flows held at their midpoint flux (predicted by a half step) over substeps."""
        nonlocal y
        steps = substeps(dt)
        E, G = props(dt / steps)
        if not slow:
            y = _apply(E, G, y, r_diet)
            return
        Eh, Gh = props(dt / steps / 2)
        for _ in range(steps):
            half = _apply(Eh, Gh, y, r_diet, fluxes(y))
            y = _apply(E, G, y, r_diet, fluxes(half))

    def transient_steps(t: float, t1: float) -> list[float]:
        """The transient's steps from t to t1 (days): steps grow with the time since the last parenteral dose (the fast pools change
        quickly in the first hours, slowly after), on a ladder of step sizes (doubling from
        TRANSIENT_STEP_DAYS up to TRANSIENT_AGE_FRACTION of the age, at most
        TRANSIENT_MAX_STEP_DAYS) so that propagators are reused."""
        hs, ts = [], [t]
        while ts[-1] < t1 - 1e-12:
            age = ts[-1] - last_parenteral
            h = TRANSIENT_STEP_DAYS
            while h * 2 <= min(TRANSIENT_AGE_FRACTION * age, TRANSIENT_MAX_STEP_DAYS) and \
                    h * 2 <= t1 - ts[-1] + 1e-12:
                h *= 2
            hs.append(min(h, t1 - ts[-1]))
            ts.append(ts[-1] + hs[-1])
        return hs

    kernel_props: dict[tuple, tuple] = {}

    def compiled_transient(hs: list[float]) -> None:
        """The steps ``hs`` of :func:`numpy_transient` in one compiled call."""
        nonlocal y, transient_live
        keys = sorted({round(h, 9) for h in hs})
        if tuple(keys) not in kernel_props:
            n_sub = {k: substeps(k) for k in keys}
            mats = [props(k / n_sub[k]) + props(k / n_sub[k] / 2) for k in keys]
            kernel_props[tuple(keys)] = (n_sub, *(np.ascontiguousarray(np.stack(x))
                                                  for x in zip(*mats)))
        n_sub, E, G, Eh, Gh = kernel_props[tuple(keys)]
        slot = np.array([keys.index(round(h, 9)) for h in hs], np.int64)
        y = np.ascontiguousarray(y)
        live = fast.run_transient(np.array(hs), np.array([n_sub[keys[j]] for j in slot],
                                                         np.int64), slot,
                                  E, G, Eh, Gh, r_diet, y, q_src, q_law, qa, qb, depot,
                                  nasal, free, k_dep_arr, k_nas, k_ren_arr, k_pb_arr, vmax,
                                  s.km, s.k_bind, s.hc_cap, hc, _STORES, _BOUND,
                                  TRANSIENT_END_UG, _FLUSH_DAYS)
        transient_live = live > 0

    def numpy_transient(hs: list[float]) -> None:
        """The transient over steps ``hs``: a Strang splitting with the fast pools outside,
        the halves of consecutive steps taken as one (``F(h0/2) S(h0) F((h0+h1)/2) S(h1)
        ... F(hn/2)``); after each fast step but the last, patients whose pools hold at most
        TRANSIENT_END_UG end their transient (their fast steps then move nothing)."""
        for k, h in enumerate(hs):
            fast_step(h / 2 if k == 0 else (hs[k - 1] + h) / 2)
            in_transient()
            slow_advance(h)
        fast_step(hs[-1] / 2)

    def advance(t0: float, t1: float) -> None:
        t = t0
        while t < t1 - 1e-12:
            if in_transient():
                hs = transient_steps(t, t1)
                (compiled_transient if fast is not None else numpy_transient)(hs)
                t = t1
            else:
                slow_advance(t1 - t)
                t = t1

    # merge output times and dose times
    groups: dict[float, list] = {}
    for ev in regimen_events:
        groups.setdefault(ev.time_days, []).append(ev)
    trough_index = {t: i for i, t in enumerate(trough_times)}
    times = sorted(set(out_times.tolist()) | set(groups))
    out_index = {float(t): k for k, t in enumerate(out_times)}
    c_serum = to_pmol / Vp

    def oral_only(te: float) -> bool:
        return te not in trough_index and all(ev.route in _ORAL for ev in groups.get(te, ()))

    k_out = 0
    t = 0.0
    i = 0
    while i < len(times):
        if _STOP.is_set():  # the run was interrupted: the other chunks need not finish
            raise _Stopped()
        te = times[i]
        if fast is not None and not keep.size and not transient_live \
                and te > t and oral_only(te):
            # a run of equal steps with oral doses and outputs only: one compiled call
            h = te - t
            j = i + 1
            while j < len(times) and abs(times[j] - times[j - 1] - h) < 1e-9 and \
                    oral_only(times[j]):
                j += 1
            if j - i >= 2:
                run = times[i:j]
                width = max(1, max(len(groups.get(tt, ())) for tt in run))
                ev_amount = np.zeros((len(run), width))
                ev_decay = np.ones((len(run), width))
                n_ev = np.zeros(len(run), np.int64)
                rec = np.full(len(run), -1, np.int64)
                w_read = np.zeros((len(run), len(watch)), np.bool_)
                for q, tt in enumerate(run):
                    for e, ev in enumerate(groups.get(tt, ())):
                        ev_amount[q, e] = ev.amount_ug
                        ev_decay[q, e] = math.exp(-s.if_krec * (tt - t_last_oral))
                        t_last_oral = tt
                    n_ev[q] = len(groups.get(tt, ()))
                    rec[q] = out_index.get(tt, -1)
                    k_out += int(rec[q] >= 0)
                    if rec[q] >= 0:  # the checks read at output times (as record does)
                        w_read[q] = reads(True, float(tt), last=True)
                if not daily:
                    rec[:] = -1
                n_sub = substeps(h)
                E, G, Eh, Gh = (x[None] for x in props(h / n_sub) + props(h / n_sub / 2))
                y = np.ascontiguousarray(y)
                fast.run_span(E, G, Eh, Gh, n_sub, r_diet, y, q_src, q_law, qa, qb, deficit,
                              if_cap, passive, s.if_km, ev_amount, ev_decay, n_ev, rec,
                              _PLASMA, _STORES, c_serum, cut, upper, _HIST_LO_BITS,
                              _HIST_SHIFT, _HIST_BINS,
                              agg.serum, agg.stores, agg.bands, replete_at, never, block_of,
                              sums, w_read, w_holotc, _SLOW.index("holotc"), w_min)
                t = run[-1]
                i = j
                continue
        advance(t, te)
        t = te
        if te in trough_index:
            ser = serum_of()
            agg.troughs[trough_index[te]] += np.bincount(_bin_index(ser), minlength=_HIST_BINS)
            agg.trough_below[trough_index[te]] += int(np.count_nonzero(ser < cut))
            agg.trough_not_replete[trough_index[te]] += int(np.count_nonzero(ser < upper))
            read_watch(False, te, ser)
        for ev in groups.get(te, ()):
            amount, route, form = ev.amount_ug, ev.route, ev.form
            if route in PARENTERAL:
                last_parenteral = te
                transient_live = True
            # the route table: the part that enters its pool, the rest where it says
            enters, rest = routes[route].enters, routes[route].rest
            frac = fractions.get(route, 1.0)
            oral_amount = 0.0
            for where, part in ((enters, frac * amount), (rest, (1.0 - frac) * amount)):
                if where == "absorption":
                    oral_amount = part
                elif where is not None:
                    pools[where][forms.index(form)] += part
            if enters != "absorption" and rest != "absorption":
                continue
            deficit *= math.exp(-s.if_krec * (te - t_last_oral))
            t_last_oral = te
            cap = np.maximum(if_cap - deficit, 0.0)
            a_if = laws.if_absorbed(cap, s.if_km, oral_amount)
            y[0] += a_if + passive * oral_amount
            deficit += a_if
        if k_out < len(out_times) and out_times[k_out] == te:
            record(k_out)
            k_out += 1
        i += 1
    agg.repletion += np.bincount(replete_at, minlength=n_rec + 1)
    if len(watch):
        met = w_min >= np.array([w.threshold_pmol_per_l for w in watch])[:, None]
        agg.watch_met += np.append(met.sum(axis=1), np.all(met, axis=0).sum())
        if agg.keep_watch:
            agg.watch_min[int(blocks[0])] = w_min.copy()
    if keep.size:
        _write_trajectories(traj[0], blocks[0], ids[keep], out_times, traj_rows)
    return agg


_PATIENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Patient))
"""Patient settings a draw or covariate may set (the others drawn are model parameters)."""


def _patient_of(spec: PopulationSpec, draw: Mapping[str, np.ndarray],
                cov: Mapping[str, np.ndarray], i: int) -> Patient:
    """Patient ``i`` of a block as a :class:`Patient`: the preset with its draws (parameters
    as overrides, the rest as settings) and the settings its covariates set."""
    base = spec.patient
    settings = {k: float(v[i]) for src in (draw, cov) for k, v in src.items()
                if k in _PATIENT_FIELDS}
    overrides = dict(base.overrides)
    overrides.update({k: float(v[i]) for k, v in draw.items() if k not in _PATIENT_FIELDS})
    return dataclasses.replace(base, overrides=overrides, **settings)


def _initial_state(sys_: System, patient: Patient) -> np.ndarray:
    """The patient's initial state; a drawn baseline serum below what empty stores sustain
    starts from empty stores (as the fast method clips it)."""
    try:
        return sys_.initial_state(patient)
    except InputError:
        return sys_.plasma_given_stores(0.0)


def _run_block_exact(spec: PopulationSpec, events: Sequence[DoseEvent], days: float,
                     blocks: Sequence[int], forms: tuple[str, ...], out_times: np.ndarray,
                     trough_times: Sequence[float], cut: float, upper: float,
                     agg: "_Aggregate", traj: "tuple[str, int] | None" = None) -> _Aggregate:
    """The exact method: every patient through :func:`b12pk.engine.core.run_patient`, the
    engine of :func:`b12pk.simulate`, with the same draws as the fast method."""
    base_params = default_parameters()
    typical = _typical(spec, spec.patient.parameters(base_params))
    kept: list[tuple[int, np.ndarray, np.ndarray]] = []
    for b in blocks:
        draw = _sample_block(spec, b, typical)
        cov = _covariate_block(spec, b)
        sums = agg.sums[b] = np.zeros((2, len(out_times)))
        size = draw["if_capacity_ug"].size
        fitted = _posterior_block(spec, b, base_params, size)
        draw = _centred_on(draw, fitted, base_params)
        for i in range(size):
            if _STOP.is_set():
                raise _Stopped()
            patient = _patient_of(spec, draw, cov, i)
            sys_ = System(patient, patient.parameters(fitted[i]), forms)
            with quiet_warnings():  # counted below and said once per run
                y0 = _initial_state(sys_, patient)
            agg.above_capacity += sys_.capacity_exceeded(y0[sys_.L.stores]) is not None
            states, _, pre = run_patient(sys_, y0, events, days, out_times, before=trough_times)
            serum = sys_.serum_pmol(states.T)
            stores = sys_.output("stores_ug", states.T)
            agg.add_patient(serum, stores, sys_.serum_pmol(pre.T), cut, upper)
            sums[0] += serum
            sums[1] += stores
            pid = b * BLOCK + i
            if traj is not None and pid < traj[1]:
                kept.append((pid, serum, stores))
    if kept:
        ids = np.array([k[0] for k in kept])
        rows = [(k, np.array([r[1][k] for r in kept]), np.array([r[2][k] for r in kept]))
                for k in range(len(out_times))]
        _write_trajectories(traj[0], blocks[0], ids, out_times, rows)
    return agg


def _posterior_block(spec: PopulationSpec, block: int, base: Any, size: int) -> list:
    """Each patient's fitted parameters in ``block``: the defaults, or with
    ``spec.parameter_uncertainty`` a draw from their posterior that depends only on (seed,
    block), as every other draw of the population."""
    if not spec.parameter_uncertainty:
        return [base] * size
    from ..model.parameters import parameter_uncertainty

    seed = int(np.random.SeedSequence([spec.seed, block, 0xB12]).generate_state(1)[0])
    return parameter_uncertainty().draw(base, size, seed)


def _centred_on(draw: Mapping[str, np.ndarray], fitted: Sequence[Any],
                base: Any) -> dict[str, np.ndarray]:
    """Between-patient draws of a parameter that is also drawn from the posterior, moved
    to each patient's posterior value (scaled by its ratio to the default, clipped to the
    declared range): patient i varies around his own fitted value."""
    out = dict(draw)
    if all(f is base for f in fitted):  # no posterior draws
        return out
    ranges = parameter_table().set_index("name")
    for name, values in draw.items():
        if name not in base.values:
            continue
        ratio = np.array([f[name] / base[name] for f in fitted])
        if np.all(ratio == 1.0):
            continue
        out[name] = np.clip(values * ratio, ranges.loc[name, "low"], ranges.loc[name, "high"])
    return out


def _write_trajectories(folder: str, first_block: int, ids: np.ndarray, out_times: np.ndarray,
                        rows: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
    """One Parquet file per chunk (``part-<first block>.parquet``), written atomically:
    patient, time_days, serum_pmol_per_l, stores_ug (long format, patient-major)."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    n_t, n_p = len(rows), ids.size
    serum = np.stack([r[1] for r in rows], axis=1).ravel()  # (patients, times) row-major
    stores = np.stack([r[2] for r in rows], axis=1).ravel()
    times = np.asarray([out_times[r[0]] for r in rows], dtype=float)
    table = pa.table({"patient": np.repeat(ids.astype(np.int64), n_t),
                      "time_days": np.tile(times, n_p),
                      "serum_pmol_per_l": serum, "stores_ug": stores})
    name = f"part-{first_block:08d}.parquet"
    final = os.path.join(folder, name)
    tmp = os.path.join(folder, f".{name}.tmp")  # readers skip dot files: no half part is read
    pq.write_table(table, tmp)
    os.replace(tmp, final)


# --------------------------------------------------------------------------------------

@dataclass
class PopulationResult:
    """Aggregated results of a population run (all in plain pandas DataFrames).

    Attributes
    ----------
    quantiles : DataFrame
        time_days, quantile (%), serum_pmol_per_l, stores_ug.
    bands : DataFrame
        time_days, band (deficient / indeterminate / unlikely), probability.
    repletion : DataFrame
        quantile (%), days to reach the deficiency cut-off (NaN: not reached by that share),
        plus ``never_pct`` in ``attrs``.
    troughs : DataFrame
        One row per injection after the first: time_days (just before it), trough quantiles
        (pmol/L), ``pct_below_cutoff`` (% of patients in the deficient band) and
        ``pct_not_replete`` (% below the "deficiency unlikely" line: deficient or
        indeterminate).
    means : DataFrame
        time_days, mean serum_pmol_per_l and stores_ug (exact sums, not histograms).
    markers : DataFrame
        time_days, quantile (%), mma_nmol_per_l, hcy_umol_per_l: the functional markers'
        quantiles (each time's stores mixed with the markers' between-patient variability;
        ``attrs["method"]`` says how).
    marker_normal : DataFrame
        time_days, ``<marker>_normal_probability``: the share of patients with the marker
        below its normal limit (``data/lab_bands.toml``).
    n, seed : int
    method : str
        The engine method that computed it ("fast" or "exact").
    watch_met : tuple of int or None
        With ``watch``: patients passing each check, then all checks together.
    watch_min : numpy.ndarray or None
        With ``watch_values``: each patient's lowest reading per check (pmol/L), shape
        (checks, n), patients in the order of :func:`sample_patients`.
    """

    quantiles: Any
    bands: Any
    repletion: Any
    troughs: Any
    means: Any
    n: int
    seed: int
    spec: PopulationSpec
    regimen: Regimen
    days: float
    method: str = "fast"
    markers: Any = None
    marker_normal: Any = None
    watch_met: "tuple[int, ...] | None" = None
    watch_min: Any = None

    def last_trough(self) -> dict[str, Any]:
        """Where the last dosing cycle is lowest, and the population there.

        With injections: just before the last one within the horizon (``troughs``' last
        row). Without (daily oral): the last day, sampled before that day's dose is
        absorbed. Returns ``time_days``, ``where`` (words), ``pct_deficient``,
        ``pct_not_replete`` (deficient or indeterminate) and ``median_pmol_per_l``.
        A reading at an arbitrary point of an injection cycle would miss the trough
        (the share below the cut-off can be 0 % at the horizon and 50 % before the next
        dose)."""
        tr = self.troughs
        if tr is not None and len(tr):
            row = tr.iloc[-1]
            return {"time_days": float(row["time_days"]),
                    "where": f"trough before the day-{row['time_days']:g} injection",
                    "pct_deficient": float(row["pct_below_cutoff"]),
                    "pct_not_replete": float(row["pct_not_replete"]),
                    "median_pmol_per_l": float(row["q50_pmol_per_l"])}
        t = float(self.bands["time_days"].max())
        last = self.bands[self.bands["time_days"] == t]
        prob = dict(zip(last["band"], last["probability"]))
        q = self.quantiles[(self.quantiles["time_days"] == t)
                           & (self.quantiles["quantile"] == 50.0)]["serum_pmol_per_l"]
        return {"time_days": t, "where": f"day {t:g} (no injections)",
                "pct_deficient": 100.0 * prob.get("deficient", 0.0),
                "pct_not_replete": 100.0 * (prob.get("deficient", 0.0)
                                            + prob.get("indeterminate", 0.0)),
                "median_pmol_per_l": float(q.iloc[0]) if len(q) else float("nan")}


_QUANTILE_ROWS = 1024
"""Histogram rows turned into quantiles at a time (bounds the temporaries of a long run)."""


def _quantiles_from_counts(counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles (log-interpolated within bins) for each row of a count matrix."""
    edges = np.log(_bin_edges())
    out = np.empty((counts.shape[0], len(qs)))
    for r0 in range(0, counts.shape[0], _QUANTILE_ROWS):
        part = counts[r0:r0 + _QUANTILE_ROWS]
        total = part.sum(axis=1, keepdims=True, dtype=np.int64)
        cum = np.cumsum(part, axis=1, dtype=np.int64)
        rows = np.arange(part.shape[0])
        for j, q in enumerate(qs):
            target = q / 100.0 * total[:, 0]
            k = np.argmax(cum >= target[:, None], axis=1)
            before = np.where(k > 0, cum[rows, k - 1], 0)
            inbin = part[rows, k]
            frac = np.where(inbin > 0, (target - before) / np.maximum(inbin, 1), 0.5)
            out[r0:r0 + part.shape[0], j] = np.exp(edges[k] + frac * (edges[k + 1] - edges[k]))
    return out


def _check_quantiles(quantiles: Any) -> list[float]:
    """Percentiles as a list of floats: a list, tuple or 1-d array of 1 to
    :data:`MAX_QUANTILES` distinct finite numbers strictly between 0 and 100."""
    accepted = (f"accepted: a list of 1 to {MAX_QUANTILES} distinct percentages strictly "
                "between 0 and 100, e.g. [5, 50, 95]")
    if isinstance(quantiles, np.ndarray):
        if quantiles.ndim != 1:
            raise InputError(f"quantiles must be a 1-d sequence, got an array of shape "
                             f"{quantiles.shape}; {accepted}")
        quantiles = quantiles.tolist()
    if isinstance(quantiles, (str, bytes, Mapping)) or not isinstance(quantiles,
                                                                     (list, tuple, range)):
        raise InputError(f"quantiles={echo(quantiles)} is not accepted ({type(quantiles).__name__}"
                         f"); {accepted}")
    if not 1 <= len(quantiles) <= MAX_QUANTILES:
        raise InputError(f"quantiles: {len(quantiles)} given; {accepted}")
    qs = [as_finite_float(q) for q in quantiles]
    bad = [q for q, x in zip(quantiles, qs) if x is None or not 0.0 < x < 100.0]
    if bad:
        raise InputError(f"quantiles: {echo(bad[0])} is not a percentage strictly between 0 "
                         f"and 100; {accepted}")
    if max(qs) <= 1.0:
        raise InputError(f"quantiles {echo(list(quantiles))} are all <= 1, which reads like "
                         f"fractions, but quantiles are percentages: give e.g. "
                         f"{[round(q * 100, 6) for q in qs]} (to report only percentiles at "
                         "or below 1 %, add one above 1 %)")
    names = [f"{q:g}" for q in qs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"quantiles: {dup} is given twice (or two values print the same); "
                         f"{accepted}")
    return qs


#: Bytes a population chunk holds per patient (states, draws, per-step propagators and their
#: caches, temporaries): oral-only regimens, and with parenteral doses a base plus a part per
#: parenteral form. Measured with tracemalloc at chunks of 32,768-65,536 patients, numpy and
#: numba backends, with and without covariates: 0.8-1.1 kB oral, 2.7-3.4 kB with one
#: parenteral form, 3.1-4.2 kB with two (tests/test_population.py::test_memory_estimate_*).
_BYTES_PER_PATIENT_ORAL = 1_200
_BYTES_PER_PATIENT_PARENTERAL = 2_900
_BYTES_PER_PATIENT_FORM = 1_100
#: Bytes the first use of the compiled kernels loads (numba, llvmlite, the cached kernels;
#: measured as RSS).
_KERNELS_BYTES = 110_000_000
#: Bytes per kept patient-day of trajectories while a chunk's Parquet part is built.
_BYTES_PER_TRAJECTORY_VALUE = 64
#: Bytes of the result tables per output time and percentile (Python rows, DataFrames).
_BYTES_PER_RESULT_ROW = 400


def _bytes_per_patient(n_parenteral_forms: int) -> int:
    if not n_parenteral_forms:
        return _BYTES_PER_PATIENT_ORAL
    return _BYTES_PER_PATIENT_PARENTERAL + _BYTES_PER_PATIENT_FORM * n_parenteral_forms


def _aggregate_bytes(n_times: int, n_troughs: int) -> int:
    """Bytes of one :class:`_Aggregate` (int32 histograms dominate: 12 kB per time)."""
    return (2 * n_times + n_troughs) * _HIST_BINS * 4 + n_times * 40 + n_troughs * 16


def population_memory_bytes(n_times: int, n_troughs: int, chunk: int, workers: int,
                            n_quantiles: int = len(QUANTILES), traj_per_chunk: int = 0,
                            n_parenteral_forms: int = 1) -> int:
    """Bytes :func:`simulate_population` allocates at most, estimated before any work.

    The merged aggregate and, while chunks run (``workers`` at a time), each chunk's own
    aggregate (int32 histograms of 3,072 bins for serum and stores: 24 kB per output day),
    per-block sums, per-patient state and kept trajectories; afterwards the result tables.
    """
    per_chunk = (_aggregate_bytes(n_times, n_troughs) + -(-chunk // BLOCK) * 2 * n_times * 8
                 + chunk * _bytes_per_patient(n_parenteral_forms)
                 + traj_per_chunk * n_times * _BYTES_PER_TRAJECTORY_VALUE)
    result = (n_times * (n_quantiles + 3) + n_troughs * n_quantiles) * _BYTES_PER_RESULT_ROW \
        + _QUANTILE_ROWS * _HIST_BINS * 9
    return _aggregate_bytes(n_times, n_troughs) + max(workers * per_chunk, result) + 5_000_000


def simulate_population(regimen: Any, spec: PopulationSpec, days: float = 365.0, *,
                        chunk_size: int = 16384, quantiles: Sequence[float] = QUANTILES,
                        progress: bool | Callable[[int, int], None] = False,
                        client: Any = None, workers: int | None = None,
                        backend: str = "auto", trajectories: Any = None,
                        trajectory_patients: int | None = None,
                        method: str = "fast", watch: Sequence["Watch"] = (),
                        daily: bool = True, watch_values: bool = False) -> PopulationResult:
    """Simulate a virtual population under one regimen (daily output).

    Parameters
    ----------
    regimen : Regimen, str or list of DoseEvent
        The regimen, read as by :func:`b12pk.simulate` (a list of dose events becomes
        :meth:`Regimen.from_events`; an empty list is refused). A regimen with no dose
        before ``days`` is refused with the same HorizonError as :func:`b12pk.simulate`.
    spec : PopulationSpec
        Population (patient, n, seed, variability).
    days : float
        Horizon, days, as for :func:`b12pk.simulate` (1e-5 to 36500); output is daily.
    chunk_size : int
        Patients simulated at once (rounded down to a multiple of :data:`BLOCK`, at most
        :data:`MAX_CHUNK`); with injections, changes the means by up to about 1e-7 relative
        (see the module notes).
    quantiles : sequence of float
        Percentiles to report: a list, tuple or 1-d array of 1 to :data:`MAX_QUANTILES`
        distinct numbers strictly between 0 and 100 (percentages, not fractions: a list
        whose values are all <= 1 is refused as a likely mix-up).
    progress : bool or callable
        ``True``: a progress bar on a terminal (silent otherwise); a callable is called as
        ``progress(done_patients, n)``.
    client : dask.distributed.Client, optional
        Run chunks as Dask tasks on this cluster (``pip install b12pk[dask]``); results are
        identical to the local run.
    workers : int, optional
        Threads simulating chunks at once on this machine (default: the CPUs available,
        fewer if the memory budget needs it); does not change the results.
    backend : {"auto", "numpy", "numba"}
        ``"numba"`` uses compiled kernels (``pip install b12pk[fast]``), ``"numpy"`` plain
        numpy; ``"auto"`` (default) the kernels when numba is installed. The two agree to
        rounding (histogram counts can differ where a value sits on a bin edge).
    trajectories : path, optional
        Folder (created if missing, must be empty) for per-patient daily trajectories as
        Parquet files, one per chunk, each written atomically (``pip install
        b12pk[parquet]``); read them with ``pandas.read_parquet(folder)``. Columns: patient,
        time_days, serum_pmol_per_l, stores_ug. Chunks holding these patients take the
        numpy path (the compiled kernels record aggregates only), so with numba the results
        agree to rounding; a chunk is cut to at most 2**24 patient-days of trajectories.
    trajectory_patients : int, optional
        Write the first this many patients (default: all); at most
        :data:`MAX_TRAJECTORY_VALUES` patient-days in all.
    method : {"fast", "exact"}
        ``"fast"`` (default): the vectorised block engine (module notes: oral regimens
        exact, injections within about 1e-3 of :func:`b12pk.simulate`). ``"exact"``: every
        patient through the engine of :func:`b12pk.simulate` (with the same draws), so a
        population of one without variability is ``simulate`` to the last bit; about
        20 ms per patient-year with monthly injections: for checks and small populations.
    watch : sequence of Watch
        Per-patient checks (``method="fast"`` only): the result's ``watch_met`` counts the
        patients who pass each check, and (last) all of them together.
    daily : bool
        ``False`` (``method="fast"`` only, no trajectories): nothing is recorded per day, so
        ``quantiles``, ``bands``, ``means``, ``repletion``, ``markers`` and
        ``marker_normal`` are empty tables; ``troughs`` and ``watch_met`` are as usual. For
        searches over many regimens (the regimen designer), where only the checks count.
    watch_values : bool
        With ``watch``: also return each patient's lowest reading per check
        (``watch_min``; 8 bytes per patient and check, so at most
        :data:`MAX_WATCH_VALUES` patients), for statements about the same patient under
        several regimens (the evidence's shares of patients).

    Returns
    -------
    PopulationResult

    Raises
    ------
    ResourceError
        When the run would need more memory than :func:`b12pk.limits.memory_budget_bytes`
        (estimated before any work by :func:`population_memory_bytes`: each chunk in
        flight holds histograms of 24 kB per output day), or a chunk is too large.
    """
    days = check_days(days)
    if not isinstance(spec, PopulationSpec):
        raise InputError(f"spec must be a PopulationSpec, got {type(spec).__name__}")
    what = "simulate_population"
    regimen_in = regimen_like(regimen, what)
    # the same events and the same refusal (no dose before the horizon) as simulate
    events = events_from(regimen_in, days, what, empty_ok=False)
    regimen = as_regimen(regimen_in, what)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < BLOCK:
        raise InputError(f"chunk_size={echo(chunk_size)} is not accepted; accepted: a whole "
                         f"number from {BLOCK} to {MAX_CHUNK}")
    if chunk_size > MAX_CHUNK:
        raise ResourceError(f"chunk_size={echo(chunk_size)} is above the limit of {MAX_CHUNK:,} "
                            f"patients per chunk (about {format_bytes(MAX_CHUNK * _bytes_per_patient(1))} "
                            "of state); use a smaller chunk_size")
    if method not in ("fast", "exact"):
        raise InputError(f"method={echo(method)} is not known; accepted: 'fast', 'exact'")
    if method == "fast":
        if getattr(spec, "parameter_uncertainty", False):
            raise InputError("parameter_uncertainty needs method='exact' (--method exact): the "
                             "fast method shares the fitted parameters across patients")
        _check_fast_method()
    if backend not in ("auto", "numpy", "numba"):
        raise InputError(f"backend={echo(backend)} is not known; accepted: 'auto', 'numpy', "
                         "'numba'")
    if workers is not None and (isinstance(workers, bool) or
                                not isinstance(workers, (int, np.integer)) or workers < 1):
        raise InputError(f"workers={echo(workers)} is not accepted; accepted: a whole number "
                         ">= 1")
    check_population_work([(events, spec.n)], days, "this population")
    watch = _check_watch(watch)
    if watch and method != "fast":
        raise InputError("watch (per-patient checks) needs method='fast'")
    if not isinstance(daily, (bool, np.bool_)):
        raise InputError(f"daily={echo(daily)} is not accepted; accepted: True or False")
    if not isinstance(watch_values, (bool, np.bool_)):
        raise InputError(f"watch_values={echo(watch_values)} is not accepted; accepted: True "
                         "or False")
    watch_values = bool(watch_values)
    if watch_values and not watch:
        raise InputError("watch_values=True needs watch (the per-patient checks to report)")
    if watch_values and spec.n > MAX_WATCH_VALUES:
        raise ResourceError(f"watch_values keeps every patient's readings in memory; n="
                            f"{spec.n:,} is above its {MAX_WATCH_VALUES:,} limit: count with "
                            "watch_met instead")
    if not daily and (method != "fast" or trajectories is not None):
        raise InputError("daily=False (no daily output) needs method='fast' and no "
                         "trajectories")
    traj = _trajectory_target(trajectories, trajectory_patients, spec.n, days, create=False)
    qs = _check_quantiles(quantiles)
    forms = parenteral_forms(events)
    params = spec.patient.parameters(default_parameters())
    sys_ = System(spec.patient, params, forms)
    t_int = int(math.floor(days + 1e-9))
    out_times = np.arange(t_int + 1, dtype=float)
    inj_times = sorted({ev.time_days for ev in events if ev.route in _INJECTED})
    trough_times = [t for t in inj_times[1:] if t <= days]
    bands = serum_bands_pmol_per_l()
    cut = next(hi for name, lo, hi in bands if name == "deficient")
    upper = next(hi for name, lo, hi in bands if name == "indeterminate")
    low, high = (parameter_table().set_index("name").loc["other_loss_fraction_per_day",
                                                          ["low", "high"]])
    extra = sys_.k_loss - params["other_loss_fraction_per_day"]
    grid = np.exp(np.linspace(math.log(extra + low * 0.98), math.log(extra + high * 1.02), 65))
    chunk = max(BLOCK, min(int(chunk_size), MAX_CHUNK) // BLOCK * BLOCK)
    if traj is not None:
        # a chunk's trajectories are held until its Parquet part is written: at most
        # 2**24 patient-days (about 270 MB) per chunk, and never less than one block
        chunk = max(BLOCK, min(chunk, (2 ** 24 // len(out_times)) // BLOCK * BLOCK))
    n_blocks = math.ceil(spec.n / BLOCK)
    per_chunk = chunk // BLOCK
    chunks = [list(range(b, min(b + per_chunk, n_blocks))) for b in range(0, n_blocks, per_chunk)]
    # memory, before any work: with workers=None, as many threads as the budget allows
    in_chunk = min(chunk, spec.n)
    kept = min(in_chunk, traj[1]) if traj is not None else 0
    n_par_forms = len({ev.form for ev in events if ev.route in PARENTERAL})

    def need(w: int) -> int:
        return population_memory_bytes(len(out_times) if daily else 0, len(trough_times),
                                       in_chunk, w,
                                       len(qs), kept, n_par_forms) \
            + (_KERNELS_BYTES if first_kernels else 0)

    n_workers = 1 if client is not None else _n_workers(workers, len(chunks))
    import sys

    # loading the compiled kernels (numba, llvmlite) costs about 110 MB once per process
    first_kernels = backend != "numpy" and "b12pk.engine.kernels" not in sys.modules \
        and _fast_kernels_available()
    if workers is None and client is None:
        budget = limits.memory_budget_bytes()
        while n_workers > 1 and need(n_workers) > budget:
            n_workers -= 1
    change = ["a shorter horizon (days)"]
    if in_chunk > BLOCK:
        change.append(f"a smaller chunk_size (now {in_chunk:,})")
    if n_workers > 1:
        change.append(f"fewer workers (now {n_workers})")
    if kept:
        change.append("fewer trajectory_patients")
    check_memory(need(n_workers),
                  f"a population of {spec.n:,} over {days:g} days (daily output, "
                  f"{len(out_times):,} times; chunks of {in_chunk:,} patients, {n_workers} "
                  f"at a time)", "use " + ", ".join(change))
    if traj is not None:
        traj = _trajectory_target(trajectories, trajectory_patients, spec.n, days)
    engine = _BlockEngine(sys_, grid, params["bile_secretion_fraction_per_day"]
                          * params["bile_reabsorbed_fraction"])
    for dt in {1.0, TRANSIENT_STEP_DAYS / 2} if method == "fast" else ():
        # shared tables: computed once, not per chunk (for Dask, per task)
        engine.table(dt)
        if spec.covariates:
            engine.table_2d(dt)
    args = (spec, events, days, forms, sys_, out_times, trough_times, cut, upper, engine,
            method)

    report = _progress_fn(progress, spec.n)
    total = _Aggregate(len(out_times) if daily else 0, len(trough_times),
                       n_watch=len(watch), keep_watch=watch_values)
    if client is not None:
        futures = [client.submit(_run_chunk, c, *args, backend, traj, watch, daily,
                                 watch_values, pure=False)
                   for c in chunks]
        for fut in futures:  # integer counts and per-block sums: merge order does not matter
            total.merge(fut.result())
            report(total.n)
        futures = fut = None  # chunk results are not held while the result is built
    else:
        _fast_kernels(backend)  # fails early when numba is asked for and missing
        if n_workers == 1:
            for c in chunks:
                total.merge(_run_chunk(c, *args, backend, traj, watch, daily,
                                       watch_values))
                report(total.n)
        else:
            # threads: numpy and the compiled kernels release the GIL; at most n_workers
            # chunks are in flight, so memory stays bounded by the chunk size
            from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

            with ThreadPoolExecutor(n_workers, thread_name_prefix="b12pk") as pool, \
                    _stop_on_interrupt():
                pending, done = set(), set()
                todo = iter(chunks)
                for c in todo:
                    pending.add(pool.submit(_run_chunk, c, *args, backend, traj, watch,
                                            daily, watch_values))
                    if len(pending) >= n_workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            total.merge(fut.result())
                            report(total.n)
                for fut in pending:
                    total.merge(fut.result())
                    report(total.n)
            # finished futures hold their chunk's aggregate (as large as the total): drop
            # them before the result is built (the memory estimate counts on it)
            pending = done = fut = None
    report(None)
    if total.above_capacity:
        b12pk_warn(
            f"{total.above_capacity:,} of {total.n:,} patients start with stores above the "
            "model's storage capacity (a drawn baseline serum or stores beyond what full "
            "stores sustain): their excess is exported within weeks and their serum falls "
            "(without intake the model sustains about what stores at the capacity give)",
            stacklevel=2)
    return dataclasses.replace(
        _result(total, qs, out_times if daily else out_times[:0], trough_times, cut, upper,
                spec, regimen, days),
        method=method, watch_met=tuple(int(x) for x in total.watch_met) if watch else None,
        watch_min=(np.concatenate([total.watch_min[b] for b in sorted(total.watch_min)],
                                  axis=1) if watch_values else None))


def _trajectory_target(folder: Any, n_keep: Any, n: int, days: float, create: bool = True
                       ) -> "tuple[str, int] | None":
    """Check the trajectory options; create the folder (unless ``create`` is false). None
    when none are asked for."""
    if folder is None:
        if n_keep is not None:
            raise InputError("trajectory_patients needs trajectories=FOLDER")
        return None
    import os

    if n_keep is None:
        n_keep = n
    if isinstance(n_keep, bool) or not isinstance(n_keep, (int, np.integer)) or n_keep < 1:
        raise InputError(f"trajectory_patients={n_keep!r} is not accepted; accepted: a whole "
                         "number >= 1")
    n_keep = min(int(n_keep), n)
    values = n_keep * (math.floor(days + 1e-9) + 1)
    if values > MAX_TRAJECTORY_VALUES:
        raise ResourceError(f"trajectories of {n_keep:,} patients over {days:g} days are "
                            f"{values:,} patient-days, above the limit of "
                            f"{MAX_TRAJECTORY_VALUES:,} (about 30 bytes each on disk): "
                            "ask for fewer patients with trajectory_patients")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("trajectories are written as Parquet, which needs pyarrow: "
                         "pip install 'b12pk[parquet]'") from None
    folder = os.fspath(folder)
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise FileFormatError(f"trajectory folder {folder!r} exists and is not an empty "
                              "folder; give a new or empty one")
    if create:
        os.makedirs(folder, exist_ok=True)
    return folder, n_keep


def _fast_kernels_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def _fast_kernels(backend: str) -> Any:
    """The compiled kernels module for ``backend`` ("auto", "numpy" or "numba"), or None."""
    if backend == "numpy":
        return None
    try:
        from ..engine import kernels
    except ImportError:
        if backend == "numba":
            raise InputError("backend='numba' needs numba: pip install 'b12pk[fast]'; "
                             "accepted without it: 'auto' or 'numpy'") from None
        return None
    return kernels


def _n_workers(workers: int | None, n_chunks: int) -> int:
    if workers is None:
        import os

        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    return max(1, min(int(workers), n_chunks))


_STOP = threading.Event()
"""Set when a threaded run is interrupted (Ctrl-C, SIGTERM): running chunks stop early."""


class _Stopped(Exception):
    """A chunk stopped because the run was interrupted."""


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[None]:
    """On an exception in the main thread, tell the running chunks to stop (so that the
    pool's exit does not wait for them to finish)."""
    _STOP.clear()
    try:
        yield
    except BaseException:
        _STOP.set()
        raise


def _run_chunk(blocks: Sequence[int], spec: PopulationSpec, events: Any, days: float,
               forms: tuple[str, ...], sys_: System, out_times: np.ndarray,
               trough_times: Sequence[float], cut: float, upper: float,
               engine: "_BlockEngine", method: str = "fast", backend: str = "numpy",
               traj: "tuple[str, int] | None" = None, watch: Sequence[Watch] = (),
               daily: bool = True, keep_watch: bool = False) -> _Aggregate:
    """Simulate the patients of some blocks together (vectorised over all of them).

    Per-patient draws depend only on (seed, block), and the sums are kept per block, so
    the result does not depend on how blocks are grouped into chunks.
    """
    if method == "exact":
        agg = _Aggregate(len(out_times), len(trough_times))
        return _run_block_exact(spec, events, days, blocks, forms, out_times, trough_times,
                                cut, upper, agg, traj)
    return _run_block(spec, events, days, blocks, forms, sys_, engine, out_times,
                      trough_times, cut, upper, _fast_kernels(backend), traj=traj,
                      watch=watch, daily=daily, keep_watch=keep_watch)


def _progress_fn(progress: Any, n: int) -> Callable[[int | None], None]:
    """A progress reporter: the user's callable, a tqdm bar on a terminal, or nothing."""
    if callable(progress):
        return lambda done: progress(done, n) if done is not None else None
    import sys

    if not (progress and sys.stderr.isatty()):
        return lambda done: None  # silent when not on a terminal (logs, CI, notebooks)
    from tqdm import tqdm

    bar = tqdm(total=n, unit="patient", unit_scale=True, desc="population", file=sys.stderr,
               leave=False)

    def show(done: int | None) -> None:
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)
    return show


def _result(agg: _Aggregate, qs: Sequence[float], out_times: np.ndarray,
            trough_times: Sequence[float], cut: float, upper: float, spec: PopulationSpec,
            regimen: Regimen, days: float) -> PopulationResult:
    import pandas as pd

    serum_q = _quantiles_from_counts(agg.serum, qs)
    stores_q = _quantiles_from_counts(agg.stores, qs)
    rows = []
    for k, t in enumerate(out_times):
        for j, q in enumerate(qs):
            rows.append((t, q, serum_q[k, j], stores_q[k, j]))
    quant = pd.DataFrame(rows, columns=["time_days", "quantile", "serum_pmol_per_l",
                                        "stores_ug"])
    mean = agg.means()
    means = pd.DataFrame({"time_days": out_times, "serum_pmol_per_l": mean[0],
                          "stores_ug": mean[1]})
    names = ("deficient", "indeterminate", "unlikely")
    band_rows = [(t, names[b], agg.bands[k, b] / agg.n) for k, t in enumerate(out_times)
                 for b in range(3)]
    bands = pd.DataFrame(band_rows, columns=["time_days", "band", "probability"])
    cum = np.cumsum(agg.repletion[:-1]) / agg.n
    rep = []
    for q in qs:
        k = np.nonzero(cum >= q / 100.0)[0]
        rep.append((q, float(out_times[k[0]]) if k.size else math.nan))
    repletion = pd.DataFrame(rep, columns=["quantile", "days_to_leave_deficient"])
    repletion.attrs["never_pct"] = 100.0 * agg.repletion[-1] / agg.n
    trough_rows = []
    if len(trough_times):
        tq = _quantiles_from_counts(agg.troughs, qs)
        for i, t in enumerate(trough_times):
            trough_rows.append((t, *tq[i], 100.0 * agg.trough_below[i] / agg.n,
                                100.0 * agg.trough_not_replete[i] / agg.n))
    troughs = pd.DataFrame(trough_rows, columns=["time_days", *[f"q{q:g}_pmol_per_l"
                                                                for q in qs],
                                                 "pct_below_cutoff", "pct_not_replete"])
    markers, normal = _marker_quantiles(agg, qs, out_times, spec)
    return PopulationResult(quantiles=quant, bands=bands, repletion=repletion,
                            troughs=troughs, means=means, n=agg.n, seed=spec.seed, spec=spec,
                            regimen=regimen, days=days, markers=markers,
                            marker_normal=normal)


#: Patients drawn per output time to mix the stores with the markers' reference levels.
MARKER_MIX_SIZE = 8192
_MARKER_VALUES = 1 << 16
"""Draws (times x patients) the marker quantiles handle at once (512 kB per array)."""

MARKER_NOTE = ("functional markers: each output time's stores distribution (the population's "
               "histogram) mixed with between-patient variability of the markers' reference "
               "levels (data/variability.toml [markers]; eGFR from the covariates), "
               "independently of the stores; at most MARKER_MIX_SIZE patients drawn per time "
               "(seeded); the markers' own parameters are the fitted ones (not drawn with "
               "parameter_uncertainty)")


def _marker_quantiles(agg: "_Aggregate", qs: Sequence[float], out_times: np.ndarray,
                      spec: PopulationSpec) -> tuple[Any, Any]:
    """Quantiles of each functional marker over time, and the share with it normal."""
    import pandas as pd

    from ..engine.core import System, marker_terms
    from ..model import laws
    from ..model.parameters import marker_limits

    patient = spec.patient
    sys_ = System(patient, patient.parameters(default_parameters()), ("cyanocobalamin",))
    with quiet_warnings():
        terms = marker_terms(sys_, patient, sys_.initial_state(patient))
    m = min(agg.n, MARKER_MIX_SIZE)
    rng = np.random.default_rng([spec.seed, 18])
    egfr = np.concatenate([_covariate_block(spec, b).get("egfr_ml_min", np.full(
        min(BLOCK, spec.n - b * BLOCK), patient.egfr_ml_min))
        for b in range(-(-m // BLOCK))])[:m]
    edges = _bin_edges()
    centre = np.sqrt(np.maximum(edges[:-1], 1e-300) * edges[1:])
    centre[0] = 0.0  # the first bin also holds every value below its range (empty stores)
    limits = marker_limits()
    factors = {}
    for mk in declaration().markers:  # each patient's reference: eGFR and variability
        ref = terms[mk.column][0]
        rel = mk.reference({**sys_.rates, "egfr_ml_min": egfr}) / mk.reference(sys_.rates)
        sigma = math.sqrt(math.log1p(spec.variability.get(mk.column, 0.0) ** 2))
        factors[mk.column] = ref * rel * np.exp(sigma * rng.standard_normal(m))  # median ref
    u = rng.random(m)
    rows, normal_rows = [], []
    per_bin = {col: laws.marker_level(1.0, fold, half, hill, centre)
               for col, (_ref, fold, half, hill) in terms.items()}
    order = np.argsort(u)
    rows_at_once = max(1, _MARKER_VALUES // m)  # output times done together (bounded memory)
    for k0 in range(0, len(out_times), rows_at_once):
        k1 = min(k0 + rows_at_once, len(out_times))
        # each time's m draws from its stores histogram: one searchsorted over the times'
        # cumulative counts laid end to end (each row's total is the population size)
        cum = np.cumsum(agg.stores[k0:k1], axis=1, dtype=np.int64)
        total = cum[:, -1:]
        offset = np.arange(k1 - k0, dtype=np.int64)[:, None] * (int(total.max()) + 1)
        idx = np.empty((k1 - k0, m), np.int64)  # the queries in increasing order (faster)
        idx[:, order] = np.searchsorted((cum + offset).ravel(),
                                        (u[order] * total + offset).ravel(),
                                        side="right").reshape(k1 - k0, m)
        idx -= np.arange(k1 - k0)[:, None] * _HIST_BINS
        idx = idx.clip(0, _HIST_BINS - 1)
        # a level is its reference times a function of the stores: that function once per
        # bin, then each draw's reference times its bin's value
        levels = {col: factors[col] * per_bin[col][idx] for col in terms}
        values = {col: np.percentile(v, qs, axis=1) for col, v in levels.items()}
        normal = {c: np.mean(levels[c] < limits[c][0], axis=1) for c in terms}
        for r, t in enumerate(out_times[k0:k1]):
            rows.extend((t, q, *(values[c][j, r] for c in terms)) for j, q in enumerate(qs))
            normal_rows.append((t, *(float(normal[c][r]) for c in terms)))
    markers = pd.DataFrame(rows, columns=["time_days", "quantile", *terms])
    normal = pd.DataFrame(normal_rows, columns=["time_days", *[f"{c}_normal_probability"
                                                               for c in terms]])
    markers.attrs["method"] = normal.attrs["method"] = MARKER_NOTE
    return markers, normal


def sample_patients(spec: PopulationSpec) -> Any:
    """The population's per-patient draws as a DataFrame (one row per patient).

    Columns: the varying quantities (``if_capacity_ug``, ``passive_fraction``,
    ``other_loss_fraction_per_day``, ``uptake_vmax_ug_per_day``, ``nasal_bioavailability``,
    ``diet_ug_per_day`` and, when the patient has one, ``baseline_serum_pmol_per_l`` or
    ``baseline_stores_ug``) and,
    with covariates, the covariates drawn (``age_years``, ``egfr_ml_min``,
    ``ileal_resection_cm``, ``atrophic_gastritis``) and the settings they set
    (``food_release``, ``intrinsic_factor``, ``if_route_factor``), exactly as
    :func:`simulate_population` uses them. Meant for small populations and checks.
    """
    import pandas as pd

    if spec.n > 1_000_000:
        raise ResourceError(f"sample_patients holds every patient in memory; n={spec.n:,} is "
                            "above its 1,000,000 limit: use simulate_population")
    typical = _typical(spec, spec.patient.parameters(default_parameters()))
    blocks = range(math.ceil(spec.n / BLOCK))
    parts = [_sample_block(spec, b, typical) for b in blocks]
    out = pd.DataFrame({k: np.concatenate([d[k] for d in parts]) for k in parts[0]})
    if spec.covariates:
        cov = [_covariate_block(spec, b) for b in blocks]
        for k in cov[0]:
            out[k] = np.concatenate([d[k] for d in cov])
    return out


def engine_settings() -> dict:
    """The population engine's numerical settings (recorded in a population's ``run.json``)."""
    return {"block": BLOCK, "transient_step_days": TRANSIENT_STEP_DAYS,
            "histogram_bins": _HIST_BINS, "histogram_range": [_HIST_LO, _HIST_HI]}


def check_population_work(jobs: Sequence[tuple[Sequence[DoseEvent], int]], days: float,
                          what: str) -> None:
    """Refuse (ResourceError, before any work) runs of ``(dose events, patients)`` over
    ``days`` that together exceed :data:`b12pk.limits.MAX_POPULATION_TRANSIENTS`
    patient-transients or :data:`b12pk.limits.MAX_POPULATION_PATIENT_DAYS` patient-days."""
    transients = sum(int(n) * sum(ev.route in PARENTERAL and ev.time_days < days
                                  for ev in events) for events, n in jobs)
    patient_days = sum(int(n) for _, n in jobs) * float(days)
    if transients > MAX_POPULATION_TRANSIENTS:
        raise ResourceError(
            f"{what} asks for {transients:,} patient-injections (injected or intranasal doses "
            f"times patients), above the limit of {MAX_POPULATION_TRANSIENTS:,} (about 7 "
            "minutes on 2 cores); use fewer patients, a shorter horizon or fewer injections")
    if patient_days > MAX_POPULATION_PATIENT_DAYS:
        raise ResourceError(
            f"{what} asks for {patient_days:,.0f} patient-days, above the limit of "
            f"{MAX_POPULATION_PATIENT_DAYS:,} (a few minutes on 2 cores); use fewer patients "
            "or a shorter horizon")
