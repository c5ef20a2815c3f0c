"""Norm layers in the styles real model libraries ship them, for `normcheck check` with no wrapper
(issue 14): their own constructors (aliases, swapped order, keyword-only, no momentum, a
``data_format`` switch), float32 compute then cast back, bias-free, rank-4-only, frozen statistics,
a ``(1 + weight)`` gain. The correct ones conform; the ones marked "deviates" must be reported as
deviations, never as a crash. Written after the public code they imitate, not copied from it.
"""

from __future__ import annotations

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the tests skip without torch
    torch = None

if torch is not None:

    class LlamaRMSNorm(nn.Module):
        """LLaMA style: ``(hidden_size, eps=1e-6)``, ``variance_epsilon``; computes in float32,
        casts back to the input's dtype, then multiplies by the weight (conforms as rms_norm)."""

        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            input_dtype = hidden_states.dtype
            hidden_states = hidden_states.to(torch.float32)
            variance = hidden_states.pow(2).mean(-1, keepdim=True)
            hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
            return self.weight * hidden_states.to(input_dtype)

    class T5LayerNorm(nn.Module):
        """T5 style: a "LayerNorm" with no bias and no mean subtraction, i.e. an RMSNorm
        (conforms as rms_norm)."""

        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
            hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
            if self.weight.dtype in (torch.float16, torch.bfloat16):
                hidden_states = hidden_states.to(self.weight.dtype)
            return self.weight * hidden_states

    class GemmaRMSNorm(nn.Module):
        """Gemma style: the weight starts at zero and the gain is ``1 + weight``. normcheck sets the
        weight from the case, so this deviates unless that convention is declared."""

        def __init__(self, dim: int, eps: float = 1e-6):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.zeros(dim))

        def forward(self, x):
            xf = x.float()
            out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
            return (out * (1.0 + self.weight.float())).type_as(x)

    class SwappedGroupNorm(nn.Module):
        """A GroupNorm taking ``(num_channels, num_groups, eps)``, the reverse of torch's order
        (conforms as group_norm)."""

        def __init__(self, num_channels, num_groups, eps=1e-5):
            super().__init__()
            self.num_groups, self.eps = num_groups, eps
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))

        def forward(self, x):
            n, c = x.shape[:2]
            v = x.float().reshape(n, self.num_groups, -1)
            var, mean = torch.var_mean(v, dim=-1, keepdim=True, correction=0)
            y = ((v - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
            shape = (1, c) + (1,) * (x.dim() - 2)
            y = y * self.weight.float().reshape(shape) + self.bias.float().reshape(shape)
            return y.to(x.dtype)

    class KeywordOnlyLayerNorm(nn.Module):
        """A keyword-only constructor ``(*, dim, eps=1e-5)`` (conforms as layer_norm)."""

        def __init__(self, *, dim, eps=1e-5):
            super().__init__()
            self.dim, self.eps = dim, eps
            self.weight = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros(dim))

        def forward(self, x):
            return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)

    class AliasLayerNorm(nn.Module):
        """Keras-flavoured names: ``LayerNorm(d_model, epsilon=...)`` with ``gamma``/``beta``
        (conforms as layer_norm)."""

        def __init__(self, d_model, epsilon=1e-5):
            super().__init__()
            self.epsilon = epsilon
            self.gamma = nn.Parameter(torch.ones(d_model))
            self.beta = nn.Parameter(torch.zeros(d_model))

        def forward(self, x):
            xf = x.float()
            mean = xf.mean(-1, keepdim=True)
            var = (xf - mean).pow(2).mean(-1, keepdim=True)
            y = (xf - mean) / torch.sqrt(var + self.epsilon)
            return (y * self.gamma.float() + self.beta.float()).to(x.dtype)

    class BiasFreeLayerNorm(nn.Module):
        """A LayerNorm with a weight and no bias: conforms with ``--no-bias``; without it normcheck
        refuses it (exit 2) with that hint."""

        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return F.layer_norm(x, x.shape[-1:], self.weight, None, self.eps)

    class ConvNeXtLayerNorm(nn.Module):
        """ConvNeXt style: ``LayerNorm(normalized_shape, eps, data_format)``; ``channels_first``
        normalizes over axis 1 of a 4-D input (conforms as layer_norm with ``--axes 1``)."""

        def __init__(self, normalized_shape, eps=1e-6, data_format="channels_last"):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(normalized_shape))
            self.bias = nn.Parameter(torch.zeros(normalized_shape))
            self.eps = eps
            self.data_format = data_format
            if self.data_format not in ("channels_last", "channels_first"):
                raise NotImplementedError(data_format)
            self.normalized_shape = (normalized_shape,)

        def forward(self, x):
            if self.data_format == "channels_last":
                return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            u = x.mean(1, keepdim=True)
            s = (x - u).pow(2).mean(1, keepdim=True)
            x = (x - u) / torch.sqrt(s + self.eps)
            return self.weight[:, None, None] * x + self.bias[:, None, None]

    class ImageBatchNorm(nn.Module):
        """A BatchNorm that takes 4-D input only and says so by raising; no ``affine`` or
        ``track_running_stats`` switch (conforms as batch_norm, ranks inferred by a probe)."""

        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            if x.dim() != 4:
                raise ValueError(f"expected 4D input (got {x.dim()}D input)")
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )

    class FixedMomentumBatchNorm(nn.Module):
        """No ``momentum`` parameter: the momentum is an attribute fixed in the constructor
        (conforms as batch_norm: normcheck uses the layer's own momentum)."""

        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            self.eps, self.momentum = eps, 0.01
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )

    class FrozenBatchNorm2d(nn.Module):
        """torchvision style: statistics and affine parameters frozen in buffers, used in training
        too (deviates as batch_norm: training mode should normalize with the batch's statistics)."""

        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.register_buffer("weight", torch.ones(num_features))
            self.register_buffer("bias", torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            w = self.weight.reshape(1, -1, 1, 1)
            b = self.bias.reshape(1, -1, 1, 1)
            rv = self.running_var.reshape(1, -1, 1, 1)
            rm = self.running_mean.reshape(1, -1, 1, 1)
            scale = w * (rv + self.eps).rsqrt()
            return (x * scale + (b - rm * scale)).to(x.dtype)

    class EvalUpdatingBatchNorm(nn.Module):
        """Right output in both modes, but it also updates its running buffers in eval
        (deviates: eval must leave them alone)."""

        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
            self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
            if track_running_stats:
                self.register_buffer("running_mean", torch.zeros(num_features))
                self.register_buffer("running_var", torch.ones(num_features))
            else:
                self.running_mean = self.running_var = None

        def forward(self, x):
            y = F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )
            if not self.training and self.running_mean is not None:  # the bug: a "free" update in eval
                dims = [0, *range(2, x.dim())]
                var, mean = torch.var_mean(x.float(), dim=dims, correction=1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
            return y

    class GradModeBatchNorm(nn.Module):
        """Chooses batch or running statistics by grad mode instead of ``self.training``
        (deviates: normcheck drives ``train()``/``eval()``, not autograd)."""

        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
            self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
            if track_running_stats:
                self.register_buffer("running_mean", torch.zeros(num_features))
                self.register_buffer("running_var", torch.ones(num_features))
            else:
                self.running_mean = self.running_var = None

        def forward(self, x):
            use_batch = torch.is_grad_enabled() or self.running_mean is None
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, use_batch, self.momentum, self.eps
            )

    class ParameterFreeRMSNorm(nn.Module):
        """No weight at all (``F.rms_norm`` without one): conforms with ``--no-affine``; without it
        normcheck refuses it (exit 2) with that hint."""

        def __init__(self, dim, eps=1e-6):
            super().__init__()
            self.dim, self.eps = dim, eps

        def forward(self, x):
            return F.rms_norm(x, (self.dim,), None, self.eps)

    class NeedsConfig(nn.Module):
        """Built from a model config object normcheck cannot invent (exit 2, naming the call)."""

        def __init__(self, config):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(config.hidden_size))
            self.eps = config.rms_norm_eps

        def forward(self, x):
            return x

    class RefusesToBuild(nn.Module):
        """A constructor that raises on every call (exit 2, naming the call tried)."""

        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            raise TypeError("this layer is built by its model's factory only")


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """A function target on ``torch.nn.functional.group_norm`` (conforms as group_norm)."""
    return F.group_norm(input, num_groups, weight, bias, eps)
