"""Hand-written norm implementations in NumPy float32: a few correct ones in different styles, and
the classic mistakes the suite must catch. Canonical (torch.nn.functional) signatures."""

from __future__ import annotations

import numpy as np


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * np.asarray(weight, np.float32).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float32).reshape(shape)
    return y


def _ln_axes(x, normalized_shape):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


# --- correct ---------------------------------------------------------------------------------


def layer_norm_two_pass(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = np.asarray(input, np.float32)
    ax = _ln_axes(x, normalized_shape)
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    y = (x - mu) / np.sqrt(var + np.float32(eps))
    return _affine(y, weight, bias, x.shape[x.ndim - len(ax) :]).astype(input.dtype)


def group_norm_rsqrt(input, num_groups, weight=None, bias=None, eps=1e-5):
    x = np.asarray(input, np.float32)
    n, c = x.shape[:2]
    v = x.reshape(n, num_groups, -1)
    mu = v.mean(-1, keepdims=True)
    rstd = np.float32(1) / np.sqrt(v.var(-1, keepdims=True) + np.float32(eps))
    y = ((v - mu) * rstd).reshape(x.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (x.ndim - 2)).astype(input.dtype)


# --- wrong -----------------------------------------------------------------------------------


def layer_norm_one_pass(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """var = E[x^2] - E[x]^2 in float32: cancels catastrophically when |mean| >> std."""
    x = np.asarray(input, np.float32)
    ax = _ln_axes(x, normalized_shape)
    mu = x.mean(axis=ax, keepdims=True)
    var = np.maximum((x * x).mean(axis=ax, keepdims=True) - mu * mu, 0)
    y = (x - mu) / np.sqrt(var + np.float32(eps))
    return _affine(y, weight, bias, x.shape[x.ndim - len(ax) :]).astype(input.dtype)


def group_norm_unbiased(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Bessel's correction: var with ddof=1 (torch.var's default), not the biased one."""
    x = np.asarray(input, np.float32)
    n, c = x.shape[:2]
    v = x.reshape(n, num_groups, -1)
    mu = v.mean(-1, keepdims=True)
    var = v.var(-1, ddof=1, keepdims=True) if v.shape[-1] > 1 else np.zeros_like(mu)
    y = ((v - mu) / np.sqrt(var + np.float32(eps))).reshape(x.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (x.ndim - 2)).astype(input.dtype)


def group_norm_eps_outside(input, num_groups, weight=None, bias=None, eps=1e-5):
    """(x - mean) / (std + eps): eps outside the square root."""
    x = np.asarray(input, np.float32)
    n, c = x.shape[:2]
    v = x.reshape(n, num_groups, -1)
    mu = v.mean(-1, keepdims=True)
    y = ((v - mu) / (np.sqrt(v.var(-1, keepdims=True)) + np.float32(eps))).reshape(x.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (x.ndim - 2)).astype(input.dtype)
