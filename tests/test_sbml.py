"""SBML export (issues 9 and 16): a valid SBML Level 3 document generated from the model
declaration, with units, sources and repeating dose events, and a cross-check of b12pk
against libRoadRunner simulating the exported model."""

from __future__ import annotations

import ast
import inspect
import math
import re
import sys
import time
import warnings

import numpy as np
import pytest

import b12pk
from b12pk import DoseEvent, Patient
from b12pk.model import laws
from b12pk.exchange import sbml
from b12pk.model.declaration import declaration

libsbml = pytest.importorskip("libsbml", reason="SBML export needs the b12pk[sbml] extra")

PA = Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
ORAL = "2000 mcg oral daily"
IM = "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then monthly"
NASAL = "1000 mcg cyanocobalamin intranasal every 3 days"

RTOL = 1e-6
"""Agreement required between libRoadRunner on the export (CVODE rtol 1e-10, atol 1e-10 ug)
and b12pk.simulate, linear or not (measured worst case about 1e-7: b12pk's own transient
integrator; the export agrees with method="solve_ivp" to about 1e-9)."""

COMPARED = ("serum_pmol_per_l", "holotc_pmol_per_l", "stores_ug", "body_ug", "urine_ug",
            "faeces_ug", "unabsorbed_ug", "absorbed_ug", "dosed_ug", "mma_nmol_per_l",
            "hcy_umol_per_l")

#: One regimen per route (issue 16: oral, sublingual, IM cyano, IM hydroxo, deep SC,
#: intranasal, IV)
ROUTES = {
    "oral": "1000 mcg oral daily",
    "sublingual": "500 mcg methylcobalamin sublingual twice daily",
    "IM cyano": "1000 mcg cyanocobalamin IM weekly for 4 weeks, then monthly",
    "IM hydroxo": "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every "
                  "2 months",
    "deep SC": "1000 mcg cyanocobalamin deep SC every 2 weeks",
    "intranasal": NASAL,
    "IV": "100 mcg cyanocobalamin IV every 2 weeks",
}


def _doc(text: str):
    doc = libsbml.readSBMLFromString(text)
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    return doc.getModel()


def _same_math(a: str, b: str) -> bool:
    """Two L3 formulas are the same expression: equal values for random values of their
    names (units on literal numbers ignored)."""
    rng = np.random.default_rng(1)

    def py(text):
        return re.sub(r"(\d)\s+[A-Za-z_]\w*", r"\1", text).replace("^", "**")

    names = set(re.findall(r"[A-Za-z_]\w*", py(a) + " " + py(b))) - {"max", "min", "exp"}
    for _ in range(3):
        env = {n: float(rng.uniform(0.5, 2.0)) for n in names}
        if not math.isclose(eval(py(a), {"max": max, "min": min, "exp": math.exp}, env),
                            eval(py(b), {"max": max, "min": min, "exp": math.exp}, env),
                            rel_tol=1e-12):
            return False
    return True


def _worst(a, b) -> tuple[float, str, float]:
    """Worst relative difference over the compared columns: (rel, column, time)."""
    worst = (0.0, "", 0.0)
    for col in COMPARED:
        x = np.asarray(a[col], float)
        y = np.asarray(b[col], float)
        # amounts (ug) relative to the column's scale over the run, as in test_engine (urine
        # from the stores' overflow starts from 0 where the stores pass their capacity;
        # the engine's slow steps follow that onset to about 5e-5 of the first few ug,
        # converging at second order with the step)
        floor = max(1.0, float(np.abs(y).max())) if col.endswith("_ug") else 1e-9
        rel = np.abs(x - y) / np.maximum(np.abs(y), floor)
        k = int(np.argmax(rel))
        if rel[k] > worst[0]:
            worst = (float(rel[k]), col, float(b["time_days"].iloc[k]))
    return worst


def _roadrunner():
    return pytest.importorskip("roadrunner", reason="the cross-check needs libroadrunner "
                               "(the b12pk[sbml] extra)")


def _cross_check(name, regimen, patient, days, times=None):
    _roadrunner()
    times = np.arange(days + 1.0) if times is None else times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", b12pk.B12pkWarning)  # IV is discouraged
        text = sbml.to_sbml(patient, regimen, days=days)
        ref = b12pk.simulate(regimen, patient, days, times=times)
    rr = sbml.simulate_roadrunner(text, times)
    assert list(rr.columns) == list(ref.columns)
    rel, col, t = _worst(rr, ref)
    print(f"\n[sbml cross-check] {name}: {_doc(text).getNumEvents()} event(s); worst relative "
          f"difference {rel:.2e} ({col} at day {t:g}); tolerance {RTOL:g}")
    assert rel <= RTOL, (name, col, t, rel)
    return rr, ref


