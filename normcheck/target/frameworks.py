"""Which framework a target object, class or array belongs to, read from ``sys.modules`` (importing none)."""

from __future__ import annotations

import inspect
import sys
import types

import numpy as np

# engine (normcheck.adapters.FRAMEWORKS) but not a target framework: ORT runs ONNX graphs, not
# Python functions over its own array type.
TARGET_FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
FRAMEWORK_MODULES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}
IMMUTABLE = ("jax", "tensorflow")


def adapter(fw: str):
    from normcheck import adapters

    return adapters.get(fw)


def owns(fw: str, y) -> bool:
    if fw == "numpy":
        return isinstance(y, np.ndarray | np.generic)
    return FRAMEWORK_MODULES[fw] in sys.modules and adapter(fw).owns(y)


def array_name(fw: str) -> str:
    return {"numpy": "numpy.ndarray", "torch": "torch.Tensor", "jax": "jax.Array", "tensorflow": "tf.Tensor"}[fw]


def named_frameworks(obj) -> list[str]:
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
        if top in FRAMEWORK_MODULES and top not in found:
            found.append(top)
    return found


def loaded_frameworks() -> list[str]:
    return [fw for fw in TARGET_FRAMEWORKS if FRAMEWORK_MODULES[fw] in sys.modules]


#: Module ecosystems driven by an adapter's module of their own: kind -> (framework, that module).
ECOSYSTEMS = {
    "equinox": ("jax", "normcheck.adapters.jax.equinox"),
    "haiku": ("jax", "normcheck.adapters.jax.haiku"),
    "sonnet": ("tensorflow", "normcheck.adapters.tensorflow.sonnet"),
    "keras": ("tensorflow", "normcheck.adapters.tensorflow.keras_class"),  # by its own constructor
    "flax": ("jax", "normcheck.adapters.jax.linen_class"),  # with --init/--arg
}


def driver(kind: str):
    """The adapter module that drives an ecosystem's module classes (:data:`ECOSYSTEMS`)."""
    import importlib

    return importlib.import_module(ECOSYSTEMS[kind][1])


def module_kind(obj) -> str | None:
    """'torch' for a torch.nn.Module subclass, 'keras' for a Keras layer class, 'flax' for a
    flax.linen.Module class, 'nnx' for a flax.nnx.Module class (not driven yet), 'equinox',
    'haiku' or 'sonnet' for those libraries' module classes."""
    if not inspect.isclass(obj):
        return None
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(obj, torch.nn.Module):
        return "torch"
    for kind, modname in (("equinox", "equinox"), ("haiku", "haiku"), ("sonnet", "sonnet")):
        m = sys.modules.get(modname)
        base = getattr(m, "Module", None) if m is not None else None
        if isinstance(base, type) and issubclass(obj, base):
            return kind
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
