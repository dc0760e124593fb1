"""Properties that hold for random valid regimens and patients (hypothesis), and numerics at
the edges: 100-year horizons, simultaneous and nearly simultaneous doses, parameters at the
ends of their ranges.

Every simulation here is short (horizons <= 120 days, at most a few injections per example:
an injection transient costs ~0.05-0.1 s to integrate), so the file runs in well under 90 s.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import b12pk
from b12pk import DoseEvent, InputError, Patient, Regimen
from b12pk.regimen.events import read_event_table, to_event_table, write_event_table
from b12pk.regimen.language import (CONDITIONS, AtTimes, ForDays, ForDoses, Phase, Repeating, SingleDose,
                           UntilCondition, UntilDay)

ORAL_ROUTES = ("oral", "sublingual")
PARENTERAL = ("im", "deep-sc", "intranasal", "iv")
MAX_INJECTIONS = 3

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.filter_too_much])
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.filter_too_much])

pytestmark = pytest.mark.filterwarnings("ignore::b12pk.B12pkWarning")  # IV doses warn


def balance_error(df: pd.DataFrame) -> np.ndarray:
    """Relative mass-balance error at every output time (as in tests/test_engine.py),
    relative to at least 1e-12 ug: below that, amounts are round-off (a diet of 5e-324
    ug/day, the smallest float, is lost to underflow; hypothesis found it)."""
    total_in = df.attrs["initial_body_ug"] + df["dosed_ug"] + df["diet_ug"]
    accounted = df["body_ug"] + df["urine_ug"] + df["faeces_ug"] + df["unabsorbed_ug"]
    return np.abs(total_in - accounted) / np.maximum(total_in, 1e-12)


def assert_sound(df: pd.DataFrame) -> None:
    """Finite, non-negative amounts and mass conserved to 1e-9 (relative)."""
    values = df.drop(columns=["time_days"]).to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0.0).all(), df.drop(columns=["time_days"]).min()
    assert balance_error(df).max() < 1e-9


# ---------------------------------------------------------------------------------------
# Strategies

forms = st.sampled_from(b12pk.FORMS)
amounts = st.one_of(st.sampled_from([1.0, 10.0, 50.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0]),
                    st.floats(min_value=0.5, max_value=100_000.0, allow_nan=False))
days = st.integers(min_value=5, max_value=120)
# injections up to 5 mg: above ~30 mg with a low eGFR odeint can fail ("excess work done"), an
# engine bug, see test_very_large_injection_with_low_egfr below
injected = st.one_of(st.sampled_from([1.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0]),
                     st.floats(min_value=0.5, max_value=5000.0))


# Dose times in the simulation strategies are multiples of 1/8 day. A dose at a time such as
# 1/3 day, followed by hourly output, can put an output time one ulp away from the end of a
# solver chunk, and odeint then fails ("illegal input"): an engine bug, see
# test_injection_at_a_third_of_a_day_with_hourly_output below.
@st.composite
def oral_phase(draw, last: bool):
    cycle = draw(st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.5, 7.0, 14.0, 30.0]),
                           st.integers(min_value=1, max_value=60).map(float)))
    per = draw(st.sampled_from([1, 2, 4]))
    durations = [st.builds(ForDays, st.floats(min_value=1.0, max_value=60.0)),
                 st.builds(ForDoses, st.integers(min_value=1, max_value=40))]
    if last:
        durations.append(st.none())
    return Phase(draw(amounts), draw(st.sampled_from(ORAL_ROUTES)), draw(forms),
                 Repeating(cycle, per), draw(st.one_of(*durations)),
                 draw(st.one_of(st.none(), st.integers(min_value=1, max_value=60))))


@st.composite
def injection_phase(draw, last: bool):
    route = draw(st.sampled_from(PARENTERAL))
    kind = draw(st.sampled_from(["single", "times", "repeat"]))
    start = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=60)))
    if kind == "single":
        schedule, duration = SingleDose(), None
    elif kind == "times":
        times = sorted(draw(st.lists(st.integers(min_value=0, max_value=720).map(lambda k: k / 8),
                                     min_size=1, max_size=2)))
        schedule, duration, start = AtTimes(tuple(times)), None, None
    else:
        schedule = Repeating(draw(st.sampled_from([7.0, 14.0, 30.0, 60.0])))
        duration = ForDoses(draw(st.integers(min_value=1, max_value=2)))
    return Phase(draw(injected), route, draw(forms), schedule, duration, start)


@st.composite
def regimens(draw, max_phases: int = 3):
    """Valid regimens with few injections: oral/sublingual phases and short injection phases."""
    n = draw(st.integers(min_value=1, max_value=max_phases))
    phases = []
    for i in range(n):
        last = i == n - 1
        maker = draw(st.sampled_from([oral_phase, injection_phase]))
        phases.append(draw(maker(last)))
    try:
        return Regimen(tuple(phases))
    except InputError:  # e.g. a phase that ends before it starts
        assume(False)


@st.composite
def patients(draw):
    preset = draw(st.sampled_from(b12pk.PRESETS))
    settings_ = {}
    if draw(st.booleans()):
        settings_["egfr_ml_min"] = draw(st.floats(min_value=1.0, max_value=200.0))
    if draw(st.booleans()):
        settings_["ileal_resection_cm"] = draw(st.floats(min_value=0.0, max_value=600.0))
    if draw(st.booleans()):
        settings_["diet_ug_per_day"] = draw(st.floats(min_value=0.0, max_value=1000.0))
    if draw(st.booleans()):
        settings_["intrinsic_factor"] = draw(st.floats(min_value=0.0, max_value=1.0))
    # a deficient preset's baseline serum may lie below what a richer diet sustains with empty
    # stores (an InputError by design); a changed diet therefore comes with baseline stores
    if "diet_ug_per_day" in settings_ or draw(st.booleans()):
        settings_["stores_ug"] = draw(st.one_of(st.floats(min_value=0.0, max_value=100_000.0),
                                                st.floats(min_value=0.0, max_value=5_000.0)))
    return Patient.preset(preset, **settings_)


def n_injections(regimen: Regimen, horizon: float) -> int:
    return sum(e.route in PARENTERAL for e in regimen.dose_events(horizon))


def usable(regimen: Regimen, horizon: float) -> None:
    events = regimen.dose_events(horizon)
    assume(events)  # at least one dose within the horizon
    assume(sum(e.route in PARENTERAL for e in events) <= MAX_INJECTIONS)


def scaled(regimen: Regimen, factor: float) -> Regimen:
    """The same regimen with every dose multiplied by ``factor`` (a scaled regimen over a
    documented dose limit, per dose or per day, is not a case of the property: skipped)."""
    try:
        return Regimen(tuple(dataclasses.replace(p, amount_ug=p.amount_ug * factor)
                             for p in regimen.phases))
    except b12pk.DoseError:
        assume(False)


# ---------------------------------------------------------------------------------------
# Simulation properties

def test_mass_balance_with_the_smallest_diet():
    """hypothesis's case: a diet of the smallest float and empty stores (totals below float
    resolution at first) conserves mass once amounts are above round-off."""
    patient = b12pk.Patient(diet_ug_per_day=5e-324, baseline_stores_ug=0.0)
    regimen = b12pk.parse_regimen("1 mcg cyanocobalamin IM on day 4")
    df = b12pk.simulate(regimen, patient, days=5, hourly_after_injections=True)
    assert_sound(df)


@FAST
@given(regimens(), patients(), days)
def test_mass_balance_and_no_negative_amounts(regimen, patient, horizon):
    usable(regimen, horizon)
    df = b12pk.simulate(regimen, patient, days=horizon, hourly_after_injections=True)
    assert_sound(df)
    assert df["dosed_ug"].iloc[-1] == pytest.approx(
        sum(e.amount_ug for e in regimen.dose_events(horizon)), rel=1e-12)


SOLVER_REL = 1e-7
"""Relative global error of a simulated course (tolerance of comparisons between runs)."""


@FAST
@given(regimens(max_phases=2), patients(), days, st.floats(min_value=1.0, max_value=10.0))
def test_more_dose_never_gives_less_serum(regimen, patient, horizon, factor):
    usable(regimen, horizon)
    assume(max(p.amount_ug * (factor if p.route in ORAL_ROUTES else factor * 20)
               for p in regimen.phases) <= 100_000.0)  # injections stay <= 5 mg
    low = b12pk.simulate(regimen, patient, days=horizon, hourly_after_injections=True)
    high = b12pk.simulate(scaled(regimen, factor), patient, days=horizon,
                          hourly_after_injections=True)
    assert (low["time_days"].to_numpy() == high["time_days"].to_numpy()).all()
    s_low, s_high = low["serum_pmol_per_l"].to_numpy(), high["serum_pmol_per_l"].to_numpy()
    # the integrator's global error (rtol 1e-10 per step) reaches a few 1e-9 relative over
    # an injection transient: a factor 1 + 1e-16 must not read as "more dose, less serum"
    assert (s_high >= s_low * (1 - SOLVER_REL)).all(), np.min(s_high - s_low)
    stores_low, stores_high = low["stores_ug"].to_numpy(), high["stores_ug"].to_numpy()
    assert (stores_high >= stores_low * (1 - SOLVER_REL) - 1e-9).all()


@pytest.mark.parametrize("stores", [14_020.0, 20_000.0])
def test_more_dose_with_saturated_haptocorrin(stores):
    patient = Patient.preset("healthy", stores_ug=stores)
    one = b12pk.simulate(Regimen.once(1.0, "im"), patient, days=5, hourly_after_injections=True)
    two = b12pk.simulate(Regimen.once(2.0, "im"), patient, days=5, hourly_after_injections=True)
    assert (two["serum_pmol_per_l"] >= one["serum_pmol_per_l"]).all()


@FAST
@given(regimens(max_phases=2), patients(), st.integers(min_value=20, max_value=120),
       st.floats(min_value=0.5, max_value=30.0))
def test_later_first_dose_never_gives_more_serum_earlier(regimen, patient, horizon, delay):
    usable(regimen, horizon)
    events = regimen.dose_events(horizon)
    later = [DoseEvent(e.time_days + delay, e.amount_ug, e.route, e.form) for e in events]
    first_late = later[0].time_days
    assume(first_late < horizon)
    early_df = b12pk.simulate(events, patient, days=horizon)
    late_df = b12pk.simulate(later, patient, days=horizon)
    assume(early_df["stores_ug"].max() < 13_000.0)  # below haptocorrin saturation (see above)
    untreated = b12pk.simulate([], patient, days=horizon)
    before = early_df["time_days"].to_numpy() < first_late
    early = early_df["serum_pmol_per_l"].to_numpy()[before]
    late = late_df["serum_pmol_per_l"].to_numpy()[before]
    none = untreated["serum_pmol_per_l"].to_numpy()[before]
    assert (late <= early * (1 + 1e-9)).all()
    np.testing.assert_allclose(late, none, rtol=1e-9)  # before its first dose: untreated


@QUICK
@given(regimens(), days)
def test_dose_events_are_sorted_within_the_horizon_and_rebuild_the_regimen(regimen, horizon):
    events = regimen.dose_events(horizon)
    times = [e.time_days for e in events]
    assert times == sorted(times)
    assert all(0 <= t < horizon for t in times)
    if events:
        assert Regimen.from_events(events).dose_events(horizon) == events


# ---------------------------------------------------------------------------------------
# Text and table round trips (no simulation: many examples)

def _round_trip_phase(draw, last: bool) -> Phase:
    route = draw(st.sampled_from(b12pk.ROUTES))
    kind = draw(st.sampled_from(["single", "times", "repeat"]))
    start = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=400)))
    if kind == "single":
        return Phase(draw(amounts), route, draw(forms), SingleDose(), None, start)
    if kind == "times":
        times = st.one_of(st.integers(min_value=0, max_value=1000).map(float),
                          st.floats(min_value=0.0, max_value=1000.0))
        chosen = sorted(draw(st.lists(times, min_size=1, max_size=6)))
        return Phase(draw(amounts), route, draw(forms), AtTimes(tuple(chosen)))
    cycle = draw(st.one_of(st.sampled_from([1.0, 2.0, 7.0, 14.0, 30.0, 60.0, 90.0, 365.0]),
                           st.floats(min_value=0.01, max_value=400.0)))
    sched = Repeating(cycle, draw(st.integers(min_value=1, max_value=4)))
    options = [st.builds(ForDays, st.floats(min_value=0.5, max_value=1000.0)),
               st.builds(ForDoses, st.integers(min_value=1, max_value=100)),
               st.builds(UntilCondition, st.sampled_from(CONDITIONS),
                         st.floats(min_value=1.0, max_value=200.0))]
    if start is None:
        options.append(st.builds(UntilDay, st.integers(min_value=1, max_value=2000)))
    if last:
        options.append(st.none())
    return Phase(draw(amounts), route, draw(forms), sched, draw(st.one_of(*options)), start)


@st.composite
def any_regimen(draw):
    n = draw(st.integers(min_value=1, max_value=4))
    phases = tuple(_round_trip_phase(draw, i == n - 1) for i in range(n))
    try:
        return Regimen(phases)
    except InputError:
        assume(False)


@QUICK
@given(any_regimen())
def test_parse_of_canonical_text_round_trips(regimen):
    text = regimen.to_text()
    again = Regimen.parse(text)
    assert again == regimen, text
    assert again.to_text() == text


@QUICK
@given(st.lists(any_regimen(), min_size=1, max_size=3), st.integers(min_value=1, max_value=400))
def test_event_table_round_trip(regs, horizon):
    try:
        expected = {i: r.dose_events(horizon) for i, r in enumerate(regs, start=1)}
    except b12pk.ResourceError:   # over the dose limits: refused, nothing to round-trip
        assume(False)
    assume(all(expected.values()))
    table = to_event_table(regs, horizon)
    back = read_event_table(table)
    assert sorted(back) == sorted(expected)
    for pid, events in expected.items():
        assert back[pid].dose_events(horizon) == events


@settings(max_examples=30, deadline=None)
@given(any_regimen(), st.integers(min_value=1, max_value=400))
def test_event_table_round_trip_through_csv(tmp_path_factory, regimen, horizon):
    try:
        events = regimen.dose_events(horizon)
    except b12pk.ResourceError:   # over the dose limits: refused, nothing to round-trip
        assume(False)
    assume(events)
    path = tmp_path_factory.mktemp("events") / "events.csv"
    write_event_table(path, regimen, horizon, observation_times=[0.0, horizon / 2])
    assert read_event_table(path)[1].dose_events(horizon) == events
    write_event_table(path, regimen, horizon, time_unit="hours")
    hours = read_event_table(path, time_unit="hours")[1].dose_events(horizon + 1)
    assert len(hours) == len(events)

    def key(ev):  # doses at the same time to 1e-9 days (hours round off) in a fixed order
        return (round(ev.time_days, 9), ev.route, ev.form, ev.amount_ug)

    for a, b in zip(sorted(hours, key=key), sorted(events, key=key)):
        assert a.time_days == pytest.approx(b.time_days, rel=1e-12, abs=1e-12)
        assert (a.amount_ug, a.route, a.form) == (b.amount_ug, b.route, b.form)


# ---------------------------------------------------------------------------------------
# Numerics at the edges

def test_hundred_year_oral_horizon_is_sound():
    df = b12pk.simulate(Regimen.daily(1000), "pernicious-anaemia", days=b12pk.MAX_DAYS)
    assert len(df) == 36501
    assert_sound(df)


def test_hundred_year_horizon_after_an_injection_is_sound():
    regimen = Regimen.parse("1000 mcg hydroxocobalamin IM on days 1, 3, 5")
    df = b12pk.simulate(regimen, Patient.preset("pernicious-anaemia", serum_pmol_per_l=110),
                        days=b12pk.MAX_DAYS)
    assert_sound(df)
    # untreated pernicious anaemia after the loading doses: serum falls back towards the floor
    assert df["serum_pmol_per_l"].iloc[-1] < df["serum_pmol_per_l"].iloc[10]


def test_doses_at_the_same_instant_add_up():
    same = [DoseEvent(0.0, 1000, "im", "hydroxo"), DoseEvent(0.0, 500, "im", "hydroxo"),
            DoseEvent(0.0, 1000, "oral", "cyano"), DoseEvent(0.0, 1000, "oral", "cyano")]
    df = b12pk.simulate(same, "pernicious-anaemia", days=10)
    assert_sound(df)
    assert df["dosed_ug"].iloc[0] == 3500.0
    one = b12pk.simulate([DoseEvent(0.0, 1500, "im", "hydroxo"),
                          DoseEvent(0.0, 1000, "oral", "cyano"),
                          DoseEvent(0.0, 1000, "oral", "cyano")], "pernicious-anaemia", days=10)
    np.testing.assert_allclose(df["serum_pmol_per_l"], one["serum_pmol_per_l"], rtol=1e-9)


@pytest.mark.parametrize("t0", [0.0, 3.0, 50.25])
def test_doses_closer_than_the_solver_step(t0):
    gap = 1e-9
    close = [DoseEvent(t0, 1000, "im", "cyano"), DoseEvent(t0 + gap, 1000, "im", "cyano"),
             DoseEvent(t0 + 2 * gap, 500, "oral", "cyano"), DoseEvent(t0 + 3 * gap, 500, "oral", "cyano")]
    same = [DoseEvent(t0, 2000, "im", "cyano"), DoseEvent(t0, 500, "oral", "cyano"),
            DoseEvent(t0, 500, "oral", "cyano")]
    a = b12pk.simulate(close, "healthy", days=60)
    b = b12pk.simulate(same, "healthy", days=60)
    assert_sound(a)
    assert a["dosed_ug"].iloc[-1] == 3000.0
    np.testing.assert_allclose(a["serum_pmol_per_l"], b["serum_pmol_per_l"], rtol=1e-5)


def test_a_dose_just_before_the_horizon_counts_and_one_at_it_does_not():
    h = 10.0
    df = b12pk.simulate([DoseEvent(h - 1e-9, 1000, "im", "cyano"),
                         DoseEvent(h, 1000, "im", "cyano")], "healthy", days=h)
    assert_sound(df)
    assert df["dosed_ug"].iloc[-1] == 1000.0


def test_doses_a_few_ulps_apart_are_given_together():
    """Gaps the solver cannot resolve (1e-14 at day 50, 1e-160 at day 0) once raised
    RuntimeError or gave NaN; simulate now gives such doses at the same instant."""
    for t0, gap in ((50.0, 1e-14), (0.0, 1e-160), (0.0, 1e-300)):
        df = b12pk.simulate([DoseEvent(t0, 1.0, "im", "cyano"),
                             DoseEvent(t0 + gap, 1.0, "im", "cyano")], "healthy", days=t0 + 5)
        assert_sound(df)
        assert df["dosed_ug"].iloc[-1] == 2.0


def test_injection_at_a_third_of_a_day_with_hourly_output():
    # e.g. a NONMEM table with an IM dose at TIME 8 (hours), then `b12pk compare`
    regimen = Regimen.from_events([DoseEvent(8 / 24, 500, "im", "hydroxo")])
    df = b12pk.simulate(regimen, "pernicious-anaemia", days=10, hourly_after_injections=True)
    assert_sound(df)


@pytest.mark.parametrize("amount, egfr, route, form", [
    (100_000.0, 1.0, "im", "cyanocobalamin"),
    (100_000.0, 20.0, "iv", "hydroxocobalamin"),
])
def test_very_large_injection_with_low_egfr(amount, egfr, route, form):
    df = b12pk.simulate(Regimen.once(amount, route, form),
                        Patient.preset("healthy", egfr_ml_min=egfr), days=15,
                        hourly_after_injections=True)
    assert_sound(df)


def _edge_regimen(name: str) -> list[DoseEvent]:
    """An injection (of the form or route the parameter acts on) plus oral doses."""
    route, form = "im", "cyanocobalamin"
    if "hydroxo" in name:
        form = "hydroxocobalamin"
    elif "nasal" in name:
        route = "intranasal"
    return [DoseEvent(0.0, 1000, route, form)] + [DoseEvent(float(d), 1000, "oral", "cyano")
                                                 for d in range(8)]


_TABLE = b12pk.parameter_table()


@pytest.mark.parametrize("end", ["low", "high"])
@pytest.mark.parametrize("name", list(_TABLE["name"]))
def test_parameter_at_the_end_of_its_range(name, end):
    row = _TABLE.set_index("name").loc[name]
    params = b12pk.default_parameters().replace(**{name: float(row[end])})
    for patient in ("healthy", "pernicious-anaemia"):
        df = b12pk.simulate(_edge_regimen(name), patient, days=12, parameters=params)
        assert_sound(df)
        assert (df["serum_pmol_per_l"] > 0).all()


@pytest.mark.parametrize("end", ["low", "high"])
def test_all_parameters_at_one_end_together(end):
    # every end is valid alone; together they may make a derived rate negative (the
    # stores' release onto haptocorrin), which is refused with the rate named
    params = b12pk.default_parameters().replace(**dict(zip(_TABLE["name"], _TABLE[end].astype(float))))
    regimen = Regimen.parse("1000 mcg hydroxocobalamin IM once, then 2000 mcg oral daily")
    try:
        df = b12pk.simulate(regimen, "pernicious-anaemia", days=120, parameters=params)
    except b12pk.ParameterError as err:
        assert "derived rate" in str(err)
        return
    assert_sound(df)


@pytest.mark.parametrize("settings_", [
    {"egfr_ml_min": 1.0}, {"egfr_ml_min": 200.0}, {"ileal_resection_cm": 600.0},
    {"diet_ug_per_day": 0.0}, {"diet_ug_per_day": 1000.0}, {"intrinsic_factor": 0.0},
    {"food_release": 0.0}, {"stores_ug": 0.0}, {"stores_ug": 100_000.0},
    {"serum_pmol_per_l": 100_000.0}, {"diet_ug_per_day": 0.0, "serum_pmol_per_l": 1.0},
], ids=lambda s: ",".join(f"{k}={v:g}" for k, v in s.items()))
def test_patient_at_the_end_of_its_ranges(settings_):
    patient = Patient.preset("healthy", **settings_)
    regimen = Regimen.parse("1000 mcg IM once, then 1000 mcg oral daily for 30 days")
    df = b12pk.simulate(regimen, patient, days=60)
    assert_sound(df)
    assert math.isfinite(b12pk.steady_state_stores_ug(patient))
