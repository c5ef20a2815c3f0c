"""Identities between two norms (the spec's ``[[identity]]`` tables): ``lhs(x) == view^-1(rhs(view(x)))``,
e.g. GroupNorm with G = C is InstanceNorm. Both sides may err by their own bound, so the relation is
allowed the sum of both sides' scales.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck import error_model
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, call, scale, verdict

__all__ = ["identity", "run_identity_sides"]


_VIEWS = {
    # name: (forward on x, inverse on y)
    "merge_batch_into_channels": (
        lambda x: x.reshape(1, x.shape[0] * x.shape[1], *x.shape[2:]),
        lambda y, shape: y.reshape(shape),
    ),
    "flatten_transpose": (
        lambda x: np.ascontiguousarray(x.reshape(x.shape[0], -1).T),
        lambda y, shape: y.T.reshape(shape),
    ),
}


def _resolve(v, shape):
    return (
        {
            "C": shape[1] if len(shape) > 1 else None,
            "rest": tuple(shape[1:]),
            "last": tuple(shape[-1:]),
            "none": None,
        }.get(v, v)
        if isinstance(v, str)
        else v
    )


def _affine_map(name: str, p, shape):
    if p is None:
        return None
    if name == "channel_to_rest":
        return np.ascontiguousarray(np.broadcast_to(p.reshape(-1, *([1] * (len(shape) - 2))), shape[1:]))
    if name == "tile_batch":
        return np.tile(p, shape[0])
    return p  # "same"


def run_identity_sides(ident, case: Case) -> tuple[Case, Case, Any]:
    """The rhs case of ``ident`` for an lhs ``case``, and the inverse view for its output."""
    shape = case.x.shape
    rhs = ident.rhs
    view = rhs.get("view")
    fwd, inv = _VIEWS[view] if view else (lambda x: x, lambda y, shape: y)
    args = {k: _resolve(v, shape) for k, v in rhs.get("args", {}).items()}
    aff = rhs.get("affine", "same")
    w = None if aff == "none" else _affine_map(aff, case.weight, shape)
    b = None if aff == "none" else _affine_map(aff, case.bias, shape)
    buffers = {k: args.pop(k) for k in ("running_mean", "running_var") if k in args}
    args["eps"] = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)  # eps=None differs per norm
    if aff == "none":
        case = case.with_(weight=None, bias=None)
    rc = Case(rhs["norm"], fwd(case.x).copy(), args, weight=w, bias=b, regime=case.regime, **buffers)
    return case, rc, inv


def identity(ident, lhs_impl, rhs_impl, case: Case) -> Result:
    """``lhs_impl(x) == view^-1(rhs_impl(view(x)))`` for the spec identity ``ident``."""
    lc, rc, inv = run_identity_sides(ident, case)
    try:
        rc.reference()
    except ValueError as e:
        return Result(f"identity:{ident.name}", "skip", message=f"not applicable: {e}")
    try:
        a = call(lhs_impl, lc).y
        b = inv(call(rhs_impl, rc).y, case.x.shape)
    except Stop as stop:
        stop.result.property = f"identity:{ident.name}"
        return stop.result
    s = scale(lc) + inv(scale(rc), case.x.shape)
    r = verdict(
        f"identity:{ident.name}", [(ident.statement, error_model.compare(b, a.astype(np.float64), s, case.dtype))]
    )
    return r
