"""NONMEM-style event tables: export regimens to, and import them from, dosing datasets.

The table follows the conventions NONMEM, mrgsolve, rxode2/nlmixr2 and Pharmpy share:

======  ==================================================================
Column  Meaning
======  ==================================================================
ID      patient (subject) number, a whole number from 1 to 2**53
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

Reading CSV files
-----------------
Files are UTF-8 text (a byte order mark is allowed) with comma-separated fields and
LF, CRLF or CR line ends. These lines are skipped, wherever they are:

* blank lines, and rows whose fields are all empty (``,,,,`` as spreadsheets write);
* ``#`` comment lines, whose first non-blank character is ``#`` (NONMEM's default
  ``IGNORE=#``);
* ``C`` comment lines (NONMEM's ``IGNORE=C``), whose first field is ``C`` or ``c``, or
  starts with it followed by a character that is not a letter, digit or ``_``
  (``C,1,0,...``, ``C dropped: vomited``, ``c;note``); a first column named ``CMT`` or
  ``CID`` is not a comment.

The header is the first line that is not blank or a comment. A header written as a
comment, so that NONMEM skips it (``#ID,TIME,AMT,...`` or ``C,ID,TIME,AMT,...`` with a
first column ``C`` holding ``.`` on data rows and ``C`` on dropped ones), is used when it
names every required column and the first non-comment line names none (it is data).
A data row whose first field starts with ``@`` or a letter (NONMEM's ``IGNORE=@``
records) is refused rather than guessed at, unless the first column is ROUTE or FORM.
Column names must be unique (case and surrounding blanks ignored). Error messages name
the file, its line number, the data row (1-based, comments and blank lines not counted)
and the column, and quote at most :data:`~b12pk.limits.MAX_ECHO_CHARS` characters of a
cell, control characters escaped.

IDs are read as exact whole numbers (``7``, ``+7``, ``007`` and ``7.0`` are ID 7);
fractions, exponent notation (``1e3``: a spreadsheet may have rounded a long ID) and IDs
above :data:`~b12pk.limits.MAX_INT` (2**53, the largest that all tools reading the table
as floating-point numbers keep exact) are refused, so distinct IDs are never merged. The
rows of one ID must be contiguous: NONMEM reads a second block of the same ID as a new
individual, so such a table is refused rather than silently merged.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import pandas as pd

from ..errors import EventTableError, InputError, ResourceError
from ..io import atomic_write_text, echo, echo_path, read_bytes
from ..limits import MAX_ECHO_CHARS, MAX_EVENT_TABLE_BYTES, MAX_INT
from .language import (
    MAX_EVENTS,
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
    "MAX_EVENT_TABLE_BYTES",
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
#: Columns the reader looks at (the rest are ignored).
_KNOWN_COLUMNS = frozenset(COLUMNS) | {"SS", "RATE"}
#: Columns whose cells are text: a data row may start with a letter only under these.
_TEXT_COLUMNS = ("ROUTE", "FORM")

_TIME_SCALE = {"days": 1.0, "hours": 24.0}

RegimenSet = Union[Regimen, Mapping[int, Regimen], Sequence[Regimen]]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
#: A whole number as ID text: digits, optionally signed, optionally ".0...".
_WHOLE = re.compile(r"([+-]?)0*([0-9]+)(?:\.0*)?")
_EXPONENT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")
_INF_WORDS = ("inf", "infinity")


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

def _echo(value: Any) -> str:
    """A user's value for a one-line error message (:func:`b12pk.io.echo`: strings quoted,
    control characters escaped, at most MAX_ECHO_CHARS characters); numbers as ``str``
    writes them (``-1.0``, ``nan``), an integer too long to write by its digit count."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and abs(int(value)) >= 10 ** MAX_ECHO_CHARS:  # str() of 10**5000 is refused
        return f"an integer of about {int(value).bit_length() * math.log10(2):.0f} digits"
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return echo(str(value), quote="")
    return echo(value)


def _name(text: str) -> str:
    """A column name or other short text, unquoted (escaped and cut as by :func:`echo`)."""
    return echo(text, quote="")


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def _time_scale(time_unit: str) -> float:
    if not isinstance(time_unit, str) or time_unit not in _TIME_SCALE:
        raise EventTableError(f"unknown time_unit {_echo(time_unit)}; accepted: days, hours")
    return _TIME_SCALE[time_unit]


