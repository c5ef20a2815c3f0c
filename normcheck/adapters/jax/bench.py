"""JAX's part of ``normcheck bench`` (:meth:`JaxAdapter.bench_natives`): the ``flax.linen`` layer's
``apply`` on JAX arrays (``mode="jit"``: one ``jax.jit`` of it, ``"eager"``: op by op),
``jax.vjp`` then the pullback for the backward pass, and a jitted copy for the copy roof.

The layer classes are the adapter's (:data:`normcheck.adapters.jax.FLAX_CLASSES`). flax's
GroupNorm groups the last axis only, so its one layout is channels_last; BatchNorm takes
``axis=1`` and InstanceNorm ``feature_axes=1`` for a channels-first input."""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import BenchNatives
from normcheck.adapters.jax import FLAX_CLASSES, setup

__all__ = ["NATIVES"]


def api(norm: str, mode: str = "eager") -> str:
    name = f"flax.linen.{FLAX_CLASSES[norm]}.apply"
    return f"jax.jit({name})" if mode == "jit" else name


def build(case):
    import jax.numpy as jnp

    jax = setup()

    plat = "gpu" if case.device.startswith("cuda") else "cpu"
    dev = jax.devices(plat)[0]
    dt = jnp.dtype(case.dtype)
    shape, phys = case.shape, case.physical_shape
    last = phys != shape

    def array(a: np.ndarray):
        return jax.device_put(a.reshape(phys), dev).astype(dt)

    x = array(case.host())
    w32, b32 = case.params()
    if case.target is not None:
        w, b = (jax.device_put(p, dev).astype(dt) for p in (w32, b32))
        rm, rv = jnp.zeros(case.channels, jnp.float32), jnp.ones(case.channels, jnp.float32)
        op = case.canonical(case.target, rm, rv)

        def f(params, x):
            return op(x, params["scale"], params["bias"])

        params, has_aux = {"scale": w, "bias": b}, False
    else:
        f, params, has_aux = _flax(case, dt, w32, b32, dev)

    if case.forward:

        def step(params, x):
            return f(params, x)

    else:
        dy = array(case.host(seed=1))

        def step(params, x):
            if has_aux:
                y, pull, aux = jax.vjp(f, params, x, has_aux=True)
                return (y, *pull(dy), aux)
            y, pull = jax.vjp(f, params, x)
            return (y, *pull(dy))

    if case.mode == "jit":
        step = jax.jit(step)

    def run():
        return step(params, x)

    def output(out):
        y = np.asarray(case.first(out)).astype(np.float32)
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if last else y

    name = case.target_api() if case.target else api(case.norm, case.mode)
    return case.native(run, jax.block_until_ready, name, output)


def _flax(case, dt, w32, b32, dev):
    """``f(params, x)`` applying the flax.linen layer, its params, and whether f returns (y, aux)."""
    import jax.numpy as jnp
    from flax import linen as nn

    jax = setup()

    norm, shape = case.norm, case.shape
    if norm not in FLAX_CLASSES:
        raise ValueError(f"unknown norm {norm!r}")
    axis = -1 if case.layout == "channels_last" or len(shape) <= 2 else 1
    extra = {
        "batch_norm": {"use_running_average": False, "axis": axis, "momentum": 1 - case.momentum},
        "group_norm": {"num_groups": case.groups},
        "instance_norm": {"feature_axes": axis},
    }.get(norm, {})
    module = getattr(nn, FLAX_CLASSES[norm])(**extra, epsilon=case.eps, dtype=dt, param_dtype=dt)
    small = jnp.zeros((1, *case.physical_shape[1:]), dt)  # parameters depend on the feature axes only
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


def copy(nbytes: int, device: str):
    import jax.numpy as jnp

    jax = setup()

    platform_ = "gpu" if device.startswith("cuda") else "cpu"
    dev = jax.devices(platform_)[0]
    src = jax.device_put(jnp.ones(nbytes // 4, jnp.float32), dev)
    copy = jax.jit(lambda a: a + 0)  # one read, one write
    return "jax.jit(lambda a: a + 0)", lambda: copy(src), jax.block_until_ready


NATIVES = BenchNatives(
    modes=("jit", "eager"),
    layouts={
        "batch_norm": ("channels_first", "channels_last"),
        "layer_norm": ("channels_first",),
        "group_norm": ("channels_last",),
        "instance_norm": ("channels_first", "channels_last"),
        "rms_norm": ("channels_first",),
    },
    api=api,
    build=build,
    layout_notes={"group_norm": "flax GroupNorm groups the last axis only (channels_last)"},
    copy=copy,
)
