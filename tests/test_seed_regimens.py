"""The seed regimen catalogue: every row is quoted faithfully, parses, and doses as hand-checked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from b12pk.errors import B12pkWarning

from b12pk.errors import RegimenSyntaxError
from b12pk.regimen.language import Regimen, regimen_variants

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "data" / "regimens" / "seed_regimens.csv"
SEEDS = Path("/work/shared/seeds")
COLUMNS = ["id", "seed_file", "quote", "regimen_phrase", "phrase_source", "population",
           "canonical_text", "open_ended_days", "first_doses_expected", "reading_notes"]


def _rows() -> list[dict[str, str]]:
    with CATALOGUE.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


ROWS = _rows()


def _norm(text: str) -> str:
    return " ".join(text.split())


def _variants(row: dict[str, str]) -> list[Regimen]:
    kwargs = {}
    if row["open_ended_days"]:
        kwargs["open_ended_days"] = float(row["open_ended_days"])
    return regimen_variants(row["regimen_phrase"], **kwargs)


def _expected(row: dict[str, str]) -> list[list[tuple[float, float]]]:
    groups = []
    for group in row["first_doses_expected"].split(" | "):
        pairs = [item.split(":") for item in group.split(";")]
        groups.append([(float(day), float(amount)) for day, amount in pairs])
    return groups


def test_catalogue_has_the_documented_columns():
    with CATALOGUE.open(encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh)) == COLUMNS


def test_catalogue_has_a_few_dozen_rows_with_unique_ids():
    ids = [row["id"] for row in ROWS]
    assert len(ids) == 60
    assert len(set(ids)) == len(ids)


def test_catalogue_covers_all_five_seeds():
    assert {row["seed_file"] for row in ROWS} == {p.name for p in SEEDS.glob("*.txt")} \
        or not SEEDS.exists()


@pytest.mark.skipif(not SEEDS.exists(), reason="seed documents not available")
@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_quote_occurs_in_its_seed(row):
    text = _norm((SEEDS / row["seed_file"]).read_text(encoding="utf-8"))
    for fragment in row["quote"].split(" | "):
        assert _norm(fragment) in text


@pytest.mark.parametrize("row", [r for r in ROWS if r["phrase_source"] == "cut"],
                         ids=[r["id"] for r in ROWS if r["phrase_source"] == "cut"])
def test_cut_phrase_is_taken_from_the_quote(row):
    assert any(_norm(row["regimen_phrase"]) in _norm(f) for f in row["quote"].split(" | "))


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_phrase_doses_match_hand_checked_expectations(row):
    variants = _variants(row)
    expected = _expected(row)
    assert len(variants) == len(expected)
    for regimen, want in zip(variants, expected):
        events = regimen.dose_events(400.0)
        got = [(e.time_days + 1.0, e.amount_ug) for e in events[:len(want)]]
        assert got == want


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_canonical_text_column_matches_and_parses_back(row):
    variants = _variants(row)
    texts = row["canonical_text"].split(" | ")
    assert texts == [v.to_text() for v in variants]
    assert [Regimen.parse(t) for t in texts] == variants


def test_every_row_has_a_population_and_source():
    for row in ROWS:
        assert row["population"]
        assert row["phrase_source"] in ("cut", "reading")
        if row["phrase_source"] == "reading":
            assert row["reading_notes"], row["id"]


RANGE_ROWS = [r for r in ROWS if " | " in r["canonical_text"]]


@pytest.mark.parametrize("row", RANGE_ROWS, ids=[r["id"] for r in RANGE_ROWS])
def test_rows_with_ranges_are_refused_by_parse(row):
    kwargs = {}
    if row["open_ended_days"]:
        kwargs["open_ended_days"] = float(row["open_ended_days"])
    with pytest.raises(RegimenSyntaxError, match="regimen_variants"):
        Regimen.parse(row["regimen_phrase"], **kwargs)


def test_open_ended_rows_read_with_a_stated_stop():
    rows = [r for r in ROWS if r["open_ended_days"] and " | " not in r["canonical_text"]]
    assert rows
    for row in rows:
        with pytest.warns(B12pkWarning, match="read as .* \\(assumed"):
            reg = Regimen.parse(row["regimen_phrase"])
        assert "(max " in reg.to_text()
