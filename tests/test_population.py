"""Virtual populations: reproducibility, chunking, accuracy, aggregation, errors, Dask."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import b12pk
import b12pk.cli
from b12pk.population import (BLOCK, MAX_PATIENTS, PopulationSpec, sample_patients,
                              simulate_population)

ORAL = b12pk.Regimen.parse("2000 mcg cyanocobalamin oral daily")
IM = b12pk.Regimen.parse("1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, "
                         "then monthly")
PA = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)


def same(a, b):
    for name in ("quantiles", "bands", "repletion", "troughs", "means"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


def test_same_seed_gives_the_same_population_and_results():
    spec = PopulationSpec(PA, n=1500, seed=7)
    pd.testing.assert_frame_equal(sample_patients(spec), sample_patients(spec))
    same(simulate_population(ORAL, spec, 60), simulate_population(ORAL, spec, 60))


def test_different_seeds_give_different_populations():
    a = sample_patients(PopulationSpec(PA, n=200, seed=1))
    b = sample_patients(PopulationSpec(PA, n=200, seed=2))
    assert not np.allclose(a["passive_fraction"], b["passive_fraction"])


def test_chunked_equals_unchunked():
    spec = PopulationSpec(PA, n=3 * BLOCK + 17, seed=3)
    one = simulate_population(ORAL, spec, 40, chunk_size=4 * BLOCK)
    many = simulate_population(ORAL, spec, 40, chunk_size=BLOCK)
    same(one, many)


def test_chunking_changes_an_injected_regimen_by_far_less_than_its_accuracy():
    # a chunk steps through a transient until its last patient's pools are empty: the
    # module notes promise up to about 1e-7 relative between chunk sizes (stores near the
    # storage capacity, where the export's kink makes step length matter most)
    spec = PopulationSpec(PA, n=3 * BLOCK + 17, seed=3)
    one = simulate_population(IM, spec, 60, chunk_size=4 * BLOCK)
    many = simulate_population(IM, spec, 60, chunk_size=BLOCK)
    np.testing.assert_allclose(one.means[["serum_pmol_per_l", "stores_ug"]],
                               many.means[["serum_pmol_per_l", "stores_ug"]], rtol=5e-7)
    pd.testing.assert_frame_equal(one.troughs, many.troughs, rtol=5e-7)


def test_a_patient_does_not_depend_on_population_size():
    small = sample_patients(PopulationSpec(PA, n=BLOCK + 5, seed=4))
    large = sample_patients(PopulationSpec(PA, n=5 * BLOCK, seed=4))
    pd.testing.assert_frame_equal(small, large.iloc[: BLOCK + 5])


# the fast method holds the slow flows over substeps of a day (simulate: 1/32 day): up to
# 6e-4 while oral doses double nearly empty stores within a day
@pytest.mark.parametrize("regimen, tol", [(ORAL, 2e-3), (IM, 2e-3)])
def test_zero_variability_equals_the_typical_patient(regimen, tol):
    spec = PopulationSpec.without_variability(PA, n=3)
    pop = simulate_population(regimen, spec, 60)
    ref = b12pk.simulate(regimen, PA, 60)
    for col in ("serum_pmol_per_l", "stores_ug"):
        err = np.abs(pop.means[col].to_numpy() / ref[col].to_numpy() - 1).max()
        assert err < tol, (col, err)


def test_quantiles_match_numpy_on_a_small_population():
    spec = PopulationSpec(PA, n=60, seed=11)
    pop = simulate_population(ORAL, spec, 30)
    draws = sample_patients(spec)
    finals = []
    for row in draws.itertuples():
        patient = dataclasses.replace(
            PA, diet_ug_per_day=row.diet_ug_per_day,
            baseline_serum_pmol_per_l=row.baseline_serum_pmol_per_l,
            overrides={"if_capacity_ug": row.if_capacity_ug,
                       "passive_fraction": row.passive_fraction,
                       "other_loss_fraction_per_day": row.other_loss_fraction_per_day})
        df = b12pk.simulate(ORAL, patient, 30, times=[30.0])
        finals.append(df["serum_pmol_per_l"].iloc[0])
    finals = np.array(finals)
    day30 = pop.quantiles[pop.quantiles.time_days == 30].set_index("quantile")
    # the fast method's slow substeps of a day (see test_zero_variability_...)
    assert pop.means["serum_pmol_per_l"].iloc[-1] == pytest.approx(finals.mean(), rel=2e-3)
    for q in (25.0, 50.0, 75.0):
        # histogram quantiles: bins 0.33% wide, small-sample interpolation differs a little
        assert day30.loc[q, "serum_pmol_per_l"] == pytest.approx(
            np.percentile(finals, q), rel=0.03)


def test_band_probabilities_sum_to_one():
    pop = simulate_population(ORAL, PopulationSpec(PA, n=2000, seed=5), 30)
    total = pop.bands.groupby("time_days")["probability"].sum()
    assert np.allclose(total, 1.0)
    assert set(pop.bands["band"]) == {"deficient", "indeterminate", "unlikely"}


def test_troughs_are_reported_before_each_injection_after_the_first():
    pop = simulate_population(IM, PopulationSpec(PA, n=BLOCK, seed=2), 75)
    times = [e.time_days for e in IM.dose_events(75)][1:]
    assert list(pop.troughs["time_days"]) == times
    assert ((pop.troughs["pct_below_cutoff"] >= 0) & (pop.troughs["pct_below_cutoff"] <= 100)).all()


def test_lower_maintenance_dose_leaves_more_patients_deficient_before_injections():
    low = simulate_population("100 mcg cyanocobalamin IM monthly",
                              PopulationSpec(PA, n=BLOCK, seed=2), 120)
    high = simulate_population("1000 mcg cyanocobalamin IM monthly",
                               PopulationSpec(PA, n=BLOCK, seed=2), 120)
    assert low.troughs["pct_below_cutoff"].iloc[-1] >= high.troughs["pct_below_cutoff"].iloc[-1]
    assert low.troughs["q50_pmol_per_l"].iloc[-1] < high.troughs["q50_pmol_per_l"].iloc[-1]


def test_not_replete_at_a_trough_includes_the_deficient():
    pop = simulate_population("100 mcg cyanocobalamin IM monthly",
                              PopulationSpec(PA, n=BLOCK, seed=2), 120)
    tr = pop.troughs
    assert (tr["pct_not_replete"] >= tr["pct_below_cutoff"]).all()
    assert (tr["pct_not_replete"] <= 100.0).all()


def test_last_trough_reads_before_the_last_injection():
    pop = simulate_population("100 mcg cyanocobalamin IM monthly",
                              PopulationSpec(PA, n=BLOCK, seed=2), 100)
    low = pop.last_trough()
    assert low["time_days"] == pop.troughs["time_days"].iloc[-1] < 100
    assert low["pct_deficient"] == pop.troughs["pct_below_cutoff"].iloc[-1]
    assert "before the day-" in low["where"]


def test_last_trough_of_daily_oral_is_the_last_day():
    pop = simulate_population(ORAL, PopulationSpec(PA, n=BLOCK, seed=2), 20)
    low = pop.last_trough()
    last = pop.bands.query("time_days == 20")
    assert low["time_days"] == 20.0
    assert low["pct_not_replete"] == pytest.approx(
        100.0 * last.loc[last.band != "unlikely", "probability"].sum())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), b12pk.InputError, "population size"),
    (dict(n=-5), b12pk.InputError, "population size"),
    (dict(n=MAX_PATIENTS + 1), b12pk.InputError, "population size"),
    (dict(n=10, seed=-1), b12pk.InputError, "seed"),
    (dict(n=10, variability={"passive_fraction": -0.1}), b12pk.InputError, "variability"),
    (dict(n=10, variability={"passive_fraction": float("nan")}), b12pk.InputError,
     "variability"),
    (dict(n=10, variability={"iq": 0.1}), b12pk.UnknownNameError, "unknown variability"),
])
def test_bad_population_specs_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        PopulationSpec(PA, **kwargs)


def test_too_large_chunk_is_refused_before_it_starts():
    with pytest.raises(b12pk.ResourceError, match="chunk_size"):
        simulate_population(ORAL, PopulationSpec(PA, n=10), 10, chunk_size=10**7)


def test_population_command_writes_its_files(tmp_path, capsys):
    out = tmp_path / "pop"
    code = b12pk.cli.main(["population", "--regimen", "1000 mcg IM monthly", "--patient",
                           "pernicious-anaemia", "--n", "1500", "--days", "40", "--seed", "1",
                           "--out", str(out)])
    assert code == 0
    for name in ("quantiles.csv", "bands.csv", "troughs.csv", "run.json", "fan_serum.png"):
        assert (out / name).is_file(), name
    q = pd.read_csv(out / "quantiles.csv")
    assert list(q.columns) == ["time_days", "quantile", "serum_pmol_per_l", "stores_ug"]
    b = pd.read_csv(out / "bands.csv")
    assert list(b.columns) == ["time_days", "band", "probability"]


def test_population_command_rejects_bad_n_in_one_line(tmp_path, capsys):
    code = b12pk.cli.main(["population", "--regimen", "1000 mcg IM monthly", "--n", "0",
                           "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--n" in err and "from 1 to 100,000,000" in err
    assert not (tmp_path / "p").exists()


def test_dask_cluster_gives_identical_results():
    distributed = pytest.importorskip("distributed", reason="needs b12pk[dask]")
    spec = PopulationSpec(PA, n=2 * BLOCK + 3, seed=9)
    local = simulate_population(ORAL, spec, 20, chunk_size=BLOCK)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = simulate_population(ORAL, spec, 20, chunk_size=BLOCK, client=client)
    same(local, remote)


# ----- engine backends and threads ----------------------------------------------------

HAS_NUMBA = __import__("importlib").util.find_spec("numba") is not None


@pytest.mark.parametrize("regimen", [ORAL, IM], ids=["oral", "im"])
def test_threads_give_identical_results(regimen):
    spec = PopulationSpec(PA, n=4 * BLOCK + 3, seed=11)
    one = simulate_population(regimen, spec, 45, chunk_size=BLOCK, workers=1)
    two = simulate_population(regimen, spec, 45, chunk_size=BLOCK, workers=2)
    same(one, two)


TWO_FORMS = (b12pk.Regimen.parse("1000 mcg cyanocobalamin IM monthly").dose_events(90)
             + b12pk.Regimen.parse("500 mcg hydroxocobalamin IM on day 10 then every 6 weeks"
                                   ).dose_events(90))


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed (pip install b12pk[fast])")
@pytest.mark.parametrize("regimen", [ORAL, IM, "1000 mcg cyanocobalamin intranasal every "
                                     "3 days", TWO_FORMS], ids=["oral", "im", "nasal", "forms"])
def test_compiled_kernels_agree_with_numpy(regimen):
    spec = PopulationSpec(PA, n=2 * BLOCK + 50, seed=12)
    a = simulate_population(regimen, spec, 90, backend="numpy")
    b = simulate_population(regimen, spec, 90, backend="numba")
    np.testing.assert_allclose(a.means[["serum_pmol_per_l", "stores_ug"]],
                               b.means[["serum_pmol_per_l", "stores_ug"]], rtol=1e-12)
    np.testing.assert_allclose(a.quantiles[["serum_pmol_per_l", "stores_ug"]],
                               b.quantiles[["serum_pmol_per_l", "stores_ug"]], rtol=1e-2)
    # a value can only change bin where it sits on an edge: at most a patient or two
    diff = np.abs(a.bands["probability"] - b.bands["probability"]).max()
    assert diff <= 2 / spec.n


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed (pip install b12pk[fast])")
def test_compiled_kernels_are_chunking_invariant():
    spec = PopulationSpec(PA, n=3 * BLOCK + 17, seed=3)
    same(simulate_population(ORAL, spec, 40, chunk_size=4 * BLOCK, backend="numba"),
         simulate_population(ORAL, spec, 40, chunk_size=BLOCK, backend="numba"))


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "fortran"}, "backend='fortran' is not known"),
    ({"workers": 0}, "workers=0 is not accepted"),
    ({"workers": 1.5}, "workers=1.5 is not accepted"),
])
def test_bad_engine_options_are_rejected(kwargs, match):
    with pytest.raises(b12pk.InputError, match=match):
        simulate_population(ORAL, PopulationSpec(PA, n=10), 10, **kwargs)


def test_progress_callable_sees_every_chunk_up_to_n():
    calls = []
    spec = PopulationSpec(PA, n=3 * BLOCK + 5, seed=1)
    simulate_population(ORAL, spec, 5, chunk_size=BLOCK, workers=1,
                        progress=lambda done, n: calls.append((done, n)))
    assert [d for d, _ in calls] == [BLOCK, 2 * BLOCK, 3 * BLOCK, 3 * BLOCK + 5]
    assert all(n == spec.n for _, n in calls)


def test_progress_bar_is_silent_when_not_on_a_terminal(capsys):
    simulate_population(ORAL, PopulationSpec(PA, n=50), 5, progress=True)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# ----- covariates -----------------------------------------------------------------------

HEALTHY = b12pk.Patient.preset("healthy")


@pytest.mark.parametrize("name, text, params", [
    ("age_years", "normal(80, 5)", (80.0, 5.0)),
    ("egfr_ml_min", " uniform( 15 ,60 ) ", (15.0, 60.0)),
    ("ileal_resection_cm", "lognormal(20, 0.76)", (20.0, 0.76)),
    ("age_years", "fixed(70)", (70.0,)),
])
def test_covariate_text_is_read(name, text, params):
    cov = b12pk.Covariate.parse(name, text)
    assert cov.params == params
    assert b12pk.Covariate.parse(name, cov.to_text()) == cov


@pytest.mark.parametrize("name, text, error, match", [
    ("height_cm", "normal(170, 10)", b12pk.UnknownNameError, "unknown covariate 'height_cm'"),
    ("age_years", "gamma(2, 3)", b12pk.InputError, "unknown distribution 'gamma'"),
    ("age_years", "normal(80)", b12pk.InputError, "takes 2 finite number"),
    ("age_years", "normal(80, -1)", b12pk.InputError, "sd >= 0"),
    ("age_years", "normal(nan, 1)", b12pk.InputError, "finite"),
    ("age_years", "normal(200, 5)", b12pk.InputError, "values must lie in 18-105"),
    ("egfr_ml_min", "uniform(60, 15)", b12pk.InputError, "low < high"),
    ("age_years", "normal 80 5", b12pk.InputError, "cannot read"),
    ("age_years", "normal(eighty, 5)", b12pk.InputError, "not a number"),
])
def test_bad_covariates_are_rejected(name, text, error, match):
    with pytest.raises(error, match=match):
        b12pk.Covariate.parse(name, text)


def test_unknown_covariate_set_is_rejected():
    with pytest.raises(b12pk.UnknownNameError, match="unknown covariate set 'teenagers'"):
        PopulationSpec(HEALTHY, 10, covariates="teenagers")


def test_covariates_do_not_change_the_parameter_draws():
    plain = sample_patients(PopulationSpec(PA, n=300, seed=5))
    withcov = sample_patients(PopulationSpec(PA, n=300, seed=5, covariates="older-adults"))
    pd.testing.assert_frame_equal(plain, withcov[plain.columns])
    assert {"age_years", "egfr_ml_min", "atrophic_gastritis"} <= set(withcov.columns)


def test_covariates_are_reproducible_and_independent_of_n():
    a = sample_patients(PopulationSpec(HEALTHY, n=BLOCK + 9, seed=2, covariates="older-adults"))
    b = sample_patients(PopulationSpec(HEALTHY, n=3 * BLOCK, seed=2, covariates="older-adults"))
    pd.testing.assert_frame_equal(a, b.iloc[: BLOCK + 9])


def test_covariate_draws_follow_their_distribution():
    df = sample_patients(PopulationSpec(HEALTHY, n=20_000, seed=1,
                                        covariates={"age_years": "normal(80, 5)",
                                                    "ileal_resection_cm": "uniform(10, 50)"}))
    assert df["age_years"].mean() == pytest.approx(80, abs=0.15)
    assert df["age_years"].std() == pytest.approx(5, rel=0.03)
    assert df["ileal_resection_cm"].between(10, 50).all()
    assert df["ileal_resection_cm"].median() == pytest.approx(30, abs=0.5)


def test_egfr_falls_with_age_when_only_age_is_drawn():
    df = sample_patients(PopulationSpec(HEALTHY, n=20_000, seed=1,
                                        covariates={"age_years": "uniform(40, 90)"}))
    assert np.corrcoef(df["age_years"], df["egfr_ml_min"])[0, 1] < -0.5
    old = df.loc[df["age_years"] > 80, "egfr_ml_min"].median()
    assert old < 0.8 * HEALTHY.egfr_ml_min


def test_atrophic_gastritis_share_follows_the_age_prevalence():
    df = sample_patients(PopulationSpec(HEALTHY, n=40_000, seed=3,
                                        covariates={"age_years": "fixed(72)"}))
    share = df["atrophic_gastritis"].mean()
    sd = math.sqrt(0.087 * 0.913 / 40_000)
    assert abs(share - 0.087) < 4 * sd
    assert (df.loc[df["atrophic_gastritis"], "food_release"] == 0.3).all()
    assert (df.loc[~df["atrophic_gastritis"], "food_release"] == HEALTHY.food_release).all()


def test_resection_covariate_equals_the_patient_setting():
    # a fixed 60 cm resection drawn as a covariate is the ileal-resection patient
    ileal = b12pk.Patient.preset("ileal-resection")
    assert ileal.ileal_resection_cm == 60.0
    base = dataclasses.replace(ileal, ileal_resection_cm=0.0)
    zero = {k: 0.0 for k in b12pk.population.default_variability()}
    via_cov = simulate_population(ORAL, PopulationSpec(base, 4, 0, zero, {
        "ileal_resection_cm": "fixed(60)"}), 60)
    via_patient = simulate_population(ORAL, PopulationSpec(ileal, 4, 0, zero), 60)
    np.testing.assert_allclose(via_cov.means[["serum_pmol_per_l", "stores_ug"]],
                               via_patient.means[["serum_pmol_per_l", "stores_ug"]],
                               rtol=1e-9)


def test_egfr_covariate_equals_the_patient_setting_for_injections():
    zero = {k: 0.0 for k in b12pk.population.default_variability()}
    low = dataclasses.replace(PA, egfr_ml_min=30.0)
    via_cov = simulate_population(IM, PopulationSpec(PA, 3, 0, zero, {
        "egfr_ml_min": "fixed(30)"}), 60)
    via_patient = simulate_population(IM, PopulationSpec(low, 3, 0, zero), 60)
    np.testing.assert_allclose(via_cov.means[["serum_pmol_per_l", "stores_ug"]],
                               via_patient.means[["serum_pmol_per_l", "stores_ug"]],
                               rtol=1e-12)
    # and both follow the single-patient engine (the fast-pool integrator's accuracy at a
    # low eGFR, where the unbound pool clears slowly, is about 0.5%)
    ref = b12pk.simulate(IM, low, 60)
    err = np.abs(via_cov.means["serum_pmol_per_l"].to_numpy()
                 / ref["serum_pmol_per_l"].to_numpy() - 1).max()
    assert err < 1e-2


def test_longer_resections_leave_more_patients_deficient():
    def not_replete(cov):  # deficient or indeterminate after two years
        r = simulate_population(ORAL.parse("1 mcg cyanocobalamin oral once"),
                                PopulationSpec(HEALTHY, 3000, 1, covariates={
                                    "ileal_resection_cm": cov}), 730)
        last = r.bands[r.bands.time_days == 730]
        return float(last.loc[last.band != "unlikely", "probability"].sum())
    assert not_replete("fixed(10)") < not_replete("fixed(40)") < not_replete("fixed(80)")


def test_propagators_interpolated_in_both_rates_match_direct_exponentials():
    from b12pk.engine.linalg import expm
    from b12pk.engine.core import System
    from b12pk.population.core import _SLOW, _BlockEngine

    sys_ = System(HEALTHY, HEALTHY.parameters(), ("cyanocobalamin",))
    idx = [getattr(sys_.L, s) for s in _SLOW]
    A0 = sys_.A[np.ix_(idx, idx)]
    kr_max = sys_.k_reab / HEALTHY.if_route_factor
    grid = np.exp(np.linspace(np.log(sys_.k_loss * 0.5), np.log(sys_.k_loss * 2.0), 65))
    engine = _BlockEngine(sys_, grid, kr_max)
    rng = np.random.default_rng(0)
    kl = sys_.k_loss * np.exp(rng.uniform(-0.6, 0.6, 20))
    kr = rng.uniform(0, kr_max, 20)
    E, G = engine.propagators(kl, 1.0, kr)
    s, il = _SLOW.index("stores"), _SLOW.index("ileum")
    c = 1 + len(engine.slow)  # inputs: the diet into the ileum, then each slow flow
    ns = len(_SLOW)
    assert G.shape == (ns, c, 20)
    for j in range(20):
        A = A0.copy()
        A[s, s] += sys_.k_loss - kl[j]
        A[il, s] = kr[j]
        M = np.zeros((ns + c, ns + c))
        M[:ns, :ns] = A
        M[il, ns] = 1.0
        M[s, ns + 1:] = -1.0  # each slow flow leaves the stores ...
        for q, (_src, dst, *_rest) in enumerate(engine.slow):
            if dst >= 0:  # ... for a slow state, or for urine (outside the slow state)
                M[dst, ns + 1 + q] = 1.0
        X = expm(M[None])[0]
        np.testing.assert_allclose(E[:, :, j], X[:ns, :ns], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(G[:, :, j], X[:ns, ns:], rtol=1e-9, atol=1e-12)


def test_population_command_takes_covariates(tmp_path):
    import json

    out = tmp_path / "pop"
    code = b12pk.cli.main(["population", "--regimen", "1000 mcg oral daily", "--n", "1200",
                           "--days", "20", "--covariates", "older-adults", "--covariate",
                           "egfr_ml_min=uniform(30, 60)", "--out", str(out)])
    assert code == 0
    run = json.loads((out / "run.json").read_text())
    assert run["covariates"] == {"age_years": "normal(80, 5)",
                                 "egfr_ml_min": "uniform(30, 60)"}


@pytest.mark.parametrize("args, match", [
    (["--covariates", "teenagers"], "unknown covariate set 'teenagers'"),
    (["--covariate", "age_years"], "expected NAME=DISTRIBUTION"),
    (["--covariate", "age_years=normal(80)"], "takes 2 finite number"),
])
def test_population_command_rejects_bad_covariates_in_one_line(tmp_path, capsys, args, match):
    code = b12pk.cli.main(["population", "--regimen", "1000 mcg oral daily", "--n", "10",
                           *args, "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err
    assert not (tmp_path / "p").exists()


# ----- per-patient trajectories (Parquet) ----------------------------------------------

HAS_PYARROW = __import__("importlib").util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow not installed "
                                   "(pip install b12pk[parquet])")


@needs_pyarrow
def test_trajectories_match_the_aggregates(tmp_path):
    spec = PopulationSpec(PA, n=2 * BLOCK + 7, seed=4)
    res = simulate_population(ORAL, spec, 30, chunk_size=BLOCK, trajectories=tmp_path / "t")
    traj = pd.read_parquet(tmp_path / "t")
    files = sorted(f.name for f in (tmp_path / "t").iterdir())
    assert files == [f"part-{b:08d}.parquet" for b in range(3)]  # one per chunk, no temp left
    assert len(traj) == spec.n * 31 and traj["patient"].nunique() == spec.n
    means = traj.groupby("time_days")[["serum_pmol_per_l", "stores_ug"]].mean()
    np.testing.assert_allclose(means.to_numpy(),
                               res.means[["serum_pmol_per_l", "stores_ug"]].to_numpy(),
                               rtol=1e-12)
    last = traj[traj.time_days == 30]["serum_pmol_per_l"]
    deficient = res.bands.query("time_days == 30 and band == 'deficient'")["probability"]
    assert float(deficient.iloc[0]) == pytest.approx((last < _cut()).mean(), abs=1e-12)


def _cut():
    return next(hi for name, lo, hi in b12pk.model.serum_bands_pmol_per_l()
                if name == "deficient")


@needs_pyarrow
def test_trajectories_do_not_change_the_results(tmp_path):
    spec = PopulationSpec(PA, n=BLOCK + 3, seed=9)
    same(simulate_population(IM, spec, 40, backend="numpy"),
         simulate_population(IM, spec, 40, backend="numpy", trajectories=tmp_path / "t",
                             trajectory_patients=10))
    traj = pd.read_parquet(tmp_path / "t")
    assert sorted(traj["patient"].unique()) == list(range(10))


@needs_pyarrow
def test_trajectory_folder_must_be_new_or_empty(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "old.txt").write_text("x")
    with pytest.raises(b12pk.FileFormatError, match="not an empty folder"):
        simulate_population(ORAL, PopulationSpec(PA, n=10), 5, trajectories=tmp_path / "t")


def test_too_many_trajectory_values_are_refused_before_any_work(tmp_path):
    with pytest.raises(b12pk.ResourceError, match="above the limit"):
        simulate_population(ORAL, PopulationSpec(PA, n=2_000_000), 365,
                            trajectories=tmp_path / "t")
    assert not (tmp_path / "t").exists()


@needs_pyarrow
def test_population_command_writes_trajectories(tmp_path):
    out = tmp_path / "pop"
    code = b12pk.cli.main(["population", "--regimen", "1000 mcg oral daily", "--n", "1100",
                           "--days", "10", "--trajectories", "25", "--out", str(out)])
    assert code == 0
    traj = pd.read_parquet(out / "trajectories")
    assert traj["patient"].nunique() == 25 and len(traj) == 25 * 11
    assert not list(tmp_path.glob(".b12pk-trajectories-*"))  # the staging folder is gone


def test_memory_does_not_grow_with_the_population():
    import tracemalloc

    def peak(n_blocks):
        spec = PopulationSpec(PA, n=n_blocks * BLOCK, seed=1)
        tracemalloc.start()
        simulate_population(ORAL, spec, 30, chunk_size=BLOCK, workers=1, backend="numpy")
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(4), peak(16)
    assert large < 1.2 * small, (small, large)


def test_given_baseline_stores_vary_between_patients():
    who = b12pk.Patient.preset("pernicious-anaemia", stores_ug=800)
    df = sample_patients(PopulationSpec(who, n=20_000, seed=1))
    assert df["baseline_stores_ug"].median() == pytest.approx(800, rel=0.02)
    cv = b12pk.population.default_variability()["baseline_stores_ug"]
    assert np.log(df["baseline_stores_ug"]).std() == pytest.approx(
        math.sqrt(math.log1p(cv ** 2)), rel=0.03)
    pop = simulate_population(ORAL, PopulationSpec.without_variability(who, n=2), 1)
    assert pop.means["stores_ug"].iloc[0] == pytest.approx(800, rel=1e-12)


def test_numba_backend_without_numba_says_how_to_install(monkeypatch):
    import sys

    # as if numba were missing: the kernels' import raises ImportError
    monkeypatch.setitem(sys.modules, "b12pk.engine.kernels", None)
    monkeypatch.delattr(b12pk.engine, "kernels", raising=False)
    with pytest.raises(b12pk.InputError, match=r"pip install 'b12pk\[fast\]'"):
        simulate_population(ORAL, PopulationSpec(PA, n=10), 5, backend="numba")
    # auto falls back to numpy and still runs
    res = simulate_population(ORAL, PopulationSpec(PA, n=10), 5, backend="auto")
    assert res.n == 10


def test_trajectories_without_pyarrow_say_how_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(b12pk.InputError, match=r"pip install 'b12pk\[parquet\]'"):
        simulate_population(ORAL, PopulationSpec(PA, n=10), 5, trajectories=tmp_path / "t")
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): horizons, regimen-like input, quantiles, memory

TINY = PopulationSpec(PA, n=10, seed=1)


@pytest.mark.parametrize("days", [1e-10, 0, -5, math.nan, 36501, 10 ** 400, "30",
                                  np.float64(1e-9)])
def test_population_horizon_is_checked_as_simulate_checks_it(days):
    with pytest.raises(b12pk.HorizonError) as pop:
        simulate_population(ORAL, TINY, days)
    with pytest.raises(b12pk.HorizonError) as sim:
        b12pk.simulate(ORAL, PA, days)
    assert str(pop.value) == str(sim.value)


@pytest.mark.parametrize("days, n_times", [(1e-5, 1), (0.5, 1), (np.int64(2), 3),
                                           (np.float32(2.5), 3)])
def test_short_and_numpy_horizons_work(days, n_times):
    res = simulate_population(ORAL, TINY, days)
    assert res.means["time_days"].nunique() == n_times
    assert np.isfinite(res.means["serum_pmol_per_l"]).all()


def test_a_list_of_dose_events_is_a_regimen():
    events = IM.dose_events(60)
    ref = simulate_population(IM, TINY, 60)
    for given in (events, tuple(events)):
        res = simulate_population(given, TINY, 60)
        same(res, ref)
        assert isinstance(res.regimen, b12pk.Regimen)


@pytest.mark.parametrize("regimen, cls, match", [
    ([], b12pk.DoseError, "needs at least one dose"),
    (42, b12pk.InputError, "give a Regimen, regimen text or a list of DoseEvent"),
    (b12pk.DoseEvent(0, 1000, "im", "cyano"), b12pk.InputError, "wrap a single DoseEvent"),
    ([object()], b12pk.InputError, "lacks time_days"),
])
def test_bad_regimen_like_input_is_refused(regimen, cls, match):
    with pytest.raises(cls, match=match):
        simulate_population(regimen, TINY, 10)


BAD_QUANTILES = [
    ("text", "50", "quantiles='50' is not accepted (str)"),
    ("bytes", b"50", "(bytes)"),
    ("number", 50, "(int)"),
    ("set", {5, 50}, "(set)"),
    ("dict", {50: 1}, "(dict)"),
    ("empty", [], "0 given"),
    ("too-many", list(np.linspace(1, 99, 100)), "100 given"),
    ("zero", [0, 50], "0 is not a percentage strictly between 0 and 100"),
    ("hundred", [50, 100], "100 is not a percentage"),
    ("negative", [-5, 50], "-5 is not a percentage"),
    ("nan", [math.nan, 50], "nan is not a percentage"),
    ("inf", [50, math.inf], "inf is not a percentage"),
    ("huge-int", [50, 10 ** 400], "an integer of 401 digits is not a percentage"),
    ("text-item", ["5", "50"], "'5' is not a percentage"),
    ("bool-item", [True, 50], "True is not a percentage"),
    ("none-item", [None], "None is not a percentage"),
    ("duplicate", [5, 50, 50.0], "50 is given twice"),
    ("print-the-same", [50, 50.0000001], "50 is given twice"),
    ("fractions", [0.05, 0.5, 0.95], "reads like fractions"),
    ("2-d-array", np.array([[5, 50]]), "1-d sequence"),
]


@pytest.mark.parametrize("quantiles, match", [c[1:] for c in BAD_QUANTILES],
                         ids=[c[0] for c in BAD_QUANTILES])
def test_bad_quantiles_are_refused(quantiles, match):
    with pytest.raises(b12pk.InputError) as info:
        simulate_population(ORAL, TINY, 5, quantiles=quantiles)
    assert match in str(info.value), str(info.value)


@pytest.mark.parametrize("quantiles", [[50], (5, 95), np.array([2.5, 50, 97.5]),
                                       np.array([10, 90], dtype=np.int32), range(10, 91, 40),
                                       [0.5, 1.5], [np.float64(1e-3), 99.999]])
def test_good_quantiles_are_reported_in_order(quantiles):
    res = simulate_population(ORAL, TINY, 5, quantiles=quantiles)
    assert list(res.quantiles["quantile"].unique()) == [float(q) for q in quantiles]


def test_population_memory_is_refused_before_any_work(monkeypatch, tmp_path):
    from b12pk import limits

    monkeypatch.setattr(limits, "memory_budget_bytes", lambda: 500_000_000)
    century = (b12pk.Regimen.daily(1000), PopulationSpec("healthy", 100_000, seed=1), 36500)
    calls = []
    with pytest.raises(b12pk.ResourceError) as info:
        simulate_population(*century, workers=4, progress=lambda d, n: calls.append(d))
    message = str(info.value)
    for needle in ("100,000 over 36500 days", "GB of memory", "budget of 500 MB",
                   "shorter horizon", "smaller chunk_size (now 16,384)", "fewer workers (now 4)"):
        assert needle in message, message
    assert not calls
    with pytest.raises(b12pk.ResourceError, match="fewer trajectory_patients"):
        simulate_population(*century, trajectories=tmp_path / "t", trajectory_patients=10)
    assert not (tmp_path / "t").exists()


def test_default_workers_shrink_to_the_memory_budget(monkeypatch):
    from b12pk import limits
    from b12pk.population.core import _fast_kernels, population_memory_bytes

    _fast_kernels("auto")  # loaded: the estimates below are the whole need
    spec = PopulationSpec(PA, n=4 * BLOCK, seed=2)
    need = [population_memory_bytes(731, 0, BLOCK, w, n_parenteral_forms=0) for w in (1, 2)]
    monkeypatch.setattr(limits, "memory_budget_bytes", lambda: sum(need) // 2)
    shrunk = simulate_population(ORAL, spec, 730, chunk_size=BLOCK)  # workers=None: 1 fits
    with pytest.raises(b12pk.ResourceError, match="fewer workers"):
        simulate_population(ORAL, spec, 730, chunk_size=BLOCK, workers=2)
    monkeypatch.undo()
    same(shrunk, simulate_population(ORAL, spec, 730, chunk_size=BLOCK, workers=2))


MEMORY_CASES = [  # regimen, n, days, chunk, workers: histograms or patients dominate
    ("oral-long", ORAL, 2 * BLOCK, 1825, BLOCK, 1),
    ("oral-two-workers", ORAL, 4 * BLOCK, 1825, 2 * BLOCK, 2),
    ("im-wide-chunk", IM, 16 * BLOCK, 40, 16 * BLOCK, 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("regimen, n, days, chunk, workers", [c[1:] for c in MEMORY_CASES],
                         ids=[c[0] for c in MEMORY_CASES])
def test_memory_estimate_is_honest(regimen, n, days, chunk, workers, monkeypatch):
    """The estimate checked against the budget is within 2x of tracemalloc's peak."""
    import tracemalloc

    import b12pk.population.core as population

    seen = []
    check = population.check_memory
    monkeypatch.setattr(population, "check_memory",
                        lambda need, *a: (seen.append(need), check(need, *a)))
    population._fast_kernels("auto")  # kernels loaded already: their one-off cost not counted
    tracemalloc.start()
    simulate_population(regimen, PopulationSpec(PA, n=n, seed=1), days, chunk_size=chunk,
                        workers=workers, backend="numpy")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak / 2 < seen[0] < 2 * peak, (seen[0], peak)


