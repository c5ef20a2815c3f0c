"""What every framework adapter provides (one small class per framework, as in einops' backends).

An :class:`Adapter` knows how to find its framework without importing it, convert arrays to and
from NumPy, and list :class:`Impl` objects: the framework's native norms behind the canonical
calling convention of :mod:`normcheck.reference` (the ``torch.nn.functional`` signatures).

Canonical convention every ``Impl.fn`` follows:

- arguments are the spec's signature (``spec.params``); arrays are NumPy arrays (bfloat16 via
  ``ml_dtypes``); the input is laid out channels-first ``(N, C, *spatial)``;
- ``weight``/``bias`` have the input's dtype; running buffers are float32 for 16-bit inputs;
- momentum is torch's (``new = (1 - m) * old + m * batch``), the stored running variance is the
  unbiased one, ``eps`` is added inside the square root;
- the result is a NumPy array of the input's dtype and shape; running buffers passed in are
  updated in place with the framework's new values, translated to the canonical convention;
- an argument combination the framework cannot express raises :class:`Unsupported` (never a
  silent substitute: no InstanceNorm faked with another norm).

All translation (momentum, default eps, channel axis, variance estimator, train/eval) happens in
the adapter package, in one place per convention.

Optional capabilities, public methods with a default that says "not offered":

- :meth:`Adapter.vjp` ``(impl, case, dy)``: the framework's own autodiff of an implementation
  (raises :class:`Unsupported` by default; :attr:`Adapter.has_vjp` says whether it is overridden);
  :meth:`Adapter.target_vjp` ``(target, case, dy)`` the same for a user's target of the framework,
  and :meth:`Adapter.hvp` / :meth:`Adapter.target_hvp` ``(..., case, dy, v)`` the second order
  (the derivative of the input gradient along ``v``); :meth:`Adapter.jvp` / :meth:`Adapter.target_jvp`
  ``(..., case, tangents)`` forward mode (the output's derivative along tangents of the input,
  weight and bias; :attr:`Adapter.has_jvp` says whether the autodiff part offers it);
- :meth:`Adapter.convention_probes`: the framework's layers as :class:`normcheck.conventions.Probe`
  objects for the conventions table (none by default);
- :meth:`Adapter.bench_natives`: the framework's part of ``normcheck bench`` (a :class:`BenchNatives`:
  its native norms called on its own arrays, its copy for the roof), None where the bench times none;
- :meth:`Adapter.batch_norm_folding`: folding an eval-mode BatchNorm into the layer before it (the
  ``fold_agreement`` property and :mod:`normcheck.properties.fold`), None by default;
- :meth:`Adapter.layer_porting`: the framework's side of :mod:`normcheck.port` (torch <-> Keras/Flax
  norm layers), None by default.

These are reached through :func:`normcheck.adapters.get`; a capability module of an adapter package
imports nothing above the adapters (no ``normcheck.bench``, ``normcheck.properties``,
``normcheck.port``): what it shares with them (:class:`BenchNatives`, :class:`FoldError`,
:class:`PortError`) is defined here, and what the generic side supplies is handed to it in the call.

An adapter package ``normcheck/adapters/<framework>/`` keeps everything about its framework: the
adapter in ``__init__.py``, its VJPs in ``autodiff.py``, its convention probes in ``conventions.py``
(both imported only when asked for), and where it offers them its ``bench.py``, ``fold.py`` and
``port.py``. The helpers its VJPs share are the public functions at the end
of this module.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from normcheck import installed

__all__ = [
    "AXIS_SPELLINGS",
    "DEFAULT",
    "LAYOUTS",
    "MODES",
    "Adapter",
    "BenchNatives",
    "FoldError",
    "Impl",
    "PortError",
    "Probe",
    "TargetLike",
    "Unsupported",
    "case_arguments",
    "configuration",
    "gradient_keys",
    "move_channels",
    "spell_axes",
]

LAYOUTS = ("channels_first", "channels_last")
MODES = ("eager", "jit", "compiled")


class GuardLike(Protocol):
    """The per-call guard of a target (:class:`normcheck.target.guard.Guard`)."""

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` under the target's timeout, in its worker thread."""
        ...


