"""Tests for b12pk.events: NONMEM-style event tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12pk.errors import EventTableError, FileFormatError
from b12pk.regimen.events import (
    CMT_BY_ROUTE,
    COLUMNS,
    read_event_table,
    to_event_table,
    write_event_table,
)
from b12pk.regimen.language import FORMS, ROUTES, Regimen

LOADING = Regimen.parse("hydroxocobalamin 1000 µg IM three times weekly for 2 weeks, then every "
                        "2 months for life")


def _table(**columns) -> pd.DataFrame:
    base = {"ID": [1], "TIME": [0.0], "AMT": [1000.0], "CMT": [3], "EVID": [1]}
    base.update(columns)
    return pd.DataFrame(base)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def test_columns_and_types():
    table = to_event_table(LOADING, 200)
    assert list(table.columns) == list(COLUMNS)
    assert table["ID"].dtype.kind == "i" and table["ADDL"].dtype.kind == "i"


def test_daily_regimen_is_one_row_with_ii_and_addl():
    table = to_event_table(Regimen.daily(1000), 30)
    assert table[["TIME", "AMT", "CMT", "EVID", "II", "ADDL", "MDV"]].values.tolist() == \
        [[0.0, 1000.0, 1, 1, 1.0, 29, 1]]
    assert table[["ROUTE", "FORM"]].values.tolist() == [["oral", "cyanocobalamin"]]


def test_three_times_weekly_loading_then_maintenance_is_four_rows():
    table = to_event_table(LOADING, 200)
    assert table[["TIME", "II", "ADDL", "CMT"]].values.tolist() == [
        [0.0, 7.0, 1, 3], [2.0, 7.0, 1, 3], [4.0, 7.0, 1, 3], [71.0, 60.0, 2, 3]]


def test_single_dose_has_no_interval():
    table = to_event_table(Regimen.once(1000, "iv"), 10)
    assert table[["TIME", "II", "ADDL", "CMT"]].values.tolist() == [[0.0, 0.0, 0, 4]]


@pytest.mark.parametrize("route, cmt", [("oral", 1), ("sublingual", 1), ("intranasal", 2),
                                        ("im", 3), ("deep-sc", 3), ("iv", 4)])
def test_compartment_numbering(route, cmt):
    assert CMT_BY_ROUTE[route] == cmt
    assert to_event_table(Regimen.once(1000, route), 5)["CMT"].tolist() == [cmt]


def test_several_patients_from_mapping_and_sequence():
    regs = {2: Regimen.daily(500), 7: LOADING}
    table = to_event_table(regs, 30)
    assert sorted(set(table["ID"])) == [2, 7]
    seq = to_event_table([Regimen.daily(500), LOADING], 30)
    assert sorted(set(seq["ID"])) == [1, 2]


def test_observation_rows_come_before_doses_at_the_same_time():
    table = to_event_table(Regimen.parse("1000 mcg IM weekly"), 15, observation_times=[7, 0])
    assert table[["TIME", "EVID", "AMT", "MDV"]].values.tolist() == [
        [0.0, 0, 0.0, 0], [0.0, 1, 1000.0, 1], [7.0, 0, 0.0, 0]]


def test_hours_time_unit():
    table = to_event_table(Regimen.parse("1000 mcg IM weekly"), 15, time_unit="hours")
    assert table[["TIME", "II", "ADDL"]].values.tolist() == [[0.0, 168.0, 2]]


def test_doses_stop_before_the_horizon():
    table = to_event_table(Regimen.daily(1000), 10.5)
    assert table["ADDL"].tolist() == [10]


def test_unknown_time_unit():
    with pytest.raises(EventTableError, match="unknown time_unit 'weeks'"):
        to_event_table(LOADING, 10, time_unit="weeks")


def test_bad_patient_id():
    with pytest.raises(EventTableError, match="IDs must be whole numbers >= 1"):
        to_event_table({0: LOADING}, 10)


def test_bad_observation_time():
    with pytest.raises(EventTableError, match="observation times"):
        to_event_table(LOADING, 10, observation_times=[-1])


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

def test_round_trip_in_memory_is_exact():
    back = read_event_table(to_event_table(LOADING, 400))
    assert back[1].dose_events(400) == LOADING.dose_events(400)


def test_round_trip_through_csv_file_is_exact(tmp_path):
    regs = {1: LOADING, 2: Regimen.parse("1000 mcg oral twice daily for 3 days, then 250 mcg "
                                         "sublingual every 0.1 days for 1 day")}
    path = write_event_table(tmp_path / "doses.csv", regs, 100, observation_times=[1, 50])
    back = read_event_table(path)
    for pid, reg in regs.items():
        assert back[pid].dose_events(100) == reg.dose_events(100)


def test_round_trip_in_hours_is_within_1e_12(tmp_path):
    reg = Regimen.parse("1000 mcg oral every 0.3 days for 20 doses")
    path = write_event_table(tmp_path / "h.csv", reg, 30, time_unit="hours")
    back = read_event_table(path, time_unit="hours")[1].dose_events(30)
    want = reg.dose_events(30)
    assert len(back) == len(want)
    assert all(abs(a.time_days - b.time_days) < 1e-12 for a, b in zip(back, want))


def test_re_export_of_an_imported_regimen_is_compact():
    back = read_event_table(to_event_table(LOADING, 400))[1]
    table = to_event_table(back, 400)
    assert len(table) <= 6
    assert read_event_table(table)[1].dose_events(400) == LOADING.dose_events(400)


@st.composite
def _regimens(draw):
    route = draw(st.sampled_from(ROUTES))
    form = draw(st.sampled_from(FORMS))
    amount = round(draw(st.floats(0.01, 50_000)), 2)  # twice daily stays within 100 mg a day
    text = draw(st.sampled_from([
        "daily", "twice daily for 5 days, then weekly", "three times weekly for 2 weeks, then "
        "every 2 months", "on days 1, 3, 7, 10, 14, 21, then monthly", "every 0.7 days",
        "once", "on alternate days for 7 doses, then every 3 days for 2 weeks",
    ]))
    return Regimen.parse(f"{amount!r} mcg {form} {route} {text}")


@settings(max_examples=60, deadline=None)
@given(st.lists(_regimens(), min_size=1, max_size=3), st.floats(1, 300))
def test_round_trip_property(regimens, horizon):
    mapping = {i: r for i, r in enumerate(regimens, start=1)}
    back = read_event_table(to_event_table(mapping, horizon))
    for pid, reg in mapping.items():
        assert back[pid].dose_events(horizon) == reg.dose_events(horizon)


# ---------------------------------------------------------------------------
# Import conventions
# ---------------------------------------------------------------------------

def test_import_defaults_route_by_cmt_and_form():
    table = pd.DataFrame({"ID": [1, 1, 1, 1], "TIME": [0, 1, 2, 3], "AMT": [1, 2, 3, 4],
                          "CMT": [1, 2, 3, 4], "EVID": [1, 1, 1, 1]})
    events = read_event_table(table, default_form="hydroxo")[1].dose_events(10)
    assert [(e.route, e.form) for e in events] == [
        ("oral", "hydroxocobalamin"), ("intranasal", "hydroxocobalamin"),
        ("im", "hydroxocobalamin"), ("iv", "hydroxocobalamin")]


def test_import_accepts_lower_case_columns_and_ignores_extra_ones():
    table = pd.DataFrame({"id": [1], "time": [0], "amt": [1000], "cmt": [3], "evid": [1],
                          "DV": ["."], "WT": [70]})
    assert read_event_table(table)[1].dose_events(5)[0].route == "im"


def test_observation_rows_are_ignored_on_import():
    table = pd.DataFrame({"ID": [1, 1], "TIME": [0, 5], "AMT": [1000, "."], "CMT": [3, 4],
                          "EVID": [1, 0]})
    assert len(read_event_table(table)[1].dose_events(10)) == 1


def test_addl_expands_into_doses():
    table = _table(II=[7.0], ADDL=[3])
    assert [e.time_days for e in read_event_table(table)[1].dose_events(100)] == [0, 7, 14, 21]


def test_route_alias_in_route_column():
    table = _table(ROUTE=["SC"])
    assert read_event_table(table)[1].routes == ("deep-sc",)


# ---------------------------------------------------------------------------
# Import errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("columns, message", [
    ({"TIME": [-1.0]}, r"row 1, column TIME: -1.0 must be a finite time >= 0"),
    ({"TIME": [math.nan]}, r"row 1, column TIME: nan must be a finite time >= 0"),
    ({"TIME": ["soon"]}, r"row 1, column TIME: 'soon' is not a number"),
    ({"EVID": [0]}, r"row 1, column AMT: an observation row \(EVID 0\) must not have an amount"),
    ({"CMT": [7]}, r"row 1, column CMT: unknown compartment 7; accepted: 1 \(gut lumen"),
    ({"AMT": [0.0]}, r"row 1, column AMT: dose 0.0 µg is not accepted"),
    ({"AMT": [-5.0]}, r"row 1, column AMT: dose -5.0 µg"),
    ({"AMT": ["."]}, r"row 1, column AMT: a dose row \(EVID 1\) needs an amount"),
    ({"ADDL": [3]}, r"row 1, column II: ADDL 3 needs an interval II > 0"),
    ({"ADDL": [1.5], "II": [1]}, r"row 1, column ADDL: 1.5 must be a whole number"),
    ({"II": [-1.0], "ADDL": [1]}, r"row 1, column II: -1.0 must be a finite interval"),
    ({"EVID": [4]}, r"row 1, column EVID: 4 is not supported"),
    ({"SS": [1]}, r"row 1, column SS: steady-state doses \(SS\) are not supported"),
    ({"RATE": [10]}, r"row 1, column RATE: infusions \(RATE\) are not supported"),
    ({"ID": [0]}, r"row 1, column ID: 0 must be a whole number >= 1"),
    ({"ROUTE": ["oral"]}, r"row 1, column CMT: route 'oral' doses into CMT 1, not CMT 3"),
    ({"ROUTE": ["rectal"]}, r"row 1, column ROUTE: unknown route 'rectal'"),
    ({"FORM": ["adenosyl"]}, r"row 1, column FORM: unknown cobalamin form"),
])
def test_malformed_rows(columns, message):
    with pytest.raises(EventTableError, match=message):
        read_event_table(_table(**columns))


def test_missing_columns():
    table = pd.DataFrame({"ID": [1], "TIME": [0], "AMT": [1000]})
    with pytest.raises(EventTableError, match=r"missing column\(s\) CMT, EVID; an event table "
                                              r"needs ID, TIME, AMT, CMT, EVID"):
        read_event_table(table)


def test_duplicate_columns():
    table = pd.DataFrame([[1, 0, 1000, 3, 1, 3]], columns=["ID", "TIME", "AMT", "CMT", "EVID", "cmt"])
    with pytest.raises(EventTableError, match=r"duplicate column\(s\) CMT"):
        read_event_table(table)


def test_no_rows():
    with pytest.raises(EventTableError, match="no rows"):
        read_event_table(pd.DataFrame(columns=["ID", "TIME", "AMT", "CMT", "EVID"]))


def test_rows_out_of_time_order():
    table = pd.DataFrame({"ID": [1, 1], "TIME": [5, 2], "AMT": [1, 1], "CMT": [3, 3],
                          "EVID": [1, 1]})
    with pytest.raises(EventTableError, match=r"row 2, column TIME: time 2 comes before"):
        read_event_table(table)


def test_id_without_doses():
    table = pd.DataFrame({"ID": [1, 2], "TIME": [0, 0], "AMT": [1000, 0], "CMT": [3, 4],
                          "EVID": [1, 0]})
    with pytest.raises(EventTableError, match=r"ID 2 has no dose rows"):
        read_event_table(table)


def test_error_names_the_file_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ID,TIME,AMT,CMT,EVID\n1,0,1000,3,1\n1,1,500,9,1\n")
    with pytest.raises(EventTableError, match=r"bad.csv', line 3: row 2, column CMT: unknown compartment 9"):
        read_event_table(path)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x00\x01binary", "binary file"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(EventTableError, match=message):
        read_event_table(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file; expected a CSV event table"):
        read_event_table(tmp_path / "none.csv")


def test_wrong_source_type():
    with pytest.raises(TypeError, match="path or a pandas DataFrame"):
        read_event_table(42)  # type: ignore[arg-type]


def test_exported_and_imported_regimen_simulates_identically():
    try:
        from b12pk.engine import simulate
    except Exception as exc:  # the engine is optional for this module's tests
        pytest.skip(f"engine not importable: {exc}")
    regimen = Regimen.parse("hydroxocobalamin 1000 µg IM three times weekly for 2 weeks, then "
                            "500 mcg oral daily for 30 days")
    back = read_event_table(to_event_table(regimen, 60))[1]
    pd.testing.assert_frame_equal(simulate(regimen, days=60), simulate(back, days=60))


# ===========================================================================
# Hardening (issue 15): comments, duplicate columns, exact IDs, one-line messages,
# numbers too large for a float, observation_times
# ===========================================================================

import numpy as np  # noqa: E402

from b12pk.errors import B12pkError, OutputError, ResourceError  # noqa: E402
from b12pk.limits import MAX_ECHO_CHARS, MAX_INT  # noqa: E402
from b12pk.regimen.language import MAX_EVENTS  # noqa: E402

H = "ID,TIME,AMT,CMT,EVID\n"
PLAIN = H + "1,0,1000,3,1\n1,7,1000,3,1\n2,0,500,1,1\n"
BIG = "1" + "0" * 400  # an integer too large for a float


def _csv(tmp_path, content, name="events.csv"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def _check_message(exc: BaseException, cls, needles, source: str | None = None):
    """The error is exactly ``cls``; its message holds every needle, is one line, shows
    no raw control character and echoes no long run of the user's input."""
    assert type(exc) is cls, f"{type(exc).__name__} is not {cls.__name__}: {exc}"
    assert isinstance(exc, B12pkError)
    message = str(exc)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "\n" not in message and "\r" not in message
    assert not any(ord(c) < 32 or c == "\x7f" for c in message), repr(message)
    assert "Traceback" not in message and "C error" not in message
    if source is not None:
        assert source in message
    assert len(message) < 800, len(message)


