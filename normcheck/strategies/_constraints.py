"""Constraints of a target that accepts only some inputs (ranks, shapes, pinned arguments)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck.strategies._common import check_int
from normcheck.strategies._shapes import Layout, divisors, layout_for

PINNABLE = ("C", "num_groups", "eps", "momentum", "normalized_shape")


class Constraints(NamedTuple):
    ranks: tuple[int, ...]
    shape: tuple[int | None, ...] | None
    pinned: dict[str, Any]


def side_of(name, v) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise InvalidArgument(f"{name}: {v!r} is not a positive int (or None for a free side)")
    return int(v)


def constraints_for(spec, ranks, shape, pinned, axes, min_rank, max_rank) -> Constraints | None:
    """The validated constraints of :func:`cases` (None when there are none)."""
    if ranks is None and shape is None and not pinned:
        return None
    lo_spec = max(1, spec.min_rank)
    if shape is not None:
        if isinstance(shape, str | bytes) or not hasattr(shape, "__len__"):
            raise InvalidArgument(f"shape={shape!r} must be a tuple of sizes (None for a free side)")
        shape = tuple(side_of("shape", v) for v in shape)
        if len(shape) < lo_spec:
            raise InvalidArgument(f"shape={shape}: {spec.name} needs rank >= {lo_spec}")
    if ranks is not None:
        ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
        if not ranks:
            raise InvalidArgument("ranks must not be empty")
        for r in ranks:
            check_int("ranks", r, lo_spec)
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
    bad = [k for k in pinned if k not in PINNABLE]
    if bad:
        raise InvalidArgument(f"pinned: unknown {bad}; known: {', '.join(PINNABLE)}")
    if "num_groups" in pinned:
        if spec.shape_arg != "num_groups":
            raise InvalidArgument(f"pinned num_groups: {spec.name} has no groups")
        check_int("pinned num_groups", pinned["num_groups"], 1)
    if "normalized_shape" in pinned:
        if spec.shape_arg != "normalized_shape":
            raise InvalidArgument(f"pinned normalized_shape: {spec.name} takes no normalized_shape")
        ns = pinned["normalized_shape"]
        ns = (ns,) if ns is None or isinstance(ns, int) else tuple(ns)
        ns = tuple(side_of("pinned normalized_shape", v) for v in ns)
        if not ns:
            raise InvalidArgument("pinned normalized_shape must name at least one axis")
        if axes is not None and len(ns) != len(axes):
            raise InvalidArgument(f"pinned normalized_shape {ns} does not match axes={axes}")
        pinned["normalized_shape"] = ns
    if "C" in pinned:
        pinned["C"] = side_of("pinned C", pinned["C"])
        if shape is not None and len(shape) > 1 and shape[1] not in (None, pinned["C"]):
            raise InvalidArgument(f"pinned C={pinned['C']} contradicts shape={shape}")
    for k in ("eps", "momentum"):
        v = pinned.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0):
            raise InvalidArgument(f"pinned {k}={v!r} must be a non-negative number or None")
    if "momentum" in pinned and pinned["momentum"] is not None and pinned["momentum"] > 1:
        raise InvalidArgument(f"pinned momentum={pinned['momentum']} must be in [0, 1]")
    cons = Constraints(ranks, shape, pinned)
    ok = []
    for r in ranks:
        sides = pinned_sides(cons, r, axes)
        if sides is None:
            continue
        g = pinned.get("num_groups")
        if g and 1 in sides and sides[1] % g:
            raise InvalidArgument(f"C={sides[1]} is not a multiple of the pinned num_groups={g}")
        ok.append(r)
    if not ok:
        raise InvalidArgument(f"no input rank in {ranks} fits the constraints (shape, normalized_shape, axes)")
    return cons._replace(ranks=tuple(ok))


def pinned_sides(cons: Constraints, rank: int, axes) -> dict[int, int] | None:
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


def fits(cons: Constraints, shape, axes) -> bool:
    sides = pinned_sides(cons, len(shape), axes)
    g = cons.pinned.get("num_groups")
    return (
        sides is not None
        and all(shape[i] == v for i, v in sides.items())
        and not (g and len(shape) > 1 and shape[1] % g)
    )


@st.composite
def constrained_layouts(draw, spec, cons: Constraints, axes, max_side, max_numel):
    """A Layout under ``cons``: a rank from ``cons.ranks``, pinned sides as given, C a multiple of a
    pinned num_groups, the other sides drawn (at most ``max_side``, about ``max_numel`` elements)."""
    rank = draw(st.sampled_from(cons.ranks))
    sides = pinned_sides(cons, rank, axes)
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
        return draw(layout_for(spec, shape, axes))
    if spec.shape_arg == "normalized_shape":
        ns = cons.pinned.get("normalized_shape")
        k = len(ns) if ns is not None else draw(st.integers(1, min(3, rank)))
        return Layout(shape, normalized_shape=tuple(shape[rank - k :]))
    if spec.shape_arg == "num_groups":
        return Layout(shape, num_groups=g or draw(st.sampled_from(divisors(shape[1]))))
    return Layout(shape)
