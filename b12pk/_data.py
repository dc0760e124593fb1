"""Locate the data files (``data/`` in a source tree, ``b12pk/data`` when installed)."""

from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    """Directory holding model.toml, patients.toml and the catalogues."""
    try:
        from importlib.resources import files

        installed = Path(str(files("b12pk.data")))
        if (installed / "model.toml").is_file():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a file under the data directory."""
    return data_dir().joinpath(*parts)


def data_fingerprint() -> tuple:
    """The state of every file under the data directory (path, size, modification time):
    a key for results that depend only on the shipped data, recomputed when any file
    changes."""
    root = data_dir()
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out)
