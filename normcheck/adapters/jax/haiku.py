"""Driving a Haiku module class the way its users run it (``normcheck check haiku:LayerNorm``).

A Haiku module exists only inside a transform: normcheck builds ``hk.transform_with_state`` of a
forward that constructs the class with the mapped arguments and calls it (``is_training`` at call
where ``__call__`` takes it), initializes it on an input of the case's shape, and calls ``apply`` with
the case's parameters and state passed in. Its ``decay_rate`` is ``1 - torch's momentum``; layer norms
get ``axis`` and ``param_axis`` (the normalized axes), channel norms ``data_format="channels_first"``.
``hk.BatchNorm``'s moving averages are zero-debiased (``hk.ExponentialMovingAverage``): the case's
running buffers are put as an average whose counter is far past any debiasing, and the biased
variance it stores is translated into torch's unbiased update (a convention, not a deviation).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck.adapters.ecosystem import concrete, unbias_update

KIND = "haiku"
FRAMEWORK = "jax"
BIG_COUNT = 2**30
WEIGHT_NAMES = ("scale", "weight", "gamma", "w")
BIAS_NAMES = ("offset", "bias", "beta", "b")
MEAN_NAMES = ("mean_ema", "running_mean", "moving_mean")
VAR_NAMES = ("var_ema", "running_var", "moving_var", "moving_variance")


def conventions(norm: str) -> dict[str, Any]:
    roles = {"decay_rate": "decay"}
    fixed: dict[str, Any] = {}
    if norm in ("layer_norm", "rms_norm"):
        roles.update(axis="axes", param_axis="axes")
    else:
        fixed["data_format"] = "channels_first"
    return {"roles": roles, "fixed": fixed}


def describe(sketch: str) -> str:
    return f"a Haiku module, built as {sketch} inside hk.transform_with_state, params and state passed in"


@dataclass
class Built:
    """A transformed Haiku layer with its initial ``params``/``state``, and the paths of what it keeps."""

    apply: Any
    params: dict
    state: dict
    training_arg: bool
    paths: dict[str, tuple] = field(default_factory=dict)  # weight/bias/running_mean/running_var -> path
    weight: Any = None
    bias: Any = None
    running_mean: Any = None
    running_var: Any = None


def _leaves(tree: dict):
    for mod, d in tree.items():
        for name, v in d.items():
            yield (mod, name), v


def _find(tree: dict, names, *, module: bool = False):
    for (mod, name), v in _leaves(tree):
        key = mod.split("/")[-1].lstrip("~") if module else name
        if key in names and (not module or name == "average"):
            return (mod, name), v
        if module and name in names:
            return (mod, name), v
    return None, None


def build(cls, args, kwargs, shape, **_) -> Built:
    import haiku as hk
    import jax.numpy as jnp

    try:
        takes = "is_training" in inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        takes = False

    def forward(x, is_training):
        m = cls(*args, **kwargs)
        return m(x, is_training=is_training) if takes else m(x)

    tr = hk.transform_with_state(forward)
    params, state = tr.init(None, jnp.zeros(shape, jnp.float32), True)
    params = {k: dict(v) for k, v in params.items()}
    state = {k: dict(v) for k, v in state.items()}
    b = Built(tr.apply, params, state, takes)
    for key, tree, names, module in (
        ("weight", params, WEIGHT_NAMES, False),
        ("bias", params, BIAS_NAMES, False),
        ("running_mean", state, MEAN_NAMES, True),
        ("running_var", state, VAR_NAMES, True),
    ):
        path, v = _find(tree, names, module=module)
        if path is not None:
            b.paths[key] = path
            setattr(b, key, v)
    return b


def _set(tree: dict, path, value) -> None:
    mod, name = path
    cur = tree[mod][name]
    tree[mod][name] = value.reshape(cur.shape) if tuple(cur.shape) != tuple(value.shape) else value


def run(b: Built, x, params: dict, buffers: dict | None, *, training: bool, momentum) -> tuple[Any, dict]:
    import jax.numpy as jnp

    p = {k: dict(v) for k, v in b.params.items()}
    st = {k: dict(v) for k, v in b.state.items()}
    for k, v in params.items():
        if v is not None and k in b.paths:
            _set(p, b.paths[k], v)
    if buffers:
        for k in ("running_mean", "running_var"):
            mod, name = b.paths[k]
            for leaf in ("average", "hidden"):
                if leaf in st[mod]:
                    _set(st, (mod, leaf), buffers[k])
            if name not in ("average",):
                _set(st, (mod, name), buffers[k])
            if "counter" in st[mod]:
                st[mod]["counter"] = jnp.full(st[mod]["counter"].shape, BIG_COUNT, st[mod]["counter"].dtype)
    args = (x, training)
    y, new = b.apply(p, st, None, *args)
    if not buffers:
        return y, {}
    out = {}
    for k in ("running_mean", "running_var"):
        mod, name = b.paths[k]
        out[k] = new[mod][name].reshape(buffers[k].shape)
    if training and momentum is not None and concrete(y):
        n = x.size // x.shape[1]
        rv = unbias_update(out["running_var"], buffers["running_var"], 1.0 - float(momentum), n)
        out["running_var"] = jnp.asarray(rv.astype(np.asarray(out["running_var"]).dtype))
    return y, out
