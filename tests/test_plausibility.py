"""Plausibility checks: the model's physiology against verified published figures."""

from __future__ import annotations

import json

import pytest

import b12pk
import b12pk.cli
from b12pk.analysis.plausibility import check_plausibility, load_checks

# Known distortions of today's model (issue "Physiology v2"): strict, so that a fix that
# brings one inside its published range fails here and is moved to the passing list. The
# first three are early after an injection, where hydroxocobalamin leaves the injection site
# more slowly in the model (hydroxo_depot_half_life_h, 2.5 h) than "about the same serum at
# 1 h" (Scand J Haematol 1964) allows. The fourth is MMA at a low serum without treatment:
# the model's serum-stores relation puts near-empty stores behind a low serum (README). The
# CobaSorb three: holoTC carries each absorbed microgram for 1.5 h after a 9-h transit, so
# the response to a small oral course is too high the morning after and gone a day later.
# The last: every oral dose peaks about 8 h after it in the model (two transit steps for the
# intrinsic-factor and the passive part alike), where large doses peak within 6 h.
KNOWN_OUTSIDE = {"serum_ratio_oh_cn_500_5h", "serum_ratio_oh_cn_500_24h",
                 "serum_ratio_oh_cn_1h", "mma_serum_below_126", "cobasorb_holotc_ratio",
                 "cobasorb_serum_ratio", "cobasorb_holotc_change", "oral_peak_time_massive"}


@pytest.fixture(scope="module")
def plausibility():
    return check_plausibility()


def test_every_check_is_computed_with_its_source(plausibility):
    checks, sources = load_checks()
    t = plausibility.table
    assert list(t.id) == [c["id"] for c in checks]
    assert t.model.notna().all()
    assert set(t.source) <= set(sources)
    assert (t.low <= t.high).all()


@pytest.mark.parametrize("check_id", [c["id"] for c in load_checks()[0]])
def test_check_lies_in_its_published_range(plausibility, check_id, request):
    if check_id in KNOWN_OUTSIDE:
        request.applymarker(pytest.mark.xfail(strict=True, reason="known distortion "
                                                                  "(README, plausibility)"))
    row = plausibility.table.set_index("id").loc[check_id]
    assert row.low <= row.model <= row.high, (check_id, row.model, row.low, row.high)


def test_summary_counts_the_checks(plausibility):
    s = plausibility.summary()
    assert s["n_checks"] == len(plausibility.table)
    assert set(s["outside"]) == KNOWN_OUTSIDE
    assert s["n_inside"] == s["n_checks"] - len(KNOWN_OUTSIDE)


@pytest.mark.parametrize("text, match", [
    ("[sources.a]\ncitation='x'\n[[checks]]\nid='c'\nquestion='q'\nkind='nonsense'\n"
     "low=0\nhigh=1\nunit='u'\nsource='a'\nwhere='w'\n", "unknown kind"),
    ("[sources.a]\ncitation='x'\n[[checks]]\nid='c'\nkind='turnover'\n", "lacks"),
    ("[sources.a]\ncitation='x'\n[[checks]]\nid='c'\nquestion='q'\nkind='turnover'\n"
     "low=0\nhigh=1\nunit='u'\nsource='b'\nwhere='w'\n", "unknown source"),
])
def test_bad_check_files_are_refused(tmp_path, text, match):
    path = tmp_path / "plausibility.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(b12pk.FileFormatError, match=match):
        check_plausibility(path)


def test_validate_command_writes_the_plausibility_table(tmp_path, capsys):
    out = tmp_path / "validation"
    assert b12pk.cli.main(["validate", "--out", str(out)]) == 0
    assert (out / "plausibility.csv").read_text().startswith("id,question,model")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["plausibility"]["outside"]) == KNOWN_OUTSIDE
    assert "plausibility:" in capsys.readouterr().out


def test_a_change_can_be_read_as_a_difference():
    from b12pk.analysis.plausibility import oral_response

    args = (None, "9 mcg cyanocobalamin oral three times daily for 2 days", "healthy", 2.0,
            "holotc_pmol_per_l")
    ratio, diff = oral_response(*args), oral_response(*args, change="difference")
    before = diff / (ratio - 1.0)
    assert 20.0 < before < 200.0  # the healthy adult's holoTC, pmol/L
    with pytest.raises(b12pk.FileFormatError, match="unknown change"):
        oral_response(*args, change="percent")


def test_fit_targets_are_marked_and_counted_apart(plausibility):
    t = plausibility.table
    fitted = {"turnover_normal", "urine_72h_cyanocobalamin_1000",
              "urine_72h_hydroxocobalamin_1000", "retained_10", "retained_100", "retained_1000",
              "years_to_deficiency_without_intake", "holotc_share_healthy",
              "serum_ratio_oh_cn_5h", "serum_ratio_oh_cn_24h", "serum_ratio_oh_cn_72h",
              "serum_ratio_oh_cn_3wk", "oral_0.4mg_day3_holohc", "oral_peak_time_physiologic"}
    assert set(t.loc[t.fit_target, "id"]) == fitted
    s = plausibility.summary()
    assert s["n_not_fitted"] == len(t) - len(fitted)
    assert s["n_not_fitted_inside"] == int(t.loc[~t.fit_target, "inside"].sum())