# ---------------------------------------------------------------------------------------
# The document

@pytest.mark.parametrize("regimen,patient,days", [
    (ORAL, PA, 30), (IM, PA, 120), (NASAL, "healthy", 30), (None, "renal-impairment", 10),
    (ROUTES["IV"], "healthy", 30), (ROUTES["sublingual"], "metformin", 5),
    ([DoseEvent(0, 1, "oral", "cyano"), DoseEvent(0, 3, "oral", "cyano"),
      DoseEvent(0, 500, "intranasal", "hydroxo"), DoseEvent(0, 9, "sublingual", "cyano")],
     "healthy", 2)])
def test_document_passes_libsbml_consistency_checks(regimen, patient, days):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", b12pk.B12pkWarning)
        text = sbml.to_sbml(patient, regimen, days=days)
    assert text.lstrip().startswith("<?xml")
    assert sbml.check_sbml(text) == []  # errors, warnings and unit checks: none


def test_check_sbml_reports_problems():
    text = sbml.to_sbml(PA, IM, days=60).replace('compartment="body"', 'compartment="nowhere"')
    messages = sbml.check_sbml(text)
    assert messages and any("nowhere" in m or "compartment" in m for m in messages)


def test_species_parameters_and_units_are_declared():
    model = _doc(sbml.to_sbml(PA, IM, days=60))
    assert model.getLevel() == 3 and model.getVersion() == 2
    assert model.getTimeUnits() == "day"
    assert model.getSubstanceUnits() == "ug" and model.getExtentUnits() == "ug"
    ud = model.getUnitDefinition("ug")
    assert ud.getUnit(0).getKind() == libsbml.UNIT_KIND_GRAM and ud.getUnit(0).getScale() == -6
    day = model.getUnitDefinition("day").getUnit(0)
    assert day.getKind() == libsbml.UNIT_KIND_SECOND and day.getMultiplier() == 86400.0
    species = {model.getSpecies(i).getId(): model.getSpecies(i)
               for i in range(model.getNumSpecies())}
    assert set(species) == {"depot_hydroxocobalamin", "nasal_hydroxocobalamin",
                            "free_hydroxocobalamin", "ileum", "enterocyte", "holotc", "holohc",
                            "protein_bound", "stores", "urine", "faeces", "unabsorbed"}
    for s in species.values():
        assert s.getSubstanceUnits() == "ug" and s.getHasOnlySubstanceUnits()
    assert species["urine"].getCompartment() == "outside"
    assert species["stores"].getCompartment() == "body"
    # initial amounts are b12pk's initial state
    df = b12pk.simulate([], PA, days=1)
    assert species["stores"].getInitialAmount() == pytest.approx(df["stores_ug"].iloc[0],
                                                                 rel=1e-12)
    params = {model.getParameter(i).getId(): model.getParameter(i)
              for i in range(model.getNumParameters())}
    table = b12pk.parameter_table()
    for _, row in table.iterrows():
        assert params[row["name"]].getValue() == row["value"]
        assert params[row["name"]].isSetUnits()
    assert params["holotc_half_life_h"].getUnits() == "hour"
    assert params["uptake_vmax_ug_per_day"].getUnits() == "ug_per_day"
    for pid, unit in (("k_tc", "per_day"), ("k_st", "per_day"), ("k_reab", "per_day"),
                      ("if_cap", "ug"), ("k_if_recovery", "per_day"), ("f_reab", "dimensionless"),
                      ("plasma_ref_ug", "ug"), ("k_depot_hydroxocobalamin", "per_day"),
                      ("k_renal_hydroxocobalamin", "per_day"), ("egfr_ml_min", "mL_per_min"),
                      ("release_half_life_h_hydroxocobalamin", "hour"),
                      ("serum_pmol_per_l", "pmol_per_L"), ("serum_pg_per_ml", "pg_per_mL"),
                      ("stores_ug", "ug")):
        assert params[pid].getUnits() == unit, pid
    assert model.getAssignmentRuleByVariable("serum_pmol_per_l") is not None
    # PA: no intrinsic factor, so no IF capacity and no enterohepatic reabsorption, but the
    # reaction exists (same structure for every patient)
    assert params["if_cap"].getValue() == 0.0 and params["k_reab"].getValue() == 0.0
    assert model.getReaction("flow_stores_to_ileum") is not None


