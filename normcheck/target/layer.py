"""A built layer's attributes: where it keeps its parameters, buffers and settings, and how they are set
(through the framework adapter's ``layer_driving`` where it has one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck.target.constructor import is_number
from normcheck.target.frameworks import adapter

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


def is_array(v) -> bool:
    shape = getattr(v, "shape", None)
    return shape is not None and hasattr(v, "dtype") and len(tuple(shape)) >= 1


@dataclass
class LayerInfo:
    """What a built layer keeps where: attribute names of its parameters, buffers and settings."""

    params: dict[str, str]  # "weight"/"bias" -> attribute
    buffers: dict[str, str]  # "running_mean"/"running_var" -> attribute
    settings: dict[str, str]  # "eps"/"momentum"/"groups" -> attribute
    values: dict[str, Any]  # the sample layer's value of each setting
    call: str  # the sample constructor call


def children(layer) -> list[tuple[str, Any]]:
    """The layer's child modules (torch's ``named_children``), depth first, as (dotted path, module)."""
    named = getattr(layer, "named_modules", None)
    if not callable(named):
        return []
    try:
        return [(n, m) for n, m in named() if n]
    except Exception:
        return []


def owner(layer, path: str) -> tuple[Any, str]:
    """(the object holding ``path``'s last name, that name): ``"norm.weight"`` -> (layer.norm, "weight")."""
    *head, name = path.split(".")
    for part in head:
        layer = getattr(layer, part)
    return layer, name


def get(layer, path: str, default=None):
    try:
        obj, name = owner(layer, path)
        return getattr(obj, name, default)
    except AttributeError:
        return default


def set_path(layer, path: str, value) -> None:
    obj, name = owner(layer, path)
    setattr(obj, name, value)


def inspect_layer(layer, call: str) -> LayerInfo:
    """Where the layer keeps each thing: its own attributes first, else those of a child module
    (``self.norm = nn.GroupNorm(...)``: ``norm.weight``, ``norm.eps``)."""
    subs = [("", layer), *children(layer)]

    def find(names, ok):
        for prefix, obj in subs:
            for n in names:
                try:
                    v = getattr(obj, n)
                except Exception:
                    continue
                if ok(v):
                    return (f"{prefix}.{n}" if prefix else n), v
        return None, None

    params, buffers, settings, values = {}, {}, {}, {}
    for k, names in PARAM_ATTRS.items():
        n, _ = find(names, is_array)
        if n:
            params[k] = n
    for k, names in BUFFER_ATTRS.items():
        n, _ = find(names, is_array)
        if n:
            buffers[k] = n
    for k, names in SETTING_ATTRS.items():
        n, v = find(names, lambda v, k=k: is_number(v) or (k == "momentum" and v is None))
        if n:
            settings[k], values[k] = n, v
    return LayerInfo(params, buffers, settings, values, call)


def cast_layer(layer, fw: str, dtype: str) -> None:
    """``layer.to(dtype)`` where the framework's layers follow a dtype (torch modules)."""
    drive = adapter(fw).layer_driving()
    if drive is not None:
        drive.cast(layer, dtype)


def put(layer, fw: str, attr: str, t, dtype: str | None = None, *, grad: bool = False) -> None:
    """Set ``layer.<attr>`` to ``t`` (cast to ``dtype`` if given, reshaped to the layer's own shape
    where only the shape differs), as the framework's layers hold it (a torch module's parameter
    or buffer). ``grad``: the gradient path (:meth:`Target.native_call`), where a parameter is the
    caller's grad-requiring array itself (or its differentiable cast/reshape)."""
    layer, attr = owner(layer, attr)
    drive = adapter(fw).layer_driving()
    if drive is not None:
        if grad:
            drive.put(layer, attr, t, dtype, grad=True)
        else:
            drive.put(layer, attr, t, dtype)
        return
    cur = getattr(layer, attr, None)
    if is_array(cur) and tuple(cur.shape) != tuple(t.shape) and int(np.prod(cur.shape)) == int(np.prod(t.shape)):
        t = t.reshape(tuple(cur.shape))
    setattr(layer, attr, t)


def filled(cur, value: float, fw: str, dtype: str):
    """An array like the layer's parameter ``cur``, filled with ``value``, in ``dtype``."""
    drive = adapter(fw).layer_driving()
    if drive is not None:
        return drive.full(tuple(cur.shape), value, dtype)
    from normcheck import dtypes as _dtypes

    return adapter(fw).to_native(np.full(tuple(cur.shape), value, _dtypes.np_dtype(dtype)))


def set_values(layer, fw: str, *, grad: bool = False, **values) -> None:
    """Put parameters and buffers into a freshly built layer (None values are left alone; ``grad``:
    the weight and bias as the caller's grad-requiring arrays, see :func:`put`)."""
    for k, t in values.items():
        if t is not None:
            put(layer, fw, k, t, grad=grad and k in ("weight", "bias"))
