"""Regimen-designer benchmark: one command, one table.

    python benchmarks/bench_design.py            # quick: 20 candidates (about 1-2 minutes)
    python benchmarks/bench_design.py --full     # the issue's case: 200 candidates x 10,000
                                                 # patients x 2 years (several minutes)

Measures, in one run on 2 cores (pernicious anaemia, 110 pmol/L; target "serum >= 200 pmol/L
before every dose in 90 % of patients, from month 3 to year 2"):

1. one candidate in 10,240 patients over 2 years, injected (1000 ug hydroxocobalamin,
   loading then every 60 days) and oral (1000 ug daily): the engine's cost per candidate
   without the designer's early stopping;
2. the whole design with early stopping (stages of 1,024 common patients; a candidate stops
   once the 95 % interval of its share lies clearly above or below 90 %), both workers;
3. what the same design would cost without early stopping (per-candidate cost x candidates /
   workers, from row 1): the saving early stopping brings.

Machines are noisy: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import b12pk  # noqa: E402
from b12pk.analysis.design import SearchSpace, design  # noqa: E402
from b12pk.population import PopulationSpec, Watch, simulate_population  # noqa: E402

PATIENT = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
TARGET = "serum >= 200 pmol/L before every dose in 90 % of patients, from month 3 to year 2"
DAYS = 730.0
WATCH = (Watch(200.0, "trough", 90.0, DAYS),)

QUICK = SearchSpace(im_doses_ug=(1000.0,), intervals_days=(30.0, 60.0, 90.0),
                    loading=(True, False), oral_doses_ug=(250.0, 500.0, 1000.0, 2000.0,
                                                          5000.0, 10000.0, 100.0, 50.0))
# 2 forms x 4 doses x 12 intervals x 2 loading choices + 8 oral doses = 200 candidates
FULL = SearchSpace(im_doses_ug=(100.0, 250.0, 500.0, 1000.0),
                   intervals_days=tuple(float(7 * w) for w in (2, 3, 4, 5, 6, 8, 9, 10, 12, 13,
                                                               17, 26)),
                   loading=(True, False),
                   oral_doses_ug=(25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0))


def _one(text: str, n: int, daily: bool = True) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        simulate_population(text, PopulationSpec(PATIENT, n, 1), DAYS, watch=WATCH,
                            daily=daily)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="200 candidates x 10,000 patients")
    args = ap.parse_args()
    space = FULL if args.full else QUICK
    n = 10_000
    inj_text = ("1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every "
                "60 days")
    oral_text = "1000 mcg cyanocobalamin oral daily"
    _one(inj_text, 64, daily=False)  # compiled kernels loaded (numba's cache) before timing
    inj_daily = _one(inj_text, 10_240)
    inj = _one(inj_text, 10_240, daily=False)
    oral_daily = _one(oral_text, 10_240)
    oral = _one(oral_text, 10_240, daily=False)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = design(PATIENT, TARGET, space=space, n=n, seed=0, workers=2)
    wall = time.perf_counter() - t
    tab = res.table
    n_inj, n_oral = int((tab.route == "IM").sum()), int((tab.route == "oral").sum())
    naive = (n_inj * inj + n_oral * oral) / 2.0
    rows = [
        ("one injected candidate, 10,240 patients x 2 years", f"{inj:.1f} s",
         f"checks only (daily=False, as the designer); with daily output {inj_daily:.1f} s"),
        ("one oral candidate, 10,240 patients x 2 years", f"{oral:.1f} s",
         f"checks only; with daily output {oral_daily:.1f} s"),
        (f"design: {len(tab)} candidates, up to {n:,} patients, 2 workers", f"{wall:.1f} s",
         f"{tab.patients.sum():,} patient-runs; {int(tab.decided_early.sum())} decided early"),
        ("same design without early stopping (estimate from rows 1-2)", f"{naive:.0f} s",
         f"early stopping: {naive / wall:.1f}x faster"),
        ("target of the issue (200 x 10,000 x 2 years)", "60 s",
         f"this run: {wall / 60.0 * 200.0 / len(tab):.1f}x the target per 200 candidates"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'time':>8}  note")
    for case, value, note in rows:
        print(f"{case:<{width}}  {value:>8}  {note}")
    print(f"\nchoice: {res.summary_line()}")


if __name__ == "__main__":
    main()
