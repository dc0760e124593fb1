"""Dosing regimens: vocabulary, the regimen language, canonical text and dose events.

A :class:`Regimen` is a sequence of *phases* ("1000 mcg IM three times weekly for
2 weeks", "then every 2 months for life"). It is read from the words guideline
writers use (:meth:`Regimen.parse`), written back as canonical text
(:meth:`Regimen.to_text`, ``str(regimen)``) and expanded into dose events
(:meth:`Regimen.dose_events`). The language is documented in
``docs/regimen-language.md``.

Units and calendar conventions (used everywhere in b12pk):

* amounts in micrograms (µg); ``1 mg = 1000 µg``;
* times in days; day 1 is the first day of treatment and starts at ``t = 0``;
* 1 week = 7 days, 1 month = 30 days, 1 year = 365 days, 1 hour = 1/24 day.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ..errors import warn as b12pk_warn
from ..errors import (
    DoseError,
    FileFormatError,
    HorizonError,
    InputError,
    RegimenSyntaxError,
    ResourceError,
    UnknownNameError,
)
from .._data import data_path
from ..io import as_finite_float, check_label, echo, echo_path, read_toml
from ..model.declaration import declaration
from ..limits import (MAX_DAILY_UG, MAX_DOSE_UG, MAX_DOSES_PER_DAY, MAX_EVENTS,
                     MAX_INFUSION_DAYS,
                     MAX_PARENTERAL_DOSES, MAX_PER_CYCLE, MAX_RANGES, MAX_TEXT_CHARS,
                     MAX_TOML_BYTES, MAX_VARIANTS)

__all__ = [
    "ROUTES",
    "FORMS",
    "MAX_DOSE_UG",
    "DAYS_PER_WEEK",
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "MAX_EVENTS",
    "MAX_PER_CYCLE",
    "PARENTERAL_ROUTES",
    "INFUSION_ROUTES",
    "MAX_INFUSION_DAYS",
    "check_dose_limits",
    "normalize_route",
    "normalize_form",
    "validate_dose",
    "DoseEvent",
    "DoseRun",
    "SingleDose",
    "Repeating",
    "AtTimes",
    "ForDays",
    "ForDoses",
    "UntilDay",
    "UntilCondition",
    "Phase",
    "Regimen",
    "parse_regimen",
    "regimen_variants",
    "labelled_variants",
    "load_regimens",
    "regimens_from_toml",
    "regimens_to_toml",
]

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

#: Dose routes: those of the model declaration's route table (``data/model.toml
#: [routes]``), the only place a route is defined; this module adds only their words.
ROUTES = tuple(declaration().routes)
#: Forms of cobalamin: those of ``data/model.toml [forms]``.
FORMS = tuple(declaration().forms)

#: Routes whose doses reach plasma directly or through a mucosa (each dose is integrated
#: through its fast transient; see :data:`b12pk.limits.MAX_PARENTERAL_DOSES`).
PARENTERAL_ROUTES = declaration().parenteral_routes

#: Routes whose doses may be infused over a duration (``DoseEvent.duration_days``).
INFUSION_ROUTES = ("iv",)

DAYS_PER_WEEK = 7.0
DAYS_PER_MONTH = 30.0
DAYS_PER_YEAR = 365.0
HOURS_PER_DAY = 24.0


#: Route aliases, keyed by the lower-case alias with spaces, hyphens and dots removed.
_ROUTE_ALIASES = {
    "oral": "oral", "orally": "oral", "po": "oral", "bymouth": "oral", "peros": "oral",
    "sublingual": "sublingual", "sublingually": "sublingual", "sl": "sublingual",
    "im": "im", "intramuscular": "im", "intramuscularly": "im",
    "deepsc": "deep-sc", "deepsubcutaneous": "deep-sc", "deepsubcutaneously": "deep-sc",
    "sc": "deep-sc", "subcutaneous": "deep-sc", "subcutaneously": "deep-sc",
    "subcut": "deep-sc", "sq": "deep-sc",
    "intranasal": "intranasal", "intranasally": "intranasal", "nasal": "intranasal",
    "nasally": "intranasal",
    "iv": "iv", "intravenous": "iv", "intravenously": "iv",
}

#: Form aliases, keyed like the route aliases.
_FORM_ALIASES = {
    "cyanocobalamin": "cyanocobalamin", "cyanocobalamine": "cyanocobalamin",
    "cyano": "cyanocobalamin", "cncbl": "cyanocobalamin",
    "hydroxocobalamin": "hydroxocobalamin", "hydroxycobalamin": "hydroxocobalamin",
    "hydroxocobalamine": "hydroxocobalamin", "hydroxo": "hydroxocobalamin",
    "ohcbl": "hydroxocobalamin",
    "methylcobalamin": "methylcobalamin", "mecobalamin": "methylcobalamin",
    "methyl": "methylcobalamin", "mecbl": "methylcobalamin",
}

#: How each canonical route is written in canonical text (``words`` of the route table).
_ROUTE_WORDS = {name: route.words for name, route in declaration().routes.items()}

_ROUTE_HELP = ("oral (orally, PO, by mouth), sublingual (SL), im (IM, intramuscular), "
               "deep-sc (deep SC, SC, subcutaneous), intranasal (nasal), iv (IV, intravenous)")
_FORM_HELP = ("cyanocobalamin (cyano, CNCbl), hydroxocobalamin (hydroxo, OHCbl), "
              "methylcobalamin (methyl, MeCbl, mecobalamin)")


def _alias_key(text: str) -> str:
    return re.sub(r"[\s\-.]", "", text.lower())


def normalize_route(text: str) -> str:
    """Return the canonical route name for a route or one of its aliases.

    Parameters
    ----------
    text : str
        A route name such as ``"IM"``, ``"intramuscular"``, ``"PO"``, ``"orally"``,
        ``"nasal"``, ``"SC"`` or ``"deep-sc"`` (case, spaces, hyphens ignored).

    Returns
    -------
    str
        One of :data:`ROUTES`.

    Raises
    ------
    UnknownNameError
        If the name is not a known route; the message lists the accepted names.
    """
    if isinstance(text, str):
        route = _ROUTE_ALIASES.get(_alias_key(text))
        if route is not None:
            return route
    raise UnknownNameError(f"unknown route {text!r}; accepted routes: {_ROUTE_HELP}")


def normalize_form(text: str) -> str:
    """Return the canonical cobalamin form for a form name or abbreviation.

    Parameters
    ----------
    text : str
        A form such as ``"cyano"``, ``"CNCbl"``, ``"hydroxo"``, ``"OHCbl"``,
        ``"methyl"`` or ``"MeCbl"`` (case, spaces, hyphens ignored).

    Returns
    -------
    str
        One of :data:`FORMS`.

    Raises
    ------
    UnknownNameError
        If the name is not a known form; the message lists the accepted names.
    """
    if isinstance(text, str):
        form = _FORM_ALIASES.get(_alias_key(text))
        if form is not None:
            return form
    raise UnknownNameError(f"unknown cobalamin form {text!r}; accepted forms: {_FORM_HELP}")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def validate_dose(amount_ug: float) -> float:
    """Check a dose amount and return it as a float.

    Parameters
    ----------
    amount_ug : float
        Dose in µg.

    Returns
    -------
    float
        The amount in µg.

    Raises
    ------
    DoseError
        If the amount is not a finite number in ``(0, MAX_DOSE_UG]`` (100 mg).
    """
    x = as_finite_float(amount_ug)
    if x is None or not 0.0 < x <= MAX_DOSE_UG:
        raise DoseError(
            f"dose {echo(amount_ug)} µg is not accepted: a dose must be a finite number "
            f"greater than 0 and at most {MAX_DOSE_UG:g} µg (100 mg)")
    return x


def _check_positive(value: Any, what: str) -> float:
    x = as_finite_float(value)
    if x is None or x <= 0:
        raise HorizonError(f"{what} must be a finite number of days greater than 0, got "
                           f"{echo(value)}")
    return x


def _check_whole(value: Any, what: str, minimum: int = 1) -> int:
    x = as_finite_float(value)
    if x is None or x != int(x) or x < minimum:
        raise HorizonError(f"{what} must be a whole number >= {minimum}, got {echo(value)}")
    return int(x)


# ---------------------------------------------------------------------------
# Dose events
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DoseEvent:
    """One dose: when, how much, by which route, of which form.

    Attributes
    ----------
    time_days : float
        Time of the dose in days after the start of treatment (day 1 = 0).
    amount_ug : float
        Amount in µg, in ``(0, MAX_DOSE_UG]``.
    route : str
        Canonical route (aliases are normalised), one of :data:`ROUTES`.
    form : str
        Canonical form (aliases are normalised), one of :data:`FORMS`.
    duration_days : float, optional
        Infusion duration in days (default 0: a bolus). Only intravenous doses may be
        infused (:data:`INFUSION_ROUTES`); the amount then enters plasma at a constant rate
        ``amount_ug / duration_days`` (simulated by :func:`b12pk.simulate`).
    """

    time_days: float
    amount_ug: float
    route: str
    form: str
    duration_days: float = 0.0

    def __post_init__(self) -> None:
        t = as_finite_float(self.time_days)
        if t is None or t < 0:
            raise HorizonError(f"dose time must be a finite number of days >= 0, got "
                               f"{echo(self.time_days)}")
        object.__setattr__(self, "time_days", t)
        object.__setattr__(self, "amount_ug", validate_dose(self.amount_ug))
        if not (isinstance(self.route, str) and self.route in ROUTES):  # fast path: canonical
            object.__setattr__(self, "route", normalize_route(self.route))
        if not (isinstance(self.form, str) and self.form in FORMS):
            object.__setattr__(self, "form", normalize_form(self.form))
        if self.duration_days != 0.0:
            d = as_finite_float(self.duration_days)
            if d is None or not 0.0 <= d <= MAX_INFUSION_DAYS:
                raise DoseError(f"infusion duration {echo(self.duration_days)} days is not "
                                f"accepted; accepted: a finite number of days in [0, "
                                f"{MAX_INFUSION_DAYS:g}] (0: a bolus)")
            if d > 0.0 and self.route not in INFUSION_ROUTES:
                raise DoseError(f"a {self.route} dose cannot be infused (duration_days="
                                f"{d:g}); accepted: duration_days > 0 for "
                                f"{', '.join(INFUSION_ROUTES)} doses only")
            object.__setattr__(self, "duration_days", d)

    def sort_key(self) -> tuple[float, str, str, float]:
        """Key ordering events by time, then route, form and amount."""
        return (self.time_days, self.route, self.form, self.amount_ug)


@dataclass(frozen=True)
class DoseRun:
    """Doses repeated at a fixed interval: ``time_days + k * interval_days``, k < count.

    This is the compact form used by NONMEM-style tables (TIME, II, ADDL = count - 1).
    """

    time_days: float
    interval_days: float
    count: int
    amount_ug: float
    route: str
    form: str

    def times(self) -> list[float]:
        """Dose times in days, computed as ``time_days + k * interval_days``."""
        return [self.time_days + k * self.interval_days for k in range(self.count)]


# ---------------------------------------------------------------------------
# Schedules and durations (the parts of a phase)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SingleDose:
    """One dose at the start of its phase ("once", "a single dose")."""


@dataclass(frozen=True)
class Repeating:
    """``per_cycle`` doses in every cycle of ``cycle_days`` days.

    ``daily`` is ``Repeating(1)``, ``every 3 days`` is ``Repeating(3)``,
    ``twice daily`` is ``Repeating(1, 2)`` and ``three times weekly`` is
    ``Repeating(7, 3)``; see :meth:`offsets` for where in the cycle the doses fall.
    """

    cycle_days: float
    per_cycle: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "cycle_days", _check_positive(self.cycle_days, "a dosing interval"))
        object.__setattr__(self, "per_cycle", _check_whole(self.per_cycle, "doses per cycle"))
        if self.per_cycle > MAX_PER_CYCLE:
            raise HorizonError(f"doses per cycle must be a whole number from 1 to {MAX_PER_CYCLE}, "
                               f"got {self.per_cycle!r}")

    def offsets(self) -> tuple[float, ...]:
        """Dose offsets within a cycle, in days from the start of the cycle.

        When the cycle has at least one whole day per dose the doses fall on whole
        days, ``floor(k * cycle / n)``: three times weekly is days 1, 3, 5 of each
        week (Mon/Wed/Fri), twice weekly days 1 and 4. Otherwise they are spread
        evenly, ``k * cycle / n``: twice daily is ``t`` and ``t + 0.5``.
        """
        n, c = self.per_cycle, self.cycle_days
        if c / n >= 1.0:
            return tuple(float(math.floor(k * c / n)) for k in range(n))
        return tuple(k * c / n for k in range(n))

    def first_gap(self) -> float:
        """Gap between the first two doses: one "interval" of this schedule, in days."""
        offs = self.offsets()
        return offs[1] - offs[0] if len(offs) > 1 else self.cycle_days


@dataclass(frozen=True)
class AtTimes:
    """Doses at explicit times (days after the start of treatment, 0-based).

    Written ``on days 1, 3, 7`` (whole days, day 1 = time 0) or
    ``at times 0, 0.5 days``. The times are absolute, not relative to the phase.
    """

    times_days: tuple[float, ...]

    def __post_init__(self) -> None:
        times = tuple(self.times_days)
        if not times:
            raise HorizonError("a list of dose days must not be empty")
        for t in times:
            x = as_finite_float(t)
            if x is None or x < 0:
                raise HorizonError(f"dose times must be finite numbers of days >= 0, got "
                                   f"{echo(t)}")
        if any(b < a for a, b in zip(times, times[1:])):
            raise HorizonError(f"dose days must be in increasing order, got {times!r}")
        object.__setattr__(self, "times_days", tuple(float(t) for t in times))


@dataclass(frozen=True)
class ForDays:
    """The phase lasts ``days`` days from its first dose ("for 2 weeks")."""

    days: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", _check_positive(self.days, "a phase duration"))


@dataclass(frozen=True)
class ForDoses:
    """The phase ends after ``n`` doses ("for seven doses")."""

    n: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_whole(self.n, "a number of doses"))


@dataclass(frozen=True)
class UntilDay:
    """The phase ends with treatment day ``day`` included ("until day 10", "days 1-10")."""

    day: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "day", _check_whole(self.day, "a day number"))


#: Open-ended conditions the language knows, as written in canonical text.
CONDITIONS = ("no further improvement", "levels normalize")


@dataclass(frozen=True)
class UntilCondition:
    """An open-ended phase ("until no further improvement") with its explicit stop.

    ``max_days`` is the stop used for simulation; a regimen cannot be built
    without one, since b12pk does not guess how long improvement continues.
    """

    condition: str
    max_days: float | None = None

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise UnknownNameError(f"unknown open-ended condition {self.condition!r}; "
                                   f"accepted: {', '.join(CONDITIONS)}")
        if self.max_days is not None:
            object.__setattr__(self, "max_days", _check_positive(self.max_days, "an open-ended stop"))


Schedule = Union[SingleDose, Repeating, AtTimes]
Duration = Union[ForDays, ForDoses, UntilDay, UntilCondition, None]

_TOL = 1e-9  # days; a dose exactly at a window's end falls outside it

#: Days of a regimen whose daily limits are checked when it is built (every horizon's doses
#: are checked again when they are expanded).
_DAILY_CHECK_DAYS = 400.0


@dataclass(frozen=True)
class Phase:
    """One phase of a regimen: a dose, its route and form, a schedule and a duration.

    Attributes
    ----------
    amount_ug : float
        Dose per administration in µg.
    route, form : str
        Canonical route and form (aliases are normalised).
    schedule : SingleDose | Repeating | AtTimes
        When doses fall.
    duration : ForDays | ForDoses | UntilDay | UntilCondition | None
        When a repeating phase ends; ``None`` means indefinitely (to the
        simulation horizon). Must be ``None`` for single doses and explicit days.
    start_day : int | None
        Treatment day of the first dose ("from day 8", "days 8-14"); ``None`` means
        the phase follows the previous one (see :class:`Regimen`).
    """

    amount_ug: float
    route: str
    form: str
    schedule: Schedule
    duration: Duration = None
    start_day: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount_ug", validate_dose(self.amount_ug))
        object.__setattr__(self, "route", normalize_route(self.route))
        object.__setattr__(self, "form", normalize_form(self.form))
        if not isinstance(self.schedule, (SingleDose, Repeating, AtTimes)):
            raise TypeError(f"schedule must be SingleDose, Repeating or AtTimes, got {self.schedule!r}")
        if self.duration is not None and not isinstance(
                self.duration, (ForDays, ForDoses, UntilDay, UntilCondition)):
            raise TypeError(f"duration must be ForDays, ForDoses, UntilDay, UntilCondition or None, "
                            f"got {self.duration!r}")
        if self.start_day is not None:
            object.__setattr__(self, "start_day", _check_whole(self.start_day, "a start day"))
        if not isinstance(self.schedule, Repeating) and self.duration is not None:
            raise HorizonError("only a repeating phase takes a duration; a single dose or a "
                               "list of days ends by itself")
        if isinstance(self.schedule, AtTimes) and self.start_day is not None:
            raise HorizonError("a list of dose days already fixes its days; it takes no start day")
        if isinstance(self.duration, UntilCondition) and self.duration.max_days is None:
            raise HorizonError(
                f"the open-ended phase 'until {self.duration.condition}' needs an explicit "
                f"stop (max_days)")

    @property
    def is_indefinite(self) -> bool:
        """True if the phase runs to the simulation horizon."""
        return isinstance(self.schedule, Repeating) and self.duration is None

    def runs(self, start: float) -> list[DoseRun]:
        """Dose runs of this phase when its first dose is at ``start`` days.

        Explicit-times phases ignore ``start``. Indefinite phases give runs with
        ``count = -1`` (unbounded), which :meth:`Regimen.dose_runs` clips.
        """
        sched = self.schedule
        if isinstance(sched, SingleDose):
            return [self._run(start, 0.0, 1)]
        if isinstance(sched, AtTimes):
            return [self._run(t0, iv, n) for t0, iv, n in _arithmetic_runs(sched.times_days)]
        offsets = sched.offsets()
        counts = self._counts_per_offset(start, sched, offsets)
        return [self._run(start + o, sched.cycle_days, n)
                for o, n in zip(offsets, counts) if n != 0]

    def _run(self, t0: float, interval: float, count: int) -> DoseRun:
        return DoseRun(t0, interval, count, self.amount_ug, self.route, self.form)

    def _counts_per_offset(self, start: float, sched: Repeating,
                           offsets: tuple[float, ...]) -> list[int]:
        dur = self.duration
        if dur is None:
            return [-1] * len(offsets)
        if isinstance(dur, ForDoses):
            q, r = divmod(dur.n, len(offsets))
            return [q + (1 if i < r else 0) for i in range(len(offsets))]
        if isinstance(dur, ForDays):
            window = dur.days
        elif isinstance(dur, UntilCondition):
            window = float(dur.max_days)  # type: ignore[arg-type]
        else:  # UntilDay: day N ends at t = N
            window = dur.day - start
        return [_count_below(o, sched.cycle_days, window - _TOL) for o in offsets]


def _count_below(offset: float, interval: float, limit: float) -> int:
    """Number of k >= 0 with ``offset + k * interval < limit``."""
    if offset >= limit:
        return 0
    estimate = (limit - offset) / interval
    if estimate > 1e15:
        raise ResourceError(f"an interval of {interval!r} days gives more than {MAX_EVENTS} "
                            f"doses; use a longer interval or a shorter horizon")
    n = int(math.ceil(estimate))
    while n > 0 and offset + (n - 1) * interval >= limit:
        n -= 1
    while offset + n * interval < limit:
        n += 1
    return n


def _arithmetic_runs(times: Sequence[float]) -> list[tuple[float, float, int]]:
    """Split sorted times into runs ``t0 + k*iv`` that reproduce them exactly."""
    runs: list[tuple[float, float, int]] = []
    i = 0
    while i < len(times):
        t0 = times[i]
        if i + 1 == len(times) or times[i + 1] == t0:
            runs.append((t0, 0.0, 1))
            i += 1
            continue
        iv = times[i + 1] - t0
        n = 2
        while i + n < len(times) and t0 + n * iv == times[i + n]:
            n += 1
        if t0 + iv != times[i + 1]:  # the interval does not reproduce the second time
            runs.append((t0, 0.0, 1))
            i += 1
            continue
        runs.append((t0, iv, n))
        i += n
    return runs


# ---------------------------------------------------------------------------
# Number formatting for canonical text
# ---------------------------------------------------------------------------

def _fmt(x: float) -> str:
    """Shortest positional decimal that reads back as the same float.

    A dot before exactly three digits ("1.125") gets a trailing zero ("1.1250"): the parser
    refuses the first as ambiguous (a thousands separator in much of Europe).
    """
    text = np.format_float_positional(float(x), unique=True, trim="-")
    return text + "0" if re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", text) else text


def _days_in_unit(days: float) -> tuple[str, str]:
    """Write a number of days as months, weeks or days, whichever is whole."""
    for size, unit in ((DAYS_PER_MONTH, "month"), (DAYS_PER_WEEK, "week")):
        q = days / size
        if q >= 1 and q == round(q) and round(q) * size == days:
            return _fmt(round(q)), unit
    return _fmt(days), "day"


def _plural(value: str, unit: str) -> str:
    return f"{value} {unit}" if value == "1" else f"{value} {unit}s"


def _schedule_text(sched: Schedule) -> str:
    if isinstance(sched, SingleDose):
        return "once"
    if isinstance(sched, AtTimes):
        if all(t == int(t) and t < 2.0 ** 52 for t in sched.times_days):
            days = [_fmt(int(t) + 1) for t in sched.times_days]
            return ("on day " if len(days) == 1 else "on days ") + ", ".join(days)
        word = "at time " if len(sched.times_days) == 1 else "at times "
        return word + ", ".join(_fmt(t) for t in sched.times_days) + " days"
    c = sched.cycle_days
    per = {1.0: "daily", DAYS_PER_WEEK: "weekly", DAYS_PER_MONTH: "monthly"}.get(c)
    if per is None:
        per = "every " + _plural(*_days_in_unit(c))
    n = sched.per_cycle
    if n == 1:
        return per
    return ("twice " if n == 2 else f"{n} times ") + per


def _duration_text(phase: Phase) -> str:
    dur = phase.duration
    parts = []
    if phase.start_day is not None and not isinstance(dur, UntilDay):
        parts.append(f"from day {phase.start_day}")
    if dur is None:
        if isinstance(phase.schedule, Repeating):
            parts.append("indefinitely")
    elif isinstance(dur, ForDays):
        parts.append("for " + _plural(*_days_in_unit(dur.days)))
    elif isinstance(dur, ForDoses):
        parts.append(f"for {_plural(str(dur.n), 'dose')}")
    elif isinstance(dur, UntilDay):
        if phase.start_day is not None:
            parts.append(f"for days {phase.start_day}-{dur.day}")
        else:
            parts.append(f"until day {dur.day}")
    else:
        parts.append(f"until {dur.condition} (max {_plural(*_days_in_unit(dur.max_days))})")
    return " ".join(parts)


def _phase_text(phase: Phase) -> str:
    words = [f"{_fmt(phase.amount_ug)} mcg", phase.form, _ROUTE_WORDS[phase.route],
             _schedule_text(phase.schedule), _duration_text(phase)]
    return " ".join(w for w in words if w)


# ---------------------------------------------------------------------------
# Regimen
# ---------------------------------------------------------------------------

def _start_gap(phase: Phase) -> float:
    """Days from the previous phase's last dose to this phase's first dose."""
    if isinstance(phase.schedule, Repeating):
        return phase.schedule.first_gap()
    return 1.0  # a single dose after another phase comes the next day


@dataclass(frozen=True)
class Regimen:
    """A dosing regimen: one or more phases given in sequence.

    Phase timing
        The first phase starts on day 1 (``t = 0``) unless it names a start day.
        A later phase without a start day begins **one of its own intervals after
        the last dose of the phase before** ("daily for 10 days, then monthly":
        doses on days 1-10, then days 40, 70, ...; "daily for 14 days, then weekly":
        days 1-14, then 21, 28, ...). A later single dose comes the day after.
        Phases with explicit days (``on days 1, 3, 7``, ``days 8-14``,
        ``from day 8``) use those treatment days.

    Equality
        Regimens compare and hash by their phases; :attr:`label` is a display
        name only and is ignored by ``==`` and ``hash``. Equality is structural:
        ``daily for 14 days`` equals ``daily for 2 weeks`` (both store 14 days),
        but not ``daily for 14 doses`` even though the dose events coincide.

    Attributes
    ----------
    phases : tuple of Phase
        The phases, in order; a phase that runs indefinitely must be the last.
    label : str or None
        Optional display name.
    """

    phases: tuple[Phase, ...]
    label: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        phases = tuple(self.phases)
        if not phases:
            raise DoseError("a regimen needs at least one phase")
        for p in phases:
            if not isinstance(p, Phase):
                raise TypeError(f"regimen phases must be Phase objects, got {p!r}")
        if phases[0].start_day == 1:  # day 1 is where a first phase starts anyway
            phases = (replace(phases[0], start_day=None),) + phases[1:]
        object.__setattr__(self, "phases", phases)
        if self.label is not None and not isinstance(self.label, str):
            raise TypeError(f"label must be a string or None, got {self.label!r}")
        if self.label is not None:
            check_label(self.label, "regimen label")
        plan = self._plan()  # validates phase order and that every phase gives a dose
        # the daily limits, checked now over every finite phase and two cycles of an
        # indefinite one (a later horizon repeats those cycles)
        ends = [r.time_days + (max(r.count, 1) - 1) * r.interval_days if r.count >= 0
                else r.time_days + 2 * max(r.interval_days, 1.0) for r in plan]
        _check_daily_limits(self._clipped(min(max(ends) + 2.0, _DAILY_CHECK_DAYS), plan))

    # -- construction -------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, open_ended_days: float | None = None,
              default_form: str | None = "cyanocobalamin") -> "Regimen":
        """Read a regimen from guideline text.

        Parameters
        ----------
        text : str
            For example ``"hydroxocobalamin 1000 µg IM three times weekly for
            2 weeks, then every 2 months for life"``.
        open_ended_days : float, optional
            Stop, in days, for open-ended phases written without one
            ("until no further improvement").
        default_form : str or None
            Form used when the text names none (default cyanocobalamin, the form
            of nearly all oral and US injectable products; canonical text always
            shows it). ``None`` makes a missing form an error.

        Returns
        -------
        Regimen

        Raises
        ------
        RegimenSyntaxError
            Unreadable text (the message quotes the text, the word where reading
            stopped and what is accepted there), an open-ended phase without a
            stop, or a range such as ``1000-2000 µg`` (use :func:`regimen_variants`).
        DoseError, HorizonError
            Readable text with an impossible dose, interval, duration or day.
        """
        parser = _Parser(text, (), open_ended_days, default_form)
        phases = parser.parse()
        if parser.ranges:
            pos, raw = parser.ranges[0]
            raise parser.error_at(
                pos, raw,
                f"{raw!r} is a range, but Regimen.parse needs single values; use "
                f"regimen_variants(text) for one regimen per end of each range",
                ("regimen_variants(text)",))
        return parser.build(phases)

    @classmethod
    def daily(cls, amount_ug: float, route: str = "oral",
              form: str = "cyanocobalamin") -> "Regimen":
        """``amount_ug`` every day from day 1, indefinitely."""
        return cls((Phase(amount_ug, route, form, Repeating(1.0)),))

    @classmethod
    def every(cls, interval_days: float, amount_ug: float, route: str = "oral",
              form: str = "cyanocobalamin", start_day: int = 1,
              n_doses: int | None = None) -> "Regimen":
        """``amount_ug`` every ``interval_days`` days from ``start_day``.

        Parameters
        ----------
        interval_days : float
            Days between doses (> 0).
        amount_ug : float
            Dose in µg.
        route, form : str
            Route and form (aliases accepted).
        start_day : int
            Treatment day of the first dose (day 1 = t 0).
        n_doses : int, optional
            Number of doses; ``None`` means indefinitely.
        """
        duration = None if n_doses is None else ForDoses(n_doses)
        return cls((Phase(amount_ug, route, form, Repeating(interval_days), duration, start_day),))

    @classmethod
    def once(cls, amount_ug: float, route: str, form: str = "cyanocobalamin",
             day: int = 1) -> "Regimen":
        """A single dose of ``amount_ug`` on treatment day ``day``."""
        return cls((Phase(amount_ug, route, form, SingleDose(), None, day),))

    @classmethod
    def from_events(cls, events: Sequence[DoseEvent], label: str | None = None) -> "Regimen":
        """A regimen giving exactly these doses.

        Events with the same amount, route and form form one explicit-times phase;
        phases are ordered by their first dose.

        Raises
        ------
        DoseError
            If ``events`` is empty.
        InputError
            If an event is an infusion (``duration_days > 0``).
        """
        events = list(events)
        if not events:
            raise DoseError("a regimen needs at least one dose event")
        for ev in events:
            if not isinstance(ev, DoseEvent):
                raise TypeError(f"expected DoseEvent objects, got {ev!r}")
            if ev.duration_days > 0.0:
                raise InputError("a Regimen holds bolus doses only; an infusion (a dose event "
                                 "with duration_days > 0) is simulated from a list of dose "
                                 "events: b12pk.simulate([DoseEvent(...)], ...)")
        groups: dict[tuple[float, str, str], list[float]] = {}
        for ev in sorted(events, key=DoseEvent.sort_key):
            groups.setdefault((ev.amount_ug, ev.route, ev.form), []).append(ev.time_days)
        ordered = sorted(groups.items(), key=lambda kv: (kv[1][0], kv[0][1], kv[0][2], kv[0][0]))
        phases = tuple(Phase(amt, route, form, AtTimes(tuple(times)))
                       for (amt, route, form), times in ordered)
        return cls(phases, label)

    # -- properties -----------------------------------------------------------

    @property
    def routes(self) -> tuple[str, ...]:
        """Distinct routes in order of first use."""
        return tuple(dict.fromkeys(p.route for p in self.phases))

    @property
    def forms(self) -> tuple[str, ...]:
        """Distinct forms in order of first use."""
        return tuple(dict.fromkeys(p.form for p in self.phases))

    @property
    def is_indefinite(self) -> bool:
        """True if the last phase runs to the simulation horizon."""
        return self.phases[-1].is_indefinite

    # -- text -------------------------------------------------------------------

    def to_text(self) -> str:
        """Canonical text; ``Regimen.parse(r.to_text()) == r`` always holds.

        Every phase is written in full: ``<amount> mcg <form> <route> <schedule>
        <duration>``, phases joined by ``", then "``.
        """
        return ", then ".join(_phase_text(p) for p in self.phases)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        label = "" if self.label is None else f", label={self.label!r}"
        return f"Regimen.parse({self.to_text()!r}{label})"

    def with_label(self, label: str | None) -> "Regimen":
        """A copy with another display label."""
        return replace(self, label=label)

    # -- expansion --------------------------------------------------------------

    def _plan(self) -> list[DoseRun]:
        """All dose runs, unbounded ones with ``count = -1``."""
        runs: list[DoseRun] = []
        last: float | None = None
        prev: Phase | None = None
        prev_first = 0.0
        for i, phase in enumerate(self.phases, start=1):
            if i > 1 and last is None:
                raise HorizonError(
                    f"phase {i} can never start: phase {i - 1} runs indefinitely; "
                    f"give phase {i - 1} a duration ('for 2 weeks', 'for 10 doses', ...)")
            if phase.start_day is not None:
                start = phase.start_day - 1.0
            elif i == 1:
                start = 0.0
            else:
                start = last + _start_gap(phase)  # type: ignore[operator]
            phase_runs = phase.runs(start)
            if not phase_runs:
                raise HorizonError(f"phase {i} gives no dose: it ends (day "
                                   f"{getattr(phase.duration, 'day', '?')}) before it starts "
                                   f"(day {_fmt(start + 1)})")
            first = min(r.time_days for r in phase_runs)
            if last is not None and self._out_of_order(phase, prev, first, prev_first, last):
                raise HorizonError(
                    f"phase {i} starts on day {_fmt(first + 1)}, but phase {i - 1} gives its "
                    f"last dose on day {_fmt(last + 1)}: phases joined by 'then' follow one "
                    f"another; give phase {i} later days, or write overlapping courses "
                    f"as separate regimens")
            prev, prev_first = phase, first
            runs.extend(phase_runs)
            last = None if phase.is_indefinite else max(
                r.time_days + (r.count - 1) * r.interval_days for r in phase_runs)
        return runs

    @staticmethod
    def _out_of_order(phase: Phase, prev: Phase | None, first: float, prev_first: float,
                      last: float) -> bool:
        """Whether a phase breaks 'then' (the previous phase's first dose ``prev_first`` and
        last dose ``last``, days). A phase given a start day, or next to a repeating phase,
        starts after the previous phase's last dose; two lists of explicit days may
        interleave ('on days 1, 8, then 500 mcg on days 2, 9': how :meth:`to_text` writes
        the doses of :meth:`from_events`, every day stated) but not run backwards ('on day
        10 then on day 5')."""
        if first < prev_first:
            return True
        both_lists = isinstance(phase.schedule, AtTimes) and isinstance(
            getattr(prev, "schedule", None), AtTimes)
        return first <= last and not both_lists and (
            phase.start_day is not None or isinstance(phase.schedule, AtTimes)
            or isinstance(getattr(prev, "schedule", None), AtTimes))

    def dose_runs(self, horizon_days: float) -> list[DoseRun]:
        """Compact dose runs with every dose in ``0 <= t < horizon_days``.

        Sorted by first dose time; see :class:`DoseRun`.
        """
        h = _check_positive(horizon_days, "the horizon")
        out = self._clipped(h)
        _check_limits(out, h)
        return sorted(out, key=lambda r: (r.time_days, r.route, r.form, r.amount_ug))

    def _clipped(self, h: float, plan: list[DoseRun] | None = None) -> list[DoseRun]:
        """The plan's runs cut to the doses before ``h`` days (no limits checked)."""
        out = []
        for run in self._plan() if plan is None else plan:
            t_last = run.time_days + (run.count - 1) * run.interval_days
            if run.count >= 0 and (run.interval_days == 0 or t_last < h):
                n = run.count if run.time_days < h else 0
            else:
                n = _count_below(run.time_days, run.interval_days, h)
                if run.count >= 0:
                    n = min(n, run.count)
            if n > 0:
                out.append(replace(run, count=n, interval_days=run.interval_days if n > 1 else 0.0))
        return out

    def dose_events(self, horizon_days: float) -> list[DoseEvent]:
        """All doses with ``0 <= time_days < horizon_days``, sorted by time.

        Parameters
        ----------
        horizon_days : float
            End of the simulation, in days (> 0).

        Returns
        -------
        list of DoseEvent

        Raises
        ------
        HorizonError
            If the horizon is not a finite positive number.
        ResourceError
            If more than :data:`MAX_EVENTS` doses fall before the horizon.
        """
        events = [ev for r in self.dose_runs(horizon_days) for ev in _run_events(r)]
        return sorted(events, key=DoseEvent.sort_key)


def _run_events(run: DoseRun) -> list[DoseEvent]:
    """The doses of ``run`` as DoseEvents: the first checked by DoseEvent, the others the
    same dose at later times (``time_days + k * interval_days``, finite and >= 0 when the
    first time and the interval are), made without checking each again."""
    times = run.times()
    if not times:
        return []
    first = DoseEvent(times[0], run.amount_ug, run.route, run.form)
    if not (math.isfinite(run.interval_days) and run.interval_days >= 0.0):
        return [first] + [DoseEvent(t, run.amount_ug, run.route, run.form) for t in times[1:]]
    fields = first.__dict__
    out = [first]
    for t in times[1:]:
        ev = object.__new__(DoseEvent)
        ev.__dict__.update(fields)
        ev.__dict__["time_days"] = float(t)
        out.append(ev)
    return out


def _check_limits(runs: Sequence[DoseRun], horizon: float) -> None:
    """Every dose limit of :mod:`b12pk.limits` on the doses before ``horizon`` days."""
    total = sum(r.count for r in runs)
    if total > MAX_EVENTS:
        raise ResourceError(f"{total:,} dose events up to day {_fmt(horizon)} exceed the limit "
                            f"of {MAX_EVENTS:,}; use a shorter horizon or fewer doses a day")
    _check_daily_limits(runs)
    parenteral = sum(r.count for r in runs if r.route in PARENTERAL_ROUTES)
    if parenteral > MAX_PARENTERAL_DOSES:
        raise ResourceError(
            f"{parenteral:,} injected or intranasal doses up to day {_fmt(horizon)} exceed the "
            f"limit of {MAX_PARENTERAL_DOSES:,} (each is simulated through its own "
            f"transient); use a shorter horizon or a longer interval")


def check_dose_limits(events: Sequence[Any], horizon_days: float) -> None:
    """Check dose events (``DoseEvent`` or ``(time_days, amount_ug, route, form)`` tuples)
    against the limits a regimen's doses meet: doses and µg per treatment day, parenteral
    doses and dose events in all (:mod:`b12pk.limits`).

    Raises
    ------
    DoseError, ResourceError
    """
    h = _check_positive(horizon_days, "the horizon")
    runs = [DoseRun(float(ev[0]), 0.0, 1, float(ev[1]), ev[2], ev[3])
            if isinstance(ev, tuple) else
            DoseRun(ev.time_days, 0.0, 1, ev.amount_ug, ev.route, ev.form) for ev in events]
    _check_limits([r for r in runs if r.time_days < h], h)


def _check_daily_limits(runs: Sequence[DoseRun]) -> None:
    """Refuse more than :data:`MAX_DOSES_PER_DAY` doses or :data:`MAX_DAILY_UG` µg on any
    treatment day."""
    if not runs:
        return
    for r in runs:   # one run over the limit: said before enumerating its doses
        if r.count > MAX_DOSES_PER_DAY and r.interval_days > 0:
            day = math.floor(r.time_days + 1e-9)
            first = min(r.count, math.floor((day + 1 - r.time_days - 1e-9)
                                            / r.interval_days) + 1)
            if first > MAX_DOSES_PER_DAY:
                raise DoseError(f"{first} doses on treatment day {day + 1} exceed the limit "
                                f"of {MAX_DOSES_PER_DAY} doses a day (hourly dosing)")
    times = np.concatenate([r.time_days + r.interval_days * np.arange(r.count) for r in runs])
    amounts = np.concatenate([np.full(r.count, r.amount_ug) for r in runs])
    days, index = np.unique(np.floor(times + 1e-9), return_inverse=True)  # treatment days
    counts = np.bincount(index)
    totals = np.bincount(index, weights=amounts)
    worst = int(np.argmax(counts))
    if counts[worst] > MAX_DOSES_PER_DAY:
        raise DoseError(f"{int(counts[worst])} doses on treatment day {days[worst] + 1:.0f} "
                        f"exceed the limit of {MAX_DOSES_PER_DAY} doses a day (hourly dosing)")
    worst = int(np.argmax(totals))
    if totals[worst] > MAX_DAILY_UG * (1 + 1e-12):
        raise DoseError(f"{totals[worst]:,.6g} µg on treatment day {days[worst] + 1:.0f} exceed "
                        f"the limit of {MAX_DAILY_UG:,.0f} µg (100 mg) a day")


def parse_regimen(text: str, *, open_ended_days: float | None = None,
                  default_form: str | None = "cyanocobalamin") -> Regimen:
    """Alias of :meth:`Regimen.parse`."""
    return Regimen.parse(text, open_ended_days=open_ended_days, default_form=default_form)


def regimen_variants(text: str, *, open_ended_days: float | None = None,
                     default_form: str | None = "cyanocobalamin") -> list[Regimen]:
    """Read a text that may hold ranges into one regimen per end of each range.

    Each range (``1000-2000 µg``, ``every 2-3 months``, ``for 6-7 days``,
    ``2 to 3 times weekly``) contributes its low and its high end; the result is
    every combination, in order: the first variant takes all low ends, the last
    all high ends, and the first range varies slowest. Duplicates are dropped.
    A text without ranges gives a one-element list.

    Parameters
    ----------
    text, open_ended_days, default_form
        As for :meth:`Regimen.parse`.

    Returns
    -------
    list of Regimen
        ``2 ** k`` regimens (fewer if some coincide) for ``k`` ranges.

    Raises
    ------
    RegimenSyntaxError
        As for :meth:`Regimen.parse`, or more than :data:`MAX_RANGES` ranges.
    """
    first = _Parser(text, (), open_ended_days, default_form)
    phases = first.parse()
    k = len(first.ranges)
    if k == 0:
        return [first.build(phases)]
    if k > MAX_RANGES:
        pos, raw = first.ranges[MAX_RANGES]
        raise first.error_at(pos, raw, f"too many ranges ({k}, giving {2 ** k:,} variants); at most "
                             f"{MAX_RANGES} are expanded ({2 ** MAX_RANGES} variants)",
                             cls=ResourceError)
    out: list[Regimen] = []
    for choice in itertools.product((0, 1), repeat=k):
        parser = _Parser(text, choice, open_ended_days, default_form)
        reg = parser.build(parser.parse())
        if reg not in out:
            out.append(reg)
    return out


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

_CHAR_MAP = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\u00a0": " ", "\u2007": " ", "\u2009": " ",
    "\u202f": " ", "\u200a": " ", "\u2002": " ", "\u2003": " ", "\t": " ",
    "\u00b5": "\u03bc", "\u2018": "'", "\u2019": "'",
})

