"""Writing results: atomically, never over what b12pk did not write, no litter.

Rules (``docs/errors.md``, "Output paths"):

* an output **folder** is built in a temporary folder beside it and renamed into place only
  when complete. An existing folder is replaced only if it is empty or b12pk wrote it: its
  ``run.json`` carries b12pk's signature and lists every file in it (a folder from b12pk
  0.1, whose ``run.json`` has ``b12pk_version`` and no list, is replaced if it holds only
  names b12pk writes). Anything else is refused, as are symbolic links, the current folder
  (or one holding it), ``''`` and paths whose parent does not exist;
* an output **file** is written to a temporary file and renamed over the target; a symbolic
  link is followed (the file it points to is replaced, the link kept); a character device
  (``/dev/null``, a terminal) is written through; a folder, FIFO, socket or block device is
  refused;
* temporaries are named ``.<name>.b12pk-tmp-<pid>-<random>``; they are removed on any
  error, on Ctrl-C and on SIGTERM (:func:`handle_signals`), and a later run removes those
  left by a process that no longer exists (``kill -9``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import threading
from pathlib import Path
from typing import Iterator

from ..about import __version__
from ..errors import OutputError
from .text import echo, echo_path

__all__ = ["Interrupted", "handle_signals", "pending_signal", "check_interrupted",
           "import_uninterrupted",
           "atomic_output_dir", "atomic_output_file", "atomic_write_text", "output_dir_target",
           "output_file_target", "remove_stale_temporaries", "staging_dir", "SIGNATURE_KEY",
           "HOST_TAG"]

#: Key of b12pk's signature in an output folder's ``run.json``.
SIGNATURE_KEY = "b12pk_output"

_TMP_RE = re.compile(r"^\.(?P<name>.*)\.b12pk-(?P<kind>tmp|old|stage)-(?P<host>[0-9a-f]{6})-"
                     r"(?P<pid>\d{1,10})-[0-9a-f]{8}$")
#: Staging folders of b12pk 0.1 (``tempfile.mkdtemp`` names): only b12pk used this prefix.
_LEGACY_RE = re.compile(r"^\.b12pk-trajectories-[a-z0-9_]{8}$")


def _host_tag() -> str:
    """Six hex digits naming this machine and PID namespace: a process id is only checked
    where it means the same process (not on another host sharing the folder, nor in another
    container)."""
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = ""
    return hashlib.sha1(f"{socket.gethostname()}|{ns}".encode()).hexdigest()[:6]


#: This process's :func:`_host_tag`.
HOST_TAG = _host_tag()

#: Top-level names a b12pk 0.1 output folder may hold.
_LEGACY_NAMES = frozenset({
    "run.json", "summary.csv", "report.md", "report.html", "figures", "validation.csv",
    "population_summary.csv", "evidence.csv", "contradictions.csv", "evidence.md",
    "evidence.png", "quantiles.csv", "bands.csv", "troughs.csv", "repletion.csv", "means.csv",
    "fan_serum.png", "fan_serum.svg", "fan_stores.png", "fan_stores.svg", "bands.png",
    "bands.svg", "trajectories", "not_checkable.csv", "summary.json",
    "predicted_vs_observed.png", "predicted_vs_observed.svg"})


# -- signals -------------------------------------------------------------------------------

class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGINT or SIGTERM once :func:`handle_signals` is on."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_critical = 0
_deferred: list[int] = []


_raised: list[int] = []


#: Code whose callbacks print and swallow an exception raised in them (importlib's module
#: locks, numba's and llvmlite's ctypes callbacks): a signal that lands there is sent again.
_SWALLOWING = ("<frozen importlib", f"{os.sep}numba{os.sep}", f"{os.sep}llvmlite{os.sep}")


def _on_signal(signum: int, frame: object) -> None:
    if _critical:
        _deferred.append(signum)
        return
    where = getattr(getattr(frame, "f_code", None), "co_filename", "")
    if any(part in where for part in _SWALLOWING):
        timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()  # raised a moment later, outside the callback
        return
    _raised.append(signum)
    raise Interrupted(signum)  # again on a second signal: a swallowed first one can't hang


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` (a ``KeyboardInterrupt``), so
    that every ``finally`` and ``except BaseException`` cleans up; restores the old
    handlers after. Outside the main thread it does nothing."""
    wanted = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    _raised.clear()
    _deferred.clear()
    try:
        old = {s: signal.signal(s, _on_signal) for s in wanted}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        _raised.clear()  # a later write in this process is not stopped by this run's signal
        _deferred.clear()