class TargetLike(Protocol):
    """What an adapter may read of a user's target (:class:`normcheck.target.Target`), and nothing else:
    the adapters' ``target_vjp``/``target_hvp``/``target_jvp`` take one."""

    obj: Any  # the user's function or class
    form: str  # "function" or "module"
    guard: GuardLike
    #: a Keras/flax.linen layer class behind its adapter's canonical function, else None
    adapted: Callable[..., Any] | None

    #: its derivatives may be compiled with it as one program (set False where that failed)
    whole: bool

    def native_call(self, args: dict[str, Any], *, meta: dict[str, Any] | None = None) -> Any:
        """The target called with the framework's own arrays, its native output."""
        ...

    @property
    def compiles_whole(self) -> bool:
        """A compiled function target whose derivative may be compiled with it as one program."""
        ...

    @property
    def floats_static(self) -> bool:
        """eps and momentum must be constants of its compiled program."""
        ...

    def traced(self) -> AbstractContextManager[None]:
        """Calls inside run under the caller's trace: an untraceable call raises, never falls back."""
        ...


class Unsupported(Exception):
    """The framework has no native way to compute this norm with these arguments."""


class FoldError(ValueError):
    """The BatchNorm cannot be folded into the layer (training mode, no running statistics, or a
    layer/BN pair that does not fit)."""


class PortError(ValueError):
    """The layer (or one of its settings) has no equivalent on the other side."""


@dataclass(frozen=True)
class Impl:
    """One native implementation of one norm, callable with the canonical signature."""

    framework: str
    norm: str
    form: str  # "functional", "module", "linen", "nnx", "keras", "tf.nn", "float32", "reference", ...
    fn: Callable = field(repr=False, compare=False)
    api: str = ""  # the native call, e.g. "torch.nn.functional.group_norm"
    dtypes: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
    layout: str = "channels_first"  # how the native call receives the input (the adapter transposes)
    mode: str = "eager"  # execution mode: eager, jit, compiled
    running_stats: bool = False  # updates running buffers passed to it
    stateful: bool = False  # a layer object (module form) rather than a function
    notes: str = ""
    # An expensive variant whose code path a cheaper Impl of the same framework already covers
    # (e.g. op-by-op Flax linen beside linen under jit and nnx): audited by the `thorough`
    # profile and `--all-forms`, listed by `normcheck frameworks` all the same.
    extended: bool = False
    # A user's target (framework "user"): the framework it runs on, whose registered findings apply
    runs_on: str | None = None
    # Configuration axes: the constructor options of the native layer that change its arithmetic, each
    # ``(keyword, values)`` with the framework's default first. ``fn`` takes each keyword besides the
    # canonical arguments; a case's ``variant`` picks one value per axis (:meth:`configuration`).
    configs: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def config_count(self) -> int:
        """How many configurations the axes make (1 without axes)."""
        n = 1
        for _, values in self.configs:
            n *= len(values)
        return n

    def configuration(self, variant: int) -> dict[str, Any]:
        """The configuration a case's ``variant`` picks (:func:`configuration`)."""
        return configuration(self.configs, variant)

    def config_label(self, variant: int) -> str:
        """``"name=value, ..."`` of the options :meth:`configuration` sets away from their defaults
        (``""``: the default configuration)."""
        picked = self.configuration(variant)
        return ", ".join(f"{k}={v}" for (k, values) in self.configs if (v := picked[k]) != values[0])

    @property
    def id(self) -> str:
        parts = [self.framework, self.norm, self.form]
        if self.layout != "channels_first":
            parts.append(self.layout)
        if self.mode != "eager":
            parts.append(self.mode)
        return "/".join(parts)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def configuration(configs, variant: int) -> dict[str, Any]:
    """The options ``configs`` (``Impl.configs``) set for a case's ``variant``: ``variant`` read in
    mixed radix over the axes, so variant 0 (where a case's draw shrinks to) is every default and each
    axis is used alike."""
    out, k = {}, int(variant)
    for name, values in configs:
        k, i = divmod(k, len(values))
        out[name] = values[i]
    return out


#: How an axis list can be spelled to an API that accepts any (a configuration axis): the default
#: the adapter used before, then the other signs and a descending order.
AXIS_SPELLINGS = ("negative", "positive", "descending")


