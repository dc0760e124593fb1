"""Regimen comparison: defaults, summary metrics, patient files, atomic output."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import b12pk
from b12pk.analysis.compare import (SUMMARY_COLUMNS, compare, default_patients, default_regimens,
                           load_patients, summarize)
from b12pk.io import atomic_output_dir

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_default_regimens_quote_their_seed_verbatim():
    if not SEEDS.is_dir():
        pytest.skip(f"seed documents not found at {SEEDS}")
    for r in default_regimens():
        seed = normalise((SEEDS / r.seed_file).read_text(encoding="utf-8"))
        assert normalise(r.quote) in seed, (r.label, r.seed_file)


def test_defaults_cover_the_contested_regimens():
    texts = [r.regimen.to_text() for r in default_regimens()]
    assert len(texts) >= 9
    routes = {route for r in default_regimens() for route in r.regimen.routes}
    assert {"oral", "im", "intranasal"} <= routes
    assert any("100 mcg" in t for t in texts)
    assert any("every 3 months" in t for t in texts)


def test_default_patients_are_deficient_normal_absorber_and_pernicious_anaemia():
    pats = default_patients()
    assert [p.patient.baseline_serum_pmol_per_l for p in pats] == [110.0, 110.0]
    assert pats[0].patient.if_route_factor == 1.0
    assert pats[1].patient.if_route_factor == 0.0


def synthetic(serum: list[float]) -> pd.DataFrame:
    n = len(serum)
    return pd.DataFrame({"time_days": np.arange(n, dtype=float), "serum_pmol_per_l": serum,
                         "urine_ug": np.linspace(0, 5, n), "stores_ug": np.linspace(100, 200, n)})


def test_summary_arithmetic_on_a_known_curve():
    serum = [100.0] * 10 + [200.0] * 10 + [300.0] * 381  # days 0-400
    regimen = b12pk.Regimen.parse("1000 mcg IM every 100 days")
    s = summarize(synthetic(serum), regimen, days=400)
    assert s["days_to_leave_deficient"] == 10.0  # first day >= 133 pmol/L
    assert s["serum_1mo_pmol_per_l"] == 300.0
    assert s["pct_time_deficient"] == pytest.approx(100 * 9 / 400)     # days 1-9 of 1-400
    assert s["pct_time_not_replete"] == pytest.approx(100 * 19 / 400)
    assert s["total_dose_ug"] == 4000.0 and s["n_injections"] == 4.0
    assert s["stores_end_ug"] == 200.0 and s["urine_total_ug"] == 5.0
    assert s["trough_ss_pmol_per_l"] == 300.0


def test_metrics_beyond_the_horizon_are_nan():
    s = summarize(synthetic([150.0] * 61), b12pk.Regimen.daily(1000), days=60)
    assert s["serum_1mo_pmol_per_l"] == 150.0
    assert math.isnan(s["serum_3mo_pmol_per_l"]) and math.isnan(s["serum_12mo_pmol_per_l"])


def test_never_leaving_the_deficient_band_is_nan():
    s = summarize(synthetic([100.0] * 31), b12pk.Regimen.daily(1), days=30)
    assert math.isnan(s["days_to_leave_deficient"])
    assert s["pct_time_deficient"] == 100.0


def test_compare_summary_has_one_row_per_regimen_and_patient():
    comp = compare(["2000 mcg oral daily", "1000 mcg IM monthly"],
                   ["pernicious-anaemia", "healthy"], days=60)
    assert len(comp.summary) == 4
    assert list(comp.summary.columns[3:]) == list(SUMMARY_COLUMNS)
    assert set(comp.by_patient()) == {p.label for p in comp.patients}


def test_oral_beats_im_100ug_in_a_normal_absorber_but_order_is_reported_not_assumed():
    comp = compare(["1000 mcg oral daily", "100 mcg cyanocobalamin IM monthly"],
                   [b12pk.Patient.preset("vegan", serum_pmol_per_l=110)], days=180)
    s = comp.summary.set_index("regimen")["serum_6mo_pmol_per_l"]
    assert s["1000 mcg oral daily"] > s["100 mcg cyanocobalamin IM monthly"]


def test_duplicate_labels_are_made_unique():
    comp = compare(["1000 mcg oral daily", "1000 mcg oral daily"], ["healthy"], days=10)
    assert comp.summary["regimen"].nunique() == 2


def test_compare_rejects_empty_and_bad_inputs():
    with pytest.raises(b12pk.InputError, match="at least one"):
        compare([], ["healthy"], days=10)
    with pytest.raises(b12pk.InputError, match="cannot compare"):
        compare([42], ["healthy"], days=10)
    with pytest.raises(b12pk.HorizonError):
        compare(["1000 mcg oral daily"], ["healthy"], days=-3)


def test_progress_is_reported_for_every_simulation():
    calls = []
    compare(["1000 mcg oral daily"], ["healthy", "vegan"], days=5,
            progress=lambda done, total, label: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_patient_file_round_trip(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[patient]]\nlabel = "CKD"\npreset = "renal-impairment"\negfr_ml_min = 25\n'
                 '[[patient]]\npreset = "vegan"\nserum_pmol_per_l = 90\n', encoding="utf-8")
    pats = load_patients(f)
    assert pats[0].label == "CKD" and pats[0].patient.egfr_ml_min == 25
    assert pats[1].patient.baseline_serum_pmol_per_l == 90


@pytest.mark.parametrize("content, match", [
    ("", "the file is empty"),
    ("[[patient]]\nlabel = 'x'\n", "needs 'preset'"),
    ("[[patient]]\npreset = 3\n", "must be text"),
    ("[[patient\npreset = 'vegan'", "not valid"),
    (b"\x00\x01\xff", "binary file"),
])
def test_malformed_patient_files_are_rejected(tmp_path, content, match):
    f = tmp_path / "p.toml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(b12pk.FileFormatError, match=match):
        load_patients(f)


def test_unknown_setting_in_patient_file_is_rejected(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[patient]]\npreset = "vegan"\negfr = 20\n', encoding="utf-8")
    with pytest.raises(b12pk.UnknownNameError, match="egfr"):
        load_patients(f)


def test_missing_patient_file_is_rejected(tmp_path):
    with pytest.raises(b12pk.FileFormatError, match="no such file; expected a TOML patient file"):
        load_patients(tmp_path / "nope.toml")


def _earlier_output(out):
    """An earlier b12pk output folder (signed by atomic_output_dir, so it may be replaced)."""
    with atomic_output_dir(out) as tmp:
        (tmp / "old.txt").write_text("old")


def test_atomic_output_dir_keeps_earlier_output_on_failure(tmp_path):
    out = tmp_path / "rep"
    _earlier_output(out)
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("boom")
    assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_atomic_output_dir_replaces_on_success(tmp_path):
    out = tmp_path / "rep"
    _earlier_output(out)
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert "old.txt" not in {p.name for p in out.iterdir()}
    assert (out / "new.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_atomic_output_dir_refuses_a_users_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(b12pk.FileFormatError, match="did not write"):
        with atomic_output_dir(out):
            pass
    assert (out / "notes.txt").read_text() == "mine"


def test_atomic_output_dir_refuses_a_file_in_the_way(tmp_path):
    f = tmp_path / "rep"
    f.write_text("x")
    with pytest.raises(b12pk.FileFormatError, match="not a folder"):
        with atomic_output_dir(f):
            pass


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): horizons, regimen-like input, unique labels, memory

from b12pk import DoseEvent, NamedPatient, NamedRegimen, Patient, Regimen  # noqa: E402

DAILY = Regimen.parse("1000 mcg oral daily")
MONTHLY = Regimen.parse("1000 mcg IM monthly")


@pytest.mark.parametrize("days", [1e-10, 0, -3, math.nan, 36501, 10 ** 400, "30", True])
def test_compare_horizon_is_checked_as_simulate_checks_it(days):
    with pytest.raises(b12pk.HorizonError) as comp:
        compare([DAILY], ["healthy"], days=days)
    with pytest.raises(b12pk.HorizonError) as sim:
        b12pk.simulate(DAILY, "healthy", days=days)
    assert str(comp.value) == str(sim.value)


@pytest.mark.parametrize("days", [1e-5, 0.5, np.float32(2.5), np.int64(3)])
def test_compare_short_and_numpy_horizons_work(days):
    comp = compare([DAILY, MONTHLY], ["healthy"], days=days)
    row = comp.summary.iloc[0]
    assert math.isfinite(row["trough_ss_pmol_per_l"]) and math.isfinite(row["stores_end_ug"])


EVENTS = [DoseEvent(0, 1000, "im", "cyano"), DoseEvent(30, 1000, "im", "cyano")]


@pytest.mark.parametrize("regimens", [[EVENTS], [tuple(EVENTS)], [Regimen.from_events(EVENTS)],
                                      ["1000 mcg IM on days 1, 31"], "1000 mcg IM on days 1, 31",
                                      Regimen.from_events(EVENTS)])
def test_every_regimen_like_input_is_compared_the_same(regimens):
    comp = compare(regimens, "healthy", days=60)
    ref = b12pk.simulate(EVENTS, "healthy", days=60, hourly_after_injections=True)
    (df,) = comp.results.values()
    pd.testing.assert_frame_equal(df, ref)
    assert comp.summary["total_dose_ug"].iloc[0] == 2000


@pytest.mark.parametrize("regimens, patients, cls, match", [
    ([[]], ["healthy"], b12pk.DoseError, "compare needs at least one dose"),
    (EVENTS, ["healthy"], b12pk.InputError, "give the dose events of one regimen as one item"),
    (42, ["healthy"], b12pk.InputError, "regimens must be a list of regimens, got int"),
    ({"a": DAILY}, ["healthy"], b12pk.InputError, "got dict"),
    ([b"1000 mcg oral daily"], ["healthy"], b12pk.InputError, "cannot compare bytes"),
    ([NamedRegimen("x", "1000 mcg oral daily")], ["healthy"], b12pk.InputError,
     "regimen must be a Regimen"),
    ([NamedRegimen(3, DAILY)], ["healthy"], b12pk.InputError, "label 3 is not text"),
    ([DAILY], 7, b12pk.InputError, "patients must be a list of patients"),
    ([DAILY], [NamedPatient("p", "healthy")], b12pk.InputError, "patient must be a Patient"),
    ([Regimen.once(1000, "im", day=400)], ["healthy"], b12pk.HorizonError,
     "gives no dose within the horizon of days=30"),
])
def test_bad_compare_input_is_refused(regimens, patients, cls, match):
    with pytest.raises(cls, match=match):
        compare(regimens, patients, days=30)


LABEL_CASES = [
    ("same-text", ["1000 mcg oral daily", "1000 mcg oral daily"],
     ["1000 mcg oral daily", "1000 mcg oral daily (2)"]),
    ("case-and-spaces", ["1000 mcg oral daily", "1000 MCG  oral daily ", " 1000 mcg Oral daily"],
     ["1000 mcg oral daily", "1000 MCG oral daily (2)", "1000 mcg Oral daily (3)"]),
    ("suffix-taken", [NamedRegimen("x", DAILY), NamedRegimen("x", MONTHLY),
                      NamedRegimen("X (2)", DAILY)], ["x", "x (2)", "X (2) (2)"]),
    ("label-is-other-text", [NamedRegimen(MONTHLY.to_text(), DAILY), MONTHLY],
     [MONTHLY.to_text(), MONTHLY.to_text() + " (2)"]),
    ("same-regimen-object", [DAILY, DAILY], [DAILY.to_text(), DAILY.to_text() + " (2)"]),
    ("empty-label", [NamedRegimen("  ", DAILY)], [DAILY.to_text()]),
    ("labels-on-regimens", [DAILY.with_label("A"), MONTHLY.with_label("a")], ["A", "a (2)"]),
]


@pytest.mark.parametrize("regimens, labels", [c[1:] for c in LABEL_CASES],
                         ids=[c[0] for c in LABEL_CASES])
def test_regimen_labels_are_made_unique(regimens, labels):
    comp = compare(regimens, ["healthy"], days=3)
    assert [r.label for r in comp.regimens] == labels
    assert list(comp.summary["regimen"]) == labels
    assert len(comp.results) == len(regimens)  # nothing merged or overwritten
    assert len({k.casefold() for k in comp.summary["regimen"]}) == len(labels)


@pytest.mark.parametrize("patients, labels", [
    (["healthy", "healthy"], ["healthy", "healthy (2)"]),
    (["healthy", Patient.preset("healthy"), NamedPatient("HEALTHY", Patient.preset("vegan"))],
     ["healthy", "healthy (2)", "HEALTHY (3)"]),
    ([NamedPatient("", Patient.preset("vegan"))], ["vegan"]),
    ("vegan", ["vegan"]),
])
def test_patient_labels_are_made_unique(patients, labels):
    comp = compare([DAILY], patients, days=3)
    assert [p.label for p in comp.patients] == labels
    assert list(comp.summary["patient"]) == labels


@pytest.mark.parametrize("label", ["\x1b[2J", "nul\x00", "tab\there", "x" * 121])
def test_patient_labels_that_would_reach_the_report_raw_are_refused(label):
    with pytest.raises(b12pk.InputError, match="patient label"):
        compare([DAILY], [NamedPatient(label, Patient.preset("healthy"))], days=3)


def test_compare_memory_is_refused_before_any_simulation(monkeypatch):
    from b12pk import limits

    monkeypatch.setattr(limits, "memory_budget_bytes", lambda: 20_000_000)
    calls = []
    with pytest.raises(b12pk.ResourceError) as info:
        compare([MONTHLY, DAILY], ["healthy", "vegan"], days=36500,
                 progress=lambda *a: calls.append(a))
    message = str(info.value)
    for needle in ("comparing 2 regimen(s) for 2 patient(s) over 36500 days", "MB of memory",
                   "budget of 20 MB", "shorter horizon"):
        assert needle in message, message
    assert not calls


@pytest.mark.slow
@pytest.mark.parametrize("regimens, days, draws", [([MONTHLY, DAILY], 730, 0),
                                                   ([DAILY, "500 mcg oral twice daily"], 7300, 0),
                                                   ([MONTHLY, DAILY], 730, 20)])
def test_compare_memory_estimate_is_honest(regimens, days, draws):
    import tracemalloc

    from b12pk.analysis.compare import _as_named_regimens, compare_memory_bytes

    estimate = compare_memory_bytes(_as_named_regimens(regimens), 2, days, n_draws=draws)
    compare(regimens, ["healthy", "vegan"], days=30, uncertainty=min(draws, 2))  # warm-up
    tracemalloc.start()
    comp = compare(regimens, ["healthy", "vegan"], days=days, uncertainty=draws)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert comp.summary.shape[0] == 4
    assert peak / 2 < estimate < 2 * peak, (estimate, peak)


def test_patient_file_integers_too_large_for_a_float_are_refused(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[[patient]]\npreset = 'healthy'\negfr_ml_min = 1" + "0" * 400 + "\n",
                 encoding="utf-8")
    with pytest.raises(b12pk.FileFormatError, match="integer of 401 digits"):
        load_patients(f)


def test_compare_with_uncertainty_gives_intervals_from_each_draws_course():
    regs = ["1000 mcg IM monthly", "2000 mcg oral daily"]
    comp = compare(regs, ["pernicious-anaemia"], 120, uncertainty=12, seed=5)
    s = comp.summary
    for m in b12pk.analysis.compare.INTERVAL_METRICS:
        if "_12mo_" in m:  # beyond the 120-day horizon: NaN, as the metric
            assert s[f"{m}_p5"].isna().all() and s[m].isna().all()
            continue
        assert (s[f"{m}_p5"] <= s[f"{m}_p95"]).all(), m
    assert (s["trough_ss_pmol_per_l_p5"] < s["trough_ss_pmol_per_l_p95"]).all()
    df = comp.results[(comp.patients[0].label, comp.regimens[0].label)]
    assert {"serum_pmol_per_l_p5", "serum_pmol_per_l_p95"} <= set(df.columns)
    assert comp.uncertainty == {"draws": 12, "seed": 5}
    again = compare(regs, ["pernicious-anaemia"], 120, uncertainty=12, seed=5)
    pd.testing.assert_frame_equal(s, again.summary)


def test_compare_without_uncertainty_has_no_interval_columns():
    comp = compare(["1000 mcg IM monthly"], ["healthy"], 60)
    assert not [c for c in comp.summary.columns if c.endswith("_p5")]
    assert comp.uncertainty is None


# ---------------------------------------------------------------- at a glance

@pytest.fixture(scope="module")
def small_comparison():
    return b12pk.compare(["1000 mcg oral daily", "1000 mcg IM monthly"],
                         ["vegan", "pernicious-anaemia"], days=240)


def test_the_glance_table_holds_the_summary_figures(small_comparison):
    from b12pk.analysis.compare import at_a_glance

    c = small_comparison
    g = at_a_glance(c)
    s = c.summary
    assert list(g["patient"]) == list(s["patient"]) and list(g["regimen"]) == list(s["regimen"])
    assert np.allclose(g["steady-state trough (pmol/L)"], s["trough_ss_pmol_per_l"])
    assert np.allclose(g["time deficient (%)"], s["pct_time_deficient"])
    assert np.allclose(g["injections per year"], s["n_injections"] * 365 / 240)
    assert np.allclose(g["B12 per year (mg)"], s["total_dose_ug"] * 365 / 240 / 1000)


def test_the_glance_table_says_when_body_b12_leaves_the_usual_range():
    from b12pk.analysis.compare import at_a_glance

    c = compare(["1000 mcg hydroxocobalamin IM every other day for 6 weeks",
                 "100 mcg oral daily"], ["pernicious-anaemia"], 50)
    notes = dict(zip(at_a_glance(c)["regimen"], at_a_glance(c)["caveats"]))
    loading, oral = notes.values()
    assert "above the usual adult range" in loading
    assert "above the usual adult range" not in oral


def test_the_glance_reading_names_what_holds_and_what_falls(small_comparison):
    from b12pk.analysis.compare import at_a_glance, glance_reading

    g = at_a_glance(small_comparison)
    words = glance_reading(g, 258.2, 132.8)
    assert len(words) == 2 and all("steady-state trough" in w for w in words)
    forced = g.assign(**{"steady-state trough (pmol/L)": 100.0})
    assert "into the deficient band on" in glance_reading(forced, 258.2, 132.8)[0]


def test_cycle_envelope_holds_each_cycle_between_its_trough_and_peak(small_comparison):
    from b12pk.analysis.compare import cycle_envelope

    im = small_comparison.results[(small_comparison.patients[0].label, "1000 mcg IM monthly")]
    env = cycle_envelope(im)
    kept = env["serum_pmol_per_l"].notna()
    raw = im.loc[kept, "serum_pmol_per_l"]
    assert (env.loc[kept, "serum_pmol_per_l"] <= raw + 1e-9).all()
    assert (env.loc[kept, "serum_pmol_per_l_peak"] >= raw - 1e-9).all()
    cycle = env[(env["time_days"] > 31) & (env["time_days"] < 59)]
    assert cycle["serum_pmol_per_l"].nunique() == 1 == cycle["serum_pmol_per_l_peak"].nunique()
    oral = small_comparison.results[(small_comparison.patients[0].label, "1000 mcg oral daily")]
    flat = cycle_envelope(oral)
    assert np.allclose(flat["serum_pmol_per_l"], oral["serum_pmol_per_l"])
    assert np.allclose(flat["serum_pmol_per_l_peak"], oral["serum_pmol_per_l"])


def test_trough_course_carries_the_uncertainty_band():
    from b12pk.analysis.compare import trough_course

    df = b12pk.simulate("1000 mcg IM monthly", "pernicious-anaemia", days=90,
                        uncertainty=8, seed=1)
    low = trough_course(df)
    for col in ("serum_pmol_per_l_p5", "serum_pmol_per_l_p95"):
        between = low[(low["time_days"] > 31) & (low["time_days"] < 59)][col]
        assert between.nunique() == 1          # flat like the central course
    kept = low["serum_pmol_per_l"].notna()
    assert (low.loc[kept, "serum_pmol_per_l_p5"]
            <= low.loc[kept, "serum_pmol_per_l_p95"] + 1e-9).all()
    assert np.allclose(low["serum_pg_per_ml_p5"].dropna(),
                       b12pk.pmol_per_l_to_pg_per_ml(low["serum_pmol_per_l_p5"].dropna()))


def test_trough_course_is_the_level_before_the_next_dose(small_comparison):
    from b12pk.analysis.compare import trough_course

    oral = small_comparison.results[(small_comparison.patients[0].label, "1000 mcg oral daily")]
    assert np.allclose(trough_course(oral)["serum_pmol_per_l"], oral["serum_pmol_per_l"])
    im = small_comparison.results[(small_comparison.patients[0].label, "1000 mcg IM monthly")]
    low = trough_course(im)
    kept = low["serum_pmol_per_l"].notna()
    assert (low.loc[kept, "serum_pmol_per_l"] <= im.loc[kept, "serum_pmol_per_l"] + 1e-9).all()
    between = low[(low["time_days"] > 31) & (low["time_days"] < 59)]["serum_pmol_per_l"]
    assert between.nunique() == 1          # flat: the trough before the day-60 dose
    assert low["serum_pmol_per_l"].notna().all()     # the horizon ends at a full cycle
    cut = trough_course(im[im["time_days"] <= 225])    # it ends mid-cycle: no trough known
    assert cut.loc[cut["time_days"] > 210, "serum_pmol_per_l"].isna().all()


def test_glance_cell_keeps_a_decimal_of_injections_that_are_not_whole():
    from b12pk.report.comparison import glance_cell

    assert glance_cell("injections per year", 14.5) == "14.5"
    assert glance_cell("injections per year", 12.0) == "12"
    assert glance_cell("leaves the deficient band (day)", float("nan")) == "never"


def test_a_threaded_compare_leaves_the_warning_filters_as_they_were():
    import warnings

    before = list(warnings.filters)
    compare(["1000 mcg IM monthly", "2000 mcg oral daily"],
            ["pernicious-anaemia", "healthy"], 60, uncertainty=4, seed=1)
    assert list(warnings.filters) == before


def test_quiet_warnings_quiets_only_its_own_thread():
    import threading
    import warnings

    from b12pk.errors import quiet_warnings, warn

    heard = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_warnings():
            warn("dropped")
            t = threading.Thread(target=lambda: warn("from another thread"))
            t.start()
            t.join()
        warn("said")
        heard = [str(w.message) for w in caught]
    assert heard == ["from another thread", "said"]
    assert all(issubclass(w.category, b12pk.B12pkWarning) for w in caught)
