"""Virtual populations: between-patient variability, outcome probabilities, a fast engine.

A :class:`PopulationSpec` names a patient (preset), a size and a seed; every patient gets
log-normal variability on the quantities in ``data/variability.toml`` (the preset's value is
the median). :func:`simulate_population` runs the population in blocks of
:data:`BLOCK` patients, vectorised with numpy, and accumulates per-time histograms of serum
B12 and stores, band counts, time to repletion and the trough before each injection. Memory
is bounded by the block, not by the population; merged aggregates are integer counts, so
the same seed gives identical results for any chunking or number of workers.

Engine
------
Between injection transients the model is linear: the slow states (ileum, enterocyte,
holoTC, holoHC, stores) are advanced exactly with matrix exponentials, interpolated per
patient (4-point Lagrange in log store-loss rate, on a fixed grid of 65 points) when store
turnover varies, and computed exactly when it does not. During an injection or intranasal
transient the fast pools (depot, nasal, unbound) are stepped with an
exponential integrator (predictor-corrector on the saturable outflow) every 3.75 minutes inside a Strang
splitting with the exact slow propagator. Oral-only regimens are therefore exact; with
injections the population engine agrees with :func:`b12pk.simulate` to about 1e-3.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ._data import data_path
from ._linalg import expm
from .engine import _System, _check_days, _parenteral_forms
from .errors import InputError, ResourceError, UnknownNameError
from .model import Patient, default_parameters, parameter_table, serum_bands_pmol_per_l
from .regimen import Regimen

__all__ = ["PopulationSpec", "PopulationResult", "simulate_population", "write_population",
           "sample_patients", "BLOCK",
           "MAX_PATIENTS", "QUANTILES", "default_variability"]

BLOCK = 1024
"""Patients per random-number block: patient i's draws depend only on (seed, i // BLOCK)."""

MAX_PATIENTS = 100_000_000
"""Largest accepted population."""

MAX_CHUNK = 262_144
"""Largest chunk (patients simulated at once); bounds memory to about 100 MB."""

QUANTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
TRANSIENT_STEP_DAYS = 1.0 / 384.0
_EPS_UG = 1e-9
_HIST_LO, _HIST_HI, _HIST_BINS = 1e-1, 1e6, 3500  # log-spaced bins (pmol/L or ug)
_SLOW = ("ileum", "enterocyte", "holotc", "holohc", "stores")
_ORAL, _PARENTERAL = ("oral", "sublingual"), ("im", "deep-sc", "intranasal", "iv")
_ORDER = ("if_capacity_ug", "passive_fraction", "other_loss_fraction_per_day",
          "uptake_vmax_ug_per_day", "nasal_bioavailability", "diet_ug_per_day",
          "baseline_serum_pmol_per_l")


