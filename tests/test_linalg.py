"""The batched matrix exponential against scipy.linalg.expm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm as scipy_expm

import b12pk
from b12pk.engine.linalg import expm
from b12pk.engine.core import System


@pytest.mark.parametrize("dt", [1 / 768, 0.5, 1.0, 30.0, 365.0, 3650.0])
def test_matches_scipy_on_the_model_matrix(dt):
    s = System(b12pk.Patient.preset("pernicious-anaemia"), b12pk.default_parameters(),
                ("cyanocobalamin", "hydroxocobalamin"))
    m = s._aug * dt
    ref = scipy_expm(m)
    # the input columns (diet, slow flows) integrate over dt: their entries grow with it
    assert np.abs(expm(m) - ref).max() <= 1e-11 * max(1.0, np.abs(ref).max())


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(7, 5, 5))
    batched = expm(mats)
    for k in range(7):
        assert np.allclose(batched[k], scipy_expm(mats[k]), rtol=1e-12, atol=1e-12)


def test_zero_matrix_gives_identity():
    assert np.array_equal(expm(np.zeros((4, 4))), np.eye(4))