def spell_axes(axes, ndim: int, spelling: str) -> tuple[int, ...]:
    """``axes`` of an ``ndim``-dimensional array as ``spelling`` says: "negative" (each axis minus
    ``ndim``), "positive" (ascending), "descending" (positive, in descending order). The set is the
    same; an API must give the same result for each."""
    pos = sorted(a % ndim for a in axes)
    if spelling == "negative":
        return tuple(a - ndim for a in pos)
    if spelling == "positive":
        return tuple(pos)
    if spelling == "descending":
        return tuple(reversed(pos))
    raise ValueError(f"unknown axis spelling {spelling!r}; known: {', '.join(AXIS_SPELLINGS)}")


class Adapter:
    """Base class: subclasses set ``name``/``module`` and implement the framework-specific parts.

    Every fact about a framework that the rest of normcheck needs is a class attribute or method
    here (read through :mod:`normcheck.adapters`), so that no module outside the adapters names a
    framework; none of them imports the framework (they read ``sys.modules``)."""

    name: str = ""
    module: str = ""  # top-level import name
    distribution: str = ""  # pip distribution for the version, if different from module

    # --- framework facts ------------------------------------------------------------------------
    #: Top-level modules whose code is this framework's (its own first: JAX owns flax and jaxlib)
    modules: tuple[str, ...] = ()
    target: bool = True  # a user's target may be written in it (ONNX Runtime runs graphs, not Python)
    array_name: str = ""  # its array type, as messages name it
    immutable_arrays: bool = False  # a target cannot change its input arrays in place
    cost: int = 0  # the audit's process pool starts the costliest framework first
    processes: int = 1  # the processes a parallel audit splits its checks over (JAX compiles per shape)
    check_processes: int = 1  # the processes `normcheck check` splits a target's checks over by default
    #: Its persistent compile cache keys a program by names that count the functions the process
    #: traced before it, so a program is found again only after the same history: the audit's
    #: processes take its units in an order no measurement changes, one from each end.
    history_keyed_cache: bool = False
    packages: tuple[str, ...] = ()  # the distributions whose versions a run records
    #: Logging defaults for its native code, set (unless set) before any framework is imported
    log_env: Mapping[str, str] = {}
    #: Its native log lines that reach stderr whatever ``log_env`` says (regexes over bytes)
    log_lines: tuple[bytes, ...] = ()
    #: Module class bases it recognises, ``(kind, module, base class path)``: a class of ``kind``
    #: subclasses ``module.path`` (:meth:`module_kind`)
    module_bases: tuple[tuple[str, str, str], ...] = ()
    #: Kinds whose module classes a capability part maps and runs like torch's: kind -> part name
    ecosystems: Mapping[str, str] = {}
    #: Kinds whose layer classes it builds and drives like its own layer: kind -> the API mirrored
    layer_kinds: Mapping[str, str] = {}
    unsupported_kinds: Mapping[str, str] = {}  # kinds recognised but not checkable: kind -> why
    #: The native form a user's target most likely calls, by the target's form (findings' keys)
    user_forms: Mapping[str, str] = {}
    default_eps: tuple[float, ...] = ()  # its native layers' default eps (each once)
    first_run_note: str = ""  # a line for a run that fills its empty compilation cache ({folder})
    roof_devices: tuple[str, ...] = ()  # where the bench's copy roof is measured with its copy ("cpu", "cuda")

    def owns_module(self, name: str | None) -> bool:
        """Is a module of this (top-level) name this framework's code?"""
        return (name or "").split(".")[0] in self.modules

    def owns_array(self, x) -> bool:
        """Is ``x`` an array of this framework (imported already)?"""
        return self.loaded() and self.owns(x)

    def module_kind(self, cls) -> str | None:
        """The kind of a module class (:attr:`module_bases`) among the loaded modules, or None."""
        for kind, modname, path in self.module_bases:
            base = sys.modules.get(modname)
            for attr in path.split("."):
                base = getattr(base, attr, None)
            if base is None and "." in path:  # a module without the path's namespace (keras.Layer)
                base = getattr(sys.modules.get(modname), path.rpartition(".")[2], None)
            if isinstance(base, type) and issubclass(cls, base):
                return kind
        return None

    def module_base(self, kind: str) -> str:
        """The base class of ``kind``'s module classes, by name ("torch.nn.Module")."""
        return next(f"{m}.{path}" for k, m, path in self.module_bases if k == kind)

    def refused(self, obj) -> str | None:
        """Why ``obj`` (not a class) cannot be a target of this framework, or None."""
        return None

    def train(self, layer, training: bool) -> None:
        """Put a user's torch-style layer object in training or eval mode: torch's ``train(mode)``
        where it has one, else its ``training`` attribute."""
        if hasattr(layer, "train") and callable(layer.train):
            layer.train(training)
        else:
            layer.training = training

    def layer_function(self, kind: str, norm: str, cls):
        """The canonical function of a layer class of one of :attr:`layer_kinds`, built and driven
        like the framework's own ``norm`` layer."""
        raise Unsupported(f"{self.name} builds no {kind} layer class")

    def has_cuda(self) -> bool:
        """Is a CUDA device there for this framework (imports it where it is installed)?"""
        return False

    # --- discovery, never importing the framework -------------------------------------------
    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        return installed.version(self.distribution or self.module, self.module)

    def loaded(self) -> bool:
        return self.module in sys.modules

    def owns(self, x) -> bool:
        """Is ``x`` an array of this framework? Checked via sys.modules, importing nothing."""
        return False

    # --- using the framework (imports it) ------------------------------------------------------
    def devices(self) -> list[str]:
        return ["cpu"]

    def to_native(self, a: np.ndarray, *, device: str | None = None):
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def implementations(self) -> list[Impl]:
        raise NotImplementedError

    def compile_stats(self) -> dict[str, float]:
        """Counts and seconds of the framework's compilations in this process (``{}``: none kept)."""
        return {}

    # --- optional capabilities ---------------------------------------------------------------------
    #: The capability modules the framework's package has (imported only when asked for): "autodiff"
    #: (``vjp``/``target_vjp``; with "second_order" also ``hvp``/``target_hvp``), "conventions"
    #: (``probes()``), "bench" (``NATIVES``), "fold", "port", "layers" (the modules themselves).
    parts: frozenset[str] = frozenset()

    def part(self, name: str):
        """The package's capability module ``name`` (``normcheck.adapters.<framework>.<name>``), or
        None where the framework has none."""
        if name not in self.parts:
            return None
        return importlib.import_module(f"{type(self).__module__}.{name}")

    def vjp(self, impl: Impl, case, dy: np.ndarray) -> dict[str, np.ndarray]:
        """The vector-Jacobian product of the native norm ``impl`` exposes, at the
        :class:`~normcheck.case.Case` ``case``, for the output cotangent ``dy``: ``{"input": dx,
        "weight": dw, "bias": db}`` (weight/bias only where the case has them), NumPy arrays in the
        native gradient dtype, channels-first like the case (see :mod:`normcheck.autodiff`)."""
        return self._autodiff("vjp")(impl, case, dy)

    @property
    def has_vjp(self) -> bool:
        """Does the framework have autodiff (an "autodiff" part)?"""
        return "autodiff" in self.parts

    def _autodiff(self, fn: str):
        """The autodiff part's function ``fn``, raising :class:`Unsupported` where there is none."""
        second = fn.endswith("hvp")
        f = getattr(self.part("autodiff"), fn, None) if not second or "second_order" in self.parts else None
        if f is None:
            raise Unsupported(self._no_second_order() if second else f"{self.name} has no autodiff")
        return f

    def target_vjp(self, target: TargetLike, case, dy: np.ndarray) -> dict[str, np.ndarray]:
        """The VJP of a user's target of this framework (a :class:`normcheck.target.Target`, called
        with native arrays through its ``native_call``; a Keras/flax.linen layer class through the
        framework's own layer machinery), in :meth:`vjp`'s terms: ``{"input", "weight", "bias"}``.
        The whole forward and backward pass runs in the target's guard (its worker thread, under its
        per-call timeout). Raises :class:`Unsupported` without autodiff."""
        return self._autodiff("target_vjp")(target, case, dy)

    def hvp(self, impl: Impl, case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Second order: the derivative of the input gradient of ``<dy, f(x)>`` along the input
        direction ``v`` (a Hessian-vector product), through the framework's own autodiff of the
        native norm ``impl`` (torch: double backward; JAX: forward-over-reverse), a NumPy array
        shaped like the input. Raises :class:`Unsupported` where the framework has none."""
        return self._autodiff("hvp")(impl, case, dy, v)

    def target_hvp(self, target: TargetLike, case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
        """:meth:`hvp` of a user's target (as :meth:`target_vjp` calls it). Raises :class:`Unsupported`
        where the framework has none."""
        return self._autodiff("target_hvp")(target, case, dy, v)

    def jvp(self, impl: Impl, case, tangents: dict[str, np.ndarray]) -> np.ndarray:
        """Forward mode: the derivative of the native norm ``impl``'s output at ``case`` along the
        ``tangents`` ``{"input": v, "weight": w', "bias": b'}`` (keys as :func:`gradient_keys`; the
        weight and bias tangents only where the case has them), all in one Jacobian-vector product of
        the framework's own forward-mode autodiff (torch: ``torch.autograd.forward_ad`` dual numbers;
        JAX: ``jax.jvp``), a NumPy array shaped like the input. Raises :class:`Unsupported` where the
        framework has none here."""
        return self._forward_mode("jvp")(impl, case, tangents)

    def target_jvp(self, target: TargetLike, case, tangents: dict[str, np.ndarray]) -> np.ndarray:
        """:meth:`jvp` of a user's target (called as :meth:`target_vjp` calls it, in its guard).
        Raises :class:`Unsupported` where the framework has no forward mode here."""
        return self._forward_mode("target_jvp")(target, case, tangents)

    @property
    def has_jvp(self) -> bool:
        """Does the framework's autodiff part offer forward mode (imports the part, not the framework)?"""
        return self.has_vjp and hasattr(self.part("autodiff"), "jvp")

    def _forward_mode(self, fn: str):
        f = getattr(self.part("autodiff"), fn, None) if self.has_vjp else None
        if f is None:
            raise Unsupported(
                f"{self.name}: no forward-mode autodiff" if self.has_vjp else f"{self.name} has no autodiff"
            )
        return f

    def _no_second_order(self) -> str:
        return f"{self.name}: no second-order autodiff" if self.has_vjp else f"{self.name} has no autodiff"

    def compiled_function(self, fn, static: tuple[int, ...]):
        """``fn`` compiled as the framework's users run a function (JAX: ``jax.jit``), with the
        positional arguments ``static`` (shapes, group counts, flags) fixed at compile time; None
        where the framework runs functions as they are."""
        return None

    def untraceable(self, error: BaseException) -> bool:
        """Is ``error`` the framework saying a function cannot be compiled (Python control flow on a
        traced value), rather than the function failing?"""
        return False

    def convention_probes(self) -> list:
        """The framework's layers as :class:`normcheck.conventions.Probe` objects, measured by
        :func:`normcheck.conventions.measure` (imports the framework)."""
        m = self.part("conventions")
        return m.probes() if m is not None else []

    def bench_natives(self) -> BenchNatives | None:
        """The framework's part of ``normcheck bench`` (:mod:`normcheck.bench.native`), or None where
        the bench times none of its calls. Imports no framework (its ``build`` and ``copy`` do)."""
        m = self.part("bench")
        return m.NATIVES if m is not None else None

    def batch_norm_folding(self):
        """BatchNorm folding for :mod:`normcheck.properties.fold`, or None where the framework has
        none: a namespace with ``fold(layer, bn)`` (raising :class:`FoldError`), ``reference(layer,
        bn, x)`` (the float64 pieces of the error model), ``run(layer, x)``, ``random_layer(rng,
        x_shape, dtype)``, ``layers_for(case)`` and ``train(bn)``."""
        return self.part("fold")

    def layer_porting(self):
        """The framework's side of :mod:`normcheck.port`, or None: a namespace whose functions read,
        build and run the framework's norm layers (raising :class:`PortError`)."""
        return self.part("port")

    def layer_driving(self):
        """How :mod:`normcheck.target` drives a user's layer object of this framework, or None (plain
        attributes, no grad mode): a namespace with ``no_grad()``, ``cast(layer, dtype)`` (as
        ``module.to(dtype)``), ``put(layer, attr, t, dtype)`` (a parameter or buffer in place) and
        ``full(shape, value, dtype)``."""
        return self.part("layers")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --- helpers shared by the adapters' VJPs (framework-free) ----------------------------------------