_TOKEN_RE = re.compile(r"(?P<space>\s+)|(?P<num>\d+(?:\.\d+)?)|(?P<word>[^\W\d_][^\W_]*)"
                       r"|(?P<punct>[-,;:()/.])")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "word", "punct", "other", "eof"
    text: str  # lower-case for words
    start: int
    end: int


def _tokenize(text: str) -> list[_Tok]:
    norm = text.translate(_CHAR_MAP)
    toks: list[_Tok] = []
    pos = 0
    while pos < len(norm):
        m = _TOKEN_RE.match(norm, pos)
        if m is None:
            toks.append(_Tok("other", norm[pos], pos, pos + 1))
            pos += 1
            continue
        kind = m.lastgroup
        if kind != "space":
            toks.append(_Tok(kind, m.group().lower(), m.start(), m.end()))  # type: ignore[arg-type]
        pos = m.end()
    toks = _drop_soft_punctuation(toks)
    toks.append(_Tok("eof", "", len(text), len(text)))
    return toks


#: Prescription abbreviations, as the words b12pk reads (qd, bid, qw, q3months, ...).
_ABBREVIATIONS = {
    "qd": ("daily",), "od": ("daily",), "qday": ("daily",), "qdaily": ("daily",),
    "bid": ("twice", "daily"), "bd": ("twice", "daily"),
    "tid": ("three", "times", "daily"), "tds": ("three", "times", "daily"),
    "qid": ("four", "times", "daily"),
    "qw": ("weekly",), "qwk": ("weekly",), "qweek": ("weekly",), "qweekly": ("weekly",),
    "qmonth": ("monthly",), "qmo": ("monthly",), "qmonthly": ("monthly",),
}
_Q_EVERY = re.compile(r"^q(\d+)(d|days?|w|wks?|weeks?|mos?|months?)$")
_Q_UNITS = {"d": "days", "w": "weeks", "wk": "weeks", "mo": "months"}
_NOSTRIL_LEAD = frozenset({"in", "into", "per", "up", "one", "each", "a", "either", "the",
                           "both"})
