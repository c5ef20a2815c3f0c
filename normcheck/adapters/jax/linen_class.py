"""Driving a ``flax.linen`` module class by its own constructor, where ``--init`` or ``--arg`` maps it
(without them a linen class is built like flax's own layer by :func:`normcheck.adapters.jax.linen_layer_function`).

The mapped module is initialized on the case's shape; ``apply`` gets the case's parameters (found by
name: ``scale``/``bias``...) and ``batch_stats`` (``mean``/``var``), with ``mutable=["batch_stats"]``
in training and the train flag its ``__call__`` takes (``use_running_average``, ``train``,
``training``, ``is_training``). Flax's ``momentum`` is a decay (``1 - torch's``); channel norms run
channels-last (the input transposed around the call); the biased stored variance is translated into
torch's unbiased update (a convention, not a deviation).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck.adapters.ecosystem import concrete, unbias_update

KIND = "flax"
FRAMEWORK = "jax"
WEIGHT_NAMES = ("scale", "weight", "gamma", "g")
BIAS_NAMES = ("bias", "beta", "offset", "b")
MEAN_NAMES = ("mean", "running_mean", "moving_mean")
VAR_NAMES = ("var", "running_var", "moving_var", "moving_variance")
FLAGS = {"use_running_average": True, "train": False, "training": False, "is_training": False}  # flag: eval value
CHANNEL_NORMS = ("batch_norm", "group_norm", "instance_norm")


def conventions(norm: str) -> dict[str, Any]:
    return {"roles": {"momentum": "decay"}, "fixed": {}, "one_axis": True}


def describe(sketch: str) -> str:
    return f"a flax.linen module, built as {sketch} (--init/--arg), its params and batch_stats passed to apply"


def _flat(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, "items"):
            yield from _flat(v, (*prefix, k))
        else:
            yield (*prefix, k), v


@dataclass
class Built:
    module: Any
    variables: dict
    channels_last: bool
    flag: str | None
    paths: dict[str, tuple] = field(default_factory=dict)
    weight: Any = None
    bias: Any = None
    running_mean: Any = None
    running_var: Any = None


def build(cls, args, kwargs, shape, norm: str = "layer_norm", **_) -> Built:
    import jax
    import jax.numpy as jnp

    module = cls(*args, **kwargs)
    try:
        params = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        params = {}
    flag = next((f for f in FLAGS if f in params), None)
    last = norm in CHANNEL_NORMS and len(shape) > 2
    xshape = tuple(shape[:1]) + tuple(shape[2:]) + (shape[1],) if last else tuple(shape)
    kw = {flag: not FLAGS[flag]} if flag else {}
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros(xshape, jnp.float32), **kw)
    variables = jax.tree_util.tree_map(lambda a: a, dict(variables))
    b = Built(module, variables, last, flag)
    for key, coll, names in (
        ("weight", "params", WEIGHT_NAMES),
        ("bias", "params", BIAS_NAMES),
        ("running_mean", "batch_stats", MEAN_NAMES),
        ("running_var", "batch_stats", VAR_NAMES),
    ):
        for path, v in _flat(variables.get(coll, {})):
            if path[-1] in names:
                b.paths[key] = (coll, *path)
                setattr(b, key, v)
                break
    return b


def _with(tree: dict, path: tuple, value) -> dict:
    head, *rest = path
    out = dict(tree)
    if rest:
        out[head] = _with(tree[head], tuple(rest), value)
    else:
        cur = tree[head]
        out[head] = value.reshape(cur.shape) if tuple(cur.shape) != tuple(value.shape) else value
    return out


def run(b: Built, x, params: dict, buffers: dict | None, *, training: bool, momentum) -> tuple[Any, dict]:
    import jax.numpy as jnp

    variables = b.variables
    given = dict(params)
    if buffers:
        given.update(buffers)
    for k, v in given.items():
        if v is not None and k in b.paths:
            variables = _with(variables, b.paths[k], jnp.asarray(v))
    inv = None
    if b.channels_last:
        r = x.ndim
        x, inv = jnp.transpose(x, (0, *range(2, r), 1)), (0, r - 1, *range(1, r - 1))
    kw = {b.flag: (not training) if FLAGS[b.flag] else training} if b.flag else {}
    if training and "batch_stats" in variables:
        y, updated = b.module.apply(variables, x, mutable=["batch_stats"], **kw)
        stats = {"batch_stats": updated["batch_stats"]}
    else:
        y, stats = b.module.apply(variables, x, **kw), variables
    if inv is not None:
        y = jnp.transpose(y, inv)
    if not buffers:
        return y, {}
    out = {}
    for k in ("running_mean", "running_var"):
        node = stats
        for p in b.paths[k]:
            node = node[p]
        out[k] = jnp.reshape(node, buffers[k].shape)
    if training and momentum is not None and concrete(y):
        n = x.size // x.shape[-1 if b.channels_last else 1]
        rv = unbias_update(out["running_var"], buffers["running_var"], 1.0 - float(momentum), n)
        out["running_var"] = jnp.asarray(rv.astype(np.asarray(out["running_var"]).dtype))
    return y, out


def own_constructor(cls, init, args) -> bool:
    """Is the linen class built by its own fields (not like the flax.linen module it mirrors)? Yes
    with ``--init``/``--arg``."""
    return bool(init or args)
