"""Evidence analysis: check the seed documents' claims against the model and the trial data.

The claims catalogue ``data/claims/claims.csv`` holds every dosing and kinetics claim of the
five seed documents (``shared/seeds/*.txt``), quoted verbatim, with what it asserts in a
checkable form, the source the seed cites and a category:

* ``quantitative-pk`` -- checkable by simulation;
* ``trial-outcome`` -- a trial result, checked against ``data/literature/trials``;
* ``clinical-judgement`` -- not checkable by a PK model (said so, nothing is simulated).

:func:`evaluate_claims` simulates what each checkable claim describes, in the stated
population, at the default parameters and at the low and high ends of the declared ranges of
the parameters that matter (``b12pk.parameter_table()``), evaluates the claim's proposition
in each scenario, compares with any trial dataset bearing on it and gives a verdict from the
fixed rubric below. :func:`contradictions` lists where the seeds disagree and which side the
model and the data support. :func:`evidence_markdown`, :func:`plot_evidence` and
:func:`write_evidence` present the result.

Rubric (fixed before the numbers were looked at; also in ``data/claims/README.md``)
-----------------------------------------------------------------------------------
1. Each checkable claim is a *proposition* (``check`` column): conditions on simulated metrics,
   e.g. ``adequate(A)`` = serum >= 258 pmol/L (deficiency "unlikely") at day 90, trough over the
   last 90 days of the horizon >= 258 and never deficient (< 132.8) from day 30 on.
2. **Model line.** The proposition is evaluated in every scenario (default parameters, and each
   sensitivity parameter at its low and its high range end, one at a time). It *supports* the
   claim if it holds in every scenario, *contradicts* it if it holds in none, else is *mixed*.
   For claims about shares of patients (``share[lo,hi]: ...``) the proposition is evaluated in
   a crude set of patient variants (baseline serum 60/90/120/150 pmol/L x the scenarios); the
   line supports if the share of variants for which it holds lies in [lo, hi], is mixed within
   0.25 of that interval, else contradicts.
3. **Data line.** A trial dataset that bears on the claim *supports*, is *mixed* or
   *contradicts*, computed from its numbers by the rule each check states (see
   :data:`DATA_CHECKS`, :func:`data_evidence`); ``!name`` means the dataset bears on the
   opposite.
4. **Verdict.** The primary line is the model for ``quantitative-pk`` and the data for
   ``trial-outcome`` (the other line is secondary; if the primary is absent the secondary is
   used). supports -> *consistent*, mixed -> *partly consistent*, contradicts ->
   *inconsistent*. If the secondary line points the other way (supports vs contradicts), the
   verdict becomes *partly consistent*.
5. A claim with a part neither line can check (``partial = yes``: symptoms, MMA, toxicity,
   shares of patients from a single typical patient) is at best *partly consistent*.
6. ``clinical-judgement`` claims and claims with no check and no data:
   *not checkable by this model*.

The model is one typical patient without between-patient variability: verdicts are about
that patient, the declared parameter ranges and a few patient variants, nothing more.
Educational: not medical advice.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._data import data_path
from ..errors import FileFormatError, InputError, quiet_warnings
from ..io import echo
from ..limits import MAX_EVIDENCE_DRAWS
from .claim_words import OP_WORDS, metric_unit, metric_words, value_words
from .shipped import DataCache
from ..model.parameters import (Patient, default_parameters, marker_limits, parameter_table,
                                serum_bands_pmol_per_l, serum_to_pmol_per_l)
from ..regimen.language import Regimen

__all__ = [
    "CATEGORIES", "VERDICTS", "CLAIM_COLUMNS", "DATA_CHECKS", "EvidenceResult",
    "data_evidence", "judge", "wilson", "newcombe", "DataEvidence", "CLOSE_CALL",
    "seeds_dir", "claims_path", "load_claims", "quote_problems", "evaluate_claims",
    "verdict_from_lines", "share_line", "success_lines", "posterior_overrides", "MAX_DRAWS", "trace", "population_words", "SHARE_RULE", "virtual_patients", "contradictions",
    "panel_courses", "PANELS", "panel_points", "PANEL_POINTS",
    "RUBRIC_MARKDOWN", "clear_cache",
]

CATEGORIES = ("quantitative-pk", "trial-outcome", "clinical-judgement")
CONSISTENT, PARTLY, INCONSISTENT, NOT_CHECKABLE = (
    "consistent", "partly consistent", "inconsistent", "not checkable by this model")
VERDICTS = (CONSISTENT, PARTLY, INCONSISTENT, NOT_CHECKABLE)
CLAIM_COLUMNS = ("id", "seed_file", "quote", "assertion", "population", "regimen_ids",
                 "regimens", "populations", "check", "sensitivity", "data_checks", "days",
                 "partial", "cited_refs", "cited_source", "category", "topic", "side", "merged",
                 "notes")
REQUIRED = ("id", "seed_file", "quote", "assertion", "category")
SHARE_PATIENTS = 100
SHARE_SEED = 22
STEADY_WINDOW = 90.0


def _bands() -> tuple[float, float]:
    b = {name: high for name, _low, high in serum_bands_pmol_per_l()}
    return b["deficient"], b["indeterminate"]


DEF, REPLETE = _bands()


# --------------------------------------------------------------------------------------
# Files

def seeds_dir() -> Path:
    """Where the seed documents live: ``<checkout>/shared/seeds`` or, beside the checkout,
    ``<checkout>/../shared/seeds`` (the first that exists; the latter if neither)."""
    checkout = Path(__file__).resolve().parents[2]
    inside = checkout / "shared" / "seeds"
    return inside if inside.is_dir() else checkout.parent / "shared" / "seeds"


def claims_path() -> Path:
    """The shipped claims catalogue."""
    return data_path("claims", "claims.csv")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def load_claims(path: str | Path | None = None) -> Any:
    """Read and validate a claims catalogue (default: the shipped one).

    Returns
    -------
    pandas.DataFrame
        One row per claim, all columns as text (``days`` as float or NaN).

    Raises
    ------
    FileFormatError
        Missing file or columns, a duplicate or empty id, an empty quote or seed file, an
        unknown category, or a ``check``/``regimens``/``populations`` cell that cannot be read.
    """
    import pandas as pd

    path = Path(path) if path is not None else claims_path()
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"cannot read claims file {str(path)!r}: {exc}") from exc
    return _validate_claims(df, str(path))


def _validate_claims(df: Any, where: str = "claims") -> Any:
    df = df.copy()
    for col in CLAIM_COLUMNS:
        if col not in df.columns:
            if col in REQUIRED:
                raise FileFormatError(f"{where}: column {col!r} missing; required: "
                                      f"{', '.join(REQUIRED)}")
            df[col] = ""
    df = df.astype(object).where(df.notna(), "").astype(str)
    seen = set()
    for i, row in df.iterrows():
        rid = row["id"].strip()
        at = f"{where} row {i + 2} ({rid or 'no id'})"
        if not rid:
            raise FileFormatError(f"{at}: empty id")
        if rid in seen:
            raise FileFormatError(f"{at}: duplicate id {rid!r}")
        seen.add(rid)
        for col in ("seed_file", "quote", "assertion"):
            if not row[col].strip():
                raise FileFormatError(f"{at}: empty {col}")
        if row["category"] not in CATEGORIES:
            raise FileFormatError(f"{at}: category {row['category']!r} is not one of "
                                  f"{', '.join(CATEGORIES)}")
        if row["category"] == "clinical-judgement" and row["check"].strip():
            raise FileFormatError(f"{at}: a clinical-judgement claim has no check")
        try:
            if row["check"].strip():
                simulated = _simulates(_parse_options(row["check"]))
                regs = _parse_regimens(row["regimens"])
                if not regs and simulated:
                    raise FileFormatError("a check needs regimens")
                for _lab, (_text, pop) in regs.items():
                    if pop:
                        _patient(pop)
                pops = _split(row["populations"])
                if not pops and simulated:
                    raise FileFormatError("a check needs populations")
                for p in pops:
                    _patient(p)
                for name in _split(row["sensitivity"]):
                    _param_range(name)
            for name in _split(row["data_checks"]):
                if name.lstrip("!") not in DATA_CHECKS:
                    raise FileFormatError(f"unknown data check {name!r}; known: "
                                          f"{', '.join(DATA_CHECKS)}")
        except FileFormatError as exc:
            raise FileFormatError(f"{at}: {exc}") from None
        except InputError as exc:
            raise FileFormatError(f"{at}: {exc}") from None
    _refuse_duplicates(df, where)
    days = []
    for v in df["days"]:
        try:
            days.append(float(v) if str(v).strip() else math.nan)
        except ValueError:
            raise FileFormatError(f"{where}: days {v!r} is not a number") from None
    df["days"] = days
    return df.reset_index(drop=True)


def _refuse_duplicates(df: Any, where: str) -> None:
    """One verdict per claim: two rows of one article that quote the same words, or check
    the same proposition (same regimens, populations and check), are refused."""
    quotes: dict[tuple[str, str], str] = {}
    props: dict[tuple[str, str, str, str], str] = {}
    for _, row in df.iterrows():
        rid, seed = row["id"].strip(), row["seed_file"].strip()
        for frag in row["quote"].split(" | "):
            key = (seed, _norm(frag).lower())
            if key in quotes and quotes[key] != rid:
                raise FileFormatError(f"{where}: claims {quotes[key]} and {rid} quote the same "
                                      f"words of one article ({echo(frag, 50)}); merge them "
                                      "into one row (join distinct quotes with ' | ')")
            quotes[key] = rid
        if not row["check"].strip():
            continue
        key2 = (seed, _norm(row["regimens"]), _norm(row["populations"]),
                _norm(row["check"]))
        if key2 in props:
            raise FileFormatError(f"{where}: claims {props[key2]} and {rid} of one article check "
                                  "the same proposition (same regimens, populations and check); "
                                  "merge them into one row, its quotes joined with ' | ' and the "
                                  "merged ids in column 'merged'")
        props[key2] = rid


def quote_problems(claims: Any = None, seeds: str | Path | None = None) -> list[str]:
    """Claims whose seed file is missing or whose quote is not in it verbatim.

    Whitespace is normalised; a quote made of fragments joined by `` | `` needs each fragment.
    Raises :class:`FileFormatError` if the seed folder is absent.
    """
    claims = load_claims() if claims is None else claims
    folder = Path(seeds) if seeds is not None else seeds_dir()
    if not folder.is_dir():
        raise FileFormatError(f"seed documents not found at {folder}")
    out = []
    texts: dict[str, str] = {}
    for _, row in claims.iterrows():
        f = folder / row["seed_file"]
        if not f.is_file():
            out.append(f"{row['id']}: seed file {row['seed_file']} not found")
            continue
        text = texts.setdefault(row["seed_file"], _norm(f.read_text(encoding="utf-8")))
        for frag in row["quote"].split(" | "):
            if _norm(frag) not in text:
                out.append(f"{row['id']}: quote not found verbatim: {frag[:60]!r}")
    return out


# --------------------------------------------------------------------------------------
# Check language

def _split(cell: str, sep: str = ";") -> list[str]:
    return [p.strip() for p in str(cell).split(sep) if p.strip()]


#: Macros: ``adequate(X)``, ``maintains(X)`` and ``loading(X)`` take an optional success
#: line, ``adequate(X, OB12_NORMAL)`` (default REPLETE).
_MACROS = {
    "adequate": ("{0}.serum_d90 >= {L}", "{0}.trough_ss >= {L}",
                 "{0}.min_from_d30 >= DEF"),
    "maintains": ("{0}.trough_ss >= {L}", "{0}.min_from_d60 >= DEF"),
    "loading": ("{0}.serum_d30 >= {L}",),
    "equivalent": ("{0}.serum_d90 >=band {1}.serum_d90", "{0}.trough_ss >=band {1}.trough_ss"),
}
_MACRO_ARGS = {"adequate": (1, 2), "maintains": (1, 2), "loading": (1, 2), "equivalent": (2, 2)}


@lru_cache(maxsize=1)
def success_lines() -> dict[str, dict[str, Any]]:
    """The named lines a check may use: ``{name: {"value_pmol_per_l", "text", "source"}}``
    (DEF, REPLETE and ``data/claims/lines.toml``)."""
    import tomllib

    with open(data_path("claims", "lines.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    band = ("bands of the article 'What is the recommended dose of vitamin B12 (cobalamin) "
            "for treating deficiency?' (data/lab_bands.toml)")
    out = {"DEF": {"value_pmol_per_l": DEF, "text": f"the deficient band's upper limit "
                   f"(180 ng/L = {DEF:.0f} pmol/L)", "source": band},
           "REPLETE": {"value_pmol_per_l": REPLETE, "text": f"'deficiency unlikely' "
                       f"(> 350 ng/L = {REPLETE:.0f} pmol/L)", "source": band}}
    for name, entry in doc.items():
        value = entry.get("value_pmol_per_l")
        if not isinstance(value, (int, float)) or not 0 < value < 1e5 or not entry.get("source"):
            raise FileFormatError(f"data/claims/lines.toml [{name}]: needs value_pmol_per_l "
                                  "(a positive number) and a source")
        out[name] = {"value_pmol_per_l": float(value), "text": entry.get("text", name),
                     "source": entry["source"]}
    return out
_TERM = re.compile(r"^(?:(?P<k>[0-9.]+)\s*\*\s*)?(?P<lab>[A-Z][0-9]?\*?)\.(?P<metric>[a-z_]+?(?:_d\d+)?)$")
_COND = re.compile(r"^(?P<lhs>.+?)\s*(?P<op>>=band|>band|>=|<=|>|<)\s*(?P<rhs>.+)$")
_SHARE = re.compile(r"^share\[(?P<lo>[0-9.]+),\s*(?P<hi>[0-9.]+)\]:\s*(?P<rest>.+)$")
_METRICS = ("serum", "min_from", "first_deficient_after", "urine_frac", "stores_gain",
            "retained_frac", "pct_replete_after", "rise", "trough_ss", "mean_ss",
            "stores_end", "absorbed_frac", "absorbed_per_day", "days_to_replete",
            "mma", "hcy", "mma_max_from", "hcy_max_from")
#: Metrics read at, from or up to a day: written ``<metric>_d<N>``.
_DAY_METRICS = frozenset({"serum", "min_from", "first_deficient_after", "urine_frac",
                          "stores_gain", "retained_frac", "pct_replete_after", "rise", "mma",
                          "hcy", "mma_max_from", "hcy_max_from"})
#: Names a check may use for the functional markers' normal limits (data/lab_bands.toml).
_MARKER_LIMITS = {"MMA_NORMAL": marker_limits()["mma_nmol_per_l"][0],
                  "HCY_TARGET": marker_limits()["hcy_umol_per_l"][0]}
_MARKER_COLUMNS = {"mma": "mma_nmol_per_l", "hcy": "hcy_umol_per_l"}


@dataclass(frozen=True)
class _Term:
    k: float | None = None
    label: str | None = None
    metric: str | None = None
    const: float | None = None
    name: str | None = None     # a named line (DEF, REPLETE, MMA_NORMAL, ...)


@dataclass(frozen=True)
class _Cond:
    lhs: _Term
    op: str
    rhs: _Term
    text: str


@dataclass(frozen=True)
class _Check:
    groups: tuple[tuple[bool, tuple[_Cond, ...]], ...]   # (negated, conditions)
    share: tuple[float, float] | None = None


#: A serum value with its unit: ``180 pg/mL``, ``0.95*350 ng/L`` (converted to pmol/L).
_SERUM_CONST = re.compile(r"^(?:(?P<k>[0-9.]+)\s*\*\s*)?(?P<v>[0-9.]+)\s*"
                          r"(?P<unit>pg/mL|ng/L|pmol/L)$")


def _simulates(options: Sequence[_Check]) -> bool:
    """Whether a check reads any simulated metric (else it compares numbers only)."""
    return any(t.label for check in options for _neg, conds in check.groups
               for c in conds for t in (c.lhs, c.rhs))


def _parse_term(text: str) -> _Term:
    text = text.strip()
    m = _SERUM_CONST.match(text)
    if m:
        k = float(m["k"]) if m["k"] else 1.0
        return _Term(const=k * serum_to_pmol_per_l(float(m["v"]), m["unit"]))
    lines = success_lines()
    if text in lines:
        return _Term(const=lines[text]["value_pmol_per_l"], name=text)
    if text in _MARKER_LIMITS:
        return _Term(const=_MARKER_LIMITS[text], name=text)
    try:
        return _Term(const=float(text))
    except ValueError:
        pass
    m = _TERM.match(text)
    if not m:
        raise FileFormatError(f"cannot read term {text!r} (expected e.g. A.trough_ss, "
                              "1.1*B.trough_ss, DEF, REPLETE, a line of data/claims/lines.toml, "
                              "MMA_NORMAL, HCY_TARGET or a number)")
    metric = m["metric"]
    base = re.sub(r"_d\d+$", "", metric)
    if base not in _METRICS:
        raise FileFormatError(f"unknown metric {metric!r}; known: {', '.join(_METRICS)}")
    if base in _DAY_METRICS and base == metric:
        raise FileFormatError(f"metric {metric!r} needs a day, e.g. {metric}_d90")
    return _Term(k=float(m["k"]) if m["k"] else None, label=m["lab"], metric=metric)


def _parse_cond(text: str) -> _Cond:
    m = _COND.match(text.strip())
    if not m:
        raise FileFormatError(f"cannot read condition {text!r}")
    return _Cond(_parse_term(m["lhs"]), m["op"], _parse_term(m["rhs"]), text.strip())


@lru_cache(maxsize=None)
def _parse_check(text: str) -> _Check:
    text = text.strip()
    share = None
    m = _SHARE.match(text)
    if m:
        share = (float(m["lo"]), float(m["hi"]))
        text = m["rest"]
    groups = []
    for part in _split(text):
        neg = part.startswith("not ")
        body = part[4:].strip() if neg else part
        mm = re.match(r"^(\w+)\((.*)\)$", body)
        if mm:
            name, args = mm[1], [a.strip() for a in mm[2].split(",")]
            if name not in _MACROS:
                raise FileFormatError(f"unknown check {name!r}; known: {', '.join(_MACROS)}")
            lo, hi = _MACRO_ARGS[name]
            if not lo <= len(args) <= hi:
                raise FileFormatError(f"{name}() takes {lo} to {hi} arguments, got "
                                      f"{len(args)}: {body!r}")
            line = args[1] if name != "equivalent" and len(args) == 2 else "REPLETE"
            if line not in success_lines():
                raise FileFormatError(f"unknown success line {line!r}; known: "
                                      f"{', '.join(success_lines())}")
            conds = tuple(_parse_cond(c.format(*args, L=line)) for c in _MACROS[name])
        else:
            conds = (_parse_cond(body),)
        groups.append((neg, conds))
    if not groups:
        raise FileFormatError("empty check")
    return _Check(tuple(groups), share)


def _parse_options(text: str) -> list[_Check]:
    """The options of a claim ("X or Y"): checks separated by ``||``, each judged on its
    own (a share check cannot have options)."""
    options = [_parse_check(part) for part in text.split("||")]
    if len(options) > 1 and any(o.share is not None for o in options):
        raise FileFormatError("a share[...] check cannot have options (||)")
    return options


def _option_name(text: str) -> str:
    return " ".join(text.split())


def _combine(lines: Sequence[str]) -> str:
    """One line from several (a claim's options, or its datasets): supports when every one
    supports, contradicts when every one contradicts, mixed otherwise."""
    if all(x == "supports" for x in lines):
        return "supports"
    if all(x == "contradicts" for x in lines):
        return "contradicts"
    return "mixed"


def _parse_regimens(cell: str) -> dict[str, tuple[str, str]]:
    out = {}
    for part in _split(cell):
        m = re.match(r"^([A-Z][0-9]?)\s*=\s*(.+?)\s*(?:\{(.+)\})?$", part)
        if not m:
            raise FileFormatError(f"cannot read regimen entry {part!r} (expected 'A=text')")
        _regimen(m[2])
        out[m[1]] = (m[2], (m[3] or "").strip())
    return out


@lru_cache(maxsize=None)
def _regimen(text: str) -> Regimen:
    try:
        return Regimen.parse(text)
    except InputError as exc:
        raise FileFormatError(f"regimen {text!r}: {exc}") from None


#: A population of the catalogue: ``preset[@serum|@ss|@replete][:diet=x]``.
_POP_SPEC = re.compile(r"^([a-z-]+)(?:@(ss|replete|[0-9.]+))?(?::diet=([0-9.]+))?$")


@lru_cache(maxsize=None)
def _patient(spec: str, baseline: float | None = None) -> Patient:
    """``preset[@baseline|@ss|@replete][:diet=x]`` -> Patient (``@replete``: the stores of
    a healthy adult on a usual diet, e.g. just after bariatric surgery)."""
    m = _POP_SPEC.match(spec.strip())
    if not m:
        raise FileFormatError(f"cannot read population {spec!r} (expected "
                              "preset[@serum|@ss|@replete][:diet=x])")
    kw: dict[str, Any] = {}
    if m[2] == "ss":
        kw["serum_pmol_per_l"] = None
    elif m[2] == "replete":
        from ..engine.core import steady_state_stores_ug

        kw["stores_ug"] = steady_state_stores_ug("healthy")
    elif m[2]:
        kw["serum_pmol_per_l"] = float(m[2])
    if baseline is not None:  # a share claim's crude variants: the serum, not the stores
        kw.pop("stores_ug", None)
        kw["serum_pmol_per_l"] = baseline
    if m[3]:
        kw["diet_ug_per_day"] = float(m[3])
    try:
        return Patient.preset(m[1], **kw)
    except InputError as exc:
        raise FileFormatError(f"population {spec!r}: {exc}") from None


@lru_cache(maxsize=None)
def _ranges() -> dict[str, tuple[float, float, float]]:
    t = parameter_table()
    return {r.name: (float(r.value), float(r.low), float(r.high)) for r in t.itertuples()}


def _param_range(name: str) -> tuple[float, float, float]:
    try:
        return _ranges()[name]
    except KeyError:
        raise FileFormatError(f"unknown sensitivity parameter {name!r}") from None


# --------------------------------------------------------------------------------------
# Simulation and metrics

def _simulate(reg_text: str, pop: str, baseline: float | None,
              overrides: tuple[tuple[str, float], ...], days: float) -> Any:
    return _run(reg_text, _patient(pop, baseline), overrides, days)


@lru_cache(maxsize=4096)
def _run(reg_text: str, patient: Patient, overrides: tuple[tuple[str, float], ...],
         days: float) -> Any:
    from ..engine.core import simulate

    params = default_parameters().replace(**dict(overrides)) if overrides else None
    return simulate(_regimen(reg_text), patient, days, parameters=params)


def clear_cache() -> None:
    """Forget cached simulations (for reproducibility checks)."""
    _run.cache_clear()
    virtual_patients.cache_clear()


#: The parameters a virtual population varies between patients (data/variability.toml).
_VARIED = ("if_capacity_ug", "passive_fraction", "other_loss_fraction_per_day",
           "uptake_vmax_ug_per_day", "nasal_bioavailability")


def _share_typical(pop: str, overrides: tuple[tuple[str, float], ...]) -> Patient:
    """The typical patient of population ``pop`` with parameter ``overrides``, around whom
    the virtual patients of a share claim are drawn."""
    import dataclasses

    typical = _patient(pop)
    if overrides:
        typical = dataclasses.replace(typical, overrides={**typical.overrides, **dict(overrides)})
    return typical


@lru_cache(maxsize=64)
def virtual_patients(pop: str, overrides: tuple[tuple[str, float], ...] = (),
                     n: int = SHARE_PATIENTS, seed: int = SHARE_SEED
                     ) -> tuple[tuple[Patient, tuple[tuple[str, float], ...]], ...]:
    """The virtual patients a share-of-patients claim is judged in: ``n`` draws of
    :func:`b12pk.population.sample_patients` around the population ``pop``
    (between-patient variability of ``data/variability.toml``: absorption, losses, diet,
    baseline serum), as ``(patient, parameter overrides)`` pairs; the same seed gives the
    same patients."""
    import dataclasses

    from ..population.core import PopulationSpec, sample_patients

    typical = _share_typical(pop, overrides)
    draws = sample_patients(PopulationSpec(typical, n=n, seed=seed))
    out = []
    for r in draws.to_dict("records"):
        kw: dict[str, Any] = {"diet_ug_per_day": float(r["diet_ug_per_day"])}
        for col in ("baseline_serum_pmol_per_l", "baseline_stores_ug"):
            if col in r:
                kw[col] = float(r[col])
        patient = dataclasses.replace(typical, **kw)
        ov = dict(overrides)
        ov.update({k: float(r[k]) for k in _VARIED if k in r})
        out.append((patient, tuple(sorted(ov.items()))))
    return tuple(out)


def _interp(df: Any, col: str, day: float) -> float:
    return float(np.interp(day, df["time_days"].to_numpy(), df[col].to_numpy()))


def metric(name: str, df: Any, days: float) -> float:
    """A named metric of a simulated time course (see ``data/claims/README.md``)."""
    t = df["time_days"].to_numpy()
    s = df["serum_pmol_per_l"].to_numpy()
    m = re.match(r"^(.+?)_d(\d+)$", name)
    base, n = (m[1], float(m[2])) if m else (name, math.nan)
    daily = np.isclose(t, np.round(t), atol=1e-9)
    if not math.isnan(n) and n > t[-1] + 1e-9 and base not in ("rise",):
        return math.nan          # beyond the horizon: every comparison with NaN fails
    if base == "serum":
        return _interp(df, "serum_pmol_per_l", n)
    if base in _MARKER_COLUMNS:
        return _interp(df, _MARKER_COLUMNS[base], n)
    if base.endswith("_max_from"):
        return float(df[_MARKER_COLUMNS[base[:3]]].to_numpy()[t >= n - 1e-9].max())
    if base == "min_from":
        return float(s[t >= n - 1e-9].min())
    if base == "first_deficient_after":
        idx = np.nonzero((t >= n - 1e-9) & (s < DEF))[0]
        return float(t[idx[0]]) if idx.size else math.inf
    if base == "days_to_replete":
        idx = np.nonzero(s >= REPLETE)[0]
        return float(t[idx[0]]) if idx.size else math.inf
    if base == "urine_frac":
        dosed = _interp(df, "dosed_ug", n)
        return _interp(df, "urine_ug", n) / dosed if dosed > 0 else math.nan
    if base == "stores_gain":
        return _interp(df, "stores_ug", n) - float(df["stores_ug"].iloc[0])
    if base == "retained_frac":
        dosed = _interp(df, "dosed_ug", n)
        gain = _interp(df, "stores_ug", n) - float(df["stores_ug"].iloc[0])
        return gain / dosed if dosed > 0 else math.nan
    if base == "pct_replete_after":
        sel = daily & (t >= n - 1e-9)
        return float(100.0 * np.mean(s[sel] >= REPLETE))
    if base == "rise":
        if n > t[-1] + 1e-9:
            return math.nan
        mins = [float(s[(t >= a - 1e-9) & (t <= a + 30 + 1e-9)].min()) for a in range(0, int(n), 30)]
        return float(all(b > a for a, b in zip(mins, mins[1:])))
    window = t >= days - min(STEADY_WINDOW, days / 3.0) - 1e-9
    if base == "trough_ss":
        return float(s[window].min())
    if base == "mean_ss":
        return float(s[window].mean())
    if base == "stores_end":
        return float(df["stores_ug"].iloc[-1])
    if base == "absorbed_frac":
        dosed = float(df["dosed_ug"].iloc[-1])
        return float(df["absorbed_ug"].iloc[-1]) / dosed if dosed > 0 else math.nan
    if base == "absorbed_per_day":
        return (float(df["absorbed_ug"].iloc[-1]) - _interp(df, "absorbed_ug", t[-1] - 30)) / 30.0
    raise FileFormatError(f"unknown metric {name!r}")  # pragma: no cover - parse checks


def _band(x: float) -> int:
    return 0 if x < DEF else (1 if x < REPLETE else 2)


def _compare(a: float, op: str, b: float) -> bool:
    if op == ">=":
        return a >= b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == "<":
        return a < b
    if op == ">=band":
        return _band(a) >= _band(b)
    if op == ">band":
        return _band(a) > _band(b)
    raise FileFormatError(f"unknown operator {op!r}")  # pragma: no cover


def _labels(pattern: str, labels: Sequence[str]) -> list[str]:
    if pattern.endswith("*"):
        out = [lab for lab in labels if lab.startswith(pattern[:-1])]
    else:
        out = [lab for lab in labels if lab == pattern]
    if not out:
        raise FileFormatError(f"check refers to regimen {pattern!r}, not in the regimens")
    return out


def _term_values(term: _Term, labels: Sequence[str], values: Callable[[str, str], float]
                 ) -> list[tuple[str, float]]:
    if term.const is not None:
        return [("", term.const)]
    k = term.k if term.k is not None else 1.0
    return [(lab, k * values(lab, term.metric)) for lab in _labels(term.label, labels)]


def _holds(check: _Check, labels: Sequence[str], values: Callable[[str, str], float]) -> bool:
    for neg, conds in check.groups:
        ok = True
        for c in conds:
            for (_la, a), (_lb, b) in itertools.product(_term_values(c.lhs, labels, values),
                                                        _term_values(c.rhs, labels, values)):
                if not _compare(a, c.op, b):
                    ok = False
        if ok == neg:
            return False
    return True


def population_words(spec: str) -> str:
    """A population of the catalogue in words: ``pernicious-anaemia@110`` -> "pernicious
    anaemia, serum B12 110 pmol/L at the start"."""
    m = _POP_SPEC.match(spec.strip())
    if not m:
        return spec
    words = m[1].replace("-", " ")
    if m[2] == "ss":
        words += ", at the untreated steady state"
    elif m[2] == "replete":
        words += ", starting with a healthy adult's body stores"
    elif m[2]:
        words += f", serum B12 {float(m[2]):g} pmol/L at the start"
    if m[3]:
        words += (", no B12 from food" if float(m[3]) == 0 else
                  f", {float(m[3]):g} µg/day from food")
    return words


_LIMIT_WORDS = {"MMA_NORMAL": "the upper normal limit of methylmalonic acid",
                "HCY_TARGET": "the homocysteine target"}


def _term_words(term: _Term, lab: str, unit: str) -> str:
    if term.const is not None:
        if term.name in success_lines():
            return success_lines()[term.name]["text"]
        if term.name in _LIMIT_WORDS:
            return f"{_LIMIT_WORDS[term.name]} ({value_words(term.const, unit)})"
        return value_words(term.const, unit)
    k = f"{term.k:g} × " if term.k not in (None, 1.0) else ""
    return f"{k}regimen {lab}, {metric_words(term.metric)}"


def _term_unit(term: _Term) -> str:
    if term.metric:
        return metric_unit(term.metric)
    if term.name in ("MMA_NORMAL",):
        return "nmol/L"
    if term.name in ("HCY_TARGET",):
        return "umol/L"
    return "pmol/L" if term.name else ""


def trace(check: _Check, labels: Sequence[str], values: Callable[[str, str], float]
          ) -> list[str]:
    """Every comparison of a check, step by step, with the numbers of ``values`` and whether
    it holds ("... = 301 pmol/L, at or above 'deficiency unlikely' (258 pmol/L): holds")."""
    steps = []
    for neg, conds in check.groups:
        part = []
        for c in conds:
            unit = _term_unit(c.lhs) or _term_unit(c.rhs)
            for (la, a), (lb, b) in itertools.product(_term_values(c.lhs, labels, values),
                                                      _term_values(c.rhs, labels, values)):
                ok = _compare(a, c.op, b)
                r_unit = _term_unit(c.rhs) or unit
                rhs = _term_words(c.rhs, lb, r_unit)
                rhs_value = "" if c.rhs.const is not None else f" = {value_words(b, r_unit)}"
                part.append(f"{_term_words(c.lhs, la, unit)} = {value_words(a, unit)}, "
                            f"{OP_WORDS[c.op]} {rhs}{rhs_value}: "
                            f"{'holds' if ok else 'fails'}")
        if neg:
            steps.append("NOT all of [" + "; ".join(part) + "]: "
                         + ("holds" if not all(s.endswith("holds") for s in part) else "fails"))
        else:
            steps.extend(part)
    return steps


#: A proposition within this relative distance of its line is flagged as a close call.
CLOSE_CALL = 0.10


def _margins(check: _Check, labels: Sequence[str], values: Callable[[str, str], float]
             ) -> list[tuple[float, str]]:
    """Signed relative margin of every numeric comparison that must hold (the groups that
    are not negated; positive: holds with that room; negative: fails by that much), with the
    comparison in words."""
    out = []
    for neg, conds in check.groups:
        if neg:
            continue
        for c in conds:
            if c.op not in (">=", ">", "<=", "<") or any(
                    t.metric and t.metric.startswith("rise") for t in (c.lhs, c.rhs)):
                continue  # band comparisons and the 0/1 indicator have no distance
            for (la, a), (lb, b) in itertools.product(_term_values(c.lhs, labels, values),
                                                      _term_values(c.rhs, labels, values)):
                if not (math.isfinite(a) and math.isfinite(b)) or b == 0.0:
                    continue
                m = (a - b) / abs(b) if c.op.startswith(">") else (b - a) / abs(b)
                out.append((m, f"{c.text} ({_fmt(a)} vs {_fmt(b)})"))
    return out


def _referenced(check: _Check, labels: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for _neg, conds in check.groups:
        for c in conds:
            for term in (c.lhs, c.rhs):
                if term.label:
                    for lab in _labels(term.label, labels):
                        if (lab, term.metric) not in out:
                            out.append((lab, term.metric))
    return out


# --------------------------------------------------------------------------------------
# Trial data

@dataclass(frozen=True)
class DataEvidence:
    """What a dataset says about its proposition (the side a claim that names it without
    ``!`` takes): ``line`` (supports / mixed / contradicts) computed from the numbers by
    ``rule``, and the numbers in words."""

    line: str        # supports / mixed / contradicts
    text: str
    source: str
    rule: str = ""


def judge(holds: Sequence[bool]) -> str:
    """The data line from the comparisons a rule makes: supports when every one holds,
    contradicts when none does, mixed otherwise (no comparison: mixed)."""
    holds = [bool(h) for h in holds]
    if holds and all(holds):
        return "supports"
    if holds and not any(holds):
        return "contradicts"
    return "mixed"


def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion ``k / n``."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # within [0, 1] and around p, also where rounding puts an end a hair past them
    return min(max(centre - half, 0.0), p), max(min(centre + half, 1.0), p)


def newcombe(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float, float]:
    """Difference of two proportions ``k1/n1 - k2/n2`` and its 95 % interval (Newcombe's
    hybrid score method, from the Wilson intervals of each)."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), \
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


@lru_cache(maxsize=1)
def _trials() -> dict[str, Any]:
    from .validate import load_trials

    try:
        return {k: v[0] for k, v in load_trials().items()}
    except (OSError, FileFormatError):
        return {}


def _rows(stem: str, **match: Any) -> Any:
    df = _trials().get(stem)
    if df is None:
        return None
    for k, v in match.items():
        df = df[df[k] == v]
    return df


def _row(stem: str, **match: Any) -> Any:
    sel = _rows(stem, **match)
    return sel.iloc[0] if sel is not None and len(sel) else None


def _pmol(row: Any) -> float:
    return serum_to_pmol_per_l(float(row["value"]), row["unit"])


PA_COHORT_RULE = ("supports when the median serum at 1 month is at or above the deficiency "
                  "cut-off, at least three quarters are no longer deficient at 1 month and "
                  "at most a tenth deficient at 12 months; contradicts when none of these "
                  "holds (three quarters and a tenth: assumed readings of 'effective')")


def _pa_oral_cohort() -> DataEvidence | None:
    r30 = _row("pa_oral_cohort2024", outcome="pct_normalised", time_days=30)
    r365 = _row("pa_oral_cohort2024", outcome="pct_deficient", time_days=365)
    med = _row("pa_oral_cohort2024", outcome="serum_b12", time_days=30)
    if r30 is None or med is None or r365 is None:
        return None
    model = metric("serum_d30", _simulate("1000 mcg cyanocobalamin oral daily",
                                          "pernicious-anaemia@148", None, (), 60.0), 60.0)
    try:
        q1, q3 = (float(x) for x in str(med["spread"]).split("-"))
    except ValueError:
        q1, q3 = math.nan, math.nan
    where = ("below the trial's IQR: the model under-predicts oral uptake in PA" if model < q1
             else "above the trial's IQR" if model > q3 else "within the trial's IQR")
    line = judge([_pmol(med) >= DEF, float(r30["value"]) >= 75.0,
                  float(r365["value"]) <= 10.0])
    return DataEvidence(
        line,
        f"PA cohort 2024 (n=26, oral 1000 µg/d, 100% PA): {r30['value']:g}% no longer deficient "
        f"at 1 month, {r365['value']:g}% deficient at 12 months; median serum 148 -> "
        f"{med['value']:g} pmol/L (IQR {med['spread']}) at 1 month (cut-off {DEF:.0f}). Model "
        f"(PA, baseline 148): {model:.0f} pmol/L at day 30, {where}",
        "pa_oral_cohort2024", PA_COHORT_RULE)


ORAL_VS_IM_RULE = ("supports when the oral arm is at least as good as the IM arm in every "
                   "reported outcome (serum B12 not lower; methylmalonic acid and homocysteine "
                   "not higher); contradicts when it is worse in every one")


def _kuzminski() -> DataEvidence | None:
    pairs = []
    for outcome, name, better in (("serum_b12", "serum B12", 1.0), ("mma", "MMA", -1.0),
                                  ("homocysteine", "homocysteine", -1.0)):
        o = _row("kuzminski1998", arm="oral", outcome=outcome, time_days=120)
        i = _row("kuzminski1998", arm="im", outcome=outcome, time_days=120)
        if o is not None and i is not None:
            pairs.append((name, float(o["value"]), float(i["value"]), o["unit"], better))
    if not pairs:
        return None
    line = judge([b * (o - i) >= 0.0 for _, o, i, _, b in pairs])
    words = "; ".join(f"{name} {o:g} vs {i:g} {unit}" for name, o, i, unit, _ in pairs)
    return DataEvidence(
        line, f"Kuzminski 1998 (mixed deficiency) at 4 months, oral 2000 µg/d vs IM 1000 µg "
        f"(9 doses; IM sampled near a trough): {words}", "kuzminski1998", ORAL_VS_IM_RULE)


DIFFERENCE_RULE = ("for each reported oral-minus-IM difference with its 95 % CI: it holds "
                   "unless the whole interval lies below 0 (oral significantly worse); supports "
                   "when every difference holds, contradicts when none does, mixed otherwise")


def _ci(text: Any) -> tuple[float, float]:
    lo, hi = (float(x) for x in str(text).split(" to "))
    return lo, hi


def _ob12() -> DataEvidence | None:
    diffs = _rows("ob12_sanzcuesta2020", outcome="pct_normalised_difference")
    if diffs is None or not len(diffs):
        return None
    cis = [(float(r.time_days), int(r.n), float(r.value), *_ci(r.spread))
           for r in diffs.itertuples()]
    line = judge([hi >= 0.0 for *_, hi in cis])
    words = "; ".join(f"week {t / 7:.0f} (n {n}) {v:+g} points (95% CI {lo:g} to {hi:g})"
                      for t, n, v, lo, hi in cis)
    return DataEvidence(
        line, f"OB12 2020 (elderly, normalised >= 211 pg/mL), oral minus IM, ITT and "
        f"per-protocol: {words}", "ob12_sanzcuesta2020", DIFFERENCE_RULE)


def _castelli() -> DataEvidence | None:
    days = sorted(set(_rows("castelli2011").time_days)) if _rows("castelli2011") is not None \
        else []
    cis = []
    for t in days:
        o = _row("castelli2011", arm="oral", time_days=t)
        i = _row("castelli2011", arm="im", time_days=t)
        if o is None or i is None:
            continue
        ko, ki = float(o["value"]) / 100 * o["n"], float(i["value"]) / 100 * i["n"]
        d, lo, hi = newcombe(ko, float(o["n"]), ki, float(i["n"]))
        cis.append((t, float(o["value"]), float(i["value"]), 100 * d, 100 * lo, 100 * hi))
    if not cis:
        return None
    line = judge([hi >= 0.0 for *_, hi in cis])
    words = "; ".join(f"day {t + 1:g}: {o:g}% oral vs {i:g}% IM (difference {d:+.0f}, 95% CI "
                      f"{lo:.0f} to {hi:.0f})" for t, o, i, d, lo, hi in cis)
    return DataEvidence(
        line, f"Castelli 2011 (>= 350 pg/mL; oral is a proprietary 1000 µg formulation): "
        f"{words}", "castelli2011", DIFFERENCE_RULE + " (Newcombe intervals from the shares)")


REPLETE_RULE = ("supports when the reported mean serum at the last time point is in the "
                "'deficiency unlikely' band, contradicts when it is in the deficient band, "
                "mixed in between")


def _lonterman() -> DataEvidence | None:
    d28 = _row("lonterman2000", time_days=28)
    d7 = _row("lonterman2000", time_days=7)
    if d28 is None or d7 is None:
        return None
    text = d28["regimen_text"]
    df = _simulate(text, "vegan", 120.0, (), 35.0)
    last = _pmol(d28)
    line = "supports" if last >= REPLETE else "contradicts" if last < DEF else "mixed"
    return DataEvidence(
        line,
        f"Lonterman 2000 (intranasal hydroxo 1500 µg, n=21): 120 -> {d7['value']:g} (day 7) -> "
        f"{d28['value']:g} pmol/L (day 28; replete from {REPLETE:.0f}); model for that "
        f"regimen: {metric('serum_d7', df, 35):.0f} and {metric('serum_d28', df, 35):.0f} "
        "pmol/L", "lonterman2000", REPLETE_RULE)


TREATED_HCY_RULE = ("for each treated group reporting total homocysteine after treatment "
                    "(mean or median; Kuzminski 1998 at 4 months, the PA cohort 2024 at 1 "
                    "month): it holds when the level is below the homocysteine target; "
                    "supports when every group holds, contradicts when none does, else mixed")


def _treated_hcy() -> DataEvidence | None:
    target = _MARKER_LIMITS["HCY_TARGET"]
    groups = []
    for stem in ("kuzminski1998", "pa_oral_cohort2024"):
        sel = _rows(stem, outcome="homocysteine")
        if sel is None:
            continue
        for r in sel[sel["time_days"] > 0].to_dict("records"):
            groups.append((stem, r["arm"], r["statistic"], float(r["value"]),
                           float(r["time_days"])))
    if not groups:
        return None
    line = judge([v < target for *_x, v, _t in groups])
    words = "; ".join(f"{stem} {arm}: {stat} {v:g} µmol/L on day {t:g}"
                      for stem, arm, stat, v, t in groups)
    return DataEvidence(line, f"treated total homocysteine against the target "
                              f"{target:g} µmol/L: {words}", "kuzminski1998; pa_oral_cohort2024",
                        TREATED_HCY_RULE)


GLASS_RULE = ("the serum 6 months after the course (at least the reported multiple of the "
              "mean baseline) bounds the serum at 2-3 months from below: supports when that "
              "bound is in the 'deficiency unlikely' band, contradicts when it is deficient, "
              "mixed in between")


def _glass() -> DataEvidence | None:
    base = _row("glass1966", outcome="serum_b12", time_days=0)
    r = _row("glass1966", time_days=190)
    if r is None or base is None:
        return None
    bound = _pmol(base) * float(r["value"])
    line = "supports" if bound >= REPLETE else "contradicts" if bound < DEF else "mixed"
    return DataEvidence(
        line, f"Glass 1966: 6 hydroxocobalamin 1000 µg injections kept serum > {r['value']:g}x "
        f"the mean baseline ({base['value']:g} {base['unit']}) 6 months after the course "
        f"(at least {bound:.0f} pmol/L, without maintenance)", "glass1966", GLASS_RULE)


def _literature(name: str) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(data_path("literature", name))
    except OSError:
        return None


PASSIVE_RULE = ("supports when the absorbed share of 1000 µg without intrinsic factor is in "
                "0.5-2 %, contradicts otherwise")


def _carmel_passive() -> DataEvidence | None:
    df = _literature("carmel2008_table1.csv")
    if df is None:
        return None
    r = df[(df["population"] == "pernicious-anaemia") & (df["dose_ug"] == 1000)]
    if not len(r):
        return None
    v = float(r.iloc[0]["value_ug"])
    line = "supports" if 0.005 <= v / 1000.0 <= 0.02 else "contradicts"
    return DataEvidence(line, f"Carmel 2008 Table 1: without IF about {v:g} µg of a 1000 µg "
                        f"oral dose is absorbed ({v / 10:.1f}%)", "carmel2008_table1",
                        PASSIVE_RULE)


RETAINED_RULE = ("supports when 1000 µg IM retains more than 100 µg IM, contradicts "
                 "otherwise")


def _carmel_100_vs_1000() -> DataEvidence | None:
    df = _literature("carmel2008_table1.csv")
    if df is None:
        return None
    r = df[df["quantity"] == "retained"].set_index("dose_ug")["value_ug"]
    if 100 not in r.index or 1000 not in r.index:
        return None
    line = "supports" if r[1000] > r[100] else "contradicts"
    return DataEvidence(line, f"Carmel 2008 Table 1: an injection of 100 µg retains "
                        f"{r[100]:g} µg, of 1000 µg {r[1000]:g} µg ({r[1000] / r[100]:.1f}x)",
                        "carmel2008_table1", RETAINED_RULE)


URINE_RULE = ("each source's urinary share of 1000 µg IM cyanocobalamin (a range: its low "
              "end) holds when it is at least 50 %; supports when all hold, contradicts when "
              "none does")


def _loss(r: Any) -> float:
    v = r.urinary_loss_fraction
    return float(r.low) if v != v else float(v)   # NaN: a range, its low end


def _urine_loss_cyano() -> DataEvidence | None:
    df = _literature("injection_urinary_loss.csv")
    if df is None:
        return None
    sel = df[(df.form == "cyanocobalamin") & (df.dose_ug == 1000) & (df.route == "im")]
    if not len(sel):
        return None
    shares = [(r.source, r.window_h, _loss(r)) for r in sel.itertuples()]
    words = "; ".join(f"{src} {100 * v:.0f}%" + (f" in {w:g} h" if w == w else "")
                      for src, w, v in shares)
    return DataEvidence(judge([v >= 0.5 for *_, v in shares]),
                        f"urinary loss after 1000 µg IM cyanocobalamin: {words}",
                        "injection_urinary_loss", URINE_RULE)


FORMS_RULE = ("for each source and window reporting both forms after the same dose: holds "
              "when hydroxocobalamin's urinary share is lower; supports when all hold, "
              "contradicts when none does")


def _urine_hydroxo_vs_cyano() -> DataEvidence | None:
    df = _literature("injection_urinary_loss.csv")
    if df is None:
        return None
    pairs = []
    for (src, dose, window), grp in df.groupby(["source", "dose_ug", "window_h"]):
        by = grp.set_index("form")["urinary_loss_fraction"]
        if {"hydroxocobalamin", "cyanocobalamin"} <= set(by.index):
            pairs.append((src, dose, window, float(by["hydroxocobalamin"]),
                          float(by["cyanocobalamin"])))
    if not pairs:
        return None
    words = "; ".join(f"{src} {d:g} µg in {w:g} h: {100 * h:.0f}% vs {100 * c:.0f}%"
                      for src, d, w, h, c in pairs)
    return DataEvidence(judge([h < c for *_, h, c in pairs]),
                        f"urinary loss after IM, hydroxo- vs cyanocobalamin: {words}",
                        "injection_urinary_loss", FORMS_RULE)


DATA_CHECKS: dict[str, Callable[[], DataEvidence | None]] = {
    "pa_oral_cohort": _pa_oral_cohort, "kuzminski": _kuzminski, "ob12": _ob12,
    "castelli": _castelli, "lonterman": _lonterman, "glass": _glass,
    "carmel_passive": _carmel_passive, "carmel_100_vs_1000": _carmel_100_vs_1000,
    "urine_loss_cyano": _urine_loss_cyano, "urine_hydroxo_vs_cyano": _urine_hydroxo_vs_cyano,
    "treated_hcy": _treated_hcy,
}
"""Datasets a claim can name in ``data_checks``. Each computes whether its numbers support
its proposition, by the rule it states (``DataEvidence.rule``); ``!name`` in a claim means
the claim takes the opposite side, so the line is flipped."""

def data_evidence() -> dict[str, DataEvidence]:
    """Every dataset comparison of :data:`DATA_CHECKS` with its computed line and rule (the
    ones whose data are missing are left out)."""
    out = {}
    for name, check in DATA_CHECKS.items():
        ev = check()
        if ev is not None:
            out[name] = ev
    return out


_FLIP = {"supports": "contradicts", "contradicts": "supports", "mixed": "mixed"}


def _data_line(names: Sequence[str]) -> tuple[str | None, str]:
    lines, texts = [], []
    for name in names:
        neg = name.startswith("!")
        ev = DATA_CHECKS[name.lstrip("!")]()
        if ev is None:
            continue
        line = _FLIP[ev.line] if neg else ev.line
        lines.append(line)
        texts.append(f"[{line}] {ev.text}")
    if not lines:
        return None, ""
    return _combine(lines), " || ".join(texts)


# --------------------------------------------------------------------------------------
# Rubric

_TO_VERDICT = {"supports": CONSISTENT, "mixed": PARTLY, "contradicts": INCONSISTENT}


def verdict_from_lines(category: str, model: str | None, data: str | None,
                       partial: bool = False) -> str:
    """The rubric (module docstring): lines are 'supports', 'mixed', 'contradicts' or None."""
    for line in (model, data):
        if line not in (None, "supports", "mixed", "contradicts"):
            raise InputError(f"evidence line {line!r} not understood")
    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}")
    if category == "clinical-judgement":
        return NOT_CHECKABLE
    primary, secondary = (data, model) if category == "trial-outcome" else (model, data)
    if primary is None:
        primary, secondary = secondary, None
    if primary is None:
        return NOT_CHECKABLE
    verdict = _TO_VERDICT[primary]
    if secondary is not None and {primary, secondary} == {"supports", "contradicts"}:
        verdict = PARTLY
    if partial and verdict == CONSISTENT:
        verdict = PARTLY
    return verdict


SHARE_RULE = ("a share-of-patients claim is judged in a virtual population (between-patient "
              "variability of data/variability.toml): supports when the share of virtual "
              "patients for whom the proposition holds lies in the claimed range, mixed when "
              "it lies outside but its 95 % Wilson interval reaches the range, contradicts "
              "otherwise; 'up to X %' is read as X/2 to X % (a share below half the stated "
              "maximum would make the sentence misleading; reading assumed)")


def share_line(k: int, n: int, lo: float, hi: float) -> str:
    """Model line of a share-of-patients claim (:data:`SHARE_RULE`): ``k`` of ``n`` virtual
    patients for whom the proposition holds against the claimed range ``[lo, hi]``."""
    if n < 1 or not 0 <= k <= n:
        raise InputError(f"a share needs 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    share = k / n
    if lo - 1e-12 <= share <= hi + 1e-12:
        return "supports"
    low, high = wilson(k, n)
    if high >= lo and low <= hi:
        return "mixed"
    return "contradicts"


# --------------------------------------------------------------------------------------
# Evaluation

@dataclass
class EvidenceResult:
    """Result of :func:`evaluate_claims`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per claim (:data:`EVIDENCE_COLUMNS`).
    contradictions : pandas.DataFrame
        Where the seeds disagree (:func:`contradictions`).
    claims : pandas.DataFrame
        The catalogue that was evaluated.
    """

    table: Any
    contradictions: Any
    claims: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Claims per category and verdicts per category."""
        t = self.table
        return {"category": t["category"].value_counts().to_dict(),
                "verdict": t["verdict"].value_counts().to_dict()}


EVIDENCE_COLUMNS = ("id", "seed_file", "category", "claim", "population", "verdict",
                    "model_line", "data_line", "scenarios_holding", "key_numbers",
                    "uncertainty", "data_evidence", "closest_margin_pct",
                    "closest_comparison", "close_call", "probability_holds", "trace", "partial",
                    "topic", "side",
                    "quote", "cited_source", "merged", "notes")


def _scenarios(sens: Sequence[str]) -> list[tuple[str, tuple[tuple[str, float], ...]]]:
    out: list[tuple[str, tuple[tuple[str, float], ...]]] = [("default", ())]
    for name in sens:
        _v, lo, hi = _param_range(name)
        out.append((f"{name}=low ({lo:g})", ((name, lo),)))
        out.append((f"{name}=high ({hi:g})", ((name, hi),)))
    return out


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if abs(x) < 1 and x != 0:
        return f"{x:.3f}"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2f}"


#: Most posterior draws per claim (each is a full re-run of the claim; b12pk.limits).
MAX_DRAWS = MAX_EVIDENCE_DRAWS


@lru_cache(maxsize=8)
def posterior_overrides(base: tuple[tuple[str, float], ...], draws: int, seed: int
                        ) -> tuple[tuple[tuple[str, float], ...], ...]:
    """``draws`` parameter sets from the fitted parameters' approximate posterior
    (``data/calibration.toml [uncertainty]``) around ``base``, as override tuples."""
    from ..model.parameters import parameter_uncertainty

    unc = parameter_uncertainty()
    params = default_parameters().replace(**dict(base)) if base else default_parameters()
    out = []
    for p in unc.draw(params, draws, seed):
        ov = dict(base)
        ov.update({n: float(p[n]) for n in unc.names})
        out.append(tuple(sorted(ov.items())))
    return tuple(out)


def _probability(options: Sequence[_Check], labels: Sequence[str], pops: Sequence[str],
                 values_for: Callable, base: tuple, draws: int, seed: int) -> float:
    """Share of posterior draws in which every option holds in every population."""
    held = 0
    sets = posterior_overrides(base, draws, seed)
    for ov in sets:
        held += all(_holds(check, labels, values_for(p, None, ov, absolute=True))
                    for check in options for p in pops)
    return held / len(sets)


def _evaluate_row(row: Any, base: tuple[tuple[str, float], ...], days_override: float | None,
                  posterior: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    out = {"id": row["id"], "seed_file": row["seed_file"], "category": row["category"],
           "claim": row["assertion"], "population": row["population"], "partial": row["partial"],
           "topic": row["topic"], "side": row["side"], "quote": row["quote"],
           "merged": row["merged"],
           "cited_source": row["cited_source"], "notes": row["notes"],
           "model_line": "", "data_line": "", "scenarios_holding": "", "key_numbers": "",
           "uncertainty": "", "data_evidence": "", "closest_margin_pct": math.nan,
           "closest_comparison": "", "close_call": False, "trace": "",
           "probability_holds": math.nan}
    partial = row["partial"].strip().lower() in ("yes", "true", "1")
    if row["category"] == "clinical-judgement":
        out["verdict"] = NOT_CHECKABLE
        out["uncertainty"] = "not checkable by a PK model: " + (row["notes"] or "clinical judgement")
        return out
    model_line = None
    if row["check"].strip():
        options = _parse_options(row["check"])
        regs = _parse_regimens(row["regimens"])
        labels = list(regs)
        pops = _split(row["populations"]) or [""]   # "": a check on numbers only
        days = float(row["days"]) if not math.isnan(row["days"]) else 365.0
        if days_override is not None:
            days = min(days, days_override)
        scen = _scenarios(_split(row["sensitivity"]))

        def values_for(pop: str, baseline: float | None, ov: tuple, absolute: bool = False
                       ) -> Callable[[str, str], float]:
            params = ov if absolute else tuple(sorted(dict(base + ov).items()))

            def values(lab: str, met: str) -> float:
                text, own_pop = regs[lab]
                df = _simulate(text, own_pop or pop, None if own_pop else baseline,
                               params, days)
                return metric(met, df, days)
            return values

        refs = [r for check in options for r in _referenced(check, labels)]
        refs = list(dict.fromkeys(refs))
        nums = []
        for pop in pops:
            vals = values_for(pop, None, ())
            nums.append(f"{pop}: " + ", ".join(f"{lab}.{met}={_fmt(vals(lab, met))}"
                                                for lab, met in refs))
        out["key_numbers"] = " | ".join(nums)
        if options[0].share is None:
            steps = []
            for k, check in enumerate(options):
                for pop in pops:
                    head = (f"option {k + 1}, " if len(options) > 1 else "") + \
                        (population_words(pop) if pop else "numbers only")
                    steps += [f"{head}: {st}" for st in
                              trace(check, labels, values_for(pop, None, ()))]
            out["trace"] = " || ".join(steps)
        decisive = []
        for check in options:
            margins = [m for pop in pops
                       for m in _margins(check, labels, values_for(pop, None, ()))]
            if margins:  # the one that fails most, or holds with the least room
                decisive.append(min(margins, key=lambda x: x[0]))
        if decisive:  # with options: the option nearest its line
            m, text = min(decisive, key=lambda x: abs(x[0])) if len(options) > 1 \
                else decisive[0]
            out["closest_margin_pct"] = 100.0 * m
            out["closest_comparison"] = text
            out["close_call"] = abs(m) < CLOSE_CALL
        if options[0].share is None and posterior[0] > 0:
            out["probability_holds"] = _probability(options, labels, pops, values_for, base,
                                                    *posterior)
        if options[0].share is None:
            texts = [_option_name(t) for t in row["check"].split("||")]
            results = [_scenario_line(check, labels, pops, scen, values_for)
                       for check in options]
            model_line = _combine([r[0] for r in results])
            if len(options) == 1:
                out["scenarios_holding"], out["uncertainty"] = results[0][1], results[0][2]
            else:
                out["scenarios_holding"] = "; ".join(f"option {k + 1}: {r[1]}"
                                                     for k, r in enumerate(results))
                out["uncertainty"] = "options judged one by one: " + "; ".join(
                    f"[{t}] {r[0]} ({r[2]})" for t, r in zip(texts, results))
        else:
            model_line = _share_claim(options[0], labels, regs, pops, base, days, out)
    data_line, data_text = _data_line(_split(row["data_checks"]))
    out["model_line"] = model_line or ""
    out["data_line"] = data_line or ""
    out["data_evidence"] = data_text
    if model_line is None and data_line is None:
        out["verdict"] = NOT_CHECKABLE
        out["uncertainty"] = row["notes"] or "no check defined"
    else:
        out["verdict"] = verdict_from_lines(row["category"], model_line, data_line, partial)
    return out


def _share_claim(check: _Check, labels: Sequence[str], regs: dict[str, tuple[str, str]],
                 pops: Sequence[str], base: tuple, days: float, out: dict[str, Any]) -> str:
    """Model line of a share claim, judged in the virtual patients of each population
    (:data:`SHARE_RULE`); fills the claim's scenario and uncertainty words. A check that
    reads only each regimen's lowest serum from a day on (``min_from_d<N>``) is judged on
    the population engine's per-patient readings of the same virtual patients
    (:func:`_share_minima`); any other check on one simulation per patient and regimen."""
    lo, hi = check.share
    k = n = 0
    with quiet_warnings():  # a drawn baseline beyond the stores' capacity is simulated as drawn
        for pop in pops:
            minima = _share_minima(check, labels, regs, pop, base, days)
            if minima is not None:
                for i in range(SHARE_PATIENTS):
                    n += 1
                    k += _holds(check, labels, lambda lab, met, i=i: minima[(lab, met)][i])
                continue
            for patient, ov in virtual_patients(pop, base):
                def values(lab: str, met: str, patient: Patient = patient,
                           ov: tuple = ov) -> float:
                    text, own_pop = regs[lab]
                    who = _patient(own_pop) if own_pop else patient
                    return metric(met, _run(text, who, ov, days), days)
                n += 1
                k += _holds(check, labels, values)
    low, high = wilson(k, n)
    out["scenarios_holding"] = f"{k}/{n} virtual patients"
    out["uncertainty"] = (f"share of virtual patients for whom it holds: {k / n:.0%} (95 % "
                          f"interval {low:.0%}-{high:.0%}) vs claimed {lo:.0%}-{hi:.0%}; "
                          "between-patient variability as in data/variability.toml (partly "
                          "assumed)")
    return share_line(k, n, lo, hi)


_MIN_FROM = re.compile(r"^min_from_d(\d+)$")


def _share_minima(check: _Check, labels: Sequence[str], regs: dict[str, tuple[str, str]],
                  pop: str, base: tuple, days: float
                  ) -> dict[tuple[str, str], np.ndarray] | None:
    """(label, metric) -> each virtual patient's value, for a check whose every simulated
    term is ``min_from_d<N>`` of a regimen without a population of its own: the lowest
    daily serum from day N to the horizon, read per patient by the population engine
    (:func:`b12pk.population.simulate_population` with ``watch_values``) on the patients of
    :func:`virtual_patients` (the same draws, in the same order; their single-patient runs
    agree to about 3e-4). None where the check reads anything else, a day lies beyond the
    horizon, or the fast population method is not available."""
    from ..errors import ModelError
    from ..population.core import PopulationSpec, Watch, simulate_population

    refs = _referenced(check, labels)
    starts: dict[str, list[tuple[str, float]]] = {}
    for lab, met in refs:
        m = _MIN_FROM.match(met)
        if m is None or regs[lab][1] or float(m[1]) >= days:
            return None
        starts.setdefault(lab, []).append((met, float(m[1])))
    if not starts:
        return None
    spec = PopulationSpec(_share_typical(pop, base), n=SHARE_PATIENTS, seed=SHARE_SEED)
    out = {}
    for lab, mets in starts.items():
        watch = [Watch(1.0, "daily", start, days) for _met, start in mets]
        try:
            res = simulate_population(_regimen(regs[lab][0]), spec, days, watch=watch,
                                      daily=False, watch_values=True, workers=1)
        except ModelError:  # the fast method is not in step with the declaration
            return None
        for (met, _start), values in zip(mets, res.watch_min):
            out[(lab, met)] = values
    return out


def _scenario_line(check: _Check, labels: Sequence[str], pops: Sequence[str],
                   scen: Sequence[tuple[str, tuple]], values_for: Callable
                   ) -> tuple[str, str, str]:
    """(model line, scenarios holding, in words) of one check over the scenarios: it holds
    in a scenario when it holds in every population."""
    held, failed = [], []
    for name, ov in scen:
        ok = all(_holds(check, labels, values_for(p, None, ov)) for p in pops)
        (held if ok else failed).append(name)
    n = len(scen)
    line = "supports" if len(held) == n else "contradicts" if not held else "mixed"
    if failed and held:
        words = "holds at " + ", ".join(held) + "; fails at " + ", ".join(failed)
    elif failed:
        words = f"fails in all {n} scenarios (default and parameter range ends)"
    else:
        words = (f"holds in all {n} scenarios" +
                 (" (" + ", ".join(s for s, _ in scen[1:]) + ")" if n > 1 else ""))
    return line, f"{len(held)}/{n}", words


def evaluate_claims(claims: Any = None, *, ids: Sequence[str] | None = None,
                    overrides: dict[str, float] | None = None,
                    max_days: float | None = None,
                    workers: int | None = None,
                    draws: int = 0, seed: int = 0,
                    progress: Callable[[int, int, str], None] | None = None) -> EvidenceResult:
    """Evaluate every claim of the catalogue.

    Parameters
    ----------
    claims : pandas.DataFrame or path, optional
        A catalogue (default: the shipped ``data/claims/claims.csv``); validated.
    ids : sequence of str, optional
        Evaluate only these claim ids.
    overrides : dict, optional
        Parameter values applied to every scenario (a range-end scenario of the same
        parameter replaces it). Values are checked against the declared ranges.
    max_days : float, optional
        Cap every claim's horizon (for quick runs; steady-state metrics then refer to it).
    workers : int, optional
        Threads evaluating claims in parallel (default: one per CPU; the compiled transient
        integrator runs without the GIL, so 2 threads take about 0.6 of the time of one).
        Results do not depend on it.
    draws : int
        With ``draws`` > 0, each simulated claim (not share claims) is also judged at that
        many draws of the fitted parameters from their approximate posterior
        (``data/calibration.toml [uncertainty]``) and ``probability_holds`` is the share of
        draws in which it holds (every option, every population). About ``draws`` times the
        time of the plain run. 0: not computed (NaN).
    seed : int
        Seed of the posterior draws (the same seed gives the same probabilities).
    progress : callable, optional
        ``progress(done, total, claim_id)``.

    Returns
    -------
    EvidenceResult
    """
    shipped = claims is None
    if claims is None or isinstance(claims, (str, Path)):
        claims = load_claims(claims)
    else:
        claims = _validate_claims(claims)
    if ids is not None:
        unknown = set(ids) - set(claims["id"])
        if unknown:
            shown = ", ".join(echo(i, 20) for i in sorted(unknown)[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise InputError(f"unknown claim id(s): {shown}{more}; accepted: the ids of "
                             "data/claims/claims.csv, such as C001")
        claims = claims[claims["id"].isin(list(ids))].reset_index(drop=True)
    if isinstance(draws, bool) or not isinstance(draws, int) or not 0 <= draws <= MAX_DRAWS:
        raise InputError(f"draws={echo(draws)} is not accepted; accepted: a whole number from "
                         f"0 to {MAX_DRAWS}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed={echo(seed)} is not accepted; accepted: a whole number >= 0")
    base: tuple[tuple[str, float], ...] = ()
    if overrides:
        default_parameters().replace(**overrides)   # validates
        base = tuple(sorted((k, float(v)) for k, v in overrides.items()))
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers={echo(workers)} is not accepted; accepted: a whole number "
                         ">= 1")
    if shipped and ids is None and not base and max_days is None:
        # the shipped catalogue as it is: kept on disk between runs (analysis/shipped.py)
        return _SHIPPED.get(draws, seed, compute=lambda: _evaluate(
            claims, (), None, workers, draws, seed, progress))
    return _evaluate(claims, base, max_days, workers, draws, seed, progress)


_SHIPPED = DataCache(lambda draws, seed: _evaluate(load_claims(None), (), None,
                                                   os.cpu_count() or 1, draws, seed, None),
                     "evidence")
"""The shipped catalogue's evaluation at (draws, seed), kept on disk between runs."""


def _evaluate(claims: Any, base: tuple[tuple[str, float], ...], max_days: float | None,
              workers: int, draws: int, seed: int,
              progress: Callable[[int, int, str], None] | None) -> EvidenceResult:
    """:func:`evaluate_claims` on a checked catalogue and settings."""
    import pandas as pd

    records = [row for _, row in claims.iterrows()]
    rows: list[dict[str, Any]] = []
    if workers > 1 and len(records) > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=min(workers, len(records)))
        try:
            futures = [pool.submit(_evaluate_row, r, base, max_days, (draws, seed))
                       for r in records]
            for i, (fut, r) in enumerate(zip(futures, records)):
                rows.append(fut.result())
                if progress is not None:
                    progress(i + 1, len(records), r["id"])
        finally:  # an interruption does not wait for the claims not yet started
            pool.shutdown(wait=False, cancel_futures=True)
    else:
        for i, row in enumerate(records):
            rows.append(_evaluate_row(row, base, max_days, (draws, seed)))
            if progress is not None:
                progress(i + 1, len(records), row["id"])
    table = pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS))
    return EvidenceResult(table=table, contradictions=contradictions(table), claims=claims,
                          settings={"overrides": dict(base), "max_days": max_days,
                                    "draws": draws, "seed": seed})


