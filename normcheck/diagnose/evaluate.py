"""Computing a variant in float64, and judging a target's outcome against it under the error model.

:func:`outcome` with no options is :func:`normcheck.reference.normalize`; each option changes one
thing (see :func:`compute`). :func:`matches` judges a target's outcome against a variant exactly
as the ``agreement`` property judges it against the reference: the model's scale ``s`` over the
variant's own computation, ``lambda`` the model's, the unit roundoff the case dtype's.
"""

from __future__ import annotations

import math

import numpy as np

from normcheck import dtypes as _dt
from normcheck import error_model
from normcheck import spec as _spec
from normcheck.case import Case, Outcome
from normcheck.diagnose.known import Grouping, Variant, on_axes
from normcheck.reference import moments, running_view

__all__ = ["REFERENCE", "compute", "explains", "judge", "matches", "outcome"]

F64 = np.float64

#: The reference as a variant (no options).
REFERENCE = Variant("reference", "the reference")


def outcome(case: Case, **options) -> Outcome:
    """The float64 output (and updated running buffers) of one variant of ``case``'s norm.

    With no options this is :func:`normcheck.reference.normalize`; the options are
    :func:`compute`'s. With another axis set (``grouping``) the running buffers are the
    reference's: only the normalization changes.
    """
    return compute(case, **options)[0]


def _quantizer(dtype):
    """Rounding to ``dtype`` and back to float64 (overflow to ±inf, underflow to 0 or a subnormal)."""
    dt = _dt.np_dtype(dtype)

    def q(a):
        with np.errstate(all="ignore"):
            return np.asarray(a, F64).astype(dt).astype(F64)

    return q


def _stats(v, reduce, center: bool, one_pass: bool, q=None):
    """Mean and biased variance over ``reduce``: float64 two-pass; the float32 one-pass pair; or,
    with ``q`` (statistics in a 16-bit dtype), every elementwise result rounded by ``q`` and the
    sums accumulated wide, then rounded (what ``((x - x.mean())**2).mean()`` does on a float16
    tensor in torch or NumPy: (x − mean)² overflows past the dtype's range, underflows below it)."""
    if q is not None:
        with np.errstate(all="ignore"):
            if one_pass or not center:
                msq = q(np.mean(q(v * v), axis=reduce, keepdims=True))
                if not center:
                    return np.zeros((1,) * v.ndim), msq
                mean = q(np.mean(v, axis=reduce, keepdims=True))
                return mean, np.maximum(q(msq - q(mean * mean)), 0.0)
            mean = q(np.mean(v, axis=reduce, keepdims=True))
            d = q(v - mean)
            return mean, q(np.mean(q(d * d), axis=reduce, keepdims=True))
    if not one_pass:
        return moments(v, reduce, center=center)
    v32 = v.astype(np.float32)
    msq = np.mean(v32 * v32, axis=reduce, keepdims=True, dtype=np.float32)
    if not center:
        return np.zeros((1,) * v.ndim), msq.astype(F64)
    mean = np.mean(v32, axis=reduce, keepdims=True, dtype=np.float32)
    return mean.astype(F64), np.maximum(msq - mean * mean, np.float32(0)).astype(F64)


def _size(shape, axes) -> int:
    return math.prod(shape[a] for a in axes)


def _affine_arrays(case: Case, p: _spec.Plan, mode: str):
    w = None if case.weight is None else case.weight.astype(F64)
    b = None if case.bias is None else case.bias.astype(F64)
    if mode == "group":  # weight[g] for every channel of group g
        ch, g = case.x.shape[1], int(case.args["num_groups"])
        idx = np.arange(ch) // (ch // g)
        w = None if w is None else w[idx]
        b = None if b is None else b[idx]
    shape = p.affine_broadcast
    return (None if w is None else w.reshape(shape)), (None if b is None else b.reshape(shape))


