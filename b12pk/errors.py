"""The b12pk exception hierarchy.

Every error b12pk raises on purpose derives from :class:`B12pkError`. Errors caused by
bad input also derive from :class:`ValueError`, so generic callers can catch them the
usual way. Messages say what was wrong and what is accepted; the command line prints
them as one line.
"""

from __future__ import annotations

__all__ = [
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
    "B12pkWarning",
]


class B12pkError(Exception):
    """Base class of every error b12pk raises deliberately."""


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
    """A request that would exceed a documented resource budget (memory, size)."""


class B12pkWarning(UserWarning):
    """A warning about an accepted but discouraged input (e.g. intravenous B12)."""
