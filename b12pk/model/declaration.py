"""The model's structure, read from ``data/model.toml``: the one place it is written.

``data/model.toml`` declares, next to the parameters and their sources, the compartments,
the derived rates, the flows with their rate laws, the oral absorption step, the dose routes
and the outputs (the way an mrgsolve model file keeps ``$PARAM``, ``$CMT`` and ``$ODE``
together). :func:`declaration` reads and checks it once; the engine
(:mod:`b12pk.engine`), the population engine, the compiled kernels and the SBML export are
built from the :class:`Declaration` it returns. The rate laws themselves are in
:mod:`b12pk.model.laws`, each written once.

Expressions are parsed into :class:`Expr`: arithmetic on names and numbers with ``+ - * /
**``, the functions ``ln``, ``exp``, ``min``, ``max`` and the constant ``ln2``; nothing else
is accepted (a declaration is data, not code).
"""

from __future__ import annotations

import ast
import math
import functools
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .._data import data_path
from ..errors import FileFormatError


__all__ = ["Expr", "Compartment", "Flow", "Route", "Absorption", "Marker", "Declaration",
           "declaration", "MARKER_KEYS",
           "LAW_PARAMETERS", "PATIENT_QUANTITIES", "FORM_TEXT_KEYS"]

def _min(*args: Any) -> Any:
    return functools.reduce(np.minimum, args)


def _max(*args: Any) -> Any:
    return functools.reduce(np.maximum, args)


# numpy functions: an expression gives an array for arrays of values (one per patient)
_FUNCTIONS = {"ln": np.log, "exp": np.exp, "min": _min, "max": _max}
_CONSTANTS = {"ln2": math.log(2.0)}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
          ast.Pow, ast.USub, ast.UAdd, ast.Name, ast.Load, ast.Constant, ast.Call)

#: Patient quantities an expression may use (from :class:`b12pk.Patient`).
PATIENT_QUANTITIES = ("egfr_ml_min", "if_route_factor", "diet_ug_per_day", "food_release")

#: Keys of a ``[forms.NAME]`` table that are text for readers, not form properties: a note,
#: and the caveats shown with results when the form is given by mouth or injected.
FORM_TEXT_KEYS = ("note", "caveat_oral", "caveat_injected")

#: The parameters each rate law takes (names of rates or model parameters in a flow).
LAW_PARAMETERS = {"first_order": ("k",), "capacity_binding": ("k", "capacity"),
                  "saturable": ("vmax", "km"), "overflow": ("k", "capacity")}


@dataclass(frozen=True)
class Expr:
    """An arithmetic expression of the declaration (see the module docstring).

    Attributes
    ----------
    text : str
        The expression as written.
    names : frozenset of str
        The names it uses (functions and ``ln2`` excluded).
    """

    text: str
    names: frozenset
    _code: Any

    @classmethod
    def parse(cls, text: Any, where: str) -> "Expr":
        """Parse ``text``; FileFormatError naming ``where`` when it is not an expression."""
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = repr(float(text))
        if not isinstance(text, str):
            raise FileFormatError(f"model.toml: {where} must be an expression (text), got "
                                  f"{type(text).__name__}")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise FileFormatError(f"model.toml: {where} = {text!r} is not an expression")
        names = set()
        for node in ast.walk(tree):
            if not isinstance(node, _NODES):
                raise FileFormatError(f"model.toml: {where} = {text!r} uses "
                                      f"{type(node).__name__}; accepted: + - * / ** ( ), "
                                      f"{', '.join(_FUNCTIONS)}, numbers and names")
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS \
                        or node.keywords:
                    raise FileFormatError(f"model.toml: {where} = {text!r} calls an unknown "
                                          f"function; accepted: {', '.join(_FUNCTIONS)}")
            elif isinstance(node, ast.Name) and node.id not in _CONSTANTS:
                names.add(node.id)
            elif isinstance(node, ast.Constant) and (
                    isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
                raise FileFormatError(f"model.toml: {where} = {text!r}: only numbers are "
                                      "accepted as constants")
        names -= set(_FUNCTIONS)
        code = compile(tree, f"<model.toml {where}>", "eval")
        return cls(text, frozenset(names), code)

    def __call__(self, env: Mapping[str, Any]) -> Any:
        """Value for the names in ``env`` (floats or numpy arrays)."""
        return eval(self._code, {"__builtins__": {}, **_FUNCTIONS, **_CONSTANTS}, env)

    def infix(self) -> str:
        """The expression in SBML Level 3 infix (``^`` for powers)."""
        return _Infix().visit(ast.parse(self.text, mode="eval").body)


class _Infix(ast.NodeVisitor):
    _OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}

    def visit_BinOp(self, node: ast.BinOp) -> str:
        return f"({self.visit(node.left)} {self._OPS[type(node.op)]} {self.visit(node.right)})"

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        return f"(-{self.visit(node.operand)})" if isinstance(node.op, ast.USub) \
            else self.visit(node.operand)

    def visit_Name(self, node: ast.Name) -> str:
        return node.id

    def visit_Constant(self, node: ast.Constant) -> str:
        return repr(float(node.value))

    def visit_Call(self, node: ast.Call) -> str:
        return f"{node.func.id}({', '.join(self.visit(a) for a in node.args)})"


