"""Compiled kernels for the population engine (optional: ``pip install b12pk[fast]``).

Importing this module raises ImportError when numba is not installed; the population engine
then uses its numpy code, which computes the same quantities (tests check that both agree).
Both kernels release the GIL, so chunks simulated in threads run in parallel.
"""

from __future__ import annotations

import numba

from ._span import TILE

__all__ = ["record_step", "run_span", "run_transient", "TILE", "integrate_transient", "run_patient_kernel"]


# --------------------------------------------------------------------------------------
# The single-patient loop and transient integrator (b12pk.engine._patient, _transient), the
# population's spans (b12pk.engine._span) and the rate laws of b12pk.model.laws, compiled as
# they are written (one source for the numpy and the compiled engines).

def _compile_module_functions(modules: tuple, names: dict, inline: frozenset = frozenset()
                              ) -> dict:
    """Compile the named plain-Python functions of ``modules`` with numba, each seeing the
    others' compiled versions (and the modules' constants) as globals; those named in
    ``inline`` are inlined where they are called (numba's ``inline="always"``)."""
    import hashlib
    import inspect
    import types

    scope: dict = {}
    names_seen: set = set()
    for fnames in names.values():  # one scope: a name compiled twice would shadow the other
        if names_seen & set(fnames):
            raise RuntimeError(f"compiled twice: {sorted(names_seen & set(fnames))}")
        names_seen |= set(fnames)
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
    text += repr(sorted(inline))
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    compiled = {}
    for module, fnames in names.items():
        for name in fnames:
            fn = getattr(module, name)
            clone = types.FunctionType(fn.__code__, scope, name, fn.__defaults__)
            clone.__module__ = fn.__module__  # numba's cache is keyed on this and the file
            clone.__qualname__ = f"{fn.__qualname__}_{digest}"
            compiled[name] = numba.njit(clone, nogil=True, cache=True,
                                        inline="always" if name in inline else "never")
    scope.update(compiled)
    return compiled


def _transient_kernels() -> dict:
    from . import _patient, _span, _transient, linalg
    from ..model import laws

    return _compile_module_functions(
        (laws, linalg, _transient, _patient, _span),
        {laws: ("first_order", "binding_room", "capacity_binding", "saturable", "overflow",
                "slow_flux", "slow_rate", "slow_rhs", "if_absorbed", "nonlinear_rhs",
                "nonlinear_jac"),
         linalg: ("expm_taylor",),
         _transient: ("rhs", "jac", "_lu", "_lu_solve", "_solve_sinks", "_stiff_step", "_explicit_step",
                      "near_kink", "integrate"),
         _patient: ("_exp", "_slow_steps", "_affine_row", "_midpoint", "_linear_step",
                    "_parenteral", "run"),
         _span: ("bin_of", "record_step", "run_span",
                 "_tile_row", "_pools", "_fast_tile", "_slow_tile", "run_transient")},
        # the rate laws are inlined into the right-hand side and Jacobian (a call per flow
        # and evaluation cost a fifth to a quarter of an injection transient's time; the
        # right-hand side itself is not inlined: that would add about 9 s to the first
        # compilation for a further tenth)
        inline=frozenset(("first_order", "binding_room", "capacity_binding", "saturable",
                          "overflow", "slow_flux", "slow_rate", "slow_rhs", "nonlinear_rhs",
                          "nonlinear_jac")))


_TRANSIENT = _transient_kernels()
integrate_transient = _TRANSIENT["integrate"]
"""Compiled :func:`b12pk.engine._transient.integrate`."""
run_patient_kernel = _TRANSIENT["run"]
"""Compiled :func:`b12pk.engine._patient.run`."""
run_span = _TRANSIENT["run_span"]
"""Compiled :func:`b12pk.engine._span.run_span`."""
record_step = _TRANSIENT["record_step"]
"""Compiled :func:`b12pk.engine._span.record_step`."""
run_transient = _TRANSIENT["run_transient"]
"""Compiled :func:`b12pk.engine._span.run_transient`."""
