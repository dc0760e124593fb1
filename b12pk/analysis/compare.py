"""Regimen comparison: simulate several regimens for several patients and summarise.

The defaults (``data/compare_defaults.toml``) are the regimens the seed documents argue
about, each with the seed file and sentence it comes from, for two patients (deficient with
normal absorption; pernicious anaemia), over one year.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .._data import data_path
from ..engine.core import (INTERVAL_PERCENTILES, PARENTERAL, HOURLY_POINTS,
                          add_interval_columns, as_regimen,
                          check_draws, check_days, check_memory, result_memory_bytes, simulate,
                          simulate_draws, simulate_memory_bytes)
from ..errors import FileFormatError, InputError, UnknownNameError
from ..io import check_label, echo, read_toml
from ..model.parameters import (Patient, marker_limits, pmol_per_l_to_pg_per_ml,
                                serum_bands_pmol_per_l)
from ..limits import MAX_TOML_BYTES
from ..regimen.language import DoseEvent, Regimen

__all__ = ["NamedRegimen", "NamedPatient", "Comparison", "compare", "summarize",
           "default_regimens", "default_patients", "load_patients", "SUMMARY_COLUMNS",
           "INTERVAL_METRICS", "at_a_glance", "glance_reading", "GLANCE_COLUMNS", "trough_course",
           "cycle_envelope"]

INJECTION_ROUTES = ("im", "deep-sc", "iv")
MONTH_DAYS = 30.0
STEADY_WINDOW_DAYS = 90.0

SUMMARY_COLUMNS = {
    "days_to_leave_deficient": "first day serum B12 reaches the deficiency cut-off (days)",
    "serum_1mo_pmol_per_l": "serum B12 at 1 month (day 30), pmol/L",
    "serum_3mo_pmol_per_l": "serum B12 at 3 months (day 90), pmol/L",
    "serum_6mo_pmol_per_l": "serum B12 at 6 months (day 180), pmol/L",
    "serum_12mo_pmol_per_l": "serum B12 at 12 months (day 360), pmol/L",
    "trough_ss_pmol_per_l": "lowest serum B12 in the last 90 days of the horizon, pmol/L",
    "peak_ss_pmol_per_l": "highest serum B12 in the last 90 days of the horizon, pmol/L",
    "pct_time_deficient": "share of days (day 1 to the end; day 0 is before the first dose) "
                          "with serum B12 below the deficiency cut-off, %",
    "pct_time_not_replete": "share of days (day 1 to the end) with serum B12 in the deficient "
                            "or indeterminate band (deficiency not yet 'unlikely'), %",
    "total_dose_ug": "total B12 given, ug",
    "n_injections": "number of injections (IM, deep SC, IV)",
    "urine_total_ug": "B12 lost in urine, ug",
    "stores_end_ug": "body stores at the end of the horizon, ug",
    "days_to_normal_mma": "first day methylmalonic acid is below its normal limit (days; 0: "
                          "normal from the start)",
    "mma_3mo_nmol_per_l": "methylmalonic acid at 3 months (day 90), nmol/L",
    "mma_12mo_nmol_per_l": "methylmalonic acid at 12 months (day 360), nmol/L",
    "hcy_3mo_umol_per_l": "total homocysteine at 3 months (day 90), umol/L",
    "hcy_12mo_umol_per_l": "total homocysteine at 12 months (day 360), umol/L",
}


@dataclass(frozen=True)
class NamedRegimen:
    """A regimen with a display label and where it comes from.

    Attributes
    ----------
    label : str
        Short display name.
    regimen : Regimen
        The regimen.
    seed_file, quote, reading : str
        Seed document, the sentence as written, and how it was read ("" if user-given).
    """

    label: str
    regimen: Regimen
    seed_file: str = ""
    quote: str = ""
    reading: str = ""


@dataclass(frozen=True)
class NamedPatient:
    """A patient with a display label (and why it was chosen)."""

    label: str
    patient: Patient
    why: str = ""


@dataclass
class Comparison:
    """Results of :func:`compare`.

    Attributes
    ----------
    regimens, patients : tuple
        What was compared.
    days : float
        Horizon, days.
    results : dict
        ``(patient_label, regimen_label) -> DataFrame`` from :func:`b12pk.simulate`.
    summary : pandas.DataFrame
        One row per regimen and patient; columns ``patient``, ``regimen``, ``regimen_text``
        and :data:`SUMMARY_COLUMNS` (with ``uncertainty``, also the 5th and 95th
        percentiles of :data:`INTERVAL_METRICS`).
    uncertainty : dict or None
        ``{"draws": n, "seed": s}`` when parameter uncertainty was drawn.
    """

    regimens: tuple[NamedRegimen, ...]
    patients: tuple[NamedPatient, ...]
    days: float
    results: dict[tuple[str, str], Any] = field(default_factory=dict)
    summary: Any = None
    uncertainty: dict[str, int] | None = None

    def by_patient(self) -> dict[str, dict[str, Any]]:
        """``patient_label -> regimen_label -> DataFrame``, in input order."""
        return {p.label: {r.label: self.results[(p.label, r.label)] for r in self.regimens}
                for p in self.patients}


def _defaults_file() -> dict[str, Any]:
    with open(data_path("compare_defaults.toml"), "rb") as fh:
        return tomllib.load(fh)


def default_regimens() -> list[NamedRegimen]:
    """The seed documents' contested regimens (``data/compare_defaults.toml``)."""
    return [NamedRegimen(label=e["label"], regimen=Regimen.parse(e["text"]).with_label(e["label"]),
                         seed_file=e["seed_file"], quote=e["quote"], reading=e["reading"])
            for e in _defaults_file()["regimen"]]


