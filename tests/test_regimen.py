"""Tests for b12pk.regimen: vocabulary, the regimen language, canonical text, events, TOML."""

from __future__ import annotations

import math

import pytest

from b12pk.errors import B12pkWarning

import b12pk
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from b12pk.errors import (
    B12pkError,
    DoseError,
    InputError,
    FileFormatError,
    HorizonError,
    RegimenSyntaxError,
    ResourceError,
    UnknownNameError,
)
from b12pk.regimen.language import (
    FORMS,
    MAX_DOSE_UG,
    ROUTES,
    AtTimes,
    DoseEvent,
    ForDays,
    ForDoses,
    Phase,
    Regimen,
    Repeating,
    SingleDose,
    UntilCondition,
    UntilDay,
    load_regimens,
    normalize_form,
    normalize_route,
    parse_regimen,
    regimen_variants,
    regimens_to_toml,
    validate_dose,
)


def days(regimen: Regimen, horizon: float = 400.0) -> list[float]:
    """Treatment days (day 1 = t 0) of the doses before the horizon."""
    return [e.time_days + 1 for e in regimen.dose_events(horizon)]


def amounts(regimen: Regimen, horizon: float = 400.0) -> list[float]:
    return [e.amount_ug for e in regimen.dose_events(horizon)]


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("alias, route", [
    ("IM", "im"), ("intramuscular", "im"), ("Intramuscularly", "im"), ("i.m.", "im"),
    ("PO", "oral"), ("orally", "oral"), ("by mouth", "oral"), ("oral", "oral"),
    ("sublingual", "sublingual"), ("SL", "sublingual"),
    ("nasal", "intranasal"), ("intranasally", "intranasal"),
    ("SC", "deep-sc"), ("subcutaneous", "deep-sc"), ("deep SC", "deep-sc"), ("deep-sc", "deep-sc"),
    ("IV", "iv"), ("intravenous", "iv"),
])
def test_normalize_route_accepts_aliases(alias, route):
    assert normalize_route(alias) == route


def test_normalize_route_rejects_unknown_and_lists_accepted():
    with pytest.raises(UnknownNameError, match=r"unknown route 'rectal'.*oral.*sublingual.*im.*"
                                               r"deep-sc.*intranasal.*iv"):
        normalize_route("rectal")


@pytest.mark.parametrize("alias, form", [
    ("cyano", "cyanocobalamin"), ("CNCbl", "cyanocobalamin"), ("CN-Cbl", "cyanocobalamin"),
    ("hydroxo", "hydroxocobalamin"), ("OHCbl", "hydroxocobalamin"),
    ("Hydroxocobalamin", "hydroxocobalamin"), ("methyl", "methylcobalamin"),
    ("MeCbl", "methylcobalamin"), ("mecobalamin", "methylcobalamin"),
])
def test_normalize_form_accepts_aliases(alias, form):
    assert normalize_form(alias) == form


def test_normalize_form_rejects_unknown_and_lists_accepted():
    with pytest.raises(UnknownNameError, match=r"unknown cobalamin form 'adenosyl'.*"
                                               r"cyanocobalamin.*hydroxocobalamin.*methylcobalamin"):
        normalize_form("adenosyl")


def test_canonical_names_are_fixed():
    assert ROUTES == ("oral", "sublingual", "im", "deep-sc", "intranasal", "iv")
    assert FORMS == ("cyanocobalamin", "hydroxocobalamin", "methylcobalamin")
    assert MAX_DOSE_UG == 100_000.0


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, 100_000.5, True, "1000"])
def test_validate_dose_rejects_bad_amounts(bad):
    with pytest.raises(DoseError, match=r"at most 100000 µg"):
        validate_dose(bad)


def test_validate_dose_accepts_the_maximum():
    assert validate_dose(100_000) == 100_000.0


def test_errors_are_value_errors_and_b12pk_errors():
    with pytest.raises(ValueError):
        validate_dose(0)
    with pytest.raises(B12pkError):
        normalize_route("x")


# ---------------------------------------------------------------------------
# DoseEvent
# ---------------------------------------------------------------------------

def test_dose_event_normalises_route_and_form():
    ev = DoseEvent(0, 1000, "IM", "OHCbl")
    assert (ev.time_days, ev.amount_ug, ev.route, ev.form) == (0.0, 1000.0, "im", "hydroxocobalamin")


@pytest.mark.parametrize("time", [-1.0, math.nan, math.inf])
def test_dose_event_rejects_bad_times(time):
    with pytest.raises(HorizonError, match="dose time"):
        DoseEvent(time, 1000, "im", "cyanocobalamin")


def test_dose_event_rejects_bad_amount():
    with pytest.raises(DoseError):
        DoseEvent(0, 0, "im", "cyanocobalamin")


# ---------------------------------------------------------------------------
# Parsing: the examples
# ---------------------------------------------------------------------------

def test_three_times_weekly_then_every_two_to_three_months_gives_two_variants():
    low, high = regimen_variants("hydroxocobalamin 1000 µg IM three times weekly for 2 weeks, "
                                 "then every 2-3 months for life")
    assert days(low) == [1, 3, 5, 8, 10, 12, 72, 132, 192, 252, 312, 372]
    assert days(high) == [1, 3, 5, 8, 10, 12, 102, 192, 282, 372]
    assert low.forms == ("hydroxocobalamin",) and low.routes == ("im",)


