"""Plain words for the claims' check language: what a metric measures, with its unit, and
a number written as a reader expects it (``258 pmol/L``, ``85.6 %``).

Used by the evidence analysis (its step-by-step trace) and the claim cards; nothing here
simulates.
"""

from __future__ import annotations

import math
import re

__all__ = ["metric_words", "metric_unit", "value_words", "OP_WORDS"]

#: Each metric: (words with ``{day}`` for the day of ``_dN`` metrics, unit).
_METRIC_WORDS: dict[str, tuple[str, str]] = {
    "serum": ("serum B12 on day {day} (before a dose due that day)", "pmol/L"),
    "min_from": ("lowest serum B12 from day {day} on", "pmol/L"),
    "trough_ss": ("lowest serum B12 over the last 90 days (steady-state trough)", "pmol/L"),
    "mean_ss": ("mean serum B12 over the last 90 days", "pmol/L"),
    "first_deficient_after": ("first day after day {day} with serum B12 in the deficient band",
                              "day"),
    "urine_frac": ("share of the dose lost in urine by day {day}", "fraction"),
    "stores_gain": ("gain in body stores by day {day}", "ug"),
    "retained_frac": ("share of the dose kept in the body stores on day {day}", "fraction"),
    "pct_replete_after": ("share of time with serum B12 'deficiency unlikely' after day {day}",
                          "percent"),
    "rise": ("lowest serum B12 of each 30-day window rising month by month up to day {day} "
             "(1 = yes, 0 = no)", "indicator"),
    "stores_end": ("body stores at the end of the simulation", "ug"),
    "absorbed_frac": ("share of the oral dose absorbed (last 30 days)", "fraction"),
    "absorbed_per_day": ("B12 absorbed per day (last 30 days)", "ug/day"),
    "days_to_replete": ("days until serum B12 first reaches 'deficiency unlikely'", "day"),
    "mma": ("methylmalonic acid on day {day}", "nmol/L"),
    "hcy": ("total homocysteine on day {day}", "umol/L"),
    "mma_max_from": ("highest methylmalonic acid from day {day} on", "nmol/L"),
    "hcy_max_from": ("highest total homocysteine from day {day} on", "umol/L"),
}

#: A comparison in words.
OP_WORDS = {">=": "at or above", ">": "above", "<=": "at or below", "<": "below",
            ">=band": "in the same or a higher serum band than",
            ">band": "in a higher serum band than"}


def _split_metric(metric: str) -> tuple[str, str | None]:
    m = re.match(r"^(.*?)_d(\d+)$", metric)
    if m and m[1] in _METRIC_WORDS:
        return m[1], m[2]
    return metric, None


def metric_words(metric: str) -> str:
    """What a metric of the check language measures, in words (``serum_d90`` -> "serum B12
    on day 90 (before a dose due that day)")."""
    base, day = _split_metric(metric)
    words, _unit = _METRIC_WORDS.get(base, (metric, ""))
    return words.format(day=day)


def metric_unit(metric: str) -> str:
    """The unit of a metric: ``pmol/L``, ``ug``, ``fraction``, ``percent``, ``day``, ..."""
    return _METRIC_WORDS.get(_split_metric(metric)[0], ("", ""))[1]


def value_words(x: float, unit: str) -> str:
    """A number with its unit as a reader expects it: fractions as percent, serum and
    markers to whole units or 3 significant figures, days as whole days."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "not reached"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if unit == "fraction":
        return f"{100 * x:.1f} %"
    if unit == "percent":
        return f"{x:.0f} %"
    if unit == "indicator":
        return "yes" if x >= 0.5 else "no"
    if unit == "day":
        return f"day {x:.0f}"
    shown = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    unit = {"ug": "µg", "ug/day": "µg/day", "umol/L": "µmol/L"}.get(unit, unit)
    return f"{shown} {unit}".strip()