def _patient_from_entry(entry: Mapping[str, Any], where: str) -> NamedPatient:
    entry = dict(entry)
    preset = entry.pop("preset", None)
    label = entry.pop("label", None)
    why = entry.pop("why", "")
    if preset is None:
        raise FileFormatError(f"{where}: a patient needs 'preset' (one of the preset names)")
    if not isinstance(preset, str):
        raise FileFormatError(f"{where}: 'preset' must be text, got {preset!r}")
    for key, value in (("label", label), ("why", why)):
        if value is not None and not isinstance(value, str):
            raise FileFormatError(f"{where}: {key!r} must be text, got {value!r}")
    if "name" in entry:
        raise FileFormatError(f"{where}: 'name' is not a patient setting; use 'label' for a "
                              "display name and 'preset' for the preset")
    try:
        patient = Patient.preset(preset, **entry)
    except InputError as exc:  # same class, message prefixed with the file and entry
        raise type(exc)(f"{where}: {exc}") from None
    return NamedPatient(label=str(label or patient_label(patient)), patient=patient, why=why)


def patient_label(patient: Patient) -> str:
    serum = patient.baseline_serum_pmol_per_l
    return f"{patient.name} ({serum:g} pmol/L)" if serum is not None else patient.name


def default_patients() -> list[NamedPatient]:
    """The two default patients of ``b12pk compare``."""
    return [_patient_from_entry(e, "data/compare_defaults.toml")
            for e in _defaults_file()["patient"]]


def default_days() -> float:
    """Default horizon of ``b12pk compare`` (days)."""
    return float(_defaults_file()["days"])


def load_patients(path: str | Path) -> list[NamedPatient]:
    """Read patients from a TOML file.

    The file holds one ``[patient]`` table or a ``[[patient]]`` list; each entry has
    ``preset`` and optionally ``label`` and any :meth:`Patient.preset` setting, e.g.::

        [[patient]]
        label = "CKD, eGFR 25"
        preset = "renal-impairment"
        egfr_ml_min = 25
        serum_pmol_per_l = 120

    Raises
    ------
    FileFormatError
        Missing, unreadable, empty or malformed file.
    ResourceError
        A file over 10 MB, refused without reading it.
    """
    path = Path(path)
    doc, _ = read_toml(path, MAX_TOML_BYTES, "a TOML patient file")  # numbers checked too
    entries = doc.get("patient")
    if isinstance(entries, dict):
        entries = [entries]
    if not entries or not isinstance(entries, list) or \
            not all(isinstance(e, dict) for e in entries):
        raise FileFormatError(f"patient file {str(path)!r} has no [patient] table or "
                              "[[patient]] list")
    return [_patient_from_entry(e, f"{path} patient {i + 1}") for i, e in enumerate(entries)]


