r"""Forward mode: an implementation's directional derivative (JVP) against the float64 reference's.

``jvp`` differentiates the norm forward along tangents of every argument a VJP differentiates: the
input (:func:`~normcheck.properties.gradients.direction`, the second-order property's v) and, where
the case has them, the weight and bias (:func:`tangents`), all at once, so one forward-mode pass of
the framework (:func:`normcheck.autodiff.jvp`: ``torch.autograd.forward_ad`` dual numbers, the
machinery under ``torch.func.jvp``; ``jax.jvp``, under ``jax.jit`` for the jit forms) is judged:

    y' = w y^' + w' y^ + b',   y^' = (v - mean_S v - y^ mean_S(y^ v)) / sigma   (centered, batch statistics)
                               y^' = (v - y^ mean_S(y^ v)) / sigma              (RMS)
                               y^' = v / sigma                                  (running statistics)

for native implementations and user targets alike (a custom ``torch.autograd.Function`` through
its ``jvp``, a ``jax.custom_jvp`` through its rule).

**Reference** (:func:`reference_jvp`): the complex-step derivative (Squire & Trapp, 1998) of the
float64 reference itself, :func:`normcheck.reference.normalize` evaluated in complex128 at
``x + i h v``, ``weight + i h w'``, ``bias + i h b'``: its imaginary part is ``h y' + O(h^3)``, with no
subtraction to cancel, so it is exact to float64 rounding and generic over every spec (any axis set,
a mixture of statistics, eval mode), with no formula restated. ``h`` is 1e-20 of the smallest sigma
over ``max |v|`` (as :func:`~normcheck.properties.gradients.reference_hvp` takes it).

**Bound**: :func:`normcheck.error_model.jvp_scale` (the VJP's first-order scale with v in the
cotangent's place, by the symmetry of the normalization's Jacobian; docs/error-model.md), the one
lambda.
"""

from __future__ import annotations

import zlib

import numpy as np

from normcheck import dtypes, error_model
from normcheck.adapters.base import Unsupported
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, register, verdict
from normcheck.properties.gradients import direction

__all__ = ["FORWARD_MODE_PROPERTIES", "jvp", "jvp_scales", "reference_jvp", "tangents"]


def tangents(case: Case) -> dict[str, np.ndarray]:
    """The tangents of the ``jvp`` property, keyed like a VJP's gradients: ``"input"``
    (:func:`~normcheck.properties.gradients.direction`) and, where the case has them, ``"weight"`` and
    ``"bias"``: standard normal in the case dtype, seeded by the case's shape (a counterexample
    replays)."""
    out = {"input": direction(case)}
    seed = zlib.crc32(repr(("tangents", case.norm, case.x.shape)).encode())
    rng = np.random.default_rng(seed)
    for k in ("weight", "bias"):
        p = getattr(case, k)
        if p is not None:
            out[k] = rng.standard_normal(p.shape).astype(p.dtype)
    return out


def _arguments(case: Case) -> dict:
    """The case's keyword arguments to :func:`normcheck.reference.normalize` (as ``Case.reference``),
    without running buffers in training (the reference would update them) and eps resolved for the
    case's dtype (the complex input's would be float64's)."""
    kw = case.kwargs()
    for k in ("training", "use_input_stats", "running_mean", "running_var"):
        kw.pop(k, None)
    if not case.use_batch_stats:
        kw["running_mean"] = np.asarray(case.running_mean, np.float64)
        kw["running_var"] = np.asarray(case.running_var, np.float64)
    kw["eps"] = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    return kw


