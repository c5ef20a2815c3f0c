r"""Second order: the derivative of an implementation's input gradient along an input direction,
against the float64 reference's.

``gradient_second_order`` differentiates the input gradient of ``<dy, f(x)>`` once more, along a
direction v (:func:`normcheck.properties.gradients.direction`): the Hessian-vector product H v, H
the input Hessian of that scalar (weight and bias held fixed). The framework computes it with its
own autodiff (:func:`normcheck.autodiff.hvp`: torch double backward, JAX forward-over-reverse),
for native implementations and user targets alike (a custom ``torch.autograd.Function`` through its
``backward``: one that leaves the graph inside it gives a zero second derivative). The float64
reference is the complex-step derivative of the analytic gradient
(:func:`~normcheck.properties.gradients.reference_hvp`, exact to float64 rounding); the bound is
the error model's second-order scale (:func:`~normcheck.properties.gradients.hvp_scales`,
:func:`normcheck.error_model.second_order_scale`, docs/error-model.md), with the one lambda.

Which cases: a second derivative is one more compiled program per shape for JAX, so by default only
cases of at most :data:`MAX_SIZE` input elements are judged (about a third of the drawn examples,
every value regime, mode and dtype among them; the rest are skipped with that reason). The
criterion is the case's own, so a replayed run and Hypothesis's shrinking see the same cases.
:func:`every_case` (for the thorough profile) or ``MAX_SIZE = None`` judges every case.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from normcheck import error_model
from normcheck.adapters.base import Unsupported
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, register, verdict
from normcheck.properties.gradients import cotangent, direction, hvp_scales, reference_hvp

__all__ = ["MAX_SIZE", "SECOND_ORDER_PROPERTIES", "every_case", "gradient_second_order"]

#: Cases with more input elements than this are skipped outside :func:`every_case` (None: none are).
MAX_SIZE: int | None = 16

_EVERY: ContextVar[bool] = ContextVar("normcheck_second_order_every_case", default=False)


@contextmanager
def every_case(on: bool = True) -> Iterator[None]:
    """Judge every case, whatever its size, inside this block (the thorough profile's setting)."""
    token = _EVERY.set(on)
    try:
        yield
    finally:
        _EVERY.reset(token)


def _native_hvp(impl, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    from normcheck import autodiff

    try:
        got = autodiff.hvp(impl, case, dy, v)
    except Unsupported as e:
        raise Stop(Result("", "skip", message=f"unsupported: {e}")) from None
    except Exception as e:
        msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
        raise Stop(Result("", "error", message=f"second derivative raised {msg}", case=case)) from None
    if np.shape(got) != case.x.shape:
        lam = error_model.MODEL.lam
        raise Stop(
            Result("", "fail", np.inf, lam, f"d2x has shape {np.shape(got)}, expected {case.x.shape}", case=case)
        )
    return got


@register
def gradient_second_order(impl, case: Case) -> Result:
    """The derivative of the input gradient along a direction v (torch double backward, JAX
    forward-over-reverse) equals the float64 reference's Hessian-vector product."""
    from normcheck import autodiff, dtypes

    missing = autodiff.second_order_missing(impl)
    if missing:
        raise Stop(Result("", "skip", message=f"unsupported: {missing}"))
    if MAX_SIZE is not None and not _EVERY.get() and case.x.size > MAX_SIZE:
        raise Stop(Result("", "skip", message=f"second order is judged on cases of at most {MAX_SIZE} elements"))
    dy, v = cotangent(case), direction(case)
    ref = reference_hvp(case, dy, v)
    big = float(dtypes.finfo(case.dtype).max) / 4
    if not np.isfinite(ref).all() or (ref.size and float(np.max(np.abs(ref))) > big):
        raise Stop(Result("", "skip", message=f"the true second derivative is not representable in {case.dtype}"))
    got = _native_hvp(impl, case, dy, v)
    return verdict(
        "gradient_second_order", [("d2x", error_model.compare(got, ref, hvp_scales(case, dy, v), case.dtype))]
    )


SECOND_ORDER_PROPERTIES = {"gradient_second_order": gradient_second_order}
