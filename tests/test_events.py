"""Tests for b12pk.events: NONMEM-style event tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12pk.errors import EventTableError, FileFormatError
from b12pk.events import (
    CMT_BY_ROUTE,
    COLUMNS,
    read_event_table,
    to_event_table,
    write_event_table,
)
from b12pk.regimen import FORMS, ROUTES, Regimen

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
    amount = round(draw(st.floats(0.01, 100_000)), 2)
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
    with pytest.raises(EventTableError, match=r"bad.csv: row 2, column CMT: unknown compartment 9"):
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
    with pytest.raises(FileFormatError, match="no such event table file"):
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
