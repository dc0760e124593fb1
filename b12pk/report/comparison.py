"""Regimen-comparison reports: figures, summary.csv, report.md, report.html, run.json.

Everything is written into a temporary folder beside the target and renamed into place
only when complete, so a failed or interrupted run leaves no partial folder and never
clobbers an earlier report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import platform
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..analysis.compare import (SUMMARY_COLUMNS, Comparison, at_a_glance, glance_reading,
                                trough_course)
from ..analysis.evidence import CONTRADICTIONS_RULE, article_title
from ..io import atomic_output_dir
from ..model.parameters import lab_bands, parameter_table, serum_bands_pmol_per_l
from ..plot.figures import parallel_saves

__all__ = ["write_report"]

SUMMARY_CHART_METRICS = ("serum_3mo_pmol_per_l", "trough_ss_pmol_per_l",
                         "pct_time_not_replete", "total_dose_ug")


def _fmt(x: Any, digits: int = 0) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:,.{digits}f}"
    return str(x)


def _sig(x: float) -> str:
    """Three significant figures, without exponents (12,345 -> '12,300'; 0.4128 -> '0.413')."""
    if x == 0.0 or not math.isfinite(x):
        return _fmt(float(x))
    places = 2 - int(math.floor(math.log10(abs(x))))
    return _fmt(float(round(x, places)), max(0, places))


def _summary_display(summary: Any) -> Any:
    """The summary as text cells; a metric with a 90 % interval (``_p5``, ``_p95``
    columns) reads "value (low-high)" in its own column."""
    bounds = [c for c in summary.columns if c.endswith(("_p5", "_p95"))]
    df = summary.drop(columns=["regimen_text", *bounds]).copy()
    for col in df.columns:
        if col in ("patient", "regimen"):
            continue
        digits = 1 if col in ("days_to_leave_deficient", "pct_time_deficient") else 0
        cells = [_fmt(float(v), digits) for v in df[col]]
        if f"{col}_p5" in summary.columns:
            cells = [f"{c} ({_fmt(float(lo), digits)}-{_fmt(float(hi), digits)})"
                     for c, lo, hi in zip(cells, summary[f"{col}_p5"], summary[f"{col}_p95"])]
        df[col] = cells
    return df


def _md_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _make_figures(comp: Comparison, fig_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..plot import figures as plot

    fig_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    by_patient = comp.by_patient()
    troughs = {p: {r: trough_course(df) for r, df in d.items()} for p, d in by_patient.items()}
    fig = plot.plot_comparison(troughs)
    out["headline"] = plot.save_figure(fig, fig_dir / "headline")[0]
    plt.close(fig)
    fig = plot.plot_regimen_grid(by_patient)
    out["serum"] = plot.save_figure(fig, fig_dir / "serum")[0]
    plt.close(fig)

    n = len(by_patient)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5.0), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, (label, results) in zip(axes[0], by_patient.items()):
        plot.plot_stores(results, ax=ax, title=label, show_legend=False)
    top = max(ax.get_ylim()[1] for ax in axes[0])   # shared axis: the highest panel's top
    for ax in axes[0]:
        ax.set_ylim(0, top)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    out["stores"] = plot.save_figure(fig, fig_dir / "stores")[0]
    plt.close(fig)

    fig, axes = plt.subplots(2, n, figsize=(6.5 * n, 9.0), sharey="row", squeeze=False,
                             layout="constrained")
    for k, (label, results) in enumerate(by_patient.items()):
        plot.plot_markers(results, "mma_nmol_per_l", ax=axes[0][k],
                          title=f"{label}: methylmalonic acid", show_legend=False)
        plot.plot_markers(results, "hcy_umol_per_l", ax=axes[1][k],
                          title=f"{label}: total homocysteine", show_legend=False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    out["mma"] = plot.save_figure(fig, fig_dir / "mma")[0]
    plt.close(fig)

    import textwrap

    from matplotlib.ticker import MaxNLocator

    metrics = SUMMARY_CHART_METRICS
    fig, axes = plt.subplots(2, 2, figsize=(14.0, 4.0 + 0.55 * len(comp.regimens) * 2),
                             squeeze=False, layout="constrained")
    for ax, metric in zip(axes.ravel(), metrics):
        plot.plot_summary(comp.summary, metric, ax=ax, title="")
        ax.set_title(textwrap.fill(ax.get_xlabel(), 48), loc="left", fontsize=11,
                     fontweight="bold")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))   # wide numbers do not collide
        legend = ax.get_legend()
        if legend is not None:      # one legend for the figure, below the panels
            legend.remove()
    entries: dict[str, Any] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center",
               ncol=min(4, len(entries)), frameon=False, fontsize=9)
    out["summary"] = plot.save_figure(fig, fig_dir / "summary")[0]
    plt.close(fig)
    return out


def _inputs_rows(comp: Comparison) -> tuple[list[list[str]], list[list[str]]]:
    pats = []
    for p in comp.patients:
        pt = p.patient
        baseline = (f"{pt.baseline_serum_pmol_per_l:g} pmol/L"
                    if pt.baseline_serum_pmol_per_l is not None else
                    f"{pt.baseline_stores_ug:g} ug stores" if pt.baseline_stores_ug is not None
                    else "steady state of diet")
        pats.append([p.label, pt.name, baseline, _sig(pt.diet_ug_per_day),
                     f"{pt.if_route_factor:.2f}", f"{pt.egfr_ml_min:g}", p.why])
    regs = [[r.label, r.regimen.to_text(),
             article_title(r.seed_file, short=True) if r.seed_file else "user", r.quote,
             r.reading] for r in comp.regimens]
    return pats, regs


PATIENT_HEADER = ["label", "preset", "baseline", "diet (ug/day)", "IF route (x normal)",
                  "eGFR (mL/min)", "why"]
REGIMEN_HEADER = ["label", "canonical text", "source article", "sentence in the article",
                  "reading"]


def _run_record(comp: Comparison, argv: Sequence[str] | None) -> dict[str, Any]:
    import numpy
    import pandas
    import scipy

    from ..about import __version__
    from ..model.parameters import default_parameters

    return {
        "b12pk_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(argv) if argv is not None else None,
        "days": comp.days,
        "regimens": [{"label": r.label, "text": r.regimen.to_text(), "seed_file": r.seed_file,
                      "quote": r.quote, "reading": r.reading} for r in comp.regimens],
        "patients": [{"label": p.label, "preset": p.patient.name,
                      "settings": {k: getattr(p.patient, k) for k in (
                          "intrinsic_factor", "food_release", "ileal_resection_cm",
                          "egfr_ml_min", "metformin", "diet_ug_per_day",
                          "baseline_serum_pmol_per_l", "baseline_stores_ug")},
                      "overrides": dict(p.patient.overrides)} for p in comp.patients],
        "parameters": default_parameters().as_dict(),
        "random_seed": None,
        "note": "deterministic simulation: no random numbers are used; the inputs and "
                "parameters above regenerate this report exactly",
        "software": {"python": platform.python_version(), "numpy": numpy.__version__,
                     "scipy": scipy.__version__, "pandas": pandas.__version__},
    }


def write_report(comp: Comparison, out: str | Path, *, argv: Sequence[str] | None = None,
                 figures: bool = True, validation: Any = None, evidence: Any = None,
                 populations: Any = None, plausibility: Any = None,
                 designs: Any = None) -> Path:
    """Write the comparison report into folder ``out`` (atomically).

    Parameters
    ----------
    comp : Comparison
        From :func:`b12pk.compare`.
    out : str or Path
        Output folder; replaced as a whole when the new report is complete.
    argv : sequence of str, optional
        Command line to record in ``run.json``.
    figures : bool
        Draw the figures (PNG and SVG under ``figures/``).
    validation : b12pk.analysis.validate.Validation, optional
        Agreement with trial data, shown in the "How far to trust this" section (and
        written as ``validation.csv``).
    populations : dict, optional
        ``(patient_label, regimen_label) -> PopulationResult``: the population view (fan
        charts, share deficient, troughs before injections), written as
        ``population_summary.csv``.
    evidence : b12pk.analysis.evidence.EvidenceResult, optional
        The seed documents' claims checked against the model and the trial data, shown in an
        "Evidence" section (and written as ``evidence.csv`` and ``contradictions.csv``).
    plausibility : b12pk.analysis.plausibility.Plausibility, optional
        The model's physiology against published figures: the checks it fails are listed
        in "How far to trust this" (and all are written as ``plausibility.csv``).
    designs : dict, optional
        ``patient_label -> DesignResult`` (:func:`b12pk.design`): a "Regimen design" section
        (the answer, the least burden per route, the figure, the Pareto set), and
        ``design_<k>.csv`` with every candidate.

    Returns
    -------
    Path
        The output folder.
    """
    from ..about import DISCLAIMER

    out = Path(out)
    with atomic_output_dir(out) as tmp:
        comp.summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
        with parallel_saves():  # figures are written side by side; all exist after it
            figs = _make_figures(comp, tmp / "figures") if figures else {}
            if validation is not None:
                validation.table.to_csv(tmp / "validation.csv", index=False,
                                        float_format="%.6g")
                if figures:
                    figs["validation"] = _validation_figure(validation, tmp / "figures")
            if plausibility is not None:
                plausibility.table.to_csv(tmp / "plausibility.csv", index=False,
                                          float_format="%.6g")
            record = _run_record(comp, argv)
            (tmp / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                          encoding="utf-8")
            pop_items: list[tuple] = []
            if populations:
                pop_table = _population_table(populations)
                pop_table.to_csv(tmp / "population_summary.csv", index=False,
                                 float_format="%.6g")
                if figures:
                    figs["population"] = _population_figure(comp, populations,
                                                            tmp / "figures")
                pop_items = _population_items(pop_table, figs, populations)
            if evidence is not None:
                evidence.table.to_csv(tmp / "evidence.csv", index=False)
                evidence.contradictions.to_csv(tmp / "contradictions.csv", index=False)
                if figures:
                    figs["evidence"] = _evidence_figure(evidence, tmp / "figures")
            design_items = _design_items(designs, tmp, figures) if designs else []
        sections = _sections(comp, figs, validation, plausibility)
        if designs:
            sections.insert(1, ("Regimen design", design_items))
        if pop_items:
            sections.insert(2, ("Virtual population", pop_items))
        if evidence is not None:
            sections.insert(2, ("Evidence: the source articles' claims",
                                _evidence_items(evidence, figs)))
        (tmp / "report.md").write_text(_render_md(sections, DISCLAIMER), encoding="utf-8")
        (tmp / "report.html").write_text(_render_html(sections, DISCLAIMER, tmp),
                                         encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------
# Report content, rendered to Markdown and to self-contained HTML

def _validation_figure(validation: Any, fig_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    from ..plot.figures import save_figure
    from ..plot.validation import plot_validation

    fig_dir.mkdir(parents=True, exist_ok=True)
    ax = plot_validation(validation)
    path = save_figure(ax.figure, fig_dir / "validation")[0]
    plt.close(ax.figure)
    return path


def _design_items(designs: Any, tmp: Path, figures: bool) -> list[tuple]:
    """Per patient: the answer, the least burden per route, the figure, the Pareto set."""
    import matplotlib.pyplot as plt

    from ..plot.design import plot_design
    from ..plot.figures import save_figure

    items: list[tuple] = [("p", "The least burdensome regimens of a grid that keep a share of "
                           "virtual patients at target (b12pk design; every candidate in the "
                           "same patients, stopped once its 95 % interval is clear of the "
                           "share asked for). A model prediction, not a prescription.")]
    for k, (label, res) in enumerate(designs.items(), 1):
        res.table.to_csv(tmp / f"design_{k}.csv", index=False, float_format="%.6g")
        items += [("h3", label), ("p", "Targets: " + "; ".join(t.to_text()
                                                            for t in res.targets)),
                  ("p", res.summary_line() + ".")]
        items += [("p", f"Least burden of its route ({route}): {row['regimen']}, "
                        f"{100 * row['share_met']:.1f} % of patients") for route, row in
                  res.per_route.items()]
        if figures:
            (tmp / "figures").mkdir(exist_ok=True)
            fig = plot_design(res)
            path = save_figure(fig, tmp / "figures" / f"design_{k}")[0]
            plt.close(fig)
            items.append(("img", path, f"{label}: share of patients meeting the targets"))
        pareto = res.table[res.table["pareto"]]
        items.append(("table", ["regimen", "burden per year", "patients",
                                "meet every target (95 % interval)", "meets"],
                      [[r.regimen, _sig(r.burden) if r.burden else "0", f"{r.patients:,}",
                        f"{100 * r.share_met:.1f} % ({100 * r.share_low:.1f}-"
                        f"{100 * r.share_high:.1f})", "yes" if r.meets else "no"]
                       for r in pareto.itertuples()]))
    return items


def _population_table(populations: Any) -> Any:
    import pandas as pd

    rows = []
    for (patient, regimen), res in populations.items():
        low = res.last_trough()
        tr = res.troughs
        rows.append({
            "patient": patient, "regimen": regimen, "n": res.n, "seed": res.seed,
            "read_at": low["where"],
            "pct_deficient_last_trough": low["pct_deficient"],
            "pct_not_replete_last_trough": low["pct_not_replete"],
            "median_last_trough_pmol_per_l": low["median_pmol_per_l"],
            "max_pct_trough_below_cutoff": float(tr["pct_below_cutoff"].max()) if len(tr)
            else low["pct_deficient"],
            **_share_mma_normal(res),
        })
    return pd.DataFrame(rows)


#: Report headers of the population table (population_summary.csv keeps the column names).
POPULATION_HEADERS = {
    "patient": "Patient", "regimen": "Regimen", "read_at": "Read at",
    "pct_deficient_last_trough": "Deficient (%)",
    "pct_not_replete_last_trough": "Not replete (%)",
    "median_last_trough_pmol_per_l": "Median serum (pmol/L)",
    "max_pct_trough_below_cutoff": "Deficient at the worst trough (%)",
    "pct_mma_normal_3mo": "MMA normal at 3 months (%)",
    "pct_mma_normal_12mo": "MMA normal at 12 months (%)",
}


def _share_mma_normal(res: Any) -> dict[str, float]:
    """% of the population with MMA below its normal limit at 3 and 12 months (NaN beyond
    the horizon)."""
    normal = res.marker_normal.set_index("time_days")["mma_nmol_per_l_normal_probability"]
    out = {}
    for months in (3, 12):
        day = months * 30.0
        out[f"pct_mma_normal_{months}mo"] = (100.0 * float(np.interp(day, normal.index,
                                                                       normal.to_numpy()))
                                             if day <= res.days + 1e-9 else float("nan"))
    return out


def _population_figure(comp: Comparison, populations: Any, fig_dir: Path) -> Path:
    import math as _math

    import matplotlib.pyplot as plt

    from ..plot.figures import plot_fan, save_figure

    fig_dir.mkdir(parents=True, exist_ok=True)
    regs = [r.label for r in comp.regimens]
    ncols = min(3, len(regs))
    nrows = _math.ceil(len(regs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 1.0),
                             squeeze=False, sharey=True, layout="constrained")
    q = [r.quantiles["serum_pmol_per_l"] for r in populations.values()]
    ylim = (min(min(float(x.min()) for x in q), 132.8) / 1.5,
            max(float(x.max()) for x in q) * 1.5)
    for k, reg in enumerate(regs):
        ax = axes[k // ncols][k % ncols]
        fans = {p.label: populations[(p.label, reg)] for p in comp.patients
                if (p.label, reg) in populations}
        plot_fan(fans, ax=ax, title=reg, ylim=ylim, show_legend=False, band_labels=False)
        ax.title.set_fontsize(9.5)
        if k % ncols:
            ax.set_ylabel("")
    for k in range(len(regs), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=9)
    fig.suptitle("Virtual population: median and 25-75% / 5-95% of serum B12; bands from "
                 "the source articles (red: deficient, amber: indeterminate, green: unlikely)",
                 fontsize=10.5)
    path = save_figure(fig, fig_dir / "population")[0]
    plt.close(fig)
    return path


def _population_items(table: Any, figs: dict[str, Path], populations: Any) -> list[tuple]:
    n = int(table["n"].iloc[0]) if len(table) else 0
    covs = next((r.spec.covariates_text() for r in populations.values()), {})
    cov_text = ("; covariates drawn per patient (data/covariates.toml): "
                + ", ".join(f"{k} {v}" for k, v in covs.items())) if covs else ""
    items: list[tuple] = [
        ("p", f"Each regimen and patient simulated for {n:,} virtual patients with "
              "between-patient variability (data/variability.toml; each CV sourced or marked "
              f"assumed{cov_text}): median and 25-75% / 5-95% bands of serum B12; the shares "
              "deficient and not replete where the last dosing cycle is lowest (just before "
              "the last injection; for daily oral, on the last day), and at the worst trough "
              "before any injection; and the share "
              "with methylmalonic acid below its normal limit at 3 and 12 months (the "
              "population's stores mixed with the markers' between-patient variability).")]
    if "population" in figs:
        items.append(("img", figs["population"], "Serum B12 in the virtual populations "
                      "(median line; 25-75% and 5-95% bands)"))
    shown = table[list(POPULATION_HEADERS)]
    items.append(("table", list(POPULATION_HEADERS.values()),
                  [[_fmt(v, 1) if isinstance(v, float) else str(v) for v in row]
                   for row in shown.itertuples(index=False)]))
    return items


def _evidence_figure(evidence: Any, fig_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    from ..plot.evidence import plot_evidence
    from ..plot.figures import save_figure

    fig_dir.mkdir(parents=True, exist_ok=True)
    fig = plot_evidence(evidence)
    path = save_figure(fig, fig_dir / "evidence")[0]
    plt.close(fig)
    return path


def _scores(a: float | None, b: float | None) -> str:
    def one(x: float | None) -> str:
        return "n/a" if x is None or x != x else f"{x:.2f}"
    return f"{one(a)} / {one(b)}"


def _evidence_items(evidence: Any, figs: dict[str, Path]) -> list[tuple]:
    counts = evidence.counts()
    items: list[tuple] = [
        ("p", "Each dosing or kinetics claim of the five source articles is quoted in "
              "data/claims/claims.csv and checked against the model (at default parameters "
              "and at the ends of the relevant parameter ranges) and against the trial data, "
              "under a fixed rubric (data/claims/README.md). Clinical-judgement claims are "
              "marked not checkable by a PK model."),
        ("p", "Claims per category: " + ", ".join(f"{k} {v}" for k, v in
                                                  counts["category"].items())
              + ". Verdicts: " + ", ".join(f"{k} {v}" for k, v in counts["verdict"].items())
              + "."),
    ]
    if "evidence" in figs:
        items.append(("img", figs["evidence"], "The contested questions: simulated serum "
                      "curves beside the claims"))
    t = evidence.table
    items.append(("table", ["id", "article", "claim", "verdict", "key numbers"],
                  [[r.id, article_title(r.seed_file, short=True), r.claim, r.verdict,
                    str(r.key_numbers)] for r in t.itertuples()]))
    c = evidence.contradictions
    if len(c):
        items.append(("h3", "Where the source articles disagree"))
        items.append(("p", CONTRADICTIONS_RULE))
        items.append(("table", ["topic", "where", "side A (claims)", "side B (claims)",
                                "scores A / B", "model and data support"],
                      [[r.topic, r.where, f"{r.side_a}: {r.claims_a}",
                        f"{r.side_b}: {r.claims_b}", _scores(r.score_a, r.score_b),
                        r.supports] for r in c.itertuples()]))
    return items


def _trust_items(validation: Any, figs: dict[str, Path]) -> list[tuple]:
    items: list[tuple] = [
        ("p", "The model reproduces the single-dose absorption and injection-retention "
              "figures it was built from (Carmel 2008 Table 1; product labels; Blood 1961) "
              "to within about 25%. Several parameters are assumptions (see the parameter "
              "table). Treat differences between regimens as qualitative, and small "
              "differences as noise.")]
    if validation is None:
        items.append(("p", "No comparison with trial data was run for this report."))
        return items
    s = validation.summary()
    items.append(("p", f"Against {s['n_points']} published observations from "
                       f"{s['n_trials']} trials/cohorts ({s['n_arms']} arms; none used to fit "
                       f"the model): geometric mean fold error {s['gmfe']:.2f}, geometric mean "
                       f"bias {s['bias']:.2f} (predicted/observed), {s['pct_within_2fold']:.0f}% "
                       f"of points within 2-fold, {s['pct_within_spread']:.0f}% of the "
                       f"{s['n_with_spread']} points with a reported spread inside it. Most "
                       "datasets are abstract-level (one or two time points per arm), and "
                       "trial populations are mapped to presets (data/validation.toml)."))
    by_route = validation.by_route()
    items.append(("table", ["route", "points", "trials", "fold error", "bias",
                            "within reported spread"],
                  [[r.route, r.n_points, r.n_trials, f"{r.gmfe:.2f}", f"{r.bias:.2f}",
                    (f"{r.pct_within_spread:.0f}% of {r.n_with_spread}" if r.n_with_spread
                     else "no spread reported")] for r in by_route.itertuples()]))
    if "validation" in figs:
        items.append(("img", figs["validation"], "Predicted versus observed serum B12 "
                      "(log axes, identity line, 2-fold band)"))
    from ..analysis.validate import suspected_mechanisms

    misses = suspected_mechanisms()
    if misses:
        items.append(("h3", "Where the model misses, and why we suspect it does"))
        items.append(("table", ["trial", "arm", "finding", "suspected mechanism"],
                      [[m["trial"], m["arm"], m["finding"], m["mechanism"]] for m in misses]))
    t = validation.table
    rows = [[r.trial, r.arm, r.preset, _sig(r.time_days), r.statistic, _sig(r.observed),
             (f"{_sig(r.observed_low)}-{_sig(r.observed_high)}" if r.observed_low == r.observed_low
              else ""), _sig(r.predicted), _sig(r.predicted_alternative),
             f"{r.ratio:.2f}", "yes" if r.within_2fold else "no",
             {True: "yes", False: "no"}.get(r.within_spread, "n/a")]
            for r in t.itertuples()]
    items.append(("table", ["trial", "arm", "preset", "day", "statistic", "observed",
                            "spread", "predicted", "predicted (alternative preset)",
                            "ratio", "within 2-fold", "within spread"], rows))
    items.extend(_marker_trust_items(validation))
    return items


def _marker_trust_items(validation: Any) -> list[tuple]:
    """The functional markers' fit and validation (``Validation.markers``)."""
    m = getattr(validation, "markers", None)
    if m is None or not len(m):
        return []
    s = validation.summary()
    fit, check = s.get("markers_training"), s.get("markers")
    text = ["Methylmalonic acid and homocysteine:"]
    if fit:
        text.append(f"fitted to {fit['n_points']} trial means (fold error {fit['gmfe']:.2f});")
    if check:
        text.append(f"against {check['n_points']} points not used in the fit, geometric mean "
                    f"fold error {check['gmfe']:.2f}, bias {check['bias']:.2f}.")
    rows = [[r.use, r.trial, r.arm, r.outcome, _sig(r.time_days), r.statistic,
             _sig(r.observed), _sig(r.predicted), f"{r.ratio:.2f}"]
            for r in m.itertuples()]
    return [("h3", "Functional markers"), ("p", " ".join(text)),
            ("table", ["use", "trial", "arm", "marker", "day", "statistic", "observed",
                       "predicted", "ratio"], rows)]