# --------------------------------------------------------------------------------------

def _band_upper(band: str) -> float:
    for name, low, high in serum_bands_pmol_per_l():
        if name == band:
            return high
    raise UnknownNameError(f"no {band!r} band in data/lab_bands.toml")  # pragma: no cover


def summarize(df: Any, regimen: Regimen, days: float) -> dict[str, float]:
    """Summary metrics of one simulated time course.

    Parameters
    ----------
    df : pandas.DataFrame
        Output of :func:`b12pk.simulate`.
    regimen : Regimen
        The regimen that was simulated (for the injection count).
    days : float
        Horizon, days.

    Returns
    -------
    dict
        The :data:`SUMMARY_COLUMNS`; a metric whose time lies beyond the horizon is NaN.
    """
    cutoff = _band_upper("deficient")
    t = df["time_days"].to_numpy()
    serum = df["serum_pmol_per_l"].to_numpy()
    above = np.nonzero(serum >= cutoff)[0]
    out: dict[str, float] = {
        "days_to_leave_deficient": float(t[above[0]]) if above.size else math.nan,
    }
    for months, key in ((1, "serum_1mo_pmol_per_l"), (3, "serum_3mo_pmol_per_l"),
                        (6, "serum_6mo_pmol_per_l"), (12, "serum_12mo_pmol_per_l")):
        at = months * MONTH_DAYS
        out[key] = float(np.interp(at, t, serum)) if at <= days + 1e-9 else math.nan
    window = t >= days - min(STEADY_WINDOW_DAYS, days / 3.0)
    out["trough_ss_pmol_per_l"] = float(serum[window].min())
    out["peak_ss_pmol_per_l"] = float(serum[window].max())
    daily = np.isclose(t, np.round(t), atol=1e-9) & (t > 0)   # day 0 is before any dose
    out["pct_time_deficient"] = float(100.0 * np.mean(serum[daily] < cutoff))
    out["pct_time_not_replete"] = float(
        100.0 * np.mean(serum[daily] < _band_upper("indeterminate")))
    events = regimen.dose_events(days)
    out["total_dose_ug"] = float(sum(e.amount_ug for e in events))
    out["n_injections"] = float(sum(e.route in INJECTION_ROUTES for e in events))
    out["urine_total_ug"] = float(df["urine_ug"].iloc[-1])
    out["stores_end_ug"] = float(df["stores_ug"].iloc[-1])
    out.update(_marker_metrics(df, t, days))
    return out


def _marker_metrics(df: Any, t: np.ndarray, days: float) -> dict[str, float]:
    """Time to normal MMA and the markers at 3 and 12 months (NaN beyond the horizon, or
    for a course without the marker columns)."""
    out: dict[str, float] = {}
    if "mma_nmol_per_l" not in df or "hcy_umol_per_l" not in df:
        return {k: math.nan for k in SUMMARY_COLUMNS if "mma" in k or "hcy" in k}
    limit = marker_limits()["mma_nmol_per_l"][0]
    mma = df["mma_nmol_per_l"].to_numpy()
    normal = np.nonzero(mma < limit)[0]
    out["days_to_normal_mma"] = float(t[normal[0]]) if normal.size else math.nan
    for col, name in (("mma_nmol_per_l", "mma"), ("hcy_umol_per_l", "hcy")):
        unit = col.split("_", 1)[1]
        for months in (3, 12):
            at = months * MONTH_DAYS
            out[f"{name}_{months}mo_{unit}"] = (float(np.interp(at, t, df[col].to_numpy()))
                                                if at <= days + 1e-9 else math.nan)
    return out


