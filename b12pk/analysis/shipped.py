"""Results that depend only on the shipped data: computed once per process (:class:`DataCache`)."""

from __future__ import annotations

import copy
from typing import Any, Callable

from .._data import data_fingerprint
from ..model.parameters import default_parameters

__all__ = ["DataCache"]


class DataCache:
    """The result of ``compute()``, recomputed only when a file under ``data/`` or a
    parameter value changes; each call gets its own copy (a report, a notebook or the tests
    ask for the same validation many times per process)."""

    def __init__(self, compute: Callable[[], Any]):
        self._compute = compute
        self._key: tuple | None = None
        self._value: Any = None

    def get(self) -> Any:
        key = (data_fingerprint(), repr(default_parameters()))
        if key != self._key:
            self._value, self._key = self._compute(), key
        return copy.deepcopy(self._value)