_INJECTION_WORDS = frozenset({"injection", "injections", "injected", "shot", "shots"})


def _everyday(toks: list[_Tok]) -> tuple[list[_Tok], list[str]]:
    """Everyday prescription wording as the words the grammar reads: abbreviations (qd,
    bid, qw, q3months), "in one nostril" (intranasal) and, when no route is written,
    "injection" (read as IM, with a note). Returns the tokens and the readings noted."""
    out: list[_Tok] = []
    for t in toks:
        if t.kind != "word":
            out.append(t)
            continue
        words = _ABBREVIATIONS.get(t.text)
        m = _Q_EVERY.match(t.text) if words is None else None
        if m:
            unit = m[2].rstrip("s")
            words = ("every", m[1], _Q_UNITS.get(unit, unit + "s"))
        if words is None:
            out.append(t)
            continue
        out += [_Tok("num" if w.isdigit() else "word", w, t.start, t.end) for w in words]
    toks, notes = _nostrils(out), []

    def is_route(i: int) -> bool:
        two = "".join(x.text for x in toks[i:i + 2]) if i + 1 < len(toks) else ""
        return toks[i].kind == "word" and (_alias_key(toks[i].text) in _ROUTE_ALIASES
                                           or two in ("deepsc", "bymouth", "peros"))
    if not any(is_route(i) for i in range(len(toks))):
        for i, t in enumerate(toks):
            if t.kind == "word" and t.text in _INJECTION_WORDS:
                toks[i] = _Tok("word", _readings()["injection"]["route"], t.start, t.end)
                notes.append(f"'{t.text}' with no route is read as intramuscular (IM), the "
                             "route of every injection regimen in the source articles (write "
                             "the route to change it)")
                break
    return toks, notes