MARKER_TEXT = (
    "The functional markers (methylmalonic acid, total homocysteine) follow the tissue "
    "stores through a saturating deficiency signal (data/model.toml [markers]), fitted to the "
    "mean MMA of one trial (Kuzminski 1998, both arms, before and after 4 months) and "
    "checked on homocysteine points not used in the fit (b12pk validate). They rise above "
    "their normal limits when the stores are low, whatever the serum B12; the model gives "
    "every patient of a preset the same reference level (kidney function scales it: in "
    "kidney disease a raised MMA or homocysteine need not mean B12 deficiency), so a "
    "patient's own measured baseline (b12pk simulate --baseline-mma) is better where known. "
    "Known miss: without treatment at a low serum the model's MMA is far higher than in "
    "population surveys (README, plausibility)."
)


def _sections(comp: Comparison, figs: dict[str, Path], validation: Any = None,
              plausibility: Any = None) -> list[tuple[str, list[tuple]]]:
    pats, regs = _inputs_rows(comp)
    summary = _summary_display(comp.summary)
    bands = lab_bands()
    band_rows = [[b["name"], b["label"], b["source"]] for b in bands["total_b12"]]
    params = parameter_table()
    par_rows = [[r.name, f"{r.value:.4g}", r.unit, r.status, r.source]
                for r in params.itertuples()]
    status_counts = params["status"].value_counts().to_dict()
    metric_rows = [[k, v] for k, v in SUMMARY_COLUMNS.items()]
    sec: list[tuple[str, list[tuple]]] = [("At a glance", _glance_items(comp, figs,
                                                                        validation))]
    sec.append(("Inputs", [
        ("p", f"Horizon: {comp.days:g} days. Day 1 of treatment is time 0; one month = 30 "
              "days."),
        ("h3", "Patients"), ("table", PATIENT_HEADER, pats),
        ("h3", "Regimens"),
        ("p", "Each default regimen is quoted from the source article it comes from, with "
              "the reading b12pk chose where the text leaves room."),
        ("table", REGIMEN_HEADER, regs),
    ]))
    res: list[tuple] = []
    if "serum" in figs:
        res.append(("img", figs["serum"], "Serum B12 over time, one panel per regimen, one "
                    "curve per patient, over the laboratory bands of the source articles "
                    "(daily values; the peaks in the hours after an injection are in the "
                    "summary table as peak_ss_pmol_per_l)"))
    if comp.uncertainty:
        res.append(("p", f"Shaded bands and the ranges in brackets: 90 % intervals over "
                    f"{comp.uncertainty['draws']} parameter sets drawn from the fitted "
                    "parameters' approximate posterior (data/calibration.toml [uncertainty]; "
                    f"seed {comp.uncertainty['seed']}). They show what the calibration data "
                    "leave open, not the spread between patients (the population view) or "
                    "the assumed parameters."))
    res += [("h3", "Summary"),
            ("table", list(summary.columns), summary.values.tolist()),
            ("h3", "What the columns mean"), ("table", ["column", "meaning"], metric_rows)]
    if "stores" in figs:
        res.append(("img", figs["stores"], "Body stores (ug) over time"))
    if "mma" in figs:
        res.append(("img", figs["mma"], "Methylmalonic acid (MMA, top) and total "
                    "homocysteine (bottom) over time, one column per patient, one curve per "
                    "regimen; dashed: the normal limit (MMA > 271 nmol/L confirms deficiency, "
                    "target homocysteine < 10 umol/L, in the source articles)"))
        res.append(("p", MARKER_TEXT))
    if "summary" in figs:
        res.append(("img", figs["summary"], "Summary metrics by regimen and patient"))
    sec.append(("Comparison", res))
    sec.append(("Laboratory bands", [
        ("p", "Serum total B12 bands as the source articles give them (ng/L = pg/mL; b12pk "
              "converts with 1 pg/mL = 0.7378 pmol/L):"),
        ("table", ["band", "definition", "source"], band_rows),
        ("p", "Functional markers: the normal limit of each (below it the marker reads as "
              "normal):"),
        ("table", ["marker", "normal below", "source"],
         [[bands[k]["label"], f"{bands[k]['normal_below']:g} {bands[k]['unit']}",
           bands[k]["source"]] for k in ("mma", "homocysteine")])]))
    sec.append(("Model and parameters", [
        ("p", "b12pk is a physiological compartment model: a saturable intrinsic-factor "
              "route plus ~1.2% passive absorption for oral doses; injected B12 is filtered "
              "by the kidney, bound by haptocorrin or taken up by tissues (saturable); stores "
              "turn over at ~0.13%/day with biliary reabsorption that needs intrinsic factor. "
              "The structure and every number are declared in data/model.toml."),
        ("p", "Parameter status: " + ", ".join(f"{v} {k}" for k, v in
                                                sorted(status_counts.items())) + ". "
              "'fitted' values were fitted to named physiology data by "
              "tools/fit_parameters.py; 'assumed' values have no direct source and are the "
              "first to question."),
        ("table", ["parameter", "value", "unit", "status", "source"], par_rows)]))
    sec.append(("How far to trust this", _trust_items(validation, figs)
                + _plausibility_items(plausibility) + _assumption_items(comp)))
    return sec