def test_daily_for_days_1_to_10_followed_by_monthly():
    r = Regimen.parse("1000 mcg IM daily for days 1-10, followed by monthly")
    assert days(r, 100) == list(range(1, 11)) + [40, 70, 100]


def test_oral_on_listed_days_then_monthly():
    r = Regimen.parse("2000 mcg orally on days 1, 3, 7, 10, 14, 21, then monthly")
    assert days(r, 120) == [1, 3, 7, 10, 14, 21, 51, 81, 111]
    assert set(amounts(r, 120)) == {2000.0}


def test_intranasal_every_three_days():
    r = Regimen.parse("1000 mcg intranasally every 3 days")
    assert days(r, 12) == [1, 4, 7, 10]
    assert r.routes == ("intranasal",)


# ---------------------------------------------------------------------------
# Parsing: amounts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "1000 \u00b5g IM once", "1000 \u03bcg IM once", "1000 mcg IM once", "1000 ug IM once",
    "1 mg IM once", "1,000 mcg IM once", "1000mcg IM once", "1000 micrograms IM once",
    "1 mg (1000 µg) IM once",
])
def test_amount_spellings_all_mean_1000_ug(text):
    assert amounts(Regimen.parse(text)) == [1000.0]


def test_decimal_amounts():
    assert amounts(Regimen.parse("0.5 mg oral once")) == [500.0]


def test_thousands_separator_is_not_confused_with_day_lists():
    r = Regimen.parse("2,000 mcg oral on days 1,3,7")
    assert amounts(r) == [2000.0] * 3
    assert days(r) == [1, 3, 7]


def test_case_spaces_dashes_and_nbsp_are_tolerated():
    a = Regimen.parse("1000\u00a0MCG   Im   DAILY for days 1\u201310 , THEN   Monthly")
    b = Regimen.parse("1000 mcg IM daily for days 1-10, then monthly")
    assert a == b


def test_em_dash_range():
    assert len(regimen_variants("1000 mcg IM every 2\u20143 months")) == 2


def test_trailing_full_stop_is_ignored():
    assert Regimen.parse("1000 mcg IM monthly.") == Regimen.parse("1000 mcg IM monthly")


# ---------------------------------------------------------------------------
# Parsing: forms and routes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("word, form", [("cyanocobalamin", "cyanocobalamin"),
                                        ("OHCbl", "hydroxocobalamin"),
                                        ("methylcobalamin", "methylcobalamin"),
                                        ("CN-Cbl", "cyanocobalamin")])
def test_form_words_in_text(word, form):
    assert Regimen.parse(f"1000 mcg {word} oral daily").forms == (form,)


def test_missing_form_defaults_to_cyanocobalamin_and_shows_in_text():
    r = Regimen.parse("1000 mcg IM monthly")
    assert r.forms == ("cyanocobalamin",)
    assert "cyanocobalamin" in r.to_text()


def test_missing_form_is_an_error_without_default():
    with pytest.raises(RegimenSyntaxError, match="no form given"):
        Regimen.parse("1000 mcg IM monthly", default_form=None)


@pytest.mark.parametrize("word, route", [
    ("oral", "oral"), ("orally", "oral"), ("PO", "oral"), ("by mouth", "oral"),
    ("sublingual", "sublingual"), ("IM", "im"), ("intramuscularly", "im"),
    ("deep SC", "deep-sc"), ("deep-sc", "deep-sc"), ("subcutaneous", "deep-sc"),
    ("intranasal", "intranasal"), ("nasal", "intranasal"), ("IV", "iv"),
])
def test_route_words_in_text(word, route):
    assert Regimen.parse(f"1000 mcg {word} daily").routes == (route,)


def test_route_restated_in_parentheses():
    assert Regimen.parse("1000 mcg intramuscular (IM) monthly").routes == ("im",)


def test_clauses_may_come_in_any_order():
    a = Regimen.parse("100 mcg cyanocobalamin daily for 6 days IM")
    b = Regimen.parse("IM cyanocobalamin 100 mcg daily for 6 days")
    assert a == b


# ---------------------------------------------------------------------------
# Parsing: frequencies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("freq, expected", [
    ("once", [1]), ("a single dose", [1]), ("daily", [1, 2, 3, 4]), ("once daily", [1, 2, 3, 4]),
    ("every day", [1, 2, 3, 4]), ("per day", [1, 2, 3, 4]), ("every 2 days", [1, 3]),
    ("on alternate days", [1, 3]), ("every other day", [1, 3]), ("alternate-day", [1, 3]),
    ("weekly", [1]), ("every 3 days", [1, 4]),
])
def test_frequencies_within_four_days(freq, expected):
    assert days(Regimen.parse(f"1000 mcg oral {freq}"), 4) == expected


