"""TensorFlow: Keras 3 normalization layers on the TensorFlow backend, and ``tf.nn`` compositions.

Two forms per norm, behind the canonical convention of :mod:`normcheck.adapters.base`:

- ``keras``: ``keras.layers.{BatchNormalization, LayerNormalization, GroupNormalization,
  RMSNormalization}`` called eagerly (``layer(x, training=...)``), plus a ``channels_last``
  layout variant for the channel norms and ``compiled`` variants under
  ``tf.function(jit_compile=True)`` (XLA). Keras has no InstanceNormalization layer, so there is
  no keras instance_norm (see :data:`NOT_NATIVE`).
- ``tf.nn``: ``tf.nn.moments`` + ``tf.nn.batch_normalization`` over the norm's axes, as TF users
  write these norms by hand; ``tf.nn`` keeps no running statistics.

Every translation between the canonical (torch) convention and TensorFlow's lives in
:data:`CONVENTIONS` and the helpers right below it. Layers are built once per (config, input
shape, dtype policy) and cached; a call only assigns the variables (gamma, beta, moving stats).

Importing this module imports neither TensorFlow nor Keras. When they are imported (on first
use), ``TF_CPP_MIN_LOG_LEVEL=2`` and ``KERAS_BACKEND=tensorflow`` are set as defaults first, and
TensorFlow's optional import of jax (``tensorflow.lite.python.util`` tries ``from jax import jit``)
is blocked for the duration of ``import tensorflow``, so using this adapter never loads jax.
XLA's persistent cache is pointed at ``~/.cache/normcheck/tensorflow`` (:mod:`normcheck.compile_cache`).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from normcheck import compile_cache
from normcheck import spec as _spec
from normcheck.adapters.base import Adapter, Impl, Unsupported, spell_axes

__all__ = [
    "ADAPTER",
    "CONVENTIONS",
    "KERAS_AXIS_CONFIG",
    "KERAS_CONFIGS",
    "KERAS_FEED_CONFIG",
    "KERAS_LAYERS",
    "KERAS_SINCE",
    "NOT_NATIVE",
    "TFNN_CONFIGS",
    "TFNN_PROGRAMS",
    "TensorFlowAdapter",
    "clear_cache",
    "import_keras",
    "import_tensorflow",
    "keras_configs",
    "keras_layer",
    "policy",
    "tfnn_program",
    "trace_count",
]

# --- the one place where TensorFlow's conventions meet the canonical (torch) ones ---------------
CONVENTIONS: dict[str, Any] = {
    # Keras BatchNormalization: moving = moving * momentum + batch * (1 - momentum).
    "momentum": "keras keeps the old fraction: keras_momentum = 1 - torch_momentum; momentum=None is unsupported",
    # Default epsilons (keras 3.15); the canonical eps is always passed explicitly.
    "default_eps": {
        "keras.layers.BatchNormalization": 1e-3,
        "keras.layers.LayerNormalization": 1e-3,
        "keras.layers.GroupNormalization": 1e-3,
        "keras.layers.RMSNormalization": 1e-6,
        "tf.nn.batch_normalization": None,  # variance_epsilon is a required argument
    },
    "eps": "inside the square root everywhere (rsqrt(var + eps)); passed as epsilon= / variance_epsilon=",
    # Keras BN updates moving_variance with tf.nn.moments' variance: biased (1/n).
    "stored_variance": "biased",
    "channel_axis": {"channels_first": 1, "channels_last": -1},
    "train_eval": "BatchNormalization: layer(x, training=bool); the other layers have no train/eval switch",
    # Keras mixed precision keeps variables in float32 while computing in the 16-bit dtype.
    "dtype_policy": {
        "float64": "float64",
        "float32": "float32",
        "float16": "mixed_float16",
        "bfloat16": "mixed_bfloat16",
    },
    "compute_dtype": "keras layers compute in at least float32 and cast the output to the input dtype",
}

NOT_NATIVE: dict[tuple[str, str], str] = {
    ("instance_norm", "keras"): (
        "keras has no InstanceNormalization layer (its docs suggest GroupNormalization(groups=-1): "
        "that equivalence is an identity the property suite checks, not an implementation)"
    ),
    ("rms_norm", "tf.nn"): "tf.nn has no RMS normalization op",
}


def _keras_momentum(momentum) -> float:
    if momentum is None:
        raise Unsupported("keras BatchNormalization has no cumulative moving average (momentum=None)")
    return 1.0 - float(momentum)


#: Configuration axes (``Impl.configs``), default first. Keras: the dtype policy a 16-bit input's layer
#: is built with, the mixed one (``mixed_float16``: float32 variables and statistics) or the full one
#: (``dtype="float16"``: everything in 16 bits); float32 and float64 have one policy. ``feed``: a 16-bit
#: case's input handed over in its own dtype, or as float32 (exactly the same values), which the layer
#: casts to its compute dtype itself, as the first layer of a mixed-precision model receives its input
#: (a float32 or float64 case is fed as it is either way). tf.nn: eager, or the same ops under
#: ``tf.function(jit_compile=True)`` (XLA fuses multiply-adds, which moves rounding).
KERAS_CONFIGS = (("dtype_policy", ("mixed", "full")),)
KERAS_FEED_CONFIG = ("feed", ("own", "float32"))
TFNN_CONFIGS = (("jit_compile", (False, True)), ("axis_spelling", ("positive", "negative", "descending")))
#: LayerNormalization's and RMSNormalization's axis list with either sign (the order shapes gamma).
KERAS_AXIS_CONFIG = ("axis_spelling", ("negative", "positive"))


def keras_configs(norm: str) -> tuple:
    """The configuration axes of a Keras layer: its dtype policy, the axis list's sign where the
    layer takes a list (LayerNormalization, RMSNormalization), and the dtype its input is fed in."""
    axis = (KERAS_AXIS_CONFIG,) if norm in ("layer_norm", "rms_norm") else ()
    return (*KERAS_CONFIGS, *axis, KERAS_FEED_CONFIG)


def fed(x: np.ndarray, feed: str = "own") -> np.ndarray:
    """The input a Keras layer is handed in the ``feed`` configuration (:data:`KERAS_FEED_CONFIG`): ``x``,
    or a 16-bit ``x`` as float32 (exact)."""
    return x.astype(np.float32) if feed == "float32" and x.dtype.itemsize == 2 else x


def policy(dtype: np.dtype, dtype_policy: str = "mixed") -> str:
    """The Keras dtype policy a layer is built with for ``dtype`` inputs (:data:`KERAS_CONFIGS`)."""
    name = np.dtype(dtype).name
    try:
        mixed = CONVENTIONS["dtype_policy"][name]
    except KeyError:
        raise TypeError(f"unsupported input dtype {name}") from None
    return name if dtype_policy == "full" else mixed


def _torch_running_var(old, keras_new, momentum: float, n: int) -> np.ndarray:
    """Keras stores the biased batch variance in its moving average; torch the unbiased one.

    keras_new = (1 - m) old + m var_b, torch_new = (1 - m) old + m var_b n / (n - 1), so
    torch_new = (1 - m) old + (keras_new - (1 - m) old) n / (n - 1).
    """
    if n < 2:
        raise ValueError(f"the unbiased running variance needs more than 1 value per channel, got {n}")
    kept = (1.0 - float(momentum)) * np.asarray(old, np.float64)
    return kept + (np.asarray(keras_new, np.float64) - kept) * (n / (n - 1))


def _to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """channels_first (N, C, *spatial) -> the layout the native call receives."""
    if layout == "channels_first" or x.ndim <= 2:
        return x
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    if layout == "channels_first" or y.ndim <= 2:
        return y
    return np.ascontiguousarray(np.moveaxis(y, -1, 1))


# --- lazy imports -----------------------------------------------------------------------------
def import_tensorflow():
    """``tensorflow``, imported on first use (without letting tensorflow.lite import jax)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "function"):
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _persistent_cache()
    block = "jax" not in sys.modules
    if block:  # tensorflow.lite imports jax when it is installed; it falls back cleanly without it
        sys.modules["jax"] = None
    try:
        import tensorflow as tf
    finally:
        if block and "jax" in sys.modules and sys.modules["jax"] is None:
            del sys.modules["jax"]
    return tf