def glance_cell(column: str, v: Any) -> str:
    """A cell of the at-a-glance table as the report shows it (``column``: its header;
    NaN days to leave the deficient band read "never")."""
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "never"
    if column.startswith("leaves"):
        return "< 1" if v < 1 else f"{v:.0f}"
    if column.startswith("B12 per year"):
        return _sig(v)
    if column.startswith("time deficient"):
        return f"{v:.1f}"
    if column.startswith("injections") and abs(v - round(v)) >= 0.05:
        return f"{v:,.1f}"   # 14.5 a year is not "14" beside 14.5 mg of 1 mg doses
    return f"{v:,.0f}"


def _glance_items(comp: Comparison, figs: dict[str, Path], validation: Any) -> list[tuple]:
    """The first screen: the headline figure, the compact table and its reading."""
    glance = at_a_glance(comp, validation)
    upper = {name: high for name, _low, high in serum_bands_pmol_per_l()}
    replete, deficient = upper["indeterminate"], upper["deficient"]
    items: list[tuple] = []
    if "headline" in figs:
        items.append(("img", figs["headline"], "Serum B12 troughs (the level each regimen "
                      "falls to before its next dose), one panel per patient, over the "
                      "laboratory bands; full courses under Comparison", "headline"))
    notes: list[str] = []
    rows = []
    for r in glance.to_dict("records"):
        marks = []
        for caveat in filter(None, r["caveats"].split("; ")):
            if caveat not in notes:
                notes.append(caveat)
            marks.append(str(notes.index(caveat) + 1))
        rows.append([glance_cell(c, r[c]) for c in glance.columns if c != "caveats"]
                    + [", ".join(marks)])
    items.append(("table", [c for c in glance.columns if c != "caveats"] + ["notes"], rows))
    items.extend(("p", f"[{k}] {note}") for k, note in enumerate(notes, 1))
    items.append(("p", "What the model shows (not advice): " + " ".join(
        glance_reading(glance, replete, deficient))))
    if not comp.uncertainty:
        items.append(("p", "No uncertainty band is drawn: the curves are the model at its "
                      "fitted parameters. b12pk compare --uncertainty 20 (Python: "
                      "compare(..., uncertainty=20)) shades the 90 % interval from the "
                      "parameters' uncertainty on the headline figure and gives each number "
                      "its interval."))
    items.append(("p", f"Per year: over the {comp.days:g}-day horizon, scaled to 365 days "
                  "(loading doses included). Notes: a route whose serum the validation "
                  "over- or under-predicts (data/claims/biases.toml, sized by this report's "
                  "validation), a trough not yet at steady state, and body B12 above the "
                  "usual adult range."))
    return items


