"""The declared-once engine reproduces b12pk 0.1's engine on the seed regimen catalogue.

``tests/data/engine_0.1_seed_catalogue.npz`` holds the 0.1 engine's daily serum, holoTC,
stores and cumulative urine over 90 days for every regimen text of
``data/regimens/seed_regimens.csv`` and every patient preset (432 runs), made from commit
489400f. The model did not change when its structure moved into ``data/model.toml``, so the
engine built from the declaration must agree to 1e-6 relative. This test is retired on
purpose when the physiology changes (issue "Physiology v2").
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import b12pk

REFERENCE = Path(__file__).parent / "data" / "engine_0.1_seed_catalogue.npz"
COLUMNS = ("serum_pmol_per_l", "holotc_pmol_per_l", "stores_ug", "urine_ug")


def _reference() -> dict[str, list[tuple[str, np.ndarray]]]:
    ref = np.load(REFERENCE)
    by_text: dict[str, list[tuple[str, np.ndarray]]] = {}
    for text, preset, values in zip(ref["texts"], ref["presets"], ref["values"]):
        by_text.setdefault(str(text), []).append((str(preset), values))
    return by_text


_REF = _reference()


def test_reference_covers_the_catalogue_and_every_preset():
    presets = {p for runs in _REF.values() for p, _ in runs}
    assert presets == set(b12pk.PRESETS)
    assert len(_REF) >= 40


@pytest.mark.parametrize("text", sorted(_REF))
def test_engine_reproduces_0_1_on_the_seed_catalogue(text):
    for preset, expected in _REF[text]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", b12pk.B12pkWarning)
            df = b12pk.simulate(text, preset, days=90)
        got = df[list(COLUMNS)].to_numpy().T
        rel = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-9)
        worst = np.unravel_index(np.argmax(rel), rel.shape)
        assert rel.max() < 1e-6, (preset, COLUMNS[worst[0]], int(worst[1]), float(rel.max()))