def test_parameter_notes_and_annotations_carry_unit_status_and_source():
    model = _doc(sbml.to_sbml(PA, ORAL, days=5))
    table = b12pk.parameter_table()
    for _, row in table.iterrows():
        p = model.getParameter(row["name"])
        notes = p.getNotesString()
        assert f"status: {row['status']}" in notes
        assert "source:" in notes and row["source"].split()[0] in notes
        ann = p.getAnnotationString()
        assert sbml.ANNOTATION_NS in ann and f'status="{row["status"]}"' in ann
    assert "derived" in model.getParameter("k_st").getNotesString()


# ---------------------------------------------------------------------------------------
# Generated from the declaration

def test_structure_is_generated_from_the_declaration():
    """Every declared compartment, rate, flow and output is in the document, each flow's
    kinetic law is its law's SBML template filled in, and each rate's note its formula."""
    decl = declaration()
    forms = ("cyanocobalamin", "hydroxocobalamin")
    doses = [DoseEvent(0, 1000, "im", f) for f in forms]
    text = sbml.to_sbml(PA, doses, days=5)
    assert sbml.check_sbml(text) == []
    model = _doc(text)
    species = {model.getSpecies(i).getId() for i in range(model.getNumSpecies())}
    expected = {f"{c.name}_{f}" if c.per_form else c.name
                for c in decl.compartments for f in (forms if c.per_form else (None,))}
    assert species == expected
    for name, expr in decl.rates:
        ids = [f"{name}_{f}" for f in forms] if name in decl.per_form_rates else [name]
        for pid in ids:
            assert expr.text in model.getParameter(pid).getNotesString(), pid
    n_reactions = 0
    for f in decl.flows:
        src_forms = forms if decl.compartment(f.src).per_form else (None,)
        for form in src_forms:
            src = f"{f.src}_{form}" if form else f.src
            dst = f"{f.dst}_{form}" if decl.compartment(f.dst).per_form else f.dst
            r = model.getReaction(f"flow_{src}_to_{dst}")
            assert r is not None, (src, dst)
            n_reactions += 1
            fill = {k: f"{v}_{form}" if v in decl.per_form_rates else v
                    for k, v in f.params.items()}
            fill.update(amount=src, bound=f.bound,
                        total="(" + " + ".join(f"{f.src}_{g}" if g else f.src
                                               for g in src_forms) + ")")
            got = libsbml.formulaToL3String(r.getKineticLaw().getMath())
            assert _same_math(got, laws.SBML[f.law].format(**fill)), (got, f.law)
    assert model.getNumReactions() == n_reactions + 2  # + the diet's two inputs
    for col, expr in decl.outputs:
        assert model.getParameter(col) is not None
        if expr.text != col:
            assert model.getAssignmentRuleByVariable(col) is not None