@dataclass(frozen=True)
class Compartment:
    """A compartment: ``per_form`` (one pool per parenteral form), ``body`` (in the body)."""

    name: str
    per_form: bool
    body: bool
    description: str


@dataclass(frozen=True)
class Flow:
    """A flow of B12 from one compartment to another under one rate law.

    ``params`` maps each of the law's parameters (:data:`LAW_PARAMETERS`) to the name of a
    rate or model parameter; ``bound`` names the binder compartment of a capacity_binding law.
    """

    src: str
    dst: str
    law: str
    params: Mapping[str, str]
    bound: str | None
    description: str
    slow: bool = False
    """A nonlinear flow out of a compartment that is not per form (the stores): the
    engines hold it as an input over a step between injection transients."""


@dataclass(frozen=True)
class Route:
    """A dose route: the compartment a dose enters (or ``"absorption"``), the fraction that
    enters (an expression, or None for all of it), where the rest goes, and whether its doses
    are parenteral (enter a per-form compartment and start a nonlinear transient)."""

    name: str
    enters: str
    fraction: Expr | None
    rest: str | None
    parenteral: bool
    words: str
    caveat: str = ""


@dataclass(frozen=True)
class Absorption:
    """The oral absorption step: names of the rates or parameters it uses."""

    into: str
    rest: str
    capacity: str
    km: str
    recovery: str
    passive: str
    meals: str


@dataclass(frozen=True)
class Marker:
    """A functional marker (a column of the result, not an amount of B12): the level
    ``reference * (1 + max_fold * D)`` with ``D = 1 / (1 + (driver / half) ** hill)``
    (:func:`b12pk.model.laws.marker_level`); ``driver`` names an output column, the others
    are expressions; ``band`` is its key in ``data/lab_bands.toml``."""

    column: str
    driver: str
    reference: Expr
    max_fold: Expr
    half: Expr
    hill: Expr
    band: str
    unit: str
    words: str

    def terms(self) -> tuple[tuple[str, Expr], ...]:
        """The expressions by name (reference, max_fold, half, hill)."""
        return (("reference", self.reference), ("max_fold", self.max_fold),
                ("half", self.half), ("hill", self.hill))


MARKER_KEYS = ("driver", "reference", "max_fold", "half", "hill", "band", "unit", "words")


def _markers(raw: Any) -> tuple[Marker, ...]:
    out = []
    for col, m in (raw or {}).items():
        where = f"markers.{col}"
        if not isinstance(m, Mapping):
            raise FileFormatError(f"model.toml: {where} must be a table")
        unknown = sorted(set(m) - set(MARKER_KEYS))
        if unknown:
            raise FileFormatError(f"model.toml: {where} has unknown key(s) "
                                  f"{', '.join(unknown)}; accepted: {', '.join(MARKER_KEYS)}")
        vals = {k: _need(m, k, where) for k in MARKER_KEYS}
        out.append(Marker(str(col), str(vals["driver"]),
                          *(Expr.parse(vals[k], f"{where}.{k}")
                            for k in ("reference", "max_fold", "half", "hill")),
                          str(vals["band"]), str(vals["unit"]), str(vals["words"])))
    return tuple(out)


