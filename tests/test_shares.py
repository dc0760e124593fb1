"""Shares of patients normalised: trial outcomes against a virtual population."""

from __future__ import annotations

import shutil

import pytest

import b12pk
import b12pk.cli
from b12pk._data import data_path
from b12pk.analysis.shares import SHARE_COLUMNS, validate_shares, wilson_interval


@pytest.fixture(scope="module")
def shares():
    return validate_shares(n=200, seed=3)


def test_per_protocol_shares_and_differences_are_compared(shares):
    t = shares.table
    assert list(t.columns) == list(SHARE_COLUMNS)
    ob12 = t.loc[t.trial == "ob12_sanzcuesta2020"]
    compared = ob12.loc[ob12.compared.astype(bool)]
    assert set(compared.analysis) == {"per-protocol"}
    assert len(compared) == 6  # 2 arms x 2 times, and the 2 printed differences
    assert compared.model.between(-100.0, 100.0).all()
    diff = compared.loc[compared.outcome == "pct_normalised_difference"]
    for row in diff.itertuples():
        arms = compared.loc[(compared.outcome == "pct_normalised")
                            & (compared.time_days == row.time_days)].set_index("arm")
        assert row.model == pytest.approx(arms.model["oral"] - arms.model["im"])


def test_intention_to_treat_and_missing_thresholds_are_listed_not_compared(shares):
    t = shares.table
    itt = t.loc[t.analysis == "ITT"]
    assert len(itt) == 6 and not itt.compared.any()
    assert itt.why_not_compared.str.contains("lost to follow-up").all()
    pa = t.loc[t.trial == "pa_oral_cohort2024"]
    assert not pa.compared.any() and pa.why_not_compared.str.contains("no threshold").all()


def test_inside_means_within_the_observed_interval(shares):
    t = shares.table.loc[shares.table.compared.astype(bool)]
    for row in t.itertuples():
        assert row.inside == (row.observed_low <= row.model <= row.observed_high)
    s = shares.summary()
    assert s["n_points"] == len(t) and s["n_inside"] == int(t.inside.astype(bool).sum())
    assert s["mean_abs_difference_points"] == pytest.approx(t.difference.abs().mean())


def test_same_seed_same_table(shares):
    again = validate_shares(n=200, seed=3)
    assert again.table.equals(shares.table)


def test_wilson_interval_of_a_known_share():
    low, high = wilson_interval(50.0, 100)
    assert low == pytest.approx(40.38, abs=0.01) and high == pytest.approx(59.62, abs=0.01)
    low, high = wilson_interval(100.0, 22)
    assert high == 100.0 and 84.0 < low < 86.0


@pytest.mark.parametrize("value", ["'211'", "-5", "true"])
def test_a_bad_threshold_is_refused(tmp_path, value):
    src = data_path("literature", "trials")
    for ext in ("csv", "toml"):
        shutil.copy(src / f"castelli2011.{ext}", tmp_path / f"castelli2011.{ext}")
    side = tmp_path / "castelli2011.toml"
    text = side.read_text(encoding="utf-8").replace("threshold_pg_per_ml = 350.0",
                                                    f"threshold_pg_per_ml = {value}")
    side.write_text(text, encoding="utf-8")
    with pytest.raises(b12pk.FileFormatError, match="threshold_pg_per_ml"):
        validate_shares(tmp_path, n=20)


def test_an_unknown_analysis_set_is_refused(tmp_path):
    src = data_path("literature", "trials")
    shutil.copy(src / "castelli2011.toml", tmp_path / "castelli2011.toml")
    csv = (src / "castelli2011.csv").read_text(encoding="utf-8")
    (tmp_path / "castelli2011.csv").write_text(csv.replace(",completers", ",per protocol"),
                                               encoding="utf-8")
    with pytest.raises(b12pk.FileFormatError, match="analysis set"):
        validate_shares(tmp_path, n=20)


def test_an_unknown_trial_column_is_refused(tmp_path):
    src = data_path("literature", "trials")
    shutil.copy(src / "castelli2011.toml", tmp_path / "castelli2011.toml")
    csv = (src / "castelli2011.csv").read_text(encoding="utf-8").splitlines()
    csv = [csv[0].replace(",analysis", ",analysys")] + csv[1:]
    (tmp_path / "castelli2011.csv").write_text("\n".join(csv) + "\n", encoding="utf-8")
    with pytest.raises(b12pk.FileFormatError, match="unknown columns"):
        validate_shares(tmp_path, n=20)


@pytest.mark.parametrize("threshold, expected", [(1.0, 100.0), (1e6, 0.0)])
def test_a_threshold_below_or_above_everyone(tmp_path, threshold, expected):
    src = data_path("literature", "trials")
    for ext in ("csv", "toml"):
        shutil.copy(src / f"castelli2011.{ext}", tmp_path / f"castelli2011.{ext}")
    side = tmp_path / "castelli2011.toml"
    side.write_text(side.read_text(encoding="utf-8").replace(
        "threshold_pg_per_ml = 350.0", f"threshold_pg_per_ml = {threshold}"), encoding="utf-8")
    t = validate_shares(tmp_path, n=50).table
    assert (t.model == expected).all() and (t.model_alternative == expected).all()
    assert (t.difference == expected - t.observed).all()


def test_a_difference_whose_arms_are_missing_is_listed(tmp_path):
    src = data_path("literature", "trials")
    shutil.copy(src / "ob12_sanzcuesta2020.toml", tmp_path / "ob12_sanzcuesta2020.toml")
    csv = (src / "ob12_sanzcuesta2020.csv").read_text(encoding="utf-8")
    (tmp_path / "ob12_sanzcuesta2020.csv").write_text(
        csv.replace("oral-minus-im,", "oral-minus-sc,"), encoding="utf-8")
    t = validate_shares(tmp_path, n=20).table
    diff = t.loc[t.outcome == "pct_normalised_difference"]
    assert not diff.compared.any()
    assert diff.loc[diff.analysis == "per-protocol", "why_not_compared"].str.contains(
        "arms of the difference").all()
