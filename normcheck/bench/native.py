"""Native callables for the benchmark: each framework's own norm, called on its own arrays.

The adapters (:mod:`normcheck.adapters`) wrap every native call in NumPy conversions so the
properties can compare outputs; timing those wrappers would time the conversions. Here each
framework gets one small builder that returns a :class:`Native`: a zero-argument ``fn`` that runs
the native call once on arrays that already live on the device, and the ``sync`` that waits for
its result. The native APIs are the adapters' own:

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

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck.bench.timer import no_sync

__all__ = ["EPS", "LAYOUTS", "MODES", "Native", "apis", "build", "groups", "physical_shape", "supports"]

EPS = 1e-5
MOMENTUM = 0.1  # torch's convention: new = (1 - m) old + m batch
FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
PASSES = (FORWARD, FORWARD_BACKWARD)
CHANNEL_NORMS = ("batch_norm", "instance_norm", "group_norm")

# (framework, norm) -> the layouts the native call takes.
LAYOUTS: dict[tuple[str, str], tuple[str, ...]] = {
    **{
        ("numpy", n): ("channels_first",)
        for n in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
    },
    ("torch", "batch_norm"): ("channels_first", "channels_last"),
    ("torch", "layer_norm"): ("channels_first",),
    ("torch", "group_norm"): ("channels_first", "channels_last"),
    ("torch", "instance_norm"): ("channels_first", "channels_last"),
    ("torch", "rms_norm"): ("channels_first",),
    ("jax", "batch_norm"): ("channels_first", "channels_last"),
    ("jax", "layer_norm"): ("channels_first",),
    ("jax", "group_norm"): ("channels_last",),  # flax GroupNorm groups the last axis only
    ("jax", "instance_norm"): ("channels_first", "channels_last"),
    ("jax", "rms_norm"): ("channels_first",),
    ("tensorflow", "batch_norm"): ("channels_first", "channels_last"),
    ("tensorflow", "layer_norm"): ("channels_first",),
    ("tensorflow", "group_norm"): ("channels_first", "channels_last"),
    ("tensorflow", "instance_norm"): ("channels_first", "channels_last"),
    ("tensorflow", "rms_norm"): ("channels_first",),
    # ONNX tensors are (N, C, D1, ...): channels first only
    **{
        ("onnxruntime", n): ("channels_first",)
        for n in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
    },
}
# framework -> execution modes: the default one first.
MODES: dict[str, tuple[str, ...]] = {
    "numpy": ("eager",),
    "torch": ("eager", "compiled"),
    "jax": ("jit", "eager"),
    "tensorflow": ("eager", "compiled"),
    "onnxruntime": ("eager",),  # one InferenceSession.run per call (the adapter's mode)
}
_FORMS = {"numpy": "float32", "torch": "functional", "jax": "linen", "tensorflow": "keras", "onnxruntime": "onnx"}
_KERAS = {
    "batch_norm": "BatchNormalization",
    "layer_norm": "LayerNormalization",
    "group_norm": "GroupNormalization",
    "rms_norm": "RMSNormalization",
}
_FLAX = {
    "batch_norm": "BatchNorm",
    "layer_norm": "LayerNorm",
    "group_norm": "GroupNorm",
    "rms_norm": "RMSNorm",
    "instance_norm": "InstanceNorm",
}
_KERAS_POLICY = {"float64": "float64", "float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def form(framework: str, norm: str) -> str:
    if framework == "tensorflow" and norm == "instance_norm":
        return "tf.nn"
    return _FORMS.get(framework, "user")


def apis(framework: str, norm: str, mode: str = "eager") -> str:
    """The native call a case times."""
    if framework == "numpy":
        return f"normcheck.reference.function({norm!r}, faithful=True)"
    if framework == "torch":
        api = f"torch.nn.functional.{norm}"
        return f"torch.compile({api})" if mode == "compiled" else api
    if framework == "jax":
        api = f"flax.linen.{_FLAX[norm]}.apply"
        return f"jax.jit({api})" if mode == "jit" else api
    if framework == "tensorflow":
        api = "tf.nn.moments + tf.nn.batch_normalization" if norm == "instance_norm" else f"keras.layers.{_KERAS[norm]}"
        return f"tf.function({api}, jit_compile=True)" if mode == "compiled" else api
    if framework == "onnxruntime":
        return _onnxruntime_impl(norm).api + " (InferenceSession.run)"
    raise ValueError(f"unknown framework {framework!r}")


def supports(framework: str, norm: str, layout: str, mode: str, pass_: str, device: str) -> str | None:
    """None if the case can run, else why not (one line)."""
    if (framework, norm) not in LAYOUTS:
        return f"{framework} has no native {norm}"
    if layout not in LAYOUTS[(framework, norm)]:
        if framework == "jax" and norm == "group_norm":
            return "flax GroupNorm groups the last axis only (channels_last)"
        return f"{apis(framework, norm)} takes no {layout} input"
    if mode not in MODES[framework]:
        return f"{framework} has no {mode} mode"
    if framework == "numpy" and pass_ == FORWARD_BACKWARD:
        return "NumPy has no automatic differentiation (forward only)"
    if framework == "numpy" and device != "cpu":
        return "NumPy runs on the CPU only"
    if framework == "onnxruntime" and pass_ == FORWARD_BACKWARD:
        return "ONNX Runtime runs inference graphs (no automatic differentiation)"
    if framework == "onnxruntime" and device != "cpu":
        return "the ONNX Runtime adapter runs the CPU execution provider only"
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


def _params(norm: str, shape: tuple[int, ...], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = affine_shape(norm, shape)
    return (1 + 0.1 * rng.standard_normal(p)).astype(np.float32), (0.1 * rng.standard_normal(p)).astype(np.float32)


def _first(out):
    return out[0] if isinstance(out, tuple | list) else out


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
    mode = mode or MODES[framework][0]
    why = supports(framework, norm, layout, mode, pass_, device) if target is None else None
    if why:
        raise ValueError(why)
    shape = tuple(int(d) for d in shape)
    builder = {
        "numpy": _numpy,
        "torch": _torch,
        "jax": _jax,
        "tensorflow": _tensorflow,
        "onnxruntime": _onnxruntime,
    }[framework]
    return builder(norm, shape, dtype, layout, mode, pass_, device, target)


# --- numpy ---------------------------------------------------------------------------------------
def _host(norm, shape, dtype, fn, api: str) -> Native:
    """A call on NumPy arrays in host memory (NumPy and ONNX Runtime take and return them): ``fn``
    with the canonical arguments, float32 running buffers, nothing to synchronize."""
    from normcheck import dtypes

    dt = dtypes.np_dtype(dtype)
    x = host_data(math.prod(shape)).reshape(shape).astype(dt, copy=False)
    w, b = (p.astype(dt) for p in _params(norm, shape))
    c = shape[1] if len(shape) > 1 else shape[0]
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    call = _canonical_call(norm, shape, lambda a, *r, **k: fn(a, *r, **k), rm, rv)
    return Native(lambda: call(x, w, b), no_sync, api, lambda out: np.asarray(out))


def _numpy(norm, shape, dtype, layout, mode, pass_, device, target):
    from normcheck import reference

    if pass_ != FORWARD:
        raise ValueError("NumPy has no automatic differentiation (forward only)")
    fn = target or reference.function(norm, faithful=True)
    api = getattr(target, "__qualname__", "target") if target else apis("numpy", norm)
    return _host(norm, shape, dtype, fn, api)


# --- onnxruntime ---------------------------------------------------------------------------------
def _onnxruntime_impl(norm: str):
    """The adapter's native-operator form (GroupNormalization-21 for group_norm)."""
    from normcheck.adapters import onnxruntime as oa

    return next(i for i in oa.ADAPTER.implementations() if i.norm == norm and i.form == "onnx")


