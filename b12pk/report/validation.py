"""Output folder of a validation (:func:`write_validation`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..analysis.plausibility import Plausibility
from ..analysis.shares import ShareValidation
from ..analysis.validate import Validation
from ..io import atomic_output_dir
from ..plot.figures import save_figure
from ..plot.validation import plot_marker_validation, plot_validation

__all__ = ["write_validation"]


def write_validation(validation: Validation, out: str | Path,
                     plausibility: Plausibility | None = None,
                     shares: ShareValidation | None = None) -> Path:
    """Write ``validation.csv``, ``by_route.csv`` (the summary per route), ``markers.csv``
    (functional markers), ``not_checkable.csv``, ``summary.json``, the markers'
    predicted-over-observed figure and the predicted-versus-observed figure (PNG, SVG) into
    folder ``out`` (atomically), and
    ``plausibility.csv`` when ``plausibility`` is given and ``shares.csv`` when ``shares``
    is (their summaries then join ``summary.json``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with atomic_output_dir(out, kind="validation") as tmp:
        validation.table.to_csv(tmp / "validation.csv", index=False, float_format="%.6g")
        validation.by_route().to_csv(tmp / "by_route.csv", index=False, float_format="%.6g")
        validation.not_checkable.to_csv(tmp / "not_checkable.csv", index=False)
        if validation.markers is not None:
            validation.markers.to_csv(tmp / "markers.csv", index=False, float_format="%.6g")
        summary = validation.summary()
        if plausibility is not None:
            plausibility.table.to_csv(tmp / "plausibility.csv", index=False,
                                      float_format="%.6g")
            summary["plausibility"] = plausibility.summary()
        if shares is not None:
            shares.table.to_csv(tmp / "shares.csv", index=False, float_format="%.6g")
            summary["shares"] = shares.summary()
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                          encoding="utf-8")
        ax = plot_validation(validation)
        save_figure(ax.figure, tmp / "predicted_vs_observed")
        plt.close(ax.figure)
        if validation.markers is not None and len(validation.markers):
            ax = plot_marker_validation(validation)
            save_figure(ax.figure, tmp / "markers_vs_observed")
            plt.close(ax.figure)
    return Path(out)
