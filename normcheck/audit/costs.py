"""What each unit of an audit cost when it last ran, so that the next audit's processes claim the
costliest units first and finish together: the seconds of a unit's checks, per profile, kept beside
the compiled programs in ``$XDG_CACHE_HOME/normcheck/costs/<profile>.json`` (not kept with the
caches off: ``NORMCHECK_NO_CACHE``). Only the order in which processes take units depends on it,
never a record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from normcheck import compile_cache

__all__ = ["measured", "path", "remember", "unit"]


def unit(impl_id: str, dtype: str) -> str:
    """The unit of work a process takes whole: an implementation's checks at one dtype, identities
    included (a program is compiled per shape and dtype, so no two units share one)."""
    return f"{impl_id} {dtype}"


def path(profile: str | None) -> Path | None:
    """The profile's file, or None with the caches off."""
    folder = compile_cache.folder("costs")
    return None if folder is None else Path(folder) / f"{profile or 'none'}.json"


def _read(p: Path | None) -> dict[str, float]:
    try:
        data = json.loads(p.read_text()) if p is not None else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and v >= 0}


def measured(profile: str | None, units: Iterable[str]) -> dict[str, float]:
    """Each of ``units``' seconds in the profile's last run, where every one of them has them
    (seconds and check counts do not mix in one order); else empty."""
    data = _read(path(profile))
    units = list(units)
    return {u: data[u] for u in units} if all(u in data for u in units) else {}


def remember(profile: str | None, records: Iterable) -> None:
    """Keep the seconds of each unit the ``records`` (:class:`normcheck.audit.Record`) cover,
    beside those of units this run did not run; a folder that cannot be written is left alone."""
    p = path(profile)
    spent: dict[str, float] = {}
    for r in records:
        key = unit(r.impl, r.dtype)
        spent[key] = spent.get(key, 0.0) + r.seconds
    if p is None or not spent:
        return
    data = _read(p) | {k: round(v, 3) for k, v in spent.items()}
    try:
        compile_cache.put(p, json.dumps(data, indent=0, sort_keys=True).encode())
    except OSError:
        pass
