"""Hypothesis strategies that build valid :class:`~normcheck.case.Case` objects from a norm's spec.

Every strategy reads the spec (:func:`normcheck.spec.get`) and resolves axis sets with
:func:`normcheck.spec.plan`; none restates which axes a norm reduces over. Inputs are not drawn
element by element: a case draws its shape, arguments, *regime* and regime parameters with
Hypothesis, plus one integer seed, and NumPy generates the arrays from that seed
(:func:`make_input`). Generation stays fast for thousands of elements, and shrinking works on the
shape, arguments, regime and seed, so failures shrink to small, readable cases.

Regimes (:data:`REGIMES`), all finite in the case dtype:

=========  ==========================================================================================
normal     standard normal
offset     a large common offset: ``|mean| = r * std`` with ``r`` in [10**1.5, 1e4], std drawn too
tiny       standard deviation 1e-4 (eps dominates the variance)
huge       normal values rescaled so that ``max |x|`` is large for the dtype: for float16
           in [259, 16376] (``x**2`` overflows a float16 accumulator, not a float32 one); for the
           other dtypes in [1e4, 1e15] (sums of squares stay finite in float32)
extreme    (:data:`AUDIT_REGIMES` only) ``max |x|`` from 1e15 up to a quarter of the dtype's max
           (float32 and bfloat16: 8.5e37; float64: 1e100; float16: [5180, 16376]): past ~1e19
           ``n x**2`` overflows a float32 accumulator, though x, the normalized output and the
           float64 reference are all representable
near_constant  (:data:`AUDIT_REGIMES` only) every set near-constant at a large magnitude: ``|mean|``
           in [10, 1e6] (capped by the dtype's range), ``|mean| / std`` in [1e4, 1e7]: where a
           one-pass ``E[x^2] - E[x]^2`` cancels to a negative variance (then NaN) or to 0
constant   one reduction set (or every one) holds a single value: zero variance
outliers   standard normal with 1..3 values of magnitude 1e3..2e3
=========  ==========================================================================================

Usage::

    from hypothesis import given
    from normcheck import strategies as ns

    @given(ns.cases("layer_norm", dtypes=("float32", "bfloat16")))
    def test_agrees(case): ...

Settings profiles ("dev", "quick", "ci", "default", "thorough") live in :mod:`normcheck.profiles`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import dtypes as _dt
from normcheck import spec as _spec
from normcheck.case import Case

__all__ = [
    "AUDIT_REGIMES",
    "REGIMES",
    "VARIANTS",
    "Layout",
    "cases",
    "dtypes",
    "eps_values",
    "identity_cases",
    "inputs",
    "layouts",
    "make_input",
    "mixture_logits",
    "momenta",
    "regimes",
    "shapes",
]

REGIMES = ("normal", "offset", "tiny", "huge", "constant", "outliers")
#: What the audit draws for native implementations: :data:`REGIMES` and inputs to the dtype's limit.
#: (``normcheck check`` draws :data:`REGIMES`: a user's float32 kernel that sums squares unscaled fails
#: on "extreme" inputs, as every framework's does, and its diagnosis would be that alone.)
AUDIT_REGIMES = (*REGIMES, "extreme", "near_constant")
_ALL_REGIMES = AUDIT_REGIMES
#: ``Case.variant`` is drawn from ``range(VARIANTS)``, read in mixed radix over an implementation's axes.
VARIANTS = 1 << 16

_FRAMEWORK_EPS = (1e-5, 1e-3, 1e-6)  # torch / keras / flax defaults
_SEEDS = st.integers(0, 2**32 - 1)
_OUTLIER = 1e3


# --- validation ------------------------------------------------------------------------------


def _get_spec(norm) -> _spec.Spec:
    if isinstance(norm, _spec.Spec):
        return norm
    try:
        return _spec.get(norm)
    except _spec.SpecError as e:
        raise InvalidArgument(str(e)) from None


def _check_int(name, value, lo=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if lo is not None and value < lo:
        raise InvalidArgument(f"{name}={value} must be >= {lo}")


def _check_names(name, values, known):
    if isinstance(values, str):
        values = (values,)
    values = tuple(values)
    if not values:
        raise InvalidArgument(f"{name} must not be empty")
    bad = [v for v in values if v not in known]
    if bad:
        raise InvalidArgument(f"{name}: unknown {bad}; known: {', '.join(known)}")
    return values


def _rank_bounds(spec, min_rank, max_rank, min_side, max_side, max_numel):
    lo = max(2, spec.min_rank) if min_rank is None else min_rank
    _check_int("min_rank", lo, 1)
    _check_int("max_rank", max_rank)
    _check_int("min_side", min_side, 1)
    _check_int("max_side", max_side, min_side)
    _check_int("max_numel", max_numel, 1)
    if lo < spec.min_rank:
        raise InvalidArgument(f"{spec.name} needs rank >= {spec.min_rank}, got min_rank={lo}")
    hi = max_rank
    while hi >= lo and min_side**hi > max_numel:
        hi -= 1
    if hi < lo:
        raise InvalidArgument(f"no shape of rank {lo}..{max_rank} with sides >= {min_side} has <= {max_numel} elements")
    return lo, hi


# --- shapes and layouts ----------------------------------------------------------------------


class Layout(NamedTuple):
    """An input shape and the shape argument that goes with it (the other one is None)."""

    shape: tuple[int, ...]
    normalized_shape: tuple[int, ...] | None = None
    num_groups: int | None = None
    reduce_axes: tuple[int, ...] | None = None  # an explicit axis set S (axis-set variants)

    def plan(self, norm) -> _spec.Plan:
        return _spec.plan(
            norm,
            self.shape,
            normalized_shape=self.normalized_shape,
            num_groups=self.num_groups,
            reduce_axes=self.reduce_axes,
        )


@st.composite
def _shapes(draw, lo, hi, min_side, max_side, max_numel):
    rank = draw(st.integers(lo, hi))
    shape: list[int] = []
    numel = 1
    for i in range(rank):
        rest = min_side ** (rank - i - 1)  # room the later axes need at least
        top = min(max_side, max_numel // (numel * rest))
        side = draw(st.integers(min_side, top))
        shape.append(side)
        numel *= side
    return tuple(shape)


def shapes(
    norm, *, min_rank=None, max_rank=5, min_side=1, max_side=6, max_numel=4096
) -> st.SearchStrategy[tuple[int, ...]]:
    """Input shapes ``(N, C, *spatial)`` for ``norm``, shrinking towards rank ``min_rank`` and sides 1.

    ``min_rank`` defaults to ``max(2, spec.min_rank)``; pass 1 for rank-1 inputs where the spec
    allows them (layer_norm, rms_norm). Sizes of 1 (N=1, C=1, spatial 1) are included. The number of
    elements never exceeds ``max_numel``. Whether the reduction sets are large enough for batch
    statistics is :func:`cases`'s concern, not this one's.
    """
    spec = _get_spec(norm)
    lo, hi = _rank_bounds(spec, min_rank, max_rank, min_side, max_side, max_numel)
    return _shapes(lo, hi, min_side, max_side, max_numel)


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


@st.composite
def _layout_for(draw, spec, shape, axes=None):
    if axes is not None:  # the set S is given: normalized_shape (if any) names the sizes of its axes
        red = tuple(sorted({a % len(shape) for a in axes}))
        ns = tuple(shape[a] for a in red) if spec.shape_arg == "normalized_shape" else None
        return Layout(shape, normalized_shape=ns, reduce_axes=red)
    if spec.shape_arg == "normalized_shape":
        k = draw(st.integers(1, min(3, len(shape))))
        return Layout(shape, normalized_shape=tuple(shape[len(shape) - k :]))
    if spec.shape_arg == "num_groups":
        return Layout(shape, num_groups=draw(st.sampled_from(_divisors(shape[1]))))
    return Layout(shape)


def layouts(norm, *, min_rank=None, max_rank=5, min_side=1, max_side=6, max_numel=4096) -> st.SearchStrategy[Layout]:
    """A shape from :func:`shapes` with the spec's shape argument drawn to fit it.

    ``normalized_shape``: the last 1..min(3, rank) axes (the whole shape allowed, as in torch);
    ``num_groups``: a divisor of C. Shrinks towards one normalized axis and one group.
    """
    spec = _get_spec(norm)
    return shapes(
        spec, min_rank=min_rank, max_rank=max_rank, min_side=min_side, max_side=max_side, max_numel=max_numel
    ).flatmap(lambda shape: _layout_for(spec, shape))


def _view_to_input(spec, p) -> dict[int, int]:
    """Which input axis each view axis is (split symbols, e.g. grouped channels, are left out)."""
    out, i = {}, 0
    for s in spec.layout:
        if s in spec.split:
            i += 1
            continue
        for v in p.symbols[s]:
            out[v] = i
            i += 1
    return out


def _grow(
    spec, layout: Layout, need: int, max_side: int, max_numel: int, *, every_component: bool = False
) -> Layout | None:
    """The layout with reduced axes grown so every reduction set has >= ``need`` elements, or None.

    ``every_component``: a mixture's component sets too (an identity whose other side normalizes
    over one of them), not only the set S of the spec."""
    for _ in range(1 + len(spec.mix)):
        p = layout.plan(spec)
        sets = [p.reduce, *(_spec.component_axes(spec, p) if every_component else ())]
        size, axes = min((math.prod(p.view_shape[a] for a in axes), axes) for axes in sets)
        if size >= need:
            return layout
        layout = _grow_set(spec, layout, p, axes, size, need, max_side, max_numel)
        if layout is None:
            return None
    return None


def _grow_set(spec, layout: Layout, p, axes, size: int, need: int, max_side: int, max_numel: int) -> Layout | None:
    """Grow one input axis of the view axes ``axes`` (a set of ``size`` elements) to reach ``need``."""
    to_input = {a: a for a in range(len(layout.shape))} if layout.reduce_axes else _view_to_input(spec, p)
    for a in reversed([to_input[v] for v in axes if v in to_input]):
        shape = list(layout.shape)
        shape[a] = -(-shape[a] * need // size)
        if shape[a] > max_side or math.prod(shape) > max_numel:
            continue
        ns = layout.normalized_shape
        if ns is not None and layout.reduce_axes:
            ns = tuple(shape[a] for a in layout.reduce_axes)
        elif ns is not None:
            ns = tuple(shape[len(shape) - len(ns) :])
        new = Layout(tuple(shape), ns, layout.num_groups, layout.reduce_axes)
        if math.prod(new.plan(spec).view_shape[v] for v in axes) >= need:
            return new
    return None


# --- scalar arguments ------------------------------------------------------------------------


def eps_values(*, spec=None) -> st.SearchStrategy[float | None]:
    """eps: the spec's default, the framework defaults (1e-5, 1e-3, 1e-6), or log-uniform in [1e-12, 1].

    For a spec whose signature default is ``eps=None`` (rms_norm: machine epsilon of the input
    dtype), None is drawn too, and is what it shrinks to.
    """
    fixed: list[float | None] = []
    if spec is not None:
        spec = _get_spec(spec)
        if "eps" in spec.defaults and spec.defaults["eps"] is None:
            fixed.append(None)
        if isinstance(spec.default_eps, float):
            fixed.append(spec.default_eps)
    fixed += [e for e in _FRAMEWORK_EPS if e not in fixed]
    log_uniform = st.floats(-12.0, 0.0).map(lambda e: float(10.0**e))
    return st.one_of(st.sampled_from(fixed), log_uniform)


def mixture_logits(k: int, *, dtype="float32") -> st.SearchStrategy[np.ndarray]:
    """Importance logits of a k-component mixture (Switchable Normalization), in ``dtype``.

    Equal weights (all 0) first, then one-hot (0 and -inf: softmax is exactly one-hot), then
    logits in [-4, 4] (weights from ~e^-8 to 1). Shrinks towards equal weights.
    """
    dt = _dt.np_dtype(dtype)
    equal = st.just(np.zeros(k))
    onehot = st.integers(0, k - 1).map(lambda i: np.where(np.arange(k) == i, 0.0, -np.inf))
    spread = st.lists(st.floats(-4.0, 4.0), min_size=k, max_size=k).map(np.array)
    return st.one_of(equal, onehot, spread).map(lambda a: a.astype(dt))


def momenta(*, none: bool = False) -> st.SearchStrategy[float | None]:
    """Running-statistics momentum in (0, 1]: 0.1 (the default) and 1.0, or uniform.

    ``none=True`` also draws ``None``, torch's cumulative moving average (a module's
    ``momentum=None``: the factor is 1 / num_batches_tracked); only for a module target whose
    constructor accepts it (the canonical function call cannot carry the counter).
    """
    fixed = st.one_of(st.sampled_from([0.1, 1.0]), st.floats(0.0, 1.0, exclude_min=True))
    return st.one_of(fixed, st.none()) if none else fixed


def dtypes(*, allowed=("float32", "float16", "bfloat16", "float64")) -> st.SearchStrategy[str]:
    """Floating dtype names (``"bfloat16"`` through ml_dtypes); shrinks towards the first."""
    return st.sampled_from(_check_names("allowed", allowed, _dt.FLOAT_DTYPES))


def regimes(*, allowed=REGIMES) -> st.SearchStrategy[str]:
    """Input regime names (see the module docstring); shrinks towards the first."""
    return st.sampled_from(_check_names("allowed", allowed, _ALL_REGIMES))


# --- input arrays ----------------------------------------------------------------------------


def _huge_exponents(dtype) -> tuple[float, float]:
    """log10 range of max|x| in the "huge" regime: x**2 past the dtype's range where float32 still holds n x**2."""
    big = float(_dt.finfo(dtype).max)
    lo = min(math.log10(math.sqrt(big)) + 0.01, 4.0)
    hi = min(math.log10(big / 4), 15.0)
    return lo, hi