def _persistent_cache() -> None:
    """Before TensorFlow's first import: XLA keeps the executables of ``tf.function(jit_compile=True)``
    in :func:`normcheck.compile_cache.folder` ("tensorflow"), so a second run loads them instead of
    compiling each shape again. A cache folder already in ``TF_XLA_FLAGS`` is the user's, and kept."""
    folder = compile_cache.folder("tensorflow")
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if folder is None or "tf_xla_persistent_cache_directory" in flags:
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


def import_keras():
    """``keras`` on the TensorFlow backend, imported on first use (:class:`Unsupported` if keras was
    already loaded with another backend)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_tensorflow()
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise Unsupported(f"keras was loaded with the {backend} backend; set KERAS_BACKEND=tensorflow")
    return keras


# --- cached layers and traced functions ---------------------------------------------------------
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 256
_TRACES: Counter = Counter()


def clear_cache() -> None:
    """Drop every cached layer and traced function."""
    _CACHE.clear()


def trace_count(key: str | None = None) -> int:
    """How many times compiled functions were traced (for ``key`` = an Impl id, or all)."""
    return _TRACES[key] if key is not None else sum(_TRACES.values())


class _Run:
    """Calls a layer; a callable object rather than a closure, so that TensorFlow keys its retracing
    statistics on each entry's own function (a closure's shared code object would make every new
    entry look like a retrace of one function)."""

    def __init__(self, layer, trace_key: str | None = None):
        self.layer = layer
        self.trace_key = trace_key
        self.takes_training = "training" in inspect.signature(layer.call).parameters

    def __call__(self, x, training):
        if self.trace_key is not None:  # only runs while tf.function traces
            _TRACES[self.trace_key] += 1
        return self.layer(x, training=training) if self.takes_training else self.layer(x)


class _Entry:
    """A built Keras layer and, in compiled mode, its ``tf.function(jit_compile=True)``."""

    def __init__(self, layer, compiled_id: str | None):
        self.layer = layer
        self.fn = _Run(layer)
        if compiled_id is not None:
            self.fn = import_tensorflow().function(_Run(layer, compiled_id), jit_compile=True)

    def __call__(self, x, training: bool):
        return self.fn(x, training)


def _entry(key, make: Callable[[], Any], compiled_id: str | None) -> _Entry:
    entry = _CACHE.get(key)
    if entry is None:
        entry = _CACHE[key] = _Entry(make(), compiled_id)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return entry


# --- the canonical signature --------------------------------------------------------------------
def _canonical(norm: str, body: Callable, axes=(), **fixed) -> Callable:
    """Wrap ``body(spec, arguments, **fixed, **options)`` in the spec's (torch.nn.functional)
    signature; ``options`` are a configuration's (``axes``: the Impl's configuration axes)."""
    from normcheck import reference

    s = _spec.get(norm)
    sig = inspect.signature(reference.function(s))

    def fn(*args, **kwargs):
        options = {k: kwargs.pop(k) for k, _ in axes if k in kwargs}
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return body(s, bound.arguments, **fixed, **options)

    fn.__signature__ = sig
    fn.__name__ = fn.__qualname__ = norm
    return fn


def _check_buffers(a: dict[str, Any], use_batch: bool) -> None:
    for k in ("running_mean", "running_var"):
        if a.get(k) is not None and not isinstance(a[k], np.ndarray):
            raise TypeError("running buffers must be NumPy arrays to be updated in place")
    if not use_batch and (a.get("running_mean") is None or a.get("running_var") is None):
        raise ValueError("running_mean and running_var are needed without batch statistics")


def _use_batch(s: _spec.Spec, a: dict[str, Any]) -> bool:
    return bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True


# --- keras form ---------------------------------------------------------------------------------
#: The ``keras.layers`` class of each norm (keras has no InstanceNormalization: see :data:`NOT_NATIVE`).
KERAS_LAYERS = {
    "batch_norm": "BatchNormalization",
    "layer_norm": "LayerNormalization",
    "group_norm": "GroupNormalization",
    "rms_norm": "RMSNormalization",
}


def _keras_config(norm: str, a: dict[str, Any], layout: str, axis_spelling: str = "negative") -> dict[str, Any]:
    """Constructor arguments of the Keras layer for these canonical arguments (eps excluded); a
    LayerNormalization/RMSNormalization axis list spelled as ``axis_spelling`` says."""
    axis = CONVENTIONS["channel_axis"][layout]
    has_w, has_b = a.get("weight") is not None, a.get("bias") is not None
    if norm == "batch_norm":
        return {"axis": axis, "center": has_b, "scale": has_w}
    if norm == "group_norm":
        return {"groups": int(a["num_groups"]), "axis": axis, "center": has_b, "scale": has_w}
    ns = a["normalized_shape"]
    k = 1 if isinstance(ns, int | np.integer) else len(ns)
    axes = list(spell_axes(range(-k, 0), np.ndim(a["input"]), axis_spelling))
    if norm == "layer_norm":  # rms_scaling (deprecated, wrong) is never passed
        return {"axis": axes, "center": has_b, "scale": has_w}
    if norm == "rms_norm":  # no scale=False: a missing weight is a scale of ones (exact)
        return {"axis": axes}
    raise Unsupported(NOT_NATIVE.get((norm, "keras"), f"keras has no {norm} layer"))


#: The Keras release that added each layer newer than the package's floor (keras>=3.3).
KERAS_SINCE = {"rms_norm": "3.9"}


def keras_layer(keras, norm: str):
    """The ``keras.layers`` class of ``norm``; :class:`Unsupported` where the installed Keras has
    none (RMSNormalization is new in Keras 3.9), so its checks are skipped with that reason."""
    cls = getattr(keras.layers, KERAS_LAYERS[norm], None)
    if cls is None:
        since = f" (added in Keras {KERAS_SINCE[norm]})" if norm in KERAS_SINCE else ""
        raise Unsupported(f"keras {keras.__version__} has no keras.layers.{KERAS_LAYERS[norm]}{since}")
    return cls


def _assign(var, value) -> None:
    var.assign(np.asarray(value).astype(var.dtype))


def _keras_call(
    s: _spec.Spec,
    a: dict[str, Any],
    *,
    layout: str,
    mode: str,
    impl_id: str,
    cls=None,
    dtype_policy: str = "mixed",
    axis_spelling: str = "negative",
    feed: str = "own",
):
    """The Keras layer of ``s`` (or ``cls``, a user's layer class constructed like it) on canonical
    NumPy arguments: built once per configuration and shape, its variables assigned per call."""
    norm = s.name
    x = np.asarray(a["input"])
    if (norm, "keras") in NOT_NATIVE:
        raise Unsupported(NOT_NATIVE[(norm, "keras")])
    p = _spec.plan(s, x.shape, normalized_shape=a.get("normalized_shape"), num_groups=a.get("num_groups"))
    eps = s.resolve_eps(a.get("eps"), x.dtype)
    use_batch = _use_batch(s, a)
    running = s.has_running_stats
    if running:
        _check_buffers(a, use_batch)
    momentum = _keras_momentum(a["momentum"]) if running and use_batch else 0.99
    keras = import_keras()
    tf = import_tensorflow()

    xt = _to_layout(x, layout)
    config = _keras_config(norm, a, layout, axis_spelling)
    policy_name = policy(x.dtype, dtype_policy)
    cls = cls or keras_layer(keras, norm)
    # Compiled functions bake eps and momentum into the trace; eager layers read them per call.
    consts = (eps, momentum) if mode == "compiled" else ()
    key = (impl_id, cls, tuple(sorted((k, str(v)) for k, v in config.items())), xt.shape, policy_name, consts)

    def make():
        layer = cls(epsilon=eps, dtype=policy_name, **config)
        layer.build(xt.shape)
        return layer

    entry = _entry(key, make, impl_id if mode == "compiled" else None)
    layer = entry.layer
    layer.epsilon = eps
    if norm == "batch_norm":
        layer.momentum = momentum

    weight, bias = a.get("weight"), a.get("bias")
    gamma = layer.scale if norm == "rms_norm" else layer.gamma
    if gamma is not None:
        if tuple(gamma.shape) != p.affine_shape:
            raise AssertionError(f"keras {cls.__name__} gamma shape {tuple(gamma.shape)} != {p.affine_shape}")
        _assign(gamma, np.ones(p.affine_shape) if weight is None else weight)
    if bias is not None:
        _assign(layer.beta, bias)
    rm, rv = (a.get("running_mean"), a.get("running_var")) if running else (None, None)
    old_var = None
    if norm == "batch_norm":
        _assign(layer.moving_mean, np.zeros(p.affine_shape) if rm is None else rm)
        _assign(layer.moving_variance, np.ones(p.affine_shape) if rv is None else rv)
        old_var = layer.moving_variance.numpy() if rv is not None else None

    y = entry(tf.convert_to_tensor(fed(xt, feed)), bool(use_batch))
    out = _from_layout(y.numpy(), layout)

    if norm == "batch_norm" and use_batch:
        if rm is not None:
            rm[...] = layer.moving_mean.numpy().astype(rm.dtype)
        if rv is not None:
            new = _torch_running_var(old_var, layer.moving_variance.numpy(), a["momentum"], p.reduce_size)
            rv[...] = new.astype(rv.dtype)
    return out


# --- tf.nn form ---------------------------------------------------------------------------------
def _tfnn_call(s: _spec.Spec, a: dict[str, Any], jit_compile: bool = False, axis_spelling: str = "positive"):
    """tf.nn.moments over the norm's axes, then tf.nn.batch_normalization (eagerly, or under
    ``tf.function(jit_compile=True)``: one program per view, axes and arguments given)."""
    norm = s.name
    if (norm, "tf.nn") in NOT_NATIVE:
        raise Unsupported(NOT_NATIVE[(norm, "tf.nn")])
    x = np.asarray(a["input"])
    p = _spec.plan(s, x.shape, normalized_shape=a.get("normalized_shape"), num_groups=a.get("num_groups"))
    eps = s.resolve_eps(a.get("eps"), x.dtype)
    use_batch = _use_batch(s, a)
    rm, rv = a.get("running_mean"), a.get("running_var")
    if s.has_running_stats:
        _check_buffers(a, use_batch)
        if use_batch and (rm is not None or rv is not None):
            raise Unsupported("tf.nn has no running-statistics update")
    tf = import_tensorflow()

    # The view tf.nn.moments reduces over, and the shape the per-channel affine takes in it.
    if norm == "group_norm":
        n, c, g = x.shape[0], x.shape[1], int(a["num_groups"])
        view = (n, g, c // g, *x.shape[2:])
        axes = list(range(2, len(view)))
        affine = (1, g, c // g) + (1,) * (x.ndim - 2)
    elif norm == "layer_norm":
        view, axes, affine = x.shape, list(p.reduce), p.affine_shape
    else:  # batch_norm, instance_norm: (N, C, *spatial), per-channel affine
        view, axes = x.shape, [0, *range(2, x.ndim)] if norm == "batch_norm" else list(range(2, x.ndim))
        affine = (1, x.shape[1]) + (1,) * (x.ndim - 2)

    # running statistics are kept in their own (float32 for 16-bit) dtype, the affine in the statistics'
    stats = None if use_batch else (np.reshape(rm, affine), np.reshape(rv, affine))
    dt = x.dtype if use_batch else np.asarray(rm).dtype
    w, b = a.get("weight"), a.get("bias")
    scale = None if w is None else np.reshape(w, affine).astype(dt)
    offset = None if b is None else np.reshape(b, affine).astype(dt)
    run = tfnn_program(tf, view, spell_axes(axes, len(view), axis_spelling), jit_compile)
    y = run(tf.convert_to_tensor(x), stats, offset, scale, tf.constant(eps, tf.float64))
    return tf.reshape(y, x.shape).numpy()


#: The compiled tf.nn programs (:func:`tfnn_program`), by (view, axes, dtype, which arguments are given).
TFNN_PROGRAMS: dict[tuple, Any] = {}


class _TfnnRun:
    """tf.nn.moments over ``axes`` of ``x`` viewed as ``view`` (``stats``: the running (mean, var)
    instead), then tf.nn.batch_normalization. A callable object rather than a closure, as :class:`_Run`,
    so that TensorFlow keys its retracing statistics on each compiled program's own function."""

    def __init__(self, tf, view: tuple, axes: tuple):
        self.tf, self.view, self.axes = tf, view, axes

    def __call__(self, x, stats, offset, scale, eps):
        tf = self.tf
        xv = tf.reshape(x, self.view)
        if stats is None:
            mean, var = tf.nn.moments(xv, axes=list(self.axes), keepdims=True)
        else:
            mean, var = (tf.convert_to_tensor(t) for t in stats)
        eps = tf.cast(eps, var.dtype)
        return tf.nn.batch_normalization(xv, mean, var, offset, scale, variance_epsilon=eps)


