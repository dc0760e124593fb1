"""Population engine benchmark: one command, one table.

    python benchmarks/bench_population.py            # quick (about 2 minutes on 2 cores)
    python benchmarks/bench_population.py --full     # adds N = 1e6 and 20-year horizons
    python benchmarks/bench_population.py --issue    # the issue's rows: 1e6 x 1 year, oral and IM

Compares, in one run on the same regimen (2000 ug oral cyanocobalamin daily) and patient
(pernicious anaemia, 110 pmol/L, default between-patient variability):

1. a naive baseline: a loop of per-patient ``scipy.integrate.solve_ivp`` (LSODA restarted at
   each daily dose) on the same linear model, against b12pk's vectorised engine, per
   patient-year;
2. the engine's wall time against a memory-bandwidth floor: the time numpy takes to write the
   same number of float64 values (patients x days x 2 outputs);
3. scaling with N and with the horizon (the cost should grow linearly in both).

Machines are noisy: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import b12pk  # noqa: E402
from b12pk.engine.core import System  # noqa: E402
from b12pk.population import PopulationSpec, sample_patients, simulate_population  # noqa: E402

REGIMEN = b12pk.Regimen.parse("2000 mcg cyanocobalamin oral daily")
PATIENT = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)


def naive_per_patient_year(n_patients: int = 5) -> float:
    """Seconds per patient-year: per-patient solve_ivp (LSODA), restarted at each dose."""
    draws = sample_patients(PopulationSpec(PATIENT, n_patients, seed=1))
    sys_ = System(PATIENT, PATIENT.parameters(), ("cyanocobalamin",))
    L = sys_.L
    idx = [L.ileum, L.enterocyte, L.holotc, L.holohc, L.stores]
    A0 = sys_.A[np.ix_(idx, idx)]
    start = time.perf_counter()
    for row in draws.itertuples():
        A = A0.copy()
        A[4, 4] += sys_.k_loss - (sys_.k_loss - sys_.p["other_loss_fraction_per_day"]
                                  + row.other_loss_fraction_per_day)
        y = np.array(sys_.plasma_given_stores(700.0)[idx])
        dose_abs = row.passive_fraction * 2000.0
        for day in range(365):
            y[0] += dose_abs
            sol = solve_ivp(lambda t, v: A @ v, (day, day + 1.0), y, method="LSODA",
                            rtol=1e-8, atol=1e-10)
            y = sol.y[:, -1]
    return (time.perf_counter() - start) / n_patients


def engine_time(n: int, years: float, **kwargs) -> float:
    spec = PopulationSpec(PATIENT, n, seed=1)
    start = time.perf_counter()
    res = simulate_population(REGIMEN, spec, 365.0 * years, **kwargs)
    res.quantiles  # quantiles are part of the job (computed inside simulate_population)
    return time.perf_counter() - start


def bandwidth_floor(n: int, years: float) -> float:
    """Seconds to write n x days x 2 float64 values with numpy (in 16k-patient chunks)."""
    days = int(365 * years) + 1
    chunk = min(n, 16384)
    buf = np.empty((2, chunk))
    start = time.perf_counter()
    for _ in range(math.ceil(n / chunk)):
        for _ in range(days):
            buf.fill(1.0)
    return time.perf_counter() - start


ISSUE_CASES = (("oral 2000 ug daily", "2000 mcg cyanocobalamin oral daily", 5.0),
               ("IM 1000 ug cyanocobalamin every 2 months",
                "1000 mcg cyanocobalamin IM every 2 months", 10.0),
               ("IM 1000 ug hydroxocobalamin every 2 months",
                "1000 mcg hydroxocobalamin IM every 2 months", 10.0))


def issue_table() -> None:
    """The issue's population rows (issue 16): 1e6 patients x 1 year, daily output with
    quantiles and band probabilities, all CPUs, against its targets; peak memory of the
    process after each."""
    import resource

    spec = PopulationSpec(PATIENT, 1_000_000, seed=1)
    simulate_population(ISSUE_CASES[1][1], PopulationSpec(PATIENT, 2048, seed=1), 60.0)
    print("1,000,000 patients x 1 year (issue 16), backend auto, all CPUs")
    print(f"{'case':<44s} {'wall s':>8s} {'target s':>9s} {'peak MB':>8s}")
    for label, text, target in ISSUE_CASES:
        start = time.perf_counter()
        simulate_population(text, spec, 365.0)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:<44s} {wall:>8.1f} {target:>9.0f} {peak:>8.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issue", action="store_true",
                    help="only the issue's rows: 1e6 patients x 1 year, oral and IM")
    ap.add_argument("--full", action="store_true",
                    help="include N = 1e6 in the scaling table and 20-year horizons")
    ap.add_argument("--plot", default=None, metavar="PNG",
                    help="write the scaling table as a log-log plot")
    args = ap.parse_args(argv)
    if args.issue:
        issue_table()
        return 0
    has_numba = importlib.util.find_spec("numba") is not None
    print("b12pk population benchmark (2000 ug oral daily, pernicious anaemia, default "
          f"variability); CPUs available: {len(os.sched_getaffinity(0))}; numba: "
          f"{'yes' if has_numba else 'no'}\n")
    # warm-up (numba compiles or loads its cache; first tables)
    engine_time(2048, 0.1)
    naive = naive_per_patient_year()
    t = engine_time(100_000, 1.0)
    per = t / 100_000
    print(f"naive solve_ivp loop:  {naive * 1e3:9.1f} ms per patient-year")
    print(f"b12pk engine (N=1e5):  {per * 1e6:9.1f} us per patient-year")
    print(f"speed-up:              {naive / per:9.0f} x\n")

    n = 1_000_000
    floor = bandwidth_floor(n, 1.0)
    print(f"1,000,000 patients x 1 year, daily output, quantiles and band probabilities "
          f"(floor: writing {n * 366 * 2:,} float64 with numpy takes {floor:.2f} s)")
    print(f"{'backend':>8s} {'workers':>8s} {'wall s':>8s} {'x floor':>8s}")
    configs = [("numpy", 1), ("numpy", 2)] + ([("numba", 1), ("numba", 2)] if has_numba else [])
    for backend, workers in configs:
        te = engine_time(n, 1.0, backend=backend, workers=workers)
        print(f"{backend:>8s} {workers:>8d} {te:>8.2f} {te / floor:>8.1f}", flush=True)
    print()

    sizes = [1_000, 10_000, 100_000] + ([1_000_000] if args.full else [])
    years = [1, 5] + ([20] if args.full else [])
    print("scaling (backend auto, all CPUs)")
    print(f"{'N':>10s} {'years':>6s} {'engine s':>10s} {'floor s':>9s} {'x floor':>8s} "
          f"{'us/patient-year':>16s}")
    rows = []
    for n in sizes:
        for y in years:
            te = engine_time(n, y)
            tf = bandwidth_floor(n, y)
            rows.append((n, y, te))
            print(f"{n:>10,d} {y:>6d} {te:>10.2f} {tf:>9.3f} {te / tf:>8.1f} "
                  f"{te / (n * y) * 1e6:>16.2f}", flush=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
        for y in years:
            pts = [(n, te) for n, yy, te in rows if yy == y]
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{y} year(s)")
        ns = np.array(sizes, dtype=float)
        ref = rows[-1][2] / (sizes[-1] * years[-1])
        ax.loglog(ns, ref * ns * years[-1], "k:", lw=1, label="linear in N (through the last point)")
        ax.set_xlabel("patients N")
        ax.set_ylabel("wall time (s)")
        ax.set_title("b12pk population engine: cost against N and horizon\n"
                     "(2000 µg oral daily, daily output; one run, this machine)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.savefig(args.plot, dpi=130)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
