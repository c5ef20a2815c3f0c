"""Test doubles for the gradient properties on user targets (tests/check/test_user_gradients.py): norms
whose forward pass is exact and whose backward pass is wrong, hand-written backward passes (custom
``torch.autograd.Function``s), and modules whose parameter gradients are wrong.

Each framework's doubles are defined only when it is installed (importing this file imports torch,
jax and tensorflow where present); the tests guard each with ``pytest.importorskip``.
"""

from __future__ import annotations

try:
    import torch
except ImportError:  # pragma: no cover - torch is part of the dev extra
    torch = None


# --- torch -----------------------------------------------------------------------------------------

if torch is not None:

    def _dims(normalized_shape):
        return tuple(range(-len(tuple(normalized_shape)), 0))

    def _affine(y, weight, bias):
        if weight is not None:
            y = y * weight
        return y if bias is None else y + bias

    def layer_norm_no_grad_stats(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        """LayerNorm whose mean and variance are computed under ``torch.no_grad()``: the output is
        exact, the input gradient misses the statistics' dependence on the input."""
        dims = _dims(normalized_shape)
        with torch.no_grad():
            mean = input.mean(dims, keepdim=True)
            var = input.var(dims, unbiased=False, keepdim=True)
        return _affine((input - mean) / torch.sqrt(var + eps), weight, bias)

    def rms_norm_detached_rsqrt(input, normalized_shape, weight=None, eps=None):
        """RMSNorm with ``rsqrt(mean(x^2) + eps)`` detached: exact output, wrong input gradient."""
        eps = torch.finfo(input.dtype).eps if eps is None else eps
        r = torch.rsqrt(input.pow(2).mean(_dims(normalized_shape), keepdim=True) + eps).detach()
        return _affine(input * r, weight, None)

    class _LayerNormFunction(torch.autograd.Function):
        """LayerNorm over the last ``k`` axes with a hand-written backward: ``dx = (g - mean(g) -
        y^ mean(g y^)) / sigma`` recomputed from the saved input with differentiable ops (so its
        own derivative, the second order, is right too). Subclasses get it wrong on purpose."""

        @staticmethod
        def forward(ctx, x, weight, bias, k, eps):
            dims = tuple(range(-k, 0))
            mean = x.mean(dims, keepdim=True)
            sigma = torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
            ctx.save_for_backward(x, weight)
            ctx.k, ctx.eps = k, eps
            return _affine((x - mean) / sigma, weight, bias)

        @classmethod
        def statistics(cls, x, dims, eps):
            mean = x.mean(dims, keepdim=True)
            return mean, torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)

        @classmethod
        def input_gradient(cls, g, yhat, sigma, dims):
            return (g - g.mean(dims, keepdim=True) - yhat * (g * yhat).mean(dims, keepdim=True)) / sigma

        @classmethod
        def backward(cls, ctx, dy):
            x, weight = ctx.saved_tensors
            dims = tuple(range(-ctx.k, 0))
            mean, sigma = cls.statistics(x, dims, ctx.eps)
            yhat = (x - mean) / sigma
            g = dy if weight is None else dy * weight
            lead = tuple(range(dy.dim() - ctx.k))  # () sums nothing (torch's sum(()) would sum all)

            def total(t):
                return t.sum(lead) if lead else t

            dw = None if weight is None else total(dy * yhat)
            db = total(dy) if ctx.needs_input_grad[2] else None
            return cls.input_gradient(g, yhat, sigma, dims), dw, db, None, None

    class _NoMeanTerm(_LayerNormFunction):
        """Forgets the mean term: dx = (g - y^ mean(g y^)) / sigma (the RMSNorm formula)."""

        @classmethod
        def input_gradient(cls, g, yhat, sigma, dims):
            return (g - yhat * (g * yhat).mean(dims, keepdim=True)) / sigma

    class _DetachedBackward(_LayerNormFunction):
        """First order right, second order wrong: the backward computes with ``x.detach()``, so
        its result does not depend on the input in the graph double backward builds."""

        @classmethod
        def statistics(cls, x, dims, eps):
            return super().statistics(x.detach(), dims, eps)

        @classmethod
        def backward(cls, ctx, dy):
            dx, *rest = super().backward(ctx, dy.detach())
            return (dx.detach(), *rest)

    def _function_target(fn_cls):
        def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
            return fn_cls.apply(input, weight, bias, len(tuple(normalized_shape)), eps)

        layer_norm.__qualname__ = layer_norm.__name__ = f"layer_norm_{fn_cls.__name__.strip('_').lower()}"
        return layer_norm

    layer_norm_custom_function = _function_target(_LayerNormFunction)
    layer_norm_custom_function_no_mean_term = _function_target(_NoMeanTerm)
    layer_norm_custom_function_detached_backward = _function_target(_DetachedBackward)

    class LayerNormTwiceBiasGradient(torch.nn.Module):
        """A LayerNorm module whose output is exact and whose bias gradient is doubled
        (``bias + (bias - bias.detach())``): only the module's parameter gradients show it."""

        def __init__(self, normalized_shape, eps=1e-5):
            super().__init__()
            shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
            self.normalized_shape, self.eps = shape, eps
            self.weight = torch.nn.Parameter(torch.ones(shape))
            self.bias = torch.nn.Parameter(torch.zeros(shape))

        def forward(self, x):
            y = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight, None, self.eps)
            return y + (self.bias + (self.bias - self.bias.detach()))

    class LayerNormFrozenWeight(torch.nn.Module):
        """A LayerNorm module that uses ``weight.detach()``: exact output, no weight gradient."""

        def __init__(self, normalized_shape, eps=1e-5):
            super().__init__()
            shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
            self.normalized_shape, self.eps = shape, eps
            self.weight = torch.nn.Parameter(torch.ones(shape))
            self.bias = torch.nn.Parameter(torch.zeros(shape))

        def forward(self, x):
            return torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight.detach(), self.bias, self.eps)