def default_variability() -> dict[str, float]:
    """CV of every varying quantity, from ``data/variability.toml``."""
    with open(data_path("variability.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    out = {k: float(v["cv"]) for k, v in doc["parameters"].items()}
    out.update({k: float(v["cv"]) for k, v in doc["patient"].items()})
    return out


@dataclass(frozen=True)
class PopulationSpec:
    """A virtual population.

    Parameters
    ----------
    patient : Patient or str
        The typical patient (a preset name or a :class:`Patient`).
    n : int
        Number of patients, 1 to :data:`MAX_PATIENTS`.
    seed : int
        Seed (>= 0); the same seed gives the same population.
    variability : Mapping[str, float], optional
        Coefficient of variation by quantity (names in ``data/variability.toml``); missing
        names take their default, ``{}``-like zeros remove variability. ``None``: defaults.
    """

    patient: Any
    n: int
    seed: int = 0
    variability: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        patient = Patient.preset(self.patient) if isinstance(self.patient, str) else self.patient
        if not isinstance(patient, Patient):
            raise InputError(f"population patient must be a Patient or preset name, got "
                             f"{self.patient!r}")
        object.__setattr__(self, "patient", patient)
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or \
                not 1 <= int(self.n) <= MAX_PATIENTS:
            raise InputError(f"population size n={self.n!r} is not accepted; accepted: a whole "
                             f"number from 1 to {MAX_PATIENTS:,}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or \
                self.seed < 0:
            raise InputError(f"seed={self.seed!r} is not accepted; accepted: a whole number >= 0")
        cvs = default_variability()
        given = dict(self.variability or {})
        unknown = sorted(set(given) - set(cvs))
        if unknown:
            raise UnknownNameError(f"unknown variability name(s): {', '.join(unknown)}; "
                                   f"accepted: {', '.join(sorted(cvs))}")
        for k, v in given.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or v > 3:
                raise InputError(f"variability of {k} = {v!r} is not accepted; accepted: a "
                                 "coefficient of variation from 0 to 3")
        cvs.update({k: float(v) for k, v in given.items()})
        object.__setattr__(self, "variability", cvs)
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def without_variability(cls, patient: Any, n: int = 1, seed: int = 0) -> "PopulationSpec":
        """A population of identical typical patients (for checks)."""
        return cls(patient, n, seed, {k: 0.0 for k in default_variability()})


def _ranges() -> dict[str, tuple[float, float]]:
    t = parameter_table()
    out = {r.name: (r.low, r.high) for r in t.itertuples()}
    out["diet_ug_per_day"] = (0.0, 1000.0)
    out["baseline_serum_pmol_per_l"] = (1.0, 100_000.0)
    return out


def _sample_block(spec: PopulationSpec, block: int, typical: Mapping[str, float]
                  ) -> dict[str, np.ndarray]:
    """Draw the varying quantities of the patients in one block (log-normal, median = typical)."""
    size = min(BLOCK, spec.n - block * BLOCK)
    rng = np.random.default_rng([spec.seed, block])
    # a full block is always drawn (then cut), so a patient's draws do not depend on n
    z = rng.standard_normal((len(_ORDER), BLOCK))[:, :size]
    ranges = _ranges()
    out = {}
    for k, name in enumerate(_ORDER):
        base = typical.get(name)
        if base is None:
            continue
        cv = spec.variability.get(name, 0.0)
        if cv == 0.0 or base == 0.0:
            out[name] = np.full(size, float(base))
            continue
        sigma = math.sqrt(math.log1p(cv * cv))
        lo, hi = ranges[name]
        out[name] = np.clip(base * np.exp(sigma * z[k]), lo, hi)
    return out


# --------------------------------------------------------------------------------------
# Aggregates (mergeable integer counts)

def _bin_edges() -> np.ndarray:
    return np.logspace(math.log10(_HIST_LO), math.log10(_HIST_HI), _HIST_BINS + 1)


def _bin_index(x: np.ndarray) -> np.ndarray:
    lo, hi = math.log10(_HIST_LO), math.log10(_HIST_HI)
    idx = np.floor((np.log10(np.maximum(x, 1e-300)) - lo) / (hi - lo) * _HIST_BINS)
    return np.clip(idx, 0, _HIST_BINS - 1).astype(np.int64)


@dataclass
class _Aggregate:
    n_times: int
    n_troughs: int
    n: int = 0
    serum: np.ndarray = field(default=None)  # type: ignore[assignment]
    stores: np.ndarray = field(default=None)  # type: ignore[assignment]
    bands: np.ndarray = field(default=None)  # type: ignore[assignment]
    repletion: np.ndarray = field(default=None)  # type: ignore[assignment]
    troughs: np.ndarray = field(default=None)  # type: ignore[assignment]
    trough_below: np.ndarray = field(default=None)  # type: ignore[assignment]
    sums: dict = field(default_factory=dict)  # block -> (2, n_times) serum and stores sums

    def __post_init__(self) -> None:
        self.serum = np.zeros((self.n_times, _HIST_BINS), np.int64)
        self.stores = np.zeros((self.n_times, _HIST_BINS), np.int64)
        self.bands = np.zeros((self.n_times, 3), np.int64)
        self.repletion = np.zeros(self.n_times + 1, np.int64)  # last = never
        self.troughs = np.zeros((self.n_troughs, _HIST_BINS), np.int64)
        self.trough_below = np.zeros(self.n_troughs, np.int64)

    def merge(self, other: "_Aggregate") -> "_Aggregate":
        for name in ("serum", "stores", "bands", "repletion", "troughs", "trough_below"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.n += other.n
        self.sums.update(other.sums)
        return self

    def means(self) -> np.ndarray:
        """Mean serum and stores per time, summed in block order (chunking-independent)."""
        total = np.zeros((2, self.n_times))
        for b in sorted(self.sums):
            total += self.sums[b]
        return total / self.n


# --------------------------------------------------------------------------------------
# Vectorised engine for one block

class _Propagators:
    """exp(A(k) dt) and the unit-inflow response for a set of store-loss rates k.

    Computed by a batched matrix exponential once for a base step h0 (1/768 day), then by exact binary
    composition for any dt that is a whole multiple of h0 (all steps the population engine
    takes when doses and outputs fall on the 1/768-day grid); other dt use expm directly.
    """

    H0 = 1.0 / 768.0

    def __init__(self, A0: np.ndarray, k0: float, ks: np.ndarray):
        self.mats = []
        s = _SLOW.index("stores")
        for k in ks:
            A = A0.copy()
            A[s, s] += k0 - k
            self.mats.append(A)
        self.mats = np.stack(self.mats)
        self._cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._pow: list[tuple[np.ndarray, np.ndarray]] = [self._direct(self.H0)]

    def _direct(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        K = len(self.mats)
        M = np.zeros((K, 6, 6))
        M[:, :5, :5] = self.mats
        M[:, _SLOW.index("ileum"), 5] = 1.0
        E = expm(M * dt)  # batched
        return E[:, :5, :5].copy(), E[:, :5, 5].copy()

    def get(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        key = round(dt, 9)
        if key in self._cache:
            return self._cache[key]
        m = round(key / self.H0)
        if m >= 1 and abs(m * self.H0 - key) < 1e-9:
            E = g = None
            bit = 0
            while m:
                while len(self._pow) <= bit:  # E(2h) = E(h)^2, g(2h) = E(h) g(h) + g(h)
                    Ep, gp = self._pow[-1]
                    self._pow.append((Ep @ Ep, np.einsum("kij,kj->ki", Ep, gp) + gp))
                if m & 1:
                    Ep, gp = self._pow[bit]
                    if E is None:
                        E, g = Ep.copy(), gp.copy()
                    else:
                        E, g = Ep @ E, np.einsum("kij,kj->ki", Ep, g) + gp
                m >>= 1
                bit += 1
            out = (E, g)
        else:
            out = self._direct(key)
        self._cache[key] = out
        return out


class _BlockEngine:
    """Slow-state propagators: exact for one store-loss rate, interpolated otherwise."""

    def __init__(self, sys_: _System, k_loss_grid: np.ndarray):
        L = sys_.L
        self.sys = sys_
        self.idx = [getattr(L, s) for s in _SLOW]
        self.A0 = sys_.A[np.ix_(self.idx, self.idx)].copy()
        self.k_loss0 = sys_.k_loss
        self.grid = k_loss_grid
        self.log_grid = np.log(k_loss_grid)
        self._grid_props = _Propagators(self.A0, self.k_loss0, k_loss_grid)
        self._exact: dict[float, _Propagators] = {}

    def table(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        return self._grid_props.get(dt)

    def propagators(self, k_loss: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-patient E (5, 5, N) and g (5, N) for step dt."""
        if np.all(k_loss == k_loss[0]):
            k = float(k_loss[0])
            if k not in self._exact:
                self._exact[k] = _Propagators(self.A0, self.k_loss0, np.array([k]))
            E, g = self._exact[k].get(dt)
            return (np.broadcast_to(E[0][:, :, None], (5, 5, k_loss.size)),
                    np.broadcast_to(g[0][:, None], (5, k_loss.size)))
        E_tab, g_tab = self.table(dt)
        x = (np.log(k_loss) - self.log_grid[0]) / (self.log_grid[1] - self.log_grid[0])
        j0 = np.clip(np.floor(x).astype(int) - 1, 0, len(self.grid) - 4)
        u = x - j0
        w = np.empty((4, k_loss.size))
        nodes = np.arange(4.0)
        for q in range(4):
            others = [m for m in range(4) if m != q]
            w[q] = np.prod([(u - nodes[m]) / (nodes[q] - nodes[m]) for m in others], axis=0)
        E = np.zeros((5, 5, k_loss.size))
        g = np.zeros((5, k_loss.size))
        for q in range(4):
            E += E_tab[j0 + q].transpose(1, 2, 0) * w[q]
            g += g_tab[j0 + q].T * w[q]
        return E, g


def _apply(E: np.ndarray, g: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    out = np.einsum("ijn,jn->in", E, y)
    out += g * r
    return out


def _run_block(spec: PopulationSpec, regimen_events: Sequence[tuple[float, float, str, str]],
               days: float, blocks: Sequence[int], forms: tuple[str, ...], typical_sys: _System,
               engine: _BlockEngine, out_times: np.ndarray, trough_times: Sequence[float],
               cut: float, upper: float) -> _Aggregate:
    s = typical_sys
    p = s.p
    patient = spec.patient
    typical = {"if_capacity_ug": p["if_capacity_ug"], "passive_fraction": p["passive_fraction"],
               "other_loss_fraction_per_day": p["other_loss_fraction_per_day"],
               "uptake_vmax_ug_per_day": p["uptake_vmax_ug_per_day"],
               "nasal_bioavailability": p["nasal_bioavailability"],
               "diet_ug_per_day": patient.diet_ug_per_day}
    if patient.baseline_serum_pmol_per_l is not None:
        typical["baseline_serum_pmol_per_l"] = patient.baseline_serum_pmol_per_l
    parts = [_sample_block(spec, b, typical) for b in blocks]
    draw = {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}
    sizes = [d["if_capacity_ug"].size for d in parts]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    n = draw["if_capacity_ug"].size
    agg = _Aggregate(len(out_times), len(trough_times))
    agg.n = n
    # per-patient rates
    if_cap = draw["if_capacity_ug"] * patient.if_route_factor
    passive = draw["passive_fraction"]
    k_loss = s.k_loss - p["other_loss_fraction_per_day"] + draw["other_loss_fraction_per_day"]
    vmax = draw["uptake_vmax_ug_per_day"]
    f_nasal = draw["nasal_bioavailability"]
    diet = draw["diet_ug_per_day"]
    meals = p["meals_per_day"]
    m = patient.food_release * diet / meals
    with np.errstate(invalid="ignore", divide="ignore"):
        per_meal = np.where(m > 0, if_cap * m / (s.if_km + m), 0.0) + passive * m
    r_diet = np.minimum(per_meal * meals, diet)
    # initial state (quasi-steady plasma for the stores that give the baseline serum)
    Vp, Vf = p["plasma_volume_l"], p["free_volume_l"]
    to_pmol = 1e3 / p["molar_mass_g_per_mol"] * 1e3  # ug/L -> pmol/L
    a_tc = s.k_st / s.k_tc
    a_hc = s.k_sh / s.k_hc

    def plasma_for(stores: np.ndarray) -> np.ndarray:
        r_in = r_diet + s.k_reab * stores
        return np.stack([r_in / s.k_tr, r_in / s.k_tr, (s.k_st * stores + r_in) / s.k_tc,
                         a_hc * stores, stores])

    if "baseline_serum_pmol_per_l" in draw:
        target = draw["baseline_serum_pmol_per_l"]
        s0 = (r_diet / s.k_tc) / Vp * to_pmol
        slope = ((a_tc + s.k_reab / s.k_tc) + a_hc) / Vp * to_pmol
        stores0 = np.maximum((target - s0) / slope, 0.0)
    elif patient.baseline_stores_ug is not None:
        stores0 = np.full(n, patient.baseline_stores_ug)
    else:
        stores0 = r_diet / k_loss
    y = plasma_for(stores0)
    nf = len(forms)
    depot = np.zeros((nf, n))
    nasal = np.zeros((nf, n))
    free = np.zeros((nf, n))
    k_dep = s.k_depot
    k_nas = p["nasal_absorption_rate_per_day"]
    k_ren = s.k_renal * (1.0)
    deficit = np.zeros(n)
    t_last_oral = 0.0
    replete_at = np.full(n, len(out_times), dtype=np.int64)

    def serum_of() -> np.ndarray:
        return (y[2] + y[3]) / Vp * to_pmol + free.sum(axis=0) / Vf * to_pmol

    sums = {b: np.zeros((2, len(out_times))) for b in blocks}
    agg.sums.update(sums)

    def record(k: int) -> None:
        ser = serum_of()
        per_block = (np.add.reduceat(ser, starts), np.add.reduceat(y[4], starts))
        for j, b in enumerate(blocks):
            sums[b][0, k] = per_block[0][j]
            sums[b][1, k] = per_block[1][j]
        agg.serum[k] += np.bincount(_bin_index(ser), minlength=_HIST_BINS)
        agg.stores[k] += np.bincount(_bin_index(y[4]), minlength=_HIST_BINS)
        agg.bands[k, 0] += int(np.count_nonzero(ser < cut))
        agg.bands[k, 1] += int(np.count_nonzero((ser >= cut) & (ser < upper)))
        agg.bands[k, 2] += int(np.count_nonzero(ser >= upper))
        newly = (replete_at == len(out_times)) & (ser >= cut)
        replete_at[newly] = k

    def fast_step(h: float) -> None:
        """Fast pools over h: exponential integrator, predictor-corrector on the saturable
        terms; haptocorrin binding limited to the free capacity (mass-conserving)."""
        room = np.maximum(s.hc_cap - y[3], 0.0)
        ftot = free.sum(axis=0)
        g = room / s.hc_cap
        f_new = free
        bound_pred = np.zeros(n)
        for corrector in (False, True):
            F_mid = ftot if not corrector else 0.5 * (ftot + f_new.sum(axis=0))
            if corrector:
                g = np.maximum(room - 0.5 * bound_pred, 0.0) / s.hc_cap
            u = vmax / (s.km + np.maximum(F_mid, 0.0))
            lam = [k_ren[i] + s.k_bind * g + u for i in range(nf)]
            f_new = np.empty_like(free)
            outs = []
            for i in range(nf):
                li = lam[i]
                acc = free[i] * np.exp(-li * h)
                for k_src, amt in ((k_dep[i], depot[i]), (k_nas, nasal[i])):
                    diff = li - k_src
                    safe = np.abs(diff) > 1e-9
                    term = np.where(safe, k_src * amt * (np.exp(-k_src * h) - np.exp(-li * h))
                                    / np.where(safe, diff, 1.0),
                                    k_src * amt * h * np.exp(-li * h))
                    acc = acc + term
                f_new[i] = acc
                d_in = depot[i] * (1.0 - math.exp(-k_dep[i] * h)) + \
                    nasal[i] * (1.0 - math.exp(-k_nas * h))
                outs.append(free[i] + d_in - f_new[i])
            bound_pred = np.minimum(sum(o * (s.k_bind * g) / l for o, l in zip(outs, lam)),
                                    room)
        want = [o * (s.k_bind * g) / l for o, l in zip(outs, lam)]
        scale = np.where(sum(want) > room, room / np.maximum(sum(want), 1e-300), 1.0)
        for i in range(nf):
            bound = want[i] * scale
            y[3] += bound
            y[4] += outs[i] * u / lam[i]
            f_new[i] += want[i] - bound  # binding beyond the capacity stays unbound
            depot[i] *= math.exp(-k_dep[i] * h)
            nasal[i] *= math.exp(-k_nas * h)
        free[:] = f_new

    prop_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def props(dt: float) -> tuple[np.ndarray, np.ndarray]:
        # steps are keyed to 1e-9 day (0.1 ms): float drift in t must not defeat the cache
        key = round(dt, 9)
        if key not in prop_cache:
            E, g = engine.propagators(k_loss, key)
            prop_cache[key] = (np.ascontiguousarray(E), np.ascontiguousarray(g))
        return prop_cache[key]

    def in_transient() -> bool:
        return bool((depot.sum(axis=0) + nasal.sum(axis=0) + free.sum(axis=0)).max() > _EPS_UG)

    last_parenteral = 0.0

    def advance(t0: float, t1: float) -> None:
        nonlocal y
        t = t0
        while t < t1 - 1e-12:
            if in_transient():
                # steps grow with the time since the last parenteral dose: the fast pools
                # change quickly in the first hours, slowly after (capped at 1 hour)
                # (a ladder of step sizes, so that propagators are reused from the cache)
                age = t - last_parenteral
                h = TRANSIENT_STEP_DAYS
                while h * 2 <= min(0.05 * age, 1.0 / 24.0) and h * 2 <= t1 - t + 1e-12:
                    h *= 2
                h = min(h, t1 - t)
                E, g = props(h / 2)
                y = _apply(E, g, y, r_diet)
                fast_step(h)
                y = _apply(E, g, y, r_diet)
                t += h
                if not in_transient():
                    depot[:] = 0.0
                    nasal[:] = 0.0
                    free[:] = 0.0
            else:
                E, g = props(t1 - t)
                y = _apply(E, g, y, r_diet)
                t = t1

    # merge output times and dose times
    groups: dict[float, list] = {}
    for ev in regimen_events:
        groups.setdefault(ev[0], []).append(ev)
    trough_index = {t: i for i, t in enumerate(trough_times)}
    times = sorted(set(out_times.tolist()) | set(groups))
    k_out = 0
    t = 0.0
    for te in times:
        advance(t, te)
        t = te
        if te in trough_index:
            ser = serum_of()
            agg.troughs[trough_index[te]] += np.bincount(_bin_index(ser), minlength=_HIST_BINS)
            agg.trough_below[trough_index[te]] += int(np.count_nonzero(ser < cut))
        for _, amount, route, form in groups.get(te, ()):
            if route in _PARENTERAL:
                last_parenteral = te
            if route in ("im", "deep-sc"):
                depot[forms.index(form)] += amount
                continue
            if route == "iv":
                free[forms.index(form)] += amount
                continue
            oral_amount = amount
            if route == "intranasal":
                nasal[forms.index(form)] += f_nasal * amount
                oral_amount = (1.0 - f_nasal) * amount
            deficit *= math.exp(-s.if_krec * (te - t_last_oral))
            t_last_oral = te
            cap = np.maximum(if_cap - deficit, 0.0)
            a_if = cap * oral_amount / (s.if_km + oral_amount)
            y[0] += a_if + passive * oral_amount
            deficit += a_if
        if k_out < len(out_times) and out_times[k_out] == te:
            record(k_out)
            k_out += 1
    agg.repletion += np.bincount(replete_at, minlength=len(out_times) + 1)
    return agg


# --------------------------------------------------------------------------------------

@dataclass
class PopulationResult:
    """Aggregated results of a population run (all in plain pandas DataFrames).

    Attributes
    ----------
    quantiles : DataFrame
        time_days, quantile (%), serum_pmol_per_l, stores_ug.
    bands : DataFrame
        time_days, band (deficient / indeterminate / unlikely), probability.
    repletion : DataFrame
        quantile (%), days to reach the deficiency cut-off (NaN: not reached by that share),
        plus ``never_pct`` in ``attrs``.
    troughs : DataFrame
        One row per injection after the first: time_days (just before it), trough quantiles
        (pmol/L) and ``pct_below_cutoff``.
    means : DataFrame
        time_days, mean serum_pmol_per_l and stores_ug (exact sums, not histograms).
    n, seed : int
    """

    quantiles: Any
    bands: Any
    repletion: Any
    troughs: Any
    means: Any
    n: int
    seed: int
    spec: PopulationSpec
    regimen: Regimen
    days: float


def _quantiles_from_counts(counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles (log-interpolated within bins) for each row of a count matrix."""
    edges = np.log(_bin_edges())
    total = counts.sum(axis=1, keepdims=True)
    cum = np.cumsum(counts, axis=1)
    out = np.empty((counts.shape[0], len(qs)))
    for j, q in enumerate(qs):
        target = q / 100.0 * total[:, 0]
        k = np.argmax(cum >= target[:, None], axis=1)
        before = np.where(k > 0, cum[np.arange(len(k)), k - 1], 0)
        inbin = counts[np.arange(len(k)), k]
        frac = np.where(inbin > 0, (target - before) / np.maximum(inbin, 1), 0.5)
        out[:, j] = np.exp(edges[k] + frac * (edges[k + 1] - edges[k]))
    return out


def simulate_population(regimen: Any, spec: PopulationSpec, days: float = 365.0, *,
                        chunk_size: int = 16384, quantiles: Sequence[float] = QUANTILES,
                        progress: bool | Callable[[int, int], None] = False,
                        client: Any = None) -> PopulationResult:
    """Simulate a virtual population under one regimen (daily output).

    Parameters
    ----------
    regimen : Regimen or str
        The regimen.
    spec : PopulationSpec
        Population (patient, n, seed, variability).
    days : float
        Horizon, days.
    chunk_size : int
        Patients simulated at once (rounded down to a multiple of :data:`BLOCK`, at most
        :data:`MAX_CHUNK`); does not change the results.
    quantiles : sequence of float
        Percentiles to report (0-100).
    progress : bool or callable
        ``True``: a progress bar on a terminal (silent otherwise); a callable is called as
        ``progress(done_patients, n)``.
    client : dask.distributed.Client, optional
        Run chunks as Dask tasks on this cluster (``pip install b12pk[dask]``); results are
        identical to the local run.

    Returns
    -------
    PopulationResult
    """
    days = _check_days(days)
    if not isinstance(spec, PopulationSpec):
        raise InputError(f"spec must be a PopulationSpec, got {type(spec).__name__}")
    if isinstance(regimen, str):
        regimen = Regimen.parse(regimen)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < BLOCK:
        raise InputError(f"chunk_size={chunk_size!r} is not accepted; accepted: a whole number "
                         f">= {BLOCK}")
    if chunk_size > MAX_CHUNK:
        raise ResourceError(f"chunk_size={chunk_size} would need about "
                            f"{chunk_size * 400 / 1e6:.0f} MB per chunk; the budget allows at "
                            f"most {MAX_CHUNK} patients per chunk: use a smaller chunk_size")
    qs = [float(q) for q in quantiles]
    if not qs or any(not (0.0 <= q <= 100.0) for q in qs):
        raise InputError(f"quantiles must be percentages from 0 to 100, got {quantiles!r}")
    events = [(e.time_days, e.amount_ug, e.route, e.form) for e in regimen.dose_events(days)]
    forms = _parenteral_forms(events)
    params = spec.patient.parameters(default_parameters())
    sys_ = _System(spec.patient, params, forms)
    t_int = int(math.floor(days + 1e-9))
    out_times = np.arange(t_int + 1, dtype=float)
    inj_times = sorted({t for t, _, r, _ in events if r in ("im", "deep-sc", "iv")})
    trough_times = [t for t in inj_times[1:] if t <= days]
    bands = serum_bands_pmol_per_l()
    cut = next(hi for name, lo, hi in bands if name == "deficient")
    upper = next(hi for name, lo, hi in bands if name == "indeterminate")
    low, high = (parameter_table().set_index("name").loc["other_loss_fraction_per_day",
                                                          ["low", "high"]])
    extra = sys_.k_loss - params["other_loss_fraction_per_day"]
    grid = np.exp(np.linspace(math.log(extra + low * 0.98), math.log(extra + high * 1.02), 65))
    chunk = max(BLOCK, min(int(chunk_size), MAX_CHUNK) // BLOCK * BLOCK)
    n_blocks = math.ceil(spec.n / BLOCK)
    per_chunk = chunk // BLOCK
    chunks = [list(range(b, min(b + per_chunk, n_blocks))) for b in range(0, n_blocks, per_chunk)]
    engine = _BlockEngine(sys_, grid)
    for dt in {1.0, TRANSIENT_STEP_DAYS / 2}:
        engine.table(dt)  # shared tables: computed once, not per chunk (for Dask, per task)
    args = (spec, events, days, forms, sys_, out_times, trough_times, cut, upper, engine)

    report = _progress_fn(progress, spec.n)
    if client is not None:
        futures = [client.submit(_run_chunk, c, *args, pure=False) for c in chunks]
        total = None
        for fut in futures:  # merge in chunk order: integer counts, order does not matter
            part = fut.result()
            total = part if total is None else total.merge(part)
            report(total.n)
    else:
        total = None
        for c in chunks:
            part = _run_chunk(c, *args)
            total = part if total is None else total.merge(part)
            report(total.n)
    report(None)
    return _result(total, qs, out_times, trough_times, cut, upper, spec, regimen, days)


def _run_chunk(blocks: Sequence[int], spec: PopulationSpec, events: Any, days: float,
               forms: tuple[str, ...], sys_: _System, out_times: np.ndarray,
               trough_times: Sequence[float], cut: float, upper: float,
               engine: "_BlockEngine") -> _Aggregate:
    """Simulate the patients of some blocks together (vectorised over all of them).

    Per-patient draws depend only on (seed, block), and the sums are kept per block, so
    the result does not depend on how blocks are grouped into chunks.
    """
    return _run_block(spec, events, days, blocks, forms, sys_, engine, out_times,
                      trough_times, cut, upper)


def _progress_fn(progress: Any, n: int) -> Callable[[int | None], None]:
    if callable(progress):
        return lambda done: progress(done, n) if done is not None else None
    import sys

    if progress and sys.stderr.isatty():
        def show(done: int | None) -> None:
            if done is None:
                sys.stderr.write("\n")
                return
            frac = done / n
            bar = "#" * int(30 * frac)
            sys.stderr.write(f"\rpopulation [{bar:<30s}] {done:,}/{n:,}")
            sys.stderr.flush()
        return show
    return lambda done: None


def _result(agg: _Aggregate, qs: Sequence[float], out_times: np.ndarray,
            trough_times: Sequence[float], cut: float, upper: float, spec: PopulationSpec,
            regimen: Regimen, days: float) -> PopulationResult:
    import pandas as pd

    serum_q = _quantiles_from_counts(agg.serum, qs)
    stores_q = _quantiles_from_counts(agg.stores, qs)
    rows = []
    for k, t in enumerate(out_times):
        for j, q in enumerate(qs):
            rows.append((t, q, serum_q[k, j], stores_q[k, j]))
    quant = pd.DataFrame(rows, columns=["time_days", "quantile", "serum_pmol_per_l",
                                        "stores_ug"])
    mean = agg.means()
    means = pd.DataFrame({"time_days": out_times, "serum_pmol_per_l": mean[0],
                          "stores_ug": mean[1]})
    names = ("deficient", "indeterminate", "unlikely")
    band_rows = [(t, names[b], agg.bands[k, b] / agg.n) for k, t in enumerate(out_times)
                 for b in range(3)]
    bands = pd.DataFrame(band_rows, columns=["time_days", "band", "probability"])
    cum = np.cumsum(agg.repletion[:-1]) / agg.n
    rep = []
    for q in qs:
        k = np.nonzero(cum >= q / 100.0)[0]
        rep.append((q, float(out_times[k[0]]) if k.size else math.nan))
    repletion = pd.DataFrame(rep, columns=["quantile", "days_to_leave_deficient"])
    repletion.attrs["never_pct"] = 100.0 * agg.repletion[-1] / agg.n
    trough_rows = []
    if len(trough_times):
        tq = _quantiles_from_counts(agg.troughs, qs)
        for i, t in enumerate(trough_times):
            trough_rows.append((t, *tq[i], 100.0 * agg.trough_below[i] / agg.n))
    troughs = pd.DataFrame(trough_rows, columns=["time_days", *[f"q{q:g}_pmol_per_l"
                                                                for q in qs],
                                                 "pct_below_cutoff"])
    return PopulationResult(quantiles=quant, bands=bands, repletion=repletion,
                            troughs=troughs, means=means, n=agg.n, seed=spec.seed, spec=spec,
                            regimen=regimen, days=days)


def write_population(result: PopulationResult, out: Any, *,
                     argv: Sequence[str] | None = None) -> Any:
    """Write quantiles.csv, bands.csv, troughs.csv, repletion.csv, means.csv, fan charts
    (PNG, SVG) and run.json into folder ``out`` (atomically)."""
    import json

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import DISCLAIMER, __version__
    from .plot import plot_band_probabilities, plot_fan, save_figure
    from .report import atomic_output_dir

    with atomic_output_dir(out) as tmp:
        result.quantiles.to_csv(tmp / "quantiles.csv", index=False, float_format="%.6g")
        result.bands.to_csv(tmp / "bands.csv", index=False, float_format="%.6g")
        result.troughs.to_csv(tmp / "troughs.csv", index=False, float_format="%.6g")
        result.repletion.to_csv(tmp / "repletion.csv", index=False, float_format="%.6g")
        result.means.to_csv(tmp / "means.csv", index=False, float_format="%.8g")
        label = result.regimen.to_text()
        for name, quantity in (("fan_serum", "serum_pmol_per_l"), ("fan_stores", "stores_ug")):
            ax = plot_fan({label: result}, quantity=quantity)
            save_figure(ax.figure, tmp / name)
            plt.close(ax.figure)
        ax = plot_band_probabilities(result)
        save_figure(ax.figure, tmp / "bands")
        plt.close(ax.figure)
        spec = result.spec
        record = {
            "b12pk_version": __version__, "command": list(argv) if argv else None,
            "regimen": label, "days": result.days, "n": result.n, "seed": result.seed,
            "patient": {k: getattr(spec.patient, k) for k in (
                "name", "intrinsic_factor", "food_release", "ileal_resection_cm",
                "egfr_ml_min", "metformin", "diet_ug_per_day", "baseline_serum_pmol_per_l",
                "baseline_stores_ug")},
            "variability_cv": dict(spec.variability),
            "never_replete_pct": float(result.repletion.attrs.get("never_pct", 0.0)),
            "engine": {"block": BLOCK, "transient_step_days": TRANSIENT_STEP_DAYS,
                       "histogram_bins": _HIST_BINS, "histogram_range": [_HIST_LO, _HIST_HI]},
            "disclaimer": DISCLAIMER,
        }
        (tmp / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                      encoding="utf-8")
    return out


def sample_patients(spec: PopulationSpec) -> Any:
    """The population's per-patient draws as a DataFrame (one row per patient).

    Columns: the varying quantities (``if_capacity_ug``, ``passive_fraction``,
    ``other_loss_fraction_per_day``, ``uptake_vmax_ug_per_day``, ``nasal_bioavailability``,
    ``diet_ug_per_day`` and, when the patient has one, ``baseline_serum_pmol_per_l``), exactly
    as :func:`simulate_population` uses them. Meant for small populations and checks.
    """
    import pandas as pd

    if spec.n > 1_000_000:
        raise ResourceError(f"sample_patients holds every patient in memory; n={spec.n:,} is "
                            "above its 1,000,000 limit: use simulate_population")
    p = spec.patient.parameters(default_parameters())
    typical = {"if_capacity_ug": p["if_capacity_ug"], "passive_fraction": p["passive_fraction"],
               "other_loss_fraction_per_day": p["other_loss_fraction_per_day"],
               "uptake_vmax_ug_per_day": p["uptake_vmax_ug_per_day"],
               "nasal_bioavailability": p["nasal_bioavailability"],
               "diet_ug_per_day": spec.patient.diet_ug_per_day}
    if spec.patient.baseline_serum_pmol_per_l is not None:
        typical["baseline_serum_pmol_per_l"] = spec.patient.baseline_serum_pmol_per_l
    parts = [_sample_block(spec, b, typical) for b in range(math.ceil(spec.n / BLOCK))]
    return pd.DataFrame({k: np.concatenate([d[k] for d in parts]) for k in parts[0]})
