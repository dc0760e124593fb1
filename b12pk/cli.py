"""The ``b12pk`` command line.

Subcommands: ``compare`` (the main job: a regimen-comparison report), ``simulate`` (one
time course as CSV), ``presets`` (patient presets) and ``parameters`` (the parameter table).
Errors are printed as one line on stderr, with exit status 2 for bad input and 1 for other
failures; no traceback, and no partial output is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import sys
from typing import Any, Callable, Iterator, Sequence

from .errors import B12pkError, InputError, UnknownNameError, sanitize_message
from .io import (Interrupted, atomic_write_text, echo, handle_signals, import_uninterrupted,
                 output_dir_target, output_file_target, pending_signal, signal_handled,
                 staging_dir)
from .limits import MAX_CHUNK, MAX_EVIDENCE_DRAWS, MAX_PATIENTS, MAX_UNCERTAINTY_DRAWS

EPILOG_MAIN = """examples:
  b12pk compare                                   # the articles' regimens, 2 patients, 1 year
  b12pk compare --regimen "1000 mcg hydroxocobalamin IM every 2 months" \\
                --patient pernicious-anaemia --days 730 --out my-report
  b12pk simulate --regimen "2000 µg oral daily" --patient pernicious-anaemia --days 120
  b12pk design --target "serum >= 200 pmol/L before every dose in 90 % of patients"
  b12pk presets

Educational simulation only: not medical advice or a prescription."""

EPILOG_COMPARE = """examples:
  b12pk compare
  b12pk compare --out report-2y --days 730
  b12pk compare --regimen "2000 mcg oral daily" --regimen "1000 mcg IM monthly" \\
                --patient pernicious-anaemia --patient vegan
  b12pk compare --regimen regimens.toml --patient patients.toml

--regimen takes regimen text or a TOML file ([[regimen]] entries with text = "...");
--patient takes a preset name or a TOML file ([[patient]] entries with preset = "...").
Without --regimen/--patient the source articles' contested regimens and two deficient
patients are compared."""

EPILOG_SIMULATE = """examples:
  b12pk simulate --regimen "2000 µg oral daily" --patient pernicious-anaemia --days 120
  b12pk simulate --regimen "1000 mcg IM monthly" --patient renal-impairment --egfr 20 \\
                 --baseline-serum 90 --days 365 --out course.csv
  b12pk simulate --regimen "1000 mcg IM once" --form hydroxocobalamin --hourly --days 7"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"b12pk: error: {sanitize_message(message)} (see '{self.prog} "
                         "--help')\n")
        raise SystemExit(2)


def _number(text: str) -> float:
    """argparse type: a finite number (``nan``, ``inf`` and overflowing ones refused)."""
    try:
        if "_" in text:  # float() would read "1_000" as 1000
            raise ValueError(text)
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a finite number")
    return x


def _whole(low: int, high: int) -> Callable[[str], int]:
    """argparse type: a whole number in ``[low, high]``."""
    def parse(text: str) -> int:
        stripped = text.strip().replace("_", "x")  # int() would read "1_000"
        if len(stripped) > 30 or not stripped.lstrip("+-").isdigit():
            raise argparse.ArgumentTypeError(f"{echo(text)} is not a whole number from "
                                             f"{low:,} to {high:,}")
        value = int(stripped)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{echo(text)} is not accepted; accepted: a whole "
                                             f"number from {low:,} to {high:,}")
        return value
    parse.__name__ = "whole number"
    return parse


_WORKERS = _whole(1, 1024)
_DRAWS = _whole(0, MAX_EVIDENCE_DRAWS)
_SEED = _whole(0, 2**32 - 1)
_PORT = _whole(0, 65535)


