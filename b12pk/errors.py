"""The b12pk exception hierarchy.

Every error b12pk raises on purpose derives from :class:`B12pkError`. Errors caused by
bad input also derive from :class:`ValueError`, so generic callers can catch them the
usual way. Messages say what was wrong and what is accepted; the command line prints
them as one line.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from typing import Iterator

from .limits import MAX_ECHO_CHARS, MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS

__all__ = [
    "warn",
    "quiet_warnings",
    "B12pkError",
    "InputError",
    "DoseError",
    "UnknownNameError",
    "ParameterError",
    "PatientError",
    "HorizonError",
    "RegimenSyntaxError",
    "FileFormatError",
    "EventTableError",
    "ResourceError",
    "ModelError",
    "OutputError",
    "B12pkWarning",
]


CONTROL_CHARACTERS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    r"\u2066-\u2069\ufeff]")
"""Characters escaped wherever user input is shown (ANSI escapes, NUL, bidi marks, ...)."""


def escape_control(text: str) -> str:
    """``text`` with :data:`CONTROL_CHARACTERS` written as ``\\xNN`` / ``\\uNNNN``."""
    def sub(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return CONTROL_CHARACTERS.sub(sub, text)


_LONG_QUOTE = re.compile(r"(?<![A-Za-z])(?:'([^']{%d,})'|\"([^\"]{%d,})\")(?![A-Za-z])"
                         % (MAX_QUOTED_CHARS + 1, MAX_QUOTED_CHARS + 1))


def _cut_quote(match: re.Match) -> str:
    inner = match.group(1) if match.group(1) is not None else match.group(2)
    q = "'" if match.group(1) is not None else '"'
    return f"{q}{inner[:MAX_ECHO_CHARS]}{q}... ({len(inner) - MAX_ECHO_CHARS:,} more characters)"


def sanitize_message(message: str) -> str:
    """One line, control characters escaped, quoted echoes over 100 characters cut to 80,
    at most :data:`MAX_MESSAGE_CHARS` characters."""
    text = _LONG_QUOTE.sub(_cut_quote, escape_control(" ".join(str(message).split())))
    if len(text) > MAX_MESSAGE_CHARS:
        head, tail = MAX_MESSAGE_CHARS * 2 // 3, MAX_MESSAGE_CHARS // 3 - 20
        text = f"{text[:head]} [...{len(text) - head - tail:,} characters cut...] {text[-tail:]}"
    return text


class B12pkError(Exception):
    """Base class of every error b12pk raises deliberately.

    Its message is kept to one line with control characters escaped and at most about 600
    characters (a long echo of the user's input keeps its start and end), so that it can
    be printed as it is.
    """

    def __init__(self, *args: object):
        if args and isinstance(args[0], str):
            args = (sanitize_message(args[0]),) + args[1:]
        super().__init__(*args)


class InputError(B12pkError, ValueError):
    """Input that b12pk cannot accept (the base of all bad-input errors)."""


class DoseError(InputError):
    """A dose amount that is not finite, not positive or absurdly large (> 100 mg)."""


class UnknownNameError(InputError):
    """An unknown route, form, unit, preset, band or parameter name."""


class ParameterError(InputError):
    """A model parameter value that is NaN, infinite or outside its allowed range."""


class PatientError(InputError):
    """An impossible patient setting (baseline, eGFR, resection length, intake)."""


class HorizonError(InputError):
    """An impossible simulation horizon, duration, time or interval."""


class RegimenSyntaxError(InputError):
    """Regimen text that cannot be read.

    Attributes
    ----------
    text : str
        The text that was being read.
    position : int
        Character offset where reading stopped.
    expected : tuple of str
        What would have been accepted at that position.
    """

    def __init__(self, message: str, text: str = "", position: int = 0,
                 expected: tuple[str, ...] = ()):
        super().__init__(message)
        self.text = text
        self.position = position
        self.expected = tuple(expected)


class FileFormatError(InputError):
    """A malformed, truncated, empty or wrong-typed input file (TOML, CSV)."""


class EventTableError(FileFormatError):
    """A malformed NONMEM-style event table."""


class ResourceError(B12pkError):
    """A request that would exceed a documented resource budget (memory, size, time)."""


class ModelError(B12pkError):
    """A method that does not fit the model declaration it is asked to run (e.g. a fast
    engine written for an earlier structure of ``data/model.toml``)."""


class OutputError(FileFormatError):
    """An output path b12pk will not write: a folder it did not write, a symbolic link to
    a folder, the current folder, a FIFO or socket, an empty path, a missing parent folder.
    (A subclass of :class:`FileFormatError`, which earlier versions raised for these.)"""


class B12pkWarning(UserWarning):
    """A warning about an accepted but discouraged input (e.g. intravenous B12)."""


_QUIET = threading.local()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Within the block, :func:`warn` drops the :class:`B12pkWarning` s this thread raises.

    Unlike ``warnings.catch_warnings`` (whose save and restore of the one global filter
    list interleave between threads, so that one thread can leave another's "ignore" in
    place for good), this touches nothing global: analyses that run simulations in threads
    and say a condition once, centrally, use it."""
    depth = getattr(_QUIET, "depth", 0)
    _QUIET.depth = depth + 1
    try:
        yield
    finally:
        _QUIET.depth = depth


def warn(message: str, stacklevel: int = 2) -> None:
    """Issue a :class:`B12pkWarning` (``stacklevel`` as for ``warnings.warn``, counted from
    the caller), unless this thread is inside :func:`quiet_warnings`."""
    if getattr(_QUIET, "depth", 0):
        return
    warnings.warn(message, B12pkWarning, stacklevel=stacklevel + 1)
