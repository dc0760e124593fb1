"""Regimen comparison: defaults, summary metrics, patient files, atomic output."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import b12pk
from b12pk.compare import (SUMMARY_COLUMNS, compare, default_patients, default_regimens,
                           load_patients, summarize)
from b12pk.report import atomic_output_dir

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_default_regimens_quote_their_seed_verbatim():
    if not SEEDS.is_dir():
        pytest.skip(f"seed documents not found at {SEEDS}")
    for r in default_regimens():
        seed = normalise((SEEDS / r.seed_file).read_text(encoding="utf-8"))
        assert normalise(r.quote) in seed, (r.label, r.seed_file)


def test_defaults_cover_the_contested_regimens():
    texts = [r.regimen.to_text() for r in default_regimens()]
    assert len(texts) >= 9
    routes = {route for r in default_regimens() for route in r.regimen.routes}
    assert {"oral", "im", "intranasal"} <= routes
    assert any("100 mcg" in t for t in texts)
    assert any("every 3 months" in t for t in texts)


def test_default_patients_are_deficient_normal_absorber_and_pernicious_anaemia():
    pats = default_patients()
    assert [p.patient.baseline_serum_pmol_per_l for p in pats] == [110.0, 110.0]
    assert pats[0].patient.if_route_factor == 1.0
    assert pats[1].patient.if_route_factor == 0.0


def synthetic(serum: list[float]) -> pd.DataFrame:
    n = len(serum)
    return pd.DataFrame({"time_days": np.arange(n, dtype=float), "serum_pmol_per_l": serum,
                         "urine_ug": np.linspace(0, 5, n), "stores_ug": np.linspace(100, 200, n)})


def test_summary_arithmetic_on_a_known_curve():
    serum = [100.0] * 10 + [200.0] * 10 + [300.0] * 381  # days 0-400
    regimen = b12pk.Regimen.parse("1000 mcg IM every 100 days")
    s = summarize(synthetic(serum), regimen, days=400)
    assert s["days_to_leave_deficient"] == 10.0  # first day >= 133 pmol/L
    assert s["serum_1mo_pmol_per_l"] == 300.0
    assert s["pct_time_deficient"] == pytest.approx(100 * 10 / 401)
    assert s["pct_time_not_replete"] == pytest.approx(100 * 20 / 401)
    assert s["total_dose_ug"] == 4000.0 and s["n_injections"] == 4.0
    assert s["stores_end_ug"] == 200.0 and s["urine_total_ug"] == 5.0
    assert s["trough_ss_pmol_per_l"] == 300.0


def test_metrics_beyond_the_horizon_are_nan():
    s = summarize(synthetic([150.0] * 61), b12pk.Regimen.daily(1000), days=60)
    assert s["serum_1mo_pmol_per_l"] == 150.0
    assert math.isnan(s["serum_3mo_pmol_per_l"]) and math.isnan(s["serum_12mo_pmol_per_l"])


def test_never_leaving_the_deficient_band_is_nan():
    s = summarize(synthetic([100.0] * 31), b12pk.Regimen.daily(1), days=30)
    assert math.isnan(s["days_to_leave_deficient"])
    assert s["pct_time_deficient"] == 100.0


def test_compare_summary_has_one_row_per_regimen_and_patient():
    comp = compare(["2000 mcg oral daily", "1000 mcg IM monthly"],
                   ["pernicious-anaemia", "healthy"], days=60)
    assert len(comp.summary) == 4
    assert list(comp.summary.columns[3:]) == list(SUMMARY_COLUMNS)
    assert set(comp.by_patient()) == {p.label for p in comp.patients}


def test_oral_beats_im_100ug_in_a_normal_absorber_but_order_is_reported_not_assumed():
    comp = compare(["1000 mcg oral daily", "100 mcg cyanocobalamin IM monthly"],
                   [b12pk.Patient.preset("vegan", serum_pmol_per_l=110)], days=180)
    s = comp.summary.set_index("regimen")["serum_6mo_pmol_per_l"]
    assert s["1000 mcg oral daily"] > s["100 mcg cyanocobalamin IM monthly"]


def test_duplicate_labels_are_made_unique():
    comp = compare(["1000 mcg oral daily", "1000 mcg oral daily"], ["healthy"], days=10)
    assert comp.summary["regimen"].nunique() == 2


def test_compare_rejects_empty_and_bad_inputs():
    with pytest.raises(b12pk.InputError, match="at least one"):
        compare([], ["healthy"], days=10)
    with pytest.raises(b12pk.InputError, match="cannot compare"):
        compare([42], ["healthy"], days=10)
    with pytest.raises(b12pk.HorizonError):
        compare(["1000 mcg oral daily"], ["healthy"], days=-3)


def test_progress_is_reported_for_every_simulation():
    calls = []
    compare(["1000 mcg oral daily"], ["healthy", "vegan"], days=5,
            progress=lambda done, total, label: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_patient_file_round_trip(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[patient]]\nlabel = "CKD"\npreset = "renal-impairment"\negfr_ml_min = 25\n'
                 '[[patient]]\npreset = "vegan"\nserum_pmol_per_l = 90\n', encoding="utf-8")
    pats = load_patients(f)
    assert pats[0].label == "CKD" and pats[0].patient.egfr_ml_min == 25
    assert pats[1].patient.baseline_serum_pmol_per_l == 90


@pytest.mark.parametrize("content, match", [
    ("", "no \\[patient\\]"),
    ("[[patient]]\nlabel = 'x'\n", "needs 'preset'"),
    ("[[patient]]\npreset = 3\n", "must be text"),
    ("[[patient\npreset = 'vegan'", "not valid"),
    (b"\x00\x01\xff", "not valid"),
])
def test_malformed_patient_files_are_rejected(tmp_path, content, match):
    f = tmp_path / "p.toml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(b12pk.FileFormatError, match=match):
        load_patients(f)


def test_unknown_setting_in_patient_file_is_rejected(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[patient]]\npreset = "vegan"\negfr = 20\n', encoding="utf-8")
    with pytest.raises(b12pk.UnknownNameError, match="egfr"):
        load_patients(f)


def test_missing_patient_file_is_rejected(tmp_path):
    with pytest.raises(b12pk.FileFormatError, match="cannot read"):
        load_patients(tmp_path / "nope.toml")


def test_atomic_output_dir_keeps_earlier_output_on_failure(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("boom")
    assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_atomic_output_dir_replaces_on_success(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_atomic_output_dir_refuses_a_file_in_the_way(tmp_path):
    f = tmp_path / "rep"
    f.write_text("x")
    with pytest.raises(b12pk.FileFormatError, match="not a folder"):
        with atomic_output_dir(f):
            pass
