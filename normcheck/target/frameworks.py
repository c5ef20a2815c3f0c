"""Which framework a target object, class or array belongs to, asked of the adapters
(:mod:`normcheck.adapters`, which read ``sys.modules`` and import none)."""

from __future__ import annotations

import sys
import types

from normcheck import adapters

#: The frameworks a target may be written in (:attr:`normcheck.adapters.Adapter.target`)
TARGET_FRAMEWORKS = adapters.target_frameworks()


def adapter(fw: str) -> adapters.Adapter:
    return adapters.get(fw)


def owns(fw: str, y) -> bool:
    return adapters.get(fw).owns_array(y)


def array_name(fw: str) -> str:
    return adapters.get(fw).array_name


def immutable(fw: str) -> bool:
    """Are the framework's arrays immutable (a target cannot change its inputs in place)?"""
    return adapters.get(fw).immutable_arrays


def named_frameworks(obj) -> list[str]:
    """Frameworks the target's defining module refers to (module objects or their callables)."""
    mod = sys.modules.get(getattr(obj, "__module__", "") or "")
    names = list(vars(mod).values()) if mod is not None else []
    found = []
    for v in names:
        top = v.__name__ if isinstance(v, types.ModuleType) else getattr(v, "__module__", None)
        fw = adapters.framework_of_module(top)
        if fw is not None and fw not in found:
            found.append(fw)
    return found


def loaded_frameworks() -> list[str]:
    return [fw for fw in TARGET_FRAMEWORKS if adapters.get(fw).loaded()]
