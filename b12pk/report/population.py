"""Output folder of a virtual population (:func:`write_population`)."""

from __future__ import annotations

from typing import Any, Sequence

from ..about import DISCLAIMER, __version__
from ..io import atomic_output_dir
from ..plot.figures import plot_band_probabilities, plot_fan, save_figure
from ..population.core import PopulationResult, engine_settings

__all__ = ["write_population"]


def write_population(result: PopulationResult, out: Any, *,
                     argv: Sequence[str] | None = None, trajectories: Any = None) -> Any:
    """Write quantiles.csv, bands.csv, troughs.csv, repletion.csv, means.csv, markers.csv
    and marker_normal.csv (functional markers), fan charts
    (PNG, SVG) and run.json into folder ``out`` (atomically); ``trajectories``, a folder of
    Parquet trajectories from :func:`simulate_population`, is moved in as
    ``out/trajectories``."""
    import json

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with atomic_output_dir(out) as tmp:
        result.quantiles.to_csv(tmp / "quantiles.csv", index=False, float_format="%.6g")
        result.bands.to_csv(tmp / "bands.csv", index=False, float_format="%.6g")
        result.troughs.to_csv(tmp / "troughs.csv", index=False, float_format="%.6g")
        result.repletion.to_csv(tmp / "repletion.csv", index=False, float_format="%.6g")
        result.means.to_csv(tmp / "means.csv", index=False, float_format="%.8g")
        has_markers = result.markers is not None and result.marker_normal is not None
        if has_markers:
            result.markers.to_csv(tmp / "markers.csv", index=False, float_format="%.6g")
            result.marker_normal.to_csv(tmp / "marker_normal.csv", index=False,
                                        float_format="%.6g")
        label = result.regimen.to_text()
        fans = [("fan_serum", "serum_pmol_per_l"), ("fan_stores", "stores_ug")]
        for name, quantity in fans + ([("fan_mma", "mma_nmol_per_l")] if has_markers else []):
            ax = plot_fan({label: result}, quantity=quantity)
            save_figure(ax.figure, tmp / name)
            plt.close(ax.figure)
        ax = plot_band_probabilities(result)
        save_figure(ax.figure, tmp / "bands")
        plt.close(ax.figure)
        spec = result.spec
        record = {
            "b12pk_version": __version__, "command": list(argv) if argv else None,
            "regimen": label, "days": result.days, "n": result.n, "seed": result.seed,
            "patient": {k: getattr(spec.patient, k) for k in (
                "name", "intrinsic_factor", "food_release", "ileal_resection_cm",
                "egfr_ml_min", "metformin", "diet_ug_per_day", "baseline_serum_pmol_per_l",
                "baseline_stores_ug", "baseline_mma_nmol_per_l", "baseline_hcy_umol_per_l")},
            "markers_method": result.markers.attrs.get("method") if has_markers else None,
            "variability_cv": dict(spec.variability),
            "covariates": spec.covariates_text(),
            "parameter_uncertainty": spec.parameter_uncertainty,
            "never_replete_pct": float(result.repletion.attrs.get("never_pct", 0.0)),
            "engine": {"method": result.method, **engine_settings()},
            "disclaimer": DISCLAIMER,
        }
        (tmp / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                      encoding="utf-8")
        if trajectories is not None:
            import shutil

            shutil.move(str(trajectories), str(tmp / "trajectories"))
    return out