def reference_jvp(case: Case, t: dict[str, np.ndarray]) -> np.ndarray:
    """Float64 forward mode: the derivative of the reference's output at ``case`` along the tangents
    ``t`` (``{"input": v, "weight": w', "bias": b'}``, any subset), shaped like the input, by the
    complex step through :func:`normcheck.reference.normalize` (the module docstring)."""
    from normcheck import reference

    kw = _arguments(case)
    v = np.asarray(t.get("input", np.zeros(case.x.shape)), np.float64)
    vmax = float(np.max(np.abs(v))) if v.size else 0.0
    h = 1e-20 * _smallest_sigma(case) / max(vmax, 1e-300)
    for k in ("weight", "bias"):
        if k in t and kw.get(k) is not None:
            kw[k] = np.asarray(kw[k], np.float64) + 1j * h * np.asarray(t[k], np.float64)
    x = case.x.astype(np.float64) + 1j * h * v
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        z = reference.normalize(case.spec, x, use_batch_stats=case.use_batch_stats,
                                reduce_axes=case.args.get("reduce_axes"), dtype=np.complex128, **kw)  # fmt: skip
        return np.imag(z) / h


def _smallest_sigma(case: Case) -> float:
    """The smallest sigma = sqrt(var_S + eps) of the case's sets (1 where none is finite and > 0):
    the complex step's h is a tiny fraction of it."""
    from normcheck import spec as _spec
    from normcheck.reference import moments, running_view

    spec, p = case.spec, case.plan()
    eps = spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    xv = case.x.astype(np.float64).reshape(p.view_shape)
    sets = [p.reduce]
    if spec.mix:
        sets = list(_spec.component_axes(spec, p))
    var = []
    with np.errstate(invalid="ignore", over="ignore"):
        for axes in sets:
            var.append(np.ravel(moments(xv, axes, center=spec.center)[1]))
        if not case.use_batch_stats and case.running_var is not None:
            var.append(np.ravel(running_view(spec, p, case.running_var, np.float64)))
        s = np.sqrt(np.concatenate(var) + eps) if var else np.ones(1)
    s = s[np.isfinite(s) & (s > 0)]
    return float(s.min()) if s.size else 1.0


def jvp_scales(case: Case, t: dict[str, np.ndarray]) -> np.ndarray:
    """Per-element scale s' of the forward-mode derivative along ``t``
    (:func:`normcheck.error_model.jvp_scale`), with the dtype's smallest normal added (a derivative
    among subnormals is allowed its absolute rounding, as the gradients' scales are)."""
    kw = case.kwargs()
    for k in ("training", "use_input_stats"):
        kw.pop(k, None)
    s = error_model.jvp_scale(
        case.spec,
        case.x,
        t.get("input", np.zeros(case.x.shape)),
        weight_tangent=t.get("weight"),
        bias_tangent=t.get("bias"),
        use_batch_stats=case.use_batch_stats,
        reduce_axes=case.args.get("reduce_axes"),
        **kw,
    )
    return s + float(dtypes.finfo(case.dtype).tiny)


def _native_jvp(impl, case: Case, t: dict[str, np.ndarray]) -> np.ndarray:
    from normcheck import autodiff

    try:
        got = autodiff.jvp(impl, case, t)
    except Unsupported as e:
        raise Stop(Result("", "skip", message=f"unsupported: {e}")) from None
    except Exception as e:
        msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
        raise Stop(Result("", "error", message=f"forward-mode derivative raised {msg}", case=case)) from None
    if np.shape(got) != case.x.shape:
        lam = error_model.MODEL.lam
        raise Stop(Result("", "fail", np.inf, lam, f"dy has shape {np.shape(got)}, expected {case.x.shape}", case=case))
    return got


@register
def jvp(impl, case: Case) -> Result:
    """The framework's forward-mode derivative (JVP) of the output along tangents of the input,
    weight and bias equals the float64 reference's directional derivative."""
    from normcheck import autodiff

    missing = autodiff.forward_mode_missing(impl)
    if missing:
        raise Stop(Result("", "skip", message=f"unsupported: {missing}"))
    t = tangents(case)
    ref = reference_jvp(case, t)
    big = float(dtypes.finfo(case.dtype).max) / 4
    if not np.isfinite(ref).all() or (ref.size and float(np.max(np.abs(ref))) > big):
        raise Stop(Result("", "skip", message=f"the true derivative is not representable in {case.dtype}"))
    got = _native_jvp(impl, case, t)
    return verdict("jvp", [("dy", error_model.compare(got, ref, jvp_scales(case, t), case.dtype))])


FORWARD_MODE_PROPERTIES = {"jvp": jvp}