def _nostrils(toks: list[_Tok]) -> list[_Tok]:
    """'(in) (one) nostril(s)' -> the route 'intranasal', or nothing when a nasal route is
    already written."""
    nasal = any(t.kind == "word" and _ROUTE_ALIASES.get(_alias_key(t.text)) == "intranasal"
                for t in toks)
    out: list[_Tok] = []
    for t in toks:
        if t.kind == "word" and t.text in ("nostril", "nostrils"):
            start = t.start
            while out and out[-1].kind == "word" and out[-1].text in _NOSTRIL_LEAD:
                start = out.pop().start
            if not nasal:
                out.append(_Tok("word", "intranasal", start, t.end))
                nasal = True
            continue
        out.append(t)
    return out


@functools.lru_cache(maxsize=1)
def _readings() -> dict[str, Any]:
    """How open wording is read (``data/regimens/readings.toml``), read once."""
    import tomllib

    with open(data_path("regimens", "readings.toml"), "rb") as fh:
        return tomllib.load(fh)


def _drop_soft_punctuation(toks: list[_Tok]) -> list[_Tok]:
    """Drop colons, a final full stop and hyphens joining two words ("alternate-day")."""
    out = []
    for i, t in enumerate(toks):
        if t.text == ":" or (t.text == "." and i == len(toks) - 1):
            continue
        if t.text == "-" and 0 < i < len(toks) - 1:
            a, b = toks[i - 1], toks[i + 1]
            if a.kind == "word" and b.kind == "word" and a.end == t.start and t.end == b.start:
                continue
        out.append(t)
    return out


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