@pytest.mark.parametrize("freq, expected", [
    ("weekly", [1, 8, 15, 22, 29]), ("once weekly", [1, 8, 15, 22, 29]),
    ("every 2 weeks", [1, 15, 29]), ("fortnightly", [1, 15, 29]), ("monthly", [1, 31]),
    ("once a month", [1, 31]), ("every month", [1, 31]),
    ("3 times weekly", [1, 3, 5, 8, 10, 12, 15, 17, 19, 22, 24, 26, 29, 31]),
    ("three times a week", [1, 3, 5, 8, 10, 12, 15, 17, 19, 22, 24, 26, 29, 31]),
    ("twice weekly", [1, 4, 8, 11, 15, 18, 22, 25, 29]),
])
def test_frequencies_within_31_days(freq, expected):
    assert days(Regimen.parse(f"1000 mcg IM {freq}"), 31) == expected


def test_every_n_months_uses_30_day_months():
    assert days(Regimen.parse("1000 mcg IM every 3 months"), 200) == [1, 91, 181]
    assert days(Regimen.parse("1000 mcg IM 3-monthly"), 200) == [1, 91, 181]
    assert days(Regimen.parse("1000 mcg IM once every two months"), 130) == [1, 61, 121]


def test_twice_daily_is_half_a_day_apart():
    r = Regimen.parse("1000 mcg oral twice daily for 2 days")
    assert [e.time_days for e in r.dose_events(10)] == [0.0, 0.5, 1.0, 1.5]


def test_every_12_hours_is_half_a_day():
    r = Regimen.parse("1000 mcg oral every 12 hours for 1 day")
    assert [e.time_days for e in r.dose_events(10)] == [0.0, 0.5]


def test_amount_per_day():
    assert Regimen.parse("1000 µg/day oral") == Regimen.daily(1000)


def test_on_days_list_with_and():
    assert days(Regimen.parse("1000 mcg oral on days 1, 3 and 7")) == [1, 3, 7]


def test_explicit_times_within_a_day():
    r = Regimen.parse("1000 mcg oral at times 0, 0.25, 1.5 days")
    assert [e.time_days for e in r.dose_events(10)] == [0.0, 0.25, 1.5]


# ---------------------------------------------------------------------------
# Parsing: durations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("duration, n", [
    ("for 10 days", 10), ("for 2 weeks", 14), ("for 1 month", 30), ("for days 1-10", 10),
    ("until day 10", 10), ("for 7 doses", 7), ("for seven doses", 7),
])
def test_daily_durations(duration, n):
    assert days(Regimen.parse(f"1000 mcg oral daily {duration}")) == list(range(1, n + 1))


@pytest.mark.parametrize("words", ["for life", "indefinitely", "lifelong", ""])
def test_indefinite_runs_to_the_horizon(words):
    r = Regimen.parse(f"1000 mcg IM monthly {words}")
    assert r == Regimen.parse("1000 mcg IM monthly")
    assert r.is_indefinite
    assert days(r, 1000)[-1] == 991


def test_days_window_not_starting_on_day_1():
    r = Regimen.parse("1000 mcg oral daily for days 5-7")
    assert days(r) == [5, 6, 7]


def test_from_day_starts_later():
    assert days(Regimen.parse("1000 mcg IM weekly from day 8"), 30) == [8, 15, 22, 29]


def test_open_ended_with_written_stop():
    r = Regimen.parse("1000 mcg IM on alternate days until no further improvement (max 6 weeks)")
    assert days(r) == list(range(1, 42, 2))


def test_open_ended_with_stop_argument():
    a = Regimen.parse("1000 mcg IM on alternate days until no further improvement",
                      open_ended_days=42)
    b = Regimen.parse("1000 mcg IM on alternate days until no further improvement (max 6 weeks)")
    assert a == b


def test_open_ended_phrasings():
    for phrase in ("until there is no further improvement in symptoms",
                   "until no further neurological improvement",
                   "until no further improvement is observed"):
        r = Regimen.parse(f"1000 mcg IM on alternate days {phrase} (max 10 days)")
        assert days(r) == [1, 3, 5, 7, 9]


def test_until_levels_normalize_then_continue():
    r = Regimen.parse("1000 mcg oral daily until levels normalize (max 90 days), then continue "
                      "as maintenance therapy indefinitely")
    assert days(r, 100) == list(range(1, 101))
    assert len(r.phases) == 2


# ---------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------

def test_monthly_after_daily_starts_one_month_after_the_last_loading_dose():
    r = Regimen.parse("1000 mcg IM daily for 10 days, then monthly")
    assert days(r, 100) == list(range(1, 11)) + [40, 70, 100]


def test_weekly_after_daily_14_days_starts_day_21():
    r = Regimen.parse("1000 mcg intranasal daily for 14 days, followed by weekly")
    assert days(r, 30) == list(range(1, 15)) + [21, 28]


def test_later_phase_inherits_dose_route_and_form():
    r = Regimen.parse("500 mcg hydroxocobalamin IM daily for 3 days; every 2 months")
    assert {(p.amount_ug, p.route, p.form) for p in r.phases} == {(500.0, "im", "hydroxocobalamin")}


