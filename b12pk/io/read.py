"""Reading a user's file: regular files only, size-limited, UTF-8 text, checked TOML.

A FIFO, device or folder given as an input file is refused before it is read (a FIFO would
block forever); a file over its size limit is refused from its size, without reading it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from ..errors import FileFormatError, ResourceError
from ..limits import MAX_INT
from .text import echo, echo_path

__all__ = ["read_bytes", "read_text", "read_toml", "check_toml_numbers"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bytes(path: str | os.PathLike, limit: int, what: str,
               error: type[Exception] = FileFormatError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises
    ------
    error
        (``FileFormatError`` by default) a missing or unreadable file, a folder, FIFO,
        device or socket; the message names the path and ``what`` was expected.
    ResourceError
        A file over ``limit`` bytes (refused from its size, without reading it).
    """
    p = Path(path)
    shown = echo_path(p)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{shown}: no such file; expected {what}") from None
    except IsADirectoryError:
        raise error(f"{shown}: is a folder; expected {what}") from None
    except OSError as exc:
        raise error(f"{shown}: cannot read it ({exc.strerror}); expected {what}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{shown}: is {_kind(info.st_mode)}, not a regular file; expected {what}")
        if info.st_size > limit:
            raise ResourceError(f"{shown}: the file is {info.st_size / 1e6:.1f} MB, too big "
                                f"for {what}; accepted: files of at most {limit / 1e6:g} MB")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise error(f"{shown}: cannot read it ({exc.strerror}); expected {what}") from None
    finally:
        os.close(fd)
    if size > limit:  # it grew while being read
        raise ResourceError(f"{shown}: the file is over {limit / 1e6:g} MB, too big for {what}")
    return b"".join(chunks)


def read_text(path: str | os.PathLike, limit: int, what: str,
              error: type[Exception] = FileFormatError) -> str:
    """A regular file's UTF-8 text (a leading byte-order mark dropped); binary, non-UTF-8
    and empty files are refused with ``error``."""
    data = read_bytes(path, limit, what, error)
    shown = echo_path(path)
    if b"\x00" in data:
        raise error(f"{shown}: looks like a binary file, not {what}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{shown}: not UTF-8 text (byte {exc.start}); expected {what}") from None
    if not text.strip():
        raise error(f"{shown}: the file is empty; expected {what}")
    return text


def check_toml_numbers(doc: Any, where: str, _path: str = "") -> None:
    """Refuse integers that a float cannot hold exactly (beyond ±2**53) anywhere in ``doc``."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            check_toml_numbers(value, where, f"{_path}.{key}" if _path else str(key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            check_toml_numbers(value, where, f"{_path}[{i}]")
    elif isinstance(doc, int) and not isinstance(doc, bool) and abs(doc) > MAX_INT:
        digits = len(str(abs(doc)))
        raise FileFormatError(f"{where}: {echo(_path)} is an integer of {digits} digits, too "
                              f"large to use; accepted: integers of magnitude at most 2**53")


def read_toml(path: str | os.PathLike, limit: int, what: str) -> tuple[dict[str, Any], str]:
    """A TOML file as ``(document, text)``, with every number checked
    (:func:`check_toml_numbers`); every failure is a :class:`FileFormatError` (or a
    :class:`ResourceError` for a file over ``limit`` bytes) naming the file."""
    text = read_text(path, limit, what)
    shown = echo_path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{shown}: not valid TOML: {exc}") from None
    except RecursionError:
        raise FileFormatError(f"{shown}: not valid TOML: nested too deeply") from None
    try:
        check_toml_numbers(doc, shown)
    except RecursionError:
        raise FileFormatError(f"{shown}: not valid TOML: nested too deeply") from None
    return doc, text
