"""What the drawn cases must satisfy for a target (``t``, a :class:`~normcheck.target.Target`): its
ranks, the options of :func:`normcheck.strategies.cases`, the strategy, and their validation."""

from __future__ import annotations

from typing import Any

from normcheck.target.constructor import annotation_text
from normcheck.target.errors import TargetError
from normcheck.target.probes import PROBE_SHAPES


def ranks(t) -> tuple[int, ...]:
    """The input ranks the drawn cases may have."""
    c = t.constraints
    if c.get("shape"):
        return (len(c["shape"]),)
    if c.get("ranks"):
        return tuple(c["ranks"])
    return tuple(r for r in PROBE_SHAPES if r >= t.spec.min_rank)


def case_options(t) -> dict[str, Any]:
    """Keyword arguments of :func:`normcheck.strategies.cases` for this target's constraints."""
    s, c = t.spec, t.constraints
    opts: dict[str, Any] = {}
    if c.get("shape"):
        opts["shape"] = tuple(c["shape"])
    elif c.get("ranks"):
        opts["ranks"] = tuple(c["ranks"])
    pinned = dict(c.get("pinned") or {})
    if pinned:
        opts["pinned"] = pinned
    if c.get("no_affine"):
        opts["affine"] = False
    elif c.get("no_bias"):
        opts["bias"] = False
    if s.has_running_stats and not t.running_stats:
        opts["running_stats"] = False
    elif s.has_running_stats and "momentum" not in pinned and accepts_momentum_none(t):
        opts["momentum_none"] = True  # torch's cumulative average is drawn too
    d = t.eps_default
    if "eps" not in pinned and d is not None and "eps" in s.defaults and s.defaults["eps"] is None:
        from normcheck.strategies import eps_values  # eps=None (the default) is the layer's own default

        opts["eps"] = eps_values(spec=s).map(lambda e: d if e is None else e)
    return opts


def accepts_momentum_none(t) -> bool:
    """Does the constructor take momentum=None (a probe call showed it, or its momentum parameter
    defaults to None or is annotated Optional / ``| None``)? Only then are momentum=None cases drawn."""
    ctor = t.ctor
    if t.momentum_none is not None:
        return t.momentum_none
    if ctor is None or ctor.mode != "signature" or t.adapted is not None:
        return False
    for name, role in ctor.assign.items():
        if role == "momentum" and name not in ctor.fixed:
            p = ctor.by_name[name]
            ann = annotation_text(p)
            return p.default is None or "None" in ann or "Optional" in ann
    return False


def strategy(t, dtype: str, axes=None):
    """The Hypothesis strategy of cases for ``dtype`` (None: the audit's default suffices)."""
    axes = t.axes if axes is None else axes
    opts = t.case_options()
    if not opts and axes is None:
        return None
    from normcheck import strategies

    return strategies.cases(t.norm, dtypes=(dtype,), axes=axes, **opts)


def validate(t) -> None:
    """Contradictory constraints are a TargetError (one line)."""
    from hypothesis.errors import InvalidArgument

    try:
        strategy = t.strategy("float32")
        if strategy is not None:
            strategy.validate()
    except InvalidArgument as e:
        raise TargetError(str(e)) from None
