"""The call path: :class:`Target`, a user's norm behind the canonical NumPy convention, built or carried
on per call, its outputs and in-place changes written back, and ``native_call`` for the gradients."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.target import constraints, probes
from normcheck.target.canonical import ARRAY_ARGS, canon, module_flag, resolved
from normcheck.target.constructor import Canon, Constructor
from normcheck.target.errors import BadOutput, ConstructionError, first_line, unsupported
from normcheck.target.frameworks import adapter, array_name, immutable, owns
from normcheck.target.guard import DEFAULT_TIMEOUT, Guard
from normcheck.target.layer import LayerInfo, cast_layer, filled, get, is_array, put, set_path, set_values


def _same(a, b) -> bool:
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
    )


#: The arguments of a function target compiled in as constants (shapes, group counts, flags); floats
#: (eps, momentum) are traced unless the function needs them constant (:meth:`Target._call_function`).
_STATIC = (bool, int, str, tuple, list, np.integer)


@dataclass
class Target:
    """A user's norm implementation behind the canonical NumPy convention (see :mod:`normcheck.target`)."""

    obj: Any
    norm: str
    framework: str
    form: str
    label: str
    guard: Guard = field(default_factory=lambda: Guard(DEFAULT_TIMEOUT))
    notes: list[str] = field(default_factory=list)
    # a Keras/flax.linen layer class behind its adapter's canonical NumPy function (module form)
    adapted: Any = None
    # module targets: the constructor call (from the class's signature) and where the layer keeps things
    ctor: Constructor | None = None
    layer: LayerInfo | None = None
    # what the drawn cases must satisfy: ranks, shape, pinned (canonical arguments), no_bias, no_affine
    constraints: dict[str, Any] = field(default_factory=dict)
    axes: tuple[int, ...] | None = None
    eps_default: float | None = None  # the layer's own eps, where a case's eps=None means "the default"
    running_stats: bool = True  # does it keep (and update) running statistics
    unknown: set[str] = field(default_factory=set)  # settings the layer has but normcheck cannot read or set
    set_attrs: dict[str, str] = field(default_factory=dict)  # setting -> attribute set per call
    options: dict[str, Any] = field(default_factory=dict)  # the wrap() options that rebuild it (repro)
    momentum_none: bool | None = None  # takes momentum=None, as a probe showed (None: its signature says)
    driver: Any = None  # an ecosystem's adapter module (Equinox, Haiku, Sonnet) that builds and runs the layer
    eager: bool = False  # a function target runs as it is, not compiled by its framework (JAX: jax.jit)
    #: its derivatives may be compiled into one program with it (False once the compiler could not)
    whole: bool = True
    _compiled: dict = field(default_factory=dict, repr=False)  # compiled function by framework, static positions
    _floats_static: bool = field(default=False, repr=False)  # eps and momentum compiled in as constants
    _tracing: bool = field(default=False, repr=False)  # called inside a caller's trace (see traced())
    _built: dict = field(default_factory=dict, repr=False)  # the driver's built layers, by constructor call
    _last: Any = field(default=None, repr=False)  # (key, layer, running_mean, running_var) of the last call
    _pending: Any = field(default=None, repr=False)

    @property
    def spec(self) -> _spec.Spec:
        return _spec.get(self.norm)

    @property
    def hung(self) -> str | None:
        return self.guard.hung

    @property
    def floats_static(self) -> bool:
        """eps and momentum must be constants of its compiled program (a derivative rule closes over them)."""
        return self._floats_static

    @property
    def compiles_whole(self) -> bool:
        """A function target its framework compiles, whose derivative the adapter may compile as one
        program with it (as a training step under ``jax.jit`` differentiates it)."""
        return self.form == "function" and not self.eager and self.whole and self.adapted is None

    @contextlib.contextmanager
    def traced(self):
        """Calls made inside run under the caller's trace (one program with its derivative): a call
        the compiler cannot trace raises, instead of the target falling back to op by op."""
        self._tracing = True
        try:
            yield
        finally:
            self._tracing = False

    def start_fresh(self) -> None:
        """The next call builds a fresh layer even if it carries on the last call's buffers (a state
        property starting a sequence that assumes a freshly built module: momentum=None's factor
        1 / num_batches_tracked counts from 0)."""
        self._last = None

    def __call__(self, *args, **kwargs) -> np.ndarray:
        a = resolved(self.spec, args, kwargs)
        return self.guard.call(self._run, a)

    # the body runs in the worker thread
    def _run(self, a: dict[str, Any]) -> np.ndarray:
        if self.adapted is not None:  # the adapter builds the layer, sets its variables, translates
            return np.asarray(self.adapted(**a))
        s, fw = self.spec, self.framework
        ad = adapter(fw)
        native = {}
        for k in ("input", *ARRAY_ARGS):
            v = a.get(k)
            if isinstance(v, np.ndarray | np.generic):
                native[k] = ad.to_native(np.asarray(v))
        self._pending = None
        drive = ad.layer_driving()
        with drive.no_grad() if drive is not None else contextlib.nullcontext():
            out, buffers = self._invoke(a, native)
        y = self._to_numpy(out, "output")
        if not immutable(fw):  # mirror in-place changes of the inputs, as the caller's own arrays would show
            for k in ("input", "weight", "bias"):
                if k in native:
                    self._write_back(a[k], native[k], always=False)
        if s.has_running_stats:  # in eval too: a layer that updates its buffers in eval shows it
            for k, t in buffers.items():
                if t is not None and isinstance(a.get(k), np.ndarray):
                    self._write_back(a[k], t, always=True, name=k)
        if self._pending is not None:  # the layer continues if the next call carries these buffers on
            key, layer = self._pending
            self._last = (key, layer, a["running_mean"].copy(), a["running_var"].copy())
        return y

    def _to_numpy(self, v, what: str) -> np.ndarray:
        fw = self.framework
        if not owns(fw, v):
            got = "None" if v is None else type(v).__module__.split(".")[0] + "." + type(v).__qualname__
            raise BadOutput(f"the target's {what} is {got}, not a {array_name(fw)}")
        return np.asarray(adapter(fw).to_numpy(v))

    def _write_back(self, buf: np.ndarray, t, *, always: bool, name: str = "") -> None:
        new = self._to_numpy(t, name or "array")
        if new.shape != buf.shape:
            if always:
                raise BadOutput(f"the target's {name} has shape {new.shape}, expected {buf.shape}")
            return
        if always or not np.array_equal(new, buf, equal_nan=True):
            buf[...] = new.astype(buf.dtype, copy=False)

    def _invoke(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        if self.form == "module":
            if self.driver is not None:
                return self._invoke_driven(a, native)
            if self.ctor is None or self.ctor.mode == "reference":
                return self._invoke_module_reference(a, native, grad=grad)
            return self._invoke_module(a, native, grad=grad)
        s = self.spec
        call = [native[p] if p in native else a[p] for p in s.param_names]
        out = self._call_function(call)
        buffers = {k: native.get(k) for k in ("running_mean", "running_var")}
        if isinstance(out, tuple | list) and len(out) == 3 and s.has_running_stats:
            out, rm, rv = out  # (y, new_running_mean, new_running_var): the immutable-array convention
            buffers = {"running_mean": rm, "running_var": rv}
        elif immutable(self.framework):
            buffers = {}  # nothing can have changed in place
        return out, buffers

    def _call_function(self, call: list):
        """A function target called positionally: compiled as its framework's users run it
        (:meth:`normcheck.adapters.Adapter.compiled_function`, JAX's ``jax.jit``; shapes, group
        counts and flags static, arrays and floats traced; floats static where the function needs
        them constant), unless ``eager``; a function the compiler cannot trace (Python control flow
        on a traced value) runs op by op from then on, with a note."""
        ad = adapter(self.framework)
        while not self.eager:
            kinds = (*_STATIC, float, np.floating) if self._floats_static else _STATIC
            static = tuple(i for i, v in enumerate(call) if isinstance(v, kinds))
            key = (self.framework, static)  # copies tried as other frameworks (inference) share the dict
            fn = self._compiled.get(key)
            if fn is None:
                fn = ad.compiled_function(self.obj, static)
                if fn is None:
                    self.eager = True
                    break
                self._compiled[key] = fn
            try:
                return fn(*(tuple(v) if isinstance(v, list) else v for v in call))
            except Exception as e:
                if self._tracing or not ad.untraceable(e):
                    raise
                if self._floats_static:
                    self.eager = True
                    self.notes.append(f"runs op by op: its framework's compiler cannot trace it ({first_line(e)})")
                # eps and momentum closed over by a custom derivative rule must be constants: compile
                # them in (a program per value) before giving up on compiling
                self._floats_static = True
        return self.obj(*call)

    # --- module targets ----------------------------------------------------------------------------
    def construct(self, c: Canon, dtype: str, shape: tuple[int, ...] | None = None):
        """(a new layer for ``c``, the call that built it); ConstructionError names the call. An
        ecosystem's layer is built by its driver, for inputs of ``shape`` (its parameters' shapes)."""
        args, kwargs = self.ctor.call(c, dtype)
        desc = self.ctor.describe(args, kwargs)
        try:
            if self.driver is not None:
                return self.driver.build(self.obj, args, kwargs, shape, dtype=dtype, norm=self.norm), desc
            return self.obj(*args, **kwargs), desc
        except Exception as e:
            raise ConstructionError(f"{desc} raised {first_line(e)}") from e

    def _invoke_driven(self, a: dict[str, Any], native: dict[str, Any]):
        """An ecosystem's layer (:attr:`driver`): built once per constructor call and input shape,
        its parameters and running buffers given functionally on every call (so the gradient path
        differentiates the arrays it passes)."""
        s, fw, ctor, info = self.spec, self.framework, self.ctor, self.layer
        shape = tuple(np.shape(a["input"]))
        c = canon(s, a, shape)
        use_batch = module_flag(s, a)
        self._check_pins(c, use_batch)
        if c.track and not self.running_stats:
            raise unsupported(f"{ctor.name} keeps no running statistics")
        xdt = np.asarray(a["input"]).dtype.name
        args, kwargs = ctor.call(c, xdt)
        key = (repr(args), repr(sorted(kwargs.items())), shape, xdt)
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = self.construct(c, xdt, shape)[0]
        params = {}
        for k, fill in (("weight", 1.0), ("bias", 0.0)):
            attr, t = info.params.get(k), native.get(k)
            if attr is None:
                if t is not None:
                    raise unsupported(f"{ctor.name} has no {k}")
                continue
            cur = get(built, attr)
            if t is None and is_array(cur):
                t = filled(cur, fill, fw, xdt)
            params[attr] = t
        buffers = {k: native[k] for k in ("running_mean", "running_var")} if c.track else None
        return self.driver.run(built, native["input"], params, buffers, training=use_batch, momentum=c.momentum)

    def _check_pins(self, c: Canon, training: bool) -> None:
        """A case the user-fixed constructor values cannot express is unsupported (a skip)."""
        for k, v in self.ctor.canon_pins.items():
            if k == "normalized_shape":
                got = c.normalized_shape
                ok = got is not None and len(got) == len(v) and all(p is None or p == g for p, g in zip(v, got))
            elif k in ("eps", "momentum"):
                got = c.eps if k == "eps" else c.momentum
                if got is None or (k == "momentum" and not (c.track and training)):
                    continue
                ok = v is not None and np.isclose(float(got), float(v), rtol=1e-12, atol=0)
            else:
                got = c.C if k == "C" else c.G
                ok = got == v
            if not ok:
                raise unsupported(f"{self.ctor.name}'s {k} is fixed at {v}; the case has {got}")

    def _invoke_module(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        """Build (or carry on) the layer for this call and call it. ``grad`` (the gradient path,
        :meth:`native_call`): always a fresh layer, which never becomes the carried-on instance, its
        weight and bias the given grad-requiring arrays."""
        s, fw, ctor, info = self.spec, self.framework, self.ctor, self.layer
        shape = np.shape(a["input"])
        c = canon(s, a, shape)
        use_batch = module_flag(s, a)
        self._check_pins(c, use_batch)
        if c.track and not self.running_stats:
            raise unsupported(f"{ctor.name} keeps no running statistics")
        if c.track and use_batch and "momentum" in self.unknown:
            raise unsupported(
                f"{ctor.name} takes no momentum and keeps none in an attribute: its running-statistics update "
                "cannot be predicted (pin it with --arg momentum=M)"
            )
        from normcheck import dtypes as _dtypes

        xdt = np.asarray(a["input"]).dtype.name
        # 16-bit input with the canonical float32 running buffers: the parameters stay float32 with them
        # (the mixed-precision layout, the only one torch's batch-norm kernels accept); otherwise the
        # layer follows the case's dtype, as module.to(dtype) does
        pdt = "float32" if c.track and _dtypes.is_16bit(xdt) else xdt
        args, kwargs = ctor.call(c, xdt)
        key = (repr(args), repr(sorted(kwargs.items())), pdt)
        last, layer = self._last, None
        if c.track and not grad and last is not None and last[0] == key:
            if _same(last[2], a["running_mean"]) and _same(last[3], a["running_var"]):
                layer = last[1]  # the same instance carries on: train -> eval as in a training loop
        fresh = layer is None
        if fresh:
            if not grad:
                self._last = None
            layer, _ = self.construct(c, xdt)
            cast_layer(layer, fw, pdt)
        for k, attr in self.set_attrs.items():  # settings the constructor does not take
            v = c.eps if k == "eps" else c.momentum  # eps=None: the layer's own; momentum=None: cumulative
            if (v is not None or k == "momentum") and get(layer, attr) != v:
                set_path(layer, attr, v)
        for k, fill in (("weight", 1.0), ("bias", 0.0)):
            attr = info.params.get(k)
            t = native.get(k)
            if attr is None:
                if t is not None:
                    raise unsupported(f"{ctor.name} has no {k}")
                continue
            if t is None:
                cur = get(layer, attr)
                if not is_array(cur):
                    continue
                t = filled(cur, fill, fw, pdt)
            put(layer, fw, attr, t, pdt, grad=grad and native.get(k) is not None)
        if fresh and c.track:
            for k, attr in info.buffers.items():
                put(layer, fw, attr, native[k])  # as the case gives them
        adapter(fw).train(layer, use_batch)
        out = layer(x := native["input"])
        del x
        buffers = {k: get(layer, attr) for k, attr in info.buffers.items()} if c.track else {}
        if c.track and not grad:
            self._pending = (key, layer)
        return out, buffers

    def _invoke_module_reference(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        """A module of a norm from a new spec file: built with the reference's keyword arguments."""
        s, fw = self.spec, self.framework
        kw = {k: a[k] for k in s.param_names if k not in ("input", *ARRAY_ARGS) and k not in s.extra_arrays}
        layer = self.obj(**kw)
        set_values(
            layer,
            fw,
            grad=grad,
            **{k: native.get(k) for k in ("weight", "bias", "running_mean", "running_var")},
        )
        use_batch = module_flag(s, a)
        adapter(fw).train(layer, use_batch)
        out = layer(native["input"])
        track = native.get("running_mean") is not None
        buffers = {k: getattr(layer, k, None) for k in ("running_mean", "running_var")} if track else {}
        return out, buffers

    # --- the gradient path ----------------------------------------------------------------------------
    def native_call(self, args: dict[str, Any], *, meta: dict[str, Any] | None = None):
        """Call the target with NATIVE arrays and return its native output (the output array, not
        converted, not under ``no_grad``): what the adapters' autodiff differentiates
        (:meth:`normcheck.adapters.Adapter.target_vjp`).

        ``args``: the canonical arguments (defaults applied), the arrays to differentiate as the
        framework's own (torch leaves that require grad, JAX tracers, watched TensorFlow tensors);
        NumPy arrays left among them (running buffers) are converted as :meth:`__call__` converts
        them. ``meta``: the same call's NumPy arguments, whose shapes, dtypes and flags a module
        target's construction reads (by default converted from ``args``, which a traced array cannot
        be). A function target is called positionally (of a ``(y, running_mean, running_var)``
        return, ``y``); a module target is built as :meth:`__call__` builds it, but always as a fresh
        layer that no later call carries on, with its weight and bias the given arrays themselves (a
        torch parameter that requires grad, or their differentiable cast or reshape), so the
        gradients reach the caller's leaves. A Keras or flax.linen layer class is differentiated by
        its adapter, not through this method (Unsupported). Runs in the calling thread: call it
        inside ``self.guard.call`` (torch's grad mode and TensorFlow's tape are per thread).
        """
        if self.adapted is not None:
            raise unsupported("a Keras/flax.linen layer class is differentiated by its framework's adapter")
        fw = self.framework
        ad = adapter(fw)
        native: dict[str, Any] = {}
        for k in ("input", *ARRAY_ARGS):
            v = args.get(k)
            if isinstance(v, np.ndarray | np.generic):
                native[k] = ad.to_native(np.asarray(v))
            elif v is not None:
                native[k] = v
        if meta is None:
            meta = {k: ad.to_numpy(v) if k in native and not isinstance(v, np.ndarray) else v for k, v in args.items()}
        out, _ = self._invoke(meta, native, grad=True)
        return out

    # --- the cases it is checked on (normcheck.target.constraints, normcheck.target.probes) ----------
    def ranks(self) -> tuple[int, ...]:
        """The input ranks the drawn cases may have."""
        return constraints.ranks(self)

    def case_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`normcheck.strategies.cases` for this target's constraints."""
        return constraints.case_options(self)

    def strategy(self, dtype: str, axes=None):
        """The Hypothesis strategy of cases for ``dtype`` (None: the audit's default suffices)."""
        return constraints.strategy(self, dtype, axes)

    def probe_case(self, dtype: str = "float32", rank: int | None = None, *, buffers: bool = False, ns_len: int = 1):
        """A small fixed case within the constraints (training mode; None if ``rank`` cannot fit them)."""
        return probes.probe_case(self, dtype, rank, buffers=buffers, ns_len=ns_len)
