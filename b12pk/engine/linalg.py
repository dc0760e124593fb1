"""A small batched matrix exponential (scaling and squaring, Taylor series).

scipy.linalg.expm takes ~15 ms for a small dense matrix with the scipy builds used here
(its Pade path has a large fixed cost), while b12pk needs many 5x5 to 12x12 exponentials.
For the matrices of this model (compartmental, norms up to ~1e3 after multiplying by the
step) a degree-18 Taylor polynomial after scaling to norm <= 1/2 is accurate to rounding;
tests compare it with scipy.linalg.expm.
"""

from __future__ import annotations

import math

import numpy as np

_DEGREE = 18


def expm_taylor(a):
    """exp(a) for one square matrix (written in the subset of Python numba compiles: the
    compiled single-patient engine uses this very function)."""
    n = a.shape[0]
    norm = 0.0
    for j in range(n):
        col = 0.0
        for i in range(n):
            col += abs(a[i, j])
        norm = max(norm, col)
    s = 0
    if norm > 0.5:
        s = int(math.ceil(math.log2(norm / 0.5)))
    x = a / (2.0 ** s)
    eye = np.eye(n)
    result = eye + x / _DEGREE
    for k in range(_DEGREE - 1, 0, -1):  # Horner: I + x/1 (I + x/2 (I + ...))
        result = eye + np.dot(x, result) / k
    for _ in range(s):
        result = np.dot(result, result)
    return result


def expm(a: np.ndarray) -> np.ndarray:
    """exp(a) for a square matrix or a stack of them (..., n, n)."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 2:
        return expm_taylor(np.ascontiguousarray(a))
    n = a.shape[-1]
    norm = float(np.max(np.sum(np.abs(a), axis=-2))) if a.size else 0.0
    s = max(0, int(math.ceil(math.log2(norm / 0.5)))) if norm > 0.5 else 0
    x = a / (2.0 ** s)
    eye = np.broadcast_to(np.eye(n), a.shape)
    result = eye + x / _DEGREE
    for k in range(_DEGREE - 1, 0, -1):  # Horner: I + x/1 (I + x/2 (I + ...))
        result = eye + (x @ result) / k
    for _ in range(s):
        result = result @ result
    return result