def _plausibility_items(plausibility: Any) -> list[tuple]:
    """The model's known physiological distortions (plausibility checks it fails)."""
    if plausibility is None:
        return []
    s = plausibility.summary()
    t = plausibility.table
    out = t.loc[~t.inside]
    items: list[tuple] = [
        ("h3", "Known distortions of the model's physiology"),
        ("p", f"Of {s['n_checks']} checks of the model's physiology against published figures "
              f"(data/plausibility.toml), {s['n_inside']} lie inside their published range "
              f"({s['n_not_fitted_inside']} of the {s['n_not_fitted']} whose figures did not "
              "set the model)." + (" The model is outside for these; read the comparisons "
                                   "they bear on with them in mind:" if len(out) else ""))]
    if len(out):
        items.append(("table", ["check", "model", "published range", "source"],
                      [[r.question, f"{_sig(r.model)} {r.unit}", f"{_sig(r.low)}-{_sig(r.high)}",
                        f"{r.source}: {r.where}"[:200]] for r in out.itertuples()]))
    return items


def _assumption_items(comp: Comparison) -> list[tuple]:
    """What the model assumes about the routes and forms of the regimens compared (the
    caveats in data/model.toml), each once."""
    seen: list[str] = []
    for df in comp.results.values():
        seen.extend(a for a in df.attrs.get("assumptions", ()) if a not in seen)
    if not seen:
        return []
    return [("h3", "Assumptions about the routes and forms compared")] + \
        [("p", a) for a in seen]


