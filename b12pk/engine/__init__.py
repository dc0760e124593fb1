"""The simulation engine built from the model declaration (:mod:`.core`): dose events +
patient + parameters -> tidy time course; its compiled transient integrator
(:mod:`._transient`, compiled by :mod:`.kernels` with ``b12pk[fast]``) and matrix
exponential (:mod:`.linalg`).

Layer: above ``regimen``; below ``population``, ``exchange`` and ``analysis``.
"""

from .core import (MAX_DAYS, MIN_DAYS, TRANSIENT_EPS_UG, simulate, simulate_draws,
                   simulate_memory_bytes, steady_state_stores_ug)

__all__ = ["simulate", "simulate_draws", "steady_state_stores_ug", "simulate_memory_bytes",
           "MAX_DAYS", "MIN_DAYS", "TRANSIENT_EPS_UG"]