# ---------------------------------------------------------------------------------------
# Work limits: no accepted run takes more than a few minutes

def test_too_many_patient_injections_are_refused_before_any_work():
    import time

    t = time.process_time()
    with pytest.raises(b12pk.ResourceError, match="patient-injections"):
        simulate_population("1000 mcg IM monthly", PopulationSpec(PA, n=10_000_000), 365)
    assert time.process_time() - t < 5.0


def test_too_many_patient_days_are_refused():
    with pytest.raises(b12pk.ResourceError, match="patient-days"):
        simulate_population(ORAL, PopulationSpec(PA, n=100_000_000), 365)


def test_the_report_population_view_is_checked_as_a_whole(tmp_path, capsys):
    code = b12pk.cli.main(["compare", "--days", "2", "--population", "10000000", "--out",
                           str(tmp_path / "rep")])
    assert code == 2
    err = capsys.readouterr().err
    assert "population view" in err and "patient-injections" in err
    assert not (tmp_path / "rep").exists()


# ----- the exact method: every patient through simulate's engine ----------------------

NASAL = b12pk.Regimen.parse("1000 mcg cyanocobalamin intranasal every 3 days")


@pytest.mark.parametrize("regimen", [ORAL, IM, NASAL], ids=["oral", "im", "intranasal"])
def test_a_population_of_one_is_simulate_to_the_last_bit(regimen):
    spec = PopulationSpec.without_variability(PA, n=1)
    pop = simulate_population(regimen, spec, 45, method="exact")
    ref = b12pk.simulate(regimen, PA, 45)
    for col in ("serum_pmol_per_l", "stores_ug"):
        np.testing.assert_array_equal(pop.means[col].to_numpy(), ref[col].to_numpy())
    assert pop.method == "exact"