def _export_id(pid: Any) -> int:
    if isinstance(pid, numbers.Integral) and not isinstance(pid, bool) and 1 <= pid <= MAX_INT:
        return int(pid)
    raise EventTableError(f"patient IDs must be whole numbers >= 1 and <= {MAX_INT} (2**53), "
                          f"got {_echo(pid)}")


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
    out: dict[int, Regimen] = {}
    for pid, reg in items.items():
        key = _export_id(pid)
        if not isinstance(reg, Regimen):
            raise TypeError(f"ID {key}: expected a Regimen, got {type(reg).__name__}")
        out[key] = reg
    return out


def _observation_times(values: Any) -> list[float]:
    """``observation_times`` as floats; a string is refused, not split (the separator would
    be a guess)."""
    example = "give a list of numbers, e.g. observation_times=[0, 1, 2]"
    if isinstance(values, (str, bytes, bytearray)):
        raise EventTableError(f"observation_times must be a list of numbers, not text "
                              f"({_echo(values)}); {example}")
    if not isinstance(values, Iterable):
        raise EventTableError(f"observation_times must be a list of numbers, got "
                              f"{type(values).__name__} {_echo(values)}; {example}")
    out: list[float] = []
    for t in values:
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise EventTableError(f"observation times must be numbers, got {_echo(t)}; "
                                  f"{example}")
        try:
            x = float(t)
        except (OverflowError, ValueError, TypeError):
            raise EventTableError(f"observation time {_echo(t)} is too large; accepted: finite "
                                  f"numbers >= 0") from None
        if not math.isfinite(x) or x < 0:
            raise EventTableError(f"observation times must be finite and >= 0, got {_echo(t)}")
        out.append(x)
        if len(out) > MAX_EVENTS:
            raise ResourceError(f"more than {MAX_EVENTS} observation times; accepted: at most "
                                f"{MAX_EVENTS}")
    return out


def to_event_table(regimens: RegimenSet, horizon_days: float, *, time_unit: str = "days",
                   observation_times: Sequence[float] = ()) -> pd.DataFrame:
    """Dose rows (and optional observation rows) for one or more patients.

    Repeating doses are written compactly: one row per run of equally spaced
    doses, with II (interval) and ADDL (additional doses).

    Parameters
    ----------
    regimens : Regimen, mapping of int to Regimen, or sequence of Regimen
        A single regimen is patient ID 1; a sequence gives IDs 1, 2, ... IDs are whole
        numbers from 1 to 2**53.
    horizon_days : float
        Only doses with ``0 <= t < horizon_days`` (days) are written.
    time_unit : {"days", "hours"}
        Unit of TIME and II.
    observation_times : sequence of float
        Observation times (in ``time_unit``) added as EVID 0 rows for every ID: a list or
        array of finite numbers >= 0. A string such as ``"0,1,2"`` is refused (not split).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, sorted by ID and TIME (observations before doses
        at the same time, i.e. troughs).

    Raises
    ------
    EventTableError
        Bad IDs, an unknown ``time_unit``, or observation times that are text, not
        numbers, NaN, infinite, negative or too large for a float.
    """
    scale = _time_scale(time_unit)
    patients = _as_mapping(regimens)
    obs = _observation_times(observation_times)
    if len(obs) * len(patients) > MAX_EVENTS:
        raise ResourceError(f"{len(obs)} observation times for {len(patients)} IDs exceed the "
                            f"limit of {MAX_EVENTS} observation rows")
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
    return table.astype({"ID": "int64", "TIME": float, "AMT": float, "CMT": "int64",
                         "EVID": "int64", "II": float, "ADDL": "int64", "MDV": "int64"})


def write_event_table(path: str | Path, regimens: RegimenSet, horizon_days: float, *,
                      time_unit: str = "days",
                      observation_times: Sequence[float] = ()) -> Path:
    """Write :func:`to_event_table` to a CSV file and return its path.

    Floats are written with full precision, so reading the file back gives the
    same dose times. The file is written atomically (:func:`b12pk.io.atomic_write_text`):
    an existing file at ``path`` is replaced only once the new one is complete, and is left
    as it was on any error; a folder, FIFO or missing parent folder is refused
    (:class:`~b12pk.errors.OutputError`).
    """
    table = to_event_table(regimens, horizon_days, time_unit=time_unit,
                           observation_times=observation_times)
    out = Path(path)
    atomic_write_text(out, table.to_csv(index=False))
    return out