def compute(case: Case, *, grouping: Grouping | None = None, center=None, variance: str = "biased",
            eps_mode: str = "inside", affine: str = "channel", eval_stats: str = "running",
            stored: str = "unbiased", momentum: str = "batch", axes: tuple[int, ...] | None = None,
            gain: str = "weight", eps_value=None, precision: str = "float64", output: str = "same",
            train_stats: str = "batch", eval_update: bool = False, exact_singletons: bool = False,
            input_cast: str | None = None) -> tuple[Outcome, np.ndarray, np.ndarray]:  # fmt: skip
    """(outcome, the error model's scale for this computation, where the variant is undefined).

    Options: ``grouping`` (a function of the case giving ``(view_shape, reduce_axes)``) or
    ``axes`` (statistics over those input axes, γ and β along them); ``center``; ``variance``
    ("biased", "unbiased", "one_pass"); ``eps_mode`` ("inside", "outside", "ignored", "clamped");
    ``eps_value`` (a number: eps hard-wired; "input": ``finfo(input dtype).eps`` for eps=None);
    ``affine`` ("channel", "group", "before", "needs_bias": γ dropped without β); ``gain``
    ("weight", "one_plus": ``1 + γ``); ``precision`` ("float64", "stats16": the statistics in the
    case's 16-bit dtype, see :func:`_stats`; "moments16": computed wide and returned in the 16-bit
    dtype, as ``tf.nn.moments`` does, a variance past the dtype's range becoming inf); ``output`` ("same", "promoted": judged by
    :func:`judge` only); ``train_stats`` ("batch", "running": the buffers normalize in training
    and are kept; "averaged": updated first, then used to normalize, an EMA of the statistics;
    "averaged_before": the incoming buffers normalize, then they are updated); ``eval_stats`` ("running", "batch"); ``eval_update`` (the buffers updated in
    eval mode as in training, after normalizing with the incoming ones); ``stored`` ("unbiased",
    "biased") and ``momentum`` ("batch": momentum weights the batch, the spec's reading; "swapped": it weights the
    running buffer; "none": never updated, "one": replaced);
    ``input_cast`` (a dtype name: the input rounded to it first, as ``x.half()`` does).

    A variant is undefined where it divides 0 by 0 (eps ignored on a constant set), and a
    one-pass variance where var + eps is within its rounding error of 0, (n + 3)·u·mean(x²) in
    float32: cancellation may leave it negative (an implementation clamps it to 0, or takes the
    square root of a negative number, NaN), whichever order the sums run in. Any output is as
    good as another there.

    The scale is the model's ``s_i`` (:mod:`normcheck.error_model`) for the variant's own
    computation: its axis set, its input (``affine="before"``), and its effective standard
    deviation ``1 / inv`` (eps outside, ignored or clamped changes how much a rounding error in
    the mean is amplified). For the reference options it equals :func:`error_model.scale`.
    With ``exact_singletons`` (how :func:`explains` judges every variant but the reference) a set
    of one element has no κ term: its mean is the element, so the centering is exact in any
    arithmetic, and ``0 / eps`` must come out as 0 (else a variant with a singleton set and a tiny
    eps, κ = |x| / eps, would match any output there).
    """
    del output  # judged on the output's dtype, not its values
    if axes is not None:  # an axis-set variant: the reference over those axes
        case = on_axes(case, axes)
    if case.spec.mix:  # a mixture: the reference output; only the running-buffer variants differ
        return _mixture_outcome(case, stored, momentum)
    s = case.spec
    p = case.plan()
    x = case.x.astype(F64)
    if input_cast is not None:  # the input rounded to another dtype first (x.half()): past its range, inf
        x = _quantizer(input_cast)(x)
    eps = s.resolve_eps(case.args.get("eps"), case.x.dtype)
    if eps_value == "input":
        eps = float(_dt.finfo(case.dtype).eps)
    elif eps_value is not None:
        eps = float(eps_value)
    center = s.center if center is None else center
    q = _quantizer(case.dtype) if precision in ("stats16", "moments16") else None
    w, b = _affine_arrays(case, p, "group" if affine == "group" else "channel")
    if affine == "needs_bias" and b is None:
        w = None
    if gain == "one_plus" and w is not None:
        w = 1.0 + w
    if affine == "before":
        x = x * (1.0 if w is None else w) + (0.0 if b is None else b)
        w = b = None
    view, red = grouping(case) if grouping else (p.view_shape, p.reduce)
    v = x.reshape(view)
    training = case.use_batch_stats
    buffers = case.running_mean is not None
    frozen = training and buffers and train_stats == "running"
    averaged = training and buffers and train_stats in ("averaged", "averaged_before")  # updated, then used
    use_batch = (training and not frozen and not averaged) or (not training and eval_stats == "batch")
    rm = rv = None
    with np.errstate(all="ignore"):
        if buffers and not training and not eval_update:  # eval mode keeps the buffers as they were
            rm, rv = case.running_mean.astype(F64), case.running_var.astype(F64)
        elif buffers:
            if frozen:
                rm, rv = case.running_mean.astype(F64), case.running_var.astype(F64)
            elif grouping is None:
                m0, v0 = _stats(v, red, center, variance == "one_pass", q if precision == "stats16" else None)
                rm, rv = _updated(case, p, np.broadcast_to(m0, np.shape(v0)), v0, stored, momentum)
            else:  # another axis set normalizes; the buffers are judged as the reference's
                m0, v0 = moments(case.x.astype(F64).reshape(p.view_shape), p.reduce, center=s.center)
                rm, rv = _updated(case, p, m0, v0, stored, momentum)
        lost = None  # where a one-pass variance may come out negative
        if use_batch:
            n = _size(view, red)
            mean, var_b = _stats(v, red, center, variance == "one_pass", q if precision == "stats16" else None)
            if variance == "one_pass":  # its statistics are float32's
                exact = moments(v, red, center=center)[1]
                msq = np.mean(np.square(v), axis=red, keepdims=True)
                u32 = _dt.unit_roundoff("float32")
                lost = exact + (eps if eps_mode == "inside" else 0.0) <= (n + 3) * u32 * msq
            if precision == "moments16":  # computed wide, returned in the 16-bit dtype (tf.nn.moments)
                mean, var_b = q(mean), q(var_b)
            mean = np.broadcast_to(mean, np.shape(var_b))  # uncentered: a scalar 0 per set
            var = var_b * (n / (n - 1)) if variance == "unbiased" and n > 1 else var_b
            if q is not None:
                var = q(var)
        else:
            n = 1
            used = (rm, rv) if averaged and train_stats == "averaged" else (case.running_mean, case.running_var)
            mean = running_view(s, p, used[0], F64)
            var = running_view(s, p, used[1], F64)
        if eps_mode == "inside":
            e16 = q(eps) if precision == "moments16" and use_batch else eps  # tf.nn.batch_normalization's eps
            inv = 1 / np.sqrt(var + eps if q is None or not use_batch else q(var + e16))
        elif eps_mode == "outside":
            inv = 1 / (np.sqrt(var) + eps)
        elif eps_mode == "ignored":
            inv = 1 / np.sqrt(var)
        elif eps_mode == "clamped":
            inv = 1 / np.sqrt(np.maximum(var, eps))
        else:
            raise ValueError(f"unknown eps_mode {eps_mode!r}")
        yhat = (v - mean) * inv
        undefined = np.broadcast_to(~np.isfinite(inv), v.shape).reshape(x.shape) & np.isfinite(x)
        if lost is not None and lost.any():
            undefined = undefined | (np.broadcast_to(lost, v.shape).reshape(x.shape) & np.isfinite(x))
        if use_batch and variance == "unbiased" and n == 1:  # var·n/(n − 1) is 0/0: torch.var gives NaN
            undefined = np.isfinite(x)
        y = yhat.reshape(x.shape)
        # the model's scale, over the variant's own sets
        if use_batch:
            amax = np.max(np.abs(v), axis=red, keepdims=True) if red else np.abs(v)
            kappa = np.broadcast_to(amax * inv, v.shape)
            if exact_singletons and n == 1:
                kappa = np.zeros(v.shape)
        else:
            kappa = (np.abs(v) + np.abs(mean)) * inv
        ay = np.abs(yhat)
        if center or not use_batch:
            s0 = np.sqrt(n) * kappa * (1 + ay) + ay
        else:
            s0 = np.sqrt(n) * ay + ay
        if variance == "one_pass":
            s0 = s0 + np.sqrt(n) * kappa**2 * (1 + ay)  # a one-pass variance errs like u·κ²
        s0 = s0.reshape(x.shape)
        sc = (1.0 if w is None else np.abs(w)) * s0 + (0.0 if b is None else np.abs(b))
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
        if precision == "moments16" and use_batch:  # tf.nn.batch_normalization: x·inv + (β − mean·inv) in 16 bits
            inv16 = q(np.broadcast_to(q(inv), v.shape).reshape(x.shape) * (1.0 if w is None else w))
            m16 = np.broadcast_to(mean, v.shape).reshape(x.shape)
            y = q(q(x * inv16) + q((0.0 if b is None else b) - q(m16 * inv16)))
    sc = np.maximum(np.nan_to_num(sc, nan=np.inf), np.finfo(F64).tiny)
    return Outcome(y, rm, rv), sc, undefined