def _sampled_patient(spec):
    """The first patient of a population as a Patient, from sample_patients' table."""
    row = sample_patients(spec).iloc[0]
    params = ("if_capacity_ug", "passive_fraction", "other_loss_fraction_per_day",
              "uptake_vmax_ug_per_day", "nasal_bioavailability")
    settings = {k: float(row[k]) for k in ("diet_ug_per_day", "egfr_ml_min", "food_release",
                                           "intrinsic_factor", "ileal_resection_cm",
                                           "baseline_serum_pmol_per_l", "baseline_stores_ug")
                if k in row}
    return dataclasses.replace(spec.patient, overrides={k: float(row[k]) for k in params},
                               **settings)


@pytest.mark.parametrize("covariates", [None, "older-adults"])
def test_an_exact_patient_is_the_sampled_patient_simulated(covariates):
    spec = PopulationSpec(b12pk.Patient.preset("pernicious-anaemia"), n=1, seed=11,
                          covariates=covariates)
    pop = simulate_population(IM, spec, 40, method="exact")
    ref = b12pk.simulate(IM, _sampled_patient(spec), 40)
    np.testing.assert_allclose(pop.means.serum_pmol_per_l, ref.serum_pmol_per_l, rtol=1e-12)


@pytest.mark.parametrize("regimen, tol", [(ORAL, 2e-3), (IM, 1e-2), (NASAL, 1e-2)],
                         ids=["oral", "im", "intranasal"])
