"""What the teaching app's page shows, computed from what the page sends: plain data in,
plain data out, no web framework (the server in :mod:`b12pk.app.server` only carries it).

The page sends a state (``patient``, up to four regimen texts, ``days``, ``uncertainty``);
:func:`view` answers with each regimen's curves, the at-a-glance table of the main report,
the model's reading of it and one-line errors per field. :func:`curves_csv` and
:func:`figure_bytes` give the same numbers as a file.
"""

from __future__ import annotations

import io
import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numpy as np

from ..about import DISCLAIMER
from ..errors import B12pkError, InputError, PatientError, RegimenSyntaxError, ResourceError
from ..limits import (APP_UNCERTAINTY_DRAWS, MAX_APP_DAYS, MAX_APP_PARENTERAL_RUNS,
                      MAX_APP_REGIMENS, MAX_TEXT_CHARS)

#: Patient fields the page may set, besides ``preset``.
PATIENT_FIELDS = ("baseline_serum_pmol_per_l", "egfr_ml_min", "ileal_resection_cm",
                  "intrinsic_factor")

#: Curves sent to the page: column -> decimals kept (None: all; the CSV has exactly these
#: values).
CURVES = {"time_days": None, "serum_pmol_per_l": 1, "holotc_pmol_per_l": 2,
          "stores_ug": 1, "mma_nmol_per_l": 1}

#: Up to this horizon (days) the curves carry hourly points for 3 days after each
#: injection (peaks); beyond it one point a day.
HOURLY_UP_TO_DAYS = 730.0

SLOTS = "ABCD"


