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

A case without buffers gets the frameworks' initial ones (mean 0, variance 1), and momentum 0.1
unless it names one; every property runs in training mode whatever the case's flag says.

``momentum=None`` (a case that names it: drawn only for a user's module target whose constructor
accepts it, :meth:`normcheck.target.Target.case_options`) is torch's cumulative moving average:
step k of a **freshly built** module weights the batch by ``1 / num_batches_tracked = 1 / k``
(:func:`normcheck.reference.update_factor`). Each property's sequence therefore starts from a
fresh module (a target that carries one instance across calls is told so, ``Target.start_fresh``), and
the chains use the factors f_k = 1/k, k = 1..STEPS, where a fixed momentum uses f_k = m:
running_stats_steps compares ``running_k = (1 - 1/k) running_{k-1} + (1/k) batch_k`` (the first
step replaces the initial buffers, the k-th is the mean of the k batches' statistics);
train_eval_convergence predicts ``running_k = stat`` for every k >= 1 on its fixed batch
(``prod_j (1 - f_j) = 0``), and its one-step part is the fresh module's first step (factor 1, as
m = 1); eval_uses_running does not depend on the momentum. A module that reads None as "no
update", as a fixed 0.1, or whose ``num_batches_tracked`` never moves (the factor stays 1) deviates
in running_stats_steps from step 1 or 2 on. Reduction sets of one element
cannot train (the unbiased variance is undefined): such cases are skipped here and measured in the
conventions table instead (:mod:`normcheck.conventions`, "one value per channel").

Error model: each step's buffers may err by :func:`normcheck.error_model.running_scale` (with the
step's factor f_k); an error carried from the previous step decays by (1 - f_k), so after k steps
the allowed scale is ``S_k = (1 - f_k) S_{k-1} + running_scale_k``: ``f_k = m`` for a fixed
momentum, ``f_k = 1/k`` for momentum=None (whose first step, f_1 = 1, forgets the initial buffers
and their error: ``S_1 = running_scale_1``). An eval output computed from buffers that err by
(S_mean, S_var) is allowed, on top of its own scale, ``|w| (S_mean / sigma + |y^| S_var / (2 sigma^2))``
(the first-order sensitivity of ``(x - mean) / sqrt(var + eps)``). lambda is the model's, 16.

