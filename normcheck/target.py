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
- a **module** class, driven the way its users run it (:class:`Constructor`, :func:`wrap`):

  * constructed as its own signature says (``inspect.signature``): the canonical arguments are
    mapped by name and by the aliases real code uses (:data:`ALIASES`: ``hidden_size``, ``dim``,
    ``num_channels``; ``epsilon``, ``variance_epsilon``; ``elementwise_affine``, ``use_bias``...), in
    the torch.nn positional order where names do not say (:data:`ROLE_ORDER`; a class taking only
    ``*args`` is called like the torch.nn layer, :data:`CONSTRUCTORS`). ``--init`` gives the
    argument list as a template (:data:`PLACEHOLDERS`), ``--arg`` pins values (a pinned canonical
    argument is fixed in the drawn cases too). A constructor that cannot be called is a
    :class:`TargetError` naming the call tried. eps=None (the default) passes no eps where the
    constructor has a default, and the cases then use that default; eps, momentum or a group count
    the constructor does not take are read from the built layer's attributes and pinned;
  * its ``weight``/``bias`` (or ``scale``/``gamma``/``beta``, :data:`PARAM_ATTRS`) and
    ``running_mean``/``running_var`` are set from the case; the layer follows the case's dtype as
    ``module.to(dtype)`` does, except that with the canonical float32 running buffers of a 16-bit
    case its parameters stay float32 with them (the mixed-precision layout; torch's batch-norm
    kernels accept no other); ``train()``/``eval()`` is driven by normcheck, under ``no_grad``;
  * one instance carries on across calls that continue each other (the buffers passed in are the
    ones the previous call left): a state property's train -> eval sequence sees buffer updates in
    eval, a ``num_batches_tracked`` that never moves, statistics chosen by grad mode;
  * the ranks it accepts are inferred (a class name ending in 1d/2d/3d, else one small call per
    rank), unless ``--rank``/``--shape`` say; a restriction is a note, never a deviation.

  torch-style modules (and duck-typed classes of other frameworks with the same attributes) are
  driven so; a **Keras layer** class and a **flax.linen module** class are constructed like the
  framework's own layer and driven by the framework's adapter, exactly as the native layer is
  (``flax.nnx`` classes are not yet).

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

import contextlib
import dataclasses
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
    "ALIASES",
    "CONSTRUCTORS",
    "PLACEHOLDERS",
    "BadOutput",
    "Canon",
    "ConstructionError",
    "Constructor",
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

#: The ``torch.nn`` constructor conventions: how a module class taking only ``*args`` is called.
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


# --- module targets: the constructor call, from the class's own signature -------------------------

#: Constructor parameter names real code uses for each canonical argument ("role"), most common first.
ALIASES: dict[str, tuple[str, ...]] = {
    "features": (
        "num_features", "num_channels", "normalized_shape", "hidden_size", "dim", "d_model", "channels",
        "features", "n_embd", "size", "ndim", "embed_dim", "hidden_dim", "n_channels", "in_channels",
        "n_features", "n_state", "width", "c", "C",
    ),
    "groups": ("num_groups", "groups", "G", "n_groups", "num_group", "group_num", "ngroups", "g"),
    "eps": (
        "eps", "epsilon", "variance_epsilon", "layer_norm_eps", "norm_eps", "rms_norm_eps", "layer_norm_epsilon",
    ),
    "momentum": ("momentum", "bn_momentum"),
    "track": ("track_running_stats", "track_stats"),
    "affine": ("affine", "elementwise_affine", "learnable", "use_affine", "elementwise_scale_and_shift"),
    "weight": ("use_weight", "use_scale", "with_scale", "scale", "weight"),  # bool flags only
    "bias": ("use_bias", "with_bias", "bias", "center", "add_bias"),  # bool flags only
}  # fmt: skip

#: The torch.nn positional order of the roles, for parameters whose names do not say.
ROLE_ORDER: dict[str, tuple[str, ...]] = {
    "batch_norm": ("features", "eps", "momentum", "affine", "track"),
    "instance_norm": ("features", "eps", "momentum", "affine", "track"),
    "group_norm": ("groups", "features", "eps", "affine"),
    "layer_norm": ("features", "eps", "affine"),
    "rms_norm": ("features", "eps", "affine"),
}

#: ``--init`` placeholders and the role each fills.
PLACEHOLDERS = {
    "C": "features",
    "normalized_shape": "features",
    "G": "groups",
    "eps": "eps",
    "momentum": "momentum",
    "affine": "affine",
    "bias": "bias",
    "track": "track",
}

#: Attribute names a built layer keeps its parameters, buffers and settings under.
PARAM_ATTRS = {"weight": ("weight", "scale", "gamma", "g"), "bias": ("bias", "beta", "shift", "offset", "b")}
BUFFER_ATTRS = {
    "running_mean": ("running_mean", "moving_mean"),
    "running_var": ("running_var", "moving_var", "moving_variance"),
}
SETTING_ATTRS = {
    "eps": ("eps", "epsilon", "variance_epsilon", "layer_norm_eps"),
    "momentum": ("momentum",),
    "groups": ("num_groups", "groups", "G", "n_groups"),
}

_EMPTY = inspect.Parameter.empty
_OMIT = object()  # "pass nothing: the layer's own default"


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _annotation_text(p: inspect.Parameter) -> str:
    a = p.annotation
    if a is _EMPTY:
        return ""
    return a if isinstance(a, str) else a.__name__ if isinstance(a, type) else str(a)


def _is_flag(p: inspect.Parameter, *, bare_ok: bool = False) -> bool:
    if isinstance(p.default, bool):
        return True
    ann = _annotation_text(p)
    if ann in ("bool", "builtins.bool"):
        return True
    return bare_ok and p.default is _EMPTY and not ann


def _role_of(p: inspect.Parameter, roles: tuple[str, ...]) -> str | None:
    """The canonical argument a constructor parameter names, judged by its name and default."""
    for role in roles:
        names = ALIASES[role]
        if p.name not in names and not (len(p.name) > 1 and p.name.lower() in {n.lower() for n in names if len(n) > 1}):
            continue
        d = p.default
        if role in ("features", "groups"):
            sized = (_is_number(d) and d > 0) or (role == "features" and isinstance(d, tuple | list))
            if _is_flag(p) or not (d is _EMPTY or d is None or sized):
                continue
        elif role == "eps":
            if isinstance(d, bool) or not (d is _EMPTY or d is None or _is_number(d)):
                continue
        elif role in ("affine", "track"):
            if not (_is_flag(p) or d is _EMPTY):
                continue
        elif role in ("weight", "bias"):
            if not _is_flag(p, bare_ok=role == "bias"):
                continue
        return role
    return None


