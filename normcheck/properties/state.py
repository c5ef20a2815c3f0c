r"""State: running statistics over consecutive training steps, and what train and eval mode use.

Most porting bugs with norms live here rather than in the forward formula. Three properties
``(impl, case) -> Result`` for every norm whose spec has running statistics (BatchNorm, and
InstanceNorm where a framework tracks them), on any implementation that updates the canonical
(torch-convention) buffers passed to it:

=========================  ==================================================================
running_stats_steps        over STEPS consecutive training steps on different batches of the
                           case's shape (the case's input, then permutations of its values), the
                           implementation's own buffers carried from step to step: after each
                           step the output and both buffers equal the float64 reference chain
                           ``running = (1 - m) running + m batch`` (unbiased stored variance)
eval_uses_running          with buffers far from the batch's statistics, eval mode normalizes
                           with the buffers and leaves them untouched; training mode normalizes
                           with the batch's statistics
train_eval_convergence     on one fixed batch: after k training steps with momentum m the eval
                           output equals the one the closed form predicts,
                           ``running_k = stat + (1 - m)^k (running_0 - stat)``, for k = 1..STEPS,
                           so eval approaches train at the rate (1 - m)^k; and with m = 1 one step
                           makes eval equal train up to Bessel's factor (eval divides by
                           sqrt(var n/(n-1) + eps) instead of sqrt(var + eps))
=========================  ==================================================================

A case without buffers gets the frameworks' initial ones (mean 0, variance 1) and momentum 0.1;
every property runs in training mode whatever the case's flag says. Reduction sets of one element
cannot train (the unbiased variance is undefined): such cases are skipped here and measured in the
conventions table instead (:mod:`normcheck.conventions`, "one value per channel").

Error model: each step's buffers may err by :func:`normcheck.error_model.running_scale`; an error
carried from the previous step decays by (1 - m), so after k steps the allowed scale is
``S_k = (1 - m) S_{k-1} + running_scale_k``. An eval output computed from buffers that err by
(S_mean, S_var) is allowed, on top of its own scale, ``|w| (S_mean / sigma + |y^| S_var / (2 sigma^2))``
(the first-order sensitivity of ``(x - mean) / sqrt(var + eps)``). lambda is the model's, 16.

What each property catches (tests/state_doubles.py): a stored biased variance (steps, convergence),
momentum read the Keras way, ``new = m old + (1 - m) batch`` (steps, convergence at m = 1; no test
can tell the two apart at m = 0.5), batch statistics in eval (eval_uses_running, convergence),
buffers never updated (steps, convergence).
"""

from __future__ import annotations

import zlib

import numpy as np

from normcheck import dtypes, error_model
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, call, register, verdict
from normcheck.reference import moments, running_view

__all__ = ["STATE_PROPERTIES", "STEPS", "eval_uses_running", "running_stats_steps", "train_eval_convergence"]

STEPS = 4
DEFAULT_MOMENTUM = 0.1


# --- building the cases ----------------------------------------------------------------------


def _applicable(impl, case: Case, *, updates: bool = True) -> None:
    spec = case.spec
    if not spec.has_running_stats or spec.batch_stats_flag is None:
        raise Stop(Result("", "skip", message=f"{case.norm} keeps no running statistics"))
    if case.args.get("reduce_axes") is not None:
        raise Stop(Result("", "skip", message="an axis-set variant is checked without running statistics"))
    if updates and not getattr(impl, "running_stats", True):
        raise Stop(
            Result(
                "", "skip", message=f"{getattr(impl, 'api', '') or 'the implementation'} keeps no running statistics"
            )
        )
    if case.plan().reduce_size < max(2, spec.min_reduce_size_training):
        raise Stop(
            Result("", "skip", message="one value per statistic: training is undefined (see `normcheck conventions`)")
        )


def _buffer_dtype(case: Case) -> np.dtype:
    return np.dtype(np.float32) if dtypes.is_16bit(case.dtype) else dtypes.np_dtype(case.dtype)


