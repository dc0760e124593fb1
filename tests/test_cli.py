"""The command line end to end: files written, errors as one line, nothing half-written."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

import b12pk
from b12pk.cli import main
from b12pk.analysis.compare import default_regimens

SMALL = ["--regimen", "2000 mcg cyanocobalamin oral daily",
         "--regimen", "1000 mcg hydroxocobalamin IM three times weekly for 2 weeks, then monthly",
         "--patient", "pernicious-anaemia", "--days", "100"]


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_compare_writes_every_file(default_report):
    for name in ("report.html", "report.md", "summary.csv", "run.json"):
        assert (default_report / name).is_file(), name
    for stem in ("serum", "stores", "summary"):
        assert (default_report / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert (default_report / "figures" / f"{stem}.svg").is_file()


def test_default_compare_covers_every_seed_regimen_for_two_patients(default_report):
    summary = pd.read_csv(default_report / "summary.csv")
    assert summary["patient"].nunique() == 2
    assert set(summary["regimen"]) == {r.label for r in default_regimens()}
    for col in ("days_to_leave_deficient", "serum_1mo_pmol_per_l", "serum_3mo_pmol_per_l",
                "serum_6mo_pmol_per_l", "serum_12mo_pmol_per_l", "trough_ss_pmol_per_l",
                "peak_ss_pmol_per_l", "pct_time_deficient", "total_dose_ug", "n_injections",
                "stores_end_ug"):
        assert col in summary.columns


def test_html_report_is_self_contained(default_report):
    text = (default_report / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "<script" not in text
    assert "not medical advice" in text


def test_markdown_report_states_it_is_educational_and_cites_seeds(default_report):
    text = (default_report / "report.md").read_text(encoding="utf-8")
    assert b12pk.DISCLAIMER in text
    assert "IM and nasal routes" in text          # the source article, named by its title
    assert "003_641e187cc86a2616" not in text     # not by its file name
    assert "carmel2008" in text


def test_run_json_regenerates_the_summary(default_report, tmp_path):
    record = json.loads((default_report / "run.json").read_text())
    assert record["b12pk_version"] == b12pk.__version__
    regimens = [b12pk.Regimen.parse(r["text"]) for r in record["regimens"]]
    patients = [b12pk.Patient.preset(p["preset"],
                                     **{k: v for k, v in p["settings"].items()})
                for p in record["patients"]]
    from b12pk.analysis.compare import compare

    again = compare(regimens[:1], patients[:1], record["days"])
    original = pd.read_csv(default_report / "summary.csv")
    assert again.summary["serum_12mo_pmol_per_l"].iloc[0] == pytest.approx(
        original["serum_12mo_pmol_per_l"].iloc[0], rel=1e-5)


def test_summary_value_equals_direct_simulation(tmp_path, capsys):
    out = tmp_path / "rep"
    code, _, _ = run_cli(["compare", *SMALL, "--out", str(out)], capsys)
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    df = b12pk.simulate(b12pk.Regimen.parse("2000 mcg cyanocobalamin oral daily"),
                        "pernicious-anaemia", days=100)
    direct = float(df.loc[df["time_days"] == 90, "serum_pmol_per_l"].iloc[0])
    # summary.csv keeps 6 significant figures: rounding is up to 5e-6 relative
    assert summary["serum_3mo_pmol_per_l"].iloc[0] == pytest.approx(direct, rel=5e-6)


def test_compare_replaces_an_earlier_report_only_on_success(tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("earlier report")
    code, _, err = run_cli(["compare", "--regimen", "1000 mcg evry day", "--out", str(out)],
                           capsys)
    assert code == 2
    assert (out / "keep.txt").read_text() == "earlier report"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no temporary folder left


def test_simulate_writes_csv_to_stdout(capsys):
    code, out, _ = run_cli(["simulate", "--regimen", "2000 µg oral daily", "--patient",
                            "pernicious-anaemia", "--days", "120"], capsys)
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert len(df) == 121
    for col in ("time_days", "serum_pmol_per_l", "serum_pg_per_ml", "stores_ug", "urine_ug"):
        assert col in df.columns


def test_simulate_baseline_serum_overrides_preset(capsys):
    code, out, _ = run_cli(["simulate", "--regimen", "1000 mcg IM once", "--patient",
                            "pernicious-anaemia", "--baseline-serum", "90", "--days", "5"],
                           capsys)
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert df["serum_pmol_per_l"].iloc[0] == pytest.approx(90.0, rel=1e-6)


def test_simulate_form_option_sets_form_of_text_without_one(tmp_path, capsys):
    hyd = tmp_path / "h.csv"
    cya = tmp_path / "c.csv"
    assert main(["simulate", "--regimen", "1000 mcg IM once", "--form", "hydroxocobalamin",
                 "--days", "7", "--out", str(hyd)]) == 0
    assert main(["simulate", "--regimen", "1000 mcg IM once", "--days", "7",
                 "--out", str(cya)]) == 0
    urine_h = pd.read_csv(hyd)["urine_ug"].iloc[-1]
    urine_c = pd.read_csv(cya)["urine_ug"].iloc[-1]
    assert urine_h < urine_c


def test_regimen_and_patient_toml_files(tmp_path, capsys):
    reg = tmp_path / "r.toml"
    reg.write_text('[[regimen]]\nlabel = "oral"\ntext = "1000 mcg oral daily"\n'
                   '[[regimen]]\nlabel = "im"\ntext = "1000 mcg IM monthly"\n')
    pat = tmp_path / "p.toml"
    pat.write_text('[[patient]]\nlabel = "CKD"\npreset = "renal-impairment"\negfr_ml_min = 25\n')
    out = tmp_path / "rep"
    code, _, err = run_cli(["compare", "--regimen", str(reg), "--patient", str(pat),
                            "--days", "60", "--out", str(out)], capsys)
    assert code == 0, err
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["regimen"]) == ["oral", "im"]
    assert set(summary["patient"]) == {"CKD"}


@pytest.mark.parametrize("args, needle", [
    (["compare", "--regimen", "1000 mcg evry day"], "evry"),
    (["compare", "--patient", "martian"], "unknown patient preset 'martian'"),
    (["compare", "--days", "0"], "days=0"),
    (["compare", "--days", "ten"], "is not a number"),
    (["compare", "--regimen", "-5 mcg oral daily"], "-5"),
    (["compare", "--regimen", "missing.toml"], "missing.toml"),
    (["simulate", "--regimen", "1000 mcg rectal daily"], "rectal"),
    (["simulate", "--regimen", "1000 mcg oral daily", "--baseline-serum", "-1"],
     "baseline_serum_pmol_per_l"),
    (["simulate", "--regimen", "1000 mcg oral daily", "--egfr", "900"], "egfr_ml_min"),
    (["simulate"], "--regimen"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_option_gives_one_line_error_and_no_output(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    full = args + (["--out", str(out)] if args and args[0] in ("compare", "simulate")
                   and len(args) > 1 else [])
    code, stdout, err = run_cli(full, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("b12pk: error:"), err
    assert needle in err
    assert "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_help_shows_examples(capsys):
    assert main(["compare", "--help"]) == 0
    assert "b12pk compare --regimen" in capsys.readouterr().out


def test_presets_and_parameters_commands(capsys):
    assert main(["presets"]) == 0
    assert "pernicious-anaemia" in capsys.readouterr().out
    assert main(["parameters"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert "passive_fraction" in set(table["name"])


def test_console_script_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "b12pk.cli", "simulate", "--regimen",
                          "1000 mcg IM daily", "--days", "oops"], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1


def test_export_sbml_command_writes_a_checked_document(tmp_path, capsys):
    pytest.importorskip("libsbml", reason="SBML export needs the b12pk[sbml] extra")
    out = tmp_path / "m.xml"
    code = main(["export-sbml", "--patient", "pernicious-anaemia", "--regimen",
                 "1000 mcg hydroxocobalamin IM monthly", "--days", "60", "--out", str(out),
                 "--check"])
    assert code == 0
    assert out.read_text(encoding="utf-8").startswith("<?xml")


def test_export_sbml_into_a_missing_folder_is_one_line_error(tmp_path, capsys):
    pytest.importorskip("libsbml", reason="SBML export needs the b12pk[sbml] extra")
    code, _, err = run_cli(["export-sbml", "--out", str(tmp_path / "nope" / "m.xml")], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_evidence_command_writes_verdicts(tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["evidence", "--ids", "C307", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "evidence.csv")
    assert list(table["id"]) == ["C307"]
    assert (out / "evidence.png").is_file() and (out / "contradictions.csv").is_file()


def test_evidence_command_rejects_unknown_claim_id(tmp_path, capsys):
    code, _, err = run_cli(["evidence", "--ids", "C999", "--out", str(tmp_path / "ev")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert not (tmp_path / "ev").exists()


def test_compare_with_population_view(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["compare", "--regimen", "100 mcg cyanocobalamin IM monthly", "--patient",
                 "pernicious-anaemia", "--days", "70", "--population", "1024", "--out",
                 str(out)])
    assert code == 0
    table = pd.read_csv(out / "population_summary.csv")
    assert table["n"].iloc[0] == 1024
    assert 0.0 <= table["max_pct_trough_below_cutoff"].iloc[0] <= 100.0
    row = table.iloc[0]   # read before the last injection, not at an arbitrary point
    assert row["read_at"] == "trough before the day-60 injection"
    assert row["pct_not_replete_last_trough"] >= row["pct_deficient_last_trough"]
    assert not any(c.endswith("_end") or "_end_" in c for c in table.columns)
    assert (out / "figures" / "population.png").is_file()
    assert "Virtual population" in (out / "report.md").read_text(encoding="utf-8")


def test_compare_population_view_without_days_uses_the_default_horizon(tmp_path, capsys):
    # --population without --days: the default comparison's horizon, as without it
    out = tmp_path / "rep"
    code = main(["compare", "--regimen", "1000 mcg cyanocobalamin oral daily", "--patient",
                 "healthy", "--population", "1024", "--out", str(out)])
    assert code == 0
    from b12pk.analysis.compare import default_days

    table = pd.read_csv(out / "population_summary.csv")
    assert table["n"].iloc[0] == 1024
    assert json.loads((out / "run.json").read_text())["days"] == default_days()


def test_compare_population_view_with_covariates(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["compare", "--regimen", "1000 mcg oral daily", "--patient", "healthy",
                 "--days", "20", "--population", "1024", "--covariates", "older-adults",
                 "--out", str(out)])
    assert code == 0
    assert "age_years normal(80, 5)" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("args, match", [
    (["--covariates", "older-adults"], "--covariates needs --population N"),
    (["--population", "100", "--covariates", "teenagers"], "unknown covariate set"),
])
def test_compare_rejects_bad_covariates_before_simulating(tmp_path, capsys, args, match):
    code, _, err = run_cli(["compare", *args, "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and err.count("\n") == 1 and match in err
    assert not (tmp_path / "rep").exists()


def test_compare_report_states_the_route_and_form_assumptions(tmp_path, capsys):
    out = tmp_path / "rep"
    code, _, _ = run_cli(["compare", "--regimen", "500 mcg cyanocobalamin sublingual daily",
                          "--regimen", "1000 mcg methylcobalamin IM monthly", "--patient",
                          "healthy", "--days", "20", "--out", str(out)], capsys)
    assert code == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Assumptions about the routes and forms compared" in report
    assert "Sublingual doses are simulated as swallowed oral doses" in report
    assert "Injected methylcobalamin is simulated" in report


def test_default_report_lists_the_known_distortions(default_report):
    report = (default_report / "report.md").read_text(encoding="utf-8")
    assert "Known distortions of the model's physiology" in report
    assert "serum B12 after about 1 mg IM hydroxo- / cyanocobalamin, at 1 h" in report
    table = pd.read_csv(default_report / "plausibility.csv")
    assert (~table.inside).sum() >= 1


def test_compare_command_draws_parameter_uncertainty(tmp_path):
    out = tmp_path / "rep"
    assert b12pk.cli.main(["compare", "--regimen", "1000 mcg IM monthly", "--patient",
                           "pernicious-anaemia", "--days", "90", "--uncertainty", "6",
                           "--seed", "1", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert "trough_ss_pmol_per_l_p95" in summary.columns
    assert "90 % intervals over 6 parameter sets" in (out / "report.md").read_text("utf-8")


def test_a_model_warning_is_one_line_on_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "b12pk.cli", "simulate", "--regimen",
                          "1000 mcg cyanocobalamin IV once", "--days", "5", "--out",
                          str(tmp_path / "iv.csv")], capture_output=True, text=True)
    assert out.returncode == 0
    lines = out.stderr.splitlines()
    warned = [ln for ln in lines if ln.startswith("b12pk: warning: intravenous")]
    assert len(warned) == 1
    assert not any(".py:" in ln for ln in lines)     # no file:line or source echo


def test_the_report_opens_with_the_answer_at_a_glance(default_report):
    md = (default_report / "report.md").read_text(encoding="utf-8")
    first = md.split("\n## ")[1]
    assert first.startswith("At a glance")
    assert "figures/headline.png" in first and "steady-state trough (pmol/L)" in first
    assert "What the model shows (not advice)" in first
    summary = pd.read_csv(default_report / "summary.csv")
    for trough in summary["trough_ss_pmol_per_l"].head(3):
        assert f"| {trough:,.0f} |" in first


def test_the_population_line_reads_injections_at_their_trough(tmp_path, capsys):
    code, out, err = run_cli(["population", "--regimen", "100 mcg cyanocobalamin IM monthly",
                              "--patient", "pernicious-anaemia", "--n", "200", "--days", "65",
                              "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert "deficient at the trough before the day-60 injection" in out
