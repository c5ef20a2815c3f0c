"""Keras layer and flax.linen module classes for `normcheck check` module targets (issue 4),
constructed like the framework's own layer. Built on demand so importing this module imports
neither framework: ``keras_layer_norm(unbiased=False)`` returns a class."""

from __future__ import annotations


def keras_layer_norm(*, unbiased: bool = False):
    """A hand-written Keras LayerNormalization (``axis``, ``epsilon``, ``center``, ``scale``;
    variables ``gamma``/``beta``); ``unbiased``: Bessel's correction, the classic mistake."""
    import keras
    from keras import ops

    class MyKerasLayerNorm(keras.layers.Layer):
        def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
            super().__init__(**kwargs)
            self.axis, self.epsilon, self.center, self.scale = axis, epsilon, center, scale

        def _axes(self, rank):
            axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
            return [a % rank for a in axes]

        def build(self, input_shape):
            shape = [input_shape[a] for a in self._axes(len(input_shape))]
            self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma") if self.scale else None
            self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta") if self.center else None

        def call(self, x):
            axes = self._axes(len(x.shape))
            x32 = ops.cast(x, "float32")
            mean = ops.mean(x32, axis=axes, keepdims=True)
            d = x32 - mean
            n = 1
            for a in axes:
                n *= x.shape[a]
            var = ops.sum(d * d, axis=axes, keepdims=True) / ((n - 1) if unbiased and n > 1 else n)
            y = d / ops.sqrt(var + self.epsilon)
            if self.gamma is not None:
                y = y * ops.cast(self.gamma, "float32")
            if self.beta is not None:
                y = y + ops.cast(self.beta, "float32")
            return ops.cast(y, self.compute_dtype)

    MyKerasLayerNorm.__qualname__ = "MyKerasLayerNorm" + ("Unbiased" if unbiased else "")
    return MyKerasLayerNorm


def linen_layer_norm(*, unbiased: bool = False):
    """A hand-written flax.linen LayerNorm (``epsilon``, ``use_scale``, ``use_bias``,
    ``reduction_axes``, ``feature_axes``; params ``scale``/``bias``)."""
    from typing import Any

    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class MyLinenLayerNorm(nn.Module):
        epsilon: float = 1e-6
        dtype: Any = None
        param_dtype: Any = jnp.float32
        use_bias: bool = True
        use_scale: bool = True
        reduction_axes: Any = -1
        feature_axes: Any = -1

        @nn.compact
        def __call__(self, x):
            axes = (self.reduction_axes,) if isinstance(self.reduction_axes, int) else tuple(self.reduction_axes)
            axes = tuple(a % x.ndim for a in axes)
            x32 = x.astype(jnp.float32)
            mean = x32.mean(axis=axes, keepdims=True)
            d = x32 - mean
            n = 1
            for a in axes:
                n *= x.shape[a]
            var = (d * d).sum(axis=axes, keepdims=True) / ((n - 1) if unbiased and n > 1 else n)
            y = d * jax.lax.rsqrt(var + self.epsilon)
            shape = tuple(x.shape[a] for a in axes)
            if self.use_scale:
                y = y * self.param("scale", nn.initializers.ones, shape, self.param_dtype).astype(jnp.float32)
            if self.use_bias:
                y = y + self.param("bias", nn.initializers.zeros, shape, self.param_dtype).astype(jnp.float32)
            return y.astype(self.dtype or x.dtype)

    MyLinenLayerNorm.__qualname__ = "MyLinenLayerNorm" + ("Unbiased" if unbiased else "")
    return MyLinenLayerNorm
