"""Native callables for the benchmark: each framework's own norm, called on its own arrays.

The adapters (:mod:`normcheck.adapters`) wrap every native call in NumPy conversions so the
properties can compare outputs; timing those wrappers would time the conversions. Here each
framework gets one small builder that returns a :class:`Native`: a zero-argument ``fn`` that runs
the native call once on arrays that already live on the device, and the ``sync`` that waits for
its result. Each builder lives in its adapter package, ``normcheck/adapters/<framework>/bench.py``,
behind :meth:`~normcheck.adapters.base.Adapter.bench_natives` (a
:class:`~normcheck.adapters.base.BenchNatives`: modes, layouts, API names, the builder); this
module is the framework-free rest: the matrix's vocabulary (:data:`MODES`, :data:`LAYOUTS`,
:func:`supports`, :func:`apis`), the host data and parameters every case uses, and the canonical
call a builder wraps (:class:`BenchCase`). The native APIs are the adapters' own:

=============  ==========================================================================
framework      forward (``pass="forward"``)
=============  ==========================================================================
numpy          ``normcheck.reference.function(norm, faithful=True)`` (float32 NumPy kernel)
torch          ``torch.nn.functional.{batch,layer,group,instance,rms}_norm``; channels_last is
               the ``torch.channels_last`` memory format; ``mode="compiled"``: ``torch.compile``
jax            ``flax.linen.{BatchNorm,LayerNorm,GroupNorm,InstanceNorm,RMSNorm}.apply``;
               ``mode="jit"``: ``jax.jit`` of the apply, ``"eager"``: op by op
tensorflow     ``keras.layers.{BatchNormalization,LayerNormalization,GroupNormalization,
               RMSNormalization}``; instance_norm: ``tf.nn.moments`` + ``tf.nn.batch_normalization``
               (keras has no InstanceNormalization); ``mode="compiled"``:
               ``tf.function(jit_compile=True)``
onnxruntime    the adapter's one-node ONNX models (``BatchNormalization-15``,
               ``LayerNormalization-17``, ``GroupNormalization-21``, ...), one cached
               ``InferenceSession`` per shape, ``run`` on NumPy arrays; CPU provider, forward only
=============  ==========================================================================

``pass="forward+backward"`` runs the forward and the gradient of ``sum(y · dy)`` with respect to
the input and the affine parameters, as one training step does: ``torch.autograd.grad(y, inputs,
dy)``, ``jax.vjp`` then the pullback of ``dy``, ``tf.GradientTape.gradient(y, ..., output_gradients=dy)``
(no extra multiply/sum kernel is run). BatchNorm runs in training mode with running statistics
(``momentum`` 0.1 in torch's convention), as a training step does; InstanceNorm uses the input's
statistics without running buffers; every norm is affine (RMSNorm: weight only).

The arguments every case uses: ``eps=1e-5``; LayerNorm/RMSNorm normalize the last axis; GroupNorm
has :func:`groups` groups. Inputs are uniform in [-2, 2); layouts are the same logical
``(N, C, *spatial)`` input, stored channels-first or channels-last.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck import adapters
from normcheck.bench.timer import no_sync

__all__ = [
    "EPS",
    "FORWARD",
    "FORWARD_BACKWARD",
    "LAYOUTS",
    "MODES",
    "BenchCase",
    "Native",
    "affine_params",
    "apis",
    "build",
    "canonical_call",
    "clear",
    "groups",
    "host_data",
    "natives",
    "physical_shape",
    "supports",
    "target_api",
]

EPS = 1e-5
MOMENTUM = 0.1  # torch's convention: new = (1 - m) old + m batch
FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
PASSES = (FORWARD, FORWARD_BACKWARD)
CHANNEL_NORMS = ("batch_norm", "instance_norm", "group_norm")


def natives(framework: str):
    """The :class:`~normcheck.adapters.base.BenchNatives` of ``framework`` (its adapter's
    :meth:`~normcheck.adapters.base.Adapter.bench_natives`), or None where the bench times no
    native call of it (an unknown name included). Imports the adapter, not the framework."""
    if framework not in adapters.FRAMEWORKS:
        return None
    return adapters.get(framework).bench_natives()


@functools.cache
def _tables() -> tuple[dict[str, tuple[str, ...]], dict[tuple[str, str], tuple[str, ...]]]:
    modes: dict[str, tuple[str, ...]] = {}
    layouts: dict[tuple[str, str], tuple[str, ...]] = {}
    for fw in adapters.FRAMEWORKS:
        n = natives(fw)
        if n is not None:
            modes[fw] = tuple(n.modes)
            layouts.update({(fw, norm): tuple(lay) for norm, lay in n.layouts.items()})
    return modes, layouts


class _FromAdapters(Mapping):
    """A read-only table gathered from the adapters' :class:`BenchNatives` on first use (so that
    importing this module imports no adapter package)."""

    def __init__(self, which: int, doc: str):
        self._which, self.__doc__ = which, doc

    def _table(self) -> dict:
        return _tables()[self._which]

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


#: framework -> execution modes, the default first: the frameworks the bench times natively, in
#: :data:`normcheck.adapters.FRAMEWORKS` order.
MODES: Mapping[str, tuple[str, ...]] = _FromAdapters(0, "framework -> execution modes, the default first")
#: (framework, norm) -> the layouts the native call takes.
LAYOUTS: Mapping[tuple[str, str], tuple[str, ...]] = _FromAdapters(1, "(framework, norm) -> layouts")


def apis(framework: str, norm: str, mode: str = "eager") -> str:
    """The native call a case times."""
    n = natives(framework)
    if n is None:
        raise ValueError(f"unknown framework {framework!r}")
    return n.api(norm, mode)


def supports(framework: str, norm: str, layout: str, mode: str, pass_: str, device: str) -> str | None:
    """None if the case can run, else why not (one line)."""
    n = natives(framework)
    if n is None or norm not in n.layouts:
        return f"{framework} has no native {norm}"
    if layout not in n.layouts[norm]:
        return n.layout_notes.get(norm) or f"{n.api(norm, 'eager')} takes no {layout} input"
    if mode not in n.modes:
        return f"{framework} has no {mode} mode"
    if pass_ == FORWARD_BACKWARD and n.forward_only:
        return n.forward_only
    if device != "cpu" and n.cpu_only:
        return n.cpu_only
    return None


def groups(channels: int) -> int:
    """GroupNorm's group count for ``channels``: 32 (the usual choice) or the largest divisor below it."""
    return math.gcd(32, channels)


