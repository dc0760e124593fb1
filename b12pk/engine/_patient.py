"""One patient's run through its dose events, written in the subset of Python that numba
compiles (:mod:`b12pk.engine.kernels` compiles it with :mod:`b12pk.engine._transient` and
the rate laws of :mod:`b12pk.model.laws`).

It is the loop of :func:`b12pk.engine.core.run_patient` (which keeps a Python version of it
for the reference method, infusions and machines without numba): segments from one dose time
to the next; in each, the transient integrator while the parenteral pools hold more than
``eps`` ug, then exact steps ``y <- E y + g`` with ``[E g] = exp(dt [A b; 0 0])``, the
matrix exponential of the linear part (the small-amount limit of every flow) augmented with
the diet's input, cached per step length; at each dose time the states just before the doses
(when asked), then the doses through the route table and the oral absorption step.

Dose parts are encoded per dose as ``enter`` (state index, or :data:`ABSORPTION`) with
``share`` of the amount, and ``rest`` (state index, :data:`ABSORPTION` or :data:`NOWHERE`)
with the remainder.
"""

from __future__ import annotations

import math

import numpy as np

from ..model.laws import if_absorbed
from ._transient import OK, integrate
from .linalg import expm_taylor

__all__ = ["run", "ABSORPTION", "NOWHERE", "FAILED", "CACHE", "CARRY"]

ABSORPTION = -1
NOWHERE = -2
FAILED = 1
"""Returned when the transient integrator gave up (the caller reruns the patient with LSODA)."""
CACHE = 64
"""Step lengths whose exponentials are kept (keyed to 1e-10 day)."""
CARRY = 7
"""Length of :func:`run`'s ``carry``."""


def _linear_step(y, dt, aug, keys, mats, count, tmp):
    """``y <- E y + g`` for a step of ``dt`` days (in place); returns the cache's count."""
    n = y.shape[0]
    if dt <= 0.0:
        return count
    key = np.round(dt * 1e10)
    slot = -1
    for c in range(count):
        if keys[c] == key:
            slot = c
            break
    if slot < 0:
        E = expm_taylor(aug * dt)
        if count < keys.shape[0]:
            keys[count] = key
            mats[count] = E
            slot = count
            count += 1
    else:
        E = mats[slot]
    for i in range(n):
        s = E[i, n]
        for j in range(n):
            s += E[i, j] * y[j]
        tmp[i] = s
    for i in range(n):
        y[i] = tmp[i]
    return count


def _parenteral(y, n_par):
    total = 0.0
    for i in range(n_par):
        total += y[i]
    return total


def run(i0, i1, carry, keys, mats, y, t_out, seg_end, seg_out_end, seg_dose_end, seg_pre,
        dose_amount, dose_enter, dose_share, dose_rest, states, dosed, pre, aug, n_par, n_act,
        eps, rtol, atol, max_steps, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc,
        sdst, svmax, skm, into, rest, if_cap, if_km, if_krec, passive):
    """Run segments ``i0`` to ``i1 - 1`` of one patient from ``y`` (changed in place).

    ``carry`` holds what runs on from one call to the next, [time (days), outputs done,
    doses done, ug dosed, IF-route deficit (ug), time of the last oral dose, cached
    exponentials] (all 0 before the first call); ``keys`` and ``mats`` (CACHE, n + 1,
    n + 1) hold the cached exponentials. (Runs are cut into calls so that the caller sees
    an interrupt between them.)

    Segment ``i`` ends at ``seg_end[i]``, after the outputs ``t_out[:seg_out_end[i]]``
    still missing, and its doses are ``[seg_dose_end[i - 1], seg_dose_end[i])``, given at
    its end (the last segment's end is the horizon, with no doses). ``seg_pre[i]`` is the
    row of ``pre`` for the states just before its doses, or -1. States from ``n_act`` on are
    sinks (see :func:`b12pk.engine._transient.integrate`). Fills ``states`` (at the
    outputs; at a dose time, after the dose) and ``dosed`` (ug given by each output).
    Returns :data:`OK` or :data:`FAILED`.
    """
    n = y.shape[0]
    tmp = np.empty(n)
    t = carry[0]
    k = int(carry[1])
    d = int(carry[2])
    given = carry[3]
    deficit = carry[4]
    t_last = carry[5]
    count = int(carry[6])
    for i in range(i0, i1):
        t1 = seg_end[i]
        kend = seg_out_end[i]
        k0 = k
        while k < kend and t_out[k] <= t:
            for q in range(n):
                states[k, q] = y[q]
            k += 1
        if t < t1 and _parenteral(y, n_par) > eps:
            t, filled, status = integrate(y, t, t1, t_out[k:kend], states[k:kend], n_par,
                                          n_act, eps, rtol, atol, max_steps, b, lsrc, ldst, lk,
                                          bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
            if status != OK:
                return FAILED
            k += filled
        while k < kend:
            count = _linear_step(y, t_out[k] - t, aug, keys, mats, count, tmp)
            t = t_out[k]
            for q in range(n):
                states[k, q] = y[q]
            k += 1
        if t < t1:
            count = _linear_step(y, t1 - t, aug, keys, mats, count, tmp)
        t = t1
        for q in range(k0, kend):
            dosed[q] = given
        if seg_pre[i] >= 0:
            for q in range(n):
                pre[seg_pre[i], q] = y[q]
        while d < seg_dose_end[i]:
            amount = dose_amount[d]
            given += amount
            for part in range(2):
                where = dose_enter[d] if part == 0 else dose_rest[d]
                share = dose_share[d] if part == 0 else 1.0 - dose_share[d]
                if where == NOWHERE:
                    continue
                a = share * amount
                if where == ABSORPTION:
                    deficit *= math.exp(-if_krec * (t - t_last))
                    t_last = t
                    cap = if_cap - deficit
                    if cap < 0.0:
                        cap = 0.0
                    a_if = if_absorbed(cap, if_km, a)
                    a_passive = passive * a
                    deficit += a_if
                    y[into] += a_if + a_passive
                    y[rest] += a - a_if - a_passive
                else:
                    y[where] += a
            d += 1
    carry[0] = t
    carry[1] = k
    carry[2] = d
    carry[3] = given
    carry[4] = deficit
    carry[5] = t_last
    carry[6] = count
    return OK
