"""Numbers from users: finite, real, and not too big to convert exactly."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["is_finite_real", "as_finite_float"]


def as_finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` if it is not a finite real number.

    Booleans and strings are not numbers; an integer too large for a float (``10**400``)
    is not finite here rather than an ``OverflowError``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers too
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def is_finite_real(value: Any) -> bool:
    """True if ``value`` is a real number (not bool) with a finite float value."""
    return as_finite_float(value) is not None