def _build_parser() -> argparse.ArgumentParser:
    from .about import __version__
    from .model.parameters import PRESETS

    fmt = argparse.RawDescriptionHelpFormatter
    ap = _Parser(prog="b12pk", description="Vitamin B12 pharmacokinetics: simulate and "
                 "compare B12 regimens (educational).", epilog=EPILOG_MAIN, formatter_class=fmt)
    ap.add_argument("--version", action="version", version=f"b12pk {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("compare", help="compare regimens for patients; write a report folder",
                       description="Simulate every regimen for every patient and write "
                       "figures, summary.csv, report.html, report.md and run.json.",
                       epilog=EPILOG_COMPARE, formatter_class=fmt)
    c.add_argument("--regimen", action="append", metavar="TEXT|FILE",
                   help="regimen text or TOML file (repeatable)")
    c.add_argument("--patient", action="append", metavar="PRESET|FILE",
                   help=f"patient preset ({', '.join(PRESETS)}) or TOML file (repeatable)")
    c.add_argument("--days", type=_number, default=None, help="horizon in days (default 365)")
    c.add_argument("--out", default="b12pk-report", help="output folder (default b12pk-report)")
    c.add_argument("--population", type=_whole(1, MAX_PATIENTS), default=None, metavar="N",
                   help="add the population view: N virtual patients per regimen and patient")
    c.add_argument("--uncertainty", type=_whole(0, MAX_UNCERTAINTY_DRAWS), default=0,
                   metavar="N", help="90%% intervals from N draws of the fitted parameters "
                   "on every curve and the headline numbers (default 0: none; about 0.05 s "
                   "per draw and course-year)")
    c.add_argument("--seed", type=_SEED, default=None,
                   help="seed of the population view and of the parameter draws (default 0; "
                   "needs --population or --uncertainty)")
    c.add_argument("--covariates", default=None, metavar="SET",
                   help="covariate set for the population view (data/covariates.toml: "
                   "older-adults, pernicious-anaemia-age, crohn-ileocaecal, ckd-3-4)")
    c.add_argument("--design", action="append", default=None, metavar="TARGET",
                   help="add a regimen-design section for each patient: the least "
                   "burdensome regimens of the default grid that meet this target "
                   "(repeatable; all must hold)")
    c.add_argument("--design-population", type=_whole(1, 1_000_000), default=1024,
                   metavar="N", help="most virtual patients per design candidate (default "
                   "1024)")
    c.add_argument("--evidence", action="store_true",
                   help="add the evidence analysis of the five source articles' claims (minutes)")

    s = sub.add_parser("simulate", help="one regimen and patient; time course as CSV",
                       description="Simulate one regimen for one patient and write the time "
                       "course as CSV (to stdout unless --out).", epilog=EPILOG_SIMULATE,
                       formatter_class=fmt)
    s.add_argument("--regimen", required=True, metavar="TEXT|FILE",
                   help="regimen text or a TOML file holding exactly one regimen")
    s.add_argument("--patient", default="healthy", metavar="PRESET|FILE",
                   help="patient preset or TOML file with one patient (default healthy)")
    s.add_argument("--days", type=_number, default=365.0, help="horizon in days (default 365)")
    s.add_argument("--form", default=None,
                   help="form for regimen text that names none (default cyanocobalamin)")
    s.add_argument("--baseline-serum", type=_number, default=None, metavar="PMOL_PER_L",
                   help="starting serum B12 (pmol/L)")
    s.add_argument("--baseline-stores", type=_number, default=None, metavar="UG",
                   help="starting body stores (ug)")
    s.add_argument("--baseline-mma", type=_number, default=None, metavar="NMOL_PER_L",
                   help="measured methylmalonic acid at the start (nmol/L): the patient's "
                        "own marker level")
    s.add_argument("--baseline-hcy", type=_number, default=None, metavar="UMOL_PER_L",
                   help="measured total homocysteine at the start (umol/L)")
    s.add_argument("--egfr", type=_number, default=None, metavar="ML_MIN",
                   help="eGFR (mL/min/1.73 m2)")
    s.add_argument("--diet", type=_number, default=None, metavar="UG_PER_DAY",
                   help="dietary B12 intake (ug/day)")
    s.add_argument("--ileal-resection", type=_number, default=None, metavar="CM",
                   help="length of distal ileum resected (cm)")
    s.add_argument("--hourly", action="store_true",
                   help="hourly output for 3 days after each injection")
    s.add_argument("--uncertainty", type=_whole(0, MAX_UNCERTAINTY_DRAWS), default=0,
                   metavar="N", help="add a 90%% prediction interval (columns _p5, _p95) "
                   "from N draws of the fitted parameters (default 0: none; 100 is typical)")
    s.add_argument("--seed", type=_SEED, default=0,
                   help="seed of the parameter draws (default 0)")
    s.add_argument("--out", default=None, metavar="FILE", help="CSV file (default stdout)")

    v = sub.add_parser("validate", help="compare the model with the trial datasets",
                       description="Simulate every checkable trial arm in "
                       "data/literature/trials/ and write validation.csv, not_checkable.csv, "
                       "summary.json and a predicted-versus-observed figure; check the "
                       "model's physiology against published figures (data/plausibility.toml) "
                       "and write plausibility.csv.",
                       epilog="example:\n  b12pk validate --out b12pk-validation",
                       formatter_class=fmt)
    v.add_argument("--out", default="b12pk-validation",
                   help="output folder (default b12pk-validation)")

    pp = sub.add_parser("population", help="simulate a virtual population under one regimen",
                        description="Simulate a virtual population (between-patient "
                        "variability from data/variability.toml) and write quantiles.csv, "
                        "bands.csv, troughs.csv, repletion.csv, fan charts and run.json.",
                        epilog="examples:\n  b12pk population --regimen \"1000 mcg "
                        "hydroxocobalamin IM every 3 months\" --patient pernicious-anaemia "
                        "--n 100000 --days 365 --seed 1 --out pop\n  b12pk population "
                        "--regimen \"2000 mcg oral daily\" --patient vegan --n 10000 "
                        "--no-variability --out typical", formatter_class=fmt)
    pp.add_argument("--regimen", required=True, metavar="TEXT|FILE",
                    help="regimen text or a TOML file holding exactly one regimen")
    pp.add_argument("--patient", default="healthy", metavar="PRESET|FILE",
                    help="patient preset or TOML file with one patient (default healthy)")
    pp.add_argument("--n", type=_whole(1, MAX_PATIENTS), default=10_000, help="number of patients (default 10000)")
    pp.add_argument("--days", type=_number, default=365.0, help="horizon in days (default 365)")
    pp.add_argument("--seed", type=_SEED, default=0, help="random seed (default 0)")
    pp.add_argument("--chunk-size", type=_whole(1, MAX_CHUNK), default=16_384,
                    help="patients simulated at once (memory; changes results by rounding at most)")
    pp.add_argument("--no-variability", action="store_true",
                    help="identical typical patients (checks)")
    pp.add_argument("--covariates", default=None, metavar="SET",
                    help="a covariate set of data/covariates.toml: older-adults, "
                    "pernicious-anaemia-age, crohn-ileocaecal, ckd-3-4")
    pp.add_argument("--covariate", action="append", default=[], metavar="NAME=DIST",
                    help="a covariate distribution, e.g. age_years='normal(80, 5)', "
                    "egfr_ml_min='uniform(15, 60)', ileal_resection_cm='lognormal(20, 0.76)' "
                    "(repeatable; overrides the set's)")
    pp.add_argument("--trajectories", type=_whole(1, MAX_PATIENTS), default=None, metavar="N",
                    help="also write the daily trajectories of the first N patients as "
                    "Parquet files in OUT/trajectories/ (needs b12pk[parquet])")
    pp.add_argument("--workers", type=_WORKERS, default=None,
                    help="threads (default: the CPUs available; does not change results)")
    pp.add_argument("--backend", default="auto", choices=("auto", "numpy", "numba"),
                    help="engine kernels: numba needs b12pk[fast] (default auto)")
    pp.add_argument("--method", default="fast", choices=("fast", "exact"),
                    help="fast: the vectorised population engine (default); exact: every "
                    "patient through the single-patient engine (about 20 ms per "
                    "patient-year with injections: checks and small populations)")
    pp.add_argument("--parameter-uncertainty", action="store_true",
                    help="also draw the fitted model parameters per patient from their "
                    "approximate posterior (needs --method exact)")
    pp.add_argument("--out", default="b12pk-population", help="output folder")

    d = sub.add_parser("design", help="find the least burdensome regimens that keep a share "
                       "of patients at target",
                       description="Simulate a grid of oral and injected regimens in a virtual "
                       "population and find those that meet every target, the Pareto set of "
                       "burden against the share meeting them, and the least burden per "
                       "route; writes candidates.csv, pareto.csv, design.md, design.png and "
                       "run.json. Educational: not a prescription.",
                       epilog="example:\n  b12pk design --patient pernicious-anaemia "
                       "--population 2000 \\\n    --target \"serum >= 200 pmol/L before "
                       "every dose in 90 % of patients, from month 3 to year 2\" \\\n    "
                       "--routes oral,IM --forms hydroxocobalamin,cyanocobalamin --out design",
                       formatter_class=fmt)
    d.add_argument("--patient", default="pernicious-anaemia", metavar="PRESET|FILE",
                   help="patient preset or TOML file (default pernicious-anaemia)")
    d.add_argument("--target", action="append", required=True, metavar="TEXT|FILE",
                   help="a target as text, or a TOML file of [[target]] tables (repeatable; "
                   "all must hold)")
    d.add_argument("--population", type=_whole(1, 1_000_000), default=2000, metavar="N",
                   help="most virtual patients per candidate (default 2000)")
    d.add_argument("--routes", default="oral,IM", help="oral and/or IM (default oral,IM)")
    d.add_argument("--forms", default="hydroxocobalamin,cyanocobalamin",
                   help="forms of the injected candidates (default both)")
    d.add_argument("--doses", default="1000", metavar="UG,...",
                   help="injected doses in µg (default 1000)")
    d.add_argument("--intervals", default="30,60,90", metavar="DAYS,...",
                   help="maintenance intervals in days (default 30,60,90)")
    d.add_argument("--loading", default="yes", choices=("yes", "no", "both"),
                   help="injected candidates with the loading phase, without, or both "
                   "(default yes)")
    d.add_argument("--oral-doses", default="250,500,1000,2000", metavar="UG,...",
                   help="daily oral doses in µg (default 250,500,1000,2000)")
    d.add_argument("--burden", default="injections",
                   choices=("injections", "ug", "visits", "pills"),
                   help="the burden to minimise (default injections)")
    d.add_argument("--seed", type=_SEED, default=0, help="seed of the patients (default 0)")
    d.add_argument("--workers", type=_WORKERS, default=None,
                   help="processes (default: one per CPU; does not change results)")
    d.add_argument("--out", default="b12pk-design", help="output folder")

    xs = sub.add_parser("export-sbml", help="write the model for a patient as SBML (needs "
                        "b12pk[sbml])",
                        description="Write the B12 model for one patient (and the doses of a "
                        "regimen as events) as an SBML Level 3 document for COPASI, "
                        "Tellurium/libRoadRunner, PK-Sim or SimBiology.",
                        epilog="examples:\n  b12pk export-sbml --patient pernicious-anaemia "
                        "--regimen \"1000 mcg hydroxocobalamin IM monthly\" --days 365 "
                        "--out b12.xml --check", formatter_class=fmt)
    xs.add_argument("--patient", default="healthy", metavar="PRESET|FILE",
                    help="patient preset or TOML file with one patient (default healthy)")
    xs.add_argument("--regimen", default=None, metavar="TEXT|FILE",
                    help="regimen whose doses become SBML events (optional)")
    xs.add_argument("--days", type=_number, default=365.0,
                    help="horizon: doses before it are exported (default 365)")
    xs.add_argument("--baseline-serum", type=_number, default=None, metavar="PMOL_PER_L",
                    help="starting serum B12 (pmol/L)")
    xs.add_argument("--out", default="b12pk-model.xml", metavar="FILE", help="SBML file")
    xs.add_argument("--check", action="store_true",
                    help="run libSBML's consistency checks and fail on any message")

    ev = sub.add_parser("evidence", help="check the five source articles' claims against the model "
                        "and trial data",
                        description="Evaluate every claim in data/claims/claims.csv and write "
                        "evidence.csv, contradictions.csv, evidence.md and evidence.png. The "
                        "whole catalogue takes a few minutes.",
                        epilog="examples:\n  b12pk evidence --out b12pk-evidence\n  b12pk "
                        "evidence --ids C001,C307 --out quick", formatter_class=fmt)
    ev.add_argument("--ids", default=None, help="comma-separated claim ids (default: all)")
    ev.add_argument("--max-days", type=_number, default=None,
                    help="cap every claim's horizon (quick runs)")
    ev.add_argument("--workers", type=_WORKERS, default=None,
                    help="threads (default: one per CPU)")
    ev.add_argument("--draws", type=_DRAWS, default=0,
                    help="also judge each claim at N draws of the fitted parameters from "
                    "their approximate posterior and report the probability that it holds "
                    f"(0-{MAX_EVIDENCE_DRAWS}; each draw re-runs the claim: 20 draws take "
                    "about 20 times as "
                    "long; default 0: not computed)")
    ev.add_argument("--seed", type=_SEED, default=0, help="seed of the posterior draws")
    ev.add_argument("--out", default="b12pk-evidence", help="output folder")

    app = sub.add_parser("app", help="the teaching app: a local web page (needs b12pk[app])",
                         description="Serve the teaching app on this computer and open it in "
                         "the browser: a patient, up to four regimens in the regimen "
                         "language, their serum, holoTC, stores and MMA over the laboratory "
                         "bands, the at-a-glance table and guided lessons from the source "
                         "articles. Everything is served locally; nothing leaves the machine. "
                         "Ctrl-C stops it. Needs pip install 'b12pk[app]'.",
                         epilog="examples:\n  b12pk app\n  b12pk app --port 8050 "
                         "--no-browser", formatter_class=fmt)
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this computer only; "
                     "another address makes the page reachable from the network)")
    app.add_argument("--port", type=_PORT, default=0,
                     help="port (default: a free one)")
    app.add_argument("--no-browser", action="store_true",
                     help="do not open the page in the browser")

    sub.add_parser("presets", help="list the patient presets",
                   description="List the patient presets and what they change.")
    sub.add_parser("parameters", help="print the model parameters with their sources as CSV",
                   description="Print every model parameter (value, unit, range, status, "
                   "source) as CSV.")
    return ap


