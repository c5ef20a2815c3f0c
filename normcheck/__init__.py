"""normcheck: property testing and numerical audit of normalization layers.

The public API: :func:`check` (your implementation of a norm against its definition, a
:class:`CheckReport` back; ``bool(report)`` is ``report.conforms``; its settings are a
:class:`CheckOptions`, or the same fields as keywords), :func:`assert_conforms` (the
same, raising ``AssertionError`` with the report's summary unless it conforms, for a pytest suite)
and :func:`compare` (two implementations on the same cases, a :class:`CompareReport` back;
``bool(report)`` is ``report.equivalent``).
The command line is ``normcheck`` (``normcheck --help``).

Importing the package imports no framework (and not even NumPy): the public names and the
submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what a type checker and an IDE see; at run time they load lazily (__getattr__)
    from normcheck.checker import CheckOptions, CheckReport, check
    from normcheck.comparison import CompareReport, compare
    from normcheck.testing import assert_conforms

__version__ = "0.1.0"

__all__ = ["CheckOptions", "CheckReport", "CompareReport", "assert_conforms", "check", "compare"]

#: The public names, each from the module that defines it (imported on first use).
_ATTRIBUTES = {
    "check": ("normcheck.checker", "check"),
    "CheckOptions": ("normcheck.check_options", "CheckOptions"),
    "CheckReport": ("normcheck.checker", "CheckReport"),
    "assert_conforms": ("normcheck.testing", "assert_conforms"),
    "compare": ("normcheck.comparison", "compare"),
    "CompareReport": ("normcheck.comparison", "CompareReport"),
}
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
    "comparison",
)


def __getattr__(name: str):
    if name in _ATTRIBUTES:
        module, attr = _ATTRIBUTES[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"normcheck.{name}")
    raise AttributeError(f"module 'normcheck' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBMODULES, *_ATTRIBUTES})
