"""Doubles for the diagnosis (issue 15): one wrong implementation per catalogue variant added for
the issue, and the two-cause implementations people actually copy.

NumPy doubles (canonical ``torch.nn.functional`` signatures) compute in float32 and return the
input's dtype, except where the mistake is about precision (statistics in the input's dtype, the
output promoted). The torch doubles (``GroupBatchnorm2d`` as published, the annotated
transformer's ``LayerNorm``) are defined only when torch is installed; importing this file never
fails without it.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is part of the dev extra
    torch = None

F32 = np.float32


def _f32(a):
    return None if a is None else np.asarray(a).astype(F32)


def _affine(y, weight, bias, shape, *, gain="weight", needs_bias=False):
    if needs_bias and bias is None:
        weight = None
    if weight is not None:
        w = _f32(weight).reshape(shape)
        y = y * (F32(1) + w if gain == "one_plus" else w)
    if bias is not None:
        y = y + _f32(bias).reshape(shape)
    return y


def _trailing(x, normalized_shape):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def _normalize(v, axes, eps, *, center=True, ddof=0, eps_mode="inside", native=False):
    """(v − mean) / sqrt(var + eps) over ``axes`` in float32; ``native=True`` computes in ``v``'s own
    dtype the way torch code on a half tensor does, ``d = x - x.mean(); d / sqrt((d * d).mean() + eps)``:
    elementwise in that dtype, sums accumulated in float32 (as torch's and NumPy's float16 means do)."""
    if native:
        mean = np.mean(v, axis=axes, keepdims=True, dtype=F32).astype(v.dtype) if center else np.zeros((), v.dtype)
        d = v - mean
        var = np.mean(d * d, axis=axes, keepdims=True, dtype=F32).astype(v.dtype)
        return d / np.sqrt(var + v.dtype.type(eps))
    v = v.astype(F32)
    mean = v.mean(axis=axes, keepdims=True) if center else F32(0)
    d = v - mean
    n = int(np.prod([v.shape[a] for a in axes]))
    with np.errstate(all="ignore"):
        var = (d * d).sum(axis=axes, keepdims=True) / F32(max(n - ddof, 0))
        if eps_mode == "outside":
            return d / (np.sqrt(var) + F32(eps))
        return d / np.sqrt(var + F32(eps))


# --- one variant each -------------------------------------------------------------------------------


def layer_norm_one_plus_weight(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = x̂·(1 + weight) + bias: the weight kept as an offset from 1 (Gemma's RMSNorm style)."""
    x = np.asarray(input)
    ax = _trailing(x, normalized_shape)
    y = _normalize(x, ax, eps)
    return _affine(y, weight, bias, x.shape[ax[0] :], gain="one_plus").astype(x.dtype)