def _render_md(sections: list[tuple[str, list[tuple]]], disclaimer: str) -> str:
    lines = ["# b12pk regimen comparison", "", f"> **{disclaimer}**", ""]
    for title, items in sections:
        lines += [f"## {title}", ""]
        for item in items:
            kind = item[0]
            if kind == "p":
                lines += [item[1], ""]
            elif kind == "h3":
                lines += [f"### {item[1]}", ""]
            elif kind == "table":
                lines += [_md_table(item[2], item[1]), ""]
            elif kind == "img":
                rel = Path("figures") / item[1].name
                lines += [f"![{item[2]}]({rel.as_posix()})", "", f"*{item[2]}*", ""]
    lines += ["---", "", f"*{disclaimer}*", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
.disclaimer{background:#fff4e5;border-left:5px solid #e69f00;padding:.8em 1em;font-weight:600}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f2f2f2} img{max-width:100%;height:auto} figcaption{color:#555;font-style:italic}
figure{margin:0 0 .5em 0} .table{overflow-x:auto;max-width:100%}
figure.headline img{max-height:60vh;width:auto}
"""


def _render_html(sections: list[tuple[str, list[tuple]]], disclaimer: str, root: Path) -> str:
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>b12pk regimen comparison</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>b12pk regimen comparison</h1>",
             f"<p class=\"disclaimer\">{html.escape(disclaimer)}</p>"]
    for title, items in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for item in items:
            kind = item[0]
            if kind == "p":
                parts.append(f"<p>{html.escape(item[1])}</p>")
            elif kind == "h3":
                parts.append(f"<h3>{html.escape(item[1])}</h3>")
            elif kind == "table":   # a wide table scrolls in its box, not the page
                parts.append(f"<div class=\"table\">{_html_table(item[2], item[1])}</div>")
            elif kind == "img":
                data = base64.b64encode(Path(item[1]).read_bytes()).decode("ascii")
                alt = html.escape(item[2])
                css = f" class=\"{item[3]}\"" if len(item) > 3 else ""
                parts.append(f"<figure{css}><img alt=\"{alt}\" "
                             f"src=\"data:image/png;base64,{data}\">"
                             f"<figcaption>{alt}</figcaption></figure>")
    parts.append(f"<hr><p class=\"disclaimer\">{html.escape(disclaimer)}</p></body></html>")
    return "\n".join(parts)
