"""Counterexamples that read like hand-written ones: after Hypothesis has shrunk a new deviation's
case (its shape, arguments, regime and seed), its values are still raw draws, eight digits of
noise. :func:`simplify` tries simpler values for the input, the weight and the bias, simplest
first, and keeps the first that still deviates (the same verdict), within a budget of runs:

- a near-constant array as an offset plus small integers (``[9999.31, 10000.77]`` → ``[9999, 10001]``),
  the offset rounded to 1–3 significant digits and the spread to a power of ten;
- every value rounded to 1, 2 or 3 significant digits.

Each trial is cast to the case's dtype. The case keeps its shape, arguments, buffers and
configuration; the record then reports the simplified case and what it measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["BUDGET", "simplify"]

#: At most this many extra runs of the property per simplified counterexample.
BUDGET = 24
_FIELDS = ("x", "weight", "bias")


def _round_sig(a: np.ndarray, digits: int) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits (0 stays 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(a == 0, 0.0, np.floor(np.log10(np.abs(a))))
        scale = 10.0 ** (digits - 1 - mag)
        return np.where(a == 0, 0.0, np.round(a * scale) / scale)


def _offset_plus_steps(a: np.ndarray) -> Iterator[np.ndarray]:
    """``c + k 10^p``: the mean rounded to 1-3 significant digits, the deviations from it to
    integers of a power of ten chosen from their spread (the spread spans 1-100 such steps)."""
    spread = float(np.max(a) - np.min(a))
    if a.size < 2 or spread == 0 or not math.isfinite(spread):
        return
    mean = float(np.mean(a))
    if abs(mean) < 10 * spread:  # not near-constant: the significant-digit forms below suffice
        return
    step = 10.0 ** math.floor(math.log10(spread))
    for digits in (1, 2, 3):
        c = float(_round_sig(np.array([mean]), digits)[0])
        if abs(c - mean) > spread * 100:
            continue
        for unit in (step, step / 10):
            yield c + np.round((a - c) / unit) * unit


def _candidates(a: np.ndarray) -> Iterator[np.ndarray]:
    """Simpler versions of ``a`` (float64), simplest first, each different from ``a`` and finite."""
    a64 = a.astype(np.float64)
    if not np.isfinite(a64).all():
        return
    seen: list[np.ndarray] = [a64]
    forms = [*_offset_plus_steps(a64), *(_round_sig(a64, d) for d in (1, 2, 3))]
    for f in forms:
        cand = f.astype(a.dtype)
        c64 = cand.astype(np.float64)
        if not np.isfinite(c64).all() or any(np.array_equal(c64, s) for s in seen):
            continue
        seen.append(c64)
        yield cand


def simplify(body: Callable[[Any], Any], case, result, *, budget: int = BUDGET) -> tuple[Any, Any]:
    """``(case, result)`` with simpler values where the deviation persists (module docstring); the
    input as given where no trial keeps it, or where ``result`` is not a wrong value ("fail")."""
    if getattr(result, "verdict", None) != "fail" or not hasattr(case, "with_"):
        return case, result
    best, best_r = case, result
    for name in _FIELDS:
        arr = getattr(best, name, None)
        if arr is None or not isinstance(arr, np.ndarray) or arr.size == 0:
            continue
        for cand in _candidates(arr):
            if budget <= 0:
                return best, best_r
            budget -= 1
            trial = best.with_(**{name: cand})
            try:
                r = body(trial)
            except Exception:  # a trial that cannot run is not simpler
                continue
            if r.verdict == "fail":
                best, best_r = trial, r
                break
    return best, best_r
