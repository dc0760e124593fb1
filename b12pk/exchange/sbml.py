"""Model exchange: the b12pk model of one patient (and a regimen) as an SBML document.

:func:`to_sbml` writes the model that :func:`b12pk.simulate` integrates, for one patient,
parameter set and regimen, as an SBML Level 3 Version 2 Core document. Everything in it is
generated from the model declaration (``data/model.toml``, read by
:mod:`b12pk.model.declaration`) and the rate laws (:data:`b12pk.model.laws.SBML`); the numbers come from
the engine's own ``System`` for the patient:

* one species per compartment of the declaration (one per parenteral form for a per-form
  compartment), amounts in ug, initial amounts = the engine's initial state;
* every parameter of ``data/model.toml`` with its value, unit, status and source (note and
  annotation); the patient quantities, form properties and derived rates (``[rates]``) with
  the values b12pk computes, each with its formula in a note;
* one reaction per declared flow (per form where its source is per form), its kinetic law
  filled in from the law's SBML template; the diet as zero-order inputs of the absorption
  step's two compartments;
* the doses as **repeating events**: the dose instants of the regimen are grouped into
  arithmetic series with the same doses at every instant; each series is one event that
  fires at ``time >= first + given * interval``, gives the doses of one instant exactly as
  ``b12pk.engine.core._apply_doses`` does (the declared route table, the oral absorption step
  with the intrinsic-factor capacity deficit decaying since its last use) and counts
  ``given`` up, until the series' last dose. Instants that fit no series are events of
  their own;
* the declared outputs (``[outputs]``) as assignment rules, named like the columns of
  :func:`b12pk.simulate`.

python-libsbml is imported lazily (the ``b12pk[sbml]`` extra); libRoadRunner only by
:func:`simulate_roadrunner` and :func:`load_roadrunner`, used to cross-check b12pk against an
independent SBML simulator.

See ``docs/sbml.md``.
"""

from __future__ import annotations

import ast
import bisect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..model import laws
from ..errors import B12pkError, InputError, ResourceError
from ..io import atomic_write_text, output_file_target
from ..limits import MAX_SBML_EVENTS
from ..model.parameters import Parameters, Patient, parameter_table

__all__ = [
    "SBMLUnavailableError",
    "to_sbml",
    "write_sbml",
    "check_sbml",
    "patient_values",
    "dose_series",
    "DoseSeries",
    "simulate_roadrunner",
    "load_roadrunner",
    "ANNOTATION_NS",
]

ANNOTATION_NS = "https://b12pk.invalid/sbml/1"
"""XML namespace of the b12pk annotations (parameter unit, status and source)."""

_XHTML = "http://www.w3.org/1999/xhtml"
_LEVEL, _VERSION = 3, 2  # L3V2: max/min, used by the capacity-binding law and the IF step

SERIES_LOOKAHEAD = 32
"""Intervals tried from each ungrouped dose instant when dose instants are grouped into
series (the next instants with the same doses; 32 covers any weekly pattern)."""


class SBMLUnavailableError(B12pkError, ImportError):
    """python-libsbml or libroadrunner is not installed (the ``b12pk[sbml]`` extra)."""


def _libsbml() -> Any:
    try:
        import libsbml
    except ImportError as exc:
        raise SBMLUnavailableError(
            "SBML export needs python-libsbml, which is not installed: install b12pk[sbml] "
            "(pip install 'b12pk[sbml]')") from exc
    return libsbml


def _roadrunner() -> Any:
    try:
        import roadrunner
    except ImportError as exc:
        raise SBMLUnavailableError(
            "simulating SBML needs libroadrunner, which is not installed: install b12pk[sbml] "
            "(pip install 'b12pk[sbml]')") from exc
    return roadrunner


# --------------------------------------------------------------------------------------
# Units. Dimensions are exponents of (mass, time, volume, substance); the model's canonical
# units are ug, day, L (and pmol for substance), so a derived value of given dimensions is in
# the canonical unit of those dimensions.

_M, _T, _V, _N = (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)
_ONE = (0, 0, 0, 0)


def _dim(*parts: tuple[tuple[int, ...], int]) -> tuple[int, ...]:
    out = [0, 0, 0, 0]
    for base, exp in parts:
        for i, b in enumerate(base):
            out[i] += b * exp
    return tuple(out)


# id -> (list of (kind, exponent, scale, multiplier), dimensions)
_UNITS: dict[str, tuple[list[tuple[str, float, int, float]], tuple[int, ...]]] = {
    "ug": ([("gram", 1, -6, 1.0)], _M),
    "day": ([("second", 1, 0, 86400.0)], _T),
    "hour": ([("second", 1, 0, 3600.0)], _T),
    "per_day": ([("second", -1, 0, 86400.0)], _dim((_T, -1))),
    "ug_per_day": ([("gram", 1, -6, 1.0), ("second", -1, 0, 86400.0)], _dim((_M, 1), (_T, -1))),
    "L": ([("litre", 1, 0, 1.0)], _V),
    "mL_per_min": ([("litre", 1, -3, 1.0), ("second", -1, 0, 60.0)], _dim((_V, 1), (_T, -1))),
    "L_per_day": ([("litre", 1, 0, 1.0), ("second", -1, 0, 86400.0)], _dim((_V, 1), (_T, -1))),
    "pmol_per_L": ([("mole", 1, -12, 1.0), ("litre", -1, 0, 1.0)], _dim((_N, 1), (_V, -1))),
    "nmol_per_L": ([("mole", 1, -9, 1.0), ("litre", -1, 0, 1.0)], _dim((_N, 1), (_V, -1))),
    "umol_per_L": ([("mole", 1, -6, 1.0), ("litre", -1, 0, 1.0)], _dim((_N, 1), (_V, -1))),
    "pg_per_mL": ([("gram", 1, -12, 1.0), ("litre", -1, -3, 1.0)], _dim((_M, 1), (_V, -1))),
    "ug_per_L": ([("gram", 1, -6, 1.0), ("litre", -1, 0, 1.0)], _dim((_M, 1), (_V, -1))),
    "g_per_mol": ([("gram", 1, 0, 1.0), ("mole", -1, 0, 1.0)], _dim((_M, 1), (_N, -1))),
}
_BASE_UNITS = (("gram", -6, 1.0, "ug"), ("second", 0, 86400.0, "day"), ("litre", 0, 1.0, "L"),
               ("mole", -12, 1.0, "pmol"))
