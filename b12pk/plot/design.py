"""Figure of a regimen design (:func:`plot_design`): the share of patients meeting the
targets against the interval (injections) and the daily dose (oral)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_design"]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def plot_design(result: Any) -> Any:
    """Share of patients meeting every target (95 % Wilson interval as bars), one line per
    form, dose and loading choice against the maintenance interval, and the oral
    candidates against their daily dose; the share asked for as a dashed line and the
    chosen regimen as a star. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    from ..about import DISCLAIMER

    t = result.table
    im, oral = t[t["route"] == "IM"], t[t["route"] == "oral"]
    panels = [p for p in (("IM", im), ("oral", oral)) if len(p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8),
                             squeeze=False, layout="constrained",
                             width_ratios=[1.6 if name == "IM" else 1.0 for name, _ in panels])
    share = result.settings["share"]
    chosen = result.chosen["regimen"] if result.chosen is not None else None
    for ax, (name, part) in zip(axes[0], panels):
        if name == "IM":
            groups = part.groupby(["form", "dose_ug", "loading"], sort=True)
            x_col, xlabel = "interval_days", "Maintenance interval (days)"
        else:
            groups = [(("cyanocobalamin",), part)]
            x_col, xlabel = "dose_ug", "Daily oral dose (µg)"
        for k, (key, g) in enumerate(groups):
            g = g.sort_values(x_col)
            label = ("oral cyanocobalamin daily" if name == "oral" else
                     f"{key[0]} {key[1]:g} µg" + (", loading" if key[2] else ", no loading"))
            y = 100.0 * g["share_met"].to_numpy()
            err = np.maximum(0.0, [y - 100.0 * g["share_low"].to_numpy(),
                                   100.0 * g["share_high"].to_numpy() - y])
            ax.errorbar(g[x_col], y, yerr=err, marker="o", markersize=5, capsize=3,
                        color=_COLOURS[k % len(_COLOURS)], linewidth=1.4, label=label)
            best = g[g["regimen"].isin([r["regimen"] for r in result.per_route.values()])
                     & (g["regimen"] != chosen)]
            if len(best):
                ax.plot(best[x_col], 100.0 * best["share_met"], marker="o", markersize=14,
                        markerfacecolor="none", markeredgecolor="#222222", linestyle="none",
                        zorder=5, gid="route-best", label="least burden of its route")
            pick = g[g["regimen"] == chosen]
            if len(pick):
                ax.plot(pick[x_col], 100.0 * pick["share_met"], marker="*", markersize=17,
                        color="#222222", linestyle="none", zorder=5, gid="chosen",
                        label="chosen (least burden that meets the targets)")
        ax.axhline(100.0 * share, color="#B22222", linestyle="--", linewidth=1.1,
                   label=f"share asked for ({100.0 * share:g} %)")
        if name == "oral":
            ax.set_xscale("log")
            from matplotlib.ticker import NullFormatter

            ax.set_xticks(sorted(part["dose_ug"]), [f"{v:g}" for v in sorted(part["dose_ug"])])
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xticks(sorted(set(part["interval_days"])))
        ax.set_ylim(-3, 103)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Patients meeting every target (%)")
        ax.set_title("Injections" if name == "IM" else "Oral", loc="left", fontweight="bold",
                     fontsize=10.5)
        ax.grid(True, color="#E5E5E5")
        ax.legend(fontsize=7.5, frameon=False, loc="best")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    targets = "; ".join(tg.to_text() for tg in result.targets)
    fig.suptitle(f"Regimen design for {result.settings['patient']}: {targets}\n{DISCLAIMER}",
                 fontsize=9, wrap=True)
    return fig
