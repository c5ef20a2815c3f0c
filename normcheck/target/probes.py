"""Probing a target (``t``, a :class:`~normcheck.target.Target`) with small fixed cases: a case within its
constraints, whether it accepts one, its ranks and how it takes ``normalized_shape``."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.target.constructor import ROLE_ORDER, annotation_text
from normcheck.target.errors import TargetHung, first_line

#: Probe inputs per rank: small, with distinct sides so a layer that broadcasts wrongly raises.
PROBE_SHAPES = {2: (3, 4), 3: (3, 4, 5), 4: (3, 4, 5, 2), 5: (3, 4, 2, 3, 2)}


def probe_case(t, dtype: str = "float32", rank: int | None = None, *, buffers: bool = False, ns_len: int = 1):
    """A small fixed case within the constraints (training mode; None if ``rank`` cannot fit them)."""
    from normcheck import dtypes as _dtypes
    from normcheck.case import Case, fixed_cases

    s, cons = t.spec, t.constraints
    if rank is None:
        rank = t.ranks()[0]
    if s.name not in ROLE_ORDER:  # a norm from a new spec file: its fixed cases
        found = [c for c in fixed_cases(s.name, dtype, axes=t.axes) if c.x.ndim == rank]
        return found[0] if found else None
    pinned = cons.get("pinned") or {}
    shape = list(PROBE_SHAPES.get(rank, (3, 4) + (2,) * (rank - 2)))
    if rank < s.min_rank:
        return None
    fixed_c = False
    if cons.get("shape"):
        if len(cons["shape"]) != rank:
            return None
        for i, v in enumerate(cons["shape"]):
            if v is not None:
                shape[i] = v
                fixed_c |= i == 1
    if "C" in pinned and rank > 1:
        shape[1], fixed_c = pinned["C"], True
    g = pinned.get("num_groups")
    if g and rank > 1 and not fixed_c:
        shape[1] = 2 * g if 2 * g <= 64 else g
    ns_pin = pinned.get("normalized_shape")
    args: dict[str, Any] = {"eps": pinned.get("eps", 1e-5)}
    red = None
    if t.axes is not None:
        if not all(-rank <= ax < rank for ax in t.axes):
            return None
        red = tuple(sorted({ax % rank for ax in t.axes}))
        for i, v in zip(red, ns_pin or (), strict=False):
            if v is not None:
                shape[i] = v
        args["reduce_axes"] = red
        if s.shape_arg == "normalized_shape":
            args["normalized_shape"] = tuple(shape[i] for i in red)
    elif s.shape_arg == "normalized_shape":
        k = len(ns_pin) if ns_pin else ns_len
        if k > rank:
            return None
        for j, v in enumerate(ns_pin or ()):
            if v is not None:
                shape[rank - k + j] = v
        args["normalized_shape"] = tuple(shape[rank - k :])
    elif s.shape_arg == "num_groups":
        args["num_groups"] = g or (2 if shape[1] % 2 == 0 else 1)
    if s.batch_stats_flag:
        args[s.batch_stats_flag] = True
    buffers = buffers and s.has_running_stats and red is None and t.running_stats
    if buffers or "momentum" in pinned:
        args["momentum"] = pinned.get("momentum", 0.1)
    shape = tuple(shape)
    p = _spec.plan(
        s,
        shape,
        normalized_shape=args.get("normalized_shape"),
        num_groups=args.get("num_groups"),
        reduce_axes=red,
    )
    rng = np.random.default_rng(rank)
    dt = _dtypes.np_dtype(dtype)
    x = (rng.normal(size=shape) * 2 + 0.5).astype(dt)
    w = b = rm = rv = None
    if not cons.get("no_affine"):
        w = rng.uniform(0.5, 1.5, size=p.affine_shape).astype(dt)
        if s.has_bias and not cons.get("no_bias"):
            b = rng.normal(size=p.affine_shape).astype(dt)
    if buffers:
        bshape = tuple(p.view_shape[ax] for sym in s.running_stats["shape"] for ax in p.symbols[sym])
        bdt = np.dtype(np.float32) if _dtypes.is_16bit(dtype) else dt
        rm, rv = rng.normal(size=bshape).astype(bdt), rng.uniform(0.5, 2.0, size=bshape).astype(bdt)
    return Case(s.name, x, args, weight=w, bias=b, running_mean=rm, running_var=rv)


def try_case(t, case) -> str | None:
    """None if the target returns an output of the input's shape on ``case``, else why not."""
    try:
        y = t(case.x.copy(), **case.kwargs())
    except TargetHung:
        raise
    except Exception as e:
        return first_line(e)
    if np.shape(y) != case.x.shape:
        return f"returned shape {np.shape(y)} for input shape {case.x.shape}"
    return None


