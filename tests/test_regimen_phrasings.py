"""Regimens as guidelines and prescribers write them: each phrasing reads to its canonical
text (with a one-line warning where b12pk assumes something), or is refused with its error."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import b12pk
from b12pk.errors import B12pkWarning, HorizonError, RegimenSyntaxError
from b12pk.regimen.language import Regimen, labelled_variants

#: phrasing -> (canonical text, the warning it gives or None)
READS = [
    ("1000 mcg PO daily", "1000 mcg cyanocobalamin oral daily indefinitely", None),
    ("1000 mcg SL daily", "1000 mcg cyanocobalamin sublingual daily indefinitely", None),
    ("1000 mcg IM qd", "1000 mcg cyanocobalamin IM daily indefinitely", None),
    ("1000 mcg oral od", "1000 mcg cyanocobalamin oral daily indefinitely", None),
    ("1000 mcg oral bid", "1000 mcg cyanocobalamin oral twice daily indefinitely", None),
    ("1000 mcg IM qw", "1000 mcg cyanocobalamin IM weekly indefinitely", None),
    ("1000 mcg IM q3months", "1000 mcg cyanocobalamin IM every 3 months indefinitely", None),
    ("1000 mcg IM q2wk", "1000 mcg cyanocobalamin IM every 2 weeks indefinitely", None),
    ("1000 mcg IM once a month", "1000 mcg cyanocobalamin IM monthly indefinitely", None),
    ("1000 mcg SC monthly", "1000 mcg cyanocobalamin deep SC monthly indefinitely", None),
    ("1000 mcg nasal spray weekly", "1000 mcg cyanocobalamin intranasal weekly indefinitely",
     None),
    ("500 mcg in one nostril weekly", "500 mcg cyanocobalamin intranasal weekly indefinitely",
     None),
    ("1000 mcg nasal spray in one nostril weekly",
     "1000 mcg cyanocobalamin intranasal weekly indefinitely", None),
    ("1000 mcg B12 injection monthly", "1000 mcg cyanocobalamin IM monthly indefinitely",
     "'injection' with no route is read as intramuscular"),
    ("4 mcg daily", "4 mcg cyanocobalamin oral daily indefinitely", "no route given: read as oral"),
    ("1000 µg weekly", "1000 mcg cyanocobalamin oral weekly indefinitely",
     "no route given: read as oral"),
    ("1000 mcg hydroxocobalamin IM on alternate days until no further improvement, then every "
     "2 months", "1000 mcg hydroxocobalamin IM every 2 days until no further improvement (max 6 "
     "weeks), then 1000 mcg hydroxocobalamin IM every 2 months indefinitely",
     "'until no further improvement' read as 6 weeks"),
    ("1000 mcg oral daily until levels normalize, then 1000 mcg oral weekly",
     "1000 mcg cyanocobalamin oral daily until levels normalize (max 3 months), then 1000 mcg "
     "cyanocobalamin oral weekly indefinitely", "'until levels normalize' read as 3 months"),
]

#: phrasing -> (error class, words of its one-line message)
REFUSED = [
    ("1000 mcg IM biweekly", RegimenSyntaxError, "'twice weekly' or 'every 2 weeks'"),
    ("1.000 mcg oral daily", RegimenSyntaxError, "'1.000' is ambiguous"),
    ("0\u06605 mg oral daily", RegimenSyntaxError, "digits of different scripts"),
    ("1000 mcg IM on days 10, 20, then 1000 mcg IM on days 1, 2", HorizonError, "phase 2"),
]

#: a text with ranges -> the labels of its variants
RANGES = [
    ("1000-2000 mcg oral daily", ["1000 mcg oral daily", "2000 mcg oral daily"]),
    ("1000 mcg IM every 2-3 months", ["1000 mcg IM every 2 months", "1000 mcg IM every 3 months"]),
    ("30 mcg IM daily for 5-10 days", ["30 mcg IM daily for 5 days", "30 mcg IM daily for 10 days"]),
    ("1000 mcg IM 2 to 3 times weekly", ["1000 mcg IM 2 times weekly", "1000 mcg IM 3 times weekly"]),
]


@pytest.mark.parametrize("text, canonical, warned", READS, ids=[r[0][:40] for r in READS])
def test_a_phrasing_reads_to_its_canonical_text(text, canonical, warned):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = Regimen.parse(text)
    assert reg.to_text() == canonical
    said = [str(w.message) for w in caught if issubclass(w.category, B12pkWarning)]
    if warned is None:
        assert not said
    else:
        assert len(said) == 1 and warned in said[0] and "\n" not in said[0]


@pytest.mark.parametrize("text, cls, words", REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_a_misreadable_phrasing_is_refused_in_one_line(text, cls, words):
    with pytest.raises(cls) as info:
        Regimen.parse(text)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, labels", RANGES, ids=[r[0] for r in RANGES])
def test_a_range_gives_one_labelled_regimen_per_end(text, labels):
    got = labelled_variants(text)
    assert [label for label, _ in got] == labels
    for label, reg in got:
        assert reg == Regimen.parse(label)


def test_compare_takes_a_range_as_its_ends():
    c = b12pk.compare(["1000-2000 mcg oral daily"], ["vegan"], days=20)
    assert list(c.summary["regimen"]) == ["1000 mcg oral daily", "2000 mcg oral daily"]


def test_the_command_line_simulates_each_end_of_a_range(tmp_path, capsys):
    from b12pk.cli import main

    out = tmp_path / "range.csv"
    assert main(["simulate", "--regimen", "1000-2000 mcg oral daily", "--days", "3", "--out",
                 str(out)]) == 0
    df = pd.read_csv(out)
    assert list(dict.fromkeys(df["variant"])) == ["1000 mcg oral daily", "2000 mcg oral daily"]
    assert "holds a range: simulated at each end (2 regimens)" in capsys.readouterr().err
