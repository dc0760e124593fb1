"""Validation of shares of patients: trial outcomes such as "the share normalised (serum B12
at or above a threshold) at week 8" compared with a virtual population of the arm.

Rows of ``data/literature/trials/`` with outcome ``pct_normalised`` (a share, %) or
``pct_normalised_difference`` (a printed difference between two arms, percentage points,
with its 95 % confidence interval) are simulated as populations
(:func:`b12pk.population.simulate_population`): ``n`` patients of the trial population's
preset (``data/validation.toml``, primary and alternative reading), their between-patient
variability as in ``data/variability.toml``, the preset's baseline serum (the deficiency
presets' assumed 110 pmol/L, CV 0.25; a few drawn baselines need stores above the model's
capacity and are simulated as drawn, without the warning). A patient is
normalised when serum B12, read at the start of the day (before that day's dose), is at or
above the trial's threshold (its sidecar's ``[shares] threshold_pg_per_ml``).

Only per-protocol (or completer) shares are compared: an intention-to-treat share counts
patients lost to follow-up as not normalised, which a model without dropouts cannot
predict (those rows are listed with the reason). A share is inside when the model lies in
the observed share's 95 % Wilson interval (from the arm's ``n``); a difference when the
model's difference lies in the printed confidence interval. A trial whose source gives no
threshold has its rows listed, not compared.

No trial here was used to fit a parameter (``data/calibration.toml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import FileFormatError, quiet_warnings
from ..io import echo
from ..model.parameters import Patient, pg_per_ml_to_pmol_per_l
from ..population.core import PopulationSpec, Watch, simulate_population
from ..regimen.language import Regimen
from .evidence import wilson
from .validate import _config, load_trials

__all__ = ["validate_shares", "ShareValidation", "SHARE_COLUMNS", "COMPARED_SETS"]

SHARE_OUTCOMES = ("pct_normalised", "pct_normalised_difference")
COMPARED_SETS = ("per-protocol", "completers")
"""Analysis sets compared with the model (the CSV's optional ``analysis`` column)."""
SHARE_COLUMNS = ("trial", "arm", "analysis", "time_days", "threshold_pg_per_ml", "outcome",
                 "n", "observed", "observed_low", "observed_high", "interval", "preset",
                 "model", "alternative_preset", "model_alternative", "difference", "inside",
                 "compared", "why_not_compared")


@dataclass(frozen=True)
class ShareValidation:
    """The shares compared: ``table`` has one row per trial row (columns
    :data:`SHARE_COLUMNS`; shares and differences in % and percentage points, ``inside``
    empty where not compared)."""

    table: Any
    n_patients: int
    seed: int

    def summary(self) -> dict[str, Any]:
        """Points compared, how many lie inside their interval, and the mean absolute
        difference model - observed (percentage points)."""
        t = self.table.loc[self.table.compared.astype(bool)]
        return {"n_points": int(len(t)), "n_inside": int(t.inside.astype(bool).sum()),
                "mean_abs_difference_points": float(t.difference.abs().mean())
                if len(t) else math.nan,
                "n_patients": self.n_patients, "seed": self.seed}


def wilson_interval(pct: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval (%) of a share ``pct`` (%) observed in ``n``
    (:func:`b12pk.analysis.evidence.wilson` in percent)."""
    low, high = wilson(pct / 100.0 * n, n)
    return 100.0 * low, 100.0 * high


def _interval(spread: Any) -> tuple[float, float] | None:
    """A printed 'low to high' interval, or None."""
    if not isinstance(spread, str) or " to " not in spread:
        return None
    low, high = (float(x) for x in spread.split(" to "))
    return low, high


def _threshold(stem: str, meta: Mapping[str, Any]) -> float | None:
    """The sidecar's ``[shares] threshold_pg_per_ml`` (None where the source gives none)."""
    value = meta.get("shares", {}).get("threshold_pg_per_ml")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise FileFormatError(f"trial sidecar {stem}.toml: [shares] threshold_pg_per_ml "
                              f"{echo(value)} is not accepted; accepted: a number > 0 (the "
                              "serum B12 at or above which a patient counts as normalised)")
    return float(value)


def _share(text: str, preset: str, day: float, threshold_pmol: float, n: int,
           seed: int) -> float:
    """% of ``n`` patients of ``preset`` on regimen ``text`` with serum at or above the
    threshold at the start of ``day``."""
    watch = [Watch(threshold_pmol, "daily", max(0.0, day - 0.5), day)]
    # a drawn baseline beyond the stores' capacity is simulated as drawn (as in evidence)
    with quiet_warnings():
        res = simulate_population(Regimen.parse(text),
                                  PopulationSpec(Patient.preset(preset), n, seed=seed),
                                  day + 1.0, watch=watch, daily=False)
    return 100.0 * res.watch_met[0] / n


def validate_shares(folder: str | Path | None = None, n: int = 2000,
                    seed: int = 0) -> ShareValidation:
    """Compare every share outcome of the trial datasets with a virtual population.

    Parameters
    ----------
    folder : path, optional
        Trial datasets (default ``data/literature/trials/``).
    n : int
        Patients per simulated arm (2,000: a share's Monte Carlo error is then at most about
        1.1 percentage points).
    seed : int
        Population seed; the same seed gives the same table.

    Raises
    ------
    FileFormatError
        A trial with share outcomes whose sidecar lacks a valid threshold, or an unknown
        analysis set.
    """
    import pandas as pd

    populations = _config()["populations"]
    cache: dict[tuple, float] = {}
    rows = []
    for stem, (df, meta) in load_trials(folder).items():
        df = df.loc[df.outcome.isin(SHARE_OUTCOMES)]
        if df.empty:
            continue
        threshold = _threshold(stem, meta)
        thr_pmol = math.nan if threshold is None else float(pg_per_ml_to_pmol_per_l(threshold))
        for row in df.itertuples(index=False):
            analysis = getattr(row, "analysis", "")
            analysis = analysis if isinstance(analysis, str) else ""
            pop = populations.get(row.population)
            day = float(row.time_days)

            def share(preset: str, text: str) -> float:
                key = (text, preset, day, thr_pmol)
                if key not in cache:
                    cache[key] = _share(text, preset, day, thr_pmol, n, seed)
                return cache[key]

            rec = {"trial": stem, "arm": row.arm, "analysis": analysis, "time_days": day,
                   "threshold_pg_per_ml": math.nan if threshold is None else threshold,
                   "outcome": row.outcome, "n": int(row.n),
                   "observed": float(row.value), "observed_low": math.nan,
                   "observed_high": math.nan, "interval": "", "preset": "",
                   "model": math.nan, "alternative_preset": "", "model_alternative": math.nan,
                   "difference": math.nan, "inside": None, "compared": False,
                   "why_not_compared": ""}
            arms = _arms(df, row, analysis) if row.outcome != "pct_normalised" else None
            why = _why_not(analysis, pop, row, threshold)
            if not why and row.outcome != "pct_normalised" and arms is None:
                why = ("the arms of the difference (arm 'A-minus-B') have no shares at this "
                       "time in this analysis set")
            if why:
                rec["why_not_compared"] = why
                rows.append(rec)
                continue
            rec["preset"], rec["alternative_preset"] = pop["preset"], pop["alternative"]
            if row.outcome == "pct_normalised":
                low, high = wilson_interval(float(row.value), int(row.n))
                rec["interval"] = "95% Wilson interval of the observed share"
                model = share(pop["preset"], row.regimen_text)
                alt = share(pop["alternative"], row.regimen_text)
            else:
                low, high = _interval(row.spread)
                rec["interval"] = "printed 95% CI of the difference"
                first, second = arms
                model = share(pop["preset"], first) - share(pop["preset"], second)
                alt = share(pop["alternative"], first) - share(pop["alternative"], second)
            rec.update(observed_low=low, observed_high=high, model=model,
                       model_alternative=alt, difference=model - float(row.value),
                       inside=bool(low <= model <= high), compared=True)
            rows.append(rec)
    return ShareValidation(pd.DataFrame(rows, columns=list(SHARE_COLUMNS)), n, seed)


def _arms(df: Any, row: Any, analysis: str) -> tuple[str, str] | None:
    """The regimens of the two arms of a difference row (arm ``A-minus-B``): the share rows
    of arms A and B at the same time in the same analysis set, or None."""
    names = str(row.arm).split("-minus-")
    if len(names) != 2:
        return None
    same = df.loc[(df.outcome == "pct_normalised") & (df.time_days == row.time_days)]
    if "analysis" in same.columns:
        same = same.loc[same.analysis.fillna("") == analysis]
    texts = dict(zip(same.arm, same.regimen_text))
    if not all(name in texts for name in names):
        return None
    return texts[names[0]], texts[names[1]]


def _why_not(analysis: str, pop: Any, row: Any, threshold: float | None) -> str:
    """Why a share row is not compared (empty: it is)."""
    if threshold is None:
        return "the source gives no threshold for 'normalised' (sidecar [shares])"
    if analysis and analysis not in COMPARED_SETS and analysis != "ITT":
        raise FileFormatError(f"analysis set {echo(analysis)} is not accepted; accepted: "
                              f"ITT, {', '.join(COMPARED_SETS)}")
    if analysis == "ITT":
        return ("intention to treat: patients lost to follow-up count as not normalised, "
                "which a model without dropouts cannot predict")
    if pop is None:
        return f"population {row.population} has no preset in data/validation.toml"
    if not float(row.time_days) > 0.0:
        return "at baseline (before the first dose): not a prediction"
    if row.outcome == "pct_normalised_difference" and _interval(row.spread) is None:
        return "no printed confidence interval ('low to high')"
    return ""