def _as_items(items: Any, kind: str, single: tuple[type, ...]) -> list:
    """``items`` as a list: one item of a ``single`` type is taken as a list of one."""
    if isinstance(items, single):
        return [items]
    if isinstance(items, (bytes, bytearray, Mapping)) or not isinstance(items, Iterable):
        raise InputError(f"{kind}s must be a list of {kind}s, got {type(items).__name__} "
                         f"{echo(items)}")
    return list(items)


def _text_variants(text: str) -> list[tuple[str, Regimen]]:
    """A regimen text, one per end of each range it holds (labelled with the end taken)."""
    from ..regimen.language import labelled_variants

    if "-" not in text and "\u2013" not in text and " to " not in text:
        return [(text.strip(), as_regimen(text, "compare"))]
    return labelled_variants(text)


def _as_named_regimens(regimens: Any) -> list[NamedRegimen]:
    if regimens is None:
        return default_regimens()
    items = _as_items(regimens, "regimen", (str, Regimen, NamedRegimen))
    if items and all(isinstance(r, DoseEvent) for r in items):
        raise InputError(f"cannot compare a list of {len(items)} DoseEvent: compare takes a "
                         "list of regimens; give the dose events of one regimen as one item, "
                         "e.g. compare([[DoseEvent(...), DoseEvent(...)]])")
    out = []
    for r in items:
        if isinstance(r, NamedRegimen):
            if not isinstance(r.regimen, Regimen):
                raise InputError(f"NamedRegimen {echo(r.label)}: regimen must be a Regimen, got "
                                 f"{type(r.regimen).__name__}")
            out.append(r)
        elif isinstance(r, str):  # the text as the user wrote it is the label; a range
            out += [NamedRegimen(label=label, regimen=reg)    # gives a regimen per end
                    for label, reg in _text_variants(r)]
        elif isinstance(r, (Regimen, list, tuple)):
            reg = as_regimen(r, "compare")
            out.append(NamedRegimen(label=reg.label or reg.to_text(), regimen=reg))
        else:
            raise InputError(f"cannot compare {type(r).__name__} {echo(r)}: give Regimen "
                             "objects, regimen text or lists of DoseEvent")
    return out


def _as_named_patients(patients: Any) -> list[NamedPatient]:
    if patients is None:
        return default_patients()
    out = []
    for p in _as_items(patients, "patient", (str, Patient, NamedPatient)):
        if isinstance(p, NamedPatient):
            if not isinstance(p.patient, Patient):
                raise InputError(f"NamedPatient {echo(p.label)}: patient must be a Patient, got "
                                 f"{type(p.patient).__name__}")
            out.append(p)
        elif isinstance(p, Patient):
            out.append(NamedPatient(label=patient_label(p), patient=p))
        elif isinstance(p, str):
            patient = Patient.preset(p)
            out.append(NamedPatient(label=patient_label(patient), patient=patient))
        else:
            raise InputError(f"cannot compare {echo(p)}: give Patient objects or preset names")
    return out


def _label_key(label: str) -> str:
    """What two labels must differ in to be told apart: case and runs of spaces do not
    count (a report, a spreadsheet or a case-insensitive file system would merge them)."""
    return " ".join(label.split()).casefold()


def _dedupe_labels(items: list, kind: str) -> list:
    """Unique labels, in order: a label equal to an earlier one (ignoring case and spaces)
    gets the first free suffix " (2)", " (3)", ...; an empty label is replaced by the
    regimen text (regimens) or the patient's name (patients)."""
    seen: set[str] = set()
    out = []
    for item in items:
        label = item.label
        if not isinstance(label, str):
            raise InputError(f"{kind} label {echo(label)} is not text; accepted: a string")
        if label.strip():  # one printable line, as Regimen checks its label
            check_label(label, f"{kind} label")
        label = " ".join(label.split())
        if not label:
            label = item.regimen.to_text() if kind == "regimen" else patient_label(item.patient)
        base, k = label, 1
        while _label_key(label) in seen:
            k += 1
            label = f"{base} ({k})"
        seen.add(_label_key(label))
        if label != item.label:
            item = type(item)(**{**item.__dict__, "label": label})
        out.append(item)
    return out


