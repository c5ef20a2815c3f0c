"""The report's number and text formatting (pure Python over the document's values)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from normcheck.numtext import short

__all__ = ["fmt_seconds", "fmt_units", "num", "order", "slug", "text"]


def num(v: Any) -> float | None:
    """A record number: float, ``"inf"``/``"-inf"`` strings, or ``None`` (NaN)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def fmt_units(v: Any) -> str:
    """A compact number for error-model units: ``0``, ``0.604``, ``16``, ``2.27e6``, ``inf``, ``nan``."""
    x = num(v)
    return "nan" if x is None else short(x)


def fmt_seconds(v: Any) -> str:
    x = num(v)
    if x is None or not math.isfinite(x):
        return "—"
    if x < 60:
        return f"{x:.3g} s" if x < 10 else f"{x:.0f} s"
    m, s = divmod(round(x), 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(v)
    if isinstance(v, bool | int | float):
        return str(v)
    try:
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return str(v)


def slug(*parts: Any) -> str:
    s = "-".join(re.sub(r"[^A-Za-z0-9_]+", "_", str(p)).strip("_") for p in parts)
    return s[:80] or "x"


def order(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)
