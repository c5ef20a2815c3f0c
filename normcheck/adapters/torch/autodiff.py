"""torch's autodiff of its native norms (:meth:`TorchAdapter.vjp`): ``requires_grad`` leaves and
``backward(dy)`` through ``torch.nn.functional`` or a freshly built module whose parameters are
those leaves (channels_last layouts keep their memory format).

A user's target (:meth:`TorchAdapter.target_vjp`): the same leaves handed to
``Target.native_call`` (a function, a custom ``torch.autograd.Function`` inside it, or a module
whose weight and bias are put in as grad-requiring ``torch.nn.Parameter`` leaves), then
``torch.autograd.grad``; the whole pass runs in the target's guard. A gradient that does not reach a
leaf (the output computed outside autograd) is zero, which the properties judge.

Second order (:func:`hvp`, :func:`target_hvp`): double backward -- the input gradient computed with
``create_graph=True``, then differentiated along ``v`` (``torch.autograd.grad(dx, x, v)``, the
Hessian-vector product of ``<dy, f(x)>``, the Hessian being symmetric). A backward that leaves the
graph (``.detach()``, ``no_grad`` or NumPy inside a custom ``backward``) gives a zero second
derivative; one marked ``@once_differentiable`` raises.

Forward mode (:func:`jvp`, :func:`target_jvp`): ``torch.autograd.forward_ad`` dual numbers (the
machinery under ``torch.func.jvp``, whose formulas are the native kernels' own forward-mode
derivatives): the input, and the weight and bias where the case has them, made dual with their
tangents (the input's in its layout's memory format), the output's tangent unpacked. A custom
``autograd.Function`` of a user's target is differentiated through its ``jvp`` staticmethod; one
without it, or an op without a forward-mode formula inside a target, is Unsupported (the target's
choice); for a native norm the raise is the framework's, and is reported.

Every convention is the adapter's (:mod:`normcheck.adapters.torch`): its ``_Call`` and module
helpers are used, not restated. Training mode differentiates through the batch statistics; the
running-buffer update is not differentiated.
"""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import TargetLike, Unsupported, case_arguments, gradient_keys
from normcheck.case import Case

__all__ = ["hvp", "jvp", "target_hvp", "target_jvp", "target_vjp", "vjp"]


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


def _leaf_call(ta, impl, case: Case, grads: tuple[str, ...]):
    """The adapter's call for ``case`` with the ``grads`` arguments as requires_grad leaves."""
    c = ta._Call(case.spec, case_arguments(case), impl.layout)
    c.x = c.x.detach().requires_grad_("input" in grads)  # detach keeps the channels_last strides
    leaves = {"input": c.x}
    for k in ("weight", "bias"):
        t = getattr(c, k)
        if t is not None and k in grads:
            t = t.detach().requires_grad_(True)
            setattr(c, k, t)
            leaves[k] = t
    return c, leaves


def _forward(ta, impl, c):
    if impl.mode == "compiled":
        return ta.FORMS["compiled"](c)[0]
    if impl.form == "functional":
        return ta.FORMS["functional"](c)[0]
    if impl.form == "module":
        return _module(ta, c, c.weight, c.bias)(c.x)
    raise Unsupported(f"no torch autodiff for the {impl.form} form")


def _zeros(case: Case, k: str) -> np.ndarray:
    return np.zeros(getattr(case, "x" if k == "input" else k).shape)


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``backward(dy)`` through the torch functional or module form of ``impl``."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()
    c, leaves = _leaf_call(ta, impl, case, gradient_keys(case))
    with torch.enable_grad():
        y = _forward(ta, impl, c)
        y.backward(ta.ADAPTER.to_native(dy).to(y.dtype))
    out = {}
    for k in gradient_keys(case):
        g = leaves[k].grad
        out[k] = _zeros(case, k) if g is None else ta.ADAPTER.to_numpy(g)
    return out


def _second(torch, y, x, dy, v) -> np.ndarray | None:
    """``d/dt dx(x + t v)`` by double backward, or None where the gradient left the graph (zero)."""
    (dx,) = torch.autograd.grad(y, x, dy.to(y.dtype), create_graph=True, allow_unused=True)
    if dx is None or not dx.requires_grad:
        return None
    (h,) = torch.autograd.grad(dx, x, v.to(dx.dtype), allow_unused=True)
    return h