# --- JAX -------------------------------------------------------------------------------------------

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    jax = None

if jax is not None:

    def jax_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        axes = tuple(range(-len(tuple(normalized_shape)), 0))
        mean = input.mean(axes, keepdims=True)
        var = ((input - mean) ** 2).mean(axes, keepdims=True)
        y = (input - mean) / jnp.sqrt(var + eps)
        y = y if weight is None else y * weight
        return y if bias is None else y + bias

    def jax_layer_norm_stop_gradient(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        """The statistics under ``jax.lax.stop_gradient``: exact output, wrong input gradient."""
        axes = tuple(range(-len(tuple(normalized_shape)), 0))
        mean = jax.lax.stop_gradient(input.mean(axes, keepdims=True))
        var = jax.lax.stop_gradient(((input - mean) ** 2).mean(axes, keepdims=True))
        y = (input - mean) / jnp.sqrt(var + eps)
        y = y if weight is None else y * weight
        return y if bias is None else y + bias


# --- TensorFlow / Keras ------------------------------------------------------------------------------


def tensorflow_doubles():
    """(a correct LayerNorm function, one with ``tf.stop_gradient`` statistics, a Keras
    LayerNormalization subclass whose ``call`` stops the statistics' gradient), imported on demand
    (TensorFlow's import is slow)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    def layer_norm(stop):
        def fn(input, normalized_shape, weight=None, bias=None, eps=1e-5):
            axes = list(range(-len(tuple(normalized_shape)), 0))
            mean, var = tf.nn.moments(input, axes, keepdims=True)
            if stop:
                mean, var = tf.stop_gradient(mean), tf.stop_gradient(var)
            y = (input - mean) / tf.sqrt(var + eps)
            y = y if weight is None else y * weight
            return y if bias is None else y + bias

        fn.__name__ = fn.__qualname__ = "tf_layer_norm_stop_gradient" if stop else "tf_layer_norm"
        return fn

    class KerasLayerNormStopGradient(keras.layers.LayerNormalization):
        """Keras's LayerNormalization with the statistics under ``tf.stop_gradient``."""

        def call(self, inputs):
            axes = list(self.axis) if isinstance(self.axis, list | tuple) else [self.axis]
            mean, var = tf.nn.moments(inputs, axes, keepdims=True)
            mean, var = tf.stop_gradient(mean), tf.stop_gradient(var)
            y = (inputs - mean) * tf.math.rsqrt(var + self.epsilon)
            if self.scale:
                y = y * self.gamma
            return y + self.beta if self.center else y

    return layer_norm(False), layer_norm(True), KerasLayerNormStopGradient


def tensorflow_plain_layer_norm():
    """A TensorFlow LayerNorm whose statistics are plain reductions (no ``tf.nn.moments``, whose
    ``stop_gradient`` on the mean breaks second derivatives): right to the second order."""
    import tensorflow as tf

    def tf_layer_norm_plain(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        axes = list(range(-len(tuple(normalized_shape)), 0))
        mean = tf.reduce_mean(input, axes, keepdims=True)
        var = tf.reduce_mean(tf.square(input - mean), axes, keepdims=True)
        y = (input - mean) / tf.sqrt(var + eps)
        y = y if weight is None else y * weight
        return y if bias is None else y + bias

    return tf_layer_norm_plain