def test_later_phase_may_change_dose_and_route():
    r = Regimen.parse("1000 mcg IM weekly for 4 doses, then 2000 mcg oral daily")
    assert r.routes == ("im", "oral")
    assert amounts(r, 25) == [1000.0] * 4 + [2000.0] * 3
    assert days(r, 25) == [1, 8, 15, 22, 23, 24, 25]


def test_single_dose_then_next_phase_the_next_day():
    r = Regimen.parse("1000 mcg IM once, then 100 mcg oral daily for 2 days")
    assert days(r) == [1, 2, 3]


def test_phase_separators():
    base = Regimen.parse("1000 mcg IM daily for 2 days, then weekly")
    for sep in ("; then", "followed by", ", followed by", "and then", ",", ";", "thereafter"):
        assert Regimen.parse(f"1000 mcg IM daily for 2 days {sep} weekly") == base


def test_the_pernicious_anaemia_three_phase_schedule():
    r = regimen_variants("100 mcg cyanocobalamin daily for 6-7 days IM, followed by alternate-day "
                         "dosing for seven doses, then every 3-4 days for 2-3 weeks")[0]
    assert days(r) == [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35]


# ---------------------------------------------------------------------------
# Ranges
# ---------------------------------------------------------------------------

def test_text_without_ranges_gives_one_variant():
    assert regimen_variants("1000 mcg IM monthly") == [Regimen.parse("1000 mcg IM monthly")]


def test_dose_range_gives_low_and_high_variant():
    low, high = regimen_variants("1000-2000 µg orally daily")
    assert (amounts(low, 1), amounts(high, 1)) == ([1000.0], [2000.0])


def test_range_with_to():
    assert len(regimen_variants("1000 to 2000 mcg oral daily")) == 2


def test_mg_range_and_restated_parenthetical_take_the_same_end():
    variants = regimen_variants("1000-2000 μg (1-2 mg) daily oral")
    assert [amounts(v, 1) for v in variants] == [[1000.0], [2000.0]]


def test_two_ranges_give_four_variants_first_range_slowest():
    variants = regimen_variants("30 mcg IM daily for 5-10 days, then 100-200 mcg monthly")
    firsts = [(len([d for d in days(v, 20) if d <= 10]), v.phases[1].amount_ug) for v in variants]
    assert firsts == [(5, 100.0), (5, 200.0), (10, 100.0), (10, 200.0)]


def test_equal_range_ends_are_deduplicated():
    assert len(regimen_variants("1000-1000 mcg IM monthly")) == 1


def test_parse_refuses_ranges_and_points_to_regimen_variants():
    with pytest.raises(RegimenSyntaxError, match=r'"1000-2000" \(position 0\).*regimen_variants'):
        Regimen.parse("1000-2000 mcg oral daily")


def test_range_low_end_first():
    with pytest.raises(RegimenSyntaxError, match="low end first"):
        regimen_variants("1000 mcg IM every 3-2 months")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_unknown_word_error_quotes_text_position_expected_and_suggestion():
    text = "1000 mcg IM evry 3 days"
    with pytest.raises(RegimenSyntaxError) as info:
        Regimen.parse(text)
    err = info.value
    assert str(err).startswith(f'cannot read regimen "{text}": stopped at "evry" (position 12)')
    assert "expected " in str(err) and "every" in err.expected and "daily" in err.expected
    assert 'did you mean "every"?' in str(err)
    assert (err.text, err.position) == (text, 12)


def test_a_transposed_unit_is_not_read_as_a_1000_fold_other_unit():
    """'mgc' is 'mcg' with two letters swapped; suggesting 'mg' would be a 1000-fold error."""
    with pytest.raises(RegimenSyntaxError, match='did you mean "mcg"'):
        Regimen.parse("2000 mgc oral daily")


def test_missing_route_reads_as_oral_with_a_warning():
    with pytest.warns(B12pkWarning, match="no route given: read as oral"):
        reg = Regimen.parse("1000 mcg cyano daily")
    assert reg.routes == ("oral",)


def test_missing_amount_error():
    with pytest.raises(RegimenSyntaxError, match="no amount given"):
        Regimen.parse("IM monthly")


def test_missing_frequency_error():
    with pytest.raises(RegimenSyntaxError, match=r"no frequency given; expected one of: daily"):
        Regimen.parse("1000 mcg IM")


def test_phase_without_end_before_then_error():
    with pytest.raises(RegimenSyntaxError, match=r'stopped at "," \(position 17\): the phase '
                                                 r'before never ends'):
        Regimen.parse("1000 mcg IM daily, then monthly")


def test_open_ended_without_stop_takes_the_stated_assumption():
    with pytest.warns(B12pkWarning, match=r"'until no further improvement' read as 6 weeks "
                                          r"\(assumed"):
        reg = Regimen.parse("1000 mcg IM on alternate days until no further improvement")
    assert "(max 6 weeks)" in reg.to_text()
    explicit = Regimen.parse("1000 mcg IM on alternate days until no further improvement "
                             "(max 3 weeks)")
    assert "(max 3 weeks)" in explicit.to_text()


@pytest.mark.parametrize("word", ["biweekly", "bimonthly", "bi-weekly"])
def test_ambiguous_biweekly_is_refused(word):
    with pytest.raises(RegimenSyntaxError, match="is ambiguous; write 'twice"):
        Regimen.parse(f"1000 mcg IM {word}")


