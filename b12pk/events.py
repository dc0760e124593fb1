"""NONMEM-style event tables: export regimens to, and import them from, dosing datasets.

The table follows the conventions NONMEM, mrgsolve, rxode2/nlmixr2 and Pharmpy share:

======  ==================================================================
Column  Meaning
======  ==================================================================
ID      patient (subject) number, a positive whole number
TIME    time of the row after the start of treatment (day 1 = 0); **days**
        by default, hours with ``time_unit="hours"``
AMT     dose amount in **µg** (0 on observation rows)
CMT     dosing compartment, see :data:`CMT_BY_ROUTE`
EVID    1 = dose, 0 = observation (other event types are not supported)
II      interval between repeated doses, same unit as TIME (0 if none)
ADDL    number of *additional* doses at TIME + k*II, k = 1..ADDL
MDV     1 on dose rows, 0 on observation rows (written; ignored on import)
ROUTE   b12pk route name (oral, sublingual, im, deep-sc, intranasal, iv)
FORM    b12pk cobalamin form (cyanocobalamin, hydroxocobalamin, methylcobalamin)
======  ==================================================================

Compartments: 1 = gut lumen (oral, sublingual), 2 = nasal mucosa (intranasal),
3 = injection depot (IM, deep SC), 4 = free plasma pool (IV). Because CMT 1 and 3
are shared by two routes each, ROUTE says which; on import a missing ROUTE
column falls back to oral (1), intranasal (2), IM (3) and IV (4), and a missing
FORM column to ``default_form``.

NONMEM models usually count time in hours; pass ``time_unit="hours"`` to write
or read TIME and II in hours (converted with 1 day = 24 h; values then round
trip to about 1e-12 days instead of exactly).
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import pandas as pd

from .errors import EventTableError, InputError, ResourceError
from .regimen import (
    MAX_EVENTS,
    _read_limited,
    DoseEvent,
    Regimen,
    normalize_form,
    normalize_route,
    validate_dose,
)

__all__ = [
    "CMT_BY_ROUTE",
    "ROUTE_BY_CMT",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "to_event_table",
    "write_event_table",
    "read_event_table",
]

#: Dosing compartment of each route.
CMT_BY_ROUTE = {"oral": 1, "sublingual": 1, "intranasal": 2, "im": 3, "deep-sc": 3, "iv": 4}
#: Route assumed for a compartment when the table has no ROUTE column.
ROUTE_BY_CMT = {1: "oral", 2: "intranasal", 3: "im", 4: "iv"}
#: Compartment written on observation rows (the free plasma pool).
OBSERVATION_CMT = 4

COLUMNS = ("ID", "TIME", "AMT", "CMT", "EVID", "II", "ADDL", "MDV", "ROUTE", "FORM")
REQUIRED_COLUMNS = ("ID", "TIME", "AMT", "CMT", "EVID")

_TIME_SCALE = {"days": 1.0, "hours": 24.0}

#: Largest CSV event table :func:`read_event_table` reads, in bytes (100 MB).
MAX_EVENT_TABLE_BYTES = 100_000_000

RegimenSet = Union[Regimen, Mapping[int, Regimen], Sequence[Regimen]]


def _time_scale(time_unit: str) -> float:
    if time_unit not in _TIME_SCALE:
        raise EventTableError(f"unknown time_unit {time_unit!r}; accepted: days, hours")
    return _TIME_SCALE[time_unit]


def _as_mapping(regimens: RegimenSet) -> dict[int, Regimen]:
    if isinstance(regimens, Regimen):
        return {1: regimens}
    if isinstance(regimens, Mapping):
        items = dict(regimens)
    elif isinstance(regimens, Sequence) and not isinstance(regimens, str):
        items = {i: r for i, r in enumerate(regimens, start=1)}
    else:
        raise TypeError(f"expected a Regimen, a mapping ID -> Regimen or a list of regimens, "
                        f"got {type(regimens).__name__}")
    if not items:
        raise EventTableError("no regimens to export")
    for pid, reg in items.items():
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            raise EventTableError(f"patient IDs must be whole numbers >= 1, got {pid!r}")
        if not isinstance(reg, Regimen):
            raise TypeError(f"ID {pid}: expected a Regimen, got {type(reg).__name__}")
    return items


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def to_event_table(regimens: RegimenSet, horizon_days: float, *, time_unit: str = "days",
                   observation_times: Sequence[float] = ()) -> pd.DataFrame:
    """Dose rows (and optional observation rows) for one or more patients.

    Repeating doses are written compactly: one row per run of equally spaced
    doses, with II (interval) and ADDL (additional doses).

    Parameters
    ----------
    regimens : Regimen, mapping of int to Regimen, or sequence of Regimen
        A single regimen is patient ID 1; a sequence gives IDs 1, 2, ...
    horizon_days : float
        Only doses with ``0 <= t < horizon_days`` (days) are written.
    time_unit : {"days", "hours"}
        Unit of TIME and II.
    observation_times : sequence of float
        Observation times (in ``time_unit``) added as EVID 0 rows for every ID.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, sorted by ID and TIME (observations before doses
        at the same time, i.e. troughs).
    """
    scale = _time_scale(time_unit)
    patients = _as_mapping(regimens)
    obs = [float(t) for t in observation_times]
    for t in obs:
        if not math.isfinite(t) or t < 0:
            raise EventTableError(f"observation times must be finite and >= 0, got {t!r}")
    rows: list[dict[str, Any]] = []
    for pid in sorted(patients):
        for run in patients[pid].dose_runs(horizon_days):
            rows.append({
                "ID": pid, "TIME": run.time_days * scale, "AMT": run.amount_ug,
                "CMT": CMT_BY_ROUTE[run.route], "EVID": 1,
                "II": run.interval_days * scale if run.count > 1 else 0.0,
                "ADDL": run.count - 1, "MDV": 1, "ROUTE": run.route, "FORM": run.form,
            })
        for t in obs:
            rows.append({"ID": pid, "TIME": t, "AMT": 0.0, "CMT": OBSERVATION_CMT, "EVID": 0,
                         "II": 0.0, "ADDL": 0, "MDV": 0, "ROUTE": "", "FORM": ""})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.sort_values(["ID", "TIME", "EVID"], kind="stable").reset_index(drop=True)
    return table.astype({"ID": int, "TIME": float, "AMT": float, "CMT": int, "EVID": int,
                         "II": float, "ADDL": int, "MDV": int})


def write_event_table(path: str | Path, regimens: RegimenSet, horizon_days: float, *,
                      time_unit: str = "days",
                      observation_times: Sequence[float] = ()) -> Path:
    """Write :func:`to_event_table` to a CSV file and return its path.

    Floats are written with full precision, so reading the file back gives the
    same dose times.
    """
    table = to_event_table(regimens, horizon_days, time_unit=time_unit,
                           observation_times=observation_times)
    out = Path(path)
    table.to_csv(out, index=False)
    return out


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------

def _load(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source.copy(), "event table"
    if not isinstance(source, (str, Path)):
        raise TypeError(f"expected a path or a pandas DataFrame, got {type(source).__name__}")
    p = Path(source)
    try:
        data = _read_limited(p, MAX_EVENT_TABLE_BYTES, "a CSV event table")
    except FileNotFoundError:
        raise EventTableError(f"{p}: no such event table file") from None
    except OSError as exc:
        raise EventTableError(f"{p}: cannot read the event table ({exc.strerror})") from None
    if b"\x00" in data:
        raise EventTableError(f"{p}: looks like a binary file, not a CSV event table")
    if not data.strip():
        raise EventTableError(f"{p}: the file is empty; expected a CSV event table with "
                              f"columns {', '.join(REQUIRED_COLUMNS)}")
    try:
        with warnings.catch_warnings():
            # index_col=False: a row with more fields than the header is an error, not
            # silently read with its first cells taken as an index (shifting every column)
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False,
                                skipinitialspace=True, encoding="utf-8-sig", index_col=False)
    except pd.errors.ParserWarning:
        raise EventTableError(f"{p}: not a readable CSV event table (a row has more fields "
                              f"than the header line); accepted: rows with at most one field "
                              f"per column name") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise EventTableError(f"{p}: not a readable CSV event table ({exc})") from None
    return table, str(p)


def _normalise_columns(table: pd.DataFrame, where: str) -> pd.DataFrame:
    names = [str(c).strip().upper() for c in table.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EventTableError(f"{where}: duplicate column(s) {', '.join(dupes)}")
    table.columns = names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise EventTableError(f"{where}: missing column(s) {', '.join(missing)}; an event "
                              f"table needs {', '.join(REQUIRED_COLUMNS)}")
    if table.empty:
        raise EventTableError(f"{where}: the table has no rows")
    return table


def _cell_number(value: Any, row: int, column: str, where: str) -> float:
    """A cell as a float; empty cells and NONMEM's "." read as NaN."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "."):
            return math.nan
        if "_" in text:  # float() would read "1_000" as 1000; CSV numbers have no underscores
            raise EventTableError(f"{where}: row {row}, column {column}: {value!r} is not a "
                                  f"number")
        try:
            return float(text)
        except ValueError:
            raise EventTableError(f"{where}: row {row}, column {column}: {value!r} is not a "
                                  f"number") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EventTableError(f"{where}: row {row}, column {column}: {value!r} is not a "
                              f"number") from None


