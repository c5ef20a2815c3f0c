"""Each framework's own autodiff of its native norms, behind canonical NumPy arrays.

:func:`vjp` ``(impl, case, dy)`` returns the vector-Jacobian product of the native norm that
``impl`` (an :class:`normcheck.adapters.Impl`) exposes, at the case's input and parameters, for the
output cotangent ``dy``: ``{"input": dx, "weight": dw, "bias": db}`` (weight/bias only where the
case has them), NumPy arrays in the native gradient dtype, channels-first like the case. One small
function per framework:

- torch: ``requires_grad`` leaves and ``backward(dy)`` through ``torch.nn.functional`` or a
  freshly built module whose parameters are those leaves (channels_last layouts keep their memory
  format);
- jax: ``jax.vjp`` over ``module.apply`` (linen; ``jax.jit`` of the whole VJP in the jit mode),
  over ``nnx.merge(graphdef, params, rest)(x)`` (eager nnx; in the jit mode ``jax.jit`` of the
  VJP over the layer built from its traced state) and over ``jax.nn.standardize``;
- tensorflow: ``tf.GradientTape`` over a freshly built Keras layer (under
  ``tf.function(jit_compile=True)`` in the compiled mode) and over the ``tf.nn.moments`` +
  ``tf.nn.batch_normalization`` composition.

Every convention (momentum, channel axis, dtype policy, eps, what is Unsupported) is the adapter's:
the helpers of :mod:`normcheck.adapters.torch`, ``.jax`` and ``.tensorflow`` are imported, not
restated. Training mode differentiates through the batch statistics; the running-buffer update is
not differentiated (no framework does). Frameworks without autodiff (NumPy, user functions) raise
:class:`~normcheck.adapters.Unsupported`.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from normcheck import reference
from normcheck.adapters.base import Unsupported
from normcheck.case import Case

__all__ = ["FRAMEWORKS", "jax_vjp", "tensorflow_vjp", "torch_vjp", "vjp"]


def _arguments(case: Case) -> dict[str, Any]:
    """The case's canonical arguments, defaults applied (fresh copies)."""
    sig = inspect.signature(reference.function(case.spec))
    bound = sig.bind(case.x.copy(), **case.kwargs())
    bound.apply_defaults()
    return dict(bound.arguments)


def _wanted(case: Case) -> tuple[str, ...]:
    return ("input", *(k for k in ("weight", "bias") if getattr(case, k) is not None))


def _moveaxis(a: np.ndarray, last: bool, back: bool = False) -> np.ndarray:
    if not last or a.ndim <= 2:
        return a
    return np.ascontiguousarray(np.moveaxis(a, -1, 1) if back else np.moveaxis(a, 1, -1))


# --- torch -----------------------------------------------------------------------------------


def _torch_module(ta, c, w, b):
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


def torch_vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``backward(dy)`` through the torch functional or module form of ``impl``."""
    from normcheck.adapters import torch as ta

    torch = ta._torch()
    c = ta._Call(case.spec, _arguments(case), impl.layout)
    c.x = c.x.detach().requires_grad_(True)  # detach keeps the channels_last strides
    leaves = {"input": c.x}
    for k in ("weight", "bias"):
        t = getattr(c, k)
        if t is not None:
            t = t.detach().requires_grad_(True)
            setattr(c, k, t)
            leaves[k] = t
    with torch.enable_grad():
        if impl.form == "functional":
            y, _ = ta.FORMS["functional"](c)
        elif impl.form == "module":
            y = _torch_module(ta, c, c.weight, c.bias)(c.x)
        else:
            raise Unsupported(f"no torch autodiff for the {impl.form} form")
        y.backward(ta.ADAPTER.to_native(dy).to(y.dtype))
    out = {}
    for k in _wanted(case):
        g = leaves[k].grad
        out[k] = np.zeros(getattr(case, "x" if k == "input" else k).shape) if g is None else ta.ADAPTER.to_numpy(g)
    return out


# --- jax -------------------------------------------------------------------------------------


def _flax_config(ja, case: Case, a: dict[str, Any], layout: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(module config, params, num_features) as the jax adapter builds them for this case."""
    from normcheck import spec as _spec

    norm, x = case.norm, np.asarray(a["input"])
    w, b = a.get("weight"), a.get("bias")
    params, flags = ja._affine(w, b, x.dtype)
    cfg = {**ja._common(x, case.spec.resolve_eps(a.get("eps"), x.dtype)), **flags}
    if norm in ("batch_norm", "instance_norm", "group_norm", "layer_norm"):
        cfg["use_bias"] = b is not None
    if norm == "batch_norm":
        training = bool(a["training"])
        given = a.get("running_mean") is not None
        momentum = ja._flax_momentum(a["momentum"]) if training and given else ja.CONVENTIONS["default_momentum"]
        cfg.update(use_running_average=not training, axis=-1 if layout == "channels_last" else 1, momentum=momentum)
        return cfg, params, x.shape[1]
    if norm == "instance_norm":
        if a.get("running_mean") is not None or not a["use_input_stats"]:
            raise Unsupported("flax InstanceNorm tracks no running statistics")
        cfg["feature_axes"] = -1 if layout == "channels_last" else 1
        return cfg, params, x.shape[1]
    if norm == "group_norm":
        if layout != "channels_last":
            raise Unsupported("flax GroupNorm groups the last axis only (channels_last)")
        cfg["num_groups"] = int(a["num_groups"])
        return cfg, params, x.shape[1]
    p = case.plan()
    axes = tuple(range(-len(p.reduce), 0))
    cfg.update(reduction_axes=axes, feature_axes=axes)
    if norm == "rms_norm":
        cfg["epsilon"] = float(_spec.get("rms_norm").resolve_eps(a.get("eps"), x.dtype))
    return cfg, params, int(np.prod(p.affine_shape))


