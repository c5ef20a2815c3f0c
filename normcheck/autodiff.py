"""Each framework's own autodiff of its native norms, behind canonical NumPy arrays: a dispatcher.

:func:`vjp` ``(impl, case, dy)`` returns the vector-Jacobian product of the native norm that
``impl`` (an :class:`normcheck.adapters.Impl`) exposes, at the case's input and parameters, for the
output cotangent ``dy``: ``{"input": dx, "weight": dw, "bias": db}`` (weight/bias only where the
case has them), NumPy arrays in the native gradient dtype, channels-first like the case.

The VJPs are the adapters' (:meth:`normcheck.adapters.Adapter.vjp`, each in
``normcheck/adapters/<framework>/autodiff.py``): torch's ``backward``, ``jax.vjp`` through flax
linen/nnx and ``jax.nn.standardize``, TensorFlow's ``GradientTape`` through Keras and ``tf.nn``.
Every convention (momentum, channel axis, dtype policy, eps, what is Unsupported) is the adapter's.
Training mode differentiates through the batch statistics; the running-buffer update is not
differentiated (no framework does). Frameworks without autodiff (NumPy, ONNX Runtime, user
functions) raise :class:`~normcheck.adapters.Unsupported`.

This module imports no framework: :data:`FRAMEWORKS` is built from the adapter registry, whose
packages import their framework only when a VJP runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcheck import adapters
from normcheck.adapters.base import Unsupported
from normcheck.case import Case

__all__ = ["FRAMEWORKS", "vjp"]

#: The frameworks with autodiff (their adapter overrides :meth:`~normcheck.adapters.Adapter.vjp`),
#: in :data:`normcheck.adapters.FRAMEWORKS` order, each with its VJP function.
FRAMEWORKS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    a.name: a.vjp for a in map(adapters.get, adapters.FRAMEWORKS) if a.has_vjp
}


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The native VJP of ``impl`` at ``case`` for the cotangent ``dy`` (see the module docstring)."""
    fn = FRAMEWORKS.get(getattr(impl, "framework", ""))
    if fn is None:
        raise Unsupported(f"{getattr(impl, 'framework', '?')} has no autodiff")
    return fn(impl, case, np.asarray(dy))


def __getattr__(name: str):
    """``torch_vjp``, ``jax_vjp``, ``tensorflow_vjp``: the former per-framework names (used by
    scripts/audit_timing.py), now each adapter's :meth:`~normcheck.adapters.Adapter.vjp`."""
    framework = name.removesuffix("_vjp")
    if name.endswith("_vjp") and framework in FRAMEWORKS:
        return FRAMEWORKS[framework]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