def _mixture_outcome(case: Case, stored: str, momentum: str):
    ref = case.reference()
    sc = error_model.scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **case.kwargs())
    rm, rv = ref.running_mean, ref.running_var
    if case.running_mean is not None and case.use_batch_stats:
        p = case.plan()  # the running component's set (the spec's S)
        m0, v0 = moments(case.x.astype(F64).reshape(p.view_shape), p.reduce, center=True)
        rm, rv = _updated(case, p, m0, v0, stored, momentum)
    return Outcome(ref.y, rm, rv), sc, np.zeros(case.x.shape, bool)


def _updated(case: Case, p: _spec.Plan, mean, var_b, stored: str, momentum: str):
    rs = case.spec.running_stats
    avg = tuple(a for sym in rs.get("average_over", []) for a in p.symbols[sym])
    n = p.reduce_size
    var_s = var_b * (n / (n - 1)) if stored == "unbiased" and n > 1 else var_b
    m = case.update_factor()
    out = []
    for buf, stat in ((case.running_mean, mean), (case.running_var, var_s)):
        stat = np.mean(stat, axis=avg) if avg else stat
        stat = np.reshape(stat, buf.shape)
        old = buf.astype(F64)
        if momentum == "batch":
            new = (1 - m) * old + m * stat
        elif momentum == "swapped":
            new = m * old + (1 - m) * stat
        elif momentum == "none":
            new = old
        elif momentum == "one":
            new = np.asarray(stat, F64)
        elif momentum == "default":  # momentum=None read as the default momentum
            d = float(rs["momentum_default"])
            new = (1 - d) * old + d * stat
        else:
            raise ValueError(f"unknown momentum {momentum!r}")
        out.append(new)
    return out[0], out[1]