def pending_signal() -> int | None:
    """The signal received under :func:`handle_signals`, if any (also one whose exception
    a library callback swallowed, e.g. numba's or importlib's)."""
    return _raised[0] if _raised else (_deferred[0] if _deferred else None)


def signal_handled() -> None:
    """Forget the signal received under :func:`handle_signals`: the command stopped on it
    by design (a server's Ctrl-C) and has finished cleanly."""
    _raised.clear()
    _deferred.clear()


def check_interrupted() -> None:
    """Raise :class:`Interrupted` again if a signal was received: called before an output
    is renamed into place, so a signal swallowed somewhere never lets a run finish."""
    signum = pending_signal()
    if signum is not None:
        raise Interrupted(signum)


@contextlib.contextmanager
def _no_interruption() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (under :func:`handle_signals`) until the block has finished."""
    global _critical
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if not _critical and _deferred:
            signum = _deferred[0]
            _deferred.clear()
            if not _raised:
                _raised.append(signum)
                raise Interrupted(signum)


def import_uninterrupted(*modules: str) -> None:
    """Import ``modules`` with SIGINT/SIGTERM held until they are in (then raised as
    :class:`Interrupted`): a signal inside a compiled extension's initialisation (e.g.
    matplotlib's ft2font) leaves it half-initialised, and the interpreter aborts at exit
    (SIGABRT) instead of reporting the interruption."""
    import importlib

    with _no_interruption():
        for name in modules:
            importlib.import_module(name)


# -- temporaries ---------------------------------------------------------------------------

_NAME_KEPT = 64
"""Characters of the output's name kept in its temporaries' names (under the 255-byte limit)."""


def _temp_path(target: Path, tag: str) -> Path:
    name = target.name[:_NAME_KEPT]
    return target.parent / (f".{name}.b12pk-{tag}-{HOST_TAG}-{os.getpid()}-"
                            f"{secrets.token_hex(4)}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # another user's process, or no such pid
        return True
    return True


def _stale(entry: os.DirEntry, legacy: re.Pattern | None) -> bool:
    m = _TMP_RE.match(entry.name)
    if m is not None:
        return m.group("host") == HOST_TAG and not _alive(int(m.group("pid")))
    if not entry.is_dir(follow_symlinks=False):
        return False
    if _LEGACY_RE.match(entry.name):
        return True
    return bool(legacy and legacy.match(entry.name)) and not any(
        not _legacy_name(rel) for rel in _walk(Path(entry.path)))


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[str]:
    """Remove b12pk's temporaries in ``folder`` left by processes of this machine that no
    longer exist (``kill -9``), and b12pk 0.1's: its ``.b12pk-trajectories-*`` folders and,
    for the output ``name`` being written, its ``.<name>.tmp-*``/``.old-*`` folders when they
    hold only files b12pk writes. Returns the names removed. An earlier output set aside
    for the rename (``-old-``) whose folder is missing is put back, not removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    legacy = None if not name else re.compile(
        rf"^\.{re.escape(name)}\.(?P<kind>tmp|old)-[a-z0-9_]{{8}}$")
    for entry in entries:
        if not _stale(entry, legacy):
            continue
        m = _TMP_RE.match(entry.name)
        if m is None and legacy is not None and legacy.match(entry.name) \
                and legacy.match(entry.name).group("kind") == "old" \
                and not os.path.lexists(os.path.join(folder, name)) \
                and _signature(Path(entry.path)) is not None:  # an earlier 0.1 report
            with contextlib.suppress(OSError):
                os.replace(entry.path, os.path.join(folder, name))  # put back
            continue
        try:
            if m is not None and m.group("kind") == "old":
                home = os.path.join(folder, m.group("name"))
                if len(m.group("name")) < _NAME_KEPT and not os.path.lexists(home):
                    os.replace(entry.path, home)  # killed between the two renames
                    continue
                if len(m.group("name")) >= _NAME_KEPT:
                    continue  # its name was cut: keep it rather than guess
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def staging_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``beside`` (same file system), removed afterwards."""
    target = Path(os.path.abspath(os.fspath(beside)))
    path = _temp_path(target, "stage")
    try:
        try:
            path.mkdir()
        except OSError as exc:
            raise _user_path_error(exc, echo_path(beside)) from None
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- folders -------------------------------------------------------------------------------

def _walk(folder: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in sorted(dirs) + sorted(files):
            yield name if rel == "." else f"{rel}/{name}"


def _signature(folder: Path) -> dict | None:
    """The signature in ``folder/run.json`` (``{}`` for a b12pk 0.1 folder), or None."""
    path = folder / "run.json"
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 10_000_000:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    sig = record.get(SIGNATURE_KEY)
    if isinstance(sig, dict) and isinstance(sig.get("files"), list):
        return sig
    return {} if "b12pk_version" in record else None


def _foreign_entry(folder: Path) -> str | None:
    """The first entry of an existing folder that b12pk did not write, or None."""
    try:
        top = sorted(os.listdir(folder))
    except OSError as exc:
        return f"(unreadable: {exc.strerror})"
    if not top:
        return None
    sig = _signature(folder)
    if sig is None:
        return top[0]
    if not sig:  # b12pk 0.1: names it writes, and only figures and Parquet parts below them
        return next((rel for rel in _walk(folder) if not _legacy_name(rel)), None)
    known = {f for f in sig["files"] if isinstance(f, str)} | {"run.json"}
    return next((rel for rel in _walk(folder) if rel not in known), None)


def _legacy_name(rel: str) -> bool:
    top, _, rest = rel.partition("/")
    if not rest:
        return top in _LEGACY_NAMES
    if top == "figures":
        return "/" not in rest and rest.endswith((".png", ".svg"))
    if top == "trajectories":
        return "/" not in rest and rest.startswith("part-") and rest.endswith(".parquet")
    return False


def output_dir_target(out: str | os.PathLike) -> Path:
    """The absolute folder b12pk may write as ``out``, or :class:`OutputError` saying why not.

    Checked before any work is done, and again just before the folder is replaced.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"an output folder must be a path, got {type(out).__name__}")
    text = os.fspath(out)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise OutputError("the output folder path is empty; give a folder name such as "
                          "'b12pk-report'")
    if "\x00" in text:
        raise OutputError(f"output folder {echo(text)}: a path cannot hold a NUL character")
    shown = echo_path(text)
    target = Path(os.path.abspath(text))
    if target.parent == target:
        raise OutputError(f"output folder {shown} is the root folder; give a new folder name")
    cwd = Path(os.path.realpath(os.getcwd()))
    real = Path(os.path.realpath(target))
    if real == cwd or real in cwd.parents:
        raise OutputError(f"output folder {shown} is the current folder or holds it; b12pk "
                          "replaces its output folder as a whole: give a new folder name")
    if target.is_symlink():
        raise OutputError(f"output folder {shown} is a symbolic link; b12pk does not replace "
                          "links: give the folder's real path or a new name")
    if os.path.lexists(target):
        if not target.is_dir():
            raise OutputError(f"output path {shown} exists and is not a folder; give a new "
                              "folder name")
        foreign = _foreign_entry(target)
        if foreign is not None:
            raise OutputError(
                f"output folder {shown} already exists and holds files b12pk did not write "
                f"(e.g. {echo(foreign)}); b12pk replaces only its own output folders: give a "
                "new folder name, or move those files away")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {shown}: folder {echo_path(target.parent)} does not "
                          "exist")
    return target


