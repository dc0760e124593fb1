"""Data comparisons of the evidence analysis: each line is computed from the numbers by its
stated rule, and numbers that contradict the proposition give "contradicts" (issue 22)."""

from __future__ import annotations

import pandas as pd
import pytest

from b12pk.analysis import evidence as ev


@pytest.fixture
def trials(monkeypatch):
    """The trial datasets as copies the test may change."""
    data = {k: v.copy() for k, v in ev._trials().items()}
    monkeypatch.setattr(ev, "_trials", lambda: data)
    return data


@pytest.fixture
def literature(monkeypatch):
    """The physiology datasets as copies the test may change."""
    data = {name: ev._literature(name).copy()
            for name in ("carmel2008_table1.csv", "injection_urinary_loss.csv")}
    monkeypatch.setattr(ev, "_literature", lambda name: data.get(name))
    return data


def _set(df, value, **match):
    sel = pd.Series(True, index=df.index)
    for k, v in match.items():
        sel &= df[k] == v
    assert sel.any(), match
    df.loc[sel, "value"] = value


def test_the_shipped_data_lines_are_computed():
    lines = {name: e.line for name, e in ev.data_evidence().items()}
    assert set(lines) == set(ev.DATA_CHECKS)
    assert lines["ob12"] == "mixed"      # the 52-week per-protocol CI lies below 0
    assert all(e.rule for e in ev.data_evidence().values())


def test_judge_needs_every_comparison_for_support():
    assert ev.judge([True, True]) == "supports"
    assert ev.judge([True, False]) == "mixed"
    assert ev.judge([False, False]) == "contradicts"
    assert ev.judge([]) == "mixed"