def _parse_template(text: str):
    """``--init``'s argument list, as a compiled ``_call(...)`` expression and the placeholders it uses."""
    import ast
    import re

    used: list[str] = []

    def sub(m):
        name = m.group(1)
        if name not in PLACEHOLDERS:
            raise TargetError(
                f"--init: unknown placeholder {{{name}}}; known: {', '.join('{' + k + '}' for k in PLACEHOLDERS)}"
            )
        used.append(name)
        return f"__nc_{name}"

    body = re.sub(r"\{(\w*)\}", sub, text)
    try:
        tree = ast.parse(f"_call({body})", mode="eval")
    except SyntaxError as e:
        raise TargetError(f"--init: {text!r} is not a Python argument list ({e.msg})") from None
    call = tree.body
    if (
        not isinstance(call, ast.Call)
        or any(isinstance(a, ast.Starred) for a in call.args)
        or any(k.arg is None for k in call.keywords)
    ):
        raise TargetError(f"--init: {text!r} must be plain positional and keyword arguments (no * or **)")
    return tree, call, compile(tree, "<--init>", "eval"), tuple(dict.fromkeys(used))


_TEMPLATE_BUILTINS = {"tuple": tuple, "list": list, "int": int, "float": float, "bool": bool, "str": str}


@dataclass(frozen=True)
class Canon:
    """The canonical constructor arguments of one call: what a torch.nn layer would be built with."""

    C: int | None
    G: int | None
    normalized_shape: tuple[int, ...] | None
    eps: Any  # a float, or None: the layer's default
    momentum: Any  # a float, or None: the cumulative average
    weight: bool
    bias: bool
    track: bool

    @property
    def affine(self) -> bool:
        return self.weight or self.bias


