"""How user input appears in messages: short, on one line, control characters escaped."""

from __future__ import annotations

import numbers
import os
from typing import Any

from ..errors import CONTROL_CHARACTERS, InputError, escape_control, sanitize_message
from ..limits import MAX_ECHO_CHARS, MAX_ECHO_PATH_CHARS, MAX_LABEL_CHARS

__all__ = ["echo", "echo_path", "sanitize_message", "check_label"]


def check_label(label: Any, what: str = "label") -> str:
    """A display label as given, if it is one line of printable text (labels are written
    into reports, tables and figures): InputError otherwise."""
    if not isinstance(label, str):
        raise InputError(f"{what} {echo(label)} is not accepted; accepted: text")
    if not label.strip() or len(label) > MAX_LABEL_CHARS or "\n" in label or "\r" in label \
            or "\t" in label or CONTROL_CHARACTERS.search(label):
        raise InputError(f"{what} {echo(label)} is not accepted; accepted: one line of up to "
                         f"{MAX_LABEL_CHARS} printable characters (no control characters, "
                         "tabs or line breaks), not blank")
    return label


def _number_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if value.bit_length() < 13_000 else None
        if digits is None or digits > 40:
            sign = "-" if value < 0 else ""
            return f"{sign}an integer of {digits or 'over 4,000'} digits"
        return str(value)
    if isinstance(value, numbers.Number) and hasattr(value, "item"):  # numpy: the plain number
        return repr(value.item())
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails must not hide the real error
        return f"<{type(value).__name__}>"


def echo_path(path: Any) -> str:
    """A path as :func:`echo` shows it, keeping its end (the file name) when cut."""
    return echo(os.fspath(path) if isinstance(path, os.PathLike) else str(path),
                MAX_ECHO_PATH_CHARS, keep_end=True)


def echo(value: Any, limit: int = MAX_ECHO_CHARS, quote: str = "'",
         keep_end: bool = False) -> str:
    """``repr``-like quote of a user's value, cut to ``limit`` characters.

    Strings are quoted with line breaks, tabs and control characters (ANSI escapes, NUL,
    bidirectional marks) escaped; a long value keeps its first ``limit`` characters and
    says how many more there were.
    """
    text = value if isinstance(value, str) else _number_text(value)
    extra = len(text) - limit
    if extra > 0:
        text = text[-limit:] if keep_end else text[:limit]
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    text = escape_control(text)
    quoted = f"{quote}{text}{quote}" if isinstance(value, str) else text
    if extra <= 0:
        return quoted
    if keep_end:
        return f"({extra:,} characters)...{quoted}"
    return quoted + f"... ({extra:,} more characters)"