def case_arguments(case) -> dict[str, Any]:
    """The case's canonical arguments, defaults applied (fresh copies)."""
    from normcheck import reference

    sig = inspect.signature(reference.function(case.spec))
    bound = sig.bind(case.x.copy(), **case.kwargs())
    bound.apply_defaults()
    return dict(bound.arguments)


def gradient_keys(case) -> tuple[str, ...]:
    """The arguments a VJP differentiates for ``case``: the input, and weight/bias where given."""
    return ("input", *(k for k in ("weight", "bias") if getattr(case, k) is not None))


def move_channels(a: np.ndarray, last: bool, back: bool = False) -> np.ndarray:
    """Channels-first ``a`` to channels-last (``back``: the reverse) when ``last``; rank <= 2 as is."""
    if not last or a.ndim <= 2:
        return a
    return np.ascontiguousarray(np.moveaxis(a, -1, 1) if back else np.moveaxis(a, 1, -1))


# --- conventions probes (normcheck.conventions measures them) ------------------------------------

DEFAULT = object()  # "leave the argument at the layer's default" (a Probe.run momentum)


@dataclass
class Probe:
    """One layer behind a uniform call.

    ``run(x, training, momentum=DEFAULT, state=None) -> (y, new_state or None)``: build the layer
    with its defaults (``momentum`` the native argument, when given), load ``state`` = (running
    mean, running var) if it keeps running statistics, call it on ``x`` (float32, channels where
    the layer's default puts them) in training or eval mode.
    """

    framework: str
    norm: str
    api: str
    run: Callable[..., tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]]
    axis: Callable[[], str] | None = None
    switch: str = ""  # the train/eval API, "" for a layer without modes
    stateful: bool = False
    eps_required: bool = False
    untracked: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # -> (train y, eval y)
    # training steps on one persistent layer -> running (mean, var), where hidden state (torch's
    # num_batches_tracked) matters; else ``run`` is chained with the state carried explicitly
    steps: Callable[[list[np.ndarray], Any], tuple[np.ndarray, np.ndarray]] | None = None
    modes: bool = True  # a layer that trains (False: a function of given statistics, e.g. tf.nn)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- the bench's view of a framework (normcheck.bench.native times it) ------------------------------


