"""Injection transients: a hybrid stiff/explicit integrator for the model's right-hand side,
written in the subset of Python that numba compiles.

Most steps are stiff steps: extrapolation of the linearly implicit Euler method (Deuflhard
1985; Hairer & Wanner, *Solving ODEs II*, section IV.9, the basis of SEULEX). A step of
length ``H`` takes ``j = 1 .. COLUMNS`` substeps of ``(I - h J) (y_{i+1} - y_i) = h f(y_i)``,
``h = H / j``, with the Jacobian ``J`` at the step's start, and extrapolates the results
(Aitken-Neville in ``h``); the local error is the difference of the last two columns. The
free pools clear within minutes while a depot releases over hours to days: stiff-stable
steps are limited by accuracy, not stability.

The haptocorrin binding law has a kink at saturation (binding stops). After a large
injection the binder fills to just below its capacity and stays there while unbound B12
lasts (binding keeps up with the binder's slow clearance: about 3e-5 of the capacity stays
free with 500 ug unbound); below the kink the right-hand side is smooth and the stiff steps
follow it. A frozen Jacobian does not hold across the kink, so a stiff step that would end
on or over it (within ``KINK_MARGIN`` of capacity) is retaken as explicit Dormand-Prince
5(4) steps, whose error control follows the kink; so are steps from a binder above capacity
(stores above about 14 mg keep holoHC there).

Every flux moves an amount from one state to another, so ``sum(f) = 0`` and the columns of
``J`` sum to 0: each Runge-Kutta stage, each linearly implicit substep
(``1' (I - h J)^-1 = 1'``) and the extrapolation (weights summing to 1) conserve the total
amount to round-off.

:mod:`b12pk.engine.kernels` compiles :func:`integrate` with the rate laws of :mod:`b12pk.model.laws`
(``pip install b12pk[fast]``). Without numba the engine uses LSODA (scipy) on the same
right-hand side.

The right-hand side is ``dy = b + first-order flows + nonlinear flows``: first-order flows as
arrays ``lsrc, ldst, lk`` (state indices and rates, 1/day), nonlinear flows encoded as in
:mod:`b12pk.model.laws`.
"""

from __future__ import annotations

import math

import numpy as np

from ..model.laws import first_order, nonlinear_jac, nonlinear_rhs

__all__ = ["rhs", "jac", "integrate", "near_kink", "OK", "TOO_MANY_STEPS", "COLUMNS",
           "KINK_MARGIN"]

OK = 0
TOO_MANY_STEPS = 1
COLUMNS = 8
"""Substep counts 1 .. COLUMNS per step of the stiff method (its order is COLUMNS)."""
KINK_MARGIN = 1e-9
"""Share of a binder's capacity below saturation where steps are explicit. (A margin of 1e-3
put the filled binder's sliding equilibrium inside it, and hydroxocobalamin transients took
2,000 explicit steps instead of about 60 stiff ones, with the same results to 1e-8.)"""

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



def rhs(y, dy, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb):
    """dy/dt (ug/day) at ``y`` into ``dy``."""
    for i in range(y.shape[0]):
        dy[i] = b[i]
    for f in range(lsrc.shape[0]):
        flux = first_order(lk[f], y[lsrc[f]])
        dy[lsrc[f]] -= flux
        dy[ldst[f]] += flux
    nonlinear_rhs(y, dy, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
                  qsrc, qdst, qlaw, qa, qb)