class Constructor:
    """How a module target is constructed for a :class:`Canon`, mapped from its own signature.

    Parameters are mapped to the canonical arguments by name (:data:`ALIASES`), then in the
    torch.nn positional order (:data:`ROLE_ORDER`) for required parameters whose names do not say;
    a class taking only ``*args`` is called like the torch.nn layer. ``init`` (``--init``) replaces
    the mapping with a template; ``pins`` (``--arg``) fix constructor values. Raises
    :class:`TargetError` for a required parameter nothing maps.
    """

    def __init__(self, cls, norm: str, *, init: str | None = None, pins: dict | None = None, axes=None):
        self.cls, self.spec = cls, _spec.get(norm)
        self.name = getattr(cls, "__name__", type(cls).__name__)
        s = self.spec
        roles = ROLE_ORDER.get(norm)
        self.mode = "signature" if roles else "reference"
        if roles and not s.has_running_stats:
            roles = tuple(r for r in roles if r not in ("momentum", "track"))
        self.roles_known = (*(roles or ()), "weight", "bias")
        self.assign: dict[str, str] = {}  # parameter name -> role
        self.fixed: dict[str, Any] = {}  # parameter name -> user-given value
        self.canon_pins: dict[str, Any] = {}  # canonical argument -> value every case must have
        self.flags: dict[str, bool] = {}  # no_bias / no_affine / no_track implied by pins
        self.ns_style = "list"  # how normalized_shape is passed: "int" (one axis) or "list"
        self.features_int = False  # the features parameter takes one size (one normalized axis)
        self.template = None
        self.params: list[inspect.Parameter] = []
        self.var_kw = self.var_pos = False
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            for p in sig.parameters.values():
                if p.kind is p.VAR_POSITIONAL:
                    self.var_pos = True
                elif p.kind is p.VAR_KEYWORD:
                    self.var_kw = True
                else:
                    self.params.append(p)
        if self.mode == "reference":
            return
        if init:
            self._map_template(init)
        elif not self.params and (self.var_pos or sig is None):
            self.mode = "torch"  # (*args, **kwargs): called like the torch.nn layer
        else:
            self._map_signature(roles)
        self._apply_pins(pins or {})
        if axes is not None and "data_format" in self.by_name and "data_format" not in self.fixed:
            red = tuple(sorted(axes))
            if red == (1,):
                self.fixed["data_format"] = "channels_first"  # ConvNeXt's LayerNorm switch
        feat = [n for n, r in self.assign.items() if r == "features"]
        if s.shape_arg == "normalized_shape" and feat:
            p = self.by_name.get(feat[0])
            if feat[0] != "normalized_shape" and self.mode != "template":
                self.features_int = True
            elif p is not None:
                ann = _annotation_text(p).lower()
                if ann and not any(k in ann for k in ("list", "tuple", "sequence", "size", "shape", "iterable")):
                    self.features_int = True  # annotated int
        if self.template is not None and "C" in self.template[3] and s.shape_arg == "normalized_shape":
            self.features_int = True
        if self.features_int:
            self.ns_style = "int"
            self.canon_pins.setdefault("normalized_shape", (None,))
        if self.mode == "signature":
            self._check_required()

    @property
    def by_name(self) -> dict[str, inspect.Parameter]:
        return {p.name: p for p in self.params}

    @property
    def mapped_roles(self) -> set[str]:
        if self.mode == "torch":
            return set(self.roles_known)
        if self.template is not None:
            return {PLACEHOLDERS[k] for k in self.template[3]} | set(self.assign.values())
        return set(self.assign.values())

    def _map_signature(self, roles) -> None:
        for p in self.params:
            role = _role_of(p, self.roles_known)
            if role and role not in self.assign.values():
                self.assign[p.name] = role
        free = [r for r in roles if r not in self.assign.values()]
        for p in self.params:
            if p.name in self.assign or p.default is not _EMPTY or p.kind is p.KEYWORD_ONLY or not free:
                continue
            self.assign[p.name] = free.pop(0)  # positional order where names do not say

    def _map_template(self, text: str) -> None:
        import ast

        tree, call, code, used = _parse_template(text)
        self.template = (tree, call, code, used)
        self.mode = "template"
        for kw in call.keywords:  # a literal keyword that names a canonical argument pins it
            try:
                value = ast.literal_eval(kw.value)
            except ValueError:
                continue
            p = self.by_name.get(kw.arg) or inspect.Parameter(kw.arg, inspect.Parameter.KEYWORD_ONLY)
            role = _role_of(p, self.roles_known)
            if role:
                self._pin_role(role, value, kw.arg)

    def _apply_pins(self, pins: dict) -> None:
        for name, value in pins.items():
            p = self.by_name.get(name)
            if p is not None:  # a constructor parameter: passed as given
                self.fixed[name] = value
                role = self.assign.get(name) or _role_of(p, self.roles_known)
            else:  # a canonical argument (or an alias of one): every case has it, the mapping passes it
                q = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
                role = _canonical_role(name) or _role_of(q, self.roles_known)
                if role is None:
                    if not (self.var_kw or self.mode == "torch"):
                        known = ", ".join(q.name for q in self.params) or "none"
                        raise TargetError(
                            f"--arg {name}: {self.name} has no parameter {name!r} (its parameters: {known})"
                        )
                    self.fixed[name] = value  # through **kwargs
            if role is not None:
                self._pin_role(role, value, name)

    def _pin_role(self, role: str, value, name: str) -> None:
        s = self.spec
        if role == "features":
            if s.shape_arg == "normalized_shape":
                ns = (value,) if _is_number(value) else tuple(value)
                self.canon_pins["normalized_shape"] = tuple(int(v) for v in ns)
            else:
                self.canon_pins["C"] = int(value)
        elif role == "groups":
            self.canon_pins["num_groups"] = int(value)
        elif role == "eps":
            self.canon_pins["eps"] = None if value is None else float(value)
        elif role == "momentum":
            self.canon_pins["momentum"] = None if value is None else float(value)
        elif role in ("affine", "weight") and value is False:
            self.flags["no_affine"] = True
        elif role == "bias" and value is False:
            self.flags["no_bias"] = True
        elif role == "track" and value is False:
            self.flags["no_track"] = True

    def _check_required(self) -> None:
        for p in self.params:
            if p.default is _EMPTY and p.name not in self.assign and p.name not in self.fixed:
                sketch = self.sketch(missing=p.name)
                raise TargetError(
                    f"cannot construct {sketch}: normcheck cannot tell what {p.name!r} is; "
                    f"give it with --arg {p.name}=VALUE or the whole call with --init"
                )

    # --- one call ---------------------------------------------------------------------------------
    def value(self, role: str, c: Canon, p: inspect.Parameter | None, dtype) -> Any:
        s = self.spec
        if role == "features":
            if s.shape_arg == "normalized_shape":
                ns = c.normalized_shape or ()
                if self.features_int or (p is not None and p.name != "normalized_shape"):
                    if len(ns) != 1:
                        raise _unsupported(f"{self.name} takes one normalized size, the case has {list(ns)}")
                    return int(ns[0])
                return int(ns[0]) if self.ns_style == "int" and len(ns) == 1 else list(ns)
            return c.C
        if role == "groups":
            return c.G
        if role == "eps":
            if c.eps is None:
                if p is not None and p.default is not _EMPTY:
                    return _OMIT
                return s.resolve_eps(None, dtype)
            return float(c.eps)
        if role == "momentum":
            return c.momentum
        if role == "track":
            return c.track
        if role == "affine":
            return c.affine
        if role == "weight":
            return c.affine
        if role == "bias":
            return c.bias
        raise AssertionError(role)

    def call(self, c: Canon, dtype) -> tuple[list, dict]:
        """(args, kwargs) of the constructor call for ``c``."""
        if self.mode == "torch":
            return self._torch_call(c, dtype)
        if self.mode == "template":
            return self._template_call(c, dtype)
        args: list = []
        kwargs: dict = {}
        for p in self.params:
            if p.name in self.fixed:
                v = self.fixed[p.name]
            elif p.name in self.assign:
                v = self.value(self.assign[p.name], c, p, dtype)
            else:
                v = _OMIT
            if p.kind is p.POSITIONAL_ONLY:
                if v is _OMIT:
                    if p.default is _EMPTY:
                        raise TargetError(f"cannot construct {self.sketch(missing=p.name)}: no value for {p.name!r}")
                    v = p.default
                args.append(v)
            elif v is not _OMIT:
                kwargs[p.name] = v
        for k, v in self.fixed.items():  # through **kwargs
            if k not in self.by_name:
                kwargs[k] = v
        return args, kwargs

    def _torch_call(self, c: Canon, dtype) -> tuple[list, dict]:
        s = self.spec
        eps = s.resolve_eps(None, dtype) if c.eps is None and s.name != "rms_norm" else c.eps
        n = s.name
        if n in ("batch_norm", "instance_norm"):
            kw = {"eps": eps, "momentum": c.momentum, "affine": c.affine, "track_running_stats": c.track}
            return [c.C], {**kw, **self.fixed}
        if n == "group_norm":
            return [c.G, c.C], {"eps": eps, "affine": c.affine, **self.fixed}
        ns = c.normalized_shape or ()
        return [list(ns)], {"eps": eps, "elementwise_affine": c.affine, **self.fixed}

    def _template_call(self, c: Canon, dtype) -> tuple[list, dict]:
        _, _, code, used = self.template
        ns = tuple(c.normalized_shape or ())
        feat = c.C if self.spec.shape_arg != "normalized_shape" else (int(ns[0]) if len(ns) == 1 else None)
        if "C" in used and feat is None:
            raise _unsupported(f"{{C}} is one size, the case normalizes over {list(ns)}")
        eps = c.eps
        if eps is None:
            eps = self.template_eps_default()
            eps = self.spec.resolve_eps(None, dtype) if eps is None else eps
        values = {
            "C": feat,
            "normalized_shape": ns,
            "G": c.G,
            "eps": eps,
            "momentum": c.momentum,
            "affine": c.affine,
            "bias": c.bias,
            "track": c.track,
        }
        ns_ = {"_call": lambda *a, **k: (list(a), k), **{f"__nc_{k}": values[k] for k in used}}
        try:
            return eval(code, {"__builtins__": _TEMPLATE_BUILTINS}, ns_)  # the user's own --init text
        except Exception as e:
            raise TargetError(f"--init: could not evaluate the arguments: {_first_line(e)}") from None

    def template_eps_default(self):
        """The default of the parameter ``--init`` passes {eps} to (a float), if the signature says."""
        if self.template is None:
            return None
        for kw in self.template[1].keywords:
            if getattr(kw.value, "id", None) == "__nc_eps":
                p = self.by_name.get(kw.arg)
                if p is not None and _is_number(p.default):
                    return float(p.default)
        return None

    def eps_default(self):
        """The float the layer uses for eps when given none (its signature's default), or None."""
        if self.mode == "template":
            return self.template_eps_default()
        for n, r in self.assign.items():
            if r == "eps" and n not in self.fixed:
                d = self.by_name[n].default
                return float(d) if _is_number(d) else None
        return None

    def describe(self, args, kwargs) -> str:
        parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def sketch(self, *, missing: str | None = None) -> str:
        """The mapped call with role names for values (``RMSNorm(hidden_size=C, eps=eps)``)."""
        if self.mode == "torch":
            return self.name + CONSTRUCTORS.get(self.spec.name, "cls(...)")[3:]
        if self.mode == "template":
            return f"{self.name}({ast_unparse(self.template[1])})"
        words = {"features": "C", "groups": "G", "track": "track_running_stats"}
        if self.spec.shape_arg == "normalized_shape" and not self.features_int:
            words["features"] = "normalized_shape"
        parts = []
        for p in self.params:
            if p.name in self.fixed:
                v = _short(self.fixed[p.name])
            elif p.name in self.assign:
                v = words.get(self.assign[p.name], self.assign[p.name])
            elif p.name == missing:
                v = "?"
            else:
                continue
            parts.append(v if p.kind is p.POSITIONAL_ONLY else f"{p.name}={v}")
        return f"{self.name}({', '.join(parts)})"


