"""Norm layers written in the styles of the JAX and TensorFlow module ecosystems, for `normcheck check`
with no wrapper (issue 26): Equinox (frozen pytrees, one sample per call, ``eqx.nn.State``,
``inference=``), Haiku (``hk.get_parameter``/``hk.get_state`` inside a transform, ``is_training``),
Sonnet (variables created on the first call, ``is_training``). Each builder returns a class (importing
this module imports no framework); ``wrong=...`` makes a deliberately wrong twin that must deviate:
"unbiased" (Bessel's correction), "eps_outside" (eps added to the standard deviation), "axes" (the
statistics over every axis but the batch one). Written after the public code they imitate."""

from __future__ import annotations


def _center_scale(xp, x, axes, eps, wrong):
    mean = xp.mean(x, axis=axes, keepdims=True)
    d = x - mean
    n = 1
    for a in axes:
        n *= x.shape[a]
    var = xp.sum(d * d, axis=axes, keepdims=True) / ((n - 1) if wrong == "unbiased" and n > 1 else n)
    if wrong == "eps_outside":
        return d / (xp.sqrt(var) + eps)
    return d / xp.sqrt(var + eps)


def equinox_layer_norm(wrong: str | None = None):
    """``EqxLayerNorm(shape, eps=1e-5, use_weight=True, use_bias=True)`` on one sample of ``shape``."""
    import equinox as eqx
    import jax.numpy as jnp

    class EqxLayerNorm(eqx.Module):
        weight: jnp.ndarray | None
        bias: jnp.ndarray | None
        shape: tuple = eqx.field(static=True)
        eps: float = eqx.field(static=True)

        def __init__(self, shape, eps=1e-5, use_weight=True, use_bias=True):
            self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
            self.eps = eps
            self.weight = jnp.ones(self.shape) if use_weight else None
            self.bias = jnp.zeros(self.shape) if use_bias else None

        def __call__(self, x, state=None, *, key=None):
            axes = tuple(range(x.ndim)) if wrong != "axes" else (x.ndim - 1,)
            y = _center_scale(jnp, x, axes, self.eps, wrong)
            if self.weight is not None:
                y = y * self.weight
            if self.bias is not None:
                y = y + self.bias
            return y

    return EqxLayerNorm


def equinox_batch_norm(wrong: str | None = None):
    """``EqxBatchNorm(num_features, axis_name, eps, momentum=0.9)`` with an ``eqx.nn.StateIndex`` of
    (running_mean, running_var), batch statistics over the named vmap axis, an exponential average (the biased
    variance stored as Equinox does, ``momentum`` the decay as Equinox spells it), ``inference=`` at call."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class EqxBatchNorm(eqx.Module):
        weight: jnp.ndarray
        bias: jnp.ndarray
        state_index: eqx.nn.StateIndex
        axis_name: str = eqx.field(static=True)
        eps: float = eqx.field(static=True)
        momentum: float = eqx.field(static=True)
        inference: bool = False

        def __init__(self, num_features, axis_name, eps=1e-5, momentum=0.9, inference=False):
            self.weight, self.bias = jnp.ones(num_features), jnp.zeros(num_features)
            self.state_index = eqx.nn.StateIndex((jnp.zeros(num_features), jnp.ones(num_features)))
            self.axis_name, self.eps, self.momentum, self.inference = axis_name, eps, momentum, inference

        def __call__(self, x, state, *, key=None, inference=None):
            inference = self.inference if inference is None else inference
            shape = (-1,) + (1,) * (x.ndim - 1)
            rm, rv = state.get(self.state_index)
            if inference:
                mean, var = rm, rv
            else:
                axes = tuple(range(1, x.ndim))
                mean = jax.lax.pmean(jnp.mean(x, axis=axes), self.axis_name)
                sq = jax.lax.pmean(jnp.mean((x - mean.reshape(shape)) ** 2, axis=axes), self.axis_name)
                n = jax.lax.psum(1, self.axis_name)
                for a in axes:
                    n = n * x.shape[a]
                var = sq * n / (n - 1) if wrong == "unbiased" else sq
                m = self.momentum  # the biased variance stored, as eqx.nn.BatchNorm does
                state = state.set(self.state_index, (m * rm + (1 - m) * mean, m * rv + (1 - m) * sq))
            if wrong == "eps_outside":
                y = (x - mean.reshape(shape)) / (jnp.sqrt(var.reshape(shape)) + self.eps)
            else:
                y = (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + self.eps)
            return y * self.weight.reshape(shape) + self.bias.reshape(shape), state

    return EqxBatchNorm


def haiku_layer_norm(wrong: str | None = None):
    """``HkLayerNorm(axis, create_scale, create_offset, eps=1e-5)``: ``hk.get_parameter`` "scale"/"offset"
    of the normalized axes' shape."""
    import haiku as hk
    import jax.numpy as jnp

    class HkLayerNorm(hk.Module):
        def __init__(self, axis, create_scale: bool, create_offset: bool, eps=1e-5, name=None):
            super().__init__(name=name)
            self.axis = (axis,) if isinstance(axis, int) else tuple(axis)
            self.create_scale, self.create_offset, self.eps = create_scale, create_offset, eps

        def __call__(self, x):
            axes = tuple(a % x.ndim for a in self.axis)
            stat_axes = axes if wrong != "axes" else tuple(range(1, x.ndim))
            y = _center_scale(jnp, x, stat_axes, self.eps, wrong)
            pshape = tuple(x.shape[a] for a in axes)
            if self.create_scale:
                y = y * hk.get_parameter("scale", pshape, x.dtype, init=jnp.ones)
            if self.create_offset:
                y = y + hk.get_parameter("offset", pshape, x.dtype, init=jnp.zeros)
            return y

    return HkLayerNorm


