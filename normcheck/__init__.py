"""normcheck: property testing and numerical audit of normalization layers.

Importing the package imports no framework (and not even NumPy): submodules load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_ATTRIBUTES = {"check": ("normcheck.checker", "check")}  # normcheck.check(fn, norm=...) is the function
_SUBMODULES = (
    "spec",
    "reference",
    "adapters",
    "case",
    "error_model",
    "properties",
    "strategies",
    "audit",
    "findings",
    "testing",
    "dtypes",
    "checker",
    "diagnose",
    "target",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"normcheck.{name}")
    if name in _ATTRIBUTES:
        module, attr = _ATTRIBUTES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'normcheck' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES, *_ATTRIBUTES])
