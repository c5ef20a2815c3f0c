"""The Keras side of :mod:`normcheck.port` (:meth:`TensorFlowAdapter.layer_porting`): a torch norm
module as a built ``keras.layers.BatchNormalization`` / ``LayerNormalization`` /
``GroupNormalization`` (channels-first: ``axis=1``), a channels-first Keras norm layer back as the
torch module, and a fresh copy of a Keras layer run for :func:`normcheck.port.compare_port`.

Keras keeps the fraction ``momentum`` of the old statistic (``m_keras = 1 - m_torch``) and its own
default eps (1e-3), so both are passed explicitly. torch modules are read and built through
:mod:`normcheck.adapters.torch.port`.
"""

from __future__ import annotations

import sys

import numpy as np

from normcheck.adapters.base import PortError
from normcheck.adapters.tensorflow import import_keras
from normcheck.adapters.torch import port as torch_port

__all__ = ["from_torch", "label", "owns", "run", "to_torch"]


def from_torch(module, *, input_shape=None):
    """A built Keras layer equivalent to the torch ``module`` (channels-first), state copied.

    ``input_shape`` (optional) fixes the input rank Keras builds for; by default BatchNorm1d: 2,
    BatchNorm2d: 4, BatchNorm3d: 5, GroupNorm: 4, LayerNorm: len(normalized_shape) + 1.
    """
    keras = import_keras()
    kind = torch_port.kind(module)
    if kind == "batch_norm":
        torch_port.check_running_stats(module)
        rank = len(input_shape) if input_shape else torch_port.BN_RANK[type(module).__name__]
        layer = keras.layers.BatchNormalization(
            axis=1,
            momentum=torch_port.flip(torch_port.momentum(module)),
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None, module.num_features) + (None,) * (rank - 2))
        layer.moving_mean.assign(torch_port.to_numpy(module.running_mean))
        layer.moving_variance.assign(torch_port.to_numpy(module.running_var))
    elif kind == "group_norm":
        rank = len(input_shape) if input_shape else 4
        layer = keras.layers.GroupNormalization(
            groups=module.num_groups,
            axis=1,
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None, module.num_channels) + (None,) * (rank - 2))
    else:
        ns = tuple(module.normalized_shape)
        rank = len(input_shape) if input_shape else len(ns) + 1
        layer = keras.layers.LayerNormalization(
            axis=list(range(-len(ns), 0)),
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None,) * (rank - len(ns)) + ns)
    if module.weight is not None:
        layer.gamma.assign(torch_port.to_numpy(module.weight))
    if module.bias is not None:
        layer.beta.assign(torch_port.to_numpy(module.bias))
    return layer


def _rank(layer) -> int:
    spec = getattr(layer, "input_spec", None)
    if spec is not None and getattr(spec, "ndim", None):
        return int(spec.ndim)
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    shape = next(iter(shapes.values()), None)
    if shape is None:
        raise PortError("build the Keras layer first (its input rank decides the torch module)")
    return len(shape)


def _build_shape(layer):
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    shape = next(iter(shapes.values()), None)
    if shape is None:
        raise PortError("build the Keras layer first")
    return shape


def to_torch(layer):
    """The torch module equivalent to a built, channels-first Keras norm layer, state copied."""
    name = type(layer).__name__
    rank = _rank(layer)
    gamma, beta = getattr(layer, "gamma", None), getattr(layer, "beta", None)
    has_w, has_b = gamma is not None, beta is not None
    if name in ("BatchNormalization", "GroupNormalization"):
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        if axis % rank != 1:
            raise PortError(f"{name}(axis={layer.axis}) on a rank-{rank} input is channels-last; torch takes axis 1")
    if name == "BatchNormalization":
        m = torch_port.batch_norm(
            rank,
            int(layer.moving_mean.shape[0]),
            eps=float(layer.epsilon),
            momentum=torch_port.flip(layer.momentum),
            affine=has_w or has_b,
            bias=has_b,
            running_mean=np.asarray(layer.moving_mean.numpy()),
            running_var=np.asarray(layer.moving_variance.numpy()),
        )
    elif name == "GroupNormalization":
        c = int(layer.input_spec.axes[1]) if layer.input_spec and layer.input_spec.axes else int(gamma.shape[0])
        m = torch_port.group_norm(int(layer.groups), c, eps=float(layer.epsilon), affine=has_w or has_b, bias=has_b)
    elif name == "LayerNormalization":
        axes = sorted(a % rank for a in (layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]))
        if axes != list(range(rank - len(axes), rank)):
            raise PortError(f"LayerNormalization(axis={layer.axis}) is not over trailing axes; torch normalizes those")
        shape = _build_shape(layer)
        ns = [int(shape[a]) for a in axes]
        m = torch_port.layer_norm(ns, eps=float(layer.epsilon), affine=has_w or has_b, bias=has_b)
    else:
        raise PortError(f"can port Keras BatchNormalization, LayerNormalization, GroupNormalization, not {name}")
    torch_port.set_affine(m, gamma.numpy() if has_w else None, beta.numpy() if has_b else None)
    return m


def run(layer, kind: str, x: np.ndarray, training: bool):
    """A fresh copy of the Keras ``layer`` (same config, weights) on ``x``: (y, its (moving mean,
    moving variance) afterwards for a BatchNorm, else None). ``layer`` itself is never mutated."""
    fresh = type(layer).from_config(layer.get_config())
    fresh.build(_build_shape(layer))
    fresh.set_weights(layer.get_weights())
    y = np.asarray(fresh(x, training=training))
    if kind == "batch_norm":
        return y, (fresh.moving_mean.numpy(), fresh.moving_variance.numpy())
    return y, None


def owns(other) -> bool:
    """Is ``other`` this side's port, a Keras layer?"""
    keras = sys.modules.get("keras")
    layer = getattr(getattr(keras, "layers", None), "Layer", None)
    return isinstance(layer, type) and isinstance(other, layer)


def label(layer) -> str:
    return f"keras {type(layer).__name__}"