def ast_unparse(call) -> str:
    import ast
    import re

    text = ", ".join([ast.unparse(a) for a in call.args] + [f"{k.arg}={ast.unparse(k.value)}" for k in call.keywords])
    return re.sub(r"__nc_(\w+)", r"{\1}", text)


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _canonical_role(name: str) -> str | None:
    """The role of a canonical argument name (``--arg num_groups=4`` for any target)."""
    return {
        "num_groups": "groups",
        "eps": "eps",
        "momentum": "momentum",
        "normalized_shape": "features",
        "num_features": "features",
        "num_channels": "features",
        "C": "features",
        "affine": "affine",
        "bias": "bias",
        "track_running_stats": "track",
    }.get(name)


def _unsupported(msg: str) -> Exception:
    from normcheck.adapters.base import Unsupported

    return Unsupported(msg)


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


def _canon(s: _spec.Spec, a: dict[str, Any], shape) -> Canon:
    ns = a.get("normalized_shape")
    if ns is not None:
        ns = (int(ns),) if isinstance(ns, int | np.integer) else tuple(int(d) for d in ns)
    g = a.get("num_groups")
    return Canon(
        C=int(shape[1]) if len(shape) > 1 else None,
        G=None if g is None else int(g),
        normalized_shape=ns,
        eps=a.get("eps"),
        momentum=a.get("momentum"),
        weight=a.get("weight") is not None,
        bias=a.get("bias") is not None,
        track=a.get("running_mean") is not None and a.get("running_var") is not None,
    )


def _is_array(v) -> bool:
    shape = getattr(v, "shape", None)
    return shape is not None and hasattr(v, "dtype") and len(tuple(shape)) >= 1


def _same(a, b) -> bool:
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
    )


class ConstructionError(Exception):
    """The target's constructor raised (the message names the call tried)."""


@dataclass
class LayerInfo:
    """What a built layer keeps where: attribute names of its parameters, buffers and settings."""

    params: dict[str, str]  # "weight"/"bias" -> attribute
    buffers: dict[str, str]  # "running_mean"/"running_var" -> attribute
    settings: dict[str, str]  # "eps"/"momentum"/"groups" -> attribute
    values: dict[str, Any]  # the sample layer's value of each setting
    call: str  # the sample constructor call


def _inspect_layer(layer, call: str) -> LayerInfo:
    def find(names, ok):
        for n in names:
            try:
                v = getattr(layer, n)
            except Exception:
                continue
            if ok(v):
                return n, v
        return None, None

    params, buffers, settings, values = {}, {}, {}, {}
    for k, names in PARAM_ATTRS.items():
        n, _ = find(names, _is_array)
        if n:
            params[k] = n
    for k, names in BUFFER_ATTRS.items():
        n, _ = find(names, _is_array)
        if n:
            buffers[k] = n
    for k, names in SETTING_ATTRS.items():
        n, v = find(names, lambda v, k=k: _is_number(v) or (k == "momentum" and v is None))
        if n:
            settings[k], values[k] = n, v
    return LayerInfo(params, buffers, settings, values, call)


def _cast_layer(layer, fw: str, dtype: str) -> None:
    """``layer.to(dtype)`` where the framework's layers follow a dtype (torch modules)."""
    drive = _adapter(fw).layer_driving()
    if drive is not None:
        drive.cast(layer, dtype)


def _put(layer, fw: str, attr: str, t, dtype: str | None = None, *, grad: bool = False) -> None:
    """Set ``layer.<attr>`` to ``t`` (cast to ``dtype`` if given, reshaped to the layer's own shape
    where only the shape differs), as the framework's layers hold it (a torch module's parameter
    or buffer). ``grad``: the gradient path (:meth:`Target.native_call`), where a parameter is the
    caller's grad-requiring array itself (or its differentiable cast/reshape)."""
    drive = _adapter(fw).layer_driving()
    if drive is not None:
        if grad:
            drive.put(layer, attr, t, dtype, grad=True)
        else:
            drive.put(layer, attr, t, dtype)
        return
    cur = getattr(layer, attr, None)
    if _is_array(cur) and tuple(cur.shape) != tuple(t.shape) and int(np.prod(cur.shape)) == int(np.prod(t.shape)):
        t = t.reshape(tuple(cur.shape))
    setattr(layer, attr, t)


def _filled(cur, value: float, fw: str, dtype: str):
    """An array like the layer's parameter ``cur``, filled with ``value``, in ``dtype``."""
    drive = _adapter(fw).layer_driving()
    if drive is not None:
        return drive.full(tuple(cur.shape), value, dtype)
    from normcheck import dtypes as _dtypes

    return _adapter(fw).to_native(np.full(tuple(cur.shape), value, _dtypes.np_dtype(dtype)))


