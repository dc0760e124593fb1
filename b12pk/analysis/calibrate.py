"""Calibration: fit the parameters marked ``fitted`` to the training set.

The training set is named in ``data/calibration.toml``: single-dose physiology data in
``data/literature/`` (oral absorption, retention and urinary loss after injection), three
population targets (serum B12 of omnivores and vegans, the effect of metformin) and, for the
functional markers, the MMA and tHcy rows of one trial that the ``markers`` entry names.
Every other row of ``data/literature/trials/`` is validation data and is never used here.

``fit()`` returns the estimates and their uncertainty; ``python tools/fit_parameters.py
--write`` writes them back to the data files with the fit's date.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import brentq, least_squares

from ..engine import core as engine
from ..errors import FileFormatError, ParameterError
from ..model import parameters as model
from .._data import data_path
from ..engine.core import simulate
from ..model.parameters import Parameters, Patient, default_parameters
from .plausibility import oral_response, serum_ratio, years_to_deficiency
from ..regimen.language import DoseEvent

__all__ = ["fit", "fit_pass", "current_values", "write_fit", "training_set", "training_entry",
           "WHERE", "HYDROXO", "NASAL", "MARKERS",
           "nasal_peak", "nasal_training_rows", "uncertainty_table", "marker_training_rows"]


def training_set() -> list[dict[str, Any]]:
    """Entries of ``data/calibration.toml`` (what each fitted value is fitted to)."""
    with open(data_path("calibration.toml"), "rb") as fh:
        return tomllib.load(fh)["training"]


def training_entry(name: str) -> dict[str, Any]:
    """The ``[[training]]`` entry of ``data/calibration.toml`` named ``name``."""
    entry = next((t for t in training_set() if t["name"] == name), None)
    if entry is None:
        raise FileFormatError(f"data/calibration.toml has no [[training]] entry named {name!r}")
    return entry


def _retention_targets() -> list[tuple[float, float, str]]:
    import pandas as pd

    carmel = pd.read_csv(data_path("literature", "carmel2008_table1.csv"))
    rows = [(float(r.dose_ug), float(r.value_ug), "carmel2008")
            for r in carmel[carmel.quantity == "retained"].itertuples()]
    losses = pd.read_csv(data_path("literature", "injection_urinary_loss.csv"))
    for r in losses[losses.source == "swissmedic30219"].itertuples():
        rows.append((float(r.dose_ug), float(r.dose_ug) * (1 - r.urinary_loss_fraction),
                     "swissmedic30219"))
    return rows


def _hydroxo_targets() -> list[tuple[float, float]]:
    import pandas as pd

    losses = pd.read_csv(data_path("literature", "injection_urinary_loss.csv"))
    sel = losses[(losses.source == "hydroxo1961") & (losses.form == "hydroxocobalamin")]
    return [(float(r.dose_ug), float(r.urinary_loss_fraction)) for r in sel.itertuples()]


def _serum_ratio_targets(use: str = "training") -> list[tuple[float, float, float]]:
    """(dose ug, hours, ratio) of hydroxo- over cyanocobalamin serum after one IM dose."""
    import pandas as pd

    df = pd.read_csv(data_path("literature", "injection_serum_ratio.csv"))
    sel = df[(df.use == use) & df.ratio_oh_cn.notna()]
    return [(float(r.dose_ug), float(r.time_h), float(r.ratio_oh_cn)) for r in sel.itertuples()]


def _oral_1ug_absorbed() -> float:
    import pandas as pd

    carmel = pd.read_csv(data_path("literature", "carmel2008_table1.csv"))
    row = carmel[(carmel.quantity == "absorbed") & (carmel.population == "normal")
                 & (carmel.dose_ug == 1)]
    return float(row.value_ug.iloc[0])


def _steady_serum(patient: Patient, params: Parameters) -> float:
    sys_ = engine.System(patient, patient.parameters(params), ("cyanocobalamin",))
    return float(sys_.serum_pmol(sys_.plasma_given_stores(sys_.steady_stores())))


def _root_or_end(gap: Any, lo: float, hi: float, xtol: float) -> float:
    """The root of ``gap`` in [lo, hi] (a parameter's declared range), or the end of the
    range nearer to it when the target lies beyond what the range reaches (then the fitted
    value, or the end of its interval, sits at the range's end, which the results show).
    The upper end is pulled in while it makes a derived rate negative (ParameterError)."""
    g_lo = gap(lo)
    for _ in range(60):  # an end where the derived rates turn negative is out of reach
        try:
            g_hi = gap(hi)
            break
        except ParameterError:
            hi = 0.5 * (lo + hi)
    if g_lo * g_hi > 0.0:
        return float(lo if abs(g_lo) < abs(g_hi) else hi)
    return float(brentq(gap, lo, hi, xtol=xtol))


def _steady_share(patient: Patient, params: Parameters) -> float:
    """holoTC / serum B12 of ``patient`` at steady state."""
    sys_ = engine.System(patient, patient.parameters(params), ("cyanocobalamin",))
    y = sys_.plasma_given_stores(sys_.steady_stores())
    return float(sys_.output("holotc_pmol_per_l", y) / sys_.serum_pmol(y))


def _urine_after(params: Parameters, dose: float, form: str, day: float) -> float:
    df = simulate([DoseEvent(0.0, dose, "im", form)], Patient.preset("healthy"),
                  days=max(day, 1.0), parameters=params, times=[0.0, day])
    return float(df["urine_ug"].iloc[-1])


#: The intranasal absorption parameters fitted together (step 3a of :func:`fit_pass`).
NASAL = ("nasal_bioavailability", "nasal_absorption_rate_per_day")


def nasal_training_rows() -> Any:
    """The single-dose intranasal rows the ``nasal_absorption`` training entry names (a
    DataFrame: arm, outcome ``serum_b12_cmax`` or ``tmax``, n, value, spread, unit and the
    arm's regimen text)."""
    import pandas as pd

    entry = training_entry("nasal_absorption")
    df = pd.read_csv(data_path("literature", "trials", f"{entry['trial']}.csv"))
    return df[df.outcome.isin(entry["outcomes"])].reset_index(drop=True)


def nasal_peak(params: Parameters, regimen_text: str,
               patient: str = "healthy") -> tuple[float, float]:
    """(peak serum in pmol/L, minutes to it) after one intranasal dose, from a
    half-minute grid over 4 h refined by the parabola through the highest point and its
    neighbours (so the time to the peak moves smoothly with the parameters)."""
    times = np.arange(0, 4 * 120 + 1) / 2880.0
    s = simulate(regimen_text, Patient.preset(patient), days=times[-1], times=times,
                 parameters=params)["serum_pmol_per_l"].to_numpy()
    i = int(np.clip(np.argmax(s), 1, len(s) - 2))
    a, b, c = s[i - 1], s[i], s[i + 1]
    den = a - 2.0 * b + c
    shift = 0.5 * (a - c) / den if den < 0.0 else 0.0
    peak = b - 0.25 * (a - c) * shift
    return float(peak), float((i + shift) * 0.5)


def _fit_nasal(p: Parameters) -> tuple[Parameters, Any]:
    """Weighted least squares of :data:`NASAL` in log space on the mean peak serum (log
    scale: sd_log of a log-normal with the reported CV, over sqrt(n)) and the mean time to
    it (linear: the reported SD over sqrt(n)) after each single dose; data/calibration.toml
    ``nasal_absorption``."""
    rows = nasal_training_rows()
    spec = model.parameter_table().set_index("name")
    lo = np.log([spec.loc[n, "low"] for n in NASAL])
    hi = np.log([spec.loc[n, "high"] for n in NASAL])
    arms = list(dict.fromkeys(rows.arm))

    def targets(arm: str) -> tuple[str, float, float, float, float]:
        cmax = rows[(rows.arm == arm) & (rows.outcome == "serum_b12_cmax")].iloc[0]
        tmax = rows[(rows.arm == arm) & (rows.outcome == "tmax")].iloc[0]
        if tmax.unit != "min" or cmax.unit != "pmol/L":
            raise FileFormatError(f"nasal training rows of arm {arm}: expected pmol/L and min")
        cv = float(cmax.spread) / float(cmax.value)
        sd_log = math.sqrt(math.log1p(cv * cv) / float(cmax.n))
        return (cmax.regimen_text, float(cmax.value), sd_log, float(tmax.value),
                float(tmax.spread) / math.sqrt(float(tmax.n)))

    data = [targets(a) for a in arms]

    def with_x(x: np.ndarray) -> Parameters:
        return p.replace(**{n: float(math.exp(v)) for n, v in zip(NASAL, x)})

    def resid(x: np.ndarray) -> list[float]:
        q = with_x(x)
        r = []
        for text, cmax, sd_log, tmax, se in data:
            peak, minutes = nasal_peak(q, text)
            r += [math.log(peak / cmax) / sd_log, (minutes - tmax) / se]
        return r

    x0 = np.clip(np.log([p[n] for n in NASAL]), lo + 1e-9, hi - 1e-9)
    sol = least_squares(resid, x0, bounds=(lo, hi), xtol=1e-10, ftol=1e-10,
                        diff_step=1e-4)
    return with_x(sol.x), sol


#: The hydroxocobalamin parameters fitted together (step 3 of :func:`fit_pass`).
HYDROXO = ("hydroxo_renal_clearance_factor", "hydroxo_protein_binding_rate_per_day")


def _fit_hydroxo(p: Parameters) -> tuple[Parameters, Any]:
    """Weighted least squares of :data:`HYDROXO` in log space, with the spreads the
    training entry states (data/calibration.toml)."""
    urine = _hydroxo_targets()
    ratios = _serum_ratio_targets("training")
    spreads = training_entry("hydroxocobalamin_urine_and_serum")["spreads"]
    urine_sd, log_ratio_sd = spreads["urine_fraction"], spreads["log_serum_ratio"]
    doses = sorted({d for d, _h, _r in ratios})
    spec = model.parameter_table().set_index("name")

    def with_x(x: np.ndarray) -> Parameters:
        return p.replace(**{n: float(np.clip(math.exp(v), spec.loc[n, "low"],
                                             spec.loc[n, "high"]))
                            for n, v in zip(HYDROXO, x)})

    def resid(x: np.ndarray) -> list[float]:
        q = with_x(x)
        r = [(_urine_after(q, d, "hydroxocobalamin", 3.0) / d - f) / urine_sd
             for d, f in urine]
        for dose in doses:
            rows = [(h, v) for d, h, v in ratios if d == dose]
            model_ratio = serum_ratio(q, dose, [h for h, _v in rows])
            r += list(np.log(model_ratio / [v for _h, v in rows]) / log_ratio_sd)
        return r

    x0 = np.log([max(p[n], 1e-3) for n in HYDROXO])
    sol = least_squares(resid, x0, xtol=1e-8, ftol=1e-10)
    return with_x(sol.x), sol


def _cov_from_jacobian(sol: Any) -> np.ndarray:
    """Covariance of least-squares estimates: s^2 (J'J)^-1, s^2 = RSS / (n - p)."""
    J = np.atleast_2d(sol.jac)
    n, k = J.shape
    s2 = float(np.sum(sol.fun ** 2)) / max(n - k, 1)
    return s2 * np.linalg.pinv(J.T @ J)


def _corr_from_jacobian(sol: Any) -> float:
    """Correlation of the two estimates of a two-parameter least-squares fit."""
    c = _cov_from_jacobian(sol)
    return float(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]))


def _se_from_jacobian(sol: Any) -> np.ndarray:
    """Standard errors of least-squares estimates (:func:`_cov_from_jacobian`)."""
    return np.sqrt(np.clip(np.diag(_cov_from_jacobian(sol)), 0.0, None))


def _weighted_uncertainty(sol: Any, names: tuple[str, ...]) -> dict[str, float]:
    """``<name>_se_log`` and ``<a>__<b>_corr_log`` of a least-squares fit in log parameters
    whose residuals are already divided by their SDs (the covariance is inv(J'J))."""
    cov = np.linalg.pinv(sol.jac.T @ sol.jac)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    out = {f"{n}_se_log": float(v) for n, v in zip(names, se)}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out[f"{names[i]}__{names[j]}_corr_log"] = float(cov[i, j] / (se[i] * se[j]))
    return out


def fit_pass(p: Parameters, uncertainty: bool = False) -> dict[str, float]:
    """One pass over the training set, in dependency order, starting from ``p``.

    With ``uncertainty=True`` also returns ``<name>_se_log`` (standard error of the log
    estimate, least-squares fits) or ``<name>_low``/``<name>_high`` (the estimate at the
    ends of the target's 95% CI, exact-match fits).
    """
    out: dict[str, float] = {}
    # 1. IF Michaelis constant from the 1 ug dose
    km = p["if_capacity_ug"] / (_oral_1ug_absorbed() - p["passive_fraction"]) - 1.0
    p = p.replace(if_km_ug=km)
    out["if_km_ug"] = km
    # 2. tissue uptake of unbound cyanocobalamin: log retained, equal weights
    targets = _retention_targets()

    def resid(x: np.ndarray) -> list[float]:
        q = p.replace(uptake_vmax_ug_per_day=math.exp(x[0]), uptake_km_ug=math.exp(x[1]))
        return [math.log((d - _urine_after(q, d, "cyanocobalamin", 14.0)) / r)
                for d, r, _ in targets]

    x0 = np.log([p["uptake_vmax_ug_per_day"], p["uptake_km_ug"]])
    spec = model.parameter_table().set_index("name")
    bounds = (np.log([spec.loc["uptake_vmax_ug_per_day", "low"], spec.loc["uptake_km_ug", "low"]]),
              np.log([spec.loc["uptake_vmax_ug_per_day", "high"],
                      spec.loc["uptake_km_ug", "high"]]))
    sol = least_squares(resid, x0, bounds=bounds, xtol=1e-10, ftol=1e-10)
    p = p.replace(uptake_vmax_ug_per_day=float(np.exp(sol.x[0])),
                  uptake_km_ug=float(np.exp(sol.x[1])))
    out["uptake_vmax_ug_per_day"] = p["uptake_vmax_ug_per_day"]
    out["uptake_km_ug"] = p["uptake_km_ug"]
    out["retention_rms_log_residual"] = float(np.sqrt(np.mean(np.square(sol.fun))))
    if uncertainty:
        se = _se_from_jacobian(sol)
        out["uptake_vmax_ug_per_day_se_log"], out["uptake_km_ug_se_log"] = map(float, se)
        out["uptake_vmax_ug_per_day__uptake_km_ug_corr_log"] = _corr_from_jacobian(sol)
    # 3. hydroxocobalamin: renal factor and tight protein binding, jointly, from the 72-h
    # urinary fractions and the serum ratios to cyanocobalamin after 1000 ug
    p, sol = _fit_hydroxo(p)
    out.update({name: p[name] for name in HYDROXO})
    if uncertainty:
        out.update({f"{name}_se_log": float(se)
                    for name, se in zip(HYDROXO, _se_from_jacobian(sol))})
        out[f"{HYDROXO[0]}__{HYDROXO[1]}_corr_log"] = _corr_from_jacobian(sol)
    # 3a. intranasal absorption: bioavailable fraction and rate, jointly, from the mean
    # peak serum and time to it after single 750 and 1500 ug doses
    p, sol = _fit_nasal(p)
    out.update({name: p[name] for name in NASAL})
    out["nasal_rms_weighted_residual"] = float(np.sqrt(np.mean(np.square(sol.fun))))
    if uncertainty:  # the residuals are scaled by the reported spreads
        out.update(_weighted_uncertainty(sol, NASAL))
    # 4. reference serum: the healthy omnivore's steady state equals the cohort mean
    healthy = Patient.preset("healthy")
    omni = training_entry("omnivore_serum")

    def ref_for(target: float) -> float:
        return brentq(lambda r: _steady_serum(healthy, p.replace(reference_serum_pmol_per_l=r))
                      - target, 150.0, 600.0, xtol=1e-10)

    p = p.replace(reference_serum_pmol_per_l=ref_for(omni["target"]))
    out["reference_serum_pmol_per_l"] = p["reference_serum_pmol_per_l"]
    # 4a. the share of holoTC's delivery that returns on haptocorrin: holoHC's rise on
    # day 3 of 0.4 mg oral daily
    wen = training_entry("holohc_response")

    def transfer_for(target: float) -> float:
        return _root_or_end(lambda f: oral_response(
            p.replace(hc_transfer_fraction=f), wen["regimen"], "healthy", wen["day"],
            "non_transcobalamin") - target, *spec.loc["hc_transfer_fraction", ["low", "high"]],
            xtol=1e-8)

    p = p.replace(hc_transfer_fraction=transfer_for(wen["target"]))
    out["hc_transfer_fraction"] = p["hc_transfer_fraction"]
    # 4b. the stores' holoTC fraction: holoTC is holotc_share of serum in the healthy adult
    share = training_entry("holotc_share")

    def fraction_for(target: float) -> float:
        # a target below what the diet alone puts on transcobalamin gives the range's end
        return _root_or_end(lambda f: _steady_share(
            healthy, p.replace(stores_holotc_fraction=f)) - target,
            *spec.loc["stores_holotc_fraction", ["low", "high"]], xtol=1e-10)

    p = p.replace(stores_holotc_fraction=fraction_for(share["target"]))
    out["stores_holotc_fraction"] = p["stores_holotc_fraction"]
    # 5. vegan intake
    vegan = training_entry("vegan_serum")

    def intake_for(target: float) -> float:
        return brentq(lambda i: _steady_serum(Patient(diet_ug_per_day=i), p) - target,
                      0.0, 5.0, xtol=1e-10)

    out["vegan_diet_ug_per_day"] = intake_for(vegan["target"])
    # 6. metformin IF factor (a metformin patient = IF route x factor)
    base = _steady_serum(healthy, p)
    met = training_entry("metformin_effect")

    def factor_for(change: float) -> float:
        return brentq(lambda f: _steady_serum(Patient(intrinsic_factor=f, diet_ug_per_day=5.0),
                                              p) / base - 1.0 - change, 0.05, 1.0, xtol=1e-10)

    out["metformin_if_factor"] = factor_for(met["target"])
    # 7. haptocorrin release constant: years to deficiency without any intake
    dep = training_entry("years_to_deficiency")

    def km_for(years: float) -> float:
        return _root_or_end(lambda k: years_to_deficiency(
            "healthy", 20.0, p.replace(hc_release_km_ug=k)) - years,
            *spec.loc["hc_release_km_ug", ["low", "high"]], xtol=1e-3)
    p = p.replace(hc_release_km_ug=km_for(dep["target"]))
    out["hc_release_km_ug"] = p["hc_release_km_ug"]
    # 8. functional markers, on the stores this pass's model gives
    out.update(_fit_markers(p, uncertainty))
    if uncertainty:
        lo, hi = omni["ci95"]
        out["reference_serum_pmol_per_l_low"], out["reference_serum_pmol_per_l_high"] = \
            ref_for(lo), ref_for(hi)
        lo, hi = vegan["ci95"]
        out["vegan_diet_ug_per_day_low"], out["vegan_diet_ug_per_day_high"] = \
            intake_for(lo), intake_for(hi)
        lo, hi = met["ci95"]
        a, b = factor_for(lo), factor_for(hi)
        out["metformin_if_factor_low"], out["metformin_if_factor_high"] = min(a, b), max(a, b)
        a, b = (transfer_for(x) for x in wen["range"])
        out["hc_transfer_fraction_low"], out["hc_transfer_fraction_high"] = a, b
        a, b = (fraction_for(x) for x in share["range"])
        out["stores_holotc_fraction_low"], out["stores_holotc_fraction_high"] = a, b
        a, b = (km_for(y) for y in dep["range"])
        out["hc_release_km_ug_low"], out["hc_release_km_ug_high"] = min(a, b), max(a, b)
    return out


MARKERS = ("mma_max_fold", "marker_half_stores_ug")
"""MMA's fold and the stores at half signal, fitted jointly to MMA (the Hill exponent is
assumed: four means cannot identify three shape parameters)."""


def marker_training_rows() -> Any:
    """The trial rows the ``markers`` training entry names (a DataFrame: arm, outcome,
    time_days, value and the arm's baseline serum in pmol/L)."""
    import pandas as pd

    entry = training_entry("markers")
    df = pd.read_csv(data_path("literature", "trials", f"{entry['trial']}.csv"))
    serum = df[(df.outcome == "serum_b12") & (df.time_days == 0)].set_index("arm")
    rows = df[df.outcome.isin(entry["outcomes"]) &
              df.time_days.isin(entry["time_days"])].copy()
    rows["baseline_serum_pmol_per_l"] = [
        model.serum_to_pmol_per_l(float(serum.loc[a, "value"]), serum.loc[a, "unit"])
        for a in rows.arm]
    return rows


def _marker_stores(p: Parameters, rows: Any, preset: str) -> dict[tuple[str, float], float]:
    """Stores (ug) of each training arm at each training time, on this model."""
    out = {}
    for (arm, s0), grp in rows.groupby(["arm", "baseline_serum_pmol_per_l"]):
        text = grp.regimen_text.iloc[0]
        times = sorted(set(float(t) for t in grp.time_days))
        patient = Patient.preset(preset, serum_pmol_per_l=s0)
        df = simulate(text, patient, days=max(times[-1], 1.0), times=times, parameters=p)
        for t, v in zip(df.time_days, df.stores_ug):
            out[(arm, float(t))] = float(v)
    return out


def _typical_level(column: str, p: Parameters, patient: Patient, stores: float) -> float:
    """The typical (not individualised) level of marker ``column`` at ``stores`` (ug), from
    the declared marker (:func:`b12pk.engine.core.marker_terms` without a baseline)."""
    from ..model.laws import marker_level

    sys_ = engine.System(patient, patient.parameters(p), ("cyanocobalamin",))
    terms = engine.marker_terms(sys_, patient, np.zeros(sys_.L.n))
    return float(marker_level(*terms[column], stores))


def _fit_markers(p: Parameters, uncertainty: bool) -> dict[str, float]:
    """MMA's fold and half-stores jointly (log MMA, the entry's assumed SD; the Hill
    exponent as declared), then tHcy's fold on the baselines with that shape."""
    entry = training_entry("markers")
    rows = marker_training_rows()
    stores = _marker_stores(p, rows, entry["preset"])
    patient = Patient.preset(entry["preset"])  # the terms do not depend on the baseline
    sd = float(entry["sd_log"])
    mma = rows[rows.outcome == "mma"]

    def resid(x: np.ndarray) -> list[float]:
        q = p.replace(**dict(zip(MARKERS, map(float, np.exp(x)))))
        return [math.log(_typical_level("mma_nmol_per_l", q, patient,
                                        stores[(r.arm, float(r.time_days))]) / float(r.value))
                / sd for r in mma.itertuples()]

    spec = model.parameter_table().set_index("name")
    lo = np.log([spec.loc[n, "low"] for n in MARKERS])
    hi = np.log([spec.loc[n, "high"] for n in MARKERS])
    x0 = np.clip(np.log([p[n] for n in MARKERS]), lo + 1e-9, hi - 1e-9)
    sol = least_squares(resid, x0, bounds=(lo, hi), xtol=1e-12, ftol=1e-12)
    out = dict(zip(MARKERS, map(float, np.exp(sol.x))))
    p = p.replace(**out)
    out["mma_rms_log_residual"] = float(np.sqrt(np.mean(np.square(sol.fun)))) * sd
    hcy = rows[(rows.outcome == "homocysteine") & (rows.time_days == 0)]

    def hcy_resid(x: np.ndarray) -> list[float]:
        q = p.replace(hcy_max_fold=float(math.exp(x[0])))
        return [math.log(_typical_level("hcy_umol_per_l", q, patient,
                                        stores[(r.arm, float(r.time_days))]) / float(r.value))
                / sd for r in hcy.itertuples()]

    lo_h, hi_h = np.log(spec.loc["hcy_max_fold", ["low", "high"]].astype(float))
    sol_h = least_squares(hcy_resid, [np.clip(math.log(p["hcy_max_fold"]), lo_h, hi_h)],
                          bounds=([lo_h], [hi_h]), xtol=1e-12, ftol=1e-12)
    out["hcy_max_fold"] = float(math.exp(sol_h.x[0]))
    if uncertainty:  # the residuals are scaled by the assumed SD
        out.update(_weighted_uncertainty(sol, MARKERS))
        jh = sol_h.jac
        out["hcy_max_fold_se_log"] = float(math.sqrt(1.0 / float((jh.T @ jh).item())))
    return out


WHERE = {  # fitted name -> (file, table, key)
    "if_km_ug": ("model.toml", "parameters.if_km_ug", "value"),
    "uptake_vmax_ug_per_day": ("model.toml", "parameters.uptake_vmax_ug_per_day", "value"),
    "uptake_km_ug": ("model.toml", "parameters.uptake_km_ug", "value"),
    "hydroxo_renal_clearance_factor": ("model.toml",
                                       "parameters.hydroxo_renal_clearance_factor", "value"),
    "hydroxo_protein_binding_rate_per_day": (
        "model.toml", "parameters.hydroxo_protein_binding_rate_per_day", "value"),
    "reference_serum_pmol_per_l": ("model.toml", "parameters.reference_serum_pmol_per_l",
                                   "value"),
    "vegan_diet_ug_per_day": ("patients.toml", "presets.vegan", "diet_ug_per_day"),
    "metformin_if_factor": ("patients.toml", "settings.metformin_if_factor", "value"),
    "hc_release_km_ug": ("model.toml", "parameters.hc_release_km_ug", "value"),
    "nasal_bioavailability": ("model.toml", "parameters.nasal_bioavailability", "value"),
    "nasal_absorption_rate_per_day": ("model.toml",
                                      "parameters.nasal_absorption_rate_per_day", "value"),
    "stores_holotc_fraction": ("model.toml", "parameters.stores_holotc_fraction", "value"),
    "hc_transfer_fraction": ("model.toml", "parameters.hc_transfer_fraction", "value"),
    "mma_max_fold": ("model.toml", "parameters.mma_max_fold", "value"),
    "marker_half_stores_ug": ("model.toml", "parameters.marker_half_stores_ug", "value"),
    "hcy_max_fold": ("model.toml", "parameters.hcy_max_fold", "value"),
}


def fit(params: Parameters | None = None, max_passes: int = 10,
        rtol: float = 1e-6) -> dict[str, float]:
    """Fit the training set, repeating passes until the values stop changing.

    The targets interact weakly (the reference serum sets the haptocorrin load, which
    changes the retention of an injection), so passes repeat to a fixed point; the last
    pass also computes the uncertainty.
    """
    p = default_parameters() if params is None else params
    prev: dict[str, float] = {}
    for _ in range(max_passes):
        out = fit_pass(p)
        p = p.replace(**{k: v for k, v in out.items() if k in p.values})
        if prev and all(abs(out[k] - prev[k]) <= rtol * abs(prev[k]) for k in WHERE):
            break
        prev = out
    return fit_pass(p, uncertainty=True)


def current_values() -> dict[str, float]:
    """The fitted values as they stand in the data files."""
    p = default_parameters()
    out = {k: p[k] for k in WHERE if k in p.values}
    out["vegan_diet_ug_per_day"] = Patient.preset("vegan").diet_ug_per_day
    out["metformin_if_factor"] = model.setting("metformin_if_factor")
    return out


def _write_value(path: Path, table: str, key: str, value: float, today: str) -> None:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"[{table}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    block = re.sub(rf"^{key} = .*$", f"{key} = {value:.6g}", block, count=1, flags=re.M)
    if re.search(r"^fitted_on = ", block, flags=re.M):
        block = re.sub(r"^fitted_on = .*$", f'fitted_on = "{today}"', block, flags=re.M)
    else:
        block = block.rstrip("\n") + f'\nfitted_on = "{today}"\n'
    path.write_text(text[:start] + block + text[end:], encoding="utf-8")


def write_fit(fitted: dict[str, float], today: str | None = None) -> None:
    """Write fitted values (and ``fitted_on``) to the data files, and the results table to
    ``data/calibration.toml``."""
    today = today or _dt.date.today().isoformat()
    for k, (fname, table, key) in WHERE.items():
        _write_value(data_path(fname), table, key, fitted[k], today)
    cal = data_path("calibration.toml")
    text = cal.read_text(encoding="utf-8")
    text = text.split("\n[results]")[0].rstrip("\n")
    lines = ["", "[results]", f'fitted_on = "{today}"']
    lines += [f"{k} = {v:.6g}" for k, v in fitted.items()]
    lines += _uncertainty_lines(fitted)
    cal.write_text(text + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


#: z of the two-sided 95 % interval: a fit's low-high range is read as +/- Z95 SD.
Z95 = 1.959964


def uncertainty_table(fitted: dict[str, float]) -> dict[str, Any]:
    """The fitted model parameters' uncertainty, as written to data/calibration.toml
    [uncertainty]: per parameter the scale ("log" or "linear") and the standard deviation
    on it (least-squares fits: the standard error; fits to a target's 95 % interval or
    range: that interval read as +/- 1.96 SD), and the correlations of joint fits.
    Parameters fitted to a single number without a stated spread (if_km_ug) and patient
    settings (the vegan diet, the metformin factor) are not in it."""
    params = set(default_parameters().values)
    spec = model.parameter_table().set_index("name")
    table: dict[str, Any] = {}
    for name in WHERE:
        if name not in params:
            continue
        if f"{name}_se_log" in fitted:
            table[name] = {"scale": "log", "sd": fitted[f"{name}_se_log"]}
        elif f"{name}_low" in fitted:
            table[name] = {"scale": "log", "sd": _interval_sd(
                fitted[name], fitted[f"{name}_low"], fitted[f"{name}_high"],
                spec.loc[name, "low"], spec.loc[name, "high"])}
    pairs = [k[: -len("_corr_log")].split("__") + [fitted[k]]
             for k in fitted if k.endswith("_corr_log")]
    return {"parameters": table, "correlations": pairs}


def _interval_sd(value: float, lo: float, hi: float, range_lo: float,
                 range_hi: float) -> float:
    """SD on the log scale of an estimate whose 95 % interval is [lo, hi]. An end that sits
    at the parameter's declared range end was clipped there (the target lay beyond what the
    range reaches): the other end alone sets the SD then."""
    ends = [e for e, edge in ((lo, range_lo), (hi, range_hi)) if e != edge and e > 0.0]
    if len(ends) == 2:
        return math.log(hi / lo) / (2 * Z95)
    if len(ends) == 1:
        return abs(math.log(ends[0] / value)) / Z95
    return math.log(hi / max(lo, 1e-12)) / (2 * Z95)


def _uncertainty_lines(fitted: dict[str, float]) -> list[str]:
    table = uncertainty_table(fitted)
    lines = ["", "[uncertainty]",
             'method = "approximate posterior: multivariate normal on each parameter scale, '
             'centred on the fitted value; least-squares standard errors and correlations '
             '(s2 inverse of JtJ), interval targets read as +/- 1.96 SD, other pairs '
             'independent; drawn by simulate(..., uncertainty=N)"']
    pairs = ", ".join(f'["{a}", "{b}", {r:.6g}]' for a, b, r in table["correlations"])
    lines.append(f"correlations = [{pairs}]")
    for name, entry in table["parameters"].items():
        lines += ["", f"[uncertainty.parameters.{name}]", f'scale = "{entry["scale"]}"',
                  f"sd = {entry['sd']:.6g}"]
    return lines
