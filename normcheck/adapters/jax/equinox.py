"""Driving an Equinox module class the way its users run it (``normcheck check equinox.nn:LayerNorm``).

An Equinox module is a frozen pytree that takes one sample per call: a batch is ``jax.vmap`` (over
every leading axis of a layer norm's input, over the batch of a channel norm's, with the axis name
``"batch"`` that ``eqx.nn.BatchNorm(axis_name=...)`` is given). Parameters are replaced functionally
with ``eqx.tree_at``; a stateful layer's ``eqx.nn.State`` (from ``eqx.nn.make_with_state``) is set
from the case's running buffers and threaded out of the call, with ``inference=`` for eval. Its
``momentum`` is a decay (``1 - torch's``). Running variances are stored biased; the update is
translated into torch's unbiased one, as for flax (a convention, not a deviation).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck.adapters.ecosystem import concrete, unbias_update

KIND = "equinox"
FRAMEWORK = "jax"
AXIS_NAME = "batch"
BIG_COUNT = 2**30  # a "batch" mode counter past any debiasing: the hidden averages are the running ones


def conventions(norm: str) -> dict[str, Any]:
    """Constructor facts: ``momentum`` is a decay, ``axis_name`` the vmap's axis name."""
    return {"roles": {"momentum": "decay"}, "fixed": {"axis_name": AXIS_NAME}}


def describe(sketch: str) -> str:
    return f"an Equinox module, built as {sketch} (eqx.nn.make_with_state), vmapped over the batch"


@dataclass
class Built:
    """A built Equinox layer (``model``, ``state``) and what :func:`normcheck.target.layer.inspect_layer` reads."""

    model: Any
    state: Any
    sample_rank: int | None  # the rank of one sample (None: all but the batch axis)
    cls: Any = None  # the constructor call, for a fresh State per call
    args: Any = ()
    kwargs: Any = None
    weight: Any = None
    bias: Any = None
    running_mean: Any = None
    running_var: Any = None
    eps: Any = None


def _indices(model, state) -> tuple[Any, list]:
    """(the state index holding (running_mean, running_var), the other indices): a boolean one is a
    "first call" flag (set False: the buffers are populated), an integer one a counter (set past any
    debiasing), as ``eqx.nn.BatchNorm`` keeps them."""
    import equinox as eqx

    stats, other = None, []
    for name in sorted(vars(model)):
        idx = getattr(model, name)
        if not isinstance(idx, eqx.nn.StateIndex):
            continue
        v = state.get(idx)
        if isinstance(v, tuple) and len(v) == 2 and stats is None:
            stats = idx
        else:
            other.append(idx)
    return stats, other


def build(cls, args, kwargs, shape, **_) -> Built:
    import equinox as eqx

    model, state = eqx.nn.make_with_state(cls)(*args, **kwargs)
    stats, _ = _indices(model, state)
    has_state = stats is not None
    sample = getattr(model, "shape", None)
    sample_rank = len(sample) if isinstance(sample, tuple) else (1 if isinstance(sample, int) else None)
    b = Built(model, state if has_state else None, sample_rank, cls, tuple(args), dict(kwargs))
    b.weight, b.bias = getattr(model, "weight", None), getattr(model, "bias", None)
    b.eps = getattr(model, "eps", None)
    if has_state:
        b.running_mean, b.running_var = state.get(stats)
    return b


def _put(model, name: str, value):
    import equinox as eqx

    cur = getattr(model, name)
    if cur is None:
        return model
    if tuple(cur.shape) != tuple(value.shape):
        value = value.reshape(cur.shape)
    return eqx.tree_at(lambda m: getattr(m, name), model, value)


def run(b: Built, x, params: dict, buffers: dict | None, *, training: bool, momentum) -> tuple[Any, dict]:
    """(y, the updated running buffers in torch's convention, or {})."""
    import jax
    import jax.numpy as jnp

    model = b.model
    for k, v in params.items():
        if v is not None:
            model = _put(model, k, v)
    if b.state is None:
        rank = b.sample_rank if b.sample_rank is not None else x.ndim - 1
        f = model
        for _ in range(x.ndim - rank):
            f = jax.vmap(f)
        return f(x), {}
    import equinox as eqx

    state = eqx.nn.make_with_state(b.cls)(*b.args, **b.kwargs)[1]  # fresh: a set marks the old State stale
    index, others = _indices(model, state)
    if buffers:
        state = state.set(index, (buffers["running_mean"], buffers["running_var"]))
        for idx in others:
            v = state.get(idx)
            if getattr(v, "shape", None) == () and v.dtype == jnp.bool_:
                state = state.set(idx, v & False)  # (its own type: a State checks it)
            elif getattr(v, "shape", None) == () and jnp.issubdtype(v.dtype, jnp.integer):
                state = state.set(idx, v * 0 + BIG_COUNT)
    call = functools.partial(model, inference=not training)
    y, new = jax.vmap(call, axis_name=AXIS_NAME, in_axes=(0, None), out_axes=(0, None))(x, state)
    if not (buffers and training and concrete(y)) or momentum is None:
        return y, ({"running_mean": buffers["running_mean"], "running_var": buffers["running_var"]} if buffers else {})
    m, v = new.get(index)
    decay = 1.0 - float(momentum)
    n = x.size // x.shape[1]
    rv = unbias_update(v, buffers["running_var"], decay, n).astype(np.asarray(v).dtype)
    return y, {"running_mean": m, "running_var": jnp.asarray(rv)}