def physical_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The stored shape: ``(N, *spatial, C)`` for channels_last inputs of rank > 2."""
    if layout == "channels_last" and len(shape) > 2:
        return (shape[0], *shape[2:], shape[1])
    return tuple(shape)


def affine_shape(norm: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[-1],) if norm in ("layer_norm", "rms_norm") else (shape[1],)


@dataclass
class Native:
    """One native call, ready to time: ``sync(fn())``."""

    fn: Callable[[], Any]
    sync: Callable[[Any], None]
    api: str
    output: Callable[[Any], np.ndarray]  # y (channels-first, as NumPy) from what fn returned

    def __call__(self):
        return self.fn()


# --- host data -----------------------------------------------------------------------------------
_BLOCK = 1 << 22  # a 4 Mi-element random block, tiled: fast to make, and no cache reuse within a pass
_HOST: dict[tuple[int, int], np.ndarray] = {}


def host_data(numel: int, seed: int = 0) -> np.ndarray:
    """A float32 vector of ``numel`` values uniform in [-2, 2) (a tiled random block; cached)."""
    key = (numel, seed)
    if key not in _HOST:
        rng = np.random.default_rng(seed)
        block = rng.random(min(numel, _BLOCK), dtype=np.float32) * 4 - 2
        for k in [k for k in _HOST if k[0] != numel]:  # keep one size (x and dy) at most: these are large
            del _HOST[k]
        _HOST[key] = np.resize(block, numel) if numel > block.size else block
    return _HOST[key]


def clear() -> None:
    """Drop the cached host data."""
    _HOST.clear()


def affine_params(norm: str, shape: tuple[int, ...], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of ``norm`` for an input of ``shape``: float32, near 1 and near 0."""
    rng = np.random.default_rng(seed)
    p = affine_shape(norm, shape)
    return (1 + 0.1 * rng.standard_normal(p)).astype(np.float32), (0.1 * rng.standard_normal(p)).astype(np.float32)


def first(out):
    """The output ``y`` of what a timed call returned (``(y, *gradients)`` or ``y``)."""
    return out[0] if isinstance(out, tuple | list) else out


