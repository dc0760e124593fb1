"""Validation: simulate every trial arm in ``data/literature/trials/`` and compare.

Each trial dataset is a tidy CSV with a TOML sidecar (citation, where the numbers stand,
transformations). Rows whose outcome a single typical patient can be compared with (serum
B12 means/medians, peak serum after a single dose, serum relative to baseline) are
simulated with the arm's own regimen, the population's preset (``data/validation.toml``)
and the arm's own baseline; everything else is listed as not checkable by this model.

Rows that the calibration fits (``data/calibration.toml``: the markers' rows of one trial,
the single-dose intranasal pharmacokinetics) are training data: they are listed as such and
never counted as validation.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._data import data_path
from ..engine.core import simulate
from .shipped import DataCache
from ..errors import FileFormatError, quiet_warnings
from ..io import echo
from ..model.parameters import Patient, serum_to_pmol_per_l
from ..regimen.language import Regimen

__all__ = ["load_trials", "validate", "validation_summary", "route_label", "Validation",
           "TRIAL_COLUMNS",
           "OPTIONAL_TRIAL_COLUMNS", "suspected_mechanisms"]

TRIAL_COLUMNS = ("arm", "n", "regimen_text", "route", "form", "population", "baseline_value",
                 "time_days", "outcome", "statistic", "value", "unit", "spread", "spread_kind",
                 "where", "note")
OPTIONAL_TRIAL_COLUMNS = ("analysis",)
"""Columns a trial dataset may add: ``analysis``, the analysis set of a share (ITT,
per-protocol, completers: :mod:`b12pk.analysis.shares`)."""


#: When in the dosing cycle a trial's blood draw is read (a trial sidecar's ``sampling``,
#: stated with its reason in ``sampling_note``; default trough): ``trough``, before any dose
#: given at the sampling time; ``cmax``, the peak of the first day's curve.
SAMPLING = ("trough", "cmax")


def _trials_dir() -> Path:
    return data_path("literature", "trials")


def load_trials(folder: str | Path | None = None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Read every trial dataset: ``stem -> (DataFrame, sidecar dict)``.

    Raises
    ------
    FileFormatError
        A CSV without its sidecar, a sidecar without a citation, or missing columns.
    """
    import pandas as pd

    folder = Path(folder) if folder is not None else _trials_dir()
    out = {}
    for csv in sorted(folder.glob("*.csv")):
        side = csv.with_suffix(".toml")
        if not side.is_file():
            raise FileFormatError(f"trial dataset {csv.name} has no sidecar {side.name}")
        with open(side, "rb") as fh:
            meta = tomllib.load(fh)
        if not str(meta.get("citation", "")).strip():
            raise FileFormatError(f"trial sidecar {side.name} has no citation")
        if meta.setdefault("sampling", "trough") not in SAMPLING:
            raise FileFormatError(f"trial sidecar {side.name}: sampling "
                                  f"{echo(meta['sampling'])} is not accepted; accepted: "
                                  f"{', '.join(SAMPLING)}")
        df = pd.read_csv(csv, dtype={"spread": str})
        missing = [c for c in TRIAL_COLUMNS if c not in df.columns]
        if missing:
            raise FileFormatError(f"trial dataset {csv.name} lacks columns {missing}")
        extra = [c for c in df.columns if c not in TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS]
        if extra:
            raise FileFormatError(f"trial dataset {csv.name} has unknown columns {extra}; "
                                  f"accepted: {', '.join(TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)}")
        out[csv.stem] = (df, meta)
    return out


def _config() -> dict[str, Any]:
    with open(data_path("validation.toml"), "rb") as fh:
        return tomllib.load(fh)


def suspected_mechanisms() -> list[dict[str, str]]:
    """The documented misses of the model and the mechanism suspected for each
    (``[[suspected]]`` in ``data/validation.toml``)."""
    return list(_config().get("suspected", []))


