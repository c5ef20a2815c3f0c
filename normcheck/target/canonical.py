"""A call's canonical arguments: bound to the reference's signature, and the constructor arguments
(:class:`~normcheck.target.constructor.Canon`) they imply."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.target.constructor import Canon

ARRAY_ARGS = ("weight", "bias", "running_mean", "running_var")


@functools.cache
def _signature(norm: str) -> inspect.Signature:
    from normcheck import reference

    return inspect.signature(reference.function(norm))


def resolved(s: _spec.Spec, args, kwargs) -> dict[str, Any]:
    bound = _signature(s.name).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def module_flag(s: _spec.Spec, a: dict[str, Any]) -> bool:
    return bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True


def canon(s: _spec.Spec, a: dict[str, Any], shape) -> Canon:
    ns = a.get("normalized_shape")
    if ns is not None:
        ns = (int(ns),) if isinstance(ns, int | np.integer) else tuple(int(d) for d in ns)
    g = a.get("num_groups")
    return Canon(
        C=int(shape[1]) if len(shape) > 1 else None,
        G=None if g is None else int(g),
        normalized_shape=ns,
        eps=a.get("eps"),
        momentum=a.get("momentum"),
        weight=a.get("weight") is not None,
        bias=a.get("bias") is not None,
        track=a.get("running_mean") is not None and a.get("running_var") is not None,
    )
