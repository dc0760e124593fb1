"""Fixtures shared by the test modules."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def full_result():
    """The shipped claims catalogue evaluated once (about 15 s on 2 cores)."""
    from b12pk.analysis import evidence as ev

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.evaluate_claims()
