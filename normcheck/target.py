"""Load a user's norm implementation ("the target") and call it with the canonical convention.

``normcheck check TARGET`` and :func:`normcheck.check` accept

- ``package.module:attr`` (imported with :mod:`importlib`), or ``path/to/file.py:attr`` (loaded
  from the file, with the file's own folder on ``sys.path`` while it loads, as a script would
  expect); ``attr`` may be dotted (``module:Class.method``);
- a **function** with the canonical signature of its norm (the ``torch.nn.functional`` one, as
  :mod:`normcheck.reference`), taking and returning arrays of its framework. Arguments are passed
  positionally in the canonical order, so parameter names are free. Torch-convention running
  buffers are updated in place; a JAX/TensorFlow function (immutable arrays) may instead return
  ``(y, new_running_mean, new_running_var)``;
- a **module** class, constructed like the ``torch.nn`` layer for each case
  (``MyGroupNorm(num_groups, num_channels, eps=..., affine=...)``, see :data:`CONSTRUCTORS`), with
  its ``weight``/``bias``/``running_mean``/``running_var`` set from the case and ``train()`` /
  ``eval()`` driven by normcheck. torch-style modules (and duck-typed classes of other frameworks
  with the same constructor and attributes) are supported, and so are a **Keras layer** class
  constructed like the ``keras.layers`` layer and a **flax.linen module** class constructed like the
  ``flax.linen`` one: those are built, given their variables and called in train/eval by the
  framework's adapter, exactly as the native layer is (``flax.nnx`` classes are not yet).

:func:`wrap` turns the target into a :class:`Target`, a callable with the canonical NumPy
convention of :mod:`normcheck.adapters.base` (NumPy in, NumPy out, buffers updated in place), so
every property of :mod:`normcheck.properties` can drive it. Every call runs in a worker thread
under a per-call timeout (:class:`Guard`); after one call hangs, every later call raises
:class:`TargetHung` at once (a hung thread cannot be killed: it is abandoned, as a daemon).
In-place modifications of the input, weight or bias are copied back into the NumPy arrays the
call was given, so the ``contracts`` property sees them.

Framework inference (:func:`infer_framework`) never imports a framework: it tries the frameworks
already in ``sys.modules`` (those the target's module names first) on a small float32 case and
picks the one whose array type the target returns.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import queue
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normcheck import spec as _spec

__all__ = [
    "CONSTRUCTORS",
    "BadOutput",
    "Guard",
    "Target",
    "TargetError",
    "TargetHung",
    "infer_framework",
    "load",
    "wrap",
]

FORMS = ("function", "module")
DEFAULT_TIMEOUT = 5.0

#: How a module target is constructed for each norm: the ``torch.nn`` constructor conventions.
CONSTRUCTORS = {
    "batch_norm": "cls(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)",
    "instance_norm": "cls(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)",
    "group_norm": "cls(num_groups, num_channels, eps=eps, affine=affine)",
    "layer_norm": "cls(normalized_shape, eps=eps, elementwise_affine=affine)",
    "rms_norm": "cls(normalized_shape, eps=eps, elementwise_affine=affine)",
}


class TargetError(Exception):
    """The target cannot be loaded or used (one line, for the user; the CLI exits 2)."""


class TargetHung(Exception):
    """A call of the target did not return within the timeout (later calls are not made)."""


class BadOutput(Exception):
    """The target returned something that is not an array of its framework."""


# --- loading ---------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _is_file_ref(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or os.sep in ref


_loaded_files: dict[str, types.ModuleType] = {}


def _load_file(ref: str) -> types.ModuleType:
    path = Path(ref).expanduser()
    if not path.is_file():
        raise TargetError(f"file not found: {ref}")
    path = path.resolve()
    key = str(path)
    if key in _loaded_files:
        return _loaded_files[key]
    name = "_normcheck_target_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"{name}_{len(_loaded_files)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {ref} as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses, pickling and the like look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # the user's file raised while loading (SystemExit included)
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TargetError(f"could not load {ref}: {_first_line(e)}") from e
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    _loaded_files[key] = module
    return module


def _import(modname: str) -> types.ModuleType:
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name and (modname == e.name or modname.startswith(e.name + ".")):
            raise TargetError(f"no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from e
        raise TargetError(f"could not import {modname}: {_first_line(e)}") from e
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TargetError(f"could not import {modname}: {_first_line(e)}") from e


def load(ref: str) -> Any:
    """The object ``ref`` names: ``package.module:attr`` or ``path/to/file.py:attr``.

    Raises :class:`TargetError` (one line) when the reference is malformed, the file is missing,
    the import fails (naming the module and the exception's first line), the attribute is missing
    or the object is not callable.
    """
    if not isinstance(ref, str) or ":" not in ref:
        raise TargetError(f"TARGET must be 'package.module:attr' or 'path/to/file.py:attr', got {ref!r}")
    where, _, attr = ref.rpartition(":")
    if not where or not attr:
        raise TargetError(f"TARGET must be 'package.module:attr' or 'path/to/file.py:attr', got {ref!r}")
    module = _load_file(where) if _is_file_ref(where) else _import(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            owner = where if obj is module else f"{where}:{attr.rsplit('.', 1)[0]}"
            raise TargetError(f"{owner} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TargetError(f"{ref} is not callable (it is a {type(obj).__name__})")
    return obj


def describe(obj: Any) -> str:
    """A short name for a target object: ``module:qualname``."""
    mod = getattr(obj, "__module__", None) or "?"
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    for path, m in _loaded_files.items():
        if m.__name__ == mod:
            return f"{Path(path).name}:{qual}"
    return f"{mod}:{qual}"


# --- the per-call timeout ----------------------------------------------------------------------


class _Job:
    __slots__ = ("args", "done", "error", "fn", "kwargs", "value")

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.value = self.error = None


class Guard:
    """Runs calls in one daemon worker thread with a per-call timeout (``None`` or 0: no thread).

    After a call times out, ``hung`` holds a message and every later call raises
    :class:`TargetHung` immediately: the abandoned thread cannot be killed, only left behind.
    """

    def __init__(self, timeout: float | None = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.hung: str | None = None
        self._queue: queue.SimpleQueue | None = None

    def _worker(self, q):
        while True:
            job = q.get()
            try:
                with np.errstate(all="ignore"):
                    job.value = job.fn(*job.args, **job.kwargs)
            except Exception as e:
                job.error = e
            except BaseException as e:  # SystemExit and the like must not escape as such
                job.error = RuntimeError(f"the target raised {_first_line(e)}")
            finally:
                job.done.set()

    def call(self, fn, *args, **kwargs):
        if self.hung:
            raise TargetHung(self.hung)
        if not self.timeout:
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._worker, args=(self._queue,), daemon=True, name="normcheck-target").start()
        job = _Job(fn, args, kwargs)
        self._queue.put(job)
        if not job.done.wait(self.timeout):
            self.hung = (
                f"the target did not return within {self.timeout:g} s (per-call timeout); the call was "
                "abandoned in a background thread, which cannot be killed, and the target was not called again"
            )
            self._queue = None  # the worker is stuck: never hand it another job
            raise TargetHung(self.hung)
        if job.error is not None:
            raise job.error
        return job.value


# --- frameworks --------------------------------------------------------------------------------

# The frameworks a *target* (your implementation) may be written in. onnxruntime is an audited
# engine (normcheck.adapters.FRAMEWORKS) but not a target framework: ORT runs ONNX graphs, not
# Python functions over its own array type.
TARGET_FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
_FRAMEWORK_MODULES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}
_IMMUTABLE = ("jax", "tensorflow")


def _adapter(fw: str):
    from normcheck import adapters

    return adapters.get(fw)


def _owns(fw: str, y) -> bool:
    if fw == "numpy":
        return isinstance(y, np.ndarray | np.generic)
    return _FRAMEWORK_MODULES[fw] in sys.modules and _adapter(fw).owns(y)


def _array_name(fw: str) -> str:
    return {"numpy": "numpy.ndarray", "torch": "torch.Tensor", "jax": "jax.Array", "tensorflow": "tf.Tensor"}[fw]


def _named_frameworks(obj) -> list[str]:
    """Frameworks the target's defining module refers to (module objects or their callables)."""
    mod = sys.modules.get(getattr(obj, "__module__", "") or "")
    names = list(vars(mod).values()) if mod is not None else []
    found = []
    for v in names:
        top = v.__name__ if isinstance(v, types.ModuleType) else getattr(v, "__module__", None)
        top = (top or "").split(".")[0]
        if top in ("flax", "jaxlib"):
            top = "jax"
        if top == "keras":
            top = "tensorflow"
        if top in _FRAMEWORK_MODULES and top not in found:
            found.append(top)
    return found


def _loaded_frameworks() -> list[str]:
    return [fw for fw in TARGET_FRAMEWORKS if _FRAMEWORK_MODULES[fw] in sys.modules]


def _module_kind(obj) -> str | None:
    """'torch' for a torch.nn.Module subclass, 'keras' for a Keras layer class, 'flax' for a
    flax.linen.Module class, 'nnx' for a flax.nnx.Module class (not driven yet)."""
    if not inspect.isclass(obj):
        return None
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(obj, torch.nn.Module):
        return "torch"
    for modname, attrs, kind in (
        ("keras", ("Layer",), "keras"),
        ("flax.linen", ("Module",), "flax"),
        ("flax.nnx", ("Module",), "nnx"),
    ):
        m = sys.modules.get(modname)
        if m is None:
            continue
        base = m.layers if modname == "keras" and hasattr(m, "layers") else m
        for a in attrs:
            cls = getattr(base, a, None)
            if isinstance(cls, type) and issubclass(obj, cls):
                return kind
    return None


# --- calling -----------------------------------------------------------------------------------

_ARRAY_ARGS = ("weight", "bias", "running_mean", "running_var")


@functools.cache
def _signature(norm: str) -> inspect.Signature:
    from normcheck import reference

    return inspect.signature(reference.function(norm))


def _resolved(s: _spec.Spec, args, kwargs) -> dict[str, Any]:
    bound = _signature(s.name).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _module_flag(s: _spec.Spec, a: dict[str, Any]) -> bool:
    return bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True


@dataclass
class Target:
    """A user's norm implementation behind the canonical NumPy convention (see module docstring)."""

    obj: Any
    norm: str
    framework: str
    form: str
    label: str
    guard: Guard = field(default_factory=lambda: Guard(DEFAULT_TIMEOUT))
    notes: list[str] = field(default_factory=list)
    # a Keras/flax.linen layer class behind its adapter's canonical NumPy function (module form)
    adapted: Any = None

    @property
    def spec(self) -> _spec.Spec:
        return _spec.get(self.norm)

    @property
    def hung(self) -> str | None:
        return self.guard.hung

    def __call__(self, *args, **kwargs) -> np.ndarray:
        a = _resolved(self.spec, args, kwargs)
        return self.guard.call(self._run, a)

    # the body runs in the worker thread
    def _run(self, a: dict[str, Any]) -> np.ndarray:
        if self.adapted is not None:  # the adapter builds the layer, sets its variables, translates
            return np.asarray(self.adapted(**a))
        s, fw = self.spec, self.framework
        ad = _adapter(fw)
        native = {}
        for k in ("input", *_ARRAY_ARGS):
            v = a.get(k)
            if isinstance(v, np.ndarray | np.generic):
                native[k] = ad.to_native(np.asarray(v))
        if fw == "torch":
            import torch

            with torch.no_grad():
                out, buffers = self._invoke(a, native)
        else:
            out, buffers = self._invoke(a, native)
        y = self._to_numpy(out, "output")
        if fw not in _IMMUTABLE:  # mirror in-place changes of the inputs, as the caller's own arrays would show
            for k in ("input", "weight", "bias"):
                if k in native:
                    self._write_back(a[k], native[k], always=False)
        if _module_flag(s, a) and s.has_running_stats:
            for k, t in buffers.items():
                if t is not None and isinstance(a.get(k), np.ndarray):
                    self._write_back(a[k], t, always=True, name=k)
        return y

    def _to_numpy(self, v, what: str) -> np.ndarray:
        fw = self.framework
        if not _owns(fw, v):
            got = "None" if v is None else type(v).__module__.split(".")[0] + "." + type(v).__qualname__
            raise BadOutput(f"the target's {what} is {got}, not a {_array_name(fw)}")
        return np.asarray(_adapter(fw).to_numpy(v))

    def _write_back(self, buf: np.ndarray, t, *, always: bool, name: str = "") -> None:
        new = self._to_numpy(t, name or "array")
        if new.shape != buf.shape:
            if always:
                raise BadOutput(f"the target's {name} has shape {new.shape}, expected {buf.shape}")
            return
        if always or not np.array_equal(new, buf, equal_nan=True):
            buf[...] = new.astype(buf.dtype, copy=False)

    def _invoke(self, a: dict[str, Any], native: dict[str, Any]):
        if self.form == "module":
            return self._invoke_module(a, native)
        s = self.spec
        call = [native[p] if p in native else a[p] for p in s.param_names]
        out = self.obj(*call)
        buffers = {k: native.get(k) for k in ("running_mean", "running_var")}
        if isinstance(out, tuple | list) and len(out) == 3 and s.has_running_stats:
            out, rm, rv = out  # (y, new_running_mean, new_running_var): the immutable-array convention
            buffers = {"running_mean": rm, "running_var": rv}
        elif self.framework in _IMMUTABLE:
            buffers = {}  # nothing can have changed in place
        return out, buffers

    def _invoke_module(self, a: dict[str, Any], native: dict[str, Any]):
        s, fw, x = self.spec, self.framework, native["input"]
        shape = np.shape(a["input"])
        w, b = native.get("weight"), native.get("bias")
        affine = w is not None or b is not None
        ad = _adapter(fw)
        if affine and w is None:
            w = ad.to_native(np.ones(np.shape(a["bias"]), np.asarray(a["bias"]).dtype))
        if affine and b is None and s.has_bias:
            b = ad.to_native(np.zeros(np.shape(a["weight"]), np.asarray(a["weight"]).dtype))
        rm, rv = native.get("running_mean"), native.get("running_var")
        track = rm is not None and rv is not None
        use_batch = _module_flag(s, a)
        if fw == "torch" and s.name == "batch_norm" and track and affine:
            import torch

            if x.dtype in (torch.float16, torch.bfloat16) and rm.dtype == torch.float32:
                w, b = (None if t is None else t.to(torch.float32) for t in (w, b))  # torch's CPU kernel needs this
        eps = a.get("eps")
        n = s.name
        if n in ("batch_norm", "instance_norm"):
            m = a.get("momentum")
            momentum = float(s.running_stats["momentum_default"] if m is None else m)
            layer = self.obj(int(shape[1]), eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
        elif n == "group_norm":
            layer = self.obj(int(a["num_groups"]), int(shape[1]), eps=eps, affine=affine)
        elif n in ("layer_norm", "rms_norm"):
            ns = a["normalized_shape"]
            ns = [int(ns)] if isinstance(ns, int | np.integer) else [int(d) for d in ns]
            layer = self.obj(ns, eps=eps, elementwise_affine=affine)
        else:  # a norm from a new spec file: the reference's keyword arguments
            kw = {k: a[k] for k in s.param_names if k not in ("input", *_ARRAY_ARGS)}
            layer = self.obj(**kw)
        _set(layer, fw, weight=w, bias=b if s.has_bias else None, running_mean=rm, running_var=rv)
        if hasattr(layer, "train") and callable(layer.train):
            layer.train(use_batch)
        else:
            layer.training = use_batch
        out = layer(x)
        buffers = {k: getattr(layer, k, None) for k in ("running_mean", "running_var")} if track else {}
        return out, buffers


def _set(layer, fw: str, **values) -> None:
    """Put parameters and buffers into a freshly built layer (None values are left alone)."""
    for k, t in values.items():
        if t is None:
            continue
        if fw == "torch":
            import torch

            if k in getattr(layer, "_parameters", {}):
                setattr(layer, k, torch.nn.Parameter(t, requires_grad=False))
                continue
            if k in getattr(layer, "_buffers", {}):
                layer._buffers[k] = t
                continue
        setattr(layer, k, t)


# --- wrapping ----------------------------------------------------------------------------------


def _probe_case(norm: str):
    from normcheck.case import fixed_cases

    return fixed_cases(norm, "float32")[0]


def infer_framework(obj, norm: str, *, form: str = "function", guard: Guard | None = None) -> tuple[str, str]:
    """(framework, how it was decided) for a target, importing no framework.

    A torch.nn.Module subclass is torch. Otherwise the frameworks already imported (those the
    target's module names first; NumPy first if it is the only one named, else last) are tried on
    one small float32 case; the first whose
    own array type comes back wins. When no call succeeds, the framework the target's module
    names (or NumPy) is assumed, so the check can still report what the target does.
    """
    if form == "module" and _module_kind(obj) == "torch":
        return "torch", "a torch.nn.Module subclass"
    guard = guard or Guard(DEFAULT_TIMEOUT)
    names = _named_frameworks(obj)
    named = [fw for fw in names if fw != "numpy"]
    loaded = [fw for fw in _loaded_frameworks() if fw != "numpy"]
    # the module's own frameworks first; a module that names only NumPy is NumPy code, even when
    # another framework happens to be imported in this process (its arrays may pass through NumPy code)
    first = named or (["numpy"] if "numpy" in names else [])
    order = list(dict.fromkeys([*first, *loaded, "numpy"]))
    case = _probe_case(norm)
    failures = []
    for fw in order:
        t = Target(obj, norm, fw, form, describe(obj), guard=guard)
        try:
            t(case.x.copy(), **case.kwargs())  # a success: the target returned its framework's array type
        except TargetHung:
            break
        except BadOutput as e:
            failures.append(f"{fw}: {e}")
            continue
        except Exception as e:
            failures.append(f"{fw}: raised {_first_line(e)}")
            continue
        return fw, f"it returns a {_array_name(fw)} for {_array_name(fw)} inputs"
    fallback = named[0] if named else "numpy"
    why = "; ".join(failures[:3]) or "the probe call did not return"
    return fallback, f"assumed: no probe call succeeded ({why})"


def wrap(
    obj,
    norm: str,
    *,
    framework: str | None = None,
    form: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    label: str | None = None,
) -> Target:
    """The target ``obj`` (a function or a module class) as a canonical NumPy callable.

    ``form`` defaults to "module" for a class and "function" otherwise; ``framework`` is inferred
    (:func:`infer_framework`) when not given. Raises :class:`TargetError` for what cannot be
    checked: not callable, an unknown norm, framework or form, a framework that is not installed,
    a flax.nnx module class, a torch.nn.Module instance.
    """
    if isinstance(obj, str):
        label = label or obj
        obj = load(obj)
    if not callable(obj):
        raise TargetError(f"the target is not callable (it is a {type(obj).__name__})")
    if norm not in _spec.names():
        raise TargetError(f"unknown norm {norm!r}; known: {', '.join(_spec.names())}")
    if form is None:
        form = "module" if inspect.isclass(obj) else "function"
    if form not in FORMS:
        raise TargetError(f"unknown form {form!r}; choose from {', '.join(FORMS)}")
    if framework is not None and framework not in TARGET_FRAMEWORKS:
        raise TargetError(f"unknown framework {framework!r}; choose from {', '.join(TARGET_FRAMEWORKS)}")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        raise TargetError(
            "the target is a torch.nn.Module instance; point TARGET at its class (module form) "
            "or at a function with the canonical signature"
        )
    kind = _module_kind(obj)
    if form == "module" and kind == "nnx":
        raise TargetError(
            f"flax.nnx layer targets are not supported yet; check a flax.linen module, or wrap the layer in a "
            f"function with the canonical signature of {norm} (see normcheck.reference.{norm})"
        )
    guard = Guard(timeout)
    label = label or describe(obj)
    if form == "module" and kind in _LAYER_FRAMEWORKS:
        return _layer_target(obj, norm, kind, framework, label, guard)
    notes = []
    if framework is None:
        framework, why = infer_framework(obj, norm, form=form, guard=guard)
        notes.append(f"framework {framework} inferred: {why}")
    elif framework != "numpy" and _FRAMEWORK_MODULES[framework] not in sys.modules:
        if not _adapter(framework).available():
            raise TargetError(f"framework {framework} is not installed (pip install 'normcheck[{framework}]')")
    return Target(obj, norm, framework, form, label, guard=guard, notes=notes)


#: Layer classes driven through their framework's adapter: kind -> (framework, the layer it mirrors).
_LAYER_FRAMEWORKS = {"keras": ("tensorflow", "keras.layers"), "flax": ("jax", "flax.linen")}


def _layer_target(obj, norm: str, kind: str, framework: str | None, label: str, guard: Guard) -> Target:
    """A Keras layer or flax.linen module class, constructed and driven like the framework's own
    layer for ``norm`` by its adapter (constructor arguments, variables, momentum, stored variance,
    channel axis and train/eval translated in the adapter's one place)."""
    fw, mirrors = _LAYER_FRAMEWORKS[kind]
    if framework is not None and framework != fw:
        raise TargetError(f"a {kind} layer class is {fw} code, not {framework}")
    if kind == "keras":
        from normcheck.adapters.tensorflow import keras_layer_function as make
    else:
        from normcheck.adapters.jax import linen_layer_function as make
    note = f"a {kind} layer class, built and driven like {mirrors}'s {norm} layer by the {fw} adapter"
    return Target(obj, norm, fw, "module", label, guard=guard, notes=[note], adapted=make(norm, obj))


def repro_setup(target: Target, ref: str | None) -> str:
    """Python lines that rebuild ``fn`` (the wrapped target) for a repro snippet."""
    head = "from normcheck.target import load, wrap"
    args = f"{target.norm!r}, framework={target.framework!r}, form={target.form!r}, timeout=None"
    if ref:
        return f"{head}\nfn = wrap(load({ref!r}), {args})"
    mod = getattr(target.obj, "__module__", None)
    qual = getattr(target.obj, "__qualname__", "")
    if mod and mod != "__main__" and "<" not in qual and not mod.startswith("_normcheck_target_"):
        return f"{head}\nfn = wrap(load({f'{mod}:{qual}'!r}), {args})"
    return f"{head}\nfn = wrap(YOUR_TARGET, {args})  # YOUR_TARGET: the function or class you checked"
