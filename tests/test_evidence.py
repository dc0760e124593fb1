"""Evidence analysis: claims catalogue, rubric, reproducibility, verdict flips, outputs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

import b12pk
from b12pk.analysis import evidence as ev
from b12pk.errors import FileFormatError, InputError

SEEDS = Path(b12pk.__file__).resolve().parents[2] / "shared" / "seeds"
CLAIMS = ev.load_claims()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------- catalogue

@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed documents not found at {SEEDS}")
def test_every_quote_occurs_verbatim_in_its_existing_seed_file():
    for row in CLAIMS.itertuples():
        path = SEEDS / row.seed_file
        assert path.is_file(), row.id
        text = _norm(path.read_text(encoding="utf-8"))
        for fragment in row.quote.split(" | "):
            assert _norm(fragment) in text, (row.id, fragment)
    assert ev.quote_problems(CLAIMS, SEEDS) == []


def test_quote_problems_reports_a_missing_seed_folder(tmp_path):
    with pytest.raises(FileFormatError, match="seed documents not found"):
        ev.quote_problems(CLAIMS, tmp_path / "nope")


def test_catalogue_covers_every_seed_and_category():
    assert set(CLAIMS["category"]) == set(ev.CATEGORIES)
    assert CLAIMS["seed_file"].nunique() == 5
    assert CLAIMS["id"].is_unique
    judgement = CLAIMS[CLAIMS["category"] == "clinical-judgement"]
    assert (judgement["check"] == "").all()
    checked = CLAIMS[CLAIMS["check"] != ""]
    assert len(checked) >= 50
    assert all(c.strip() for c in CLAIMS["cited_source"])


# ---------------------------------------------------------------- rubric

@pytest.mark.parametrize("category,model,data,partial,want", [
    ("quantitative-pk", "supports", None, False, ev.CONSISTENT),
    ("quantitative-pk", "mixed", None, False, ev.PARTLY),
    ("quantitative-pk", "contradicts", None, False, ev.INCONSISTENT),
    ("quantitative-pk", "supports", "contradicts", False, ev.PARTLY),
    ("quantitative-pk", "contradicts", "supports", False, ev.PARTLY),
    ("quantitative-pk", "supports", "mixed", False, ev.CONSISTENT),
    ("quantitative-pk", "supports", "supports", True, ev.PARTLY),
    ("quantitative-pk", "contradicts", None, True, ev.INCONSISTENT),
    ("quantitative-pk", None, "supports", False, ev.CONSISTENT),
    ("quantitative-pk", None, None, False, ev.NOT_CHECKABLE),
    ("trial-outcome", "mixed", "supports", False, ev.CONSISTENT),
    ("trial-outcome", "contradicts", "supports", False, ev.PARTLY),
    ("trial-outcome", "supports", None, False, ev.CONSISTENT),
    ("clinical-judgement", "supports", "supports", False, ev.NOT_CHECKABLE),
])
def test_rubric(category, model, data, partial, want):
    assert ev.verdict_from_lines(category, model, data, partial) == want


def test_rubric_rejects_unknown_lines_and_categories():
    with pytest.raises(InputError):
        ev.verdict_from_lines("quantitative-pk", "maybe", None)
    with pytest.raises(InputError):
        ev.verdict_from_lines("opinion", "supports", None)


@pytest.mark.parametrize("k,want", [
    (25, "supports"), (50, "supports"), (20, "mixed"), (56, "mixed"), (10, "contradicts"),
    (70, "contradicts"), (0, "contradicts"), (100, "contradicts")])
def test_share_line_uses_the_claimed_range_and_the_sampling_interval(k, want):
    assert ev.share_line(k, 100, 0.25, 0.5) == want


def test_share_line_refuses_impossible_counts():
    with pytest.raises(InputError):
        ev.share_line(5, 4, 0.0, 1.0)


def test_virtual_patients_vary_and_reproduce():
    one = ev.virtual_patients("pernicious-anaemia@110")
    assert len(one) == ev.SHARE_PATIENTS
    assert one == ev.virtual_patients.__wrapped__("pernicious-anaemia@110")   # same seed
    baselines = [p.baseline_serum_pmol_per_l for p, _ in one]
    assert min(baselines) < 110 < max(baselines)
    assert len({ov for _, ov in one}) == len(one)


# ---------------------------------------------------------------- bad rows

def _write(tmp_path, **changes) -> Path:
    df = CLAIMS[CLAIMS["id"].isin(["C307", "C010"])].copy()
    df["days"] = df["days"].map(lambda d: "" if math.isnan(d) else f"{d:g}")
    target = df.index[df["id"] == "C307"][0]
    for col, value in changes.items():
        df.loc[target, col] = value
    path = tmp_path / "claims.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("changes,match", [
    ({"category": "opinion"}, "category"),
    ({"quote": ""}, "empty quote"),
    ({"id": ""}, "empty id"),
    ({"check": "A.nonsense_d30 >= DEF"}, "unknown metric"),
    ({"check": "adequate(Z)"}, "not in the regimens"),
    ({"data_checks": "no_such_trial"}, "unknown data check"),
    ({"sensitivity": "no_such_parameter"}, "sensitivity parameter"),
    ({"regimens": "A=1000 mcg unicorn IM monthly"}, "regimen"),
    ({"populations": "martian@110"}, "population"),
])
def test_bad_claim_rows_raise_file_format_error(tmp_path, changes, match):
    path = _write(tmp_path, **changes)
    with pytest.raises(FileFormatError, match=match):
        claims = ev.load_claims(path)
        ev.evaluate_claims(claims, ids=["C307"], max_days=1)


def test_missing_column_and_missing_file(tmp_path):
    path = tmp_path / "claims.csv"
    CLAIMS.drop(columns=["quote"]).to_csv(path, index=False)
    with pytest.raises(FileFormatError, match="quote"):
        ev.load_claims(path)
    with pytest.raises(FileFormatError):
        ev.load_claims(tmp_path / "absent.csv")


def test_duplicate_ids_are_refused(tmp_path):
    path = tmp_path / "claims.csv"
    pd.concat([CLAIMS.head(2), CLAIMS.head(1)]).to_csv(path, index=False)
    with pytest.raises(FileFormatError, match="duplicate"):
        ev.load_claims(path)


def test_a_quote_catalogued_twice_is_refused(tmp_path):
    twin = CLAIMS.head(1).copy()
    twin["id"] = "C099"
    twin["check"] = ""
    path = tmp_path / "claims.csv"
    pd.concat([CLAIMS.head(2), twin]).to_csv(path, index=False)
    with pytest.raises(FileFormatError, match="C001 and C099 quote the same words"):
        ev.load_claims(path)


def test_one_proposition_checked_twice_in_one_article_is_refused(tmp_path):
    first = CLAIMS[CLAIMS["id"] == "C102"]
    twin = first.copy()
    twin["id"], twin["quote"] = "C199", "Oral supplementation is effective"
    path = tmp_path / "claims.csv"
    pd.concat([first, twin]).to_csv(path, index=False)
    with pytest.raises(FileFormatError, match="C102 and C199 of one article check the same"):
        ev.load_claims(path)


def test_merged_claims_keep_every_quote_and_name_the_merged_ids():
    row = CLAIMS.set_index("id").loc["C102"]
    assert len(row["quote"].split(" | ")) == 3
    assert row["merged"] == "C103; C111"
    assert not set(CLAIMS["id"]) & {"C103", "C111", "C108", "C204", "C213", "C310", "C312",
                                     "C413"}


# ---------------------------------------------------------------- evaluation

IDS = ["C307", "C004", "C002", "C010"]


@pytest.fixture(scope="module")
def result():
    return ev.evaluate_claims(ids=IDS)


def test_verdicts_are_reproducible(result):
    ev.clear_cache()
    again = ev.evaluate_claims(ids=IDS)
    pd.testing.assert_frame_equal(result.table, again.table)


def test_known_verdicts(result):
    t = result.table.set_index("id")
    assert t.loc["C307", "verdict"] == ev.CONSISTENT          # monthly beats 3-monthly
    assert t.loc["C010", "verdict"] == ev.NOT_CHECKABLE       # clinical judgement
    assert t.loc["C004", "data_line"] == "supports"           # PA cohort 88.5 %
    assert "virtual patients" in t.loc["C004", "scenarios_holding"]
    assert t.loc["C002", "verdict"] == ev.CONSISTENT          # passive ~1 %
    assert "trough_ss" in t.loc["C307", "key_numbers"]


def test_swapping_the_regimens_flips_the_verdict(result):
    row = CLAIMS[CLAIMS["id"] == "C307"].copy()
    regs = dict(p.split("=", 1) for p in row["regimens"].iloc[0].split("; "))
    row["regimens"] = f"A={regs['B']}; B={regs['A']}"
    swapped = ev.evaluate_claims(row)
    assert swapped.table["verdict"].iloc[0] == ev.INCONSISTENT
    assert result.table.set_index("id").loc["C307", "verdict"] == ev.CONSISTENT


def test_a_parameter_override_can_make_a_claim_pass_or_fail():
    row = CLAIMS[CLAIMS["id"] == "C002"].copy()
    row["check"] = "A.absorbed_frac >= 0.0135"     # needs more passive absorption than default
    row["sensitivity"] = ""
    row["data_checks"] = ""
    assert ev.evaluate_claims(row).table["verdict"].iloc[0] == ev.INCONSISTENT
    high = ev.evaluate_claims(row, overrides={"passive_fraction": 0.015})
    assert high.table["verdict"].iloc[0] == ev.CONSISTENT
    with pytest.raises(Exception):
        ev.evaluate_claims(row, overrides={"passive_fraction": 0.10})   # outside its range


def test_unknown_id_is_refused():
    with pytest.raises(InputError):
        ev.evaluate_claims(ids=["C999"])


# ---------------------------------------------------------------- contradictions and outputs

def _sides(verdicts, sides, seeds):
    n = len(verdicts)
    return pd.DataFrame({"id": [f"X{i}" for i in range(n)], "verdict": verdicts,
                         "topic": ["t"] * n, "side": sides, "seed_file": seeds,
                         "key_numbers": ["k"] * n, "data_evidence": [""] * n})


def test_contradictions_pick_the_better_side():
    seeds = list(ev.articles())
    table = _sides([ev.CONSISTENT, ev.INCONSISTENT, ev.PARTLY], ["yes", "no", "no"],
                   [seeds[0], seeds[1], seeds[1]])
    c = ev.contradictions(table)
    assert len(c) == 1
    assert c["supports"].iloc[0] == "side A: yes"
    assert c["score_b"].iloc[0] == pytest.approx(0.25)
    assert c["where"].iloc[0] == "between articles"


def test_an_article_counts_once_on_its_side():
    seeds = list(ev.articles())
    # three sentences of one article and one of another on side "yes"
    table = _sides([ev.CONSISTENT] * 3 + [ev.INCONSISTENT, ev.PARTLY],
                   ["yes"] * 4 + ["no"], seeds[:1] * 3 + [seeds[1], seeds[2]])
    c = ev.contradictions(table)
    assert c["score_a"].iloc[0] == pytest.approx(0.5)     # (1 + 0) / 2, not 3/4
    assert c["supports"].iloc[0] == "neither clearly"


def test_an_article_on_both_sides_is_a_disagreement_within_it():
    seeds = list(ev.articles())
    table = _sides([ev.CONSISTENT, ev.INCONSISTENT], ["yes", "no"], [seeds[3], seeds[3]])
    c = ev.contradictions(table)
    title = ev.article_title(seeds[3], short=True)
    assert c["where"].iloc[0] == f"within \u201c{title}\u201d"


def test_the_shipped_contradictions_are_between_sides_that_disagree(full_result):
    c = full_result.contradictions
    assert len(c) >= 3
    assert "intranasal" not in set(c["topic"])     # both regimens of one article: no conflict
    assert (c["side_a"] != c["side_b"]).all()


def test_markdown_figure_and_files(result, tmp_path):
    md = b12pk.evidence_markdown(result)
    assert "C307" in md and "Rubric" in md and "quantitative-pk" in md
    paths = b12pk.write_evidence(tmp_path, result)
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    back = pd.read_csv(paths["evidence"])
    assert sorted(back["id"]) == sorted(IDS)
    assert set(back["verdict"]) <= set(ev.VERDICTS)


def test_threads_give_the_same_verdicts_as_one():
    ids = ["C001", "C102", "C209", "C307", "C308"]
    ev.clear_cache()
    one = ev.evaluate_claims(ids=ids, workers=1, max_days=120).table
    ev.clear_cache()
    two = ev.evaluate_claims(ids=ids, workers=2, max_days=120).table
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(b12pk.InputError, match="workers"):
        ev.evaluate_claims(ids=["C001"], workers=workers)


# ---------------------------------------------------------------- success lines

def test_a_macro_takes_its_sources_success_line():
    lines = ev.success_lines()
    assert lines["OB12_NORMAL"]["value_pmol_per_l"] == pytest.approx(211 * 0.7378, abs=0.1)
    check = ev._parse_check("adequate(A, OB12_NORMAL)")
    consts = [c.rhs.const for _neg, conds in check.groups for c in conds]
    assert consts[:2] == [lines["OB12_NORMAL"]["value_pmol_per_l"]] * 2
    assert consts[2] == pytest.approx(ev.DEF)          # never deficient after day 30: unchanged


def test_the_line_decides_the_verdict():
    row = CLAIMS[CLAIMS["id"] == "C006"].copy()
    judged = {}
    for line in ("REPLETE", "DEF"):
        row["check"] = f"adequate(A*, {line})"
        judged[line] = ev.evaluate_claims(row, max_days=200).table["model_line"].iloc[0]
    assert judged["REPLETE"] == "contradicts" and judged["DEF"] == "supports"


@pytest.mark.parametrize("check,match", [
    ("adequate(A, NOPE)", "unknown success line"),
    ("adequate(A, REPLETE, DEF)", "takes 1 to 2 arguments"),
    ("equivalent(A)", "takes 2 to 2 arguments")])
def test_bad_macro_arguments_are_refused(tmp_path, check, match):
    with pytest.raises(FileFormatError, match=match):
        ev.load_claims(_write(tmp_path, check=check))


# ---------------------------------------------------------------- checks on numbers only

def test_a_unit_conversion_claim_is_judged_without_simulation():
    row = CLAIMS[CLAIMS["id"] == "C023"].copy()
    assert ev.evaluate_claims(row).table["verdict"].iloc[0] == ev.INCONSISTENT
    row["check"] = "133 >= 0.95*180 pg/mL; 133 <= 1.05*180 pg/mL"     # the right conversion
    assert ev.evaluate_claims(row).table["verdict"].iloc[0] == ev.CONSISTENT


def test_a_check_on_a_simulated_metric_still_needs_regimens(tmp_path):
    with pytest.raises(FileFormatError, match="needs regimens"):
        ev.load_claims(_write(tmp_path, regimens="", check="A.serum_d90 >= REPLETE"))


# ---------------------------------------------------------------- probability under the posterior

def test_posterior_probability_reproduces_and_follows_the_verdict():
    one = ev.evaluate_claims(ids=["C307", "C006"], draws=6, seed=3, max_days=400).table
    two = ev.evaluate_claims(ids=["C307", "C006"], draws=6, seed=3, max_days=400).table
    pd.testing.assert_frame_equal(one, two)
    p = one.set_index("id")["probability_holds"]
    assert p["C307"] == 1.0 and p["C006"] <= 0.5
    plain = ev.evaluate_claims(ids=["C307"], max_days=400).table
    assert math.isnan(plain["probability_holds"].iloc[0])


@pytest.mark.parametrize("draws", [-1, 1.5, True, ev.MAX_DRAWS + 1])
def test_bad_draw_counts_are_refused(draws):
    with pytest.raises(InputError, match="draws"):
        ev.evaluate_claims(ids=["C307"], draws=draws)


def test_a_share_of_lowest_serum_is_read_per_patient_as_single_runs_give_it():
    # C211: the population engine's per-patient lowest serum from day 60 (the fast path
    # of share claims) against one simulation per virtual patient
    claims = ev.load_claims()
    row = claims[claims.id == "C211"].iloc[0]
    (check,) = ev._parse_options(row["check"])
    regs = ev._parse_regimens(row["regimens"])
    labels = sorted(regs)
    pop = ev._split(row["populations"])[0]
    minima = ev._share_minima(check, labels, regs, pop, (), float(row["days"]))
    assert minima is not None
    for lab in labels:
        single = [ev.metric("min_from_d60", ev._run(regs[lab][0], p, ov, float(row["days"])),
                            float(row["days"]))
                  for p, ov in ev.virtual_patients(pop)]
        assert minima[(lab, "min_from_d60")] == pytest.approx(single, rel=1e-3)


def test_share_claims_need_no_single_runs_for_the_same_verdict(monkeypatch):
    fast = ev.evaluate_claims(ids=["C013"], workers=1).table.iloc[0]
    monkeypatch.setattr(ev, "_share_minima", lambda *a, **k: None)
    ev.clear_cache()
    slow = ev.evaluate_claims(ids=["C013"], workers=1).table.iloc[0]
    assert (fast["verdict"], fast["scenarios_holding"]) == \
        (slow["verdict"], slow["scenarios_holding"])


def test_the_shipped_catalogue_is_kept_on_disk_and_other_runs_are_not(tmp_path, monkeypatch):
    monkeypatch.setenv("B12PK_CACHE_DIR", str(tmp_path))
    runs = []

    def fake(claims, base, max_days, workers, draws, seed, progress):
        runs.append((base, max_days, draws, seed))
        return ev.EvidenceResult(table=claims.head(0), contradictions=claims.head(0),
                                 claims=claims, settings={"draws": draws, "seed": seed})

    monkeypatch.setattr(ev, "_evaluate", fake)
    monkeypatch.setattr(ev, "_SHIPPED", ev.DataCache(lambda *a: 1 / 0, "evidence"))
    ev.evaluate_claims()
    monkeypatch.setattr(ev, "_SHIPPED", ev.DataCache(lambda *a: 1 / 0, "evidence"))
    assert ev.evaluate_claims(workers=1).settings == {"draws": 0, "seed": 0}  # from disk
    ev.evaluate_claims(draws=2, seed=1)                  # another key: computed
    ev.evaluate_claims(max_days=30)                      # capped: never cached
    ev.evaluate_claims(ids=["C001"])
    ev.evaluate_claims(overrides={"passive_fraction": 0.012})
    assert [r[2:] for r in runs[:2]] == [(0, 0), (2, 1)]
    assert len(runs) == 5
    assert len(list(tmp_path.glob("evidence-*.pickle"))) == 2
