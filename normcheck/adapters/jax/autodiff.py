"""JAX's autodiff of the flax norms (:meth:`JaxAdapter.vjp`): ``jax.vjp`` over ``module.apply``
(linen; ``jax.jit`` of the whole VJP in the jit mode), over ``nnx.merge(graphdef, params, rest)(x)``
(eager nnx; in the jit mode ``jax.jit`` of the VJP over the layer built from its traced state) and
over ``jax.nn.standardize``.

Every convention is the adapter's (:mod:`normcheck.adapters.jax`): its helpers are used, not
restated. Training mode differentiates through the batch statistics; the running-buffer update is
not differentiated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck.adapters.base import Unsupported, case_arguments, move_channels
from normcheck.case import Case

__all__ = ["vjp"]


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

        module = getattr(nn, ja.FLAX_CLASSES[norm])(**cfg)

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


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``jax.vjp`` through the flax linen/nnx layer or ``jax.nn.standardize`` of ``impl``."""
    import jax

    from normcheck.adapters import jax as ja

    ja._check_dtype(case.x.dtype)
    a = case_arguments(case)
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
    x = ja.put(move_channels(case.x, last))
    g = ja.put(move_channels(np.asarray(dy), last))
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
    out = {"input": move_channels(np.array(dx), last, back=True)}
    for k, name in (("weight", "scale"), ("bias", "bias")):
        if getattr(case, k) is not None:
            out[k] = np.array(dp[name]).reshape(getattr(case, k).shape)
    return out