@dataclass(frozen=True)
class Declaration:
    """The whole model structure (see the module docstring)."""

    compartments: tuple
    rates: tuple  # ((name, Expr), ...) in evaluation order
    flows: tuple
    absorption: Absorption
    routes: Mapping[str, Route]
    outputs: tuple  # ((column, Expr), ...)
    forms: Mapping[str, Mapping[str, Any]]
    form_properties: tuple
    per_form_rates: frozenset
    markers: tuple[Marker, ...] = ()

    def compartment(self, name: str) -> Compartment:
        for c in self.compartments:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def parenteral_routes(self) -> tuple[str, ...]:
        return tuple(r for r, route in self.routes.items() if route.parenteral)


def _need(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise FileFormatError(f"model.toml: {where} lacks {key!r}")
    return table[key]


def _compartments(raw: Any) -> tuple[Compartment, ...]:
    out = []
    for i, c in enumerate(raw or ()):
        where = f"compartments[{i}]"
        out.append(Compartment(str(_need(c, "name", where)), bool(c.get("per_form", False)),
                               bool(_need(c, "body", where)), str(c.get("description", ""))))
    names = [c.name for c in out]
    if len(set(names)) != len(names) or not out:
        raise FileFormatError("model.toml: compartment names must be given and unique")
    return tuple(out)


def _flows(raw: Any, comps: Mapping[str, Compartment]) -> tuple[Flow, ...]:
    out = []
    for i, f in enumerate(raw or ()):
        where = f"flows[{i}]"
        src, dst, law = (str(_need(f, k, where)) for k in ("from", "to", "law"))
        if law not in LAW_PARAMETERS:
            raise FileFormatError(f"model.toml: {where} has unknown law {law!r}; accepted: "
                                  f"{', '.join(LAW_PARAMETERS)}")
        for c in (src, dst):
            if c not in comps:
                raise FileFormatError(f"model.toml: {where} names unknown compartment {c!r}")
        params = {k: str(_need(f, k, where)) for k in LAW_PARAMETERS[law]}
        bound = str(_need(f, "bound", where)) if law == "capacity_binding" else None
        if bound is not None and bound not in comps:
            raise FileFormatError(f"model.toml: {where} binds to unknown compartment {bound!r}")
        per_form = comps[src].per_form
        if law == "overflow" and per_form or law == "capacity_binding" and not per_form:
            raise FileFormatError(
                f"model.toml: {where}: the {law} law needs a source that is "
                f"{'not ' if law == 'overflow' else ''}per form ({src!r} is"
                f"{'' if per_form else ' not'})")
        if not per_form and comps[dst].per_form:
            raise FileFormatError(f"model.toml: {where}: a flow from {src!r} (not per form) "
                                  f"cannot enter the per-form compartment {dst!r}")
        out.append(Flow(src, dst, law, MappingProxyType(params), bound,
                        str(f.get("description", "")),
                        slow=law != "first_order" and not per_form))
    return tuple(out)


def _routes(raw: Any, comps: Mapping[str, Compartment]) -> Mapping[str, Route]:
    out = {}
    for name, r in (raw or {}).items():
        where = f"routes.{name}"
        enters = str(_need(r, "enters", where))
        rest = r.get("rest")
        for c in (enters, rest):
            if c is not None and c != "absorption" and c not in comps:
                raise FileFormatError(f"model.toml: {where} names unknown compartment {c!r}")
        frac = Expr.parse(r["fraction"], f"{where}.fraction") if "fraction" in r else None
        if (frac is None) != (rest is None):
            raise FileFormatError(f"model.toml: {where} needs both fraction and rest, or neither")
        parenteral = enters != "absorption" and comps[enters].per_form
        out[name] = Route(name, enters, frac, rest, parenteral, str(r.get("words", name)),
                          str(r.get("caveat", "")))
    if not out:
        raise FileFormatError("model.toml: no [routes]")
    return MappingProxyType(out)


def _check_names(decl: Declaration, parameters: set[str]) -> None:
    """Every name an expression or flow uses must be defined (before its use, for rates)."""
    known = parameters | set(PATIENT_QUANTITIES) | set(decl.form_properties)
    for name, expr in decl.rates:
        missing = expr.names - known
        if missing:
            raise FileFormatError(f"model.toml: rate {name} uses undefined "
                                  f"{', '.join(sorted(missing))}")
        known.add(name)
    for i, f in enumerate(decl.flows):
        for key, value in f.params.items():
            if value not in known:
                raise FileFormatError(f"model.toml: flows[{i}].{key} = {value!r} is not a rate "
                                      "or parameter")
    a = decl.absorption
    for value in (a.capacity, a.km, a.recovery, a.passive, a.meals):
        if value not in known:
            raise FileFormatError(f"model.toml: absorption uses undefined {value!r}")
    state = {c.name for c in decl.compartments} | {"dosed_ug", "diet_ug"}
    for col, expr in decl.outputs:
        missing = expr.names - known - state
        if missing:
            raise FileFormatError(f"model.toml: output {col} uses undefined "
                                  f"{', '.join(sorted(missing))}")
    for r in decl.routes.values():
        if r.fraction is not None and r.fraction.names - known:
            raise FileFormatError(f"model.toml: routes.{r.name}.fraction uses undefined names")
    columns = {col for col, _ in decl.outputs}
    for m in decl.markers:
        if m.driver not in columns:
            raise FileFormatError(f"model.toml: markers.{m.column}.driver = {m.driver!r} is "
                                  "not an output column")
        if m.column in columns:
            raise FileFormatError(f"model.toml: markers.{m.column} is also an output")
        for key, expr in m.terms():
            missing = expr.names - known
            if missing:
                raise FileFormatError(f"model.toml: markers.{m.column}.{key} uses undefined "
                                      f"{', '.join(sorted(missing))}")


def _per_form_rates(rates: tuple, form_props: tuple) -> frozenset:
    per_form = set(form_props)
    for name, expr in rates:
        if expr.names & per_form:
            per_form.add(name)
    return frozenset(per_form)


def parse_declaration(doc: Mapping[str, Any]) -> Declaration:
    """A checked :class:`Declaration` from the parsed model file (FileFormatError if not)."""
    comps = _compartments(doc.get("compartments"))
    by_name = {c.name: c for c in comps}
    rates = tuple((str(k), Expr.parse(v, f"rates.{k}")) for k, v in
                  (doc.get("rates") or {}).items())
    a = doc.get("absorption") or {}
    absorption = Absorption(*(str(_need(a, k, "[absorption]")) for k in
                              ("into", "rest", "capacity", "km", "recovery", "passive",
                               "meals")))
    for c in (absorption.into, absorption.rest):
        if c not in by_name:
            raise FileFormatError(f"model.toml: [absorption] names unknown compartment {c!r}")
    forms = MappingProxyType({f: MappingProxyType(dict(v)) for f, v in
                              (doc.get("forms") or {}).items()})
    props = sorted({k for v in forms.values() for k in v if k not in FORM_TEXT_KEYS})
    decl = Declaration(
        compartments=comps, rates=rates, flows=_flows(doc.get("flows"), by_name),
        absorption=absorption, routes=_routes(doc.get("routes"), by_name),
        outputs=tuple((str(k), Expr.parse(v, f"outputs.{k}")) for k, v in
                      (doc.get("outputs") or {}).items()),
        forms=forms, form_properties=tuple(props),
        per_form_rates=_per_form_rates(rates, tuple(props)),
        markers=_markers(doc.get("markers")))
    _check_names(decl, set(doc.get("parameters") or {}))
    return decl


@lru_cache(maxsize=1)
def model_document() -> Mapping[str, Any]:
    """``data/model.toml`` as parsed TOML (read once)."""
    import tomllib

    path = data_path("model.toml")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - shipped file
        raise FileFormatError(f"{path}: not valid TOML ({exc})") from exc


@lru_cache(maxsize=1)
def declaration() -> Declaration:
    """The model structure declared in ``data/model.toml`` (read and checked once)."""
    return parse_declaration(model_document())
