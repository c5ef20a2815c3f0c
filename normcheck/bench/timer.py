"""A small, framework-neutral timer: warm-up excluded, synchronized, adaptive, median and IQR.

:func:`measure` times ``fn()`` one call at a time: ``t0 = perf_counter(); out = fn(); sync(out);
del out; t1 = perf_counter()``, where ``sync`` blocks until the framework has really finished
(``torch.cuda.synchronize()``, ``jax.block_until_ready``, a one-element pull of a TensorFlow result
to the host; nothing for NumPy and CPU torch, which return finished results). The clock is read
only after the sync, so asynchronous dispatch never makes a call look faster than it is, and after
the result is released: a caller pays that on every call (freeing a large CPU output unmaps its
pages), and ``torch.utils.benchmark`` counts it too.

The first call is timed on its own and reported as ``first_s``: for a jitted or compiled function
it contains tracing and compilation, which :attr:`Timing.compile_s` reports separately
(``first_s - median_s``) instead of mixing it into the steady-state time. Then ``warmup`` more
calls are made and discarded (allocator and page-fault warm-up), and then calls are repeated until
both ``min_reps`` calls and ``min_time`` seconds of measured time are reached (or ``max_reps`` /
``max_time``). The result is the median and the inter-quartile range of the per-call times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Timing", "measure", "no_sync", "quantiles"]


def no_sync(_out: Any) -> None:
    """The sync of a framework whose calls return finished results (NumPy, torch on CPU)."""


def quantiles(times: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of ``times`` (linear interpolation)."""
    if not times:
        raise ValueError("no times")
    if len(times) == 1:
        return times[0], times[0], times[0]
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, statistics.median(times), q3


@dataclass
class Timing:
    """Per-call times of one measurement (seconds)."""

    times: list[float] = field(default_factory=list)  # the measured calls, warm-up excluded
    first_s: float = 0.0  # the first call (tracing/compilation included for jitted code)

    @property
    def reps(self) -> int:
        return len(self.times)

    @property
    def median_s(self) -> float:
        return quantiles(self.times)[1]

    @property
    def iqr_s(self) -> float:
        q1, _, q3 = quantiles(self.times)
        return q3 - q1

    @property
    def min_s(self) -> float:
        return min(self.times)

    @property
    def compile_s(self) -> float:
        """What the first call cost beyond a steady-state call (tracing and compilation)."""
        return max(0.0, self.first_s - self.median_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "min_s": self.min_s,
            "reps": self.reps,
            "first_s": self.first_s,
        }


def measure(
    fn: Callable[[], Any],
    *,
    sync: Callable[[Any], None] = no_sync,
    warmup: int = 1,
    min_reps: int = 5,
    max_reps: int = 10_000,
    min_time: float = 0.2,
    max_time: float = 30.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``fn()`` (see the module docstring): first call, ``warmup`` discarded calls, then at least
    ``min_reps`` calls and ``min_time`` seconds, at most ``max_reps`` calls or ``max_time`` seconds."""
    if min_reps < 1:
        raise ValueError("min_reps must be at least 1")
    t = Timing()
    t0 = clock()
    sync(fn())
    t.first_s = clock() - t0
    for _ in range(warmup):
        sync(fn())
    total = 0.0
    start = clock()
    while True:
        t0 = clock()
        out = fn()
        sync(out)
        del out  # releasing the result is part of a call's cost (a large CPU buffer is unmapped)
        dt = clock() - t0
        t.times.append(dt)
        total += dt
        n = len(t.times)
        if n >= max_reps or clock() - start >= max_time:
            break
        if n >= min_reps and total >= min_time:
            break
    return t
