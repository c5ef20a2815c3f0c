"""TensorFlow's part of ``normcheck bench`` (:meth:`TensorFlowAdapter.bench_natives`): the Keras 3
layer on TensorFlow tensors (instance_norm: ``tf.nn.moments`` + ``tf.nn.batch_normalization``, as
keras has no InstanceNormalization), ``tf.GradientTape`` for the backward pass, and
``tf.function(jit_compile=True)`` for ``mode="compiled"``.

The layer classes and the dtype policy are the adapter's (:data:`KERAS_LAYERS`,
``CONVENTIONS["dtype_policy"]`` of :mod:`normcheck.adapters.tensorflow`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck.adapters.base import BenchNatives
from normcheck.adapters.tensorflow import CONVENTIONS, KERAS_LAYERS, import_keras, import_tensorflow

__all__ = ["NATIVES"]

TF_NN = "tf.nn.moments + tf.nn.batch_normalization"


def api(norm: str, mode: str = "eager") -> str:
    name = TF_NN if norm == "instance_norm" else f"keras.layers.{KERAS_LAYERS[norm]}"
    return f"tf.function({name}, jit_compile=True)" if mode == "compiled" else name


def build(case):
    tf = import_tensorflow()
    norm, shape, dtype = case.norm, case.shape, case.dtype
    dev = "/GPU:0" if case.device.startswith("cuda") else "/CPU:0"
    phys = case.physical_shape
    last = phys != shape
    dt = tf.as_dtype(dtype)

    with tf.device(dev):
        x = tf.cast(tf.convert_to_tensor(case.host().reshape(phys)), dt)
        w32, b32 = case.params()
        variables: list = []
        if case.target is not None:
            wv, bv = tf.Variable(tf.cast(w32, dt)), tf.Variable(tf.cast(b32, dt))
            rm, rv = tf.Variable(tf.zeros(case.channels)), tf.Variable(tf.ones(case.channels))
            op = case.canonical(case.target, rm, rv)
            variables = [wv] if norm == "rms_norm" else [wv, bv]

            def call(x):
                return op(x, wv, bv)

        elif norm == "instance_norm":
            axis = len(phys) - 1 if last else 1
            bshape = [1] * len(phys)
            bshape[axis] = shape[1]
            wv, bv = tf.Variable(tf.cast(w32, dt)), tf.Variable(tf.cast(b32, dt))
            spatial = [a for a in range(1, len(phys)) if a != axis]
            variables = [wv, bv]

            def call(x):
                mean, var = tf.nn.moments(x, axes=spatial, keepdims=True)
                return tf.nn.batch_normalization(
                    x, mean, var, tf.reshape(bv, bshape), tf.reshape(wv, bshape), variance_epsilon=case.eps
                )

        else:
            keras = import_keras()
            axis = -1 if last or len(shape) <= 2 else 1
            kw: dict[str, Any] = {"epsilon": case.eps, "dtype": CONVENTIONS["dtype_policy"][dtype]}
            extra = {
                "batch_norm": {"axis": axis, "momentum": 1 - case.momentum},
                "group_norm": {"groups": case.groups, "axis": axis},
            }.get(norm, {"axis": -1})
            layer = getattr(keras.layers, KERAS_LAYERS[norm])(**extra, **kw)
            layer.build(phys)
            gamma = layer.scale if norm == "rms_norm" else layer.gamma
            gamma.assign(w32)
            if getattr(layer, "beta", None) is not None:
                layer.beta.assign(b32)
            variables = list(layer.trainable_variables)
            training = norm == "batch_norm"

            def call(x):
                return layer(x, training=True) if training else layer(x)

        if case.forward:
            step = call
        else:
            dy = tf.cast(tf.convert_to_tensor(case.host(seed=1).reshape(phys)), dt)

            def step(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = call(x)
                return (y, *tape.gradient(y, [x, *variables], output_gradients=dy))

        if case.mode == "compiled":
            step = tf.function(step, jit_compile=True)

    def run():
        with tf.device(dev):
            return step(x)

    def sync(out):
        # A one-element pull to the host that depends on the result: returns once it is computed.
        y = case.first(out)
        tf.reshape(y, [-1])[:1].numpy()

    def output(out):
        y = tf.cast(case.first(out), tf.float32).numpy()
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if last else y

    name = case.target_api() if case.target else api(norm, case.mode)
    return case.native(run, sync, name, output)


NATIVES = BenchNatives(
    modes=("eager", "compiled"),
    layouts={
        "batch_norm": ("channels_first", "channels_last"),
        "layer_norm": ("channels_first",),
        "group_norm": ("channels_first", "channels_last"),
        "instance_norm": ("channels_first", "channels_last"),
        "rms_norm": ("channels_first",),
    },
    api=api,
    build=build,
)