#: The "extreme" regime's top for float64 inputs: the float64 reference squares the input, so its
#: sums of squares must stay finite (n x**2 <= 1e200 n).
_EXTREME_FLOAT64 = 100.0


def _extreme_exponents(dtype) -> tuple[float, float]:
    """log10 range of max|x| in the "extreme" regime: from the top of "huge" to the dtype's limit (a
    quarter of its max, where eval-mode outputs stay finite); float16's "huge" already reaches its
    limit, so there "extreme" is its top half-decade."""
    top = min(math.log10(float(_dt.finfo(dtype).max) / 4), _EXTREME_FLOAT64)
    return min(_huge_exponents(dtype)[1], top - 0.5), top


def _limit(dtype) -> float:
    """|x| bound: a quarter of the dtype's max, so eval-mode outputs (|w| <= 1.5, var >= 0.5) stay finite."""
    return float(_dt.finfo(dtype).max) / 4


def make_input(plan: _spec.Plan, dtype, regime: str = "normal", *, seed: int = 0, **params) -> np.ndarray:
    """The input array of a case: ``regime`` on ``plan.shape``, generated by NumPy from ``seed``.

    Computed in float64, clipped to a quarter of the dtype's range and cast, so it is finite in
    ``dtype``. ``params`` (all optional) by regime: offset: ``ratio`` (|mean| / std), ``std``,
    ``sign``; huge, extreme: ``scale`` (max |x|); near_constant: ``magnitude``, ``ratio``, ``sign``; constant: ``value``, ``all_sets``; outliers: ``count``.
    """
    rng = np.random.default_rng([seed, 0])
    dt = _dt.np_dtype(dtype)
    shape = plan.shape
    x = rng.standard_normal(shape)
    if regime == "normal":
        pass
    elif regime == "offset":
        std = float(params.get("std", 1.0))
        mean = float(params.get("sign", 1.0)) * float(params.get("ratio", 1e3)) * std
        cap = float(_dt.finfo(dt).max) / 8
        if abs(mean) > cap:  # keep the ratio, shrink both
            std *= cap / abs(mean)
            mean = math.copysign(cap, mean)
        x = mean + std * x
    elif regime == "near_constant":
        mean = float(params.get("sign", 1.0)) * min(float(params.get("magnitude", 1e3)), _limit(dt) / 2)
        x = mean + abs(mean) / float(params.get("ratio", 1e5)) * x
    elif regime == "tiny":
        x = 1e-4 * x
    elif regime in ("huge", "extreme"):
        low = (_huge_exponents if regime == "huge" else _extreme_exponents)(dt)[0]
        x = float(params.get("scale", 10.0**low)) * x / max(float(np.abs(x).max()), 1e-300)
    elif regime == "constant":
        v = x.reshape(plan.view_shape)
        value = float(params.get("value", 0.0))
        if params.get("all_sets", False):
            per_set = value + rng.standard_normal(plan.stat_shape)
            v = np.broadcast_to(per_set, plan.view_shape).copy()
        else:
            idx = tuple(
                slice(None) if a in plan.reduce else int(rng.integers(d)) for a, d in enumerate(plan.view_shape)
            )
            v[idx] = value
        x = v.reshape(shape)
    elif regime == "outliers":
        k = min(int(params.get("count", 1)), x.size)
        where = rng.choice(x.size, size=k, replace=False)
        x.flat[where] = rng.choice([-1.0, 1.0], size=k) * _OUTLIER * (1.0 + rng.uniform(size=k))
    else:
        raise InvalidArgument(f"unknown regime {regime!r}; known: {', '.join(_ALL_REGIMES)}")
    lim = _limit(dt)
    out = np.clip(x, -lim, lim).astype(dt)
    if not np.isfinite(out.astype(np.float64)).all():  # pragma: no cover - guarded by the clip
        raise AssertionError(f"regime {regime!r} produced non-finite {dt.name} values")
    return out


