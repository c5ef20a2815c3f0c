"""Framework adapters, loaded lazily: ``get("torch")`` imports ``normcheck.adapters.torch`` (which
itself imports torch only when an implementation runs).

Frameworks are listed numpy, torch, jax, tensorflow: torch is always imported before tensorflow in
one process, as their bundled libraries require. :data:`FRAMEWORKS` is the one list of them
(``normcheck.cli`` repeats it for argparse, to import no adapter for ``--help``).

Everything about one framework lives in its package ``normcheck/adapters/<framework>/``: the
:class:`Adapter` subclass and its translation helpers (``__init__.py``), its autodiff
(``autodiff.py``, behind :meth:`Adapter.vjp`) and its conventions-table probes
(``conventions.py``, behind :meth:`Adapter.convention_probes`). Modules outside the package reach
them through :func:`get` and the adapter's public methods and names.
"""

from __future__ import annotations

import importlib
import sys

from normcheck.adapters.base import LAYOUTS, MODES, Adapter, Impl, Unsupported

__all__ = [
    "FRAMEWORKS",
    "LAYOUTS",
    "MODES",
    "Adapter",
    "Impl",
    "Unsupported",
    "framework_of",
    "get",
    "implementations",
    "installed",
]

FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow", "onnxruntime")


def get(name: str) -> Adapter:
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"normcheck.adapters.{name}").ADAPTER


def installed(frameworks=None) -> list[Adapter]:
    """The adapters whose framework is importable, in FRAMEWORKS order."""
    names = FRAMEWORKS if frameworks is None else [f for f in FRAMEWORKS if f in frameworks]
    return [a for a in map(get, names) if a.available()]


def implementations(frameworks=None, norms=None) -> list[Impl]:
    """Every native implementation of the installed frameworks (optionally filtered)."""
    out = []
    for a in installed(frameworks):
        out += [i for i in a.implementations() if norms is None or i.norm in norms]
    return out


def framework_of(x) -> str | None:
    """The framework an array belongs to, judged from already-imported modules only."""
    for name in FRAMEWORKS:
        mod = importlib.import_module(f"normcheck.adapters.{name}")
        if mod.ADAPTER.module in sys.modules and mod.ADAPTER.owns(x):
            return name
    return None