def test_no_rate_law_or_route_is_written_in_sbml_py():
    """The export reads laws, rates, routes and outputs from the declaration: b12pk/sbml.py's
    code (docstrings and comments aside) names no parameter or rate of data/model.toml, and
    no compartment or route except in prose; no law formula is written in it."""
    decl = declaration()
    source = inspect.getsource(sbml)
    tree = ast.parse(source)
    for node in ast.walk(tree):  # drop docstrings
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            node.body = body[1:]
    strings = [n.value for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    strings += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
    strings += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    names = set(b12pk.parameter_table()["name"]) | {n for n, _ in decl.rates}
    found = {n for n in names for s in strings if re.search(rf"\b{re.escape(n)}\b", s)}
    words = set(decl.routes) | {c.name for c in decl.compartments}
    found |= {n for n in words for s in strings
              if s == n or re.search(rf"\b{re.escape(n)}_|[({{]{re.escape(n)}\b", s)}
    assert not found, sorted(found)
    for template in laws.SBML.values():
        assert template not in source


# ---------------------------------------------------------------------------------------
# Repeating dose events

def _instants(regimen, days):
    from b12pk.engine import core as engine

    return sorted({ev.time_days for ev in engine.events_from(regimen, days)})


@pytest.mark.parametrize("regimen,days,n_events", [
    (ORAL, 3650, 1),
    (b12pk.Regimen.daily(1000), 36500, 1),
    ("1000 mcg cyanocobalamin IM monthly", 365, 1),
    (ROUTES["IM hydroxo"], 365, 3),  # Mon/Wed/Fri of two weeks, then every 2 months
    (IM, 120, 3),
    (NASAL, 365, 1),
    ("1000 mcg oral three times daily", 365, 1),  # every 8 h, to 1e-12
    ("1000 mcg oral daily for 10 days, then 500 mcg oral daily", 60, 2),
    ([DoseEvent(t, 1000, "im", "cyano") for t in (0, 3, 10, 11, 40, 70, 100)], 120, 3),
])
def test_dose_instants_become_repeating_events(regimen, days, n_events):
    series = sbml.dose_series(regimen, days)
    assert len(series) == n_events
    # together the series give every dose instant of the engine once, at its time
    times = np.sort(np.concatenate([s.times() for s in series]))
    expected = np.array(_instants(regimen, days))
    assert times.size == expected.size
    np.testing.assert_allclose(times, expected, rtol=1e-13, atol=1e-12)
    if np.all(expected == np.round(expected)):  # whole days: the very same numbers
        np.testing.assert_array_equal(times, expected)
    if days <= 3650:
        model = _doc(sbml.to_sbml(PA, regimen, days=days))
        assert model.getNumEvents() == n_events
        ev = model.getEvent(0)
        assert ev.getTrigger().getInitialValue() is False  # a dose at t = 0 fires
        assert ev.getTrigger().getPersistent()
        assert "dose_1_given" in libsbml.formulaToL3String(ev.getTrigger().getMath())
        assert model.getParameter("dose_1_count").getValue() == series[0].count


def test_same_instant_doses_make_one_event():
    doses = [DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 500.0, "intranasal", "hydroxocobalamin"),
             DoseEvent(0.0, 1000.0, "im", "cyanocobalamin"),
             DoseEvent(0.25, 2.0, "sublingual", "methylcobalamin")]
    model = _doc(sbml.to_sbml("healthy", doses, days=3))
    assert model.getNumEvents() == 2
    assert len(sbml.dose_series(doses, 3)[0].doses) == 4


def test_write_sbml_is_atomic(tmp_path):
    path = sbml.write_sbml(tmp_path / "pa.xml", PA, ORAL, days=5)
    assert path.read_text(encoding="utf-8") == sbml.to_sbml(PA, ORAL, days=5)
    assert [p.name for p in tmp_path.iterdir()] == ["pa.xml"]


def test_bad_input_is_a_b12pk_error():
    with pytest.raises(b12pk.InputError):
        sbml.to_sbml(PA, ORAL, days=-1)
    with pytest.raises(b12pk.UnknownNameError):
        sbml.to_sbml("no-such-patient", ORAL, days=5)


def test_missing_extra_says_install_b12pk_sbml(monkeypatch):
    monkeypatch.setitem(sys.modules, "libsbml", None)  # import libsbml -> ImportError
    with pytest.raises(b12pk.B12pkError, match=r"install b12pk\[sbml\]"):
        sbml.to_sbml(PA, ORAL, days=5)
    with pytest.raises(ImportError):
        sbml.check_sbml("<sbml/>")
    monkeypatch.setitem(sys.modules, "roadrunner", None)
    with pytest.raises(sbml.SBMLUnavailableError, match=r"install b12pk\[sbml\]"):
        sbml.load_roadrunner("<sbml/>")


# ---------------------------------------------------------------------------------------
# Cross-check against libRoadRunner

@pytest.mark.parametrize("route", ROUTES)
def test_roadrunner_agrees_with_b12pk_for_every_route(route):
    _cross_check(f"{route}, pernicious anaemia", ROUTES[route], PA, 120)


SCENARIOS = [
    # name, regimen, patient, days
    ("daily oral, healthy (IF capacity)", "1000 mcg oral daily", "healthy", 60),
    ("IM cyanocobalamin monthly, renal", "1000 mcg cyanocobalamin IM monthly",
     "renal-impairment", 90),
    ("intranasal every 3 days, healthy", NASAL, "healthy", 60),
    ("oral three times daily, healthy (IF recovery between doses)",
     "5 mcg oral three times daily", "healthy", 20),
]