def test_or_is_refused():
    with pytest.raises(RegimenSyntaxError, match="'or' are separate regimens"):
        Regimen.parse("1000 mcg IM monthly or 1000 mcg oral daily")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(text):
    with pytest.raises(RegimenSyntaxError, match="the text is empty"):
        Regimen.parse(text)


def test_non_string_text():
    with pytest.raises(TypeError, match="must be a string"):
        Regimen.parse(1000)  # type: ignore[arg-type]


def test_trailing_then_needs_a_phase():
    with pytest.raises(RegimenSyntaxError, match="a phase must follow"):
        Regimen.parse("1000 mcg IM daily for 3 days, then")


@pytest.mark.parametrize("text", ["200 mg IM daily", "0 mcg IM daily"])
def test_dose_out_of_range_in_text(text):
    with pytest.raises(DoseError, match=r'cannot read regimen .*at most 100000 µg'):
        Regimen.parse(text)


@pytest.mark.parametrize("text, message", [
    ("1000 mcg IM every 0 days", "dosing interval must be a finite number of days greater than 0"),
    ("1000 mcg IM daily for 0 days", "phase duration must be"),
    ("1000 mcg IM on days 0, 3", "days are whole numbers counted from day 1"),
    ("1000 mcg IM on days 3, 1", "dose days must not decrease"),
    ("1000 mcg IM on days 1.5", "days are whole numbers"),
    ("1000 mcg IM daily for 2.5 doses", "whole number"),
    ("1000 mcg IM once for 2 weeks", "only a repeating phase takes a duration"),
    ("1000 mcg IM daily for 3 days, then weekly until day 2", "phase 2 gives no dose"),
])
def test_impossible_times_raise_horizon_error(text, message):
    with pytest.raises(HorizonError, match=message):
        Regimen.parse(text)


@pytest.mark.parametrize("text, message", [
    ("1000 mcg IM oral daily", "already has a route"),
    ("1000 mcg IM daily weekly", "already has a frequency"),
    ("1000 mcg 500 mcg IM daily", "already has a amount"),
    ("1000 mcg IM daily for 3 days for 4 days", "already has a duration"),
])
def test_clause_given_twice(text, message):
    with pytest.raises(RegimenSyntaxError, match=message):
        Regimen.parse(text)


def test_parenthetical_amount_must_agree():
    with pytest.raises(RegimenSyntaxError, match=r"amount in parentheses \(2000 µg\) differs"):
        Regimen.parse("1 mg (2 mg) IM once")


def test_unexpected_character():
    with pytest.raises(RegimenSyntaxError, match=r'stopped at "%" \(position 4\)'):
        Regimen.parse("1000% IM daily")


def test_number_without_unit():
    with pytest.raises(RegimenSyntaxError, match="expected one of: mcg, µg, mg, times"):
        Regimen.parse("1000 IM daily")


def test_bad_for_clause():
    with pytest.raises(RegimenSyntaxError, match=r"expected one of: N days, N weeks"):
        Regimen.parse("1000 mcg IM daily for ever")


def test_bad_until_clause():
    with pytest.raises(RegimenSyntaxError, match=r"expected one of: day N, no further improvement"):
        Regimen.parse("1000 mcg IM daily until better")


def test_continue_needs_a_previous_phase():
    with pytest.raises(RegimenSyntaxError, match="'continue' repeats"):
        Regimen.parse("1000 mcg IM continue")


def test_bad_open_ended_days_argument():
    with pytest.raises(HorizonError, match="open_ended_days"):
        Regimen.parse("1000 mcg IM daily", open_ended_days=-1)


# ---------------------------------------------------------------------------
# Canonical text, equality, constructors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("hydroxocobalamin 1000 µg IM three times weekly for 2 weeks, then every 2 months for life",
     "1000 mcg hydroxocobalamin IM 3 times weekly for 2 weeks, then 1000 mcg hydroxocobalamin IM "
     "every 2 months indefinitely"),
    ("1 mg IM daily for days 1-10, followed by monthly",
     "1000 mcg cyanocobalamin IM daily until day 10, then 1000 mcg cyanocobalamin IM monthly "
     "indefinitely"),
    ("2000 mcg PO on days 1,3,7", "2000 mcg cyanocobalamin oral on days 1, 3, 7"),
    ("1000 mcg SC once", "1000 mcg cyanocobalamin deep SC once"),
    ("1000 mcg oral twice daily for 3 days", "1000 mcg cyanocobalamin oral twice daily for 3 days"),
    ("1000 mcg IM weekly for days 8-21", "1000 mcg cyanocobalamin IM weekly for days 8-21"),
])
def test_canonical_text(text, canonical):
    r = Regimen.parse(text)
    assert r.to_text() == canonical == str(r)
    assert Regimen.parse(canonical) == r


def test_label_is_not_part_of_equality_or_hash():
    a = Regimen.daily(1000).with_label("A")
    b = Regimen.daily(1000).with_label("B")
    assert a == b and hash(a) == hash(b) and a.label == "A"


