"""Driving a Keras layer class by its own constructor (``normcheck check`` on a Keras-Hub layer such
as ``LlamaLayerNorm(epsilon=1e-6, **kwargs)``, or any Keras class given ``--init``/``--arg``).

The constructor is mapped from the class's own signature like a torch class's (Keras's ``momentum``
is a decay, ``1 - torch's``); the layer is built for the case's shape with the input's dtype as its
dtype policy and called functionally with ``stateless_call``: its trainable variables (the weight
and bias, found by name) and non-trainable ones (moving mean and variance) are the case's arrays,
so a gradient tape sees them. ``training`` is passed where ``call`` takes it. Channel norms run
channels-last, as Keras layers do (the input is transposed around the call). Keras stores the biased
variance: the update is translated into torch's unbiased one (a convention, not a deviation).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck.adapters.ecosystem import concrete, unbias_update

KIND = "keras"
FRAMEWORK = "tensorflow"
WEIGHT_NAMES = ("gamma", "scale", "weight", "g")
BIAS_NAMES = ("beta", "bias", "offset", "b")
MEAN_NAMES = ("moving_mean", "running_mean")
VAR_NAMES = ("moving_variance", "moving_var", "running_var")
CHANNEL_NORMS = ("batch_norm", "group_norm", "instance_norm")


def own_constructor(cls, init, args) -> bool:
    """Is the Keras class built by its own signature (not like the Keras layer it mirrors)? Yes with
    ``--init``/``--arg``, or when its constructor does not name ``axis``."""
    if init or args:
        return True
    try:
        names = set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return False
    return "axis" not in names


def conventions(norm: str) -> dict[str, Any]:
    return {"roles": {"momentum": "decay"}, "fixed": {}, "one_axis": True}


def describe(sketch: str) -> str:
    return f"a Keras layer class, built as {sketch} and called with stateless_call"


def _name(v) -> str:
    return str(getattr(v, "path", None) or v.name).split("/")[-1].split(":")[0]


@dataclass
class Built:
    layer: Any
    channels_last: bool
    training_arg: bool
    slots: dict[str, tuple[str, int]] = field(default_factory=dict)  # weight/bias/... -> (which list, index)
    weight: Any = None
    bias: Any = None
    running_mean: Any = None
    running_var: Any = None
    epsilon: Any = None


def build(cls, args, kwargs, shape, dtype: str = "float32", norm: str = "layer_norm") -> Built:
    kw = dict(kwargs)
    kw.setdefault("dtype", dtype)
    layer = cls(*args, **kw)
    last = norm in CHANNEL_NORMS and len(shape) > 2
    layer.build(tuple(shape[:1]) + tuple(shape[2:]) + (shape[1],) if last else tuple(shape))
    try:
        takes = "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        takes = False
    b = Built(layer, last, takes, epsilon=getattr(layer, "epsilon", None))
    for key, which, names in (
        ("weight", "trainable", WEIGHT_NAMES),
        ("bias", "trainable", BIAS_NAMES),
        ("running_mean", "non_trainable", MEAN_NAMES),
        ("running_var", "non_trainable", VAR_NAMES),
    ):
        vs = layer.trainable_variables if which == "trainable" else layer.non_trainable_variables
        for i, v in enumerate(vs):
            if _name(v) in names:
                b.slots[key] = (which, i)
                setattr(b, key, np.asarray(v))
                break
    return b


def run(b: Built, x, params: dict, buffers: dict | None, *, training: bool, momentum) -> tuple[Any, dict]:
    import tensorflow as tf

    layer = b.layer
    tv = [tf.convert_to_tensor(v) for v in layer.trainable_variables]
    nv = [tf.convert_to_tensor(v) for v in layer.non_trainable_variables]
    lists = {"trainable": tv, "non_trainable": nv}
    given = dict(params)
    if buffers:
        given.update(buffers)
    for key, val in given.items():
        if val is None or key not in b.slots:
            continue
        which, i = b.slots[key]
        cur = lists[which][i]
        val = tf.convert_to_tensor(val)
        lists[which][i] = tf.reshape(val, cur.shape) if tuple(cur.shape) != tuple(val.shape) else val
    perm = inv = None
    if b.channels_last:
        r = len(x.shape)
        perm, inv = [0, *range(2, r), 1], [0, r - 1, *range(1, r - 1)]
        x = tf.transpose(x, perm)
    kw = {"training": training} if b.training_arg else {}
    y, new_nv = layer.stateless_call(tv, nv, x, **kw)
    if inv is not None:
        y = tf.transpose(y, inv)
    if not buffers:
        return y, {}
    out = {}
    for k in ("running_mean", "running_var"):
        which, i = b.slots[k]
        out[k] = tf.reshape(tf.convert_to_tensor(new_nv[i]), buffers[k].shape)
    if training and momentum is not None and concrete(out["running_var"]):
        n = int(np.prod(x.shape)) // int(x.shape[-1] if b.channels_last else x.shape[1])
        rv = out["running_var"]
        new = unbias_update(rv.numpy(), np.asarray(buffers["running_var"]), 1.0 - float(momentum), n)
        out["running_var"] = tf.constant(new.astype(rv.dtype.as_numpy_dtype))
    return y, out