#: the canonical unit id of each dimension (ug, day, L, pmol and their products)
_CANONICAL = {_dims: _uid for _uid, (_parts, _dims) in _UNITS.items() if _uid in (
    "ug", "day", "per_day", "ug_per_day", "L", "L_per_day", "pmol_per_L", "ug_per_L",
    "g_per_mol")}
_CANONICAL[_ONE] = "dimensionless"

_TOML_UNIT = {"ug": "ug", "1": "dimensionless", "1/day": "per_day", "h": "hour", "L": "L",
              "mL/min": "mL_per_min", "ug/day": "ug_per_day", "day": "day",
              "pmol/L": "pmol_per_L", "g/mol": "g_per_mol", "nmol/L": "nmol_per_L",
              "umol/L": "umol_per_L"}

#: Units of the patient quantities an expression may use (b12pk.model.declaration.PATIENT_QUANTITIES).
_PATIENT_UNITS = {"egfr_ml_min": "mL_per_min", "if_route_factor": "dimensionless",
                  "diet_ug_per_day": "ug_per_day", "food_release": "dimensionless"}
_PATIENT_NOTES = {"egfr_ml_min": "patient setting: eGFR",
                  "if_route_factor": "patient: intrinsic factor x ileal function x metformin "
                                     "factor (1 = normal IF-route absorption)",
                  "diet_ug_per_day": "patient setting: dietary intake",
                  "food_release": "patient: fraction of food-bound B12 released for absorption"}

#: Units of the declared outputs, by the suffix of their names (the columns of simulate).
_OUTPUT_SUFFIX_UNITS = (("_pmol_per_l", "pmol_per_L"), ("_pg_per_ml", "pg_per_mL"),
                        ("_ug", "ug"))


def _dims_of_unit(uid: str) -> tuple[int, ...]:
    return _ONE if uid == "dimensionless" else _UNITS[uid][1]


class _Units:
    """Unit ids of the document: the fixed table and any generated for new dimensions."""

    def __init__(self) -> None:
        self.extra: dict[str, tuple[int, ...]] = {}

    def for_dims(self, dims: tuple[int, ...] | None) -> str:
        if dims is None:
            return "dimensionless"
        if dims in _CANONICAL:
            return _CANONICAL[dims]
        uid = "_".join(f"{b[3]}{e}".replace("-", "m") for b, e in zip(_BASE_UNITS, dims) if e)
        self.extra[uid] = dims
        return uid

    def definitions(self) -> dict[str, list[tuple[str, float, int, float]]]:
        out = {uid: parts for uid, (parts, _) in _UNITS.items()}
        for uid, dims in self.extra.items():
            out[uid] = [(kind, e, scale, mult) for (kind, scale, mult, _), e
                        in zip(_BASE_UNITS, dims) if e]
        return out


# --------------------------------------------------------------------------------------
# Expressions: dimensions and SBML L3 infix with units on the literal numbers (so libSBML's
# unit checks pass: a literal added to an amount is an amount, one in a product is
# dimensionless)

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}


class _Expr:
    """Dimensions and L3 infix of a Python-syntax expression over SBML ids."""

    def __init__(self, dims_of: Callable[[str], tuple[int, ...]], units: _Units,
                 constants: frozenset = frozenset()):
        self.dims_of = dims_of
        self.units = units
        self.constants = constants  # named numbers (the declaration's ln2)

    def dims(self, node: ast.AST) -> tuple[int, ...] | None:
        """Dimensions of ``node``; None for a bare number (it takes its context's)."""
        if isinstance(node, ast.Expression):
            return self.dims(node.body)
        if isinstance(node, ast.Constant):
            return None
        if isinstance(node, ast.Name):
            return None if node.id in self.constants else self.dims_of(node.id)
        if isinstance(node, ast.UnaryOp):
            return self.dims(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = self.dims(node.left), self.dims(node.right)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                return self._same(a, b, node)
            a, b = a or _ONE, b or _ONE
            if isinstance(node.op, ast.Mult):
                return tuple(x + y for x, y in zip(a, b))
            if isinstance(node.op, ast.Div):
                return tuple(x - y for x, y in zip(a, b))
            if isinstance(node.right, ast.Constant) and float(node.right.value).is_integer():
                return tuple(int(x * node.right.value) for x in a)
            if a == _ONE:
                return _ONE
        if isinstance(node, ast.Call):
            args = [self.dims(x) for x in node.args]
            if node.func.id in ("min", "max"):
                out = None
                for d in args:
                    out = self._same(out, d, node)
                return out
            if all(d in (None, _ONE) for d in args):  # exp, ln
                return _ONE
        raise RuntimeError(f"SBML export: cannot find the units of {ast.unparse(node)!r}")

    @staticmethod
    def _same(a: tuple | None, b: tuple | None, node: ast.AST) -> tuple | None:
        if a is not None and b is not None and a != b:
            raise RuntimeError(f"SBML export: {ast.unparse(node)!r} adds quantities of "
                               "different units")
        return a if a is not None else b

    def infix(self, node: ast.AST, want: tuple[int, ...] | None = None) -> str:
        """L3 infix; ``want``: the dimensions a bare number here takes."""
        if isinstance(node, ast.Expression):
            return self.infix(node.body, want)
        if isinstance(node, ast.Constant):
            return f"{float(node.value)!r} {self.units.for_dims(want)}"
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.UnaryOp):
            inner = self.infix(node.operand, want)
            return f"(-{inner})" if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.Add, ast.Sub)):
                d = self.dims(node) or want
                left, right = self.infix(node.left, d), self.infix(node.right, d)
            else:
                left, right = self.infix(node.left), self.infix(node.right)
            return f"({left} {_OPS[type(node.op)]} {right})"
        if isinstance(node, ast.Call):
            d = (self.dims(node) or want) if node.func.id in ("min", "max") else None
            return f"{node.func.id}({', '.join(self.infix(a, d) for a in node.args)})"
        raise RuntimeError(f"SBML export: cannot write {ast.unparse(node)!r}")  # pragma: no cover

    def render(self, text: str) -> tuple[str, tuple[int, ...]]:
        """(L3 infix, dimensions) of ``text``."""
        tree = ast.parse(text, mode="eval")
        return self.infix(tree), self.dims(tree) or _ONE