def test_the_fast_method_agrees_with_the_exact_one(regimen, tol):
    spec = PopulationSpec(PA, n=40, seed=2)
    fast = simulate_population(regimen, spec, 90)
    exact = simulate_population(regimen, spec, 90, method="exact")
    for col in ("serum_pmol_per_l", "stores_ug"):
        a, b = fast.means[col].to_numpy(), exact.means[col].to_numpy()
        assert np.abs(a / b - 1).max() < tol, col
    np.testing.assert_allclose(fast.bands.probability, exact.bands.probability, atol=0.05)


def test_an_unknown_population_method_is_refused():
    with pytest.raises(b12pk.InputError, match="accepted: 'fast', 'exact'"):
        simulate_population(ORAL, PopulationSpec(PA, n=2), 10, method="euler")


def test_the_fast_method_refuses_a_model_it_was_not_written_for(monkeypatch):
    import b12pk.population.core as core

    monkeypatch.setattr(core, "model_signature", lambda: "another-model")
    spec = PopulationSpec(PA, n=2)
    with pytest.raises(b12pk.ModelError, match="method='exact'"):
        simulate_population(ORAL, spec, 10)
    assert simulate_population(ORAL, spec, 10, method="exact").n == 2


def test_population_command_runs_the_exact_method(tmp_path):
    import json

    out = tmp_path / "pop"
    rc = b12pk.cli.main(["population", "--regimen", "1000 mcg IM monthly", "--patient",
                         "pernicious-anaemia", "--n", "3", "--days", "40", "--method", "exact",
                         "--out", str(out)])
    assert rc == 0
    assert json.loads((out / "run.json").read_text())["engine"]["method"] == "exact"


