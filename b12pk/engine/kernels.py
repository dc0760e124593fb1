"""Compiled kernels for the population engine (optional: ``pip install b12pk[fast]``).

Importing this module raises ImportError when numba is not installed; the population engine
then uses its numpy code, which computes the same quantities (tests check that both agree).
Both kernels release the GIL, so chunks simulated in threads run in parallel.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["record_step", "run_span", "TILE", "integrate_transient", "run_patient_kernel"]

from ..model import laws

#: The oral absorption law of b12pk.model.laws, compiled as it is written.
_if_absorbed = numba.njit(laws.if_absorbed, nogil=True, cache=True, inline="always")

TILE = 256
"""Patients advanced together through a span (divides population.BLOCK; fits in L2)."""


@numba.njit(nogil=True, cache=True, inline="always")
def _bin(bits: int, lo_bits: int, shift: int, nbins: int) -> int:
    idx = (bits >> shift) - lo_bits
    if idx < 0:
        return 0
    if idx > nbins - 1:
        return nbins - 1
    return idx


@numba.njit(nogil=True, cache=True)
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
        hist_serum[k, _bin(serum_bits[p], lo_bits, shift, nbins)] += 1
        hist_stores[k, _bin(stores_bits[p], lo_bits, shift, nbins)] += 1
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


@numba.njit(nogil=True, cache=True)
def run_span(E: np.ndarray, g: np.ndarray, r: np.ndarray, y: np.ndarray,
             deficit: np.ndarray, if_cap: np.ndarray, passive: np.ndarray, if_km: float,
             ev_amount: np.ndarray, ev_decay: np.ndarray, n_ev: np.ndarray,
             rec: np.ndarray, c_serum: float, cut: float, upper: float, lo_bits: int,
             shift: int, nbins: int, hist_serum: np.ndarray, hist_stores: np.ndarray,
             bands: np.ndarray, replete_at: np.ndarray, never: int, block_of: np.ndarray,
             sums: np.ndarray) -> None:
    """Advance every patient through steps of one length with oral doses and outputs only.

    Per step: y <- E y + g r (the exact slow-state propagator for the step); then each oral
    dose of the step (amount ``ev_amount[step, e]``, ug; IF-capacity deficit first decays
    by ``ev_decay[step, e]``) is absorbed through the saturable IF route plus the passive
    fraction into the ileum; then, when ``rec[step] >= 0``, the state is recorded at output
    index ``rec[step]`` as in :func:`record_step`. Patients are taken in tiles of
    :data:`TILE`, steps inside tiles, so a tile's propagators stay in cache.

    Shapes (patient-major, so that a patient's numbers sit together in memory): E (N, 5, 5),
    g (N, 5), y (N, 5) (updated in place); r, deficit, if_cap, passive (N,); ev_amount and
    ev_decay (steps, max doses per step); n_ev and rec (steps,).
    """
    n = y.shape[0]
    n_steps = rec.shape[0]
    buf = np.empty(2)  # float64 -> int64 bits through a view
    bits = buf.view(np.int64)
    for p0 in range(0, n, TILE):
        p1 = min(p0 + TILE, n)
        for step in range(n_steps):
            k = rec[step]
            b0 = 0
            b1 = 0
            b2 = 0
            sum_serum = 0.0
            sum_stores = 0.0
            for p in range(p0, p1):
                y0 = y[p, 0]
                y1 = y[p, 1]
                y2 = y[p, 2]
                y3 = y[p, 3]
                y4 = y[p, 4]
                rp = r[p]
                n0 = E[p, 0, 0] * y0 + E[p, 0, 1] * y1 + E[p, 0, 2] * y2 + E[p, 0, 3] * y3 \
                    + E[p, 0, 4] * y4 + g[p, 0] * rp
                n1 = E[p, 1, 0] * y0 + E[p, 1, 1] * y1 + E[p, 1, 2] * y2 + E[p, 1, 3] * y3 \
                    + E[p, 1, 4] * y4 + g[p, 1] * rp
                n2 = E[p, 2, 0] * y0 + E[p, 2, 1] * y1 + E[p, 2, 2] * y2 + E[p, 2, 3] * y3 \
                    + E[p, 2, 4] * y4 + g[p, 2] * rp
                n3 = E[p, 3, 0] * y0 + E[p, 3, 1] * y1 + E[p, 3, 2] * y2 + E[p, 3, 3] * y3 \
                    + E[p, 3, 4] * y4 + g[p, 3] * rp
                n4 = E[p, 4, 0] * y0 + E[p, 4, 1] * y1 + E[p, 4, 2] * y2 + E[p, 4, 3] * y3 \
                    + E[p, 4, 4] * y4 + g[p, 4] * rp
                d = deficit[p]
                for e in range(n_ev[step]):
                    amount = ev_amount[step, e]
                    d *= ev_decay[step, e]
                    cap = if_cap[p] - d
                    if cap < 0.0:
                        cap = 0.0
                    a_if = _if_absorbed(cap, if_km, amount)
                    n0 += a_if + passive[p] * amount
                    d += a_if
                deficit[p] = d
                y[p, 0] = n0
                y[p, 1] = n1
                y[p, 2] = n2
                y[p, 3] = n3
                y[p, 4] = n4
                if k >= 0:
                    ser = (n2 + n3) * c_serum
                    buf[0] = ser
                    buf[1] = n4
                    hist_serum[k, _bin(bits[0], lo_bits, shift, nbins)] += 1
                    hist_stores[k, _bin(bits[1], lo_bits, shift, nbins)] += 1
                    low = ser < cut  # branch-free counts: band membership is unpredictable
                    b0 += low
                    b2 += ser >= upper
                    if ser >= cut and replete_at[p] == never:
                        replete_at[p] = k
                    sum_serum += ser
                    sum_stores += n4
            if k >= 0:
                b1 = (p1 - p0) - b0 - b2
                # a tile lies inside one block (TILE divides the block; chunks start at blocks)
                blk = block_of[p0]
                sums[blk, 0, k] += sum_serum
                sums[blk, 1, k] += sum_stores
                bands[k, 0] += b0
                bands[k, 1] += b1
                bands[k, 2] += b2


# --------------------------------------------------------------------------------------
# The single-patient transient integrator: b12pk.engine._transient and the rate laws of b12pk.model.laws
# compiled as they are written (one source for the numpy and the compiled engine).

def _compile_module_functions(modules: tuple, names: dict) -> dict:
    """Compile the named plain-Python functions of ``modules`` with numba, each seeing the
    others' compiled versions (and the modules' constants) as globals."""
    import hashlib
    import inspect
    import types

    scope: dict = {}
    for module in modules:
        scope.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    # numba's on-disk cache checks only the file of the function it holds, not the functions
    # it calls: the names carry a digest of every module compiled together, so that a change
    # to any of them compiles everything afresh instead of loading stale machine code
    try:
        text = "".join(inspect.getsource(m) for m in modules)
    except (OSError, TypeError):  # no source files (e.g. bytecode only): the version
        from ..about import __version__
        text = __version__
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    compiled = {}
    for module, fnames in names.items():
        for name in fnames:
            fn = getattr(module, name)
            clone = types.FunctionType(fn.__code__, scope, name, fn.__defaults__)
            clone.__module__ = fn.__module__  # numba's cache is keyed on this and the file
            clone.__qualname__ = f"{fn.__qualname__}_{digest}"
            compiled[name] = numba.njit(clone, nogil=True, cache=True)
    scope.update(compiled)
    return compiled


def _transient_kernels() -> dict:
    from . import _patient, _transient, linalg
    from ..model import laws

    return _compile_module_functions(
        (laws, linalg, _transient, _patient),
        {laws: ("first_order", "binding_room", "capacity_binding", "saturable", "overflow",
                "slow_flux", "slow_rate", "slow_rhs", "if_absorbed", "nonlinear_rhs", "nonlinear_jac"),
         linalg: ("expm_taylor",),
         _transient: ("rhs", "jac", "_lu", "_lu_solve", "_solve_sinks", "_stiff_step", "_explicit_step",
                      "near_kink", "integrate"),
         _patient: ("_exp", "_slow_steps", "_linear_step", "_parenteral", "run")})


_TRANSIENT = _transient_kernels()
integrate_transient = _TRANSIENT["integrate"]
"""Compiled :func:`b12pk.engine._transient.integrate`."""
run_patient_kernel = _TRANSIENT["run"]
"""Compiled :func:`b12pk.engine._patient.run`."""