@dataclass(frozen=True)
class BenchNatives:
    """A framework's part of ``normcheck bench`` (:meth:`Adapter.bench_natives`): its native norms
    called on its own arrays, without the adapter's NumPy conversions.

    ``build(case)`` gets a :class:`normcheck.bench.native.BenchCase` (the norm, shape, dtype,
    layout, mode, pass, device and an optional user ``target``, with the framework-free pieces every
    builder shares: host data, affine parameters, the canonical call) and returns
    ``case.native(fn, sync, api, output)``. ``copy(nbytes, device)`` returns ``(api, fn, sync)``: a
    copy of ``nbytes`` of float32 between two arrays on ``device``, for the copy roof (``sync`` None:
    nothing to wait for). ``gpu(device)`` describes a CUDA device: ``{"name", "l2_bytes"}``.
    """

    modes: tuple[str, ...]  # execution modes, the default first
    layouts: Mapping[str, tuple[str, ...]]  # norm -> the layouts its native call takes
    api: Callable[[str, str], str]  # (norm, mode) -> the native call a case times
    build: Callable[[Any], Any]
    forward_only: str = ""  # why there is no forward+backward pass ("": there is one)
    cpu_only: str = ""  # why it runs on the CPU only ("": it does not)
    layout_notes: Mapping[str, str] = field(default_factory=dict)  # norm -> why a layout is missing
    # channels_last is a memory format of the same logical (N, C, *spatial) array (torch), so a user's
    # target, which takes canonical channels-first arrays, runs in every layout
    layouts_keep_logical_shape: bool = False
    copy: Callable[[int, str], tuple[str, Callable, Callable | None]] | None = None
    gpu: Callable[[str], dict[str, Any]] | None = None
