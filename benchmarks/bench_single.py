"""One patient, one year: b12pk.simulate against libRoadRunner and a solve_ivp loop (issue 16).

    python benchmarks/bench_single.py [--repeat 10] [--save]

For the four cases of issue 16 (patient ``pernicious-anaemia``, 365 days, daily output):

* ``b12pk``: :func:`b12pk.simulate`, best of ``--repeat`` calls after a warm-up call (the
  whole call: input checks, integration, the result DataFrame);
* ``libRoadRunner`` on b12pk's own SBML export (:func:`b12pk.exchange.sbml.to_sbml`, one repeating
  event per dose series): the load (``RoadRunner(text)``: parse and JIT-compile, tolerances
  set) timed once after a warm-up load of another document, and the simulation
  (``resetAll`` + ``simulate`` on the same daily grid, every output column selected), best of
  ``--repeat`` after a warm-up; CVODE at rtol 1e-10, atol 1e-10 ug (b12pk's accuracy);
* a per-patient ``scipy.integrate.solve_ivp`` loop: Radau on the engine's own right-hand side
  and Jacobian (``engine.System.rhs``/``jac``), restarted at each dose instant, the doses
  given by the engine's own dose step, rtol 1e-10 and atol 1e-12 (the reference tolerances
  of ``simulate(method="solve_ivp")``); best of ``--ivp-repeat`` (default 1: seconds a
  call).

Ratios compare times of one run on one machine (machines are noisy: compare ratios, not
absolute times across runs). Also times libRoadRunner loading the export of 10 years of
2000 ug oral daily (one event per dose took 84 s before issue 16). ``--save`` writes the
table to ``benchmarks/results/bench_single_<date>.txt``.

Needs the ``b12pk[sbml]`` extra (python-libsbml, libroadrunner).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import os
import platform
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import b12pk  # noqa: E402
from b12pk.engine import core as engine
from b12pk.exchange import sbml  # noqa: E402
from b12pk.io import atomic_write_text  # noqa: E402

PATIENT = "pernicious-anaemia"
DAYS = 365.0
CASES = {
    "IM cyano 1000 ug monthly": "1000 mcg cyanocobalamin IM monthly",
    "IM hydroxo loading, then every 2 months":
        "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every 2 months",
    "intranasal 1000 ug every 3 days": "1000 mcg intranasal every 3 days",
    "oral 2000 ug daily": "2000 mcg oral daily",
}
COMPARED = ("serum_pmol_per_l", "stores_ug", "urine_ug")


def best_of(fn, n: int) -> tuple[float, object]:
    """(best wall time in s of ``n`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(max(n, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def worst_rel(a: dict, b: dict) -> float:
    """Worst relative difference over the compared outputs (denominators >= 1e-9)."""
    return max(float(np.max(np.abs(np.asarray(a[c]) - np.asarray(b[c]))
                            / np.maximum(np.abs(np.asarray(b[c])), 1e-9))) for c in COMPARED)


def solve_ivp_loop(regimen: str, patient: b12pk.Patient, days: float,
                   times: np.ndarray) -> dict[str, np.ndarray]:
    """Radau on the engine's right-hand side, restarted at each dose instant; the compared
    outputs at ``times`` (the state just after the doses at a dose time, as in b12pk)."""
    patient, params = engine.resolve_patient(patient, None)
    events = engine.events_from(regimen, days)
    sys_ = engine.System(patient, params, engine.parenteral_forms(events))
    y = sys_.initial_state(patient)
    book = engine._DoseBook()
    groups: dict[float, list] = {}
    for ev in events:
        groups.setdefault(ev.time_days, []).append(ev)
    states = np.empty((times.size, y.size))
    t, k = 0.0, 0
    for te in sorted(groups) + [None]:
        t_end = days if te is None else te
        j = int(np.searchsorted(times, t_end, side="right" if te is None else "left"))
        if t_end > t:
            grid = times[k:j]
            extra = not grid.size or grid[-1] < t_end
            sol = solve_ivp(sys_.rhs, (t, t_end), y, method="Radau", jac=sys_.jac,
                            rtol=engine.RTOL, atol=engine.ATOL,
                            t_eval=np.append(grid, t_end) if extra else grid)
            if sol.status < 0:
                raise RuntimeError(sol.message)
            states[k:j] = sol.y.T[:j - k]
            y = sol.y[:, -1].copy()
        else:
            states[k:j] = y
        k, t = j, t_end
        if te is not None:
            engine._apply_doses(sys_, y, te, groups[te], book)
    env = dict(sys_.rates)
    for c in sys_.decl.compartments:
        env[c.name] = sum(states[:, i] for i in sys_.L.indices(c.name))
    outputs = dict(sys_.decl.outputs)
    return {c: np.broadcast_to(outputs[c](env), times.shape) for c in COMPARED}


def bench_case(regimen: str, repeat: int, ivp_repeat: int, times: np.ndarray,
               warm_text: str) -> dict:
    patient = b12pk.Patient.preset(PATIENT)
    # b12pk
    b12pk.simulate(regimen, patient, DAYS, times=times)  # warm-up
    t_b12pk, ref = best_of(lambda: b12pk.simulate(regimen, patient, DAYS, times=times),
                           repeat)
    # libRoadRunner on the export
    t_export, text = best_of(lambda: sbml.to_sbml(patient, regimen, days=DAYS), 1)
    sbml.load_roadrunner(warm_text)  # warm-up load (first JIT of the process)
    t_load, rr = best_of(lambda: sbml.load_roadrunner(text), 1)
    cols = ["time"] + [c for c in ref.columns if c != "time_days"]

    def rr_sim():
        rr.resetAll()
        return rr.simulate(times=times, selections=cols)
    rr_sim()  # warm-up
    t_rr, res = best_of(rr_sim, repeat)
    res = np.asarray(res)
    rr_out = {c: res[:, cols.index(c)] for c in COMPARED}
    # solve_ivp loop (seconds per call: timed once, no warm-up needed for pure Python/scipy)
    t_ivp, ivp = best_of(lambda: solve_ivp_loop(regimen, patient, DAYS, times), ivp_repeat)
    ref_out = {c: ref[c].to_numpy() for c in COMPARED}
    return {"doses": len(engine.events_from(regimen, DAYS)),
            "events": len(sbml.dose_series(regimen, DAYS)),
            "b12pk": t_b12pk, "export": t_export, "load": t_load, "rr": t_rr, "ivp": t_ivp,
            "rr_vs_b12pk": worst_rel(rr_out, ref_out), "ivp_vs_b12pk": worst_rel(ivp, ref_out),
            "rr_vs_ivp": worst_rel(rr_out, ivp)}


def ten_years_load() -> dict:
    days = 3650.0
    regimen = "2000 mcg oral daily"
    t_export, text = best_of(lambda: sbml.to_sbml(PATIENT, regimen, days=days), 1)
    sbml.load_roadrunner(sbml.to_sbml(PATIENT, regimen, days=30))  # warm-up
    t_load, _ = best_of(lambda: sbml.load_roadrunner(text), 1)
    return {"doses": len(engine.events_from(regimen, days)),
            "events": len(sbml.dose_series(regimen, days)), "export": t_export,
            "load": t_load, "kb": len(text.encode()) / 1e3}


def run(repeat: int, ivp_repeat: int) -> None:
    import roadrunner
    import scipy

    times = np.arange(int(DAYS) + 1, dtype=float)
    print(f"b12pk {b12pk.__version__}, libRoadRunner {roadrunner.__version__}, scipy "
          f"{scipy.__version__}, numpy {np.__version__}; Python {platform.python_version()} "
          f"on {platform.machine()}, {os.cpu_count()} CPUs; {_dt.datetime.now():%Y-%m-%d %H:%M}")
    print(f"patient {PATIENT}, {DAYS:g} days, daily output ({times.size} times); best of "
          f"{repeat} after a warm-up (solve_ivp loop: best of {ivp_repeat})")
    print()
    head = (f"{'case':40s} {'doses':>5s} {'events':>6s} {'b12pk ms':>9s} {'export ms':>9s} "
            f"{'rr load ms':>10s} "
            f"{'rr sim ms':>9s} {'ivp ms':>8s} {'b12pk/rr':>8s} {'ivp/b12pk':>9s} "
            f"{'rr-b12pk':>8s} {'ivp-b12pk':>9s} {'rr-ivp':>7s}")
    print(head)
    print("-" * len(head))
    warm = sbml.to_sbml(PATIENT, "1000 mcg cyanocobalamin IM weekly", days=30)
    for name, regimen in CASES.items():
        r = bench_case(regimen, repeat, ivp_repeat, times, warm)
        print(f"{name:40s} {r['doses']:5d} {r['events']:6d} {1e3 * r['b12pk']:9.2f} "
              f"{1e3 * r['export']:9.1f} "
              f"{1e3 * r['load']:10.1f} {1e3 * r['rr']:9.2f} {1e3 * r['ivp']:8.1f} "
              f"{r['b12pk'] / r['rr']:8.2f} {r['ivp'] / r['b12pk']:9.1f} "
              f"{r['rr_vs_b12pk']:8.1e} {r['ivp_vs_b12pk']:9.1e} {r['rr_vs_ivp']:7.1e}",
              flush=True)
    print()
    print("b12pk ms: b12pk.simulate (whole call, DataFrame included); export ms: "
          "b12pk.exchange.sbml.to_sbml; rr load ms: "
          "libRoadRunner parse + JIT of the export, once; rr sim ms: resetAll + simulate on "
          "the same grid; ivp ms: per-patient solve_ivp Radau loop (rtol 1e-10, atol 1e-12) "
          "restarted at each dose. b12pk/rr = b12pk ms / rr sim ms (< 1: b12pk faster); "
          "ivp/b12pk = ivp ms / b12pk ms. Last three columns: worst relative difference in "
          "serum, stores and urine between the two named.")
    print()
    r = ten_years_load()
    print(f"10 years of 2000 ug oral daily: {r['doses']:,} doses -> {r['events']} SBML "
          f"event(s), {r['kb']:.0f} kB; export {r['export']:.2f} s, libRoadRunner load "
          f"{r['load']:.3f} s (one event per dose: 84 s, issue 16)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10,
                    help="calls timed per tool and case (best kept); default 10")
    ap.add_argument("--ivp-repeat", type=int, default=1,
                    help="calls of the solve_ivp loop timed per case (seconds each); default 1")
    ap.add_argument("--save", action="store_true",
                    help="also write benchmarks/results/bench_single_<date>.txt")
    args = ap.parse_args(argv)
    buf = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            buf.write(s)
            return len(s)

        def flush(self) -> None:
            sys.__stdout__.flush()

    with redirect_stdout(Tee()):
        run(args.repeat, args.ivp_repeat)
    if args.save:
        out = Path(__file__).resolve().parent / "results" / \
            f"bench_single_{_dt.date.today().isoformat()}.txt"
        atomic_write_text(out, buf.getvalue())
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
