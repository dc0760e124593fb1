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
* saturable: ``ssrc`` (flows, forms), ``sdst``, ``svmax`` (ug/day), ``skm`` (ug).
"""

from __future__ import annotations

__all__ = ["first_order", "capacity_binding", "saturable", "if_absorbed", "binding_room",
           "nonlinear_rhs", "nonlinear_jac", "linear_limit", "SBML"]


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


def if_absorbed(capacity, km, amount):
    """Amount (ug) the saturable intrinsic-factor route takes from an oral ``amount`` (ug)
    when ``capacity`` (ug) is available: ``capacity * amount / (km + amount)`` (floats or
    arrays; 0 for amount 0)."""
    return capacity * amount / (km + amount)


def nonlinear_rhs(y, dy, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm):
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


def nonlinear_jac(y, J, bsrc, bdst, bbinder, bk, bcap, ssrc, sdst, svmax, skm):
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


def linear_limit(law: str, values: dict) -> float:
    """Rate constant (1/day) of a law's flow when its pools are nearly empty (the engine's
    linear mode between injection transients): first order ``k``; binding ``k`` (empty
    binder: the free pools hold under 1e-9 ug then); saturable ``vmax / km``."""
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
    "if_absorbed": "{capacity} * {amount} / ({km} + {amount})",
}