def test_a_population_can_draw_the_fitted_parameters_too():
    spec = PopulationSpec("pernicious-anaemia", 200, 4)
    wide = PopulationSpec("pernicious-anaemia", 200, 4, parameter_uncertainty=True)
    reg = "1000 mcg hydroxocobalamin IM every 2 months"
    a = simulate_population(reg, spec, 120, method="exact")
    b = simulate_population(reg, wide, 120, method="exact")
    again = simulate_population(reg, wide, 120, method="exact")
    pd.testing.assert_frame_equal(b.quantiles, again.quantiles)  # same seed, same draws
    day = lambda r, q: float(r.quantiles[(r.quantiles.time_days == 100)  # noqa: E731
                                         & (r.quantiles["quantile"] == q)].serum_pmol_per_l.iloc[0])
    assert day(b, 95.0) - day(b, 5.0) > day(a, 95.0) - day(a, 5.0)


def test_parameter_uncertainty_needs_the_exact_method():
    spec = PopulationSpec("healthy", 10, parameter_uncertainty=True)
    with pytest.raises(b12pk.InputError, match="method='exact'"):
        simulate_population("1000 mcg oral daily", spec, 30)
    with pytest.raises(b12pk.InputError, match="parameter_uncertainty"):
        PopulationSpec("healthy", 10, parameter_uncertainty="yes")