@st.composite
def _regime_params(draw, regime, dtype):
    if regime == "offset":
        return {
            "ratio": 10.0 ** draw(st.floats(1.5, 4.0)),
            "std": 10.0 ** draw(st.floats(-2.0, 2.0)),
            "sign": draw(st.sampled_from([1.0, -1.0])),
        }
    if regime == "near_constant":
        return {
            "magnitude": 10.0 ** draw(st.floats(1.0, 6.0)),
            "ratio": 10.0 ** draw(st.floats(4.0, 7.0)),
            "sign": draw(st.sampled_from([1.0, -1.0])),
        }
    if regime in ("huge", "extreme"):
        exponents = (_huge_exponents if regime == "huge" else _extreme_exponents)(dtype)
        return {"scale": 10.0 ** draw(st.floats(*exponents))}
    if regime == "constant":
        value = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-1e3, 1e3)))
        return {"value": value, "all_sets": draw(st.booleans())}
    assert regime == "outliers", regime
    return {"count": draw(st.integers(1, 3))}


#: Regimes whose inputs take drawn parameters (:func:`_regime_params`); the others take none.
_PARAMETRIZED_REGIMES = ("offset", "huge", "extreme", "near_constant", "constant", "outliers")


@st.composite
def _inputs(draw, plan, dtype, regimes):
    regime = draw(st.sampled_from(regimes))
    params = draw(_regime_params(regime, dtype)) if regime in _PARAMETRIZED_REGIMES else {}
    seed = draw(_SEEDS)
    return make_input(plan, dtype, regime, seed=seed, **params), regime


