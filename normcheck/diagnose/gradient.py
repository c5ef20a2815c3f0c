"""Gradient-only diagnosis: an implementation whose forward output is the reference's but whose
input gradient treats statistics as constants (``torch.no_grad()`` around the mean and variance, a
``.detach()`` on the rsqrt, ``jax.lax.stop_gradient``, ``tf.stop_gradient``). Its gradient is
judged against :func:`normcheck.properties.gradients.detached_input_gradients` under the gradient
error model, exactly as ``gradient_agreement`` judges it against the reference."""

from __future__ import annotations

import numpy as np

from normcheck import autodiff, error_model
from normcheck.case import Case, fixed_cases
from normcheck.diagnose.regimes import number
from normcheck.diagnose.search import Diagnosis
from normcheck.properties import gradients

__all__ = ["DETACHED", "SHRINK", "UNDERFLOW_FINDING", "diagnose_gradient", "gradient_family", "underflow"]

#: What each detached variant reads as, after "matches <norm> with".
DETACHED = {
    "detached_mean_and_variance": "its mean and variance detached from the gradient (treated as constants in backward)",
    "detached_mean": "its mean detached from the gradient (treated as a constant in backward)",
    "detached_variance": "its variance (or its rsqrt) detached from the gradient (treated as a constant in backward)",
    "detached_rsqrt": "its rsqrt detached from the gradient (treated as a constant in backward)",
}
NOTE = "; the forward output is exact"


#: The registered finding whose cause :func:`underflow` names.
UNDERFLOW_FINDING = "rsqrt-gradient-underflow"
#: A failing case is scaled down by this factor to see whether its magnitude is the cause.
SHRINK = 1e-6


def _gradient_ok(impl, norm: str, c: Case) -> bool | None:
    """Is the input gradient of ``impl`` on ``c`` right under the gradient error model (None: it could not be told)?"""
    dy = gradients.cotangent(c)
    try:
        got = np.asarray(autodiff.vjp(impl, c, dy)["input"])
        s = gradients.grad_scales(c, dy)["input"]
        return bool(error_model.compare(got, gradients.reference_grads(norm, c, dy)["input"], s, c.dtype).ok)
    except Exception:
        return None


def _statistic(c: Case) -> float:
    """The largest var + eps (the mean square for an uncentered norm) over the case's sets, in float64."""
    from normcheck.reference import moments

    p = c.plan()
    _, var = moments(c.x.astype(np.float64).reshape(p.view_shape), p.reduce, center=c.spec.center)
    eps = c.spec.resolve_eps(c.args.get("eps"), c.x.dtype)
    return float(np.max(var)) + eps if np.size(var) else 0.0


def underflow(impl, norm: str, cases: list[Case], *, dtype: str) -> Diagnosis | None:
    """The gradient lost to underflow: on every failing case some set's (var + eps)^(−3/2) — the
    derivative of rsqrt, or rsqrt³ — falls below ``dtype``'s smallest normal, and the same case scaled
    by :data:`SHRINK` (where it does not) has the right gradient. None when that is not so."""
    from normcheck import dtypes as _dt

    tiny = float(_dt.finfo(dtype).tiny)
    failing = [c for c in cases if _gradient_ok(impl, norm, c) is False]
    if not failing:
        return None
    for c in failing:
        if _statistic(c) ** -1.5 >= tiny:
            return None
        small = c.with_(x=(c.x.astype(np.float64) * SHRINK).astype(c.x.dtype))
        if _statistic(small) ** -1.5 < tiny or not _gradient_ok(impl, norm, small):
            return None
    n = len(failing)
    smallest = min(float(np.max(np.abs(c.x.astype(np.float64)))) for c in failing)
    what = "var + eps" if _spec_center(norm) else "mean(x²) + eps"
    text = (
        f"the input gradient is lost to underflow on {n}/{n} failing cases (max|x| ≥ {number(smallest)}): "
        f"({what})^(−3/2), the derivative of rsqrt, falls below {dtype}'s smallest normal ({number(tiny)}); "
        f"the same cases scaled by {number(SHRINK)} pass — the same cause as the registered finding "
        f"{UNDERFLOW_FINDING}{NOTE}"
    )
    desc = {"gradient_underflow": f"{norm} with its input gradient lost to underflow"}
    return Diagnosis(norm, n, {"gradient_underflow": n}, desc, ["gradient_underflow"], text=text, cases=failing,
                     dtype=dtype)  # fmt: skip


def _spec_center(norm: str) -> bool:
    from normcheck import spec as _spec

    return _spec.get(norm).center


def diagnose_gradient(impl, norm: str, cases: list[Case], *, dtype: str) -> Diagnosis | None:
    """Which statistics the implementation's input gradient treats as constants, judged on the
    given failing cases and the norm's fixed cases of ``dtype`` where the gradient deviates; None
    when no detached variant explains every such case. A gradient lost to underflow at the dtype's
    extremes (:func:`underflow`) is named first: there a detached variance would also fit."""
    lost = underflow(impl, norm, cases, dtype=dtype)
    if lost is not None:
        return lost
    counts: dict[str, int] = {}
    examined: list[Case] = []
    for c in [*cases, *fixed_cases(norm, dtype)]:
        dy = gradients.cotangent(c)
        variants = gradients.detached_input_gradients(c, dy)
        if not variants:
            continue
        try:
            got = np.asarray(autodiff.vjp(impl, c, dy)["input"])
        except Exception:
            continue
        s = gradients.grad_scales(c, dy)["input"]
        if error_model.compare(got, gradients.reference_grads(norm, c, dy)["input"], s, c.dtype).ok:
            continue  # the gradient is right on this case: it tells the variants nothing
        examined.append(c)
        for name, v in variants.items():
            counts[name] = counts.get(name, 0) + bool(error_model.compare(got, v, s, c.dtype).ok)
    matches = [n for n, k in counts.items() if examined and k == len(examined)]
    if not matches:
        return None
    n = len(examined)
    text = f"matches {norm} with {DETACHED[matches[0]]} on {n}/{n} failing cases{NOTE}"
    return Diagnosis(
        norm, n, counts, {k: f"{norm} with {v}" for k, v in DETACHED.items()}, matches, text=text, cases=examined,
        dtype=dtype,
    )  # fmt: skip


def gradient_family(impl, target, norm: str, cases: list[Case], *, dtype: str) -> Diagnosis | None:
    """The gradient family of a target whose output deviates too: :func:`diagnose_gradient` on the
    failing gradient cases where the output is the reference's (elsewhere a wrong gradient follows
    from the wrong output and names nothing new)."""
    from normcheck.diagnose.evaluate import REFERENCE, matches

    right = []
    for c in cases:
        try:
            if matches(c, c.call(target), REFERENCE, "output"):
                right.append(c)
        except Exception:
            continue
    return diagnose_gradient(impl, norm, right, dtype=dtype) if right else None