def layer_norm_weight_needs_bias(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``if bias is not None: y = y * weight + bias``: the weight is dropped when there is no bias."""
    x = np.asarray(input)
    ax = _trailing(x, normalized_shape)
    y = _normalize(x, ax, eps)
    return _affine(y, weight, bias, x.shape[ax[0] :], needs_bias=True).astype(x.dtype)


def layer_norm_native_stats(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Statistics in the input's dtype: right in float32, (x − mean)² overflows in float16."""
    x = np.asarray(input)
    ax = _trailing(x, normalized_shape)
    with np.errstate(all="ignore"):
        y = _normalize(x, ax, eps, native=True)
    return _affine(y, weight, bias, x.shape[ax[0] :]).astype(x.dtype)


def group_norm_hardwired_eps(input, num_groups, weight=None, bias=None, eps=1e-5):
    """eps fixed at 1e-3 (Keras's default) whatever the argument says."""
    x = np.asarray(input)
    v = x.reshape(x.shape[0], num_groups, -1)
    y = _normalize(v, (2,), 1e-3).reshape(x.shape)
    return _affine(y, weight, bias, (1, x.shape[1]) + (1,) * (x.ndim - 2)).astype(x.dtype)


def group_norm_promoted(input, num_groups, weight=None, bias=None, eps=1e-5, *, ddof=0):
    """Computes in float32 and returns float32 whatever the input dtype (no cast back)."""
    x = np.asarray(input)
    v = x.reshape(x.shape[0], num_groups, -1)
    y = _normalize(v, (2,), eps, ddof=ddof).reshape(x.shape)
    return _affine(y, weight, bias, (1, x.shape[1]) + (1,) * (x.ndim - 2))


def group_norm_unbiased_promoted(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Two mistakes: Bessel's correction, and a float32 output for 16-bit inputs."""
    return group_norm_promoted(input, num_groups, weight, bias, eps, ddof=1)


def group_norm_across_samples(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Statistics per group over the whole batch (axes 0 and the group's), not per sample."""
    x = np.asarray(input)
    v = x.reshape(x.shape[0], num_groups, -1)
    y = _normalize(v, (0, 2), eps).reshape(x.shape)
    return _affine(y, weight, bias, (1, x.shape[1]) + (1,) * (x.ndim - 2)).astype(x.dtype)


def rms_norm_eps_from_input(input, normalized_shape, weight=None, eps=None):
    """eps=None read as finfo(input dtype).eps (9.8e-4 for float16, 7.8e-3 for bfloat16) instead of
    finfo(float32).eps, the computation dtype's."""
    from normcheck.dtypes import finfo

    x = np.asarray(input)
    if eps is None:
        eps = float(finfo(x.dtype).eps) if x.dtype.itemsize == 2 else float(np.finfo(F32).eps)
    ax = _trailing(x, normalized_shape)
    y = _normalize(x, ax, eps, center=False)
    return _affine(y, weight, None, x.shape[ax[0] :]).astype(x.dtype)


def group_norm_rank4_only(input, num_groups, weight=None, bias=None, eps=1e-5):
    """``N, C, H, W = x.size()``: any other rank raises."""
    x = np.asarray(input)
    if x.ndim != 4:
        raise ValueError(f"not enough values to unpack (expected 4, got {x.ndim})")
    v = x.reshape(x.shape[0], num_groups, -1)
    y = _normalize(v, (2,), eps).reshape(x.shape)
    return _affine(y, weight, bias, (1, x.shape[1], 1, 1)).astype(x.dtype)


# --- running statistics -------------------------------------------------------------------------------


def _bn(input, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
        eps=1e-5, *, frozen=False, update="torch", eval_update=False):  # fmt: skip
    """A torch-convention BatchNorm (buffers updated in place), statistics in float64, normalized
    in float32, with one knob per state mistake."""
    x = np.asarray(input).astype(F32)
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=axes, keepdims=True)
    has = running_mean is not None
    if training and not (frozen and has):
        m_used, v_used = mu.astype(F32), var.astype(F32)
    else:
        m_used, v_used = _f32(running_mean).reshape(shape), _f32(running_var).reshape(shape)
    y = (x - m_used) / np.sqrt(v_used + F32(eps))
    if has and (training or eval_update) and not frozen:
        n = x.size // x.shape[1]
        store = var * (n / (n - 1)) if n > 1 else var
        m = {"torch": momentum, "none": 0.0, "one": 1.0}[update]
        for buf, stat in ((running_mean, mu), (running_var, store)):
            new = (1 - m) * buf.astype(np.float64) + m * stat.reshape(-1)
            buf[...] = new.astype(buf.dtype)
    return _affine(y, weight, bias, shape).astype(np.asarray(input).dtype)


def batch_norm_frozen(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                      momentum=0.1, eps=1e-5):  # fmt: skip
    """Normalizes with the running buffers in training too and never updates them (FrozenBatchNorm)."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, frozen=True)


def batch_norm_never_updates(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                             momentum=0.1, eps=1e-5):  # fmt: skip
    """``momentum = self.momentum or 0.0``-style: the buffers are never updated."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, update="none")


def batch_norm_momentum_one(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                            momentum=0.1, eps=1e-5):  # fmt: skip
    """Momentum ignored: the buffers become the batch statistics (a first-step cumulative average)."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, update="one")


def batch_norm_eval_updates(input, running_mean=None, running_var=None, weight=None, bias=None, training=False,
                            momentum=0.1, eps=1e-5):  # fmt: skip
    """Normalizes right in eval mode, but updates the buffers there too."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, eval_update=True)


# --- two causes at once ----------------------------------------------------------------------------------


def group_batchnorm2d(input, num_groups, weight=None, bias=None, eps=1e-5):
    """The widely copied ``GroupBatchnorm2d`` (SCConv and others) in NumPy: ``(x - mean) / (x.std() + eps)``
    over each group with the unbiased std (torch's default), for any rank."""
    x = np.asarray(input)
    v = x.reshape(x.shape[0], num_groups, -1)
    y = _normalize(v, (2,), eps, ddof=1, eps_mode="outside").reshape(x.shape)
    return _affine(y, weight, bias, (1, x.shape[1]) + (1,) * (x.ndim - 2)).astype(x.dtype)


def annotated_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-6):
    """The annotated transformer's LayerNorm in NumPy: ``a_2 * (x - mean) / (std + eps) + b_2`` over the
    last axis with the unbiased std, whatever normalized_shape says."""
    x = np.asarray(input)
    y = _normalize(x, (x.ndim - 1,), eps, ddof=1, eps_mode="outside")
    return _affine(y, weight, bias, x.shape[x.ndim - len(_trailing(x, normalized_shape)) :]).astype(x.dtype)


if torch is not None:
    nn = torch.nn

    class GroupBatchnorm2d(nn.Module):
        """As published (SCConv, CVPR 2023), and copied widely: unbiased std, eps added to the std."""

        def __init__(self, c_num: int, group_num: int = 16, eps: float = 1e-10):
            super().__init__()
            assert c_num >= group_num
            self.group_num = group_num
            self.weight = nn.Parameter(torch.randn(c_num, 1, 1))
            self.bias = nn.Parameter(torch.zeros(c_num, 1, 1))
            self.eps = eps

        def forward(self, x):
            N, C, H, W = x.size()
            x = x.view(N, self.group_num, -1)
            mean = x.mean(dim=2, keepdim=True)
            std = x.std(dim=2, keepdim=True)
            x = (x - mean) / (std + self.eps)
            x = x.view(N, C, H, W)
            return x * self.weight + self.bias

    def torch_group_batchnorm2d(input, num_groups, weight=None, bias=None, eps=1e-5):
        """GroupBatchnorm2d's forward as a function with group_norm's signature, for any rank."""
        n, c = input.shape[:2]
        x = input.view(n, num_groups, -1)
        mean = x.mean(dim=2, keepdim=True)
        std = x.std(dim=2, keepdim=True)
        x = ((x - mean) / (std + eps)).view(input.shape)
        shape = (1, c) + (1,) * (input.dim() - 2)
        if weight is not None:
            x = x * weight.view(shape)
        if bias is not None:
            x = x + bias.view(shape)
        return x

    class AnnotatedLayerNorm(nn.Module):
        """The annotated transformer's LayerNorm (Harvard NLP), as published."""

        def __init__(self, features, eps=1e-6):
            super().__init__()
            self.a_2 = nn.Parameter(torch.ones(features))
            self.b_2 = nn.Parameter(torch.zeros(features))
            self.eps = eps

        def forward(self, x):
            mean = x.mean(-1, keepdim=True)
            std = x.std(-1, keepdim=True)
            return self.a_2 * (x - mean) / (std + self.eps) + self.b_2

    def torch_annotated_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-6):
        """AnnotatedLayerNorm's forward as a function with layer_norm's signature (last axis only)."""
        mean = input.mean(-1, keepdim=True)
        std = input.std(-1, keepdim=True)
        y = (input - mean) / (std + eps)
        if weight is not None:
            y = weight * y
        if bias is not None:
            y = y + bias
        return y
