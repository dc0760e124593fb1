"""Design targets: what a regimen must achieve, in how many patients, and when.

A target is written as text, like the regimen language::

    serum >= 200 pmol/L before every dose in 90 % of patients, from month 3 to year 5
    serum >= 148 pmol/L every day in 95% of patients from day 30

or in TOML (``[[target]]`` tables with the fields of :class:`Target`). Without a reading,
a target is read before every dose; without a window, from month 3 (day 90) to year 2 (or a
year after its start). Errors are one line and say what is accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import FileFormatError, InputError, UnknownNameError
from ..io import echo, echo_path
from ..model.parameters import pg_per_ml_to_pmol_per_l

__all__ = ["Target", "parse_targets", "load_targets", "as_targets", "QUANTITIES", "READINGS"]

QUANTITIES = {"serum": "total serum B12", "holotc": "holotranscobalamin (holoTC, active B12)"}
"""What a target can read, per patient (pmol/L). Methylmalonic acid is not read per patient
by the population engine (its levels are mixed in from the stores' distribution after the
run), so MMA targets are refused with that reason."""

NOT_YET = {"mma": "methylmalonic acid (MMA)"}

READINGS = {"trough": "before every dose (the trough; for daily oral, each day before that "
                      "day's dose is absorbed)",
            "daily": "every day"}

_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0, "year": 365.0}

_ACCEPTED = ("accepted: 'serum >= 200 pmol/L before every dose in 90 % of patients, from "
             "month 3 to year 5' (units pmol/L, pg/mL or ng/L; 'before every dose' or 'every "
             "day'; 'from ... to ...' in days, weeks, months or years)")

MAX_SHARE = 0.999
"""Largest share of patients a target may ask for: the lower end of a 95 % interval never
reaches 100 %, so a 100 % target could not be met by any candidate."""

MAX_TARGET_DAYS = 36500.0
"""Latest day a target window may end (100 years, the engine's horizon limit)."""


@dataclass(frozen=True)
class Target:
    """A share of patients whose serum stays at or above a threshold throughout a window.

    Parameters
    ----------
    quantity : {"serum", "holotc"}
        What is read: total serum B12 or holotranscobalamin (pmol/L).
    threshold_pmol_per_l : float
        The level to stay at or above (pmol/L, > 0).
    share : float
        The share of patients who must meet it (0 < share <= 1).
    reading : {"trough", "daily"}
        Read before every dose (the lowest point of each dosing cycle) or every day.
    start_day, end_day : float
        The window (days from the first dose; 0 <= start < end <= 36500).
    """

    quantity: str = "serum"
    threshold_pmol_per_l: float = 200.0
    share: float = 0.9
    reading: str = "trough"
    start_day: float = 90.0
    end_day: float = 730.0

    def __post_init__(self) -> None:
        q = str(self.quantity).lower()
        if q in NOT_YET:
            raise InputError(f"targets on {NOT_YET[q]} are not supported yet: the population "
                             "engine reads serum B12 and holoTC per patient, not MMA; use "
                             "serum or holotc")
        if q not in QUANTITIES:
            raise UnknownNameError(f"unknown target quantity {echo(self.quantity)}; accepted: "
                                   + ", ".join(QUANTITIES))
        object.__setattr__(self, "quantity", q)
        for name in ("threshold_pmol_per_l", "share", "start_day", "end_day"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"target {name}={echo(v)} is not a finite number")
            object.__setattr__(self, name, float(v))
        if not self.threshold_pmol_per_l > 0:
            raise InputError(f"target threshold {self.threshold_pmol_per_l:g} pmol/L must be "
                             "> 0")
        if not 0.0 < self.share <= MAX_SHARE:
            raise InputError(f"target share {100.0 * self.share:g} % of patients must be "
                             f"above 0 % and at most {100.0 * MAX_SHARE:g} % (no finite "
                             "population confirms 100 %)")
        if self.reading not in READINGS:
            raise UnknownNameError(f"unknown target reading {echo(self.reading)}; accepted: "
                                   + ", ".join(READINGS))
        if not 0.0 <= self.start_day < self.end_day <= MAX_TARGET_DAYS:
            raise InputError(f"target window day {self.start_day:g} to day {self.end_day:g} "
                             f"must satisfy 0 <= start < end <= {MAX_TARGET_DAYS:g}")

    @classmethod
    def parse(cls, text: str) -> "Target":
        """Read a target written as text (see the module docstring)."""
        if not isinstance(text, str):
            raise InputError(f"a target must be text, not {type(text).__name__}")
        raw = " ".join(text.replace("\u2265", ">=").replace("%", " % ").split()).lower()
        first = raw.split(" ", 1)[0].rstrip("<>=")
        if first in NOT_YET:
            cls(first)   # says why it is not supported
        m = re.match(r"^(?P<q>[a-z]+)\s*(?P<op>>=|=>|>|at least)\s*(?P<v>\d+(?:\.\d+)?)\s*"
                     r"(?P<u>pmol/l|pg/ml|ng/l)\b(?P<rest>.*)$", raw)
        if not m:
            raise InputError(f"cannot read the target {echo(text)}; {_ACCEPTED}")
        value = float(m["v"])
        value = value if m["u"] == "pmol/l" else pg_per_ml_to_pmol_per_l(value)
        rest = m["rest"]
        reading = "trough"
        daily = re.search(r"\bevery day\b|\bdaily\b|\bat all times\b", rest)
        trough = re.search(r"\bbefore (every|each) (dose|injection)\b|\bat (the )?trough",
                           rest)
        if daily:
            reading = "daily"
        share = re.search(r"\bin (\d+(?:\.\d+)?) % of (?:the )?patients\b", rest)
        if not share:
            raise InputError(f"the target {echo(text)} names no share of patients; write e.g. "
                             "'in 90 % of patients'")
        window = re.search(r"\bfrom (?:day |week |month |year )?\S+.*$", rest)
        left = rest
        for found in (daily, trough, share, window):
            if found:
                left = left.replace(found.group(0), " ")
        if re.sub(r"[\s,;.]+", "", left):
            raise InputError(f"cannot read {echo(' '.join(left.replace(',', ' ').split()))} "
                             f"in the target {echo(text)}; {_ACCEPTED}")
        start, end = 90.0, None
        if window:
            start, end = _window(window.group(0), text)
        return cls(m["q"], value, float(share.group(1)) / 100.0, reading, start,
                   end if end is not None else max(730.0, start + 365.0))

    def to_text(self) -> str:
        """The target as text that :meth:`parse` reads back."""
        when = "before every dose" if self.reading == "trough" else "every day"
        return (f"{self.quantity} >= {self.threshold_pmol_per_l:.12g} pmol/L {when} in "
                f"{100.0 * self.share:.12g} % of patients, from day {self.start_day:.12g} to "
                f"day {self.end_day:.12g}")


def _window(text: str, whole: str) -> tuple[float, float | None]:
    m = re.match(r"^from (?P<a>.+?)(?: (?:to|until|through) (?P<b>.+?))?\s*$", text.strip())
    if not m:
        raise InputError(f"cannot read the window of the target {echo(whole)}; {_ACCEPTED}")
    start = _when(m["a"], whole)
    end = _when(m["b"], whole) if m["b"] else None
    return start, end


def _when(text: str, whole: str) -> float:
    text = text.strip().rstrip(".,")
    m = re.match(r"^(day|week|month|year)\s+(\d+(?:\.\d+)?)$", text) or \
        re.match(r"^(\d+(?:\.\d+)?)\s+(day|week|month|year)s?$", text)
    if not m:
        raise InputError(f"cannot read {echo(text)} in the target {echo(whole)} as a time; "
                         "write 'month 3', 'year 5' or '30 days'")
    unit, number = (m.group(1), m.group(2)) if m.group(1).isalpha() else (m.group(2),
                                                                          m.group(1))
    return float(number) * _UNIT_DAYS[unit]


def parse_targets(texts: Sequence[str] | str) -> tuple[Target, ...]:
    """Targets from text (one string or several); all must hold together."""
    if isinstance(texts, str):
        texts = [texts]
    out = tuple(Target.parse(t) for t in texts)
    if not out:
        raise InputError("no target given; " + _ACCEPTED)
    return out


def load_targets(path: str | Path) -> tuple[Target, ...]:
    """Targets from a TOML file: ``[[target]]`` tables, each either ``text = "..."`` or the
    fields of :class:`Target`."""
    from ..io import read_toml
    from ..limits import MAX_TOML_BYTES

    doc, _ = read_toml(path, MAX_TOML_BYTES, "target file")
    rows = doc.get("target")
    if not isinstance(rows, list) or not rows:
        raise FileFormatError(f"{echo_path(path)} has no [[target]] table")
    out = []
    known = set(Target.__dataclass_fields__)
    needed = ("threshold_pmol_per_l", "share")
    for row in rows:
        if not isinstance(row, dict):
            raise FileFormatError(f"{echo_path(path)}: each [[target]] must be a table")
        if "text" in row:
            try:
                out.append(Target.parse(row["text"]))
            except InputError as err:
                raise FileFormatError(f"{echo_path(path)}: {err}") from None
            continue
        missing = [k for k in needed if k not in row]
        if missing:
            raise FileFormatError(f"{echo_path(path)}: a [[target]] needs "
                                  f"{' and '.join(missing)} (or text = \"...\")")
        bad = set(row) - known
        if bad:
            raise FileFormatError(f"{echo_path(path)}: unknown target field(s) "
                                  f"{', '.join(sorted(bad))}; accepted: text, "
                                  + ", ".join(sorted(known)))
        out.append(Target(**row))
    return tuple(out)


def as_targets(value: Any) -> tuple[Target, ...]:
    """Targets from a Target, text, a sequence of either, or a TOML path."""
    if isinstance(value, Target):
        return (value,)
    if isinstance(value, Path) or (isinstance(value, str) and value.endswith(".toml")):
        return load_targets(value)
    if isinstance(value, str):
        return parse_targets(value)
    if isinstance(value, (list, tuple)) and value:
        return tuple(t for v in value for t in as_targets(v))
    raise InputError(f"targets must be a Target, its text, a list of them or a TOML file, "
                     f"not {type(value).__name__}")