def hvp(impl, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Double backward through the torch functional or module form of ``impl``: the derivative of
    the input gradient of ``<dy, f(x)>`` along ``v``."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()
    if impl.mode == "compiled":
        raise Unsupported("torch.compile's AOTAutograd has no double backward (documented; it raises)")
    c, leaves = _leaf_call(ta, impl, case, ("input",))
    with torch.enable_grad():
        y = _forward(ta, impl, c)
        h = _second(torch, y, leaves["input"], ta.ADAPTER.to_native(dy), ta.ADAPTER.to_native(v))
    return _zeros(case, "input") if h is None else ta.ADAPTER.to_numpy(h)


def _tangent(ta, t: np.ndarray, like, layout: str = "channels_first"):
    """The tangent ``t`` as a torch tensor of ``like``'s dtype (and, for the input, its layout)."""
    out = ta.ADAPTER.to_native(np.asarray(t)).to(like.dtype)
    return ta._layout(out, layout) if layout != "channels_first" else out


def _unpack(fwAD, y, case: Case, ta) -> np.ndarray:
    """The tangent of the output ``y`` (zeros where the output carries none: computed outside
    forward-mode autodiff, so its derivative along every tangent is 0 to the framework)."""
    t = fwAD.unpack_dual(y).tangent
    return _zeros(case, "input") if t is None else ta.ADAPTER.to_numpy(t)


def jvp(impl, case: Case, tangents: dict[str, np.ndarray]) -> np.ndarray:
    """Forward mode through the torch functional or module form of ``impl``: the output's
    derivative along ``tangents`` (input, weight and bias), by dual numbers."""
    from normcheck.adapters import torch as ta

    ta._torch()
    import torch.autograd.forward_ad as fwAD

    c = ta._Call(case.spec, case_arguments(case), impl.layout)
    with fwAD.dual_level():
        c.x = fwAD.make_dual(c.x, _tangent(ta, tangents["input"], c.x, impl.layout))
        for k in ("weight", "bias"):
            p = getattr(c, k)
            if p is not None and k in tangents:
                setattr(c, k, fwAD.make_dual(p, _tangent(ta, tangents[k], p)))
        return _unpack(fwAD, _forward(ta, impl, c), case, ta)


# --- a user's target -------------------------------------------------------------------------------


def _target_leaves(ta, target: TargetLike, case: Case, grads: tuple[str, ...]):
    """(the canonical arguments with ``grads`` as requires_grad leaves, the NumPy ones, the leaves).
    A module target's weight and bias are ``torch.nn.Parameter`` leaves (the layer holds them as
    its parameters), a function's plain tensors."""
    torch = ta._torch()
    a = case_arguments(case)
    args, leaves = dict(a), {}
    for k in grads:
        t = ta.ADAPTER.to_native(a[k])
        leaf = torch.nn.Parameter(t) if k != "input" and target.form == "module" else t.requires_grad_(True)
        args[k] = leaves[k] = leaf
    return args, a, leaves


def _output(torch, y, case: Case):
    if not isinstance(y, torch.Tensor):
        got = "None" if y is None else type(y).__module__.split(".")[0] + "." + type(y).__qualname__
        raise TypeError(f"the target's output is {got}, not a torch.Tensor")
    if tuple(y.shape) != case.x.shape:
        raise ValueError(f"the target's output has shape {tuple(y.shape)}, expected {case.x.shape}")
    return y


def target_vjp(target: TargetLike, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``torch.autograd.grad`` of a user's target (``Target.native_call``) at ``case`` for the
    cotangent ``dy``: the input, weight and bias gradients (a module's parameters included)."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()
    keys = gradient_keys(case)

    def run():
        args, meta, leaves = _target_leaves(ta, target, case, keys)
        with torch.enable_grad():
            y = _output(torch, target.native_call(args, meta=meta), case)
            if not y.requires_grad:  # computed outside autograd: no gradient reaches any leaf
                return {k: _zeros(case, k) for k in keys}
            got = torch.autograd.grad(
                y, [leaves[k] for k in keys], ta.ADAPTER.to_native(dy).to(y.dtype), allow_unused=True
            )
        return {k: _zeros(case, k) if g is None else ta.ADAPTER.to_numpy(g) for k, g in zip(keys, got, strict=True)}

    return target.guard.call(run)


def target_hvp(target: TargetLike, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Double backward through a user's target: the derivative of its input gradient along ``v``
    (a custom ``autograd.Function`` is differentiated through its ``backward``)."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()

    def run():
        args, meta, leaves = _target_leaves(ta, target, case, ("input",))
        with torch.enable_grad():
            y = _output(torch, target.native_call(args, meta=meta), case)
            if not y.requires_grad:
                return _zeros(case, "input")
            h = _second(torch, y, leaves["input"], ta.ADAPTER.to_native(dy), ta.ADAPTER.to_native(v))
        return _zeros(case, "input") if h is None else ta.ADAPTER.to_numpy(h)

    return target.guard.call(run)


def target_jvp(target: TargetLike, case: Case, tangents: dict[str, np.ndarray]) -> np.ndarray:
    """Forward mode through a user's target (``Target.native_call``) by dual numbers: the input, weight
    and bias dual with their tangents (a module's weight and bias held as the dual tensors
    themselves). A custom ``autograd.Function`` without a ``jvp``, or an op without a forward-mode
    formula, raises ``NotImplementedError`` in torch: Unsupported, with torch's reason."""
    from normcheck.adapters import torch as ta

    ta._torch()
    import torch.autograd.forward_ad as fwAD

    keys = tuple(k for k in gradient_keys(case) if k in tangents)
    a = case_arguments(case)

    def run():
        torch = ta._torch()
        args = dict(a)
        with fwAD.dual_level():
            for k in keys:
                p = ta.ADAPTER.to_native(a[k])
                args[k] = fwAD.make_dual(p, _tangent(ta, tangents[k], p))
            try:
                y = _output(torch, target.native_call(args, meta=a), case)
            except NotImplementedError as e:
                msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else "NotImplementedError"
                raise Unsupported(f"the target has no forward-mode derivative in torch: {msg}") from None
            return _unpack(fwAD, y, case, ta)

    return target.guard.call(run)