def jac(y, J, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb):
    """Jacobian of :func:`rhs` at ``y`` into ``J`` (n, n)."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
    for f in range(lsrc.shape[0]):
        J[lsrc[f], lsrc[f]] -= lk[f]
        J[ldst[f], lsrc[f]] += lk[f]
    nonlinear_jac(y, J, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
                  qsrc, qdst, qlaw, qa, qb)


def _lu(W, piv):
    """LU factorisation with partial pivoting of ``W`` in place; False if singular."""
    n = W.shape[0]
    for k in range(n):
        p = k
        big = abs(W[k, k])
        for i in range(k + 1, n):
            if abs(W[i, k]) > big:
                big = abs(W[i, k])
                p = i
        if big == 0.0:
            return False
        piv[k] = p
        if p != k:
            for j in range(n):
                tmp = W[k, j]
                W[k, j] = W[p, j]
                W[p, j] = tmp
        inv = 1.0 / W[k, k]
        for i in range(k + 1, n):
            W[i, k] *= inv
            m = W[i, k]
            if m != 0.0:
                for j in range(k + 1, n):
                    W[i, j] -= m * W[k, j]
    return True


def _lu_solve(W, piv, x):
    """Solve ``W x = x`` in place with the factors of :func:`_lu` (the first ``W.shape[0]``
    entries of ``x``)."""
    n = W.shape[0]
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = x[k]
            x[k] = x[p]
            x[p] = tmp
    for i in range(n):
        s = x[i]
        for j in range(i):
            s -= W[i, j] * x[j]
        x[i] = s
    for i in range(n - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, n):
            s -= W[i, j] * x[j]
        x[i] = s / W[i, i]


def _solve_sinks(J, m, h, fi, x):
    """Complete ``(I - h J) x = fi`` below row ``m`` (the sinks), given ``x[:m]``: a sink's
    Jacobian column is zero, so its row is ``x_s = fi_s + h J[s, :m] x[:m]``."""
    n = fi.shape[0]
    for s in range(m, n):
        acc = 0.0
        for c in range(m):
            acc += J[s, c] * x[c]
        fi[s] += h * acc


def _stiff_step(y, H, f0, J, W, piv, fi, yi, T, rtol, atol, scale, n_act,
                b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
                qsrc, qdst, qlaw, qa, qb):
    """One linearly implicit Euler extrapolation step of length ``H`` from ``y``: the result
    in ``T[COLUMNS - 1]``; returns the scaled error estimate (inf if a matrix is singular).

    The states from ``n_act`` on are sinks (cumulative amounts that no flux depends on): the
    linear systems are solved for the first ``n_act`` states and completed for the sinks."""
    n = y.shape[0]
    K = COLUMNS
    Wm = W[:n_act, :n_act]
    rhs(y, f0, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    jac(y, J, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for j in range(1, K + 1):
        h = H / j
        for r in range(n_act):
            for c in range(n_act):
                Wm[r, c] = -h * J[r, c]
            Wm[r, r] += 1.0
        if not _lu(Wm, piv):
            return math.inf
        for i in range(n):
            fi[i] = h * f0[i]
        _lu_solve(Wm, piv, fi)
        _solve_sinks(J, n_act, h, fi, fi)
        for i in range(n):
            yi[i] = y[i] + fi[i]
        for _ in range(1, j):
            rhs(yi, fi, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax,
                skm, qsrc, qdst, qlaw, qa, qb)
            for i in range(n):
                fi[i] *= h
            _lu_solve(Wm, piv, fi)
            _solve_sinks(J, n_act, h, fi, fi)
            for i in range(n):
                yi[i] += fi[i]
        # Aitken-Neville in place: before this loop T[m] holds the previous row's column
        # m + 1; it is replaced by this row's as the row is extrapolated
        for i in range(n):
            fi[i] = yi[i]
        for m in range(1, j):
            ratio = j / (j - m) - 1.0
            for i in range(n):
                prev = T[m - 1, i]
                T[m - 1, i] = fi[i]
                fi[i] = fi[i] + (fi[i] - prev) / ratio
        for i in range(n):
            T[j - 1, i] = fi[i]
    err = 0.0
    for i in range(n):
        e = T[K - 1, i] - T[K - 2, i]
        sc = atol + rtol * max(abs(y[i]), abs(T[K - 1, i]), scale[i])
        err += (e / sc) ** 2
    err = math.sqrt(err / n)
    return err if err < math.inf else math.inf  # NaN -> inf


def _explicit_step(y, h, k1, k2, k3, k4, k5, k6, k7, ys, yn, rtol, atol, scale,
                   b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
                   qsrc, qdst, qlaw, qa, qb):
    """One Dormand-Prince 5(4) step of length ``h`` from ``y``: the result in ``yn``;
    returns the scaled error estimate."""
    n = y.shape[0]
    rhs(y, k1, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        ys[i] = y[i] + h * _A21 * k1[i]
    rhs(ys, k2, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        ys[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
    rhs(ys, k3, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        ys[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
    rhs(ys, k4, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        ys[i] = y[i] + h * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
    rhs(ys, k5, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        ys[i] = y[i] + h * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i]
                            + _A65 * k5[i])
    rhs(ys, k6, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    for i in range(n):
        yn[i] = y[i] + h * (_B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i]
                            + _B6 * k6[i])
    rhs(yn, k7, b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
        qsrc, qdst, qlaw, qa, qb)
    err = 0.0
    for i in range(n):
        e = h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i]
                 + _E7 * k7[i])
        sc = atol + rtol * max(abs(y[i]), abs(yn[i]), scale[i])
        err += (e / sc) ** 2
    err = math.sqrt(err / n)
    return err if err < math.inf else math.inf


def near_kink(y, bbinder, bcap):
    """Whether a binder holds more than ``1 - KINK_MARGIN`` of its capacity."""
    for f in range(bbinder.shape[0]):
        if y[bbinder[f]] > bcap[f] * (1.0 - KINK_MARGIN):
            return True
    return False


def integrate(y, t0, t1, t_out, out, n_par, n_act, eps, rtol, atol, relax, max_steps,
              b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
              qsrc, qdst, qlaw, qa, qb):
    """Advance ``y`` (in place) from ``t0`` toward ``t1`` (days).

    Each step is a stiff step (:func:`_stiff_step`) unless a binder is within
    ``KINK_MARGIN`` of saturation at its start or end, when it is an explicit step
    (:func:`_explicit_step`, with its own step size). Stops at ``t1``, or after the first
    step that leaves the first ``n_par`` states (the parenteral pools) holding ``eps`` ug or
    less in all. The state at each output time in ``t_out`` (sorted, > t0) reached on the way
    is written to ``out`` (steps end exactly on output times). Returns ``(t, k, status)``:
    the time reached, the number of outputs written and :data:`OK`, or
    :data:`TOO_MANY_STEPS` after ``max_steps`` steps (``y`` and ``t`` then hold the last
    accepted step: the caller goes on with another method). The states from ``n_act`` on
    are sinks (no flux depends on them; :func:`_stiff_step`).
    """
    n = y.shape[0]
    K = COLUMNS
    J = np.empty((n, n))
    W = np.empty((n, n))
    piv = np.zeros(n, dtype=np.int64)
    f0 = np.empty(n)
    fi = np.empty(n)
    yi = np.empty(n)
    T = np.empty((K, n))
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    k7 = np.empty(n)
    ys = np.empty(n)
    yn = np.empty(n)
    # the largest amount in this transient of each pool that only releases (``relax``:
    # nothing flows into it, such as an injection depot): its errors are measured against
    # it, so an emptying depot needs no finer relative accuracy than the amounts it moved
    # (its exponential tail would otherwise set the steps for hours); 0 for the others
    scale = np.zeros(n)
    for i in range(n):
        if relax[i]:
            scale[i] = abs(y[i])
    t = t0
    k = 0
    n_out = t_out.shape[0]
    H = 1e-4   # stiff step (days)
    h = 1e-5   # explicit step (days)
    steps = 0
    force_explicit = False
    while t < t1:
        if steps >= max_steps:
            return t, k, TOO_MANY_STEPS
        steps += 1
        target = t1
        if k < n_out and t_out[k] <= t1:
            target = t_out[k]
        stiff = not force_explicit and not near_kink(y, bbinder, bcap)
        accepted = False
        if stiff:
            H_try = H
            last = t + H >= target
            step = target - t if last else H
            err = _stiff_step(y, step, f0, J, W, piv, fi, yi, T, rtol, atol, scale, n_act, b, lsrc,
                              ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm,
                              qsrc, qdst, qlaw, qa, qb)
            if err <= 1.0 and near_kink(T[K - 1], bbinder, bcap):
                # the step reached the kink: its frozen Jacobian does not hold there; take
                # this stretch with explicit steps
                h = min(h, step)
                force_explicit = True
                continue
            if err <= 1.0:
                accepted = True
                for i in range(n):
                    y[i] = T[K - 1, i]
                factor = 4.0 if err == 0.0 else min(4.0, 0.9 * err ** (-1.0 / K))
                # a step cut short to end on an output time does not shrink the next one
                H = max(H_try, step * factor) if last else step * factor
            else:
                H = step * (0.2 if err == math.inf else max(0.2, 0.9 * err ** (-1.0 / K)))
        else:
            h_try = h
            last = t + h >= target
            step = target - t if last else h
            err = _explicit_step(y, step, k1, k2, k3, k4, k5, k6, k7, ys, yn, rtol, atol, scale,
                                 b, lsrc, ldst, lk, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst,
                                 svmax, skm, qsrc, qdst, qlaw, qa, qb)
            if err <= 1.0:
                accepted = True
                force_explicit = False
                for i in range(n):
                    y[i] = yn[i]
                factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.2)
                h = max(h_try, step * factor) if last else step * factor
                H = max(H, h)
            else:
                h = step * (0.2 if err == math.inf else max(0.2, 0.9 * err ** -0.2))
        if accepted:
            t = target if last else t + step
            for i in range(n):
                if relax[i] and abs(y[i]) > scale[i]:
                    scale[i] = abs(y[i])
            if last and k < n_out and t == t_out[k]:
                for i in range(n):
                    out[k, i] = y[i]
                k += 1
            pools = 0.0
            for i in range(n_par):
                pools += y[i]
            if pools <= eps:
                return t, k, OK
    return t, k, OK