def _onnxruntime(norm, shape, dtype, layout, mode, pass_, device, target):
    """ORT takes and returns NumPy arrays: the adapter's call is the native one (a cached session per
    shape, so the first call builds it and the timed ones only run it; the canonical arguments are
    translated to the operator's inputs and attributes, a few per-channel values)."""
    if pass_ != FORWARD:
        raise ValueError("ONNX Runtime runs inference graphs (no automatic differentiation)")
    api = _target_api(target) if target else apis("onnxruntime", norm)
    return _host(norm, shape, dtype, target or _onnxruntime_impl(norm), api)


def _canonical_call(norm: str, shape, fn, running_mean=None, running_var=None):
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


# --- torch ---------------------------------------------------------------------------------------
def _torch(norm, shape, dtype, layout, mode, pass_, device, target):
    import torch

    F = torch.nn.functional
    dev = torch.device(device)
    dt = getattr(torch, dtype)
    cuda = dev.type == "cuda"
    fmt = None
    if layout == "channels_last":
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(len(shape))
        if fmt is None:
            raise ValueError(f"torch's channels_last memory formats need a 4D or 5D input, got {len(shape)}D")

    def tensor(a: np.ndarray, shape_):
        t = torch.from_numpy(a).reshape(shape_).to(device=dev, dtype=dt)
        return t if fmt is None else t.contiguous(memory_format=fmt)

    numel = math.prod(shape)
    x = tensor(host_data(numel), shape)
    w32, b32 = _params(norm, shape)
    # torch's CPU batch_norm takes a 16-bit input with float32 parameters and buffers (as autocast does).
    pdt = torch.float32 if norm == "batch_norm" and dtype in ("float16", "bfloat16") else dt
    w, b = (torch.from_numpy(p).to(device=dev, dtype=pdt) for p in (w32, b32))
    c = shape[1] if len(shape) > 1 else shape[0]
    rm = torch.zeros(c, device=dev, dtype=torch.float32)
    rv = torch.ones(c, device=dev, dtype=torch.float32)
    native = {
        "batch_norm": F.batch_norm,
        "layer_norm": F.layer_norm,
        "group_norm": F.group_norm,
        "instance_norm": F.instance_norm,
        "rms_norm": F.rms_norm,
    }[norm]
    op = _canonical_call(norm, shape, target or native, rm, rv)
    if mode == "compiled":
        op = torch.compile(op, dynamic=False)
    sync = (lambda _: torch.cuda.synchronize(dev)) if cuda else no_sync

    if pass_ == FORWARD:

        def run():
            with torch.no_grad():
                return op(x, w, b)

    else:
        xg = x.detach().requires_grad_(True)
        wg, bg = w.detach().requires_grad_(True), b.detach().requires_grad_(True)
        inputs = (xg, wg) if norm == "rms_norm" else (xg, wg, bg)
        dy = tensor(host_data(numel, seed=1), shape)

        def run():
            y = op(xg, wg, bg)
            return (y.detach(), *torch.autograd.grad(y, inputs, dy))

    def output(out):
        y = _first(out).detach().to("cpu").contiguous()
        return y.float().numpy()

    api = _target_api(target) if target else apis("torch", norm, mode)
    return Native(run, sync, api, output)


