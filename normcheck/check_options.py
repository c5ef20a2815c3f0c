"""How :func:`normcheck.check` runs a check: :class:`CheckOptions`, validated when it is built.

A bad setting (an unknown profile, dtype, property or norm, a negative timeout, an axis that is not
an integer) is a ``ValueError`` naming it, raised before anything runs; an unknown option name is a
``TypeError``, as for any keyword a function does not take. A target that cannot be checked is a
different error (:class:`normcheck.target.TargetError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normcheck.target.guard import DEFAULT_TIMEOUT

__all__ = ["CheckOptions", "validate_norm"]


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The settings of one check (every field optional; the defaults are :func:`normcheck.check`'s).

    What is drawn: ``profile`` (a Hypothesis profile of :mod:`normcheck.profiles`), ``seed`` (``None``:
    a fresh one), ``max_examples`` (per property and dtype), ``dtypes`` (instead of the profile's),
    ``properties`` (a subset of the suite). How it is judged: ``axes`` (the statistics over these input
    axes instead of the spec's set S: an axis-set variant), ``diagnose`` (name the variant a deviating
    target implements). How the target is built and called: ``form`` (``"function"`` or
    ``"module"``, inferred when not given), ``init`` (a constructor template, ``"Cls(C, eps={eps})"``),
    ``args`` (constructor keywords pinned to a value), ``no_bias`` / ``no_affine`` (the layer has no
    bias / no weight and bias), ``ranks`` and ``shape`` (the inputs the target takes), ``eager`` (a JAX
    function op by op instead of under ``jax.jit``). Where it runs: ``timeout`` (seconds per call;
    ``None``: no limit), ``in_process`` (here rather than in a worker process), ``jobs`` (worker
    processes the checks are split over; ``None``: the framework's, two for JAX, at most the
    machine's cores). ``label`` names the target in the report.
    """

    form: str | None = None
    profile: str = "default"
    seed: int | None = 0
    max_examples: int | None = None
    dtypes: tuple[str, ...] | None = None
    properties: tuple[str, ...] | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    diagnose: bool = True
    label: str | None = None
    axes: tuple[int, ...] | None = None
    init: str | None = None
    args: Mapping[str, Any] | None = None
    no_bias: bool = False
    no_affine: bool = False
    ranks: tuple[int, ...] | None = None
    shape: tuple[int | None, ...] | None = None
    in_process: bool = False
    eager: bool = False
    jobs: int | None = None

    def __post_init__(self) -> None:
        from normcheck.dtypes import FLOAT_DTYPES
        from normcheck.profiles import PROFILES

        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if self.dtypes is not None:
            fix("dtypes", _names("dtypes", self.dtypes))
            bad = [d for d in self.dtypes if d not in FLOAT_DTYPES]
            if bad:
                raise ValueError(f"unknown dtype {', '.join(bad)}; known: {', '.join(FLOAT_DTYPES)}")
        if self.properties is not None:
            fix("properties", _names("properties", self.properties))
            _known_properties(self.properties)
        if self.form not in (None, "function", "module"):
            raise ValueError(f"form must be 'function' or 'module', not {self.form!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed must be an integer or None, not {self.seed!r}")
        if self.max_examples is not None and not (_is_int(self.max_examples) and self.max_examples > 0):
            raise ValueError(f"max_examples must be a positive integer, not {self.max_examples!r}")
        if self.jobs is not None and not (_is_int(self.jobs) and self.jobs > 0):
            raise ValueError(f"jobs must be a positive integer or None, not {self.jobs!r}")
        if self.timeout is not None and not (_is_number(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, not {self.timeout!r}")
        if self.axes is not None:
            fix("axes", _ints("axes", self.axes))
        if self.ranks is not None:
            fix("ranks", _ints("ranks", self.ranks, positive=True))
        if self.shape is not None:
            if isinstance(self.shape, str) or not isinstance(self.shape, Sequence):
                raise ValueError(f"shape must be a sequence of sizes (None: any), not {self.shape!r}")
            if not all(s is None or (_is_int(s) and s > 0) for s in self.shape):
                raise ValueError(f"shape must hold positive integers or None, not {self.shape!r}")
            fix("shape", tuple(self.shape))
        if self.args is not None:
            if not isinstance(self.args, Mapping) or not all(isinstance(k, str) for k in self.args):
                raise ValueError(f"args must map keyword names to values, not {self.args!r}")
            fix("args", dict(self.args))
        for name in ("diagnose", "no_bias", "no_affine", "in_process", "eager"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        for name in ("form", "label", "init"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, not {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> CheckOptions:
        """A copy with ``changes`` (each a field name; another name is a ``TypeError``)."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TypeError(f"unknown check option {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        return dataclasses.replace(self, **changes) if changes else self

    def settings(self) -> dict[str, Any]:
        """The fields as keywords (what the worker process receives)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def validate_norm(norm: str, properties: Sequence[str] | None = None) -> None:
    """``ValueError`` for a norm the specs do not name, or a property the suite does not have."""
    from normcheck import spec

    if norm not in spec.names():
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(spec.names())}")
    _known_properties(properties or ())


def _known_properties(properties: Sequence[str]) -> None:
    from normcheck.properties import PROPERTIES

    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown property {', '.join(unknown)}; known: {', '.join(PROPERTIES)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _names(what: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a sequence of names, not {value!r}")
    return tuple(value)


def _ints(what: str, value: Any, *, positive: bool = False) -> tuple[int, ...]:
    values = (value,) if _is_int(value) else value
    if isinstance(values, str) or not isinstance(values, Sequence) or not all(_is_int(v) for v in values):
        raise ValueError(f"{what} must be an integer or a sequence of integers, not {value!r}")
    if positive and not all(v > 0 for v in values):
        raise ValueError(f"{what} must be positive, not {value!r}")
    return tuple(values)