_JAX_VJPS: dict[tuple, Any] = {}


def _cached(key: tuple, build):
    """``_JAX_VJPS[key]``, made by ``build()`` on first use (the cache is bounded)."""
    fn = _JAX_VJPS.get(key)
    if fn is None:
        if len(_JAX_VJPS) > 256:
            _JAX_VJPS.clear()
        fn = _JAX_VJPS[key] = build()
    return fn


def _linen_vjp_fn(ja, norm: str, cfg: dict[str, Any], training: bool, jit: bool):
    def build():
        import flax.linen as nn
        import jax

        module = getattr(nn, ja._CLASSES[norm])(**cfg)

        def run(x, params, stats, dy):
            def f(x, params):
                variables = {"params": params, **({"batch_stats": stats} if stats is not None else {})}
                if training and stats is not None:
                    return module.apply(variables, x, mutable=["batch_stats"])[0]
                return module.apply(variables, x)

            _, back = jax.vjp(f, x, params)
            return back(dy)

        return jax.jit(run) if jit else run

    return _cached((norm, tuple(sorted((k, str(v)) for k, v in cfg.items())), training, jit), build)


def _nnx_vjp_fn(ja, norm: str, cfg: dict[str, Any], features: int):
    """``jax.jit`` of the VJP through the nnx layer built inside the trace from its traced state
    (as :func:`normcheck.adapters.jax._nnx_runner`), ``epsilon`` an argument; cached per configuration."""

    def build():
        import jax

        def run(x, params, stats, dy, epsilon):
            def f(x, params):
                return ja.nnx_layer(norm, features, {**cfg, "epsilon": epsilon}, params, stats)(x)

            _, back = jax.vjp(f, x, params)
            return back(dy)

        return jax.jit(run)

    return _cached(("nnx", norm, tuple(sorted((k, str(v)) for k, v in cfg.items() if k != "epsilon")), features), build)


