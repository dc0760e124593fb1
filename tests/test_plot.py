"""Tests of b12pk.plot: what the figures contain, not how they look."""

import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import b12pk  # noqa: E402
from b12pk import plot  # noqa: E402
from b12pk.errors import UnknownNameError  # noqa: E402

CUT_PMOL = b12pk.model.serum_bands_pmol_per_l()[0][2]          # 180 ng/L = 132.8 pmol/L


@pytest.fixture(scope="module")
def results():
    pa = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
    regs = {"oral 2000 mcg daily": b12pk.Regimen.daily(2000),
            "IM 1000 mcg monthly": b12pk.Regimen.parse("1000 mcg hydroxocobalamin IM monthly"),
            "IM 100 mcg monthly, a deliberately long label that has to be wrapped":
                b12pk.Regimen.parse("100 mcg cyanocobalamin IM monthly")}
    return {k: b12pk.simulate(r, pa, days=60) for k, r in regs.items()}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _curves(ax):
    return [ln for ln in ax.lines if ln.get_gid() == "curve"]


def _cutoff(ax, horizontal=True):
    lines = [ln for ln in ax.lines if ln.get_gid() == "deficiency-cutoff"]
    assert len(lines) == 1
    data = lines[0].get_ydata() if horizontal else lines[0].get_xdata()
    return float(data[0])


def _band_patches(ax):
    return [p for p in ax.patches if (p.get_gid() or "").startswith("band-")]


def test_importing_plot_does_not_import_matplotlib():
    code = "import sys, b12pk, b12pk.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_plot_serum_mapping_draws_one_curve_per_regimen_with_bands(results):
    ax = plot.plot_serum(results)
    curves = _curves(ax)
    assert len(curves) == 3
    assert len(ax.lines) == 4                                   # + deficiency cut-off
    assert len({c.get_color() for c in curves}) == 3
    assert len({c.get_marker() for c in curves}) == 3            # distinguishable in grey
    assert len({str(c._unscaled_dash_pattern) for c in curves}) == 3
    assert "(pmol/L)" in ax.get_ylabel() and "Serum B12" in ax.get_ylabel()
    assert ax.get_xlabel() == "Time since start of treatment (days)"   # 60 days -> days
    assert ax.get_yscale() == "log"
    assert {p.get_gid() for p in _band_patches(ax)} == {
        "band-deficient", "band-indeterminate", "band-unlikely"}
    labels = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("band-label")]
    assert any("Deficiency confirmed (< 133 pmol/L)" in t for t in labels)
    assert len(labels) == 3
    assert _cutoff(ax) == pytest.approx(CUT_PMOL)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 4 and any("\n" in t for t in legend)   # long label wrapped


def test_plot_serum_without_bands_and_on_given_axes(results):
    fig, ax0 = plt.subplots()
    ax = plot.plot_serum(results, ax0, bands=False, log=False, show_legend=False,
                         title="")
    assert ax is ax0
    assert _band_patches(ax) == []
    assert not any(ln.get_gid() == "deficiency-cutoff" for ln in ax.lines)
    assert len(ax.lines) == 3
    assert ax.get_yscale() == "linear" and ax.get_legend() is None and ax.get_title() == ""


def test_log_ticks_are_plain_numbers(results):
    ax = plot.plot_serum(results)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "1000" in labels and "100" in labels
    assert not any("$" in t or "^" in t for t in labels)


def test_pg_per_ml_converts_curves_and_moves_the_cutoff(results):
    df = results["oral 2000 mcg daily"]
    ax_p = plot.plot_serum(df)
    ax_g = plot.plot_serum(df, unit="pg/mL")
    assert _cutoff(ax_g) == pytest.approx(180.0)
    assert _cutoff(ax_p) == pytest.approx(CUT_PMOL)
    assert "(pg/mL)" in ax_g.get_ylabel()
    ratio = _curves(ax_g)[0].get_ydata()[-1] / _curves(ax_p)[0].get_ydata()[-1]
    assert ratio == pytest.approx(b12pk.pmol_per_l_to_pg_per_ml(1.0))
    assert ax_p.get_legend() is None                    # one unlabelled DataFrame


