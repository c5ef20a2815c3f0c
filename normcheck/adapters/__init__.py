"""Framework adapters, loaded lazily: ``get("torch")`` imports ``normcheck.adapters.torch`` (which
itself imports torch only when an implementation runs).

Frameworks are listed numpy, torch, jax, tensorflow: torch is always imported before tensorflow in
one process, as their bundled libraries require. :data:`FRAMEWORKS` is the one list of them.
The rest of normcheck asks the functions below for what it needs to know of a framework (which one
owns an object, a module class, an array; the schedule's costs; the packages; the log filtering)
rather than naming one; asking imports no framework.

Everything about one framework lives in its package ``normcheck/adapters/<framework>/``: the
:class:`Adapter` subclass and its translation helpers (``__init__.py``), its autodiff
(``autodiff.py``, behind :meth:`Adapter.vjp`) and its conventions-table probes
(``conventions.py``, behind :meth:`Adapter.convention_probes`). Modules outside the package reach
them through :func:`get` and the adapter's public methods and names.
"""

from __future__ import annotations

import importlib
import re

from normcheck.adapters.base import LAYOUTS, MODES, Adapter, Impl, Unsupported

__all__ = [
    "FRAMEWORKS",
    "LAYOUTS",
    "MODES",
    "Adapter",
    "Impl",
    "Unsupported",
    "costliest_first",
    "cuda",
    "default_eps",
    "framework_of",
    "framework_of_module",
    "get",
    "implementations",
    "installed",
    "log_env",
    "module_kind",
    "native_log_line",
    "packages",
    "refused",
    "target_frameworks",
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
    return next((n for n in FRAMEWORKS if get(n).owns_array(x)), None)


def target_frameworks() -> tuple[str, ...]:
    """The frameworks a user's target may be written in (:attr:`Adapter.target`)."""
    return tuple(n for n in FRAMEWORKS if get(n).target)


def framework_of_module(name: str | None) -> str | None:
    """The target framework whose code a module of this name is (flax: jax; keras: tensorflow)."""
    return next((n for n in target_frameworks() if get(n).owns_module(name)), None)


def module_kind(obj) -> tuple[Adapter, str] | None:
    """(the adapter, the kind) of a module class among the loaded frameworks ("torch" for a
    torch.nn.Module subclass, "keras", "flax", "nnx", "equinox", "haiku", "sonnet"), or None."""
    if not isinstance(obj, type):
        return None
    for n in FRAMEWORKS:
        a = get(n)
        kind = a.module_kind(obj)
        if kind is not None:
            return a, kind
    return None


def refused(obj) -> str | None:
    """Why ``obj`` cannot be a target (a torch.nn.Module instance), or None."""
    return next((why for n in FRAMEWORKS if (why := get(n).refused(obj))), None)


def costliest_first(names) -> list[str]:
    """``names`` in the order the audit's process pool starts them: the costliest first."""
    return sorted(names, key=lambda n: -get(n).cost)


def packages() -> tuple[str, ...]:
    """The distributions whose versions a run records (each framework's, and what it builds on)."""
    return tuple(p for n in FRAMEWORKS for p in get(n).packages)


def default_eps() -> tuple[float, ...]:
    """The frameworks' default eps values, each once (:attr:`Adapter.default_eps`)."""
    return tuple(dict.fromkeys(e for n in FRAMEWORKS for e in get(n).default_eps))


def log_env() -> dict[str, str]:
    """Logging defaults for the frameworks' native code (:attr:`Adapter.log_env`)."""
    return {k: v for n in FRAMEWORKS for k, v in get(n).log_env.items()}


def native_log_line() -> re.Pattern[bytes]:
    """A line of the frameworks' native loggers (:attr:`Adapter.log_lines`), dropped from stderr."""
    lines = [p for n in FRAMEWORKS for p in get(n).log_lines]
    return re.compile(rb"^(?:" + b"|".join(lines) + rb")" if lines else rb"(?!)")


def cuda() -> bool:
    """Is a CUDA device there (asked of the installed frameworks that can have one)?"""
    return any(a.has_cuda() for a in installed())
