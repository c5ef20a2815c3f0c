"""JAX: the Flax normalization layers (``flax.linen``, ``flax.nnx``) and ``jax.nn.standardize``.

Importing this module imports neither jax nor flax; they are imported when an implementation runs
(or :meth:`JaxAdapter.devices`/``to_native``/``implementations`` is called). torch and tensorflow
are never imported. No platform is forced: the layers run on JAX's default device (the CPU when
``JAX_PLATFORMS=cpu`` or no accelerator is present).

Forms (each ``Impl.fn`` follows the canonical convention of :mod:`normcheck.adapters.base`):

- ``linen``: ``flax.linen.{BatchNorm, LayerNorm, GroupNorm, RMSNorm, InstanceNorm}`` applied with
  ``module.apply(variables, x)``; ``mode="eager"`` runs op by op, ``mode="jit"`` runs one
  ``jax.jit`` of the apply, built once per (norm, layout, module configuration, train/eval) and
  cached, so a second call of the same shape reuses the compiled program (:data:`TRACES` counts
  the traces).
- ``nnx``: ``flax.nnx.{BatchNorm, LayerNorm, GroupNorm, RMSNorm, InstanceNorm}``, a layer object
  built per call (``rngs=nnx.Rngs(0)``), its ``Param``/``BatchStat`` values set from the canonical
  arguments. nnx stores the LayerNorm/RMSNorm affine flattened, with shape
  ``(prod(normalized_shape),)``, and reshapes it onto the feature axes itself: the canonical weight
  is handed over as ``weight.reshape(-1)``. ``mode="jit"`` builds the layer inside one ``jax.jit``
  from its traced state and calls it (the program ``nnx.jit`` traces for a layer argument), cached
  per configuration like linen's; ``mode="eager"`` runs op by op.
- Op-by-op dispatch compiles every primitive for every new shape (some 20 small programs per
  example with its gradient, 30-45 ms each on this CPU); on a stream of fresh shapes jit runs 2.5x
  as many calls per second, 3x with the VJP (``scripts/audit_timing.py``). So the audit runs both
  Flax APIs under ``jax.jit``, as training steps run them, and the eager forms are extended (the
  thorough profile, ``--all-forms``).
- ``standardize``: ``jax.nn.standardize(x, axis, epsilon=eps)`` for the axis sets of layer_norm,
  instance_norm and (training, no running buffers) batch_norm, without affine parameters:
  multiplying by a weight in the adapter would not be the native call, so weight/bias raise
  :class:`Unsupported`. ``jax.nn.standardize`` is itself decorated with ``jax.jit``, hence its
  ``mode="jit"``.

Conventions (the translation of each lives in exactly one place below; :data:`CONVENTIONS`):

- momentum: flax keeps the fraction ``momentum`` of the old statistic
  (``new = m_flax * old + (1 - m_flax) * batch``, default 0.99): ``m_flax = 1 - m_torch``
  (:func:`_flax_momentum`);
- stored variance: flax's running ``var`` averages the BIASED batch variance, the canonical one
  the unbiased (``n/(n-1)``) one. The adapter feeds the canonical old buffer in, and turns flax's
  new value back with ``torch_new = kept + (flax_new - kept) * n/(n-1)``,
  ``kept = (1 - m) * old`` (:func:`_canonical_running_var`); the running mean needs nothing;
- default eps: 1e-5 for BatchNorm and ``standardize``, 1e-6 for LayerNorm, GroupNorm, RMSNorm and
  InstanceNorm; the canonical eps is always passed explicitly (rms_norm's ``eps=None`` is the
  input dtype's machine epsilon, as in torch);
- channel axis: -1 (NHWC). BatchNorm takes ``axis=1`` and InstanceNorm ``feature_axes=1`` for the
  channels-first input; GroupNorm groups the LAST axis only, so its one layout is
  ``channels_last`` (the adapter transposes NCHW -> NHWC and back);
- train/eval: ``use_running_average = not training``; in training the apply is run with
  ``mutable=["batch_stats"]`` and the new statistics are copied back into the NumPy buffers;
- variance: every Flax layer keeps its default ``use_fast_variance=True``
  (``E[x^2] - E[x]^2`` in float32), and ``standardize`` its default ``algorithm="fast"``; a
  deviation on inputs with a large common offset is the framework's, and is left visible;
- dtypes: ``dtype`` is the input's (the output keeps it, statistics are float32 at least);
  ``param_dtype`` is float32, Flax's default, or for a 16-bit input the input's (a configuration,
  :data:`PARAM_DTYPE_CONFIG`); 16-bit inputs keep float32 running buffers.

float64: ``jax_enable_x64`` is a process-wide switch that changes every JAX computation in the
process, so this adapter never turns it on. Without it JAX silently computes float64 inputs in
float32, so float64 is listed among an Impl's dtypes only when x64 is enabled (``jax.config`` if
jax is loaded, else the ``JAX_ENABLE_X64`` environment variable), and a float64 input raises
:class:`Unsupported` when it is not.

Compilation cache: :func:`setup` (run before normcheck's first JAX call in a process) points JAX's
persistent compilation cache at :func:`cache_dir` (``$XDG_CACHE_HOME/normcheck/jax``, by default
``~/.cache/normcheck/jax``) with no minimum compile time or size, so a second run loads the
programs a first one compiled. ``NORMCHECK_NO_CACHE=1`` (``normcheck audit --no-cache``) turns
JAX's persistent cache off; a cache folder the user gave JAX is left as it is. :data:`COMPILES`
counts compilations and cache hits from ``jax.monitoring``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from normcheck import dtypes as _dtypes
from normcheck import spec as _spec
from normcheck.adapters.base import Adapter, Impl, Unsupported, spell_axes
from normcheck.adapters.jax import programs
from normcheck.adapters.jax.runtime import COMPILES, cache_dir, put, setup
from normcheck.adapters.jax.standardize import standardize

__all__ = [
    "ADAPTER",
    "AXIS_CONFIG",
    "COMPILES",
    "CONVENTIONS",
    "FLAX_CLASSES",
    "FLAX_CONFIGS",
    "PARAM_DTYPE_CONFIG",
    "STANDARDIZE_CONFIGS",
    "TRACES",
    "JaxAdapter",
    "cache_dir",
    "cast_params",
    "config_axes",
    "reduction_options",
    "setup",
]

CONVENTIONS: dict[str, Any] = {
    "stored_variance": "biased",  # flax's running var averages the biased batch variance
    "momentum": "kept fraction (1 - m)",  # new = m_flax * old + (1 - m_flax) * batch, m_flax = 1 - m_torch
    "default_momentum": 0.99,  # i.e. torch momentum 0.01
    "default_eps": {
        "BatchNorm": 1e-5,
        "LayerNorm": 1e-6,
        "GroupNorm": 1e-6,
        "RMSNorm": 1e-6,
        "InstanceNorm": 1e-6,
        "jax.nn.standardize": 1e-5,
    },
    "eps": "inside_sqrt",  # rsqrt(var + eps)
    "channel_axis": -1,  # NHWC; GroupNorm accepts nothing else
    "train_eval": "use_running_average = not training (mutable=['batch_stats'] to update)",
    "variance_algorithm": "fast: E[x^2] - E[x]^2 (use_fast_variance=True, standardize algorithm='fast')",
    "statistics_dtype": "at least float32 (force_float32_reductions=True)",
}

#: Traces of the cached jitted applies, by ``"linen/<norm>/<layout>"``: a Python side effect that
#: runs only while JAX traces, so it stays put when a call reuses the compiled program.
TRACES: Counter[str] = Counter()

#: Configuration axes (``Impl.configs``): the constructor options of Flax's norm layers that change
#: the arithmetic, default first: the one-pass ``E[x^2] - E[x]^2`` or two-pass variance, and statistics
#: reduced in float32 or in the input's dtype. ``jax.nn.standardize``: its variance ``algorithm``.
FLAX_CONFIGS = {
    "linen": (("use_fast_variance", (True, False)), ("force_float32_reductions", (True, False))),
    "nnx": (("use_fast_variance", (True, False)),),  # nnx's layers have no force_float32_reductions
}
#: LayerNorm's and RMSNorm's ``reduction_axes``, and standardize's ``axis``, spelled every way the API
#: accepts (``normcheck.adapters.base.spell_axes``); ``feature_axes`` keeps its spelling, which shapes
#: the parameters.
AXIS_CONFIG = ("axis_spelling", ("negative", "positive", "descending"))
#: The Flax layers' ``param_dtype`` for a 16-bit input: float32 (Flax's default: float32 parameters
#: with a 16-bit ``dtype``, the usual mixed-precision split) or the input's dtype; a float32 or float64
#: input keeps its own either way (float32 parameters would round a float64 case's weight).
PARAM_DTYPE_CONFIG = ("param_dtype", ("float32", "input"))
STANDARDIZE_CONFIGS = (("algorithm", ("fast", "stable")), ("axis_spelling", ("positive", "negative", "descending")))

#: The Flax layer class of each norm (the same name in ``flax.linen`` and ``flax.nnx``).
FLAX_CLASSES = {
    "batch_norm": "BatchNorm",
    "layer_norm": "LayerNorm",
    "group_norm": "GroupNorm",
    "rms_norm": "RMSNorm",
    "instance_norm": "InstanceNorm",
}
_TRUE = ("1", "true", "t", "yes", "y", "on")
#: flax's own linen classes under jit take eps as an argument (see :func:`_run_linen`); a test turns
#: it off to show the outputs are bit-identical to eps compiled in as a literal.
DYNAMIC_EPS = True


def _x64_enabled() -> bool:
    jax = sys.modules.get("jax")
    if jax is not None:
        return bool(jax.config.jax_enable_x64)
    return os.environ.get("JAX_ENABLE_X64", "").strip().lower() in _TRUE


def _check_dtype(dt: np.dtype) -> None:
    if dt == np.float64 and not _x64_enabled():
        raise Unsupported(
            "float64 needs jax_enable_x64, a process-wide switch this adapter leaves off "
            "(JAX would silently compute in float32)"
        )


def _flax_momentum(momentum) -> float:
    """Torch's momentum (weight of the batch statistic) -> flax's (weight of the old one)."""
    if momentum is None:
        raise Unsupported("momentum=None (cumulative average): flax has only an exponential moving average")
    return 1.0 - float(momentum)


def _canonical_running_var(flax_new, old, momentum: float, n: int) -> np.ndarray:
    """Flax's new running var (biased batch variance) -> the canonical one (unbiased), in float64.

    flax: ``new = (1 - m) old + m var_biased``; canonical: ``(1 - m) old + m var_biased n/(n-1)``.
    """
    kept = (1.0 - momentum) * np.asarray(old, np.float64)
    return kept + (np.asarray(flax_new, np.float64) - kept) * (n / (n - 1))


def _stats_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if _dtypes.is_16bit(dt) else dt


# --- running the native layers ---------------------------------------------------------------


#: User linen module classes checked as module targets, by their form ("linen:<module.qualname>:<id>").
_USER_LINEN: dict[str, type] = {}


@functools.lru_cache(maxsize=512)
def _linen_runner(norm: str, layout: str, cfg: tuple, training: bool, mode: str, form: str = "linen"):
    """``run(variables, x) -> (y, new batch_stats or None)`` for one linen module configuration
    (``form``: "linen" for flax's own class, a key of :data:`_USER_LINEN` for a user's).

    Cached, so the jitted function (and its compilation cache) is reused across calls.
    """
    import flax.linen as nn

    cls = _USER_LINEN[form] if form != "linen" else getattr(nn, FLAX_CLASSES[norm])
    module = cls(**dict(cfg))
    key = f"linen/{norm}/{layout}"

    def run(variables, x, epsilon=None):
        if mode == "jit":
            TRACES[key] += 1  # runs at trace time only
        m = module if epsilon is None else cls(**dict(cfg), epsilon=epsilon)
        if training:
            y, updated = m.apply(variables, x, mutable=["batch_stats"])
            return y, updated["batch_stats"]
        return m.apply(variables, x), None

    if mode == "jit":
        return programs.jit(run, ("linen", norm, layout, cfg, training) if form == "linen" else None)
    return run


def _run_linen(norm, layout, mode, cfg, x, params, stats, training, form="linen"):
    """Apply the linen module. Under jit, flax's own classes get ``epsilon`` as an argument of the
    jitted apply (a weakly typed scalar, rounded to float32 as the literal would be: flax only adds
    it to the float32 variance), so one compiled program serves every eps of a shape."""
    variables = {"params": params}
    if stats is not None:
        variables["batch_stats"] = stats
    if mode == "jit" and form == "linen":
        static, eps = _jit_config(cfg)
        return _linen_runner(norm, layout, static, training, mode, form)(variables, x, eps)
    return _linen_runner(norm, layout, tuple(sorted(cfg.items())), training, mode, form)(variables, x)


def _jit_config(cfg: dict[str, Any]) -> tuple[tuple, float | None]:
    """(the static part of a jitted layer's configuration, its eps argument): eps is an argument
    with :data:`DYNAMIC_EPS`, else part of the static configuration (and the argument None)."""
    if DYNAMIC_EPS:
        return tuple(sorted((k, v) for k, v in cfg.items() if k != "epsilon")), cfg["epsilon"]
    return tuple(sorted(cfg.items())), None


def nnx_class(norm: str):
    """``flax.nnx``'s class of ``norm``; :class:`Unsupported` (the nnx checks skip with the reason)
    where the installed Flax lacks it or ``nnx.Variable.set_value``, which the nnx forms call: both
    are there from flax 0.12.1 (0.10.2 and 0.11.2 have neither ``set_value`` nor ``nnx.InstanceNorm``)."""
    import flax
    from flax import nnx

    cls = getattr(nnx, FLAX_CLASSES[norm], None)
    if cls is None or not hasattr(nnx.Variable, "set_value"):
        missing = f"nnx.{FLAX_CLASSES[norm]}" if cls is None else "nnx.Variable.set_value"
        raise Unsupported(f"flax {flax.__version__} has no {missing} (the nnx forms need flax >= 0.12.1)")
    return cls


def nnx_layer(norm, num_features, cfg, params, stats):
    """The ``flax.nnx`` layer of ``cfg`` (``rngs=nnx.Rngs(0)``) with its Param/BatchStat values
    set from ``params``/``stats`` (device arrays, or tracers inside a jitted function)."""
    from flax import nnx

    layer = nnx_class(norm)(num_features, **cfg, rngs=nnx.Rngs(0))
    for name, value in params.items():
        # nnx keeps every affine parameter as a vector of num_features (LayerNorm/RMSNorm: flattened).
        getattr(layer, name).set_value(value.reshape(-1))
    if stats is not None:
        layer.mean.set_value(stats["mean"])
        layer.var.set_value(stats["var"])
    return layer


@functools.lru_cache(maxsize=512)
def _nnx_runner(norm: str, cfg: tuple, num_features: int):
    """``jax.jit`` of ``run(params, stats, x, epsilon) -> (y, new stats or None)``: the nnx layer
    built from its state inside the trace and called, the program ``nnx.jit`` traces for a layer
    argument (the configuration static, the Param/BatchStat values traced), with ``epsilon`` an
    argument as for linen (:func:`_run_linen`). Cached per configuration."""
    key = f"nnx/{norm}"

    def run(params, stats, x, epsilon):
        TRACES[key] += 1  # runs at trace time only
        c = dict(cfg) if epsilon is None else {**dict(cfg), "epsilon": epsilon}
        layer = nnx_layer(norm, num_features, c, params, stats)
        y = layer(x)
        return y, ({"mean": layer.mean[...], "var": layer.var[...]} if stats is not None else None)

    return programs.jit(run, ("nnx", norm, cfg, num_features))


def _run_nnx(norm, mode, cfg, x, params, stats, num_features):
    if mode == "jit":
        static, eps = _jit_config(cfg)
        return _nnx_runner(norm, static, num_features)(params, stats, x, eps)
    # eager: the affine vectors are flattened on the host (a device reshape compiles per shape)
    host = {k: put(np.asarray(v).reshape(-1)) for k, v in params.items()}
    layer = nnx_layer(norm, num_features, cfg, host, stats)
    y = layer(x)
    new = {"mean": layer.mean[...], "var": layer.var[...]} if stats is not None else None
    return y, new


def _native(form, layout, mode, norm, cfg, x, params, stats=None, training=False, num_features=0):
    """Run the native layer on the NumPy input ``x`` (channels-first); return NumPy y and new stats."""

    last = layout == "channels_last" and x.ndim > 2
    xn = put(np.moveaxis(x, 1, -1) if last else x)
    p = {k: put(v) for k, v in cast_params(params, cfg).items()}
    st = None if stats is None else {k: put(v) for k, v in stats.items()}
    if form == "linen" or form in _USER_LINEN:
        y, new = _run_linen(norm, layout, mode, cfg, xn, p, st, training, form)
    elif form == "nnx":
        y, new = _run_nnx(norm, mode, cfg, xn, p, st, num_features)
    else:
        raise ValueError(f"unknown form {form!r}")
    y = np.array(y)
    if last:
        y = np.ascontiguousarray(np.moveaxis(y, -1, 1))
    return y, new


def _affine(weight, bias, dt):
    """Flax parameters and use_scale/use_bias from the canonical weight/bias (in the input dtype)."""
    params = {}
    if weight is not None:
        params["scale"] = np.asarray(weight).astype(dt, copy=False)
    if bias is not None:
        params["bias"] = np.asarray(bias).astype(dt, copy=False)
    flags = {"use_scale": weight is not None}
    return params, flags


def _common(x, eps):
    return {"epsilon": float(eps), "dtype": x.dtype, "param_dtype": x.dtype}


# --- the norms, canonical arguments in --------------------------------------------------------


def _batch_norm(form, layout, mode, input, running_mean, running_var, weight, bias, training, momentum, eps, config):
    x = np.asarray(input)
    p = _spec.plan("batch_norm", x.shape)
    training = bool(training)
    given = running_mean is not None or running_var is not None
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    n = p.reduce_size
    if training and given and n < 2:
        raise Unsupported("training with one value per channel: the unbiased running variance is undefined")
    # Only a training step with buffers keeps flax's update; otherwise flax's default momentum (one jit entry).
    m = _flax_momentum(momentum) if training and given else CONVENTIONS["default_momentum"]
    params, flags = _affine(weight, bias, x.dtype)
    cfg = {
        **_common(x, eps),
        **flags,
        "use_bias": bias is not None,
        "use_running_average": not training,
        "axis": -1 if layout == "channels_last" else 1,
        "momentum": m,
    }
    cfg.update(reduction_options(config, (), x.ndim, x.dtype))
    c, sdt = x.shape[1], _stats_dtype(x.dtype)
    old_mean = np.zeros(c, sdt) if running_mean is None else np.array(running_mean)
    old_var = np.ones(c, sdt) if running_var is None else np.array(running_var)
    y, new = _native(form, layout, mode, "batch_norm", cfg, x, params, {"mean": old_mean, "var": old_var}, training, c)
    if training and given:
        torch_m = 1.0 - m
        if running_mean is not None:
            running_mean[...] = np.asarray(new["mean"]).astype(running_mean.dtype)
        if running_var is not None:
            running_var[...] = _canonical_running_var(new["var"], old_var, torch_m, n).astype(running_var.dtype)
    return y


def _layer_norm(form, layout, mode, input, normalized_shape, weight, bias, eps, config):
    x = np.asarray(input)
    p = _spec.plan("layer_norm", x.shape, normalized_shape=normalized_shape)
    k = len(p.reduce)
    axes = tuple(range(-k, 0))
    params, flags = _affine(weight, bias, x.dtype)
    cfg = {**_common(x, eps), **flags, "use_bias": bias is not None, "reduction_axes": axes, "feature_axes": axes}
    cfg.update(reduction_options(config, axes, x.ndim, x.dtype))
    return _native(form, layout, mode, "layer_norm", cfg, x, params, num_features=int(np.prod(p.affine_shape)))[0]


def _rms_norm(form, layout, mode, input, normalized_shape, weight, eps, config):
    x = np.asarray(input)
    p = _spec.plan("rms_norm", x.shape, normalized_shape=normalized_shape)
    eps = _spec.get("rms_norm").resolve_eps(eps, x.dtype)  # None: machine epsilon of the input dtype
    axes = tuple(range(-len(p.reduce), 0))
    params, flags = _affine(weight, None, x.dtype)
    cfg = {**_common(x, eps), **flags, "reduction_axes": axes, "feature_axes": axes}
    cfg.update(reduction_options(config, axes, x.ndim, x.dtype))
    return _native(form, layout, mode, "rms_norm", cfg, x, params, num_features=int(np.prod(p.affine_shape)))[0]


def _group_norm(form, layout, mode, input, num_groups, weight, bias, eps, config):
    x = np.asarray(input)
    _spec.plan("group_norm", x.shape, num_groups=num_groups)
    if layout != "channels_last":
        raise Unsupported("flax GroupNorm groups the last axis only (channels_last)")
    params, flags = _affine(weight, bias, x.dtype)
    cfg = {**_common(x, eps), **flags, "use_bias": bias is not None, "num_groups": int(num_groups)}
    cfg.update(reduction_options(config, (), x.ndim, x.dtype))
    return _native(form, layout, mode, "group_norm", cfg, x, params, num_features=x.shape[1])[0]


def _instance_norm(
    form, layout, mode, input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps, config
):
    x = np.asarray(input)
    _spec.plan("instance_norm", x.shape)
    if running_mean is not None or running_var is not None or not use_input_stats:
        raise Unsupported("flax InstanceNorm tracks no running statistics")
    params, flags = _affine(weight, bias, x.dtype)
    axis = -1 if layout == "channels_last" else 1
    cfg = {**_common(x, eps), **flags, "use_bias": bias is not None, "feature_axes": axis}
    cfg.update(reduction_options(config, (), x.ndim, x.dtype))
    return _native(form, layout, mode, "instance_norm", cfg, x, params, num_features=x.shape[1])[0]


_BODIES = {
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "rms_norm": _rms_norm,
    "group_norm": _group_norm,
    "instance_norm": _instance_norm,
}


def _signature(s: _spec.Spec) -> inspect.Signature:
    params = []
    for p in s.params:
        name, sep, default = p.partition("=")
        d = _spec._literal(default) if sep else inspect.Parameter.empty
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d))
    return inspect.Signature(params)


def _function(norm: str, form: str, layout: str, mode: str):
    """The canonical-signature function of one native implementation."""
    s = _spec.get(norm)
    sig = _signature(s)

    axes = config_axes(form, norm)

    def fn(*args, **kwargs):
        config = {k: kwargs.pop(k) for k, _ in axes if k in kwargs}  # a configuration's options
        a = sig.bind(*args, **kwargs)
        a.apply_defaults()
        _check_dtype(np.asarray(a.arguments["input"]).dtype)
        if form == "standardize":
            return standardize(norm, a.arguments, config)
        return _BODIES[norm](form, layout, mode, **a.arguments, config=config)

    fn.__signature__ = sig
    fn.__name__ = fn.__qualname__ = norm
    fn.__doc__ = f"{s.title} through {_api(norm, form)} ({layout}, {mode}); canonical signature."
    return fn


def linen_layer_function(norm: str, cls, *, layout: str | None = None, mode: str = "jit"):
    """A user's ``flax.linen.Module`` class, constructed like ``flax.linen.<the norm's module>``
    (``epsilon``, ``use_scale``/``use_bias``, ``axis``/``num_groups``/``reduction_axes``,
    ``momentum`` in flax's convention, params ``scale``/``bias``, ``batch_stats`` ``mean``/``var``),
    behind the canonical NumPy signature: the conventions translated as for flax's own module
    (``normcheck check`` module targets). Channel norms run channels-last, flax's default."""
    form = f"linen:{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}:{id(cls)}"
    _USER_LINEN[form] = cls
    if layout is None:
        layout = "channels_last" if norm in ("batch_norm", "group_norm", "instance_norm") else "channels_first"
    return _function(norm, form, layout, mode)


def reduction_options(config: dict[str, Any], axes: tuple, ndim: int, dtype=None) -> dict[str, Any]:
    """A Flax layer's constructor options from a configuration: its ``axis_spelling`` becomes the
    ``reduction_axes`` (of the default negative ``axes``) spelled that way, its ``param_dtype`` the
    dtype of a ``dtype`` input's parameters (:data:`PARAM_DTYPE_CONFIG`), the rest passes as is."""
    options = dict(config)
    spelling = options.pop("axis_spelling", None)
    if spelling is not None:
        options["reduction_axes"] = spell_axes(axes, ndim, spelling)
    if options.pop("param_dtype", "float32") == "float32" and dtype is not None and np.dtype(dtype).itemsize == 2:
        options["param_dtype"] = np.dtype(np.float32)
    return options


def cast_params(params: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The layer's parameters in its ``param_dtype`` (from the input's 16-bit dtype to float32: exact)."""
    return {k: np.asarray(v).astype(cfg["param_dtype"], copy=False) for k, v in params.items()}


def config_axes(form: str, norm: str) -> tuple:
    """The configuration axes of a form: Flax's own layers (RMSNorm has no mean, so no variance
    algorithm) and ``jax.nn.standardize``; a user's linen class has none (its constructor is its own)."""
    if form == "standardize":
        return STANDARDIZE_CONFIGS
    axes = FLAX_CONFIGS.get(form, ())
    if norm == "rms_norm":
        axes = tuple(a for a in axes if a[0] != "use_fast_variance")
    if form not in FLAX_CONFIGS:
        return axes
    return (*axes, *((AXIS_CONFIG,) if norm in ("layer_norm", "rms_norm") else ()), PARAM_DTYPE_CONFIG)


def _api(norm: str, form: str) -> str:
    if form == "standardize":
        return "jax.nn.standardize"
    return f"flax.{form}.{FLAX_CLASSES[norm]}"


# (norm, form, layout, mode): what each native call is exposed as.
_LINEN_SET = (
    ("batch_norm", "channels_first"),
    ("batch_norm", "channels_last"),
    ("layer_norm", "channels_first"),
    ("group_norm", "channels_last"),
    ("rms_norm", "channels_first"),
    ("instance_norm", "channels_first"),
    ("instance_norm", "channels_last"),
)
_NNX_SET = (
    ("batch_norm", "channels_first"),
    ("layer_norm", "channels_first"),
    ("group_norm", "channels_last"),
    ("rms_norm", "channels_first"),
    ("instance_norm", "channels_first"),
)
_STANDARDIZE_SET = ("batch_norm", "instance_norm", "layer_norm")

_NOTES = {
    "linen": "flax.linen module.apply; use_fast_variance at its default (True)",
    "nnx": "flax.nnx layer built per call (rngs=nnx.Rngs(0)), under jit inside the jitted function from its traced state; use_fast_variance at its default (True)",
    "standardize": "jax.nn.standardize (itself jax.jit-decorated), algorithm='fast' (default); no affine, no running stats",
}


class JaxAdapter(Adapter):
    name = "jax"
    module = "jax"
    parts = frozenset({"autodiff", "second_order", "conventions", "bench", "port", "equinox", "haiku", "linen_class"})
    modules = ("jax", "flax", "jaxlib")
    array_name = "jax.Array"
    immutable_arrays = True
    cost, processes = 4, 2  # the slowest (a compile per new shape): two processes, started first
    check_processes = 2  # a check of a JAX target: each process compiles its own share's programs
    packages = ("flax", "jax", "jaxlib")
    default_eps = tuple(dict.fromkeys(e for e in CONVENTIONS["default_eps"].values() if e))
    roof_devices = ("cuda",)
    module_bases = (
        ("equinox", "equinox", "Module"),
        ("haiku", "haiku", "Module"),
        ("flax", "flax.linen", "Module"),
        ("nnx", "flax.nnx", "Module"),
    )
    ecosystems: Mapping[str, str] = {
        "equinox": "equinox",
        "haiku": "haiku",
        "flax": "linen_class",
    }  # flax: with --init/--arg
    layer_kinds: Mapping[str, str] = {"flax": "flax.linen"}
    unsupported_kinds: Mapping[str, str] = {
        "nnx": "flax.nnx layer targets are not supported yet; check a flax.linen module, or wrap the layer in a "
        "function with the canonical signature of {norm} (see normcheck.reference.{norm})"
    }
    first_run_note = "JAX compiles a program for every new shape and keeps it in {folder}"

    def layer_function(self, kind, norm, cls):
        return linen_layer_function(norm, cls)

    def owns(self, x) -> bool:
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(x, jax.Array)

    def devices(self) -> list[str]:
        jax = setup()
        return [f"{d.platform}:{d.id}" for d in jax.devices()]

    def _device(self, device: str):
        import jax

        platform, _, index = device.partition(":")
        found = [d for d in jax.devices(platform) if not index or d.id == int(index)]
        if not found:
            raise ValueError(f"no JAX device {device!r}; have {self.devices()}")
        return found[0]

    def compiled_function(self, fn, static: tuple[int, ...]):
        """``jax.jit(fn, static_argnums=static)``: a function target runs under ``jax.jit``, as JAX
        users run their norms (one XLA program per shape, kept in the persistent cache)."""
        jax = setup()
        return jax.jit(fn, static_argnums=static)

    def untraceable(self, error: BaseException) -> bool:
        """JAX's errors for Python control flow or NumPy conversion of a traced value, or a traced
        value closed over where a constant is needed (a ``custom_jvp`` rule's eps)."""
        import jax

        if isinstance(error, TypeError) and "Tracer" in str(error):
            return True
        kinds = tuple(
            getattr(jax.errors, k)
            for k in (
                "ConcretizationTypeError",
                "TracerBoolConversionError",
                "TracerIntegerConversionError",
                "TracerArrayConversionError",
                "NonConcreteBooleanIndexError",
                "UnexpectedTracerError",
            )
            if hasattr(jax.errors, k)
        )
        return isinstance(error, kinds)

    def to_native(self, a, *, device=None):
        jax = setup()
        import jax.numpy as jnp

        a = np.asarray(a)
        _check_dtype(a.dtype)
        if device is None:
            return jnp.array(a, copy=True)
        return jax.device_put(a, self._device(device))

    def to_numpy(self, x):
        return np.array(x)  # a writable copy; bfloat16 comes back as ml_dtypes.bfloat16

    def compile_stats(self) -> dict[str, float]:
        """:data:`COMPILES`, and the executables of normcheck's store (:mod:`programs`):
        ``stored_loaded`` (neither traced, lowered nor compiled) and ``stored_kept``."""
        return {**COMPILES, **{f"stored_{k}": v for k, v in programs.STORED.items()}}

    def implementations(self) -> list[Impl]:
        dts = ("float64",) if _x64_enabled() else ()
        dts += ("float32", "float16", "bfloat16")
        combos = [("linen", norm, layout, mode) for mode in ("eager", "jit") for norm, layout in _LINEN_SET]
        combos += [("nnx", norm, layout, mode) for mode in ("eager", "jit") for norm, layout in _NNX_SET]
        combos += [("standardize", norm, "channels_first", "jit") for norm in _STANDARDIZE_SET]
        out = []
        for form, norm, layout, mode in combos:
            s = _spec.get(norm)
            out.append(
                Impl(
                    "jax",
                    norm,
                    form,
                    _function(norm, form, layout, mode),
                    api=_api(norm, form),
                    dtypes=dts,
                    layout=layout,
                    mode=mode,
                    running_stats=s.has_running_stats and form != "standardize" and norm != "instance_norm",
                    stateful=form == "nnx",
                    notes=_NOTES[form],
                    configs=config_axes(form, norm),
                    # op-by-op dispatch compiles every primitive per new shape, some 20 programs
                    # an example with its gradient: the audit runs both Flax APIs under jax.jit
                    # (as training steps run them), the thorough profile op by op too
                    extended=form in ("linen", "nnx") and mode == "eager",
                )
            )
        return out


ADAPTER = JaxAdapter()
