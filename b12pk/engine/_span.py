"""The population engine's oral spans, written in the subset of Python that numba compiles
(:mod:`b12pk.engine.kernels` compiles it with the rate laws of :mod:`b12pk.model.laws`).

A span is a run of equal steps with oral doses and outputs only: every patient's slow state
(ileum, enterocyte, holoTC, holoHC, protein-bound, stores) advances by its propagators, the
oral doses pass the IF route, and the outputs update the population's histograms.
"""

from __future__ import annotations

import numpy as np

from ..model.laws import binding_room, if_absorbed, saturable, slow_flux

__all__ = ["run_span", "run_transient", "record_step", "bin_of", "TILE"]

TILE = 256
"""Patients advanced together through a span (divides population.BLOCK; fits in L2)."""


def bin_of(bits, lo_bits, shift, nbins):
    """Histogram bin of a float from its bits: shifted right by ``shift``, minus ``lo_bits``,
    clipped to [0, nbins - 1] (negative values have negative bits and go to bin 0)."""
    idx = (bits >> shift) - lo_bits
    if idx < 0:
        return 0
    if idx > nbins - 1:
        return nbins - 1
    return idx


def record_step(serum: np.ndarray, stores: np.ndarray, serum_bits: np.ndarray,
                stores_bits: np.ndarray, k: int, cut: float, upper: float,
                lo_bits: int, shift: int, nbins: int, hist_serum: np.ndarray,
                hist_stores: np.ndarray, bands: np.ndarray, replete_at: np.ndarray,
                never: int, block_of: np.ndarray, sums: np.ndarray) -> None:
    """Histogram, band, repletion and per-block sum updates for output time k.

    Same binning as ``population._bin_index``: the float's bits (``serum_bits`` and
    ``stores_bits`` are int64 views of the values) shifted right by ``shift``, minus
    ``lo_bits``, clipped to [0, nbins - 1]; negative values have negative bits and go to bin 0.
    """
    n = serum.shape[0]
    b0 = 0
    b1 = 0
    b2 = 0
    for p in range(n):
        s = serum[p]
        st = stores[p]
        hist_serum[k, bin_of(serum_bits[p], lo_bits, shift, nbins)] += 1
        hist_stores[k, bin_of(stores_bits[p], lo_bits, shift, nbins)] += 1
        if s < cut:
            b0 += 1
        elif s < upper:
            b1 += 1
        else:
            b2 += 1
        if replete_at[p] == never and s >= cut:
            replete_at[p] = k
        blk = block_of[p]
        sums[blk, 0, k] += s
        sums[blk, 1, k] += st
    bands[k, 0] += b0
    bands[k, 1] += b1
    bands[k, 2] += b2