What each property catches (tests/doubles/state.py): a stored biased variance (steps, convergence),
momentum read the Keras way, ``new = m old + (1 - m) batch`` (steps, convergence at m = 1; no test
can tell the two apart at m = 0.5), batch statistics in eval (eval_uses_running, convergence),
buffers never updated (steps, convergence); for momentum=None (tests/doubles/momentum.py) None
read as "no update", as 0.1, or a ``num_batches_tracked`` that never moves (steps), and buffers
updated in eval (eval_uses_running).
"""

from __future__ import annotations

import zlib

import numpy as np

from normcheck import dtypes, error_model
from normcheck.case import Case, Outcome
from normcheck.properties.core import Result, Stop, call, register, verdict
from normcheck.reference import moments, running_view, update_factor

__all__ = [
    "STATE_PROPERTIES",
    "STEPS",
    "batch_weights",
    "eval_uses_running",
    "running_stats_steps",
    "train_eval_convergence",
]

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


def _cumulative(case: Case) -> bool:
    """Does the case name momentum=None (torch's cumulative moving average)?"""
    return "momentum" in case.args and case.args["momentum"] is None


def _initial(case: Case) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The case's buffers and momentum (None: the cumulative average), or the frameworks' initial
    buffers and default momentum."""
    m = case.args.get("momentum")
    if m is not None:
        m = float(m)
    elif not _cumulative(case):
        m = DEFAULT_MOMENTUM
    if case.running_mean is not None and case.running_var is not None:
        return case.running_mean.copy(), case.running_var.copy(), m
    c = case.x.shape[1]
    bdt = _buffer_dtype(case)
    return np.zeros(c, bdt), np.ones(c, bdt), m


def _factor(momentum: float | None, k: int) -> float:
    """The weight step k (1-based) of a freshly built module gives the batch: m, or 1/k for
    momentum=None (num_batches_tracked = k - 1 before the step)."""
    return momentum if momentum is not None else update_factor(None, k - 1)


def _fresh(impl) -> None:
    """The next call starts a freshly built module: a target that carries one instance across
    continuing calls (``Target.start_fresh``, directly or behind an Impl's ``fn``) forgets it; a
    function or a native implementation has nothing to forget."""
    for obj in (impl, getattr(impl, "fn", None)):
        start = getattr(obj, "start_fresh", None)
        if callable(start):
            start()
            return


def _reference(case: Case, tracked: int = 0) -> Outcome:
    """``case.reference()``, where a momentum=None case is step ``tracked + 1`` of a freshly built
    module (``tracked`` batches tracked before it). A case whose running statistics leave the
    buffers' dtype (the variance of inputs past ~1.8e19 in float32 buffers) is not applicable: no
    implementation can carry them to the next step (an overflowed buffer times 1 - m = 0 is NaN)."""
    ref = case.reference(num_batches_tracked=tracked)
    bdt = _buffer_dtype(case)
    top = float(dtypes.finfo(bdt).max)
    for name in ("running_mean", "running_var"):
        v = getattr(ref, name, None)
        worst = float(np.max(np.abs(v), initial=0.0)) if v is not None else 0.0
        if worst > top:
            msg = f"the reference {name} ({worst:.3g}) is past the {bdt.name} buffers' range: no implementation can carry it"
            raise Stop(Result("", "skip", message=msg))
    return ref


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
    applied: list[float] = []  # momentum=None: the batch weight each step measurably applied
    _fresh(impl)
    for k, x in enumerate(_batches(case, STEPS), 1):
        step = _mode(case, True, rm, rv, m, x=x)
        prev = (_f64(rm), _f64(rv))
        got = call(impl, step)
        ref = _reference(_mode(case, True, ref_m, ref_v, m, x=x), k - 1)
        comps.append((f"step {k} output", error_model.compare(got.y, ref.y, _output_scale(step), case.dtype)))
        if got.running_mean is None or got.running_var is None:
            raise Stop(Result("", "fail", np.inf, error_model.MODEL.lam, "the running buffers were dropped", case=step))
        f = _factor(m, k)
        sm, sv = _running_scales(step, ref.running_mean, ref.running_var, f)
        s_m, s_v = (1 - f) * s_m + sm, (1 - f) * s_v + sv
        tag = f"step {k}" if m is not None else f"step {k} (momentum=None: factor 1/{k})"
        comps.append((f"{tag} running_mean", error_model.compare(got.running_mean, ref.running_mean, s_m, bdt)))
        comps.append((f"{tag} running_var", error_model.compare(got.running_var, ref.running_var, s_v, bdt)))
        if m is None:
            stat = _reference(_mode(case, True, *prev, None, x=x), 0)  # factor 1 from prev: the batch's statistic
            applied.append(_applied_factor(prev, (got.running_mean, got.running_var), stat))
        rm, rv = got.running_mean.astype(rm.dtype), got.running_var.astype(rv.dtype)
        ref_m, ref_v = ref.running_mean, ref.running_var
    r = verdict("running_stats_steps", comps)
    r.case = first if r.verdict != "pass" else None
    if r.verdict != "pass" and m is None:
        r.message += _factors_text(applied)
    return r


def _applied_factor(prev, got, stat: Outcome) -> float:
    """The batch weight f a step applied, fitted (least squares over both buffers) to
    ``got = (1 - f) prev + f stat``; NaN where the batch's statistic equals the buffers."""
    d = np.concatenate([np.ravel(stat.running_mean - prev[0]), np.ravel(stat.running_var - prev[1])])
    g = np.concatenate(
        [np.ravel(np.asarray(got[0], np.float64) - prev[0]), np.ravel(np.asarray(got[1], np.float64) - prev[1])]
    )
    ok = np.isfinite(d) & np.isfinite(g)
    den = float(np.sum(d[ok] * d[ok]))
    return float(np.sum(g[ok] * d[ok]) / den) if den > 0 else float("nan")


def batch_weights(impl, case: Case) -> list[float]:
    """The batch weight each of STEPS training steps of a freshly built module measurably applied on
    running_stats_steps's batches (fitted to ``new = (1 - f) old + f batch``; NaN where a batch's
    statistic equals the buffers): for momentum=None the cumulative average's are 1, 1/2, .., 1/STEPS,
    while None read as "no update" gives 0s, read as 0.1 gives 0.1s, and a ``num_batches_tracked``
    that never moves gives 1s. What a diagnosis of a momentum=None deviation can name (it shows only
    over consecutive steps, never on a single call). Raises :class:`normcheck.properties.core.Stop`
    where the implementation cannot be driven."""
    _applicable(impl, case)
    rm, rv, m = _initial(case)
    out = []
    _fresh(impl)
    for x in _batches(case, STEPS):
        prev = (_f64(rm), _f64(rv))
        got = call(impl, _mode(case, True, rm, rv, m, x=x))
        if got.running_mean is None or got.running_var is None:
            break
        stat = _reference(_mode(case, True, *prev, None, x=x), 0)
        out.append(_applied_factor(prev, (got.running_mean, got.running_var), stat))
        rm, rv = got.running_mean.astype(rm.dtype), got.running_var.astype(rv.dtype)
    return out


def _factors_text(applied: list[float]) -> str:
    """What a momentum=None chain measurably did: the batch weights per step, against 1/k, and the
    misreading they fit (None as "no update", as 0.1, a counter that never moves)."""
    shown = ", ".join("?" if not np.isfinite(f) else f"{f:.3g}" for f in applied)
    want = ", ".join("1" if k == 1 else f"1/{k}" for k in range(1, len(applied) + 1))
    known = [f for f in applied if np.isfinite(f)]
    hint = ""
    if known and len(known) == len(applied):
        for value, what in (
            (0.0, "momentum=None read as no update"),
            (0.1, "momentum=None read as momentum 0.1"),
            (1.0, "num_batches_tracked never moves (the factor stays 1)"),
        ):
            if all(abs(f - value) <= 1e-3 for f in known):
                hint = f": {what}"
    return f"; momentum=None: batch weight per step {shown} (the cumulative average's: {want}){hint}"


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
    _fresh(impl)
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
        ("train output (batch statistics)", error_model.compare(got.y, _reference(tr).y, _output_scale(tr), case.dtype))
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
    ``running_k = stat + (1 - m)^k (running_0 - stat)`` (momentum=None: ``running_k = stat``); with
    m = 1 (momentum=None: a fresh module's first step), one step makes eval equal train up to
    Bessel's factor."""
    _applicable(impl, case)
    rm0, rv0, m = _initial(case)
    mean, var = _stat(case)
    bdt = _buffer_dtype(case)
    top = float(np.max(np.abs(var)))
    if top > float(np.finfo(bdt).max):  # the buffer holds inf, a prediction of a finite eval has no meaning
        raise Stop(
            Result("", "skip", message=f"the batch's running variance {top:.3g} is past the {bdt} buffers' range")
        )
    if m is None:
        return _convergence_cumulative(impl, case, rm0, rv0)
    comps = []
    # (a) the case's momentum, STEPS steps: eval output against the closed form
    rm, rv = rm0.copy(), rv0.copy()
    s_m = s_v = 0.0
    _fresh(impl)
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
    comps.append(_one_step(impl, case, rm0, rv0, mean, var, 1.0))
    r = verdict("train_eval_convergence", comps)
    r.case = _mode(case, True, rm0, rv0, m) if r.verdict != "pass" else None
    return r


def _one_step(impl, case: Case, rm0, rv0, mean, var, momentum: float | None):
    """One training step with factor 1 (momentum 1, or momentum=None on a fresh module), then eval:
    equal to train with Bessel's factor on the variance."""
    bdt = _buffer_dtype(case)
    _fresh(impl)
    got = call(impl, _mode(case, True, rm0.copy(), rv0.copy(), momentum))
    if got.running_mean is None or got.running_var is None:
        raise Stop(Result("", "fail", np.inf, error_model.MODEL.lam, "the running buffers were dropped", case=case))
    y = call(impl, _mode(case, False, got.running_mean.astype(bdt), got.running_var.astype(bdt), momentum)).y
    one = _mode(case, False, mean, var, momentum)
    sm, sv = _running_scales(case, mean, var, 1.0)
    n = case.plan().reduce_size
    what = "m=1, eval after one step" if momentum is not None else "m=None, eval after a fresh module's first step"
    return (
        f"{what} == train with var*{n}/{n - 1} (Bessel)",
        error_model.compare(y, one.reference().y, _eval_scale(one, sm, sv), case.dtype),
    )


def _convergence_cumulative(impl, case: Case, rm0, rv0) -> Result:
    """train_eval_convergence for momentum=None: on the fixed batch, step k of a fresh module has
    factor 1/k, so ``running_k = (1 - 1/k) running_{k-1} + (1/k) stat = stat`` for every k >= 1
    (``prod_j (1 - 1/j) = 0``: the first step forgets running_0); the buffers' allowed error follows
    ``S_k = (1 - 1/k) S_{k-1} + running_scale_k``. Then one step of a fresh module (factor 1) makes
    eval equal train up to Bessel's factor."""
    mean, var = _stat(case)
    bdt = _buffer_dtype(case)
    comps = []
    rm, rv = rm0.copy(), rv0.copy()
    s_m = s_v = 0.0
    _fresh(impl)
    for k in range(1, STEPS + 1):
        got = call(impl, _mode(case, True, rm, rv, None))
        if got.running_mean is None or got.running_var is None:
            raise Stop(Result("", "fail", np.inf, error_model.MODEL.lam, "the running buffers were dropped", case=case))
        rm, rv = got.running_mean.astype(bdt), got.running_var.astype(bdt)
        f = _factor(None, k)
        sm, sv = _running_scales(case, mean, var, f)
        s_m, s_v = (1 - f) * s_m + sm, (1 - f) * s_v + sv
        y = call(impl, _mode(case, False, rm, rv, None)).y
        predicted = _mode(case, False, mean, var, None)
        comps.append(
            (
                f"m=None, eval after step {k} (factor 1/{k}) vs the batch statistic",
                error_model.compare(y, predicted.reference().y, _eval_scale(predicted, s_m, s_v), case.dtype),
            )
        )
    comps.append(_one_step(impl, case, rm0, rv0, mean, var, None))
    r = verdict("train_eval_convergence", comps)
    r.case = _mode(case, True, rm0, rv0, None) if r.verdict != "pass" else None
    return r


STATE_PROPERTIES = {f.__name__: f for f in (running_stats_steps, eval_uses_running, train_eval_convergence)}
