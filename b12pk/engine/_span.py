"""The population engine's oral spans, written in the subset of Python that numba compiles
(:mod:`b12pk.engine.kernels` compiles it with the rate laws of :mod:`b12pk.model.laws`).

A span is a run of equal steps with oral doses and outputs only: every patient's slow state
(ileum, enterocyte, holoTC, holoHC, protein-bound, stores) advances by its propagators, the
oral doses pass the IF route, and the outputs update the population's histograms.
"""

from __future__ import annotations

import numpy as np

from ..model.laws import if_absorbed, slow_flux

__all__ = ["run_span", "record_step", "bin_of", "TILE"]

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


def _patient_row(p, i, y, E, G, r, flux):
    """Row ``i`` of ``E y + G [r; f]`` for patient ``p``."""
    v = G[p, i, 0] * r[p]
    for j in range(y.shape[1]):
        v += E[p, i, j] * y[p, j]
    for q in range(flux.shape[0]):
        v += G[p, i, 1 + q] * flux[q]
    return v


def _slow_substep(p, y, E, G, Eh, Gh, r, qsrc, qlaw, qa, qb, flux, half, tmp):
    """Patient ``p``'s slow state over one substep (in place): ``y <- E y + G [r; f]`` with
    the slow flows' fluxes ``f`` at the midpoint, predicted by a half step (``Eh``, ``Gh``)."""
    ns = y.shape[1]
    m = qsrc.shape[0]
    for q in range(m):
        flux[q] = slow_flux(qlaw[q], qa[q, p], qb[q, p], y[p, qsrc[q]])
    for q in range(m):
        half[q] = _patient_row(p, qsrc[q], y, Eh, Gh, r, flux)
    for q in range(m):
        flux[q] = slow_flux(qlaw[q], qa[q, p], qb[q, p], half[q])
    for i in range(ns):
        tmp[i] = _patient_row(p, i, y, E, G, r, flux)
    for i in range(ns):
        y[p, i] = tmp[i]


def run_span(E, G, Eh, Gh, n_sub, r, y, qsrc, qlaw, qa, qb, deficit, if_cap, passive, if_km,
             ev_amount, ev_decay, n_ev, rec, plasma, stores_i, c_serum, cut, upper, lo_bits,
             shift, nbins, hist_serum, hist_stores, bands, replete_at, never, block_of, sums):
    """Advance every patient through steps of one length with oral doses and outputs only.

    Per step: ``n_sub`` substeps of the slow state (:func:`_slow_substep`; ``E`` (N, ns, ns)
    and ``G`` (N, ns, 1 + slow flows) for the substep, ``Eh`` and ``Gh`` for half of it; the
    input columns are the diet's rate ``r`` into the ileum, then each slow flow at unit
    flux); then each oral dose of the step (amount ``ev_amount[step, e]``, ug; the IF
    capacity deficit first decays by ``ev_decay[step, e]``) is absorbed through the
    saturable IF route plus the passive fraction into the ileum; then, when
    ``rec[step] >= 0``, the state is recorded at output index ``rec[step]``: serum (the
    slow states ``plasma`` summed, times ``c_serum``) and stores (state ``stores_i``)
    stores histograms (bins as :func:`bin_of`), band counts, first time replete, per-block
    sums. Slow flows: source ``qsrc`` (index in the slow state), law ``qlaw``, parameters
    ``qa`` and ``qb`` (flows, N). Patients go in tiles of :data:`TILE`, steps inside tiles,
    so that a tile's propagators stay in cache. ``y`` (N, ns) is updated in place.
    """
    n = y.shape[0]
    n_steps = rec.shape[0]
    m = qsrc.shape[0]
    flux = np.empty(m)
    half = np.empty(m)
    tmp = np.empty(y.shape[1])
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
            for p in range(p0, p1):
                for _ in range(n_sub):
                    _slow_substep(p, y, E, G, Eh, Gh, r, qsrc, qlaw, qa, qb, flux, half, tmp)
                d = deficit[p]
                for e in range(n_ev[step]):
                    amount = ev_amount[step, e]
                    d *= ev_decay[step, e]
                    cap = if_cap[p] - d
                    if cap < 0.0:
                        cap = 0.0
                    a_if = if_absorbed(cap, if_km, amount)
                    y[p, 0] += a_if + passive[p] * amount
                    d += a_if
                deficit[p] = d
                if k >= 0:
                    ser = 0.0
                    for j in range(plasma.shape[0]):
                        ser += y[p, plasma[j]]
                    ser *= c_serum
                    buf[0] = ser
                    buf[1] = y[p, stores_i]
                    hist_serum[k, bin_of(bits[0], lo_bits, shift, nbins)] += 1
                    hist_stores[k, bin_of(bits[1], lo_bits, shift, nbins)] += 1
                    b0 += ser < cut  # branch-free counts: band membership is unpredictable
                    b2 += ser >= upper
                    if ser >= cut and replete_at[p] == never:
                        replete_at[p] = k
                    sum_serum += ser
                    sum_stores += y[p, stores_i]
            if k >= 0:
                # a tile lies inside one block (TILE divides the block; chunks start at blocks)
                blk = block_of[p0]
                sums[blk, 0, k] += sum_serum
                sums[blk, 1, k] += sum_stores
                bands[k, 0] += b0
                bands[k, 1] += (p1 - p0) - b0 - b2
                bands[k, 2] += b2