def run_span(E, G, Eh, Gh, n_sub, r, y, qsrc, qlaw, qa, qb, deficit, if_cap, passive, if_km,
             ev_amount, ev_decay, n_ev, rec, plasma, stores_i, c_serum, cut, upper, lo_bits,
             shift, nbins, hist_serum, hist_stores, bands, replete_at, never, block_of, sums,
             w_read, w_holotc, holotc_i, w_min):
    """Advance every patient through steps of one length with oral doses and outputs only.

    Per step: ``n_sub`` substeps of the slow state (:func:`_slow_tile`; ``E`` (1, ns, ns, N)
    and ``G`` (1, ns, 1 + slow flows, N) for the substep, ``Eh`` and ``Gh`` for half of it;
    the input columns are the diet's rate ``r`` into the ileum, then each slow flow at unit
    flux); then each oral dose of the step (amount ``ev_amount[step, e]``, ug; the IF
    capacity deficit first decays by ``ev_decay[step, e]``) is absorbed through the
    saturable IF route plus the passive fraction into the ileum; then, when
    ``rec[step] >= 0``, the state is recorded at output index ``rec[step]``: serum (the
    slow states ``plasma`` summed, times ``c_serum``) and stores (state ``stores_i``)
    histograms (bins as :func:`bin_of`), band counts, first time replete, per-block sums;
    and each per-patient check ``c`` with ``w_read[step, c]`` keeps in ``w_min[c, p]`` the
    lowest serum (or holoTC where ``w_holotc[c]``; state ``holotc_i``) it has read.
    Slow flows: source ``qsrc`` (index in the slow state), law ``qlaw``, parameters ``qa``
    and ``qb`` (flows, N). Patients go in tiles of :data:`TILE`, steps inside tiles, so
    that a tile's propagators stay in cache. ``y`` (ns, N) is updated in place.
    """
    n = y.shape[1]
    n_steps = rec.shape[0]
    m = qsrc.shape[0]
    flux = np.empty((m, TILE))
    half = np.empty((m, TILE))
    tmp = np.empty((y.shape[0], TILE))
    buf = np.empty(2)  # float64 -> int64 bits through a view
    bits = buf.view(np.int64)
    for p0 in range(0, n, TILE):
        p1 = min(p0 + TILE, n)
        for step in range(n_steps):
            k = rec[step]
            b0 = 0
            b2 = 0
            sum_serum = 0.0
            sum_stores = 0.0
            for _ in range(n_sub):
                _slow_tile(p0, p1, 0, y, E, G, Eh, Gh, r, qsrc, qlaw, qa, qb, flux, half, tmp)
            n_read = 0
            for c in range(w_read.shape[1]):
                n_read += w_read[step, c]
            if n_ev[step] == 0 and k < 0 and n_read == 0:
                continue
            for p in range(p0, p1):
                d = deficit[p]
                for e in range(n_ev[step]):
                    amount = ev_amount[step, e]
                    d *= ev_decay[step, e]
                    cap = if_cap[p] - d
                    if cap < 0.0:
                        cap = 0.0
                    a_if = if_absorbed(cap, if_km, amount)
                    y[0, p] += a_if + passive[p] * amount
                    d += a_if
                deficit[p] = d
                for c in range(w_read.shape[1]):
                    if w_read[step, c]:
                        if w_holotc[c]:
                            v = y[holotc_i, p] * c_serum
                        else:
                            v = 0.0
                            for j in range(plasma.shape[0]):
                                v += y[plasma[j], p]
                            v *= c_serum
                        if v < w_min[c, p]:
                            w_min[c, p] = v
                if k >= 0:
                    ser = 0.0
                    for j in range(plasma.shape[0]):
                        ser += y[plasma[j], p]
                    ser *= c_serum
                    buf[0] = ser
                    buf[1] = y[stores_i, p]
                    hist_serum[k, bin_of(bits[0], lo_bits, shift, nbins)] += 1
                    hist_stores[k, bin_of(bits[1], lo_bits, shift, nbins)] += 1
                    b0 += ser < cut  # branch-free counts: band membership is unpredictable
                    b2 += ser >= upper
                    if ser >= cut and replete_at[p] == never:
                        replete_at[p] = k
                    sum_serum += ser
                    sum_stores += y[stores_i, p]
            if k >= 0:
                # a tile lies inside one block (TILE divides the block; chunks start at blocks)
                blk = block_of[p0]
                sums[blk, 0, k] += sum_serum
                sums[blk, 1, k] += sum_stores
                bands[k, 0] += b0
                bands[k, 1] += (p1 - p0) - b0 - b2
                bands[k, 2] += b2


