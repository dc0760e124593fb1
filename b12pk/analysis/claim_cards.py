"""One card per claim for a guideline writer: the quote and its article, the cited source
and what it can support, the regimens and populations in words, the criterion in plain
language, the numbers with units and margin, the scenario that decides it, the data
comparators with their grade, the known model biases that apply, and the step-by-step trace.

Compute only (:func:`claim_cards` returns :class:`ClaimCard` objects); the Markdown is
written by :mod:`b12pk.report.evidence`.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .._data import data_path
from ..errors import FileFormatError
from . import evidence as ev
from . import biases
from .biases import BIAS_FOLD, validation_ratios
from .claim_words import OP_WORDS, metric_words

__all__ = ["ClaimCard", "Comparator", "claim_cards", "citations", "comparator",
           "criterion_words", "known_biases", "validation_ratios", "DATASETS", "BIAS_FOLD"]

#: The dataset (path under data/literature, without extension) behind each data check, and
#: the words that name it in parameter sources (to tell a calibration check from support).
DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pa_oral_cohort": ("trials/pa_oral_cohort2024", ("pa_oral_cohort",)),
    "kuzminski": ("trials/kuzminski1998", ("kuzminski1998",)),
    "ob12": ("trials/ob12_sanzcuesta2020", ("ob12",)),
    "castelli": ("trials/castelli2011", ("castelli2011",)),
    "lonterman": ("trials/lonterman2000", ("lonterman2000",)),
    "glass": ("trials/glass1966", ("glass1966",)),
    "carmel_passive": ("carmel2008_table1", ("carmel2008",)),
    "carmel_100_vs_1000": ("carmel2008_table1", ("carmel2008",)),
    "urine_loss_cyano": ("injection_urinary_loss", ("injection_urinary_loss", "hydroxo1961",
                                                    "swissmedic30219")),
    "urine_hydroxo_vs_cyano": ("injection_urinary_loss", ("injection_urinary_loss",
                                                          "hydroxo1961", "swissmedic30219")),
    "treated_hcy": ("trials/kuzminski1998", ("kuzminski1998",)),
}


@dataclass(frozen=True)
class Comparator:
    """A dataset a claim is compared with, graded (its sidecar's ``[grade]``)."""

    name: str
    line: str                 # supports / mixed / contradicts, from the claim's side
    rule: str
    numbers: str
    citation: str
    grade: str                # A / B / C, or "" when the sidecar has none
    grade_words: str          # design, n, abstract-only, in words
    match: str                # how the dataset's population and forms match the claim's
    calibration: tuple[str, ...]   # parameters taken from or fitted to this dataset


@dataclass(frozen=True)
class ClaimCard:
    """Everything a reader needs to check one verdict (see the module docstring)."""

    id: str
    article: str
    quote: str
    merged: str
    citation: dict[str, str]
    regimens: tuple[tuple[str, str], ...]
    populations: tuple[str, ...]
    criterion: tuple[str, ...]
    verdict: str
    model_line: str
    data_line: str
    decided_by: str
    margin: str
    trace: tuple[str, ...]
    comparators: tuple[Comparator, ...]
    biases: tuple[str, ...]
    confidence: str
    probability: float        # share of posterior draws in which it holds (NaN: not run)
    draws: int
    notes: str


# ------------------------------------------------------------------------------ sources

@lru_cache(maxsize=1)
def citations() -> dict[str, dict[str, str]]:
    """Per claim id, the audit of the reference the article cites for it
    (``data/claims/citations.csv``: cited_refs, in_list, reference, can_support,
    transcription_error, reason)."""
    import pandas as pd

    df = pd.read_csv(data_path("claims", "citations.csv"), dtype=str, keep_default_na=False)
    bad = set(df["can_support"]) - {"yes", "partly", "no", "unclear", "n/a"}
    if bad:
        raise FileFormatError(f"data/claims/citations.csv: can_support {sorted(bad)} not one "
                              "of yes, partly, no, unclear, n/a")
    return {r["id"]: dict(r) for r in df.to_dict("records")}


@lru_cache(maxsize=None)
def _sidecar(stem: str) -> dict[str, Any]:
    with open(data_path("literature", f"{stem}.toml"), "rb") as fh:
        return tomllib.load(fh)


@lru_cache(maxsize=None)
def _calibrated_from(keys: tuple[str, ...]) -> tuple[str, ...]:
    """Parameters whose declared source names the dataset (taken from or fitted to it)."""
    from ..model.parameters import parameter_table

    t = parameter_table()
    return tuple(r.name for r in t.itertuples()
                 if any(k in str(r.source) for k in keys) and str(r.status) != "assumed")


def _match(grade: dict[str, Any], regimens: dict[str, tuple[str, str]],
           pops: list[str]) -> str:
    if not grade:
        return "not graded"
    presets = {re.split(r"[@:]", p)[0] for p in pops}
    forms = {f.lower() for f in grade.get("forms", [])}
    ours = {f.lower() for f in biases.forms_of(regimens)}
    same_forms = {f for f in ours if f in forms or
                  f"unspecified {f.split()[-1]}".lower() in forms}
    pop_words = ("population matches" if presets & set(grade.get("population_presets", []))
                 else f"population differs (dataset: {grade.get('population', 'not stated')})")
    form_words = ("forms match" if same_forms == ours and ours else
                  "forms partly match" if same_forms else
                  f"forms differ (dataset: {', '.join(grade.get('forms', [])) or 'not stated'})")
    return f"{pop_words}; {form_words}"


def comparator(name: str, flip: bool, regimens: dict[str, tuple[str, str]],
               pops: list[str]) -> Comparator | None:
    """The graded comparator of data check ``name`` for a claim (None if its data are
    missing)."""
    evidence = ev.DATA_CHECKS[name]()
    if evidence is None:
        return None
    stem, keys = DATASETS[name]
    meta = _sidecar(stem)
    grade = meta.get("grade", {})
    words = ""
    if grade:
        n = f", n = {grade['n']}" if "n" in grade else ", n not reported"
        words = (f"{grade.get('design_kind', 'design not stated')}{n}"
                 f"{', abstract only' if grade.get('abstract_only') else ''}: "
                 f"{grade.get('grade_reason', '')}")
    line = {"supports": "contradicts", "contradicts": "supports"}.get(evidence.line,
                                                                       evidence.line) \
        if flip else evidence.line
    return Comparator(name=name, line=line, rule=evidence.rule, numbers=evidence.text,
                      citation=str(meta.get("citation", stem)), grade=grade.get("grade", ""),
                      grade_words=words, match=_match(grade, regimens, pops),
                      calibration=_calibrated_from(keys))


# ------------------------------------------------------------------------------ biases

@lru_cache(maxsize=1)
def _validation_ratios() -> dict[str, list[float]]:
    """Predicted/observed of each validation row of a fresh :func:`validate` run."""
    import warnings

    from .validate import validate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return validation_ratios(validate().table)


def _check_metrics(check_text: str) -> set[str]:
    out = set()
    for check in ev._parse_options(check_text):
        for _neg, conds in check.groups:
            for c in conds:
                for t in (c.lhs, c.rhs):
                    if t.metric:
                        out.add(re.sub(r"_d\d+$", "", t.metric))
    return out


def known_biases(regimens: dict[str, tuple[str, str]], pops: list[str],
                 check_text: str | None = None) -> list[str]:
    """The known model biases that apply to a claim (:func:`b12pk.analysis.biases.
    known_biases`), sized from a fresh validation run, for the metrics its check reads."""
    return biases.known_biases(regimens, pops, _validation_ratios(),
                               metrics=_check_metrics(check_text) if check_text else None)


# ------------------------------------------------------------------------------ words

def _pattern_words(pattern: str) -> str:
    return f"each regimen {pattern[:-1]}…" if pattern.endswith("*") else f"regimen {pattern}"


def _cond_words(cond: Any) -> str:
    unit = ev._term_unit(cond.lhs) or ev._term_unit(cond.rhs)

    def term(t: Any) -> str:
        if t.const is not None:
            return ev._term_words(t, "", ev._term_unit(t) or unit)
        k = f"{t.k:g} × " if t.k not in (None, 1.0) else ""
        return f"{k}{metric_words(t.metric)} of {_pattern_words(t.label)}"
    return f"{term(cond.lhs)} {OP_WORDS[cond.op]} {term(cond.rhs)}"


def criterion_words(check_text: str) -> list[str]:
    """A check in plain language, one line per condition (options and negations said)."""
    if not check_text.strip():
        return []
    out = []
    options = ev._parse_options(check_text)
    for k, check in enumerate(options):
        head = f"Option {k + 1}: " if len(options) > 1 else ""
        if check.share is not None:
            lo, hi = check.share
            out.append(f"{head}the share of virtual patients for whom all of the following "
                       f"holds lies between {lo:.0%} and {hi:.0%}:")
        for neg, conds in check.groups:
            words = "; ".join(_cond_words(c) for c in conds)
            out.append(f"{head}{'not all of: ' + words if neg else words}")
    return out


# ------------------------------------------------------------------------------ cards

def _margin_words(row: Any, share: bool = False) -> str:
    m = row["closest_margin_pct"]
    if not isinstance(m, float) or math.isnan(m):
        return ""
    side = "holds with" if m >= 0 else "fails by"
    call = " (close call)" if row["close_call"] else ""
    who = "in the typical patient, " if share else ""
    return f"{who}{side} {abs(m):.1f} % at the decisive comparison{call}"


def _circular(comp: Comparator, claim: Any) -> bool:
    """A comparison with the data a parameter the claim turns on was fitted to (its
    sensitivity parameters, or the marker parameters for a claim on MMA or homocysteine)."""
    relevant = set(ev._split(claim["sensitivity"]))
    if re.search(r"\b(mma|hcy)_", claim["check"]):
        relevant |= {p for p in comp.calibration if "mma" in p or "hcy" in p or
                     "marker" in p}
    return bool(relevant & set(comp.calibration))


def _confidence(row: Any, applies: list[str], comps: list[Comparator]) -> str:
    reasons = []
    if applies:
        reasons.append("a known model bias applies")
    if row["close_call"]:
        reasons.append(f"within {100 * ev.CLOSE_CALL:.0f} % of its line")
    if comps and all(_circular(c, row) for c in comps):
        reasons.append("the only data are those the model was fitted to")
    if row["verdict"] == ev.NOT_CHECKABLE:
        return "n/a"
    return "lower: " + "; ".join(reasons) if reasons else "no known reason to doubt it"


def claim_cards(result: "ev.EvidenceResult") -> list[ClaimCard]:
    """One :class:`ClaimCard` per evaluated claim, in catalogue order."""
    claims = result.claims.set_index("id")
    cites = citations()
    cards = []
    for row in result.table.to_dict("records"):
        c = claims.loc[row["id"]]
        regs = ev._parse_regimens(c["regimens"]) if c["regimens"].strip() else {}
        pops = ev._split(c["populations"])
        comps = []
        for name in ev._split(c["data_checks"]):
            comp = comparator(name.lstrip("!"), name.startswith("!"), regs, pops)
            if comp is not None:
                comps.append(comp)
        applies = known_biases(regs, pops, c["check"]) if c["check"].strip() else []
        cards.append(ClaimCard(
            id=row["id"], article=ev.article_title(c["seed_file"]), quote=c["quote"],
            merged=c["merged"], citation=cites.get(row["id"], {}),
            regimens=tuple((lab, text + (f" (in {ev.population_words(own)})" if own else ""))
                           for lab, (text, own) in regs.items()),
            populations=tuple(ev.population_words(p) for p in pops),
            criterion=tuple(criterion_words(c["check"])), verdict=row["verdict"],
            model_line=row["model_line"], data_line=row["data_line"],
            decided_by=row["uncertainty"],
            margin=_margin_words(row, c["check"].strip().startswith("share[")),
            trace=tuple(s for s in str(row["trace"]).split(" || ") if s),
            comparators=tuple(comps), biases=tuple(applies),
            confidence=_confidence({**row, "sensitivity": c["sensitivity"],
                                    "check": c["check"]}, applies, comps),
            probability=float(row.get("probability_holds", math.nan)),
            draws=int(result.settings.get("draws", 0) or 0), notes=c["notes"]))
    return cards