# ---------------------------------------------------------------------------
# Import: reading the file
# ---------------------------------------------------------------------------

class _Table:
    """A parsed event table: upper-case column names and one record per data row."""

    def __init__(self, where: str, names: list[str], records: list[dict[str, Any]],
                 lines: list[int] | None):
        self.where = where          # the file (escaped) or "event table"
        self.names = names
        self.records = records
        self.lines = lines          # file line of each record; None for a DataFrame

    def at(self, index: int) -> str:
        """Where record ``index`` (0-based) is, for messages."""
        if self.lines is None:
            return f"{self.where}: row {index + 1}"
        return f"{self.where}, line {self.lines[index]}: row {index + 1}"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _comment_kind(line: str) -> str:
    """``"#"`` or ``"C"`` for a comment line, ``""`` otherwise (blank lines are not asked)."""
    s = line.lstrip()
    first = s[:1]
    if first == "#":
        return "#"
    if first in ("C", "c"):
        field = s.split(",", 1)[0].strip()
        if not _is_word_char(field[1:2]):
            return "C"
    return ""


def _split_line(line: str, where: str, number: int) -> list[str]:
    try:
        return next(csv.reader([line], skipinitialspace=True, strict=True), [])
    except csv.Error as exc:
        raise EventTableError(f"{where}, line {number}: not a readable CSV event table "
                              f"({_name(str(exc))})") from None


def _names(fields: list[str]) -> list[str]:
    return [f.strip().upper() for f in fields]


def _header_in_comment(line: str, kind: str) -> list[str] | None:
    """The column names of a header written as a comment (``#ID,TIME,...`` or
    ``C,ID,TIME,...``), or None if the comment is not one."""
    body = line.lstrip().lstrip("#") if kind == "#" else line
    try:
        fields = next(csv.reader([body], skipinitialspace=True, strict=True), [])
    except csv.Error:
        return None
    names = set(_names(fields))
    return fields if all(c in names for c in REQUIRED_COLUMNS) else None


def _split_rows(where: str, pending: list[tuple[int, str]]):
    """(line number, fields) of each data line, with one csv reader for them all."""
    reader = csv.reader((line for _, line in pending), skipinitialspace=True, strict=True)
    done = 0
    try:
        for fields in reader:
            if reader.line_num != done + 1:
                raise EventTableError(f"{where}, line {pending[done][0]}: not a readable CSV "
                                      f"event table (a quoted field is not closed on its line)")
            done = reader.line_num
            yield pending[done - 1][0], fields
    except csv.Error as exc:
        number = pending[min(done, len(pending) - 1)][0]
        why = str(exc)
        if why == "unexpected end of data":  # csv's words for a quote never closed
            why = "a quoted field is not closed"
        raise EventTableError(f"{where}, line {number}: not a readable CSV event table "
                              f"({_name(why)})") from None


