"""The torch side of :mod:`normcheck.port` (:meth:`TorchAdapter.layer_porting`): reading a torch
norm module (its kind, state and the settings with no Keras/Flax equivalent), building one from
another framework's layer, and running a copy of it for :func:`normcheck.port.compare_port`.

Supported: ``torch.nn.BatchNorm{1,2,3}d``, ``torch.nn.LayerNorm``, ``torch.nn.GroupNorm``. The
Keras and Flax sides (:mod:`normcheck.adapters.tensorflow.port`, :mod:`normcheck.adapters.jax.port`)
read torch modules through these functions.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from normcheck.adapters.base import PortError

__all__ = [
    "BN_RANK",
    "batch_norm",
    "check_running_stats",
    "flip",
    "group_norm",
    "kind",
    "layer_norm",
    "momentum",
    "reference_arguments",
    "run",
    "running_statistics",
    "set_affine",
    "to_numpy",
]

#: The input rank each BatchNorm class is built for by default (BatchNorm1d also takes rank 3).
BN_RANK = {"BatchNorm1d": 2, "BatchNorm2d": 4, "BatchNorm3d": 5}
_BN_BY_RANK = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


def flip(m: float) -> float:
    """``1 - m`` (torch <-> Keras/Flax momentum), rounded to 15 significant digits so that a round
    trip returns the momentum as typed (1 - (1 - 0.1) is 0.09999999999999998 in binary)."""
    return float(f"{1.0 - float(m):.15g}")


def to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def kind(module) -> str:
    """The norm of a torch module: "batch_norm", "layer_norm" or "group_norm" (else PortError)."""
    import torch

    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return "batch_norm"
    if isinstance(module, torch.nn.LayerNorm):
        return "layer_norm"
    if isinstance(module, torch.nn.GroupNorm):
        return "group_norm"
    raise PortError(f"can port torch BatchNorm{{1,2,3}}d, LayerNorm and GroupNorm, not {type(module).__name__}")


def momentum(module) -> float:
    if module.momentum is None:
        raise PortError("momentum=None (torch's cumulative average) has no Keras/Flax equivalent")
    return float(module.momentum)


def check_running_stats(module) -> None:
    if not module.track_running_stats or module.running_mean is None:
        raise PortError("track_running_stats=False (eval with batch statistics) has no Keras/Flax equivalent")


# --- building torch modules from another framework's layer ------------------------------------------


def batch_norm(
    rank: int, channels: int, *, eps: float, momentum: float, affine: bool, bias: bool, running_mean, running_var
):
    """``torch.nn.BatchNorm{1,2,3}d`` for a rank-``rank`` input, running statistics copied."""
    import torch

    cls = getattr(torch.nn, _BN_BY_RANK[rank])
    m = cls(channels, eps=eps, momentum=momentum, affine=affine, bias=bias)
    with torch.no_grad():
        m.running_mean.copy_(torch.as_tensor(running_mean))
        m.running_var.copy_(torch.as_tensor(running_var))
    return m


def group_norm(groups: int, channels: int, *, eps: float, affine: bool, bias: bool):
    import torch

    return torch.nn.GroupNorm(groups, channels, eps=eps, affine=affine, bias=bias)


def layer_norm(normalized_shape, *, eps: float, affine: bool, bias: bool):
    import torch

    return torch.nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=affine, bias=bias)


def set_affine(m, weight, bias) -> None:
    """Copy ``weight`` (None: ones, where the module has a weight) and ``bias`` (None: left alone)."""
    import torch

    with torch.no_grad():
        if m.weight is not None:
            m.weight.copy_(torch.as_tensor(weight) if weight is not None else torch.ones_like(m.weight))
        if bias is not None:
            m.bias.copy_(torch.as_tensor(bias))


# --- checking a port ------------------------------------------------------------------------------


def reference_arguments(module, kind: str) -> dict[str, Any]:
    """The reference's arguments for the module's state (float64 affine parameters)."""
    kw: dict[str, Any] = {"eps": float(module.eps)}
    for k in ("weight", "bias"):
        t = getattr(module, k)
        kw[k] = None if t is None else to_numpy(t).astype(np.float64)
    if kind == "layer_norm":
        kw["normalized_shape"] = tuple(module.normalized_shape)
    if kind == "group_norm":
        kw["num_groups"] = module.num_groups
    return kw


def running_statistics(module) -> tuple[np.ndarray, np.ndarray, float]:
    """(running mean, running var) in float64 and the momentum of a BatchNorm module."""
    rm, rv = to_numpy(module.running_mean).astype(np.float64), to_numpy(module.running_var).astype(np.float64)
    return rm, rv, float(module.momentum)


def run(module, x: np.ndarray, training: bool):
    """A copy of ``module`` in training or eval mode on ``x``: (y, its (running mean, running var)
    afterwards, or None for a module without them). The module itself is never mutated."""
    import torch

    t = copy.deepcopy(module).train(training)
    with torch.no_grad():
        y = t(torch.as_tensor(x)).numpy()
    if getattr(t, "running_mean", None) is None:
        return y, None
    return y, (to_numpy(t.running_mean), to_numpy(t.running_var))
