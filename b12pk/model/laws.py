"""The model's rate laws, each written once.

``data/model.toml`` names a law for every flow (:mod:`b12pk.model.declaration`); this module holds
the formula of each law, its derivatives, its small-amount (linear) limit and its SBML
rendering. The functions are plain arithmetic on floats (and numpy arrays where noted), in
the subset of Python that numba compiles, so the same source serves the numpy engine, the
compiled kernels (:mod:`b12pk._kernels` compiles these very functions) and, through
:data:`SBML`, the SBML export.

Encoded flows
-------------
The engine passes nonlinear flows as arrays (one row per flow):

* capacity binding: ``bsrc`` (flows, forms) source states, ``bdst`` destination state,
  ``bbinder`` the binder's state, ``bk`` rate (1/day), ``bcap`` capacity (ug);
* saturable: ``ssrc`` (flows, forms), ``sdst``, ``svmax`` (ug/day), ``skm`` (ug);
* slow flows, the nonlinear flows out of a compartment that is not per form (the stores):
  ``qsrc`` (flows,) source state, ``qdst`` destination, ``qlaw`` (:data:`SLOW_SATURABLE` or
  :data:`SLOW_OVERFLOW`), ``qa`` and ``qb`` the law's two parameters (vmax and km, or k and
  capacity). Their sources change slowly (stores turn over at about 0.1 %/day), so between
  injection transients the engines treat them as inputs held over a step (see
  :func:`slow_rhs`).
"""

from __future__ import annotations

__all__ = ["first_order", "capacity_binding", "saturable", "overflow", "if_absorbed",
           "binding_room", "slow_flux", "slow_rate", "slow_rhs", "nonlinear_rhs", "nonlinear_jac",
           "linear_limit", "marker_level", "deficiency_signal", "SLOW_SATURABLE", "SLOW_OVERFLOW", "SLOW_LAWS", "SBML"]

SLOW_SATURABLE = 0
SLOW_OVERFLOW = 1
#: Code of each law a slow flow may have (``qlaw``).
SLOW_LAWS = {"saturable": SLOW_SATURABLE, "overflow": SLOW_OVERFLOW}


def first_order(k, amount):
    """Flux (ug/day) of a first-order flow with rate ``k`` (1/day) from ``amount`` (ug)."""
    return k * amount


def binding_room(capacity, bound):
    """Free share of a binder's ``capacity`` (ug) holding ``bound`` (ug): in [0, 1]
    (floats or arrays)."""
    room = capacity - bound
    return room * (room > 0.0) / capacity


def capacity_binding(k, capacity, bound, amount):
    """Flux (ug/day) binding ``amount`` (ug) at rate ``k`` (1/day) times the binder's free
    share; binding stops when the binder is saturated and nothing is displaced."""
    return k * binding_room(capacity, bound) * amount


def saturable(vmax, km, total, amount):
    """Michaelis-Menten flux (ug/day) from ``amount`` (ug), one of pools summing to ``total``
    (ug) that compete for one carrier: ``vmax * amount / (km + total)``."""
    return vmax * amount / (km + total)


def overflow(k, capacity, amount):
    """Flux (ug/day) of the part of ``amount`` (ug) above ``capacity`` (ug), at rate ``k``
    (1/day): ``k * max(amount - capacity, 0)`` (floats or arrays). Nothing flows while the
    pool holds no more than its capacity."""
    excess = amount - capacity
    return k * excess * (excess > 0.0)


def slow_flux(law, a, b, amount):
    """Flux (ug/day) of a slow flow: :func:`saturable` (``a`` vmax, ``b`` km; the source is
    its own total) or :func:`overflow` (``a`` rate, ``b`` capacity)."""
    if law == SLOW_SATURABLE:
        return saturable(a, b, amount, amount)
    return overflow(a, b, amount)


def slow_rate(law, a, b, amount):
    """Derivative (1/day) of :func:`slow_flux` with respect to the source's amount."""
    if law == SLOW_SATURABLE:
        den = b + amount
        return a * b / (den * den)
    return a if amount > b else 0.0


def slow_rhs(y, dy, qsrc, qdst, qlaw, qa, qb):
    """Add the slow flows' fluxes at state ``y`` to ``dy`` (in place)."""
    for f in range(qsrc.shape[0]):
        flux = slow_flux(qlaw[f], qa[f], qb[f], y[qsrc[f]])
        dy[qsrc[f]] -= flux
        dy[qdst[f]] += flux


def if_absorbed(capacity, km, amount):
    """Amount (ug) the saturable intrinsic-factor route takes from an oral ``amount`` (ug)
    when ``capacity`` (ug) is available: ``capacity * amount / (km + amount)`` (floats or
    arrays; 0 for amount 0)."""
    return capacity * amount / (km + amount)