def test_regimens_are_hashable_and_usable_in_sets():
    assert len({Regimen.parse("1000 mcg IM monthly"), Regimen.every(30, 1000, "IM")}) == 1


def test_repr_shows_the_text():
    assert repr(Regimen.daily(5)) == "Regimen.parse('5 mcg cyanocobalamin oral daily indefinitely')"


def test_parse_regimen_alias():
    assert parse_regimen("1000 mcg IM monthly") == Regimen.parse("1000 mcg IM monthly")


def test_daily_constructor():
    r = Regimen.daily(1000)
    assert r == Regimen.parse("1000 mcg cyanocobalamin oral daily")
    assert days(r, 3) == [1, 2, 3]


def test_every_constructor():
    r = Regimen.every(7, 1000, route="im", form="hydroxo", start_day=8, n_doses=3)
    assert days(r) == [8, 15, 22]
    assert r == Regimen.parse("1000 mcg hydroxocobalamin IM weekly from day 8 for 3 doses")


def test_once_constructor():
    assert Regimen.once(1000, "IM", "cyano") == Regimen.parse("1000 mcg IM once")
    assert days(Regimen.once(1000, "IM", day=5)) == [5]


def test_from_events_reproduces_the_events():
    events = Regimen.parse("1000 mcg IM three times weekly for 2 weeks, then 500 mcg oral daily "
                           "for 3 days").dose_events(100)
    r = Regimen.from_events(events)
    assert r.dose_events(100) == events
    assert Regimen.parse(r.to_text()) == r


def test_from_events_needs_events():
    with pytest.raises(DoseError, match="at least one dose event"):
        Regimen.from_events([])


def test_routes_and_forms_properties():
    r = Regimen.parse("1000 mcg hydroxo IM once, then 1000 mcg cyano oral daily")
    assert r.routes == ("im", "oral")
    assert r.forms == ("hydroxocobalamin", "cyanocobalamin")


def test_phase_after_indefinite_phase_is_refused_in_constructor():
    p = Phase(1000, "im", "cyanocobalamin", Repeating(30))
    with pytest.raises(HorizonError, match="phase 2 can never start"):
        Regimen((p, p))


def test_open_ended_phase_needs_max_days_in_constructor():
    with pytest.raises(HorizonError, match="explicit stop"):
        Phase(1000, "im", "cyanocobalamin", Repeating(2), UntilCondition("no further improvement"))


# ---------------------------------------------------------------------------
# Dose events
# ---------------------------------------------------------------------------

def test_horizon_is_exclusive():
    assert days(Regimen.parse("1000 mcg IM weekly"), 14) == [1, 8]
    assert days(Regimen.parse("1000 mcg IM weekly"), 14.0001) == [1, 8, 15]


@pytest.mark.parametrize("horizon", [0, -1, math.nan, math.inf])
def test_bad_horizon(horizon):
    with pytest.raises(HorizonError, match="horizon"):
        Regimen.daily(1000).dose_events(horizon)


def test_too_many_events():
    with pytest.raises(ResourceError, match="exceed the limit"):
        Regimen.parse("1 mcg oral every 1 hours").dose_events(1e6)


def test_events_are_sorted_and_carry_route_and_form():
    events = Regimen.parse("1000 mcg hydroxo IM weekly for 2 doses, then 50 mcg oral daily "
                           "for 2 days").dose_events(100)
    assert [e.time_days for e in events] == sorted(e.time_days for e in events)
    assert events[0] == DoseEvent(0.0, 1000.0, "im", "hydroxocobalamin")
    assert events[-1] == DoseEvent(9.0, 50.0, "oral", "hydroxocobalamin")


# ---------------------------------------------------------------------------
# Property-based round trips
# ---------------------------------------------------------------------------

_amounts = st.one_of(st.integers(1, 100_000).map(float),
                     st.floats(0.001, MAX_DOSE_UG, allow_nan=False, allow_infinity=False))
_routes = st.sampled_from(ROUTES)
_forms = st.sampled_from(FORMS)
_repeating = st.builds(Repeating,
                       st.one_of(st.sampled_from([1.0, 2.0, 3.0, 7.0, 14.0, 30.0, 60.0, 90.0]),
                                 st.floats(0.05, 400, allow_nan=False)),
                       st.integers(1, 4))
_finite_duration = st.one_of(
    st.builds(ForDays, st.one_of(st.integers(1, 400).map(float), st.floats(0.5, 400))),
    st.builds(ForDoses, st.integers(1, 50)),
    st.builds(UntilCondition, st.sampled_from(["no further improvement", "levels normalize"]),
              st.integers(1, 120).map(float)),
)


@st.composite
def _phase(draw, last: bool, first: bool) -> Phase:
    amount, route, form = draw(_amounts), draw(_routes), draw(_forms)
    kind = draw(st.sampled_from(["once", "repeat", "times"]))
    if kind == "once":
        return Phase(amount, route, form, SingleDose(), None,
                     draw(st.none() | st.integers(1, 50)))
    if kind == "times":
        times = draw(st.lists(st.one_of(st.integers(0, 300).map(float), st.floats(0, 300)),
                              min_size=1, max_size=6))
        return Phase(amount, route, form, AtTimes(tuple(sorted(times))))
    sched = draw(_repeating)
    if draw(st.booleans()):
        start = draw(st.integers(1, 60))
        end = draw(st.integers(start + 10, start + 100))
        if draw(st.booleans()) and sched.first_gap() <= 10:
            return Phase(amount, route, form, sched, UntilDay(end), start)
    else:
        start = None
    duration = draw(_finite_duration | st.none()) if last else draw(_finite_duration)
    return Phase(amount, route, form, sched, duration, start)