def _decode(data: bytes, where: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise EventTableError(f"{where}: not a readable CSV event table (UTF-16 text); "
                              f"accepted: UTF-8 text (save the file as UTF-8 CSV)")
    if b"\x00" in data:
        raise EventTableError(f"{where}: looks like a binary file, not a CSV event table")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = len(_LINE_BREAK_BYTES.split(data[:exc.start]))
        raise EventTableError(f"{where}, line {line}: not a readable CSV event table (byte "
                              f"0x{data[exc.start]:02x} is not valid utf-8 text); accepted: "
                              f"UTF-8 text (save the file as UTF-8 CSV)") from None


def _parse_text(text: str, where: str) -> _Table:
    header: list[str] | None = None
    header_line = 0
    candidate: tuple[int, list[str]] | None = None
    pending: list[tuple[int, str]] = []
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line or line.isspace():
            continue
        kind = _comment_kind(line)
        if header is not None:
            if not kind:
                pending.append((number, line))
            continue
        if kind:
            fields = _header_in_comment(line, kind)
            if fields is not None:
                candidate = (number, fields)
            continue
        fields = _split_line(line, where, number)
        names = _names(fields)
        if candidate is not None and not any(n in _KNOWN_COLUMNS for n in names):
            header_line, header = candidate  # "#ID,TIME,..." / "C,ID,TIME,..."; this is data
            pending.append((number, line))
        else:
            header_line, header = number, fields
    if header is None:
        if candidate is None:
            raise EventTableError(f"{where}: the file holds only comments and blank lines; "
                                  f"expected a header line naming the columns "
                                  f"{', '.join(REQUIRED_COLUMNS)}")
        header_line, header = candidate
    names = _check_names(_names(header), f"{where}, line {header_line}", header)

    width = len(names)
    first_is_text = names[0] in _TEXT_COLUMNS
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, fields in _split_rows(where, pending):
        if len(fields) != width:
            if len(fields) > width:
                if any(f.strip() for f in fields[width:]):
                    raise EventTableError(
                        f"{where}, line {number}: not a readable CSV event table (the row has "
                        f"{len(fields)} fields, more fields than the header line's {width} "
                        f"columns); accepted: at most one field per column name")
                fields = fields[:width]
            else:  # missing trailing fields have no value, as empty cells
                fields = fields + [""] * (width - len(fields))
        if not any(f.strip() for f in fields):
            continue
        first = fields[0].lstrip()[:1]
        if (first == "@" or first.isalpha()) and not first_is_text:
            raise EventTableError(
                f"{where}, line {number}: the row starts with {_echo(fields[0].strip())}; "
                f"comment lines start with # or with a field C, and rows starting with "
                f"another letter or @ (NONMEM IGNORE=@) are not read; accepted: data rows "
                f"starting with a number")
        records.append({n: f for n, f in zip(names, fields) if n})
        lines.append(number)
    return _Table(where, names, records, lines)


def _check_names(names: list[str], where: str, raw: Sequence[Any]) -> list[str]:
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names, start=1):
        if n:  # unnamed columns (a trailing comma) are ignored
            seen.setdefault(n, []).append(i)
    dupes = [(n, pos) for n, pos in seen.items() if len(pos) > 1]
    if dupes:
        listed = "; ".join(f"{_name(n)} (columns {', '.join(map(str, pos))}: "
                           f"{', '.join(_echo(str(raw[p - 1])) for p in pos)})"
                           for n, pos in dupes[:5])
        raise EventTableError(f"{where}: duplicate column(s) {listed}; accepted: each column "
                              f"name once (case and surrounding blanks are ignored)")
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        hint = ""
        if len(names) == 1 and re.search(r"[;\t| ]", str(raw[0]).strip()):
            hint = " (the header line has a single field: separate fields with commas)"
        raise EventTableError(f"{where}: missing column(s) {', '.join(missing)}; an event "
                              f"table needs {', '.join(REQUIRED_COLUMNS)}{hint}")
    return names


def _load_frame(frame: pd.DataFrame) -> _Table:
    where = "event table"
    raw = [str(c) for c in frame.columns]
    names = _check_names(_names(raw), where, raw)
    for n in names:  # pandas.read_csv renames a repeated AMT to AMT.1
        m = re.fullmatch(r"(.+)\.[0-9]+", n)
        if m and m.group(1) in _KNOWN_COLUMNS and m.group(1) in names:
            raise EventTableError(f"{where}: duplicate column(s) {m.group(1)} (as {n}: "
                                  f"pandas.read_csv renames a repeated column); accepted: "
                                  f"each column name once")
    table = frame.copy()
    table.columns = names
    records = table.to_dict("records")
    return _Table(where, names, records, None)


def _load(source: str | os.PathLike | pd.DataFrame) -> _Table:
    if isinstance(source, pd.DataFrame):
        table = _load_frame(source)
    else:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"expected a path or a pandas DataFrame, got "
                            f"{type(source).__name__}")
        p = Path(source)
        where = echo_path(p)
        try:
            data = read_bytes(p, MAX_EVENT_TABLE_BYTES, "a CSV event table", EventTableError)
        except EventTableError:
            raise
        except ValueError as exc:  # e.g. a NUL character in the path
            raise EventTableError(f"{where}: cannot read the event table "
                                  f"({_name(str(exc))})") from None
        if not data.strip():
            raise EventTableError(f"{where}: the file is empty; expected a CSV event table "
                                  f"with columns {', '.join(REQUIRED_COLUMNS)}")
        text = _decode(data, where)
        if not text.strip():
            raise EventTableError(f"{where}: the file is empty; expected a CSV event table "
                                  f"with columns {', '.join(REQUIRED_COLUMNS)}")
        table = _parse_text(text, where)
    if not table.records:
        raise EventTableError(f"{table.where}: the table has no rows")
    return table