# --------------------------------------------------------------------------------------
# Dose series: the regimen's dose instants grouped into arithmetic series

@dataclass(frozen=True)
class DoseSeries:
    """Dose instants ``first + k * interval`` (k < count) that give the same doses.

    ``doses`` lists the ``(amount_ug, route, form)`` given at each instant, in the order
    b12pk gives them (which matters for the intrinsic-factor capacity). One SBML event each.
    """

    first: float
    interval: float
    count: int
    doses: tuple[tuple[float, str, str], ...]

    def times(self) -> np.ndarray:
        return self.first + np.arange(self.count) * self.interval

    @property
    def last(self) -> float:
        return self.first + (self.count - 1) * self.interval


def _group_series(instants: Sequence[tuple[float, tuple]]) -> list[DoseSeries]:
    """Group dose instants ``(time, doses)`` into series (see :class:`DoseSeries`).

    Instants with the same doses are taken in time order; from each instant not yet in a
    series, the next :data:`SERIES_LOOKAHEAD` such instants each propose an interval, and the
    longest run of instants at ``first + k * interval`` (each equal to the engine's instant
    to :data:`b12pk.engine.core.SAME_INSTANT_DAYS`, relative) becomes a series. Its interval is
    the first gap or the mean gap, whichever reproduces more instants exactly (all of them
    for whole-day schedules).
    """
    from ..engine.core import SAME_INSTANT_DAYS

    by_doses: dict[tuple, list[float]] = {}
    for t, doses in instants:
        by_doses.setdefault(doses, []).append(t)
    out: list[DoseSeries] = []
    for doses, times in by_doses.items():
        ts = np.array(sorted(times))
        tlist = ts.tolist()
        taken = np.zeros(ts.size, dtype=bool)

        def nearest(target: np.ndarray) -> np.ndarray:
            """Index of the instant nearest each target time."""
            j = np.clip(np.searchsorted(ts, target), 1, max(ts.size - 1, 1))
            return np.where(np.abs(ts[j - 1] - target) <= np.abs(ts[j] - target), j - 1, j)

        def run_length(i: int, step: float) -> int:
            """Instants ts[i] + k * step, k = 0, 1, ..., found before the first missing one
            (ts[i] + step is an instant not yet in a series)."""
            target = ts[i] + 2.0 * step  # the common case of irregular times, quickly
            j = bisect.bisect_left(tlist, target)
            if not any(0 <= c < len(tlist) and not taken[c] and abs(tlist[c] - target)
                       <= SAME_INSTANT_DAYS * max(1.0, abs(target)) for c in (j - 1, j)):
                return 2
            n, chunk = 2, 4
            while True:
                target = ts[i] + np.arange(n, n + chunk) * step
                near = nearest(target)
                tol = SAME_INSTANT_DAYS * np.maximum(1.0, np.abs(target))
                hit = (np.abs(ts[near] - target) <= tol) & ~taken[near]
                if not hit.all():
                    return n + int(np.argmin(hit))
                n, chunk = n + chunk, chunk * 2

        for i in range(ts.size):
            if taken[i]:
                continue
            best_n, best_step, tried = 1, 0.0, 0
            for j in range(i + 1, ts.size):
                if tried >= SERIES_LOOKAHEAD:
                    break
                if taken[j]:
                    continue
                tried += 1
                step = float(ts[j] - ts[i])
                n = run_length(i, step)
                if n > best_n:
                    best_n, best_step = n, step
            idx = nearest(ts[i] + np.arange(best_n) * best_step) if best_n > 1 \
                else np.array([i])
            taken[idx] = True
            step = 0.0
            if best_n > 1:  # the interval that gives the most instants exactly
                k = np.arange(best_n)
                step = max((best_step, float(ts[idx[-1]] - ts[i]) / (best_n - 1)),
                           key=lambda x: int(np.sum(ts[i] + k * x == ts[idx])))
            out.append(DoseSeries(float(ts[i]), step, best_n, doses))
    out.sort(key=lambda s: s.first)
    return out


def _instants(events: Sequence[tuple[float, float, str, str]]) -> list[tuple[float, tuple]]:
    """The engine's dose instants: ``(time, ((amount, route, form), ...))`` in its order."""
    groups: dict[float, list] = {}
    for ev in events:
        groups.setdefault(ev.time_days, []).append((ev.amount_ug, ev.route, ev.form))
    return [(t, tuple(doses)) for t, doses in groups.items()]


def dose_series(regimen: Any, days: float = 365.0) -> list[DoseSeries]:
    """The dose series :func:`to_sbml` exports for ``regimen`` (one SBML event each).

    ``regimen`` is read as by :func:`b12pk.simulate` (doses at ``0 <= t < days``); None or an
    empty list gives none.
    """
    from ..engine import core as engine

    days = engine.check_days(days)
    events = _bolus_events(engine.events_from(regimen, days, "export")
                           if regimen is not None else [])
    return _group_series(_instants(events))


# --------------------------------------------------------------------------------------
# The numbers: one engine System per patient

def _bolus_events(events: list) -> list:
    """The events, if none is an infusion (the export writes doses as instantaneous events)."""
    if any(ev.duration_days > 0.0 for ev in events):
        raise InputError("the SBML export writes doses as instantaneous events and does not "
                         "export infusions (dose events with duration_days > 0); accepted: "
                         "bolus doses")
    return events


def _build(patient: Patient | str | None, regimen: Any, days: float,
           parameters: Parameters | None) -> tuple[Patient, Parameters, Any, list, float]:
    from ..engine import core as engine

    days = engine.check_days(days)
    patient, params = engine.resolve_patient(patient, parameters)
    events = _bolus_events(engine.events_from(regimen, days, "export")
                           if regimen is not None else [])
    sys_ = engine.System(patient, params, engine.parenteral_forms(events))
    return patient, params, sys_, events, days


def _check_event_count(series: Sequence[DoseSeries], days: float) -> None:
    """Refuse more than :data:`b12pk.limits.MAX_SBML_EVENTS` SBML events (dose series),
    before the document is built: libSBML and libRoadRunner need memory and time that grow
    with the square of the count. A regular schedule is one event whatever its length; only
    irregular dose times add up."""
    if len(series) > MAX_SBML_EVENTS:
        fits = sorted(s.first for s in series)[MAX_SBML_EVENTS]
        raise ResourceError(
            f"the SBML export would hold {len(series):,} dose events (one per series of "
            f"regularly spaced dose instants before day {days:g}), above the limit of "
            f"{MAX_SBML_EVENTS:,}; use a shorter horizon (days <= {fits:g} fits) or a regimen "
            "with more regular doses")