def _spread_interval(row: Any) -> tuple[float, float] | None:
    """Observed interval (pmol/L or ratio) from the spread columns, or None."""
    kind = str(row.spread_kind) if isinstance(row.spread_kind, str) else ""
    spread = row.spread if isinstance(row.spread, str) else ""
    if not kind or not spread:
        return None
    conv = (lambda v: serum_to_pmol_per_l(v, row.unit)) if row.outcome.startswith("serum") and \
        row.statistic != "ratio_to_baseline" else float
    if kind in ("SD", "SE"):
        centre, half = conv(row.value), conv(float(spread))
        return centre - half, centre + half
    if kind in ("IQR", "range", "95CI"):
        lo, hi = (float(x) for x in spread.split("-"))
        return conv(lo), conv(hi)
    return None


@dataclass
class Validation:
    """Result of :func:`validate`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per compared point: trial, arm, population, preset, time_days, outcome,
        statistic, observed, observed_low, observed_high (spread, pmol/L or ratio),
        predicted, predicted_alternative, ratio (predicted / observed), within_2fold,
        within_spread (True/False/NA), where, citation.
    not_checkable : pandas.DataFrame
        Rows the model cannot be compared with, and why.
    markers : pandas.DataFrame
        The functional-marker points (MMA nmol/L, homocysteine umol/L), the columns of
        ``table`` after ``use``: "training" (fitted, data/calibration.toml ``markers``) or
        "validation" (predicted from the arm's baseline serum and baseline marker).
    """

    table: Any
    not_checkable: Any
    markers: Any = None

    def summary(self) -> dict[str, Any]:
        """Geometric mean fold error, % within 2-fold, % within the reported spread (serum);
        ``markers``: the same for the functional-marker points not used in the fit,
        ``markers_training`` for those fitted, and ``by_route``: route -> geometric mean
        fold error of its serum points (:meth:`by_route`)."""
        out: dict[str, Any] = validation_summary(self.table)
        if self.markers is not None and len(self.markers):
            for use, key in (("validation", "markers"), ("training", "markers_training")):
                part = self.markers[self.markers["use"] == use]
                if len(part):
                    out[key] = validation_summary(part)
        out["by_route"] = {r["route"]: r["gmfe"] for r in
                           self.by_route().to_dict("records")}
        return out

    def by_route(self) -> Any:
        """One row per route (:func:`route_label`): ``route``, ``n_points``, ``n_trials``,
        ``gmfe``, ``bias``, ``pct_within_2fold``, ``n_with_spread``,
        ``pct_within_spread`` of the serum points (:func:`validation_summary`)."""
        import pandas as pd

        rows = [{"route": route, **validation_summary(part)}
                for route, part in self.table.groupby("route", sort=True)]
        return pd.DataFrame(rows, columns=["route", "n_points", "n_trials", "n_arms", "gmfe",
                                           "bias", "pct_within_2fold", "n_with_spread",
                                           "pct_within_spread"])


def route_label(route: str, form: str) -> str:
    """The route group a trial row is judged in: ``IM cyanocobalamin``, ``IM
    hydroxocobalamin`` (``IM`` where the form is not given), ``oral``, ``sublingual``,
    ``intranasal`` (oral and intranasal forms share one absorption model)."""
    route = str(route).strip().lower()
    if route in ("im", "iv"):
        form = str(form).strip().lower()
        known = form in ("cyanocobalamin", "hydroxocobalamin")
        return f"{route.upper()} {form}" if known else route.upper()
    return route


def validation_summary(table: Any) -> dict[str, float]:
    """Summary statistics of a validation table.

    Returns
    -------
    dict
        ``n_points``, ``n_trials``, ``n_arms``, ``gmfe`` (exp of mean |ln ratio|),
        ``pct_within_2fold``, ``n_with_spread``, ``pct_within_spread``, ``bias``
        (geometric mean ratio).
    """
    ratio = table["ratio"].to_numpy(dtype=float)
    log_r = np.log(ratio)
    spread = table["within_spread"].dropna()
    return {
        "n_points": int(len(table)),
        "n_trials": int(table["trial"].nunique()),
        "n_arms": int(table[["trial", "arm"]].drop_duplicates().shape[0]),
        "gmfe": float(np.exp(np.mean(np.abs(log_r)))) if len(table) else math.nan,
        "bias": float(np.exp(np.mean(log_r))) if len(table) else math.nan,
        "pct_within_2fold": float(100.0 * np.mean(np.abs(log_r) <= math.log(2.0)))
        if len(table) else math.nan,
        "n_with_spread": int(len(spread)),
        "pct_within_spread": float(100.0 * spread.astype(bool).mean()) if len(spread)
        else math.nan,
    }