def inputs(plan: _spec.Plan, *, dtype="float32", regimes=REGIMES) -> st.SearchStrategy[tuple[np.ndarray, str]]:
    """``(x, regime)``: an input for ``plan`` (from :func:`normcheck.spec.plan`) in ``dtype``."""
    _check_names("dtype", dtype, _dt.FLOAT_DTYPES)
    return _inputs(plan, dtype, _check_names("regimes", regimes, _ALL_REGIMES))


# --- cases -----------------------------------------------------------------------------------


def _modes(spec, running_stats, batch_stats) -> list[tuple[bool, bool]]:
    """Valid (running buffers given, batch statistics used) pairs, simplest first."""
    if running_stats and not spec.has_running_stats:
        raise InvalidArgument(f"{spec.name} has no running statistics")
    if batch_stats is False and not spec.has_running_stats:
        raise InvalidArgument(f"{spec.name} always normalizes with batch statistics")
    flag = spec.batch_stats_flag is not None
    modes = [(False, True)]
    if spec.has_running_stats:
        modes += [(True, False), (True, True)] if flag else [(True, True)]
    modes = [
        m
        for m in modes
        if (running_stats is None or m[0] == running_stats) and (batch_stats is None or m[1] == batch_stats)
    ]
    if not modes:
        raise InvalidArgument(f"{spec.name}: running_stats={running_stats} with batch_stats={batch_stats} is not valid")
    return modes


def _params(seed, spec, p, dtype, *, weight, bias):
    """Weight (magnitude 0.5..1.5, ~20% negative) and bias (standard normal) in the case dtype."""
    rng = np.random.default_rng([seed, 1])
    dt = _dt.np_dtype(dtype)
    w = b = None
    if weight:
        sign = np.where(rng.uniform(size=p.affine_shape) < 0.2, -1.0, 1.0)
        w = (sign * rng.uniform(0.5, 1.5, size=p.affine_shape)).astype(dt)
    if bias:
        b = rng.standard_normal(p.affine_shape).astype(dt)
    return w, b


