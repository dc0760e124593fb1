"""Fuzz the regimen parser and the file loaders with random text (not part of the test suite).

Run from the repository root::

    python tests/fuzz/fuzz_parsers.py 180          # about 180 seconds in all
    python tests/fuzz/fuzz_parsers.py 60 --target parse

Every target feeds random (and grammar-shaped) input to one reader and accepts only
b12pk's own errors (``B12pkError``); any other exception is a crash: it is printed with its input and the run
exits with status 1. The script prints how many inputs ran. pytest does not collect it
(``tests/fuzz/fuzz_*.py`` does not match ``test_*.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

import b12pk
from b12pk import B12pkError, Regimen, load_regimens, read_event_table, regimen_variants
from b12pk.analysis.compare import load_patients

# -- input strategies ----------------------------------------------------------------------

WORDS = [
    "1000", "2000", "500", "1", "0", "0.5", "1,000", "100000", "1e3", "-", "–", "—", ",", ";",
    ".", "(", ")", "/", ":", "mcg", "µg", "μg", "ug", "mg", "microgram", "oral", "orally", "PO",
    "IM", "intramuscular", "deep", "SC", "sublingual", "SL", "nasal", "intranasal", "IV",
    "cyanocobalamin", "hydroxocobalamin", "hydroxo", "methyl", "CNCbl", "OHCbl", "daily",
    "weekly", "monthly", "fortnightly", "quarterly", "yearly", "every", "other", "second",
    "day", "days", "week", "weeks", "month", "months", "year", "hours", "h", "once", "twice",
    "thrice", "three", "times", "x", "a", "per", "single", "dose", "doses", "injection",
    "alternate", "on", "at", "for", "life", "until", "no", "further", "improvement",
    "levels", "normalize", "max", "maximum", "most", "up", "to", "from", "starting", "then",
    "followed", "by", "and", "thereafter", "indefinitely", "lifelong", "continue", "or",
    "biweekly", "bi", "there", "is", "in", "symptoms", "neurological", "the", "of", "with",
    "9" * 40, "9" * 400, "1" + "0" * 20, "\u00a0", "\u2009", "\u200b", "\u043e", "\uff11",
    "\u0661", "\u00b2", "\ufb01", "\u0130", "\u212a", "\ud7ff", "\U0001f489", "\t", "\n",
]

NUMBERS = ["0", "1", "2", "3", "7", "0.5", "1000", "100000", "100001", "1,000", "9" * 20,
           "9" * 400, "1" + "0" * 309, "0." + "0" * 400 + "1", "three", "-1"]
SLOTS = [
    ["", "{n} mcg", "{n} mg", "{n} µg", "{n}-{n} mcg", "{n} mcg ({n} mg)"],
    ["", "oral", "IM", "deep SC", "intranasal", "IV", "sublingual", "rectal"],
    ["", "cyanocobalamin", "hydroxocobalamin", "methyl"],
    ["", "daily", "weekly", "every {n} days", "every {n} months", "{n} times daily",
     "{n} times weekly", "twice daily", "once", "on days {n}, {n}", "at times {n}, {n} days",
     "every other day", "{n}-monthly", "{n} mcg/day"],
    ["", "for {n} days", "for {n} doses", "for {n} weeks", "until day {n}", "from day {n}",
     "for days {n}-{n}", "until no further improvement (max {n} weeks)", "for life",
     "indefinitely"],
    ["", ", then", " then", ";", " followed by"],
]


@st.composite
def phrase_text(draw):
    """Grammar-shaped text: slots of the regimen language with odd numbers in them."""
    phases = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        words = [draw(st.sampled_from(slot)) for slot in SLOTS]
        text = " ".join(w for w in words if w)
        while "{n}" in text:
            text = text.replace("{n}", draw(st.sampled_from(NUMBERS)), 1)
        phases.append(text)
    return " ".join(phases)


word_text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=25).map(" ".join)
joined_text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=25).map("".join)
random_text = st.text(max_size=200)
regimen_text = st.one_of(phrase_text(), word_text, joined_text, random_text)

TOML_PIECES = [
    "[regimen]\n", "[[regimen]]\n", "[patient]\n", "[[patient]]\n", "text = ", "label = ",
    "amount_ug = ", "route = ", "form = ", "interval_days = ", "start_day = ", "n_doses = ",
    "open_ended_days = ", "variants = ", "preset = ", "egfr_ml_min = ", "serum_pmol_per_l = ",
    "stores_ug = ", "ileal_resection_cm = ", "diet_ug_per_day = ", "metformin = ",
    "overrides = ", "name = ", "why = ", "intrinsic_factor = ", "{passive_fraction = 0.01}",
    '"1000 mcg oral daily"', '"1000 mcg IM monthly"', '"1000-2000 mcg oral daily"',
    '"pernicious-anaemia"', '"healthy"', '"vegan"', '"martian"', '"oral"', '"im"',
    '"rectal"', "1000", "-1", "0", "nan", "inf", "-inf", "1e400", "true", "false", "[]",
    "[1, 2]", "{}", "1979-05-27", "'x'", '"', "'''", "\n", " ", "=", "#", "\x00", "\ufeff",
    "\u00b5", "9223372036854775807", "1.5", '"until no further improvement"',
    'name = "x"\n', 'label = [1]\n', 'why = 5\n', 'overrides = 5\n', 'egfr_ml_min = 0\n',
    '"9999999999999999999999 times daily"', '"1000 mcg oral daily for 1e400 doses"',
]
toml_text = st.one_of(
    st.lists(st.sampled_from(TOML_PIECES), max_size=30).map("".join),
    random_text,
)
toml_bytes = st.one_of(toml_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
                       st.binary(max_size=300))

CSV_CELLS = ["ID", "TIME", "AMT", "CMT", "EVID", "II", "ADDL", "MDV", "ROUTE", "FORM", "SS",
             "RATE", "1", "2", "0", "-1", "0.5", "1e300", "1e-300", "nan", "inf", ".", "",
             "1000", "100001", "3", "4", "9", "oral", "im", "IM", "deep-sc", "iv", "rectal",
             "cyano", "hydroxo", "x", '"', "1_0", "0x10", "\uff11", " ", "99999999", "4999999"]
csv_line = st.lists(st.sampled_from(CSV_CELLS), min_size=1, max_size=11).map(",".join)
csv_text = st.one_of(
    st.tuples(st.sampled_from(["ID,TIME,AMT,CMT,EVID,II,ADDL,ROUTE,FORM",
                               "ID,TIME,AMT,CMT,EVID", "id,time,amt,cmt,evid,ss,rate"]),
              st.lists(csv_line, max_size=8))
    .map(lambda hl: "\n".join([hl[0], *hl[1]]) + "\n"),
    st.lists(csv_line, max_size=8).map("\n".join),
    random_text,
)
csv_bytes = st.one_of(csv_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
                      st.binary(max_size=300))

# -- targets -------------------------------------------------------------------------------

ALLOWED = (B12pkError,)


class Crash(Exception):
    """A non-b12pk exception from a reader."""


def _call(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ALLOWED:
        pass
    except RecursionError as exc:  # counted as a crash too
        raise Crash(f"{fn.__name__}{args!r}: {exc!r}") from exc
    except Exception as exc:
        raise Crash(f"{fn.__name__}({args!r}): {type(exc).__name__}: {exc}\n"
                    + traceback.format_exc()) from exc


COUNT = {"n": 0}
WORKDIR = Path(tempfile.mkdtemp(prefix="b12pk-fuzz-"))


def _file(data: bytes, suffix: str) -> Path:
    p = WORKDIR / f"input{suffix}"
    p.write_bytes(data)
    return p


def target_parse(text: str) -> None:
    COUNT["n"] += 1
    _call(Regimen.parse, text)
    _call(Regimen.parse, text, open_ended_days=42)


def target_variants(text: str) -> None:
    COUNT["n"] += 1
    _call(regimen_variants, text, open_ended_days=30)


def target_roundtrip(text: str) -> None:
    """Whatever parses must write canonical text that parses back to the same regimen."""
    COUNT["n"] += 1
    try:
        reg = Regimen.parse(text, open_ended_days=30)
    except ALLOWED:
        return
    except Exception as exc:
        raise Crash(f"parse({text!r}): {exc!r}\n" + traceback.format_exc()) from exc
    canon = reg.to_text()
    try:
        again = Regimen.parse(canon)
    except Exception as exc:
        raise Crash(f"canonical text of {text!r} does not parse: {canon!r}: {exc!r}") from exc
    if again != reg:
        raise Crash(f"round trip changed {text!r}: {canon!r} -> {again.to_text()!r}")


def target_load_regimens(data: bytes) -> None:
    COUNT["n"] += 1
    _call(load_regimens, _file(data, ".toml"))


def target_load_patients(data: bytes) -> None:
    COUNT["n"] += 1
    _call(load_patients, _file(data, ".toml"))


def target_read_event_table(data: bytes) -> None:
    COUNT["n"] += 1
    path = _file(data, ".csv")
    _call(read_event_table, path)
    _call(read_event_table, path, time_unit="hours")


TARGETS = {
    "parse": (target_parse, regimen_text),
    "variants": (target_variants, regimen_text),
    "roundtrip": (target_roundtrip, st.one_of(phrase_text(), word_text)),
    "load_regimens": (target_load_regimens, toml_bytes),
    "load_patients": (target_load_patients, toml_bytes),
    "read_event_table": (target_read_event_table, csv_bytes),
}


def run_target(name: str, seconds: float) -> tuple[int, list[str]]:
    """Run one target for about ``seconds``; return (inputs run, crashes)."""
    fn, strategy = TARGETS[name]
    crashes: list[str] = []
    deadline = time.monotonic() + seconds
    start = COUNT["n"]
    while time.monotonic() < deadline:
        @settings(max_examples=500, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(strategy)
        def case(value):
            if time.monotonic() > deadline:
                return
            fn(value)

        try:
            case()
        except Crash as exc:
            crashes.append(str(exc))
            print(f"CRASH in {name}:\n{exc}", file=sys.stderr)
            break  # hypothesis already shrank it; report and move on
        except HypothesisException as exc:  # pragma: no cover - e.g. Unsatisfiable
            print(f"{name}: hypothesis stopped: {exc}", file=sys.stderr)
    return COUNT["n"] - start, crashes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seconds", type=float, nargs="?", default=180.0,
                    help="total time budget in seconds (default 180)")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS),
                    help="fuzz only this target (repeatable; default all)")
    args = ap.parse_args(argv)
    names = args.target or list(TARGETS)
    per = args.seconds / len(names)
    total, all_crashes = 0, []
    print(f"b12pk {b12pk.__version__}: fuzzing {', '.join(names)} for {args.seconds:g} s "
          f"({per:.0f} s each)")
    for name in names:
        t0 = time.monotonic()
        n, crashes = run_target(name, per)
        total += n
        all_crashes += crashes
        print(f"  {name:18s} {n:8d} inputs in {time.monotonic() - t0:6.1f} s, "
              f"{len(crashes)} crash(es)", flush=True)
    print(f"total: {total} inputs, {len(all_crashes)} crash(es)")
    return 1 if all_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