# --------------------------------------------------------------------------------------
# Contradictions

_SCORE = {CONSISTENT: 1.0, PARTLY: 0.5, INCONSISTENT: 0.0}

CONTRADICTIONS_RULE = (
    "A row is a pair of sides of one topic that the catalogue marks as disagreeing "
    "(column side); it is a disagreement between articles, or within one article when that "
    "article stands on both sides. A side's score is the mean over the articles on that side "
    "of each article's mean verdict score (consistent 1, partly consistent 0.5, inconsistent 0; "
    "claims not checkable left out), so that an article counts once however many sentences "
    "repeat its position. The model and data support side A (B) when its score beats the "
    "other's by 0.25 or more, both sides when both score 0.75 or more, else neither clearly.")


@lru_cache(maxsize=1)
def articles() -> dict[str, dict[str, str]]:
    """The seed articles by file name: ``{"title": ..., "short": ...}``
    (``data/claims/articles.toml``)."""
    import tomllib

    with open(data_path("claims", "articles.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    return {a["seed_file"]: {"title": a["title"], "short": a["short"]}
            for a in doc["article"]}


def article_title(seed_file: str, short: bool = False) -> str:
    """The title of a seed article (its short name if ``short``); the file name if unknown."""
    a = articles().get(seed_file)
    return seed_file if a is None else a["short" if short else "title"]


def side_score(group: Any) -> float | None:
    """Score of one side (:data:`CONTRADICTIONS_RULE`): the mean over articles of each
    article's mean verdict score; None when none of its claims is checkable."""
    per_article = []
    for _seed, g in group.groupby("seed_file", sort=True):
        sc = [_SCORE[v] for v in g["verdict"] if v in _SCORE]
        if sc:
            per_article.append(sum(sc) / len(sc))
    return sum(per_article) / len(per_article) if per_article else None


def _supports(a: str, b: str, sa: float | None, sb: float | None) -> str:
    if sa is None or sb is None:
        return "not checkable"
    if sa >= 0.75 and sb >= 0.75:
        return "both sides (no conflict in the model)"
    if sa - sb >= 0.25:
        return f"side A: {a}"
    if sb - sa >= 0.25:
        return f"side B: {b}"
    return "neither clearly"


def _where(ga: Any, gb: Any) -> str:
    both = sorted(set(ga["seed_file"]) & set(gb["seed_file"]))
    seeds = sorted(set(ga["seed_file"]) | set(gb["seed_file"]))
    between = ("between articles" if len(seeds) > 1 else "")
    within = "; ".join(f"within \u201c{article_title(s, short=True)}\u201d" for s in both)
    return "; ".join(x for x in (between, within) if x)


def contradictions(table: Any) -> Any:
    """Where the seed articles disagree: one row per pair of sides within a topic
    (:data:`CONTRADICTIONS_RULE`)."""
    import pandas as pd

    rows = []
    t = table[table["topic"].astype(str).str.strip() != ""]
    for topic, grp in t.groupby("topic", sort=False):
        sides = list(dict.fromkeys(grp["side"]))
        for a, b in itertools.combinations(sides, 2):
            ga, gb = grp[grp["side"] == a], grp[grp["side"] == b]
            sa, sb = side_score(ga), side_score(gb)

            def items(g: Any) -> str:
                return "; ".join(f"{r.id} ({r.verdict})" for r in g.itertuples())

            def arts(g: Any) -> str:
                return "; ".join(article_title(s, short=True)
                                 for s in sorted(set(g["seed_file"])))

            def numbers(g: Any) -> str:
                return " / ".join(f"{r.id}: {r.key_numbers}" for r in g.itertuples()
                                  if r.key_numbers)

            data = sorted({d for d in pd.concat([ga, gb])["data_evidence"] if d})
            rows.append({"topic": topic, "where": _where(ga, gb),
                         "side_a": a, "claims_a": items(ga), "articles_a": arts(ga),
                         "score_a": sa, "side_b": b, "claims_b": items(gb),
                         "articles_b": arts(gb), "score_b": sb,
                         "model_a": numbers(ga), "model_b": numbers(gb),
                         "data": " || ".join(data), "supports": _supports(a, b, sa, sb)})
    return pd.DataFrame(rows, columns=CONTRADICTION_COLUMNS)


CONTRADICTION_COLUMNS = ["topic", "where", "side_a", "claims_a", "articles_a", "score_a",
                         "side_b", "claims_b", "articles_b", "score_b", "model_a", "model_b",
                         "data", "supports"]


# --------------------------------------------------------------------------------------
# Presentation

RUBRIC_MARKDOWN = """\
**Rubric.** Each checkable claim is a proposition on simulated serum B12 (bands of the seed
article "What is the recommended dose of vitamin B12 (cobalamin) for treating deficiency?":
deficient < 132.8 pmol/L, deficiency unlikely >= 258 pmol/L; *adequate* = replete at day 90 and
at the steady-state trough, never deficient after day 30). The **model line** supports the claim
if the proposition holds at the default parameters *and* at the low and high end of each
parameter that matters, contradicts it if it holds in none, else is mixed. The **data line**
says whether a trial dataset supports it, computed from the dataset's numbers by a stated rule
(the table of rules below). Primary line: model for *quantitative-pk*, data for
*trial-outcome*; supports = consistent, mixed = partly consistent, contradicts = inconsistent;
a secondary line pointing the other way gives partly consistent; claims with a part the model
cannot check (symptoms, anaemia, outcomes it does not simulate) are at best partly consistent;
claims about a share of patients are judged in 100 virtual patients (share against the claimed
range, with its 95 % interval); *clinical-judgement* claims are not checkable by this model.
Where a source defines its own success line (a trial's "normalised", an article's own band),
the claim is judged against that line."""


PANELS = (
    ("Oral vs IM in pernicious anaemia", "pernicious-anaemia@110",
     (("Oral cyano 1000 µg daily", "1000 mcg cyanocobalamin oral daily"),
      ("Oral cyano 2000 µg daily", "2000 mcg cyanocobalamin oral daily"),
      ("IM hydroxo 1000 µg 3×/wk 2 wk, then every 2 months",
       "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every 2 months")),
     ("C001", "C102", "C209", "C318")),
    ("IM maintenance interval (pernicious anaemia)", "pernicious-anaemia@110",
     (("Hydroxo 1000 µg loading, then monthly",
       "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then monthly"),
      ("… then every 2 months",
       "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every 2 months"),
      ("… then every 3 months",
       "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then every 3 months")),
     ("C307", "C306", "C013")),
    ("Injection dose 100 vs 1000 µg (pernicious anaemia)", "pernicious-anaemia@110",
     (("Cyano 100 µg label loading, then 100 µg monthly",
       "100 mcg cyanocobalamin IM daily for 6 days, then every 2 days for 7 doses, "
       "then every 3 days for 2 weeks, then monthly"),
      ("Cyano 1000 µg daily ×10, then 1000 µg monthly",
       "1000 mcg cyanocobalamin IM daily for 10 days, then monthly"),
      ("Hydroxo 1000 µg monthly (no loading)", "1000 mcg hydroxocobalamin IM monthly")),
     ("C308", "C212", "C104")),
)


#: Trial observations drawn over the panels: (panel title, trial, arm, label).
PANEL_POINTS = (
    ("Oral vs IM in pernicious anaemia", "pa_oral_cohort2024", "oral",
     "PA cohort 2024: oral cyano 1000 µg daily (median, IQR; start 148 pmol/L)"),
    ("Oral vs IM in pernicious anaemia", "kuzminski1998", "oral",
     "Kuzminski 1998: oral cyano 2000 µg daily (mean; mixed causes)"),
    ("Oral vs IM in pernicious anaemia", "kuzminski1998", "im",
     "Kuzminski 1998: IM cyano 1000 µg x9 to day 90 (mean; mixed causes)"),
)


def panel_points() -> Any:
    """The trial observations of :data:`PANEL_POINTS` in pmol/L: a tidy DataFrame with
    ``panel``, ``label``, ``time_days``, ``serum_pmol_per_l`` and the spread's ends
    ``low_pmol_per_l``/``high_pmol_per_l`` (NaN when none is reported)."""
    import pandas as pd

    rows = []
    for panel, stem, arm, label in PANEL_POINTS:
        sel = _rows(stem, arm=arm, outcome="serum_b12")
        if sel is None:
            continue
        for r in sel.to_dict("records"):
            lo = hi = math.nan
            spread = str(r.get("spread") or "")
            m = re.match(r"^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$", spread)
            if m:
                lo = serum_to_pmol_per_l(float(m[1]), r["unit"])
                hi = serum_to_pmol_per_l(float(m[2]), r["unit"])
            rows.append({"panel": panel, "label": label, "time_days": float(r["time_days"]),
                         "serum_pmol_per_l": _pmol(r), "low_pmol_per_l": lo,
                         "high_pmol_per_l": hi})
    return pd.DataFrame(rows, columns=["panel", "label", "time_days", "serum_pmol_per_l",
                                       "low_pmol_per_l", "high_pmol_per_l"])


def panel_courses(days: float = 365.0) -> Any:
    """Serum courses of the competing regimens of :data:`PANELS` (one typical patient each):
    a tidy DataFrame with ``panel``, ``label``, ``time_days`` and ``serum_pmol_per_l``."""
    import pandas as pd

    parts = []
    for title, pop, regs, _ids in PANELS:
        for label, text in regs:
            df = _simulate(text, pop, None, (), days)
            parts.append(pd.DataFrame({"panel": title, "label": label,
                                       "time_days": df["time_days"].to_numpy(),
                                       "serum_pmol_per_l": df["serum_pmol_per_l"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)