def _patient(population: str, preset_key: str, baseline_pmol: float | None) -> Patient:
    pops = _config()["populations"]
    if population not in pops:
        raise FileFormatError(f"trial population {population!r} has no mapping in "
                              f"data/validation.toml; known: {', '.join(pops)}")
    preset = pops[population][preset_key]
    if baseline_pmol is None:
        return Patient.preset(preset)
    return Patient.preset(preset, serum_pmol_per_l=baseline_pmol)


def _predict(row: Any, regimen: Regimen, patient: Patient, sampling: str) -> float:
    t = float(row.time_days)
    if row.outcome == "serum_b12" and sampling == "cmax" and t > 1.0:
        raise FileFormatError(f"a trial sampled at cmax (the first day's peak) has a serum row "
                              f"at day {t:g}: give that row its own trial file, sampled at "
                              "the trough")
    if row.outcome == "serum_b12_cmax" or sampling == "cmax":
        # peak of the simulated curve in the first day (fine grid: every minute for 6 h)
        times = np.concatenate([np.arange(0, 6 * 60 + 1) / 1440.0, np.linspace(0.25, 1, 19)])
        df = simulate(regimen, patient, days=1.0, times=times)
        return float(df["serum_pmol_per_l"].max())
    # trough: the horizon ends at the draw, so a dose given then is not yet in it
    days = max(t, 1.0)
    df = simulate(regimen, patient, days=days, times=[0.0, t] if t > 0 else [0.0])
    value = float(df["serum_pmol_per_l"].iloc[-1])
    if row.statistic == "ratio_to_baseline":
        return value / float(df["serum_pmol_per_l"].iloc[0])
    return value


def validate(folder: str | Path | None = None) -> Validation:
    """Simulate every checkable trial row and compare with the observation.

    ``folder``: trial datasets to use instead of the shipped ones. The validation of the
    shipped datasets is computed once per process while ``data/`` and the parameters
    stay the same (each call gets its own copy)."""
    return _validate(folder) if folder is not None else _SHIPPED.get()


_SHIPPED = DataCache(lambda: _validate(None), "validation")