def _fast_tile(p0, p1, h, y, depot, nasal, free, e_dep, e_nas, k_dep, k_nas, k_ren, k_pb, vmax,
               km, k_bind, hc_cap, hc, stores_i, bound_i, lam, outs, f_new):
    """Patients p0..p1-1: their injection pools over ``h`` days (in place; ``y`` is (ns, N)), the
    population engine's fast step: each form's unbound pool fed by its depot and nasal pools
    (exact exponentials) and emptied at ``lam`` = renal + protein binding + haptocorrin
    binding (times the binder's free share) + uptake (saturable in the unbound total);
    predictor-corrector on the unbound total and the binder's share; binding limited to the
    binder's room (what would bind beyond it stays unbound). ``e_dep[i]`` and ``e_nas`` are
    exp(-k h) of the depot and nasal pools."""
    nf = free.shape[0]
    # views of the tile (indices from 0: numba need not check them for negative values)
    yh = y[hc, p0:p1]
    yst = y[stores_i, p0:p1]
    ybd = y[bound_i, p0:p1]
    dv = depot[:, p0:p1]
    nv = nasal[:, p0:p1]
    fv = free[:, p0:p1]
    kr = k_ren[:, p0:p1]
    kp = k_pb[:, p0:p1]
    vm = vmax[p0:p1]
    for p in range(p1 - p0):
        empty = True
        for i in range(nf):
            if dv[i, p] != 0.0 or nv[i, p] != 0.0 or fv[i, p] != 0.0:
                empty = False
        if empty:  # nothing to move (written out: a call to _pools here costs 15 %)
            continue
        room = binding_room(hc_cap, yh[p]) * hc_cap
        ftot = 0.0
        for i in range(nf):
            ftot += fv[i, p]
        g = binding_room(hc_cap, yh[p])
        bound_pred = 0.0
        u = 0.0
        for corrector in range(2):
            if corrector == 0:
                f_mid = ftot
            else:  # the predictor's mean unbound amount over the step: what left / rate
                f_mid = 0.0
                for i in range(nf):
                    f_mid += outs[i] / lam[i]
                f_mid = f_mid / h
                g = binding_room(hc_cap, yh[p] + 0.5 * bound_pred)
            u = saturable(vm[p], km, f_mid if f_mid > 0.0 else 0.0, 1.0)
            total_bind = 0.0
            for i in range(nf):
                li = kr[i, p] + kp[i, p] + k_bind * g + u
                lam[i] = li
                e_li = np.exp(-li * h)
                acc = fv[i, p] * e_li
                for src in range(2):
                    if src == 0:
                        k_src = k_dep[i]
                        amt = dv[i, p]
                        e_src = e_dep[i]
                    else:
                        k_src = k_nas
                        amt = nv[i, p]
                        e_src = e_nas
                    if amt == 0.0:  # an empty pool adds nothing (the division is skipped)
                        continue
                    diff = li - k_src
                    if abs(diff) > 1e-9:
                        acc = acc + k_src * amt * (e_src - e_li) / diff
                    else:
                        acc = acc + k_src * amt * h * e_li
                f_new[i] = acc
                d_in = dv[i, p] * (1.0 - e_dep[i]) + nv[i, p] * (1.0 - e_nas)
                outs[i] = fv[i, p] + d_in - acc
                total_bind += outs[i] * (k_bind * g) / li
            bound_pred = total_bind if total_bind < room else room
        want_sum = 0.0
        for i in range(nf):
            lam[i] = outs[i] / lam[i]  # now what leaves per unit rate
            want_sum += lam[i] * (k_bind * g)
        scale = 1.0
        if want_sum > room:
            scale = room / (want_sum if want_sum > 1e-300 else 1e-300)
        for i in range(nf):
            want = lam[i] * (k_bind * g)
            bound = want * scale
            yh[p] += bound
            yst[p] += lam[i] * u
            ybd[p] += lam[i] * kp[i, p]
            fv[i, p] = f_new[i] + (want - bound)
            dv[i, p] *= e_dep[i]
            nv[i, p] *= e_nas


def _tile_row(out, E, G, s, i, p0, p1, yv, rv, flux):
    """Row ``i`` of ``E[s] y + G[s] [r; f]`` for patients p0..p1-1 into ``out`` (``yv`` and
    ``rv`` the tile's views of the state and the diet's rate, ``flux`` (flows, tile))."""
    w = p1 - p0
    for c in range(w):
        out[c] = 0.0
    for j in range(yv.shape[0]):
        e = E[s, i, j, p0:p1]
        yj = yv[j]
        for c in range(w):
            out[c] += e[c] * yj[c]
    g0 = G[s, i, 0, p0:p1]
    for c in range(w):
        out[c] += g0[c] * rv[c]
    for q in range(flux.shape[0]):
        g = G[s, i, 1 + q, p0:p1]
        f = flux[q]
        for c in range(w):
            out[c] += g[c] * f[c]


def _pools(p, depot, nasal, free):
    """Patient ``p``'s injection pools in all (ug): depot, nasal and unbound, every form."""
    total = 0.0
    for i in range(free.shape[0]):
        total += depot[i, p]
    for i in range(free.shape[0]):
        total += nasal[i, p]
    for i in range(free.shape[0]):
        total += free[i, p]
    return total


def _slow_tile(p0, p1, s, y, E, G, Eh, Gh, r, qsrc, qlaw, qa, qb, flux, half, tmp):
    """The slow state of patients p0..p1-1 over one substep (in place): ``y <- E y + G
    [r; f]`` with the slow flows held at their flux over the substep (predicted by a half
    step, ``Eh``, ``Gh``: the flux at the substep's midpoint), as the single-patient
    engine's midpoint step. Patients innermost (``y`` (ns, N); propagator stacks ``E[s]``
    (ns, ns, N), ``G[s]`` (ns, inputs, N)), so that the loops vectorise (each loop runs over
    a view of the tile: indices from 0, which numba need not check for negative values)."""
    ns = y.shape[0]
    m = qsrc.shape[0]
    w = p1 - p0
    yv = y[:, p0:p1]
    rv = r[p0:p1]
    for q in range(m):
        law = qlaw[q]
        a = qa[q, p0:p1]
        b = qb[q, p0:p1]
        ys = yv[qsrc[q]]
        f = flux[q]
        for c in range(w):
            f[c] = slow_flux(law, a[c], b[c], ys[c])
    for q in range(m):
        _tile_row(half[q], Eh, Gh, s, qsrc[q], p0, p1, yv, rv, flux)
    for q in range(m):
        law = qlaw[q]
        a = qa[q, p0:p1]
        b = qb[q, p0:p1]
        f = flux[q]
        hq = half[q]
        for c in range(w):
            f[c] = slow_flux(law, a[c], b[c], hq[c])
    for i in range(ns):
        _tile_row(tmp[i], E, G, s, i, p0, p1, yv, rv, flux)
    for i in range(ns):
        yi = yv[i]
        ti = tmp[i]
        for c in range(w):
            yi[c] = ti[c]