def _sid(compartment: str, form: str | None) -> str:
    """SBML id of a compartment's species (of a form, for a per-form compartment)."""
    return compartment if form is None else f"{compartment}_{form}"


def _species(sys_: Any) -> list[tuple[str, int, Any, str | None]]:
    """(species id, engine state index, declared compartment, form) of every species."""
    out = []
    for c in sys_.decl.compartments:
        for form in (sys_.L.forms if c.per_form else (None,)):
            out.append((_sid(c.name, form), sys_.L.index(c.name, form), c, form))
    return sorted(out, key=lambda x: x[1])


def _form_property_values(sys_: Any, p: Parameters) -> dict[str, tuple[float, str, str]]:
    """Per-form properties by SBML id: (value, unit id, note)."""
    decl = sys_.decl
    table = parameter_table().set_index("name")
    out = {}
    for prop in decl.form_properties:
        named = [decl.forms[f][prop] for f in decl.forms if isinstance(decl.forms[f].get(prop),
                                                                          str)]
        unit = _TOML_UNIT[table.loc[named[0], "unit"]] if named else "dimensionless"
        for form in sys_.L.forms:
            raw = decl.forms[form][prop]
            value = p[raw] if isinstance(raw, str) else float(raw)
            out[f"{prop}_{form}"] = (float(value), unit,
                                     f"form property {prop} of {form}: "
                                     + (f"= {raw}" if isinstance(raw, str) else "a number")
                                     + " (data/model.toml [forms])")
    return out


def _derived(sys_: Any, params: Parameters, units: _Units | None = None
             ) -> dict[str, tuple[float, str, str]]:
    """Every patient quantity, form property and derived rate (``[rates]``) by SBML id:
    (value, unit id, formula note). Values straight from the engine's ``System``."""
    decl = sys_.decl
    units = units or _Units()
    table = parameter_table().set_index("name")
    dims: dict[str, tuple[int, ...]] = {
        name: _dims_of_unit(_TOML_UNIT[row["unit"]]) for name, row in table.iterrows()}
    out: dict[str, tuple[float, str, str]] = {}
    for q, uid in _PATIENT_UNITS.items():
        out[q] = (float(sys_.rates[q]), uid, _PATIENT_NOTES[q])
        dims[q] = _dims_of_unit(uid)
    props = _form_property_values(sys_, params)
    out.update(props)
    for prop in decl.form_properties:
        dims[prop] = _dims_of_unit(props[f"{prop}_{sys_.L.forms[0]}"][1])
    for name, e in decl.rates:
        tree = ast.parse(e.text, mode="eval")
        constants = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)) - e.names
        d = _Expr(lambda n: dims[n], units, constants).dims(tree) or _ONE
        dims[name] = d
        uid = units.for_dims(d)
        note = f"{name} = {e.text} (data/model.toml [rates]; SBML infix: {e.infix()})"
        if name in decl.per_form_rates:
            for i, form in enumerate(sys_.L.forms):
                out[f"{name}_{form}"] = (float(sys_.form_rates[i][name]), uid,
                                         f"{note}, for {form}")
        else:
            out[name] = (float(sys_.rates[name]), uid, note)
    a = decl.absorption
    out["diet_absorbed_ug_per_day"] = (
        float(sys_.diet_absorbed), "ug_per_day",
        f"dietary B12 absorbed: min({a.meals} x (IF route + {a.passive} x m), "
        f"diet_ug_per_day) with m = food_release x diet_ug_per_day / {a.meals} per meal, the "
        f"IF route = {laws.SBML['if_absorbed']} with capacity {a.capacity}, km {a.km} "
        "(data/model.toml [absorption])")
    return out


def patient_values(patient: Patient | str | None = None, regimen: Any = None,
                   days: float = 365.0, parameters: Parameters | None = None) -> dict[str, float]:
    """Values of every patient-dependent quantity of the exported model, by SBML id.

    The parameters of ``data/model.toml``, the patient quantities, form properties and
    derived rates, and the initial amounts (species ids) that :func:`to_sbml` would write for
    this patient. With them one loaded SBML model (of the same regimen, so the same forms and
    events) can be re-parameterised for another patient, e.g.
    ``rr.setValue(f"init({id})", value)`` then ``rr.resetAll()`` in libRoadRunner.
    """
    patient, params, sys_, _, _ = _build(patient, regimen, days, parameters)
    vals = {name: float(v) for name, v in params.as_dict().items()}
    vals.update({k: float(v[0]) for k, v in _derived(sys_, params).items()})
    y0 = sys_.initial_state(patient)
    vals.update({sid: float(y0[idx]) for sid, idx, _, _ in _species(sys_)})
    vals.update(_marker_values(sys_, patient, y0))
    return vals


def _marker_values(sys_: Any, patient: Patient, y0: np.ndarray) -> dict[str, float]:
    """SBML id -> value of each marker's terms for this patient (``<column>_<term>``)."""
    from ..engine.core import marker_terms

    terms = marker_terms(sys_, patient, y0)
    return {f"{m.column}_{key}": float(v) for m in sys_.decl.markers
            for (key, _expr), v in zip(m.terms(), terms[m.column])}


# --------------------------------------------------------------------------------------
# Document construction

def _ok(rc: int, what: str) -> None:
    libsbml = _libsbml()
    if rc != libsbml.LIBSBML_OPERATION_SUCCESS:  # pragma: no cover - construction bug
        raise RuntimeError(f"libSBML could not set {what}: "
                           f"{libsbml.OperationReturnValue_toString(rc)}")


def _math(formula: str) -> Any:
    libsbml = _libsbml()
    tree = libsbml.parseL3Formula(formula)
    if tree is None:  # pragma: no cover - construction bug
        raise RuntimeError(f"libSBML cannot parse {formula!r}: {libsbml.getLastParseL3Error()}")
    return tree


def _notes(obj: Any, lines: Sequence[str]) -> None:
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    _ok(obj.setNotes(f'<body xmlns="{_XHTML}">{body}</body>'), "notes")