@pytest.mark.parametrize("time_unit,days,label", [("weeks", 60, "weeks"),
                                                 ("months", 60, "months"),
                                                 ("auto", 200, "months"),
                                                 ("auto", 100, "days")])
def test_time_units(time_unit, days, label):
    df = b12pk.simulate(b12pk.Regimen.daily(1000), "vegan", days=days)
    ax = plot.plot_serum(df, time_unit=time_unit)
    assert ax.get_xlabel() == f"Time since start of treatment ({label})"
    divisor = {"days": 1, "weeks": 7, "months": 30}[label]
    assert _curves(ax)[0].get_xdata()[-1] == pytest.approx(days / divisor)


def test_plot_holotc_uses_holotc_bands(results):
    ax = plot.plot_holotc(results)
    assert len(_curves(ax)) == 3
    assert "Holotranscobalamin" in ax.get_ylabel() and "(pmol/L)" in ax.get_ylabel()
    assert _cutoff(ax) == pytest.approx(25.0)
    assert len(_band_patches(ax)) == 3
    assert _band_patches(plot.plot_holotc(results, bands=False)) == []


def test_plot_stores_linear_from_zero_with_reference_lines(results):
    ax = plot.plot_stores(results)
    assert len(_curves(ax)) == 3
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert ax.get_ylabel() == "Body B12 stores (µg)"
    refs = sorted(float(ln.get_ydata()[0]) for ln in ax.lines if ln.get_gid() == "reference")
    assert refs == [300.0, 2500.0]
    text = " ".join(t.get_text() for t in ax.texts)
    assert "average adult stores (Carmel 2008)" in text.replace("\n", " ")
    assert "IOM 1998" in text


@pytest.fixture()
def summary():
    return pd.DataFrame({
        "regimen": ["oral daily", "oral daily", "IM monthly", "IM monthly"],
        "patient": ["PA", "vegan", "PA", "vegan"],
        "serum_12mo_pmol_per_l": [900.0, 1100.0, math.nan, 700.0],
        "total_ug": [730000.0, 730000.0, 12000.0, 12000.0],
        "pct_time_deficient": [0.3, 0.3, 2.0, 1.0],
    })


def test_plot_summary_bars_labels_and_cutoff(summary):
    ax = plot.plot_summary(summary, "serum_12mo_pmol_per_l")
    assert len(ax.patches) == 3                                # NaN -> no bar
    assert [t.get_text() for t in ax.texts].count("n/a") == 1
    assert "1,100" in [t.get_text() for t in ax.texts]          # value at the bar end
    assert ax.get_xlabel() == "Serum B12 at 12 months (pmol/L)"
    assert _cutoff(ax, horizontal=False) == pytest.approx(CUT_PMOL)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["oral daily", "IM monthly"]
    assert len({tuple(p.get_facecolor()) for p in ax.patches}) == 2   # one colour/patient


def test_plot_summary_non_serum_metric_has_no_cutoff(summary):
    ax = plot.plot_summary(summary, "total_ug")
    assert ax.get_xlabel() == "Total B12 given (µg)"
    assert not any(ln.get_gid() == "deficiency-cutoff" for ln in ax.lines)
    assert plot.plot_summary(summary, "pct_time_deficient").get_xlabel().endswith("(% of days)")


def test_plot_comparison_panels_legend_and_disclaimer(results):
    by_patient = {"Pernicious anaemia": results,
                  "Vegan": dict(list(results.items())[:2])}
    fig = plot.plot_comparison(by_patient, days=30)
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2
    assert [len(_curves(ax)) for ax in panels] == [3, 2]
    assert panels[0].get_ylim() == panels[1].get_ylim()                # shared y
    assert max(_curves(panels[0])[0].get_xdata()) <= 30
    assert all(ax.get_legend() is None for ax in panels)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1 and len(legends[0].get_texts()) == 4      # 3 regimens + cut-off
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert b12pk.DISCLAIMER in texts
    # same regimen, same style in both panels
    assert _curves(panels[0])[1].get_color() == _curves(panels[1])[1].get_color()
    w, h = fig.get_size_inches()
    assert w == pytest.approx(12.0) and h >= 5.0