def run_transient(steps, n_sub, slot, E, G, Eh, Gh, r, y, qsrc, qlaw, qa, qb, depot, nasal,
                  free, k_dep, k_nas, k_ren, k_pb, vmax, km, k_bind, hc_cap, hc, stores_i,
                  bound_i, end_ug, flush_days):
    """Advance every patient through the injection transient's steps ``steps`` (days):
    a Strang splitting with the injection pools outside (:func:`_fast_tile`) and the
    halves of consecutive steps taken as one: ``F(h0/2) S(h0) F((h0+h1)/2) S(h1) ...
    F(hn/2)``, ``S`` the slow state over a step (``n_sub[k]`` substeps with propagators
    ``E[slot[k]]``, ``G[slot[k]]`` (ns, ns, N) and (ns, inputs, N), and ``Eh``, ``Gh`` for
    their halves: :func:`_slow_tile`). The pools outside keep haptocorrin topped up at each
    step's end, as it is between steps. ``y`` is (ns, N), the pools (forms, N). After each
    fast step but the last, a patient whose injection pools hold ``end_ug`` ug or less has
    what is left sent where it would go (a fast step of ``flush_days``) and the pools
    emptied (a patient with empty pools takes slow steps only). Patients go in tiles of
    :data:`TILE`, steps inside tiles (the tile's propagators stay in cache). Returns the
    number of patients whose pools are not empty at the end."""
    n = y.shape[1]
    nf = free.shape[0]
    m = qsrc.shape[0]
    n_steps = steps.shape[0]
    flux = np.empty((m, TILE))
    half = np.empty((m, TILE))
    tmp = np.empty((y.shape[0], TILE))
    lam = np.empty(nf)
    outs = np.empty(nf)
    f_new = np.empty(nf)
    # each fast step's length and its depot and nasal decay factors; then the flush's
    fast_h = np.empty(n_steps + 1)
    e_dep = np.empty((n_steps + 2, nf))
    e_nas = np.empty(n_steps + 2)
    for k in range(n_steps + 1):
        if k == 0:
            fast_h[k] = steps[0] / 2
        elif k == n_steps:
            fast_h[k] = steps[k - 1] / 2
        else:
            fast_h[k] = (steps[k - 1] + steps[k]) / 2
    for k in range(n_steps + 2):
        a = fast_h[k] if k <= n_steps else flush_days
        for i in range(nf):
            e_dep[k, i] = np.exp(-k_dep[i] * a)
        e_nas[k] = np.exp(-k_nas * a)
    live = 0
    for p0 in range(0, n, TILE):
        p1 = min(p0 + TILE, n)
        for k in range(n_steps + 1):
            _fast_tile(p0, p1, fast_h[k], y, depot, nasal, free, e_dep[k], e_nas[k], k_dep,
                       k_nas, k_ren, k_pb, vmax, km, k_bind, hc_cap, hc, stores_i, bound_i,
                       lam, outs, f_new)
            if k == n_steps:
                break
            for p in range(p0, p1):
                pools = _pools(p, depot, nasal, free)
                if pools <= end_ug and pools != 0.0:
                    _fast_tile(p, p + 1, flush_days, y, depot, nasal, free,
                               e_dep[n_steps + 1], e_nas[n_steps + 1], k_dep, k_nas, k_ren,
                               k_pb, vmax, km, k_bind, hc_cap, hc, stores_i, bound_i, lam,
                               outs, f_new)
                    for i in range(nf):
                        depot[i, p] = 0.0
                        nasal[i, p] = 0.0
                        free[i, p] = 0.0
            for _ in range(n_sub[k]):
                _slow_tile(p0, p1, slot[k], y, E, G, Eh, Gh, r, qsrc, qlaw, qa, qb, flux,
                           half, tmp)
        for p in range(p0, p1):
            live += _pools(p, depot, nasal, free) != 0.0
    return live