def _looks_like_file(value: str) -> bool:
    """A ``.toml`` name, or an existing path that is not a folder (a FIFO or device is then
    refused by the reader, never opened as a blocking stream)."""
    if value.lower().endswith(".toml"):
        return True
    try:
        return len(value) < 4096 and os.path.lexists(value) and not os.path.isdir(value)
    except (OSError, ValueError):
        return False


def _regimens(values: Sequence[str] | None, default_form: str | None = None) -> list:
    from .analysis.compare import NamedRegimen
    from .regimen.language import labelled_variants, load_regimens

    if not values:
        return []
    out = []
    for v in values:
        if _looks_like_file(v):
            loaded = load_regimens(v)
            if len(loaded) > 8 or any(re.search(r"\[\d+/\d+\]$", r.label or "")
                                      for r in loaded):  # say how many the file asks for
                sys.stderr.write(f"b12pk: {echo(v)} gives {len(loaded)} regimens (range "
                                 "variants included)\n")
            for r in loaded:
                out.append(NamedRegimen(label=r.label or r.to_text(), regimen=r))
        else:
            kwargs = {"default_form": default_form} if default_form is not None else {}
            variants = labelled_variants(v, **kwargs)
            if len(variants) > 1:
                sys.stderr.write(f"b12pk: {echo(v)} holds a range: simulated at each end "
                                 f"({len(variants)} regimens)\n")
            out += [NamedRegimen(label=label if len(variants) > 1 else v.strip(), regimen=reg)
                    for label, reg in variants]
    return out