def _buffers(seed, spec, p, dtype):
    """running_mean (standard normal) and running_var (0.5..2): float32 for 16-bit cases."""
    rng = np.random.default_rng([seed, 2])
    shape = tuple(p.view_shape[a] for s in spec.running_stats["shape"] for a in p.symbols[s])
    bdt = np.dtype(np.float32) if _dt.is_16bit(dtype) else _dt.np_dtype(dtype)
    return rng.standard_normal(shape).astype(bdt), rng.uniform(0.5, 2.0, size=shape).astype(bdt)


def _need(spec, use_batch: bool) -> int:
    return spec.min_reduce_size_training if use_batch else 1


@st.composite
def _build(
    draw,
    spec,
    layout,
    dtypes,
    regimes,
    *,
    mode,
    need,
    affine,
    eps,
    fixed_args,
    max_side,
    max_numel,
    center_last=False,
    keep=None,
    no_bias=False,
    momentum_none=False,
):
    """A Case for ``layout`` (grown to ``need`` elements per set, or rejected; ``keep``: a predicate
    the grown layout must satisfy, e.g. pinned sides; ``no_bias``: never a bias)."""
    grown = _grow(spec, layout, need, max_side, max_numel)
    assume(grown is not None and (keep is None or keep(grown)))
    layout = grown
    p = layout.plan(spec)
    dtype = draw(st.sampled_from(dtypes))
    has_running, use_batch = mode
    args: dict[str, Any] = {}
    if layout.normalized_shape is not None:
        args["normalized_shape"] = layout.normalized_shape
    if layout.num_groups is not None:
        args["num_groups"] = layout.num_groups
    if layout.reduce_axes is not None:
        args["reduce_axes"] = layout.reduce_axes
    args["eps"] = draw(eps) if isinstance(eps, st.SearchStrategy) else eps
    if spec.batch_stats_flag is not None:
        args[spec.batch_stats_flag] = use_batch
    if has_running:
        args["momentum"] = draw(momenta(none=True) if momentum_none else momenta())
    fixed_arrays = {k: v for k, v in fixed_args.items() if k in spec.extra_arrays}
    args.update({k: v for k, v in fixed_args.items() if k not in fixed_arrays})

    x, regime = draw(_inputs(p, dtype, regimes))
    if center_last:
        x64 = x.astype(np.float64)
        for _ in range(2):  # the second pass removes the first one's rounding (large offsets)
            x64 = x64 - x64.mean(axis=-1, keepdims=True)
        x = x64.astype(x.dtype)

    has_bias = spec.has_bias and not no_bias
    if affine is None:
        weight = draw(st.booleans())
        bias = has_bias and draw(st.booleans())
    else:
        weight, bias = affine, affine and has_bias
    seed = draw(_SEEDS)
    w, b = _params(seed, spec, p, dtype, weight=weight, bias=bias)
    rm = rv = None
    if has_running:
        rm, rv = _buffers(seed, spec, p, dtype)
    extra = {}
    if spec.mix:
        extra = {k: draw(mixture_logits(len(spec.mix), dtype=dtype)) for k in ("mean_weight", "var_weight")}
    extra.update({k: np.asarray(v, dtype=np.float64).astype(_dt.np_dtype(dtype)) for k, v in fixed_arrays.items()})
    return Case(spec.name, x, args, weight=w, bias=b, running_mean=rm, running_var=rv, regime=regime, **extra)


def _check_axes(spec, axes) -> tuple[int, ...]:
    if isinstance(axes, int):
        axes = (axes,)
    axes = tuple(axes)
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise InvalidArgument(f"axes={axes!r} must be a non-empty tuple of ints")
    if len({a for a in axes}) != len(axes):
        raise InvalidArgument(f"axes={axes!r} repeats an axis")
    if spec.split or spec.mix:
        raise InvalidArgument(f"{spec.name}: an explicit axis set does not apply (grouped or mixed statistics)")
    return axes


def _eps_strategy(spec, eps):
    if eps is None:
        return eps_values(spec=spec)
    if isinstance(eps, st.SearchStrategy):
        return eps
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise InvalidArgument(f"eps={eps!r} must be a non-negative number, a strategy, or None (draw)")
    return float(eps)


