"""Parameters, patients, lab bands: loading, validation, sources."""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
import tomllib

import pytest

import b12pk
from b12pk import Patient
from b12pk._data import data_path


def test_every_parameter_has_a_source_and_status():
    table = b12pk.parameter_table()
    assert len(table) >= 25
    assert set(table["status"]) <= {"sourced", "derived", "assumed", "fitted"}
    assert (table["source"].str.len() > 20).all()


def test_every_parameter_value_lies_in_its_range():
    table = b12pk.parameter_table()
    assert ((table["low"] <= table["value"]) & (table["value"] <= table["high"])).all()


def test_every_reference_key_cited_in_model_file_exists():
    model = tomllib.loads(data_path("model.toml").read_text(encoding="utf-8"))
    keys = set(model["references"])
    text = " ".join(p["source"] for p in model["parameters"].values())
    cited = {k for k in keys if k in text}
    assert cited, "no reference cited"
    for word in ("carmel2008", "doets2013", "iom1998"):
        assert word in cited


def test_override_changes_one_parameter():
    p = b12pk.default_parameters().replace(passive_fraction=0.01)
    assert p["passive_fraction"] == 0.01
    assert p["if_capacity_ug"] == b12pk.default_parameters()["if_capacity_ug"]


def test_unknown_parameter_name_is_rejected_with_accepted_names():
    with pytest.raises(b12pk.UnknownNameError, match="unknown parameter name.*passive_fraction"):
        b12pk.default_parameters().replace(passive_fractoin=0.01)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 10.0, "x"])
def test_bad_parameter_value_is_rejected(value):
    with pytest.raises(b12pk.ParameterError, match="passive_fraction"):
        b12pk.default_parameters().replace(passive_fraction=value)


def test_patient_override_of_unknown_parameter_is_rejected():
    with pytest.raises(b12pk.UnknownNameError):
        Patient(overrides={"not_a_parameter": 1.0})


def test_parameters_are_immutable_and_picklable():
    p = b12pk.default_parameters()
    with pytest.raises(TypeError):
        p.values["passive_fraction"] = 0.5
    assert pickle.loads(pickle.dumps(p)) == p
    patient = Patient.preset("vegan", overrides={"passive_fraction": 0.01})
    assert pickle.loads(pickle.dumps(patient)) == patient
    assert hash(patient) == hash(pickle.loads(pickle.dumps(patient)))


@pytest.mark.parametrize("name", ["healthy", "vegan", "atrophic-gastritis",
                                  "pernicious-anaemia", "ileal-resection", "roux-en-y",
                                  "sleeve-gastrectomy", "renal-impairment", "metformin"])
def test_presets_named_in_the_issue_exist(name):
    assert Patient.preset(name).name == name


def test_american_spelling_is_an_alias():
    assert Patient.preset("pernicious-anemia") == Patient.preset("pernicious-anaemia")


def test_unknown_preset_lists_accepted_names():
    with pytest.raises(b12pk.UnknownNameError, match="accepted: healthy, vegan"):
        Patient.preset("martian")


def test_unknown_preset_setting_is_rejected():
    with pytest.raises(b12pk.UnknownNameError, match="unknown patient setting 'egfr'"):
        Patient.preset("healthy", egfr=30)


@pytest.mark.parametrize("setting, value", [
    ("serum_pmol_per_l", -5.0), ("serum_pmol_per_l", math.nan), ("egfr_ml_min", 0.0),
    ("egfr_ml_min", 500.0), ("ileal_resection_cm", -1.0), ("diet_ug_per_day", math.inf),
    ("intrinsic_factor", 1.5), ("stores_ug", -10.0),
])
def test_out_of_range_patient_setting_is_rejected(setting, value):
    with pytest.raises(b12pk.PatientError, match="accepted"):
        Patient.preset("healthy", **{setting: value})


def test_both_baselines_at_once_are_rejected():
    with pytest.raises(b12pk.PatientError, match="either"):
        Patient(baseline_serum_pmol_per_l=100, baseline_stores_ug=500)


def test_ileal_resection_below_20_cm_keeps_absorption_and_60_cm_removes_it():
    assert Patient(ileal_resection_cm=15).ileal_function == 1.0
    assert 0.0 < Patient(ileal_resection_cm=40).ileal_function < 1.0
    assert Patient(ileal_resection_cm=60).ileal_function == 0.0


def test_pernicious_anaemia_has_no_if_route():
    assert Patient.preset("pernicious-anaemia").if_route_factor == 0.0


def test_metformin_lowers_steady_state_serum_by_about_19_percent():
    healthy = b12pk.simulate([], "healthy", days=1)["serum_pmol_per_l"].iloc[0]
    metformin = b12pk.simulate([], Patient.preset("metformin", serum_pmol_per_l=None),
                               days=1)["serum_pmol_per_l"].iloc[0]
    assert metformin / healthy - 1.0 == pytest.approx(-0.19, abs=0.005)


def test_unit_conversion_uses_molar_mass():
    assert b12pk.pg_per_ml_to_pmol_per_l(200.0) == pytest.approx(147.56, abs=0.01)
    assert b12pk.pmol_per_l_to_pg_per_ml(b12pk.pg_per_ml_to_pmol_per_l(350.0)) == \
        pytest.approx(350.0)


def test_lab_bands_come_from_the_seed_documents():
    bands = b12pk.lab_bands()
    names = [b["name"] for b in bands["total_b12"]]
    assert names == ["deficient", "indeterminate", "unlikely"]
    assert all("seed article" in b["source"] for b in bands["total_b12"])
    assert not any(re.search(r"\d{3}_[0-9a-f]{16}", b["source"])  # titles, not file names
                   for b in bands["total_b12"])
    assert bands["mma"]["threshold_nmol_per_l"] == 271.0


def test_import_is_light():
    code = ("import sys, b12pk; heavy = {'matplotlib', 'dask', 'libsbml', 'roadrunner'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_every_data_file_is_shipped_with_the_package():
    """Each file under data/ matches a package-data pattern of pyproject.toml, so an
    installed (non-editable) b12pk finds it."""
    import fnmatch
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = conf["tool"]["setuptools"]["package-data"]["b12pk.data"]
    data = root / "data"
    for f in data.rglob("*"):
        if f.is_file() and f.suffix in (".csv", ".toml", ".md"):
            rel = f.relative_to(data).as_posix()
            assert any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/")
                       for p in patterns), rel


def test_parameter_spec_gives_one_declared_parameter_and_refuses_unknown_names():
    from b12pk.errors import UnknownNameError
    from b12pk.model.parameters import parameter_spec, parameter_table

    table = parameter_table().set_index("name")
    spec = parameter_spec("store_capacity_ug")
    assert spec.value == table.loc["store_capacity_ug", "value"]
    assert (spec.low, spec.high) == (table.loc["store_capacity_ug", "low"],
                                     table.loc["store_capacity_ug", "high"])
    with pytest.raises(UnknownNameError, match="no_such_parameter"):
        parameter_spec("no_such_parameter")


def test_patients_and_parameters_are_their_own_deep_copies():
    # immutable values: copying them (pandas deep-copies a result's attrs on every column
    # read) returns the same object, and they stay equal and hashable
    import copy

    patient = b12pk.Patient.preset("pernicious-anaemia", serum_pmol_per_l=110)
    params = patient.parameters()
    assert copy.deepcopy(patient) is patient and copy.deepcopy(params) is params
    df = b12pk.simulate("1000 mcg IM monthly", patient, 40.0)
    assert df["serum_pmol_per_l"].attrs["patient"] is patient
