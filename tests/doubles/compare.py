"""Ports of torch's LayerNorm and BatchNorm for ``normcheck compare`` (issue 27): NumPy module classes
with torch.nn's constructor and attributes, one faithful and one per convention slip a port makes.

- :class:`LayerNormPort` is faithful to ``torch.nn.LayerNorm`` (eps default 1e-5);
- :class:`LayerNormFlaxEps` has Flax's eps default, 1e-6;
- :class:`BatchNormPort` is faithful to ``torch.nn.BatchNorm2d``: eps 1e-5, the new running value
  ``(1 - m) old + m batch``, the unbiased batch variance stored;
- :class:`BatchNormKerasEps` has Keras's eps default, 1e-3;
- :class:`BatchNormKerasMomentum` reads momentum as Keras does: ``m old + (1 - m) batch``;
- :class:`BatchNormBiasedVar` stores the biased batch variance (Keras's and Flax's convention).

``torch_layer_norm_eps6`` is a torch function port that hard-codes eps = 1e-6 (a slip a function
target can make: the eps it is given is ignored).
"""

from __future__ import annotations

import numpy as np


class LayerNormPort:
    """torch.nn.LayerNorm in NumPy: statistics over the trailing ``normalized_shape`` axes."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = np.ones(shape, np.float32) if elementwise_affine else None
        self.bias = np.zeros(shape, np.float32) if elementwise_affine else None

    def __call__(self, x):
        axes = tuple(range(x.ndim - len(self.normalized_shape), x.ndim))
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x64 - mean) / np.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.astype(np.float64)
        if self.bias is not None:
            y = y + self.bias.astype(np.float64)
        return y.astype(x.dtype)


class LayerNormFlaxEps(LayerNormPort):
    """The port with Flax's eps default (1e-6) where torch's is 1e-5."""

    def __init__(self, normalized_shape, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__(normalized_shape, eps, elementwise_affine)


class BatchNormPort:
    """torch.nn.BatchNorm2d in NumPy (any rank >= 2, channel axis 1)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        self.eps, self.momentum, self.training = eps, momentum, True
        self.weight = np.ones(num_features, np.float32) if affine else None
        self.bias = np.zeros(num_features, np.float32) if affine else None
        self.running_mean = np.zeros(num_features, np.float32) if track_running_stats else None
        self.running_var = np.ones(num_features, np.float32) if track_running_stats else None

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def update(self, old, batch, m):
        """The new running value (torch: the batch weighted by m)."""
        return (1 - m) * old + m * batch

    def stored_variance(self, var, n):
        """The batch variance the running variance averages (torch: unbiased)."""
        return var * n / max(n - 1, 1)

    def __call__(self, x):
        axes = (0, *range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x64 = x.astype(np.float64)
        tracked = self.running_mean is not None
        if self.training or not tracked:
            mean = x64.mean(axis=axes)
            var = ((x64 - mean.reshape(shape)) ** 2).mean(axis=axes)
            if self.training and tracked:
                n = x.size // x.shape[1]
                rm, rv = self.running_mean, self.running_var
                m = self.momentum
                self.running_mean = self.update(rm.astype(np.float64), mean, m).astype(rm.dtype)
                self.running_var = self.update(rv.astype(np.float64), self.stored_variance(var, n), m).astype(rv.dtype)
        else:
            mean, var = self.running_mean.astype(np.float64), self.running_var.astype(np.float64)
        y = (x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.astype(np.float64).reshape(shape)
        if self.bias is not None:
            y = y + self.bias.astype(np.float64).reshape(shape)
        return y.astype(x.dtype)


class BatchNormKerasEps(BatchNormPort):
    """The port with Keras's eps default (1e-3) where torch's is 1e-5."""

    def __init__(self, num_features: int, eps: float = 1e-3, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True):  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats)


class BatchNormKerasMomentum(BatchNormPort):
    """The port that reads momentum as Keras does: the weight of the old value."""

    def update(self, old, batch, m):
        return m * old + (1 - m) * batch


class BatchNormBiasedVar(BatchNormPort):
    """The port that stores the biased batch variance (Keras's and Flax's running variance)."""

    def stored_variance(self, var, n):
        return var


def torch_layer_norm_eps6(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch's layer_norm with eps hard-coded to 1e-6 (the eps argument ignored)."""
    import torch

    return torch.nn.functional.layer_norm(input, normalized_shape, weight, bias, 1e-6)


def torch_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch's own layer_norm, as a function target."""
    import torch

    return torch.nn.functional.layer_norm(input, normalized_shape, weight, bias, eps)


def _jax_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, *, slip=None):
    """torch.nn.functional.batch_norm in JAX (immutable arrays: returns (y, new_mean, new_var) after a
    training step with buffers); ``slip``: "momentum" (Keras's convention) or "biased" (stored variance)."""
    import jax.numpy as jnp

    axes = (0, *range(2, input.ndim))
    shape = (1, -1) + (1,) * (input.ndim - 2)
    tracked = running_mean is not None
    if training or not tracked:
        mean = jnp.mean(input, axis=axes)
        var = jnp.mean(jnp.square(input - mean.reshape(shape)), axis=axes)
    else:
        mean, var = running_mean, running_var
    y = (input - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    if not (training and tracked):
        return y
    n = input.size // input.shape[1]
    stored = var if slip == "biased" else var * n / max(n - 1, 1)
    m = 1 - momentum if slip == "momentum" else momentum
    new_mean = (1 - m) * running_mean + m * mean.astype(running_mean.dtype)
    new_var = (1 - m) * running_var + m * stored.astype(running_var.dtype)
    return y.astype(input.dtype), new_mean, new_var


def jax_batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                   momentum=0.1, eps=1e-5):  # fmt: skip
    """A faithful JAX port of torch's batch_norm."""
    return _jax_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def jax_batch_norm_keras_momentum(input, running_mean=None, running_var=None, weight=None, bias=None,
                                  training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """The JAX port reading momentum as Keras and Flax do (the weight of the old value)."""
    return _jax_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, slip="momentum")


def jax_batch_norm_biased_var(input, running_mean=None, running_var=None, weight=None, bias=None,
                              training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """The JAX port storing the biased batch variance (Flax's running variance)."""
    return _jax_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, slip="biased")


def jax_layer_norm_flax_eps(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """A JAX port of torch's layer_norm that uses Flax's eps (1e-6) whatever it is given."""
    import jax.numpy as jnp

    axes = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    mean = jnp.mean(input, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(input - mean), axis=axes, keepdims=True)
    y = (input - mean) / jnp.sqrt(var + 1e-6)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
