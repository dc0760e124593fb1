"""Output folder of a regimen design (:func:`write_design`): the candidates, the Pareto set,
a figure, a Markdown report and ``run.json``."""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..about import DISCLAIMER, __version__
from ..analysis.design import BURDENS, DesignResult
from ..io import atomic_output_dir
from ..plot.design import plot_design
from ..plot.figures import save_figure

__all__ = ["write_design", "design_markdown"]

#: Columns of the candidates table in the report, with their headers.
_SHOWN = {"regimen": "Regimen", "burden": "Burden", "patients": "Patients",
          "share_met": "Meet every target", "share_low": "95 % interval from",
          "share_high": "to", "meets": "Meets", "pareto": "Pareto"}


def _cell(column: str, v: Any) -> str:
    if column.startswith("share"):
        return f"{100.0 * float(v):.1f} %"
    if column == "burden":
        return f"{float(v):,.0f}" if float(v) >= 10 else f"{float(v):.1f}"
    if column in ("meets", "pareto"):
        return "yes" if v else ""
    if column == "patients":
        return f"{int(v):,}"
    return str(v)


def design_markdown(result: DesignResult) -> str:
    """The design as a Markdown section: the question, the answer, the Pareto set and every
    candidate."""
    s = result.settings
    lines = [f"## Regimen design: {s['patient']}", "", f"> **{DISCLAIMER}**", "",
             "**Targets** (all must hold in the same patient):", ""]
    lines += [f"- {t.to_text()}" for t in result.targets]
    lines += ["", f"**Burden** minimised: {BURDENS[result.burden]}; ties go to the other "
              "measures (injections, µg, visits, pills), then to the higher share.", "",
              f"**Answer:** {result.summary_line()}.", ""]
    if result.per_route:
        lines += ["Least burden per route that meets the targets:", ""]
        lines += [f"- {route}: {row['regimen']} ({_cell('share_met', row['share_met'])} of "
                  f"patients)" for route, row in result.per_route.items()]
        lines.append("")
    lines += [f"Each candidate was simulated in up to {s['n']:,} virtual patients (stages of "
              f"{min(s['stage'], s['n']):,}; the same patients for every candidate, seed {s['seed']}), "
              "stopping early once the 95 % Wilson interval of its share lay clearly above "
              "or below the share asked for. *Meets*: the interval's lower end reaches "
              f"{100.0 * s['share']:g} %. *Pareto*: no other candidate has less burden and a "
              "higher share. The model's parameters are the fitted ones (their uncertainty is "
              "not drawn here).", "", "![share meeting the targets](design.png)", "",
              "| " + " | ".join({**_SHOWN, "burden": BURDENS[result.burden]}.values()) + " |",
              "|" + "---|" * len(_SHOWN)]
    for row in result.table.to_dict("records"):
        lines.append("| " + " | ".join(_cell(c, row[c]).replace("|", "\\|")
                                       for c in _SHOWN) + " |")
    lines += ["", f"*{DISCLAIMER}*", ""]
    return "\n".join(lines)


def write_design(result: DesignResult, out: Any, *, argv: Sequence[str] | None = None) -> Any:
    """Write candidates.csv, pareto.csv, design.md, design.png/.svg and run.json into folder
    ``out`` (atomically; an existing b12pk output folder is replaced, anything else is
    refused)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with atomic_output_dir(out) as tmp:
        result.table.to_csv(tmp / "candidates.csv", index=False, float_format="%.6g")
        result.table[result.table["pareto"]].to_csv(tmp / "pareto.csv", index=False,
                                                     float_format="%.6g")
        fig = plot_design(result)
        save_figure(fig, tmp / "design")
        plt.close(fig)
        (tmp / "design.md").write_text(design_markdown(result), encoding="utf-8")
        record = {"b12pk_version": __version__, "command": list(argv) if argv else None,
                  **result.settings,
                  "chosen": result.chosen["regimen"] if result.chosen else None,
                  "closest": result.closest["regimen"] if result.closest else None,
                  "disclaimer": DISCLAIMER}
        (tmp / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                      encoding="utf-8")
    return out
