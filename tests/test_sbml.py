"""SBML export (issue 9): a valid SBML Level 3 document with units, sources and dose events,
and a cross-check of b12pk against libRoadRunner simulating the exported model."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

import b12pk
from b12pk import DoseEvent, Patient
from b12pk import sbml

libsbml = pytest.importorskip("libsbml", reason="SBML export needs the b12pk[sbml] extra")

PA = Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
ORAL = "2000 mcg oral daily"
IM = "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then monthly"
NASAL = "1000 mcg cyanocobalamin intranasal every 3 days"

LINEAR_RTOL = 1e-6
"""Agreement required where the model is linear (no injected/nasal B12: free pools empty)."""
NONLINEAR_RTOL = 1e-6
"""Stated agreement where haptocorrin binding and tissue uptake saturate (injections, nasal):
CVODE (rtol 1e-10, atol 1e-10 ug) against b12pk (LSODA rtol 1e-10 in the transients, exact
matrix exponential after them); measured worst case about 1e-8."""

COMPARED = ("serum_pmol_per_l", "holotc_pmol_per_l", "stores_ug", "body_ug", "urine_ug",
            "faeces_ug", "unabsorbed_ug", "absorbed_ug", "dosed_ug")


def _doc(text: str):
    doc = libsbml.readSBMLFromString(text)
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    return doc.getModel()


def _worst(a, b) -> tuple[float, str, float]:
    """Worst relative difference over the compared columns: (rel, column, time)."""
    worst = (0.0, "", 0.0)
    for col in COMPARED:
        x = np.asarray(a[col], float)
        y = np.asarray(b[col], float)
        rel = np.abs(x - y) / np.maximum(np.abs(y), 1e-9)
        k = int(np.argmax(rel))
        if rel[k] > worst[0]:
            worst = (float(rel[k]), col, float(b["time_days"].iloc[k]))
    return worst


# ---------------------------------------------------------------------------------------
# The document

@pytest.mark.parametrize("regimen,patient,days", [
    (ORAL, PA, 30), (IM, PA, 120), (NASAL, "healthy", 30), (None, "renal-impairment", 10)])
def test_document_passes_libsbml_consistency_checks(regimen, patient, days):
    text = sbml.to_sbml(patient, regimen, days=days)
    assert text.lstrip().startswith("<?xml")
    assert sbml.check_sbml(text) == []  # errors, warnings and unit checks: none


def test_check_sbml_reports_problems():
    text = sbml.to_sbml(PA, IM, days=60).replace('compartment="plasma"', 'compartment="nowhere"')
    messages = sbml.check_sbml(text)
    assert messages and any("nowhere" in m or "compartment" in m for m in messages)


def test_species_parameters_and_units_are_declared():
    model = _doc(sbml.to_sbml(PA, IM, days=60))
    assert model.getLevel() == 3 and model.getTimeUnits() == "day"
    assert model.getSubstanceUnits() == "ug" and model.getExtentUnits() == "ug"
    ud = model.getUnitDefinition("ug")
    assert ud.getUnit(0).getKind() == libsbml.UNIT_KIND_GRAM and ud.getUnit(0).getScale() == -6
    day = model.getUnitDefinition("day").getUnit(0)
    assert day.getKind() == libsbml.UNIT_KIND_SECOND and day.getMultiplier() == 86400.0
    species = {model.getSpecies(i).getId(): model.getSpecies(i)
               for i in range(model.getNumSpecies())}
    for sid in ("depot_hydroxocobalamin", "nasal_hydroxocobalamin", "free_hydroxocobalamin",
                "ileum", "enterocyte", "holotc", "holohc", "stores", "urine", "faeces",
                "unabsorbed"):
        assert sid in species
        assert species[sid].getSubstanceUnits() == "ug"
        assert species[sid].getHasOnlySubstanceUnits()
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
    for pid in ("k_tc", "k_hc", "k_st", "k_sh", "k_reab", "k_loss", "if_cap", "if_krec",
                "k_depot_hydroxocobalamin", "k_renal_hydroxocobalamin", "serum_pmol_per_l"):
        assert pid in params and params[pid].isSetUnits()
    assert params["serum_pmol_per_l"].getUnits() == "pmol_per_L"
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


@pytest.mark.parametrize("regimen,days", [(ORAL, 30), (IM, 120), (NASAL, 30)])
def test_one_event_per_dose_instant(regimen, days):
    events = b12pk.Regimen.parse(regimen).dose_events(days)
    model = _doc(sbml.to_sbml(PA, regimen, days=days))
    assert model.getNumEvents() == len({e.time_days for e in events})
    ev = model.getEvent(0)
    assert ev.getTrigger().getInitialValue() is False  # a dose at t = 0 fires
    assert ev.getUseValuesFromTriggerTime()


def test_same_instant_doses_make_one_event():
    doses = [DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 500.0, "intranasal", "hydroxocobalamin"),
             DoseEvent(0.0, 1000.0, "im", "cyanocobalamin"),
             DoseEvent(0.25, 2.0, "sublingual", "methylcobalamin")]
    model = _doc(sbml.to_sbml("healthy", doses, days=3))
    assert model.getNumEvents() == 2


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

SCENARIOS = [
    # name, regimen, patient, days, linear?
    ("daily oral, PA", ORAL, PA, 60, True),
    ("daily oral, healthy (IF capacity)", "1000 mcg oral daily", "healthy", 60, True),
    ("IM loading then monthly, PA", IM, PA, 120, False),
    ("IM cyanocobalamin monthly, renal", "1000 mcg cyanocobalamin IM monthly",
     "renal-impairment", 90, False),
    ("intranasal every 3 days, healthy", NASAL, "healthy", 60, False),
    ("intranasal every 3 days, PA", NASAL, PA, 30, False),
]


@pytest.mark.parametrize("name,regimen,patient,days,linear", SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_roadrunner_agrees_with_b12pk(name, regimen, patient, days, linear):
    pytest.importorskip("roadrunner", reason="the cross-check needs libroadrunner "
                        "(the b12pk[sbml] extra)")
    times = np.arange(days + 1.0)
    rr = sbml.simulate_roadrunner(sbml.to_sbml(patient, regimen, days=days), times)
    ref = b12pk.simulate(regimen, patient, days, times=times)
    assert list(rr.columns) == [c for c in ref.columns]
    rel, col, t = _worst(rr, ref)
    tol = LINEAR_RTOL if linear else NONLINEAR_RTOL
    print(f"\n[sbml cross-check] {name}: worst relative difference {rel:.2e} "
          f"({col} at day {t:g}); tolerance {tol:g} ({'linear' if linear else 'nonlinear'})")
    assert rel <= tol


def test_roadrunner_agrees_for_same_instant_doses_and_hourly_output():
    pytest.importorskip("roadrunner", reason="the cross-check needs libroadrunner "
                        "(the b12pk[sbml] extra)")
    doses = [DoseEvent(0.0, 1.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 3.0, "oral", "cyanocobalamin"),
             DoseEvent(0.0, 500.0, "intranasal", "hydroxocobalamin"),
             DoseEvent(0.0, 100.0, "im", "cyanocobalamin"),
             DoseEvent(0.25, 2.0, "sublingual", "methylcobalamin"),
             DoseEvent(1.0, 50.0, "iv", "cyanocobalamin")]
    times = np.arange(0, 4 * 24 + 1) / 24.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", b12pk.B12pkWarning)  # IV is discouraged
        text = sbml.to_sbml("healthy", doses, days=4)
        ref = b12pk.simulate(doses, "healthy", 4, times=times)
    rr = sbml.simulate_roadrunner(text, times)
    rel, col, t = _worst(rr, ref)
    print(f"\n[sbml cross-check] same-instant doses, hourly: worst relative difference "
          f"{rel:.2e} ({col} at day {t:.3f}); tolerance {NONLINEAR_RTOL:g}")
    assert rel <= NONLINEAR_RTOL
    # the sequential IF arithmetic matters here: 1 then 3 ug with capacity 1.5 ug
    assert ref["unabsorbed_ug"].iloc[0] > 0


def test_one_loaded_model_reparameterised_per_patient():
    """The benchmark's way: set init() values from patient_values, resetAll, simulate."""
    pytest.importorskip("roadrunner", reason="the cross-check needs libroadrunner "
                        "(the b12pk[sbml] extra)")
    days = 90
    times = np.arange(days + 1.0)
    rr = sbml.load_roadrunner(sbml.to_sbml(PA, IM, days=days))
    for patient in ("renal-impairment", "healthy", Patient.preset("vegan", egfr_ml_min=45)):
        for sid, value in sbml.patient_values(patient, IM, days).items():
            rr.model.setValue(f"init({sid})", value)
        rr.resetAll()
        out = sbml.simulate_roadrunner(rr, times)
        rel, col, t = _worst(out, b12pk.simulate(IM, patient, days, times=times))
        assert rel <= NONLINEAR_RTOL, (patient, col, t, rel)


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): event count, horizons, regimen-like input

