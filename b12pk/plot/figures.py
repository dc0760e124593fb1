"""Figures: serum B12, holotranscobalamin and body-store curves, summary bar charts.

Every function takes (or creates) matplotlib objects and returns them; nothing is shown
and no global matplotlib setting is changed. matplotlib is imported only when a function
is called, so ``import b12pk`` stays light.

>>> import b12pk
>>> from b12pk import plot
>>> r = b12pk.Regimen.parse("1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, "
...                         "then every 2 months")
>>> df = b12pk.simulate(r, "pernicious-anaemia", days=365)
>>> ax = plot.plot_serum({"IM every 2 months": df})          # doctest: +SKIP
>>> plot.save_figure(ax.figure, "serum")                      # serum.png, serum.svg

Curves are told apart by colour (Okabe-Ito, colour-blind safe), line style *and* a
sparse marker, so figures still read when printed in greyscale.
"""

from __future__ import annotations

import contextlib
import math
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError, UnknownNameError
from ..model.parameters import (default_parameters, lab_bands, pmol_per_l_to_pg_per_ml,
                                serum_bands_pmol_per_l)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_serum", "plot_holotc", "plot_stores", "plot_markers", "plot_summary",
           "plot_comparison",
           "save_figure", "save_png", "UNITS", "TIME_UNITS"]

#: Accepted concentration units (``unit=``).
UNITS = ("pmol/L", "pg/mL")
#: Accepted time units (``time_unit=``); a month is 30 days.
TIME_UNITS = ("auto", "days", "weeks", "months")

_UNIT_ALIASES = {"pmol/l": "pmol/L", "pg/ml": "pg/mL", "ng/l": "pg/mL"}
_DAYS_PER = {"days": 1.0, "weeks": 7.0, "months": 30.0}
_AUTO_MONTHS_ABOVE_DAYS = 120.0

# Okabe-Ito palette (colour-blind safe), yellow last (weak on white).
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
            "#F0E442", "#882255", "#999933")  # + two of Paul Tol's muted scheme
_LINESTYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (2, 1)),
               (0, (8, 2, 1, 2, 1, 2)), (0, (12, 3)), (0, (3, 2, 1, 2, 1, 2, 1, 2)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

# Band shading (light) and label colours (dark, same hue).
_BAND_FILL = {"deficient": ("#F2A3A3", 0.35), "indeterminate": ("#FFCF70", 0.35),
              "unlikely": ("#A8D8A0", 0.22)}
_BAND_TEXT = {"deficient": "#9B1C1C", "indeterminate": "#7A5200", "unlikely": "#2E6B2E"}
_BAND_PREFIX = {"deficient": "Deficiency confirmed", "indeterminate": "Indeterminate",
                "unlikely": "Deficiency unlikely"}
_CUTOFF_COLOUR = "#B22222"

_STORES_REFERENCES = ((2500.0, "average adult stores (Carmel 2008)"),
                      (300.0, "lowest pool consistent with health (IOM 1998)"))

_LEGEND_WRAP = 42
_YLABEL_WRAP = 30

# Display names of the summary metrics b12pk.compare writes (others are derived by rule).
_METRIC_NAMES = {
    "days_to_leave_deficient": "Days until serum B12 leaves the deficient range (days)",
    "serum_1mo_pmol_per_l": "Serum B12 at 1 month (pmol/L)",
    "serum_3mo_pmol_per_l": "Serum B12 at 3 months (pmol/L)",
    "serum_6mo_pmol_per_l": "Serum B12 at 6 months (pmol/L)",
    "serum_12mo_pmol_per_l": "Serum B12 at 12 months (pmol/L)",
    "trough_ss_pmol_per_l": "Steady-state trough serum B12, last 90 days (pmol/L)",
    "peak_ss_pmol_per_l": "Steady-state peak serum B12, last 90 days (pmol/L)",
    "pct_time_deficient": "Time with serum B12 below the deficiency cut-off (% of days)",
    "total_dose_ug": "Total B12 given (µg)",
    "total_ug": "Total B12 given (µg)",
    "n_injections": "Number of injections",
    "urine_total_ug": "B12 lost in urine (µg)",
    "stores_end_ug": "Body B12 stores at the end (µg)",
}
_UNIT_SUFFIXES = (("_pmol_per_l", "pmol/L"), ("_pg_per_ml", "pg/mL"), ("_ng_per_l", "ng/L"),
                  ("_ug_per_day", "µg/day"), ("_ug", "µg"), ("_days", "days"),
                  ("_pct", "%"))


# --------------------------------------------------------------------------------------
# argument checking

def _check_unit(unit: str) -> str:
    key = str(unit).strip().lower() if isinstance(unit, str) else None
    if key not in _UNIT_ALIASES:
        raise UnknownNameError(f"unknown unit {unit!r}; accepted: {', '.join(UNITS)} "
                               "(ng/L is accepted as a synonym of pg/mL)")
    return _UNIT_ALIASES[key]


def _check_time_unit(time_unit: str) -> str:
    key = time_unit.strip().lower() if isinstance(time_unit, str) else None
    if key not in TIME_UNITS:
        raise UnknownNameError(f"unknown time_unit {time_unit!r}; accepted: "
                               f"{', '.join(TIME_UNITS)}")
    return key


def _as_mapping(results: Any, what: str = "results") -> dict[str, "pd.DataFrame"]:
    """One DataFrame or a label -> DataFrame mapping, as an ordered dict."""
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return {"": results}
    if not isinstance(results, Mapping):
        raise InputError(f"{what} must be a pandas DataFrame from b12pk.simulate or a "
                         f"mapping label -> DataFrame, not {type(results).__name__}")
    if not results:
        raise InputError(f"{what} is empty: give at least one DataFrame to plot")
    out = {}
    for label, df in results.items():
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"{what}[{label!r}] must be a pandas DataFrame, "
                             f"not {type(df).__name__}")
        out[str(label)] = df
    return out


