"""Results that depend only on the shipped data and the code: computed once per process and
kept on disk between processes (:class:`DataCache`).

The disk copy lives in :func:`cache_dir` (``$B12PK_CACHE_DIR``, else
``$XDG_CACHE_HOME/b12pk`` or ``~/.cache/b12pk``; ``B12PK_CACHE_DIR=off`` turns it off). A
file is named by a digest of everything the result depends on: the content of every file
under ``data/``, the parameter values, the source of every module of the package and the
versions of Python, numpy, scipy, pandas and numba. Any change gives another name, so a
stale result is never read. A file that cannot be read (damaged, written by another user,
an incompatible pickle) is recomputed; a cache folder that cannot be written is skipped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import pickle
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .._data import data_dir, data_fingerprint
from ..model.parameters import default_parameters

__all__ = ["DataCache", "cache_dir", "CACHE_ENV", "KEEP"]

KEEP = 4
"""Files kept per cache name (the newest): results for other settings or older data."""

CACHE_ENV = "B12PK_CACHE_DIR"
"""Environment variable naming the disk cache's folder (``off``, ``0`` or empty: none)."""


def cache_dir() -> Path | None:
    """The folder of the disk cache, or None when it is turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        if value.strip().lower() in ("", "0", "off", "none", "no"):
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError, OSError):  # no home folder known: no disk cache
            return None
    return Path(base).expanduser() / "b12pk"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """Digest of the package's source files and the versions results depend on."""
    import numpy
    import pandas
    import scipy

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    try:
        import numba
        numba_version = numba.__version__
    except ImportError:
        numba_version = "none"
    h.update(repr((sys.version, numpy.__version__, scipy.__version__, pandas.__version__,
                   numba_version)).encode())
    return h.hexdigest()


_DATA_DIGESTS: dict[tuple, str] = {}


def _data_digest(fingerprint: tuple) -> str:
    """Digest of the content of every file under ``data/`` (memoised per fingerprint)."""
    hit = _DATA_DIGESTS.get(fingerprint)
    if hit is None:
        h = hashlib.sha256()
        root = data_dir()
        for rel, *_ in fingerprint:
            h.update(rel.encode())
            h.update((root / rel).read_bytes())
        hit = _DATA_DIGESTS[fingerprint] = h.hexdigest()
    return hit


def _readable(path: Path) -> bool:
    """Whether ``path`` is a file this user wrote and no one else can change."""
    try:
        st = path.stat()
    except OSError:
        return False
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        return False
    return path.is_file()


class DataCache:
    """The result of ``compute(*args)``, recomputed only when a file under ``data/``, a
    parameter value, the code or ``args`` change; each call gets its own copy (a report, a
    notebook or the tests ask for the same validation many times per process). ``name``
    names its files in the disk cache (:func:`cache_dir`); ``args`` must be plain values
    whose ``repr`` identifies them (numbers, strings, tuples of them)."""

    def __init__(self, compute: Callable[..., Any], name: str):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"cache name {name!r}: lower-case letters, digits and _ only")
        self._compute = compute
        self.name = name
        self._key: tuple | None = None
        self._value: Any = None
        self.hit = False
        """Whether the last :meth:`get` that computed nothing in this process read the disk
        cache (False when it computed)."""

    def get(self, *args: Any) -> Any:
        key = (data_fingerprint(), repr(default_parameters()), repr(args))
        if key != self._key:
            self._value, self._key = self._load_or_compute(key, args), key
        return copy.deepcopy(self._value)

    def path(self, *args: Any) -> Path | None:
        """The disk cache's file for ``args`` at the current data, parameters and code, or
        None when the disk cache is off."""
        return self._path((data_fingerprint(), repr(default_parameters()), repr(args)))

    def _path(self, key: tuple) -> Path | None:
        folder = cache_dir()
        if folder is None:
            return None
        fingerprint, params, args = key
        h = hashlib.sha256()
        for part in (self.name, _code_digest(), _data_digest(fingerprint), params, args):
            h.update(part.encode())
            h.update(b"\0")
        return folder / f"{self.name}-{h.hexdigest()[:24]}.pickle"

    def _load_or_compute(self, key: tuple, args: tuple) -> Any:
        path = self._path(key)
        self.hit = False
        if path is not None and _readable(path):
            try:
                with open(path, "rb") as fh:
                    value = pickle.load(fh)
                self.hit = True
                return value
            except Exception:  # damaged or incompatible: computed again below
                pass
        value = self._compute(*args)
        if path is not None:
            self._store(path, value)
        return value

    def _store(self, path: Path, value: Any) -> None:
        """Write ``value`` to ``path`` atomically (a temporary file renamed), then remove this
        cache's oldest files beyond :data:`KEEP`; skipped silently where the folder cannot
        be written."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{self.name}-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
            tmp = None
            self._prune(path)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            pass
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def _prune(self, keep: Path) -> None:
        """Remove this cache's files (and only those) beyond the :data:`KEEP` newest."""
        pattern = re.compile(rf"{self.name}-[0-9a-f]{{24}}\.pickle")
        mine = [p for p in keep.parent.iterdir() if pattern.fullmatch(p.name) and p != keep]
        mine.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in mine[KEEP - 1:]:
            old.unlink(missing_ok=True)
