"""Doubles for the named causes of issue 26, item 4: one wrong implementation per cause, written as
people write them (NumPy with torch.nn.functional's signatures; the gradient one in torch).

- ``layer_norm_promoted``: a float16 input returned as float32 (computed in float32, never cast back);
- ``layer_norm_tf_moments``: ``tf.nn.moments`` on a float16 input: mean and variance computed in
  float32 and cast back to float16, so a variance above 65504 (std ≥ 256) becomes inf and the output 0;
- ``rms_norm_gemma``: Gemma's RMSNorm, ``x / rms · (1 + weight)``;
- ``batch_norm_averaged``: a BatchNorm that, in training, updates its running buffers and
  normalizes with them (an EMA of the statistics) instead of the batch's;
- ``instance_norm_wrong_axes_stale_buffers``: an InstanceNorm over (C, H, W) per sample whose running
  buffers are never updated (two causes, in two property families);
- ``layer_norm_rsqrt_torch``: ``(x − mean) · torch.rsqrt(var + eps)``, whose backward carries
  ``rsqrt³`` = (var + eps)^(−3/2): below float32's smallest normal once |x| ≳ 1e13, the gradient's
  variance term is lost to underflow (torch present only);
- ``layer_norm_rsqrt_eps_ignored``: the same without eps: a wrong output on a constant set besides
  (two causes, in the output and in the gradients);
- ``layer_norm_half_cast``: a bfloat16 input cast to float16 (``x.half()``): wrong only past 65504,
  so every failure lies in the huge regime.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is part of the dev extra
    torch = None

F32 = np.float32


def _trailing(x, normalized_shape):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm_promoted(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Right in float32; for a 16-bit input the float32 result is returned as it is."""
    x = np.asarray(input).astype(F32)
    ax = _trailing(x, normalized_shape)
    d = x - x.mean(axis=ax, keepdims=True)
    y = d / np.sqrt((d * d).mean(axis=ax, keepdims=True) + F32(eps))
    if weight is not None:
        y = y * np.asarray(weight).astype(F32)
    if bias is not None:
        y = y + np.asarray(bias).astype(F32)
    return y


def _moments16(x, axes):
    """``tf.nn.moments`` for a float16 ``x``: computed in float32, returned in float16."""
    y = x.astype(F32)
    mean = y.mean(axis=axes, keepdims=True)
    var = ((y - mean) ** 2).mean(axis=axes, keepdims=True)
    with np.errstate(over="ignore"):
        return mean.astype(x.dtype), var.astype(x.dtype)


def layer_norm_tf_moments(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``mean, var = tf.nn.moments(x, axes); tf.nn.batch_normalization(x, mean, var, bias, weight, eps)``
    in the input's dtype: a float16 variance of inf (std ≥ 256) gives 0 where ±1 is right."""
    x = np.asarray(input)
    ax = _trailing(x, normalized_shape)
    mean, var = _moments16(x, ax)
    dt = x.dtype.type
    with np.errstate(all="ignore"):
        inv = dt(1) / np.sqrt(var + dt(eps))
        if weight is not None:
            inv = inv * np.asarray(weight).astype(x.dtype)
        y = x * inv + ((dt(0) if bias is None else np.asarray(bias).astype(x.dtype)) - mean * inv)
    return y.astype(x.dtype)


def rms_norm_gemma(input, normalized_shape, weight=None, eps=None):
    """Gemma's RMSNorm: ``x * rsqrt(mean(x²) + eps) * (1 + weight)`` (the weight stored as an offset from 1)."""
    x = np.asarray(input)
    ax = _trailing(x, normalized_shape)
    e = float(np.finfo(F32).eps) if eps is None else eps
    v = x.astype(F32)
    y = v / np.sqrt((v * v).mean(axis=ax, keepdims=True) + F32(e))
    if weight is not None:
        y = y * (F32(1) + np.asarray(weight).astype(F32))
    return y.astype(x.dtype)


def batch_norm_averaged(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-5):  # fmt: skip
    """In training the buffers are updated (torch's rule) and then normalize the batch: the output
    uses the averaged statistics, not the batch's."""
    x = np.asarray(input).astype(F32)
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=axes)
    var = ((x64 - mu.reshape(shape)) ** 2).mean(axis=axes)
    if running_mean is None:
        m_used, v_used = mu, var
    else:
        if training:
            n = x.size // x.shape[1]
            m = 0.1 if momentum is None else momentum
            running_mean[...] = ((1 - m) * running_mean.astype(np.float64) + m * mu).astype(running_mean.dtype)
            unbiased = var * (n / (n - 1)) if n > 1 else var
            running_var[...] = ((1 - m) * running_var.astype(np.float64) + m * unbiased).astype(running_var.dtype)
        m_used, v_used = running_mean.astype(np.float64), running_var.astype(np.float64)
    y = ((x64 - m_used.reshape(shape)) / np.sqrt(v_used.reshape(shape) + eps)).astype(F32)
    if weight is not None:
        y = y * np.asarray(weight).astype(F32).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias).astype(F32).reshape(shape)
    return y.astype(np.asarray(input).dtype)