# --- judging -----------------------------------------------------------------------------------------


def _dtype_ok(case: Case, got: Outcome, output: str) -> bool:
    """The output dtype a variant predicts. Judged for 16-bit inputs only: a float32 → float64
    promotion is left to the ``contracts``/``agreement`` verdict (the diagnosis names 16-bit → float32)."""
    if not _dt.is_16bit(case.dtype):
        return True
    got_dt = np.asarray(got.y).dtype
    if output == "promoted":
        return got_dt.kind == "f" and got_dt.itemsize > case.x.dtype.itemsize
    return got_dt == case.x.dtype


def judge(case: Case, got: Outcome, exp: Outcome, s, undefined, *, momentum: float, output: str = "same",
          part: str = "all") -> bool:  # fmt: skip
    """Does ``got`` equal the variant's ``exp`` (its scale ``s``, undefined where ``undefined``) under
    the error model: the output's shape and (16-bit inputs) dtype, its values, and any buffers?
    ``part``: "all", "output" (the output alone) or "buffers" (the updated running buffers alone)."""
    if part != "buffers":
        if np.shape(got.y) != case.x.shape or not _dtype_ok(case, got, output):
            return False
        y = exp.y
        if undefined.any():
            y = np.where(undefined, np.asarray(got.y).astype(F64), y)
        if not error_model.compare(got.y, y, s, case.dtype).ok:
            return False
    if part != "output" and exp.running_mean is not None and got.running_mean is not None:
        sm, sv = error_model.running_scale(
            case.norm,
            case.x,
            exp.running_mean,
            exp.running_var,
            momentum=momentum,
            num_groups=case.args.get("num_groups"),
            buffer_dtype=case.running_mean.dtype,
        )
        bdt = case.running_mean.dtype.name
        for name, sc in (("running_mean", sm), ("running_var", sv)):
            if not error_model.compare(getattr(got, name), getattr(exp, name), sc, bdt).ok:
                return False
    return True


def _effective_momentum(case: Case, options) -> float:
    m = case.update_factor()
    default = float((case.spec.running_stats or {}).get("momentum_default", 0.1))
    return {"swapped": 1 - m, "none": 0.0, "one": 1.0, "default": default}.get(options.get("momentum"), m)


def matches(case: Case, got: Outcome, v: Variant, part: str = "all") -> bool:
    """Does the target's outcome ``got`` on ``case`` match variant ``v`` under the error model?

    A composition computes the options of its members that apply to the case (the others compute
    the reference there), and matches only where at least one member applies.
    """
    return explains(case, got, v, part) != "no"


def explains(case: Case, got: Outcome, v: Variant, part: str = "all") -> str:
    """Says "yes", "no", or "vacuous": a match on a case where the variant is undefined everywhere (0/0
    on every set, where any output is as good as another), which supports no variant by itself."""
    try:
        if v is REFERENCE:
            opts = {}
        else:
            if not v.active(case):
                return "no"
            opts = v.merged(case)
        exp, s, undefined = compute(case, **opts, exact_singletons=v is not REFERENCE)
        ok = judge(
            case,
            got,
            exp,
            s,
            undefined,
            momentum=_effective_momentum(case, opts),
            output=opts.get("output", "same"),
            part=part,
        )
    except (ValueError, ZeroDivisionError, IndexError, KeyError, TypeError, AttributeError, _spec.SpecError):
        return "no"
    if not ok:
        return "no"
    return "vacuous" if part != "buffers" and undefined.size and undefined.all() else "yes"