def test_population_command_draws_parameter_uncertainty(tmp_path):
    import json

    out = tmp_path / "pop"
    assert b12pk.cli.main(["population", "--regimen", "1000 mcg IM monthly", "--n", "50",
                           "--days", "40", "--method", "exact", "--parameter-uncertainty",
                           "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["parameter_uncertainty"] is True
    assert b12pk.cli.main(["population", "--regimen", "1000 mcg IM monthly", "--n", "50",
                           "--parameter-uncertainty", "--out", str(tmp_path / "p2")]) != 0


def test_a_patients_variability_is_centred_on_his_posterior_draw():
    from b12pk.model.parameters import default_parameters
    from b12pk.population.core import _centred_on, _posterior_block, _sample_block, _typical

    spec = PopulationSpec("pernicious-anaemia", 50, 1, parameter_uncertainty=True)
    base = default_parameters()
    draw = _sample_block(spec, 0, _typical(spec, spec.patient.parameters(base)))
    fitted = _posterior_block(spec, 0, base, 50)
    moved = _centred_on(draw, fitted, base)["uptake_vmax_ug_per_day"]
    ratio = np.array([f["uptake_vmax_ug_per_day"] for f in fitted]) / base["uptake_vmax_ug_per_day"]
    np.testing.assert_allclose(moved, draw["uptake_vmax_ug_per_day"] * ratio, rtol=1e-12)


def test_an_injection_below_the_transient_end_still_reaches_the_body():
    # a dose smaller than TRANSIENT_END_UG ends its transient at once: what is retained
    # goes to the tissues as in simulate, not lost (compared with the same amount by mouth,
    # which a patient without intrinsic factor barely absorbs)
    from b12pk.population.core import TRANSIENT_END_UG

    dose = TRANSIENT_END_UG / 2
    spec = PopulationSpec.without_variability(PA, n=1)

    def gain(run):
        im, oral = (run(f"{dose:g} mcg cyanocobalamin {route} on day 3")
                    for route in ("IM", "oral"))
        return im - oral

    fast = gain(lambda r: simulate_population(r, spec, 5).means.stores_ug.iloc[-1])
    exact = gain(lambda r: b12pk.simulate(r, PA, 5).stores_ug.iloc[-1])
    assert exact > 0.5 * dose
    assert fast == pytest.approx(exact, rel=0.01)


# ------------------------------------------------------- per-patient lowest readings

def test_watch_values_are_each_patients_lowest_daily_serum():
    from b12pk.population import Watch

    reg = "1000 mcg cyanocobalamin IM daily for 10 days, then monthly"
    spec = PopulationSpec(b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110),
                          n=12, seed=5)
    res = simulate_population(reg, spec, 120.0, daily=False, watch_values=True,
                              watch=[Watch(200.0, "daily", 30.0, 120.0),
                                     Watch(200.0, "daily", 90.0, 120.0)])
    assert res.watch_min.shape == (2, 12)
    draws = sample_patients(spec)
    for i, row in enumerate(draws.to_dict("records")):
        overrides = {k: row[k] for k in ("if_capacity_ug", "passive_fraction",
                                         "other_loss_fraction_per_day",
                                         "uptake_vmax_ug_per_day", "nasal_bioavailability")}
        patient = dataclasses.replace(spec.patient, diet_ug_per_day=row["diet_ug_per_day"],
                                      baseline_serum_pmol_per_l=row["baseline_serum_pmol_per_l"],
                                      overrides={**spec.patient.overrides, **overrides})
        df = b12pk.simulate(reg, patient, 120.0)   # the same patient, alone
        for w, start in enumerate((30.0, 90.0)):
            lowest = df.serum_pmol_per_l[df.time_days >= start].min()
            assert res.watch_min[w, i] == pytest.approx(lowest, rel=1e-3)
    met = res.watch_min >= 200.0
    assert res.watch_met == (*met.sum(axis=1), int(met.all(axis=0).sum()))


def test_watch_values_are_refused_without_checks_or_beyond_the_limit(monkeypatch):
    from b12pk.errors import InputError, ResourceError
    from b12pk.population import Watch
    from b12pk.population import core

    spec = PopulationSpec(b12pk.Patient.preset("healthy"), n=20, seed=1)
    with pytest.raises(InputError, match="needs watch"):
        simulate_population(ORAL, spec, 10.0, watch_values=True)
    with pytest.raises(InputError, match="watch_values"):
        simulate_population(ORAL, spec, 10.0, watch=[Watch(1.0, "daily", 0.0, 10.0)],
                            watch_values="yes")
    monkeypatch.setattr(core, "MAX_WATCH_VALUES", 10)
    with pytest.raises(ResourceError, match="watch_met"):
        simulate_population(ORAL, spec, 10.0, watch=[Watch(1.0, "daily", 0.0, 10.0)],
                            watch_values=True)


def test_watch_values_do_not_depend_on_chunks_or_threads():
    from b12pk.population import Watch

    spec = PopulationSpec(PA, n=2500, seed=4)
    watch = [Watch(150.0, "daily", 10.0, 60.0)]
    runs = [simulate_population("1000 mcg IM monthly", spec, 60.0, watch=watch, daily=False,
                                watch_values=True, chunk_size=chunk, workers=workers)
            for chunk, workers in ((1024, 2), (4096, 1))]
    assert runs[0].watch_min.shape == (1, 2500)
    assert np.array_equal(runs[0].watch_min, runs[1].watch_min)
    assert runs[0].watch_met == runs[1].watch_met