def _cell_whole(value: Any, row: int, column: str, where: str, default: int | None = None,
                minimum: int = 0) -> int:
    x = _cell_number(value, row, column, where)
    if math.isnan(x) and default is not None:
        return default
    if not math.isfinite(x) or x != int(x) or x < minimum:
        raise EventTableError(f"{where}: row {row}, column {column}: {value!r} must be a whole "
                              f"number >= {minimum}")
    return int(x)


def _cell_text(row_values: Mapping[str, Any], column: str) -> str:
    value = row_values.get(column, "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _row_route(values: Mapping[str, Any], cmt: int, row: int, where: str) -> str:
    text = _cell_text(values, "ROUTE")
    if not text:
        return ROUTE_BY_CMT[cmt]
    try:
        route = normalize_route(text)
    except InputError as exc:
        raise EventTableError(f"{where}: row {row}, column ROUTE: {exc}") from None
    if CMT_BY_ROUTE[route] != cmt:
        raise EventTableError(f"{where}: row {row}, column CMT: route {route!r} doses into CMT "
                              f"{CMT_BY_ROUTE[route]}, not CMT {cmt}")
    return route


def _row_form(values: Mapping[str, Any], default_form: str, row: int, where: str) -> str:
    text = _cell_text(values, "FORM") or default_form
    try:
        return normalize_form(text)
    except InputError as exc:
        raise EventTableError(f"{where}: row {row}, column FORM: {exc}") from None


def _unsupported(values: Mapping[str, Any], row: int, where: str) -> None:
    for column, what in (("SS", "steady-state doses (SS)"), ("RATE", "infusions (RATE)")):
        if column in values:
            x = _cell_number(values[column], row, column, where)
            if not math.isnan(x) and x != 0:
                raise EventTableError(f"{where}: row {row}, column {column}: {what} are not "
                                      f"supported; expand them into bolus doses")


def _row_events(values: Mapping[str, Any], row: int, where: str, scale: float,
                default_form: str) -> tuple[int, float, list[DoseEvent]]:
    """Check one row; return its ID, TIME (days) and dose events (none for observations)."""
    pid = _cell_whole(values["ID"], row, "ID", where, minimum=1)
    time = _cell_number(values["TIME"], row, "TIME", where)
    if not math.isfinite(time) or time < 0:
        raise EventTableError(f"{where}: row {row}, column TIME: {values['TIME']!r} must be a "
                              f"finite time >= 0")
    evid = _cell_whole(values["EVID"], row, "EVID", where)
    amt = _cell_number(values["AMT"], row, "AMT", where)
    ii = _cell_number(values.get("II", ""), row, "II", where)
    ii = 0.0 if math.isnan(ii) else ii
    addl = _cell_whole(values.get("ADDL", ""), row, "ADDL", where, default=0)
    if addl >= MAX_EVENTS:  # checked before the doses are expanded
        raise ResourceError(f"{where}: row {row}, column ADDL: {addl} additional doses exceed "
                            f"the limit of {MAX_EVENTS} doses per table")
    if evid == 0:
        if not (math.isnan(amt) or amt == 0):
            raise EventTableError(f"{where}: row {row}, column AMT: an observation row (EVID 0) "
                                  f"must not have an amount, got {values['AMT']!r}")
        if addl:
            raise EventTableError(f"{where}: row {row}, column ADDL: an observation row (EVID 0) "
                                  f"must not have additional doses")
        return pid, time / scale, []
    if evid != 1:
        raise EventTableError(f"{where}: row {row}, column EVID: {evid} is not supported; "
                              f"accepted: 1 (dose), 0 (observation)")
    _unsupported(values, row, where)
    if math.isnan(amt):
        raise EventTableError(f"{where}: row {row}, column AMT: a dose row (EVID 1) needs an "
                              f"amount in µg")
    try:
        amount = validate_dose(amt)
    except InputError as exc:
        raise EventTableError(f"{where}: row {row}, column AMT: {exc}") from None
    cmt = _cell_whole(values["CMT"], row, "CMT", where)
    if cmt not in ROUTE_BY_CMT:
        raise EventTableError(f"{where}: row {row}, column CMT: unknown compartment {cmt}; "
                              f"accepted: 1 (gut lumen: oral, sublingual), 2 (nasal mucosa: "
                              f"intranasal), 3 (injection depot: IM, deep SC), 4 (plasma: IV)")
    if not math.isfinite(ii) or ii < 0:
        raise EventTableError(f"{where}: row {row}, column II: {values.get('II')!r} must be a "
                              f"finite interval >= 0")
    if addl > 0 and ii == 0:
        raise EventTableError(f"{where}: row {row}, column II: ADDL {addl} needs an interval "
                              f"II > 0")
    route = _row_route(values, cmt, row, where)
    form = _row_form(values, default_form, row, where)
    t0, iv = time / scale, ii / scale
    events = [DoseEvent(t0 + k * iv, amount, route, form) for k in range(addl + 1)]
    return pid, t0, events


def read_event_table(source: str | Path | pd.DataFrame, *, time_unit: str = "days",
                     default_form: str = "cyanocobalamin") -> dict[int, Regimen]:
    """Read a NONMEM-style event table into one regimen per patient ID.

    Parameters
    ----------
    source : path or pandas.DataFrame
        A CSV file or a table with at least :data:`REQUIRED_COLUMNS` (column names
        are case-insensitive; II, ADDL, ROUTE, FORM, SS, RATE, MDV are optional;
        other columns are ignored). Empty cells and ``.`` mean "no value".
    time_unit : {"days", "hours"}
        Unit of TIME and II.
    default_form : str
        Form for dose rows without a FORM value.

    Returns
    -------
    dict of int to Regimen
        Built with :meth:`Regimen.from_events`; observation rows are checked and
        then ignored.

    Raises
    ------
    EventTableError
        Missing or duplicate columns, non-numeric cells, negative or NaN times,
        rows out of time order within an ID, an amount on an observation row,
        AMT <= 0 or > 100 mg on a dose row, an unknown CMT or a ROUTE that does not
        dose into it, ADDL without II, unsupported EVID/SS/RATE, IDs with no dose.
        Messages name the row (1-based data row, i.e. CSV line - 1) and column.
    ResourceError
        A file over :data:`MAX_EVENT_TABLE_BYTES` (100 MB), refused without reading it,
        or more than ``MAX_EVENTS`` doses after expanding ADDL.
    """
    scale = _time_scale(time_unit)
    default_form = normalize_form(default_form)
    table, where = _load(source)
    table = _normalise_columns(table, where)
    events: dict[int, list[DoseEvent]] = {}
    last_time: dict[int, float] = {}
    total = 0
    for row, values in enumerate(table.to_dict("records"), start=1):
        pid, time, row_events = _row_events(values, row, where, scale, default_form)
        if time < last_time.get(pid, -math.inf):
            raise EventTableError(f"{where}: row {row}, column TIME: time {values['TIME']} comes "
                                  f"before the previous row of ID {pid}; rows must be in time "
                                  f"order within each ID")
        last_time[pid] = time
        events.setdefault(pid, []).extend(row_events)
        total += len(row_events)
        if total > MAX_EVENTS:
            raise ResourceError(f"{where}: more than {MAX_EVENTS} doses after expanding ADDL")
    empty = [pid for pid, evs in events.items() if not evs]
    if empty:
        raise EventTableError(f"{where}: ID {empty[0]} has no dose rows (EVID 1)")
    return {pid: Regimen.from_events(evs) for pid, evs in sorted(events.items())}