def _annotate(obj: Any, **attrs: str) -> None:
    a = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    _ok(obj.setAnnotation(f'<annotation><b12pk:info xmlns:b12pk="{ANNOTATION_NS}" {a}/>'
                          "</annotation>"), "annotation")


def _fmt(x: float) -> str:
    return repr(float(x))


class _Doc:
    """A libSBML model under construction, with the ids and units it holds."""

    def __init__(self, model: Any, units: _Units):
        self.model = model
        self.units = units
        self.unit_of: dict[str, str] = {}

    def parameter(self, pid: str, value: float, unit: str, constant: bool,
                  notes: Sequence[str] = ()) -> Any:
        p = self.model.createParameter()
        _ok(p.setId(pid), f"id {pid}")
        p.setValue(float(value))
        p.setUnits(unit)
        p.setConstant(constant)
        if notes:
            _notes(p, notes)
        self.unit_of[pid] = unit
        return p

    def dims(self, sid: str) -> tuple[int, ...]:
        return _dims_of_unit(self.unit_of[sid])

    def expr(self) -> _Expr:
        return _Expr(self.dims, self.units)

    def reaction(self, rid: str, src: str | None, dst: str | None, law: str,
                 note: Sequence[str], modifiers: Sequence[str] = ()) -> None:
        r = self.model.createReaction()
        _ok(r.setId(rid), f"id {rid}")
        r.setReversible(False)
        for sid, make in ((src, r.createReactant), (dst, r.createProduct)):
            if sid is not None:
                sr = make()
                sr.setSpecies(sid)
                sr.setStoichiometry(1.0)
                sr.setConstant(True)
        for m in dict.fromkeys(modifiers):
            if m not in (src, dst):
                r.createModifier().setSpecies(m)
        kl = r.createKineticLaw()
        _ok(kl.setMath(_math(law)), f"kinetic law of {rid}")
        _notes(r, note)


