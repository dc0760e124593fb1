"""Model exchange: the b12pk model of one patient (and a regimen) as an SBML document.

:func:`to_sbml` writes the model that :func:`b12pk.simulate` integrates, for one patient,
parameter set and regimen, as an SBML Level 3 Version 1 Core document:

* one species per state of :class:`b12pk.engine._System` (amounts in ug, declared
  ``hasOnlySubstanceUnits``), in compartments named after ``data/model.toml``;
* every parameter of ``data/model.toml`` with its value and unit, and a note and an
  annotation giving its unit, status and source; the derived rate constants and patient
  quantities with the values b12pk computes (the numbers come from one ``_System``);
* one reaction per linear flow (mass action, first order), the saturable haptocorrin binding
  and tissue uptake of unbound cobalamin, and the zero-order dietary input;
* the doses of the regimen as events, one per dose instant, that do at that instant exactly
  the arithmetic of ``b12pk.engine._apply_doses`` (intrinsic-factor capacity, passive and
  unabsorbed parts, several doses at one instant in order);
* serum B12 (pmol/L and pg/mL), holoTC, and the cumulative amounts as assignment rules.

python-libsbml is imported lazily (the ``b12pk[sbml]`` extra); libRoadRunner only by
:func:`simulate_roadrunner`, used to cross-check b12pk against an independent SBML simulator.

See ``docs/sbml.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .errors import B12pkError, InputError, ResourceError
from .io import atomic_write_text, output_file_target
from .limits import MAX_SBML_EVENTS
from .model import Parameters, Patient, parameter_table

__all__ = [
    "SBMLUnavailableError",
    "to_sbml",
    "write_sbml",
    "check_sbml",
    "patient_values",
    "simulate_roadrunner",
    "load_roadrunner",
    "ANNOTATION_NS",
]

ANNOTATION_NS = "https://b12pk.invalid/sbml/1"
"""XML namespace of the b12pk annotations (parameter unit, status and source)."""

_XHTML = "http://www.w3.org/1999/xhtml"
_LEVEL, _VERSION = 3, 1


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
# Units: id -> list of (kind, exponent, scale, multiplier); model.toml unit -> id

_UNITS: dict[str, list[tuple[str, float, int, float]]] = {
    "ug": [("gram", 1, -6, 1.0)],
    "day": [("second", 1, 0, 86400.0)],
    "hour": [("second", 1, 0, 3600.0)],
    "per_day": [("second", -1, 0, 86400.0)],
    "ug_per_day": [("gram", 1, -6, 1.0), ("second", -1, 0, 86400.0)],
    "L": [("litre", 1, 0, 1.0)],
    "mL_per_min": [("litre", 1, -3, 1.0), ("second", -1, 0, 60.0)],
    "L_per_day": [("litre", 1, 0, 1.0), ("second", -1, 0, 86400.0)],
    "pmol_per_L": [("mole", 1, -12, 1.0), ("litre", -1, 0, 1.0)],
    "pg_per_mL": [("gram", 1, -12, 1.0), ("litre", -1, -3, 1.0)],
    "g_per_mol": [("gram", 1, 0, 1.0), ("mole", -1, 0, 1.0)],
}
_TOML_UNIT = {"ug": "ug", "1": "dimensionless", "1/day": "per_day", "h": "hour", "L": "L",
              "mL/min": "mL_per_min", "ug/day": "ug_per_day", "day": "day",
              "pmol/L": "pmol_per_L", "g/mol": "g_per_mol"}

# engine layout names of the fixed states -> (species id, compartment id, description)
_FIXED_SPECIES = {
    "ileum": ("ileum", "gut", "absorbed dose in ileal transit (IF-bound or passive)"),
    "enterocyte": ("enterocyte", "gut", "enterocyte transit before release on transcobalamin"),
    "holotc": ("holotc", "plasma", "plasma B12 on transcobalamin (active B12)"),
    "holohc": ("holohc", "plasma", "plasma B12 on haptocorrin"),
    "stores": ("stores", "tissue", "tissue stores, mainly liver"),
    "urine": ("urine", "excreted", "cumulative urinary excretion (outside the body)"),
    "faeces": ("faeces", "excreted", "cumulative biliary/faecal loss (outside the body)"),
    "unabsorbed": ("unabsorbed", "excreted",
                   "cumulative unabsorbed oral/dietary B12 (never entered the body)"),
}

# (engine state of source, engine state of destination) -> rate constant id; depot/nasal/free
# are per form ("{f}" replaced by the form)
_FLOW_NAMES = {
    ("depot", "free"): "k_depot_{f}",
    ("nasal", "free"): "k_nasal",
    ("free", "urine"): "k_renal_{f}",
    ("ileum", "enterocyte"): "k_transit",
    ("enterocyte", "holotc"): "k_transit",
    ("holotc", "stores"): "k_tc",
    ("holohc", "stores"): "k_hc",
    ("stores", "holotc"): "k_st",
    ("stores", "holohc"): "k_sh",
    ("stores", "ileum"): "k_reab",
    ("stores", "faeces"): "k_loss",
}


def _state_names(L: Any) -> list[str]:
    """Species id of every engine state index."""
    names = [f"depot_{f}" for f in L.forms] + [f"nasal_{f}" for f in L.forms] \
        + [f"free_{f}" for f in L.forms]
    from .engine import _compartment_order
    _FIXED = _compartment_order()[1]

    names += [_FIXED_SPECIES[n][0] for n in _FIXED]
    return names


def _kind_of(L: Any, idx: int) -> tuple[str, str | None]:
    """('depot'|'nasal'|'free', form) or (fixed name, None) of an engine state index."""
    nf = L.nf
    if idx < 3 * nf:
        return ("depot", "nasal", "free")[idx // nf], L.forms[idx % nf]
    from .engine import _compartment_order
    _FIXED = _compartment_order()[1]

    return _FIXED[idx - 3 * nf], None


# --------------------------------------------------------------------------------------
# The numbers: one _System per patient

def _build(patient: Patient | str | None, regimen: Any, days: float,
           parameters: Parameters | None) -> tuple[Patient, Parameters, Any, list, Any]:
    from . import engine

    days = engine._check_days(days)
    patient, params = engine._resolve(patient, parameters)
    events = engine._events_from(regimen, days, "export") if regimen is not None else []
    sys_ = engine._System(patient, params, engine._parenteral_forms(events))
    return patient, params, sys_, events, days


def _check_event_count(events: Sequence[tuple[float, float, str, str]], days: float) -> None:
    """Refuse more than :data:`b12pk.limits.MAX_SBML_EVENTS` SBML events (dose instants),
    before the document is built: libSBML and libRoadRunner need memory and time that grow
    with the square of the count (a 36,500-event export aborts in C++ under a memory limit)."""
    instants = sorted({e[0] for e in events})
    if len(instants) > MAX_SBML_EVENTS:
        fits = instants[MAX_SBML_EVENTS]  # a horizon up to this day keeps MAX_SBML_EVENTS
        raise ResourceError(
            f"the SBML export would hold {len(instants):,} dose events (one per dose instant "
            f"before day {days:g}), above the limit of {MAX_SBML_EVENTS:,}; use a shorter "
            f"horizon (days <= {fits:g} fits) or a regimen with fewer doses")


def _derived(sys_: Any, patient: Patient) -> dict[str, tuple[float, str, str]]:
    """Derived constants: id -> (value, unit id, formula note). Values straight from _System."""
    p = sys_.p
    L = sys_.L
    out: dict[str, tuple[float, str, str]] = {
        "if_route_factor": (patient.if_route_factor, "dimensionless",
                            "patient: intrinsic_factor x ileal function x metformin factor"),
        "egfr_ml_min": (patient.egfr_ml_min, "mL_per_min", "patient setting"),
        "diet_ug_per_day": (sys_.diet, "ug_per_day", "patient setting: dietary intake"),
        "diet_absorbed_ug_per_day": (
            sys_.diet_absorbed, "ug_per_day",
            "min(meals_per_day x (if_cap x m/(if_km_ug + m) + passive_fraction x m), diet) with "
            "m = food_release x diet / meals_per_day (diet in meals, IF-limited)"),
        "if_cap": (sys_.if_cap, "ug", "if_capacity_ug x if_route_factor"),
        "if_krec": (sys_.if_krec, "per_day", "ln 2 / (if_recovery_half_life_h / 24)"),
        "k_transit": (p["oral_transit_rate_per_day"], "per_day", "oral_transit_rate_per_day"),
        "k_nasal": (p["nasal_absorption_rate_per_day"], "per_day",
                    "nasal_absorption_rate_per_day"),
        "k_tc": (sys_.k_tc, "per_day", "ln 2 / (holotc_half_life_h / 24)"),
        "k_hc": (sys_.k_hc, "per_day", "ln 2 / holohc_half_life_days"),
        "k_st": (sys_.k_st, "per_day",
                 "k_tc x holotc_share x plasma_ref / reference_stores_ug, plasma_ref = "
                 "reference serum (ug/L) x plasma_volume_l"),
        "k_sh": (sys_.k_sh, "per_day",
                 "k_hc x (1 - holotc_share) x plasma_ref / reference_stores_ug"),
        "k_reab": (sys_.k_reab, "per_day",
                   "bile_secretion_fraction_per_day x bile_reabsorbed_fraction x "
                   "if_route_factor"),
        "k_loss": (sys_.k_loss, "per_day",
                   "bile_secretion_fraction_per_day x (1 - bile_reabsorbed_fraction x "
                   "if_route_factor) + other_loss_fraction_per_day"),
    }
    for i, f in enumerate(L.forms):
        out[f"k_depot_{f}"] = (float(sys_.k_depot[i]), "per_day",
                               f"ln 2 / (depot half-life of {f} in h / 24)")
        out[f"k_renal_{f}"] = (float(sys_.k_renal[i]), "per_day",
                               f"renal_filtered_fraction x eGFR x 1.44 / free_volume_l x "
                               f"renal clearance factor of {f}")
    return out


def patient_values(patient: Patient | str | None = None, regimen: Any = None,
                   days: float = 365.0, parameters: Parameters | None = None) -> dict[str, float]:
    """Values of every patient-dependent quantity of the exported model, by SBML id.

    The parameters of ``data/model.toml``, the derived rate constants and the initial amounts
    (species ids) that :func:`to_sbml` would write for this patient. With them one loaded
    SBML model (of the same regimen, so the same forms and events) can be re-parameterised
    for another patient, e.g. ``rr.setValue(f"init({id})", value)`` then ``rr.resetAll()``
    in libRoadRunner.
    """
    patient, params, sys_, _, _ = _build(patient, regimen, days, parameters)
    vals = {name: float(v) for name, v in params.as_dict().items()}
    vals.update({k: float(v[0]) for k, v in _derived(sys_, patient).items()})
    y0 = sys_.initial_state(patient)
    vals.update({sid: float(v) for sid, v in zip(_state_names(sys_.L), y0)})
    return vals


# --------------------------------------------------------------------------------------
# Document construction

def _ok(rc: int, what: str) -> None:
    libsbml = _libsbml()
    if rc != libsbml.LIBSBML_OPERATION_SUCCESS:  # pragma: no cover - construction bug
        raise RuntimeError(f"libSBML could not set {what}: "
                           f"{libsbml.OperationReturnValue_toString(rc)}")


def _math(formula: str) -> Any:
    libsbml = _libsbml()
    ast = libsbml.parseL3Formula(formula)
    if ast is None:  # pragma: no cover - construction bug
        raise RuntimeError(f"libSBML cannot parse {formula!r}: {libsbml.getLastParseL3Error()}")
    return ast


def _notes(obj: Any, lines: Sequence[str]) -> None:
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    _ok(obj.setNotes(f'<body xmlns="{_XHTML}">{body}</body>'), "notes")


def _annotate(obj: Any, **attrs: str) -> None:
    a = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    _ok(obj.setAnnotation(f'<annotation><b12pk:info xmlns:b12pk="{ANNOTATION_NS}" {a}/>'
                          "</annotation>"), "annotation")


def _fmt(x: float) -> str:
    return repr(float(x))


def to_sbml(patient: Patient | str | None = None, regimen: Any = None, days: float = 365.0,
            parameters: Parameters | None = None) -> str:
    """The b12pk model of one patient (and a regimen) as SBML Level 3 Version 1 text.

    Parameters
    ----------
    patient : Patient or str, optional
        A :class:`b12pk.Patient` or a preset name; default ``"healthy"``.
    regimen : Regimen, str or list of DoseEvent, optional
        Read as by :func:`b12pk.simulate`. Doses at ``0 <= t < days`` become SBML events (one
        per dose instant), at most :data:`b12pk.limits.MAX_SBML_EVENTS`. ``None`` or an
        empty list: no treatment (diet only).
    days : float
        Horizon in days, as for :func:`b12pk.simulate`; only selects the doses exported.
    parameters : Parameters, optional
        Model parameters (default ``data/model.toml``); the patient's overrides apply on top.

    Returns
    -------
    str
        The SBML document (UTF-8 XML text). Amounts in ug, time in days; serum B12 in
        pmol/L as the assignment-rule parameter ``serum_pmol_per_l``.

    Raises
    ------
    SBMLUnavailableError
        python-libsbml is not installed (install ``b12pk[sbml]``).
    InputError
        Bad patient, regimen, horizon or parameters (as :func:`b12pk.simulate`).
    ResourceError
        More than :data:`b12pk.limits.MAX_SBML_EVENTS` dose instants before ``days``
        (checked before the document is built).
    """
    patient, params, sys_, events, days = _build(patient, regimen, days, parameters)
    _check_event_count(events, days)
    libsbml = _libsbml()
    L = sys_.L
    names = _state_names(L)

    doc = libsbml.SBMLDocument(_LEVEL, _VERSION)
    model = doc.createModel()
    model.setId("b12pk_" + "".join(ch if ch.isalnum() else "_" for ch in patient.name))
    model.setName(f"b12pk physiological vitamin B12 model, patient {patient.name}")
    _notes(model, [
        "Generated by b12pk (educational model, not for prescribing).",
        f"Patient: {patient.name} ({patient.describe()}).",
        f"Regimen: {len(events)} doses in {days:g} days, exported as events at "
        f"{len({e[0] for e in events})} dose instants.",
        "Amounts in ug, time in days. Serum B12 = (holoTC + holoHC) / plasma_volume_l + "
        "sum(free) / free_volume_l, converted to pmol/L with molar_mass_g_per_mol.",
        "Derived rate constants hold the values b12pk computed for this patient; changing a "
        "data/model.toml parameter in this file does not update them (re-export instead).",
    ])

    # ----- units
    for uid, parts in _UNITS.items():
        ud = model.createUnitDefinition()
        ud.setId(uid)
        for kind, exp, scale, mult in parts:
            u = ud.createUnit()
            u.setKind(libsbml.UnitKind_forName(kind))
            u.setExponent(exp)
            u.setScale(scale)
            u.setMultiplier(mult)
    model.setTimeUnits("day")
    model.setSubstanceUnits("ug")
    model.setExtentUnits("ug")
    model.setVolumeUnits("L")

    # ----- compartments (species are amounts: the sizes only document where they are)
    comps = {
        "injection_site": (1.0, "IM / deep SC injection site (nominal size)"),
        "nasal_mucosa": (1.0, "nasal mucosa (nominal size)"),
        "extracellular_fluid": (params["free_volume_l"],
                                "distribution volume of unbound cobalamin (free_volume_l)"),
        "gut": (1.0, "ileum and enterocytes (nominal size)"),
        "plasma": (params["plasma_volume_l"], "plasma (plasma_volume_l)"),
        "tissue": (1.0, "tissue stores, mainly liver (nominal size)"),
        "excreted": (1.0, "cumulative amounts outside the body (nominal size)"),
    }
    for cid, (size, desc) in comps.items():
        c = model.createCompartment()
        c.setId(cid)
        c.setSpatialDimensions(3)
        c.setSize(size)
        c.setUnits("L")
        c.setConstant(True)
        _notes(c, [desc])

    # ----- species
    y0 = sys_.initial_state(patient)
    comp_of = {"depot": "injection_site", "nasal": "nasal_mucosa", "free": "extracellular_fluid"}
    for idx, sid in enumerate(names):
        kind, form = _kind_of(L, idx)
        if form is not None:
            comp = comp_of[kind]
            desc = {"depot": "injection depot", "nasal": "bioavailable intranasal dose",
                    "free": "unbound (free) cobalamin"}[kind] + f" of {form}"
        else:
            _, comp, desc = _FIXED_SPECIES[kind]
        s = model.createSpecies()
        s.setId(sid)
        s.setCompartment(comp)
        s.setInitialAmount(float(y0[idx]))
        s.setSubstanceUnits("ug")
        s.setHasOnlySubstanceUnits(True)
        s.setBoundaryCondition(False)
        s.setConstant(False)
        _notes(s, [f"{desc}; amount in ug; b12pk state '{kind}'"
                   + (f" ({form})" if form else "")])

    # ----- parameters of data/model.toml (value, unit, status, source)
    table = parameter_table().set_index("name")
    for name, value in params.as_dict().items():
        row = table.loc[name]
        p = model.createParameter()
        p.setId(name)
        p.setValue(float(value))
        p.setUnits(_TOML_UNIT[row["unit"]])
        p.setConstant(True)
        default = float(row["value"])
        note = [f"{row['description']}",
                f"unit: {row['unit']}; status: {row['status']}; "
                f"range: [{row['low']:g}, {row['high']:g}]",
                f"source: {row['source']}"]
        if value != default:
            note.append(f"value changed from the default {default:g} for this patient/run")
        _notes(p, note)
        _annotate(p, unit=row["unit"], status=row["status"], source=row["source"],
                  low=_fmt(row["low"]), high=_fmt(row["high"]))

    derived = _derived(sys_, patient)
    for name, (value, unit, formula) in derived.items():
        p = model.createParameter()
        p.setId(name)
        p.setValue(float(value))
        p.setUnits(unit)
        p.setConstant(True)
        _notes(p, [f"derived by b12pk for this patient: {formula}",
                   f"unit: {unit}; status: derived"])
        _annotate(p, unit=unit, status="derived", source=f"b12pk.engine._System: {formula}")

    def var(pid: str, unit: str, value: float, note: str) -> None:
        p = model.createParameter()
        p.setId(pid)
        p.setValue(value)
        p.setUnits(unit)
        p.setConstant(False)
        _notes(p, [note])

    # IF capacity bookkeeping (the deficit decays exponentially since the last oral use)
    var("if_deficit_last", "ug", 0.0,
        "IF capacity used, as it stood just after the last oral (or swallowed nasal) dose")
    var("t_last_oral", "day", 0.0, "time of the last oral (or swallowed nasal) dose")
    var("if_deficit", "ug", 0.0,
        "IF capacity in use now: if_deficit_last x exp(-if_krec (time - t_last_oral))")
    var("dosed_ug", "ug", 0.0, "cumulative amount dosed (all routes)")
    outputs = {
        "serum_pmol_per_l": ("pmol_per_L", "total serum B12"),
        "serum_pg_per_ml": ("pg_per_mL", "total serum B12"),
        "holotc_pmol_per_l": ("pmol_per_L", "holotranscobalamin (active B12)"),
        "plasma_ug": ("ug", "plasma B12 (holoTC + holoHC + free)"),
        "body_ug": ("ug", "B12 in the body"),
        "diet_ug": ("ug", "cumulative dietary intake"),
        "absorbed_ug": ("ug", "cumulative dose + diet that entered the body"),
    }
    for pid, (unit, note) in outputs.items():
        var(pid, unit, 0.0, note)

    # ----- rules
    free_ids = [f"free_{f}" for f in L.forms]
    free_sum = " + ".join(free_ids)
    # ug/L divided by g/mol is 1e-6 mol/L: x 1e6 gives pmol/L; ug/L x 1e3 gives pg/mL
    bound_conc = "(holotc + holohc) / plasma_volume_l"
    rules = {
        "if_deficit": "if_deficit_last * exp(-if_krec * (time - t_last_oral))",
        "serum_pmol_per_l": f"({bound_conc} + ({free_sum}) / free_volume_l) "
                            "/ molar_mass_g_per_mol * 1e6 dimensionless",
        "serum_pg_per_ml": f"({bound_conc} + ({free_sum}) / free_volume_l) * 1e3 dimensionless",
        "holotc_pmol_per_l": "holotc / plasma_volume_l / molar_mass_g_per_mol * 1e6 dimensionless",
        "plasma_ug": f"holotc + holohc + {free_sum}",
        "body_ug": " + ".join(names[: L.body.stop]),
        "diet_ug": "diet_ug_per_day * time",
        "absorbed_ug": "dosed_ug + diet_ug - unabsorbed",
    }
    for pid, formula in rules.items():
        r = model.createAssignmentRule()
        r.setVariable(pid)
        _ok(r.setMath(_math(formula)), f"rule {pid}")

    # ----- reactions: linear flows from the matrix A (checked entry by entry)
    def reaction(rid: str, src: str | None, dst: str | None, law: str, reversible: bool,
                 note: str, modifiers: Sequence[str] = ()) -> None:
        r = model.createReaction()
        r.setId(rid)
        r.setReversible(reversible)
        r.setFast(False)
        if src is not None:
            sr = r.createReactant()
            sr.setSpecies(src)
            sr.setStoichiometry(1.0)
            sr.setConstant(True)
        if dst is not None:
            sr = r.createProduct()
            sr.setSpecies(dst)
            sr.setStoichiometry(1.0)
            sr.setConstant(True)
        for m in modifiers:
            if m != src and m != dst:
                mr = r.createModifier()
                mr.setSpecies(m)
        kl = r.createKineticLaw()
        _ok(kl.setMath(_math(law)), f"kinetic law of {rid}")
        _notes(r, [note])

    # every flow of the model is exported, also one whose rate constant is 0 for this patient
    # (e.g. enterohepatic reabsorption in pernicious anaemia): the structure of the document
    # is the same for every patient, only values differ (see patient_values)
    A = sys_.A
    A_check = np.zeros_like(A)
    n = L.n
    for src in range(n):
        ks, fs = _kind_of(L, src)
        for dst in range(n):
            kd, fd = _kind_of(L, dst)
            key = (ks, kd)
            if dst == src or key not in _FLOW_NAMES \
                    or (fs is not None and fd is not None and fs != fd):
                if dst != src and A[dst, src] != 0.0:  # pragma: no cover - engine changed
                    raise RuntimeError(f"SBML export: flow {names[src]} -> {names[dst]} of "
                                       "the engine has no SBML counterpart; update b12pk/sbml.py")
                continue
            kid = _FLOW_NAMES[key].format(f=fs or fd)
            kval = derived[kid][0]
            A_check[src, src] -= kval
            A_check[dst, src] += kval
            reaction(f"flow_{names[src]}_to_{names[dst]}", names[src], names[dst],
                     f"{kid} * {names[src]}", False,
                     f"first-order flow {names[src]} -> {names[dst]}, rate constant {kid}")
    off = ~np.eye(n, dtype=bool)
    if not (np.array_equal(A_check[off], A[off])
            and np.allclose(np.diag(A_check), np.diag(A), rtol=1e-14, atol=0.0)):
        raise RuntimeError(  # pragma: no cover - guards against silent drift
            "SBML export: the exported flows differ from the engine's matrix A")
    b_check = np.zeros(n)
    b_check[L.ileum] = sys_.diet_absorbed
    b_check[L.unabsorbed] = sys_.diet - sys_.diet_absorbed
    if not np.array_equal(b_check, sys_.b):  # pragma: no cover
        raise RuntimeError("SBML export: the exported diet input differs from the engine's b")
    reaction("diet_absorbed", None, "ileum", "diet_absorbed_ug_per_day", False,
             "zero-order dietary input absorbed (IF route and passive, per meal)")
    reaction("diet_unabsorbed", None, "unabsorbed",
             "diet_ug_per_day - diet_absorbed_ug_per_day", False,
             "zero-order dietary intake not absorbed")
    # saturable binding to haptocorrin and tissue uptake of unbound cobalamin
    for fid in free_ids:
        reaction(f"hc_binding_{fid}", fid, "holohc",
                 "hc_binding_rate_per_day * " + fid
                 + " * (hc_binding_capacity_ug - holohc) / hc_binding_capacity_ug", True,
                 "binding of free cobalamin to unsaturated haptocorrin (negative when the "
                 "haptocorrin pool exceeds its capacity: displacement)")
        reaction(f"uptake_{fid}", fid, "stores",
                 f"uptake_vmax_ug_per_day * {fid} / (uptake_km_ug + {free_sum})", False,
                 "saturable tissue uptake (Michaelis-Menten in the total free amount)",
                 modifiers=free_ids)

    # IF-route absorption of an oral amount given the capacity in use (engine._apply_doses)
    fd = model.createFunctionDefinition()
    fd.setId("if_absorbed")
    _ok(fd.setMath(_math("lambda(deficit, dose, cap, km, piecewise(cap - deficit, "
                         "cap - deficit > 0, 0) * dose / (km + dose))")), "if_absorbed")
    _notes(fd, ["amount absorbed by the intrinsic-factor route from an oral amount 'dose' "
                "when 'deficit' of the capacity 'cap' is in use: max(cap - deficit, 0) x "
                "dose / (km + dose)"])

    # ----- doses: one event per dose instant, doing _apply_doses' arithmetic in order
    groups: dict[float, list] = {}
    for ev in events:
        groups.setdefault(ev[0], []).append(ev)
    for k, t in enumerate(sorted(groups)):
        _dose_event(model, k, t, groups[t])

    return libsbml.writeSBMLToString(doc)


def _dose_event(model: Any, k: int, t: float, doses: list) -> None:
    """One event applying every dose at instant ``t`` as ``engine._apply_doses`` does."""
    incr: dict[str, list[str]] = {}
    deficit = "if_deficit"  # value at the trigger time (useValuesFromTriggerTime)
    oral_seen = False
    total = 0.0
    labels = []
    for _, amount, route, form in doses:
        total += amount
        labels.append(f"{amount:g} ug {form} {route}")
        d = f"{_fmt(amount)} ug"
        if route in ("im", "deep-sc"):
            incr.setdefault(f"depot_{form}", []).append(d)
            continue
        if route == "iv":
            incr.setdefault(f"free_{form}", []).append(d)
            continue
        if route == "intranasal":
            incr.setdefault(f"nasal_{form}", []).append(f"nasal_bioavailability * {d}")
            oral = f"((1 dimensionless - nasal_bioavailability) * {d})"
        else:
            oral = d
        oral_seen = True
        a_if = f"if_absorbed({deficit}, {oral}, if_cap, if_km_ug)"
        passive = f"passive_fraction * {oral}"
        incr.setdefault("ileum", []).append(f"{a_if} + {passive}")
        incr.setdefault("unabsorbed", []).append(f"{oral} - ({a_if}) - {passive}")
        deficit = f"{deficit} + {a_if}"
    incr.setdefault("dosed_ug", []).append(f"{_fmt(total)} ug")

    e = model.createEvent()
    e.setId(f"dose_{k}")
    e.setName(f"doses at day {t:g}")
    e.setUseValuesFromTriggerTime(True)
    tr = e.createTrigger()
    tr.setInitialValue(False)  # so that a dose at t = 0 fires
    tr.setPersistent(True)
    _ok(tr.setMath(_math(f"time >= {_fmt(t)} day")), f"trigger of dose_{k}")
    for target, terms in incr.items():
        ea = e.createEventAssignment()
        ea.setVariable(target)
        _ok(ea.setMath(_math(f"{target} + " + " + ".join(f"({x})" for x in terms))),
            f"assignment to {target}")
    if oral_seen:
        ea = e.createEventAssignment()
        ea.setVariable("if_deficit_last")
        _ok(ea.setMath(_math(deficit)), "assignment to if_deficit_last")
        ea = e.createEventAssignment()
        ea.setVariable("t_last_oral")
        _ok(ea.setMath(_math("time")), "assignment to t_last_oral")
    _notes(e, [f"day {t:g}: " + "; ".join(labels)])


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


_RR_SPECIES_COLS = {"stores_ug": "stores", "unabsorbed_ug": "unabsorbed", "urine_ug": "urine",
                    "faeces_ug": "faeces"}
_RR_PARAM_COLS = ("serum_pmol_per_l", "serum_pg_per_ml", "holotc_pmol_per_l", "plasma_ug",
                  "body_ug", "dosed_ug", "diet_ug", "absorbed_ug")


def simulate_roadrunner(sbml_text: str | Any, times: Any, *, rtol: float = 1e-10,
                        atol: float = 1e-10) -> "Any":
    """Simulate an exported document in libRoadRunner at ``times`` (days, from 0).

    ``sbml_text`` may also be a loaded RoadRunner (it is reset with ``resetAll`` first).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`b12pk.simulate`: ``time_days``, ``serum_pmol_per_l``,
        ``serum_pg_per_ml``, ``holotc_pmol_per_l``, ``stores_ug``, ``plasma_ug``,
        ``body_ug``, ``dosed_ug``, ``diet_ug``, ``absorbed_ug``, ``unabsorbed_ug``,
        ``urine_ug``, ``faeces_ug``. At a dose time the row is the state just after the
        dose, as in b12pk.
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
    cols = ["time"] + list(_RR_SPECIES_COLS.values()) + list(_RR_PARAM_COLS)
    if grid.size == 1:
        res = np.array([[rr.getValue(c) if c != "time" else 0.0 for c in cols]])
    else:
        res = np.asarray(rr.simulate(times=grid, selections=cols))
    if grid.size != t.size:
        res = res[1:]
    data = {"time_days": res[:, 0]}
    for j, c in enumerate(cols[1:], start=1):
        data[c] = res[:, j]
    for col, sid in _RR_SPECIES_COLS.items():
        data[col] = data.pop(sid)
    order = ["time_days", "serum_pmol_per_l", "serum_pg_per_ml", "holotc_pmol_per_l",
             "stores_ug", "plasma_ug", "body_ug", "dosed_ug", "diet_ug", "absorbed_ug",
             "unabsorbed_ug", "urine_ug", "faeces_ug"]
    return pd.DataFrame({c: data[c] for c in order})

