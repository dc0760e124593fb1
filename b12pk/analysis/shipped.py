"""Results that depend only on the shipped data and the code: computed once per process and
kept on disk between processes (:class:`DataCache`).

The disk copy lives in :func:`cache_dir` (``$B12PK_CACHE_DIR``, else
``$XDG_CACHE_HOME/b12pk`` or ``~/.cache/b12pk``; ``B12PK_CACHE_DIR=off`` turns it off). A
file is named by a digest of everything the result depends on: the content of every file
under ``data/``, the parameter values, the source of every module of the package and the
versions of Python, numpy, scipy and pandas, and the integrator in use (numba's version, or
LSODA). Any change gives another name, so a stale result is never read. Only a regular file
(not a link) that this user owns and no one else can write, in a folder of the same kind,
is unpickled; any other, or a damaged or incompatible one, is recomputed. A cache folder
that cannot be written, or that others can write, is skipped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import pickle
import re
import stat
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


def _engine_path() -> str:
    """Which integrator simulations take: the compiled one (numba installed and not turned off
    by ``B12PK_NO_NUMBA``) or LSODA; they differ by about 1e-7, so results are kept apart."""
    import importlib.metadata
    import importlib.util

    if os.environ.get("B12PK_NO_NUMBA", "") in ("1", "true", "yes"):
        return "lsoda"
    if importlib.util.find_spec("numba") is None:
        return "lsoda"
    try:
        return "numba " + importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:
        return "numba"


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """Digest of the package's source files (regular files only: an editor's lock file or
    a dangling link is not source) and the library versions results depend on."""
    import numpy
    import pandas
    import scipy

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        if path.is_symlink() or not path.is_file():
            continue
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    h.update(repr((sys.version, numpy.__version__, scipy.__version__,
                   pandas.__version__)).encode())
    return h.hexdigest()


def _code_digest() -> str:
    """:func:`_source_digest` and the integrator in use (:func:`_engine_path`)."""
    return _source_digest() + " " + _engine_path()


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


def _private(st: os.stat_result) -> bool:
    """Whether a file or folder with this status belongs to this user and no one else can
    write it (always true where there are no user ids)."""
    if not hasattr(os, "getuid"):
        return True
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _load(path: Path) -> Any:
    """Unpickle ``path`` if it is a regular file (not a link) in a folder of this user that
    no one else can write, itself this user's and writable by no one else; else raise."""
    if not _private(path.parent.stat()):
        raise PermissionError(f"{path.parent} is not private to this user")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or not _private(st):
            raise PermissionError(f"{path} is not private to this user")
        value = pickle.load(fh)
    try:
        os.utime(path)  # read: the newest, last to be pruned
    except OSError:
        pass
    return value


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

    def get(self, *args: Any, compute: Callable[[], Any] | None = None) -> Any:
        """The result for ``args``: from this process, else from disk, else computed by
        ``compute()`` when given (a closure that may carry what is not part of the key,
        such as a progress callback), otherwise by ``compute(*args)`` of the constructor."""
        key = (data_fingerprint(), repr(default_parameters()), repr(args))
        if key != self._key:
            self._value, self._key = self._load_or_compute(key, args, compute), key
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
        try:
            parts = (self.name, _code_digest(), _data_digest(fingerprint), params, args)
        except OSError:  # a file changed or went while it was read: no disk cache this time
            return None
        for part in parts:
            h.update(part.encode())
            h.update(b"\0")
        return folder / f"{self.name}-{h.hexdigest()[:24]}.pickle"

    def _load_or_compute(self, key: tuple, args: tuple,
                         compute: Callable[[], Any] | None) -> Any:
        path = self._path(key)
        self.hit = False
        if path is not None:
            try:
                value = _load(path)
                self.hit = True
                return value
            except Exception:  # missing, not private, damaged or incompatible: computed
                pass
        value = compute() if compute is not None else self._compute(*args)
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
            if not _private(path.parent.stat()):
                return  # a folder others can write: nothing is kept there
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