def to_sbml(patient: Patient | str | None = None, regimen: Any = None, days: float = 365.0,
            parameters: Parameters | None = None) -> str:
    """The b12pk model of one patient (and a regimen) as SBML Level 3 Version 2 text.

    Parameters
    ----------
    patient : Patient or str, optional
        A :class:`b12pk.Patient` or a preset name; default ``"healthy"``.
    regimen : Regimen, str or list of DoseEvent, optional
        Read as by :func:`b12pk.simulate`. Doses at ``0 <= t < days`` become SBML events,
        one per series of regularly spaced dose instants with the same doses
        (:func:`dose_series`), at most :data:`b12pk.limits.MAX_SBML_EVENTS`. ``None`` or an
        empty list: no treatment (diet only).
    days : float
        Horizon in days, as for :func:`b12pk.simulate`; only selects the doses exported.
    parameters : Parameters, optional
        Model parameters (default ``data/model.toml``); the patient's overrides apply on top.

    Returns
    -------
    str
        The SBML document (UTF-8 XML text). Amounts in ug, time in days; the outputs of
        :func:`b12pk.simulate` (``serum_pmol_per_l``, ``stores_ug``, ...) as assignment-rule
        parameters of the same names.

    Raises
    ------
    SBMLUnavailableError
        python-libsbml is not installed (install ``b12pk[sbml]``).
    InputError
        Bad patient, regimen, horizon or parameters (as :func:`b12pk.simulate`).
    ResourceError
        More than :data:`b12pk.limits.MAX_SBML_EVENTS` dose series before ``days`` (checked
        before the document is built).
    """
    patient, params, sys_, events, days = _build(patient, regimen, days, parameters)
    series = _group_series(_instants(events))
    _check_event_count(series, days)
    libsbml = _libsbml()
    decl, L = sys_.decl, sys_.L
    units = _Units()

    doc = libsbml.SBMLDocument(_LEVEL, _VERSION)
    model = doc.createModel()
    d = _Doc(model, units)
    model.setId("b12pk_" + "".join(ch if ch.isalnum() else "_" for ch in patient.name))
    model.setName(f"b12pk physiological vitamin B12 model, patient {patient.name}")
    _notes(model, [
        "Generated by b12pk from its model declaration (data/model.toml) and rate laws "
        "(b12pk.model.laws); educational model, not for prescribing.",
        f"Patient: {patient.name} ({patient.describe()}).",
        f"Regimen: {len(events)} doses in {days:g} days at {len(_instants(events))} dose "
        f"instants, exported as {len(series)} repeating dose events.",
        "Amounts in ug, time in days. The outputs of b12pk.simulate are assignment-rule "
        "parameters named like its columns (data/model.toml [outputs]).",
        "Patient quantities, form properties and derived rates hold the values b12pk "
        "computed for this patient; changing a data/model.toml parameter in this file does "
        "not update them (re-export instead, or set every value from "
        "b12pk.exchange.sbml.patient_values).",
    ])
    model.setTimeUnits("day")
    model.setSubstanceUnits("ug")
    model.setExtentUnits("ug")
    model.setVolumeUnits("L")

    # ----- compartments: where a pool is (species are amounts; nominal sizes)
    for cid, desc in (("body", "B12 in the body (declared compartments with body = true)"),
                      ("outside", "cumulative amounts outside the body (body = false)")):
        c = model.createCompartment()
        c.setId(cid)
        c.setSpatialDimensions(3)
        c.setSize(1.0)
        c.setUnits("L")
        c.setConstant(True)
        _notes(c, [desc + "; nominal size 1 L: every species is an amount"])

    # ----- species: one per declared compartment (per parenteral form where per_form)
    y0 = sys_.initial_state(patient)
    species = _species(sys_)
    for sid, idx, comp, form in species:
        s = model.createSpecies()
        _ok(s.setId(sid), f"id {sid}")
        s.setCompartment("body" if comp.body else "outside")
        s.setInitialAmount(float(y0[idx]))
        s.setSubstanceUnits("ug")
        s.setHasOnlySubstanceUnits(True)
        s.setBoundaryCondition(False)
        s.setConstant(False)
        d.unit_of[sid] = "ug"
        _notes(s, [f"{comp.description}" + (f"; {form}" if form else "")
                   + f"; amount in ug; data/model.toml compartment '{comp.name}'"])

    # ----- parameters of data/model.toml (value, unit, status, source)
    table = parameter_table().set_index("name")
    for name, value in params.as_dict().items():
        row = table.loc[name]
        default = float(row["value"])
        note = [f"{row['description']}",
                f"unit: {row['unit']}; status: {row['status']}; "
                f"range: [{row['low']:g}, {row['high']:g}]",
                f"source: {row['source']}"]
        if value != default:
            note.append(f"value changed from the default {default:g} for this patient/run")
        p = d.parameter(name, value, _TOML_UNIT[row["unit"]], True, note)
        _annotate(p, unit=row["unit"], status=row["status"], source=row["source"],
                  low=_fmt(row["low"]), high=_fmt(row["high"]))

    # ----- patient quantities, form properties, derived rates: values with their formulas
    derived = _derived(sys_, params, units)
    for pid, (value, unit, formula) in derived.items():
        p = d.parameter(pid, value, unit, True,
                        [f"derived by b12pk for this patient: {formula}",
                         f"unit: {unit}; status: derived"])
        _annotate(p, unit=unit, status="derived", source=f"b12pk.engine.core.System: {formula}")

    # ----- bookkeeping of the doses and the IF capacity
    d.parameter("dosed_ug", 0.0, "ug", False, ["cumulative amount dosed (all routes)"])
    d.parameter("if_deficit_last", 0.0, "ug", False,
                ["IF capacity in use just after the last oral (or swallowed) dose"])
    d.parameter("t_last_oral", 0.0, "day", False,
                ["time of the last oral (or swallowed) dose"])
    d.parameter("if_deficit", 0.0, "ug", False,
                [f"IF capacity in use now: if_deficit_last x exp(-{decl.absorption.recovery} "
                 "x (time - t_last_oral))"])
    d.parameter("diet_ug", 0.0, "ug", False, ["cumulative dietary intake"])
    _rule(model, "if_deficit", f"if_deficit_last * exp(-{decl.absorption.recovery} "
                               "* (time - t_last_oral))")
    _rule(model, "diet_ug", "diet_ug_per_day * time")

    # ----- outputs: the declared outputs as assignment rules
    per_form_sum = {c.name: "(" + " + ".join(_sid(c.name, f) for f in L.forms) + ")"
                    for c in decl.compartments if c.per_form}
    expr = d.expr()
    for col, e in decl.outputs:
        if e.text.strip() == col and col in d.unit_of:
            continue  # a bookkeeping quantity itself (dosed_ug, diet_ug)
        tree = ast.parse(e.text, mode="eval")
        tree = _SumForms(per_form_sum).visit(tree)
        formula, dims = expr.infix(tree), expr.dims(tree) or _ONE
        unit = next((u for suffix, u in _OUTPUT_SUFFIX_UNITS if col.endswith(suffix)),
                    None) or units.for_dims(dims)
        if _dims_of_unit(unit) != dims:  # pragma: no cover - declaration changed
            raise RuntimeError(f"SBML export: output {col} = {e.text} is not in {unit}")
        d.parameter(col, 0.0, unit, False, [f"output {col} = {e.text} (data/model.toml "
                                            "[outputs])"])
        _rule(model, col, formula)

    # ----- functional markers: assignment rules on their driver, with this patient's terms
    _markers(d, model, sys_, patient, y0)

    # ----- reactions: one per declared flow (per form where its source is per form)
    _flows(d, sys_, params, derived)
    a = decl.absorption
    d.reaction("diet_absorbed", None, _sid(a.into, None), "diet_absorbed_ug_per_day",
               ["zero-order dietary input absorbed (IF route and passive, per meal)"])
    d.reaction("diet_unabsorbed", None, _sid(a.rest, None),
               "diet_ug_per_day - diet_absorbed_ug_per_day",
               ["zero-order dietary intake not absorbed"])
    b_check = np.zeros(L.n)
    b_check[L.index(a.into)] += derived["diet_absorbed_ug_per_day"][0]
    b_check[L.index(a.rest)] += derived["diet_ug_per_day"][0] \
        - derived["diet_absorbed_ug_per_day"][0]
    if not np.allclose(b_check, sys_.b, rtol=1e-15, atol=0.0):  # pragma: no cover
        raise RuntimeError("SBML export: the exported diet input differs from the engine's b")

    # ----- doses: one repeating event per dose series
    for k, s in enumerate(series, start=1):
        _dose_event(d, sys_, k, s)

    # ----- units: the fixed table and any the derived rates needed
    for uid, parts in units.definitions().items():
        ud = model.createUnitDefinition()
        ud.setId(uid)
        for kind, exp, scale, mult in parts:
            u = ud.createUnit()
            u.setKind(libsbml.UnitKind_forName(kind))
            u.setExponent(exp)
            u.setScale(scale)
            u.setMultiplier(mult)
    return libsbml.writeSBMLToString(doc)


def _markers(d: "_Doc", model: Any, sys_: Any, patient: Patient, y0: np.ndarray) -> None:
    """Each declared marker as an assignment rule (``laws.SBML["marker_level"]``) on its
    driver, its terms as parameters with this patient's values (a measured baseline marker
    individualises them, as in the engine)."""
    values = _marker_values(sys_, patient, y0)
    for m in sys_.decl.markers:
        unit = _TOML_UNIT[m.unit]
        driver_unit = d.unit_of[m.driver]
        units = {"reference": unit, "max_fold": "dimensionless", "half": driver_unit,
                 "hill": "dimensionless"}
        ids = {}
        for key, expr in m.terms():
            ids[key] = f"{m.column}_{key}"
            d.parameter(ids[key], values[ids[key]], units[key], True,
                        [f"{m.words}: {key} for this patient; declared as {expr.text} "
                         "(data/model.toml [markers]; a measured baseline sets the "
                         "patient's own)"])
        d.parameter(m.column, 0.0, unit, False,
                    [f"output {m.column}: {m.words} (data/model.toml [markers])"])
        formula, _dims = d.expr().render(laws.SBML["marker_level"].format(
            driver=m.driver, **ids))
        _rule(model, m.column, formula)


class _SumForms(ast.NodeTransformer):
    """A per-form compartment's name stands for its species summed over the forms."""

    def __init__(self, sums: Mapping[str, str]):
        self.sums = sums

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.sums:
            return ast.parse(self.sums[node.id], mode="eval").body
        return node


def _rule(model: Any, pid: str, formula: str) -> None:
    r = model.createAssignmentRule()
    r.setVariable(pid)
    _ok(r.setMath(_math(formula)), f"rule {pid}")


