"""Shapes and layouts: input shapes, a norm's arguments on them, reduction sets grown to a size."""

from __future__ import annotations

import math
from typing import NamedTuple

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import spec as _spec
from normcheck.strategies._common import check_int, get_spec


def rank_bounds(spec, min_rank, max_rank, min_side, max_side, max_numel):
    lo = max(2, spec.min_rank) if min_rank is None else min_rank
    check_int("min_rank", lo, 1)
    check_int("max_rank", max_rank)
    check_int("min_side", min_side, 1)
    check_int("max_side", max_side, min_side)
    check_int("max_numel", max_numel, 1)
    if lo < spec.min_rank:
        raise InvalidArgument(f"{spec.name} needs rank >= {spec.min_rank}, got min_rank={lo}")
    hi = max_rank
    while hi >= lo and min_side**hi > max_numel:
        hi -= 1
    if hi < lo:
        raise InvalidArgument(f"no shape of rank {lo}..{max_rank} with sides >= {min_side} has <= {max_numel} elements")
    return lo, hi


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
def draw_shapes(draw, lo, hi, min_side, max_side, max_numel):
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
    spec = get_spec(norm)
    lo, hi = rank_bounds(spec, min_rank, max_rank, min_side, max_side, max_numel)
    return draw_shapes(lo, hi, min_side, max_side, max_numel)


def divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


@st.composite
def layout_for(draw, spec, shape, axes=None):
    if axes is not None:  # the set S is given: normalized_shape (if any) names the sizes of its axes
        red = tuple(sorted({a % len(shape) for a in axes}))
        ns = tuple(shape[a] for a in red) if spec.shape_arg == "normalized_shape" else None
        return Layout(shape, normalized_shape=ns, reduce_axes=red)
    if spec.shape_arg == "normalized_shape":
        k = draw(st.integers(1, min(3, len(shape))))
        return Layout(shape, normalized_shape=tuple(shape[len(shape) - k :]))
    if spec.shape_arg == "num_groups":
        return Layout(shape, num_groups=draw(st.sampled_from(divisors(shape[1]))))
    return Layout(shape)


def layouts(norm, *, min_rank=None, max_rank=5, min_side=1, max_side=6, max_numel=4096) -> st.SearchStrategy[Layout]:
    """A shape from :func:`shapes` with the spec's shape argument drawn to fit it.

    ``normalized_shape``: the last 1..min(3, rank) axes (the whole shape allowed, as in torch);
    ``num_groups``: a divisor of C. Shrinks towards one normalized axis and one group.
    """
    spec = get_spec(norm)
    return shapes(
        spec, min_rank=min_rank, max_rank=max_rank, min_side=min_side, max_side=max_side, max_numel=max_numel
    ).flatmap(lambda shape: layout_for(spec, shape))


def view_to_input(spec, p) -> dict[int, int]:
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


def grow(
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
        layout = grow_set(spec, layout, p, axes, size, need, max_side, max_numel)
        if layout is None:
            return None
    return None


def grow_set(spec, layout: Layout, p, axes, size: int, need: int, max_side: int, max_numel: int) -> Layout | None:
    """Grow one input axis of the view axes ``axes`` (a set of ``size`` elements) to reach ``need``."""
    to_input = {a: a for a in range(len(layout.shape))} if layout.reduce_axes else view_to_input(spec, p)
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