def test_wilson_and_newcombe_reproduce_published_examples():
    # Newcombe RG, Stat Med 1998;17:873, example: 56/70 vs 48/80 -> 0.2 (0.0524, 0.3339)
    d, lo, hi = ev.newcombe(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # Wilson score interval of 81/263: 0.2553 to 0.3662 (Newcombe 1998, Stat Med 17:857)
    assert ev.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_pa_cohort_contradicts_when_patients_stay_deficient(trials):
    df = trials["pa_oral_cohort2024"]
    _set(df, 90.0, outcome="serum_b12", time_days=30)
    _set(df, 20.0, outcome="pct_normalised", time_days=30)
    _set(df, 60.0, outcome="pct_deficient", time_days=365)
    assert ev._pa_oral_cohort().line == "contradicts"
    _set(df, 300.0, outcome="serum_b12", time_days=30)
    assert ev._pa_oral_cohort().line == "mixed"


def test_kuzminski_contradicts_when_oral_is_worse_in_every_outcome(trials):
    df = trials["kuzminski1998"]
    _set(df, 200.0, arm="oral", outcome="serum_b12", time_days=120)
    _set(df, 400.0, arm="oral", outcome="mma", time_days=120)
    _set(df, 15.0, arm="oral", outcome="homocysteine", time_days=120)
    assert ev._kuzminski().line == "contradicts"
    _set(df, 1005.0, arm="oral", outcome="serum_b12", time_days=120)
    assert ev._kuzminski().line == "mixed"


def test_ob12_contradicts_when_every_interval_favours_im(trials):
    df = trials["ob12_sanzcuesta2020"]
    sel = df.outcome == "pct_normalised_difference"
    df.loc[sel, "spread"] = "-12 to -1"
    assert ev._ob12().line == "contradicts"
    df.loc[sel, "spread"] = "-2 to 3"
    assert ev._ob12().line == "supports"


def test_castelli_contradicts_when_oral_normalises_far_fewer(trials):
    df = trials["castelli2011"]
    df.loc[df.arm == "oral", "value"] = 40.0
    assert ev._castelli().line == "contradicts"


@pytest.mark.parametrize("value, line", [(100.0, "contradicts"), (200.0, "mixed"),
                                         (370.0, "supports")])
def test_lonterman_line_follows_the_band_of_the_last_mean(trials, value, line):
    _set(trials["lonterman2000"], value, time_days=28)
    assert ev._lonterman().line == line


def test_glass_contradicts_when_serum_falls_back(trials):
    _set(trials["glass1966"], 0.5, time_days=190)
    assert ev._glass().line == "contradicts"


def test_carmel_checks_contradict_on_contrary_numbers(literature):
    t = literature["carmel2008_table1.csv"]
    t.loc[(t.population == "pernicious-anaemia") & (t.dose_ug == 1000), "value_ug"] = 40.0
    assert ev._carmel_passive().line == "contradicts"
    t.loc[(t.quantity == "retained") & (t.dose_ug == 1000), "value_ug"] = 40.0
    assert ev._carmel_100_vs_1000().line == "contradicts"


def test_urine_checks_contradict_on_contrary_numbers(literature):
    u = literature["injection_urinary_loss.csv"]
    cyano = (u.form == "cyanocobalamin") & (u.dose_ug == 1000)
    u.loc[cyano, "urinary_loss_fraction"] = 0.3
    u.loc[cyano, "low"] = 0.3
    assert ev._urine_loss_cyano().line == "contradicts"
    hydroxo = u.form == "hydroxocobalamin"
    u.loc[hydroxo, "urinary_loss_fraction"] = 0.95
    assert ev._urine_hydroxo_vs_cyano().line == "contradicts"


def test_a_claim_on_the_other_side_flips_the_line(trials):
    df = trials["ob12_sanzcuesta2020"]
    df.loc[df.outcome == "pct_normalised_difference", "spread"] = "-12 to -1"
    line, text = ev._data_line(["!ob12"])
    assert line == "supports" and "[supports]" in text


def test_margin_is_the_relative_distance_to_the_line():
    check = ev._parse_check("A.serum_d1 >= REPLETE; A.trough_ss <= 300")
    values = {("A", "serum_d1"): ev.REPLETE * 1.01, ("A", "trough_ss"): 330.0}
    margins = ev._margins(check, ["A"], lambda lab, met: values[(lab, met)])
    by_text = {text.split(" (")[0]: m for m, text in margins}
    assert by_text["A.serum_d1 >= REPLETE"] == pytest.approx(0.01)
    assert by_text["A.trough_ss <= 300"] == pytest.approx(-0.1)


def test_close_calls_are_flagged_in_the_evidence_table():
    from b12pk.analysis.evidence import evaluate_claims

    t = evaluate_claims(ids=["C006", "C007", "C002", "C201"]).table.set_index("id")
    assert bool(t.loc["C007", "close_call"])    # IM and oral both replete on day 1: a tie
    assert abs(t.loc["C007", "closest_margin_pct"]) < 10.0
    # C006 fails just: a trough of 190 against its article's line of 200
    assert -10.0 < t.loc["C006", "closest_margin_pct"] < 0 and bool(t.loc["C006", "close_call"])
    # C201 fails clearly: its decisive comparison (a trough near 180 against 258) is far
    assert t.loc["C201", "closest_margin_pct"] < -10.0 and not bool(t.loc["C201", "close_call"])
    assert not bool(t.loc["C002", "close_call"])


def test_options_are_judged_one_by_one():
    from b12pk.analysis.evidence import evaluate_claims

    t = evaluate_claims(ids=["C101"]).table.set_index("id")
    # oral 1000-2000 ug daily holds, 1000 ug cyanocobalamin IM monthly without loading fails
    assert t.loc["C101", "model_line"] == "mixed"
    assert t.loc["C101", "scenarios_holding"].startswith("option 1: 5/5; option 2: 0/5")
    assert "[adequate(A*)] supports" in t.loc["C101", "uncertainty"]


def test_options_combine_to_a_line():
    assert ev._combine(["supports", "supports"]) == "supports"
    assert ev._combine(["supports", "contradicts"]) == "mixed"
    assert ev._combine(["contradicts", "contradicts"]) == "contradicts"
    assert ev._combine(["mixed", "supports"]) == "mixed"


def test_a_share_check_cannot_have_options():
    import b12pk

    with pytest.raises(b12pk.FileFormatError, match="cannot have options"):
        ev._parse_options("share[0.1,0.5]: adequate(A) || adequate(B)")
    assert len(ev._parse_options("adequate(A*) || adequate(B)")) == 2


def test_a_population_can_start_replete():
    import b12pk

    p = ev._patient("roux-en-y@replete")
    assert p.baseline_stores_ug == pytest.approx(b12pk.steady_state_stores_ug("healthy"))
    assert p.baseline_serum_pmol_per_l is None
    with pytest.raises(b12pk.FileFormatError, match="@replete"):
        ev._patient("roux-en-y@full")


def test_a_day_metric_reads_the_trough_when_a_dose_falls_that_day():
    df = ev._simulate("1000 mcg cyanocobalamin IM monthly", "vegan@110", None, (), 120.0)
    s = df.set_index("time_days")["serum_pmol_per_l"]
    at = ev.metric("serum_d90", df, 120.0)
    assert at == pytest.approx(s[90.0])
    assert at < s[89.0] and at < s[91.0] / 3   # before the day-90 injection acts


def test_a_replete_population_takes_a_share_claims_baseline():
    p = ev._patient("roux-en-y@replete", 90.0)
    assert p.baseline_serum_pmol_per_l == 90.0 and p.baseline_stores_ug is None


def test_treated_homocysteine_follows_the_groups_against_the_target(trials):
    assert ev._treated_hcy().line == "contradicts"       # 10.6, 12.2, 13.5 against 10
    for stem in ("kuzminski1998", "pa_oral_cohort2024"):
        df = trials[stem]
        df.loc[(df["outcome"] == "homocysteine") & (df["time_days"] > 0), "value"] = 8.0
    assert ev._treated_hcy().line == "supports"
    _set(trials["pa_oral_cohort2024"], 13.5, outcome="homocysteine", time_days=30)
    assert ev._treated_hcy().line == "mixed"


def test_a_claim_that_names_no_form_is_judged_with_each_form():
    from b12pk.analysis.evidence import evaluate_claims, load_claims

    row = load_claims()
    row = row[row["id"] == "C107"]
    assert "cyanocobalamin" in row["regimens"].iloc[0] and \
        "hydroxocobalamin" in row["regimens"].iloc[0]
    t = evaluate_claims(row).table.iloc[0]
    assert t["uncertainty"].startswith("options judged one by one")
