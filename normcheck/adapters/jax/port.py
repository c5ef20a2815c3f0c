"""The Flax side of :mod:`normcheck.port` (:meth:`JaxAdapter.layer_porting`): a torch norm module as
``(flax.linen module, variables)``, and that pair run for :func:`normcheck.port.compare_port`.

``BatchNorm(axis=1)``, ``LayerNorm(reduction_axes=feature_axes=the normalized axes)``, and for
GroupNorm a small channels-first wrapper around ``flax.linen.GroupNorm`` (which groups the last
axis only). Flax keeps the fraction ``momentum`` of the old statistic (``m_flax = 1 - m_torch``),
and every layer gets ``use_fast_variance=False`` (Flax's one-pass variance is a registered
finding, and a port should not add error the original does not have). torch modules are read
through :mod:`normcheck.adapters.torch.port`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck.adapters.torch import port as torch_port

__all__ = ["from_torch", "label", "owns", "run"]

_FLAX_CLASSES: dict[str, Any] = {}


def _channels_first_group_norm():
    """A flax.linen module: GroupNorm over the channel axis 1 (flax groups the last axis only)."""
    if "gn" in _FLAX_CLASSES:
        return _FLAX_CLASSES["gn"]
    import flax.linen as nn
    import jax.numpy as jnp

    class ChannelsFirstGroupNorm(nn.Module):
        num_groups: int
        epsilon: float = 1e-5
        use_bias: bool = True
        use_scale: bool = True

        @nn.compact
        def __call__(self, x):
            gn = nn.GroupNorm(
                num_groups=self.num_groups,
                epsilon=self.epsilon,
                use_bias=self.use_bias,
                use_scale=self.use_scale,
                use_fast_variance=False,
                name="group_norm",
            )
            return jnp.moveaxis(gn(jnp.moveaxis(x, 1, -1)), -1, 1)

    _FLAX_CLASSES["gn"] = ChannelsFirstGroupNorm
    return ChannelsFirstGroupNorm


def from_torch(module) -> tuple[Any, dict[str, Any]]:
    """``(flax.linen module, variables)`` equivalent to the torch ``module`` (channels-first).

    BatchNorm's ``use_running_average`` is left to the call (``module.apply(variables, x,
    use_running_average=...)``; in training pass ``mutable=["batch_stats"]``).
    """
    import flax.linen as nn
    import jax.numpy as jnp

    from normcheck.adapters.jax import setup

    setup()
    kind = torch_port.kind(module)
    params: dict[str, Any] = {}
    if module.weight is not None:
        params["scale"] = jnp.asarray(torch_port.to_numpy(module.weight))
    if module.bias is not None:
        params["bias"] = jnp.asarray(torch_port.to_numpy(module.bias))
    common = {"epsilon": float(module.eps), "use_bias": module.bias is not None, "use_scale": module.weight is not None}
    if kind == "batch_norm":
        torch_port.check_running_stats(module)
        flax_module = nn.BatchNorm(
            axis=1, momentum=torch_port.flip(torch_port.momentum(module)), use_fast_variance=False, **common
        )
        stats = {
            "mean": jnp.asarray(torch_port.to_numpy(module.running_mean)),
            "var": jnp.asarray(torch_port.to_numpy(module.running_var)),
        }
        return flax_module, {"params": params, "batch_stats": stats}
    if kind == "layer_norm":
        axes = tuple(range(-len(module.normalized_shape), 0))
        flax_module = nn.LayerNorm(reduction_axes=axes, feature_axes=axes, use_fast_variance=False, **common)
        return flax_module, {"params": params}
    flax_module = _channels_first_group_norm()(num_groups=module.num_groups, **common)
    return flax_module, {"params": {"group_norm": params}}


def run(pair, kind: str, x: np.ndarray, training: bool):
    """``(flax module, variables)`` applied to ``x``: (y, the (mean, var) batch statistics afterwards
    for a BatchNorm, else None). The variables are never mutated."""
    import jax.numpy as jnp

    module, variables = pair
    xv = jnp.asarray(x)
    if kind != "batch_norm":
        return np.asarray(module.apply(variables, xv)), None
    if training:
        y, upd = module.apply(variables, xv, use_running_average=False, mutable=["batch_stats"])
        bs = upd["batch_stats"]
    else:
        y, bs = module.apply(variables, xv, use_running_average=True), variables["batch_stats"]
    return np.asarray(y), (np.asarray(bs["mean"]), np.asarray(bs["var"]))


def owns(other) -> bool:
    """Is ``other`` this side's port, a ``(flax.linen module, variables)`` pair?"""
    return isinstance(other, tuple)


def label(pair) -> str:
    return f"flax {type(pair[0]).__name__}"
