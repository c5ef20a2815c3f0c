"""Numbers as people write them in tables and sentences: ``1.93e6``, ``0.21``, ``inf``; never
``1.93e+06`` or ``np.float64(0.21)``."""

from __future__ import annotations

import math

__all__ = ["short", "trim_exponent"]


def trim_exponent(text: str) -> str:
    """``"1.9e+06"`` -> ``"1.9e6"``, ``"1e-04"`` -> ``"1e-4"``; text without an exponent as it is."""
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return f"{mant}e{int(exp)}"


def short(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits: ``0``, ``0.604``, ``16``, ``2.27e6``, ``inf``, ``nan``."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    return trim_exponent(f"{v:.{digits}g}")
