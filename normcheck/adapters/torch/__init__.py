"""PyTorch: ``torch.nn.functional`` norms and ``torch.nn`` norm modules behind the canonical call.

The canonical convention of :mod:`normcheck.adapters.base` *is* torch's (the specs mirror the
``torch.nn.functional`` signatures), so almost nothing is translated: channels-first layout,
momentum ``new = (1 - m) * old + m * batch``, the unbiased stored running variance, eps inside the
square root and the ``training``/``use_input_stats`` flags all pass through unchanged. What is
translated, each in one place:

- **default eps** (:func:`_eps`): ``rms_norm``'s ``eps=None`` is passed through, so torch's own
  default (the machine epsilon of the computation dtype, as the spec says) is what is tested;
  ``layer_norm`` & co. accept no ``None`` in torch and get the spec's default.
- **momentum=None** (:func:`_momentum`): the modules' cumulative average over
  ``num_batches_tracked``, a counter the canonical call does not carry: :class:`Unsupported` when
  running buffers would be updated (it has no effect otherwise).
- **mixed precision** (:func:`_affine`): torch's CPU ``batch_norm`` takes a 16-bit input only with
  weight, bias and running buffers all of the input's dtype or all float32; with the canonical
  float32 buffers, weight and bias are widened to float32 (exactly).
  Deliberately *not* translated: torch's ``instance_norm`` takes the canonical call but rounds
  float32 running buffers to a 16-bit input's dtype (a finding the audit should see).
- **module affine** (:func:`_module_affine`): a module has a weight whenever it has a bias; a bias
  without a weight gets a weight of ones (``x * 1`` is exact), a weight without a bias uses
  ``bias=False``.
- **layout** (:func:`_layout`): the ``channels_last`` Impls keep the logical ``(N, C, *spatial)``
  shape and only change the memory format (``torch.channels_last`` / ``channels_last_3d``).
- **compiled** (:func:`compiled_kernel`): each functional norm also runs under ``torch.compile``
  (inductor, the CPU code it generates: its own reductions and fusions), the ``compiled`` mode.
- **arrays** (:meth:`TorchAdapter.to_native`, :meth:`TorchAdapter.to_numpy`): copies both ways,
  so torch never writes into the caller's arrays; running buffers are copied back in place.

Importing this module does not import torch; the Impls import it when called.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from normcheck import compile_cache, dtypes, reference
from normcheck import spec as _spec
from normcheck.adapters.base import Adapter, Impl, Unsupported

__all__ = ["ADAPTER", "TorchAdapter"]

# Every Impl runs on CPU; torch 2.13 CPU computes every norm below in all four dtypes.
DEVICE = "cpu"
DTYPES = dtypes.FLOAT_DTYPES

FUNCTIONAL = {
    name: f"torch.nn.functional.{name}"
    for name in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
}
MODULES = {
    "batch_norm": "torch.nn.BatchNorm{1,2,3}d",
    "instance_norm": "torch.nn.InstanceNorm{1,2,3}d",
    "layer_norm": "torch.nn.LayerNorm",
    "group_norm": "torch.nn.GroupNorm",
    "rms_norm": "torch.nn.RMSNorm",
}
# The module class by input rank, for the norms with one module per spatial rank.
MODULE_BY_RANK = {
    "batch_norm": {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"},
    "instance_norm": {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"},
}
# Memory format by input rank for the channels_last Impls, and the norms that get one.
CHANNELS_LAST = {4: "channels_last", 5: "channels_last_3d"}
CHANNELS_LAST_NORMS = ("batch_norm", "group_norm", "instance_norm")
# Norms whose CPU kernel rejects a 16-bit input with 16-bit weight/bias and float32 running buffers.
MIXED_PRECISION_FLOAT32_PARAMS = ("batch_norm",)


def _torch():
    import torch

    return torch


# --- one place per convention ------------------------------------------------------------------
def _eps(s: _spec.Spec, eps, dtype) -> float | None:
    """The eps to pass to torch: the given one; ``None`` stays ``None`` where torch's signature
    takes it (rms_norm: torch's own default is then what is tested), else the spec's default."""
    if eps is None and s.defaults.get("eps", 0.0) is None:
        return None
    return s.resolve_eps(eps, dtype)


def _updates_running(s: _spec.Spec, a: dict[str, Any]) -> bool:
    has = a.get("running_mean") is not None or a.get("running_var") is not None
    return has and (bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True)


def _momentum(s: _spec.Spec, a: dict[str, Any]) -> float:
    m = a.get("momentum")
    if m is not None:
        return float(m)
    if _updates_running(s, a):
        raise Unsupported(
            "momentum=None is torch's cumulative average over num_batches_tracked, "
            "a counter the canonical call does not carry"
        )
    return float(s.running_stats["momentum_default"])  # no update: momentum has no effect


def _layout(x, layout: str):
    torch = _torch()
    if layout == "channels_first":
        return x
    fmt = CHANNELS_LAST.get(x.dim())
    if fmt is None:
        raise Unsupported(f"torch's channels_last memory formats need a 4D or 5D input, got {x.dim()}D")
    return x.contiguous(memory_format=getattr(torch, fmt))


def _affine(norm: str, x, weight, bias, running_mean):
    """Weight and bias as torch tensors, widened to the buffers' float32 where torch needs it."""
    torch = _torch()
    w, b = (None if p is None else ADAPTER.to_native(p) for p in (weight, bias))
    if (
        norm in MIXED_PRECISION_FLOAT32_PARAMS
        and running_mean is not None
        and x.dtype in (torch.float16, torch.bfloat16)
        and running_mean.dtype == torch.float32
    ):
        w, b = (None if p is None else p.to(torch.float32) for p in (w, b))
    return w, b


def _module_affine(w, b):
    """(affine, bias flag, weight, bias) for a module: a bias without a weight gets a weight of ones."""
    torch = _torch()
    if w is None and b is not None:
        w = torch.ones_like(b)
    return w is not None, b is not None, w, b


def _module_class(norm: str, rank: int):
    torch = _torch()
    name = MODULE_BY_RANK[norm].get(rank)
    if name is None:
        raise Unsupported(f"torch has no {MODULES[norm]} module for a {rank}D input")
    return getattr(torch.nn, name)


def _load(module, **tensors):
    """Put parameters and buffers into a freshly built module (None entries are left alone)."""
    torch = _torch()
    for k, t in tensors.items():
        if t is None:
            continue
        if k in module._parameters:
            setattr(module, k, torch.nn.Parameter(t, requires_grad=False))
        else:
            setattr(module, k, t)


# --- one canonical call ----------------------------------------------------------------------
class _Call:
    """The canonical arguments of one call, as torch tensors; writes updated buffers back."""

    def __init__(self, s: _spec.Spec, a: dict[str, Any], layout: str):
        self.spec, self.a = s, a
        x = np.asarray(a["input"])
        self.dtype = x.dtype
        self.x = _layout(ADAPTER.to_native(x, device=DEVICE), layout)
        self.eps = _eps(s, a.get("eps"), x.dtype)
        rm, rv = a.get("running_mean"), a.get("running_var")
        self.running_mean = None if rm is None else ADAPTER.to_native(rm, device=DEVICE)
        self.running_var = None if rv is None else ADAPTER.to_native(rv, device=DEVICE)
        self.weight, self.bias = _affine(s.name, self.x, a.get("weight"), a.get("bias"), self.running_mean)
        self.momentum = _momentum(s, a) if s.has_running_stats else None
        self.use_batch_stats = bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True

    def write_back(self, running_mean=None, running_var=None):
        """Copy torch's new running statistics into the caller's NumPy buffers, in place."""
        if not _updates_running(self.spec, self.a):
            return
        for k, t in (("running_mean", running_mean), ("running_var", running_var)):
            buf = self.a.get(k)
            if buf is None or t is None:
                continue
            if not isinstance(buf, np.ndarray):
                raise TypeError("running buffers must be NumPy arrays to be updated in place")
            buf[...] = ADAPTER.to_numpy(t).astype(buf.dtype, copy=False)

    def result(self, y) -> np.ndarray:
        out = ADAPTER.to_numpy(y)
        if out.dtype != self.dtype or out.shape != self.x.shape:
            raise RuntimeError(f"torch returned {out.dtype}{list(out.shape)} for {self.dtype}{list(self.x.shape)}")
        return out


def _functional(c: _Call, F=None):
    """The ``torch.nn.functional`` call of ``c`` (``F``: a namespace of the same functions, e.g.
    :data:`COMPILED_FUNCTIONAL`'s compiled ones)."""
    F = F or _torch().nn.functional
    a, n = c.a, c.spec.name
    if n == "batch_norm":
        return F.batch_norm(
            c.x, c.running_mean, c.running_var, c.weight, c.bias, c.use_batch_stats, c.momentum, c.eps
        ), (c.running_mean, c.running_var)
    if n == "instance_norm":
        return F.instance_norm(
            c.x, c.running_mean, c.running_var, c.weight, c.bias, c.use_batch_stats, c.momentum, c.eps
        ), (c.running_mean, c.running_var)
    if n == "layer_norm":
        return F.layer_norm(c.x, _shape(a["normalized_shape"]), c.weight, c.bias, c.eps), ()
    if n == "group_norm":
        return F.group_norm(c.x, int(a["num_groups"]), c.weight, c.bias, c.eps), ()
    if n == "rms_norm":
        return F.rms_norm(c.x, _shape(a["normalized_shape"]), c.weight, c.eps), ()
    raise Unsupported(f"torch adapter has no functional form of {n}")


def _module(c: _Call):
    torch = _torch()
    a, n, x = c.a, c.spec.name, c.x
    if n in ("layer_norm", "rms_norm"):
        shape = _shape(a["normalized_shape"])
        if n == "layer_norm":
            affine, has_bias, w, b = _module_affine(c.weight, c.bias)
            m = torch.nn.LayerNorm(shape, eps=c.eps, elementwise_affine=affine, bias=has_bias, device=DEVICE)
        else:
            w, b = c.weight, None
            m = torch.nn.RMSNorm(shape, eps=c.eps, elementwise_affine=w is not None, device=DEVICE)
        _load(m, weight=w, bias=b)
        return m(x), ()
    if n == "group_norm":
        affine, has_bias, w, b = _module_affine(c.weight, c.bias)
        m = torch.nn.GroupNorm(int(a["num_groups"]), x.shape[1], eps=c.eps, affine=affine, bias=has_bias, device=DEVICE)
        _load(m, weight=w, bias=b)
        return m(x), ()
    if n not in ("batch_norm", "instance_norm"):
        raise Unsupported(f"torch adapter has no module form of {n}")
    if n == "instance_norm" and x.dim() < 3:
        raise ValueError(f"instance_norm needs an input of rank >= 3, got shape {tuple(x.shape)}")
    cls = _module_class(n, x.dim())
    rm, rv = c.running_mean, c.running_var
    if (rm is None) != (rv is None):
        raise Unsupported(f"torch.nn.{cls.__name__} holds both running buffers or neither")
    track = rm is not None
    if not c.use_batch_stats and not track:
        flag = c.spec.batch_stats_flag
        raise ValueError(f"{n}: running_mean and running_var are needed when {flag}=False")
    affine, has_bias, w, b = _module_affine(c.weight, c.bias)
    m = cls(
        x.shape[1],
        eps=c.eps,
        momentum=c.momentum,
        affine=affine,
        track_running_stats=track,
        bias=has_bias,
        device=DEVICE,
    )
    _load(m, weight=w, bias=b, running_mean=rm, running_var=rv)
    m.train(c.use_batch_stats)
    y = m(x)
    return y, ((m.running_mean, m.running_var) if track else ())


class _CompiledFunctional:
    """``torch.nn.functional`` with each norm replaced by its :func:`compiled_kernel`."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return compiled_kernel(name)


COMPILED_FUNCTIONAL = _CompiledFunctional()


def _compiled(c: _Call):
    """The functional call of ``c`` through :func:`compiled_kernel` (``torch.compile``, inductor)."""
    return _functional(c, COMPILED_FUNCTIONAL)


#: ``torch.compile``d functional norms, built once per process (:func:`compiled_kernel`).
COMPILED: dict[str, Any] = {}


def compiled_kernel(name: str):
    """``torch.compile(torch.nn.functional.<name>, dynamic=True, fullgraph=True)`` with the inductor
    backend, as a user compiles a model on CPU: shapes symbolic, float scalars (eps, momentum) not
    specialized, and a recompilation limit no drawn signature reaches, so every call runs the
    compiled program (a call past dynamo's default limit of 8 would run eagerly). Inductor keeps
    its programs in :func:`normcheck.compile_cache.folder` ("torch") unless
    ``TORCHINDUCTOR_CACHE_DIR`` is set."""
    fn = COMPILED.get(name)
    if fn is None:
        folder = compile_cache.folder("torch")
        if folder is not None:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(folder, "inductor"))
        torch = _torch()
        cfg = torch._dynamo.config
        cfg.recompile_limit = max(cfg.recompile_limit, 1 << 16)
        cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 1 << 20)
        cfg.specialize_float = False
        fn = COMPILED[name] = torch.compile(getattr(torch.nn.functional, name), dynamic=True, fullgraph=True)
    return fn


def _shape(normalized_shape) -> list[int]:
    if isinstance(normalized_shape, int | np.integer):
        return [int(normalized_shape)]
    return [int(d) for d in normalized_shape]


FORMS = {"functional": _functional, "module": _module, "compiled": _compiled}


def _impl_fn(s: _spec.Spec, form: str, layout: str, mode: str = "eager"):
    sig = inspect.signature(reference.function(s))
    run = FORMS["compiled" if mode == "compiled" else form]

    def fn(*args, **kwargs):
        torch = _torch()
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        c = _Call(s, bound.arguments, layout)
        with torch.no_grad():
            y, buffers = run(c)
        c.write_back(*buffers)
        return c.result(y)

    fn.__signature__ = sig
    fn.__name__ = fn.__qualname__ = f"torch_{s.name}_{form}" + "".join(
        f"_{v}" for v in (layout, mode) if v not in ("channels_first", "eager")
    )
    return fn


_WIDENED = "16-bit input with float32 running buffers: weight/bias widened to float32"
_RMS_EPS = "eps=None resolved to finfo(input dtype).eps (torch's own: finfo(float32).eps for 16-bit)"
_IN_BUFFERS = "16-bit input: torch rounds the float32 running buffers to the input dtype (not translated)"
_COMPILED_NOTE = "torch.compile, inductor on CPU, dynamic shapes; no double backward (AOTAutograd has none)"
_NOTES = {
    ("batch_norm", "functional"): _WIDENED,
    ("batch_norm", "module"): f"{_WIDENED}; 2D/3D input: BatchNorm1d, 4D: BatchNorm2d, 5D: BatchNorm3d",
    ("instance_norm", "functional"): _IN_BUFFERS,
    ("instance_norm", "module"): f"{_IN_BUFFERS}; 3D input: InstanceNorm1d, 4D: InstanceNorm2d, 5D: InstanceNorm3d",
    ("rms_norm", "functional"): _RMS_EPS,
    ("rms_norm", "module"): _RMS_EPS,
}


class TorchAdapter(Adapter):
    name = "torch"
    module = "torch"
    parts = frozenset({"autodiff", "second_order", "conventions", "bench", "port", "fold", "layers"})
    modules = ("torch",)
    array_name = "torch.Tensor"
    cost = 2
    default_eps = (1e-5,)
    packages = ("torch",)
    roof_devices = ("cpu", "cuda")
    module_bases = (("torch", "torch", "nn.Module"),)
    # a torch function calls torch.nn.functional, a torch module class builds on torch.nn's modules
    user_forms: Mapping[str, str] = {"function": "functional", "module": "module"}

    def owns(self, x) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(x, torch.Tensor)

    def refused(self, obj) -> str | None:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.nn.Module):
            return (
                "the target is a torch.nn.Module instance; point TARGET at its class (module form) "
                "or at a function with the canonical signature"
            )
        return None

    def has_cuda(self) -> bool:
        return self.available() and "cuda" in self.devices()

    def devices(self) -> list[str]:
        torch = _torch()
        return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

    def to_native(self, a, *, device=None):
        """A torch tensor holding a copy of ``a`` (bfloat16 via float32, exactly)."""
        torch = _torch()
        a = np.asarray(a)
        if a.dtype.name == "bfloat16":
            t = torch.from_numpy(a.astype(np.float32, order="C")).to(torch.bfloat16)
        else:
            t = torch.from_numpy(np.array(a, copy=True, order="C"))
        return t if device is None else t.to(device)

    def to_numpy(self, x) -> np.ndarray:
        """A NumPy copy of ``x`` of the same dtype (bfloat16 as ``ml_dtypes.bfloat16``)."""
        torch = _torch()
        t = x.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            return t.to(torch.float32).numpy().astype(dtypes.np_dtype("bfloat16"))
        return np.array(t.numpy(), copy=True)

    def implementations(self) -> list[Impl]:
        out = []
        for name in _spec.names():
            if name not in FUNCTIONAL:
                continue
            s = _spec.get(name)
            variants = [("functional", "channels_first", "eager"), ("module", "channels_first", "eager")]
            if name in CHANNELS_LAST_NORMS:
                variants.append(("functional", "channels_last", "eager"))
            variants.append(("functional", "channels_first", "compiled"))
            for form, layout, mode in variants:
                api = (FUNCTIONAL if form == "functional" else MODULES)[name]
                out.append(
                    Impl(
                        self.name,
                        name,
                        form,
                        _impl_fn(s, form, layout, mode),
                        api=f"torch.compile({api})" if mode == "compiled" else api,
                        dtypes=DTYPES,
                        layout=layout,
                        mode=mode,
                        # a compile per drawn signature (seconds each): the thorough profile's
                        extended=mode == "compiled",
                        running_stats=s.has_running_stats,
                        stateful=form == "module",
                        notes=_COMPILED_NOTE if mode == "compiled" else _NOTES.get((name, form), ""),
                    )
                )
        return out


ADAPTER = TorchAdapter()