def _patients(values: Sequence[str] | None) -> list:
    from .analysis.compare import NamedPatient, patient_label, load_patients
    from .model.parameters import Patient

    if not values:
        return []
    out = []
    for v in values:
        if _looks_like_file(v):
            out.extend(load_patients(v))
        else:
            p = Patient.preset(v)
            out.append(NamedPatient(label=patient_label(p), patient=p))
    return out


def _progress(done: int, total: int, label: str) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r\x1b[Ksimulating {done}/{total}: {label[:70]}{end}")
        sys.stderr.flush()


def _cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .analysis.compare import compare
    from .report.comparison import write_report

    output_dir_target(args.out)  # refused before any work
    if args.seed is not None and args.population is None and not args.uncertainty \
            and not args.design:
        raise InputError("--seed sets the random draws of the population view or of the "
                         "parameters, so it needs --population N, --uncertainty N or --design")
    if args.covariates is not None:  # checked before any simulation is run
        if args.population is None:
            raise InputError("--covariates needs --population N (covariates vary between the "
                             "virtual patients of the population view)")
        from .population.core import covariate_sets

        if args.covariates not in covariate_sets():
            raise UnknownNameError(f"unknown covariate set {echo(args.covariates)}; accepted: "
                                   f"{', '.join(sorted(covariate_sets()))}")
    regimens = _regimens(args.regimen) or None
    patients = _patients(args.patient) or None
    if args.population is not None:  # the population view's work, checked before any
        from .analysis.compare import (default_days, default_patients,  # simulation
                                       default_regimens)
        from .engine.core import check_days
        from .population.core import check_population_work

        days = check_days(default_days() if args.days is None else args.days)
        regs = regimens or default_regimens()
        n_patients = len(patients or default_patients())
        check_population_work([(r.regimen.dose_events(days), args.population)
                               for r in regs] * n_patients, days,
                              "the report's population view")
    from .analysis.validate import validate

    targets = None
    if args.design:   # read before any work: a bad target is a one-line error at once
        from .analysis.targets import as_targets

        targets = as_targets(list(args.design))
    comp = compare(regimens, patients, args.days, progress=_progress,
                   uncertainty=args.uncertainty, seed=args.seed or 0)
    evidence = None
    if args.evidence:
        from .analysis.evidence import evaluate_claims

        evidence = evaluate_claims(progress=lambda d, t, cid: _progress(d, t, f"claim {cid}"))
    populations = None
    if args.population is not None:
        from .population.core import PopulationSpec, simulate_population

        populations = {}
        jobs = [(p, r) for p in comp.patients for r in comp.regimens]
        for i, (p, r) in enumerate(jobs):
            spec = PopulationSpec(p.patient, args.population, args.seed or 0,
                                  covariates=args.covariates)
            populations[(p.label, r.label)] = simulate_population(r.regimen, spec, comp.days)
            _progress(i + 1, len(jobs), f"population {p.label} / {r.label}")
    designs = None
    if targets:
        from .analysis.design import design

        designs = {}
        for i, p in enumerate(comp.patients):
            designs[p.label] = design(p.patient, targets, n=args.design_population,
                                      seed=args.seed or 0, workers=None)
            _progress(i + 1, len(comp.patients), f"design {p.label}")
    from .analysis.plausibility import check_plausibility

    out = write_report(comp, args.out, argv=["b12pk", *argv], validation=validate(),
                       evidence=evidence, populations=populations,
                       plausibility=check_plausibility(), designs=designs)
    n = len(comp.summary)
    print(f"b12pk: wrote {out}/ ({n} simulations: report.html, report.md, summary.csv, "
          "figures/, run.json). Educational simulation, not a prescription.")
    return 0


def _refuse_input_as_output(out: str | None, *inputs: str | None) -> None:
    """An output file that is also one of the command's input files is refused."""
    if out is None:
        return
    try:
        target = os.path.realpath(out)
        same = [v for v in inputs if v is not None and _looks_like_file(v)
                and os.path.realpath(v) == target]
    except (OSError, ValueError):
        return
    if same:
        raise InputError(f"--out {echo(out)} is also an input of this command; give the "
                         "output another name")


def _concat(frames: list) -> Any:
    import pandas as pd

    out = pd.concat(frames, ignore_index=True)
    out.attrs = dict(frames[0].attrs)
    return out


def _cmd_simulate(args: argparse.Namespace) -> int:
    import dataclasses

    from .analysis.compare import load_patients
    from .engine.core import simulate
    from .model.parameters import Patient

    _refuse_input_as_output(args.out, args.regimen, args.patient)
    if args.out is not None:
        output_file_target(args.out)  # refused before any work
    regimens = _regimens([args.regimen], default_form=args.form)
    if _looks_like_file(args.patient):
        pats = load_patients(args.patient)
        if len(pats) != 1:
            raise InputError(f"simulate takes exactly one patient; {echo(args.patient)} holds "
                             f"{len(pats)}")
        patient = pats[0].patient
    else:
        patient = Patient.preset(args.patient)
    changes = {"baseline_serum_pmol_per_l": args.baseline_serum,
               "baseline_stores_ug": args.baseline_stores, "egfr_ml_min": args.egfr,
               "diet_ug_per_day": args.diet, "ileal_resection_cm": args.ileal_resection,
               "baseline_mma_nmol_per_l": args.baseline_mma,
               "baseline_hcy_umol_per_l": args.baseline_hcy}
    changes = {k: v for k, v in changes.items() if v is not None}
    if "baseline_serum_pmol_per_l" in changes and "baseline_stores_ug" not in changes:
        changes["baseline_stores_ug"] = None
    if "baseline_stores_ug" in changes and "baseline_serum_pmol_per_l" not in changes:
        changes["baseline_serum_pmol_per_l"] = None
    patient = dataclasses.replace(patient, **changes)
    if args.seed and not args.uncertainty:
        raise InputError("--seed sets the parameter draws, so it needs --uncertainty N")
    frames = []
    for named in regimens:   # a range or a file of several: one course each, by variant
        part = simulate(named.regimen, patient, days=args.days,
                        hourly_after_injections=args.hourly, uncertainty=args.uncertainty,
                        seed=args.seed)
        if len(regimens) > 1:
            part.insert(0, "variant", named.label)
        frames.append(part)
    df = frames[0] if len(frames) == 1 else _concat(frames)
    for note in df.attrs.get("assumptions", ()):
        print(f"b12pk: note: {note}", file=sys.stderr)
    if args.out is None:
        buf = io.StringIO()
        df.to_csv(buf, index=False, float_format="%.10g")
        sys.stdout.write(buf.getvalue())
        return 0
    atomic_write_text(args.out, df.to_csv(index=False, float_format="%.10g"))
    print(f"b12pk: wrote {echo(args.out)} ({len(df)} rows)", file=sys.stderr)
    return 0


def _one_patient(value: str):
    from .analysis.compare import load_patients
    from .model.parameters import Patient

    if _looks_like_file(value):
        pats = load_patients(value)
        if len(pats) != 1:
            raise InputError(f"this command takes exactly one patient; {echo(value)} holds "
                             f"{len(pats)}")
        return pats[0].patient
    return Patient.preset(value)


def _cmd_population(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .population.core import (PopulationSpec, covariate_sets, default_variability,
                             simulate_population)
    from .report.population import write_population

    regimens = _regimens([args.regimen])
    if len(regimens) != 1:
        raise InputError(f"population takes exactly one regimen; {echo(args.regimen)} holds "
                         f"{len(regimens)}")
    output_dir_target(args.out)  # refused before any work
    variability = ({k: 0.0 for k in default_variability()} if args.no_variability else None)
    covariates = dict(covariate_sets()[args.covariates]) if args.covariates in \
        covariate_sets() else ({} if args.covariates is None else args.covariates)
    for item in args.covariate:
        name, sep, dist = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--covariate {echo(item)}: expected NAME=DISTRIBUTION, e.g. "
                             "age_years='normal(80, 5)'")
        if isinstance(covariates, str):
            break  # an unknown set name: PopulationSpec says so
        covariates[name.strip()] = dist
    spec = PopulationSpec(_one_patient(args.patient), args.n, args.seed, variability,
                          covariates or None,
                          parameter_uncertainty=args.parameter_uncertainty)
    with staging_dir(args.out) as stage:  # trajectories are moved into the output folder
        traj = None if args.trajectories is None else stage / "trajectories"
        result = simulate_population(regimens[0].regimen, spec, args.days,
                                     chunk_size=args.chunk_size, progress=True,
                                     workers=args.workers, backend=args.backend,
                                     trajectories=traj, trajectory_patients=args.trajectories,
                                     method=args.method)
        write_population(result, args.out, argv=["b12pk", *argv], trajectories=traj)
    normal = result.marker_normal["mma_nmol_per_l_normal_probability"].iloc[-1]
    low = result.last_trough()   # read where the cycle is lowest, not at the end
    deficient, where = low["pct_deficient"], f"at the {low['where']}"
    print(f"b12pk: wrote {args.out}/ ({result.n:,} patients, seed {result.seed}; "
          f"{deficient:.1f}% deficient {where}; {100.0 * normal:.1f}% with methylmalonic acid "
          f"normal at day {result.days:g}). Educational simulation.")
    return 0


def _numbers(text: str, option: str) -> tuple[float, ...]:
    """Comma-separated numbers of an option (one-line error)."""
    out = []
    for part in text.split(","):
        try:
            out.append(_number(part.strip()))
        except (argparse.ArgumentTypeError, ValueError):
            raise InputError(f"{option} {echo(text)}: {echo(part.strip())} is not a number; "
                             "give comma-separated numbers, e.g. 30,60,90") from None
    return tuple(out)


def _cmd_design(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .analysis.design import SearchSpace, design
    from .analysis.targets import as_targets
    from .report.design import write_design

    output_dir_target(args.out)  # refused before any work
    targets = as_targets(list(args.target))
    loading = {"yes": (True,), "no": (False,), "both": (True, False)}[args.loading]
    space = SearchSpace(routes=tuple(r.strip() for r in args.routes.split(",")),
                        forms=tuple(f.strip() for f in args.forms.split(",")),
                        im_doses_ug=_numbers(args.doses, "--doses"),
                        intervals_days=_numbers(args.intervals, "--intervals"),
                        loading=loading,
                        oral_doses_ug=_numbers(args.oral_doses, "--oral-doses"))
    result = design(_one_patient(args.patient), targets, space=space, n=args.population,
                    seed=args.seed, burden=args.burden, workers=args.workers, progress=True)
    write_design(result, args.out, argv=["b12pk", *argv])
    n = len(result.table)
    print(f"b12pk: wrote {args.out}/ ({n} candidate{'s' if n != 1 else ''}); "
          f"{result.summary_line()}. Educational simulation, not a prescription.")
    return 0


def _cmd_export_sbml(args: argparse.Namespace) -> int:
    import dataclasses

    from .exchange.sbml import check_sbml, write_sbml

    _refuse_input_as_output(args.out, args.regimen, args.patient)
    output_file_target(args.out)  # refused before any work
    patient = _one_patient(args.patient)
    if args.baseline_serum is not None:
        patient = dataclasses.replace(patient, baseline_serum_pmol_per_l=args.baseline_serum,
                                      baseline_stores_ug=None)
    regimen = None
    if args.regimen is not None:
        regimens = _regimens([args.regimen])
        if len(regimens) != 1:
            raise InputError(f"export-sbml takes at most one regimen; {echo(args.regimen)} holds "
                             f"{len(regimens)}")
        regimen = regimens[0].regimen
    if args.check:
        from .exchange.sbml import to_sbml

        messages = check_sbml(to_sbml(patient, regimen, days=args.days))
        if messages:
            raise InputError("the SBML document failed libSBML's checks: "
                             + "; ".join(messages[:3]))
    path = write_sbml(args.out, patient, regimen, days=args.days)
    print(f"b12pk: wrote {path} (SBML Level 3; patient {patient.name})")
    return 0


def _cmd_evidence(args: argparse.Namespace) -> int:
    from .analysis.evidence import evaluate_claims
    from .report.evidence import write_evidence

    output_dir_target(args.out)  # refused before any work
    ids = None
    if args.ids is not None:
        ids = [i.strip() for i in args.ids.split(",")]
        if not any(ids):
            raise InputError(f"--ids {echo(args.ids)} names no claim; accepted: comma-separated "
                             "claim ids such as C001,C307")
        if not all(ids):
            raise InputError(f"--ids {echo(args.ids)} has an empty item; accepted: "
                             "comma-separated claim ids such as C001,C307")
    if args.max_days is not None and args.max_days <= 0:
        raise InputError(f"--max-days {args.max_days:g} is not accepted; accepted: a number of "
                         "days > 0")
    result = evaluate_claims(ids=ids, max_days=args.max_days, workers=args.workers,
                             draws=args.draws, seed=args.seed,
                             progress=lambda done, total, cid: _progress(done, total, cid))
    write_evidence(args.out, result)
    counts = result.counts()["verdict"]
    print(f"b12pk: wrote {args.out}/ ({len(result.table)} claims: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")")
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from .app.server import is_loopback, serve

    if not is_loopback(args.host):
        sys.stderr.write(f"b12pk: warning: serving on {args.host}, not this computer's "
                         "loopback address: anyone who can reach it on your network can use "
                         "the page (and its CPU). Use the default 127.0.0.1 unless you mean "
                         "to share it.\n")
    try:
        serve(args.host, args.port, open_browser=not args.no_browser)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the server has shut down cleanly
        name = getattr(exc, "name", "Ctrl-C")
        signal_handled()
        sys.stderr.write(f"b12pk app: stopped ({name})\n")
        return 0
    sys.stderr.write("b12pk app: stopped\n")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .analysis.plausibility import check_plausibility
    from .analysis.shares import validate_shares
    from .analysis.validate import validate
    from .report.validation import write_validation

    output_dir_target(args.out)  # refused before any work
    v = validate()
    plaus = check_plausibility()
    shares = validate_shares()
    write_validation(v, args.out, plaus, shares)
    s = v.summary()
    ps = plaus.summary()
    ss = shares.summary()
    outside = f" (outside: {', '.join(ps['outside'])})" if ps["outside"] else ""
    print(f"b12pk: wrote {args.out}/ ({s['n_points']} points from {s['n_trials']} trials: "
          f"GMFE {s['gmfe']:.2f}, {s['pct_within_2fold']:.0f}% within 2-fold, "
          f"{s['pct_within_spread']:.0f}% within the reported spread; plausibility: "
          f"{ps['n_inside']} of {ps['n_checks']} checks inside their published range, "
          f"{ps['n_not_fitted_inside']} of the {ps['n_not_fitted']} not used to set the model"
          f"{outside}{_markers_line(s)}; shares of patients normalised: {ss['n_inside']} of "
          f"{ss['n_points']} inside the observed interval, model - observed "
          f"{ss['mean_abs_difference_points']:.1f} points on average)")
    return 0


def _markers_line(summary: dict) -> str:
    """The functional markers' validation in a few words (empty without any)."""
    m = summary.get("markers")
    if not m:
        return ""
    spread = (f", {m['pct_within_spread']:.0f}% within the reported spread"
              if m["n_with_spread"] else "")
    return (f"; MMA and homocysteine: {m['n_points']} points not used in the fit, GMFE "
            f"{m['gmfe']:.2f}{spread}")


def _cmd_presets() -> int:
    from .model.parameters import Patient, preset_descriptions

    for name, desc in preset_descriptions().items():
        p = Patient.preset(name)
        print(f"{name:20s} {desc} (diet {p.diet_ug_per_day:g} ug/day, IF route "
              f"{p.if_route_factor:.2f} x normal)")
    return 0


def _cmd_parameters() -> int:
    from .model.parameters import parameter_table

    sys.stdout.write(parameter_table().to_csv(index=False))
    return 0


def _one_line(exc: BaseException) -> str:
    return sanitize_message(str(exc))


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """b12pk's warnings on the command line: one line each, ``b12pk: warning: ...``, each
    distinct message once per run (not Python's file:line and source echo)."""
    import warnings

    from .errors import B12pkWarning

    seen: set[str] = set()
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if not issubclass(category, B12pkWarning):
            previous(message, category, filename, lineno, file, line)
            return
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            sys.stderr.write(f"b12pk: warning: {text}\n")

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with handle_signals(), _warnings_as_lines():  # first: Ctrl-C during imports is handled
        code = _run(argv)
        signum = pending_signal()  # a signal whose exception a library callback swallowed
        if signum is not None and code < 128:
            name = Interrupted(signum).name
            sys.stderr.write(f"b12pk: interrupted by {name}\n")
            return 128 + signum
        return code


#: Commands that draw figures (matplotlib is imported with signals held first).
_PLOTTING = frozenset({"compare", "population", "validate", "evidence", "design"})


def _run(argv: list[str]) -> int:
    try:
        parser = _build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command in _PLOTTING:  # compiled extensions loaded before any output exists
            import_uninterrupted("matplotlib", "matplotlib.pyplot")
        if args.command == "compare":
            return _cmd_compare(args, argv)
        if args.command == "simulate":
            return _cmd_simulate(args)
        if args.command == "evidence":
            return _cmd_evidence(args)
        if args.command == "export-sbml":
            return _cmd_export_sbml(args)
        if args.command == "population":
            return _cmd_population(args, argv)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "design":
            return _cmd_design(args, argv)
        if args.command == "presets":
            return _cmd_presets()
        if args.command == "app":
            return _cmd_app(args)
        return _cmd_parameters()
    except B12pkError as exc:
        sys.stderr.write(f"b12pk: error: {_one_line(exc)}\n")
        return 2
    except Interrupted as exc:
        sys.stderr.write(f"b12pk: interrupted by {exc.name}; no partial output was kept\n")
        return 128 + exc.signum
    except KeyboardInterrupt:
        sys.stderr.write("b12pk: interrupted; no partial output was kept\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"b12pk: error: {_one_line(exc)}\n")
        return 1
    except RuntimeError as exc:  # a numerical failure: say so in one line, no traceback
        sys.stderr.write(f"b12pk: error: {_one_line(exc)}; please report the inputs\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
