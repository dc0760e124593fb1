"""The evidence analysis as Markdown (:func:`evidence_markdown`) and as an output folder
(:func:`write_evidence`)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..analysis.claim_cards import ClaimCard, claim_cards
from ..analysis.evidence import (CATEGORIES, CLOSE_CALL, CONTRADICTIONS_RULE, NOT_CHECKABLE,
                                 RUBRIC_MARKDOWN, VERDICTS, EvidenceResult, article_title,
                                 data_evidence, evaluate_claims)
from ..io import atomic_output_dir, output_dir_target
from ..plot.evidence import plot_evidence
from ..plot.figures import parallel_saves, save_png

__all__ = ["evidence_markdown", "write_evidence"]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict_table(result: EvidenceResult, cards: list[ClaimCard]) -> list[str]:
    draws = int(result.settings.get("draws", 0) or 0)
    extra = f" P(holds), {draws} draws |" if draws else ""
    lines = ["| claim | article | what it asserts | verdict | confidence | margin |" + extra,
             "|---|---|---|---|---|---|" + ("---|" if draws else "")]
    by_id = {c.id: c for c in cards}
    for r in result.table.itertuples():
        if r.verdict == NOT_CHECKABLE and r.category == "clinical-judgement":
            continue
        card = by_id[r.id]
        p = ""
        if draws:
            p = (f" {100 * card.probability:.0f} % |" if card.probability == card.probability
                 else " |")
        lines.append(f"| [{r.id}](#{r.id.lower()}) | {_md_escape(article_title(r.seed_file, True))}"
                     f" | {_md_escape(r.claim)} | **{r.verdict}** | "
                     f"{_md_escape(card.confidence)} | {_md_escape(card.margin)} |" + p)
    return lines


def _card_markdown(card: ClaimCard) -> list[str]:
    out = [f"### {card.id}", "", f"> {_md_escape(card.quote)}", "",
           f"*{_md_escape(card.article)}*"
           + (f" (also quoted as {card.merged}, merged: the same claim)" if card.merged else ""),
           ""]
    cite = card.citation
    if cite:
        ref = cite.get("reference") or (
            "; ".join(f"[{n.strip()}]" for n in cite.get("cited_refs", "").split(";")
                      if n.strip()) or "none")
        status = {"yes": "in the article's list", "past end":
                  f"past the end of the article's list ({cite.get('list_length')} entries)",
                  "no list": "the article lists no references",
                  "none cited": "nothing cited"}.get(cite.get("in_list", ""), cite.get("in_list"))
        out.append(f"- **Cited source:** {_md_escape(ref)} ({status}); can it support the "
                   f"claim? **{cite.get('can_support', 'unclear')}**: "
                   f"{_md_escape(cite.get('reason', ''))}")
        if cite.get("transcription_error"):
            out.append(f"- **Transcription error:** {_md_escape(cite['transcription_error'])}")
    out.append(f"- **Verdict:** **{card.verdict}**"
               + (f" (model: {card.model_line or 'none'}; data: {card.data_line or 'none'})"
                  if card.verdict != NOT_CHECKABLE else "")
               + f". Confidence: {_md_escape(card.confidence)}.")
    if card.regimens:
        out.append("- **Regimens:** " + "; ".join(f"{lab} = {_md_escape(text)}"
                                                  for lab, text in card.regimens))
    if card.populations:
        out.append("- **Patients:** " + "; ".join(_md_escape(p) for p in card.populations))
    if card.criterion:
        out.append("- **Criterion (all must hold):** " + " ".join(
            f"({k + 1}) {_md_escape(c)}" for k, c in enumerate(card.criterion)))
    if card.margin:
        out.append(f"- **Margin:** {_md_escape(card.margin)}")
    if card.probability == card.probability:
        out.append(f"- **Probability it holds** under the fitted parameters' approximate "
                   f"posterior: {100 * card.probability:.0f} % of {card.draws} draws")
    if card.decided_by:
        out.append(f"- **Which scenario decides it:** {_md_escape(card.decided_by)}")
    for comp in card.comparators:
        calib = (f" Not independent: the model's {', '.join(comp.calibration)} were taken "
                 "from or fitted to this dataset." if comp.calibration else "")
        out.append(f"- **Data: {comp.name}** ({_md_escape(comp.citation)}) - grade "
                   f"{comp.grade or 'none'} ({_md_escape(comp.grade_words)}); "
                   f"{_md_escape(comp.match)}. Line: **{comp.line}**. "
                   f"{_md_escape(comp.numbers)} Rule: {_md_escape(comp.rule)}.{calib}")
    for b in card.biases:
        out.append(f"- **Known model bias:** {_md_escape(b)}")
    if card.trace:
        out.append("- **Step by step (default parameters):**")
        out += [f"  {k + 1}. {_md_escape(step)}" for k, step in enumerate(card.trace)]
    if card.notes:
        out.append(f"- **Notes:** {_md_escape(card.notes)}")
    return out + [""]


def evidence_markdown(result: EvidenceResult, cards: list[ClaimCard] | None = None) -> str:
    """The evidence analysis as Markdown: counts, rubric, verdict table, data rules,
    disagreements between the articles, and one card per claim."""
    cards = claim_cards(result) if cards is None else cards
    t = result.table
    lines = ["## Evidence: the source articles' claims checked against the model and trials", "",
             "> Educational simulation only: verdicts describe model patients and "
             "abstract-level trial data, not clinical truth, and are not prescriptions.", ""]
    cats = t["category"].value_counts()
    lines.append("Claims per category: " + ", ".join(f"{c} {int(cats.get(c, 0))}"
                                                     for c in CATEGORIES) + f" (total {len(t)}).")
    vc = t["verdict"].value_counts()
    lines.append("Verdicts: " + ", ".join(f"{v} {int(vc.get(v, 0))}" for v in VERDICTS) + ".")
    lines += ["", RUBRIC_MARKDOWN, "", "### Verdicts", "",
              f"Margin: the decisive comparison at the default parameters (the one that fails "
              f"most, or holds with the least room), as its relative distance to its line; "
              f"within {100 * CLOSE_CALL:.0f} % is a **close call**. Confidence is lowered "
              "by a close call, a known model bias that applies, or data that the model was "
              "fitted to. Each claim's card below gives the numbers step by step.", ""]
    lines += _verdict_table(result, cards)
    cj = t[t["category"] == "clinical-judgement"]
    if len(cj):
        lines += ["", "Not checkable by a PK model (clinical judgement): "
                  + "; ".join(f"{r.id} ({_md_escape(r.claim)})" for r in cj.itertuples()) + "."]
    lines += ["", "### Data comparisons and their rules", "",
              "Each dataset's line is computed from its numbers by the rule beside it (a claim "
              "that takes the opposite side flips it).", "",
              "| dataset | line | rule | numbers |", "|---|---|---|---|"]
    for name, ev in data_evidence().items():
        lines.append(f"| {name} | **{ev.line}** | {_md_escape(ev.rule)} | "
                     f"{_md_escape(ev.text)} |")
    c = result.contradictions
    if len(c):
        lines += ["", "### Where the articles disagree", "", CONTRADICTIONS_RULE, "",
                  "| topic | where | side A (claims) | side B (claims) | scores A / B | "
                  "model and data support |", "|---|---|---|---|---|---|"]
        for r in c.itertuples():
            lines.append(f"| {r.topic} | {_md_escape(r.where)} | {_md_escape(r.side_a)}: "
                         f"{_md_escape(r.claims_a)} | {_md_escape(r.side_b)}: "
                         f"{_md_escape(r.claims_b)} | {_score(r.score_a)} / "
                         f"{_score(r.score_b)} | **{_md_escape(r.supports)}** |")
    lines += ["", "## Claim cards", ""]
    for card in cards:
        lines += _card_markdown(card)
    return "\n".join(lines) + "\n"


def _score(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.2f}"


def write_evidence(out_dir: str | Path, result: EvidenceResult | None = None) -> dict[str, Path]:
    """Write ``evidence.csv``, ``contradictions.csv``, ``evidence.md`` and ``evidence.png``
    into folder ``out_dir`` (atomically, with ``run.json``; an existing folder is replaced
    only if b12pk wrote it).

    Returns the paths by name. Evaluates the shipped catalogue if ``result`` is None.
    """
    import matplotlib.pyplot as plt

    output_dir_target(out_dir)  # refused before the claims are evaluated
    result = evaluate_claims() if result is None else result
    names = {"evidence": "evidence.csv", "contradictions": "contradictions.csv",
             "markdown": "evidence.md", "figure": "evidence.png"}
    with atomic_output_dir(out_dir, kind="evidence") as tmp:
        with parallel_saves():  # the figure is saved by a child while the text is written
            fig = plot_evidence(result)
            save_png(fig, tmp / names["figure"], dpi=110)
            plt.close(fig)
            result.table.to_csv(tmp / names["evidence"], index=False,
                                quoting=csv.QUOTE_MINIMAL)
            result.contradictions.to_csv(tmp / names["contradictions"], index=False)
            (tmp / names["markdown"]).write_text(evidence_markdown(result), encoding="utf-8")
    return {key: Path(out_dir) / name for key, name in names.items()}