def tfnn_program(tf, view: tuple, axes: tuple, jit_compile: bool):
    """``run(x, stats, offset, scale, eps)``: :class:`_TfnnRun` eagerly, or under
    ``tf.function(jit_compile=True)``, one program per view, axes, dtype and arguments given, each
    traced once (the autodiff part differentiates it)."""
    if not jit_compile:
        return _TfnnRun(tf, view, axes)

    def compiled(x, stats, offset, scale, eps):
        tensor = tf.convert_to_tensor  # NumPy arrays and tensors alike: one signature, one trace
        x = tensor(x)
        key = (view, axes, x.dtype.name, stats is None, offset is None, scale is None)
        if key not in TFNN_PROGRAMS:
            TFNN_PROGRAMS[key] = tf.function(_TfnnRun(tf, view, axes), jit_compile=True)
        stats = None if stats is None else tuple(tensor(t) for t in stats)
        offset, scale = (None if a is None else tensor(a) for a in (offset, scale))
        return TFNN_PROGRAMS[key](x, stats, offset, scale, tensor(eps))

    return compiled


# --- the adapter --------------------------------------------------------------------------------
class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    module = "tensorflow"
    parts = frozenset({"autodiff", "second_order", "conventions", "bench", "port", "sonnet", "keras_class"})
    distribution = "tensorflow-cpu"
    modules = ("tensorflow", "keras")
    array_name = "tf.Tensor"
    immutable_arrays = True
    cost = 3
    processes = 2  # tracing each new shape of the compiled forms: the second slowest once JAX loads its programs
    history_keyed_cache = True  # XLA's cache key holds the tf.function's name, __inference_<name>_<ops.uid()>
    default_eps = tuple(dict.fromkeys(e for e in CONVENTIONS["default_eps"].values() if e))
    packages = ("keras", "tensorflow-cpu", "tensorflow")
    module_bases = (("sonnet", "sonnet", "Module"), ("keras", "keras", "layers.Layer"))
    ecosystems: Mapping[str, str] = {"sonnet": "sonnet", "keras": "keras_class"}  # keras: by its own constructor
    layer_kinds: Mapping[str, str] = {"keras": "keras.layers"}
    # only what is logged changes, never a computation (TF_ENABLE_ONEDNN_OPTS, which changes
    # TensorFlow's numerics, is left alone); worker processes inherit them
    log_env: Mapping[str, str] = {
        "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow/XLA C++ logging (tsl): fatal messages only
        "GLOG_minloglevel": "2",  # glog users: errors and fatal only
        "GRPC_VERBOSITY": "ERROR",
    }
    # absl's messages logged before absl::InitializeLog() (``I0000 ... port.cc:153] oneDNN custom
    # operations are on``, the ``E0000 ... Unable to register cuDNN factory`` of CUDA builds) and the
    # glog/tsl format with a date; fatal (``F``) lines are kept
    log_lines = (
        rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        rb"[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] ",
        rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] ",
        rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.",
    )

    def layer_function(self, kind, norm, cls):
        return keras_layer_function(norm, cls)

    def owns(self, x) -> bool:
        tf = sys.modules.get("tensorflow")
        return tf is not None and hasattr(tf, "Tensor") and isinstance(x, tf.Tensor | tf.Variable)

    def devices(self) -> list[str]:
        tf = import_tensorflow()
        return [d.name.replace("/physical_device:", "").lower() for d in tf.config.list_physical_devices()]

    def to_native(self, a, *, device=None):
        tf = import_tensorflow()
        a = np.array(a, copy=True)  # the tensor may alias this buffer: never the caller's
        if device is None:
            return tf.convert_to_tensor(a)
        with tf.device(device):
            return tf.identity(tf.convert_to_tensor(a))

    def to_numpy(self, x):
        if hasattr(x, "numpy"):
            return np.asarray(x.numpy())
        return np.asarray(x)

    def implementations(self) -> list[Impl]:
        out = []
        keras_variants = {
            "batch_norm": [("channels_first", "eager"), ("channels_last", "eager"), ("channels_first", "compiled")],
            "layer_norm": [("channels_first", "eager"), ("channels_first", "compiled")],
            "group_norm": [("channels_first", "eager"), ("channels_last", "eager"), ("channels_first", "compiled")],
            "rms_norm": [("channels_first", "eager")],
        }
        names = _spec.names()
        for norm, variants in keras_variants.items():
            if norm not in names:
                continue
            s = _spec.get(norm)
            api = f"keras.layers.{KERAS_LAYERS[norm]}"
            for layout, mode in variants:
                impl_id = Impl("tensorflow", norm, "keras", None, layout=layout, mode=mode).id
                notes = "keras 3 layer on the TensorFlow backend, built once per config and shape, variables assigned"
                if layout == "channels_last":
                    notes += "; input transposed NC...->N...C, axis=-1, output transposed back"
                if mode == "compiled":
                    notes += "; called under tf.function(jit_compile=True), traced once per config and shape"
                if norm == "rms_norm":
                    notes += "; RMSNormalization always scales: weight=None is a scale of ones"
                out.append(
                    Impl(
                        "tensorflow",
                        norm,
                        "keras",
                        _canonical(norm, _keras_call, keras_configs(norm), layout=layout, mode=mode, impl_id=impl_id),
                        api=api,
                        layout=layout,
                        mode=mode,
                        running_stats=s.has_running_stats,
                        stateful=True,
                        notes=notes,
                        # eps and momentum are trace constants: BatchNorm retraces for nearly
                        # every generated example (~0.3 s each); its eager form covers the layer
                        extended=mode == "compiled" and norm == "batch_norm",
                        configs=keras_configs(norm),
                    )
                )
        tfnn_notes = {
            "batch_norm": "tf.nn.moments over (N, *spatial); eval uses the running statistics; no running update",
            "layer_norm": "tf.nn.moments over the trailing normalized axes",
            "instance_norm": "tf.nn.moments over the spatial axes; eval uses the running statistics; no running update",
            "group_norm": "native tf.nn composition: reshape to (N, G, C/G, *spatial), tf.nn.moments over (C/G, *spatial)",
        }
        for norm, notes in tfnn_notes.items():
            if norm not in names:
                continue
            out.append(
                Impl(
                    "tensorflow",
                    norm,
                    "tf.nn",
                    _canonical(norm, _tfnn_call, TFNN_CONFIGS),
                    api="tf.nn.moments + tf.nn.batch_normalization",
                    notes=notes,
                    configs=TFNN_CONFIGS,
                )
            )
        return out


def keras_layer_function(norm: str, cls, *, layout: str | None = None) -> Callable:
    """A user's Keras layer class, constructed like ``keras.layers.<the norm's layer>`` (``epsilon``,
    ``axis``, ``center``/``scale``, ``groups``, ``momentum`` in Keras's convention, with the same
    variable names), behind the canonical NumPy signature: the conventions translated as for the
    native layer (``normcheck check`` module targets). Channel norms run channels-last (Keras's
    default data format); LayerNorm/RMSNorm normalize the trailing axes, untransposed."""
    if layout is None:
        layout = "channels_last" if norm in ("batch_norm", "group_norm") else "channels_first"
    impl_id = f"user-keras/{norm}/{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}/{layout}"
    return _canonical(norm, _keras_call, layout=layout, mode="eager", impl_id=impl_id, cls=cls)


ADAPTER = TensorFlowAdapter()
