"""torch norm layers in the styles that `normcheck check` used to refuse (issue 26, item 2): a weight
and no bias by design (T5/Cohere style), an ``nn.GroupNorm`` subclass taking ``(**kwargs)``, a size
argument that must be a sequence (``hidden_size[-1]``), weights and eps held by a child module, and a
hand-written BatchNorm with torch's cumulative average behind a plain ``momentum=0.1``. Each has a
deliberately wrong twin (named ``Wrong...``) that must deviate. Written after the public code they
imitate, not copied from it."""

from __future__ import annotations

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the tests skip without torch
    torch = None

if torch is not None:

    class CohereLayerNorm(nn.Module):
        """A mean-centred LayerNorm with a weight and no bias by design, float32 compute (conforms
        as a bias-free layer_norm)."""

        def __init__(self, hidden_size=None, eps=1e-5, bias=False):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            dt = hidden_states.dtype
            h = hidden_states.to(torch.float32)
            mean = h.mean(-1, keepdim=True)
            var = (h - mean).pow(2).mean(-1, keepdim=True)
            h = (h - mean) * torch.rsqrt(var + self.variance_epsilon)
            return (self.weight.to(torch.float32) * h).to(dt)

    class WrongCohereLayerNorm(CohereLayerNorm):
        """The same with Bessel's correction (deviates)."""

        def forward(self, hidden_states):
            h = hidden_states
            mean = h.mean(-1, keepdim=True)
            var = h.var(-1, keepdim=True, unbiased=True)
            return self.weight * (h - mean) * torch.rsqrt(var + self.variance_epsilon)

    class KwargsGroupNorm(nn.GroupNorm):
        """``(**kwargs)`` handed to nn.GroupNorm (conforms)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    class WrongKwargsGroupNorm(nn.GroupNorm):
        """``(*args, **kwargs)`` handed to nn.GroupNorm, eps added outside the square root (deviates)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

        def forward(self, x):
            n = x.shape[0]
            g = x.reshape(n, self.num_groups, -1)
            mean = g.mean(-1, keepdim=True)
            std = g.var(-1, unbiased=False, keepdim=True).sqrt()
            y = ((g - mean) / (std + self.eps)).reshape(x.shape)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return y * self.weight.reshape(shape) + self.bias.reshape(shape)

    class SequenceSizeLayerNorm(nn.Module):
        """``hidden_size`` is a shape; the layer reads ``hidden_size[-1]`` (conforms)."""

        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden_size[-1]))
            self.bias = nn.Parameter(torch.zeros(hidden_size[-1]))
            self.eps = eps

        def forward(self, x):
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)

    class ChildGroupNorm(nn.Module):
        """A wrapper module: weights and eps live in ``self.norm``, eps not a constructor argument (conforms)."""

        def __init__(self, num_groups, num_channels):
            super().__init__()
            self.norm = nn.GroupNorm(num_groups, num_channels, eps=1e-6)

        def forward(self, x):
            return self.norm(x)

    class ChildLayerNorm(nn.Module):
        """``self.ln = nn.LayerNorm(dim)``, eps read as ``self.ln.eps`` (conforms)."""

        def __init__(self, dim):
            super().__init__()
            self.ln = nn.LayerNorm(dim)

        def forward(self, x):
            return F.layer_norm(x, (x.shape[-1],), self.ln.weight, self.ln.bias, self.ln.eps)

    class WrongChildLayerNorm(ChildLayerNorm):
        """The child's parameters, but eps outside the square root (deviates)."""

        def forward(self, x):
            mu = x.mean(-1, keepdim=True)
            sd = x.var(-1, unbiased=False, keepdim=True).sqrt()
            return (x - mu) / (sd + self.ln.eps) * self.ln.weight + self.ln.bias

    class HandBatchNorm(nn.Module):
        """A hand-written BatchNorm with torch's update rule, momentum=None included (1 / the number
        of batches seen), behind a plain ``momentum=0.1`` (conforms)."""

        off_by_one = False

        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

        def forward(self, x):
            dims = [0, *range(2, x.dim())]
            shape = (1, -1) + (1,) * (x.dim() - 2)
            if self.training:
                self.num_batches_tracked += 1
                seen = float(self.num_batches_tracked) + (1 if self.off_by_one else 0)
                f = 1.0 / seen if self.momentum is None else self.momentum
                xf = x.double()
                mean, var = xf.mean(dims), xf.var(dims, unbiased=False)
                n = x.numel() // x.shape[1]
                with torch.no_grad():
                    unbiased = var * n / max(n - 1, 1)
                    rm, rv = self.running_mean, self.running_var
                    rm.copy_(((1 - f) * rm.double() + f * mean).to(rm.dtype))
                    rv.copy_(((1 - f) * rv.double() + f * unbiased).to(rv.dtype))
            else:
                mean, var = self.running_mean.double(), self.running_var.double()
            y = (x.double() - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
            return (y * self.weight.double().reshape(shape) + self.bias.double().reshape(shape)).to(x.dtype)

    class WrongNoneBatchNorm(HandBatchNorm):
        """The same, its momentum=None factor off by one batch (deviates, on the momentum=None cases only)."""

        off_by_one = True