def compare_memory_bytes(regimens: Sequence[NamedRegimen], n_patients: int, days: float,
                         hourly_after_injections: bool = True, n_draws: int = 0) -> int:
    """Bytes :func:`compare` needs at most, estimated from the dose runs before any
    simulation: every time course it keeps, plus the peak of the largest simulation
    (:func:`b12pk.engine.simulate_memory_bytes`) for each of the simulations run side by side
    (:func:`_workers`), each with the courses of its ``n_draws`` parameter draws."""
    held, peak = 0, 0
    for r in regimens:
        runs = r.regimen.dose_runs(days)
        parenteral = [x for x in runs if x.route in PARENTERAL]
        n_out = math.floor(days + 1e-9) + 2
        if hourly_after_injections:
            n_out += HOURLY_POINTS * sum(x.count for x in parenteral)
        n_states = 3 * max(1, len({x.form for x in parenteral})) + 8
        held += result_memory_bytes(n_out)
        peak = max(peak, simulate_memory_bytes(n_out, n_states)
                   + n_draws * result_memory_bytes(n_out))
    return held * n_patients + peak * _workers(len(regimens) * n_patients)


def _workers(n_items: int) -> int:
    """Threads :func:`_in_threads` uses for ``n_items`` items: one per CPU available, at
    most one per item."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(n_items, cpus or 1))


def _in_threads(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
    """``fn`` of each item, in order, computed by one thread per CPU (at most one per
    item); an error is raised when its item's turn comes, and the items not yet started are
    then cancelled."""
    workers = _workers(len(items))
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        for fut in futures:
            yield fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def compare(regimens: Sequence[Any] | None = None, patients: Sequence[Any] | None = None,
            days: float | None = None, *,
            progress: Callable[[int, int, str], None] | None = None,
            uncertainty: int = 0, seed: int = 0) -> Comparison:
    """Simulate every regimen for every patient and summarise.

    Parameters
    ----------
    regimens : sequence of Regimen, NamedRegimen, str or list of DoseEvent, optional
        Default: :func:`default_regimens`. Each item is read as by :func:`b12pk.simulate`
        (a list of dose events is one regimen, :meth:`Regimen.from_events`); one Regimen,
        NamedRegimen or text alone is a list of one.
    patients : sequence of Patient, NamedPatient or preset names, optional
        Default: :func:`default_patients`; one alone is a list of one.
    days : float, optional
        Horizon in days (default 365), as for :func:`b12pk.simulate`.

    Labels are made unique, in order: a label equal to an earlier one, ignoring case and
    runs of spaces, gets the suffix " (2)", " (3)", ...; an empty label becomes the regimen
    text (the patient's name).
    progress : callable, optional
        Called as ``progress(done, total, label)`` after each simulation.
    uncertainty : int
        Parameter sets drawn from the fitted parameters' uncertainty for every course (0:
        none): the time courses gain 90 % intervals (``<column>_p5``, ``_p95``, as
        :func:`b12pk.simulate`), and the summary the 5th and 95th percentiles of
        :data:`INTERVAL_METRICS` (``<metric>_p5``, ``_p95``), each metric computed for each
        draw's course.
    seed : int
        Seed of the draws (the same for every course: common random numbers).

    Returns
    -------
    Comparison

    Raises
    ------
    ResourceError
        When the time courses would need more memory than
        :func:`b12pk.limits.memory_budget_bytes` (estimated before any simulation).
    """
    days = check_days(default_days() if days is None else days)
    regs = _dedupe_labels(_as_named_regimens(regimens), "regimen")
    pats = _dedupe_labels(_as_named_patients(patients), "patient")
    if not regs or not pats:
        raise InputError("compare needs at least one regimen and one patient")
    n_draws = check_draws(uncertainty, seed)[0]
    check_memory(compare_memory_bytes(regs, len(pats), days, n_draws=n_draws),
                  f"comparing {len(regs)} regimen(s) for {len(pats)} patient(s) over {days:g} "
                  "days (hourly output after injections)",
                  "use a shorter horizon, fewer regimens or patients, or regimens with fewer "
                  "injections")
    import pandas as pd

    comp = Comparison(regimens=tuple(regs), patients=tuple(pats), days=days)
    rows = []
    jobs = [(p, r) for p in pats for r in regs]

    def course(job: tuple[NamedPatient, NamedRegimen]) -> tuple[Any, dict[str, Any]]:
        p, r = job
        df = simulate(r.regimen, p.patient, days=days, hourly_after_injections=True)
        row = {"patient": p.label, "regimen": r.label,
               "regimen_text": r.regimen.to_text(), **summarize(df, r.regimen, days)}
        if n_draws:
            row.update(_with_intervals(df, r.regimen, p.patient, days, n_draws, seed))
        return df, row

    # courses run side by side in threads (the compiled integrator releases the GIL); the
    # results and the progress calls come in the order of the jobs
    for (p, r), (df, row) in zip(jobs, _in_threads(course, jobs)):
        comp.results[(p.label, r.label)] = df
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(jobs), f"{p.label} / {r.label}")
    extra = [f"{m}_{q}" for m in INTERVAL_METRICS for q in ("p5", "p95")] if n_draws else []
    comp.summary = pd.DataFrame(rows, columns=["patient", "regimen", "regimen_text",
                                               *SUMMARY_COLUMNS, *extra])
    comp.uncertainty = {"draws": n_draws, "seed": seed} if n_draws else None
    return comp


#: Summary metrics that get a 90 % interval from parameter uncertainty.
INTERVAL_METRICS = ("serum_3mo_pmol_per_l", "serum_12mo_pmol_per_l", "trough_ss_pmol_per_l",
                    "pct_time_not_replete", "stores_end_ug", "mma_3mo_nmol_per_l",
                    "mma_12mo_nmol_per_l")


def _with_intervals(df: Any, regimen: Regimen, patient: Patient, days: float, n: int,
                    seed: int) -> dict[str, float]:
    """Add the 90 % interval columns to ``df`` (in place) and return the summary metrics'
    5th and 95th percentiles over the same parameter draws."""
    courses = simulate_draws(regimen, patient, days, n=n, seed=seed,
                             times=df["time_days"].to_numpy())
    add_interval_columns(df, courses, seed, courses[0].attrs.get("skipped_draws", 0))
    metrics = [summarize(c, regimen, days) for c in courses]
    out = {}
    for m in INTERVAL_METRICS:
        values = np.array([x[m] for x in metrics], dtype=float)
        finite = values[np.isfinite(values)]
        lo, hi = (np.percentile(finite, INTERVAL_PERCENTILES) if finite.size
                  else (math.nan, math.nan))
        out[f"{m}_p5"], out[f"{m}_p95"] = float(lo), float(hi)
    return out


# --------------------------------------------------------------------------------------
# At a glance

#: The at-a-glance table's columns, with units, in reading order.
GLANCE_COLUMNS = ("patient", "regimen", "leaves the deficient band (day)",
                  "steady-state trough (pmol/L)", "time deficient (%)",
                  "injections per year", "B12 per year (mg)", "caveats")

#: A trough this much above the one of the window before it counts as still rising
#: (assumed: 5 %, above the day-to-day wobble of a settled oral course).
STILL_RISING = 0.05


def _still_rising(df: Any, days: float) -> bool:
    """Whether serum is still rising at the end: the lowest value of the last
    :data:`STEADY_WINDOW_DAYS` days exceeds that of the window before by
    :data:`STILL_RISING`."""
    t = df["time_days"].to_numpy()
    serum = df["serum_pmol_per_l"].to_numpy()
    w = min(STEADY_WINDOW_DAYS, days / 3.0)
    last = serum[t >= days - w]
    before = serum[(t >= days - 2 * w) & (t < days - w)]
    return bool(before.size and last.size and last.min() > (1 + STILL_RISING) * before.min())


def _above_usual_stores(df: Any) -> str:
    """A caveat when total body B12 rises above the usual adult range (the range of
    ``reference_stores_ug`` in data/model.toml, from IOM 1998), else ''."""
    from ..model.parameters import parameter_spec

    row = parameter_spec("reference_stores_ug")
    top = float(df["body_ug"].max()) if "body_ug" in df and len(df) else 0.0
    if not top > row.high:
        return ""
    return (f"body B12 reaches {top / 1000.0:.1f} mg, above the usual adult range "
            f"({row.low / 1000.0:g}-{row.high / 1000.0:g} mg, "
            "data/model.toml reference_stores_ug)")


def at_a_glance(comp: Comparison, validation: Any = None) -> Any:
    """The main job's answer in one table: per patient and regimen, when serum leaves the
    deficient band, the steady-state trough, the share of days deficient, injections and
    B12 per year (the figures of ``comp.summary``, per year = x 365 / horizon), and the
    caveats that apply (a route the validation shows to be biased, a trough not yet at
    steady state, body B12 above the usual adult range).

    Parameters
    ----------
    comp : Comparison
    validation : b12pk.analysis.validate.Validation, optional
        Its predicted/observed ratios size the route caveats (``data/claims/biases.toml``);
        without it no route caveat is given.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GLANCE_COLUMNS`, one row per row of ``comp.summary``.
    """
    import pandas as pd

    from .biases import known_biases, validation_ratios

    ratios = validation_ratios(validation.table) if validation is not None else {}
    per_year = 365.0 / comp.days
    pats = {p.label: p.patient for p in comp.patients}
    regs = {r.label: r.regimen for r in comp.regimens}
    rows = []
    for s in comp.summary.to_dict("records"):
        caveats = known_biases({"A": (regs[s["regimen"]].to_text(), "")},
                               [pats[s["patient"]].name], ratios, metrics={"trough_ss"},
                               short=True)
        course = comp.results[(s["patient"], s["regimen"])]
        if _still_rising(course, comp.days):
            caveats.append("serum still rising at the end: the trough is not yet at "
                           "steady state")
        above = _above_usual_stores(course)
        if above:
            caveats.append(above)
        rows.append({"patient": s["patient"], "regimen": s["regimen"],
                     "leaves the deficient band (day)": s["days_to_leave_deficient"],
                     "steady-state trough (pmol/L)": s["trough_ss_pmol_per_l"],
                     "time deficient (%)": s["pct_time_deficient"],
                     "injections per year": s["n_injections"] * per_year,
                     "B12 per year (mg)": s["total_dose_ug"] * per_year / 1000.0,
                     "caveats": "; ".join(caveats)})
    return pd.DataFrame(rows, columns=list(GLANCE_COLUMNS))


def glance_reading(glance: Any, replete: float, deficient: float) -> list[str]:
    """A plain-language reading of :func:`at_a_glance`, one sentence per patient: on which
    regimens the steady-state trough stays in the 'deficiency unlikely' band (>= ``replete``
    pmol/L), on which it falls below it (and into the deficient band, < ``deficient``), and,
    of the injected regimens that hold, the one with the fewest injections. It describes the
    model, not advice."""
    out = []
    for patient, g in glance.groupby("patient", sort=False):
        trough = g["steady-state trough (pmol/L)"]
        ok, below, low = g[trough >= replete], g[trough < replete], g[trough < deficient]
        words = [f"{patient}: the steady-state trough stays at or above {replete:.0f} pmol/L "
                 f"on {_names(ok) or 'none of the regimens'}"]
        if len(below):
            words.append(f"it falls below on {_names(below)}"
                         + (f" (into the deficient band on {_names(low)})" if len(low) else ""))
        injected = ok[ok["injections per year"] > 0]
        if len(injected):
            best = injected.sort_values(["injections per year", "B12 per year (mg)"]).iloc[0]
            words.append(f"of the injected regimens that hold, the fewest injections: "
                         f"{best['regimen']} ({best['injections per year']:.0f} a year)")
        out.append("; ".join(words) + ".")
    return out


def _names(g: Any) -> str:
    return ", ".join(g["regimen"])


def _dose_cycles(df: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Times (days), the dosing cycle of each row (a dose time's row ends the cycle before
    it: its sample is taken before the dose has raised serum) and whether the last
    cycle is cut short by the horizon."""
    t = df["time_days"].to_numpy(dtype=float)
    dosed = df["dosed_ug"].to_numpy(dtype=float)
    dose_times = t[np.concatenate([[dosed[0] > 0], np.diff(dosed) > 0])]
    cycle = np.searchsorted(dose_times, t, side="left")
    cut = bool(dose_times.size > 1
               and t[-1] - dose_times[-1] < dose_times[-1] - dose_times[-2] - 1e-9)
    return t, cycle, cut and bool(t[-1] > dose_times[-1])


def cycle_envelope(df: Any) -> Any:
    """A course drawn as its dosing cycles: ``serum_pmol_per_l`` becomes the lowest level
    of each cycle (the trough before the next dose) and ``serum_pmol_per_l_peak`` the
    highest, both flat across the cycle (``serum_pg_per_ml`` and ``serum_pg_per_ml_peak``
    follow). Daily dosing leaves the course as it is. A cycle cut short by the horizon has
    no known trough (NaN). For long horizons, where daily values are a wall of spikes.

    ``df``: a :func:`b12pk.simulate` output. Returns a copy."""
    import pandas as pd

    out = df.copy()
    t, cycle, cut = _dose_cycles(out)
    serum = pd.Series(out["serum_pmol_per_l"].to_numpy(dtype=float))
    low = serum.groupby(cycle).transform("min").to_numpy()
    high = serum.groupby(cycle).transform("max").to_numpy()
    if cut:
        last = cycle == cycle[-1]
        low = np.where(last, np.nan, low)
        high = np.where(last, np.nan, high)
    out["serum_pmol_per_l"], out["serum_pmol_per_l_peak"] = low, high
    if "serum_pg_per_ml" in out:
        out["serum_pg_per_ml"] = pmol_per_l_to_pg_per_ml(low)
        out["serum_pg_per_ml_peak"] = pmol_per_l_to_pg_per_ml(high)
    return out


def trough_course(df: Any) -> Any:
    """A course with serum replaced by the lowest value it reaches before the next dose
    (the trough the patient will fall to): flat steps between injections, the course
    itself under daily dosing. For drawing many regimens on one axis without their peaks.

    ``df``: a :func:`b12pk.simulate` output (``time_days``, ``serum_pmol_per_l``,
    ``dosed_ug``); ``serum_pg_per_ml`` follows when present, and so do the 90 % interval
    columns (``serum_pmol_per_l_p5``/``_p95``, from ``uncertainty=N``), each the lowest
    value of its own percentile curve before the next dose. Returns a copy."""
    import pandas as pd

    out = df.copy()
    _, segment, beyond = _dose_cycles(out)
    for column in ("serum_pmol_per_l", "serum_pmol_per_l_p5", "serum_pmol_per_l_p95"):
        if column not in out:
            continue
        serum = pd.Series(out[column].to_numpy(dtype=float))
        low = serum[::-1].groupby(segment[::-1]).cummin()[::-1].to_numpy()
        if beyond:
            low = np.where(segment == segment[-1], np.nan, low)   # trough beyond the horizon
        out[column] = low
        pg = column.replace("pmol_per_l", "pg_per_ml")
        if pg in out:
            out[pg] = pmol_per_l_to_pg_per_ml(low)
    return out
