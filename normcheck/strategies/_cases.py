"""Cases: a layout, arguments, an input, affine parameters and running buffers."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import dtypes as _dt
from normcheck.case import Case
from normcheck.strategies._common import ALL_REGIMES, REGIMES, SEEDS, VARIANTS, check_names, get_spec
from normcheck.strategies._constraints import constrained_layouts, constraints_for, fits
from normcheck.strategies._shapes import grow, layout_for, layouts, shapes
from normcheck.strategies._values import draw_inputs, eps_values, mixture_logits, momenta


def valid_modes(spec, running_stats, batch_stats) -> list[tuple[bool, bool]]:
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


def affine_params(seed, spec, p, dtype, *, weight, bias):
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


def running_buffers(seed, spec, p, dtype):
    """running_mean (standard normal) and running_var (0.5..2): float32 for 16-bit cases."""
    rng = np.random.default_rng([seed, 2])
    shape = tuple(p.view_shape[a] for s in spec.running_stats["shape"] for a in p.symbols[s])
    bdt = np.dtype(np.float32) if _dt.is_16bit(dtype) else _dt.np_dtype(dtype)
    return rng.standard_normal(shape).astype(bdt), rng.uniform(0.5, 2.0, size=shape).astype(bdt)


def min_set_size(spec, use_batch: bool) -> int:
    return spec.min_reduce_size_training if use_batch else 1


@st.composite
def build_case(
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
    grown = grow(spec, layout, need, max_side, max_numel)
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

    x, regime = draw(draw_inputs(p, dtype, regimes))
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
    seed = draw(SEEDS)
    w, b = affine_params(seed, spec, p, dtype, weight=weight, bias=bias)
    rm = rv = None
    if has_running:
        rm, rv = running_buffers(seed, spec, p, dtype)
    extra = {}
    if spec.mix:
        extra = {k: draw(mixture_logits(len(spec.mix), dtype=dtype)) for k in ("mean_weight", "var_weight")}
    extra.update({k: np.asarray(v, dtype=np.float64).astype(_dt.np_dtype(dtype)) for k, v in fixed_arrays.items()})
    return Case(spec.name, x, args, weight=w, bias=b, running_mean=rm, running_var=rv, regime=regime, **extra)


def check_axes(spec, axes) -> tuple[int, ...]:
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


def eps_strategy(spec, eps):
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
    spec = get_spec(norm)
    dtypes = check_names("dtypes", dtypes, _dt.FLOAT_DTYPES)
    regimes = check_names("regimes", regimes, ALL_REGIMES)
    if axes is not None:  # an axis-set variant is judged on its batch statistics, without buffers
        if running_stats or batch_stats is False:
            raise InvalidArgument("an explicit axis set is checked with batch statistics and no running buffers")
        running_stats, batch_stats = False, True
    modes = valid_modes(spec, running_stats, batch_stats)
    if bias not in (None, True, False):
        raise InvalidArgument(f"bias={bias!r} must be None, True or False")
    if axes is not None:
        axes = check_axes(spec, axes)
    cons = constraints_for(spec, ranks, shape, pinned, axes, min_rank, max_rank)
    fixed: dict[str, Any] = {}
    if cons is not None and "eps" in cons.pinned:
        if eps is not None:
            raise InvalidArgument("eps is given twice (eps= and pinned['eps'])")
        eps = st.just(cons.pinned["eps"])
    if cons is not None and "momentum" in cons.pinned:
        fixed["momentum"] = cons.pinned["momentum"]
    eps_s = eps_strategy(spec, eps)
    keep = None
    if cons is not None:
        lay = constrained_layouts(spec, cons, axes, max_side, max_numel)

        def keep(layout, cons=cons):
            return fits(cons, layout.shape, axes)

    elif axes is None:
        lay = layouts(spec, min_rank=min_rank, max_rank=max_rank, max_side=max_side, max_numel=max_numel)
    else:
        need_rank = max(max(a + 1 if a >= 0 else -a for a in axes), min_rank or 1, 2)
        lay = shapes(spec, min_rank=max(need_rank, spec.min_rank), max_rank=max(max_rank, need_rank),
                     max_side=max_side, max_numel=max_numel).flatmap(lambda shape: layout_for(spec, shape, axes))  # fmt: skip

    @st.composite
    def _case(draw):
        mode = draw(st.sampled_from(modes))
        layout = draw(lay)
        return draw(
            build_case(
                spec,
                layout,
                dtypes,
                regimes,
                mode=mode,
                need=min_set_size(spec, mode[1]),
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