def sample_rank(t) -> int:
    for r in (3, *t.ranks()):
        if r in t.ranks() and t.probe_case(rank=r) is not None:
            return r
    return t.ranks()[0]


def probe_normalized_shape(t) -> None:
    """How an unannotated ``normalized_shape`` parameter is passed (one int or a list), and whether
    the layer takes more than one normalized axis."""
    s, ctor = t.spec, t.ctor
    if s.shape_arg != "normalized_shape" or ctor.mode != "signature" or ctor.features_int or t.axes is not None:
        return
    name = next((n for n, r in ctor.assign.items() if r == "features"), None)
    if name != "normalized_shape" or name in ctor.fixed:
        return
    ann = annotation_text(ctor.by_name[name]).lower()
    if any(k in ann for k in ("list", "tuple", "sequence", "size", "shape", "iterable")):
        return
    rank = 3 if 3 in t.ranks() else t.ranks()[-1]
    one = t.probe_case(rank=rank)
    if one is None:
        return
    for style in ("int", "list"):
        ctor.ns_style = style
        if try_case(t, one) is None:
            break
    else:
        ctor.ns_style = "int"
        return
    pins = t.constraints.setdefault("pinned", {})
    two = t.probe_case(rank=rank, ns_len=2) if "normalized_shape" not in pins else None
    if two is not None:
        why = try_case(t, two)
        if why is not None:
            pins["normalized_shape"] = (None,)
            t.notes.append(f"one normalized axis only (normalized_shape of two axes: {why})")


def probe_ranks(t) -> None:
    """Restrict the ranks to those the target accepts: from a class name ending in 1d/2d/3d, else by
    calling it on a small input of each rank. A restriction is a note, never a deviation."""
    import re

    cons = t.constraints
    if cons.get("ranks") or cons.get("shape"):
        return
    name = getattr(t.obj, "__name__", "") if inspect.isclass(t.obj) else ""
    m = re.search(r"([123])d$", name, re.IGNORECASE)
    if m:
        r = int(m.group(1)) + 2
        ranks = (2, 3) if t.spec.name == "batch_norm" and r == 3 else (r,)
        ranks = tuple(x for x in ranks if t.probe_case(rank=x) is not None) or ranks
        cons["ranks"] = ranks
        t.notes.append(f"inputs of rank {' or '.join(map(str, ranks))} (the class name ends in {m.group(0)})")
        return
    accepted, refused = [], []
    for r in t.ranks():
        case = t.probe_case(rank=r)
        if case is None:
            continue
        try:
            why = try_case(t, case)
        except TargetHung:
            return
        (refused.append((r, why)) if why else accepted.append(r))
    if accepted and refused:
        cons["ranks"] = tuple(accepted)
        r, why = refused[0]
        t.notes.append(f"inputs of rank {', '.join(map(str, accepted))} only (a probe on rank {r} gave {why[:120]})")


def probe_momentum_none(t) -> None:
    """Does the class take ``momentum=None`` (torch's cumulative average)? Where its signature does
    not say, one training call with running buffers and momentum=None decides: an output of the
    input's shape with finite running statistics means the cases draw momentum=None too."""
    import dataclasses

    s, ctor = t.spec, t.ctor
    if (
        not (s.has_running_stats and t.running_stats)
        or ctor is None
        or "momentum" in (t.constraints.get("pinned") or {})
    ):
        return
    taken = "momentum" in t.set_attrs or any(r == "momentum" and n not in ctor.fixed for n, r in ctor.assign.items())
    if not taken or t.momentum_none is not None:
        return
    case = t.probe_case(rank=sample_rank(t), buffers=True)
    if case is None or case.running_mean is None:
        return
    case = dataclasses.replace(case, args={**case.args, "momentum": None})
    t.start_fresh()
    try:
        why = try_case(t, case)
    except TargetHung:
        return
    finally:
        t.start_fresh()
    t.momentum_none = why is None and bool(np.isfinite(case.running_mean).all() and np.isfinite(case.running_var).all())
    if t.momentum_none:
        t.notes.append(f"{ctor.name} accepts momentum=None (a probe call): the cumulative average is drawn too")
