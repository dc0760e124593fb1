"""The evidence analysis as Markdown (:func:`evidence_markdown`) and as an output folder
(:func:`write_evidence`)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..analysis.evidence import (CATEGORIES, CLOSE_CALL, NOT_CHECKABLE, RUBRIC_MARKDOWN,
                                 VERDICTS, EvidenceResult, data_evidence, evaluate_claims)
from ..io import atomic_output_dir, output_dir_target
from ..plot.evidence import plot_evidence

__all__ = ["evidence_markdown", "write_evidence"]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def evidence_markdown(result: EvidenceResult) -> str:
    """A Markdown section (counts, rubric, verdict table, contradictions) for the report."""
    t = result.table
    lines = ["## Evidence: the seed documents' claims checked against the model and trials", "",
             "> Educational simulation only: verdicts describe one typical model patient and "
             "abstract-level trial data, not clinical truth.", ""]
    cats = t["category"].value_counts()
    lines.append("Claims per category: " + ", ".join(f"{c} {int(cats.get(c, 0))}"
                                                     for c in CATEGORIES) + f" (total {len(t)}).")
    vc = t["verdict"].value_counts()
    lines.append("Verdicts: " + ", ".join(f"{v} {int(vc.get(v, 0))}" for v in VERDICTS) + ".")
    lines += ["", RUBRIC_MARKDOWN, "", "### Verdicts", "",
              f"Margin: the decisive comparison at the default parameters (the one that fails "
              f"most, or holds with the least room), as its relative distance to its line "
              f"(negative: it fails by that much); within "
              f"{100 * CLOSE_CALL:.0f} % is a **close call**, where a small change in the model "
              "or the reading of the claim would turn the verdict.", "",
              "| id | claim | verdict | scenarios | margin | key numbers (default parameters) |",
              "|---|---|---|---|---|---|"]
    for r in t.itertuples():
        if r.verdict == NOT_CHECKABLE and r.category == "clinical-judgement":
            continue
        margin = "" if r.closest_margin_pct != r.closest_margin_pct else (
            f"{r.closest_margin_pct:+.1f} % ({_md_escape(r.closest_comparison)})"
            + (" **close call**" if r.close_call else ""))
        lines.append(f"| {r.id} | {_md_escape(r.claim)} | **{r.verdict}** | "
                     f"{r.scenarios_holding} | {margin} | {_md_escape(r.key_numbers)[:300]} |")
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
        lines += ["", "### Where the seeds contradict each other", "",
                  "| topic | side A (claims) | side B (claims) | model and data support |",
                  "|---|---|---|---|"]
        for r in c.itertuples():
            lines.append(f"| {r.topic} | {_md_escape(r.side_a)}: {_md_escape(r.claims_a)} | "
                         f"{_md_escape(r.side_b)}: {_md_escape(r.claims_b)} | "
                         f"**{_md_escape(r.supports)}** |")
    return "\n".join(lines) + "\n"


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
        result.table.to_csv(tmp / names["evidence"], index=False, quoting=csv.QUOTE_MINIMAL)
        result.contradictions.to_csv(tmp / names["contradictions"], index=False)
        (tmp / names["markdown"]).write_text(evidence_markdown(result), encoding="utf-8")
        fig = plot_evidence(result)
        fig.savefig(tmp / names["figure"], dpi=110)
        plt.close(fig)
    return {key: Path(out_dir) / name for key, name in names.items()}