@pytest.mark.parametrize("name,regimen,patient,days", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_roadrunner_agrees_with_b12pk(name, regimen, patient, days):
    _cross_check(name, regimen, patient, days)


#: Every route, and doses of several routes at one instant, for the presets
MIXED = ([DoseEvent(7.0 * k, 1000.0, "im", "cyanocobalamin") for k in range(4)]
         + [DoseEvent(float(t), 1000.0, "oral", "cyanocobalamin") for t in range(21, 60)]
         + [DoseEvent(float(t), 1500.0, "intranasal", "hydroxocobalamin")
            for t in range(30, 60, 5)]
         + [DoseEvent(45.25, 500.0, "sublingual", "methylcobalamin"),
            DoseEvent(50.0, 1000.0, "deep-sc", "hydroxocobalamin"),
            DoseEvent(55.5, 100.0, "iv", "cyanocobalamin")])


@pytest.mark.slow
@pytest.mark.parametrize("preset", b12pk.PRESETS)
def test_roadrunner_agrees_with_b12pk_for_every_preset(preset):
    _cross_check(f"mixed routes, {preset}", MIXED, preset, 70)


def test_roadrunner_agrees_for_same_instant_doses_and_hourly_output():
    doses = [DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 3.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 500.0, "intranasal", "hydroxocobalamin"),
             DoseEvent(0.0, 100.0, "im", "cyanocobalamin"),
             DoseEvent(0.25, 2.0, "sublingual", "methylcobalamin"),
             DoseEvent(1.0, 50.0, "iv", "cyanocobalamin")]
    _, ref = _cross_check("same-instant doses, hourly", doses, "healthy", 4,
                          np.arange(0, 4 * 24 + 1) / 24.0)
    # the sequential IF arithmetic matters here: 1 then 3 ug with capacity 1.5 ug
    assert ref["unabsorbed_ug"].iloc[0] > 0


def test_series_stop_at_their_last_dose():
    """Beyond the horizon (and after a phase's last dose) no event gives a dose."""
    _roadrunner()
    regimen = "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then 500 mcg " \
              "cyanocobalamin IM every 20 days"
    rr = sbml.simulate_roadrunner(sbml.to_sbml(PA, regimen, days=100), np.arange(201.0))
    ref = b12pk.simulate(regimen, PA, 100)
    assert rr["dosed_ug"].iloc[-1] == ref["dosed_ug"].iloc[-1] == 6 * 1000 + 4 * 500
    assert rr["dosed_ug"].iloc[92] == rr["dosed_ug"].iloc[-1]


def test_one_loaded_model_reparameterised_per_patient():
    """The benchmark's way: set init() values from patient_values, resetAll, simulate."""
    _roadrunner()
    days = 90
    times = np.arange(days + 1.0)
    rr = sbml.load_roadrunner(sbml.to_sbml(PA, IM, days=days))
    for patient in ("renal-impairment", "healthy", Patient.preset("vegan", egfr_ml_min=45)):
        for sid, value in sbml.patient_values(patient, IM, days).items():
            rr.model.setValue(f"init({sid})", value)
        rr.resetAll()
        out = sbml.simulate_roadrunner(rr, times)
        rel, col, t = _worst(out, b12pk.simulate(IM, patient, days, times=times))
        assert rel <= RTOL, (patient, col, t, rel)


@pytest.mark.slow
def test_ten_years_of_daily_oral_dosing_loads_in_under_a_second():
    """Issue 16: one repeating event, so libRoadRunner's load time does not grow with the
    dose count (it was 84 s with one event per dose)."""
    _roadrunner()
    days = 3650
    text = sbml.to_sbml(PA, ORAL, days=days)
    sbml.load_roadrunner(sbml.to_sbml(PA, ORAL, days=30))  # warm-up (first JIT)
    t0 = time.process_time()   # CPU time: robust to the parallel tests' load
    rr = sbml.load_roadrunner(text)
    load_s = time.process_time() - t0
    print(f"\n[sbml] 10 years of daily oral dosing: {_doc(text).getNumEvents()} event, "
          f"libRoadRunner load {load_s:.3f} s")
    assert load_s < 1.0
    times = np.arange(0.0, days + 1.0, 10.0)
    out = sbml.simulate_roadrunner(rr, times)
    rel, col, t = _worst(out, b12pk.simulate(ORAL, PA, days, times=times))
    assert rel <= RTOL, (col, t, rel)
    assert out["dosed_ug"].iloc[-1] == 2000.0 * days


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): event count, horizons, regimen-like input

class _Built(Exception):
    """Raised where the document would be built (past the event-count check)."""


def _no_document(monkeypatch):
    def built():
        raise _Built
    monkeypatch.setattr(sbml, "_libsbml", built)


