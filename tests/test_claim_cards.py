"""Claim cards: plain words, sources, comparators, biases and a trace for every claim."""

from __future__ import annotations

import re

import pytest

import b12pk
from b12pk.analysis import claim_cards as cc
from b12pk.analysis import evidence as ev
from b12pk.report.evidence import evidence_markdown

INTERNAL = re.compile(r"\b(serum|min_from|urine_frac|mma|hcy)_d\d+|trough_ss|_max_from_d")


@pytest.fixture(scope="module")
def cards(full_result):
    return {c.id: c for c in cc.claim_cards(full_result)}


def test_every_claim_has_a_card_and_every_checked_claim_a_trace(full_result, cards):
    assert set(cards) == set(full_result.table["id"])
    for row in full_result.claims.itertuples():
        card = cards[row.id]
        if row.check.strip() and not row.check.startswith("share["):
            assert card.trace and card.criterion, row.id
            assert all(s.endswith(("holds", "fails")) for s in card.trace), row.id


def test_the_markdown_speaks_plain_language(full_result, cards):
    md = evidence_markdown(full_result, list(cards.values()))
    prose = [ln for ln in md.splitlines()
             if not ln.startswith(("- **Notes:**", "| ")) and "Rule:" not in ln]
    leaks = [ln for ln in prose if INTERNAL.search(ln)]
    assert not leaks, leaks[:3]
    assert "02f806f8435df650" not in md               # articles named by title
    assert "## Claim cards" in md and "### C001" in md


def test_criterion_words_name_the_line_and_the_unit():
    words = cc.criterion_words("A.urine_frac_d2 >= 0.5; A.serum_d90 >= REPLETE")
    assert words == ["share of the dose lost in urine by day 2 of regimen A at or above 50.0 %",
                     "serum B12 on day 90 (before a dose due that day) of regimen A at or "
                     "above 'deficiency unlikely' (> 350 ng/L = 258 pmol/L)"]


def test_the_citation_audit_covers_every_claim():
    cites = cc.citations()
    assert set(cites) == set(ev.load_claims()["id"])
    assert {c["in_list"] for c in cites.values()} <= {"yes", "past end", "no list",
                                                      "none cited"}


def test_a_transcription_error_reaches_the_card(cards):
    assert "Kuzminski" in cards["C206"].citation["transcription_error"]


def test_a_comparator_fitted_to_the_same_data_is_flagged(cards):
    comp = {c.name: c for c in cards["C002"].comparators}["carmel_passive"]
    assert "passive_fraction" in comp.calibration
    assert "fitted to" in cards["C002"].confidence
    assert comp.grade in ("A", "B", "C")


def test_a_known_bias_lowers_confidence_where_it_applies(cards):
    assert any("intranasal" in b for b in cards["C302"].biases)
    assert cards["C302"].confidence.startswith("lower")
    assert not cards["C203"].biases      # urine and retention: no serum bias applies


def test_a_bias_within_the_fold_is_not_reported(monkeypatch):
    regs = {"A": ("1000 mcg cyanocobalamin intranasal every 3 days", "")}
    monkeypatch.setattr(cc, "_validation_ratios", lambda: {"lonterman2000:intranasal": [1.05],
                                                           "nasal_hydroxo_bjcp1998": [0.98]})
    assert cc.known_biases(regs, ["vegan@110"]) == []
    monkeypatch.setattr(cc, "_validation_ratios", lambda: {"lonterman2000:intranasal": [0.5]})
    (only,) = cc.known_biases(regs, ["vegan@110"])
    assert "under-predicted" in only and "disfavours" in only


def test_trial_points_are_drawn_over_the_panels():
    pts = ev.panel_points()
    assert {"pa_oral_cohort2024", "kuzminski1998"} <= {
        s for _p, s, _a, _l in ev.PANEL_POINTS}
    assert len(pts) >= 4 and (pts["serum_pmol_per_l"] > 0).all()
    from b12pk.plot.evidence import plot_evidence

    fig = plot_evidence(None, days=60, points=pts)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert any("PA cohort 2024" in t for t in labels)


def test_the_main_report_names_articles_and_states_the_scoring_rule(full_result, tmp_path):
    from b12pk.report.comparison import write_report

    comparison = b12pk.compare(["1000 mcg cyanocobalamin oral daily"], ["vegan"], days=30)
    write_report(comparison, tmp_path / "r", figures=False, evidence=full_result)
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "Where the source articles disagree" in md and "counts once" in md
    assert "Dose for treating deficiency" in md and "| 001 |" not in md
