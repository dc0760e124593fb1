"""The notebooks in notebooks/ run top to bottom, and are committed without outputs.

Each notebook is executed in memory with nbclient (the ``python3`` kernel of the running
interpreter's ipykernel); the files in the repository are never written back. Run by hand,
the notebooks write their figures to ``figures/`` at the repository root; under the tests
they write them to a temporary folder (``B12PK_FIGURES``), so the committed figures stay
as they are.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest

import b12pk

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = ("01_quick_start.ipynb", "02_oral_or_im.ipynb", "03_maintenance_intervals.ipynb",
            "04_evidence.ipynb", "05_validation.ipynb", "06_design.ipynb")
TIMEOUT_PER_CELL_S = 240
BUDGET_PER_NOTEBOOK_S = 180  # the slowest, 04 (evidence), takes about 60 s on 2 cores

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed "
                               "(pip install 'b12pk[notebooks]')")


def _ids(paths):
    return [p.name for p in paths]


def test_the_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, f"missing notebooks: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; "
                       "clear them before committing (e.g. jupyter nbconvert "
                       "--clear-output --inplace notebooks/*.ipynb)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_states_purpose_and_disclaimer(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "Educational purpose" in nb.cells[0].source, path.name
    assert "b12pk.DISCLAIMER" in text, path.name
    assert "not a prescription" in text, path.name


NOTEBOOK_PATIENTS = 256
"""Virtual patients per population in the notebooks under test (1000 when a user runs
them): the test checks that every cell runs, not the population's precision."""


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Make the b12pk under test importable in the kernel (it may not be installed)."""
    pytest.importorskip("nbclient", reason="nbclient is not installed "
                        "(pip install 'b12pk[notebooks]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed "
                        "(pip install 'b12pk[notebooks]')")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel spec found (python -m ipykernel install "
                    "--sys-prefix)")
    package_root = str(Path(b12pk.__file__).resolve().parent.parent)
    figures = tmp_path_factory.mktemp("figures")  # the committed figures/ stay as they are
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "B12PK_FIGURES",
                                            "B12PK_NOTEBOOK_PATIENTS")}
    old = saved["PYTHONPATH"]
    os.environ["PYTHONPATH"] = os.pathsep.join([package_root] + ([old] if old else []))
    os.environ["B12PK_FIGURES"] = str(figures)
    os.environ["B12PK_NOTEBOOK_PATIENTS"] = str(NOTEBOOK_PATIENTS)
    yield figures
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(path, kernel_env):
    from nbclient import NotebookClient

    original = path.read_bytes()
    nb = copy.deepcopy(nbformat.read(path, as_version=4))
    client = NotebookClient(nb, timeout=TIMEOUT_PER_CELL_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    client.execute()            # raises CellExecutionError with the failing cell
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert path.read_bytes() == original, f"{path.name} was modified by the test run"
    assert elapsed < BUDGET_PER_NOTEBOOK_S, f"{path.name} took {elapsed:.0f} s"
    prefix = "nb" + path.name[:2]
    assert list(kernel_env.glob(f"{prefix}_*.png")), \
        f"{path.name} saved no figures/{prefix}_*.png"