def test_regular_schedules_of_any_length_are_one_event(monkeypatch):
    _no_document(monkeypatch)
    monkeypatch.setattr(sbml, "MAX_SBML_EVENTS", 1)
    for regimen in (b12pk.Regimen.daily(1000), "1000 mcg cyanocobalamin IM monthly"):
        with pytest.raises(_Built):  # past the limit check
            sbml.to_sbml("healthy", regimen, days=36500)


@pytest.mark.parametrize("limit", [4, 300])
def test_too_many_irregular_dose_events_are_refused_before_the_document(limit, monkeypatch):
    _no_document(monkeypatch)
    monkeypatch.setattr(sbml, "MAX_SBML_EVENTS", limit)
    # dose times with no common interval: every two instants one event (two points are a
    # series); 2 * limit + 2 instants need limit + 1 events
    times = np.cumsum(1.0 + 0.5 * np.sin(np.arange(2 * limit + 2) ** 2))
    doses = [DoseEvent(float(t), 100.0, "oral", "cyano") for t in times]
    with pytest.raises(b12pk.ResourceError) as info:
        sbml.to_sbml("healthy", doses, days=float(times[-1]) + 1)
    message = str(info.value)
    for needle in (f"{limit + 1:,} dose events", f"limit of {limit:,}", "shorter horizon",
                   f"days <= {times[2 * limit]:g} fits"):
        assert needle in message, message


def test_the_event_limit_counts_series(monkeypatch):
    monkeypatch.setattr(sbml, "MAX_SBML_EVENTS", 2)
    same_day = [DoseEvent(d, a, r, "cyano") for d in range(4)
                for a, r in ((1000, "oral"), (500, "im"))]  # 8 doses, 4 instants, 1 series
    assert _doc(sbml.to_sbml("healthy", same_day, days=10)).getNumEvents() == 1
    # series (0, 1), (3, 7) and (15)
    irregular = [DoseEvent(t, 1000, "im", "cyano") for t in (0, 1, 3, 7, 15)]
    assert [(s.first, s.count) for s in sbml.dose_series(irregular, 20)] == \
        [(0, 2), (3, 2), (15, 1)]
    with pytest.raises(b12pk.ResourceError,
                       match=r"3 dose events .* limit of 2; .*days <= 15 fits"):
        sbml.to_sbml("healthy", irregular, days=20)


@pytest.mark.parametrize("days", [1e-10, 0, math.nan, 36501, 10 ** 400, "5"])
def test_export_horizon_is_checked_as_simulate_checks_it(days):
    with pytest.raises(b12pk.HorizonError) as exp:
        sbml.to_sbml(PA, ORAL, days=days)
    with pytest.raises(b12pk.HorizonError) as sim:
        b12pk.simulate(ORAL, PA, days=days)
    assert str(exp.value) == str(sim.value)


def test_shortest_horizon_exports():
    assert _doc(sbml.to_sbml(PA, ORAL, days=1e-5)).getNumEvents() == 1


@pytest.mark.parametrize("regimen", [
    [DoseEvent(0, 1000, "im", "hydroxo"), DoseEvent(30, 1000, "im", "hydroxo")],
    (DoseEvent(0, 1000, "im", "hydroxo"), DoseEvent(30, 1000, "im", "hydroxo")),
    b12pk.Regimen.from_events([DoseEvent(0, 1000, "im", "hydroxo"),
                               DoseEvent(30, 1000, "im", "hydroxo")]),
    "1000 mcg hydroxocobalamin IM on days 1, 31",
])
def test_regimen_like_inputs_export_the_same_document(regimen):
    ref = sbml.to_sbml(PA, "1000 mcg hydroxocobalamin IM on days 1, 31", days=60)
    assert sbml.to_sbml(PA, regimen, days=60) == ref


@pytest.mark.parametrize("regimen, cls, match", [
    (42, b12pk.InputError, "cannot export int 42"),
    (DoseEvent(0, 1000, "im", "cyano"), b12pk.InputError, "wrap a single DoseEvent"),
    (b12pk.Regimen.once(1000, "im", day=400), b12pk.HorizonError,
     "gives no dose within the horizon of days=30"),
    ([DoseEvent(400, 1000, "im", "cyano")], b12pk.HorizonError, "first at day 400"),
])
def test_bad_regimen_like_input_is_refused(regimen, cls, match):
    with pytest.raises(cls, match=match):
        sbml.to_sbml(PA, regimen, days=30)


def test_no_regimen_or_an_empty_list_is_no_treatment():
    assert sbml.to_sbml(PA, [], days=5) == sbml.to_sbml(PA, None, days=5)