# -- comments and blank lines: read exactly as the same file without them -----------------

COMMENTED_FILES = [
    ("hash-before-header", "# exported by a tool\n" + PLAIN),
    ("hashes-everywhere", "#a\n" + H + "# b\n1,0,1000,3,1\n#c\n1,7,1000,3,1\n2,0,500,1,1\n#end"),
    ("indented-hash", H + "   # indented\n\t# tab-indented\n" + PLAIN[len(H):]),
    ("hash-only", H + "#\n" + PLAIN[len(H):]),
    ("hash-with-commas-and-quote", H + '# dropped, "vomited, see notes\n' + PLAIN[len(H):]),
    ("hash-with-escape", H + "# \x1b[31mred\x1b[0m\n" + PLAIN[len(H):]),
    ("C-before-header", "C a comment before the header\n" + PLAIN),
    ("C-row-that-looks-like-a-dose", H + "C,1,3,1000,3,1\n" + PLAIN[len(H):]),
    ("C-alone", H + "C\n" + PLAIN[len(H):]),
    ("lower-c", H + "c,1,3,1000,3,1\nc lower-case comment\n" + PLAIN[len(H):]),
    ("C-space", H + "C dropped: dose vomited\n" + PLAIN[len(H):]),
    ("C-semicolon", H + "C;1;3;1000;3;1\n" + PLAIN[len(H):]),
    ("C-tab", H + "C\t1\t3\n" + PLAIN[len(H):]),
    ("C-indented", H + "  C,1,3,1000,3,1\n\tC,1,4,1000,3,1\n" + PLAIN[len(H):]),
    ("C-colon", H + "C: excluded\n" + PLAIN[len(H):]),
    ("C-between-rows", H + "1,0,1000,3,1\nC,1,3,1000,3,1\n1,7,1000,3,1\n2,0,500,1,1\n"),
    ("C-last-line-no-newline", PLAIN + "C the end"),
    ("blank-lines", "\n\n" + H + "\n1,0,1000,3,1\n\n\n1,7,1000,3,1\n2,0,500,1,1\n\n"),
    ("whitespace-lines", " \t \n" + H + "   \n1,0,1000,3,1\n\t\n1,7,1000,3,1\n2,0,500,1,1\n"),
    ("empty-spreadsheet-rows", H + "1,0,1000,3,1\n,,,,\n1,7,1000,3,1\n , , ,,\n2,0,500,1,1\n,,,,\n"),
    ("crlf", ("# c\n" + PLAIN + "C x\n").replace("\n", "\r\n")),
    ("cr-only", ("# c\n" + PLAIN).replace("\n", "\r")),
    ("mixed-line-ends", "# c\r\n" + H.replace("\n", "\r") + "1,0,1000,3,1\n1,7,1000,3,1\r\n"
                        "2,0,500,1,1"),
    ("bom-then-comment", "\ufeff# c\n" + PLAIN),
    ("hash-header", "#ID,TIME,AMT,CMT,EVID\n" + PLAIN[len(H):]),
    ("hash-space-header", "# ID, TIME, AMT, CMT, EVID\n" + PLAIN[len(H):]),
    ("hash-header-after-comment", "# a note\n#ID,TIME,AMT,CMT,EVID\n" + PLAIN[len(H):]),
    ("C-column-header", "C,ID,TIME,AMT,CMT,EVID\n.,1,0,1000,3,1\nC,1,3,1000,3,1\n"
                        ".,1,7,1000,3,1\n.,2,0,500,1,1\n"),
    ("commented-header-then-real-header", "# ID,TIME,AMT,CMT,EVID\n" + PLAIN),
    ("trailing-commas", H.replace("\n", ",\n") + "1,0,1000,3,1,\n1,7,1000,3,1,\n2,0,500,1,1\n"),
    ("trailing-empty-fields", H + "1,0,1000,3,1,,\n1,7,1000,3,1\n2,0,500,1,1, \n"),
    ("spaces-around-fields", H + "1, 0 ,1000 , 3,1\n 1,\t7,1000,3,1\n2,0,500,1,1\n"),
]