def _initial(case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    """The case's buffers and momentum, or the frameworks' initial buffers and default momentum."""
    m = case.args.get("momentum")
    m = DEFAULT_MOMENTUM if m is None else float(m)
    if case.running_mean is not None and case.running_var is not None:
        return case.running_mean.copy(), case.running_var.copy(), m
    c = case.x.shape[1]
    bdt = _buffer_dtype(case)
    return np.zeros(c, bdt), np.ones(c, bdt), m


def _mode(case: Case, training: bool, rm, rv, momentum, x=None) -> Case:
    args = {**case.args, case.spec.batch_stats_flag: training, "momentum": momentum}
    return case.with_(x=case.x if x is None else x, args=args, running_mean=rm, running_var=rv)


def _batches(case: Case, k: int) -> list[np.ndarray]:
    """``k`` inputs of the case's shape: the case's own, then permutations of its values (same
    dtype and regime, different statistics per channel); every other one scaled by 2 (exact)."""
    rng = np.random.default_rng(zlib.crc32(repr((case.norm, case.x.shape)).encode()))
    out = [case.x]
    big = float(dtypes.finfo(case.dtype).max) / 16
    for i in range(1, k):
        x = rng.permutation(case.x.ravel()).reshape(case.x.shape)
        if i % 2 and float(np.max(np.abs(x.astype(np.float64)), initial=0.0)) < big:
            x = (x.astype(np.float64) * 2).astype(case.x.dtype)
        out.append(x)
    return out


def _running_scales(case: Case, ref_mean, ref_var, momentum: float):
    """:func:`normcheck.error_model.running_scale` for one step of ``case`` (its second-order
    term covers a constant set, where a correct kernel stores ~1e-15 instead of 0)."""
    return error_model.running_scales_of(case, ref_mean, ref_var, momentum=momentum, buffer_dtype=_buffer_dtype(case))


def _output_scale(case: Case) -> np.ndarray:
    kw = case.kwargs()
    return error_model.scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **kw)


def _eval_scale(case: Case, s_mean, s_var) -> np.ndarray:
    """Eval-mode scale plus the first-order effect of buffer errors (s_mean, s_var)."""
    spec, p = case.spec, case.plan()
    eps = spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    rm = running_view(spec, p, case.running_mean, np.float64)
    rv = running_view(spec, p, case.running_var, np.float64)
    sigma = np.sqrt(rv + eps)
    yhat = np.abs(case.x.astype(np.float64).reshape(p.view_shape) - rm) / sigma
    sm = running_view(spec, p, s_mean, np.float64)
    sv = running_view(spec, p, s_var, np.float64)
    w = 1.0 if case.weight is None else np.abs(case.weight.astype(np.float64)).reshape(p.affine_broadcast)
    extra = np.broadcast_to(sm / sigma + yhat * sv / (2 * sigma**2), p.view_shape).reshape(case.x.shape) * w
    return _output_scale(case) + extra


def _f64(a):
    return None if a is None else np.asarray(a, np.float64).copy()


# --- properties ------------------------------------------------------------------------------


@register
def running_stats_steps(impl, case: Case) -> Result:
    """Over STEPS training steps on different batches, the output and the buffers after each step
    equal the float64 reference chain (the implementation's own buffers carried along)."""
    _applicable(impl, case)
    rm, rv, m = _initial(case)
    first = _mode(case, True, rm.copy(), rv.copy(), m)  # the case as run, buffers included
    ref_m, ref_v = _f64(rm), _f64(rv)
    s_m = s_v = 0.0
    comps = []
    bdt = _buffer_dtype(case).name
    for k, x in enumerate(_batches(case, STEPS), 1):
        step = _mode(case, True, rm, rv, m, x=x)
        got = call(impl, step)
        ref = _mode(case, True, ref_m, ref_v, m, x=x).reference()
        comps.append((f"step {k} output", error_model.compare(got.y, ref.y, _output_scale(step), case.dtype)))
        if got.running_mean is None or got.running_var is None:
            raise Stop(Result("", "fail", np.inf, error_model.MODEL.lam, "the running buffers were dropped", case=step))
        sm, sv = _running_scales(step, ref.running_mean, ref.running_var, m)
        s_m, s_v = (1 - m) * s_m + sm, (1 - m) * s_v + sv
        comps.append((f"step {k} running_mean", error_model.compare(got.running_mean, ref.running_mean, s_m, bdt)))
        comps.append((f"step {k} running_var", error_model.compare(got.running_var, ref.running_var, s_v, bdt)))
        rm, rv = got.running_mean.astype(rm.dtype), got.running_var.astype(rv.dtype)
        ref_m, ref_v = ref.running_mean, ref.running_var
    r = verdict("running_stats_steps", comps)
    r.case = first if r.verdict != "pass" else None
    return r