def jax_vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``jax.vjp`` through the flax linen/nnx layer or ``jax.nn.standardize`` of ``impl``."""
    import jax

    from normcheck.adapters import jax as ja

    ja._check_dtype(case.x.dtype)
    a = _arguments(case)
    if impl.form == "standardize":
        if case.weight is not None or case.bias is not None:
            raise Unsupported("jax.nn.standardize has no affine parameters")
        if case.running_mean is not None or not case.use_batch_stats:
            raise Unsupported("jax.nn.standardize keeps no running statistics")
        if case.norm not in ("batch_norm", "instance_norm", "layer_norm"):
            raise Unsupported(f"{case.norm} is not a standardization")
        axes = case.plan().reduce
        _, back = jax.vjp(lambda x: jax.nn.standardize(x, axis=axes, epsilon=float(a["eps"])), ja.put(case.x))
        return {"input": np.array(back(ja.put(dy))[0])}
    if case.norm == "batch_norm" and bool(a["training"]) and a.get("running_mean") is not None:
        if case.plan().reduce_size < 2:
            raise Unsupported("training with one value per channel: the unbiased running variance is undefined")
    if case.norm == "batch_norm" and not a["training"] and a.get("running_mean") is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    cfg, params, features = _flax_config(ja, case, a, impl.layout)
    last = impl.layout == "channels_last"
    x = ja.put(_moveaxis(case.x, last))
    g = ja.put(_moveaxis(np.asarray(dy), last))
    p = {k: ja.put(v) for k, v in params.items()}
    stats = None
    if case.norm == "batch_norm":
        sdt = ja._stats_dtype(case.x.dtype)
        rm = np.zeros(features, sdt) if case.running_mean is None else case.running_mean
        rv = np.ones(features, sdt) if case.running_var is None else case.running_var
        stats = {"mean": ja.put(rm), "var": ja.put(rv)}
    training = case.norm == "batch_norm" and bool(a["training"])
    if impl.form == "linen":
        dx, dp = _linen_vjp_fn(ja, case.norm, cfg, training, impl.mode == "jit")(x, p, stats, g)
    elif impl.form == "nnx" and impl.mode == "jit":
        dx, dp = _nnx_vjp_fn(ja, case.norm, cfg, features)(x, p, stats, g, cfg["epsilon"])
        dp = {k: np.asarray(v).reshape(params[k].shape) for k, v in dp.items()}
    elif impl.form == "nnx":
        from flax import nnx

        host = {k: ja.put(np.asarray(v).reshape(-1)) for k, v in params.items()}
        layer = ja.nnx_layer(case.norm, features, cfg, host, stats)
        graphdef, params_state, rest = nnx.split(layer, nnx.Param, ...)

        def f(x, params_state):
            return nnx.merge(graphdef, params_state, rest, copy=True)(x)

        _, back = jax.vjp(f, x, params_state)
        dx, dstate = back(g)
        dp = {k: np.asarray(dstate[k][...]).reshape(params[k].shape) for k in params}
    else:
        raise Unsupported(f"no jax autodiff for the {impl.form} form")
    out = {"input": _moveaxis(np.array(dx), last, back=True)}
    for k, name in (("weight", "scale"), ("bias", "bias")):
        if getattr(case, k) is not None:
            out[k] = np.array(dp[name]).reshape(getattr(case, k).shape)
    return out


# --- tensorflow ------------------------------------------------------------------------------


class _TapeGrads:
    """``(x, dy) -> [dx, *dvariables]`` through one Keras layer; a callable object rather than a
    closure, so that ``tf.function`` keys its retracing statistics on each object (as the adapter's
    ``_Run`` does)."""

    def __init__(self, tf, layer, variables, training: bool):
        self.tf, self.layer, self.variables, self.training = tf, layer, variables, training
        self.takes_training = "training" in inspect.signature(layer.call).parameters

    def __call__(self, xv, g):
        with self.tf.GradientTape() as tape:
            tape.watch(xv)
            y = self.layer(xv, training=self.training) if self.takes_training else self.layer(xv)
        return tape.gradient(y, [xv, *self.variables], output_gradients=g)


#: Built layers and their (compiled) tape functions by configuration, shape, eps and momentum, so
#: the gradient properties of one case share one trace; a call only assigns the variables.
_TF_VJPS: dict[tuple, tuple[Any, Any]] = {}


def _keras_vjp(tfa, case: Case, a: dict[str, Any], dy: np.ndarray, layout: str, mode: str) -> dict[str, np.ndarray]:
    s, norm = case.spec, case.norm
    if (norm, "keras") in tfa.NOT_NATIVE:
        raise Unsupported(tfa.NOT_NATIVE[(norm, "keras")])
    x = np.asarray(a["input"])
    eps = s.resolve_eps(a.get("eps"), x.dtype)
    use_batch = tfa._use_batch(s, a)
    if s.has_running_stats:
        tfa._check_buffers(a, use_batch)
    momentum = tfa._keras_momentum(a["momentum"]) if s.has_running_stats and use_batch else 0.99
    keras, tf = tfa._keras(), tfa._tf()
    xt = tfa._to_layout(x, layout)
    config = tfa._keras_config(norm, a, layout)
    policy = tfa._policy(x.dtype)
    key = (norm, tuple(sorted((k, str(v)) for k, v in config.items())), xt.shape, policy, eps, momentum)
    key += (bool(use_batch), case.weight is not None, case.bias is not None, mode)
    cached = _TF_VJPS.get(key)
    if cached is None:
        layer = getattr(keras.layers, tfa._KERAS_LAYERS[norm])(epsilon=eps, dtype=policy, **config)
        layer.build(xt.shape)
        if norm == "batch_norm":
            layer.momentum = momentum
    else:
        layer, grads = cached
    p = case.plan()
    gamma = layer.scale if norm == "rms_norm" else layer.gamma
    if gamma is not None:
        tfa._assign(gamma, np.ones(p.affine_shape) if case.weight is None else case.weight)
    if case.bias is not None:
        tfa._assign(layer.beta, case.bias)
    if norm == "batch_norm":
        rm, rv = a.get("running_mean"), a.get("running_var")
        tfa._assign(layer.moving_mean, np.zeros(p.affine_shape) if rm is None else rm)
        tfa._assign(layer.moving_variance, np.ones(p.affine_shape) if rv is None else rv)
    if cached is None:
        weighted = gamma if case.weight is not None else None
        variables = [v for v in (weighted, getattr(layer, "beta", None)) if v is not None]
        grads = _TapeGrads(tf, layer, variables, bool(use_batch))
        if mode == "compiled":
            grads = tf.function(grads, jit_compile=True)
        if len(_TF_VJPS) > 128:
            _TF_VJPS.clear()
        _TF_VJPS[key] = (layer, grads)
    res = grads(tf.convert_to_tensor(xt), tf.convert_to_tensor(tfa._to_layout(np.asarray(dy), layout)))
    out = {"input": tfa._from_layout(res[0].numpy(), layout)}
    rest = [r.numpy() for r in res[1:]]
    if case.weight is not None:
        out["weight"] = rest.pop(0).reshape(case.weight.shape)
    if case.bias is not None:
        out["bias"] = rest.pop(0).reshape(case.bias.shape)
    return out


def _tfnn_vjp(tfa, case: Case, a: dict[str, Any], dy: np.ndarray) -> dict[str, np.ndarray]:
    """The adapter's tf.nn composition, differentiated: moments over the norm's axes, then
    batch_normalization; the affine parameters are watched constants of the statistics' dtype."""
    s, norm = case.spec, case.norm
    if (norm, "tf.nn") in tfa.NOT_NATIVE:
        raise Unsupported(tfa.NOT_NATIVE[(norm, "tf.nn")])
    x = np.asarray(a["input"])
    use_batch = tfa._use_batch(s, a)
    rm, rv = a.get("running_mean"), a.get("running_var")
    if s.has_running_stats:
        tfa._check_buffers(a, use_batch)
        if use_batch and (rm is not None or rv is not None):
            raise Unsupported("tf.nn has no running-statistics update")
    tf = tfa._tf()
    p = case.plan()
    if norm == "group_norm":
        n, c, g = x.shape[0], x.shape[1], int(a["num_groups"])
        view, axes, affine = (
            (n, g, c // g, *x.shape[2:]),
            list(range(2, x.ndim + 1)),
            (1, g, c // g) + (1,) * (x.ndim - 2),
        )
    elif norm == "layer_norm":
        view, axes, affine = x.shape, list(p.reduce), p.affine_shape
    else:
        view = x.shape
        axes = [0, *range(2, x.ndim)] if norm == "batch_norm" else list(range(2, x.ndim))
        affine = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    xt = tf.convert_to_tensor(x)
    stat_dt = np.float32 if x.dtype.itemsize == 2 and not use_batch else x.dtype
    consts = {k: tf.convert_to_tensor(np.reshape(getattr(case, k), affine).astype(stat_dt)) for k in _wanted(case)[1:]}
    with tf.GradientTape() as tape:
        tape.watch(xt)
        for t in consts.values():
            tape.watch(t)
        xv = tf.reshape(xt, view)
        if use_batch:
            mean, var = tf.nn.moments(xv, axes=axes, keepdims=True)
        else:
            mean, var = tf.constant(np.reshape(rm, affine)), tf.constant(np.reshape(rv, affine))
        y = tf.nn.batch_normalization(
            xv, mean, var, consts.get("bias"), consts.get("weight"), variance_epsilon=s.resolve_eps(a["eps"], x.dtype)
        )
        y = tf.reshape(y, x.shape)
    keys = list(consts)
    res = tape.gradient(y, [xt, *consts.values()], output_gradients=tf.convert_to_tensor(np.asarray(dy)))
    out = {"input": res[0].numpy()}
    for k, r in zip(keys, res[1:]):
        out[k] = r.numpy().reshape(getattr(case, k).shape)
    return out


def tensorflow_vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``tf.GradientTape`` through the Keras layer or the tf.nn composition of ``impl``."""
    from normcheck.adapters import tensorflow as tfa

    a = _arguments(case)
    if impl.form == "keras":
        return _keras_vjp(tfa, case, a, dy, impl.layout, impl.mode)
    if impl.form == "tf.nn":
        return _tfnn_vjp(tfa, case, a, dy)
    raise Unsupported(f"no tensorflow autodiff for the {impl.form} form")


FRAMEWORKS = {"torch": torch_vjp, "jax": jax_vjp, "tensorflow": tensorflow_vjp}


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The native VJP of ``impl`` at ``case`` for the cotangent ``dy`` (see the module docstring)."""
    fn = FRAMEWORKS.get(getattr(impl, "framework", ""))
    if fn is None:
        raise Unsupported(f"{getattr(impl, 'framework', '?')} has no autodiff")
    return fn(impl, case, np.asarray(dy))
