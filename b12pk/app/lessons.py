"""The teaching app's guided scenarios (``data/lessons.toml``): plain, validated data."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from .._data import data_path
from ..errors import FileFormatError, UnknownNameError
from ..limits import MAX_APP_REGIMENS

_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")


@dataclass(frozen=True)
class Source:
    """A sentence of a seed article, quoted word for word."""

    article: str
    """The article's title (never its file name)."""
    quote: str


@dataclass(frozen=True)
class Lesson:
    """One guided scenario: a patient, up to four regimens and a short text.

    ``patient`` holds the app's patient fields (``preset`` and optional settings);
    ``days`` is the horizon in days.
    """

    id: str
    title: str
    text: str
    look: str
    days: float
    regimens: tuple[str, ...]
    patient: Mapping[str, Any]
    sources: tuple[Source, ...]

    def as_dict(self) -> dict[str, Any]:
        """The lesson as JSON-ready data (what the page receives)."""
        return {"id": self.id, "title": self.title, "text": self.text, "look": self.look,
                "days": self.days, "regimens": list(self.regimens),
                "patient": dict(self.patient),
                "sources": [{"article": s.article, "quote": s.quote} for s in self.sources]}


def _fill(text: str, where: str) -> str:
    """Replace ``{name}`` by the parameter's value (``{name_pct}``: as a percentage)."""
    from ..model.parameters import parameter_spec

    def one(m: re.Match) -> str:
        name = m.group(1)
        pct = name.endswith("_pct")
        try:
            value = parameter_spec(name.removesuffix("_pct") if pct else name).value
        except UnknownNameError:
            raise FileFormatError(f"data/lessons.toml: {where} names an unknown parameter "
                                  f"{{{name}}}") from None
        return f"{value * (100.0 if pct else 1.0):.3g}"

    return " ".join(_PLACEHOLDER.sub(one, text).split())


def _lesson(entry: Mapping[str, Any], titles: Mapping[str, str]) -> Lesson:
    where = f"lesson {entry.get('id', '?')!r}"
    try:
        regimens = tuple(str(r) for r in entry["regimens"])
        sources = tuple(Source(article=titles[s["article"]], quote=str(s["quote"]))
                        for s in entry.get("source", ()))
        lesson = Lesson(id=str(entry["id"]), title=str(entry["title"]),
                        text=_fill(entry["text"], where), look=_fill(entry["look"], where),
                        days=float(entry["days"]), regimens=regimens,
                        patient=dict(entry["patient"]), sources=sources)
    except KeyError as exc:
        raise FileFormatError(f"data/lessons.toml: {where} lacks {exc.args[0]!r} "
                              f"(or names an unknown article)") from None
    if not 1 <= len(regimens) <= MAX_APP_REGIMENS or not sources:
        raise FileFormatError(f"data/lessons.toml: {where} needs 1-{MAX_APP_REGIMENS} "
                              "regimens and at least one source")
    return lesson


@lru_cache(maxsize=1)
def lessons() -> tuple[Lesson, ...]:
    """Every lesson of ``data/lessons.toml``, in file order.

    Raises
    ------
    FileFormatError
        A lesson without its fields, regimens or sources, or naming an unknown parameter
        or article.
    """
    from ..analysis.evidence import articles

    with open(data_path("lessons.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    titles = {seed: a["title"] for seed, a in articles().items()}
    out = tuple(_lesson(e, titles) for e in doc.get("lesson", ()))
    ids = [x.id for x in out]
    if len(set(ids)) != len(ids):
        raise FileFormatError("data/lessons.toml: two lessons share an id")
    return out
