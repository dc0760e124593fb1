"""Simulation engine: dose events + patient + parameters -> tidy time course.

The model's structure is declared in ``data/model.toml`` (:mod:`b12pk.model.declaration`) and its
rate laws are in :mod:`b12pk.model.laws`; :class:`System` builds the right-hand side, its Jacobian
and the linear part from them. The model is linear except in the pools that hold injected or
nasal B12 (depot, nasal mucosa, unbound cobalamin), where binding to haptocorrin and tissue
uptake saturate. The engine therefore integrates piecewise between dose events:

* while an injection transient is under way (any of those pools above ``TRANSIENT_EPS_UG``),
  the full nonlinear system is integrated by the compiled stiff extrapolation integrator of
  :mod:`b12pk.engine._transient` (``b12pk[fast]``), or by LSODA without numba, until the transient
  has died out;
* otherwise the system is linear with constant inputs (diet), and the state is advanced
  exactly with a matrix exponential of the augmented system (cached by step length).

``method="solve_ivp"`` integrates everything with ``solve_ivp`` (Radau) instead: the
reference used in tests. All conserve mass: every flow moves an amount from one state to
another.

States (ug): one depot, nasal and free pool per parenteral form present, then ileum,
enterocyte, holoTC, holoHC, protein-bound (hydroxocobalamin), stores, and the cumulative
urine, faeces and unabsorbed amounts (the order of data/model.toml's compartments).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.integrate import odeint, solve_ivp
from scipy.optimize import brentq

from .. import limits
from ..errors import (DoseError, HorizonError, InputError, ParameterError, PatientError,
                     ResourceError, UnknownNameError, quiet_warnings)
from ..errors import warn as b12pk_warn
from ..io import as_finite_float, echo
from ..limits import MAX_DAYS, MAX_DOSE_UG, MAX_UNCERTAINTY_DRAWS, MIN_DAYS
from ..model import laws
from ..model.declaration import LAW_PARAMETERS, declaration
from ..model.parameters import (Parameters, Patient, default_parameters, marker_variability,
                                parameter_range)
from ..regimen.language import (FORMS, PARENTERAL_ROUTES, ROUTES, DoseEvent, Regimen,
                      check_dose_limits)

__all__ = ["simulate", "MAX_DAYS", "MIN_DAYS", "TRANSIENT_EPS_UG", "steady_state_stores_ug",
           "MAX_UNCERTAINTY_DRAWS", "UNCERTAIN_COLUMNS", "simulate_draws",
           "add_interval_columns", "check_draws", "INTERVAL_PERCENTILES"]


TRANSIENT_EPS_UG = 1e-9
"""Below this total amount (ug) in depot, nasal and free pools the model is treated as linear."""
SAME_INSTANT_DAYS = 1e-12
"""Doses closer than this (days, relative to their time when it exceeds 1) coincide."""
RTOL = 1e-10
ATOL = 1e-12
"""Tolerances of the reference integrator (method="solve_ivp")."""
FAST_RTOL = 1e-10
FAST_ATOL = 1e-12
"""Tolerances of LSODA through injection transients without numba (the fitted parameters
were fitted with these; looser ones shift the weakly identified uptake_km_ug)."""

SLOW_STEP_DAYS = 1.0
SLOW_STEP_RATE = 0.0025
SLOW_TOL = 1e-9
"""Between injection transients the engine holds the slow flows (out of the stores) at their
midpoint flux over equal steps within each interval between outputs and doses: at most
SLOW_STEP_DAYS days, at most SLOW_STEP_RATE over the fastest slow flow's rate (1/day), and
as many as the error estimate of :func:`b12pk.engine._patient._midpoint` asks at SLOW_TOL
(what holding a flux misplaces, relative to the amounts concerned; the last interval's
step is the next one's start, and an interval is taken again above 8 times the
tolerance). Second order. Against Radau at rtol 1e-10 (2,000 ug oral daily in pernicious
anaemia, whose absorbed dose doubles nearly empty stores within hours, then fills them past
their capacity; IM cyano- and hydroxocobalamin courses; 4 years without intake): serum
within 8e-8, stores within 2e-7; on the day the stores first pass their capacity, urine
within 5e-5 ug (fixed steps: 2e-4 ug). Fixed steps of 1/32 day gave about the same
accuracy at 32 steps a day where 1-8 now suffice (a year without intake: 14.7 -> 4.5 ms)."""

INITIAL_STORES_CACHE = 1024
"""Patients (with their parameters) whose starting stores :meth:`System.initial_state`
keeps; the cache is emptied when full."""
_INITIAL_STORES: dict[tuple, tuple[Any, float]] = {}

PARENTERAL = PARENTERAL_ROUTES
"""Routes whose doses enter a per-form compartment (from the declaration's route table)."""

_UG_L_TO_PG_ML = 1000.0  # 1 ug/L = 1000 ng/L = 1000 pg/mL


@dataclass(frozen=True)
class _Layout:
    """Index of every state for a given set of parenteral forms.

    Per-form compartments of the declaration come first (each once per form, grouped by
    compartment), then the others in declaration order: with the default declaration,
    depot, nasal and free pools per form, then ileum, enterocyte, holotc, holohc,
    protein_bound, stores, urine, faeces and unabsorbed.
    """

    forms: tuple[str, ...]

    @property
    def nf(self) -> int:
        return len(self.forms)

    def index(self, compartment: str, form: str | None = None) -> int:
        """State index of a compartment (of ``form`` for a per-form compartment; ``form``
        is ignored for the others)."""
        per_form, fixed = _compartment_order()
        if compartment in per_form:
            return per_form.index(compartment) * self.nf + self.forms.index(form)
        return len(per_form) * self.nf + fixed.index(compartment)

    def indices(self, compartment: str) -> list[int]:
        """State indices of a compartment (every form's, for a per-form compartment)."""
        per_form, _ = _compartment_order()
        if compartment in per_form:
            return [self.index(compartment, f) for f in self.forms]
        return [self.index(compartment)]

    def depot(self, i: int) -> int:
        return self.index("depot", self.forms[i])

    def nasal(self, i: int) -> int:
        return self.index("nasal", self.forms[i])

    def free(self, i: int) -> int:
        return self.index("free", self.forms[i])

    @functools.cached_property
    def n_parenteral(self) -> int:
        """Number of per-form (parenteral) states; they come first."""
        return len(_compartment_order()[0]) * self.nf

    @property
    def parenteral(self) -> slice:
        return slice(0, self.n_parenteral)

    @property
    def free_slice(self) -> slice:
        i = self.index("free", self.forms[0])
        return slice(i, i + self.nf)

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _compartment_order()[1]:
            return self.index(name)
        raise AttributeError(name)

    @functools.cached_property
    def n(self) -> int:
        per_form, fixed = _compartment_order()
        return len(per_form) * self.nf + len(fixed)

    @functools.cached_property
    def body_indices(self) -> np.ndarray:
        return np.array([i for c in declaration().compartments if c.body
                         for i in self.indices(c.name)])

    @property
    def body(self) -> slice:
        """The body's states as a slice (the declaration lists them before the sinks)."""
        idx = self.body_indices
        return slice(int(idx.min()), int(idx.max()) + 1)


@functools.lru_cache(maxsize=1)
def _compartment_order() -> tuple[tuple[str, ...], tuple[str, ...]]:
    comps = declaration().compartments
    return (tuple(c.name for c in comps if c.per_form),
            tuple(c.name for c in comps if not c.per_form))


def patient_quantities(patient: Patient) -> dict[str, float]:
    """The patient quantities rate expressions may use (``PATIENT_QUANTITIES``)."""
    return {"egfr_ml_min": patient.egfr_ml_min, "if_route_factor": patient.if_route_factor,
            "diet_ug_per_day": patient.diet_ug_per_day, "food_release": patient.food_release}


def rate_values(values: Mapping[str, Any], form: str | None) -> dict[str, Any]:
    """Every declared rate (and the names it uses) for parameter and patient ``values``
    (floats, or arrays with one value per patient) and a form (``form=None``: only the rates
    that do not depend on the form). A form property that names a parameter takes its value
    from ``values``."""
    d = declaration()
    env: dict[str, Any] = dict(values)
    if form is not None:
        for prop in d.form_properties:
            raw = d.forms[form][prop]
            env[prop] = env[raw] if isinstance(raw, str) else float(raw)
    for name, expr in d.rates:
        if form is None and name in d.per_form_rates:
            continue
        with np.errstate(all="ignore"):
            value = expr(env)
        if not np.all(np.isfinite(value)):
            raise ParameterError(f"model rate {name} = {expr.text} is not a finite number for "
                                 "these parameters; check the parameter overrides")
        env[name] = value
    return env


def _rate_values(patient: Patient, p: Parameters, form: str | None) -> dict[str, float]:
    """:func:`rate_values` for one patient (floats); a negative derived rate (parameters that
    are each in range but together impossible) is refused."""
    env = rate_values({**p.as_dict(), **patient_quantities(patient)}, form)
    out = {k: float(v) for k, v in env.items()}
    for name, _expr in declaration().rates:
        if out.get(name, 0.0) < 0.0:
            raise ParameterError(f"these parameters make the derived rate {name} negative "
                                 f"({out[name]:.3g}); data/model.toml [rates] gives its "
                                 "formula (e.g. lower hc_transfer_fraction or "
                                 "stores_holotc_fraction)")
    return out


class System:
    """Rate constants, flows and right-hand side for one patient and parameter set, built
    from the model declaration (:mod:`b12pk.model.declaration`) and the rate laws
    (:mod:`b12pk.model.laws`)."""

    def __init__(self, patient: Patient, p: Parameters, forms: tuple[str, ...]):
        d = declaration()
        self.decl = d
        self.L = L = _Layout(forms)
        self.p = p
        common = _rate_values(patient, p, None)
        per_form = [_rate_values(patient, p, f) for f in forms]
        self.rates = common
        self.form_rates = per_form
        n = L.n
        lin: list[tuple[int, int, float]] = []   # first-order flows (src, dst, k)
        A_lin = np.zeros((n, n))                 # every flow at its small-amount limit
        bind: list[tuple] = []
        sat: list[tuple] = []
        slow: list[tuple] = []
        for f in d.flows:
            src_per_form = d.compartment(f.src).per_form
            envs = per_form if src_per_form else [common]
            srcs = L.indices(f.src)
            # a flow between per-form compartments keeps the form (depot -> free)
            dsts = L.indices(f.dst) if d.compartment(f.dst).per_form else \
                [L.index(f.dst)] * len(srcs)
            dst = dsts[0]
            values = [{k: env[v] for k, v in f.params.items()} for env in envs]
            if f.slow:  # held as an input over each step
                a_, b_ = (values[0][k] for k in LAW_PARAMETERS[f.law])
                slow.append((srcs[0], dst, laws.SLOW_LAWS[f.law], a_, b_))
                continue
            for src, to, vals in zip(srcs, dsts, values):
                k_lin = laws.linear_limit(f.law, vals)
                A_lin[src, src] -= k_lin
                A_lin[to, src] += k_lin
            if f.law == "first_order":
                lin.extend((src, to, vals["k"]) for src, to, vals in zip(srcs, dsts, values))
            elif f.law == "capacity_binding":
                bind.append((srcs, dst, L.index(f.bound), values[0]["k"],
                             values[0]["capacity"]))
            else:
                sat.append((srcs, dst, values[0]["vmax"], values[0]["km"]))
        self.lsrc = np.array([x[0] for x in lin], dtype=np.int64)
        self.ldst = np.array([x[1] for x in lin], dtype=np.int64)
        self.lk = np.array([x[2] for x in lin], dtype=float)
        self.A = np.zeros((n, n))
        np.add.at(self.A, (self.lsrc, self.lsrc), -self.lk)
        np.add.at(self.A, (self.ldst, self.lsrc), self.lk)
        nf = max(L.nf, 1)
        self.bsrc = np.array([x[0] for x in bind], dtype=np.int64).reshape(len(bind), nf)
        self.bdst = np.array([x[1] for x in bind], dtype=np.int64)
        self.bbinder = np.array([x[2] for x in bind], dtype=np.int64)
        self.bk = np.array([x[3] for x in bind], dtype=float)
        self.bcap = np.array([x[4] for x in bind], dtype=float)
        self.ssrc = np.array([x[0] for x in sat], dtype=np.int64).reshape(len(sat), nf)
        self.sdst = np.array([x[1] for x in sat], dtype=np.int64)
        self.svmax = np.array([x[2] for x in sat], dtype=float)
        self.skm = np.array([x[3] for x in sat], dtype=float)
        self.qsrc = np.array([x[0] for x in slow], dtype=np.int64)
        self.qdst = np.array([x[1] for x in slow], dtype=np.int64)
        self.qlaw = np.array([x[2] for x in slow], dtype=np.int64)
        self.qa = np.array([x[3] for x in slow], dtype=float)
        self.qb = np.array([x[4] for x in slow], dtype=float)
        self.slow = (self.qsrc, self.qdst, self.qlaw, self.qa, self.qb)
        self.nonlinear = (self.bsrc, self.bdst, self.bbinder, self.bk, self.bcap,
                          self.ssrc, self.sdst, self.svmax, self.skm, *self.slow)
        # the oral absorption step and the diet
        a = d.absorption
        self.absorb_into, self.absorb_rest = L.index(a.into), L.index(a.rest)
        self.if_cap = common[a.capacity]
        self.if_km = common[a.km]
        self.if_krec = common[a.recovery]
        self.passive = common[a.passive]
        meals = common[a.meals]
        self.diet = patient.diet_ug_per_day
        released = patient.food_release * self.diet / meals
        per_meal = (laws.if_absorbed(self.if_cap, self.if_km, released) if released > 0
                    else 0.0) + self.passive * released
        self.diet_absorbed = min(per_meal * meals, self.diet)
        b = np.zeros(n)
        b[self.absorb_into] = self.diet_absorbed
        b[self.absorb_rest] = self.diet - self.diet_absorbed
        self.b = b
        self.set_infusion(np.zeros(n))
        # dose routes: (state index per form or None for the absorption step, fraction,
        # where the rest goes)
        self.routes = {}
        for name, r in d.routes.items():
            frac = float(r.fraction(common)) if r.fraction is not None else 1.0
            self.routes[name] = (r.enters, frac, r.rest)
        # names kept for the population engine and the SBML export
        self.k_depot = np.array([env["k_depot"] for env in per_form])
        self.k_renal = np.array([env["k_renal"] for env in per_form])
        for name in ("k_tc", "k_hc", "k_st", "k_reab", "k_loss"):
            setattr(self, name, common[name])
        self.k_tr = common["k_transit"]
        self.f_nasal = self.routes["intranasal"][1] if "intranasal" in self.routes else 0.0
        self.k_bind = float(self.bk[0]) if self.bk.size else 0.0
        self.hc_cap = float(self.bcap[0]) if self.bcap.size else 1.0
        self.vmax = float(self.svmax[0]) if self.svmax.size else 0.0
        self.km = float(self.skm[0]) if self.skm.size else 1.0
        # [E g W] = exp(dt [A b D; 0 0 0]): E the linear part's propagator, g the diet's
        # response, W the response to each slow flow held at a unit flux (D: its columns)
        m = self.qsrc.size
        aug = np.zeros((n + 1 + m, n + 1 + m))
        aug[:n, :n] = A_lin
        aug[:n, n] = b
        for q in range(m):
            aug[self.qsrc[q], n + 1 + q] -= 1.0
            aug[self.qdst[q], n + 1 + q] += 1.0
        self._aug = aug
        self._steps: list | None = None  # linear_step's cached exponentials

    # ----- nonlinear right-hand side -----------------------------------------------------
    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """Right-hand side dy/dt (ug/day); smooth in the free pools (no clipping at 0)."""
        dy = self.A @ y
        dy += self.b_input
        laws.nonlinear_rhs(y, dy, *self.nonlinear)
        return dy

    def set_infusion(self, rates: np.ndarray) -> None:
        """Constant inputs (ug/day per state) of the infusions running: the right-hand side's
        input is then the diet's ``b`` plus ``rates``; while any runs, the engine stays in
        its nonlinear (transient) mode."""
        self.b_extra = rates
        self.b_input = self.b + rates
        self.infusing = bool(np.any(rates != 0.0))

    def infusion_rates(self, ev: DoseEvent) -> np.ndarray:
        """Input rates (ug/day per state) of an infused dose event (the route table's entry
        compartment and fraction; the rest, if the route has one, goes where it says)."""
        enters, fraction, rest = self.routes[ev.route]
        rate = np.zeros(self.L.n)
        for where, part in ((enters, fraction), (rest, 1.0 - fraction)):
            if where is None or part == 0.0:
                continue
            if where == "absorption":  # pragma: no cover - DoseEvent refuses oral infusions
                raise InputError(f"a {ev.route} dose cannot be infused")
            rate[self.L.index(where, ev.form)] += \
                part * ev.amount_ug / ev.duration_days
        return rate

    def release_only(self) -> np.ndarray:
        """Whether each state only releases (no flow and no input enters it: an injection
        depot, a nasal pool), as the transient integrator's error control needs it."""
        entered = np.zeros(self.L.n, dtype=np.bool_)
        for dst in (self.ldst, self.bdst, self.sdst, self.qdst):
            entered[np.ravel(dst)] = True
        return ~(entered | (self.b_input != 0.0))

    def jac(self, t: float, y: np.ndarray) -> np.ndarray:
        """Jacobian of :meth:`rhs`."""
        J = self.A.copy()
        laws.nonlinear_jac(y, J, *self.nonlinear)
        return J

    # ----- exact linear step -------------------------------------------------------------
    def linear_step(self, y: np.ndarray, dt: float) -> np.ndarray:
        """States after ``dt`` days outside injection transients: exact for the linear
        part and the diet; slow flows held at their flux at each step's midpoint (predicted
        by a half step), with the step control of the compiled loop
        (:func:`b12pk.engine._patient._linear_step`, run here as Python)."""
        from ._patient import CACHE, _linear_step

        y = np.array(y, dtype=float)
        if self._steps is None:
            self._steps = [np.zeros(CACHE), np.empty((CACHE,) + self._aug.shape), 0,
                           np.zeros(1)]
        keys, mats, count, hint = self._steps
        n, m = self.L.n, self.qsrc.size
        self._steps[2] = _linear_step(
            y, dt, self._aug, keys, mats, count, np.empty(n), np.empty(m), np.empty(m),
            np.empty(m), np.empty(n), hint, self.qsrc, self.qdst, self.qlaw, self.qa, self.qb,
            SLOW_STEP_DAYS, SLOW_STEP_RATE, SLOW_TOL)
        return y

    def in_transient(self, y: np.ndarray) -> bool:
        return float(y[: self.L.n_parenteral].sum()) > TRANSIENT_EPS_UG

    # ----- steady state and initial state -----------------------------------------------
    def _slow_input(self, y: np.ndarray) -> np.ndarray:
        """The slow flows' fluxes at ``y`` as an input vector (ug/day per state)."""
        u = np.zeros(self.L.n)
        laws.slow_rhs(y, u, *self.slow)
        return u

    @functools.cached_property
    def _quasi(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """For :meth:`plasma_given_stores`: the other body pools, the inverse of their block
        of ``A``, their column from the stores, and whether every slow flow leaves the
        stores (then their fluxes are known and one solve is exact)."""
        L = self.L
        rest = np.array([i for i in L.body_indices if i >= L.n_parenteral and i != L.stores])
        inv = np.linalg.inv(self.A[np.ix_(rest, rest)])
        return rest, inv, self.A[rest, L.stores], bool(np.all(self.qsrc == L.stores))

    def plasma_given_stores(self, stores: float) -> np.ndarray:
        """Quasi-steady state of every body pool for given stores (no parenteral B12): the
        steady state of the other pools with the stores held fixed (the slow flows at their
        flux for these stores)."""
        rest, inv, col, once = self._quasi
        y = np.zeros(self.L.n)
        y[self.L.stores] = stores
        base = col * stores + self.b[rest]
        for _ in range(1 if once else 100):
            new = -(inv @ (base + self._slow_input(y)[rest]))
            done = once or np.allclose(new, y[rest], rtol=1e-14, atol=1e-300)
            y[rest] = new
            if done:
                break
        return y

    def _store_balance(self, stores: float) -> float:
        """Net flux (ug/day) into the stores at the quasi-steady state for ``stores``."""
        y = self.plasma_given_stores(stores)
        return float(self.A[self.L.stores] @ y + self.b[self.L.stores]
                     + self._slow_input(y)[self.L.stores])

    def steady_stores(self) -> float:
        """Stores at the steady state of the untreated body (no parenteral B12)."""
        if self._store_balance(0.0) <= 0.0:
            return 0.0
        hi = 1000.0
        while self._store_balance(hi) > 0.0:
            hi *= 2.0
            if hi > 1e12:  # pragma: no cover - a declaration without losses
                raise ParameterError("the stores have no steady state: nothing leaves them")
        return float(brentq(self._store_balance, 0.0, hi, xtol=1e-12, rtol=1e-14))

    def initial_state(self, patient: Patient) -> np.ndarray:
        """The patient's state at day 0: the quasi-steady state of the untreated body at
        the stores their baseline gives (stores, serum, or the steady state of their
        diet), cached per patient and parameters (the stores' root solve)."""
        key = (patient, self.p)
        hit = _INITIAL_STORES.get(key)
        if hit is not None and hit[0] is self.decl:
            stores = hit[1]
        else:
            stores = self._initial_stores(patient)
            if len(_INITIAL_STORES) >= INITIAL_STORES_CACHE:
                _INITIAL_STORES.clear()
            _INITIAL_STORES[key] = (self.decl, stores)
        if patient.baseline_stores_ug is None and patient.baseline_serum_pmol_per_l is not None:
            self._warn_above_capacity(stores,
                                      f"baseline serum {patient.baseline_serum_pmol_per_l:g} pmol/L")
        return self.plasma_given_stores(stores)

    def _initial_stores(self, patient: Patient) -> float:
        if patient.baseline_stores_ug is not None:
            return float(patient.baseline_stores_ug)
        if patient.baseline_serum_pmol_per_l is None:
            return self.steady_stores()
        # serum rises with the stores at quasi-steady state: solve for the stores
        target = patient.baseline_serum_pmol_per_l

        def gap(stores: float) -> float:
            return float(self.serum_pmol(self.plasma_given_stores(stores))) - target

        s0 = gap(0.0) + target
        if s0 > target:
            raise PatientError(
                f"baseline serum {target:g} pmol/L is below {s0:.1f} pmol/L, the lowest serum "
                f"this patient's diet ({patient.diet_ug_per_day:g} ug/day) sustains with empty "
                "stores; accepted: a higher baseline or a lower diet_ug_per_day")
        hi = 1000.0
        while gap(hi) < 0.0:
            hi *= 2.0
        return float(brentq(gap, 0.0, hi, xtol=1e-12, rtol=1e-14)) if s0 < target else 0.0

    def capacity_exceeded(self, stores: float) -> float | None:
        """The declared overflow capacity of the stores (ug) that ``stores`` exceed, or
        None (no overflow declared, or the stores within it)."""
        for law, src, cap in zip(self.qlaw, self.qsrc, self.qb):
            if law == laws.SLOW_OVERFLOW and src == self.L.stores and stores > cap:
                return float(cap)
        return None

    def _warn_above_capacity(self, stores: float, what: str) -> None:
        """A B12pkWarning when a starting state puts the stores above a declared overflow
        capacity: the model has no steady state there and exports the excess in weeks."""
        cap = self.capacity_exceeded(stores)
        if cap is not None:
            b12pk_warn(
                f"{what} needs stores of {stores:,.0f} ug at quasi-steady state, above "
                f"the model's storage capacity ({cap:,.0f} ug): the excess is exported "
                "within weeks and serum falls (without ongoing intake the model sustains "
                "about what stores at the capacity give)", stacklevel=4)

    def amounts(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Amount (ug) of each compartment for states ``y`` (n_states, ...); a per-form
        compartment's summed over the forms."""
        return {c.name: sum(y[i] for i in self.L.indices(c.name))
                for c in self.decl.compartments}

    def output(self, name: str, y: np.ndarray, **extra: Any) -> np.ndarray:
        """A declared output (``data/model.toml [outputs]``) for states ``y`` (n_states, ...);
        ``extra`` gives ``dosed_ug`` and ``diet_ug`` where the output uses them."""
        expr = dict(self.decl.outputs)[name]
        env = {**self.rates, **self.amounts(y), **extra}
        return expr(env)

    def serum_pmol(self, y: np.ndarray) -> np.ndarray:
        """Serum total B12, pmol/L, for states ``y`` (n_states, ...)."""
        return self.output("serum_pmol_per_l", y)



def resolve_patient(patient: Patient | str | None, parameters: Parameters | None
             ) -> tuple[Patient, Parameters]:
    """Validated patient (default healthy; preset names accepted) and its parameters."""
    if patient is None:
        patient = Patient.preset("healthy")
    elif isinstance(patient, str):
        patient = Patient.preset(patient)
    elif not isinstance(patient, Patient):
        raise InputError(f"patient must be a Patient or a preset name, got {echo(patient)}")
    if parameters is not None and not isinstance(parameters, Parameters):
        raise ParameterError(f"parameters must be a Parameters object (e.g. "
                             f"b12pk.default_parameters().replace(...)), got "
                             f"{type(parameters).__name__}")
    return patient, patient.parameters(parameters if parameters is not None
                                       else default_parameters())


def parenteral_forms(events: Sequence[DoseEvent]) -> tuple[str, ...]:
    """Forms given by a parenteral route (one depot/nasal/free pool each)."""
    return tuple(sorted({ev.form for ev in events if ev.route in PARENTERAL})) \
        or ("cyanocobalamin",)


def _pmol_from_pg_ml(p: Parameters, x: Any) -> Any:
    return x * 1e3 / p["molar_mass_g_per_mol"]


def _pg_ml_from_pmol(p: Parameters, x: Any) -> Any:
    return x * p["molar_mass_g_per_mol"] / 1e3


# --------------------------------------------------------------------------------------
# Validation of inputs

HORIZON_ACCEPTED = (f"a finite number of days >= {MIN_DAYS:g} (about 1 second) and "
                    f"<= {MAX_DAYS:g} (100 years)")
"""What every horizon check says is accepted (simulate, compare, populations, SBML)."""


def check_days(days: Any) -> float:
    """The one check of a horizon (simulate, compare, simulate_population, to_sbml).

    Accepted: a real number (Python or numpy; not bool) in [MIN_DAYS, MAX_DAYS]. Integers
    too large for a float (10**400) are refused like infinity, not with OverflowError.
    """
    x = as_finite_float(days)
    if x is None or not MIN_DAYS <= x <= MAX_DAYS:
        raise HorizonError(f"simulation horizon days={echo(days)} is not accepted; accepted: "
                           f"{HORIZON_ACCEPTED}")
    return x


def _check_event(ev: Any) -> DoseEvent:
    if type(ev) is DoseEvent:  # checked when it was made (frozen)
        return ev
    try:
        t, amt, route, form = ev.time_days, ev.amount_ug, ev.route, ev.form
    except AttributeError:
        raise InputError(f"dose event {echo(ev)} lacks time_days, amount_ug, route or form; "
                         "accepted: DoseEvent objects") from None
    a = as_finite_float(amt)
    if a is None or not 0.0 < a <= MAX_DOSE_UG:
        raise DoseError(f"dose amount {echo(amt)} ug is not accepted; accepted: a finite number "
                        f"> 0 and <= {MAX_DOSE_UG:g} ug (100 mg)")
    tf = as_finite_float(t)
    if tf is None or tf < 0.0:
        raise HorizonError(f"dose time {echo(t)} days is not accepted; accepted: a finite "
                           "time >= 0")
    if route not in ROUTES:
        raise UnknownNameError(f"unknown route {echo(route)}; accepted: {', '.join(ROUTES)}")
    if form not in FORMS:
        raise UnknownNameError(f"unknown form {echo(form)}; accepted: {', '.join(FORMS)}")
    if isinstance(ev, DoseEvent):
        return ev
    return DoseEvent(tf, a, route, form, getattr(ev, "duration_days", 0.0))


_REGIMEN_LIKE = "a Regimen, regimen text or a list of DoseEvent"


class _DoseList(list):
    """Checked :class:`DoseEvent` objects read from a list of dose events."""


def regimen_like(regimen: Any, what: str = "simulate") -> "Regimen | _DoseList":
    """The one reading of regimen-like input (simulate, simulate_population, compare, to_sbml).

    A :class:`Regimen` is returned as it is, text is parsed with :meth:`Regimen.parse`, and a
    list or tuple (or another iterable) of :class:`DoseEvent` becomes a :class:`_DoseList` of
    checked tuples (objects with the four DoseEvent attributes are read the same way).
    Anything else is refused with InputError naming its type. Idempotent.
    """
    if isinstance(regimen, (Regimen, _DoseList)):
        return regimen
    if isinstance(regimen, str):
        return Regimen.parse(regimen)
    if isinstance(regimen, Iterable) and not isinstance(regimen, (bytes, bytearray, Mapping)):
        return _DoseList(_check_event(ev) for ev in regimen)
    hint = " (wrap a single DoseEvent in a list)" if isinstance(regimen, DoseEvent) else ""
    raise InputError(f"cannot {what} {type(regimen).__name__} {echo(regimen)}: give "
                     f"{_REGIMEN_LIKE}{hint}")


def as_regimen(regimen: Any, what: str) -> Regimen:
    """Regimen-like input as a :class:`Regimen`, where one is needed (populations, compare):
    a list of dose events becomes :meth:`Regimen.from_events`; an empty list is refused."""
    reg = regimen_like(regimen, what)
    if isinstance(reg, Regimen):
        return reg
    if not reg:
        raise DoseError(f"{what} needs at least one dose, got an empty list of dose events; "
                        f"accepted: {_REGIMEN_LIKE} with at least one dose (an empty list, "
                        "meaning no treatment, is accepted by simulate and to_sbml only)")
    if any(ev.duration_days > 0.0 for ev in reg):
        raise InputError(f"{what} does not simulate infusions (dose events with "
                         "duration_days > 0); accepted: bolus doses (b12pk.simulate "
                         "simulates infusions)")
    return Regimen.from_events(list(reg))


def _no_dose_error(reg: "Regimen | _DoseList", days: float, empty_ok: bool = True
                   ) -> HorizonError:
    """The one error for a regimen that gives no dose before the horizon (``empty_ok``:
    the caller accepts an empty list as no treatment, and the message says so)."""
    if isinstance(reg, Regimen):
        what = f"the regimen {echo(reg.to_text())}"
    else:
        what = (f"the list of {len(reg)} dose event(s) (the first at day "
                f"{min(ev.time_days for ev in reg):g})")
    # the hint fits where a list of doses was given and an empty one is accepted
    alt = " (or an empty list of doses to simulate no treatment)" \
        if empty_ok and not isinstance(reg, Regimen) else ""
    return HorizonError(f"{what} gives no dose within the horizon of days={days:g}; "
                        f"accepted: a horizon that reaches its first dose{alt}")


def events_from(regimen: Any, days: float, what: str = "simulate", empty_ok: bool = True
                ) -> list[DoseEvent]:
    """Checked dose events with 0 <= t < days, sorted by time, near-coincident times merged.

    ``regimen`` is anything :func:`regimen_like` reads. A regimen or a non-empty list of
    doses with no dose before the horizon is refused (:func:`_no_dose_error`); an empty list
    is no treatment.
    """
    reg = regimen_like(regimen, what)
    if isinstance(reg, Regimen):
        checked = [_check_event(ev) for ev in reg.dose_events(days)]
    else:
        checked = [ev for ev in reg if ev.time_days < days]
        check_dose_limits(checked, days)  # the limits a regimen's doses meet
    if not checked and (isinstance(reg, Regimen) or reg):
        raise _no_dose_error(reg, days, empty_ok)
    checked.sort(key=lambda ev: ev.time_days)
    # doses closer than SAME_INSTANT_DAYS (relative to the time) are given at the same instant:
    # the solver cannot integrate over a gap of a few ulps (it fails or returns NaN)
    for i in range(1, len(checked)):
        prev, ev = checked[i - 1].time_days, checked[i]
        t = ev.time_days
        if t != prev and t - prev <= SAME_INSTANT_DAYS * max(1.0, t):
            checked[i] = dataclasses.replace(ev, time_days=prev)
    if any(ev.route == "iv" for ev in checked):
        b12pk_warn("intravenous B12 is simulated, but the source articles advise against it: "
                   "most of an IV dose is lost in urine", stacklevel=3)
    return checked


def assumptions(events: Sequence[DoseEvent]) -> tuple[str, ...]:
    """What the model assumes about the routes and forms these doses use, one sentence each
    in order of first use: the ``caveat`` of each route in ``data/model.toml`` and the
    ``caveat_oral`` or ``caveat_injected`` of each form as it is given (an intranasal
    dose's swallowed part counts as oral)."""
    d = declaration()
    out: list[str] = []
    for route_name, form_name in dict.fromkeys((ev.route, ev.form) for ev in events):
        route = d.routes[route_name]
        form = d.forms.get(form_name, {})
        texts = [route.caveat]
        if route.enters == "absorption" or route.rest == "absorption":
            texts.append(str(form.get("caveat_oral", "")))
        if route.enters != "absorption":
            texts.append(str(form.get("caveat_injected", "")))
        out.extend(t for t in texts if t and t not in out)
    return tuple(out)


HOURLY_POINTS = 72 + 1
"""Output points added after each parenteral dose by ``hourly_after_injections`` (3 days)."""

#: Bytes :func:`simulate` holds per output time and state (the state matrix and the segment
#: copies of it), and per output time for the result's columns and their temporaries;
#: measured with tracemalloc (see tests/test_engine.py::test_memory_estimate_is_honest).
_BYTES_PER_POINT_STATE = 16
_BYTES_PER_POINT = 150


def simulate_memory_bytes(n_out: int, n_states: int) -> int:
    """Bytes :func:`simulate` allocates at most for ``n_out`` output times of ``n_states``
    states (its peak, while the result is built)."""
    return int(n_out) * (_BYTES_PER_POINT_STATE * int(n_states) + _BYTES_PER_POINT) \
        + 100_000


def result_memory_bytes(n_out: int) -> int:
    """Bytes the DataFrame :func:`simulate` returns holds (13 float columns) for ``n_out``
    output times (what :func:`b12pk.compare` keeps of each course)."""
    return int(n_out) * 13 * 8 + 20_000


def check_memory(need: int, what: str, change: str) -> None:
    """Refuse (ResourceError) a run whose estimate exceeds :func:`limits.memory_budget_bytes`."""
    budget = limits.memory_budget_bytes()
    if need > budget:
        raise ResourceError(f"{what} would need about {format_bytes(need)} of memory, more than the "
                            f"budget of {format_bytes(budget)} ({limits.MEMORY_FRACTION:.0%} of the "
                            f"memory available); {change}")


def format_bytes(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


def _output_times(days: float, events: Sequence[DoseEvent],
                  times: Any, hourly_after_injections: bool, n_states: int = 11) -> np.ndarray:
    """Sorted unique output times; the memory they need is checked before they are built."""
    change = "ask for fewer output times or a shorter horizon"
    if times is not None:
        try:
            if isinstance(times, str):
                raise TypeError
            t = np.asarray(times, dtype=float)
            if t.ndim > 1:
                raise TypeError
            t = t.ravel()
        except (TypeError, ValueError, OverflowError):
            raise HorizonError(f"output times {echo(times)} are not accepted; accepted: a "
                               f"flat list of numbers of days within [0, {days:g}]") from None
        if t.size == 0 or not np.all(np.isfinite(t)) or t.min() < 0.0 or t.max() > days:
            raise HorizonError(f"output times must be finite and within [0, {days:g}] days")
        check_memory(simulate_memory_bytes(t.size, n_states),
                      f"a simulation with {t.size:,} output times", change)
        return np.unique(t)
    n = int(math.floor(days + 1e-9))
    starts = np.array([ev.time_days for ev in events if ev.route in PARENTERAL]) \
        if hourly_after_injections else np.zeros(0)
    bound = n + 2 + HOURLY_POINTS * starts.size
    if hourly_after_injections:
        change = ("use a shorter horizon, fewer injections or hourly_after_injections=False")
    check_memory(simulate_memory_bytes(bound, n_states),
                  f"a simulation with up to {bound:,} output times", change)
    grid = [np.arange(n + 1, dtype=float)]
    if days - n > 1e-9:
        grid.append(np.array([days]))
    if starts.size:
        fine = (starts[:, None] + np.arange(HOURLY_POINTS) / 24.0).ravel()
        grid.append(fine[fine <= days])
    return np.unique(np.concatenate(grid))


# --------------------------------------------------------------------------------------

@dataclass
class _DoseBook:
    """Algebraic bookkeeping at dose instants: IF capacity and cumulative amounts."""

    if_deficit: float = 0.0
    t_last: float = 0.0
    dosed: float = 0.0


def _apply_doses(sys_: System, y: np.ndarray, t: float, doses: list, book: _DoseBook) -> None:
    """Give the doses at time ``t``: each route's part enters its compartment (the declared
    route table), the rest goes where the route says; oral parts pass the absorption step."""
    L = sys_.L
    for ev in doses:
        amount, route, form = ev.amount_ug, ev.route, ev.form
        if ev.duration_days > 0.0:
            continue  # an infusion enters as an input (simulate's segments)
        book.dosed += amount
        enters, fraction, rest = sys_.routes[route]
        parts = [(enters, fraction * amount)]
        if rest is not None:
            parts.append((rest, (1.0 - fraction) * amount))
        for where, part in parts:
            if where == "absorption":
                _absorb(sys_, y, t, part, book)
            else:
                y[L.index(where, form)] += part


def _absorb(sys_: System, y: np.ndarray, t: float, amount: float, book: _DoseBook) -> None:
    """The oral absorption step: IF route with a capacity that recovers exponentially since
    its last use, plus the passive fraction; the rest is not absorbed."""
    book.if_deficit *= math.exp(-sys_.if_krec * (t - book.t_last))
    book.t_last = t
    capacity = max(sys_.if_cap - book.if_deficit, 0.0)
    a_if = laws.if_absorbed(capacity, sys_.if_km, amount)
    a_passive = sys_.passive * amount
    book.if_deficit += a_if
    y[sys_.absorb_into] += a_if + a_passive
    y[sys_.absorb_rest] += amount - a_if - a_passive


TRANSIENT_RTOL = 1e-9
TRANSIENT_ATOL = 1e-10
"""Tolerances of the compiled transient integrator (relative; absolute, ug): within a few
1e-8 relative of the Radau reference at rtol 1e-10 on every route and preset (tests check
1e-6). (rtol 1e-8 saves a quarter of the steps, but near haptocorrin's saturation, where
results are sensitive, a random mixed regimen then came 1e-6 from Radau.)"""
TRANSIENT_MAX_STEPS = 100_000
"""Steps after which the compiled integrator hands a transient to LSODA (a safeguard: a
transient takes tens to a few thousand steps)."""


def _compiled_transient() -> Any:
    """The compiled transient integrator, or None without numba (or with
    ``B12PK_NO_NUMBA=1`` in the environment, to test the numpy path)."""
    global _KERNEL
    if _KERNEL is _UNSET:
        with _KERNEL_LOCK:  # threads simulating at once: none sees a half-set kernel (it
            if _KERNEL is _UNSET:  # took the LSODA path, 1e-10 off, while numba loaded)
                import os

                kernel = None
                if os.environ.get("B12PK_NO_NUMBA", "") not in ("1", "true", "yes"):
                    try:
                        from .kernels import integrate_transient
                        kernel = integrate_transient
                    except ImportError:
                        pass
                _KERNEL = kernel
    return _KERNEL


_UNSET = object()
_KERNEL: Any = _UNSET
_KERNEL_LOCK = threading.Lock()


def _compiled_segment(sys_: System, y: np.ndarray, t: float, t1: float, t_out: np.ndarray,
                      out: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Integrate a transient with the compiled integrator; return the state, the time
    reached (where the transient ended, ``t1``, or where the integrator gave up) and the
    number of outputs of ``t_out`` written to ``out``."""
    y = np.ascontiguousarray(y, dtype=float)
    sub = np.ascontiguousarray(t_out, dtype=float)
    res = np.empty((len(sub), y.size))
    # while an infusion runs the transient goes on to t1 (eps < 0: never over)
    eps = -1.0 if sys_.infusing else TRANSIENT_EPS_UG
    t_new, filled, _status = _compiled_transient()(
        y, t, t1, sub, res, sys_.L.n_parenteral, sys_.L.body.stop, eps, TRANSIENT_RTOL,
        TRANSIENT_ATOL, sys_.release_only(), TRANSIENT_MAX_STEPS, sys_.b_input, sys_.lsrc,
        sys_.ldst, sys_.lk, *sys_.nonlinear)
    out[:filled] = res[:filled]
    return y, float(t_new), int(filled)


def _integrate(sys_: System, y0: np.ndarray, t0: float, t1: float, t_out: np.ndarray,
               method: str) -> tuple[np.ndarray, np.ndarray]:
    """Advance from t0 to t1; return the state at t1 and states at ``t_out`` (in [t0, t1])."""
    out = np.empty((len(t_out), y0.size))
    y = y0.copy()
    t = t0
    k = 0
    # outputs at t0 itself
    while k < len(t_out) and t_out[k] <= t0:
        out[k] = y
        k += 1
    if method == "solve_ivp" and t1 > t0:
        # reference: the whole segment with solve_ivp (Radau, analytic Jacobian)
        sol = solve_ivp(sys_.rhs, (t0, t1), y, method="Radau", jac=sys_.jac, rtol=RTOL,
                        atol=ATOL, dense_output=True)
        if sol.status < 0:  # pragma: no cover - solver failure is a bug
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        while k < len(t_out):
            out[k] = sol.sol(t_out[k])
            k += 1
        return sol.y[:, -1].copy(), out
    # fast: the compiled integrator (b12pk[fast]) through injection transients, or LSODA
    # (odeint) in chunks that double in length (also where the compiled one gave up),
    # until the parenteral pools are empty; exact matrix exponential after that
    if _compiled_transient() is not None and t < t1 and (sys_.infusing or sys_.in_transient(y)):
        y, t, filled = _compiled_segment(sys_, y, t, t1, t_out[k:], out[k:])
        k += filled
    chunk = 1.0
    while t < t1 and (sys_.infusing or sys_.in_transient(y)):
        t_end = min(t1, t + chunk)
        chunk *= 2.0
        j = k
        while j < len(t_out) and t_out[j] <= t_end:
            j += 1
        # odeint needs strictly increasing times: points closer than tol to the previous
        # one (round-off, e.g. 1/3 + 3 vs (1/3 + 1) + 2) share its value
        tol = 1e-12 * max(1.0, abs(t_end))
        grid = [t]
        where = []
        for p in t_out[k:j]:
            if p - grid[-1] > tol:
                grid.append(float(p))
            where.append(len(grid) - 1)
        if t_end - grid[-1] > tol:
            grid.append(t_end)
        res, info = odeint(sys_.rhs, y, np.asarray(grid), Dfun=sys_.jac, tfirst=True,
                           rtol=FAST_RTOL, atol=FAST_ATOL, mxstep=1_000_000, full_output=True)
        if info["message"] != "Integration successful.":
            raise RuntimeError(f"numerical integration failed: {info['message']}")
        out[k:j] = res[where]
        k = j
        y = res[-1].copy()
        t = t_end
    # step from output to output so that equal steps reuse one cached matrix exponential
    while k < len(t_out):
        y = sys_.linear_step(y, t_out[k] - t)
        t = t_out[k]
        out[k] = y
        k += 1
    if t < t1:
        y = sys_.linear_step(y, t1 - t)
    return y, out


def _dose_parts(sys_: System, ev: DoseEvent) -> tuple[int, float, int]:
    """A dose's entry state (or ABSORPTION), the share entering it, and where the rest goes
    (a state, ABSORPTION or NOWHERE): the route table, encoded for the compiled engine."""
    from ._patient import ABSORPTION, NOWHERE

    def index(where: str | None) -> int:
        if where is None:
            return NOWHERE
        if where == "absorption":
            return ABSORPTION
        return sys_.L.index(where, ev.form)

    enters, fraction, rest = sys_.routes[ev.route]
    return index(enters), fraction, index(rest)


SEGMENTS_PER_CALL = 64
"""Segments (dose intervals) per call of the compiled loop: Python sees an interrupt
(Ctrl-C, SIGTERM) between calls, within about 0.1 s."""


def _run_compiled(kernel: Any, sys_: System, y: np.ndarray, events: Sequence[DoseEvent],
                  days: float, t_out: np.ndarray, before: Sequence[float]
                  ) -> "tuple[np.ndarray, np.ndarray, np.ndarray] | None":
    """:func:`run_patient` through the compiled loop (:mod:`b12pk.engine._patient`); None
    when its transient integrator gave up (the caller goes on in Python, with LSODA)."""
    from ._patient import CACHE, CARRY, OK

    L = sys_.L
    times = sorted({ev.time_days for ev in events})
    t_out = np.ascontiguousarray(t_out, dtype=float)
    seg_end = np.array(times + [days], dtype=float)
    seg_out_end = np.searchsorted(t_out, seg_end, side="left").astype(np.int64)
    seg_out_end[-1] = len(t_out)
    order = sorted(range(len(events)), key=lambda i: events[i].time_days)
    kinds = {(ev.route, ev.form): _dose_parts(sys_, ev) for ev in events}
    parts = [kinds[events[i].route, events[i].form] for i in order]
    dose_amount = np.array([events[i].amount_ug for i in order], dtype=float)
    dose_enter = np.array([p[0] for p in parts], dtype=np.int64)
    dose_share = np.array([p[1] for p in parts], dtype=float)
    dose_rest = np.array([p[2] for p in parts], dtype=np.int64)
    at = [events[i].time_days for i in order]
    seg_dose_end = np.searchsorted(at, seg_end, side="right").astype(np.int64)
    seg_dose_end[-1] = len(at)
    where = {float(t): j for j, t in enumerate(before)}
    seg_pre = np.array([where.get(float(t), -1) for t in times] + [-1], dtype=np.int64)
    states = np.empty((len(t_out), L.n))
    dosed = np.empty(len(t_out))
    pre = np.full((len(before), L.n), np.nan)
    carry = np.zeros(CARRY)
    keys = np.zeros(CACHE)
    mats = np.empty((CACHE,) + sys_._aug.shape)
    relax = sys_.release_only()
    for i0 in range(0, len(seg_end), SEGMENTS_PER_CALL):
        i1 = min(i0 + SEGMENTS_PER_CALL, len(seg_end))
        status = kernel(i0, i1, carry, keys, mats, y, t_out, seg_end, seg_out_end,
                        seg_dose_end, seg_pre, dose_amount, dose_enter, dose_share, dose_rest,
                        states, dosed, pre, sys_._aug, L.n_parenteral, L.body.stop,
                        TRANSIENT_EPS_UG, TRANSIENT_RTOL, TRANSIENT_ATOL, relax,
                        TRANSIENT_MAX_STEPS, sys_.b_input, sys_.lsrc, sys_.ldst, sys_.lk,
                        *sys_.nonlinear,
                        sys_.absorb_into, sys_.absorb_rest, sys_.if_cap, sys_.if_km,
                        sys_.if_krec, sys_.passive, SLOW_STEP_DAYS, SLOW_STEP_RATE, SLOW_TOL)
        if status != OK:
            return None
    states[(states < 0.0) & (states > -1e-12)] = 0.0
    return states, dosed, pre


def _compiled_patient() -> Any:
    """The compiled single-patient loop, or None (as :func:`_compiled_transient`)."""
    if _compiled_transient() is None:
        return None
    from .kernels import run_patient_kernel
    return run_patient_kernel


def run_patient(sys_: System, y0: np.ndarray, events: Sequence[DoseEvent], days: float,
                t_out: np.ndarray, method: str = "fast", before: Sequence[float] = ()
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run one patient's system from state ``y0`` at day 0 through the checked dose
    ``events`` to ``days``: the engine behind :func:`simulate` and the population's exact
    method (:func:`b12pk.population.simulate_population`).

    Returns the states at the sorted output times ``t_out`` (len(t_out), n_states; at a dose
    time, just after the dose), the amount dosed (ug) by each output time, and the states
    just before the doses at each of the dose times ``before`` (len(before), n_states).
    """
    L = sys_.L
    y = np.array(y0, dtype=float)
    kernel = _compiled_patient() if method == "fast" else None
    if kernel is not None and not any(ev.duration_days > 0.0 for ev in events):
        # a copy: when the compiled loop gives up, the Python loop starts again from y0
        done = _run_compiled(kernel, sys_, y.copy(), events, days, t_out, before)
        if done is not None:
            return done
    book = _DoseBook()
    states = np.empty((len(t_out), L.n))
    dosed = np.empty(len(t_out))
    pre = np.full((len(before), L.n), np.nan)
    before_index = {float(t): i for i, t in enumerate(before)}

    # segments run from one change to the next: a dose time, or the end of an infusion
    groups: dict[float, list] = {}
    ends: dict[float, list] = {}
    for ev in events:
        groups.setdefault(ev.time_days, []).append(ev)
        if ev.duration_days > 0.0 and ev.time_days + ev.duration_days < days:
            ends.setdefault(ev.time_days + ev.duration_days, []).append(ev)
    changes = sorted(set(groups) | set(ends))
    infusions = [ev for ev in events if ev.duration_days > 0.0]
    t = 0.0
    k = 0
    try:
        for te in changes + [None]:
            t_next = days if te is None else te
            # outputs in [t, t_next): computed before the doses at t_next
            j = np.searchsorted(t_out, t_next, side="left") if te is not None else len(t_out)
            y, out = _integrate(sys_, y, t, t_next, t_out[k:j], method)
            states[k:j] = out
            dosed[k:j] = book.dosed
            k = j
            t = t_next
            if te is None:
                break
            if te in before_index:
                pre[before_index[te]] = y
            _apply_doses(sys_, y, te, groups.get(te, ()), book)
            if te in ends or any(ev.duration_days > 0.0 for ev in groups.get(te, ())):
                running = [ev for ev in infusions
                           if ev.time_days <= te < ev.time_days + ev.duration_days]
                sys_.set_infusion(sum((sys_.infusion_rates(ev) for ev in running),
                                      np.zeros(L.n)))
    finally:
        sys_.set_infusion(np.zeros(L.n))
    for ev in infusions:  # the part of each infusion given by each output time
        dosed += ev.amount_ug * np.clip((t_out - ev.time_days) / ev.duration_days, 0.0, 1.0)
    # round-off below 1e-12 ug (matrix exponential) is set to zero; larger negatives stay visible
    states[(states < 0.0) & (states > -1e-12)] = 0.0
    return states, dosed, pre


def simulate(regimen: Any, patient: Patient | str | None = None, days: float = 365.0, *,
             parameters: Parameters | None = None, times: Any = None,
             hourly_after_injections: bool = False, method: str = "fast",
             uncertainty: int = 0, seed: int = 0) -> "Any":
    """Simulate serum B12 and body stores for a regimen and a patient.

    Parameters
    ----------
    regimen : Regimen, str or list of DoseEvent
        What is given. Text is parsed with :meth:`b12pk.Regimen.parse`; a list (or tuple)
        of :class:`b12pk.DoseEvent` gives exactly those doses, and an empty list means no
        treatment. A regimen (or a non-empty list) with no dose before ``days`` is refused.
    patient : Patient or str, optional
        A :class:`Patient` or a preset name; default ``"healthy"``.
    days : float
        Horizon in days, >= 1e-5 (about 1 second, :data:`b12pk.limits.MIN_DAYS`) and
        <= 36500 (100 years). Doses at or after it are ignored.
    parameters : Parameters, optional
        Model parameters (default: ``data/model.toml``); the patient's overrides apply on top.
    times : array-like, optional
        Output times in days (within [0, days]); default every day from 0 to ``days``.
    hourly_after_injections : bool
        Add hourly output for 3 days after every parenteral (IM, SC, IV, intranasal) dose.
    method : {"fast", "solve_ivp"}
        ``fast``: exact matrix exponential between injection transients; ``solve_ivp``:
        integrate everything numerically (reference).
    uncertainty : int
        Number of parameter sets drawn from the fitted parameters' uncertainty
        (:func:`b12pk.model.parameters.parameter_uncertainty`, an approximate posterior
        centred on ``parameters``) to add a 90 % prediction interval of the serum, holoTC
        and stores columns (``<column>_p5`` and ``<column>_p95``); 0 (default): none, at
        most :data:`MAX_UNCERTAINTY_DRAWS`. The main columns stay the central prediction.
    seed : int
        Seed of those draws (>= 0): the same seed gives the same interval.

    Returns
    -------
    pandas.DataFrame
        One row per output time, columns: ``time_days``; ``serum_pmol_per_l``,
        ``serum_pg_per_ml`` (total serum B12), ``holotc_pmol_per_l`` (active B12);
        ``stores_ug``, ``plasma_ug``, ``body_ug``; cumulative ``dosed_ug``, ``diet_ug``,
        ``absorbed_ug`` (dose + diet that entered the body), ``unabsorbed_ug``, ``urine_ug``,
        ``faeces_ug`` (lost from the body in bile/faeces); the functional markers
        ``mma_nmol_per_l`` (methylmalonic acid) and ``hcy_umol_per_l`` (total homocysteine),
        which follow the tissue stores (``data/model.toml [markers]``; a patient's
        measured baseline sets their own level). Amounts in ug. At a dose time the
        row shows the state just after the dose. ``df.attrs`` holds ``initial_body_ug``,
        ``patient``, ``parameters`` and ``assumptions`` (:func:`assumptions`: what the
        model assumes about the routes and forms given, e.g. that a sublingual dose acts
        as a swallowed one); with ``uncertainty``, also ``uncertainty`` (draws, seed,
        what the interval is).

    Raises
    ------
    HorizonError, DoseError, UnknownNameError, PatientError, ParameterError, InputError
        For bad input; messages say what is accepted.
    ResourceError
        When the output would need more memory than :func:`b12pk.limits.memory_budget_bytes`
        (checked before the work).
    """
    import pandas as pd

    days = check_days(days)
    n_draws, seed = check_draws(uncertainty, seed)
    patient, params, events, forms, sys_, t_out = _prepare(
        regimen, patient, days, parameters, times, hourly_after_injections, method, n_draws)
    columns, initial_body = _course(sys_, patient, events, days, t_out, method)
    df = pd.DataFrame(columns)
    if n_draws:
        _add_intervals(df, patient, parameters, forms, events, days, t_out, method,
                       n_draws, seed)
    df.attrs["initial_body_ug"] = initial_body
    df.attrs["assumptions"] = assumptions(events)
    df.attrs["patient"] = patient
    df.attrs["parameters"] = params
    return df


UNCERTAIN_COLUMNS = ("serum_pmol_per_l", "serum_pg_per_ml", "holotc_pmol_per_l", "stores_ug",
                     "mma_nmol_per_l", "hcy_umol_per_l")
"""Columns that get a prediction interval (``_p5`` and ``_p95``) with ``uncertainty``."""


def _prepare(regimen: Any, patient: Patient | str | None, days: float,
             parameters: Parameters | None, times: Any, hourly: bool, method: str,
             n_draws: int) -> tuple:
    """Checked inputs of a simulation: (patient, parameters, events, parenteral forms,
    System, output times); the memory of ``n_draws`` parameter draws is checked too."""
    if method not in ("fast", "solve_ivp"):
        raise UnknownNameError(f"unknown method {echo(method)}; accepted: fast, solve_ivp")
    patient, params = resolve_patient(patient, parameters)
    events = events_from(regimen, days)
    forms = parenteral_forms(events)
    sys_ = System(patient, params, forms)
    t_out = _output_times(days, events, times, hourly, sys_.L.n)
    check_memory(n_draws * result_memory_bytes(t_out.size),
                 f"{n_draws:,} parameter draws", "ask for fewer draws or output times")
    return patient, params, events, forms, sys_, t_out


def check_draws(uncertainty: Any, seed: Any) -> tuple[int, int]:
    for name, value, top in (("uncertainty", uncertainty, MAX_UNCERTAINTY_DRAWS),
                             ("seed", seed, 2 ** 63 - 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not 0 <= value <= top:
            raise InputError(f"{name}={echo(value)} is not accepted; accepted: a whole "
                             f"number from 0 to {top:,}")
    return int(uncertainty), int(seed)


def _course(sys_: System, patient: Patient, events: Sequence[DoseEvent], days: float,
            t_out: np.ndarray, method: str) -> tuple[dict[str, np.ndarray], float]:
    """The declared outputs at ``t_out`` (columns) and the initial body amount (ug)."""
    y = sys_.initial_state(patient)
    initial_body = float(y[sys_.L.body].sum())
    states, dosed, _ = run_patient(sys_, y, events, days, t_out, method)
    diet_cum = sys_.diet * t_out
    env = {**sys_.rates, **sys_.amounts(states.T), "dosed_ug": dosed, "diet_ug": diet_cum}
    columns = {"time_days": t_out}
    for name, expr in sys_.decl.outputs:
        value = expr(env)
        columns[name] = np.broadcast_to(value, t_out.shape).astype(float, copy=True)
    add_marker_columns(columns, marker_terms(sys_, patient, y), sys_.decl)
    return columns, initial_body


#: A patient's own reference level (set from a measured baseline marker) stays within this
#: many between-patient SDs of the typical one (``data/variability.toml [markers]``).
MARKER_REFERENCE_SDS = 3.0


def marker_terms(sys_: System, patient: Patient, y0: np.ndarray
                 ) -> dict[str, tuple[float, float, float, float]]:
    """Each declared marker's (reference, max_fold, half, hill) for this patient.

    A marker measured at the start (``Patient.baseline_<column>``) replaces the typical
    level at the baseline stores (see :func:`_individual_terms`).
    """
    out = {}
    for m in sys_.decl.markers:
        ref, fold, half, hill = (float(expr(sys_.rates)) for _key, expr in m.terms())
        given = getattr(patient, f"baseline_{m.column}", None)
        if given is not None:
            driver = float(sys_.output(m.driver, y0, dosed_ug=0.0, diet_ug=0.0))
            signal = float(laws.deficiency_signal(driver, half, hill))
            ref, fold = _individual_terms(m, float(given), ref, fold, signal,
                                          marker_variability().get(m.column, 0.0))
        out[m.column] = (ref, fold, half, hill)
    return out


def _individual_terms(m: Any, given: float, ref: float, fold: float, signal: float,
                      cv: float) -> tuple[float, float]:
    """(reference, max_fold) that put the marker at ``given`` at the start.

    The log distance from the typical level is shared between the patient's reference
    level and their rise (fold) as the most probable split under log-normal between-patient
    variability of each: the reference's SD from ``cv`` (``data/variability.toml
    [markers]``), the fold's assumed equal to it. A replete patient's deviation thus goes
    mostly to the reference (the fold barely acts there); a deficient patient's to both.
    The fold stays from 0 to the top of its parameter's declared range; the baseline is met
    exactly, with a warning when the reference has to leave :data:`MARKER_REFERENCE_SDS` SDs.
    """
    from scipy.optimize import minimize_scalar

    sigma = max(math.sqrt(math.log1p(cv * cv)), 1e-6)
    if fold > 0.0 and signal > 0.0:
        delta = math.log(given / (ref * (1.0 + fold * signal)))
        base = math.log1p(fold * signal)

        def cost(b: float) -> float:
            a = delta - (math.log1p(fold * math.exp(b) * signal) - base)
            return (a * a + b * b) / (sigma * sigma)

        top = math.log(_fold_top(m) / fold) if math.isfinite(_fold_top(m)) else 20.0
        b = minimize_scalar(cost, bounds=(-30.0, max(top, -30.0)), method="bounded",
                            options={"xatol": 1e-10}).x
        fold = fold * math.exp(b)
    own = given / (1.0 + fold * signal)
    if abs(math.log(own / ref)) > MARKER_REFERENCE_SDS * sigma * (1 + 1e-9):
        b12pk_warn(f"baseline {m.words} {given:g} {m.unit} is further from the model's "
                   f"typical level at this patient's stores than its between-patient "
                   f"variability explains; the patient's reference level is set to "
                   f"{own:.3g} {m.unit} (typical {ref:.3g})", stacklevel=5)
    return own, fold


def _fold_top(m: Any) -> float:
    """Top of the declared range of the parameter a marker's ``max_fold`` names (inf if it
    names none)."""
    declared = parameter_range(m.max_fold.text.strip())
    return declared[1] if declared is not None else math.inf


def add_marker_columns(columns: dict[str, np.ndarray],
                       terms: Mapping[str, tuple[float, float, float, float]],
                       decl: Any = None) -> None:
    """Add each marker's column (in place) from its driver's column and its terms
    (``decl``: the declaration the terms come from; default the model's)."""
    for m in (decl or declaration()).markers:
        ref, fold, half, hill = terms[m.column]
        columns[m.column] = laws.marker_level(ref, fold, half, hill,
                                              np.asarray(columns[m.driver], dtype=float))


def _draw_courses(patient: Patient, parameters: Parameters | None, forms: tuple[str, ...],
                  events: Sequence[DoseEvent], days: float, t_out: np.ndarray, method: str,
                  n: int, seed: int) -> tuple[list[dict[str, np.ndarray]], int]:
    """The outputs (columns) of each of ``n`` parameter sets drawn around ``parameters``,
    and how many draws were skipped: those whose model cannot start at the patient's
    baseline serum (below what the patient's diet sustains with empty stores in that draw).
    All skipped: :class:`InputError`."""
    from ..model.parameters import parameter_uncertainty

    base = parameters if parameters is not None else default_parameters()
    courses, skipped, why = [], 0, ""
    for q in parameter_uncertainty().draw(base, n, seed):
        with quiet_warnings():  # a draw's start above capacity: said once, centrally
            try:
                courses.append(_course(System(patient, patient.parameters(q), forms),
                                       patient, events, days, t_out, method)[0])
            except InputError as err:
                skipped, why = skipped + 1, str(err)
    if not courses:
        raise InputError(f"none of the {n} parameter draws can start at this patient's "
                         f"baseline ({why})")
    return courses, skipped


def _add_intervals(df: Any, patient: Patient, parameters: Parameters | None,
                   forms: tuple[str, ...], events: Sequence[DoseEvent], days: float,
                   t_out: np.ndarray, method: str, n: int, seed: int) -> None:
    """Add the 5th and 95th percentiles over ``n`` parameter draws (in place)."""
    courses, skipped = _draw_courses(patient, parameters, forms, events, days, t_out, method,
                                     n, seed)
    add_interval_columns(df, courses, seed, skipped)


#: The percentiles of a 90 % prediction interval (``_p5`` and ``_p95`` columns).
INTERVAL_PERCENTILES = (5.0, 95.0)


def add_interval_columns(df: Any, courses: Sequence[Mapping[str, Any]], seed: int,
                         skipped: int = 0) -> None:
    """Add ``<column>_p5`` and ``<column>_p95`` of :data:`UNCERTAIN_COLUMNS` to ``df`` (in
    place): percentiles over ``courses`` (the draws' columns, on ``df``'s times), and
    ``df.attrs["uncertainty"]`` (draws used, draws skipped, seed, what the interval is)."""
    for c in UNCERTAIN_COLUMNS:
        stack = np.stack([np.asarray(cols[c], dtype=float) for cols in courses])
        df[f"{c}_p5"], df[f"{c}_p95"] = np.percentile(stack, INTERVAL_PERCENTILES, axis=0)
    df.attrs["uncertainty"] = {"draws": len(courses), "skipped": skipped, "seed": seed,
                               "interval": INTERVAL_TEXT}
    if skipped:
        b12pk_warn(f"{skipped} of {skipped + len(courses)} parameter draws cannot start at "
                   "this patient's baseline serum (below what the diet sustains with empty "
                   "stores in that draw) and were left out of the interval", stacklevel=3)


INTERVAL_TEXT = ("90 % prediction interval: 5th-95th percentile over parameter sets drawn "
                 "from the fitted parameters' approximate posterior (data/calibration.toml "
                 "[uncertainty]); between-patient variability is not in it (see "
                 "simulate_population)")


def simulate_draws(regimen: Any, patient: Patient | str | None = None, days: float = 365.0,
                   *, n: int, seed: int = 0, parameters: Parameters | None = None,
                   times: Any = None, hourly_after_injections: bool = False,
                   method: str = "fast") -> list:
    """One time course per parameter set drawn from the fitted parameters' uncertainty.

    The arguments are :func:`simulate`'s (``n`` parameter sets, ``seed`` their seed); the
    draws are those ``simulate(..., uncertainty=n, seed=seed)`` takes its interval from.
    Use it for the uncertainty of a quantity computed from a whole course (a trough, a
    time to repletion): compute it for each course and take its percentiles.

    Returns
    -------
    list of pandas.DataFrame
        One frame per usable draw with :func:`simulate`'s columns (no interval columns);
        draws whose model cannot start at the patient's baseline serum are left out (their
        number is in each frame's ``attrs["skipped_draws"]``).
    """
    import pandas as pd

    days = check_days(days)
    n, seed = check_draws(n, seed)
    patient, _params, events, forms, _sys, t_out = _prepare(
        regimen, patient, days, parameters, times, hourly_after_injections, method, n)
    courses, skipped = _draw_courses(patient, parameters, forms, events, days, t_out, method,
                                     n, seed)
    frames = [pd.DataFrame(cols) for cols in courses]
    for f in frames:
        f.attrs["skipped_draws"] = skipped
    return frames


def steady_state_stores_ug(patient: Patient | str, parameters: Parameters | None = None) -> float:
    """Body stores (ug) an untreated patient tends to on their diet (where the stores' balance
    is zero)."""
    if isinstance(patient, str):
        patient = Patient.preset(patient)
    params = patient.parameters(parameters if parameters is not None else default_parameters())
    return System(patient, params, ("cyanocobalamin",)).steady_stores()