# ---------------------------------------------------------------------------
# Import: cells and rows
# ---------------------------------------------------------------------------

def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT


def _cell_number(value: Any, at: str, column: str) -> float:
    """A cell as a float; empty cells and NONMEM's "." read as NaN."""
    if _missing(value):
        return math.nan
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "."):
            return math.nan
        x = None
        if "_" not in text and text.isascii():  # float() reads "1_000" and "1\u066000"
            try:
                x = float(text)
            except ValueError:
                pass
        if x is None:
            raise EventTableError(f"{at}, column {column}: {_echo(value)} is not a number")
        if math.isinf(x) and text.lower().lstrip("+-") not in _INF_WORDS:
            raise EventTableError(f"{at}, column {column}: {_echo(value)} is too large for a "
                                  f"number; accepted: numbers up to about 1.8e308")
        return x
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EventTableError(f"{at}, column {column}: {_echo(value)} is not a number")
    try:
        return float(value)
    except OverflowError:
        raise EventTableError(f"{at}, column {column}: {_echo(value)} is too large for a "
                              f"number; accepted: numbers up to about 1.8e308") from None
    except (TypeError, ValueError):
        raise EventTableError(f"{at}, column {column}: {_echo(value)} is not a number") from None


def _cell_whole(value: Any, at: str, column: str, default: int | None = None,
                minimum: int = 0) -> int:
    x = _cell_number(value, at, column)
    if math.isnan(x) and default is not None:
        return default
    if math.isfinite(x) and x > MAX_INT:
        raise EventTableError(f"{at}, column {column}: {_echo(value)} is too large; accepted: "
                              f"whole numbers from {minimum} to {MAX_INT} (2**53)")
    if not math.isfinite(x) or x != int(x) or x < minimum:
        raise EventTableError(f"{at}, column {column}: {_echo(value)} must be a whole "
                              f"number >= {minimum}")
    return int(x)


def _cell_id(value: Any, at: str) -> int:
    """A patient ID as an exact int (text is parsed as digits, not through a float)."""
    accepted = f"must be a whole number >= 1 and <= {MAX_INT} (2**53)"
    pid: int | None = None
    why = ""
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "."):
            raise EventTableError(f"{at}, column ID: the row has no patient ID; accepted: "
                                  f"whole numbers from 1 to {MAX_INT} (2**53)")
        m = _WHOLE.fullmatch(text)
        if m:
            digits = m.group(2)
            if len(digits) > 16:  # > MAX_INT (16 digits) whatever they are
                why = "; larger IDs are not exact as floating-point numbers"
            else:
                pid = int(digits) * (-1 if m.group(1) == "-" else 1)
        elif _EXPONENT.fullmatch(text):
            why = " (exponent notation: write IDs in full; a spreadsheet may have rounded it)"
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pid = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = float(value)
        if math.isnan(x):
            raise EventTableError(f"{at}, column ID: the row has no patient ID; accepted: "
                                  f"whole numbers from 1 to {MAX_INT} (2**53)")
        if math.isfinite(x) and x == int(x):
            pid = int(x)
    if pid is not None and pid > MAX_INT:
        why = "; larger IDs are not exact as floating-point numbers"
        pid = None
    if pid is None or pid < 1:
        raise EventTableError(f"{at}, column ID: {_echo(value)} {accepted}{why}")
    return pid


def _cell_text(row_values: Mapping[str, Any], column: str) -> str:
    value = row_values.get(column, "")
    if _missing(value) or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _short(text: str) -> str:
    """Text for a name lookup whose error message echoes it: long text is cut (no name is
    that long, so it fails either way)."""
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."


def _row_route(values: Mapping[str, Any], cmt: int, at: str) -> str:
    text = _cell_text(values, "ROUTE")
    if not text:
        return ROUTE_BY_CMT[cmt]
    try:
        route = normalize_route(_short(text))
    except InputError as exc:
        raise EventTableError(f"{at}, column ROUTE: {exc}") from None
    if CMT_BY_ROUTE[route] != cmt:
        raise EventTableError(f"{at}, column CMT: route {route!r} doses into CMT "
                              f"{CMT_BY_ROUTE[route]}, not CMT {cmt}")
    return route