def test_save_figure_writes_png_and_svg(tmp_path, results):
    ax = plot.plot_serum(results)
    paths = plot.save_figure(ax.figure, tmp_path / "sub" / "serum")
    assert [p.name for p in paths] == ["serum.png", "serum.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]


needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="parallel saves fork (Linux only); elsewhere serial")


@needs_fork
def test_parallel_saves_write_the_same_files_as_saving_in_turn(tmp_path, results):
    from b12pk.plot.figures import parallel_saves

    figs = [plot.plot_serum(results).figure, plot.plot_stores(results).figure]
    for k, fig in enumerate(figs):
        plot.save_figure(fig, tmp_path / "serial" / f"f{k}")
    with parallel_saves(workers=2):
        paths = [plot.save_figure(fig, tmp_path / "parallel" / f"f{k}")
                 for k, fig in enumerate(figs)]
    for k, (png, svg) in enumerate(paths):
        assert svg.read_bytes() == (tmp_path / "serial" / f"f{k}.svg").read_bytes()
        assert png.read_bytes() == (tmp_path / "serial" / f"f{k}.png").read_bytes()


@needs_fork
def test_a_png_saved_by_a_child_equals_one_saved_here(tmp_path, results):
    from b12pk.plot.figures import parallel_saves, save_png

    fig = plot.plot_serum(results).figure
    here = save_png(fig, tmp_path / "here.png", dpi=80)
    with parallel_saves():
        child = save_png(fig, tmp_path / "child.png", dpi=80)
    assert child.read_bytes() == here.read_bytes()


@needs_fork
def test_a_png_a_child_cannot_save_raises_here(tmp_path, results):
    from b12pk.plot.figures import parallel_saves, save_png

    (tmp_path / "f.png").mkdir()   # a folder where the PNG should go
    with pytest.raises(OSError):
        with parallel_saves():
            save_png(plot.plot_serum(results).figure, tmp_path / "f.png")


@needs_fork
def test_a_figure_a_child_cannot_save_is_redone_here_and_its_error_raised(tmp_path, results):
    from b12pk.plot.figures import parallel_saves

    blocker = tmp_path / "f.png"
    blocker.mkdir()   # a folder where the PNG should go: saving fails, in the child and here
    with pytest.raises(OSError):
        with parallel_saves():
            plot.save_figure(plot.plot_serum(results).figure, tmp_path / "f")


@needs_fork
def test_an_error_in_the_block_leaves_no_child_running(tmp_path, results, monkeypatch):
    import os

    from b12pk.plot.figures import parallel_saves

    forked, fork = [], os.fork

    def recording_fork():
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    with pytest.raises(KeyboardInterrupt):
        with parallel_saves(workers=1):
            for k in range(3):
                plot.save_figure(plot.plot_serum(results).figure, tmp_path / f"f{k}")
            raise KeyboardInterrupt
    assert forked
    for pid in forked:   # every child has ended and been reaped
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_rcparams_are_left_alone(results, summary, tmp_path):
    before = dict(matplotlib.rcParams)
    plot.plot_serum(results)
    plot.plot_stores(results)
    fig = plot.plot_comparison({"a": results})
    plot.plot_summary(summary, "total_ug")
    plot.save_figure(fig, tmp_path / "c")
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()


@pytest.mark.parametrize("call,accepted", [
    (lambda r, s: plot.plot_serum(r, unit="mg/dL"), "pmol/L, pg/mL"),
    (lambda r, s: plot.plot_holotc(r, unit="nmol/L"), "pmol/L, pg/mL"),
    (lambda r, s: plot.plot_comparison({"a": r}, unit="x"), "pmol/L, pg/mL"),
    (lambda r, s: plot.plot_serum(r, time_unit="years"), "auto, days, weeks, months"),
    (lambda r, s: plot.plot_stores(r, time_unit="hours"), "auto, days, weeks, months"),
    (lambda r, s: plot.plot_summary(s, "serum_99mo"), "serum_12mo_pmol_per_l, total_ug"),
    (lambda r, s: plot.plot_summary(s, "patient"), "pct_time_deficient"),
])
def test_bad_names_raise_unknown_name_error_listing_accepted(results, summary, call,
                                                            accepted):
    with pytest.raises(UnknownNameError, match="accepted") as info:
        call(results, summary)
    assert accepted in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_results_raise_input_error():
    with pytest.raises(b12pk.InputError, match="serum_pmol_per_l"):
        plot.plot_serum(pd.DataFrame({"time_days": np.arange(3.0)}))
    with pytest.raises(b12pk.InputError, match="empty"):
        plot.plot_serum({})


