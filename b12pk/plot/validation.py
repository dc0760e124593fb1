"""Figure of a validation: predicted versus observed serum B12 (:func:`plot_validation`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..analysis.validate import Validation, validation_summary

__all__ = ["plot_validation", "plot_marker_validation"]


#: Offsets (points) tried in turn for a point's number, so that numbers do not overlap.
_LABEL_OFFSETS = ((5, 4), (5, -11), (-13, 4), (-13, -11), (5, 13), (-13, 13), (5, -20),
                  (-13, -20), (14, 4), (-22, 4))


def _place_numbers(xy: list[tuple[float, float]], lo: float, hi: float,
                   width_pt: float = 400.0) -> list[tuple[int, int]]:
    """An offset per point (in points) that keeps each number at least a label apart from
    the numbers already placed (greedy; log axes from ``lo`` to ``hi``)."""
    per_pt = math.log10(hi / lo) / width_pt
    placed: list[tuple[float, float]] = []
    out = []
    for x, y in xy:
        lx, ly = math.log10(x), math.log10(y)
        best, best_gap = _LABEL_OFFSETS[0], -1.0
        for dx, dy in _LABEL_OFFSETS:
            px, py = lx + dx * per_pt, ly + dy * per_pt
            gap = min((max(abs(px - qx) / 13.0, abs(py - qy) / 9.0) / per_pt
                       for qx, qy in placed), default=math.inf)
            if gap >= 1.0:
                best = (dx, dy)
                break
            if gap > best_gap:
                best, best_gap = (dx, dy), gap
        placed.append((lx + best[0] * per_pt, ly + best[1] * per_pt))
        out.append(best)
    return out


def plot_validation(validation: Validation, ax: Any = None) -> Any:
    """Predicted versus observed (log axes, identity line, 2-fold band). Each point carries
    a number, and a key beside the axes (below them when ``ax`` is given) says which trial,
    arm and time it is: labels written at the points overlapped."""
    import matplotlib.pyplot as plt

    table = validation.table
    key_ax = None
    if ax is None:
        fig = plt.figure(figsize=(11.0, 7.2), layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=[1.6, 1.0])
        ax, key_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    conc = table[table["unit"] == "pmol/L"]
    lo = float(min(conc["observed"].min(), conc["predicted"].min())) / 2.5
    hi = float(max(conc["observed"].max(), conc["predicted"].max())) * 2.5
    xs = np.array([lo, hi])
    ax.fill_between(xs, xs / 2, xs * 2, color="#DDDDDD", alpha=0.6, label="within 2-fold")
    ax.plot(xs, xs, color="#333333", linewidth=1.0, label="identity")
    markers = {"serum_b12": "o", "serum_b12_cmax": "^"}
    colours = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
    trials = list(dict.fromkeys(conc["trial"]))
    keys: list[str] = []
    points: list[tuple[float, float]] = []
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
                keys.append(f"{len(keys) + 1}  {trial}: {r.arm}, {when}")
                points.append((float(r.observed), float(r.predicted)))
    for k, ((x, y), off) in enumerate(zip(points, _place_numbers(points, lo, hi))):
        ax.annotate(str(k + 1), (x, y), textcoords="offset points", xytext=off,
                    fontsize=7.5, color="#333333")
    _draw_key(ax, key_ax, keys)
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


def _draw_key(ax: Any, key_ax: Any, keys: list[str]) -> None:
    """The numbered key: in its own axes (two columns when long), or under ``ax``."""
    lines = [k if len(k) <= 60 else k[:59] + "…" for k in keys]
    if key_ax is None:
        ax.text(0.0, -0.12, "\n".join(lines), transform=ax.transAxes, va="top",
                fontsize=7, color="#333333")
        return
    key_ax.axis("off")
    ncols = 1 if len(lines) <= 34 else 2
    per = math.ceil(len(lines) / ncols)
    for c in range(ncols):
        key_ax.text(c / ncols, 1.0, "\n".join(lines[c * per:(c + 1) * per]),
                    transform=key_ax.transAxes, va="top", ha="left",
                    fontsize=8 if ncols == 1 else 6.5, color="#333333", linespacing=1.4)
    key_ax.set_title("Points (trial: arm, time)", fontsize=9, loc="left")


def plot_marker_validation(validation: Validation, ax: Any = None) -> Any:
    """The functional markers' points as predicted / observed (log axis, one row per point;
    filled: not used in the fit, open: fitted), with the identity and a 1.25- and 2-fold band.
    """
    import matplotlib.pyplot as plt

    m = validation.markers
    if m is None or not len(m):
        raise ValueError("this validation has no functional-marker points")
    m = m.sort_values(["use", "trial", "outcome", "time_days"]).reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8.0, 0.42 * len(m) + 1.8), layout="constrained")
    y = np.arange(len(m))[::-1]
    ax.axvspan(0.5, 2.0, color="#EAEAEA", label="within 2-fold")
    ax.axvspan(0.8, 1.25, color="#CFCFCF", label="within 1.25-fold")
    ax.axvline(1.0, color="#333333", linewidth=1.0)
    names = {"mma": "MMA", "homocysteine": "tHcy"}
    for use, filled in (("validation", True), ("training", False)):
        part = m["use"] == use
        ax.scatter(m.loc[part, "ratio"], y[part.to_numpy()], s=44, zorder=3,
                   color="#0072B2" if filled else "white", edgecolor="#0072B2",
                   label="not used in the fit" if filled else "fitted")
    labels = [f"{r.trial} {r.arm}, {names.get(r.outcome, r.outcome)}, day "
              f"{r.time_days:g}" + (" (ratio to baseline)" if r.unit == "ratio" else "")
              for r in m.itertuples()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.4, 2.5)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xticks([0.5, 0.8, 1.0, 1.25, 2.0])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("predicted / observed")
    s = validation.summary().get("markers")
    title = "Methylmalonic acid and homocysteine: b12pk vs trial data"
    if s:
        title += f"\nnot used in the fit: {s['n_points']} points, GMFE {s['gmfe']:.2f}"
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4,
              frameon=False)
    ax.grid(True, axis="x", color="#E5E5E5")
    return ax

