"""Driving a Sonnet module class the way its users run it (``normcheck check sonnet:BatchNorm``).

Sonnet hides the constructor behind a metaclass (normcheck reads ``__init__``) and creates its
variables on the first call: normcheck builds a fresh module per call, calls it once on the case's
input to create them, then puts the case's parameters in their place (the tensors themselves, so a
gradient tape sees them) and its running buffers into the moving averages, and calls it with
``is_training`` where ``__call__`` takes it. ``decay_rate`` is ``1 - torch's momentum``; channel norms
run ``data_format="channels_first"``; ``snt.LayerNorm``'s scale is per channel (the last axis), so it
is checked on one normalized axis. Sonnet's moving averages are zero-debiased and store the biased
variance: the case's buffers are put as an average whose counter is far past any debiasing, and the
update is translated into torch's unbiased one (a convention, not a deviation).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck.adapters.ecosystem import unbias_update

KIND = "sonnet"
FRAMEWORK = "tensorflow"
BIG_COUNT = 2**30
WEIGHT_NAMES = ("scale", "weight", "gamma")
BIAS_NAMES = ("offset", "bias", "beta")
MEAN_NAMES = ("moving_mean", "running_mean")
VAR_NAMES = ("moving_variance", "moving_var", "running_var")


def conventions(norm: str) -> dict[str, Any]:
    roles = {"decay_rate": "decay"}
    fixed: dict[str, Any] = {}
    if norm in ("layer_norm", "rms_norm"):
        roles["axis"] = "axes"
    else:
        fixed["data_format"] = "channels_first"
    return {"roles": roles, "fixed": fixed, "one_axis": True}


def describe(sketch: str) -> str:
    return f"a Sonnet module, built as {sketch}, variables created by a first call then given"


def _takes_training(cls) -> bool:
    try:
        return "is_training" in inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class Built:
    """How to build the layer, and a sample built one's variables (for ``inspect_layer``)."""

    cls: Any
    args: tuple
    kwargs: dict
    training_arg: bool
    weight: Any = None
    bias: Any = None
    running_mean: Any = None
    running_var: Any = None
    eps: Any = None


def _first(obj, names):
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return n, v
    return None, None


def _make(b: Built, x):
    m = b.cls(*b.args, **b.kwargs)
    if b.training_arg:
        m(x, is_training=False)
    else:
        m(x)
    return m


def _average(v):
    """The value a moving average (a Sonnet metric) holds, or the variable itself."""
    return getattr(v, "average", v)


def build(cls, args, kwargs, shape, **_) -> Built:
    import tensorflow as tf

    b = Built(cls, tuple(args), dict(kwargs), _takes_training(cls))
    m = _make(b, tf.zeros(shape, tf.float32))
    b.weight, b.bias = _first(m, WEIGHT_NAMES)[1], _first(m, BIAS_NAMES)[1]
    mean, var = _first(m, MEAN_NAMES)[1], _first(m, VAR_NAMES)[1]
    if mean is not None and var is not None:
        b.running_mean, b.running_var = _average(mean), _average(var)
    b.eps = getattr(m, "_eps", None)
    return b


def _put_average(ema, value) -> None:
    """Set a moving average's hidden value and average to ``value``, its counter past debiasing."""
    import tensorflow as tf

    for v in ema.variables:
        name = v.name.split("/")[-1].split(":")[0]
        if name == "counter":
            v.assign(tf.constant(BIG_COUNT, v.dtype))
        else:
            v.assign(tf.reshape(tf.cast(value, v.dtype), v.shape))


def run(b: Built, x, params: dict, buffers: dict | None, *, training: bool, momentum) -> tuple[Any, dict]:
    import tensorflow as tf

    m = _make(b, x)
    for k, names in (("weight", WEIGHT_NAMES), ("bias", BIAS_NAMES)):
        v = params.get(k)
        name, cur = _first(m, names)
        if v is not None and name is not None:
            setattr(m, name, tf.reshape(v, cur.shape) if tuple(cur.shape) != tuple(v.shape) else v)
    emas = {}
    if buffers:
        for k, names in (("running_mean", MEAN_NAMES), ("running_var", VAR_NAMES)):
            emas[k] = _first(m, names)[1]
            _put_average(emas[k], buffers[k])
    y = m(x, is_training=training) if b.training_arg else m(x)
    if not buffers:
        return y, {}
    out = {k: tf.reshape(tf.identity(_average(e)), buffers[k].shape) for k, e in emas.items()}
    if training and momentum is not None:
        n = int(tf.size(x)) // int(x.shape[1])
        rv = out["running_var"]
        new = unbias_update(rv.numpy(), np.asarray(buffers["running_var"]), 1.0 - float(momentum), n)
        out["running_var"] = tf.constant(new.astype(rv.dtype.as_numpy_dtype))
    return y, out