def test_plot_regimen_grid_has_one_panel_per_regimen_and_one_curve_per_patient(results):
    by_patient = {"PA": results, "copy": dict(results)}
    fig = plot.plot_regimen_grid(by_patient, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(results)
    for ax in visible:
        assert len(_curves(ax)) == 2
        assert _band_patches(ax)
    assert b12pk.DISCLAIMER in fig._suptitle.get_text()


def test_plot_regimen_grid_daily_drops_hourly_rows():
    df = b12pk.simulate(b12pk.Regimen.parse("1000 mcg IM once"), "healthy", days=5,
                        hourly_after_injections=True)
    fig = plot.plot_regimen_grid({"p": {"r": df}}, daily=True)
    assert len(_curves(fig.axes[0])[0].get_xdata()) == 6
    fig = plot.plot_regimen_grid({"p": {"r": df}}, daily=False)
    assert len(_curves(fig.axes[0])[0].get_xdata()) == len(df)


def test_plot_regimen_grid_rejects_bad_input(results):
    with pytest.raises(b12pk.InputError, match="ncols"):
        plot.plot_regimen_grid({"p": results}, ncols=0)
    with pytest.raises(b12pk.InputError, match="non-empty"):
        plot.plot_regimen_grid({})


def test_a_course_with_an_interval_is_drawn_with_a_shaded_band():
    df = b12pk.simulate("1000 mcg IM monthly", "pernicious-anaemia", 60, uncertainty=6)
    ax = plot.plot_serum({"IM": df})
    bands = [c for c in ax.collections if c.get_gid() == "interval"]
    assert len(bands) == 1
    assert any("90 % interval" in t.get_text() for t in ax.get_legend().get_texts())
    plain = plot.plot_serum({"IM": b12pk.simulate("1000 mcg IM monthly", "healthy", 60)})
    assert not [c for c in plain.collections if c.get_gid() == "interval"]
    plt.close("all")


def test_plot_regimen_grid_draws_dosing_cycles_as_envelopes_on_long_horizons():
    df = b12pk.simulate("1000 mcg IM monthly", "pernicious-anaemia", 120)
    short = plot.plot_regimen_grid({"p": {"IM": df}})      # 120 days: daily values
    assert not [ln for ln in short.axes[0].lines if ln.get_gid() == "cycle-peak"]
    fig = plot.plot_regimen_grid({"p": {"IM": df}}, envelope=True)
    ax = fig.axes[0]
    peaks = [ln for ln in ax.lines if ln.get_gid() == "cycle-peak"]
    assert len(peaks) == 1
    trough = _curves(ax)[0].get_ydata()
    assert np.nanmax(trough) < df["serum_pmol_per_l"].max()     # the thick line: troughs
    top = df["serum_pmol_per_l"].max()
    assert 0.95 * top < np.nanmax(peaks[0].get_ydata()) <= top    # the thin line: peaks
    assert any("each dosing cycle's peak" in t.get_text() for t in fig.legends[0].get_texts())
    with pytest.raises(b12pk.InputError, match="envelope"):
        plot.plot_regimen_grid({"p": {"IM": df}}, envelope="yes")


def test_validation_points_are_numbered_with_a_key(validation):
    from b12pk.plot.validation import plot_validation

    val = validation
    ax = plot_validation(val)
    numbers = [t.get_text() for t in ax.texts]
    n = int((val.table["unit"] == "pmol/L").sum())
    assert numbers == [str(k) for k in range(1, n + 1)]
    key = "\n".join(t.get_text() for a in ax.figure.axes if a is not ax for t in a.texts)
    assert key.startswith("1  ") and f"\n{n}  " in key or n == 1
