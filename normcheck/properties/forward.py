"""Forward properties: one call (or a few related calls) of an implementation against the float64
reference or against itself. Each is ``(impl, case) -> Result`` (:mod:`normcheck.properties.core`).

=========================  ==================================================================
property                   statement
=========================  ==================================================================
agreement                  output and updated running buffers equal the float64 reference
statistics                 before affine, over each set S: mean 0 (centered), mean square
                           var_S / (var_S + eps)
shift_invariance           f(x + c) == f(x) for a constant c (centered norms, batch statistics)
scale_equivariance         f(a x; eps a^2) == f(x; eps) for a power of two a (exact scaling)
batch_independence         a sample's output does not depend on the others (not BN training)
permutation_equivariance   f(x[p]) == f(x)[p] for a permutation p of the batch
contracts                  shape and dtype kept, input not modified, repeated calls bit-identical
special_values             NaN / ±Inf in one set turn exactly the reference's sets non-finite
constant_input             a constant input gives a finite output equal to bias (or 0)
=========================  ==================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck import dtypes, error_model
from normcheck.adapters.base import Unsupported
from normcheck.case import Case
from normcheck.properties.core import Result, call, expectation, pair, reference, register, scale, verdict
from normcheck.reference import moments

__all__ = [
    "agreement",
    "batch_independence",
    "constant_input",
    "contracts",
    "permutation_equivariance",
    "scale_equivariance",
    "shift_invariance",
    "special_values",
    "statistics",
]


# --- properties ------------------------------------------------------------------------------


@register
def agreement(impl, case: Case) -> Result:
    """The output (and any updated running buffers) agree with the float64 reference."""
    got = call(impl, case)
    ref = reference(case)
    comps = [("output", expectation(case).compare(got.y))]
    if case.running_mean is not None and case.use_batch_stats:
        sm, sv = error_model.running_scales_of(case, ref.running_mean, ref.running_var)
        bdt = case.running_mean.dtype.name
        for name, s in (("running_mean", sm), ("running_var", sv)):
            comps.append((name, error_model.compare(getattr(got, name), getattr(ref, name), s, bdt)))
    return verdict("agreement", comps)


@register
def statistics(impl, case: Case) -> Result:
    """Before affine, over every set S: mean 0 (centered norms), mean square var/(var + eps)."""
    if not case.use_batch_stats:
        return Result("", "skip", message="eval mode normalizes with running statistics")
    if case.spec.mix:
        return Result("", "skip", message="a mixture of statistics fixes no set's output moments")
    c = case.with_(weight=None, bias=None)
    got = call(impl, c).y.astype(np.float64)
    p = c.plan()
    s = scale(c).reshape(p.view_shape)
    y = got.reshape(p.view_shape)
    x = c.x.astype(np.float64).reshape(p.view_shape)
    _, var = moments(x, p.reduce, center=c.spec.center)
    eps = c.spec.resolve_eps(c.args.get("eps"), c.x.dtype)
    u = dtypes.unit_roundoff(c.dtype)
    mean_s = np.mean(s, axis=p.reduce, keepdims=True)
    comps = []
    if c.spec.center:
        comps.append(
            ("mean_S(y)", error_model.compare(np.mean(y, axis=p.reduce, keepdims=True), 0 * var, mean_s, c.dtype))
        )
    # |y^2 - y_true^2| = |dy| |2 y - dy| <= e (2 |y| + e) with e = lambda u s the output's own bound: the
    # mean square may err by mean(s (2 |y| + lambda u s)). The second-order term matters where the
    # output's bound is O(1) (an ill-conditioned 16-bit set), e.g. y = 0 returned for y_true = +-0.5.
    lam = error_model.MODEL.lam
    ms_s = np.mean(s * (2 * np.abs(y) + lam * u * s), axis=p.reduce, keepdims=True) + mean_s * u
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = var / (var + eps)
    comps.append(
        ("mean_S(y^2)", error_model.compare(np.mean(y * y, axis=p.reduce, keepdims=True), expected, ms_s, c.dtype))
    )
    return verdict("statistics", comps)


def _pow2_scale(case: Case) -> float:
    """A power of two that keeps the scaled input finite and normal in the case dtype."""
    fi = dtypes.finfo(case.dtype)
    amax = float(np.max(np.abs(case.x.astype(np.float64)))) if case.x.size else 0.0
    return 4.0 if amax * 4 < float(fi.max) / 8 else 0.25


@register
def shift_invariance(impl, case: Case) -> Result:
    """f(x + c) == f(x) for a constant c: centered norms, batch statistics only."""
    if not case.spec.center or not case.use_batch_stats:
        return Result("", "skip", message="only centered norms with batch statistics are shift invariant")
    x64 = case.x.astype(np.float64)
    spread = float(np.max(np.abs(x64))) if x64.size else 1.0
    c = 2.0 ** np.ceil(np.log2(max(spread, 1e-30))) * 2  # a power of two above max|x|
    if c * 4 > float(dtypes.finfo(case.dtype).max) / 8:
        return Result("", "skip", message="no room to shift in this dtype")
    # x + c has |mean| >= 2 std: an offset input, which is how the registry's regions see it
    shifted = case.with_(x=(x64 + c).astype(case.x.dtype), regime="offset")
    a, b = call(impl, case).y, call(impl, shifted).y
    r = verdict(
        "shift_invariance",
        [("f(x+c) vs f(x)", error_model.compare(b, a.astype(np.float64), scale(case) + scale(shifted), case.dtype))],
    )
    if not r.ok:
        r.case = shifted
    return r


@register
def scale_equivariance(impl, case: Case) -> Result:
    """f(a x; eps a^2) == f(x; eps) for a = 4 or 1/4: exact scaling, so only rounding differs."""
    a = _pow2_scale(case)
    eps = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    fi = dtypes.finfo(case.dtype)
    if eps * a * a < float(fi.tiny) or eps * a * a > float(fi.max):
        return Result("", "skip", message="eps a^2 is not representable")
    kw: dict[str, Any] = {
        "x": (case.x.astype(np.float64) * a).astype(case.x.dtype),
        "args": {**case.args, "eps": eps * a * a},
    }
    if case.running_mean is not None:
        kw.update(running_mean=(case.running_mean * a).astype(case.running_mean.dtype))
        kw.update(running_var=(case.running_var * a * a).astype(case.running_var.dtype))
    scaled = case.with_(**kw)
    y1, y2 = call(impl, case).y, call(impl, scaled).y
    return verdict("scale_equivariance", [("f(ax) vs f(x)", pair(y2, y1, scale(case), case.dtype))])


def _batch_axis_free(case: Case) -> bool:
    p = case.plan()
    return case.x.ndim >= 2 and 0 not in p.reduce and p.view_shape[0] == case.x.shape[0]


@register
def batch_independence(impl, case: Case) -> Result:
    """A sample's output is the same computed alone: f(x)[i] == f(x[i:i+1])[0]."""
    if not _batch_axis_free(case):
        return Result("", "skip", message="the statistics run over the batch axis (e.g. BN in training)")
    if case.x.shape[0] < 2:
        return Result("", "skip", message="batch of one")
    full = call(impl, case).y
    s = scale(case)
    comps = []
    for i in sorted({0, case.x.shape[0] - 1}):
        one = case.with_(x=case.x[i : i + 1].copy())
        comps.append((f"sample {i}", pair(call(impl, one).y[0], full[i], s[i], case.dtype)))
    return verdict("batch_independence", comps)


