"""Injection transients: an adaptive Dormand-Prince 5(4) integrator for the model's
right-hand side, written in the subset of Python numba compiles.

:mod:`b12pk._fast` compiles :func:`integrate` together with the rate laws of
:mod:`b12pk.laws` (``pip install b12pk[fast]``); the engine then integrates every injection
transient with it. Without numba the engine uses LSODA (scipy) on the same right-hand side.

The right-hand side is ``dy = b + sum of first-order flows + nonlinear flows``: first-order
flows as arrays ``lsrc, ldst, lk`` (state indices and rates, 1/day), nonlinear flows encoded
as in :mod:`b12pk.laws`. Every flux moves an amount from one state to another, so the method
(a linear combination of right-hand sides) conserves the total amount to round-off.
"""

from __future__ import annotations

import math

import numpy as np

from .laws import first_order, nonlinear_rhs

__all__ = ["rhs", "integrate", "OK", "TOO_MANY_STEPS"]

OK = 0
TOO_MANY_STEPS = 1

# Dormand-Prince 5(4) tableau (Dormand & Prince 1980; the coefficients of scipy's RK45)
_C2, _C3, _C4, _C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
_A21 = 1.0 / 5.0
_A31, _A32 = 3.0 / 40.0, 9.0 / 40.0
_A41, _A42, _A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
_A51, _A52, _A53, _A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
_A61, _A62, _A63, _A64, _A65 = (9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0,
                                -5103.0 / 18656.0)
_B1, _B3, _B4, _B5, _B6 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, \
    11.0 / 84.0
_E1, _E3, _E4, _E5, _E6, _E7 = (-71.0 / 57600.0, 71.0 / 16695.0, -71.0 / 1920.0,
                                17253.0 / 339200.0, -22.0 / 525.0, 1.0 / 40.0)


def rhs(y, dy, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm):
    """dy/dt (ug/day) at ``y`` into ``dy``."""
    for i in range(y.shape[0]):
        dy[i] = b[i]
    for f in range(lsrc.shape[0]):
        flux = first_order(lk[f], y[lsrc[f]])
        dy[lsrc[f]] -= flux
        dy[ldst[f]] += flux
    nonlinear_rhs(y, dy, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)


def integrate(y, t0, t1, t_out, out, n_par, eps, rtol, atol, max_steps,
              b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm):
    """Advance ``y`` (in place) from ``t0`` toward ``t1`` (days).

    Stops at ``t1``, or after the first step that leaves the first ``n_par`` states (the
    parenteral pools) holding ``eps`` ug or less in all. The state at each output time in
    ``t_out`` (sorted, > t0) reached on the way is written to ``out`` (steps end exactly on
    output times). Returns ``(t, k, status)``: the time reached, the number of outputs
    written and :data:`OK`, or :data:`TOO_MANY_STEPS` after ``max_steps`` steps (``y`` and
    ``t`` then hold the last accepted step: the caller goes on with another method).
    """
    n = y.shape[0]
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    k7 = np.empty(n)
    ys = np.empty(n)
    yn = np.empty(n)
    t = t0
    k = 0
    n_out = t_out.shape[0]
    h = 1e-5
    rhs(y, k1, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
    steps = 0
    while t < t1:
        if steps >= max_steps:
            return t, k, TOO_MANY_STEPS
        target = t1
        if k < n_out and t_out[k] <= t1:
            target = t_out[k]
        last = False
        h_try = h
        if t + h >= target:
            h = target - t
            last = True
        for i in range(n):
            ys[i] = y[i] + h * _A21 * k1[i]
        rhs(ys, k2, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        for i in range(n):
            ys[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
        rhs(ys, k3, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        for i in range(n):
            ys[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
        rhs(ys, k4, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        for i in range(n):
            ys[i] = y[i] + h * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
        rhs(ys, k5, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        for i in range(n):
            ys[i] = y[i] + h * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i]
                                + _A65 * k5[i])
        rhs(ys, k6, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        for i in range(n):
            yn[i] = y[i] + h * (_B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i]
                                + _B6 * k6[i])
        rhs(yn, k7, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm)
        err = 0.0
        for i in range(n):
            e = h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i]
                     + _E7 * k7[i])
            sc = atol + rtol * max(abs(y[i]), abs(yn[i]))
            err += (e / sc) ** 2
        err = math.sqrt(err / n)
        steps += 1
        if err <= 1.0:
            t = target if last else t + h
            for i in range(n):
                y[i] = yn[i]
                k1[i] = k7[i]
            if last and k < n_out and t == t_out[k]:
                for i in range(n):
                    out[k, i] = y[i]
                k += 1
            factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.2)
            # a step cut short to end on an output time does not shrink the next one
            h = max(h_try, h * factor) if last else h * factor
            pools = 0.0
            for i in range(n_par):
                pools += y[i]
            if pools <= eps:
                return t, k, OK
        else:
            h *= max(0.2, 0.9 * err ** -0.2)
    return t, k, OK