@st.composite
def regimens(draw) -> Regimen:
    n = draw(st.integers(1, 3))
    phases = tuple(draw(_phase(last=i == n - 1, first=i == 0)) for i in range(n))
    try:
        return Regimen(phases)
    except InputError:  # over a daily limit, or phases that overlap: refused by design
        assume(False)


def test_a_long_list_of_expected_words_is_summarised_by_kind():
    with pytest.raises(RegimenSyntaxError) as info:
        Regimen.parse("(((((")
    message = str(info.value)
    assert len(message) < 300
    assert "an amount, a form, a route, a frequency" in message
    assert "docs/regimen-language.md" in message
    assert "every" in info.value.expected  # the full list stays on the exception


@pytest.mark.parametrize("text", [
    "1000 mcg IM on day 10 then 1000 mcg IM on day 5",
    "1000 mcg IM on days 1, 2, then 500 mcg IM daily from day 2 for 3 days",
    "1000 mcg IM daily for 1 week, then 1000 mcg IM on days 3, 30",
])
def test_then_phases_that_run_backwards_or_overlap_are_refused(text):
    with pytest.raises(b12pk.HorizonError, match="follow one another"):
        Regimen.parse(text)


def test_lists_of_explicit_days_may_interleave_as_from_events_writes_them():
    events = [DoseEvent(0, 1000, "im", "cyano"), DoseEvent(1, 500, "im", "cyano"),
              DoseEvent(7, 1000, "im", "cyano"), DoseEvent(8, 500, "im", "cyano")]
    regimen = Regimen.from_events(events)
    again = Regimen.parse(regimen.to_text())
    assert again.dose_events(10) == regimen.dose_events(10)


@pytest.mark.parametrize("label", ["\x1b[2J\x07", "two\nlines", "", "x" * 121, "tab\there"])
def test_labels_with_control_characters_or_line_breaks_are_refused(label):
    with pytest.raises(b12pk.InputError, match="label"):
        Regimen.parse("1000 mcg oral daily").with_label(label)


@settings(max_examples=200, deadline=None)
@given(regimens())
def test_text_round_trip_of_any_regimen(regimen):
    text = regimen.to_text()
    again = Regimen.parse(text)
    assert again == regimen
    assert again.to_text() == text


_text_amount = st.sampled_from(["1000 mcg", "1 mg", "500 µg", "2,000 mcg", "250 ug", "1.5 mg"])
_text_route = st.sampled_from(["IM", "orally", "PO", "intranasal", "deep SC", "sublingual", "IV"])
_text_form = st.sampled_from(["", "hydroxocobalamin", "cyano", "MeCbl"])
_text_freq = st.sampled_from(["daily", "twice daily", "weekly", "monthly", "every 3 days",
                              "every 2 months", "three times weekly", "on alternate days",
                              "every other day", "once weekly", "2 times a week"])
_text_end = st.sampled_from(["for 10 days", "for 2 weeks", "for 3 months", "for 5 doses",
                             "until no further improvement (max 4 weeks)"])


@st.composite
def regimen_texts(draw) -> str:
    n = draw(st.integers(1, 3))
    phases = []
    for i in range(n):
        parts = [draw(_text_amount), draw(_text_form), draw(_text_route), draw(_text_freq)]
        if i > 0 and draw(st.booleans()):
            parts = [draw(_text_freq)]  # inherits dose, route, form
        parts.append(draw(_text_end) if i < n - 1 else draw(_text_end | st.just("for life")))
        phases.append(" ".join(p for p in parts if p))
    return draw(st.sampled_from([", then ", "; ", ", followed by ", " then "])).join(phases)


@settings(max_examples=200, deadline=None)
@given(regimen_texts())
def test_text_to_regimen_to_text_to_regimen(text):
    regimen = Regimen.parse(text)
    assert Regimen.parse(regimen.to_text()) == regimen
    assert Regimen.parse(regimen.to_text()).dose_events(300) == regimen.dose_events(300)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 6), st.integers(1, 6))
def test_variants_are_every_combination_of_range_ends(a, b, m, n):
    lo_amt, hi_amt = sorted((a, b))
    lo_iv, hi_iv = sorted((m, n))
    variants = regimen_variants(f"{lo_amt}-{hi_amt} mcg IM every {lo_iv}-{hi_iv} months")
    expected = []
    for amt in (lo_amt, hi_amt):
        for iv in (lo_iv, hi_iv):
            r = Regimen.every(30.0 * iv, amt, "im")
            if r not in expected:
                expected.append(r)
    assert variants == expected