def _flows(d: _Doc, sys_: Any, params: Parameters, derived: Mapping[str, tuple]) -> None:
    """One reaction per declared flow, its kinetic law from :data:`b12pk.model.laws.SBML`; checks
    that the exported first-order flows are the engine's matrix ``A``."""
    decl, L = sys_.decl, sys_.L
    expr = d.expr()
    A_check = np.zeros_like(sys_.A)

    def pid(name: str, form: str | None) -> str:
        return f"{name}_{form}" if name in decl.per_form_rates else name

    def value(name: str, form: str | None) -> float:
        key = pid(name, form)
        return derived[key][0] if key in derived else float(params[key])

    for f in decl.flows:
        src_c, dst_c = decl.compartment(f.src), decl.compartment(f.dst)
        forms = L.forms if src_c.per_form else (None,)
        total = "(" + " + ".join(_sid(f.src, g) for g in forms) + ")"
        for form in forms:
            src = _sid(f.src, form)
            dst = _sid(f.dst, form if dst_c.per_form else None)
            fill = {k: pid(v, form) for k, v in f.params.items()}
            fill.update(amount=src, total=total)
            modifiers = [_sid(f.src, g) for g in forms] if f.law == "saturable" else []
            if f.bound is not None:
                fill["bound"] = _sid(f.bound, None)
                modifiers.append(fill["bound"])
            law, dims = expr.render(laws.SBML[f.law].format(**fill))
            if dims != _dims_of_unit("ug_per_day"):  # pragma: no cover - declaration changed
                raise RuntimeError(f"SBML export: the {f.law} flow {src} -> {dst} is not in "
                                   "ug/day")
            vals = {k: value(v, form) for k, v in f.params.items()}
            if f.law == "first_order":
                i, j = L.index(f.src, form), L.index(f.dst, form if dst_c.per_form else None)
                A_check[i, i] -= vals["k"]
                A_check[j, i] += vals["k"]
            note = [f"{f.law} flow {f.src} -> {f.dst}" + (f" ({form})" if form else "")
                    + f": {laws.SBML[f.law]} with "
                    + ", ".join(f"{k} = {v}" for k, v in f.params.items())
                    + (f", bound = {f.bound}" if f.bound else "")
                    + " (data/model.toml [[flows]], b12pk.model.laws)"]
            if f.description:
                note.append(f.description)
            d.reaction(f"flow_{src}_to_{dst}", src, dst, law, note, modifiers)
    off = ~np.eye(L.n, dtype=bool)
    if not (np.array_equal(A_check[off], sys_.A[off])
            and np.allclose(np.diag(A_check), np.diag(sys_.A), rtol=1e-14, atol=0.0)):
        raise RuntimeError(  # pragma: no cover - guards against silent drift
            "SBML export: the exported first-order flows differ from the engine's matrix A")


def _if_share_template() -> str:
    """The IF law (``laws.SBML["if_absorbed"]``) with its capacity left as ``{capacity}``;
    checked to be proportional to the capacity, which the dose events use (see
    :func:`_dose_event`)."""
    for cap, km, amount in ((1.5, 1.7, 2.0), (0.3, 0.5, 1000.0)):
        if not math.isclose(laws.if_absorbed(cap, km, amount),
                            cap * laws.if_absorbed(1.0, km, amount), rel_tol=1e-14):
            raise RuntimeError(  # pragma: no cover - the law changed
                "SBML export: the IF law is no longer proportional to its capacity; update "
                "b12pk/sbml.py _dose_event")
    return laws.SBML["if_absorbed"]


def _dose_event(d: _Doc, sys_: Any, k: int, s: DoseSeries) -> None:
    """One repeating event: the doses of one instant of series ``s``, given as
    ``engine._apply_doses`` gives them, at ``first + given * interval`` for ``given`` < count.
    """
    decl = sys_.decl
    a = decl.absorption
    expr = d.expr()
    eid = f"dose_{k}"
    first, interval, count, given = (f"{eid}_{x}" for x in ("first", "interval", "count",
                                                            "given"))
    label = "; ".join(f"{amount:g} ug {form} {route}" for amount, route, form in s.doses)
    d.parameter(first, s.first, "day", True, [f"time of the first dose of {eid}"])
    d.parameter(interval, s.interval, "day", True, [f"interval between the doses of {eid}"])
    d.parameter(count, s.count, "dimensionless", True, [f"number of dose instants of {eid}"])
    d.parameter(given, 0.0, "dimensionless", False,
                [f"number of dose instants of {eid} given so far"])
    now = f"({first} + {given} * {interval})"  # the dose time (exact, not the event's time)

    # The oral absorption step of engine._absorb for the absorbed parts a_1..a_n of one
    # instant, in order: the deficit decays since the last oral dose to d0 at the dose time;
    # part k meets the capacity left, R_(k-1) = max(cap - d_(k-1), 0), and the IF route takes
    # law(R_(k-1), a_k). The law is proportional to its capacity, so R_k = R_(k-1) x
    # (1 - law(1, a_k)) and R_(k-1) = max(cap - d0, 0) x prod_(i<k) (1 - law(1, a_i)): the
    # same numbers without writing d_(k-1) out recursively (text growing as 2^k) or nesting
    # function calls (which libSBML's unit checks cannot follow).
    law = _if_share_template()
    d0 = f"(if_deficit_last * exp(-{a.recovery} * ({now} - t_last_oral)))"
    room = f"max({a.capacity} - {d0}, 0 ug)"
    taken: list[str] = []
    incr: dict[str, list[str]] = {}
    total = 0.0
    for amount, route, form in s.doses:
        total += amount
        r = decl.routes[route]
        dose = f"{_fmt(amount)} ug"
        parts = [(r.enters, dose)]
        if r.fraction is not None:
            frac, fdims = expr.render(r.fraction.text)
            if fdims != _ONE:  # pragma: no cover - declaration changed
                raise RuntimeError(f"SBML export: route {route}'s fraction is not a fraction")
            parts = [(r.enters, f"{frac} * {dose}"),
                     (r.rest, f"(1 dimensionless - {frac}) * {dose}")]
        for where, part in parts:
            if where == "absorption":
                a_if = "(" + law.format(capacity=f"({room})", amount=f"({part})",
                                        km=a.km) + ")"
                taken.append(a_if)
                share = law.format(capacity="1 dimensionless", amount=f"({part})", km=a.km)
                room = f"{room} * (1 dimensionless - {share})"
                passive = f"{a.passive} * {part}"
                incr.setdefault(_sid(a.into, None), []).append(f"{a_if} + {passive}")
                incr.setdefault(_sid(a.rest, None), []).append(
                    f"{part} - {a_if} - {passive}")
            else:
                target = _sid(where, form if decl.compartment(where).per_form else None)
                incr.setdefault(target, []).append(part)
    incr.setdefault("dosed_ug", []).append(f"{_fmt(total)} ug")

    e = d.model.createEvent()
    e.setId(eid)
    if s.count > 1:
        e.setName(f"{label}: {s.count} times every {s.interval:g} days from day {s.first:g}")
    else:
        e.setName(f"{label} at day {s.first:g}")
    # values at the moment each event is executed: two events at one instant (never made
    # here, but possible in an edited file) then see each other's doses
    e.setUseValuesFromTriggerTime(False)
    tr = e.createTrigger()
    tr.setInitialValue(False)  # so that a dose at t = 0 fires
    tr.setPersistent(True)
    _ok(tr.setMath(_math(f"(time >= {now}) && ({given} < {count})")), f"trigger of {eid}")
    assignments = {target: f"{target} + " + " + ".join(f"({x})" for x in terms)
                   for target, terms in incr.items()}
    if taken:
        assignments["if_deficit_last"] = " + ".join([d0] + taken)
        assignments["t_last_oral"] = now
    assignments[given] = f"{given} + 1 dimensionless"
    for target, formula in assignments.items():
        ea = e.createEventAssignment()
        ea.setVariable(target)
        _ok(ea.setMath(_math(formula)), f"assignment to {target}")
    _notes(e, [f"doses at each instant, in b12pk's order: {label}",
               f"instants: day {s.first:g}" + (f" + k x {s.interval:g} days, k = 0..{s.count - 1}"
                                              if s.count > 1 else ""),
               "routes from data/model.toml [routes]; oral parts pass the absorption step "
               "(IF capacity deficit decaying since its last use, passive fraction, rest "
               "unabsorbed), in order"])