@pytest.mark.parametrize("regimen, days, count", [
    (b12pk.Regimen.daily(1000), 36500, "36,500"),      # the 100-year export of the report
    (b12pk.Regimen.daily(1000), 5001, "5,001"),        # one over the limit
    ("1000 mcg oral three times daily", 2000, "6,000"),
    ([DoseEvent(t / 24, 1000, "oral", "cyano") for t in range(6000)], 300, "6,000"),
])
def test_too_many_dose_events_are_refused_before_the_document(regimen, days, count,
                                                              monkeypatch):
    monkeypatch.setattr(sbml, "_libsbml", lambda: pytest.fail("document built"))
    with pytest.raises(b12pk.ResourceError) as info:
        sbml.to_sbml("healthy", regimen, days=days)
    message = str(info.value)
    for needle in (f"{count} dose events", "limit of 5,000", "shorter horizon"):
        assert needle in message, message


def test_the_event_limit_counts_dose_instants(monkeypatch):
    monkeypatch.setattr(sbml, "MAX_SBML_EVENTS", 4)
    same_day = [DoseEvent(d, a, r, "cyano") for d in range(4)
                for a, r in ((1000, "oral"), (500, "im"))]  # 8 doses at 4 instants
    assert _doc(sbml.to_sbml("healthy", same_day, days=10)).getNumEvents() == 4
    with pytest.raises(b12pk.ResourceError,
                       match=r"10 dose events .* limit of 4; .*days <= 4 fits"):
        sbml.to_sbml("healthy", b12pk.Regimen.daily(1000), days=10)


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
