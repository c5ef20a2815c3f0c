"""torch's autodiff of its native norms (:meth:`TorchAdapter.vjp`): ``requires_grad`` leaves and
``backward(dy)`` through ``torch.nn.functional`` or a freshly built module whose parameters are
those leaves (channels_last layouts keep their memory format).

Every convention is the adapter's (:mod:`normcheck.adapters.torch`): its ``_Call`` and module
helpers are used, not restated. Training mode differentiates through the batch statistics; the
running-buffer update is not differentiated.
"""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import Unsupported, case_arguments, gradient_keys
from normcheck.case import Case

__all__ = ["vjp"]


def _module(ta, c, w, b):
    """A torch.nn module for the call ``c`` (as the adapter's module form builds it), whose
    parameters are the leaves ``w``/``b`` so that their gradients reach us."""
    torch = ta._torch()
    a, n, x = c.a, c.spec.name, c.x
    affine, has_bias, w, b = ta._module_affine(w, b)
    if n in ("layer_norm", "rms_norm"):
        shape = ta._shape(a["normalized_shape"])
        if n == "layer_norm":
            m = torch.nn.LayerNorm(shape, eps=c.eps, elementwise_affine=affine, bias=has_bias)
        else:
            m = torch.nn.RMSNorm(shape, eps=c.eps, elementwise_affine=w is not None)
    elif n == "group_norm":
        m = torch.nn.GroupNorm(int(a["num_groups"]), x.shape[1], eps=c.eps, affine=affine, bias=has_bias)
    elif n in ("batch_norm", "instance_norm"):
        if n == "instance_norm" and x.dim() < 3:
            raise ValueError(f"instance_norm needs an input of rank >= 3, got shape {tuple(x.shape)}")
        cls = ta._module_class(n, x.dim())
        rm, rv = c.running_mean, c.running_var
        if (rm is None) != (rv is None):
            raise Unsupported(f"torch.nn.{cls.__name__} holds both running buffers or neither")
        track = rm is not None
        if not c.use_batch_stats and not track:
            raise ValueError(f"{n}: running_mean and running_var are needed without batch statistics")
        m = cls(x.shape[1], eps=c.eps, momentum=c.momentum, affine=affine, track_running_stats=track, bias=has_bias)
        if track:
            m.running_mean, m.running_var = rm, rv
        m.train(c.use_batch_stats)
    else:
        raise Unsupported(f"torch adapter has no module form of {n}")
    for k, t in (("weight", w), ("bias", b)):
        if t is not None:
            m._parameters[k] = t  # the leaf itself (a Parameter would copy it out of the graph)
    return m


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``backward(dy)`` through the torch functional or module form of ``impl``."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()
    c = ta._Call(case.spec, case_arguments(case), impl.layout)
    c.x = c.x.detach().requires_grad_(True)  # detach keeps the channels_last strides
    leaves = {"input": c.x}
    for k in ("weight", "bias"):
        t = getattr(c, k)
        if t is not None:
            t = t.detach().requires_grad_(True)
            setattr(c, k, t)
            leaves[k] = t
    with torch.enable_grad():
        if impl.form == "functional":
            y, _ = ta.FORMS["functional"](c)
        elif impl.form == "module":
            y = _module(ta, c, c.weight, c.bias)(c.x)
        else:
            raise Unsupported(f"no torch autodiff for the {impl.form} form")
        y.backward(ta.ADAPTER.to_native(dy).to(y.dtype))
    out = {}
    for k in gradient_keys(case):
        g = leaves[k].grad
        out[k] = np.zeros(getattr(case, "x" if k == "input" else k).shape) if g is None else ta.ADAPTER.to_numpy(g)
    return out