def _require_columns(df: "pd.DataFrame", columns: Sequence[str], label: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        where = f" for {label!r}" if label else ""
        raise InputError(f"results{where} lack column(s) {', '.join(missing)}; pass the "
                         "DataFrame returned by b12pk.simulate")


def _resolve_time_unit(time_unit: str, horizon_days: float) -> str:
    tu = _check_time_unit(time_unit)
    if tu == "auto":
        return "months" if horizon_days > _AUTO_MONTHS_ABOVE_DAYS else "days"
    return tu


def _horizon(series: Mapping[str, "pd.DataFrame"]) -> float:
    ends = [float(df["time_days"].max()) for df in series.values() if len(df)]
    return max(ends) if ends else 1.0


def _wrap(text: str, width: int) -> str:
    return textwrap.fill(str(text), width=width, break_long_words=False,
                         break_on_hyphens=False) if text else text


# --------------------------------------------------------------------------------------
# shared drawing helpers

def _new_axes(figsize: tuple[float, float]) -> "Axes":
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _style(i: int) -> dict[str, Any]:
    # colour, line style and marker cycle with different periods, so that no two of the
    # first len(_COLOURS) * len(_MARKERS) curves share all three
    cycle = i // len(_COLOURS)
    return {"color": _COLOURS[i % len(_COLOURS)],
            "linestyle": _LINESTYLES[(i + cycle) % len(_LINESTYLES)],
            "marker": _MARKERS[(i + 3 * cycle) % len(_MARKERS)]}


def curve_style(i: int) -> dict[str, Any]:
    """The colour (hex) and matplotlib line style of the ``i``-th curve of a figure, as
    every plot of this module draws it (a page drawing the same curves can match them)."""
    st = _style(i)
    return {"color": st["color"], "linestyle": st["linestyle"]}


def band_fill(name: str) -> tuple[str, float]:
    """The fill colour (hex) and opacity of a laboratory band (``deficient``,
    ``indeterminate``, ``unlikely``) as every figure of this module shades it."""
    return _BAND_FILL.get(name, ("#DDDDDD", 0.3))


def _marker_indices(t: np.ndarray, i: int, n_marks: int = 7) -> list[int]:
    """Indices of points evenly spread in *time* (not in index), staggered per curve."""
    if len(t) < 3:
        return list(range(len(t)))
    t0, t1 = float(t[0]), float(t[-1])
    step = (t1 - t0) / n_marks
    targets = t0 + step * (np.arange(n_marks) + 0.5 + 0.11 * (i % 8) - 0.4)
    idx = np.clip(np.searchsorted(t, targets), 0, len(t) - 1)
    return sorted(set(int(k) for k in idx))


def _plot_curves(ax: "Axes", series: Mapping[str, "pd.DataFrame"], column: str,
                 scale: float, divisor: float, styles: Mapping[str, int] | None) -> list:
    lines = []
    any_band = False
    for i, (label, df) in enumerate(series.items()):
        k = styles[label] if styles is not None else i
        st = _style(k)
        t = df["time_days"].to_numpy(dtype=float) / divisor
        y = df[column].to_numpy(dtype=float) * scale
        (line,) = ax.plot(t, y, color=st["color"], linestyle=st["linestyle"],
                          linewidth=1.4, marker=st["marker"] if label else None,
                          markersize=5, markevery=_marker_indices(t, k),
                          markeredgecolor="white",
                          markeredgewidth=0.6, label=_wrap(label, _LEGEND_WRAP) or column,
                          zorder=3, solid_joinstyle="round")
        line.set_gid("curve")
        lines.append(line)
        if f"{column}_p5" in df.columns and f"{column}_p95" in df.columns:
            band = ax.fill_between(
                t, df[f"{column}_p5"].to_numpy(dtype=float) * scale,
                df[f"{column}_p95"].to_numpy(dtype=float) * scale, color=st["color"],
                alpha=0.18, linewidth=0, zorder=2,
                label=None if any_band else INTERVAL_LABEL)
            band.set_gid("interval")
            any_band = True
        if f"{column}_peak" in df.columns:
            # a thin line, not a fill: cycle ranges of several patients would stack up
            peak = df[f"{column}_peak"].to_numpy(dtype=float) * scale
            (top,) = ax.plot(t, peak, color=st["color"], linewidth=0.8, alpha=0.75, zorder=2,
                             linestyle=st["linestyle"])
            top.set_gid("cycle-peak")
    return lines


#: Legend entry of the dosing-cycle peaks (plot_regimen_grid(envelope=True)).
CYCLE_RANGE_LABEL = "thin line: each dosing cycle's peak; thick line: its trough"

#: Horizon (days) beyond which plot_regimen_grid draws dosing cycles as envelopes by default.
ENVELOPE_AFTER_DAYS = 400.0


#: Legend entry of the shaded 90 % intervals (simulate(..., uncertainty=N)).
INTERVAL_LABEL = "shaded: 90 % interval from parameter uncertainty"


def _interval_entry(axes: Sequence["Axes"]) -> list[tuple[Any, str]]:
    """A legend entry for the shaded intervals, when any axes has one."""
    import matplotlib.patches as mpatches

    if any(c.get_gid() == "interval" for ax in axes for c in ax.collections):
        return [(mpatches.Patch(color="#777777", alpha=0.3), INTERVAL_LABEL)]
    return []


def _format_time_axis(ax: "Axes", unit: str, horizon_days: float) -> None:
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    span = horizon_days / _DAYS_PER[unit]
    ax.set_xlim(0, span)
    ax.set_xlabel(f"Time since start of treatment ({unit})")
    if unit == "months" and span <= 15:
        ax.xaxis.set_major_locator(MultipleLocator(1))
    elif unit == "months" and span <= 30:
        ax.xaxis.set_major_locator(MultipleLocator(2))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))


def _plain_number(v: float, _pos: Any = None) -> str:
    if v <= 0 or not math.isfinite(v):
        return ""
    if v >= 1:
        return f"{v:.0f}"
    return f"{v:g}"