@pytest.mark.parametrize("content", [c[1] for c in COMMENTED_FILES],
                         ids=[c[0] for c in COMMENTED_FILES])
def test_comments_and_blank_lines_read_like_the_plain_file(tmp_path, content):
    want = read_event_table(_csv(tmp_path, PLAIN, "plain.csv"))
    got = read_event_table(_csv(tmp_path, content))
    assert got == want
    assert list(got) == [1, 2]


def test_a_written_table_with_comments_added_reads_back_the_same(tmp_path):
    path = write_event_table(tmp_path / "out.csv", {1: LOADING, 4: Regimen.daily(500)}, 90,
                             observation_times=[0, 30])
    lines = path.read_text().splitlines()
    noisy = ["# written by b12pk", lines[0], "C,99,0,1000,3,1,0,0,1,im,cyanocobalamin"]
    for line in lines[1:]:
        noisy += [line, "", "# note"]
    commented = _csv(tmp_path, "\r\n".join(noisy), "commented.csv")
    assert read_event_table(commented) == read_event_table(path)
    assert 99 not in read_event_table(commented)


@pytest.mark.parametrize("header, row", [
    ("CMT,ID,TIME,AMT,EVID", "3,1,0,1000,1"),           # a first column CMT is no comment
    ("Cmt,ID,TIME,AMT,EVID", "3,1,0,1000,1"),
    ("CID,ID,TIME,AMT,CMT,EVID", "7,1,0,1000,3,1"),     # C followed by a letter
    ("C_1,ID,TIME,AMT,CMT,EVID", "7,1,0,1000,3,1"),     # ... or by an underscore
    ("ROUTE,ID,TIME,AMT,CMT,EVID", "im,1,0,1000,3,1"),  # text first column: letters allowed
    ("FORM,ID,TIME,AMT,CMT,EVID", "cyano,1,0,1000,3,1"),
])
def test_header_first_columns_that_are_not_comments(tmp_path, header, row):
    back = read_event_table(_csv(tmp_path, f"{header}\n{row}\n"))
    assert list(back) == [1] and back[1].routes == ("im",)