def cases(
    norm,
    *,
    dtypes=("float32",),
    regimes=REGIMES,
    affine: bool | None = None,
    running_stats: bool | None = None,
    batch_stats: bool | None = None,
    eps=None,
    min_rank: int | None = None,
    max_rank: int = 5,
    max_side: int = 6,
    max_numel: int = 4096,
    axes: tuple[int, ...] | None = None,
    ranks=None,
    shape=None,
    pinned=None,
    bias: bool | None = None,
    momentum_none: bool = False,
    variants: bool = False,
) -> st.SearchStrategy[Case]:
    """Valid cases of ``norm``: shape, arguments, input (by regime), affine parameters, running buffers.

    - ``axes``: an explicit axis set S instead of the spec's (an axis-set variant, e.g. ``(1,)`` for
      ConvNeXt's channels-first LayerNorm): the rank is at least ``max(axes) + 1``, the cases carry
      ``reduce_axes`` (never passed to the implementation) and ``normalized_shape`` names the sizes of
      those axes; the affine parameters live on S for LayerNorm-like specs, else on every axis
      neither reduced nor the batch axis. Such cases use batch statistics and no running buffers.

    - ``dtypes``: the case dtypes to draw from (the input, weight and bias dtype).
    - ``regimes``: input regimes to draw from (:data:`REGIMES`).
    - ``affine``: True = weight (and bias, if the norm has one); False = neither; None = each drawn
      independently.
    - ``running_stats``: True/False = running_mean/running_var given or not; None = drawn where the
      spec has them. Buffers are float32 for 16-bit cases, else the case dtype; running_var > 0.
    - ``batch_stats``: the spec's batch-statistics flag (``training``, ``use_input_stats``);
      None = drawn. Without batch statistics the running buffers are always given; with them, every
      reduction set has at least ``spec.min_reduce_size_training`` elements (a reduced axis is grown
      where the drawn shape is too small).
    - ``eps``: a number, a strategy (e.g. ``st.none()``), or None to draw from :func:`eps_values`.

    Constraints of a target that accepts only some inputs (``normcheck check --rank/--shape/--arg``):

    - ``ranks``: the input ranks to draw (e.g. ``(4,)`` for a layer that takes 4-D input only);
      ``min_rank``/``max_rank`` are then ignored.
    - ``shape``: the input shape, an int per axis or None for a free side; its length is the rank.
    - ``pinned``: canonical arguments every case has: ``num_groups`` (C is drawn as a multiple of it),
      ``eps``, ``momentum`` (also the momentum a state property uses for a case without buffers),
      ``normalized_shape`` (a tuple of sizes, None for a free one; its length is the number of
      normalized axes) and ``C`` (the channel count, input axis 1).
    - ``bias``: False draws no bias (a layer with a weight but no bias); None or True: as ``affine`` says.

    ``momentum`` is drawn (:func:`momenta`) when running buffers are given; ``momentum_none=True``
    (a module target whose constructor accepts momentum=None, :meth:`normcheck.target.Target.case_options`)
    draws ``None`` among the values too (torch's cumulative average; the default draws none).
    ``variants=True`` draws ``Case.variant`` too, the configuration a native implementation with
    configuration axes runs the case in (:meth:`normcheck.adapters.Impl.configuration`; shrinks to 0,
    every option at its default). Shrinks towards rank
    ``max(2, spec.min_rank)`` (the smallest of ``ranks``), sides 1, the "normal" regime, no affine,
    no running buffers.
    """
    spec = _get_spec(norm)
    dtypes = _check_names("dtypes", dtypes, _dt.FLOAT_DTYPES)
    regimes = _check_names("regimes", regimes, _ALL_REGIMES)
    if axes is not None:  # an axis-set variant is judged on its batch statistics, without buffers
        if running_stats or batch_stats is False:
            raise InvalidArgument("an explicit axis set is checked with batch statistics and no running buffers")
        running_stats, batch_stats = False, True
    modes = _modes(spec, running_stats, batch_stats)
    if bias not in (None, True, False):
        raise InvalidArgument(f"bias={bias!r} must be None, True or False")
    if axes is not None:
        axes = _check_axes(spec, axes)
    cons = _constraints(spec, ranks, shape, pinned, axes, min_rank, max_rank)
    fixed: dict[str, Any] = {}
    if cons is not None and "eps" in cons.pinned:
        if eps is not None:
            raise InvalidArgument("eps is given twice (eps= and pinned['eps'])")
        eps = st.just(cons.pinned["eps"])
    if cons is not None and "momentum" in cons.pinned:
        fixed["momentum"] = cons.pinned["momentum"]
    eps_s = _eps_strategy(spec, eps)
    keep = None
    if cons is not None:
        lay = _constrained_layouts(spec, cons, axes, max_side, max_numel)

        def keep(layout, cons=cons):
            return _fits(cons, layout.shape, axes)

    elif axes is None:
        lay = layouts(spec, min_rank=min_rank, max_rank=max_rank, max_side=max_side, max_numel=max_numel)
    else:
        need_rank = max(max(a + 1 if a >= 0 else -a for a in axes), min_rank or 1, 2)
        lay = shapes(spec, min_rank=max(need_rank, spec.min_rank), max_rank=max(max_rank, need_rank),
                     max_side=max_side, max_numel=max_numel).flatmap(lambda shape: _layout_for(spec, shape, axes))  # fmt: skip

    @st.composite
    def _case(draw):
        mode = draw(st.sampled_from(modes))
        layout = draw(lay)
        return draw(
            _build(
                spec,
                layout,
                dtypes,
                regimes,
                mode=mode,
                need=_need(spec, mode[1]),
                affine=affine,
                eps=eps_s,
                fixed_args=fixed,
                max_side=max_side,
                max_numel=max_numel,
                keep=keep,
                no_bias=bias is False,
                momentum_none=momentum_none,
            )
        )

    if not variants:
        return _case()
    return st.tuples(_case(), st.integers(0, VARIANTS - 1)).map(lambda cv: cv[0].with_(variant=cv[1]))


# --- constraints: ranks, shapes and pinned arguments -----------------------------------------

_PINNABLE = ("C", "num_groups", "eps", "momentum", "normalized_shape")


class _Constraints(NamedTuple):
    ranks: tuple[int, ...]
    shape: tuple[int | None, ...] | None
    pinned: dict[str, Any]


def _side(name, v) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise InvalidArgument(f"{name}: {v!r} is not a positive int (or None for a free side)")
    return int(v)