# --- jax / flax ----------------------------------------------------------------------------------
def _jax(norm, shape, dtype, layout, mode, pass_, device, target):
    import jax
    import jax.numpy as jnp

    plat = "gpu" if device.startswith("cuda") else "cpu"
    dev = jax.devices(plat)[0]
    dt = jnp.dtype(dtype)
    phys = physical_shape(shape, layout)
    last = phys != shape
    numel = math.prod(shape)

    def array(a: np.ndarray):
        return jax.device_put(a.reshape(phys), dev).astype(dt)

    x = array(host_data(numel))
    w32, b32 = _params(norm, shape)
    if target is not None:
        w, b = (jax.device_put(p, dev).astype(dt) for p in (w32, b32))
        c = shape[1] if len(shape) > 1 else shape[0]
        rm, rv = jnp.zeros(c, jnp.float32), jnp.ones(c, jnp.float32)
        op = _canonical_call(norm, shape, target, rm, rv)

        def f(params, x):
            return op(x, params["scale"], params["bias"])

        params, has_aux = {"scale": w, "bias": b}, False
    else:
        f, params, has_aux = _flax(norm, shape, phys, dt, layout, w32, b32, dev)

    if pass_ == FORWARD:

        def step(params, x):
            return f(params, x)

    else:
        dy = array(host_data(numel, seed=1))

        def step(params, x):
            if has_aux:
                y, pull, aux = jax.vjp(f, params, x, has_aux=True)
                return (y, *pull(dy), aux)
            y, pull = jax.vjp(f, params, x)
            return (y, *pull(dy))

    if mode == "jit":
        step = jax.jit(step)

    def run():
        return step(params, x)

    def output(out):
        y = np.asarray(_first(out)).astype(np.float32)
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if last else y

    api = _target_api(target) if target else apis("jax", norm, mode)
    return Native(run, jax.block_until_ready, api, output)


