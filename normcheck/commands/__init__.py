"""One module per ``normcheck`` subcommand, discovered by name: each defines ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int`` and imports nothing heavy at module level."""

from __future__ import annotations

import importlib
import pkgutil

ORDER = ("audit", "check", "bench", "report", "specs", "frameworks", "conventions")


def names() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")
