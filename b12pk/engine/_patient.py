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

from ..model.laws import if_absorbed, slow_flux, slow_rate
from ._transient import OK, integrate
from .linalg import expm_taylor

__all__ = ["run", "ABSORPTION", "NOWHERE", "FAILED", "CACHE", "CARRY", "MAX_SLOW_STEPS"]

ABSORPTION = -1
NOWHERE = -2
FAILED = 1
"""Returned when the transient integrator gave up (the caller reruns the patient with LSODA)."""
CACHE = 64
"""Step lengths whose exponentials are kept (keyed to 1e-10 day)."""
CARRY = 8
"""Length of :func:`run`'s ``carry``."""
MAX_SLOW_STEPS = 1 << 16
"""Most steps :func:`_linear_step` takes over one interval."""
SLOW_REDO = 8.0
"""An interval whose largest scaled error estimate exceeds this is taken again with more
steps; below it the estimate only sets the next interval's step."""


def _exp(dt, aug, keys, mats, count):
    """``exp(dt * aug)`` from the cache (or computed and cached); returns it and the cache's
    count."""
    key = np.round(dt * 1e10)
    for c in range(count):
        if keys[c] == key:
            return mats[c], count
    E = expm_taylor(aug * dt)
    if count < keys.shape[0]:
        keys[count] = key
        mats[count] = E
        count += 1
    return E, count


def _slow_steps(y, dt, qsrc, qlaw, qa, qb, slow_h, slow_kh):
    """Number of equal steps for ``dt`` days: each at most ``slow_h`` days and at most
    ``slow_kh`` over the fastest slow flow's rate (1/day) at ``y``."""
    h = slow_h
    for q in range(qsrc.shape[0]):
        rate = slow_rate(qlaw[q], qa[q], qb[q], y[qsrc[q]])
        if rate * h > slow_kh:
            h = slow_kh / rate
    return max(1, int(math.ceil(dt / h - 1e-9)))


def _affine_row(E, i, y, flux):
    """Row ``i`` of ``E y + g + W f`` (``[E g W]`` as in :func:`_linear_step`)."""
    n = y.shape[0]
    v = E[i, n]
    for j in range(n):
        v += E[i, j] * y[j]
    for r in range(flux.shape[0]):
        v += E[i, n + 1 + r] * flux[r]
    return v


def _midpoint(y, E, Eh, aug, flux, half, tmp, f0, qsrc, qdst, qlaw, qa, qb, h, slow_tol):
    """One step ``y <- E y + g + W f`` (in place) with ``f`` the slow flows' fluxes at the
    step's midpoint, predicted by a half step (``Eh``). Returns the step's scaled error
    estimate: for each slow flow, what holding it misplaces, over ``slow_tol`` times the
    amounts concerned. Two terms: the amount moved at the wrong time, ``h |f0 - 2 fm + f1| / 6``
    (the difference of the midpoint and Simpson rules; ``f0``, ``fm`` and ``f1`` the
    flux at the start, midpoint and end of the step), over the source's and destination's
    amounts plus 1 ug; and the flux's trend against the destination's own turnover,
    ``h^2 k |f1 - f0| / 12`` (``k`` the destination's loss rate, the diagonal of ``aug``: a
    flux rising through the step arrives later than when held, and the destination loses
    less of it), over the destination's amount plus 1 ug."""
    n = y.shape[0]
    m = qsrc.shape[0]
    for q in range(m):
        flux[q] = slow_flux(qlaw[q], qa[q], qb[q], y[qsrc[q]])
        f0[q] = flux[q]
    for q in range(m):
        half[q] = _affine_row(Eh, qsrc[q], y, flux)
    for q in range(m):
        flux[q] = slow_flux(qlaw[q], qa[q], qb[q], half[q])
    for i in range(n):
        tmp[i] = _affine_row(E, i, y, flux)
    for i in range(n):
        y[i] = tmp[i]
    err = 0.0
    for q in range(m):
        f1 = slow_flux(qlaw[q], qa[q], qb[q], y[qsrc[q]])
        d = qdst[q]
        scale = abs(y[d]) + 1.0
        e = (h * abs(f0[q] - 2.0 * flux[q] + f1) / (6.0 * (scale + abs(y[qsrc[q]])))
             + h * h * abs(aug[d, d]) * abs(f1 - f0[q]) / (12.0 * scale)) / slow_tol
        if e > err:
            err = e
    return err