def canonical_call(norm: str, shape, fn, running_mean=None, running_var=None):
    """``op(x, w, b)`` calling ``fn`` with the canonical (torch.nn.functional) arguments of ``norm``."""
    if norm == "layer_norm":
        ns = (shape[-1],)
        return lambda x, w, b: fn(x, ns, w, b, EPS)
    if norm == "rms_norm":
        ns = (shape[-1],)
        return lambda x, w, b: fn(x, ns, w, EPS)
    if norm == "group_norm":
        g = groups(shape[1])
        return lambda x, w, b: fn(x, g, w, b, EPS)
    if norm == "instance_norm":
        return lambda x, w, b: fn(x, None, None, w, b, True, MOMENTUM, EPS)
    if norm == "batch_norm":
        return lambda x, w, b: fn(x, running_mean, running_var, w, b, True, MOMENTUM, EPS)
    raise ValueError(f"unknown norm {norm!r}")


def target_api(target) -> str:
    """How a user's ``target`` is named in the results (``module.qualname``)."""
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
    return f"{mod}.{name}" if mod and mod != "__main__" else name


@dataclass(frozen=True)
class BenchCase:
    """One case of the matrix, as a framework's builder (:attr:`BenchNatives.build
    <normcheck.adapters.base.BenchNatives>`) receives it: what to time, and the framework-free
    pieces every builder shares. ``target`` (canonical signature, the framework's arrays) replaces
    the framework's own call by a user's implementation."""

    norm: str
    shape: tuple[int, ...]
    dtype: str
    layout: str
    mode: str
    pass_: str
    device: str
    target: Callable | None = None

    eps = EPS
    momentum = MOMENTUM  # torch's convention

    @property
    def forward(self) -> bool:
        """Is this the forward pass only (no gradient)?"""
        return self.pass_ == FORWARD

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def channels(self) -> int:
        """The channel count (the length of a 1D input): the running buffers' size."""
        return self.shape[1] if len(self.shape) > 1 else self.shape[0]

    @property
    def groups(self) -> int:
        return groups(self.shape[1])

    @property
    def physical_shape(self) -> tuple[int, ...]:
        return physical_shape(self.shape, self.layout)

    def host(self, seed: int = 0) -> np.ndarray:
        """:func:`host_data` for this shape: ``seed=0`` the input, ``seed=1`` the output cotangent."""
        return host_data(self.numel, seed=seed)

    def params(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 (weight, bias): :func:`affine_params`."""
        return affine_params(self.norm, self.shape)

    def canonical(self, fn, running_mean=None, running_var=None):
        """``op(x, w, b)`` calling ``fn`` with the canonical arguments: :func:`canonical_call`."""
        return canonical_call(self.norm, self.shape, fn, running_mean, running_var)

    def target_api(self) -> str:
        return target_api(self.target)

    first = staticmethod(first)

    def native(self, fn, sync, api: str, output) -> Native:
        """The :class:`Native` a builder returns (``sync`` None: nothing to wait for)."""
        return Native(fn, no_sync if sync is None else sync, api, output)

    def host_call(self, fn, api: str) -> Native:
        """A call on NumPy arrays in host memory (NumPy and ONNX Runtime take and return them):
        ``fn`` with the canonical arguments, float32 running buffers, nothing to synchronize."""
        from normcheck import dtypes

        dt = dtypes.np_dtype(self.dtype)
        x = self.host().reshape(self.shape).astype(dt, copy=False)
        w, b = (p.astype(dt) for p in self.params())
        rm, rv = np.zeros(self.channels, np.float32), np.ones(self.channels, np.float32)
        call = self.canonical(lambda a, *r, **k: fn(a, *r, **k), rm, rv)
        return Native(lambda: call(x, w, b), no_sync, api, lambda out: np.asarray(out))


def build(
    framework: str,
    norm: str,
    *,
    shape: tuple[int, ...],
    dtype: str = "float32",
    layout: str = "channels_first",
    mode: str | None = None,
    pass_: str = FORWARD,
    device: str = "cpu",
    target: Callable | None = None,
) -> Native:
    """The :class:`Native` for one case; ``target`` (canonical signature, native arrays) replaces the
    framework's own call by a user's implementation."""
    n = natives(framework)
    if n is None:
        raise KeyError(framework)
    mode = mode or n.modes[0]
    why = supports(framework, norm, layout, mode, pass_, device) if target is None else None
    if why:
        raise ValueError(why)
    shape = tuple(int(d) for d in shape)
    return n.build(BenchCase(norm, shape, dtype, layout, mode, pass_, device, target))