def _validate(folder: str | Path | None) -> Validation:
    import pandas as pd

    cfg = _config()
    checkable = set(cfg["outcomes"]["checkable"])
    statistics = set(cfg["outcomes"]["statistics"])
    rows, skipped = [], []
    marker_rows: list[dict[str, Any]] = []
    training = _marker_training()
    fitted = _serum_training()
    for stem, (df, meta) in load_trials(folder).items():
        for row in df.itertuples(index=False):
            reason = None
            if (stem, row.outcome) in fitted:
                skipped.append({"trial": stem, "arm": row.arm, "time_days": row.time_days,
                                "outcome": row.outcome, "statistic": row.statistic,
                                "why_not_checked": "training data: fitted by data/calibration"
                                f".toml [[training]] {fitted[(stem, row.outcome)]}"})
                continue
            if row.outcome in MARKER_COLUMNS:
                reason = _marker_point(stem, df, meta, row, cfg, training, marker_rows)
                if reason is not None:
                    skipped.append({"trial": stem, "arm": row.arm,
                                    "time_days": row.time_days, "outcome": row.outcome,
                                    "statistic": row.statistic, "why_not_checked": reason})
                continue
            if row.outcome in ("pct_normalised", "pct_normalised_difference"):
                reason = ("a share of patients: compared with a virtual population of the arm "
                          "(b12pk.analysis.shares, shares.csv of b12pk validate)")
            elif row.outcome not in checkable:
                reason = (f"outcome {row.outcome} needs a population or a metabolic model "
                          "(b12pk simulates serum B12 and stores of one typical patient)")
            elif row.statistic not in statistics:
                reason = f"statistic {row.statistic} not comparable with one typical patient"
            elif float(row.time_days) <= 0 and row.outcome == "serum_b12" and \
                    row.statistic != "ratio_to_baseline":
                reason = "baseline (used as the starting value, not a prediction)"
            if reason is not None:
                skipped.append({"trial": stem, "arm": row.arm, "time_days": row.time_days,
                                "outcome": row.outcome, "statistic": row.statistic,
                                "why_not_checked": reason})
                continue
            regimen = Regimen.parse(row.regimen_text)
            baseline = None
            if not (isinstance(row.baseline_value, float) and math.isnan(row.baseline_value)):
                baseline = serum_to_pmol_per_l(float(row.baseline_value),
                                    "pg/mL" if row.statistic == "ratio_to_baseline"
                                    else row.unit)
            sampling = meta["sampling"]
            pred = _predict(row, regimen, _patient(row.population, "preset", baseline), sampling)
            alt = _predict(row, regimen, _patient(row.population, "alternative", baseline),
                           sampling)
            if row.statistic == "ratio_to_baseline":
                observed = float(row.value)
            else:
                observed = serum_to_pmol_per_l(float(row.value), row.unit)
            interval = _spread_interval(row)
            ratio = pred / observed
            rows.append({
                "trial": stem, "arm": row.arm, "n": row.n, "population": row.population,
                "preset": cfg["populations"][row.population]["preset"],
                "regimen": row.regimen_text, "route": route_label(row.route, row.form),
                "time_days": float(row.time_days),
                "outcome": row.outcome, "statistic": row.statistic, "sampling": sampling,
                "observed": observed,
                "observed_low": interval[0] if interval else math.nan,
                "observed_high": interval[1] if interval else math.nan,
                "unit": "ratio" if row.statistic == "ratio_to_baseline" else "pmol/L",
                "predicted": pred, "predicted_alternative": alt, "ratio": ratio,
                "within_2fold": bool(abs(math.log(ratio)) <= math.log(2.0)),
                "within_spread": (bool(interval[0] <= pred <= interval[1]) if interval
                                  else pd.NA),
                "where": row.where, "citation": meta["citation"],
                "note": row.note if isinstance(row.note, str) else "",
            })
    columns = ["trial", "arm", "n", "population", "preset", "regimen", "route", "time_days",
               "outcome",
               "statistic", "sampling", "observed", "observed_low", "observed_high", "unit",
               "predicted", "predicted_alternative", "ratio", "within_2fold", "within_spread", "where",
               "citation", "note"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        raise FileFormatError(f"no checkable trial data found in {folder or _trials_dir()}; "
                              "expected CSV datasets with sidecars (data/literature/trials/)")
    markers = pd.DataFrame(marker_rows, columns=["use", *columns])
    return Validation(table=table, not_checkable=pd.DataFrame(
        skipped, columns=["trial", "arm", "time_days", "outcome", "statistic",
                          "why_not_checked"]), markers=markers)


#: Trial outcomes that are functional markers, and the result column each is read from.
MARKER_COLUMNS = {"mma": "mma_nmol_per_l", "homocysteine": "hcy_umol_per_l"}
_MARKER_UNITS = {"mma": {"nmol/L": 1.0, "µmol/L": 1000.0, "umol/L": 1000.0},
                 "homocysteine": {"µmol/L": 1.0, "umol/L": 1.0}}


def _serum_training() -> dict[tuple[str, str], str]:
    """(trial, outcome) -> training entry name, for the trial rows other than markers that
    the calibration fits (a ``[[training]]`` entry of data/calibration.toml with ``trial``
    and ``outcomes``): those rows are training data, never validation."""
    from .calibrate import training_set

    return {(t["trial"], o): t["name"] for t in training_set()
            if "trial" in t and t["name"] != "markers" for o in t.get("outcomes", [])}


def _marker_training() -> set[tuple[str, str, float]]:
    """(trial, outcome, day) of the marker rows the calibration fits (data/calibration.toml,
    ``markers``): MMA at every listed day, the other outcomes at baseline only."""
    from .calibrate import training_entry

    entry = training_entry("markers")
    out = set()
    for outcome in entry["outcomes"]:
        days = entry["time_days"] if outcome == "mma" else [0]
        out |= {(entry["trial"], outcome, float(d)) for d in days}
    return out


def _marker_value(value: float, unit: str, outcome: str) -> float | None:
    """A marker value in the model's unit, or None where the unit is not one we accept."""
    factor = _MARKER_UNITS[outcome].get(str(unit).strip())
    return None if factor is None else float(value) * factor


def _marker_point(stem: str, df: Any, meta: Mapping[str, Any], row: Any,
                  cfg: Mapping[str, Any], training: set, out: list) -> str | None:
    """Compare one marker row (appended to ``out``); the reason when it cannot be."""
    import pandas as pd

    t = float(row.time_days)
    ratio_row = row.statistic == "ratio_to_baseline"
    if row.statistic not in ("mean", "median", "ratio_to_baseline"):
        return f"statistic {row.statistic} not comparable with one typical patient"
    observed = float(row.value) if ratio_row else _marker_value(row.value, row.unit,
                                                               row.outcome)
    base = _marker_value(row.baseline_value, row.unit, row.outcome) \
        if not pd.isna(row.baseline_value) else None
    if observed is None:
        return (f"unit {row.unit!r} not accepted for {row.outcome} (accepted: "
                f"{', '.join(_MARKER_UNITS[row.outcome])}); the dataset's note says why")
    use = "training" if (stem, row.outcome, t) in training else "validation"
    if t <= 0 and use == "validation":
        return "baseline (used as the starting value, not a prediction)"
    serum = df[(df.arm == row.arm) & (df.outcome == "serum_b12") & (df.time_days == 0)]
    s0 = serum_to_pmol_per_l(float(serum.value.iloc[0]), serum.unit.iloc[0]) if len(serum) else \
        meta.get("assumed_baseline_serum_pmol_per_l")
    key = f"baseline_{MARKER_COLUMNS[row.outcome]}"
    preds = []
    for which in ("preset", "alternative"):
        preset = cfg["populations"][row.population][which]
        settings = {} if s0 is None else {"serum_pmol_per_l": s0}
        if base is not None and use == "validation" and not ratio_row:
            settings[key] = base
        # a start above the storage capacity (the alternative reading) is no news
        with quiet_warnings():
            patient = Patient.preset(preset, **settings)
            sim = simulate(Regimen.parse(row.regimen_text), patient, days=max(t, 1.0),
                           times=[0.0, t] if t > 0 else [0.0])
        level = sim[MARKER_COLUMNS[row.outcome]]
        preds.append(float(level.iloc[-1] / level.iloc[0]) if ratio_row
                     else float(level.iloc[-1]))
    interval = _spread_interval(row)
    if interval is not None and not ratio_row:
        interval = tuple(_marker_value(v, row.unit, row.outcome) for v in interval)
    ratio = preds[0] / observed
    out.append({
        "use": use, "trial": stem, "arm": row.arm, "n": row.n,
        "population": row.population, "preset": cfg["populations"][row.population]["preset"],
        "regimen": row.regimen_text, "route": route_label(row.route, row.form),
        "time_days": t, "outcome": row.outcome,
        "statistic": row.statistic, "sampling": meta["sampling"], "observed": observed,
        "observed_low": interval[0] if interval else math.nan,
        "observed_high": interval[1] if interval else math.nan,
        "unit": "ratio" if ratio_row else "nmol/L" if row.outcome == "mma" else "umol/L",
        "predicted": preds[0], "predicted_alternative": preds[1], "ratio": ratio,
        "within_2fold": bool(abs(math.log(ratio)) <= math.log(2.0)),
        "within_spread": (bool(interval[0] <= preds[0] <= interval[1]) if interval
                          else pd.NA),
        "where": row.where, "citation": meta["citation"],
        "note": row.note if isinstance(row.note, str) else ""})
    return None