def _linear_step(y, dt, aug, keys, mats, count, tmp, flux, half, f0, y0, hint, qsrc, qdst,
                 qlaw, qa, qb, slow_h, slow_kh, slow_tol):
    """``y`` after ``dt`` days outside transients (in place); returns the cache's count.

    ``[E g W] = exp(h [A b D; 0 0 0])``: ``y <- E y + g + W f`` with ``f`` the slow flows'
    fluxes at the step's midpoint (:func:`_midpoint`), in equal steps ``h``: at least as
    many as :func:`_slow_steps` asks and as ``hint[0]`` (the step length, days, that the
    last interval ended with; 0: none) suggests. The interval is
    taken again with more steps when a step's scaled error estimate exceeds
    :data:`SLOW_REDO`; otherwise the estimate sets ``hint[0]`` for the next interval (the
    step halved above 1, doubled below 1/8; never lowered by an interval whose error was
    within the tolerance). One exact step when the model has no slow flows.
    """
    if dt <= 0.0:
        return count
    n = y.shape[0]
    m = qsrc.shape[0]
    if m == 0:
        E, count = _exp(dt, aug, keys, mats, count)
        for i in range(n):
            v = E[i, n]
            for j in range(n):
                v += E[i, j] * y[j]
            tmp[i] = v
        for i in range(n):
            y[i] = tmp[i]
        return count
    need = _slow_steps(y, dt, qsrc, qlaw, qa, qb, slow_h, slow_kh)
    if hint[0] > 0.0:
        ratio = dt / hint[0]  # compared as a float: a huge ratio would overflow an int
        if ratio >= MAX_SLOW_STEPS:
            need = MAX_SLOW_STEPS
        elif ratio > need:
            need = int(math.ceil(ratio - 1e-9))
    steps = max(1, min(need, MAX_SLOW_STEPS))
    for i in range(n):
        y0[i] = y[i]
    while True:
        h = dt / steps
        E, count = _exp(h, aug, keys, mats, count)
        Eh, count = _exp(h / 2.0, aug, keys, mats, count)
        err = 0.0
        for _ in range(steps):
            e = _midpoint(y, E, Eh, aug, flux, half, tmp, f0, qsrc, qdst, qlaw, qa, qb, h,
                          slow_tol)
            if e > err:
                err = e
        if err <= SLOW_REDO or steps >= MAX_SLOW_STEPS:
            # the next interval's step: the error goes as h cubed (within a factor 2)
            # (a short interval taken in one easy step does not shrink it: the hint is
            # lowered only when the error asks for it)
            grow = 2.0 if err < 0.125 else (0.5 if err > 1.0 else 1.0)
            if err > 1.0 or hint[0] <= 0.0 or h * grow > hint[0]:
                hint[0] = h * grow
            return count
        for i in range(n):
            y[i] = y0[i]
        while steps < MAX_SLOW_STEPS and err > 1.0:
            steps *= 2
            err /= 8.0


def _parenteral(y, n_par):
    total = 0.0
    for i in range(n_par):
        total += y[i]
    return total


def run(i0, i1, carry, keys, mats, y, t_out, seg_end, seg_out_end, seg_dose_end, seg_pre,
        dose_amount, dose_enter, dose_share, dose_rest, states, dosed, pre, aug, n_par, n_act,
        eps, rtol, atol, relax, max_steps, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc,
        sdst, svmax, skm, qsrc, qdst, qlaw, qa, qb, into, rest, if_cap, if_km, if_krec,
        passive, slow_h, slow_kh, slow_tol):
    """Run segments ``i0`` to ``i1 - 1`` of one patient from ``y`` (changed in place).

    ``carry`` holds what runs on from one call to the next, [time (days), outputs done,
    doses done, ug dosed, IF-route deficit (ug), time of the last oral dose, cached
    exponentials] (all 0 before the first call); ``keys`` and ``mats`` (CACHE, n + 1,
    n + 1) hold the cached exponentials. (Runs are cut into calls so that the caller sees
    an interrupt between them.) ``aug`` is ``[A b D; 0 0 0]`` (n + 1 + slow flows square).

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
    y0 = np.empty(n)
    hint = carry[7:8]
    flux = np.empty(qsrc.shape[0])
    half = np.empty(qsrc.shape[0])
    f0 = np.empty(qsrc.shape[0])
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
                                          n_act, eps, rtol, atol, relax, max_steps, b, lsrc,
                                          ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst,
                                          svmax, skm, qsrc, qdst, qlaw, qa, qb)
            if status != OK:
                return FAILED
            k += filled
        while k < kend:
            count = _linear_step(y, t_out[k] - t, aug, keys, mats, count, tmp, flux, half, f0,
                                 y0, hint, qsrc, qdst, qlaw, qa, qb, slow_h, slow_kh,
                                 slow_tol)
            t = t_out[k]
            for q in range(n):
                states[k, q] = y[q]
            k += 1
        if t < t1:
            count = _linear_step(y, t1 - t, aug, keys, mats, count, tmp, flux, half, f0, y0,
                                 hint, qsrc, qdst, qlaw, qa, qb, slow_h, slow_kh, slow_tol)
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
