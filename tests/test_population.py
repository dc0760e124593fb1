"""Virtual populations: reproducibility, chunking, accuracy, aggregation, errors, Dask."""

from __future__ import annotations

import dataclasses

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


def test_a_patient_does_not_depend_on_population_size():
    small = sample_patients(PopulationSpec(PA, n=BLOCK + 5, seed=4))
    large = sample_patients(PopulationSpec(PA, n=5 * BLOCK, seed=4))
    pd.testing.assert_frame_equal(small, large.iloc[: BLOCK + 5])


@pytest.mark.parametrize("regimen, tol", [(ORAL, 1e-9), (IM, 2e-3)])
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
    assert pop.means["serum_pmol_per_l"].iloc[-1] == pytest.approx(finals.mean(), rel=1e-6)
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
    assert code == 2 and err.count("\n") == 1 and "population size" in err
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


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed (pip install b12pk[fast])")
@pytest.mark.parametrize("regimen", [ORAL, IM], ids=["oral", "im"])
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