def _row_form(values: Mapping[str, Any], default_form: str, at: str) -> str:
    text = _cell_text(values, "FORM") or default_form
    try:
        return normalize_form(_short(text))
    except InputError as exc:
        raise EventTableError(f"{at}, column FORM: {exc}") from None


def _unsupported(values: Mapping[str, Any], at: str) -> None:
    for column, what in (("SS", "steady-state doses (SS)"), ("RATE", "infusions (RATE)")):
        if column in values:
            x = _cell_number(values[column], at, column)
            if not math.isnan(x) and x != 0:
                raise EventTableError(f"{at}, column {column}: {what} are not "
                                      f"supported; expand them into bolus doses")


class _Doses:
    """The doses of one dose row, not yet expanded: TIME + k*II, k = 0..ADDL."""

    __slots__ = ("t0", "interval", "count", "amount", "route", "form")

    def __init__(self, t0: float, interval: float, count: int, amount: float, route: str,
                 form: str):
        self.t0, self.interval, self.count = t0, interval, count
        self.amount, self.route, self.form = amount, route, form


def _row_doses(values: Mapping[str, Any], at: str, scale: float,
               default_form: str) -> tuple[int, float, _Doses | None]:
    """Check one row; return its ID, TIME (days) and doses (None for observations)."""
    pid = _cell_id(values["ID"], at)
    time = _cell_number(values["TIME"], at, "TIME")
    if not math.isfinite(time) or time < 0:
        raise EventTableError(f"{at}, column TIME: {_echo(values['TIME'])} must be a "
                              f"finite time >= 0")
    evid = _cell_whole(values["EVID"], at, "EVID")
    amt = _cell_number(values["AMT"], at, "AMT")
    ii = _cell_number(values.get("II", ""), at, "II")
    ii = 0.0 if math.isnan(ii) else ii
    x = _cell_number(values.get("ADDL", ""), at, "ADDL")
    if math.isfinite(x) and x >= MAX_EVENTS:  # checked before the doses are expanded
        raise ResourceError(f"{at}, column ADDL: {_echo(values.get('ADDL'))} additional doses "
                            f"exceed the limit of {MAX_EVENTS} doses per table")
    addl = _cell_whole(values.get("ADDL", ""), at, "ADDL", default=0)
    if evid == 0:
        if not (math.isnan(amt) or amt == 0):
            raise EventTableError(f"{at}, column AMT: an observation row (EVID 0) "
                                  f"must not have an amount, got {_echo(values['AMT'])}")
        if addl:
            raise EventTableError(f"{at}, column ADDL: an observation row (EVID 0) "
                                  f"must not have additional doses")
        return pid, time / scale, None
    if evid != 1:
        raise EventTableError(f"{at}, column EVID: {evid} is not supported; "
                              f"accepted: 1 (dose), 0 (observation)")
    _unsupported(values, at)
    if math.isnan(amt):
        raise EventTableError(f"{at}, column AMT: a dose row (EVID 1) needs an "
                              f"amount in µg")
    try:
        amount = validate_dose(amt)
    except InputError as exc:
        raise EventTableError(f"{at}, column AMT: {exc}") from None
    cmt = _cell_whole(values["CMT"], at, "CMT")
    if cmt not in ROUTE_BY_CMT:
        raise EventTableError(f"{at}, column CMT: unknown compartment {cmt}; "
                              f"accepted: 1 (gut lumen: oral, sublingual), 2 (nasal mucosa: "
                              f"intranasal), 3 (injection depot: IM, deep SC), 4 (plasma: IV)")
    if not math.isfinite(ii) or ii < 0:
        raise EventTableError(f"{at}, column II: {_echo(values.get('II'))} must be a "
                              f"finite interval >= 0")
    if addl > 0 and ii == 0:
        raise EventTableError(f"{at}, column II: ADDL {addl} needs an interval "
                              f"II > 0")
    route = _row_route(values, cmt, at)
    form = _row_form(values, default_form, at)
    t0, iv = time / scale, ii / scale
    if not math.isfinite(t0 + addl * iv):
        raise EventTableError(f"{at}, column II: the last of the ADDL doses, at TIME + "
                              f"ADDL*II, is too late to be a number")
    return pid, t0, _Doses(t0, iv, addl + 1, amount, route, form)


