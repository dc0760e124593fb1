"""Known biases of the model (``data/claims/biases.toml``), sized from validation: which
apply to a set of regimens and patients, in which direction and how far.

Pure computation on a validation table's ratios (:func:`validation_ratios`); used by the
claim cards and the main report's at-a-glance table.
"""

from __future__ import annotations

import math
import re
import tomllib
from functools import lru_cache
from typing import Any, Mapping

from .._data import data_path
from ..regimen.language import Regimen

__all__ = ["BIAS_FOLD", "known_biases", "validation_ratios", "forms_of"]

#: A validation ratio (geometric mean) beyond this fold either way counts as a bias (assumed).
BIAS_FOLD = 1.1


@lru_cache(maxsize=1)
def _bias_table() -> list[dict[str, Any]]:
    with open(data_path("claims", "biases.toml"), "rb") as fh:
        return list(tomllib.load(fh).get("bias", []))


@lru_cache(maxsize=256)
def _phases(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((p.form, p.route) for p in Regimen.parse(text).phases)


def forms_of(regimens: Mapping[str, tuple[str, str]]) -> set[str]:
    """The forms and routes of regimens ``{label: (text, population)}``, as
    "cyanocobalamin IM", "hydroxocobalamin intranasal", ..."""
    out = set()
    for text, _pop in regimens.values():
        for form, route in _phases(text):
            shown = route.upper() if route in ("im", "iv", "sc") else route
            out.add(f"{form} {shown}")
    return out


def validation_ratios(table: Any) -> dict[str, list[float]]:
    """Predicted/observed of each row of a validation table, by ``trial`` and
    ``trial:arm``."""
    out: dict[str, list[float]] = {}
    for r in table.itertuples():
        for key in (r.trial, f"{r.trial}:{r.arm}"):
            if isinstance(r.ratio, float) and math.isfinite(r.ratio):
                out.setdefault(key, []).append(r.ratio)
    return out


def known_biases(regimens: Mapping[str, tuple[str, str]], pops: list[str],
                 ratios: Mapping[str, list[float]], *, metrics: set[str] | None = None,
                 short: bool = False) -> list[str]:
    """The known model biases that apply to regimens ``{label: (text, population)}`` in
    populations ``pops`` (preset names, ``preset@...`` accepted) and, when given, to the
    ``metrics`` read, with direction and size from ``ratios`` (:func:`validation_ratios`;
    a geometric mean beyond :data:`BIAS_FOLD` either way). ``short``: a few words each."""
    routes = {f.split()[-1] for f in forms_of(regimens)}
    presets = {re.split(r"[@:]", p)[0] for p in pops} | {
        re.split(r"[@:]", own)[0] for _t, own in regimens.values() if own}
    out = []
    for b in _bias_table():
        if b["route"] not in routes or (b.get("presets") and not presets & set(b["presets"])):
            continue
        if metrics is not None and b.get("metrics") and not metrics & set(b["metrics"]):
            continue
        found = [v for key in b["validation"] for v in ratios.get(key, [])]
        if not found:
            continue
        gm = math.exp(sum(math.log(v) for v in found) / len(found))
        if 1 / BIAS_FOLD <= gm <= BIAS_FOLD:
            continue
        way = "over" if gm > 1 else "under"
        if short:
            out.append(f"{b['what']} {way}-predicted in validation (x{gm:.2f})")
            continue
        shown = ", ".join(f"{v:.2f}" for v in found)
        out.append(f"{b['what']} is {way}-predicted (predicted/observed {shown}; "
                   f"{', '.join(b['validation'])}), so the model "
                   f"{'favours' if gm > 1 else 'disfavours'} {b['favours']}")
    return out
