"""Installed distributions' versions, read from their metadata once per process (reading a
distribution's metadata costs milliseconds, and the audit asks for every check)."""

from __future__ import annotations

import functools
import importlib.metadata

__all__ = ["version"]


@functools.cache
def version(*dists: str) -> str | None:
    """The installed version of the first of ``dists`` that is installed, or None."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