def _sign(folder: Path, kind: str) -> None:
    path = folder / "run.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {
        "b12pk_version": __version__}
    record[SIGNATURE_KEY] = {"kind": kind, "version": __version__,
                             "files": [rel for rel in _walk(folder) if rel != "run.json"]}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def _user_path_error(exc: OSError, shown: str) -> OSError:
    """The same OS error, naming the user's path instead of b12pk's temporary."""
    return type(exc)(exc.errno, f"{exc.strerror} (while writing {shown})")


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, kind: str = "report") -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` only if the block succeeds.

    ``out`` is checked first (:func:`output_dir_target`); on any exception, Ctrl-C and
    SIGTERM included, the temporary folder is removed and ``out`` is left exactly as it
    was. The finished folder gets b12pk's signature in ``run.json`` (``kind`` and the
    list of files), which allows a later run to replace it.
    """
    target = output_dir_target(out)
    shown = echo_path(out)
    remove_stale_temporaries(target.parent, target.name)
    tmp = _temp_path(target, "tmp")
    try:
        try:
            tmp.mkdir()
            yield tmp
            _sign(tmp, kind)
            check_interrupted()
            with _no_interruption():
                _replace_dir(tmp, target)
        except OSError as exc:
            raise _user_path_error(exc, shown) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, target: Path) -> None:
    output_dir_target(target)  # again: the folder may have changed during the run
    old = None
    if os.path.lexists(target):
        old = _temp_path(target, "old")
        os.replace(target, old)
        foreign = _foreign_entry(old)  # written between the check and the rename?
        if foreign is not None:
            os.replace(old, target)
            raise OutputError(f"output folder {echo_path(target)} changed while b12pk was "
                              f"replacing it (e.g. {echo(foreign)} appeared); nothing was "
                              "replaced")
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- files ---------------------------------------------------------------------------------

def output_file_target(path: str | os.PathLike) -> tuple[Path, bool]:
    """(where to write, write through?) for an output file; :class:`OutputError` if refused."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an output file must be a path, got {type(path).__name__}")
    text = os.fsdecode(os.fspath(path))
    if not text.strip():
        raise OutputError("the output file path is empty; give a file name")
    if "\x00" in text:
        raise OutputError(f"output file {echo(text)}: a path cannot hold a NUL character")
    shown = echo_path(text)
    p = Path(os.path.abspath(text))
    if p.is_symlink():
        p = Path(os.path.realpath(p))  # follow the link: its target is replaced
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror}") from None
    if mode is not None:
        if stat.S_ISCHR(mode):
            return p, True
        if stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {shown}: it is a folder; accepted: a file path")
        if not stat.S_ISREG(mode):
            raise OutputError(f"cannot write {shown}: it is not a regular file (a FIFO, socket "
                              "or block device); accepted: a file path or a character device")
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {shown}: folder {echo_path(p.parent)} does not exist")
    return p, False


@contextlib.contextmanager
def atomic_output_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path whose content replaces ``path`` only if the block succeeds.

    A character device is written through (the yielded path is the device itself); a
    symbolic link is followed. The file gets the usual permissions (0666 less the umask).
    """
    target, through = output_file_target(path)
    if through:
        yield target
        return
    shown = echo_path(path)
    remove_stale_temporaries(target.parent)
    tmp = _temp_path(target, "tmp")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            os.close(fd)
            yield tmp
            check_interrupted()
            with _no_interruption():
                os.replace(tmp, target)
        except OSError as exc:
            raise _user_path_error(exc, shown) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_output_file`)."""
    with atomic_output_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return Path(path)
