"""Figure of a validation: predicted versus observed serum B12 (:func:`plot_validation`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..analysis.validate import Validation, validation_summary

__all__ = ["plot_validation"]


def plot_validation(validation: Validation, ax: Any = None) -> Any:
    """Predicted versus observed (log axes, identity line, 2-fold band, points labelled)."""
    import matplotlib.pyplot as plt

    table = validation.table
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 7.0), layout="constrained")
    conc = table[table["unit"] == "pmol/L"]
    lo = float(min(conc["observed"].min(), conc["predicted"].min())) / 2.5
    hi = float(max(conc["observed"].max(), conc["predicted"].max())) * 2.5
    xs = np.array([lo, hi])
    ax.fill_between(xs, xs / 2, xs * 2, color="#DDDDDD", alpha=0.6, label="within 2-fold")
    ax.plot(xs, xs, color="#333333", linewidth=1.0, label="identity")
    markers = {"serum_b12": "o", "serum_b12_cmax": "^"}
    colours = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
    trials = list(dict.fromkeys(conc["trial"]))
    for i, trial in enumerate(trials):
        sub = conc[conc["trial"] == trial]
        for outcome, part in sub.groupby("outcome"):
            ax.scatter(part["observed"], part["predicted"], s=46, zorder=3,
                       marker=markers.get(outcome, "s"), color=colours[i % len(colours)],
                       edgecolor="white", linewidth=0.6,
                       label=trial if outcome == sub["outcome"].iloc[0] else None)
            for r in part.itertuples():
                err = [[r.observed - r.observed_low], [r.observed_high - r.observed]] \
                    if not math.isnan(r.observed_low) else None
                if err is not None:
                    ax.errorbar([r.observed], [r.predicted], xerr=err, fmt="none",
                                ecolor=colours[i % len(colours)], elinewidth=0.8, zorder=2)
                when = (f"{r.time_days * 1440:.0f} min" if r.time_days < 1
                        else f"day {r.time_days:g}")
                ax.annotate(f"{trial.split('_')[0]}: {r.arm}, {when}",
                            (r.observed, r.predicted),
                            textcoords="offset points", xytext=(5, 4), fontsize=7.5,
                            color="#333333")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import FuncFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_xlabel("Observed serum B12 (pmol/L; mean or median, bars: reported spread)")
    ax.set_ylabel("Predicted serum B12, b12pk (pmol/L)")
    s = validation_summary(table)
    n_ratio = int((table["unit"] != "pmol/L").sum())
    ax.set_title(f"b12pk vs trial data (all {s['n_points']} points, {s['n_trials']} trials): "
                 f"GMFE {s['gmfe']:.2f}, {s['pct_within_2fold']:.0f}% within 2-fold\n"
                 f"shown: concentrations; {n_ratio} ratio-to-baseline points are in the table",
                 fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(True, which="major", color="#E5E5E5")
    return ax