def _far_buffers(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Buffers far from the batch's statistics: mean shifted by 1..2 standard deviations (+1),
    variance 2..3 times the batch's (+1), so eval and train outputs differ by O(1)."""
    spec, p = case.spec, case.plan()
    mean, var = moments(case.x.astype(np.float64).reshape(p.view_shape), p.reduce, center=spec.center)
    keep = [a for s in spec.running_stats["shape"] for a in p.symbols[s]]
    drop = tuple(a for a in range(len(p.view_shape)) if a not in keep)
    mean, var = np.mean(mean, axis=drop), np.mean(var, axis=drop)
    rng = np.random.default_rng(zlib.crc32(repr(case.x.shape).encode()))
    sd = np.sqrt(var)
    sign = np.where(rng.uniform(size=mean.shape) < 0.5, -1.0, 1.0)
    rm = mean + sign * ((1 + rng.uniform(size=mean.shape)) * sd + 1)
    rv = var * (2 + rng.uniform(size=var.shape)) + 1
    bdt = _buffer_dtype(case)
    lim = float(dtypes.finfo(bdt).max) / 4
    return np.clip(rm, -lim, lim).astype(bdt), np.clip(rv, 0, lim).astype(bdt)


@register
def eval_uses_running(impl, case: Case) -> Result:
    """Eval mode normalizes with the running buffers (far from the batch's statistics) and leaves
    them untouched; training mode normalizes with the batch's statistics (with the buffers passed
    where the implementation updates them, else without)."""
    _applicable(impl, case, updates=False)
    rm, rv = _far_buffers(case)
    _, _, m = _initial(case)
    comps = []
    ev = _mode(case, False, rm, rv, m)
    got = call(impl, ev)
    comps.append(
        (
            "eval output (running statistics)",
            error_model.compare(got.y, ev.reference().y, _output_scale(ev), case.dtype),
        )
    )
    bdt = _buffer_dtype(case)
    tiny = float(dtypes.finfo(bdt).tiny)
    for name, before in (("running_mean", rm), ("running_var", rv)):
        after = getattr(got, name)
        if after is not None:
            comps.append((f"eval leaves {name} unchanged", error_model.compare(after, before, tiny, bdt.name)))
    updates = getattr(impl, "running_stats", True)
    tr = _mode(case, True, rm if updates else None, rv if updates else None, m)
    got = call(impl, tr)
    comps.append(
        ("train output (batch statistics)", error_model.compare(got.y, tr.reference().y, _output_scale(tr), case.dtype))
    )
    r = verdict("eval_uses_running", comps)
    r.case = ev if r.verdict != "pass" else None
    return r


def _stat(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch's statistic as stored (mean, unbiased variance, averaged as the spec says):
    the buffers one step with momentum 1 gives, from the reference."""
    rm, rv, _ = _initial(case)
    probe = _mode(case, True, _f64(rm), _f64(rv), 1.0).reference()
    return probe.running_mean, probe.running_var


@register
def train_eval_convergence(impl, case: Case) -> Result:
    """On one fixed batch: after k steps with momentum m, eval equals the prediction of
    ``running_k = stat + (1 - m)^k (running_0 - stat)``; with m = 1, one step makes eval equal
    train up to Bessel's factor."""
    _applicable(impl, case)
    rm0, rv0, m = _initial(case)
    mean, var = _stat(case)
    comps = []
    bdt = _buffer_dtype(case)
    # (a) the case's momentum, STEPS steps: eval output against the closed form
    rm, rv = rm0.copy(), rv0.copy()
    s_m = s_v = 0.0
    for k in range(1, STEPS + 1 if m > 0 else 1):
        got = call(impl, _mode(case, True, rm, rv, m))
        rm, rv = got.running_mean.astype(bdt), got.running_var.astype(bdt)
        # running_k = decay running_0 + (1 - decay) stat, decay = (1 - m)^k: weights computed
        # without cancellation (m may be tiny), and no "stat + decay (running_0 - stat)" form,
        # which loses running_0 to rounding when |stat| >> |running_0|
        decay = float(np.exp(k * np.log1p(-m))) if m < 1 else 0.0
        gain = float(-np.expm1(k * np.log1p(-m))) if m < 1 else 1.0
        pm = decay * rm0.astype(np.float64) + gain * mean
        pv = decay * rv0.astype(np.float64) + gain * var
        sm, sv = _running_scales(case, pm, pv, m)
        s_m, s_v = (1 - m) * s_m + sm, (1 - m) * s_v + sv
        ev = _mode(case, False, rm, rv, m)
        y = call(impl, ev).y
        predicted = _mode(case, False, pm, pv, m)
        expected = predicted.reference().y
        scale = _eval_scale(predicted, s_m, s_v)
        comps.append(
            (
                f"m={m:.3g}, eval after step {k} vs (1-m)^{k} prediction",
                error_model.compare(y, expected, scale, case.dtype),
            )
        )
    # (b) momentum 1: one step, eval == train up to Bessel's factor
    got = call(impl, _mode(case, True, rm0.copy(), rv0.copy(), 1.0))
    if got.running_mean is None or got.running_var is None:
        raise Stop(Result("", "fail", np.inf, error_model.MODEL.lam, "the running buffers were dropped", case=case))
    y = call(impl, _mode(case, False, got.running_mean.astype(bdt), got.running_var.astype(bdt), 1.0)).y
    one = _mode(case, False, mean, var, 1.0)
    sm, sv = _running_scales(case, mean, var, 1.0)
    n = case.plan().reduce_size
    comps.append(
        (
            f"m=1, eval after one step == train with var*{n}/{n - 1} (Bessel)",
            error_model.compare(y, one.reference().y, _eval_scale(one, sm, sv), case.dtype),
        )
    )
    r = verdict("train_eval_convergence", comps)
    r.case = _mode(case, True, rm0, rv0, m) if r.verdict != "pass" else None
    return r


STATE_PROPERTIES = {f.__name__: f for f in (running_stats_steps, eval_uses_running, train_eval_convergence)}
