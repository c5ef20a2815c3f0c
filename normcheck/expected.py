"""A case's float64 reference output and its error-model scale, computed together.

:func:`of` returns what :meth:`normcheck.case.Case.reference` and :func:`normcheck.error_model.scale`
return, bit for bit. Where the statistics are the batch's over the spec's sets (no running buffers
to update, no mixture), both come from one moments pass:

    mean, var = moments_S(x);   sigma = sqrt(var + eps);   y^ = (x - mean) / sigma
    y = y^ w + b
    s = sqrt(n) kappa_S (1 + |y^|) |w| + |y^| |w| + |b|,   kappa_S = max_S |x| / sigma   (centered; n = 1: error_model.fused_share)
    s = sqrt(n) |y^| |w| + |y^| |w|                                                   (RMS)

with the same operations in the same order as the two functions; every other case calls them. On
the small inputs the properties draw, NumPy's per-call overhead is most of the cost, so computing
the moments once halves the harness's work per case (``scripts/audit_timing.py --overhead``);
``tests/reference/test_expected.py`` holds both paths equal on drawn cases of every norm and dtype.
"""

from __future__ import annotations

import math

import numpy as np

from normcheck import error_model
from normcheck.case import Case, Outcome
from normcheck.reference import moments

__all__ = ["of"]


def of(case: Case) -> tuple[Outcome, np.ndarray]:
    """``(case.reference(), s)``: the float64 reference's outcome and the model's scale s."""
    shared = _batch_statistics(case)
    if shared is not None:
        return shared
    return case.reference(), _scale(case)


def _scale(case: Case) -> np.ndarray:
    kw = {k: v for k, v in case.args.items() if k != "reduce_axes"}
    for k in case.spec.array_params:  # the case's own arrays, as read-only views: the model only reads
        v = getattr(case, k, None)
        kw[k] = None if v is None else _read_only(v)
    ra = case.args.get("reduce_axes")
    return error_model.scale(
        case.norm, case.x, use_batch_stats=case.use_batch_stats, **kw, **({"reduce_axes": ra} if ra is not None else {})
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _batch_statistics(case: Case) -> tuple[Outcome, np.ndarray] | None:
    """Both from one moments pass, where the statistics are the batch's; None elsewhere."""
    spec, x = case.spec, case.x
    if spec.mix or not case.use_batch_stats or case.running_mean is not None or case.running_var is not None:
        return None
    p = case.plan()
    w, b = case.weight, case.bias
    if p.reduce_size < spec.min_reduce_size_training or any(
        a is not None and a.shape != p.affine_shape for a in (w, b)
    ):
        return None  # the reference raises its own error
    eps = spec.resolve_eps(case.args.get("eps"), x.dtype)
    v = x.astype(np.float64).reshape(p.view_shape)
    n = p.reduce_size
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN/Inf propagate by design
        mean, var = moments(v, p.reduce, center=spec.center)
        sigma = np.sqrt(var + eps)
        yhat = (v - mean) / sigma
        y = yhat.reshape(x.shape)
        w64 = None if w is None else w.astype(np.float64).reshape(p.affine_broadcast)
        b64 = None if b is None else b.astype(np.float64).reshape(p.affine_broadcast)
        if w64 is not None:
            y = y * w64
        if b64 is not None:
            y = y + b64
        ay = np.abs(yhat)
        if spec.center:
            kappa = np.maximum.reduce(np.abs(v), axis=p.reduce, keepdims=True) / sigma
        if error_model.exact_centering(spec, True, n):
            t = error_model.fused_share(x.dtype) * kappa
        elif spec.center:
            t = math.sqrt(n) * kappa * (1 + ay)
        else:
            t = math.sqrt(n) * ay
        aw = 1.0 if w64 is None else np.abs(w64)
        s = t.reshape(x.shape) * aw + ay.reshape(x.shape) * aw + (0.0 if b64 is None else np.abs(b64))
        s = np.maximum(s, error_model.FLOOR)
    return Outcome(y, None, None), s