# --------------------------------------------------------------------------------------

def write_sbml(path: str | os.PathLike, patient: Patient | str | None = None,
               regimen: Any = None, days: float = 365.0,
               parameters: Parameters | None = None) -> Path:
    """Write :func:`to_sbml` to ``path`` atomically (:func:`b12pk.io.atomic_write_text`: a
    symbolic link is followed, a character device written through; a folder, FIFO or missing
    parent folder is refused before the model is built).

    Returns the path written.
    """
    output_file_target(path)  # refused before the work
    text = to_sbml(patient, regimen, days, parameters)
    atomic_write_text(path, text)
    return Path(path)


def check_sbml(text: str, *, units: bool = True) -> list[str]:
    """libSBML's consistency checks of an SBML document; an empty list means valid.

    Every message of severity warning, error or fatal is returned as
    ``"<severity> <id> line <n>: <message>"``; ``units=False`` skips the unit-consistency
    checks.
    """
    libsbml = _libsbml()
    doc = libsbml.readSBMLFromString(text)
    if not units:
        doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.checkConsistency()
    out = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        if err.getSeverity() < libsbml.LIBSBML_SEV_WARNING:
            continue
        msg = " ".join(err.getMessage().split())
        out.append(f"{err.getSeverityAsString()} {err.getErrorId()} line {err.getLine()}: "
                   f"{msg}")
    return out


# --------------------------------------------------------------------------------------
# libRoadRunner

def load_roadrunner(sbml_text: str, *, rtol: float = 1e-10, atol: float = 1e-10) -> Any:
    """A :class:`roadrunner.RoadRunner` for ``sbml_text`` with tight CVODE tolerances."""
    roadrunner = _roadrunner()
    rr = roadrunner.RoadRunner(sbml_text)
    rr.integrator.relative_tolerance = rtol
    # an explicit per-state vector: with a scalar, libRoadRunner 2.10 scales the absolute
    # tolerance by the state's value, which fails (CV_ILL_INPUT, "ewt equal to zero") when an
    # unused pool holds a denormal round-off value such as -1e-322 at an event
    n = len(rr.model.getFloatingSpeciesIds())
    try:
        rr.integrator.setValue("absolute_tolerance", [float(atol)] * n)
    except Exception:  # pragma: no cover - older libRoadRunner: scalar only
        rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 1_000_000
    return rr


def _output_columns() -> list[str]:
    from ..model.declaration import declaration

    d = declaration()
    return [col for col, _ in d.outputs] + [m.column for m in d.markers]


def simulate_roadrunner(sbml_text: str | Any, times: Any, *, rtol: float = 1e-10,
                        atol: float = 1e-10) -> "Any":
    """Simulate an exported document in libRoadRunner at ``times`` (days, from 0).

    ``sbml_text`` may also be a loaded RoadRunner (it is reset with ``resetAll`` first).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`b12pk.simulate` (``time_days`` and the declared outputs:
        ``serum_pmol_per_l``, ``serum_pg_per_ml``, ``holotc_pmol_per_l``, ``stores_ug``,
        ``plasma_ug``, ``body_ug``, ``dosed_ug``, ``diet_ug``, ``absorbed_ug``,
        ``unabsorbed_ug``, ``urine_ug``, ``faeces_ug``). At a dose time the row is the state
        just after the dose, as in b12pk.
    """
    import pandas as pd

    t = np.unique(np.asarray(times, dtype=float).ravel())
    if t.size == 0 or not np.all(np.isfinite(t)) or t[0] < 0.0:
        raise InputError("times must be finite days >= 0")
    if isinstance(sbml_text, str):
        rr = load_roadrunner(sbml_text, rtol=rtol, atol=atol)
    else:
        rr = sbml_text
        rr.resetAll()
    grid = t if t[0] == 0.0 else np.concatenate(([0.0], t))
    cols = _output_columns()
    sel = ["time"] + cols
    if grid.size == 1:
        res = np.array([[0.0] + [rr.getValue(c) for c in cols]])
    else:
        res = np.asarray(rr.simulate(times=grid, selections=sel))
    if grid.size != t.size:
        res = res[1:]
    return pd.DataFrame({c: res[:, j] for j, c in enumerate(["time_days"] + cols)})