_AMOUNT_UNITS = {"μg": 1.0, "mcg": 1.0, "ug": 1.0, "microgram": 1.0, "micrograms": 1.0,
                 "mg": 1000.0, "milligram": 1000.0, "milligrams": 1000.0}
_TIME_UNITS = {"day": 1.0, "days": 1.0, "d": 1.0,
               "week": DAYS_PER_WEEK, "weeks": DAYS_PER_WEEK, "wk": DAYS_PER_WEEK,
               "wks": DAYS_PER_WEEK,
               "month": DAYS_PER_MONTH, "months": DAYS_PER_MONTH, "mo": DAYS_PER_MONTH,
               "mos": DAYS_PER_MONTH,
               "year": DAYS_PER_YEAR, "years": DAYS_PER_YEAR, "yr": DAYS_PER_YEAR,
               "yrs": DAYS_PER_YEAR,
               "hour": 1 / HOURS_PER_DAY, "hours": 1 / HOURS_PER_DAY, "h": 1 / HOURS_PER_DAY,
               "hr": 1 / HOURS_PER_DAY, "hrs": 1 / HOURS_PER_DAY}
_PER_WORDS = {"daily": 1.0, "weekly": DAYS_PER_WEEK, "monthly": DAYS_PER_MONTH,
              "fortnightly": 14.0, "quarterly": 90.0, "yearly": DAYS_PER_YEAR,
              "annually": DAYS_PER_YEAR}
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_AMBIGUOUS = {"biweekly": "'twice weekly' or 'every 2 weeks'",
              "bimonthly": "'twice monthly' or 'every 2 months'",
              "biannually": "'twice a year' or 'every 2 years'",
              "biannual": "'twice a year' or 'every 2 years'"}
_FILLER = frozenset({
    "of", "at", "as", "with", "via", "by", "the", "maintenance", "therapy", "treatment",
    "dosing", "dose", "injection", "injections", "injected", "administration", "administered",
    "supplementation", "supplement", "standard", "loading", "initial", "initially", "vitamin",
    "b12", "cobalamin", "given", "phase", "regimen", "prophylactic", "spray", "sprays",
    "shot", "shots",
})
_SEPARATOR_WORDS = ("then", "thereafter")
_IMPROVEMENT_ADJ = frozenset({"neurological", "neurologic", "clinical", "symptomatic",
                              "haematological", "hematological"})
_NORMALIZE_VERBS = frozenset({"normalize", "normalise", "normalizes", "normalises",
                              "normalized", "normalised"})

_EXPECT_AMOUNT = "an amount (e.g. 1000 mcg)"
_EXPECT_FORM = "a form (cyanocobalamin, hydroxocobalamin, methylcobalamin)"
_EXPECT_ROUTE = "a route (oral, sublingual, IM, deep SC, intranasal, IV)"
_EXPECT_FREQ = ("daily", "twice daily", "weekly", "monthly", "every", "N times weekly",
                "on alternate days", "on days", "once")
_EXPECT_DURATION = ("for", "until", "indefinitely")
_EXPECT_LONG_CHARS = 160
"""Longer lists of what was expected are summarised by kind (messages stay short)."""
_EXPECT_SEP = ("then", "followed by", ",", ";")


def _suggest(raw: str) -> list[str]:
    """The vocabulary word a misspelt word probably meant: one with the same letters in
    another order first ("mgc" is "mcg", not the 1000-fold "mg"), else the closest."""
    word = raw.lower()
    same = [w for w in _VOCABULARY if len(w) == len(word) and sorted(w) == sorted(word)]
    return same[:1] or difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=0.75)


def _expected_text(expected: Sequence[str]) -> str:
    """'one of: a, b, c', or, when that is long, the kinds of word expected."""
    full = "one of: " + ", ".join(expected)
    if len(full) <= _EXPECT_LONG_CHARS:
        return full
    kinds = {_EXPECT_AMOUNT: "an amount", _EXPECT_FORM: "a form", _EXPECT_ROUTE: "a route"}
    out: list[str] = []
    for item in expected:
        kind = kinds.get(item) or (
            "a frequency (daily, weekly, every ...)" if item in _EXPECT_FREQ else
            "a duration (for, until, indefinitely)" if item in _EXPECT_DURATION else
            "'then'" if item in _EXPECT_SEP else item)
        if kind not in out:
            out.append(kind)
    return ", ".join(out) + " (docs/regimen-language.md lists the words)"

_VOCABULARY = sorted(set(_ROUTE_ALIASES) | set(_FORM_ALIASES) | set(_AMOUNT_UNITS)
                     | set(_TIME_UNITS) | set(_PER_WORDS) | set(_NUMBER_WORDS) | _FILLER
                     | {"every", "once", "twice", "times", "alternate", "other", "on", "for",
                        "until", "then", "followed", "indefinitely", "lifelong", "life", "days",
                        "single", "from", "starting", "doses", "continue", "improvement",
                        "further", "levels"})


@dataclass
class _PhaseState:
    """Clauses read so far in one phase, with the token where each was read."""

    start_tok: _Tok
    amount: float | None = None
    form: str | None = None
    route: str | None = None
    schedule: Schedule | None = None
    duration: Duration = None
    duration_given: bool = False
    start_day: int | None = None
    continues: bool = False
    until_tok: _Tok | None = None
    end_tok: _Tok | None = None


