"""Figure of the evidence analysis: the seeds' disputes as simulated serum courses with the
claims and their verdicts (:func:`plot_evidence`)."""

from __future__ import annotations

import math
import textwrap
from typing import Any

from ..analysis.evidence import (DEF, PANELS, REPLETE, EvidenceResult, load_claims,
                                 panel_courses, panel_points)
from ..errors import FileFormatError

__all__ = ["plot_evidence"]


def plot_evidence(result: EvidenceResult | None = None, days: float = 365.0,
                  courses: Any = None, points: Any = None) -> Any:
    """Three panels (oral vs IM; maintenance interval; injection dose): simulated serum curves
    for the competing regimens over the seed bands, with the claims and verdicts below.

    ``courses``: from :func:`b12pk.analysis.evidence.panel_courses` (computed for ``days``
    when not given); ``points``: trial observations from
    :func:`b12pk.analysis.evidence.panel_points` (read when not given), drawn over the
    curves."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg", force=False)
        except Exception:  # pragma: no cover
            pass
    import matplotlib.pyplot as plt

    verdicts = {}
    claims = {}
    if result is not None:
        verdicts = dict(zip(result.table["id"], result.table["verdict"]))
        claims = dict(zip(result.table["id"], result.table["quote"]))
    else:
        try:
            c = load_claims()
            claims = dict(zip(c["id"], c["quote"]))
        except FileFormatError:
            pass
    if courses is None:
        courses = panel_courses(days)
    if points is None:
        points = panel_points()
    fig, axes = plt.subplots(1, 3, figsize=(17, 7.0), sharey=True)
    colors = ("#1b6ca8", "#e07b00", "#2a9d4a")
    ymin, ymax = 60.0, 4000.0
    for ax, (title, pop, regs, ids) in zip(axes, PANELS):
        ax.set_yscale("log")
        ax.axhspan(ymin, DEF, color="#f4c7c3", alpha=0.55, lw=0)
        ax.axhspan(DEF, REPLETE, color="#fce8b2", alpha=0.55, lw=0)
        ax.axhspan(REPLETE, ymax, color="#d9ead3", alpha=0.45, lw=0)
        for y, name in ((math.sqrt(ymin * DEF), "deficient"),
                        (math.sqrt(DEF * REPLETE), "indeterminate"),
                        (REPLETE * 1.18, "deficiency unlikely")):
            ax.text(days * 0.99, y, name, ha="right", va="center", fontsize=8, color="#555")
        for (label, _text), col in zip(regs, colors):
            df = courses[(courses["panel"] == title) & (courses["label"] == label)]
            ax.plot(df["time_days"], df["serum_pmol_per_l"].clip(ymin, ymax), color=col,
                    lw=1.8, label=label)
        _draw_points(ax, points[points["panel"] == title], ymin, ymax)
        ax.set_title(title, fontsize=12, fontweight="bold")
        ax.set_xlim(0, days)
        ax.set_ylim(ymin, ymax)
        ax.set_yticks([100, 132.8, 258, 500, 1000, 2000])
        ax.set_yticklabels(["100", "133", "258", "500", "1000", "2000"])
        ax.set_xlabel("days from first dose")
        ax.grid(alpha=0.25)
        ax.legend(loc="lower left", fontsize=8.5, framealpha=0.9)
        cap = []
        for cid in ids:
            q = claims.get(cid, "")
            if not q:
                continue
            q = q.replace(" | ", " … ")
            q = q if len(q) <= 150 else q[:147] + "…"
            v = verdicts.get(cid)
            cap.append(textwrap.fill(f"{cid}{' [' + v + ']' if v else ''}: “{q}”", 62))
        ax.text(0.0, -0.13, "\n".join(cap), transform=ax.transAxes, va="top", ha="left",
                fontsize=8.2, color="#222")
    axes[0].set_ylabel("serum B12 (pmol/L, log scale)")
    fig.suptitle("Seed claims vs simulated serum B12 (one typical patient, baseline 110 pmol/L; "
                 "educational, not advice)", fontsize=12.5)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.9, bottom=0.36, wspace=0.06)
    return fig


def _draw_points(ax: Any, pts: Any, ymin: float, ymax: float) -> None:
    """Trial observations as black markers with their reported spread."""
    markers = ("o", "s", "^", "D")
    for (label, grp), mk in zip(pts.groupby("label", sort=False), markers):
        y = grp["serum_pmol_per_l"].clip(ymin, ymax)
        lo = (y - grp["low_pmol_per_l"]).clip(lower=0).fillna(0)
        hi = (grp["high_pmol_per_l"] - y).clip(lower=0).fillna(0)
        ax.errorbar(grp["time_days"], y, yerr=[lo, hi], fmt=mk, color="black", ms=5.5,
                    mfc="white", capsize=3, lw=1.0, label=label, zorder=5)