def _flax(norm, shape, phys, dt, layout, w32, b32, dev):
    """``f(params, x)`` applying the flax.linen layer, its params, and whether f returns (y, aux)."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    axis = -1 if layout == "channels_last" or len(shape) <= 2 else 1
    common = {"epsilon": EPS, "dtype": dt, "param_dtype": dt}
    if norm == "batch_norm":
        module = nn.BatchNorm(use_running_average=False, axis=axis, momentum=1 - MOMENTUM, **common)
    elif norm == "layer_norm":
        module = nn.LayerNorm(**common)
    elif norm == "rms_norm":
        module = nn.RMSNorm(**common)
    elif norm == "group_norm":
        module = nn.GroupNorm(num_groups=groups(shape[1]), **common)
    elif norm == "instance_norm":
        module = nn.InstanceNorm(feature_axes=axis, **common)
    else:
        raise ValueError(f"unknown norm {norm!r}")
    small = jnp.zeros((1, *phys[1:]), dt)  # parameters depend on the feature axes only
    variables = module.init(jax.random.PRNGKey(0), small)
    params = dict(variables["params"])
    if "scale" in params:
        params["scale"] = jax.device_put(w32, dev).astype(dt)
    if "bias" in params:
        params["bias"] = jax.device_put(b32, dev).astype(dt)
    if norm == "batch_norm":
        stats = variables["batch_stats"]

        def f(params, x):
            y, updated = module.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
            return y, updated

        return f, params, True

    def g(params, x):
        return module.apply({"params": params}, x)

    return g, params, False


# --- tensorflow / keras --------------------------------------------------------------------------
def _tensorflow(norm, shape, dtype, layout, mode, pass_, device, target):
    from normcheck.adapters.tensorflow import _keras, _tf

    tf = _tf()
    dev = "/GPU:0" if device.startswith("cuda") else "/CPU:0"
    phys = physical_shape(shape, layout)
    last = phys != shape
    numel = math.prod(shape)
    dt = tf.as_dtype(dtype)

    with tf.device(dev):
        x = tf.cast(tf.convert_to_tensor(host_data(numel).reshape(phys)), dt)
        w32, b32 = _params(norm, shape)
        variables: list = []
        if target is not None:
            wv, bv = tf.Variable(tf.cast(w32, dt)), tf.Variable(tf.cast(b32, dt))
            c = shape[1] if len(shape) > 1 else shape[0]
            rm, rv = tf.Variable(tf.zeros(c)), tf.Variable(tf.ones(c))
            op = _canonical_call(norm, shape, target, rm, rv)
            variables = [wv] if norm == "rms_norm" else [wv, bv]

            def call(x):
                return op(x, wv, bv)

        elif norm == "instance_norm":
            axis = len(phys) - 1 if last else 1
            bshape = [1] * len(phys)
            bshape[axis] = shape[1]
            wv, bv = tf.Variable(tf.cast(w32, dt)), tf.Variable(tf.cast(b32, dt))
            spatial = [a for a in range(1, len(phys)) if a != axis]
            variables = [wv, bv]

            def call(x):
                mean, var = tf.nn.moments(x, axes=spatial, keepdims=True)
                return tf.nn.batch_normalization(
                    x, mean, var, tf.reshape(bv, bshape), tf.reshape(wv, bshape), variance_epsilon=EPS
                )

        else:
            keras = _keras()
            axis = -1 if last or len(shape) <= 2 else 1
            kw: dict[str, Any] = {"epsilon": EPS, "dtype": _KERAS_POLICY[dtype]}
            if norm == "batch_norm":
                layer = keras.layers.BatchNormalization(axis=axis, momentum=1 - MOMENTUM, **kw)
            elif norm == "group_norm":
                layer = keras.layers.GroupNormalization(groups=groups(shape[1]), axis=axis, **kw)
            elif norm == "layer_norm":
                layer = keras.layers.LayerNormalization(axis=-1, **kw)
            else:
                layer = keras.layers.RMSNormalization(axis=-1, **kw)
            layer.build(phys)
            gamma = layer.scale if norm == "rms_norm" else layer.gamma
            gamma.assign(w32)
            if getattr(layer, "beta", None) is not None:
                layer.beta.assign(b32)
            variables = list(layer.trainable_variables)
            training = norm == "batch_norm"

            def call(x):
                return layer(x, training=True) if training else layer(x)

        if pass_ == FORWARD:
            step = call
        else:
            dy = tf.cast(tf.convert_to_tensor(host_data(numel, seed=1).reshape(phys)), dt)

            def step(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = call(x)
                return (y, *tape.gradient(y, [x, *variables], output_gradients=dy))

        if mode == "compiled":
            step = tf.function(step, jit_compile=True)

    def run():
        with tf.device(dev):
            return step(x)

    def sync(out):
        # A one-element pull to the host that depends on the result: returns once it is computed.
        y = _first(out)
        tf.reshape(y, [-1])[:1].numpy()

    def output(out):
        y = tf.cast(_first(out), tf.float32).numpy()
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if last else y

    api = _target_api(target) if target else apis("tensorflow", norm, mode)
    return Native(run, sync, api, output)


def _target_api(target) -> str:
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
    return f"{mod}.{name}" if mod and mod != "__main__" else name


def loaded_frameworks() -> set[str]:
    """The frameworks already imported in this process (importing none)."""
    return {f for f, m in (("torch", "torch"), ("jax", "jax"), ("tensorflow", "tensorflow")) if m in sys.modules}