@settings(max_examples=100, deadline=None)
@given(regimens(), st.floats(1, 800))
def test_events_are_in_horizon_and_sorted(regimen, horizon):
    try:
        events = regimen.dose_events(horizon)
    except (ResourceError, DoseError):  # over a documented limit (e.g. 2,000 injections)
        assume(False)
    times = [e.time_days for e in events]
    assert times == sorted(times)
    assert all(0 <= t < horizon for t in times)


# ---------------------------------------------------------------------------
# TOML regimen files
# ---------------------------------------------------------------------------

def _write(tmp_path, content, name="r.toml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_load_single_regimen_table(tmp_path):
    path = _write(tmp_path, '[regimen]\nlabel = "IM"\ntext = "1000 mcg IM monthly"\n')
    (r,) = load_regimens(path)
    assert r == Regimen.parse("1000 mcg IM monthly") and r.label == "IM"


def test_load_regimen_list_with_structured_entries(tmp_path):
    path = _write(tmp_path, """
[[regimen]]
text = "1000 mcg IM on alternate days until no further improvement"
open_ended_days = 42

[[regimen]]
label = "weekly x4"
amount_ug = 1000
route = "IM"
form = "hydroxo"
interval_days = 7
n_doses = 4

[[regimen]]
amount_ug = 500.0
route = "oral"
start_day = 3
""")
    a, b, c = load_regimens(path)
    assert days(a)[-1] == 41
    assert b == Regimen.every(7, 1000, "im", "hydroxocobalamin", n_doses=4) and b.label == "weekly x4"
    assert c == Regimen.once(500, "oral", day=3)


def test_load_expands_variants_when_asked(tmp_path):
    path = _write(tmp_path, '[regimen]\nlabel = "oral"\ntext = "1000-2000 mcg oral daily"\n'
                            'variants = true\n')
    regs = load_regimens(path)
    assert [r.label for r in regs] == ["oral [1/2]", "oral [2/2]"]


def test_toml_round_trip(tmp_path):
    regs = [Regimen.daily(1000).with_label('say "hi"'), Regimen.parse("1000 mcg IM monthly")]
    path = _write(tmp_path, regimens_to_toml(regs))
    loaded = load_regimens(path)
    assert loaded == regs and [r.label for r in loaded] == ['say "hi"', None]


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"\xff\xfe[regimen]", "not UTF-8"),
    ("[regimen\ntext = 1", "not valid TOML"),
    ('[other]\ntext = "x"\n', r"no \[regimen\] table.*found: other"),
    ('regimen = "1000 mcg IM monthly"\n', "must be a table or a list of tables, got str"),
    ("regimen = []\n", "list is empty"),
    ("regimen = [1]\n", "regimen 1: must be a table, got int"),
    ("[regimen]\ntext = 1000\n", "regimen 1: 'text' must be a string"),
    ('[regimen]\ntext = "1000 mcg IM monthly"\ncolour = "red"\n', "unknown key 'colour'"),
    ('[regimen]\ntext = "1000 mcg IM evry month"\n', r'regimen 1: cannot read regimen.*"evry"'),
    ('[regimen]\ntext = "1000-2000 mcg IM monthly"\n', "regimen_variants"),
    ('[regimen]\nlabel = "x"\n', "needs 'text' or structured fields"),
    ("[regimen]\namount_ug = 1000\n", "needs 'route'"),
    ('[regimen]\namount_ug = "1000"\nroute = "im"\n', "'amount_ug' must be a number"),
    ('[regimen]\namount_ug = 1e9\nroute = "im"\n', "at most 100000"),
    ('[regimen]\namount_ug = 1000\nroute = "rectal"\n', "unknown route"),
    ('[regimen]\namount_ug = 1000\nroute = "im"\nn_doses = 3\n', "'n_doses' needs 'interval_days'"),
    ('[regimen]\namount_ug = 1000\nroute = "im"\nstart_day = true\n', "'start_day' must be an integer"),
])
def test_bad_toml_files(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(FileFormatError, match=message) as info:
        load_regimens(path)
    assert str(path) in str(info.value)


def test_missing_toml_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file; expected a TOML regimen file"):
        load_regimens(tmp_path / "missing.toml")


def test_directory_instead_of_toml_file(tmp_path):
    with pytest.raises(FileFormatError, match="is a folder, not a regular file; expected a TOML regimen file"):
        load_regimens(tmp_path)


@pytest.mark.parametrize("text", ["1000 mcg oral daily", "1000 mcg hydroxocobalamin IM 3 times "
                                  "weekly for 2 weeks, then every 2 months",
                                  "500 mcg sublingual twice daily for 3 days"])
def test_repeated_doses_equal_checked_dose_events(text):
    # a run's later doses are made without checking each again: they must be the same
    # DoseEvents as checked construction gives, frozen and hashable like them
    events = Regimen.parse(text).dose_events(200)
    again = [DoseEvent(e.time_days, e.amount_ug, e.route, e.form) for e in events]
    assert events == again and {hash(e) for e in events} == {hash(e) for e in again}
    assert all(type(e) is DoseEvent and isinstance(e.time_days, float) for e in events)
    with pytest.raises(AttributeError):
        events[-1].amount_ug = 1.0
