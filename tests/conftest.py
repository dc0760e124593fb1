"""Fixtures shared by the test modules."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings

import pytest

# The disk cache of shipped results (b12pk/analysis/shipped.py) goes to a folder of this
# session, never the user's: each test run starts without cached results, and the
# pytest-xdist workers and command line runs the tests start inherit it. The process that
# made the folder removes it at exit.
if "B12PK_TEST_CACHE_DIR" not in os.environ:
    os.environ["B12PK_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="b12pk-test-cache-")
    atexit.register(shutil.rmtree, os.environ["B12PK_TEST_CACHE_DIR"], True)
os.environ["B12PK_CACHE_DIR"] = os.environ["B12PK_TEST_CACHE_DIR"]


@pytest.fixture(scope="session")
def full_result():
    """The shipped claims catalogue evaluated once, horizons capped at 400 days (about 15 s
    on 2 cores; the tests that use it check structure and words, not the 10-year verdicts)."""
    from b12pk.analysis import evidence as ev

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.evaluate_claims(max_days=400)


@pytest.fixture(scope="session")
def validation():
    """The shipped trial datasets validated once (shared by the validation, marker and plot
    tests, which only read it)."""
    from b12pk.analysis.validate import validate

    return validate()


@pytest.fixture(scope="session")
def default_report(tmp_path_factory):
    """The main job on built-in defaults (``b12pk compare``), run once for the session and
    only read by the tests that use it (command line, rendered report)."""
    from b12pk.cli import main

    out = tmp_path_factory.mktemp("main") / "report"
    assert main(["compare", "--out", str(out)]) == 0
    return out