@register
def permutation_equivariance(impl, case: Case) -> Result:
    """f(x[p]) == f(x)[p] for a permutation p of the batch (running buffers too)."""
    if case.x.ndim < 2 or case.x.shape[0] < 2:
        return Result("", "skip", message="batch of one")
    perm = np.roll(np.arange(case.x.shape[0]), 1)
    permuted = {"x": case.x[perm].copy()}
    if case.plan().affine_broadcast[0] > 1:  # the affine parameters span the batch axis too
        permuted.update({k: getattr(case, k)[perm].copy() for k in ("weight", "bias") if getattr(case, k) is not None})
    a, b = call(impl, case), call(impl, case.with_(**permuted))
    comps = [("f(x[p]) vs f(x)[p]", pair(b.y, a.y[perm], scale(case)[perm], case.dtype))]
    if a.running_mean is not None and case.use_batch_stats:
        ref = reference(case)
        sm, sv = error_model.running_scales_of(case, ref.running_mean, ref.running_var)
        bdt = case.running_mean.dtype.name
        comps.append(("running_mean", pair(b.running_mean, a.running_mean, sm, bdt)))
        comps.append(("running_var", pair(b.running_var, a.running_var, sv, bdt)))
    return verdict("permutation_equivariance", comps)


@register
def contracts(impl, case: Case) -> Result:
    """Output shape and dtype equal the input's, the input is not modified, and two calls on
    equal inputs give bit-identical outputs (CPU determinism)."""
    x = case.x.copy()
    kw = case.kwargs()
    before = {k: v.copy() for k, v in kw.items() if isinstance(v, np.ndarray)}
    try:
        y1 = np.asarray(impl(x, **kw, **case.configuration(impl)))
    except Unsupported as e:
        return Result("", "skip", message=f"unsupported: {e}")
    except Exception as e:
        return Result("", "error", message=f"raised {type(e).__name__}: {e}".splitlines()[0][:300])
    if not np.array_equal(x, case.x, equal_nan=True) or x.dtype != case.x.dtype:
        return Result("", "fail", np.inf, 0, "the input array was modified in place")
    for k in ("weight", "bias"):
        if k in before and not np.array_equal(kw[k], before[k], equal_nan=True):
            return Result("", "fail", np.inf, 0, f"{k} was modified in place")
    if y1.shape != x.shape or y1.dtype != x.dtype:
        return Result("", "fail", np.inf, 0, f"output {y1.dtype}{list(y1.shape)} != input {x.dtype}{list(x.shape)}")
    y2 = call(impl, case).y
    if not np.array_equal(y1, y2, equal_nan=True):
        diff = np.argwhere(~((y1 == y2) | (np.isnan(y1.astype(np.float64)) & np.isnan(y2.astype(np.float64)))))
        idx = tuple(int(i) for i in diff[0])
        return Result(
            "", "fail", np.inf, 0, f"two calls differ at index {idx}: {float(y1[idx])!r} vs {float(y2[idx])!r}"
        )
    return Result("", "pass", 0.0, 0.0, "shape, dtype, no mutation, deterministic")