def _format_log_axis(ax: "Axes", low: float, high: float) -> None:
    """Plain-number ticks on a log axis: 1-3-10 steps, 1-2-5 for narrow ranges."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(high / low)
    subs = (1.0, 2.0, 5.0) if decades < 2.0 else (1.0, 3.0)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(low)) - 1,
                                          math.ceil(math.log10(high)) + 1)
             for m in subs]
    ticks = [v for v in ticks if low <= v <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.yaxis.set_minor_locator(LogLocator(subs=np.arange(2, 10)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _band_label(prefix: str, low: float, high: float, unit: str) -> str:
    if low <= 0:
        rng = f"< {high:.0f} {unit}"
    elif math.isinf(high):
        rng = f"> {low:.0f} {unit}"
    else:
        rng = f"{low:.0f}–{high:.0f} {unit}"
    return f"{prefix} ({rng})"


def _serum_bands(unit: str) -> list[tuple[str, float, float, str]]:
    labels = {b["name"]: b.get("label", "") for b in lab_bands()["total_b12"]}
    out = []
    for name, low, high in serum_bands_pmol_per_l():
        if unit == "pg/mL":
            low, high = pmol_per_l_to_pg_per_ml(low), pmol_per_l_to_pg_per_ml(high)
        prefix = _BAND_PREFIX.get(name) or labels.get(name, name).split(" (")[0]
        out.append((name, low, high, _band_label(prefix, low, high, unit)))
    return out


def _holotc_bands(unit: str) -> list[tuple[str, float, float, str]]:
    out = []
    for band in lab_bands()["holotc"]:
        low = float(band["low_pmol_per_l"])
        high = band.get("high_pmol_per_l")
        high = math.inf if high is None else float(high)
        if unit == "pg/mL":
            low, high = pmol_per_l_to_pg_per_ml(low), pmol_per_l_to_pg_per_ml(high)
        name = band["name"]
        prefix = _BAND_PREFIX.get(name, name.capitalize())
        out.append((name, low, high, _band_label(prefix, low, high, unit)))
    return out


def _draw_bands(ax: "Axes", bands: Sequence[tuple[str, float, float, str]], log: bool,
                label_x: float = 0.99, labels: bool = True) -> None:
    """Shade bands, write their labels inside the axes, dash the deficiency cut-off.

    Call after the y limits are final (labels are placed in the visible part).
    """
    from matplotlib.transforms import blended_transform_factory

    y0, y1 = ax.get_ylim()
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for name, low, high, label in bands:
        lo, hi = max(low, y0), min(high, y1)
        if hi <= lo:
            continue
        colour, alpha = band_fill(name)
        patch = ax.axhspan(lo, hi, facecolor=colour, alpha=alpha, edgecolor="none",
                           zorder=0)
        patch.set_gid(f"band-{name}")
        if not labels:
            continue
        if math.isinf(high):            # open top band: label near its top
            y, va = (hi / 1.08 if log else hi - 0.02 * (y1 - y0)), "top"
        else:
            y = math.sqrt(lo * hi) if log and lo > 0 else (lo + hi) / 2
            va = "center"
        txt = ax.text(label_x, y, label, transform=trans, ha="right" if label_x > 0.5
                      else "left", va=va, fontsize=8.5, fontstyle="italic",
                      color=_BAND_TEXT.get(name, "#333333"), zorder=2,
                      bbox={"boxstyle": "round,pad=0.2", "facecolor": "white",
                            "edgecolor": "none", "alpha": 0.6})
        txt.set_gid(f"band-label-{name}")
    cut = next((hi for name, _lo, hi, _l in bands if name == "deficient"), None)
    if cut is not None and math.isfinite(cut):
        line = ax.axhline(cut, color=_CUTOFF_COLOUR, linestyle=(0, (4, 3)), linewidth=1.2,
                          zorder=2.5, label=None)
        line.set_gid("deficiency-cutoff")


def _below_axes(ax: "Axes", points: float) -> Any:
    """Transform: axes coordinates shifted ``points`` down (for legends under the axes)."""
    from matplotlib.transforms import ScaledTranslation

    return ax.transAxes + ScaledTranslation(0, -points / 72.0, ax.figure.dpi_scale_trans)


def _legend_below(ax: "Axes", ncol: int | None = None, extra: Sequence = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = list(handles) + [h for h, _ in extra], list(labels) + [l for _, l in extra]
    if not handles:
        return
    if ncol is None:
        ncol = 1 if len(handles) == 1 else 2
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=_below_axes(ax, 40), ncol=ncol, frameon=False, fontsize=8.5, handlelength=3.2, borderaxespad=0.0,
              columnspacing=1.5)


def _concentration_plot(results: Any, ax: "Axes | None", *, column_pmol: str,
                        column_pg: str | None, band_fn: Any, bands: bool, unit: str,
                        log: bool, time_unit: str, title: str | None, show_legend: bool,
                        ylabel: str, default_title: str, styles: Mapping[str, int] | None,
                        ylim: tuple[float, float] | None, horizon_days: float | None,
                        band_labels: bool) -> "Axes":
    unit = _check_unit(unit)
    series = _as_mapping(results)
    _check_time_unit(time_unit)
    for label, df in series.items():
        _require_columns(df, ["time_days", column_pmol], label)
    column, scale = column_pmol, 1.0
    if unit == "pg/mL":
        if column_pg is not None and all(column_pg in df.columns for df in series.values()):
            column = column_pg
        else:
            scale = pmol_per_l_to_pg_per_ml(1.0)
    horizon = horizon_days if horizon_days is not None else _horizon(series)
    tu = _resolve_time_unit(time_unit, horizon)
    if ax is None:
        ax = _new_axes((9.0, 5.8))
    _plot_curves(ax, series, column, scale, _DAYS_PER[tu], styles)
    band_list = band_fn(unit)
    cut = next(hi for name, _lo, hi, _l in band_list if name == "deficient")

    if ylim is None:
        values = np.concatenate([df[column].to_numpy(dtype=float) * scale
                                 for df in series.values()])
        values = values[np.isfinite(values)]
        if log:
            pos = values[values > 0]
            lo = min(pos.min() if pos.size else cut, cut) / 1.8
            hi = max(pos.max() if pos.size else cut, cut * 3) * 1.8
        else:
            lo, hi = 0.0, max(values.max() if values.size else cut, cut * 2) * 1.08
        ylim = (lo, hi)
    if log:
        ax.set_yscale("log")
        _format_log_axis(ax, *ylim)
    ax.set_ylim(*ylim)
    if bands:
        _draw_bands(ax, band_list, log, labels=band_labels)
    _format_time_axis(ax, tu, horizon)
    ax.set_ylabel(f"{ylabel} ({unit})")
    if title is None:
        title = default_title
    if title:
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.grid(True, which="major", axis="both", color="#CCCCCC", linewidth=0.6, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if show_legend and (len(series) > 1 or next(iter(series)) != ""):
        _legend_below(ax, extra=_cutoff_legend_entry(ax, bands, cut, unit))
    return ax


def _cutoff_legend_entry(ax: "Axes", bands: bool, cut: float, unit: str) -> list:
    if not bands:
        return []
    line = next((ln for ln in ax.lines if ln.get_gid() == "deficiency-cutoff"), None)
    return [(line, f"deficiency cut-off ({cut:.0f} {unit})")] if line is not None else []


# --------------------------------------------------------------------------------------
# public API

def plot_serum(results: "pd.DataFrame | Mapping[str, pd.DataFrame]",
               ax: "Axes | None" = None, *, bands: bool = True, unit: str = "pmol/L",
               log: bool = True, time_unit: str = "auto", title: str | None = None,
               show_legend: bool = True) -> "Axes":
    """Plot total serum B12 against time, over the laboratory bands.

    Parameters
    ----------
    results : DataFrame or Mapping[str, DataFrame]
        Output of :func:`b12pk.simulate` (columns ``time_days`` in days and
        ``serum_pmol_per_l`` in pmol/L), or several of them keyed by a display label
        (one curve each, told apart by colour, line style and marker).
    ax : matplotlib Axes, optional
        Axes to draw on; a new 9 x 5.8 inch figure is made when None.
    bands : bool
        Shade the total-B12 bands (deficient < 133 pmol/L = 180 ng/L, indeterminate
        133-258 pmol/L, unlikely > 258 pmol/L), write their labels at the right edge and
        draw a dashed line at the deficiency cut-off.
    unit : {"pmol/L", "pg/mL"}
        Concentration unit of the y axis (pg/mL = ng/L); data and band edges are converted.
    log : bool
        Logarithmic y axis (default: serum after injections spans orders of magnitude);
        ticks are plain numbers (100, 300, 1000 ...).
    time_unit : {"auto", "days", "weeks", "months"}
        Unit of the x axis; a month is 30 days; "auto" uses months when the horizon is
        longer than 120 days, otherwise days.
    title : str, optional
        Axes title; None gives a default, "" none.
    show_legend : bool
        Draw the legend (below the axes) when there are labelled curves.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    UnknownNameError
        Unknown ``unit`` or ``time_unit``.
    InputError
        ``results`` is not a DataFrame/mapping of DataFrames with the needed columns.
    """
    return _concentration_plot(results, ax, column_pmol="serum_pmol_per_l",
                               column_pg="serum_pg_per_ml", band_fn=_serum_bands,
                               bands=bands, unit=unit, log=log, time_unit=time_unit,
                               title=title, show_legend=show_legend, ylabel="Serum B12",
                               default_title="Serum vitamin B12", styles=None, ylim=None,
                               horizon_days=None, band_labels=True)


def plot_holotc(results: "pd.DataFrame | Mapping[str, pd.DataFrame]",
                ax: "Axes | None" = None, *, bands: bool = True, unit: str = "pmol/L",
                log: bool = True, time_unit: str = "auto", title: str | None = None,
                show_legend: bool = True) -> "Axes":
    """Plot holotranscobalamin ("active B12") against time, over the holoTC bands.

    Parameters
    ----------
    results : DataFrame or Mapping[str, DataFrame]
        Output of :func:`b12pk.simulate` (``time_days`` in days, ``holotc_pmol_per_l`` in
        pmol/L), or several keyed by display label.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None.
    bands : bool
        Shade the holoTC bands (deficient < 25 pmol/L, indeterminate 25-70 pmol/L,
        unlikely > 70 pmol/L), label them and dash the deficiency cut-off (25 pmol/L).
    unit : {"pmol/L", "pg/mL"}
        Concentration unit (holoTC is normally reported in pmol/L; pg/mL converts its
        cobalamin content).
    log : bool
        Logarithmic y axis with plain-number ticks.
    time_unit : {"auto", "days", "weeks", "months"}
        Unit of the x axis (month = 30 days; "auto": months if horizon > 120 days).
    title : str, optional
        Axes title; None gives a default, "" none.
    show_legend : bool
        Draw the legend (below the axes) when there are labelled curves.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    UnknownNameError
        Unknown ``unit`` or ``time_unit``.
    """
    return _concentration_plot(results, ax, column_pmol="holotc_pmol_per_l", column_pg=None,
                               band_fn=_holotc_bands, bands=bands, unit=unit, log=log,
                               time_unit=time_unit, title=title, show_legend=show_legend,
                               ylabel="Holotranscobalamin",
                               default_title="Holotranscobalamin (active B12)", styles=None,
                               ylim=None, horizon_days=None, band_labels=True)


def plot_stores(results: "pd.DataFrame | Mapping[str, pd.DataFrame]",
                ax: "Axes | None" = None, *, time_unit: str = "auto",
                title: str | None = None, show_legend: bool = True) -> "Axes":
    """Plot body B12 stores (µg) against time with two reference levels.

    Parameters
    ----------
    results : DataFrame or Mapping[str, DataFrame]
        Output of :func:`b12pk.simulate` (``time_days`` in days, ``stores_ug`` in µg), or
        several keyed by display label.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None.
    time_unit : {"auto", "days", "weeks", "months"}
        Unit of the x axis (month = 30 days; "auto": months if horizon > 120 days).
    title : str, optional
        Axes title; None gives a default, "" none.
    show_legend : bool
        Draw the legend (below the axes) when there are labelled curves.

    Returns
    -------
    matplotlib Axes
        Linear y axis from 0 µg; grey reference lines at 2500 µg ("average adult stores
        (Carmel 2008)") and 300 µg ("lowest pool consistent with health (IOM 1998)"), and at
        the model's storage capacity (``store_capacity_ug``) when the curves reach it,
        labelled on the plot.

    Raises
    ------
    UnknownNameError
        Unknown ``time_unit``.
    """
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import blended_transform_factory

    series = _as_mapping(results)
    _check_time_unit(time_unit)
    for label, df in series.items():
        _require_columns(df, ["time_days", "stores_ug"], label)
    horizon = _horizon(series)
    tu = _resolve_time_unit(time_unit, horizon)
    if ax is None:
        ax = _new_axes((9.0, 5.8))
    _plot_curves(ax, series, "stores_ug", 1.0, _DAYS_PER[tu], None)
    top = max(float(np.nanmax(df["stores_ug"].to_numpy(dtype=float))) if len(df) else 0.0
              for df in series.values())
    top = max(top, _STORES_REFERENCES[0][0]) * 1.08
    ax.set_ylim(0, top)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    capacity = default_parameters()["store_capacity_ug"]
    references = _STORES_REFERENCES + (
        ((capacity, "storage capacity, above it the model exports B12 (assumed)"),)
        if capacity < top else ())
    for level, text in references:
        line = ax.axhline(level, color="#555555", linestyle=(0, (4, 3)), linewidth=1.1,
                          zorder=2)
        line.set_gid("reference")
        t = ax.text(0.01, level, f"{level:,.0f} µg: {text}", transform=trans,
                    ha="left", va="bottom", fontsize=7.5, color="#333333", zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                          "edgecolor": "none", "alpha": 0.75})
        t.set_gid("reference-label")
    _format_time_axis(ax, tu, horizon)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_ylabel("Body B12 stores (µg)")
    if title is None:
        title = "Body vitamin B12 stores"
    if title:
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.grid(True, color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if show_legend and (len(series) > 1 or next(iter(series)) != ""):
        _legend_below(ax)
    return ax


def _metric_label(metric: str) -> str:
    if metric in _METRIC_NAMES:
        return _METRIC_NAMES[metric]
    name, unit = metric, ""
    if name.startswith("pct_"):
        name, unit = name[4:], "%"
    for suffix, u in _UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name, unit = name[: -len(suffix)], u
            break
    words = []
    for w in name.split("_"):
        m = re.fullmatch(r"(\d+)mo", w)
        if m:
            words.append(f"at {m.group(1)} month{'s' if m.group(1) != '1' else ''}")
        elif w == "ss":
            words.append("(steady state)")
        elif w == "b12":
            words.append("B12")
        elif w == "holotc":
            words.append("holoTC")
        else:
            words.append(w)
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def _metric_cutoff(metric: str) -> tuple[float, str] | None:
    """(cut-off, unit) for serum/holoTC concentration metrics, else None."""
    m = metric.lower()
    if m.endswith("_pmol_per_l"):
        unit = "pmol/L"
    elif m.endswith("_pg_per_ml") or m.endswith("_ng_per_l"):
        unit = "pg/mL"
    else:
        return None
    if "holotc" in m:
        cut = next(hi for name, _lo, hi, _l in _holotc_bands(unit) if name == "deficient")
    elif "serum" in m or "trough" in m or "peak" in m or "b12" in m:
        cut = next(hi for name, _lo, hi, _l in _serum_bands(unit) if name == "deficient")
    else:
        return None
    return cut, unit


def _value_text(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2g}" if a else "0"


def plot_summary(summary: "pd.DataFrame", metric: str, ax: "Axes | None" = None, *,
                 title: str | None = None) -> "Axes":
    """Horizontal grouped bar chart of one summary metric per regimen and patient.

    Parameters
    ----------
    summary : DataFrame
        Columns ``regimen`` and ``patient`` (labels) and numeric metric columns, e.g. the
        ``summary`` of :func:`b12pk.compare` (``serum_12mo_pmol_per_l`` in pmol/L,
        ``pct_time_deficient`` in %, ``total_ug``/``stores_end_ug`` in µg ...).
    metric : str
        The numeric column to show; its axis label is derived from the name, with the
        unit made readable (``serum_12mo_pmol_per_l`` -> "Serum B12 at 12 months
        (pmol/L)").
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure sized to the number of bars is made when None.
    title : str, optional
        Axes title; None gives a default, "" none.

    Returns
    -------
    matplotlib Axes
        One group of bars per regimen (y axis, first regimen at the top, labels wrapped),
        one colour per patient, the value at each bar end, "n/a" where the value is NaN,
        and for serum/holoTC concentrations the deficiency cut-off as a dashed vertical line.

    Raises
    ------
    UnknownNameError
        ``metric`` is not a numeric column of ``summary`` (the message lists those).
    InputError
        ``summary`` lacks the ``regimen`` or ``patient`` column.
    """
    import pandas as pd

    if not isinstance(summary, pd.DataFrame):
        raise InputError(f"summary must be a pandas DataFrame, not {type(summary).__name__}")
    missing = [c for c in ("regimen", "patient") if c not in summary.columns]
    if missing:
        raise InputError(f"summary lacks column(s) {', '.join(missing)}; it needs "
                         "'regimen', 'patient' and numeric metric columns")
    numeric = [c for c in summary.columns if c not in ("regimen", "patient")
               and pd.api.types.is_numeric_dtype(summary[c])
               and not pd.api.types.is_bool_dtype(summary[c])]
    if metric not in numeric:
        raise UnknownNameError(f"unknown metric {metric!r}; accepted (numeric columns of "
                               f"summary): {', '.join(numeric) or '(none)'}")
    regimens = list(dict.fromkeys(summary["regimen"].astype(str)))
    patients = list(dict.fromkeys(summary["patient"].astype(str)))
    values: dict[tuple[str, str], float] = {}
    for reg, pat, v in zip(summary["regimen"].astype(str), summary["patient"].astype(str),
                           summary[metric].astype(float)):
        values.setdefault((reg, pat), float(v))
    n_r, n_p = len(regimens), len(patients)
    if ax is None:
        height = 1.6 + n_r * max(0.55, 0.3 * n_p + 0.25)
        ax = _new_axes((8.5, min(max(height, 3.0), 24.0)))
    label = _metric_label(metric)
    finite = [v for v in values.values() if math.isfinite(v)]
    vmax = max([abs(v) for v in finite] + [0.0])
    cutoff = _metric_cutoff(metric)
    if cutoff is not None:
        vmax = max(vmax, cutoff[0])
    vmax = vmax or 1.0
    group = 0.8
    h = group / n_p
    for j, pat in enumerate(patients):
        colour = _COLOURS[j % len(_COLOURS)]
        ys, ws, missing_y = [], [], []
        for i, reg in enumerate(regimens):
            y = i - group / 2 + h * (j + 0.5)
            v = values.get((reg, pat), math.nan)
            if math.isfinite(v):
                ys.append(y)
                ws.append(v)
            elif (reg, pat) in values:
                missing_y.append(y)
        bars = ax.barh(ys, ws, height=h * 0.92, color=colour, label=_wrap(pat, 40),
                       edgecolor="white", linewidth=0.5, zorder=2,
                       hatch=None if j == 0 else ("//", "..", "xx", "\\\\")[(j - 1) % 4])
        for bar, v in zip(bars, ws):
            x = bar.get_width()
            ax.text(x + (0.01 * vmax if v >= 0 else -0.01 * vmax),
                    bar.get_y() + bar.get_height() / 2, _value_text(v),
                    ha="left" if v >= 0 else "right", va="center", fontsize=8, zorder=3,
                    color="#222222")
        for y in missing_y:
            t = ax.text(0.01 * vmax, y, "n/a", ha="left", va="center", fontsize=8,
                        fontstyle="italic", color="#666666", zorder=3)
            t.set_gid("n/a")
    ax.set_yticks(range(n_r))
    ax.set_yticklabels([_wrap(r, _YLABEL_WRAP) for r in regimens], fontsize=8.5)
    ax.set_ylim(n_r - 0.5, -0.5)          # first regimen at the top
    lo = min([v for v in finite] + [0.0])
    ax.set_xlim(lo * 1.18 if lo < 0 else 0.0, vmax * 1.18)
    ax.set_xlabel(label)
    if cutoff is not None:
        cut, unit = cutoff
        line = ax.axvline(cut, color=_CUTOFF_COLOUR, linestyle=(0, (4, 3)), linewidth=1.2,
                          zorder=2.5, label=f"deficiency cut-off ({cut:.0f} {unit})")
        line.set_gid("deficiency-cutoff")
    if title is None:
        title = label.split(" (")[0] + " by regimen" + (" and patient" if n_p > 1 else "")
    if title:
        ax.set_title(_wrap(title, 70), loc="left", fontsize=11, fontweight="bold")
    if vmax >= 1000:
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.grid(True, axis="x", color="#DDDDDD", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("deficiency"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper center",
              bbox_to_anchor=(0.5, 0.0), bbox_transform=_below_axes(ax, 38),
              ncol=min(len(labels), 3), frameon=False, fontsize=8.5)
    return ax


_PANEL_H = 4.4
"""Height of a plot_comparison panel (inches): with the legend, the headline figure of two
patients fits a 1280 x 900 px first screen with the start of its table."""


def plot_comparison(results_by_patient: "Mapping[str, Mapping[str, pd.DataFrame]]", *,
                    days: float | None = None, unit: str = "pmol/L",
                    time_unit: str = "auto", log: bool = True) -> "Figure":
    """Serum B12 of several regimens, one panel per patient, side by side.

    Parameters
    ----------
    results_by_patient : Mapping[str, Mapping[str, DataFrame]]
        patient label -> (regimen label -> :func:`b12pk.simulate` output). A regimen keeps
        the same colour, line style and marker in every panel.
    days : float, optional
        Show only the first ``days`` days (default: everything).
    unit : {"pmol/L", "pg/mL"}
        Serum concentration unit.
    time_unit : {"auto", "days", "weeks", "months"}
        Unit of the x axes (month = 30 days).
    log : bool
        Logarithmic, shared y axis.

    Returns
    -------
    matplotlib Figure
        6 inches wide per panel, 4.4 high plus the legend; one legend below the panels
        and :data:`b12pk.DISCLAIMER` as a small grey footnote.

    Raises
    ------
    UnknownNameError
        Unknown ``unit`` or ``time_unit``.
    InputError
        Empty or malformed ``results_by_patient`` or a non-positive ``days``.
    """
    import matplotlib.pyplot as plt

    from ..about import DISCLAIMER

    unit = _check_unit(unit)
    _check_time_unit(time_unit)
    if not isinstance(results_by_patient, Mapping) or not results_by_patient:
        raise InputError("results_by_patient must be a non-empty mapping patient label -> "
                         "(regimen label -> DataFrame)")
    if days is not None and not (isinstance(days, (int, float)) and math.isfinite(days)
                                 and days > 0):
        raise InputError(f"days must be a positive number of days, not {days!r}")
    panels: dict[str, dict[str, Any]] = {}
    for patient, res in results_by_patient.items():
        series = _as_mapping(res, what=f"results_by_patient[{patient!r}]")
        if next(iter(series)) == "" and len(series) == 1:
            series = {"": series[""]}
        for label, df in series.items():
            _require_columns(df, ["time_days", "serum_pmol_per_l"], label)
        if days is not None:
            series = {k: df[df["time_days"] <= days] for k, df in series.items()}
        panels[str(patient)] = series
    order = list(dict.fromkeys(k for s in panels.values() for k in s))
    styles = {k: i for i, k in enumerate(order)}
    horizon = float(days) if days is not None else max(_horizon(s) for s in panels.values())

    # common y range for the shared axis
    column = "serum_pmol_per_l"
    scale = 1.0 if unit == "pmol/L" else pmol_per_l_to_pg_per_ml(1.0)
    cut = next(hi for name, _lo, hi, _l in _serum_bands(unit) if name == "deficient")
    vals = np.concatenate([df[column].to_numpy(dtype=float) * scale
                           for s in panels.values() for df in s.values()] + [np.array([cut])])
    vals = vals[np.isfinite(vals) & (vals > 0)] if log else vals[np.isfinite(vals)]
    ylim = ((min(vals.min(), cut) / 1.8, max(vals.max(), cut * 3) * 1.8) if log
            else (0.0, max(vals.max(), cut * 2) * 1.08))

    n = len(panels)
    n_entries = len(order) + 1
    longest = max(len(line) for lab in order for line in _wrap(lab, _LEGEND_WRAP).split("\n"))
    col_in = 0.8 + 0.068 * max(longest, 30)      # handle + text at 8.5 pt, inches
    ncol = max(1, min(n_entries, int(6.0 * n / col_in)))
    legend_rows = math.ceil(n_entries / ncol)
    legend_h = 0.35 + 0.34 * legend_rows
    fig = plt.figure(figsize=(6.0 * n, _PANEL_H + legend_h), layout="constrained")
    gs = fig.add_gridspec(2, n, height_ratios=[_PANEL_H, legend_h])
    axes = []
    for i, (patient, series) in enumerate(panels.items()):
        ax = fig.add_subplot(gs[0, i], sharey=axes[0] if axes else None)
        _concentration_plot(series, ax, column_pmol=column, column_pg="serum_pg_per_ml",
                            band_fn=_serum_bands, bands=True, unit=unit, log=log,
                            time_unit=time_unit, title=_wrap(patient, 50), show_legend=False,
                            ylabel="Serum B12", default_title="", styles=styles, ylim=ylim,
                            horizon_days=horizon, band_labels=True)
        if i > 0:
            ax.set_ylabel("")
            ax.tick_params(axis="y", labelleft=False)
        axes.append(ax)
    # one legend for all panels, every regimen once, in a footer axes
    handles: dict[str, Any] = {}
    for ax in axes:
        for line in ax.lines:
            if line.get_gid() == "curve":
                handles.setdefault(line.get_label(), line)
    entries = [(h, lab) for lab, h in handles.items()]
    cutline = next(ln for ln in axes[0].lines if ln.get_gid() == "deficiency-cutoff")
    entries.append((cutline, f"deficiency cut-off ({cut:.0f} {unit})"))
    entries += _interval_entry(axes)
    footer = fig.add_subplot(gs[1, :])
    footer.axis("off")
    footer.legend([h for h, _ in entries], [lab for _, lab in entries], loc="upper center",
                  ncol=ncol, frameon=False, fontsize=8.5, handlelength=3.2,
                  columnspacing=1.8, borderaxespad=0.0)
    footer.text(0.5, 0.0, DISCLAIMER, transform=footer.transAxes, ha="center", va="bottom",
                fontsize=7.5, color="#777777", wrap=True)
    return fig


def plot_regimen_grid(results_by_patient: "Mapping[str, Mapping[str, pd.DataFrame]]", *,
                      unit: str = "pmol/L", ncols: int = 3, daily: bool = True,
                      time_unit: str = "auto", envelope: bool | None = None) -> "Figure":
    """Serum B12 in small multiples: one panel per regimen, one curve per patient.

    Easier to read than :func:`plot_comparison` when there are many regimens: every panel
    has the same (log) y axis, so regimens are compared panel to panel.

    Parameters
    ----------
    results_by_patient : Mapping[str, Mapping[str, DataFrame]]
        patient label -> (regimen label -> :func:`b12pk.simulate` output).
    unit : {"pmol/L", "pg/mL"}
        Serum concentration unit.
    ncols : int
        Panels per row.
    daily : bool
        Plot only whole-day rows (drops the hourly points after injections, so the
        short peaks of the first hours do not dominate; they are in the summary table).
    time_unit : {"auto", "days", "weeks", "months"}
        Unit of the x axes (month = 30 days).
    envelope : bool, optional
        Draw each dosing cycle by its peak (thin line) and its trough (thick line)
        (:func:`b12pk.analysis.compare.cycle_envelope`) instead of every daily value; None (default): when the horizon exceeds :data:`ENVELOPE_AFTER_DAYS`,
        where daily values of monthly injections are a wall of spikes.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    from ..about import DISCLAIMER
    from ..analysis.compare import cycle_envelope

    unit = _check_unit(unit)
    if envelope is not None and not isinstance(envelope, bool):
        raise InputError(f"envelope must be True, False or None, not {envelope!r}")
    _check_time_unit(time_unit)
    if not isinstance(results_by_patient, Mapping) or not results_by_patient:
        raise InputError("results_by_patient must be a non-empty mapping patient label -> "
                         "(regimen label -> DataFrame)")
    if not isinstance(ncols, int) or ncols < 1:
        raise InputError(f"ncols must be a positive whole number, not {ncols!r}")
    patients = list(results_by_patient)
    regimens = list(dict.fromkeys(r for res in results_by_patient.values() for r in res))

    def keep(df: "pd.DataFrame") -> "pd.DataFrame":
        if not daily:
            return df
        t = df["time_days"].to_numpy(dtype=float)
        return df[np.isclose(t, np.round(t), atol=1e-9)]

    grid = {r: {p: keep(results_by_patient[p][r]) for p in patients
                if r in results_by_patient[p]} for r in regimens}
    if envelope is None:
        envelope = max(_horizon(s) for s in grid.values()) > ENVELOPE_AFTER_DAYS
    if envelope:
        grid = {r: {p: cycle_envelope(df) for p, df in s.items()} for r, s in grid.items()}
    scale = 1.0 if unit == "pmol/L" else pmol_per_l_to_pg_per_ml(1.0)
    cut = next(hi for name, _lo, hi, _l in _serum_bands(unit) if name == "deficient")
    vals = np.concatenate([df[c].to_numpy(dtype=float) * scale
                           for s in grid.values() for df in s.values()
                           for c in ("serum_pmol_per_l", "serum_pmol_per_l_peak") if c in df]
                          + [np.array([cut])])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    ylim = (min(vals.min(), cut) / 1.6, max(vals.max(), cut * 3) * 1.6)
    horizon = max(_horizon(s) for s in grid.values())
    styles = {p: i for i, p in enumerate(patients)}
    n = len(regimens)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows + 1.1),
                             sharey=True, squeeze=False, layout="constrained")
    for k, (regimen, series) in enumerate(grid.items()):
        ax = axes[k // ncols][k % ncols]
        _concentration_plot(series, ax, column_pmol="serum_pmol_per_l",
                            column_pg="serum_pg_per_ml", band_fn=_serum_bands, bands=True,
                            unit=unit, log=True, time_unit=time_unit,
                            title="", show_legend=False, ylabel="Serum B12",
                            default_title="", styles=styles, ylim=ylim,
                            horizon_days=horizon, band_labels=False)
        ax.set_title(_wrap(regimen, 44), loc="left", fontsize=9.5, fontweight="bold")
        if k % ncols:
            ax.set_ylabel("")
        if k // ncols != nrows - 1 and k + ncols < n:
            ax.set_xlabel("")
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles = {}
    for ax in axes.ravel():
        for line in ax.lines:
            if line.get_gid() == "curve":
                handles.setdefault(line.get_label(), line)
    cutline = next(ln for ln in axes[0][0].lines if ln.get_gid() == "deficiency-cutoff")
    import matplotlib.patches as mpatches

    band_handles = [mpatches.Patch(color=c, alpha=0.5, label=lab) for c, lab in (
        ("#F4B6B6", f"deficient (< {cut:.0f} {unit})"),
        ("#FCE3A8", "indeterminate"), ("#CFE8CF", "deficiency unlikely"))]
    interval = _interval_entry(list(axes.ravel()))
    if envelope:
        from matplotlib.lines import Line2D

        interval.append((Line2D([], [], color="#777777", linewidth=0.8), CYCLE_RANGE_LABEL))
    fig.legend(list(handles.values()) + [cutline] + band_handles + [h for h, _ in interval],
               list(handles) + [f"deficiency cut-off ({cut:.0f} {unit})"]
               + [h.get_label() for h in band_handles] + [lab for _, lab in interval],
               loc="outside lower center", ncol=min(4, len(handles) + 4), frameon=False,
               fontsize=9)
    what = "each dosing cycle's range" if envelope else "daily values"
    fig.suptitle(f"Serum B12 by regimen (bands from the source articles; {what})\n"
                 + DISCLAIMER, fontsize=11, fontweight="bold")
    return fig


def save_figure(fig: "Figure | Axes", path_stem: str | Path) -> list[Path]:
    """Save a figure as PNG (150 dpi) and SVG side by side, with a tight bounding box.

    Inside :func:`parallel_saves` the files are written by a child process while the
    caller goes on, and exist once that block has ended.

    Parameters
    ----------
    fig : matplotlib Figure (or an Axes, whose figure is saved)
    path_stem : str or Path
        Path without extension (a trailing ``.png``/``.svg`` is dropped); missing parent
        folders are created.

    Returns
    -------
    list of Path
        ``[stem.png, stem.svg]``.
    """
    if not hasattr(fig, "savefig") and hasattr(fig, "figure"):
        fig = fig.figure
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    if _SAVES and _SAVES[-1].submit(fig, stem):
        return [Path(f"{stem}.png"), Path(f"{stem}.svg")]
    return _save_now(fig, stem)


def save_png(fig: "Figure", path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as one PNG at ``path`` as drawn (its own layout, no tight box).

    Inside :func:`parallel_saves` a forked child writes it while the caller goes on (the
    file exists once that block has ended), as :func:`save_figure` does."""
    path = Path(path)

    def save(figure: Any, _stem: Path) -> list[Path]:
        figure.savefig(path, dpi=dpi)
        return [path]

    if _SAVES and _SAVES[-1].submit(fig, path, save):
        return path
    return save(fig, path)[0]


def _save_now(fig: "Figure", stem: Path) -> list[Path]:
    import matplotlib

    png, svg = Path(f"{stem}.png"), Path(f"{stem}.svg")
    # lay the figure out and measure its tight box once, without rasterising it; both
    # formats then reuse them (bbox_inches="tight" and a layout engine would each cost a
    # full draw per format, and a draw to measure would be a third)
    renderer = fig.canvas.get_renderer()
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
    box = fig.get_tightbbox(renderer).padded(0.1)
    fig.set_layout_engine("none")
    try:
        fig.savefig(png, dpi=150, bbox_inches=box, facecolor="white")
        with matplotlib.rc_context({"svg.hashsalt": "b12pk", "svg.fonttype": "path"}):
            fig.savefig(svg, bbox_inches=box, facecolor="white", metadata={"Date": None})
    finally:
        if engine is not None:
            fig.set_layout_engine(engine)
    return [png, svg]


class _Saves:
    """Figures being saved by forked children, at most ``workers`` at a time."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.running: list[tuple[int, Any, Path, Any]] = []
        self.failed: list[tuple[Any, Path, Any]] = []

    def submit(self, fig: Any, stem: Path,
               saver: Callable[[Any, Path], list[Path]] | None = None) -> bool:
        """Fork a child that saves ``fig`` (with ``saver(fig, stem)``, by default PNG and
        SVG as :func:`save_figure`); False where none could be forked."""
        import os

        while len(self.running) >= self.workers:
            self._reap(self.running[0])
        import warnings

        try:
            with warnings.catch_warnings():  # Python 3.12+ warns of forking with threads:
                warnings.simplefilter("ignore", DeprecationWarning)  # the child only saves
                pid = os.fork()
        except OSError:
            return False
        if pid == 0:  # the child: save, then leave without running the parent's cleanup
            code = 1
            try:
                import signal

                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                (saver or _save_now)(fig, stem)
                code = 0
            finally:
                os._exit(code)
        self.running.append((pid, fig, stem, saver))
        return True

    def _reap(self, job: tuple[int, Any, Path, Any]) -> None:
        import os

        pid, fig, stem, saver = job
        _, status = os.waitpid(pid, 0)
        self.running.remove(job)
        if status != 0:
            self.failed.append((fig, stem, saver))

    def finish(self) -> None:
        while self.running:
            self._reap(self.running[0])
        for fig, stem, saver in self.failed:  # a child that failed: saved here, errors
            (saver or _save_now)(fig, stem)    # raised here

    def abandon(self) -> None:
        import os
        import signal

        for pid, _fig, _stem, _saver in self.running:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        self.running.clear()


_SAVES: list[_Saves] = []


@contextlib.contextmanager
def parallel_saves(workers: int | None = None) -> Iterator[None]:
    """Within the block, :func:`save_figure` returns at once and a forked child process
    writes the files (up to ``workers`` at a time, default: the CPUs available); all of them
    exist when the block ends. A child that fails is redone in this process, so its error
    is raised here. On an error or interruption inside the block, the children are killed
    before it propagates. Only where ``os.fork`` exists (Linux); elsewhere figures are saved
    as usual."""
    import os
    import sys

    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        yield
        return
    n = workers or len(os.sched_getaffinity(0)) or 1
    saves = _Saves(max(1, n))
    _SAVES.append(saves)
    try:
        yield
        saves.finish()
    except BaseException:
        saves.abandon()
        raise
    finally:
        _SAVES.remove(saves)


def plot_fan(populations: "Mapping[str, Any]", ax: "Axes | None" = None, *,
             quantity: str = "serum_pmol_per_l", bands: bool = True,
             time_unit: str = "auto", title: str | None = None,
             ylim: tuple[float, float] | None = None, show_legend: bool = True,
             band_labels: bool = True) -> "Axes":
    """Fan chart of a population quantity: median line, 25-75% and 5-95% bands.

    Parameters
    ----------
    populations : Mapping[str, PopulationResult] or PopulationResult
        One fan per label (regimen comparison), from :func:`b12pk.simulate_population`.
    quantity : {"serum_pmol_per_l", "stores_ug", "mma_nmol_per_l", "hcy_umol_per_l"}
        What to draw (the markers from ``PopulationResult.markers``).
    bands : bool
        Shade the serum laboratory bands (serum), or mark the normal limit (markers).
    """
    accepted = ("serum_pmol_per_l", "stores_ug", *_MARKER_AXES)
    if quantity not in accepted:
        raise UnknownNameError(f"unknown quantity {quantity!r}; accepted: "
                               f"{', '.join(accepted)}")
    _check_time_unit(time_unit)
    if hasattr(populations, "quantiles"):
        populations = {"": populations}
    if not isinstance(populations, Mapping) or not populations:
        raise InputError("populations must be a PopulationResult or a non-empty mapping "
                         "label -> PopulationResult")
    horizon = max(float(p.days) for p in populations.values())
    tu = _resolve_time_unit(time_unit, horizon)
    if ax is None:
        ax = _new_axes((9.0, 5.8))
    lows, highs = [], []
    for i, (label, pop) in enumerate(populations.items()):
        table = pop.markers if quantity in _MARKER_AXES else pop.quantiles
        if table is None:
            raise InputError(f"population {label!r} has no {quantity} quantiles (a "
                             "PopulationResult from simulate_population has them)")
        q = table.pivot(index="time_days", columns="quantile", values=quantity)
        t = q.index.to_numpy() / _DAYS_PER[tu]
        st = _style(i)
        for lo, hi, alpha in ((5.0, 95.0, 0.15), (25.0, 75.0, 0.3)):
            if lo in q.columns and hi in q.columns:
                ax.fill_between(t, q[lo], q[hi], color=st["color"], alpha=alpha, linewidth=0,
                                zorder=1.5)
                lows.append(q[lo].min())
                highs.append(q[hi].max())
        if 50.0 in q.columns:
            ax.plot(t, q[50.0], color=st["color"], linestyle=st["linestyle"], linewidth=1.6,
                    label=_wrap(f"{label} (median; 25-75%, 5-95%)" if label else
                                "median; 25-75%, 5-95%", _LEGEND_WRAP), gid="curve")
    if quantity == "serum_pmol_per_l":
        ax.set_yscale("log")
        lo, hi = ylim if ylim is not None else (min(min(lows), 132.8) / 1.5,
                                                 max(max(highs), 400.0) * 1.5)
        ax.set_ylim(lo, hi)
        _format_log_axis(ax, lo, hi)
        if bands:
            _draw_bands(ax, _serum_bands("pmol/L"), True, labels=band_labels)
        ax.set_ylabel("Serum B12 (pmol/L)")
        default = "Serum B12 in the virtual population"
    elif quantity in _MARKER_AXES:
        default = _marker_axis(ax, quantity, lows, highs, ylim, bands) + \
            " in the virtual population"
    else:
        ax.set_ylim(*(ylim if ylim is not None else (0, max(highs) * 1.08)))
        ax.set_ylabel("Body B12 stores (µg)")
        default = "Body B12 stores in the virtual population"
    return _finish_time_axes(ax, tu, horizon, default if title is None else title,
                             show_legend)


def _finish_time_axes(ax: "Axes", tu: str, horizon: float, title: str,
                      show_legend: bool) -> "Axes":
    """Time axis, bold left title, light grid, no top/right spines, legend below."""
    _format_time_axis(ax, tu, horizon)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.grid(True, color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if show_legend:
        _legend_below(ax)
    return ax


#: Functional markers: axis label and title of each.
_MARKER_AXES = {"mma_nmol_per_l": ("Methylmalonic acid (nmol/L)", "Methylmalonic acid"),
                "hcy_umol_per_l": ("Total homocysteine (µmol/L)", "Total homocysteine")}


def _marker_axis(ax: "Axes", column: str, lows: list, highs: list, ylim: Any,
                 limit: bool) -> str:
    """Log axis, label and normal limit (dashed) of a marker; returns its title."""
    from ..model.parameters import marker_limits

    normal, label = marker_limits()[column]
    ax.set_yscale("log")
    lo, hi = ylim if ylim is not None else (min(min(lows), normal) / 1.5,
                                             max(max(highs), normal) * 1.5)
    ax.set_ylim(lo, hi)
    _format_log_axis(ax, lo, hi)
    if limit:
        ax.axhline(normal, color="#444444", linestyle="--", linewidth=1.0, zorder=1,
                   label=_wrap(label, _LEGEND_WRAP), gid="normal-limit")
    ax.set_ylabel(_MARKER_AXES[column][0])
    return _MARKER_AXES[column][1]


def plot_markers(results: "Mapping[str, Any]", column: str = "mma_nmol_per_l",
                 ax: "Axes | None" = None, *, time_unit: str = "auto",
                 title: str | None = None, show_legend: bool = True) -> "Axes":
    """A functional marker over time, one curve per result, with its normal limit.

    Parameters
    ----------
    results : Mapping[str, pandas.DataFrame] or pandas.DataFrame
        Label -> :func:`b12pk.simulate` result (or one result).
    column : {"mma_nmol_per_l", "hcy_umol_per_l"}
        The marker (log axis; dashed line: the normal limit of ``data/lab_bands.toml``).
    """
    if column not in _MARKER_AXES:
        raise UnknownNameError(f"unknown marker {column!r}; accepted: "
                               f"{', '.join(_MARKER_AXES)}")
    _check_time_unit(time_unit)
    if hasattr(results, "columns"):
        results = {"": results}
    if not isinstance(results, Mapping) or not results:
        raise InputError("results must be a simulate() DataFrame or a non-empty mapping "
                         "label -> DataFrame")
    horizon = max(float(df["time_days"].iloc[-1]) for df in results.values())
    tu = _resolve_time_unit(time_unit, horizon)
    if ax is None:
        ax = _new_axes((9.0, 5.0))
    lows, highs = [], []
    for i, (label, df) in enumerate(results.items()):
        st = _style(i)
        y = df[column].to_numpy(dtype=float)
        t = df["time_days"].to_numpy(dtype=float) / _DAYS_PER[tu]
        if f"{column}_p5" in df:
            ax.fill_between(t, df[f"{column}_p5"], df[f"{column}_p95"], color=st["color"],
                            alpha=0.15, linewidth=0, gid="interval")
        ax.plot(t, y, color=st["color"], linestyle=st["linestyle"], linewidth=1.6,
                label=_wrap(label, _LEGEND_WRAP) if label else None, gid="curve")
        lows.append(float(np.nanmin(y)))
        highs.append(float(np.nanmax(y)))
    default = _marker_axis(ax, column, lows, highs, None, True)
    return _finish_time_axes(ax, tu, horizon, default if title is None else title,
                             show_legend)


def plot_band_probabilities(population: Any, ax: "Axes | None" = None, *,
                            time_unit: str = "auto", title: str | None = None) -> "Axes":
    """Stacked areas: probability of each serum laboratory band over time."""
    _check_time_unit(time_unit)
    if not hasattr(population, "bands"):
        raise InputError("population must be a PopulationResult")
    tu = _resolve_time_unit(time_unit, float(population.days))
    if ax is None:
        ax = _new_axes((9.0, 4.8))
    b = population.bands.pivot(index="time_days", columns="band", values="probability")
    t = b.index.to_numpy() / _DAYS_PER[tu]
    order = [c for c in ("deficient", "indeterminate", "unlikely") if c in b.columns]
    colours = {k: _BAND_FILL[k][0] for k in order}
    ax.stackplot(t, *[100 * b[c].to_numpy() for c in order],
                 labels=[f"{_BAND_PREFIX[c]}" for c in order],
                 colors=[colours[c] for c in order], alpha=0.9)
    ax.set_ylim(0, 100)
    ax.set_ylabel("Share of patients (%)")
    _format_time_axis(ax, tu, float(population.days))
    ax.set_title("Share of the population in each serum B12 band" if title is None else title,
                 loc="left", fontsize=11, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _legend_below(ax, ncol=3)
    return ax