class _Parser:
    """Recursive-descent reader of one regimen text.

    ``choices`` picks the end of each range met, in order (0 = low, 1 = high);
    ranges beyond it take the low end. ``ranges`` records (position, text) of
    every range met.
    """

    def __init__(self, text: str, choices: Sequence[int], open_ended_days: float | None,
                 default_form: str | None):
        if not isinstance(text, str):
            raise TypeError(f"regimen text must be a string, got {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise RegimenSyntaxError(f"cannot read regimen {echo(text)}: the text is "
                                     f"{len(text):,} characters long; accepted: at most "
                                     f"{MAX_TEXT_CHARS:,}", text[:MAX_TEXT_CHARS], 0)
        self.text = text
        self.toks, self.notes = _everyday(_tokenize(text))
        self.i = 0
        self.choices = tuple(choices)
        self.ranges: list[tuple[int, str]] = []
        if open_ended_days is not None:
            open_ended_days = _check_positive(open_ended_days, "open_ended_days")
        self.open_ended_days = open_ended_days
        self.default_form = None if default_form is None else normalize_form(default_form)
        self.last_pick = None
        self.last_range_pick: int | None = None

    # -- token helpers --------------------------------------------------------

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at(self, *words: str, k: int = 0) -> bool:
        return self.peek(k).text in words and self.peek(k).kind in ("word", "punct")

    def expect(self, words: Sequence[str], shown: Sequence[str] | None = None) -> _Tok:
        if self.at(*words):
            return self.next()
        raise self.error(self.peek(), expected=shown or words)

    # -- errors -----------------------------------------------------------------

    def _quote(self) -> str:
        return "cannot read regimen " + echo(self.text, quote='"')

    def error_at(self, pos: int, raw: str, reason: str = "", expected: Sequence[str] = (),
                 cls: type = RegimenSyntaxError) -> InputError:
        where = (f'"{raw}" (position {pos})' if raw
                 else f"the end of the text (position {pos})")
        msg = f"{self._quote()}: stopped at {where}"
        if reason:
            msg += f": {reason}"
        suggestion = _suggest(raw) \
            if not reason and raw.isalpha() and raw.lower() not in _VOCABULARY else []
        if suggestion:
            msg += f' (did you mean "{suggestion[0]}"?)'
        if expected:
            msg += "; expected " + _expected_text(expected)
        if cls is RegimenSyntaxError:
            return RegimenSyntaxError(msg, self.text, pos, tuple(expected))
        return cls(msg)

    def error(self, tok: _Tok, reason: str = "", expected: Sequence[str] = (),
              cls: type = RegimenSyntaxError) -> InputError:
        raw = self.text[tok.start:tok.end] if tok.kind != "eof" else ""
        return self.error_at(tok.start, raw, reason, expected, cls)

    # -- numbers ---------------------------------------------------------------

    def at_number(self, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "num" or (tok.kind == "word" and tok.text in _NUMBER_WORDS)

    def number(self, thousands: bool = False) -> float:
        tok = self.next()
        if tok.kind == "word" and tok.text in _NUMBER_WORDS:
            return float(_NUMBER_WORDS[tok.text])
        if tok.kind != "num":
            raise self.error(tok, expected=("a number",))
        digits, first = tok.text, tok
        self.check_digits(tok)
        if thousands and "." not in digits and len(digits) <= 3:
            while (self.peek().text == "," and self.peek().start == tok.end
                   and self.peek(1).kind == "num" and self.peek(1).start == self.peek().end
                   and len(self.peek(1).text.split(".")[0]) == 3):
                self.next()
                tok = self.next()
                digits += tok.text
        value = float(digits)
        if not math.isfinite(value):
            raise self.error(first, "the number is too large to read", ("a number",))
        return value

    def check_digits(self, tok: _Tok) -> None:
        """Refuse digits of mixed scripts ("0\u06605") and a dot before exactly three
        digits ("1.000"), which is a thousands separator in much of Europe."""
        zeros = {ord(c) - unicodedata.digit(c) for c in tok.text if c != "."}
        if len(zeros) > 1:
            raise self.error(tok, "the number mixes digits of different scripts",
                             ("a number written in one script, e.g. 1000",))
        ascii_text = "".join(str(unicodedata.digit(c)) if c != "." else c for c in tok.text)
        if re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", ascii_text):
            whole, frac = ascii_text.split(".")
            raise self.error(
                tok, f"{ascii_text!r} is ambiguous: a dot before three digits is a decimal "
                f"point in English but separates thousands in much of Europe",
                (f"{_fmt(float(ascii_text))} (decimal)",
                 f"{whole}{frac} or {whole},{frac} (thousands)"))

    def value(self, thousands: bool = False, same_as_last: bool = False) -> float:
        """A number or a range ``a-b`` / ``a to b``; a range gives the chosen end.

        With ``same_as_last`` a range restating the previous one ("1-2 mg" in
        "1000-2000 µg (1-2 mg)") takes the same end and is not counted again.
        """
        first = self.peek()
        lo = self.number(thousands)
        self.last_pick = None
        if not ((self.at("-") or self.at("to")) and self.at_number(1)):
            return lo
        self.next()
        hi = self.number(thousands)
        raw = self.text[first.start:self.toks[self.i - 1].end]
        if hi < lo:
            raise self.error_at(first.start, raw, "a range must give its low end first")
        if same_as_last:
            pick = self.last_range_pick
        else:
            index = len(self.ranges)
            self.ranges.append((first.start, raw))
            pick = self.choices[index] if index < len(self.choices) else 0
        self.last_pick = pick
        return hi if pick else lo

    def whole(self, what: str, ranges: bool = True) -> int:
        tok = self.peek()
        v = self.value() if ranges else self.number()
        if v != int(v):
            raise self.error(tok, f"{what} must be a whole number", cls=HorizonError)
        return int(v)

    def time_unit(self) -> float:
        tok = self.peek()
        if tok.kind == "word" and tok.text in _TIME_UNITS:
            self.next()
            return _TIME_UNITS[tok.text]
        raise self.error(tok, expected=("days", "weeks", "months", "years", "hours"))

    # -- top level ---------------------------------------------------------------

    def parse(self) -> list[_PhaseState]:
        if self.peek().kind == "eof":
            raise self.error(self.peek(), "the text is empty", (_EXPECT_AMOUNT,))
        states = [self.phase()]
        while self.peek().kind != "eof":
            sep = self.peek()
            self.separator()
            last = states[-1]
            if (isinstance(last.schedule, Repeating) or last.continues) and last.duration is None:
                raise self.error(sep, "the phase before never ends, so the next phase could "
                                      "never start; give it a duration",
                                 ("for N days", "for N weeks", "for N doses", "until day N"))
            if self.peek().kind == "eof":
                raise self.error(self.peek(), "a phase must follow", (_EXPECT_AMOUNT,) + _EXPECT_FREQ)
            states.append(self.phase())
        return states

    def at_separator(self) -> bool:
        tok = self.peek()
        if tok.kind == "punct" and tok.text in (",", ";"):
            return True
        if tok.kind != "word":
            return False
        return (tok.text in _SEPARATOR_WORDS
                or (tok.text == "followed" and self.at("by", k=1))
                or (tok.text == "and" and self.at("then", k=1)))

    def separator(self) -> None:
        if self.at(",", ";"):
            self.next()
        if self.at(*_SEPARATOR_WORDS):
            self.next()
        elif self.at("followed"):
            self.next()
            self.next()
        elif self.at("and") and self.at("then", k=1):
            self.next()
            self.next()

    def phase(self) -> _PhaseState:
        st = _PhaseState(self.peek())
        while self.peek().kind != "eof" and not self.at_separator():
            self.clause(st)
        st.end_tok = self.peek()
        return st

    # -- clauses ---------------------------------------------------------------------

    def set(self, st: _PhaseState, name: str, value: Any, tok: _Tok) -> None:
        if name == "duration":
            if st.duration_given:
                raise self.error(tok, "the phase already has a duration")
            st.duration_given = True
        elif getattr(st, name) is not None:
            what = {"schedule": "frequency", "start_day": "start day"}.get(name, name)
            raise self.error(tok, f"the phase already has a {what}")
        setattr(st, name, value)

    def expected_here(self, st: _PhaseState) -> tuple[str, ...]:
        exp: list[str] = []
        if st.amount is None:
            exp.append(_EXPECT_AMOUNT)
        if st.form is None:
            exp.append(_EXPECT_FORM)
        if st.route is None:
            exp.append(_EXPECT_ROUTE)
        if st.schedule is None:
            exp.extend(_EXPECT_FREQ)
        if not st.duration_given:
            exp.extend(_EXPECT_DURATION)
        exp.extend(_EXPECT_SEP)
        return tuple(exp)

    def clause(self, st: _PhaseState) -> None:
        tok = self.peek()
        if self.at_number():
            return self.number_clause(st)
        if tok.kind != "word":
            raise self.error(tok, expected=self.expected_here(st))
        w = tok.text
        two = w + self.peek(1).text if self.peek(1).kind == "word" else None
        if two and two in _FORM_ALIASES:
            self.next(), self.next()
            return self.set(st, "form", _FORM_ALIASES[two], tok)
        if w in _FORM_ALIASES:
            self.next()
            return self.set(st, "form", _FORM_ALIASES[w], tok)
        if (two and two in _ROUTE_ALIASES) or w in _ROUTE_ALIASES:
            return self.route_clause(st)
        if w in _AMBIGUOUS or (w == "bi" and self.peek(1).text in ("weekly", "monthly")):
            word = w if w in _AMBIGUOUS else "bi" + self.peek(1).text
            raise self.error(tok, f"'{word}' is ambiguous; write {_AMBIGUOUS[word]}",
                             ("twice weekly", "every 2 weeks"))
        handler = {
            "for": self.for_clause, "until": self.until_clause, "days": self.window_clause,
            "indefinitely": self.indefinite_clause, "lifelong": self.indefinite_clause,
            "from": self.start_clause, "starting": self.start_clause,
            "beginning": self.start_clause,
            "continue": self.continue_clause, "continued": self.continue_clause,
        }.get(w)
        if handler is not None:
            return handler(st)
        schedule = self.try_schedule()
        if schedule is not None:
            return self.set(st, "schedule", schedule, tok)
        if w in _FILLER:
            self.next()
            return None
        if w == "or":
            raise self.error(tok, "alternatives joined by 'or' are separate regimens; "
                                  "write each one on its own")
        raise self.error(tok, expected=self.expected_here(st))

    def number_clause(self, st: _PhaseState) -> None:
        tok = self.peek()
        value = self.value(thousands=True)
        nxt = self.peek()
        if nxt.kind == "word" and nxt.text in _AMOUNT_UNITS:
            return self.amount_clause(st, tok, value)
        if self.at("times", "x"):
            self.next()
            return self.set(st, "schedule", self.times_schedule(tok, value), tok)
        if self.at("-") and self.peek(1).text in _PER_WORDS:  # "3-monthly"
            self.next()
            cycle = _PER_WORDS[self.next().text] * value
            return self.set(st, "schedule", self.make(tok, Repeating, cycle), tok)
        raise self.error(nxt, expected=("mcg", "µg", "mg", "times"))

    def make(self, tok: _Tok, cls: type, *args: Any) -> Any:
        """Build a schedule/duration, reporting invalid values at ``tok``."""
        try:
            return cls(*args)
        except InputError as exc:
            raise self.error(tok, str(exc), cls=type(exc)) from None

    def amount_clause(self, st: _PhaseState, tok: _Tok, value: float) -> None:
        self.last_range_pick = self.last_pick
        amount = value * _AMOUNT_UNITS[self.next().text]
        try:
            amount = validate_dose(amount)
        except DoseError as exc:
            raise self.error(tok, str(exc), cls=DoseError) from None
        if self.at("(") and self.at_number(1):  # "1 mg (1000 µg)"
            self.next()
            again_tok = self.peek()
            again = self.value(thousands=True, same_as_last=True)
            unit = self.expect(tuple(_AMOUNT_UNITS), ("mcg", "µg", "mg"))
            again *= _AMOUNT_UNITS[unit.text]
            if abs(again - amount) > 1e-9 * amount:
                raise self.error(again_tok, f"the amount in parentheses ({_fmt(again)} µg) "
                                            f"differs from {_fmt(amount)} µg")
            self.expect((")",))
        self.set(st, "amount", amount, tok)
        if self.at("/"):  # "1000 µg/day"
            slash = self.next()
            unit = self.time_unit()
            self.set(st, "schedule", self.make(slash, Repeating, unit), slash)

    def route_clause(self, st: _PhaseState) -> None:
        tok = self.peek()
        route = self.read_route()
        if self.at("(") and self.peek(1).kind == "word":  # "intramuscular (IM)"
            self.next()
            again_tok = self.peek()
            again = self.read_route()
            if again != route:
                raise self.error(again_tok, f"the route in parentheses differs from {route!r}")
            self.expect((")",))
        self.set(st, "route", route, tok)

    def read_route(self) -> str:
        w = self.peek().text
        two = w + self.peek(1).text if self.peek(1).kind == "word" else None
        if two and two in _ROUTE_ALIASES:
            self.next(), self.next()
            return _ROUTE_ALIASES[two]
        if w in _ROUTE_ALIASES:
            self.next()
            return _ROUTE_ALIASES[w]
        raise self.error(self.peek(), expected=(_EXPECT_ROUTE,))

    # -- schedules ---------------------------------------------------------------------

    def try_schedule(self) -> Schedule | None:
        """Read a frequency if one starts here, else return None (nothing consumed)."""
        tok = self.peek()
        w = tok.text
        if w in _PER_WORDS:
            self.next()
            return Repeating(_PER_WORDS[w])
        if w == "every":
            return self.every_schedule()
        if w == "once":
            self.next()
            if self.at("only"):
                self.next()
            if self.at(*_PER_WORDS) or self.at("every", "a", "per"):
                return self.try_schedule() or self.fail_frequency()
            return SingleDose()
        if w in ("twice", "thrice"):
            self.next()
            return self.times_schedule(tok, 2.0 if w == "twice" else 3.0)
        if w == "single" or (w == "a" and self.at("single", k=1)):
            if w == "a":
                self.next()
            self.next()
            self.expect(("dose", "injection"))
            return SingleDose()
        if w in ("a", "per") and self.peek(1).text in _TIME_UNITS:
            self.next()
            return self.make(tok, Repeating, self.time_unit())
        if w == "alternate" or (w == "on" and self.at("alternate", k=1)):
            if w == "on":
                self.next()
            self.next()
            self.expect(("days", "day"))
            return Repeating(2.0)
        if w == "on" and self.at("day", "days", k=1):
            return self.day_list()
        if w == "at" and self.at("times", "time", k=1):
            return self.time_list()
        return None

    def fail_frequency(self) -> Schedule:
        raise self.error(self.peek(), expected=_EXPECT_FREQ)

    def every_schedule(self) -> Schedule:
        tok = self.next()  # every
        if self.at("other", "second"):
            self.next()
            return self.make(tok, Repeating, 2.0 * self.time_unit())
        count = self.value() if self.at_number() else 1.0
        return self.make(tok, Repeating, count * self.time_unit())

    def times_schedule(self, tok: _Tok, n: float) -> Schedule:
        """After "N times" / "twice": daily, weekly, a week, per day, every N units."""
        if n != int(n) or n < 1:
            raise self.error(tok, "a number of doses per period must be a whole number >= 1",
                             cls=HorizonError)
        nxt = self.peek()
        if nxt.text in _PER_WORDS:
            self.next()
            cycle = _PER_WORDS[nxt.text]
        elif nxt.text in ("a", "per", "/") and self.peek(1).text in _TIME_UNITS:
            self.next()
            cycle = self.time_unit()
        elif nxt.text == "every":
            cycle = self.every_schedule().cycle_days  # type: ignore[union-attr]
        elif nxt.text in _AMBIGUOUS:
            raise self.error(nxt, f"'{nxt.text}' is ambiguous; write {_AMBIGUOUS[nxt.text]}",
                             ("twice weekly", "every 2 weeks"))
        else:
            raise self.error(nxt, expected=("daily", "weekly", "monthly", "a day", "a week",
                                            "per week", "every N days"))
        return self.make(tok, Repeating, cycle, int(n))

    def day_list(self) -> AtTimes:
        """``on day 1`` / ``on days 1, 3, 7 and 10`` (treatment days, day 1 = t 0)."""
        self.next()  # on
        days_tok = self.next()
        days: list[float] = []
        while True:
            tok = self.peek()
            if tok.kind != "num":
                raise self.error(tok, expected=("a day number",))
            day = self.number()
            if day != int(day) or day < 1:
                raise self.error(tok, "days are whole numbers counted from day 1 (the first day "
                                      "of treatment); write 'at times 0.5, 2 days' for times "
                                      "within a day", cls=HorizonError)
            if days and day - 1 < days[-1]:
                raise self.error(tok, "dose days must not decrease", cls=HorizonError)
            days.append(day - 1)
            if self.at(",", "and") and self.peek(1).kind == "num":
                self.next()
                continue
            if self.at(",") and self.at("and", k=1) and self.peek(2).kind == "num":
                self.next(), self.next()
                continue
            break
        if self.at("-") and self.peek(1).kind == "num":
            raise self.error(self.peek(), "'on days A-B' is not a list; write 'daily for days "
                                          "A-B'", ("daily for days A-B",))
        return self.make(days_tok, AtTimes, tuple(days))

    def time_list(self) -> AtTimes:
        """``at times 0, 0.5, 2 days`` (0-based times in days)."""
        self.next()  # at
        tok = self.next()
        times = [self.number()]
        while self.at(",", "and") and self.peek(1).kind == "num":
            self.next()
            times.append(self.number())
        self.expect(("days", "day"))
        return self.make(tok, AtTimes, tuple(times))

    # -- durations and starts ---------------------------------------------------------------

    def for_clause(self, st: _PhaseState) -> None:
        tok = self.next()  # for
        if self.at("life"):
            self.next()
            return self.set(st, "duration", None, tok)
        if self.at("maintenance", "therapy", "treatment"):
            return None  # "for maintenance (therapy)": words, no duration
        if self.at("days", "day") and self.peek(1).kind == "num":
            return self.window_clause(st, tok)
        if not self.at_number():
            raise self.error(self.peek(), expected=("N days", "N weeks", "N months", "N doses",
                                                    "days A-B", "life"))
        count_tok = self.peek()
        value = self.value()
        if self.at("doses", "dose", "injections"):
            self.next()
            if value != int(value):
                raise self.error(count_tok, "a number of doses must be a whole number",
                                 cls=HorizonError)
            return self.set(st, "duration", self.make(count_tok, ForDoses, int(value)), tok)
        if not (self.peek().kind == "word" and self.peek().text in _TIME_UNITS):
            raise self.error(self.peek(), expected=("days", "weeks", "months", "years", "doses"))
        days = value * self.time_unit()
        self.set(st, "duration", self.make(count_tok, ForDays, days), tok)

    def window_clause(self, st: _PhaseState, tok: _Tok | None = None) -> None:
        """``days 1-10`` / ``for days 1-10``: first and last treatment day of the phase."""
        tok = tok or self.peek()
        if self.at("days", "day"):
            self.next()
        first_tok = self.peek()
        first = self.whole("a day number", ranges=False)
        self.expect(("-", "to", "through"), ("-", "to"))
        last = self.whole("a day number", ranges=False)
        if first < 1 or last < first:
            raise self.error(first_tok, f"days {first}-{last} is not a window of treatment days "
                                        f"(day 1 is the first)", cls=HorizonError)
        self.set(st, "start_day", first, first_tok)
        self.set(st, "duration", UntilDay(last), tok)

    def start_clause(self, st: _PhaseState) -> None:
        tok = self.next()  # from / starting / beginning
        if self.at("on"):
            self.next()
        self.expect(("day",))
        day = self.whole("a day number")
        if day < 1:
            raise self.error(tok, "days are counted from day 1", cls=HorizonError)
        self.set(st, "start_day", day, tok)

    def indefinite_clause(self, st: _PhaseState) -> None:
        tok = self.next()
        self.set(st, "duration", None, tok)

    def continue_clause(self, st: _PhaseState) -> None:
        tok = self.next()
        if st.continues:
            raise self.error(tok, "'continue' given twice")
        st.continues = True

    def until_clause(self, st: _PhaseState) -> None:
        tok = self.next()  # until
        if self.at("day"):
            self.next()
            day_tok = self.peek()
            day = self.whole("a day number")
            return self.set(st, "duration", self.make(day_tok, UntilDay, day), tok)
        if self.at("there") and self.at("is", k=1):
            self.next(), self.next()
        if self.at("no"):
            condition = self.improvement_condition()
        elif self.at("levels", "level", "serum", "b12"):
            condition = self.levels_condition()
        else:
            raise self.error(self.peek(), expected=("day N", "no further improvement",
                                                    "levels normalize"))
        st.until_tok = tok
        self.set(st, "duration", UntilCondition(condition, self.open_stop()), tok)

    def improvement_condition(self) -> str:
        self.next()  # no
        self.expect(("further",))
        if self.at(*_IMPROVEMENT_ADJ):
            self.next()
        self.expect(("improvement",))
        if self.at("in") and self.at("symptoms", k=1):
            self.next(), self.next()
        elif self.at("is") and self.at("observed", "seen", k=1):
            self.next(), self.next()
        return "no further improvement"

    def levels_condition(self) -> str:
        while self.at("serum", "b12"):
            self.next()
        self.expect(("levels", "level"))
        if self.at("are", "return") and self.at("normal", "to", k=1):
            self.next()
            if self.at("to"):
                self.next()
            self.expect(("normal",))
        else:
            self.expect(tuple(_NORMALIZE_VERBS), ("normalize",))
        return "levels normalize"

    def open_stop(self) -> float | None:
        """``(max 6 weeks)`` after an open-ended condition, in days."""
        if not (self.at("(") and self.at("max", "maximum", "at", "up", k=1)):
            return None
        self.next()
        if self.at("at"):
            self.next()
            self.expect(("most",))
        elif self.at("up"):
            self.next()
            self.expect(("to",))
        else:
            self.next()
        tok = self.peek()
        days = self.value() * self.time_unit()
        self.expect((")",))
        return self.make(tok, ForDays, days).days

    # -- building -------------------------------------------------------------------------

    def build(self, states: list[_PhaseState]) -> Regimen:
        phases: list[Phase] = []
        for st in states:
            phases.append(self.build_phase(st, phases[-1] if phases else None))
        try:
            regimen = Regimen(tuple(phases))
        except HorizonError as exc:
            raise HorizonError(f"{self._quote()}: {exc}") from None
        for text in self.notes:
            b12pk_warn(f"regimen {echo(self.text, quote=chr(34))}: {text}", stacklevel=4)
        return regimen

    def note(self, text: str) -> None:
        """A reading of open wording, said once per regimen as a warning when it is built."""
        if text not in self.notes:
            self.notes.append(text)

    def build_phase(self, st: _PhaseState, prev: Phase | None) -> Phase:
        end = st.end_tok
        assert end is not None
        amount = st.amount if st.amount is not None else (prev and prev.amount_ug)
        if amount is None:
            raise self.error(end, "no amount given", (_EXPECT_AMOUNT,))
        route = st.route or (prev and prev.route)
        if route is None:
            route = _readings()["no_route"]["route"]
            self.note(f"no route given: read as {_ROUTE_WORDS[route]} (a dose with no route "
                      "is read as a supplement taken by mouth; write the route to change it)")
        form = st.form or (prev and prev.form) or self.default_form
        if form is None:
            raise self.error(end, "no form given", (_EXPECT_FORM,))
        schedule = st.schedule
        if st.continues:
            if prev is None or schedule is not None:
                raise self.error(st.start_tok, "'continue' repeats the previous phase's "
                                               "frequency, so it needs a previous phase and "
                                               "no frequency of its own")
            schedule = prev.schedule
        if schedule is None:
            raise self.error(end, "no frequency given", _EXPECT_FREQ)
        duration = self.open_duration(st)
        try:
            return Phase(amount, route, form, schedule, duration, st.start_day)
        except HorizonError as exc:
            raise self.error(st.start_tok, str(exc), cls=HorizonError) from None

    def open_duration(self, st: _PhaseState) -> Duration:
        dur = st.duration
        if isinstance(dur, UntilCondition) and dur.max_days is None:
            days = self.open_ended_days
            if days is None:
                reading = _readings()["open_endings"][dur.condition]
                days = float(reading["days"])
                self.note(f"'until {dur.condition}' read as {_plural(*_days_in_unit(days))} "
                          f"({reading['status']}; write 'until {dur.condition} (max N weeks)' "
                          "to set it)")
            dur = UntilCondition(dur.condition, days)
        return dur


_RANGE_SPLIT = re.compile(r"\s*(?:-|\u2013|\u2014|\bto\b)\s*")


def labelled_variants(text: str, *, open_ended_days: float | None = None,
                      default_form: str | None = "cyanocobalamin") -> list[tuple[str, Regimen]]:
    """:func:`regimen_variants` with a label for each: the text with every range replaced
    by the end that variant takes ("1000-2000 mcg oral daily" -> "1000 mcg oral daily",
    "2000 mcg oral daily"). A text without ranges gives ``[(text, regimen)]``.

    Raises as :func:`regimen_variants`.
    """
    first = _Parser(text, (), open_ended_days, default_form)
    first.parse()
    ranges = list(first.ranges)
    if len(ranges) > MAX_RANGES:
        return [(text, r) for r in regimen_variants(text, open_ended_days=open_ended_days,
                                                     default_form=default_form)]
    out: list[tuple[str, Regimen]] = []
    seen: list[Regimen] = []
    for choice in itertools.product((0, 1), repeat=len(ranges)):
        parser = _Parser(text, choice, open_ended_days, default_form)
        reg = parser.build(parser.parse())
        if reg in seen:
            continue
        seen.append(reg)
        label = text
        for (pos, raw), pick in sorted(zip(ranges, choice), reverse=True):
            ends = _RANGE_SPLIT.split(raw.strip(), maxsplit=1)
            end = ends[pick] if len(ends) == 2 else raw
            label = label[:pos] + end + label[pos + len(raw):]
        out.append((" ".join(label.split()), reg))
    return out


# ---------------------------------------------------------------------------
# TOML regimen files
# ---------------------------------------------------------------------------

_TEXT_KEYS = {"text": str, "label": str, "open_ended_days": float, "variants": bool}
_STRUCT_KEYS = {"label": str, "amount_ug": float, "route": str, "form": str,
                "interval_days": float, "start_day": int, "n_doses": int}


def load_regimens(path: str | Path) -> list[Regimen]:
    """Read regimens from a TOML file.

    The file holds one ``[regimen]`` table or a ``[[regimen]]`` list. Each entry
    has either ``text = "..."`` (the regimen language; optional
    ``open_ended_days`` and ``variants = true`` to expand ranges) or structured
    fields ``amount_ug``, ``route``, ``form`` (default cyanocobalamin),
    ``interval_days`` (omit for a single dose), ``start_day`` (default 1) and
    ``n_doses`` (default: indefinitely). ``label`` is optional for both.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Regimen
        In file order (range variants in :func:`regimen_variants` order, labelled
        ``"label [i/n]"``).

    Raises
    ------
    FileFormatError
        Missing, empty, binary, non-UTF-8 or invalid TOML files, wrong types,
        unknown keys and unreadable regimen text; the message names the file and
        the entry.
    ResourceError
        A file over :data:`MAX_TOML_BYTES` (10 MB), refused without reading it.
    """
    p = Path(path)
    doc, _ = read_toml(p, MAX_TOML_BYTES, "a TOML regimen file")
    return regimens_from_toml(doc, source=echo_path(p))


def regimens_from_toml(doc: Mapping[str, Any], source: str = "<toml>") -> list[Regimen]:
    """Build regimens from a parsed TOML document (see :func:`load_regimens`)."""
    if "regimen" not in doc:
        found = ", ".join(sorted(doc)) or "nothing"
        raise FileFormatError(f"{source}: no [regimen] table or [[regimen]] list (found: {found})")
    entries = doc["regimen"]
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        raise FileFormatError(f"{source}: 'regimen' must be a table or a list of tables, "
                              f"got {type(entries).__name__}")
    if not entries:
        raise FileFormatError(f"{source}: the [[regimen]] list is empty")
    out: list[Regimen] = []
    for i, entry in enumerate(entries, start=1):
        where = f"{source}: regimen {i}"
        if len(out) > MAX_VARIANTS:
            break
        if not isinstance(entry, Mapping):
            raise FileFormatError(f"{where}: must be a table, got {type(entry).__name__}")
        try:
            out.extend(_entry_regimens(entry, where))
        except FileFormatError:
            raise
        except (InputError, TypeError) as exc:
            raise FileFormatError(f"{where}: {exc}") from exc
    if len(out) > MAX_VARIANTS:
        raise ResourceError(f"{source}: the file gives more than {MAX_VARIANTS} regimens "
                            f"(ranges expand to one regimen per end); accepted: at most "
                            f"{MAX_VARIANTS} in one file")
    return out


def _check_types(entry: Mapping[str, Any], keys: Mapping[str, type], where: str) -> None:
    for key, value in entry.items():
        if key not in keys:
            raise FileFormatError(f"{where}: unknown key {key!r}; accepted keys: "
                                  f"{', '.join(keys)}")
        want = keys[key]
        ok = (isinstance(value, want) and not (want is int and isinstance(value, bool))) \
            if want is not float else _is_real(value)
        if not ok:
            name = {str: "a string", float: "a number", int: "an integer",
                    bool: "true or false"}[want]
            raise FileFormatError(f"{where}: {key!r} must be {name}, got {value!r}")


def _entry_regimens(entry: Mapping[str, Any], where: str) -> list[Regimen]:
    label = entry.get("label")
    if "text" in entry:
        _check_types(entry, _TEXT_KEYS, where)
        text = entry["text"]
        kwargs = {"open_ended_days": entry.get("open_ended_days")}
        if not entry.get("variants", False):
            return [Regimen.parse(text, **kwargs).with_label(label)]
        variants = regimen_variants(text, **kwargs)
        if len(variants) > MAX_VARIANTS:
            raise ResourceError(f"{where}: the ranges in {echo(text)} expand to "
                                f"{len(variants):,} regimens; accepted: at most {MAX_VARIANTS}")
        if len(variants) == 1:
            return [variants[0].with_label(label)]
        n = len(variants)
        return [r.with_label(None if label is None else f"{label} [{k}/{n}]")
                for k, r in enumerate(variants, start=1)]
    if "amount_ug" not in entry:
        raise FileFormatError(f"{where}: needs 'text' or structured fields ('amount_ug', "
                              f"'route', ...)")
    _check_types(entry, _STRUCT_KEYS, where)
    if "route" not in entry:
        raise FileFormatError(f"{where}: needs 'route' ({_ROUTE_HELP})")
    form = entry.get("form", "cyanocobalamin")
    if "interval_days" not in entry:
        if "n_doses" in entry:
            raise FileFormatError(f"{where}: 'n_doses' needs 'interval_days'")
        reg = Regimen.once(entry["amount_ug"], entry["route"], form, entry.get("start_day", 1))
    else:
        reg = Regimen.every(entry["interval_days"], entry["amount_ug"], entry["route"], form,
                            entry.get("start_day", 1), entry.get("n_doses"))
    return [reg.with_label(label)]


def _toml_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def regimens_to_toml(regimens: Sequence[Regimen]) -> str:
    """TOML text (a ``[[regimen]]`` list of canonical texts) that :func:`load_regimens` reads back."""
    blocks = []
    for reg in regimens:
        lines = ["[[regimen]]"]
        if reg.label is not None:
            lines.append(f"label = {_toml_string(reg.label)}")
        lines.append(f"text = {_toml_string(reg.to_text())}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
