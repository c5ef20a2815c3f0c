"""BatchNorm test doubles with the canonical (torch.nn.functional.batch_norm) signature, in NumPy:
one correct, and the four classic state bugs the state properties must catch. The arithmetic is
float64 rounded to the input dtype, so only the state convention differs from the reference."""

from __future__ import annotations

import numpy as np


def _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, *, variant="correct"):
    x = np.asarray(input)
    v = x.astype(np.float64)
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    if training and n < 2:
        raise ValueError("Expected more than 1 value per channel when training")
    use_batch = training or variant == "batch_stats_in_eval"
    if use_batch:
        mean = v.mean(axis=axes)
        var = ((v - mean.reshape(shape)) ** 2).mean(axis=axes)
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    if training and running_mean is not None and variant != "never_updates":
        stored = var if variant == "biased_running_var" else var * n / (n - 1)
        m = 1.0 - momentum if variant == "keras_momentum" else momentum
        running_mean[...] = ((1 - m) * running_mean.astype(np.float64) + m * mean).astype(running_mean.dtype)
        running_var[...] = ((1 - m) * running_var.astype(np.float64) + m * stored).astype(running_var.dtype)
    y = (v - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y.astype(x.dtype)


def batch_norm_correct(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps)


def batch_norm_biased_running_var(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Stores the biased batch variance in running_var (as Keras and Flax do)."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, variant="biased_running_var")


def batch_norm_keras_momentum(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Reads momentum the Keras way: new = momentum * old + (1 - momentum) * batch."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, variant="keras_momentum")


def batch_norm_batch_stats_in_eval(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Normalizes with the batch's statistics in eval mode too (the buffers are never read)."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, variant="batch_stats_in_eval")


def batch_norm_never_updates(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Never writes the running buffers."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, variant="never_updates")