def _constraints(spec, ranks, shape, pinned, axes, min_rank, max_rank) -> _Constraints | None:
    """The validated constraints of :func:`cases` (None when there are none)."""
    if ranks is None and shape is None and not pinned:
        return None
    lo_spec = max(1, spec.min_rank)
    if shape is not None:
        if isinstance(shape, str | bytes) or not hasattr(shape, "__len__"):
            raise InvalidArgument(f"shape={shape!r} must be a tuple of sizes (None for a free side)")
        shape = tuple(_side("shape", v) for v in shape)
        if len(shape) < lo_spec:
            raise InvalidArgument(f"shape={shape}: {spec.name} needs rank >= {lo_spec}")
    if ranks is not None:
        ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
        if not ranks:
            raise InvalidArgument("ranks must not be empty")
        for r in ranks:
            _check_int("ranks", r, lo_spec)
            if r > 8:
                raise InvalidArgument(f"ranks: {r} is more than 8 axes")
        ranks = tuple(sorted(set(ranks)))
        if shape is not None and len(shape) not in ranks:
            raise InvalidArgument(f"shape={shape} has rank {len(shape)}, not one of ranks={ranks}")
    if shape is not None:
        ranks = (len(shape),)
    if ranks is None:
        lo = max(2, spec.min_rank) if min_rank is None else min_rank
        ranks = tuple(range(lo, max(lo, max_rank) + 1))
    pinned = dict(pinned or {})
    bad = [k for k in pinned if k not in _PINNABLE]
    if bad:
        raise InvalidArgument(f"pinned: unknown {bad}; known: {', '.join(_PINNABLE)}")
    if "num_groups" in pinned:
        if spec.shape_arg != "num_groups":
            raise InvalidArgument(f"pinned num_groups: {spec.name} has no groups")
        _check_int("pinned num_groups", pinned["num_groups"], 1)
    if "normalized_shape" in pinned:
        if spec.shape_arg != "normalized_shape":
            raise InvalidArgument(f"pinned normalized_shape: {spec.name} takes no normalized_shape")
        ns = pinned["normalized_shape"]
        ns = (ns,) if ns is None or isinstance(ns, int) else tuple(ns)
        ns = tuple(_side("pinned normalized_shape", v) for v in ns)
        if not ns:
            raise InvalidArgument("pinned normalized_shape must name at least one axis")
        if axes is not None and len(ns) != len(axes):
            raise InvalidArgument(f"pinned normalized_shape {ns} does not match axes={axes}")
        pinned["normalized_shape"] = ns
    if "C" in pinned:
        pinned["C"] = _side("pinned C", pinned["C"])
        if shape is not None and len(shape) > 1 and shape[1] not in (None, pinned["C"]):
            raise InvalidArgument(f"pinned C={pinned['C']} contradicts shape={shape}")
    for k in ("eps", "momentum"):
        v = pinned.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0):
            raise InvalidArgument(f"pinned {k}={v!r} must be a non-negative number or None")
    if "momentum" in pinned and pinned["momentum"] is not None and pinned["momentum"] > 1:
        raise InvalidArgument(f"pinned momentum={pinned['momentum']} must be in [0, 1]")
    cons = _Constraints(ranks, shape, pinned)
    ok = []
    for r in ranks:
        sides = _pinned_sides(cons, r, axes)
        if sides is None:
            continue
        g = pinned.get("num_groups")
        if g and 1 in sides and sides[1] % g:
            raise InvalidArgument(f"C={sides[1]} is not a multiple of the pinned num_groups={g}")
        ok.append(r)
    if not ok:
        raise InvalidArgument(f"no input rank in {ranks} fits the constraints (shape, normalized_shape, axes)")
    return cons._replace(ranks=tuple(ok))


def _pinned_sides(cons: _Constraints, rank: int, axes) -> dict[int, int] | None:
    """{input axis: size} the constraints fix at ``rank`` (None: the rank cannot satisfy them)."""
    sides: dict[int, int] = {}

    def put(i, v):
        if v is None:
            return True
        if sides.get(i, v) != v:
            return False
        sides[i] = v
        return True

    if cons.shape is not None:
        if len(cons.shape) != rank:
            return None
        for i, v in enumerate(cons.shape):
            put(i, v)
    if "C" in cons.pinned:
        if rank < 2 or not put(1, cons.pinned["C"]):
            return None
    ns = cons.pinned.get("normalized_shape")
    if ns is not None:
        if axes is not None:
            if not all(-rank <= a < rank for a in axes):
                return None
            where = sorted({a % rank for a in axes})
        else:
            if len(ns) > rank:
                return None
            where = list(range(rank - len(ns), rank))
        for i, v in zip(where, ns, strict=True):
            if not put(i, v):
                return None
    if axes is not None and not all(-rank <= a < rank for a in axes):
        return None
    return sides


def _fits(cons: _Constraints, shape, axes) -> bool:
    sides = _pinned_sides(cons, len(shape), axes)
    g = cons.pinned.get("num_groups")
    return (
        sides is not None
        and all(shape[i] == v for i, v in sides.items())
        and not (g and len(shape) > 1 and shape[1] % g)
    )