# ----------------------------------------------------------------------------------------
# Reading the page's state
# ----------------------------------------------------------------------------------------
def _number(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number")
    try:
        x = float(value)
    except OverflowError:
        raise InputError(f"{what} is far too large") from None
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{what} must be a finite number")
    return x


def read_patient(data: Any) -> Any:
    """The :class:`b12pk.Patient` the page describes (a preset and optional settings).

    Raises
    ------
    B12pkError
        Unknown preset, a setting that is not a number or out of range.
    """
    from ..model.parameters import Patient

    if not isinstance(data, Mapping):
        raise InputError("patient must be an object with a preset")
    preset = data.get("preset") or "healthy"
    if not isinstance(preset, str):
        raise InputError("patient preset must be text")
    settings = {}
    for name in PATIENT_FIELDS:
        x = _number(data.get(name), name.replace("_", " "))
        if x is not None:
            settings[name] = x
    return Patient.preset(preset, **settings)


def read_days(value: Any) -> float:
    """The horizon in days: a number in [7, :data:`MAX_APP_DAYS`]."""
    x = _number(value, "horizon (days)")
    if x is None:
        return 365.0
    if not 7.0 <= x <= MAX_APP_DAYS:
        raise InputError(f"horizon must be between 7 and {MAX_APP_DAYS:g} days, got {x:g}")
    return x


def read_texts(value: Any) -> tuple[str, ...]:
    """Up to four regimen texts (an empty one is an empty slot)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or len(value) > MAX_APP_REGIMENS:
        raise InputError(f"regimens must be a list of at most {MAX_APP_REGIMENS} texts")
    out = []
    for t in value:
        if t is None:
            t = ""
        if not isinstance(t, str):
            raise InputError("each regimen must be text")
        out.append(t[:MAX_TEXT_CHARS + 1])
    return tuple(out)


# ----------------------------------------------------------------------------------------
# Simulating, with a small cache: a change to one regimen reruns only that one
# ----------------------------------------------------------------------------------------
class _Cache:
    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: Any, make: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


_CACHE = _Cache()

#: One computation at a time: the warnings a simulation gives are caught per course
#: (warnings' filters are process-wide) and matplotlib is not thread-safe. The app serves
#: one teacher or student; a second request waits its turn.
_LOCK = threading.RLock()


#: Which slot's simulation the current thread runs (its warnings are recorded there).
_CURRENT = threading.local()

#: Threads that simulate the page's regimens side by side (the compiled engine releases
#: the GIL).
_POOL = ThreadPoolExecutor(max_workers=max(1, min(MAX_APP_REGIMENS, os.cpu_count() or 1)),
                           thread_name_prefix="b12pk-app")


def _record(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
            line: Any = None) -> None:
    said = getattr(_CURRENT, "said", None)
    if said is not None and str(message) not in said:
        said.append(str(message))


def _course(patient: Any, regimen: Any, days: float, draws: int) -> Any:
    """(course, summary, warnings) of one regimen, cached. Called inside :func:`_courses`,
    which records the warnings."""
    from ..analysis.compare import summarize
    from ..engine.core import simulate

    def make() -> tuple[Any, dict, list[str]]:
        _CURRENT.said = said = []
        try:
            df = simulate(regimen, patient, days,
                          hourly_after_injections=days <= HOURLY_UP_TO_DAYS,
                          uncertainty=draws, seed=0)
        finally:
            _CURRENT.said = None
        return df, summarize(df, regimen, days), said

    return _CACHE.get((patient, regimen.to_text(), days, draws), make)


def _courses(patient: Any, regimens: Sequence[Any], days: float, draws: int) -> list:
    """Each regimen's :func:`_course` or the B12pkError it raised, simulated side by side;
    each simulation's warnings are recorded with it (not printed)."""
    def one(regimen: Any) -> Any:
        try:
            return _course(patient, regimen, days, draws)
        except B12pkError as exc:
            return exc

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _record
        return list(_POOL.map(one, regimens))


def _curves(df: Any) -> dict[str, list]:
    out = {}
    for name in _curve_names(df):
        x = df[name].to_numpy(dtype=float)
        decimals = CURVES[name.removesuffix("_p5").removesuffix("_p95")]
        out[name] = (x if decimals is None else np.round(x, decimals)).tolist()
    return out


# ----------------------------------------------------------------------------------------
# The view
# ----------------------------------------------------------------------------------------
def _bands() -> dict[str, Any]:
    from ..model.parameters import (lab_bands, marker_limits, parameter_spec,
                                    serum_bands_pmol_per_l)

    mma = marker_limits()["mma_nmol_per_l"][0]
    holotc = [[b["name"], float(b["low_pmol_per_l"]),
               None if b.get("high_pmol_per_l") is None else float(b["high_pmol_per_l"])]
              for b in lab_bands()["holotc"]]
    return {"serum_pmol_per_l": [[n, lo, None if math.isinf(hi) else hi]
                                 for n, lo, hi in serum_bands_pmol_per_l()],
            "holotc_pmol_per_l": holotc,
            "mma_nmol_per_l": [[f"normal below {mma:g}", mma]],
            "stores_ug": [["storage capacity (model)",
                           parameter_spec("store_capacity_ug").value]]}


def _validation() -> Any:
    """The shipped validation (computed once per process): it sizes the table's route
    caveats, as in the main report."""
    from ..analysis.validate import validate

    return validate()


def _table(patient: Any, runs: Sequence[tuple[str, Any, Any, dict]], days: float
           ) -> tuple[dict, list[str], list[str]]:
    """The at-a-glance table (the main report's first screen) plus urine and stores."""
    import pandas as pd

    from ..analysis.compare import (SUMMARY_COLUMNS, Comparison, NamedPatient, NamedRegimen,
                                    at_a_glance, glance_reading)
    from ..model.parameters import serum_bands_pmol_per_l
    from ..report.comparison import glance_cell

    label = "patient"
    comp = Comparison(regimens=tuple(NamedRegimen(lab, reg) for lab, reg, _df, _s in runs),
                      patients=(NamedPatient(label, patient),), days=days)
    rows = []
    for lab, reg, df, s in runs:
        comp.results[(label, lab)] = df
        rows.append({"patient": label, "regimen": lab, "regimen_text": reg.to_text(), **s})
    comp.summary = pd.DataFrame(rows, columns=["patient", "regimen", "regimen_text",
                                               *SUMMARY_COLUMNS])
    glance = at_a_glance(comp, _validation())
    upper = {name: high for name, _low, high in serum_bands_pmol_per_l()}
    reading = glance_reading(glance, upper["indeterminate"], upper["deficient"])
    notes: list[str] = []
    glance = _short_horizon(glance, comp.summary, days)
    header = [c for c in glance.columns if c not in ("patient", "caveats")]
    header += ["lost in urine (% of B12 given)", "stores at the end (µg)", "notes"]
    body = []
    for g, (_lab, _reg, _df, s) in zip(glance.to_dict("records"), runs):
        marks = []
        for caveat in filter(None, g["caveats"].split("; ")):
            if caveat not in notes:
                notes.append(caveat)
            marks.append(str(notes.index(caveat) + 1))
        urine = (100.0 * s["urine_total_ug"] / s["total_dose_ug"]
                 if s["total_dose_ug"] > 0 else math.nan)
        body.append([glance_cell(c, g[c]) for c in header[:-3]]
                    + ["–" if math.isnan(urine) else f"{urine:.0f}",
                       f"{s['stores_end_ug']:,.0f}", ", ".join(marks)])
    reading = [r.replace(f"{label}: ", "", 1) for r in reading]
    return {"columns": header, "rows": body}, notes, reading


def _short_horizon(glance: Any, summary: Any, days: float) -> Any:
    """Under a year, counts over the horizon, not scaled up to a year (3 months of a
    3-monthly regimen after a loading course is not '24 injections a year'), and the
    trough of the last 90 days is not called steady."""
    if days >= 365.0:
        return glance
    g = glance.copy()
    g["injections per year"] = summary["n_injections"].to_numpy(dtype=float)
    g["B12 per year (mg)"] = summary["total_dose_ug"].to_numpy(dtype=float) / 1000.0
    return g.rename(columns={
        "injections per year": f"injections (in {days:g} days)",
        "B12 per year (mg)": f"B12 given (mg, in {days:g} days)",
        "steady-state trough (pmol/L)": "lowest serum, last 90 days (pmol/L)"})


def view(data: Any) -> dict[str, Any]:
    """What the page shows for a state it sent (one computation at a time).

    Parameters
    ----------
    data : Mapping
        ``patient`` ({"preset": name, and optionally :data:`PATIENT_FIELDS`}),
        ``regimens`` (up to four texts in the regimen language; empty ones are skipped),
        ``days`` (horizon, 7-3650) and ``uncertainty`` (true: a 90 % band from
        :data:`b12pk.limits.APP_UNCERTAINTY_DRAWS` parameter sets).

    Returns
    -------
    dict
        ``errors`` (``patient``, ``days``, ``state`` and ``regimens``: one line or None per
        slot), ``series`` (per regimen that ran: ``slot``, ``label``, ``text`` (as read),
        ``assumptions`` and the curves :data:`CURVES`, with ``_p5``/``_p95`` under
        uncertainty), ``table``, ``notes``, ``reading``, ``bands``, ``days``,
        ``compute_ms``, ``disclaimer``. Errors never raise: they are reported per field.
    """
    with _LOCK:
        return _view(data)


def _view(data: Any) -> dict[str, Any]:
    start = time.perf_counter()
    errors: dict[str, Any] = {"patient": None, "days": None, "state": None,
                              "regimens": [None] * MAX_APP_REGIMENS}
    out: dict[str, Any] = {"errors": errors, "series": [], "table": None, "notes": [],
                           "reading": [], "bands": _bands(), "disclaimer": DISCLAIMER}
    if not isinstance(data, Mapping):
        errors["state"] = "the request must be a JSON object"
        return _done(out, start)
    patient = days = texts = None
    try:
        patient = read_patient(data.get("patient", {}))
    except B12pkError as exc:
        errors["patient"] = str(exc)
    try:
        days = read_days(data.get("days"))
    except B12pkError as exc:
        errors["days"] = str(exc)
    try:
        texts = read_texts(data.get("regimens"))
    except B12pkError as exc:
        errors["state"] = str(exc)
    out["days"] = days
    if patient is None or days is None or texts is None:
        return _done(out, start)
    draws = APP_UNCERTAINTY_DRAWS if data.get("uncertainty") is True else 0
    runs = []
    out["patient_label"] = _patient_label(patient)
    slots = []
    for i, text in enumerate(texts):
        if not text.strip():
            continue
        try:
            regimen = _parse(text)
            check_work(regimen, days, draws)
        except B12pkError as exc:
            errors["regimens"][i] = str(exc)
            continue
        slots.append((i, text, regimen))
    done = _courses(patient, [r for _i, _t, r in slots], days, draws)
    patient_errors = [e for e in done if isinstance(e, PatientError)]
    if patient_errors:  # the patient cannot start where the page says
        errors["patient"] = str(patient_errors[0])
        return _done(out, start)
    for (i, text, regimen), result in zip(slots, done):
        if isinstance(result, B12pkError):
            errors["regimens"][i] = str(result)
            continue
        df, summary, said = result
        label = f"{SLOTS[i]}: {' '.join(text.split())}"
        runs.append((label, regimen, df, summary))
        out["series"].append({"slot": i, "label": label, "text": regimen.to_text(),
                              "assumptions": list(df.attrs.get("assumptions", ())),
                              "warnings": said, **_curves(df)})
    if runs:
        out["table"], out["notes"], out["reading"] = _table(patient, runs, days)
    out["uncertainty"] = {"draws": draws, "seed": 0} if draws else None
    return _done(out, start)


def _patient_label(p: Any) -> str:
    serum = ("diet steady state" if p.baseline_serum_pmol_per_l is None
             else f"{p.baseline_serum_pmol_per_l:g} pmol/L")
    return (f"{p.name}; baseline serum {serum}; eGFR {p.egfr_ml_min:g} mL/min; ileal "
            f"resection {p.ileal_resection_cm:g} cm; intrinsic factor {p.intrinsic_factor:g}")


def _parse(text: str) -> Any:
    from ..regimen.language import Regimen

    try:  # the parser refuses text over MAX_TEXT_CHARS itself
        return Regimen.parse(text)
    except RegimenSyntaxError as exc:
        if "is a range" in str(exc):  # the library's advice names a Python function
            raise InputError(f"{' '.join(text.split())[:80]!r} gives a range: each box "
                             "draws one regimen, so type one dose (or one interval) and "
                             "put the other end in another box") from None
        raise


def check_work(regimen: Any, days: float, draws: int) -> None:
    """Refuse a regimen whose simulation would keep the page waiting for seconds.

    Raises
    ------
    ResourceError
        More than :data:`b12pk.limits.MAX_APP_PARENTERAL_RUNS` parenteral doses, counted
        once per parameter set (``draws`` + 1).
    """
    from ..engine.core import events_from
    from ..regimen.language import PARENTERAL_ROUTES

    def count() -> int:
        with warnings.catch_warnings():  # the simulation itself says them, once
            warnings.simplefilter("ignore")
            events = events_from(regimen, days, "the app")
        return sum(ev.route in PARENTERAL_ROUTES for ev in events)

    n = _CACHE.get(("parenteral doses", regimen.to_text(), days), count)
    runs = n * (draws + 1)
    if runs > MAX_APP_PARENTERAL_RUNS:
        fix = ("switch the 90 % band off, " if draws else "") + \
            "shorten the horizon or space the doses"
        raise ResourceError(
            f"too much for the page: {n:,} injections or nasal doses"
            + (f" x {draws + 1} parameter sets" if draws else "")
            + f" would take several seconds (the app takes up to {MAX_APP_PARENTERAL_RUNS:,}); "
            f"{fix}, or use b12pk simulate")


def _done(out: dict[str, Any], start: float) -> dict[str, Any]:
    out["compute_ms"] = round(1000.0 * (time.perf_counter() - start), 1)
    return out


# ----------------------------------------------------------------------------------------
# Downloads: the same numbers as the page
# ----------------------------------------------------------------------------------------
def curves_csv(v: Mapping[str, Any]) -> str:
    """The curves of a :func:`view` as tidy CSV: one row per regimen and time, units in the
    column names, the disclaimer as a leading comment line."""
    import pandas as pd

    frames = []
    for s in v["series"]:
        df = pd.DataFrame({k: s[k] for k in _curve_names(s)})
        df.insert(0, "regimen", s["label"])
        frames.append(df)
    if not frames:
        raise InputError("no regimen ran: nothing to download")
    body = pd.concat(frames, ignore_index=True).to_csv(index=False)
    head = [DISCLAIMER, f"patient: {v.get('patient_label', '')}",
            f"horizon: {v['days']:g} days"]
    if v.get("uncertainty"):
        head.append(f"_p5/_p95: 90 % interval over {v['uncertainty']['draws']} parameter sets "
                    f"(seed {v['uncertainty']['seed']})")
    return "".join(f"# {h}\n" for h in head) + body


def _curve_names(columns: Any) -> list[str]:
    """The curve columns present in ``columns`` (a course or one series of a view), in
    :data:`CURVES` order, each followed by its 90 % interval's columns where present."""
    return [name for c in CURVES for name in (c, f"{c}_p5", f"{c}_p95") if name in columns]


def figure_bytes(v: Mapping[str, Any], fmt: str) -> bytes:
    """The curves of a :func:`view` drawn by :mod:`b12pk.plot` (serum, holoTC, stores and
    MMA over the laboratory bands), as PNG or SVG bytes (SVG keeps its text as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..plot.figures import plot_holotc, plot_markers, plot_serum, plot_stores

    if fmt not in ("png", "svg"):
        raise InputError(f"figure format must be png or svg, got {fmt!r}")
    if not v["series"]:
        raise InputError("no regimen ran: nothing to draw")
    curves = {s["label"]: pd.DataFrame({k: s[k] for k in _curve_names(s)})
              for s in v["series"]}
    with _LOCK, matplotlib.rc_context({"svg.fonttype": "none"}):
        fig, axes = plt.subplots(2, 2, figsize=(13, 9), layout="constrained")
        plot_serum(curves, ax=axes[0, 0], show_legend=False)
        plot_holotc(curves, ax=axes[0, 1], show_legend=False)
        plot_stores(curves, ax=axes[1, 0], show_legend=False)
        plot_markers(curves, ax=axes[1, 1])
        fig.suptitle(DISCLAIMER, fontsize=9)
        buf = io.BytesIO()
        meta = {"Title": "b12pk teaching app: " + "; ".join(curves)}
        fig.savefig(buf, format=fmt, dpi=110, metadata=meta)
        plt.close(fig)
    return buf.getvalue()
