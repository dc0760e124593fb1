"""Plausibility: the model's physiology against published figures (``data/plausibility.toml``).

Each check computes one quantity with the model (store turnover, steady stores, urinary loss
and retention after an injection, the highest body B12 under the default regimens, the
holoTC share of serum, serum ratios of hydroxo- to cyanocobalamin, years to deficiency
without intake) and compares it with an interval set from verified published figures. The
result is a table; :func:`b12pk.report.validation.write_validation` writes it with the
trial validation. A check outside its interval is a known distortion of the model, not an
error: the table says which, and by how much.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._data import data_path
from ..engine.core import simulate, steady_state_stores_ug
from ..errors import FileFormatError
from .shipped import DataCache
from ..model.parameters import Parameters, Patient, serum_bands_pmol_per_l
from ..regimen.language import DoseEvent

__all__ = ["Plausibility", "check_plausibility", "load_checks", "serum_ratio",
           "oral_response", "years_to_deficiency"]

COLUMNS = ("id", "question", "model", "low", "high", "unit", "inside", "fit_target", "source",
           "where", "interval")


@dataclass(frozen=True)
class Plausibility:
    """The checks computed: ``table`` has one row per check (columns :data:`COLUMNS`:
    ``model`` the model's value, ``inside`` whether it lies in [low, high], ``fit_target``
    whether these figures set the model, fitted or derived, so that being inside says
    little)."""

    table: Any

    def summary(self) -> dict[str, Any]:
        """Counts of checks inside and outside their intervals (and of the checks that are
        not fit targets), and the ids outside."""
        t = self.table
        free = t.loc[~t.fit_target]
        return {"n_checks": int(len(t)), "n_inside": int(t.inside.sum()),
                "n_not_fitted": int(len(free)), "n_not_fitted_inside": int(free.inside.sum()),
                "outside": [str(i) for i in t.loc[~t.inside, "id"]]}


def load_checks(path: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The checks and sources of ``data/plausibility.toml`` (or ``path``).

    Raises
    ------
    FileFormatError
        A check without id, kind, interval or a known source, or of an unknown kind.
    """
    with open(path or data_path("plausibility.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    sources = doc.get("sources", {})
    checks = doc.get("checks", [])
    for c in checks:
        missing = [k for k in ("id", "question", "kind", "low", "high", "unit", "source",
                               "where") if k not in c]
        if missing:
            raise FileFormatError(f"plausibility.toml: check {c.get('id', '?')!r} lacks "
                                  f"{', '.join(missing)}")
        if c["kind"] not in _KINDS:
            raise FileFormatError(f"plausibility.toml: check {c['id']!r} has unknown kind "
                                  f"{c['kind']!r}; accepted: {', '.join(_KINDS)}")
        if c["source"] not in sources:
            raise FileFormatError(f"plausibility.toml: check {c['id']!r} cites unknown "
                                  f"source {c['source']!r}")
    return checks, sources


def check_plausibility(path: Any = None) -> Plausibility:
    """Compute every check of ``data/plausibility.toml`` (about 2 s; computed once per
    process while ``data/`` and the parameters stay the same, each call getting its own
    copy). ``path``: another checks file (never cached)."""
    return _check_plausibility(path) if path is not None else _SHIPPED.get()


_SHIPPED = DataCache(lambda: _check_plausibility(None), "plausibility")


def _check_plausibility(path: Any) -> Plausibility:
    import pandas as pd

    checks, _ = load_checks(path)
    values = _threaded(lambda c: float(_KINDS[c["kind"]](c)), checks)
    rows = []
    for c, value in zip(checks, values):
        rows.append((c["id"], c["question"], value, float(c["low"]), float(c["high"]),
                     c["unit"], bool(c["low"] <= value <= c["high"]),
                     bool(c.get("fit_target", False)), c["source"], c["where"],
                     c.get("interval", "")))
    return Plausibility(pd.DataFrame(rows, columns=list(COLUMNS)))


def _threaded(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]``, computed in threads (one per CPU: the compiled engine
    releases the GIL); the same values in the same order as the loop."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


# ----- the kinds of check -------------------------------------------------------------

def _injection(c: Mapping[str, Any]) -> Any:
    """One IM injection of the check's dose and form, healthy adult, to the window's end."""
    days = float(c["window_h"]) / 24.0
    return simulate(f"{c['dose_ug']:g} ug {c['form']} IM once", "healthy", days,
                    times=[0.0, days])


def _without_intake(preset: str, parameters: Parameters | None = None) -> Patient:
    """The preset at the stores it holds on its usual diet, from now on without any B12."""
    start = Patient.preset(preset)
    return dataclasses.replace(start, diet_ug_per_day=0.0, baseline_serum_pmol_per_l=None,
                               baseline_stores_ug=steady_state_stores_ug(start, parameters))


def _turnover(c: Mapping[str, Any]) -> float:
    # no intake at all: body B12 falls by turnover alone; the daily loss over the last 30 days
    patient = _without_intake(c["patient"])
    days = float(c["days"])
    df = simulate([], patient, days, times=[days - 30.0, days])
    body = df.body_ug.to_numpy()
    return (1.0 - (body[1] / body[0]) ** (1.0 / 30.0))


def _steady_stores(c: Mapping[str, Any]) -> float:
    return steady_state_stores_ug(c["patient"])


def _urine_fraction(c: Mapping[str, Any]) -> float:
    return float(_injection(c).urine_ug.iloc[-1]) / float(c["dose_ug"])


def _retained(c: Mapping[str, Any]) -> float:
    return float(c["dose_ug"]) - float(_injection(c).urine_ug.iloc[-1])


def _body_ceiling(c: Mapping[str, Any]) -> float:
    from .compare import default_regimens

    days = float(c["days"])
    return max(_threaded(lambda r: float(simulate(r.regimen, c["patient"], days).body_ug.max()),
                         default_regimens()))


def _holotc_share(c: Mapping[str, Any]) -> float:
    df = simulate([], c["patient"], 1.0, times=[0.0])
    return float(df.holotc_pmol_per_l.iloc[0] / df.serum_pmol_per_l.iloc[0])


def serum_ratio(parameters: Parameters | None, dose: float, hours: Sequence[float],
                patient: str = "healthy") -> np.ndarray:
    """Serum B12 ``hours`` after one IM ``dose`` (ug) of hydroxocobalamin over the same
    after cyanocobalamin (data/literature/injection_serum_ratio.csv; the calibration fits
    the hydroxocobalamin parameters to it)."""
    days = [float(h) / 24.0 for h in hours]
    serum = [simulate([DoseEvent(0.0, float(dose), "im", form)], patient,
                      days=max(max(days) * 1.01, 1e-3), parameters=parameters,
                      times=days)["serum_pmol_per_l"].to_numpy()
             for form in ("hydroxocobalamin", "cyanocobalamin")]
    return serum[0] / serum[1]


def _serum_ratio(c: Mapping[str, Any]) -> float:
    return float(serum_ratio(None, float(c["dose_ug"]), [float(c["time_h"])],
                             c["patient"])[0])


def years_to_deficiency(preset: str, horizon_years: float,
                        parameters: Parameters | None = None, *,
                        cut_pmol_per_l: float | None = None,
                        intrinsic_factor: float | None = None) -> float:
    """Years until ``preset``, at the stores of its usual diet and from then on without any
    B12, falls below the deficient band's upper edge (or ``cut_pmol_per_l``; linear between
    weekly values; inf when not within ``horizon_years``). With ``intrinsic_factor`` the
    patient also loses that much of the IF route (0: none, as after a total gastrectomy, so
    biliary B12 is no longer reabsorbed). The calibration fits ``hc_release_km_ug`` to it."""
    cut = cut_pmol_per_l if cut_pmol_per_l is not None else next(
        hi for name, lo, hi in serum_bands_pmol_per_l() if name == "deficient")
    patient = _without_intake(preset, parameters)
    if intrinsic_factor is not None:
        patient = dataclasses.replace(patient, intrinsic_factor=float(intrinsic_factor))
    days = np.arange(0.0, horizon_years * 365.25, 7.0)
    serum = simulate([], patient, days[-1], parameters=parameters,
                     times=days).serum_pmol_per_l.to_numpy()
    i = int(np.argmax(serum < cut))
    if serum[i] >= cut:
        return math.inf
    if i == 0:
        return 0.0
    return float((days[i - 1] + (serum[i - 1] - cut) / (serum[i - 1] - serum[i]) * 7.0)
                 / 365.25)


def _retained_ratio(c: Mapping[str, Any]) -> float:
    # ug of one IM dose not in urine by window_h: hydroxo- over cyanocobalamin
    kept = []
    for form in ("hydroxocobalamin", "cyanocobalamin"):
        kept.append(_retained({**c, "form": form}))
    return kept[0] / kept[1]


def _repeated_urine(c: Mapping[str, Any]) -> float:
    # urinary loss as a share of the doses given from from_day to to_day of `regimen`
    # (its text names {form}): hydroxocobalamin's minus cyanocobalamin's
    lo, hi = float(c["from_day"]), float(c["to_day"])
    share = []
    for form in ("hydroxocobalamin", "cyanocobalamin"):
        df = simulate(c["regimen"].format(form=form), c["patient"], hi, times=[lo, hi])
        share.append(float((df.urine_ug.iloc[1] - df.urine_ug.iloc[0])
                           / (df.dosed_ug.iloc[1] - df.dosed_ug.iloc[0])))
    return share[0] - share[1]


def oral_response(parameters: Parameters | None, regimen: str, patient: str, day: float,
                  quantity: str, change: str = "ratio") -> float:
    """``quantity`` on ``day`` of ``regimen`` over its value before it (``change="ratio"``)
    or minus it (``"difference"``, pmol/L), read at the day's start, before that day's dose
    (the trough): serum_pmol_per_l, holotc_pmol_per_l, or non_transcobalamin (serum minus
    holoTC: holoHC without injections). The calibration fits ``hc_transfer_fraction`` to
    it."""
    if change not in ("ratio", "difference"):
        raise FileFormatError(f"unknown change {change!r}; accepted: ratio, difference")
    df = simulate(regimen, patient, day, times=[0.0, day], parameters=parameters)
    if quantity == "non_transcobalamin":
        values = (df.serum_pmol_per_l - df.holotc_pmol_per_l).to_numpy()
    elif quantity in ("serum_pmol_per_l", "holotc_pmol_per_l"):
        values = df[quantity].to_numpy()
    else:
        raise FileFormatError(f"unknown quantity {quantity!r}; accepted: serum_pmol_per_l, "
                              "holotc_pmol_per_l, non_transcobalamin")
    if change == "difference":
        return float(values[1] - values[0])
    return float(values[1] / values[0])


def _oral_response(c: Mapping[str, Any]) -> float:
    return oral_response(None, c["regimen"], c["patient"], float(c["day"]), c["quantity"],
                         c.get("change", "ratio"))


def _marker_level(c: Mapping[str, Any]) -> float:
    settings = {} if c.get("serum_pmol_per_l") is None else \
        {"serum_pmol_per_l": float(c["serum_pmol_per_l"])}
    df = simulate([], Patient.preset(c["patient"], **settings), 1.0, times=[0.0])
    return float(df[c["column"]].iloc[0])


def _years_to_deficiency(c: Mapping[str, Any]) -> float:
    return years_to_deficiency(c["patient"], float(c["horizon_years"]),
                               cut_pmol_per_l=c.get("cut_pmol_per_l"),
                               intrinsic_factor=c.get("intrinsic_factor"))


def oral_peak_hours(patient: str, dose_ug: float, window_h: float = 24.0) -> float:
    """Hours from one oral dose of ``dose_ug`` cyanocobalamin to the highest total serum
    B12 within ``window_h`` hours (5-minute grid), for the preset ``patient`` at its
    baseline."""
    days = window_h / 24.0
    df = simulate(f"{dose_ug:g} mcg cyanocobalamin oral once", patient, days,
                  times=np.linspace(0.0, days, int(round(window_h * 12)) + 1))
    return float(df.time_days.iloc[int(np.argmax(df.serum_pmol_per_l.to_numpy()))] * 24.0)


def _oral_peak_time(c: Mapping[str, Any]) -> float:
    return oral_peak_hours(c["patient"], float(c["dose_ug"]), float(c.get("window_h", 24.0)))


_KINDS: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "turnover": _turnover, "steady_stores": _steady_stores,
    "urine_fraction": _urine_fraction, "retained": _retained,
    "body_ceiling": _body_ceiling, "holotc_share": _holotc_share,
    "serum_ratio": _serum_ratio, "years_to_deficiency": _years_to_deficiency,
    "oral_response": _oral_response, "retained_ratio": _retained_ratio,
    "repeated_urine": _repeated_urine, "marker_level": _marker_level,
    "oral_peak_time": _oral_peak_time,
}