#: Probe inputs per rank: small, with distinct sides so a layer that broadcasts wrongly raises.
_PROBE_SHAPES = {2: (3, 4), 3: (3, 4, 5), 4: (3, 4, 5, 2), 5: (3, 4, 2, 3, 2)}


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
    _last: Any = field(default=None, repr=False)  # (key, layer, running_mean, running_var) of the last call
    _pending: Any = field(default=None, repr=False)

    @property
    def spec(self) -> _spec.Spec:
        return _spec.get(self.norm)

    @property
    def hung(self) -> str | None:
        return self.guard.hung

    def start_fresh(self) -> None:
        """The next call builds a fresh layer even if it carries on the last call's buffers (a state
        property starting a sequence that assumes a freshly built module: momentum=None's factor
        1 / num_batches_tracked counts from 0)."""
        self._last = None

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
        self._pending = None
        drive = ad.layer_driving()
        with drive.no_grad() if drive is not None else contextlib.nullcontext():
            out, buffers = self._invoke(a, native)
        y = self._to_numpy(out, "output")
        if fw not in _IMMUTABLE:  # mirror in-place changes of the inputs, as the caller's own arrays would show
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

    def _invoke(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        if self.form == "module":
            if self.ctor is None or self.ctor.mode == "reference":
                return self._invoke_module_reference(a, native, grad=grad)
            return self._invoke_module(a, native, grad=grad)
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

    # --- module targets ----------------------------------------------------------------------------
    def _construct(self, c: Canon, dtype: str):
        """(a new layer for ``c``, the call that built it); ConstructionError names the call."""
        args, kwargs = self.ctor.call(c, dtype)
        desc = self.ctor.describe(args, kwargs)
        try:
            return self.obj(*args, **kwargs), desc
        except Exception as e:
            raise ConstructionError(f"{desc} raised {_first_line(e)}") from e

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
                raise _unsupported(f"{self.ctor.name}'s {k} is fixed at {v}; the case has {got}")

    def _invoke_module(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        """Build (or carry on) the layer for this call and call it. ``grad`` (the gradient path,
        :meth:`native_call`): always a fresh layer, which never becomes the carried-on instance, its
        weight and bias the given grad-requiring arrays."""
        s, fw, ctor, info = self.spec, self.framework, self.ctor, self.layer
        shape = np.shape(a["input"])
        c = _canon(s, a, shape)
        use_batch = _module_flag(s, a)
        self._check_pins(c, use_batch)
        if c.track and not self.running_stats:
            raise _unsupported(f"{ctor.name} keeps no running statistics")
        if c.track and use_batch and "momentum" in self.unknown:
            raise _unsupported(
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
            layer, _ = self._construct(c, xdt)
            _cast_layer(layer, fw, pdt)
        for k, attr in self.set_attrs.items():  # settings the constructor does not take
            v = c.eps if k == "eps" else c.momentum  # eps=None: the layer's own; momentum=None: cumulative
            if (v is not None or k == "momentum") and getattr(layer, attr, None) != v:
                setattr(layer, attr, v)
        for k, fill in (("weight", 1.0), ("bias", 0.0)):
            attr = info.params.get(k)
            t = native.get(k)
            if attr is None:
                if t is not None:
                    raise _unsupported(f"{ctor.name} has no {k}")
                continue
            if t is None:
                cur = getattr(layer, attr, None)
                if not _is_array(cur):
                    continue
                t = _filled(cur, fill, fw, pdt)
            _put(layer, fw, attr, t, pdt, grad=grad and native.get(k) is not None)
        if fresh and c.track:
            for k, attr in info.buffers.items():
                _put(layer, fw, attr, native[k])  # as the case gives them
        if hasattr(layer, "train") and callable(layer.train):
            layer.train(use_batch)
        else:
            layer.training = use_batch
        out = layer(x := native["input"])
        del x
        buffers = {k: getattr(layer, attr, None) for k, attr in info.buffers.items()} if c.track else {}
        if c.track and not grad:
            self._pending = (key, layer)
        return out, buffers

    def _invoke_module_reference(self, a: dict[str, Any], native: dict[str, Any], *, grad: bool = False):
        """A module of a norm from a new spec file: built with the reference's keyword arguments."""
        s, fw = self.spec, self.framework
        kw = {k: a[k] for k in s.param_names if k not in ("input", *_ARRAY_ARGS) and k not in s.extra_arrays}
        layer = self.obj(**kw)
        _set(
            layer,
            fw,
            grad=grad,
            **{k: native.get(k) for k in ("weight", "bias", "running_mean", "running_var")},
        )
        use_batch = _module_flag(s, a)
        if hasattr(layer, "train") and callable(layer.train):
            layer.train(use_batch)
        else:
            layer.training = use_batch
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
            raise _unsupported("a Keras/flax.linen layer class is differentiated by its framework's adapter")
        fw = self.framework
        ad = _adapter(fw)
        native: dict[str, Any] = {}
        for k in ("input", *_ARRAY_ARGS):
            v = args.get(k)
            if isinstance(v, np.ndarray | np.generic):
                native[k] = ad.to_native(np.asarray(v))
            elif v is not None:
                native[k] = v
        if meta is None:
            meta = {k: ad.to_numpy(v) if k in native and not isinstance(v, np.ndarray) else v for k, v in args.items()}
        out, _ = self._invoke(meta, native, grad=True)
        return out

    # --- the cases it is checked on ------------------------------------------------------------------
    def ranks(self) -> tuple[int, ...]:
        """The input ranks the drawn cases may have."""
        c = self.constraints
        if c.get("shape"):
            return (len(c["shape"]),)
        if c.get("ranks"):
            return tuple(c["ranks"])
        return tuple(r for r in _PROBE_SHAPES if r >= self.spec.min_rank)

    def case_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`normcheck.strategies.cases` for this target's constraints."""
        s, c = self.spec, self.constraints
        opts: dict[str, Any] = {}
        if c.get("shape"):
            opts["shape"] = tuple(c["shape"])
        elif c.get("ranks"):
            opts["ranks"] = tuple(c["ranks"])
        pinned = dict(c.get("pinned") or {})
        if pinned:
            opts["pinned"] = pinned
        if c.get("no_affine"):
            opts["affine"] = False
        elif c.get("no_bias"):
            opts["bias"] = False
        if s.has_running_stats and not self.running_stats:
            opts["running_stats"] = False
        elif s.has_running_stats and "momentum" not in pinned and self._accepts_momentum_none():
            opts["momentum_none"] = True  # torch's cumulative average is drawn too
        d = self.eps_default
        if "eps" not in pinned and d is not None and "eps" in s.defaults and s.defaults["eps"] is None:
            from normcheck.strategies import eps_values  # eps=None (the default) is the layer's own default

            opts["eps"] = eps_values(spec=s).map(lambda e: d if e is None else e)
        return opts

    def _accepts_momentum_none(self) -> bool:
        """Does the constructor take momentum=None (its momentum parameter defaults to None or is
        annotated Optional / ``| None``)? Only then are momentum=None cases drawn for it."""
        ctor = self.ctor
        if ctor is None or ctor.mode != "signature" or self.adapted is not None:
            return False
        for name, role in ctor.assign.items():
            if role == "momentum" and name not in ctor.fixed:
                p = ctor.by_name[name]
                ann = _annotation_text(p)
                return p.default is None or "None" in ann or "Optional" in ann
        return False

    def strategy(self, dtype: str, axes=None):
        """The Hypothesis strategy of cases for ``dtype`` (None: the audit's default suffices)."""
        axes = self.axes if axes is None else axes
        opts = self.case_options()
        if not opts and axes is None:
            return None
        from normcheck import strategies

        return strategies.cases(self.norm, dtypes=(dtype,), axes=axes, **opts)

    def probe_case(self, dtype: str = "float32", rank: int | None = None, *, buffers: bool = False, ns_len: int = 1):
        """A small fixed case within the constraints (training mode; None if ``rank`` cannot fit them)."""
        from normcheck import dtypes as _dtypes
        from normcheck.case import Case, fixed_cases

        s, cons = self.spec, self.constraints
        if rank is None:
            rank = self.ranks()[0]
        if s.name not in ROLE_ORDER:  # a norm from a new spec file: its fixed cases
            found = [c for c in fixed_cases(s.name, dtype, axes=self.axes) if c.x.ndim == rank]
            return found[0] if found else None
        pinned = cons.get("pinned") or {}
        shape = list(_PROBE_SHAPES.get(rank, (3, 4) + (2,) * (rank - 2)))
        if rank < s.min_rank:
            return None
        fixed_c = False
        if cons.get("shape"):
            if len(cons["shape"]) != rank:
                return None
            for i, v in enumerate(cons["shape"]):
                if v is not None:
                    shape[i] = v
                    fixed_c |= i == 1
        if "C" in pinned and rank > 1:
            shape[1], fixed_c = pinned["C"], True
        g = pinned.get("num_groups")
        if g and rank > 1 and not fixed_c:
            shape[1] = 2 * g if 2 * g <= 64 else g
        ns_pin = pinned.get("normalized_shape")
        args: dict[str, Any] = {"eps": pinned.get("eps", 1e-5)}
        red = None
        if self.axes is not None:
            if not all(-rank <= ax < rank for ax in self.axes):
                return None
            red = tuple(sorted({ax % rank for ax in self.axes}))
            for i, v in zip(red, ns_pin or (), strict=False):
                if v is not None:
                    shape[i] = v
            args["reduce_axes"] = red
            if s.shape_arg == "normalized_shape":
                args["normalized_shape"] = tuple(shape[i] for i in red)
        elif s.shape_arg == "normalized_shape":
            k = len(ns_pin) if ns_pin else ns_len
            if k > rank:
                return None
            for j, v in enumerate(ns_pin or ()):
                if v is not None:
                    shape[rank - k + j] = v
            args["normalized_shape"] = tuple(shape[rank - k :])
        elif s.shape_arg == "num_groups":
            args["num_groups"] = g or (2 if shape[1] % 2 == 0 else 1)
        if s.batch_stats_flag:
            args[s.batch_stats_flag] = True
        buffers = buffers and s.has_running_stats and red is None and self.running_stats
        if buffers or "momentum" in pinned:
            args["momentum"] = pinned.get("momentum", 0.1)
        shape = tuple(shape)
        p = _spec.plan(
            s,
            shape,
            normalized_shape=args.get("normalized_shape"),
            num_groups=args.get("num_groups"),
            reduce_axes=red,
        )
        rng = np.random.default_rng(rank)
        dt = _dtypes.np_dtype(dtype)
        x = (rng.normal(size=shape) * 2 + 0.5).astype(dt)
        w = b = rm = rv = None
        if not cons.get("no_affine"):
            w = rng.uniform(0.5, 1.5, size=p.affine_shape).astype(dt)
            if s.has_bias and not cons.get("no_bias"):
                b = rng.normal(size=p.affine_shape).astype(dt)
        if buffers:
            bshape = tuple(p.view_shape[ax] for sym in s.running_stats["shape"] for ax in p.symbols[sym])
            bdt = np.dtype(np.float32) if _dtypes.is_16bit(dtype) else dt
            rm, rv = rng.normal(size=bshape).astype(bdt), rng.uniform(0.5, 2.0, size=bshape).astype(bdt)
        return Case(s.name, x, args, weight=w, bias=b, running_mean=rm, running_var=rv)

    def _try(self, case) -> str | None:
        """None if the target returns an output of the input's shape on ``case``, else why not."""
        try:
            y = self(case.x.copy(), **case.kwargs())
        except TargetHung:
            raise
        except Exception as e:
            return _first_line(e)
        if np.shape(y) != case.x.shape:
            return f"returned shape {np.shape(y)} for input shape {case.x.shape}"
        return None


def _set(layer, fw: str, *, grad: bool = False, **values) -> None:
    """Put parameters and buffers into a freshly built layer (None values are left alone; ``grad``:
    the weight and bias as the caller's grad-requiring arrays, see :func:`_put`)."""
    for k, t in values.items():
        if t is not None:
            _put(layer, fw, k, t, grad=grad and k in ("weight", "bias"))


# --- preparing a target: the constructor, the layer, the ranks ------------------------------------


def _sample_rank(t: Target) -> int:
    for r in (3, *t.ranks()):
        if r in t.ranks() and t.probe_case(rank=r) is not None:
            return r
    return t.ranks()[0]


def _prepare_module(t: Target) -> None:
    """Build the layer once (a constructor that cannot be called is a TargetError naming the call),
    find its parameters, buffers and settings, and pin what the constructor does not take."""
    s, ctor = t.spec, t.ctor
    case = t.probe_case(rank=_sample_rank(t), buffers=s.has_running_stats)
    a = _resolved(s, (case.x,), case.kwargs())
    c = _canon(s, a, case.x.shape)
    try:
        layer, desc = t.guard.call(t._construct, c, "float32")
    except TargetHung:
        raise TargetError(f"constructing {ctor.sketch()} did not return within {t.guard.timeout:g} s") from None
    except ConstructionError as e:
        raise TargetError(f"cannot construct the layer: {e} (map its arguments with --init or --arg)") from e.__cause__
    except TargetError:
        raise
    except Exception as e:
        raise TargetError(f"cannot construct {ctor.sketch()}: {_first_line(e)}") from e
    info = t.layer = _inspect_layer(layer, desc)
    cons = t.constraints
    if not cons.get("no_affine"):
        w, b = info.params.get("weight"), info.params.get("bias")
        if w is None and b is None:
            raise TargetError(
                f"{desc} has no weight or bias (looked for {', '.join(PARAM_ATTRS['weight'])}); "
                "if it has no parameters, check it with --no-affine"
            )
        if w is None:
            raise TargetError(f"{desc} has a bias but no weight (looked for {', '.join(PARAM_ATTRS['weight'])})")
        if s.has_bias and b is None and not cons.get("no_bias"):
            raise TargetError(
                f"{desc} has a weight but no bias (looked for {', '.join(PARAM_ATTRS['bias'])}); "
                "if that is by design, check it with --no-bias"
            )
    if s.has_running_stats:
        if cons.get("no_track") or len(info.buffers) < 2:
            t.running_stats = False
            if not cons.get("no_track"):
                t.notes.append(f"{ctor.name} keeps no running_mean/running_var: checked with batch statistics only")
    if t.running_stats and s.has_running_stats:
        t.notes.append("16-bit cases with running buffers: parameters float32 like the buffers (mixed precision)")
    mapped = ctor.mapped_roles
    user = set(ctor.canon_pins)
    pinned = cons.setdefault("pinned", {})
    for role, key in (("eps", "eps"), ("momentum", "momentum"), ("groups", "num_groups")):
        if role not in ROLE_ORDER.get(s.name, ()) or role in mapped or key in user:
            continue
        if role == "momentum" and not t.running_stats:
            continue
        attr = info.settings.get(role)
        if attr is None:
            if role == "groups":
                raise TargetError(
                    f"cannot tell the number of groups of {desc}: no parameter or attribute names it; "
                    "give it with --arg num_groups=G"
                )
            t.unknown.add(role)
            t.notes.append(f"{ctor.name} takes no {role} and keeps none in an attribute: its {role} is unknown")
            continue
        v = info.values[role]
        pinned[key] = int(v) if role == "groups" else (None if v is None else float(v))
        if role != "groups":
            t.set_attrs[role] = attr
        t.notes.append(f"{ctor.name} takes no {role}: its own, {attr}={v!r}, is used")
    d = ctor.eps_default()
    attr = info.settings.get("eps")
    if d is None and "eps" in mapped and attr and ctor.mode == "signature":
        try:  # a None default the layer resolves to a float of its own
            v = getattr(t.guard.call(t._construct, dataclasses.replace(c, eps=None), "float32")[0], attr, None)
        except Exception:
            v = None
        d = float(v) if _is_number(v) else None
    t.eps_default = d


def _probe_normalized_shape(t: Target) -> None:
    """How an unannotated ``normalized_shape`` parameter is passed (one int or a list), and whether
    the layer takes more than one normalized axis."""
    s, ctor = t.spec, t.ctor
    if s.shape_arg != "normalized_shape" or ctor.mode != "signature" or ctor.features_int or t.axes is not None:
        return
    name = next((n for n, r in ctor.assign.items() if r == "features"), None)
    if name != "normalized_shape" or name in ctor.fixed:
        return
    ann = _annotation_text(ctor.by_name[name]).lower()
    if any(k in ann for k in ("list", "tuple", "sequence", "size", "shape", "iterable")):
        return
    rank = 3 if 3 in t.ranks() else t.ranks()[-1]
    one = t.probe_case(rank=rank)
    if one is None:
        return
    for style in ("int", "list"):
        ctor.ns_style = style
        if t._try(one) is None:
            break
    else:
        ctor.ns_style = "int"
        return
    pins = t.constraints.setdefault("pinned", {})
    two = t.probe_case(rank=rank, ns_len=2) if "normalized_shape" not in pins else None
    if two is not None:
        why = t._try(two)
        if why is not None:
            pins["normalized_shape"] = (None,)
            t.notes.append(f"one normalized axis only (normalized_shape of two axes: {why})")


def _probe_ranks(t: Target) -> None:
    """Restrict the ranks to those the target accepts: from a class name ending in 1d/2d/3d, else by
    calling it on a small input of each rank. A restriction is a note, never a deviation."""
    import re

    cons = t.constraints
    if cons.get("ranks") or cons.get("shape"):
        return
    name = getattr(t.obj, "__name__", "") if inspect.isclass(t.obj) else ""
    m = re.search(r"([123])d$", name, re.IGNORECASE)
    if m:
        r = int(m.group(1)) + 2
        ranks = (2, 3) if t.spec.name == "batch_norm" and r == 3 else (r,)
        ranks = tuple(x for x in ranks if t.probe_case(rank=x) is not None) or ranks
        cons["ranks"] = ranks
        t.notes.append(f"inputs of rank {' or '.join(map(str, ranks))} (the class name ends in {m.group(0)})")
        return
    accepted, refused = [], []
    for r in t.ranks():
        case = t.probe_case(rank=r)
        if case is None:
            continue
        try:
            why = t._try(case)
        except TargetHung:
            return
        (refused.append((r, why)) if why else accepted.append(r))
    if accepted and refused:
        cons["ranks"] = tuple(accepted)
        r, why = refused[0]
        t.notes.append(f"inputs of rank {', '.join(map(str, accepted))} only (a probe on rank {r} gave {why[:120]})")


# --- wrapping ----------------------------------------------------------------------------------


def _probe_cases(norm: str) -> list:
    """Small float32 cases, one per rank (the first a target accepts decides its framework)."""
    from normcheck.case import fixed_cases

    out, seen = [], set()
    for c in fixed_cases(norm, "float32"):
        if c.x.ndim not in seen:
            seen.add(c.x.ndim)
            out.append(c)
    return out


def _probe_case(norm: str):
    return _probe_cases(norm)[0]


def infer_framework(
    obj, norm: str, *, form: str = "function", guard: Guard | None = None, target: Target | None = None
) -> tuple[str, str]:
    """(framework, how it was decided) for a target, importing no framework.

    A torch.nn.Module subclass is torch. Otherwise the frameworks already imported (those the
    target's module names first; NumPy first if it is the only one named, else last) are tried on
    small float32 cases (one per rank, until one returns); the first whose own array type comes back
    wins. When no call succeeds, the framework the target's module names (or NumPy) is assumed, so
    the check can still report what the target does. ``target``: the prepared Target to try
    (constructor mapping, constraints), else a plain one.
    """
    if form == "module" and _module_kind(obj) == "torch":
        return "torch", "a torch.nn.Module subclass"
    guard = guard or (target.guard if target is not None else Guard(DEFAULT_TIMEOUT))
    names = _named_frameworks(obj)
    named = [fw for fw in names if fw != "numpy"]
    loaded = [fw for fw in _loaded_frameworks() if fw != "numpy"]
    # the module's own frameworks first; a module that names only NumPy is NumPy code, even when
    # another framework happens to be imported in this process (its arrays may pass through NumPy code)
    first = named or (["numpy"] if "numpy" in names else [])
    order = list(dict.fromkeys([*first, *loaded, "numpy"]))
    if target is not None:
        cases = [c for c in (target.probe_case(rank=r) for r in target.ranks()) if c is not None]
    else:
        cases = _probe_cases(norm)
    failures = []
    for fw in order:
        if target is not None:
            t = dataclasses.replace(target, framework=fw, notes=[], _last=None, _pending=None)
        else:
            t = Target(obj, norm, fw, form, describe(obj), guard=guard)
        why = None
        for case in cases:
            try:
                t(case.x.copy(), **case.kwargs())  # a success: the target returned its framework's array type
            except TargetHung:
                break
            except BadOutput as e:
                why = f"{fw}: {e}"
                break
            except Exception as e:
                why = why or f"{fw}: raised {_first_line(e)}"
                continue
            return fw, f"it returns a {_array_name(fw)} for {_array_name(fw)} inputs"
        if guard.hung:
            break
        if why:
            failures.append(why)
    fallback = named[0] if named else "numpy"
    why = "; ".join(failures[:3]) or "the probe call did not return"
    return fallback, f"assumed: no probe call succeeded ({why})"


def _pins_for_function(norm: str, pins: dict) -> dict[str, Any]:
    """``--arg`` of a function target (or a Keras/flax layer class): canonical arguments only."""
    s = _spec.get(norm)
    out: dict[str, Any] = {}
    for name, value in pins.items():
        role = _canonical_role(name) or _role_of(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY), tuple(ALIASES)
        )
        key = {"groups": "num_groups", "eps": "eps", "momentum": "momentum"}.get(role or "")
        if role == "features":
            key = "normalized_shape" if s.shape_arg == "normalized_shape" else "C"
            if key == "normalized_shape":
                value = (value,) if _is_number(value) else tuple(value)
        if key is None:
            raise TargetError(
                f"--arg {name}: a function target is called with the canonical arguments; only num_groups, eps, "
                "momentum, normalized_shape and the channel count can be pinned"
            )
        out[key] = value
    return out


def wrap(
    obj,
    norm: str,
    *,
    framework: str | None = None,
    form: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    label: str | None = None,
    init: str | None = None,
    args: dict[str, Any] | None = None,
    no_bias: bool = False,
    no_affine: bool = False,
    ranks=None,
    shape=None,
    axes=None,
    probe: bool = True,
) -> Target:
    """The target ``obj`` (a function or a module class) as a canonical NumPy callable.

    ``form`` defaults to "module" for a class and "function" otherwise; ``framework`` is inferred
    (:func:`infer_framework`) when not given. A module class is constructed as its own signature
    says (:class:`Constructor`): ``init`` is a template of the constructor's arguments
    (``"hidden_size={C}, eps={eps}"``, placeholders :data:`PLACEHOLDERS`), ``args`` pins constructor
    or canonical arguments (``{"num_groups": 4}``: the cases have them too). ``no_bias``: the layer
    has a weight but no bias; ``no_affine``: no parameters. ``ranks``/``shape`` constrain the inputs
    (a shape's None entries are free sides); without them the ranks are inferred (``probe``: a class
    name ending in 1d/2d/3d, else one small call per rank). ``axes``: an axis-set variant.

    Raises :class:`TargetError` for what cannot be checked: not callable, an unknown norm, framework
    or form, a framework that is not installed, a flax.nnx module class, a torch.nn.Module instance,
    a constructor that cannot be called (naming the call tried), contradictory constraints.
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
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(int(a) for a in axes)
    options = {
        k: v
        for k, v in (
            ("init", init),
            ("args", dict(args or {}) or None),
            ("no_bias", no_bias),
            ("no_affine", no_affine),
            ("axes", axes),
        )
        if v
    }
    cons: dict[str, Any] = {}
    if ranks:
        cons["ranks"] = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if shape:
        cons["shape"] = tuple(shape)
    if no_bias:
        cons["no_bias"] = True
    if no_affine:
        cons["no_affine"] = True
    guard = Guard(timeout)
    label = label or describe(obj)
    adapted_layer = form == "module" and kind in _LAYER_FRAMEWORKS
    if init and (form != "module" or adapted_layer):
        raise TargetError("--init applies to a torch-style module class (not a function or a Keras/flax layer)")
    ctor = None
    if form == "module" and not adapted_layer:
        ctor = Constructor(obj, norm, init=init, pins=args, axes=axes)
        if ctor.canon_pins:
            cons["pinned"] = dict(ctor.canon_pins)
        for flag in ("no_bias", "no_affine", "no_track"):
            if ctor.flags.get(flag):
                cons[flag] = True
    elif args:
        cons["pinned"] = _pins_for_function(norm, args)
    if adapted_layer:
        t = _layer_target(obj, norm, kind, framework, label, guard)
    else:
        t = Target(obj, norm, framework or "numpy", form, label, guard=guard, ctor=ctor)
    t.constraints, t.axes, t.options = cons, axes, options
    _validate(t)  # the user's own constraints first, before any call
    if ctor is not None and ctor.mode != "reference":
        _prepare_module(t)
        how = {"template": "(--init)", "torch": "(like torch.nn)"}.get(ctor.mode, "(from its signature)")
        t.notes.insert(0, f"built as {ctor.sketch()} {how}")
    if not adapted_layer:
        if framework is None:
            framework, why = infer_framework(obj, norm, form=form, guard=guard, target=t)
            t.framework = framework
            t.notes.insert(0, f"framework {framework} inferred: {why}")
        elif framework != "numpy" and _FRAMEWORK_MODULES[framework] not in sys.modules:
            if not _adapter(framework).available():
                raise TargetError(f"framework {framework} is not installed (pip install 'normcheck[{framework}]')")
    if probe and ctor is not None and ctor.mode != "reference" and not guard.hung:
        if ctor.mode == "signature":
            _probe_normalized_shape(t)
        _probe_ranks(t)  # a function's ranks are its own business (--rank says otherwise)
    if not _adapter(t.framework).has_vjp:  # said once, beside the per-property skips
        t.notes.append(f"{t.framework} has no autodiff: the gradient properties are not applicable")
    _validate(t)
    return t


def _validate(t: Target) -> None:
    """Contradictory constraints are a TargetError (one line)."""
    from hypothesis.errors import InvalidArgument

    try:
        strategy = t.strategy("float32")
        if strategy is not None:
            strategy.validate()
    except InvalidArgument as e:
        raise TargetError(str(e)) from None


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
    args += "".join(f", {k}={v!r}" for k, v in target.options.items())
    if target.options:
        args += ", probe=False"
    if ref:
        path, sep, attr = ref.rpartition(":")
        if sep and _is_file_ref(path):  # the snippet runs from any folder: the file by its absolute path
            ref = f"{Path(path).expanduser().resolve()}:{attr}"
        return f"{head}\nfn = wrap(load({ref!r}), {args})"
    mod = getattr(target.obj, "__module__", None)
    qual = getattr(target.obj, "__qualname__", "")
    if mod and mod != "__main__" and "<" not in qual and not mod.startswith("_normcheck_target_"):
        return f"{head}\nfn = wrap(load({f'{mod}:{qual}'!r}), {args})"
    return f"{head}\nfn = wrap(YOUR_TARGET, {args})  # YOUR_TARGET: the function or class you checked"
