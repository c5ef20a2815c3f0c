"""Failure modes hunted on purpose: for each way a norm kernel is known to go wrong, a Hypothesis
strategy that draws the inputs which bring it out.

The audit puts one draw of each mode that applies to a norm and dtype ahead of Hypothesis's own
examples of every property of a native implementation (explicit examples, drawn from the run's
seed: :func:`normcheck.audit.driver.run_check`), so a failure mode is met at every seed, not only
when the random draws happen to land on it. Each mode is a :func:`normcheck.strategies.cases`
strategy with some of its dimensions pinned; shapes, arguments, parameters, buffers and the
configuration (``Case.variant``) are drawn as usual.

====================  ===========================================================================
near_constant         (batch statistics where the norm has the switch, as for extreme) one-pass variance ``E[x²] − E[x]²`` cancelling to a negative variance (NaN) or
                      0, and ``var + eps`` rounding to 0 in 16 bits: every set near-constant
                      (``|mean|`` 10…1e6, ``|mean| / std`` 1e4…1e7) with eps in [1e-12, 1e-10]
extreme               ``n·x²`` overflowing a float32 accumulator: ``max |x|`` from 1e15 to a quarter
                      of the dtype's max, at most 16 elements (the second order judges small cases)
underflow             (float32, bfloat16) powers of rsqrt (``v^(-3/2)`` in backward and forward mode,
                      ``v^(-5/2)`` in double backward) falling below float32's normal range while
                      the reference's derivatives are still representable: ``max |x|`` in [1e15, 1e18],
                      sets of 2 or more, at most 16 elements
one_element           (centred norms) exactness: one-element sets with a weight and a bias (each
                      ≥ 0.1), where ``x − mean`` is exactly 0 and the output exactly the bias, at
                      ``|x| |w| / (|b| sqrt(eps))`` in [1e3, 4e3]: a kernel folding
                      ``offset − mean·scale·rsqrt(var + eps)`` in 16 bits loses the bias there
momentum_small        (norms with running statistics) a training step with momentum log-uniform in
                      [1e-6, 1e-4] on a near-constant batch at 1e8 (its mean far above the buffers), and
momentum_large        with 1 - momentum there on a tiny batch (far below them): one
                      running-update weight held in float32 and the other formed as 1 minus it
                      errs by about u·|batch − old|, far above the model when the update cancels
                      (which weight a framework holds decides which end shows it)
running_16bit         (norms with running statistics, 16-bit inputs) a training step with momentum
                      in [0.05, 0.5] on a tiny batch (std 1e-4) against O(1) float32 buffers, in an
                      odd ``Case.variant``: buffers kept in the input's 16-bit dtype (Keras's full
                      16-bit dtype policy, the first axis of its BatchNormalization) round ``|new|``
                      by up to u_16 of it, up to 4096x λ in bfloat16 (512x in float16) over the
                      model's ``u_f32 |new|``, whose batch term ``u_in m sqrt(n) max|x| sigma`` a tiny
                      batch makes ~1e-8 of ``|new|``
near_constant_groups  (group_norm, float32) rank-4 input with at least 2 channels and 2 spatial
                      positions (where a channels_last kernel differs from the contiguous one), at
                      least 6 groups (batch x groups) of 4-16 elements, each near-constant at
                      ``|mean|`` 10...1e4 and ``|mean| / std`` in [2, 3] / sqrt(u) (8.2e3...1.2e4 in
                      float32): a one-pass variance's rounding, ~u mean^2, exceeds the true
                      variance, so it cancels to 0 or below in some group (NaN, or x - mean over
                      sqrt(eps) with eps in [1e-12, 1e-10]), while the model's allowance
                      (u sqrt(n) |mean| / std) stays small
====================  ===========================================================================

16-bit inputs past 256 (``x²`` overflows float16) and past 65504 (bfloat16 values no float16
holds) are the "huge" and "extreme" regimes of those dtypes, drawn by the modes above.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import dtypes as _dt
from normcheck import spec as _spec
from normcheck import strategies

__all__ = ["MODES", "modes"]

#: max |x| of the underflow mode: where (var + eps)^(-3/2) and ^(-5/2) leave float32's normal range
#: while the float64 reference's second derivative is still representable in float32.
_UNDERFLOW_WINDOW = st.floats(15.0, 18.0).map(lambda e: float(10.0**e))
#: momentum's distance from 0 (momentum_small) or from 1 (momentum_large): log-uniform in [1e-6, 1e-4].
#: The rounded weight errs by up to u/2 absolute, about u·|batch − old| in the buffer, against the
#: model's u·(sqrt(n)·m·max|x| + |new|): a ratio of about 1/(sqrt(n)·m) where the batch is at least
#: |old|/m from the buffers (momentum_small), and 1/(1 − m) where it is far below them (momentum_large).
_NEAR_EDGE = st.floats(-6.0, -4.0).map(lambda e: float(10.0**e))
#: |x| |w| / (|b| sqrt(eps)) of the one-element mode, log-uniform in [1e3, 4e3]: past 512 a 16-bit
#: step at mean * w / sigma exceeds 2 |b|, so a shift formed in 16 bits loses the bias (an error of
#: |b|, 1 / u units of it), while the model's allowance for a shift formed in float32 (2^-16 of that
#: magnitude in bfloat16) stays below |b| / 16: the loss shows at 15-16 x λ.
_SHIFT_RATIO = st.floats(3.0, math.log10(4e3)).map(lambda e: float(10.0**e))
#: eps of the near-constant mode: the smallest the strategies draw (log-uniform in [1e-12, 1e-10]).
_SMALL_EPS = st.floats(-12.0, -10.0).map(lambda e: float(10.0**e))


def _batch(norm) -> bool | None:
    """Batch statistics on (training, use_input_stats) where the norm has the switch: the statistics'
    arithmetic is what these modes load (an eval-mode step is affine in x)."""
    return True if _spec.get(norm).batch_stats_flag else None


def _near_constant(norm, dtype, running) -> st.SearchStrategy:
    return strategies.cases(
        norm,
        dtypes=(dtype,),
        regimes=("near_constant",),
        eps=_SMALL_EPS,
        running_stats=running,
        batch_stats=_batch(norm),
        variants=True,
    )


def _extreme(norm, dtype, running) -> st.SearchStrategy:
    return strategies.cases(
        norm,
        dtypes=(dtype,),
        regimes=("extreme",),
        running_stats=running,
        batch_stats=_batch(norm),
        max_numel=16,
        variants=True,
    )


def _rescaled(case, top: float):
    """``case`` with its input scaled so that ``max |x|`` is ``top`` (computed in float64, then cast)."""
    x = case.x.astype(np.float64)
    peak = float(np.abs(x).max())
    return case if peak == 0 else case.with_(x=(x * (top / peak)).astype(case.x.dtype))


def _underflow(norm, dtype, running) -> st.SearchStrategy | None:
    if float(_dt.finfo(dtype).max) < 1e17:  # float16's range ends below the window
        return None
    small = strategies.cases(
        norm,
        dtypes=(dtype,),
        regimes=("huge",),
        running_stats=running,
        batch_stats=_batch(norm),
        max_numel=16,
        variants=True,
    )
    sets = small.filter(lambda c: c.plan().reduce_size >= 2)  # a one-element set's gradient is 0
    return st.tuples(sets, _UNDERFLOW_WINDOW).map(lambda ct: _rescaled(ct[0], ct[1]))


def _one_element(norm, dtype, running) -> st.SearchStrategy | None:
    spec = _spec.get(norm)
    if not spec.center:  # no mean to make exact
        return None
    single = strategies.cases(
        norm, dtypes=(dtype,), regimes=("normal",), affine=True, running_stats=running, max_side=1, variants=True
    ).filter(_affine_pair)
    return st.tuples(single, _SHIFT_RATIO).map(lambda cr: _at_ratio(spec, cr[0], cr[1]))


def _affine_pair(case) -> bool:
    """A weight and a bias, each at least 0.1 in magnitude (the bias is what must survive)."""
    return all(a is not None and float(np.abs(a.astype(np.float64)).min()) >= 0.1 for a in (case.weight, case.bias))


def _at_ratio(spec, case, ratio: float):
    """``case`` with its input scaled so that ``|x| |w| / (|b| sqrt(eps))`` is ``ratio``: the size of
    ``mean * w / sigma`` against the bias it is subtracted from."""
    eps = spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    w = float(np.abs(case.weight.astype(np.float64)).max())
    b = float(np.abs(case.bias.astype(np.float64)).min())
    return _rescaled(case, ratio * b * float(np.sqrt(eps)) / w)


def _momentum(
    edge: st.SearchStrategy, regime: str, top: float | None = None
) -> Callable[..., st.SearchStrategy | None]:
    def make(norm, dtype, running):
        if running is False or not _spec.get(norm).has_running_stats:
            return None
        steps = strategies.cases(
            norm, dtypes=(dtype,), regimes=(regime,), running_stats=True, batch_stats=True, variants=True
        )
        if top is not None:  # the batch far above the buffers (within the dtype's range)
            steps = steps.map(lambda c: _rescaled(c, min(top, float(_dt.finfo(dtype).max) / 8)))
        return st.tuples(steps, edge).map(lambda cm: cm[0].with_(args={**cm[0].args, "momentum": cm[1]}))

    return make


#: momentum of the running_16bit mode: a step that keeps most of the old buffers (1 would replace them).
_KEEPING = st.floats(0.05, 0.5)


def _running_16bit(norm, dtype, running) -> st.SearchStrategy | None:
    """A training step on a tiny batch (std 1e-4) against O(1) float32 buffers, in an odd variant
    (the first configuration axis at its second value: Keras's ``dtype_policy="full"``). The updated
    buffers are about ``(1 - m) old``: rounding them to a 16-bit dtype errs by up to ``u_16 |new|``
    (2^-8 in bfloat16), where the model allows ``lambda u_f32 (u_in/u_f32 m sqrt(n) max|x| sigma + |new|)``
    and the batch term is ~1e-8 of ``|new|``."""
    if running is False or not _spec.get(norm).has_running_stats or _dt.np_dtype(dtype).itemsize != 2:
        return None
    steps = strategies.cases(norm, dtypes=(dtype,), regimes=("tiny",), running_stats=True, batch_stats=True)
    odd = st.integers(0, strategies.VARIANTS // 2 - 1).map(lambda k: 2 * k + 1)
    return st.tuples(steps, _KEEPING, odd).map(lambda c: c[0].with_(args={**c[0].args, "momentum": c[1]}, variant=c[2]))


#: |mean| of the near_constant_groups mode, log-uniform in [10, 1e4], either sign.
_GROUP_MEAN = st.tuples(st.floats(1.0, 4.0), st.sampled_from((1.0, -1.0))).map(lambda e: e[1] * float(10.0 ** e[0]))
#: |mean| / std of the near_constant_groups mode, in units of 1 / sqrt(u): where a one-pass
#: variance's rounding (~u mean^2) exceeds the true variance (mean^2 / ratio^2) a few times over.
_GROUP_RATIO = st.floats(2.0, 3.0)
#: The group sets of that mode: at least this many, of 4 to 16 elements each.
_GROUP_SETS, _GROUP_SIZES = 6, (4, 16)


def _small_groups(case) -> bool:
    """Rank 4 with C >= 2 and H W >= 2 (else channels_last and contiguous memory coincide), and at
    least :data:`_GROUP_SETS` groups of 4-16 elements (the more groups, the surer one cancels)."""
    _, c, h, w = case.x.shape
    n = case.plan().reduce_size
    return c >= 2 and h * w >= 2 and _GROUP_SIZES[0] <= n <= _GROUP_SIZES[1] and case.x.size // n >= _GROUP_SETS


def _near_constant_at(case, mean: float, ratio: float):
    """``case``'s input standardized over the whole tensor, then set to ``mean + |mean| / ratio * z``
    (computed in float64, then cast): every group near-constant at ``|mean| / std`` about ``ratio``
    (the "near_constant" regime, whose findings' regions it lies in)."""
    x = case.x.astype(np.float64)
    z = x - x.mean()
    sd = float(z.std())
    z = z / sd if sd > 0 else z
    return case.with_(x=(mean + abs(mean) / ratio * z).astype(case.x.dtype), regime="near_constant")


def _near_constant_groups(norm, dtype, running) -> st.SearchStrategy | None:
    if norm != "group_norm" or dtype != "float32":  # a 16-bit input cannot hold deviations of |mean| / 1e4
        return None
    groups = strategies.cases(
        norm,
        dtypes=(dtype,),
        regimes=("normal",),
        ranks=(4,),
        eps=_SMALL_EPS,
        running_stats=running,
        batch_stats=_batch(norm),
        max_numel=_GROUP_SETS * 4 * _GROUP_SIZES[1],
        variants=True,
    ).filter(_small_groups)
    root_u = math.sqrt(_dt.unit_roundoff(dtype))
    return st.tuples(groups, _GROUP_MEAN, _GROUP_RATIO).map(lambda g: _near_constant_at(g[0], g[1], g[2] / root_u))


#: The modes by name, in the order their draws run (each: (norm, dtype, running_stats) -> strategy or None).
MODES: dict[str, Callable[..., st.SearchStrategy | None]] = {
    "near_constant": _near_constant,
    "extreme": _extreme,
    "underflow": _underflow,
    "one_element": _one_element,
    "momentum_small": _momentum(_NEAR_EDGE, "near_constant", top=1e8),
    "momentum_large": _momentum(_NEAR_EDGE.map(lambda d: 1.0 - d), "tiny"),
    "running_16bit": _running_16bit,
    "near_constant_groups": _near_constant_groups,
}


def modes(norm: str, dtype: str, *, running_stats: bool | None = None) -> dict[str, st.SearchStrategy]:
    """The strategy of each mode that applies to ``norm`` at ``dtype`` (``running_stats``: as
    :func:`normcheck.strategies.cases` takes it; False for an implementation without running
    buffers)."""
    out = {}
    for name, make in MODES.items():
        try:
            s = make(norm, dtype, running_stats)
        except InvalidArgument:  # the norm has no such cases (e.g. no batch statistics)
            s = None
        if s is not None:
            out[name] = s
    return out
