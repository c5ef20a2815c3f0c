"""A check split over worker processes: each process takes whole units, a family of properties at
one dtype, so that the programs a JAX target compiles per shape and dtype are built in one process.

The families are the programs a property compiles: the forward pass on the drawn cases (shared by
agreement, the invariances, contracts, ...), the sub-batches of ``batch_independence``, the VJP
(shared by the three first-order gradient properties), forward-over-reverse (second order) and
forward mode. Each unit goes to the process with the least estimated work so far, the costliest
units first; the estimate is the seconds each family took per dtype in the check of a correct JAX
LayerNorm (``scripts/check_timing.py``). Which process runs a unit never changes its record: each
property draws its examples from the check's seed alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["FAMILIES", "LATER_START_S", "SECONDS", "assign", "family", "processes"]

#: Property -> the family of programs it compiles (any other property: "forward").
FAMILIES = {
    "batch_independence": "sub-batches",
    "gradient_agreement": "vjp",
    "gradient_sums_to_zero": "vjp",
    "gradient_orthogonal": "vjp",
    "gradient_second_order": "second order",
    "jvp": "forward mode",
}

#: A family's seconds at one dtype in the default check of a correct JAX LayerNorm, cold cache
#: (the estimate units are balanced by; December 7 2026, AMD EPYC, quiet, each derivative compiled
#: with the target as one program).
SECONDS = {"forward": 2.7, "sub-batches": 1.5, "vjp": 4.2, "second order": 1.5, "forward mode": 2.5}
#: The seconds the later processes start after the first: they start once it has loaded the target
#: (its framework tells how many there are), then load it themselves.
LATER_START_S = 2.0


def family(prop: str) -> str:
    return FAMILIES.get(prop, "forward")


def processes(framework: str, jobs: int | None) -> int:
    """The processes a check of a ``framework`` target runs in: ``jobs``, or else the framework's
    (:attr:`normcheck.adapters.Adapter.check_processes`: two for JAX, which compiles per shape), at
    most the machine's cores."""
    from normcheck import adapters

    if jobs is None:
        try:
            jobs = adapters.get(framework).check_processes
        except (KeyError, ValueError):
            jobs = 1
    return max(1, min(jobs, os.cpu_count() or 1))


def assign(pairs: Iterable[tuple[str, str]], n: int) -> dict[tuple[str, str], int]:
    """Each (dtype, property) pair's process (0..n-1): units of (dtype, family), costliest first,
    each to the process with the least estimated seconds so far (ties to the lowest index), the
    later processes counted from their later start (:data:`LATER_START_S`)."""
    pairs = list(pairs)
    units: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for dt, prop in pairs:
        units.setdefault((dt, family(prop)), []).append((dt, prop))
    load, out = [0.0] + [LATER_START_S] * (n - 1), {}
    for key in sorted(units, key=lambda u: (-SECONDS.get(u[1], 1.0), u)):
        k = min(range(n), key=lambda j: (load[j], j))
        load[k] += SECONDS.get(key[1], 1.0)
        out.update(dict.fromkeys(units[key], k))
    return out
