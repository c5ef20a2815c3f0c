"""Driving a user's torch module the way its users run it (:mod:`normcheck.target`): calls under
``torch.no_grad()``, the layer following the case's dtype as ``module.to(dtype)`` does, and
parameters and buffers put in place as a module holds them (frozen, ``requires_grad=False``; on the
gradient path, ``put(..., grad=True)``, the caller's grad-requiring leaves)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

__all__ = ["cast", "full", "no_grad", "put"]


def _torch():
    import torch

    return torch


def no_grad() -> AbstractContextManager:
    return _torch().no_grad()


def cast(layer, dtype: str) -> None:
    """``layer.to(dtype)``: a module's floating parameters and buffers follow the case."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(layer, torch.nn.Module):
        layer.to(getattr(torch, dtype))


def put(layer, attr: str, t, dtype: str | None = None, *, grad: bool = False) -> bool:
    """Set ``layer.<attr>`` to the tensor ``t`` (cast to ``dtype`` if given, reshaped to the layer's
    own shape where only the shape differs) as the parameter or buffer it is; False when ``attr``
    is neither (the caller sets a plain attribute).

    ``grad`` (the gradient path of :meth:`normcheck.target.Target.native_call`): a parameter is
    ``t`` itself, grad-enabled -- the caller's ``torch.nn.Parameter`` leaf where no cast or reshape
    was needed, else the cast/reshaped tensor in the leaf's graph (held in ``_parameters`` as the
    adapter's own module VJP holds its leaves) -- so its gradient reaches the caller."""
    torch = _torch()
    cur = getattr(layer, attr, None)
    if dtype is not None and t.is_floating_point():
        t = t.to(getattr(torch, dtype))
    if isinstance(cur, torch.Tensor) and tuple(cur.shape) != tuple(t.shape) and cur.numel() == t.numel():
        t = t.reshape(cur.shape)
    if attr in getattr(layer, "_parameters", {}):
        if grad and isinstance(t, torch.nn.Parameter):
            setattr(layer, attr, t)
        elif grad:
            layer._parameters[attr] = t  # a Parameter would detach it from the caller's leaf
        else:
            setattr(layer, attr, torch.nn.Parameter(t, requires_grad=False))
        return True
    if attr in getattr(layer, "_buffers", {}):
        layer._buffers[attr] = t
        return True
    setattr(layer, attr, t)
    return True


def full(shape: tuple[int, ...], value: float, dtype: str):
    torch = _torch()
    return torch.full(tuple(shape), value, dtype=getattr(torch, dtype))
