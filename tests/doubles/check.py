"""Test doubles for ``normcheck check``: user implementations with the canonical signatures.

- one wrong implementation per diagnosis variant (``WRONG``: name -> (norm, function, the variant
  the diagnosis must name));
- bad targets: one that raises, returns the wrong shape or dtype, returns NaN, modifies its input,
  hangs, and a non-callable;
- correct implementations in several styles (two-pass, ``torch.var_mean``, rsqrt, float32 upcast
  of 16-bit inputs), and torch modules (``torch.nn.GroupNorm`` / ``BatchNorm`` constructor style).

NumPy doubles compute in float32 (16-bit inputs upcast) and return the input's dtype; the torch
doubles work on tensors. Importing this file imports torch when it is installed.
"""

from __future__ import annotations

import time

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is part of the dev extra
    torch = None

F32 = np.float32


def _f32(a):
    return None if a is None else np.asarray(a).astype(F32)


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * _f32(weight).reshape(shape)
    if bias is not None:
        y = y + _f32(bias).reshape(shape)
    return y


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _gn(input, num_groups, weight=None, bias=None, eps=1e-5, *, variance="biased", eps_mode="inside",
        strided=False, affine="channel", groups_as_size=False, stats="group"):  # fmt: skip
    """A float32 GroupNorm with one knob per mistake (the default is correct)."""
    x = np.asarray(input).astype(F32)
    n, c = x.shape[:2]
    if affine == "before":
        x = _affine(x, weight, bias, _channel_shape(x))
        weight = bias = None
    g = c // num_groups if groups_as_size else num_groups
    if strided:
        v = x.reshape(n, c // g, g, -1).transpose(0, 2, 1, 3).reshape(n, g, -1)
    elif stats == "channel":
        v = x.reshape(n, c, -1)
    else:
        v = x.reshape(n, g, -1)
    mu = v.mean(-1, keepdims=True)
    d = v - mu
    if variance == "one_pass":
        var = np.maximum((v * v).mean(-1, keepdims=True) - mu * mu, F32(0))
    else:
        var = (d * d).mean(-1, keepdims=True)
        if variance == "unbiased" and v.shape[-1] > 1:
            var = var * F32(v.shape[-1] / (v.shape[-1] - 1))
    eps = F32(eps)
    if eps_mode == "outside":
        y = d / (np.sqrt(var) + eps)
    elif eps_mode == "ignored":
        y = d / np.sqrt(var)
    elif eps_mode == "clamped":
        y = d / np.sqrt(np.maximum(var, eps))
    else:
        y = d / np.sqrt(var + eps)
    if strided:
        y = y.reshape(n, g, c // g, -1).transpose(0, 2, 1, 3)
    y = y.reshape(x.shape)
    if affine == "group":
        idx = np.arange(c) // (c // num_groups)
        weight = None if weight is None else np.asarray(weight)[idx]
        bias = None if bias is None else np.asarray(bias)[idx]
    return _affine(y, weight, bias, _channel_shape(x)).astype(np.asarray(input).dtype)


# --- correct -----------------------------------------------------------------------------------


def group_norm_two_pass(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Two passes in float32: the mean, then the mean squared deviation."""
    return _gn(input, num_groups, weight, bias, eps)


def layer_norm_rsqrt(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """rsqrt style: multiply by 1 / sqrt(var + eps) computed once per set."""
    x = np.asarray(input).astype(F32)
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    ax = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=ax, keepdims=True)
    rstd = F32(1) / np.sqrt(x.var(axis=ax, keepdims=True) + F32(eps))
    y = (x - mu) * rstd
    return _affine(y, weight, bias, x.shape[x.ndim - k :]).astype(np.asarray(input).dtype)


def group_norm_upcast(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Mixed precision done right: a 16-bit input is upcast to float32, normalized, cast back once."""
    x = np.asarray(input)
    y = _gn(x.astype(F32), num_groups, _f32(weight), _f32(bias), eps)
    return y.astype(x.dtype)


def group_norm_var_mean(input, num_groups, weight=None, bias=None, eps=1e-5):
    """torch: torch.var_mean with correction=0 over each group, computed in float32."""
    n, c = input.shape[:2]
    x = input.float().reshape(n, num_groups, -1)
    var, mean = torch.var_mean(x, dim=-1, correction=0, keepdim=True)
    y = ((x - mean) * torch.rsqrt(var + eps)).reshape(input.shape)
    shape = (1, c) + (1,) * (input.dim() - 2)
    if weight is not None:
        y = y * weight.float().reshape(shape)
    if bias is not None:
        y = y + bias.float().reshape(shape)
    return y.to(input.dtype)


def _bn(input, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
        eps=1e-5, *, stored="unbiased", swap_momentum=False, eval_batch_stats=False):  # fmt: skip
    """A BatchNorm in the torch convention (running buffers updated in place): statistics
    accumulated in float64, normalized in float32."""
    x = np.asarray(input).astype(F32)
    axes = (0, *range(2, x.ndim))
    shape = _channel_shape(x)
    if training or eval_batch_stats:
        x64 = x.astype(np.float64)
        mu = x64.mean(axis=axes, keepdims=True)
        var = ((x64 - mu) ** 2).mean(axis=axes, keepdims=True)
        if training and running_mean is not None:
            n = x.size // x.shape[1]
            store = var * (n / (n - 1)) if stored == "unbiased" and n > 1 else var
            m = 1 - momentum if swap_momentum else momentum
            for buf, stat in ((running_mean, mu), (running_var, store)):
                new = (1 - m) * buf.astype(np.float64) + m * stat.reshape(-1)
                buf[...] = new.astype(buf.dtype)
        mu, var = mu.astype(F32), var.astype(F32)
    else:
        mu, var = _f32(running_mean).reshape(shape), _f32(running_var).reshape(shape)
    y = (x - mu) / np.sqrt(var + F32(eps))
    return _affine(y, weight, bias, shape).astype(np.asarray(input).dtype)


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):  # fmt: skip
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps)


if torch is not None:

    class TorchGroupNorm(torch.nn.Module):
        """A hand-written GroupNorm module, constructed like torch.nn.GroupNorm."""

        def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
            super().__init__()
            self.num_groups, self.eps = num_groups, eps
            self.weight = torch.nn.Parameter(torch.ones(num_channels)) if affine else None
            self.bias = torch.nn.Parameter(torch.zeros(num_channels)) if affine else None

        def forward(self, x):
            n, c = x.shape[:2]
            v = x.float().reshape(n, self.num_groups, -1)
            mean = v.mean(-1, keepdim=True)
            var = ((v - mean) ** 2).mean(-1, keepdim=True)
            y = ((v - mean) / torch.sqrt(var + self.eps)).reshape(x.shape)
            if self.weight is not None:
                shape = (1, c) + (1,) * (x.dim() - 2)
                y = y * self.weight.float().reshape(shape) + self.bias.float().reshape(shape)
            return y.to(x.dtype)

    class TorchBatchNorm(torch.nn.Module):
        """A hand-written BatchNorm module, constructed like torch.nn.BatchNorm2d; ``swap`` reads
        momentum the Keras way (a wrong double)."""

        swap = False

        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = torch.nn.Parameter(torch.ones(num_features)) if affine else None
            self.bias = torch.nn.Parameter(torch.zeros(num_features)) if affine else None
            if track_running_stats:
                self.register_buffer("running_mean", torch.zeros(num_features))
                self.register_buffer("running_var", torch.ones(num_features))
            else:
                self.running_mean = self.running_var = None

        def forward(self, x):
            dims = [0, *range(2, x.dim())]
            shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
            xf = x.float()
            if self.training or self.running_mean is None:
                var, mean = torch.var_mean(xf, dim=dims, correction=0)
                if self.training and self.running_mean is not None:
                    n = xf.numel() // xf.shape[1]
                    m = 1 - self.momentum if self.swap else self.momentum
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * var * n / max(n - 1, 1))
            else:
                mean, var = self.running_mean.float(), self.running_var.float()
            y = (xf - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
            if self.weight is not None:
                y = y * self.weight.float().reshape(shape) + self.bias.float().reshape(shape)
            return y.to(x.dtype)

    class TorchBatchNormSwapped(TorchBatchNorm):
        swap = True


# --- wrong: one per diagnosis variant --------------------------------------------------------------


def group_norm_unbiased(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Bessel's correction: var with ddof=1."""
    return _gn(input, num_groups, weight, bias, eps, variance="unbiased")


def group_norm_eps_outside(input, num_groups, weight=None, bias=None, eps=1e-5):
    """(x - mean) / (std + eps)."""
    return _gn(input, num_groups, weight, bias, eps, eps_mode="outside")


def group_norm_eps_ignored(input, num_groups, weight=None, bias=None, eps=1e-5):
    """(x - mean) / std: no eps at all."""
    return _gn(input, num_groups, weight, bias, eps, eps_mode="ignored")


def group_norm_eps_clamped(input, num_groups, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(max(var, eps)): eps as a floor on the variance."""
    return _gn(input, num_groups, weight, bias, eps, eps_mode="clamped")


def group_norm_per_channel(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Statistics per channel, ignoring the groups: InstanceNorm's axis set."""
    return _gn(input, num_groups, weight, bias, eps, stats="channel")


def layer_norm_last_axis(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalizes over the last axis only, whatever normalized_shape says."""
    x = np.asarray(input).astype(F32)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + F32(eps))
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    return _affine(y, weight, bias, x.shape[x.ndim - k :]).astype(np.asarray(input).dtype)


def group_norm_strided(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Channel c in group c % G (a reshape to (N, C/G, G, ...) instead of (N, G, C/G, ...))."""
    return _gn(input, num_groups, weight, bias, eps, strided=True)


def group_norm_groups_as_size(input, num_groups, weight=None, bias=None, eps=1e-5):
    """num_groups taken as the number of channels per group."""
    return _gn(input, num_groups, weight, bias, eps, groups_as_size=True)


def group_norm_affine_per_group(input, num_groups, weight=None, bias=None, eps=1e-5):
    """A kernel that loads weight[g] / bias[g] for its group g instead of weight[c]."""
    return _gn(input, num_groups, weight, bias, eps, affine="group")


def group_norm_affine_first(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Scales and shifts the input, then normalizes."""
    return _gn(input, num_groups, weight, bias, eps, affine="before")


def group_norm_one_pass(input, num_groups, weight=None, bias=None, eps=1e-5):
    """var = E[x^2] - E[x]^2 in float32."""
    return _gn(input, num_groups, weight, bias, eps, variance="one_pass")


def batch_norm_running_var_biased(input, running_mean=None, running_var=None, weight=None, bias=None,
                                  training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """Stores the biased batch variance in running_var."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, stored="biased")


def batch_norm_momentum_swapped(input, running_mean=None, running_var=None, weight=None, bias=None,
                                training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """running = momentum * running + (1 - momentum) * batch (the Keras convention)."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, swap_momentum=True)


def batch_norm_eval_batch_stats(input, running_mean=None, running_var=None, weight=None, bias=None,
                                training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """Normalizes with the batch's statistics in eval mode too."""
    return _bn(input, running_mean, running_var, weight, bias, training, momentum, eps, eval_batch_stats=True)


#: name -> (norm, implementation, the variant the diagnosis must name)
WRONG = {
    "unbiased": ("group_norm", group_norm_unbiased, "unbiased_variance"),
    "eps_outside": ("group_norm", group_norm_eps_outside, "eps_outside_sqrt"),
    "eps_ignored": ("group_norm", group_norm_eps_ignored, "eps_ignored"),
    "eps_clamped": ("group_norm", group_norm_eps_clamped, "eps_clamped"),
    "per_channel": ("group_norm", group_norm_per_channel, "axes_instance"),
    "last_axis": ("layer_norm", layer_norm_last_axis, "axes_last"),
    "strided": ("group_norm", group_norm_strided, "strided_groups"),
    "groups_as_size": ("group_norm", group_norm_groups_as_size, "groups_as_group_size"),
    "affine_per_group": ("group_norm", group_norm_affine_per_group, "affine_per_group"),
    "affine_first": ("group_norm", group_norm_affine_first, "affine_first"),
    "one_pass": ("group_norm", group_norm_one_pass, "one_pass_variance"),
    "running_var_biased": ("batch_norm", batch_norm_running_var_biased, "running_var_biased"),
    "momentum_swapped": ("batch_norm", batch_norm_momentum_swapped, "momentum_swapped"),
    "eval_batch_stats": ("batch_norm", batch_norm_eval_batch_stats, "eval_batch_stats"),
}


# --- bad targets -------------------------------------------------------------------------------------


def group_norm_raises(input, num_groups, weight=None, bias=None, eps=1e-5):
    raise NotImplementedError("TODO: implement group_norm")


def group_norm_wrong_shape(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Forgets to reshape back: returns the (N, G, -1) view."""
    x = np.asarray(input)
    return group_norm_two_pass(x, num_groups, weight, bias, eps).reshape(x.shape[0], num_groups, -1)


def group_norm_wrong_dtype(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Returns float64 whatever the input dtype."""
    return group_norm_two_pass(input, num_groups, weight, bias, eps).astype(np.float64)


def group_norm_nan(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Returns NaN everywhere."""
    return np.full_like(np.asarray(input), np.nan)


def group_norm_mutates_input(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Right output, but subtracts the mean from the caller's array in place."""
    x = input
    v = x.reshape(x.shape[0], num_groups, -1)
    v -= v.mean(-1, keepdims=True, dtype=F32).astype(x.dtype)
    return group_norm_two_pass(x, num_groups, weight, bias, eps)


def group_norm_hangs(input, num_groups, weight=None, bias=None, eps=1e-5):
    time.sleep(60)
    return input


not_callable = 42


# --- axis-set variants and switchable norm (issue 8) ------------------------------------------------


def layer_norm_channels_first(input, normalized_shape, weight=None, bias=None, eps=1e-6):
    """ConvNeXt's channels-first LayerNorm, as its authors wrote it (statistics over axis 1 only):
    ``u = x.mean(1); s = (x - u).pow(2).mean(1); x = (x - u) / sqrt(s + eps); w[:, None, None] * x + b``."""
    x = np.asarray(input).astype(F32)
    u = x.mean(1, keepdims=True)
    s = ((x - u) ** 2).mean(1, keepdims=True)
    y = (x - u) / np.sqrt(s + F32(eps))
    shape = (-1,) + (1,) * (x.ndim - 2)
    return _affine(y, weight, bias, shape).astype(np.asarray(input).dtype)


def _softmax(z):
    z = np.asarray(z).astype(F32)
    e = np.exp(z - z.max())
    return e / e.sum()


def _two_pass(x, axes):
    m = x.mean(axes, keepdims=True)
    return m, ((x - m) ** 2).mean(axes, keepdims=True)


def switchable_norm(input, mean_weight, var_weight, running_mean, running_var, weight=None, bias=None,
                    training=False, momentum=0.1, eps=1e-5, *, stored="unbiased", derived=False):  # fmt: skip
    """Switchable Normalization in float32: IN, LN and BN statistics each two-pass over their own set.

    ``derived=True`` is the authors' SwitchNorm2d shortcut: LN and BN statistics derived from the IN
    ones, ``var = mean(var_in + mean_in^2) - mean^2`` -- a one-pass formula over the IN means, which
    cancels catastrophically when |mean| >> std. ``stored="biased"`` keeps the biased batch variance
    in running_var, as the authors' code does."""
    x = np.asarray(input).astype(F32)
    sp = tuple(range(2, x.ndim))
    m_in, v_in = _two_pass(x, sp)
    if derived:
        temp = v_in + m_in**2
        m_ln = m_in.mean(1, keepdims=True)
        v_ln = temp.mean(1, keepdims=True) - m_ln**2
        m_bn = m_in.mean(0, keepdims=True)
        v_bn = temp.mean(0, keepdims=True) - m_bn**2
    else:
        m_ln, v_ln = _two_pass(x, (1, *sp))
        m_bn, v_bn = _two_pass(x, (0, *sp))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        if running_mean is not None:
            n = x.size // x.shape[1]
            v_store = v_bn if stored == "biased" else v_bn * F32(n / max(n - 1, 1))
            running_mean[...] = ((1 - momentum) * running_mean + momentum * m_bn.reshape(-1)).astype(running_mean.dtype)
            running_var[...] = ((1 - momentum) * running_var + momentum * v_store.reshape(-1)).astype(running_var.dtype)
    else:
        m_bn = _f32(running_mean).reshape(shape)
        v_bn = _f32(running_var).reshape(shape)
    wm, wv = _softmax(mean_weight), _softmax(var_weight)
    mean = wm[0] * m_in + wm[1] * m_ln + wm[2] * m_bn
    var = wv[0] * v_in + wv[1] * v_ln + wv[2] * v_bn
    y = (x - mean) / np.sqrt(var + F32(eps))
    return _affine(y, weight, bias, shape).astype(np.asarray(input).dtype)


def switchable_norm_derived(input, mean_weight, var_weight, running_mean, running_var, weight=None, bias=None,
                            training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """The authors' derivation of the LN/BN statistics from the IN ones (see :func:`switchable_norm`)."""
    return switchable_norm(input, mean_weight, var_weight, running_mean, running_var, weight, bias, training,
                           momentum, eps, derived=True)  # fmt: skip


def switchable_norm_authors_buffers(input, mean_weight, var_weight, running_mean, running_var, weight=None,
                                    bias=None, training=False, momentum=0.1, eps=1e-5):  # fmt: skip
    """The authors' running-statistics convention: biased batch variance stored."""
    return switchable_norm(input, mean_weight, var_weight, running_mean, running_var, weight, bias, training,
                           momentum, eps, stored="biased")  # fmt: skip
