"""Regimens as guidelines write them (:mod:`.language`: vocabulary, parser, schedules, dose
events and their limits) and NONMEM-style event tables (:mod:`.events`).

Layer: above ``model``; below ``engine``.
"""

from .events import read_event_table, to_event_table, write_event_table
from .language import *  # noqa: F401,F403 - the regimen language's public names
from .language import __all__ as _LANGUAGE

__all__ = [*_LANGUAGE, "read_event_table", "to_event_table", "write_event_table"]
