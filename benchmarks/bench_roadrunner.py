"""Benchmark: one population simulated by libRoadRunner (the exported SBML model) and by b12pk.

libRoadRunner is used its fastest documented way for a population: the model is loaded
(JIT-compiled) once per regimen, then for each patient the initial values of the
patient-dependent parameters and amounts are set (``rr.model.setValue("init(id)", v)``,
values from :func:`b12pk.exchange.sbml.patient_values`), the model is reset with ``resetAll`` and
simulated at daily output times. b12pk's time in the first table is that of one
``b12pk.simulate`` call per patient; the second table compares the population engine.
The export holds one repeating SBML event per dose series (issue 16), so the load time no
longer grows with the number of doses; see also ``benchmarks/bench_single.py``.

Run::

    python benchmarks/bench_roadrunner.py [--patients 30] [--days 365] [--seed 1]

Prints, per regimen, the one-off export and load time, the per-patient time of each tool,
their ratio, and the worst relative difference in serum B12 and stores over the population.
Needs the ``b12pk[sbml]`` extra (python-libsbml, libroadrunner).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import b12pk  # noqa: E402
from b12pk import Patient
from b12pk.exchange import sbml  # noqa: E402

REGIMENS = {
    "oral 2000 ug daily": "2000 mcg oral daily",
    "IM hydroxo loading + monthly": "1000 mcg hydroxocobalamin IM three times weekly for "
                                    "2 weeks, then monthly",
    "intranasal 1000 ug every 3 days": "1000 mcg cyanocobalamin intranasal every 3 days",
}
PRESETS = ("healthy", "pernicious-anaemia", "renal-impairment", "vegan", "atrophic-gastritis",
           "metformin", "ileal-resection")


def population(n: int, seed: int) -> list[Patient]:
    """n patients: a preset with random eGFR, diet and (for deficiency presets) baseline."""
    rng = np.random.default_rng(seed)
    out: list[Patient] = []
    while len(out) < n:
        preset = PRESETS[rng.integers(len(PRESETS))]
        settings = {"egfr_ml_min": float(rng.uniform(15, 120)),
                    "diet_ug_per_day": float(rng.uniform(1.5, 8.0))}
        if preset not in ("healthy", "vegan"):
            settings["serum_pmol_per_l"] = float(rng.uniform(80, 250))
        patient = Patient.preset(preset, **settings)
        try:
            b12pk.simulate([], patient, days=1)  # a baseline the diet cannot reach: redraw
        except b12pk.InputError:
            continue
        out.append(patient)
    return out


def bench(regimen: str, patients: list[Patient], days: float) -> dict[str, float]:
    times = np.arange(int(days) + 1, dtype=float)
    t0 = time.perf_counter()
    text = sbml.to_sbml(patients[0], regimen, days=days)
    t1 = time.perf_counter()
    rr = sbml.load_roadrunner(text)
    t2 = time.perf_counter()
    selections = ["time", "serum_pmol_per_l", "stores"]
    rr.simulate(times=times, selections=selections)  # warm-up

    # libRoadRunner: new initial values, resetAll, simulate
    rr_results = []
    t_values = t_sim = 0.0
    for patient in patients:
        a = time.perf_counter()
        values = sbml.patient_values(patient, regimen, days)
        b = time.perf_counter()
        for sid, v in values.items():
            rr.model.setValue(f"init({sid})", v)
        rr.resetAll()
        res = rr.simulate(times=times, selections=selections)
        c = time.perf_counter()
        rr_results.append(np.asarray(res))
        t_values += b - a
        t_sim += c - b

    # b12pk: one simulate call per patient
    ref = []
    a = time.perf_counter()
    for patient in patients:
        ref.append(b12pk.simulate(regimen, patient, days, times=times))
    t_b12pk = time.perf_counter() - a

    worst_serum = max(float(np.max(np.abs(r[:, 1] - d["serum_pmol_per_l"].to_numpy())
                                   / d["serum_pmol_per_l"].to_numpy()))
                      for r, d in zip(rr_results, ref))
    worst_stores = max(float(np.max(np.abs(r[:, 2] - d["stores_ug"].to_numpy())
                                    / d["stores_ug"].to_numpy()))
                       for r, d in zip(rr_results, ref))
    n = len(patients)
    return {
        "events": text.count("<event "),
        "export_s": t1 - t0,
        "load_s": t2 - t1,
        "rr_sim_ms": 1e3 * t_sim / n,
        "rr_total_ms": 1e3 * (t_sim + t_values) / n,
        "b12pk_ms": 1e3 * t_b12pk / n,
        "worst_serum": worst_serum,
        "worst_stores": worst_stores,
    }


def bench_population_engine(regimen: str, n_rr: int, n_engine: int, days: float) -> dict:
    """The same virtual population (pernicious anaemia, default variability) in
    libRoadRunner (loop: init values + resetAll + simulate) and in b12pk's population
    engine; per patient-year."""
    import dataclasses

    from b12pk.population import PopulationSpec, sample_patients, simulate_population

    base = Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
    spec = PopulationSpec(base, n_engine, seed=1)
    draws = sample_patients(PopulationSpec(base, n_rr, seed=1))
    patients = [dataclasses.replace(
        base, diet_ug_per_day=r.diet_ug_per_day,
        baseline_serum_pmol_per_l=r.baseline_serum_pmol_per_l,
        overrides={"if_capacity_ug": r.if_capacity_ug, "passive_fraction": r.passive_fraction,
                   "other_loss_fraction_per_day": r.other_loss_fraction_per_day,
                   "uptake_vmax_ug_per_day": r.uptake_vmax_ug_per_day,
                   "nasal_bioavailability": r.nasal_bioavailability})
        for r in draws.itertuples()]
    times = np.arange(int(days) + 1, dtype=float)
    rr = sbml.load_roadrunner(sbml.to_sbml(patients[0], regimen, days=days))
    rr.simulate(times=times, selections=["time", "serum_pmol_per_l"])
    a = time.perf_counter()
    for patient in patients:
        for sid, v in sbml.patient_values(patient, regimen, days).items():
            rr.model.setValue(f"init({sid})", v)
        rr.resetAll()
        rr.simulate(times=times, selections=["time", "serum_pmol_per_l", "stores"])
    t_rr = (time.perf_counter() - a) / n_rr
    a = time.perf_counter()
    simulate_population(regimen, spec, days)
    t_engine = (time.perf_counter() - a) / n_engine
    years = days / 365.0
    return {"rr_ms": 1e3 * t_rr / years, "engine_ms": 1e3 * t_engine / years}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    import roadrunner

    patients = population(args.patients, args.seed)
    print(f"b12pk {b12pk.__version__} vs libRoadRunner {roadrunner.__version__}; "
          f"{args.patients} patients, {args.days:g} days, daily output; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs")
    print("rr/patient: init values set + resetAll + simulate (CVODE rtol 1e-10, atol 1e-10); "
          "rr+values also counts computing the patient's values in Python (patient_values).")
    head = (f"{'regimen':33s} {'events':>6s} {'load s':>7s} {'rr ms':>8s} {'rr+val ms':>9s} "
            f"{'b12pk ms':>9s} {'b12pk/rr':>8s} {'worst serum':>11s} {'worst stores':>12s}")
    print(head)
    print("-" * len(head))
    for name, regimen in REGIMENS.items():
        r = bench(regimen, patients, args.days)
        print(f"{name:33s} {r['events']:6d} {r['export_s'] + r['load_s']:7.2f} "
              f"{r['rr_sim_ms']:8.2f} {r['rr_total_ms']:9.2f} {r['b12pk_ms']:9.2f} "
              f"{r['b12pk_ms'] / r['rr_total_ms']:8.2f} {r['worst_serum']:11.1e} "
              f"{r['worst_stores']:12.1e}", flush=True)
    print("events = repeating SBML dose events (one per dose series); load s = export "
          "(b12pk.exchange.sbml.to_sbml) + load/JIT-compile (libRoadRunner), once per regimen; ratio = "
          "b12pk ms / rr+values ms (> 1: libRoadRunner faster).")
    print()
    print("Population: libRoadRunner loop (20 patients) vs b12pk population engine "
          "(10,000 patients), pernicious anaemia with default variability, per patient-year")
    print(f"{'regimen':33s} {'rr ms':>9s} {'engine ms':>10s} {'rr / engine':>12s}")
    for name, regimen in REGIMENS.items():
        r = bench_population_engine(regimen, 20, 10_000, args.days)
        print(f"{name:33s} {r['rr_ms']:9.2f} {r['engine_ms']:10.4f} "
              f"{r['rr_ms'] / r['engine_ms']:12.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