# -- malformed files: one clear line each, naming the file and the line ---------------------

BAD_FILES = [
    # comments, blank lines, headers
    ("only-comments", "# a\nC b\n\n#c\n", EventTableError, ["only comments and blank lines",
                                                            "ID, TIME, AMT, CMT, EVID"]),
    ("only-blank-lines", "\n \n\t\n\r\n", EventTableError, ["the file is empty"]),
    ("only-bom", "\ufeff", EventTableError, ["the file is empty"]),
    ("commented-header-no-rows", "#ID,TIME,AMT,CMT,EVID\n# nothing\n", EventTableError,
     ["no rows"]),
    ("header-then-comments", H + "# a\nC b\n", EventTableError, ["no rows"]),
    ("at-sign-row", H + "@ note\n1,0,1000,3,1\n", EventTableError,
     ["line 2", "'@ note'", "IGNORE=@"]),
    ("letter-row", H + "1,0,1000,3,1\nx,1,1000,3,1\n", EventTableError,
     ["line 3", "starts with 'x'", "comment lines start with # or with a field C"]),
    ("C-then-digit-is-no-comment", H + "C1,0,1000,3,1\n", EventTableError,
     ["line 2", "'C1'"]),
    ("lower-cmt-row", H + "cmt,0,1000,3,1\n", EventTableError, ["line 2", "'cmt'"]),
    ("repeated-header", H + "1,0,1000,3,1\n" + H + "1,1,1000,3,1\n", EventTableError,
     ["line 3", "starts with 'ID'"]),
    ("letter-row-after-C-column", "C,ID,TIME,AMT,CMT,EVID\nX,1,0,1000,3,1\n", EventTableError,
     ["line 2", "'X'"]),
    ("semicolon-header-hint", "ID;TIME;AMT;CMT;EVID\n1;0;1000;3;1\n", EventTableError,
     ["missing column(s)", "separate fields with commas"]),
    ("tab-header-hint", "ID\tTIME\tAMT\tCMT\tEVID\n1\t0\t1000\t3\t1\n", EventTableError,
     ["missing column(s)", "separate fields with commas"]),
    ("header-names-missing-after-comment", "# ID,TIME,AMT,CMT,EVID\nID,TIME,AMT\n1,0,1000\n",
     EventTableError, ["line 2", "missing column(s) CMT, EVID"]),
    # duplicate columns, from the raw header
    ("dup-case", "ID,TIME,AMT,CMT,EVID,amt\n1,0,1000,3,1,5\n", EventTableError,
     ["line 1", "duplicate column(s) AMT", "columns 3, 6", "'amt'"]),
    ("dup-whitespace", "ID,TIME,AMT,CMT,EVID, Amt \n1,0,1000,3,1,5\n", EventTableError,
     ["duplicate column(s) AMT", "'Amt '"]),
    ("dup-exact", "ID,TIME,AMT,CMT,EVID,AMT\n1,0,1000,3,1,5\n", EventTableError,
     ["duplicate column(s) AMT"]),
    ("dup-quoted", 'ID,TIME,"AMT",CMT,EVID,"amt"\n1,0,1000,3,1,5\n', EventTableError,
     ["duplicate column(s) AMT"]),
    ("dup-three-times", "ID,AMT,TIME,AMT,CMT,EVID,AMT\n1,1,0,1000,3,1,5\n", EventTableError,
     ["duplicate column(s) AMT (columns 2, 4, 7"]),
    ("dup-two-names", "ID,TIME,AMT,CMT,EVID,time,Id\n1,0,1000,3,1,0,1\n", EventTableError,
     ["duplicate column(s) ID", "TIME"]),
    ("dup-ignored-column", "ID,TIME,AMT,CMT,EVID,DV,dv\n1,0,1000,3,1,.,.\n", EventTableError,
     ["duplicate column(s) DV"]),
    ("dup-after-comment-header", "#ID,TIME,AMT,CMT,EVID,cmt\n1,0,1000,3,1,3\n", EventTableError,
     ["line 1", "duplicate column(s) CMT"]),
    ("dup-long-name", "ID,TIME,AMT,CMT,EVID," + "X" * 500 + ",x" + "x" * 499 + "\n1,0,1,3,1,,\n",
     EventTableError, ["duplicate column(s) " + "X" * MAX_ECHO_CHARS + "..."]),
    # CSV structure; line numbers count comments and blank lines
    ("ragged-after-comments", "# a\n\n" + H + "1,0,1000,3,1,9\n", EventTableError,
     ["line 4", "not a readable CSV", "more fields than the header"]),
    ("ragged-crlf", (H + "1,0,1000,3,1\n1,1,1000,3,1,9\n").replace("\n", "\r\n"),
     EventTableError, ["line 3", "6 fields", "5 columns"]),
    ("unclosed-quote", H + "# x\n1,0,\"1000,3,1\n1,1,1000,3,1\n", EventTableError,
     ["line 3", "a quoted field is not closed"]),
    ("quote-in-middle", H + '1,0,"10"00,3,1\n', EventTableError,
     ["line 2", "not a readable CSV"]),
    ("quoted-newline", H + '1,0,"10\n00",3,1\n', EventTableError,
     ["line 2", "not a readable CSV"]),
    ("latin-1-after-comments", ("# a\nC b\n" + H + "1,0,1000,3,1\n1,1,caf\xe9,3,1\n")
     .encode("latin-1"), EventTableError, ["line 5", "not a readable CSV", "utf-8", "0xe9"]),
    ("utf-16", ("\ufeff" + PLAIN).encode("utf-16-le"), EventTableError, ["UTF-16", "UTF-8"]),
    ("row-error-after-comments", "# a\nC b\n\n" + H + "1,0,1000,9,1\n", EventTableError,
     ["line 5: row 1, column CMT: unknown compartment 9"]),
    ("row-numbers-skip-comments", H + "1,0,1000,3,1\n# a\n\n1,1,1000,3,1\n1,2,lots,3,1\n",
     EventTableError, ["line 6: row 3, column AMT", "'lots' is not a number"]),
    # IDs: exact whole numbers from 1 to 2**53
    ("id-exponent", H + "1e3,0,1000,3,1\n", EventTableError,
     ["column ID", "'1e3'", "exponent notation"]),
    ("id-spreadsheet-rounded", H + "1.23457E+11,0,1000,3,1\n", EventTableError,
     ["'1.23457E+11'", "exponent notation"]),
    ("id-fraction", H + "1.5,0,1000,3,1\n", EventTableError, ["'1.5'", "whole number >= 1"]),
    ("id-leading-dot", H + ".5,0,1000,3,1\n", EventTableError, ["'.5'"]),
    ("id-negative", H + "-1,0,1000,3,1\n", EventTableError, ["'-1'", ">= 1"]),
    ("id-negative-zero", H + "-0,0,1000,3,1\n", EventTableError, ["'-0'", ">= 1"]),
    ("id-zero", H + "0,0,1000,3,1\n", EventTableError, ["'0'", ">= 1"]),
    ("id-2**53+1", H + f"{2**53 + 1},0,1000,3,1\n", EventTableError,
     [f"'{2**53 + 1}'", f"<= {MAX_INT} (2**53)", "not exact"]),
    ("id-2**63", H + f"{2**63},0,1000,3,1\n", EventTableError, [f"'{2**63}'", "not exact"]),
    ("id-huge", H + BIG + ",0,1000,3,1\n", EventTableError, ["column ID", "..."]),
    ("id-hex", H + "0x10,0,1000,3,1\n", EventTableError, ["'0x10'", "whole number"]),
    ("id-underscore", H + "1_000,0,1000,3,1\n", EventTableError, ["'1_000'"]),
    ("id-arabic-digit", H + "\u0663,0,1000,3,1\n", EventTableError, ["column ID"]),
    ("id-empty", H + ",0,1000,3,1\n", EventTableError, ["column ID", "no patient ID"]),
    ("id-dot", H + ".,0,1000,3,1\n", EventTableError, ["column ID", "no patient ID"]),
    ("id-thousands", H + '"1,000",0,1000,3,1\n', EventTableError, ["'1,000'"]),
    ("id-inf", "TIME,ID,AMT,CMT,EVID\n0,inf,1000,3,1\n", EventTableError, ["'inf'"]),
    ("id-not-contiguous", H + "1,0,1000,3,1\n2,0,1000,3,1\n1,7,1000,3,1\n", EventTableError,
     ["line 4: row 3, column ID", "ID 1 appears again", "keep each ID's rows together"]),
    ("id-without-dose-names-line", H + "1,0,1000,3,1\n# x\n2,1,0,4,0\n", EventTableError,
     ["ID 2 has no dose rows", "line 4"]),
    # numbers too large for a float, in every numeric column
    ("amt-huge-int", H + f"1,0,{BIG},3,1\n", EventTableError,
     ["column AMT", "too large for a number", "(321 more characters)"]),
    ("amt-1e400", H + "1,0,1e400,3,1\n", EventTableError, ["column AMT", "'1e400' is too large"]),
    ("time-huge-int", H + f"1,{BIG},1000,3,1\n", EventTableError, ["column TIME", "too large"]),
    ("time-minus-huge", H + f"1,-{BIG},1000,3,1\n", EventTableError, ["column TIME", "too large"]),
    ("cmt-huge-int", H + f"1,0,1000,{BIG},1\n", EventTableError, ["column CMT", "too large"]),
    ("evid-huge-int", H + f"1,0,1000,3,{BIG}\n", EventTableError, ["column EVID", "too large"]),
    ("cmt-1e300", H + "1,0,1000,1e300,1\n", EventTableError, ["column CMT", "'1e300' is too large"]),
    ("evid-2**60", H + f"1,0,1000,3,{2**60}\n", EventTableError, ["column EVID", "too large"]),
    ("ii-huge-int", "ID,TIME,AMT,CMT,EVID,II,ADDL\n" + f"1,0,1000,3,1,{BIG},2\n",
     EventTableError, ["column II", "too large"]),
    ("addl-huge-int", "ID,TIME,AMT,CMT,EVID,II,ADDL\n" + f"1,0,1000,3,1,7,{BIG}\n",
     EventTableError, ["column ADDL", "too large"]),
    ("ss-huge-int", "ID,TIME,AMT,CMT,EVID,SS\n" + f"1,0,1000,3,1,{BIG}\n", EventTableError,
     ["column SS", "too large"]),
    ("rate-huge-int", "ID,TIME,AMT,CMT,EVID,RATE\n" + f"1,0,1000,3,1,{BIG}\n", EventTableError,
     ["column RATE", "too large"]),
    ("addl-over-limit", "ID,TIME,AMT,CMT,EVID,II,ADDL\n" + f"1,0,1000,3,1,7,{MAX_EVENTS}\n",
     ResourceError, ["column ADDL", "exceed the limit"]),
    ("addl-total-over-limit", "ID,TIME,AMT,CMT,EVID,II,ADDL\n" + "".join(
        f"{i},0,1,3,1,1,{MAX_EVENTS // 2}\n" for i in (1, 2, 3)), ResourceError,
     ["line 3", "more than", "after expanding ADDL"]),
    ("ii-times-addl-overflows", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,1e308,2\n",
     EventTableError, ["column II", "too late to be a number"]),
    # what a message shows of the input: at most MAX_ECHO_CHARS characters, escaped
    ("long-cell", H + "1,0," + "9" * 5000 + "x,3,1\n", EventTableError,
     ["column AMT", "is not a number", "9" * MAX_ECHO_CHARS + "'..."]),
    ("ansi-escape-cell", H + "1,0,\x1b[31m1000\x1b[0m,3,1\n", EventTableError,
     ["column AMT", "\\x1b[31m1000"]),
    ("tab-in-cell", H + "1,0,10\t00,3,1\n", EventTableError, ["column AMT", "\\t"]),
    ("bidi-in-cell", H + "1,0,1000\u202e,3,1\n", EventTableError, ["column AMT", "\\u202e"]),
    ("long-route", "ID,TIME,AMT,CMT,EVID,ROUTE\n1,0,1000,3,1," + "m" * 3000 + "\n",
     EventTableError, ["column ROUTE", "unknown route", "accepted routes"]),
    ("long-form", "ID,TIME,AMT,CMT,EVID,FORM\n1,0,1000,3,1,\x1b]0;x\x07" + "y" * 3000 + "\n",
     EventTableError, ["column FORM", "unknown cobalamin form"]),
    ("long-letter-row", H + "Z" * 3000 + ",0,1000,3,1\n", EventTableError,
     ["line 2", "Z" * MAX_ECHO_CHARS + "'..."]),
]