def _expand(doses: _Doses, at: str) -> list[DoseEvent]:
    try:
        return [DoseEvent(doses.t0 + k * doses.interval, doses.amount, doses.route, doses.form)
                for k in range(doses.count)]
    except InputError as exc:
        raise EventTableError(f"{at}: {exc}") from None


def read_event_table(source: str | Path | pd.DataFrame, *, time_unit: str = "days",
                     default_form: str = "cyanocobalamin") -> dict[int, Regimen]:
    """Read a NONMEM-style event table into one regimen per patient ID.

    Parameters
    ----------
    source : path or pandas.DataFrame
        A CSV file or a table with at least :data:`REQUIRED_COLUMNS` (column names
        are case-insensitive; II, ADDL, ROUTE, FORM, SS, RATE, MDV are optional;
        other columns are ignored). Empty cells and ``.`` mean "no value". In files,
        blank lines and ``#`` and ``C`` comment lines are skipped (see the module
        documentation).
    time_unit : {"days", "hours"}
        Unit of TIME and II.
    default_form : str
        Form for dose rows without a FORM value.

    Returns
    -------
    dict of int to Regimen
        Keyed by the exact integer ID, in increasing order; built with
        :meth:`Regimen.from_events`; observation rows are checked and then ignored.

    Raises
    ------
    EventTableError
        Unreadable CSV (not UTF-8, a row with more fields than the header, an unclosed
        quote), a file of only comments, missing or duplicate columns, non-numeric cells,
        numbers too large for a float, IDs that are not whole numbers from 1 to 2**53,
        the rows of one ID split into separate blocks, negative or NaN times, rows out of
        time order within an ID, an amount on an observation row, AMT <= 0 or > 100 mg on
        a dose row, an unknown CMT or a ROUTE that does not dose into it, ADDL without
        II, unsupported EVID/SS/RATE, data rows starting with a letter or ``@``, IDs with
        no dose. Messages are one line; they name the file and line, the data row
        (1-based, comments and blank lines not counted) and the column.
    ResourceError
        A file over :data:`MAX_EVENT_TABLE_BYTES` (100 MB), refused without reading it,
        or more than ``MAX_EVENTS`` doses after expanding ADDL (refused before expanding).
    """
    scale = _time_scale(time_unit)
    default_form = normalize_form(default_form)
    table = _load(source)
    where = table.where
    events: dict[int, list[DoseEvent]] = {}
    last_time: dict[int, float] = {}
    first_row: dict[int, int] = {}
    previous: int | None = None
    total = 0
    for index, values in enumerate(table.records):
        at = table.at(index)
        pid, time, doses = _row_doses(values, at, scale, default_form)
        if pid != previous and pid in first_row:
            raise EventTableError(f"{at}, column ID: ID {pid} appears again after rows of "
                                  f"other IDs; NONMEM reads a separate block of rows as a new "
                                  f"individual, so keep each ID's rows together (sorted by ID "
                                  f"and TIME) or give the block its own ID")
        previous = pid
        first_row.setdefault(pid, index)
        if time < last_time.get(pid, -math.inf):
            raise EventTableError(f"{at}, column TIME: time {_name(str(values['TIME']))} "
                                  f"comes before the previous row of ID {pid}; rows must be "
                                  f"in time order within each ID")
        last_time[pid] = time
        patient = events.setdefault(pid, [])
        if doses is None:
            continue
        total += doses.count
        if total > MAX_EVENTS:  # checked before the doses are expanded
            raise ResourceError(f"{at}: more than {MAX_EVENTS} doses after expanding ADDL; "
                                f"accepted: at most {MAX_EVENTS} doses per table")
        patient.extend(_expand(doses, at))
    empty = [pid for pid, evs in events.items() if not evs]
    if empty:
        i = first_row[empty[0]]
        start = f"row {i + 1}" if table.lines is None else f"line {table.lines[i]}"
        raise EventTableError(f"{where}: ID {empty[0]} has no dose rows (EVID 1); its first "
                              f"row is {start}")
    out: dict[int, Regimen] = {}
    for pid, evs in sorted(events.items()):
        try:
            out[pid] = Regimen.from_events(evs)
        except InputError as exc:
            raise EventTableError(f"{where}: ID {pid}: {exc}") from None
        except ResourceError as exc:
            raise ResourceError(f"{where}: ID {pid}: {exc}") from None
    return out