def instance_norm_wrong_axes_stale_buffers(input, running_mean=None, running_var=None, weight=None, bias=None,
                                           use_input_stats=True, momentum=0.1, eps=1e-5):  # fmt: skip
    """Statistics per sample over (C, H, W) (a LayerNorm's set, not per channel); the running buffers
    are read in eval mode but never written."""
    x = np.asarray(input).astype(F32)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if use_input_stats or running_mean is None:
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean = np.asarray(running_mean).astype(F32).reshape(shape)
        var = np.asarray(running_var).astype(F32).reshape(shape)
    y = (x - mean) / np.sqrt(var + F32(eps))
    if weight is not None:
        y = y * np.asarray(weight).astype(F32).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias).astype(F32).reshape(shape)
    return y.astype(np.asarray(input).dtype)


if torch is not None:

    def layer_norm_rsqrt_torch(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        """A hand-written LayerNorm through torch.rsqrt: right forward, and a backward whose rsqrt
        derivative (rsqrt³) underflows float32 at |x| ≳ 1e13."""
        dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
        mean = input.mean(dims, keepdim=True)
        d = input - mean
        y = d * torch.rsqrt((d * d).mean(dims, keepdim=True) + eps)
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        return y


def instance_norm_wrong_axes_no_buffers(input, running_mean=None, running_var=None, weight=None, bias=None,
                                        use_input_stats=True, momentum=0.1, eps=1e-5):  # fmt: skip
    """Statistics per sample over (C, H, W) in training and in eval mode alike: the running buffers
    are ignored (never read, never written)."""
    return instance_norm_wrong_axes_stale_buffers(input, None, None, weight, bias, True, momentum, eps)


if torch is not None:

    def layer_norm_rsqrt_eps_ignored(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        """Two causes in two families: eps ignored in the output (``rsqrt(var)``, NaN on a constant set),
        and rsqrt's derivative underflowing float32 in the gradient at |x| ≳ 1e13."""
        dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
        d = input - input.mean(dims, keepdim=True)
        y = d * torch.rsqrt((d * d).mean(dims, keepdim=True))
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        return y


def layer_norm_half_cast(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``x.half()`` to save memory, whatever the input dtype, then computed in float32: a bfloat16
    input loses nothing to float16's finer mantissa, but values past 65504 become inf (NaN out)."""
    x = np.asarray(input)
    with np.errstate(over="ignore"):
        h = x.astype(np.float16).astype(F32)
    ax = _trailing(x, normalized_shape)
    with np.errstate(invalid="ignore"):
        d = h - h.mean(axis=ax, keepdims=True)
        y = d / np.sqrt((d * d).mean(axis=ax, keepdims=True) + F32(eps))
    if weight is not None:
        y = y * np.asarray(weight).astype(F32)
    if bias is not None:
        y = y + np.asarray(bias).astype(F32)
    return y.astype(x.dtype)