@pytest.mark.parametrize("content, cls, needles", [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_malformed_files_give_one_clear_line(tmp_path, content, cls, needles):
    path = _csv(tmp_path, content)
    with pytest.raises(B12pkError) as info:
        read_event_table(path)
    _check_message(info.value, cls, needles, source="events.csv")
    message = str(info.value)
    # no more than MAX_ECHO_CHARS characters of any one cell
    assert "9" * (MAX_ECHO_CHARS + 1) not in message and "m" * (MAX_ECHO_CHARS + 1) not in message
    assert "y" * (MAX_ECHO_CHARS + 1) not in message and "Z" * (MAX_ECHO_CHARS + 1) not in message
    assert "0" * (MAX_ECHO_CHARS + 1) not in message


def test_the_pandas_tokenizer_message_never_shows(tmp_path):
    path = _csv(tmp_path, H + "1,0,1000,3,1\n" * 3 + "1,1,1000,3,1,4\n")
    with pytest.raises(EventTableError) as info:
        read_event_table(path)
    _check_message(info.value, EventTableError, ["line 5", "more fields than the header"])
    assert "tokenizing" not in str(info.value)


# -- IDs are exact integers ------------------------------------------------------------------

def test_ids_beyond_float_precision_stay_distinct(tmp_path):
    a, b = MAX_INT, MAX_INT - 1  # a float would still tell these apart; 2**53 + 1 is refused
    back = read_event_table(_csv(tmp_path, H + f"{a},0,1000,3,1\n{b},0,500,3,1\n"))
    assert list(back) == [b, a]
    assert all(type(k) is int for k in back)
    assert back[a].dose_events(5)[0].amount_ug == 1000 and back[b].dose_events(5)[0].amount_ug == 500


@pytest.mark.parametrize("text, pid", [("7", 7), ("+7", 7), ("007", 7), ("7.0", 7), ("7.", 7),
                                       (" 7 ", 7), ("7.000", 7), (str(MAX_INT), MAX_INT)])
def test_whole_number_id_spellings(tmp_path, text, pid):
    back = read_event_table(_csv(tmp_path, H + f"{text},0,1000,3,1\n"))
    assert list(back) == [pid] and type(list(back)[0]) is int


def test_the_same_id_spelled_differently_is_one_patient(tmp_path):
    back = read_event_table(_csv(tmp_path, H + "7,0,1000,3,1\n007,1,1000,3,1\n7.0,2,1000,3,1\n"))
    assert list(back) == [7] and len(back[7].dose_events(5)) == 3


BAD_FRAMES = [
    ("id-2**53+1", {"ID": [2**53 + 1]}, ["column ID", str(2**53 + 1), "not exact"]),
    ("id-2**63-object", {"ID": pd.Series([2**64], dtype=object)}, ["column ID", "not exact"]),
    ("id-huge-int", {"ID": pd.Series([10**400], dtype=object)}, ["column ID", "400 digits"]),
    ("id-float-beyond-2**53", {"ID": [2.0**60]}, ["column ID", "not exact"]),
    ("id-bool", {"ID": [True]}, ["column ID", "True"]),
    ("id-nan", {"ID": [math.nan]}, ["column ID", "no patient ID"]),
    ("id-none", {"ID": pd.Series([None], dtype=object)}, ["column ID"]),
    ("id-string-exponent", {"ID": ["1e3"]}, ["'1e3'", "exponent notation"]),
    ("id-fraction", {"ID": [2.5]}, ["column ID", "2.5"]),
    ("amt-huge-int", {"AMT": pd.Series([10**400], dtype=object)}, ["column AMT", "too large"]),
    ("time-huge-int", {"TIME": pd.Series([10**400], dtype=object)}, ["column TIME", "too large"]),
    ("ii-huge-int", {"II": pd.Series([10**5000], dtype=object), "ADDL": [1]},
     ["column II", "too large"]),
    ("addl-huge-int", {"ADDL": pd.Series([10**400], dtype=object), "II": [1.0]},
     ["column ADDL", "too large"]),
    ("cmt-huge-int", {"CMT": pd.Series([10**400], dtype=object)}, ["column CMT", "too large"]),
    ("amt-object", {"AMT": pd.Series([object()], dtype=object)}, ["column AMT", "not a number"]),
    ("amt-bool", {"AMT": [True]}, ["column AMT", "not a number"]),
    ("amt-long-text", {"AMT": ["x" * 5000]}, ["column AMT", "x" * MAX_ECHO_CHARS + "'..."]),
]


@pytest.mark.parametrize("columns, needles", [c[1:] for c in BAD_FRAMES],
                         ids=[c[0] for c in BAD_FRAMES])
def test_malformed_frames_give_one_clear_line(columns, needles):
    with pytest.raises(B12pkError) as info:
        read_event_table(_table(**columns))
    _check_message(info.value, EventTableError, needles, source="event table: row 1")
    assert "x" * (MAX_ECHO_CHARS + 1) not in str(info.value)


def test_frame_ids_of_numpy_and_float_types_are_plain_ints():
    table = pd.DataFrame({"ID": np.array([3, 3, 5], dtype=np.int64), "TIME": [0, 1, 0],
                          "AMT": [1, 1, 1], "CMT": [3, 3, 3], "EVID": [1, 1, 1]})
    back = read_event_table(table)
    assert list(back) == [3, 5] and all(type(k) is int for k in back)
    assert list(read_event_table(_table(ID=[4.0]))) == [4]


@pytest.mark.parametrize("columns", [["ID", "TIME", "AMT", "CMT", "EVID", "AMT.1"],
                                     ["ID", "TIME", "AMT", "CMT", "EVID", "cmt.2"]])
def test_frame_with_pandas_renamed_duplicates_is_refused(columns):
    table = pd.DataFrame([[1, 0, 1000, 3, 1, 5]], columns=columns)
    with pytest.raises(EventTableError) as info:
        read_event_table(table)
    _check_message(info.value, EventTableError, ["duplicate column(s)", "pandas.read_csv"])


def test_frame_with_other_dotted_names_is_accepted():
    table = pd.DataFrame([[1, 0, 1000, 3, 1, 5]],
                         columns=["ID", "TIME", "AMT", "CMT", "EVID", "WT.1"])
    assert list(read_event_table(table)) == [1]


# -- observation_times: a list of numbers, never a string -----------------------------------

BAD_OBSERVATION_TIMES = [
    ("comma-string", "0,1,2", ["not text", "'0,1,2'", "observation_times=[0, 1, 2]"]),
    ("semicolon-string", "0;1", ["not text", "'0;1'"]),
    ("space-string", "0 1 2", ["not text"]),
    ("empty-string", "", ["not text"]),
    ("one-number-string", "7", ["not text", "'7'"]),
    ("bytes", b"0,1", ["not text"]),
    ("long-string", "1," * 5000, ["not text", "..."]),
    ("escape-string", "0,\x1b[2J1", ["not text", "\\x1b[2J"]),
    ("scalar-int", 5, ["list of numbers", "got int 5"]),
    ("scalar-float", 1.5, ["list of numbers", "got float"]),
    ("none", None, ["list of numbers", "NoneType"]),
    ("string-items", ["0", "1"], ["must be numbers", "'0'"]),
    ("none-item", [0, None], ["must be numbers", "None"]),
    ("bool-item", [True], ["must be numbers", "True"]),
    ("nested-list", [[0, 1]], ["must be numbers"]),
    ("object-item", [object()], ["must be numbers"]),
    ("dict", {"a": 1}, ["must be numbers", "'a'"]),
    ("nan", [0, math.nan], ["finite and >= 0", "nan"]),
    ("numpy-nan", np.array([np.nan]), ["finite and >= 0", "nan"]),
    ("inf", [math.inf], ["finite and >= 0", "inf"]),
    ("negative", [1, -1], ["finite and >= 0", "-1"]),
    ("negative-tiny", [-1e-300], ["finite and >= 0"]),
    ("huge-int", [10**400], ["too large", "400 digits"]),
    ("huge-int-2", [0, 10**5000], ["too large", "5000 digits"]),
]


@pytest.mark.parametrize("times, needles", [c[1:] for c in BAD_OBSERVATION_TIMES],
                         ids=[c[0] for c in BAD_OBSERVATION_TIMES])
def test_bad_observation_times(times, needles):
    with pytest.raises(B12pkError) as info:
        to_event_table(LOADING, 30, observation_times=times)
    _check_message(info.value, EventTableError, needles)
    assert "1," * (MAX_ECHO_CHARS // 2 + 1) not in str(info.value)  # at most 80 characters


@pytest.mark.parametrize("times", [[0, 1.5, 2], (0, 2), range(3), np.array([0.0, 1.0]),
                                   np.arange(3, dtype=np.int32), [np.float32(1)], [-0.0],
                                   (t for t in [0, 1]), [1e300]])
def test_observation_times_of_any_numeric_sequence(times):
    table = to_event_table(Regimen.once(1000, "im"), 5, observation_times=times)
    assert (table["EVID"] == 0).sum() >= 1
    assert table.loc[table["EVID"] == 0, "TIME"].map(type).eq(float).all()


@pytest.mark.parametrize("pid, needles", [
    (2**53 + 1, [str(2**53 + 1), "2**53"]), (10**400, ["400 digits"]), (True, ["True"]),
    (1.0, ["1.0"]), ("1", ["'1'"]), (-3, ["-3"]),
])
def test_bad_export_ids(pid, needles):
    with pytest.raises(EventTableError) as info:
        to_event_table({pid: LOADING}, 10)
    _check_message(info.value, EventTableError, ["whole numbers >= 1"] + needles)


def test_export_ids_keep_their_value():
    table = to_event_table({np.int64(3): LOADING, MAX_INT: Regimen.daily(10)}, 10)
    assert sorted(set(table["ID"].tolist())) == [3, MAX_INT]
    assert read_event_table(table).keys() == {3, MAX_INT}


@pytest.mark.parametrize("unit", [["days"], None, 24, "Days"])
def test_bad_time_unit_types(unit):
    with pytest.raises(EventTableError) as info:
        to_event_table(LOADING, 10, time_unit=unit)
    _check_message(info.value, EventTableError, ["unknown time_unit", "accepted: days, hours"])


# -- writing never loses the user's file -----------------------------------------------------

def test_failed_write_leaves_an_existing_file_alone(tmp_path):
    path = tmp_path / "doses.csv"
    path.write_text("precious\n")
    for bad in ("0,1,2", [math.nan]):
        with pytest.raises(EventTableError):
            write_event_table(path, LOADING, 30, observation_times=bad)
    with pytest.raises(EventTableError):
        write_event_table(path, {0: LOADING}, 30)
    assert path.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doses.csv"]


def test_write_replaces_a_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "doses.csv"
    path.write_text("old\n")
    write_event_table(path, LOADING, 30)
    assert read_event_table(path)[1].dose_events(30) == LOADING.dose_events(30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doses.csv"]


def test_write_to_a_folder_or_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputError) as info:
        write_event_table(tmp_path, LOADING, 30)
    _check_message(info.value, OutputError, ["folder"])
    with pytest.raises(OutputError) as info:
        write_event_table(tmp_path / "none" / "x.csv", LOADING, 30)
    _check_message(info.value, OutputError, ["does not exist"])
    assert list(tmp_path.iterdir()) == []


def test_unreadable_paths_are_one_line_errors(tmp_path):
    for source, needle in ((tmp_path, "is a folder"), (str(tmp_path / "a\x00b.csv"), "null"),
                           (tmp_path / "none.csv", "no such file")):
        with pytest.raises(EventTableError) as info:
            read_event_table(source)
        _check_message(info.value, EventTableError, [needle])
