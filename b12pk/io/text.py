"""How user input appears in messages: short, on one line, control characters escaped."""

from __future__ import annotations

from typing import Any

from ..errors import escape_control, sanitize_message
from ..limits import MAX_ECHO_CHARS

__all__ = ["echo", "sanitize_message"]


def echo(value: Any, limit: int = MAX_ECHO_CHARS, quote: str = "'") -> str:
    """``repr``-like quote of a user's value, cut to ``limit`` characters.

    Strings are quoted with line breaks, tabs and control characters (ANSI escapes, NUL,
    bidirectional marks) escaped; a long value keeps its first ``limit`` characters and
    says how many more there were.
    """
    text = value if isinstance(value, str) else repr(value)
    extra = len(text) - limit
    if extra > 0:
        text = text[:limit]
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    text = escape_control(text)
    quoted = f"{quote}{text}{quote}" if isinstance(value, str) else text
    return quoted + (f"... ({extra:,} more characters)" if extra > 0 else "")
