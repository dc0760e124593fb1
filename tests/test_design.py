"""The regimen designer: targets as text, the search, its invariants and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import b12pk
from b12pk.analysis.design import SearchSpace, candidate_regimens, design
from b12pk.analysis.targets import Target, load_targets, parse_targets
from b12pk.cli import main
from b12pk.population import PopulationSpec, Watch, simulate_population

PA = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
ORAL_ONLY = SearchSpace(routes=("oral",), oral_doses_ug=(100.0, 250.0, 500.0, 1000.0, 2000.0))
SHORT = "from day 30 to day 120"


# ------------------------------------------------------------------------- targets

@pytest.mark.parametrize("text, expected", [
    ("serum >= 200 pmol/L before every dose in 90 % of patients, from month 3 to year 5",
     Target("serum", 200.0, 0.9, "trough", 90.0, 1825.0)),
    ("serum >= 148 pmol/L every day in 95% of patients from day 30 to week 20",
     Target("serum", 148.0, 0.95, "daily", 30.0, 140.0)),
    ("Serum ≥ 200 pmol/L at trough in 80 % of patients from 30 days to 2 years",
     Target("serum", 200.0, 0.8, "trough", 30.0, 730.0)),
])
def test_targets_read_as_written(text, expected):
    assert Target.parse(text) == expected
    assert Target.parse(expected.to_text()) == expected


def test_a_target_in_pg_per_ml_is_converted():
    t = Target.parse("serum >= 271 pg/mL before every dose in 90 % of patients")
    assert t.threshold_pmol_per_l == pytest.approx(b12pk.pg_per_ml_to_pmol_per_l(271.0))


@pytest.mark.parametrize("text, match", [
    ("serum 200", "cannot read the target"),
    ("serum >= 200 pmol/L before every dose", "names no share"),
    ("serum >= 200 pmol/L in 0 % of patients", "above 0 %"),
    ("serum >= 200 pmol/L in 150 % of patients", "at most 99.9 %"),
    ("serum >= 200 pmol/L in 100 % of patients", "no finite population"),
    ("serum >= 200 pmol/L evry day in 90 % of patients", "cannot read 'evry day'"),
    ("mma <= 300 nmol/L in 90 % of patients", "not supported yet"),
    ("serum >= 200 pmol/L in 90 % of patients from month 6 to month 2", "start < end"),
    ("serum >= 200 pmol/L in 90 % of patients from fortnight 2", "as a time"),
    ("mma >= 200 pmol/L in 90 % of patients", "not supported yet"),
    ("ferritin >= 200 pmol/L in 90 % of patients", "unknown target quantity"),
    ("serum >= 200 mg in 90 % of patients", "cannot read the target"),
])
def test_bad_targets_are_refused_in_one_line(text, match):
    with pytest.raises(b12pk.InputError, match=match) as err:
        Target.parse(text)
    assert "\n" not in str(err.value)


def test_targets_load_from_toml(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text('[[target]]\ntext = "serum >= 200 pmol/L before every dose in 90 % of '
                    'patients"\n\n[[target]]\nthreshold_pmol_per_l = 148.0\nshare = 0.95\n'
                    'reading = "daily"\nstart_day = 30.0\nend_day = 365.0\n')
    first, second = load_targets(path)
    assert first == parse_targets(["serum >= 200 pmol/L before every dose in 90 % of "
                                   "patients"])[0]
    assert second.reading == "daily" and second.share == 0.95
    path.write_text('[[target]]\nlevel = 3\nthreshold_pmol_per_l = 1.0\nshare = 0.5\n')
    with pytest.raises(b12pk.FileFormatError, match="unknown target field"):
        load_targets(path)
    path.write_text('[[target]]\nshare = 0.5\n')
    with pytest.raises(b12pk.FileFormatError, match="needs threshold_pmol_per_l"):
        load_targets(path)
    path.write_text('[[target]]\ntext = "serum 200"\n')
    with pytest.raises(b12pk.FileFormatError, match="targets.toml"):
        load_targets(path)


# ------------------------------------------------------------------ per-patient checks

def test_a_daily_check_counts_the_patients_whose_lowest_day_passes(tmp_path):
    pytest.importorskip("pyarrow")
    spec = PopulationSpec(PA, n=300, seed=3)
    res = simulate_population("250 mcg oral daily", spec, 60, watch=[
        Watch(200.0, "daily", 20.0, 60.0)], trajectories=tmp_path / "t")
    traj = pd.read_parquet(tmp_path / "t")
    window = traj[(traj.time_days >= 20) & (traj.time_days <= 60)]
    lowest = window.groupby("patient")["serum_pmol_per_l"].min()
    assert res.watch_met[0] == int((lowest >= 200.0).sum()) == res.watch_met[-1]


def test_trough_checks_read_before_each_injection():
    spec = PopulationSpec(PA, n=256, seed=3)
    res = simulate_population("100 mcg cyanocobalamin IM monthly", spec, 125, watch=[
        Watch(150.0, "trough", 0.0, 125.0), Watch(1e5, "daily", 0.0, 125.0)])
    below_any = res.troughs["pct_below_cutoff"].max() / 100.0
    assert res.watch_met[1] == 0 == res.watch_met[-1]       # nobody is above 1e5 every day
    assert res.watch_met[0] <= round(256 * (1.0 - below_any)) + 1


@pytest.mark.parametrize("quantity, column", [("serum", "serum_pmol_per_l"),
                                               ("holotc", "holotc_pmol_per_l")])
def test_a_check_reads_the_quantity_simulate_reports(quantity, column):
    regimen = "1000 mcg hydroxocobalamin IM monthly"
    low = b12pk.simulate(regimen, PA, 90).query("time_days >= 10")[column].min()
    spec = PopulationSpec.without_variability(PA, n=2)
    res = simulate_population(regimen, spec, 90, watch=[
        Watch(low * 0.99, "daily", 10.0, 90.0, quantity),
        Watch(low * 1.01, "daily", 10.0, 90.0, quantity)])
    assert res.watch_met[:2] == (2, 0)


def test_a_holotc_target_reads():
    t = Target.parse("holotc >= 35 pmol/L before every dose in 90 % of patients")
    assert t.quantity == "holotc" and t.threshold_pmol_per_l == 35.0


def test_a_trough_check_reads_the_window_end_when_no_dose_falls_in_it():
    # doses on days 0 and 90 only: no trough inside days 20-60, so the check reads day 60
    spec = PopulationSpec.without_variability(PA, n=2)
    regimen = "1000 mcg cyanocobalamin IM every 90 days"
    day60 = b12pk.simulate(regimen, PA, 100).query("time_days == 60")["serum_pmol_per_l"]
    res = simulate_population(regimen, spec, 60, watch=[
        Watch(float(day60.iloc[0]) * 1.01, "trough", 20.0, 60.0),
        Watch(float(day60.iloc[0]) * 0.99, "trough", 20.0, 60.0)])
    assert res.watch_met[:2] == (0, 2)


def test_burden_is_counted_over_at_least_a_year(oral_design):
    short = design(PA, "serum >= 150 pmol/L before every dose in 50 % of patients, from day 5 "
                   "to day 40", space=SearchSpace(routes=("IM",), forms=("cyanocobalamin",),
                                                  intervals_days=(90.0,)), n=16)
    # the loading course (6 injections), then every 90 days: about 10 in a year, not 6 x 9
    assert 8.0 <= short.table["injections_per_year"].iloc[0] <= 11.0


def test_bad_checks_are_refused():
    with pytest.raises(b12pk.InputError, match="watch"):
        simulate_population("1000 mcg oral daily", PopulationSpec(PA, 10), 10,
                            watch=[Watch(200.0, "weekly", 0.0, 10.0)])
    with pytest.raises(b12pk.InputError, match="quantity"):
        simulate_population("1000 mcg oral daily", PopulationSpec(PA, 10), 10,
                            watch=[Watch(200.0, "daily", 0.0, 10.0, "mma")])


# ------------------------------------------------------------------------ the design

@pytest.fixture(scope="module")
def oral_design():
    return design(PA, f"serum >= 200 pmol/L before every dose in 90 % of patients, {SHORT}",
                  space=ORAL_ONLY, n=1024, seed=5, burden="ug")


def test_the_chosen_regimen_meets_the_target_in_a_fresh_population(oral_design):
    chosen = oral_design.chosen
    assert chosen is not None and chosen["meets"]
    fresh = simulate_population(chosen["regimen"], PopulationSpec(PA, n=1024, seed=99), 120,
                                watch=[Watch(200.0, "trough", 30.0, 120.0)])
    assert fresh.watch_met[-1] / 1024 >= 0.9


def test_the_chosen_regimen_is_the_least_burden_among_those_that_meet(oral_design):
    t = oral_design.table
    assert oral_design.chosen["burden"] == t.loc[t["meets"], "burden"].min()
    assert (t["share_low"] <= t["share_met"]).all() and (t["share_met"] <= t["share_high"]).all()


def test_no_pareto_candidate_is_dominated(oral_design):
    t = oral_design.table
    for row in t[t["pareto"]].itertuples():
        better = t[(t.burden <= row.burden) & (t.share_met >= row.share_met)
                   & ((t.burden < row.burden) | (t.share_met > row.share_met))]
        assert better.empty


def test_a_stricter_target_never_gives_a_less_burdensome_choice(oral_design):
    strict = design(PA, f"serum >= 300 pmol/L before every dose in 90 % of patients, {SHORT}",
                    space=ORAL_ONLY, n=1024, seed=5, burden="ug")
    assert strict.chosen is None or strict.chosen["burden"] >= oral_design.chosen["burden"]


def test_the_same_seed_gives_the_same_design(oral_design):
    again = design(PA, f"serum >= 200 pmol/L before every dose in 90 % of patients, {SHORT}",
                   space=ORAL_ONLY, n=1024, seed=5, burden="ug")
    pd.testing.assert_frame_equal(again.table, oral_design.table)


def test_an_impossible_target_names_the_closest_candidate():
    res = design(PA, f"serum >= 50000 pmol/L every day in 90 % of patients, {SHORT}",
                 space=SearchSpace(routes=("oral",), oral_doses_ug=(500.0, 2000.0)), n=256)
    assert res.chosen is None and res.per_route == {}
    line = res.summary_line()
    assert "\n" not in line and "no candidate meets" in line
    assert res.closest["regimen"] in line


def test_workers_do_not_change_the_design():
    kwargs = dict(space=SearchSpace(routes=("oral",), oral_doses_ug=(250.0, 1000.0)), n=256,
                  seed=2)
    target = f"serum >= 250 pmol/L every day in 80 % of patients, {SHORT}"
    one = design(PA, target, workers=1, **kwargs)
    two = design(PA, target, workers=2, **kwargs)
    pd.testing.assert_frame_equal(one.table, two.table)


def test_the_grid_holds_every_combination():
    space = SearchSpace(routes=("IM", "oral"), forms=("cyanocobalamin",),
                        im_doses_ug=(100.0, 1000.0), intervals_days=(30.0, 90.0),
                        loading=(True, False), oral_doses_ug=(1000.0,))
    texts = [c.text for c in candidate_regimens(space)]
    assert len(texts) == 1 + 2 * 2 * 2
    for text in texts:
        b12pk.Regimen.parse(text)      # every candidate reads as a regimen


@pytest.mark.parametrize("kwargs, match", [
    (dict(routes=("nasal",)), "unknown route"),
    (dict(forms=("methylcobalamin",)), "unknown form"),
    (dict(intervals_days=(3.0,)), "intervals_days"),
    (dict(im_doses_ug=(float("nan"),)), "im_doses_ug"),
    (dict(oral_doses_ug=()), "oral candidates need"),
    (dict(routes="oral"), "list or tuple"),
    (dict(loading=("yes",)), "loading"),
])
def test_bad_search_bounds_are_refused(kwargs, match):
    with pytest.raises(b12pk.InputError, match=match):
        SearchSpace(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(burden="cost"), "unknown burden"),
    (dict(n=0), "n=0"),
    (dict(seed=-1), "seed"),
    (dict(workers=0), "workers"),
])
def test_bad_design_options_are_refused(kwargs, match):
    with pytest.raises(b12pk.InputError, match=match):
        design(PA, "serum >= 200 pmol/L in 90 % of patients", space=ORAL_ONLY, **kwargs)


# ------------------------------------------------------------------------ command line

def test_design_command_writes_its_folder(tmp_path, capsys):
    out = tmp_path / "d"
    code = main(["design", "--target", f"serum >= 200 pmol/L before every dose in 90 % of "
                 f"patients, {SHORT}", "--routes", "oral", "--oral-doses", "250,1000",
                 "--population", "256", "--out", str(out)])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "not a prescription" in line
    for name in ("candidates.csv", "pareto.csv", "design.md", "design.png", "run.json"):
        assert (out / name).is_file()
    record = json.loads((out / "run.json").read_text())
    assert record["n"] == 256 and record["targets"]
    assert b12pk.DISCLAIMER in (out / "design.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("extra, match", [
    (["--intervals", "30,soon"], "--intervals"),
    (["--routes", "oral,nasal"], "unknown route"),
    (["--target", "serum 200"], "cannot read the target"),
])
def test_design_command_refuses_bad_input_in_one_line(tmp_path, capsys, extra, match):
    out = tmp_path / "d"
    args = ["design", "--target", "serum >= 200 pmol/L in 90 % of patients", "--population",
            "16", "--out", str(out)]
    code = main(args[:1] + extra + args[1:] if extra[0] == "--target" else args + extra)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err
    assert not out.exists()


def test_design_shares_use_common_patients_across_candidates(oral_design):
    # the same patients for every candidate: a higher oral dose never meets the target in
    # fewer patients (serum rises with the dose in every patient)
    t = oral_design.table.sort_values("dose_ug")
    full = t[t["patients"] == t["patients"].max()]
    assert np.all(np.diff(full["met"].to_numpy()) >= 0)


def test_compare_report_holds_a_design_section(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["compare", "--regimen", "1000 mcg oral daily", "--patient",
                 "pernicious-anaemia", "--days", "10", "--design",
                 "serum >= 200 pmol/L before every dose in 90 % of patients, from day 5 to "
                 "day 35", "--design-population", "16", "--out", str(out)])
    assert code == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    section = md.split("\n## Regimen design")[1].split("\n## ")[0]
    assert "least burden (injections a year)" in section or "no candidate meets" in section
    assert "figures/design_1.png" in section and (out / "design_1.csv").is_file()
    record = json.loads((out / "run.json").read_text())
    assert "design_1.csv" in record["b12pk_output"]["files"]


def test_compare_refuses_a_bad_design_target_before_any_work(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["compare", "--design", "serum 200", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read the target" in err and err.count("\n") == 1
    assert not out.exists()


def test_one_worker_runs_in_this_process(monkeypatch):
    import concurrent.futures

    def refuse(*args, **kwargs):
        raise AssertionError("workers=1 must not start a process pool")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    res = design(PA, f"serum >= 200 pmol/L every day in 80 % of patients, {SHORT}",
                 space=SearchSpace(routes=("oral",), oral_doses_ug=(500.0, 1000.0)), n=64,
                 workers=1)
    assert len(res.table) == 2


def test_a_design_over_the_work_limit_is_refused_before_any_work(monkeypatch):
    import b12pk.population.core as core

    monkeypatch.setattr(core, "MAX_POPULATION_PATIENT_DAYS", 1000)
    with pytest.raises(b12pk.ResourceError, match="first stage"):
        design(PA, "serum >= 200 pmol/L in 90 % of patients", space=ORAL_ONLY, n=64)


def test_a_daily_check_reads_the_same_in_compiled_spans_as_step_by_step(tmp_path):
    pytest.importorskip("pyarrow")
    spec = PopulationSpec(PA, n=300, seed=3)
    watch = [Watch(200.0, "daily", 20.0, 60.0), Watch(40.0, "daily", 10.0, 50.0, "holotc")]
    stepwise = simulate_population("250 mcg oral daily", spec, 60, watch=watch,
                                   trajectories=tmp_path / "t")  # trajectories: no spans
    spans = simulate_population("250 mcg oral daily", spec, 60, watch=watch)
    assert spans.watch_met == stepwise.watch_met


def test_checks_without_daily_output_count_the_same_patients():
    spec = PopulationSpec(PA, n=300, seed=5)
    watch = [Watch(200.0, "trough", 30.0, 120.0), Watch(150.0, "daily", 10.0, 120.0)]
    for regimen in ("250 mcg oral daily", "100 mcg cyanocobalamin IM monthly"):
        full = simulate_population(regimen, spec, 120, watch=watch)
        lean = simulate_population(regimen, spec, 120, watch=watch, daily=False)
        assert lean.watch_met == full.watch_met
        pd.testing.assert_frame_equal(lean.troughs, full.troughs)
        assert lean.quantiles.empty and lean.bands.empty and lean.means.empty
        assert lean.markers.empty


@pytest.mark.parametrize("kwargs, match", [
    ({"daily": "no"}, "daily='no' is not accepted"),
    ({"daily": False, "method": "exact"}, "daily=False"),
])
def test_daily_output_flag_is_checked(kwargs, match):
    with pytest.raises(b12pk.InputError, match=match):
        simulate_population("250 mcg oral daily", PopulationSpec(PA, n=3), 10, **kwargs)