def nonlinear_rhs(y, dy, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm, qsrc, qdst,
                  qlaw, qa, qb):
    """Add the nonlinear flows' fluxes at state ``y`` to ``dy`` (in place)."""
    for f in range(bsrc.shape[0]):
        bound = y[bbinder[f]]
        for j in range(bsrc.shape[1]):
            i = bsrc[f, j]
            flux = capacity_binding(bk[f], bcap[f], bound, y[i])
            dy[i] -= flux
            dy[bdst[f]] += flux
    for f in range(ssrc.shape[0]):
        total = 0.0
        for j in range(ssrc.shape[1]):
            total += y[ssrc[f, j]]
        for j in range(ssrc.shape[1]):
            i = ssrc[f, j]
            flux = saturable(svmax[f], skm[f], total, y[i])
            dy[i] -= flux
            dy[sdst[f]] += flux
    slow_rhs(y, dy, qsrc, qdst, qlaw, qa, qb)


def nonlinear_jac(y, J, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm, qsrc, qdst,
                  qlaw, qa, qb):
    """Add the derivatives of :func:`nonlinear_rhs` at ``y`` to the Jacobian ``J``."""
    for f in range(bsrc.shape[0]):
        h = bbinder[f]
        d = bdst[f]
        g = binding_room(bcap[f], y[h])
        dg_dh = -1.0 / bcap[f] if y[h] < bcap[f] else 0.0
        for j in range(bsrc.shape[1]):
            i = bsrc[f, j]
            J[i, i] -= bk[f] * g
            J[d, i] += bk[f] * g
            J[i, h] -= bk[f] * y[i] * dg_dh
            J[d, h] += bk[f] * y[i] * dg_dh
    for f in range(ssrc.shape[0]):
        total = 0.0
        for j in range(ssrc.shape[1]):
            total += y[ssrc[f, j]]
        den = skm[f] + total
        for a in range(ssrc.shape[1]):
            i = ssrc[f, a]
            for b in range(ssrc.shape[1]):
                m = ssrc[f, b]
                dflux = svmax[f] * ((den if a == b else 0.0) - y[i]) / (den * den)
                J[i, m] -= dflux
                J[sdst[f], m] += dflux
    for f in range(qsrc.shape[0]):
        dflux = slow_rate(qlaw[f], qa[f], qb[f], y[qsrc[f]])
        J[qsrc[f], qsrc[f]] -= dflux
        J[qdst[f], qsrc[f]] += dflux


def linear_limit(law: str, values: dict) -> float:
    """Rate constant (1/day) of a law's flow when its pools are nearly empty (the engine's
    linear mode between injection transients): first order ``k``; binding ``k`` (empty
    binder: the free pools hold under 1e-9 ug then); saturable ``vmax / km``. (Slow flows
    have no linear limit: the engines hold them as inputs over a step.)"""
    if law == "first_order":
        return values["k"]
    if law == "capacity_binding":
        return values["k"]
    if law == "saturable":
        return values["vmax"] / values["km"]
    raise KeyError(law)


#: SBML Level 3 infix of each law; ``{amount}``, ``{total}``, ``{bound}`` and the law's
#: parameters are filled in with SBML identifiers.
SBML = {
    "first_order": "{k} * {amount}",
    "capacity_binding": "{k} * max({capacity} - {bound}, 0) / {capacity} * {amount}",
    "saturable": "{vmax} * {amount} / ({km} + {total})",
    "overflow": "{k} * max({amount} - {capacity}, 0)",
    "if_absorbed": "{capacity} * {amount} / ({km} + {amount})",
    "marker_level": "{reference} * (1 + {max_fold} / (1 + max({driver} / {half}, 0) ** {hill}))",
}


def deficiency_signal(driver, half, hill):
    """Deficiency signal of a functional marker, in (0, 1]: 1 when the ``driver`` (the tissue
    stores, ug) is empty, 1/2 at ``half`` (ug), towards 0 when replete; Hill exponent ``hill``
    (floats or numpy arrays)."""
    x = driver / half
    x = x * (x > 0.0)  # a rounding-negative driver reads as empty
    return 1.0 / (1.0 + x ** hill)


def marker_level(reference, max_fold, half, hill, driver):
    """A functional marker's level (its unit): ``reference`` (the replete level) times
    ``1 + max_fold * D``, ``D`` the :func:`deficiency_signal` of ``driver``."""
    return reference * (1.0 + max_fold * deficiency_signal(driver, half, hill))