@st.composite
def _constrained_layouts(draw, spec, cons: _Constraints, axes, max_side, max_numel):
    """A Layout under ``cons``: a rank from ``cons.ranks``, pinned sides as given, C a multiple of a
    pinned num_groups, the other sides drawn (at most ``max_side``, about ``max_numel`` elements)."""
    rank = draw(st.sampled_from(cons.ranks))
    sides = _pinned_sides(cons, rank, axes)
    assume(sides is not None)
    g = cons.pinned.get("num_groups")
    numel = math.prod(sides.values())
    shape = []
    for i in range(rank):
        if i in sides:
            shape.append(sides[i])
            continue
        top = max(1, min(max_side, max_numel // max(numel, 1)))
        m = g if (i == 1 and g) else 1
        side = m * draw(st.integers(1, max(1, top // m)))
        shape.append(side)
        numel *= side
    shape = tuple(shape)
    if axes is not None:
        return draw(_layout_for(spec, shape, axes))
    if spec.shape_arg == "normalized_shape":
        ns = cons.pinned.get("normalized_shape")
        k = len(ns) if ns is not None else draw(st.integers(1, min(3, rank)))
        return Layout(shape, normalized_shape=tuple(shape[rank - k :]))
    if spec.shape_arg == "num_groups":
        return Layout(shape, num_groups=g or draw(st.sampled_from(_divisors(shape[1]))))
    return Layout(shape)


# --- identities ------------------------------------------------------------------------------


def _find_identity(identity) -> _spec.Identity:
    if isinstance(identity, _spec.Identity):
        return identity
    for s in _spec.load().values():
        for i in s.identities:
            if i.name == identity:
                return i
    raise InvalidArgument(f"unknown identity {identity!r}")


def _resolve(value, shape):
    """An identity argument against the input shape: "C", "rest", "last", "none" or a literal."""
    if not isinstance(value, str):
        return value
    table = {
        "C": shape[1] if len(shape) > 1 else None,
        "rest": tuple(shape[1:]),
        "last": tuple(shape[-1:]),
        "none": None,
    }
    if value not in table:
        raise InvalidArgument(f"unknown identity symbol {value!r}")
    return table[value]


def _uses_batch_stats(spec, args) -> bool:
    flag = spec.batch_stats_flag
    return True if flag is None else bool(args.get(flag, spec.defaults.get(flag, True)))


def identity_cases(
    identity,
    *,
    dtypes=("float32",),
    regimes=REGIMES,
    affine: bool | None = None,
    eps=None,
    max_rank: int = 5,
    max_side: int = 6,
    max_numel: int = 4096,
) -> st.SearchStrategy[Case]:
    """lhs cases for a spec identity (an :class:`~normcheck.spec.Identity` or its name).

    The arguments named in ``identity.args`` are fixed, resolved against the drawn shape ("C" ->
    shape[1], "rest" -> shape[1:], "last" -> shape[-1:]); the rank is at least ``identity.min_rank``.
    The lhs uses batch statistics (its flag at the spec default unless the identity sets it) and no
    running buffers unless it needs them. Identities map reduction sets onto reduction sets, so the
    lhs sets (and a mixture's component sets, which a one-hot identity maps onto the rhs's) are made
    large enough for whichever side uses batch statistics. Identities with
    ``affine = "none"`` get no weight or bias; ``input = "center_last"`` subtracts the mean over the
    last axis (in float64, twice, then cast) so that the input has zero mean there up to rounding.
    """
    ident = _find_identity(identity)
    spec = _get_spec(ident.lhs)
    rhs = _get_spec(ident.rhs["norm"])
    dtypes = _check_names("dtypes", dtypes, _dt.FLOAT_DTYPES)
    regimes = _check_names("regimes", regimes, _ALL_REGIMES)
    eps_s = _eps_strategy(spec, eps)
    if ident.rhs.get("affine", "same") == "none":
        if affine:
            raise InvalidArgument(f"identity {ident.name} holds without affine parameters only")
        affine = False
    use_batch = _uses_batch_stats(spec, ident.args)
    need = max(_need(spec, use_batch), _need(rhs, _uses_batch_stats(rhs, ident.rhs.get("args", {}))))
    min_rank = max(2, spec.min_rank, rhs.min_rank, ident.min_rank)
    shp = shapes(spec, min_rank=min_rank, max_rank=max_rank, max_side=max_side, max_numel=max_numel)
    if ident.input not in ("any", "center_last"):
        raise InvalidArgument(f"identity {ident.name}: unknown input transformation {ident.input!r}")

    @st.composite
    def _case(draw):
        layout = draw(shp.flatmap(lambda shape: _layout_for(spec, shape)))
        fixed = {k: _resolve(v, layout.shape) for k, v in ident.args.items()}
        layout = layout._replace(**{k: fixed[k] for k in ("normalized_shape", "num_groups") if k in fixed})
        grown = _grow(spec, layout, need, max_side, max_numel, every_component=True)
        assume(grown is not None)
        fixed = {k: _resolve(v, grown.shape) for k, v in ident.args.items()}  # re-resolve on the grown shape
        grown = grown._replace(**{k: fixed[k] for k in ("normalized_shape", "num_groups") if k in fixed})
        return draw(
            _build(
                spec,
                grown,
                dtypes,
                regimes,
                mode=(not use_batch, use_batch),
                need=need,
                affine=affine,
                eps=eps_s,
                fixed_args={k: v for k, v in fixed.items() if k not in ("normalized_shape", "num_groups")},
                max_side=max_side,
                max_numel=max_numel,
                center_last=ident.input == "center_last",
            )
        )

    return _case()