def _special(impl, case: Case, value: float) -> Result:
    x = case.x.copy()
    idx = tuple(int(i) // 2 for i in x.shape)  # an element inside, not on the border
    x[idx] = value
    bad = case.with_(x=x)
    got = call(impl, bad).y
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ref = bad.reference().y
    s = scale(case)  # the unaffected sets keep the clean input's scale
    r = verdict("", [(f"x{list(idx)}={value}", error_model.compare(got, ref, s, case.dtype))])
    return r


@register
def special_values(impl, case: Case) -> Result:
    """NaN, +Inf and -Inf at one element make exactly the reference's sets NaN, others unchanged."""
    if not np.isfinite(case.x.astype(np.float64)).all():
        return Result("", "skip", message="input already has non-finite values")
    results = [_special(impl, case, v) for v in (np.nan, np.inf, -np.inf)]
    worst = next((r for r in results if not r.ok), max(results, key=lambda r: r.observed))
    return worst


@register
def constant_input(impl, case: Case) -> Result:
    """A constant input normalizes to 0: the output is finite and equals bias (or 0)."""
    if not case.use_batch_stats:
        return Result("", "skip", message="eval mode normalizes with running statistics")
    eps = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    if eps <= 0:
        return Result("", "skip", message="eps = 0: 0/0 is undefined")
    c = case.with_(x=np.full_like(case.x, case.x.flat[0] if case.x.size else 0), regime="constant")
    if not case.spec.center:
        return Result("", "skip", message="uncentered norm: a constant is not normalized to 0")
    got = call(impl, c).y
    return verdict("constant_input", [("f(const)", error_model.compare(got, c.reference().y, scale(c), case.dtype))])
