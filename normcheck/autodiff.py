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
differentiated (no framework does). Frameworks without autodiff (NumPy, ONNX Runtime) raise
:class:`~normcheck.adapters.Unsupported`.

A user's target (``impl.framework == "user"``, ``impl.fn`` a :class:`normcheck.target.Target`) is
differentiated by the framework it runs on (``impl.runs_on``): the adapter's
:meth:`~normcheck.adapters.Adapter.target_vjp` calls the target with native arrays
(``Target.native_call``: torch autograd, custom ``autograd.Function`` included, and module
parameters as grad-requiring leaves; ``jax.vjp``, flax.linen modules through ``apply``;
``tf.GradientTape``, Keras layers). A NumPy target raises Unsupported ("numpy has no autodiff").

:func:`hvp` ``(impl, case, dy, v)`` is the second order: the derivative of the input gradient along
``v`` (torch double backward, JAX forward-over-reverse, TensorFlow nested tapes), for native implementations and user
targets alike (:meth:`~normcheck.adapters.Adapter.hvp`, :meth:`~normcheck.adapters.Adapter.target_hvp`).

:func:`jvp` ``(impl, case, tangents)`` is forward mode: the derivative of the output along tangents of
the input, weight and bias (``torch.autograd.forward_ad`` dual numbers, ``jax.jvp``), for native
implementations and user targets alike (:meth:`~normcheck.adapters.Adapter.jvp`,
:meth:`~normcheck.adapters.Adapter.target_jvp`); :func:`forward_mode_missing` says why it cannot run.

This module imports no framework: :data:`FRAMEWORKS` is built from the adapter registry, whose
packages import their framework only when a VJP runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from normcheck import adapters
from normcheck.adapters.base import Unsupported
from normcheck.case import Case

__all__ = ["FRAMEWORKS", "MODE", "forward_mode_missing", "hvp", "jvp", "second_order_missing", "vjp"]

#: The frameworks with autodiff (their adapter overrides :meth:`~normcheck.adapters.Adapter.vjp`),
#: in :data:`normcheck.adapters.FRAMEWORKS` order, each with its VJP function.
FRAMEWORKS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    a.name: a.vjp for a in map(adapters.get, adapters.FRAMEWORKS) if a.has_vjp
}


#: The derivative a call of a user's target is part of: "call" (plain), "vjp", "jvp" or "hvp". Each
#: mode's first call traces, compiles or initializes anew (torch.func and forward_ad, jax.jvp, nested
#: tapes), so the per-call guard allows it the first-call factor again
#: (:func:`normcheck.target.guard.allowance` keys its input signatures by mode).
MODE: ContextVar[str] = ContextVar("normcheck_autodiff_mode", default="call")


@contextmanager
def _mode(name: str) -> Iterator[None]:
    token = MODE.set(name)
    try:
        yield
    finally:
        MODE.reset(token)


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The native VJP of ``impl`` at ``case`` for the cotangent ``dy`` (see the module docstring)."""
    framework = getattr(impl, "framework", "")
    fn = FRAMEWORKS.get(framework)
    if fn is None and framework == "user":
        with _mode("vjp"):
            return _runs_on(impl).target_vjp(impl.fn, case, np.asarray(dy))
    if fn is None:
        raise Unsupported(f"{framework or '?'} has no autodiff")
    return fn(impl, case, np.asarray(dy))


def hvp(impl, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Second order: the derivative of the input gradient of ``<dy, f(x)>`` along the input
    direction ``v`` (the Hessian-vector product H v), through the framework's own autodiff (torch:
    double backward; JAX: forward-over-reverse; TensorFlow: nested tapes), a NumPy array shaped like the input. A user's
    target goes to its framework's :meth:`~normcheck.adapters.Adapter.target_hvp`."""
    framework = getattr(impl, "framework", "")
    dy, v = np.asarray(dy), np.asarray(v)
    if framework == "user":
        with _mode("hvp"):
            return _runs_on(impl).target_hvp(impl.fn, case, dy, v)
    if framework not in adapters.FRAMEWORKS:
        raise Unsupported(f"{framework or '?'} has no autodiff")
    return adapters.get(framework).hvp(impl, case, dy, v)


def jvp(impl, case: Case, tangents: dict[str, np.ndarray]) -> np.ndarray:
    """Forward mode: the derivative of the output of ``impl`` at ``case`` along ``tangents``
    (``{"input": v, "weight": w', "bias": b'}``, the weight and bias only where the case has them),
    through the framework's own forward-mode autodiff, a NumPy array shaped like the input. A user's
    target goes to its framework's :meth:`~normcheck.adapters.Adapter.target_jvp`."""
    framework = getattr(impl, "framework", "")
    t = {k: np.asarray(v) for k, v in tangents.items()}
    if framework == "user":
        with _mode("jvp"):
            return _runs_on(impl).target_jvp(impl.fn, case, t)
    if framework not in adapters.FRAMEWORKS:
        raise Unsupported(f"{framework or '?'} has no autodiff")
    return adapters.get(framework).jvp(impl, case, t)


def _differentiating(impl):
    """(the framework whose autodiff differentiates ``impl``: its own, or the one a user's target runs
    on; that framework's adapter, or None where it is no framework normcheck knows)."""
    framework = getattr(impl, "framework", "")
    if framework == "user":
        framework = getattr(impl, "runs_on", None)
    return framework, adapters.get(framework) if framework in adapters.FRAMEWORKS else None


def forward_mode_missing(impl) -> str | None:
    """Why :func:`jvp` cannot run for ``impl`` (the framework, or the one a user's target runs on,
    has no forward-mode autodiff here), or None."""
    framework, a = _differentiating(impl)
    if a is None:
        return f"{framework or '?'} has no autodiff"
    if not a.has_jvp:
        return f"{framework} has no autodiff" if not a.has_vjp else f"{framework}: no forward-mode autodiff"
    return None


def second_order_missing(impl) -> str | None:
    """Why :func:`hvp` cannot run for ``impl`` (the framework, or the one a user's target runs on,
    has no second-order autodiff here), or None: the cheap check a property makes before drawing
    on the implementation."""
    framework, a = _differentiating(impl)
    if a is None:
        return f"{framework or '?'} has no autodiff"
    if "second_order" not in a.parts:
        return f"{framework} has no autodiff" if not a.has_vjp else f"{framework}: no second-order autodiff"
    return None


def _runs_on(impl):
    """The adapter of the framework a user's target runs on (``Impl.runs_on``)."""
    fw = getattr(impl, "runs_on", None)
    if fw not in adapters.FRAMEWORKS:
        raise Unsupported(f"a {fw or 'user'} target has no autodiff")
    return adapters.get(fw)


def __getattr__(name: str):
    """``torch_vjp``, ``jax_vjp``, ``tensorflow_vjp``: the former per-framework names (used by
    scripts/audit_timing.py), now each adapter's :meth:`~normcheck.adapters.Adapter.vjp`."""
    framework = name.removesuffix("_vjp")
    if name.endswith("_vjp") and framework in FRAMEWORKS:
        return FRAMEWORKS[framework]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
