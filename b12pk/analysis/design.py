"""The regimen designer: which regimens keep a stated share of patients at target, and which
of them is the least burden (:func:`design`).

Each candidate regimen is simulated in a virtual population (between-patient variability,
:mod:`b12pk.population`); a patient meets the targets when their serum stays at or above
each threshold at every reading of its window. Patients are drawn in stages of
:data:`STAGE` with the same patients for every candidate (common random numbers: the
comparison between candidates is not blurred by different draws), and a candidate stops
early once the 95 % Wilson interval of its share lies clearly above or below the share
asked for. A candidate *meets* the targets when the lower end of that interval reaches the
share: a choice that a fresh population confirms. Targets read total serum B12 or holoTC.

Educational: a design is a model prediction, not a prescription.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import InputError, UnknownNameError, quiet_warnings
from ..io import echo
from ..model.parameters import Patient
from ..population.core import (PopulationSpec, Watch, check_population_work,
                               simulate_population)
from ..regimen.language import Regimen
from .evidence import wilson
from .targets import Target, as_targets

__all__ = ["SearchSpace", "DesignResult", "design", "BURDENS", "STAGE", "candidate_regimens"]

STAGE = 1024
"""Patients per stage (one population block): candidates are decided stage by stage."""

MAX_CANDIDATES = 2000
"""Most candidate regimens one design may hold."""

BURDENS = {
    "injections": "injections per year (IM, deep SC or IV doses)",
    "ug": "B12 given per year (µg)",
    "visits": "days per year with an injection (a clinic or nurse visit each)",
    "pills": "oral or sublingual doses per year",
}
"""Burden measures; the design ranks by the one chosen, then by the others in this order."""

_PER_YEAR = {"injections": "injections a year", "ug": "µg a year",
             "visits": "injection visits a year", "pills": "oral doses a year"}

_PARENTERAL = ("im", "deep-sc", "iv")
_ORAL = ("oral", "sublingual")
_ROUTES = {"oral": "oral", "im": "IM"}
_FORMS = ("hydroxocobalamin", "cyanocobalamin")
LOADING_TEXT = "three times weekly for 2 weeks"
"""The loading phase of injected candidates with ``loading`` (the BSH guideline's usual
course for pernicious anaemia without neurological involvement, as the source articles
quote it)."""


@dataclass(frozen=True)
class SearchSpace:
    """The candidate regimens: a grid the user bounds.

    Parameters
    ----------
    routes : tuple of {"oral", "IM"}
    forms : tuple of {"hydroxocobalamin", "cyanocobalamin"}
        Forms of the injected candidates (oral candidates are cyanocobalamin, the oral
        form on the market).
    im_doses_ug : tuple of float
        Injected doses (µg, 1-10000).
    intervals_days : tuple of float
        Maintenance intervals of injected candidates (days, 7-365).
    loading : tuple of bool
        With and/or without the loading phase (:data:`LOADING_TEXT`).
    oral_doses_ug : tuple of float
        Daily oral doses (µg, 1-10000).
    """

    routes: tuple[str, ...] = ("oral", "IM")
    forms: tuple[str, ...] = _FORMS
    im_doses_ug: tuple[float, ...] = (1000.0,)
    intervals_days: tuple[float, ...] = (30.0, 60.0, 90.0)
    loading: tuple[bool, ...] = (True,)
    oral_doses_ug: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0)

    def __post_init__(self) -> None:
        routes = tuple(dict.fromkeys(_route(r) for r in _seq(self.routes, "routes")))
        object.__setattr__(self, "routes", routes)
        forms = tuple(dict.fromkeys(_form(f) for f in _seq(self.forms, "forms")))
        object.__setattr__(self, "forms", forms)
        for name, lo, hi in (("im_doses_ug", 1.0, 10000.0), ("intervals_days", 7.0, 365.0),
                             ("oral_doses_ug", 1.0, 10000.0)):
            values = _seq(getattr(self, name), name, allow_empty=True)
            out = []
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                        not math.isfinite(v) or not lo <= v <= hi:
                    raise InputError(f"{name}: {echo(v)} is not accepted; accepted: numbers "
                                     f"from {lo:g} to {hi:g}")
                out.append(float(v))
            object.__setattr__(self, name, tuple(dict.fromkeys(out)))
        loading = _seq(self.loading, "loading")
        if not all(isinstance(x, (bool, np.bool_)) for x in loading):
            raise InputError(f"loading must hold True and/or False, not {echo(loading)}")
        object.__setattr__(self, "loading", tuple(dict.fromkeys(bool(x) for x in loading)))
        if "IM" in routes and not (self.im_doses_ug and self.intervals_days and forms):
            raise InputError("injected candidates need at least one dose, interval and form")
        if "oral" in routes and not self.oral_doses_ug:
            raise InputError("oral candidates need at least one daily dose (oral_doses_ug)")


def _seq(value: Any, name: str, allow_empty: bool = False) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise InputError(f"{name} must be a list or tuple, not {echo(value)}")
    if not len(value) and not allow_empty:
        raise InputError(f"{name} must not be empty")
    return tuple(value)


def _route(r: Any) -> str:
    key = str(r).strip().lower()
    if key not in _ROUTES:
        raise UnknownNameError(f"unknown route {echo(r)} for the designer; accepted: oral, IM")
    return _ROUTES[key]


def _form(f: Any) -> str:
    key = str(f).strip().lower()
    if key not in _FORMS:
        raise UnknownNameError(f"unknown form {echo(f)}; accepted: " + ", ".join(_FORMS))
    return key


@dataclass(frozen=True)
class Candidate:
    text: str
    route: str
    form: str
    dose_ug: float
    interval_days: float
    loading: bool


def candidate_regimens(space: SearchSpace) -> list[Candidate]:
    """The candidates of a search space, as regimen texts with their grid coordinates."""
    out = []
    if "oral" in space.routes:
        for dose in space.oral_doses_ug:
            out.append(Candidate(f"{dose:g} mcg cyanocobalamin oral daily", "oral",
                                 "cyanocobalamin", dose, 1.0, False))
    if "IM" in space.routes:
        for form in space.forms:
            for dose in space.im_doses_ug:
                for interval in space.intervals_days:
                    for load in space.loading:
                        head = f"{dose:g} mcg {form} IM "
                        text = head + (f"{LOADING_TEXT}, then every {interval:g} days" if load
                                       else f"every {interval:g} days")
                        out.append(Candidate(text, "IM", form, dose, interval, load))
    if len(out) > MAX_CANDIDATES:
        raise InputError(f"the search space holds {len(out):,} candidates; at most "
                         f"{MAX_CANDIDATES:,}: bound the doses, intervals or forms")
    return out


@dataclass
class DesignResult:
    """What :func:`design` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate: ``regimen``, ``route``, ``form``, ``dose_ug``,
        ``interval_days``, ``loading``, the burden measures per year
        (``injections_per_year``, ``ug_per_year``, ``visits_per_year``,
        ``pills_per_year``), ``burden`` (the chosen measure), ``patients`` simulated,
        ``met`` (patients meeting every target), ``share_met`` and its 95 % Wilson
        interval ``share_low``/``share_high``, ``share_target_<k>`` per target, ``meets``
        (the interval's lower end reaches the share asked for), ``pareto`` (no other
        candidate has less burden and a higher share), ``decided_early``.
    targets : tuple of Target
    burden : str
    chosen : dict or None
        The least burdensome candidate that meets the targets (a row of ``table``).
    per_route : dict
        Route -> the least burdensome candidate of that route that meets the targets.
    closest : dict
        With no candidate meeting the targets: the one with the highest share.
    settings : dict
        Patient, n, seed, horizon, stage: what reproduces the design.
    """

    table: Any
    targets: tuple[Target, ...]
    burden: str
    chosen: dict | None
    per_route: dict
    closest: dict | None
    settings: dict = field(default_factory=dict)

    def summary_line(self) -> str:
        """One line: the choice, or that nothing meets the targets and the closest."""
        if self.chosen is not None:
            c = self.chosen
            return (f"least burden ({_PER_YEAR[self.burden]}) that meets the targets: "
                    f"{c['regimen']} "
                    f"({_pct(c['share_met'])} of patients, 95 % interval "
                    f"{_pct(c['share_low'])}-{_pct(c['share_high'])})")
        c = self.closest
        return (f"no candidate meets the targets ({'; '.join(t.to_text() for t in self.targets)}"
                f"); closest: {c['regimen']} ({_pct(c['share_met'])} of patients, 95 % interval "
                f"{_pct(c['share_low'])}-{_pct(c['share_high'])})")


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f} %"


def _burdens(regimen: Regimen, days: float) -> dict[str, float]:
    """Burden per year, over the design's horizon or a year, whichever is longer (a short
    window would scale a loading course up to a year)."""
    span = max(float(days), 365.0)
    events = regimen.dose_events(span)
    per_year = 365.0 / span
    inj = [e for e in events if e.route in _PARENTERAL]
    return {"injections_per_year": len(inj) * per_year,
            "ug_per_year": sum(e.amount_ug for e in events) * per_year,
            "visits_per_year": len({round(e.time_days, 6) for e in inj}) * per_year,
            "pills_per_year": sum(1 for e in events if e.route in _ORAL) * per_year}


def _stage_seed(seed: int, stage: int) -> int:
    """The seed of stage ``stage``: the same for every candidate (common patients)."""
    return int(np.random.SeedSequence([seed, stage]).generate_state(1, np.uint32)[0])


def _evaluate(text: str, patient: Patient, watch: tuple[Watch, ...], share: float, n: int,
              seed: int, days: float) -> dict[str, Any]:
    """Simulate one candidate stage by stage until it is decided or ``n`` patients."""


    counts = np.zeros(len(watch) + 1, np.int64)
    done = 0
    stage = 0
    early = False
    while done < n:
        size = min(STAGE, n - done)
        with quiet_warnings():  # drawn baselines above capacity: said per design
            res = simulate_population(text, PopulationSpec(patient, size,
                                                           _stage_seed(seed, stage)),
                                      days, watch=watch, quantiles=(50.0,), daily=False)
        counts += np.asarray(res.watch_met, dtype=np.int64)
        done += size
        stage += 1
        low, high = wilson(float(counts[-1]), float(done))
        if done < n and (low >= share or high < share):
            early = True
            break
    low, high = wilson(float(counts[-1]), float(done))
    return {"patients": done, "met": int(counts[-1]), "share_met": counts[-1] / done,
            "share_low": low, "share_high": high, "decided_early": early,
            **{f"share_target_{k + 1}": counts[k] / done for k in range(len(watch))}}


def _work(args: tuple) -> dict[str, Any]:
    return _evaluate(*args)


def design(patient: Patient | str, targets: Any, *, space: SearchSpace | None = None,
           n: int = 2000, seed: int = 0, burden: str = "injections",
           workers: int | None = 1,
           progress: bool | Callable[[int, int], None] = False) -> DesignResult:
    """Find the least burdensome regimens that keep a share of patients at target.

    Parameters
    ----------
    patient : Patient or str
        The kind of patient (a preset name or a Patient); between-patient variability is
        drawn around it (``data/variability.toml``).
    targets : Target, str, list of them, or a TOML file
        What must hold (:mod:`b12pk.analysis.targets`). With several, a patient meets them
        when all hold for that patient, and the share asked for is the largest of their
        shares (each target's own share is in ``share_target_<k>``). The horizon is the
        latest window's end.
    space : SearchSpace, optional
        The candidates (default: :class:`SearchSpace`'s grid).
    n : int
        Most virtual patients per candidate (>= 1, in stages of :data:`STAGE`; a candidate
        stops earlier once decided).
    seed : int
        Seed of the patient draws (>= 0): the same seed gives the same design.
    burden : {"injections", "ug", "visits", "pills"}
        The burden to minimise (:data:`BURDENS`); ties go to the others in that order, then
        to the higher share.
    workers : int or None
        Processes evaluating candidates at once (None: one per CPU core).
    progress : bool or callable
        A bar on a terminal (True) or ``progress(done, total)`` per candidate.

    Returns
    -------
    DesignResult

    Raises
    ------
    InputError, UnknownNameError
        Bad targets, search bounds, burden, n, seed or workers (one line each).
    """
    if isinstance(patient, str):
        pat = Patient.preset(patient)
    elif isinstance(patient, Patient):
        pat = patient
    else:
        raise InputError(f"patient must be a Patient or a preset name, not {echo(patient)}")
    tgts = as_targets(targets)
    space = SearchSpace() if space is None else space
    if not isinstance(space, SearchSpace):
        raise InputError(f"space must be a SearchSpace, not {type(space).__name__}")
    if burden not in BURDENS:
        raise UnknownNameError(f"unknown burden {echo(burden)}; accepted: "
                               + ", ".join(BURDENS))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1_000_000:
        raise InputError(f"n={echo(n)} is not accepted; accepted: a whole number of patients "
                         "from 1 to 1,000,000")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed={echo(seed)} is not accepted; accepted: a whole number >= 0")
    if workers is not None and (isinstance(workers, bool) or
                                not isinstance(workers, (int, np.integer)) or workers < 1):
        raise InputError(f"workers={echo(workers)} is not accepted; accepted: a whole number "
                         ">= 1 or None")
    days = max(t.end_day for t in tgts)
    share = max(t.share for t in tgts)
    watch = tuple(Watch(t.threshold_pmol_per_l, t.reading, t.start_day, t.end_day,
                        t.quantity) for t in tgts)
    cands = candidate_regimens(space)
    # the first stage is certain work: refused up front when over the population limits
    check_population_work([(Regimen.parse(c.text).dose_events(days), min(int(n), STAGE))
                           for c in cands], days, "this design's first stage")
    jobs = [(c.text, pat, watch, share, int(n), int(seed), days) for c in cands]
    results = _run_all(jobs, workers, progress)
    return _result(cands, results, tgts, burden, pat, n, seed, days, share)


def _run_all(jobs: list[tuple], workers: int | None, progress: Any) -> list[dict[str, Any]]:
    import os

    report = _progress(progress, len(jobs))
    n_workers = min(len(jobs), (os.cpu_count() or 1) if workers is None else workers)
    if n_workers <= 1:
        out = []
        for job in jobs:
            out.append(_work(job))
            report(len(out))
        return out
    from concurrent.futures import ProcessPoolExecutor

    out_by: dict[int, dict] = {}
    with ProcessPoolExecutor(n_workers) as pool:
        futures = {pool.submit(_work, job): k for k, job in enumerate(jobs)}
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            out_by[futures[fut]] = fut.result()
            report(len(out_by))
    return [out_by[k] for k in range(len(jobs))]


def _progress(progress: Any, total: int) -> Callable[[int], None]:
    if callable(progress):
        return lambda done: progress(done, total)
    if progress:
        import sys

        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, unit="regimen", desc="b12pk design", leave=False)

            def show(done: int) -> None:
                bar.n = done
                bar.refresh()
                if done >= total:
                    bar.close()
            return show
    return lambda done: None


def _result(cands: list[Candidate], results: list[dict], tgts: tuple[Target, ...],
            burden: str, pat: Patient, n: int, seed: int, days: float,
            share: float) -> DesignResult:
    import pandas as pd

    rows = []
    for c, r in zip(cands, results):
        b = _burdens(Regimen.parse(c.text), days)
        rows.append({"regimen": c.text, "route": c.route, "form": c.form,
                     "dose_ug": c.dose_ug, "interval_days": c.interval_days,
                     "loading": c.loading, **b, **r})
    table = pd.DataFrame(rows)
    order = [f"{burden}_per_year"] + [f"{b}_per_year" for b in BURDENS if b != burden]
    table.insert(len(table.columns) - len(results[0]), "burden", table[order[0]])
    table["meets"] = table["share_low"] >= share
    table["pareto"] = _pareto(table["burden"].to_numpy(), table["share_met"].to_numpy())
    table = table.sort_values(order + ["share_met"], ascending=[True] * len(order) + [False],
                              kind="stable").reset_index(drop=True)
    meets = table[table["meets"]]
    chosen = meets.iloc[0].to_dict() if len(meets) else None
    per_route = {route: g.iloc[0].to_dict() for route, g in meets.groupby("route", sort=False)}
    closest = None
    if chosen is None:
        best = table.sort_values(["share_met", "burden"], ascending=[False, True],
                                 kind="stable")
        closest = best.iloc[0].to_dict()
    settings = {"patient": pat.name, "n": int(n), "seed": int(seed), "days": float(days),
                "stage": STAGE, "share": share, "burden": burden,
                "targets": [t.to_text() for t in tgts]}
    return DesignResult(table, tgts, burden, chosen, per_route, closest, settings)


def _pareto(burden: np.ndarray, share: np.ndarray) -> np.ndarray:
    """True where no other candidate has burden <= and share >= with one strictly."""
    out = np.ones(len(burden), bool)
    for i in range(len(burden)):
        better = (burden <= burden[i]) & (share >= share[i]) & \
            ((burden < burden[i]) | (share > share[i]))
        out[i] = not better.any()
    return out
