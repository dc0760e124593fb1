"""The package's layering: folders follow the data flow, and imports only go down.

regimen -> dose events -> model/engine -> tidy result -> plot / report / evidence:

    0  about, limits, errors, _data      constants, the error hierarchy, data files
    1  io                                bounded reads, checked numbers, atomic outputs
    2  model                             declaration, rate laws, parameters, patients
    3  regimen                           regimen language, dose events, event tables
    4  engine                            the engine built from the declaration
    5  population, exchange              virtual populations; SBML export
    6  analysis                          compare, validate, evidence, calibrate
    7  plot                              figures of results
    8  report, app                       reports and output folders; the teaching app
    9  cli, b12pk/__init__               the command line and the lazy public namespace

Every import statement counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import b12pk

PACKAGE = Path(b12pk.__file__).parent
LAYERS = {
    "b12pk.about": 0, "b12pk.limits": 0, "b12pk.errors": 0, "b12pk._data": 0,
    "b12pk.io": 1, "b12pk.model": 2, "b12pk.regimen": 3, "b12pk.engine": 4,
    "b12pk.population": 5, "b12pk.exchange": 5, "b12pk.analysis": 6, "b12pk.plot": 7,
    "b12pk.report": 8, "b12pk.app": 8, "b12pk.cli": 9, "b12pk": 9,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rsplit(".", 1)[0]
    return LAYERS[module]


def _imports(module: str) -> list[tuple[str, str, int]]:
    """(target module, imported name, line) of every b12pk import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "b12pk":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if sub in MODULES else base, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names
                    if a.name.split(".")[0] == "b12pk"]
    return out


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = _layer(module)
    for target, name, line in _imports(module):
        assert _layer(target) <= mine, f"{module}:{line} imports {target} (a higher layer)"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "b12pk"))
def test_nothing_imports_the_package_namespace(module):
    for target, name, line in _imports(module):
        assert target != "b12pk", f"{module}:{line} imports from b12pk/__init__"


def _unit(module: str) -> str:
    """The folder a module belongs to (b12pk.engine, b12pk.io, ...) or the module itself."""
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_across_folders(module):
    for target, name, line in _imports(module):
        if _unit(target) == _unit(module) or name.startswith("__"):
            continue
        # a private module of a folder (b12pk.engine._transient) is that folder's own; the
        # top-level b12pk._data (where the data files are) is shared by the whole package
        private_module = any(p.startswith("_") and not p.startswith("__")
                             for p in target.split(".")[2:])
        assert not name.startswith("_") and not private_module, (
            f"{module}:{line} imports private {target}.{name}")


@pytest.mark.parametrize("module", ["b12pk.analysis.compare", "b12pk.analysis.validate",
                                    "b12pk.analysis.evidence", "b12pk.analysis.calibrate",
                                    "b12pk.population.core"])
def test_analyses_neither_plot_nor_write_reports(module):
    source = MODULES[module].read_text(encoding="utf-8")
    assert "matplotlib" not in source, f"{module} plots"
    assert "atomic_output_dir" not in source, f"{module} writes an output folder"


def test_every_rate_law_is_written_once():
    """The laws' formulas live in b12pk/model/laws.py; the engine, its kernels, the
    population engine, the SBML export and the calibration call them from there."""
    formulas = ["* amount / (km + amount)", "* m / (", "amount / (if_km", "/ (s.if_km",
                "vmax * amount / (km + total)", "vmax / (", "room * (room > 0.0)",
                "np.maximum(s.hc_cap", "room / s.hc_cap"]
    for module in ("b12pk.engine.core", "b12pk.engine._transient", "b12pk.engine.kernels",
                   "b12pk.population.core", "b12pk.exchange.sbml",
                   "b12pk.analysis.calibrate"):
        source = MODULES[module].read_text(encoding="utf-8")
        for formula in formulas:
            assert formula not in source, f"{module} writes the law {formula!r} again"
