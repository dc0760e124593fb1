"""Fit the parameters marked ``fitted`` in data/model.toml and data/patients.toml.

Each fitted value is determined by a named physiological target (see the ``source`` of the
parameter); nothing here uses trial outcomes, which are kept for validation.

Run ``python tools/fit_parameters.py`` to print the fitted values next to those in the files,
and ``python tools/fit_parameters.py --write`` to write them back (with ``fitted_on``).

Targets
-------
* ``if_km_ug``: 1 ug oral dose -> 0.56 ug absorbed, normal subjects (carmel2008 Table 1).
* ``reference_serum_pmol_per_l``: healthy omnivore (5 ug/day) at steady state 281 pmol/L
  (gilsing2010).
* ``uptake_vmax_ug_per_day``, ``uptake_km_ug``: retained amount after single cyanocobalamin
  injections, 10 -> 9.7, 100 -> 55, 1000 -> 150 ug (carmel2008 Table 1) and renal loss 5% of
  25 ug, 47% of 100 ug, 85% of 1000 ug (swissmedic30219); least squares on log retained.
* ``hydroxo_renal_clearance_factor``: 72-h urinary loss 16% of 500 ug and 27% of 1000 ug IM
  hydroxocobalamin (hydroxo1961).
* vegan ``diet_ug_per_day``: steady state 122 pmol/L (gilsing2010).
* ``metformin_if_factor``: steady-state serum 19% lower than without metformin (dejager2010).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import re
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, least_squares

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import b12pk  # noqa: E402
from b12pk import engine, model  # noqa: E402
from b12pk.regimen import DoseEvent  # noqa: E402

RETENTION_TARGETS = [  # (dose ug, retained ug, source)
    (10.0, 9.7, "carmel2008"), (100.0, 55.0, "carmel2008"), (1000.0, 150.0, "carmel2008"),
    (25.0, 25.0 * 0.95, "swissmedic30219"), (100.0, 100.0 * 0.53, "swissmedic30219"),
    (1000.0, 1000.0 * 0.15, "swissmedic30219"),
]
HYDROXO_72H_URINE = [(500.0, 0.16), (1000.0, 0.27)]  # hydroxo1961
OMNIVORE_SERUM, VEGAN_SERUM, METFORMIN_CHANGE = 281.0, 122.0, -0.19  # gilsing2010, dejager2010


def _steady_serum(patient: b12pk.Patient, params: b12pk.Parameters) -> float:
    sys_ = engine._System(patient, patient.parameters(params), ("cyanocobalamin",))
    return float(sys_.serum_pmol(sys_.plasma_given_stores(sys_.steady_stores())))


def _urine_after(params: b12pk.Parameters, dose: float, form: str, day: float) -> float:
    patient = b12pk.Patient.preset("healthy")
    df = b12pk.simulate([DoseEvent(0.0, dose, "im", form)], patient, days=max(day, 1.0),
                        parameters=params, times=[0.0, day])
    return float(df["urine_ug"].iloc[-1])


def fit(params: b12pk.Parameters | None = None, max_passes: int = 10,
        rtol: float = 1e-6) -> dict[str, float]:
    """Fit every target, repeating passes until the values stop changing (fixed point).

    The targets interact weakly (the reference serum sets the haptocorrin load, which changes
    the retention of an injection), so one pass is not enough from far away.
    """
    p = b12pk.default_parameters() if params is None else params
    prev: dict[str, float] = {}
    for _ in range(max_passes):
        out = fit_pass(p)
        p = p.replace(**{k: v for k, v in out.items() if k in p.values})
        if prev and all(abs(out[k] - prev[k]) <= rtol * abs(prev[k]) for k in WHERE):
            break
        prev = out
    return out


def fit_pass(p: b12pk.Parameters) -> dict[str, float]:
    """One pass over the targets, in dependency order, starting from ``p``."""
    out: dict[str, float] = {}
    # 1. IF Michaelis constant from the 1 ug dose
    km = p["if_capacity_ug"] / (0.56 - p["passive_fraction"]) - 1.0
    p = p.replace(if_km_ug=km)
    out["if_km_ug"] = km
    # 2. injection uptake (cyanocobalamin retention); reference serum barely matters here
    long_day = 14.0

    def resid(x: np.ndarray) -> list[float]:
        q = p.replace(uptake_vmax_ug_per_day=math.exp(x[0]), uptake_km_ug=math.exp(x[1]))
        return [math.log((d - _urine_after(q, d, "cyanocobalamin", long_day)) / r)
                for d, r, _ in RETENTION_TARGETS]

    x0 = np.log([p["uptake_vmax_ug_per_day"], p["uptake_km_ug"]])
    sol = least_squares(resid, x0, xtol=1e-10, ftol=1e-10)
    p = p.replace(uptake_vmax_ug_per_day=float(np.exp(sol.x[0])),
                  uptake_km_ug=float(np.exp(sol.x[1])))
    out["uptake_vmax_ug_per_day"] = p["uptake_vmax_ug_per_day"]
    out["uptake_km_ug"] = p["uptake_km_ug"]
    out["_retention_rms_log"] = float(np.sqrt(np.mean(np.square(sol.fun))))
    # 3. hydroxocobalamin renal factor (72-h urine)

    def resid_h(x: np.ndarray) -> list[float]:
        q = p.replace(hydroxo_renal_clearance_factor=float(np.clip(math.exp(x[0]), 0.01, 1.0)))
        return [_urine_after(q, d, "hydroxocobalamin", 3.0) / d - f for d, f in HYDROXO_72H_URINE]

    sol = least_squares(resid_h, [math.log(p["hydroxo_renal_clearance_factor"])], xtol=1e-10)
    p = p.replace(hydroxo_renal_clearance_factor=float(np.clip(np.exp(sol.x[0]), 0.01, 1.0)))
    out["hydroxo_renal_clearance_factor"] = p["hydroxo_renal_clearance_factor"]
    # 4. reference serum: the healthy omnivore's steady state
    healthy = b12pk.Patient.preset("healthy")
    ref = brentq(lambda r: _steady_serum(healthy, p.replace(reference_serum_pmol_per_l=r))
                 - OMNIVORE_SERUM, 250.0, 600.0, xtol=1e-10)
    p = p.replace(reference_serum_pmol_per_l=ref)
    out["reference_serum_pmol_per_l"] = ref
    # 5. vegan intake
    out["vegan_diet_ug_per_day"] = brentq(
        lambda i: _steady_serum(b12pk.Patient(diet_ug_per_day=i), p) - VEGAN_SERUM,
        0.0, 5.0, xtol=1e-10)
    # 6. metformin IF factor (needs the setting, not a parameter: evaluate by hand)
    base = _steady_serum(healthy, p)

    def metformin_serum(f: float) -> float:
        factor = f  # a metformin patient = IF route x f
        patient = b12pk.Patient(intrinsic_factor=factor, diet_ug_per_day=5.0)
        return _steady_serum(patient, p) / base - 1.0 - METFORMIN_CHANGE

    out["metformin_if_factor"] = brentq(metformin_serum, 0.05, 1.0, xtol=1e-10)
    return out


def _write_value(path: Path, table: str, value: float, today: str) -> None:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"[{table}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    key = "diet_ug_per_day" if table.startswith("presets.") else "value"
    block = re.sub(rf"^{key} = .*$", f"{key} = {value:.6g}", block, count=1, flags=re.M)
    if re.search(r"^fitted_on = ", block, flags=re.M):
        block = re.sub(r"^fitted_on = .*$", f'fitted_on = "{today}"', block, flags=re.M)
    else:
        block = block.rstrip("\n") + f'\nfitted_on = "{today}"\n'
    path.write_text(text[:start] + block + text[end:], encoding="utf-8")


WHERE = {  # fitted name -> (file, table)
    "if_km_ug": ("model.toml", "parameters.if_km_ug"),
    "uptake_vmax_ug_per_day": ("model.toml", "parameters.uptake_vmax_ug_per_day"),
    "uptake_km_ug": ("model.toml", "parameters.uptake_km_ug"),
    "hydroxo_renal_clearance_factor": ("model.toml", "parameters.hydroxo_renal_clearance_factor"),
    "reference_serum_pmol_per_l": ("model.toml", "parameters.reference_serum_pmol_per_l"),
    "vegan_diet_ug_per_day": ("patients.toml", "presets.vegan"),
    "metformin_if_factor": ("patients.toml", "settings.metformin_if_factor"),
}


def current_values() -> dict[str, float]:
    """The fitted values as they stand in the data files."""
    p = b12pk.default_parameters()
    out = {k: p[k] for k in WHERE if k in p.values}
    out["vegan_diet_ug_per_day"] = b12pk.Patient.preset("vegan").diet_ug_per_day
    out["metformin_if_factor"] = model._setting("metformin_if_factor")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the fitted values to data/")
    args = ap.parse_args(argv)
    fitted = fit()
    now = current_values()
    print(f"{'parameter':34s} {'in file':>12s} {'fitted':>12s}")
    for k, v in fitted.items():
        if k.startswith("_"):
            print(f"{k:34s} {'':>12s} {v:12.4g}")
            continue
        print(f"{k:34s} {now[k]:12.6g} {v:12.6g}")
    if args.write:
        today = _dt.date.today().isoformat()
        for k, (fname, table) in WHERE.items():
            _write_value(ROOT / "data" / fname, table, fitted[k], today)
        print("written to data/model.toml and data/patients.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