def haiku_batch_norm(wrong: str | None = None):
    """``HkBatchNorm(create_scale, create_offset, decay_rate, eps=1e-5)`` for channels-first inputs:
    ``hk.get_state`` "running_mean"/"running_var" (the biased variance stored, as Haiku does), ``is_training``."""
    import haiku as hk
    import jax.numpy as jnp

    class HkBatchNorm(hk.Module):
        def __init__(
            self, create_scale: bool, create_offset: bool, decay_rate: float, eps=1e-5, data_format="channels_first"
        ):
            super().__init__()
            self.create_scale, self.create_offset, self.decay, self.eps = create_scale, create_offset, decay_rate, eps

        def __call__(self, x, is_training):
            c = x.shape[1]
            shape = (1, c) + (1,) * (x.ndim - 2)
            axes = (0, *range(2, x.ndim))
            rm = hk.get_state("running_mean", (c,), jnp.float32, init=jnp.zeros)
            rv = hk.get_state("running_var", (c,), jnp.float32, init=jnp.ones)
            if is_training:
                mean = jnp.mean(x, axis=axes)
                n = x.size // c
                biased = jnp.mean((x - mean.reshape(shape)) ** 2, axis=axes)
                var = biased * n / max(n - 1, 1) if wrong == "unbiased" else biased
                d = self.decay
                hk.set_state("running_mean", d * rm + (1 - d) * mean)
                hk.set_state("running_var", d * rv + (1 - d) * biased)  # biased, as hk.BatchNorm stores it
            else:
                mean, var = rm, rv
            y = (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + self.eps)
            if self.create_scale:
                y = y * hk.get_parameter("scale", (c,), x.dtype, init=jnp.ones).reshape(shape)
            if self.create_offset:
                y = y + hk.get_parameter("offset", (c,), x.dtype, init=jnp.zeros).reshape(shape)
            return y

    return HkBatchNorm


def sonnet_layer_norm(wrong: str | None = None):
    """``SntLayerNorm(axis, create_scale, create_offset, eps=1e-5)``: per-channel (last axis)
    ``scale``/``offset`` variables created on the first call."""
    import sonnet as snt
    import tensorflow as tf

    class SntLayerNorm(snt.Module):
        def __init__(self, axis, create_scale: bool, create_offset: bool, eps=1e-5, name=None):
            super().__init__(name=name)
            self.axis = (axis,) if isinstance(axis, int) else tuple(axis)
            self.create_scale, self.create_offset, self.eps = create_scale, create_offset, eps
            self.scale = self.offset = None

        def __call__(self, x):
            if self.scale is None and self.create_scale:
                self.scale = tf.Variable(tf.ones([x.shape[-1]], x.dtype), name="scale")
            if self.offset is None and self.create_offset:
                self.offset = tf.Variable(tf.zeros([x.shape[-1]], x.dtype), name="offset")
            axes = [a % len(x.shape) for a in self.axis]
            stat_axes = axes if wrong != "axes" else list(range(1, len(x.shape)))
            mean = tf.reduce_mean(x, axis=stat_axes, keepdims=True)
            d = x - mean
            n = 1
            for a in stat_axes:
                n *= x.shape[a]
            var = tf.reduce_sum(d * d, axis=stat_axes, keepdims=True) / ((n - 1) if wrong == "unbiased" else n)
            y = d / (tf.sqrt(var) + self.eps) if wrong == "eps_outside" else d / tf.sqrt(var + self.eps)
            if self.create_scale:
                y = y * self.scale
            if self.create_offset:
                y = y + self.offset
            return y

    return SntLayerNorm


def keras_hub_rms_norm(wrong: str | None = None):
    """Keras-Hub style ``HubRMSNorm(epsilon=1e-6, **kwargs)``: ``scale`` made in ``build``, float32
    compute, cast back to the compute dtype."""
    import keras
    from keras import ops

    class HubRMSNorm(keras.layers.Layer):
        def __init__(self, epsilon=1e-6, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            x = ops.cast(x, "float32")
            ms = ops.mean(ops.square(x), axis=-1, keepdims=True)
            y = x / (ops.sqrt(ms) + self.epsilon) if wrong == "eps_outside" else x * ops.rsqrt(ms + self.epsilon)
            return ops.cast(y * ops.cast(self.scale, "float32"), self.compute_dtype)

    return HubRMSNorm


def keras_input_dim_layer_norm(wrong: str | None = None):
    """``DimLayerNorm(input_dim, epsilon=1e-5, **kwargs)``: weights made in the constructor from ``input_dim``."""
    import keras
    from keras import ops

    class DimLayerNorm(keras.layers.Layer):
        def __init__(self, input_dim, epsilon=1e-5, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon
            self.gamma = self.add_weight(name="gamma", shape=(input_dim,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(input_dim,), initializer="zeros")

        def call(self, x):
            mean = ops.mean(x, axis=-1, keepdims=True)
            n = x.shape[-1]
            var = ops.sum(ops.square(x - mean), axis=-1, keepdims=True) / ((n - 1) if wrong == "unbiased" else n)
            return (x - mean) * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta

    return DimLayerNorm


def keras_unbuildable():
    """``Unbuildable(epsilon=1e-6, **kwargs)`` whose ``build`` raises (exit 2, naming the call)."""
    import keras

    class Unbuildable(keras.layers.Layer):
        def __init__(self, epsilon=1e-6, **kwargs):
            super().__init__(**kwargs)

        def build(self, input_shape):
            raise ValueError("this layer needs a config object")

        def call(self, x):
            return x

    return Unbuildable
