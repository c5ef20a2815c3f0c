"""Load the declarative norm specs in ``specs/`` and resolve their axis sets on concrete shapes.

A spec names the input layout symbolically (``["N", "C", "*spatial"]`` or
``["*batch", "*normalized"]``), optionally splits a symbol into contiguous blocks
(``split = {C = ["G", "C/G"]}``), and lists the symbols the statistics reduce over (the set S).
:func:`plan` turns that into a concrete view shape and reduction axes for one input; the reference,
the strategies and the properties all go through it, so no module restates which axes a norm uses.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

__all__ = [
    "STANDARD_ARRAYS",
    "Component",
    "Identity",
    "Plan",
    "Spec",
    "SpecError",
    "component_axes",
    "get",
    "load",
    "names",
    "plan",
    "specs_dir",
]


class SpecError(ValueError):
    """A spec file is malformed, or a shape/argument does not fit a spec."""


def specs_dir() -> Path:
    """``$NORMCHECK_SPECS`` if set, else the folder of the package ``normcheck.specs``.

    That package is the checkout's top-level ``specs/`` folder (pyproject.toml maps it with
    ``package-dir``): in a wheel its TOML files are package data, in an editable install the
    import system resolves it to the checkout's folder.
    """
    env = os.environ.get("NORMCHECK_SPECS")
    if env:
        return Path(env)
    try:
        package = importlib.import_module("normcheck.specs")
    except ModuleNotFoundError:  # an editable install made before specs/ became a package
        raise SpecError("no package normcheck.specs: reinstall normcheck (or set NORMCHECK_SPECS)") from None
    (folder,) = package.__path__
    return Path(folder)


@dataclass(frozen=True)
class Identity:
    """``spec.norm(x, **args) == rhs.norm(view(x), **rhs.args)`` (see the spec files)."""

    name: str
    lhs: str
    statement: str
    args: dict[str, Any]
    rhs: dict[str, Any]
    min_rank: int = 1
    input: str = "any"


@dataclass(frozen=True)
class Component:
    """One statistics component of a mixture norm (Switchable Normalization): its own set S."""

    name: str
    reduce: tuple[str, ...]
    running: bool = False  # eval mode replaces it by the running statistics


#: Array-valued arguments every spec may have (the statistics' buffers and the affine parameters).
STANDARD_ARRAYS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    formula: str
    params: tuple[str, ...]
    layout: tuple[str, ...]
    reduce: tuple[str, ...]
    split: dict[str, tuple[str, str]]
    affine_axes: tuple[str, ...]
    has_bias: bool
    center: bool
    default_eps: float | str
    min_rank: int
    min_reduce_size_training: int
    batch_stats_flag: str | None
    running_stats: dict[str, Any] | None
    identities: tuple[Identity, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)
    mix: tuple[Component, ...] = ()  # non-empty: the statistics are a softmax-weighted mixture
    extra_arrays: tuple[str, ...] = ()  # array arguments beyond STANDARD_ARRAYS (mixture logits)

    @property
    def array_params(self) -> tuple[str, ...]:
        """The array-valued arguments of the signature (weight, running buffers, mixture logits ...)."""
        return tuple(p for p in self.param_names if p in STANDARD_ARRAYS or p in self.extra_arrays)

    @cached_property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.split("=", 1)[0] for p in self.params)

    @property
    def defaults(self) -> dict[str, Any]:
        """Default argument values from the signature (``"eps=1e-05"`` -> ``{"eps": 1e-05}``)."""
        out = {}
        for p in self.params:
            if "=" in p:
                k, v = p.split("=", 1)
                out[k] = _literal(v)
        return out

    @property
    def shape_arg(self) -> str | None:
        """The argument that sizes the axis set: ``normalized_shape``, ``num_groups`` or None."""
        for a in ("normalized_shape", "num_groups"):
            if a in self.param_names:
                return a
        return None

    @property
    def has_running_stats(self) -> bool:
        return self.running_stats is not None

    def resolve_eps(self, eps, dtype) -> float:
        """The eps actually used: the given one, or the default (``"finfo_opmath"``: the machine
        epsilon of the computation dtype, ``promote(dtype, float32)``)."""
        if eps is not None:
            return float(eps)
        if self.default_eps == "finfo_opmath":
            import numpy as np

            from normcheck.dtypes import np_dtype

            opmath = np.float64 if np_dtype(dtype) == np.float64 else np.float32
            return float(np.finfo(opmath).eps)
        return float(self.default_eps)


_CONSTANTS = {"None": None, "True": True, "False": False}


def _literal(text: str) -> Any:
    return _CONSTANTS[text] if text in _CONSTANTS else float(text)


def _parse(raw: dict[str, Any]) -> Spec:
    try:
        axes, stats, affine = raw["axes"], raw["statistics"], raw["affine"]
        name = raw["name"]
        identities = tuple(
            Identity(
                name=i["name"],
                lhs=name,
                statement=i["statement"],
                args=dict(i.get("args", {})),
                rhs=dict(i["rhs"]),
                min_rank=int(i.get("min_rank", 1)),
                input=i.get("input", "any"),
            )
            for i in raw.get("identity", [])
        )
        return Spec(
            name=name,
            title=raw["title"],
            formula=raw["formula"],
            params=tuple(raw["signature"]["params"]),
            layout=tuple(axes["layout"]),
            reduce=tuple(axes["reduce"]),
            split={k: tuple(v) for k, v in axes.get("split", {}).items()},
            affine_axes=tuple(affine["axes"]),
            has_bias=bool(affine.get("bias", True)),
            center=bool(stats["center"]),
            default_eps=stats["default_eps"],
            min_rank=int(axes.get("min_rank", 1)),
            min_reduce_size_training=int(stats.get("min_reduce_size_training", 1)),
            batch_stats_flag=raw["signature"].get("batch_stats_flag"),
            running_stats=raw.get("running_stats"),
            identities=identities,
            raw=raw,
            mix=tuple(
                Component(m["name"], tuple(m["reduce"]), bool(m.get("running", False))) for m in raw.get("mix", [])
            ),
            extra_arrays=tuple(raw["signature"].get("arrays", ())),
        )
    except KeyError as e:
        raise SpecError(f"spec {raw.get('name', '?')!r} lacks the key {e}") from None


@cache
def load(directory: str | None = None) -> dict[str, Spec]:
    """Every ``*.toml`` spec in the specs folder (not the findings registry), by name."""
    d = Path(directory) if directory else specs_dir()
    if not d.is_dir():
        raise SpecError(f"no specs folder at {d} (set NORMCHECK_SPECS)")
    out = {}
    for f in sorted(d.glob("*.toml")):
        raw = tomllib.loads(f.read_text())
        if "axes" not in raw:  # e.g. findings.toml
            continue
        s = _parse(raw)
        out[s.name] = s
    return out


def names() -> tuple[str, ...]:
    return tuple(load())


def get(name: str) -> Spec:
    specs = load()
    if name not in specs:
        raise SpecError(f"unknown norm {name!r}; known: {', '.join(specs)}")
    return specs[name]


@dataclass(frozen=True)
class Plan:
    """A spec resolved on one input shape.

    The statistics are taken over ``reduce`` of ``x.reshape(view_shape)``; ``stat_shape`` is
    their shape with the reduced axes kept as 1; the affine parameters have ``affine_shape`` and
    broadcast against the input as ``affine_broadcast``.
    """

    shape: tuple[int, ...]
    view_shape: tuple[int, ...]
    reduce: tuple[int, ...]
    symbols: dict[str, tuple[int, ...]]
    affine_shape: tuple[int, ...]
    affine_broadcast: tuple[int, ...]

    @property
    def reduce_size(self) -> int:
        n = 1
        for a in self.reduce:
            n *= self.view_shape[a]
        return n

    @property
    def stat_shape(self) -> tuple[int, ...]:
        return tuple(1 if i in self.reduce else d for i, d in enumerate(self.view_shape))


def _expand(layout, shape, k_normalized):
    """Map layout symbols onto concrete axes of ``shape``: {"N": (0,), "*spatial": (2, 3), ...}."""
    rank = len(shape)
    starred = [s for s in layout if s.startswith("*")]
    fixed = len(layout) - len(starred)
    out, i = {}, 0
    for s in layout:
        if s == "*normalized":
            n = k_normalized
        elif s.startswith("*"):
            others = sum(k_normalized for t in starred if t == "*normalized")
            n = rank - fixed - others
        else:
            n = 1
        if n < 0:
            raise SpecError(f"input of rank {rank} is too small for layout {list(layout)}")
        out[s] = tuple(range(i, i + n))
        i += n
    if i != rank:
        raise SpecError(f"input of rank {rank} does not fit layout {list(layout)}")
    return out


#: Resolved plans by (id(spec), shape, arguments): (the spec, its plan); a Plan is never modified.
_PLANS: dict[tuple, tuple[Spec, Plan]] = {}


def _hashable(a):
    return tuple(a) if isinstance(a, list) else a


def plan(spec: Spec | str, shape, *, normalized_shape=None, num_groups=None, reduce_axes=None) -> Plan:
    """Resolve ``spec`` on an input of ``shape``.

    ``reduce_axes`` (tuple of ints) overrides the spec's set S, for axis-set variants such as a
    channels-first LayerNorm over axis 1 only. Plans are cached (a property resolves a case's many
    times).
    """
    spec = get(spec) if isinstance(spec, str) else spec
    shape = tuple(shape)
    key = (id(spec), shape, _hashable(normalized_shape), num_groups, _hashable(reduce_axes))
    try:
        hit = _PLANS.get(key)
    except TypeError:  # an unhashable argument: resolved, not cached
        return _plan(spec, shape, normalized_shape=normalized_shape, num_groups=num_groups, reduce_axes=reduce_axes)
    if hit is not None and hit[0] is spec:
        return hit[1]
    p = _plan(spec, shape, normalized_shape=normalized_shape, num_groups=num_groups, reduce_axes=reduce_axes)
    if len(_PLANS) >= 4096:
        _PLANS.clear()
    _PLANS[key] = (spec, p)
    return p


def _plan(spec: Spec, shape, *, normalized_shape, num_groups, reduce_axes) -> Plan:
    shape = tuple(int(d) for d in shape)
    if len(shape) < spec.min_rank:
        raise SpecError(f"{spec.name} needs an input of rank >= {spec.min_rank}, got shape {shape}")
    k = 0
    if "*normalized" in spec.layout:
        if normalized_shape is None:
            raise SpecError(f"{spec.name} needs normalized_shape")
        ns = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(int(d) for d in normalized_shape)
        k = len(ns)
        if reduce_axes is not None:  # an explicit set: normalized_shape gives the sizes of its axes
            sizes = tuple(shape[a % len(shape)] for a in sorted({a % max(len(shape), 1) for a in reduce_axes}))
            if ns != sizes:
                raise SpecError(
                    f"normalized_shape {ns} does not match the sizes {sizes} of axes {tuple(reduce_axes)} "
                    f"of input shape {shape}"
                )
        elif k == 0 or k > len(shape) or shape[len(shape) - k :] != ns:
            raise SpecError(f"normalized_shape {ns} does not match the trailing axes of input shape {shape}")
    sym = _expand(spec.layout, shape, k)

    # Split symbols into contiguous blocks: C -> (G, C/G) with G = num_groups.
    view_shape: list[int] = []
    view_axes: dict[str, tuple[int, ...]] = {}
    for s in spec.layout:
        if s in spec.split:
            (c_axis,) = sym[s]
            c = shape[c_axis]
            if num_groups is None:
                raise SpecError(f"{spec.name} needs num_groups")
            g = int(num_groups)
            if g <= 0 or c % g:
                raise SpecError(f"num_groups={g} must be positive and divide the {c} channels")
            outer, inner = spec.split[s]
            view_axes[outer] = (len(view_shape),)
            view_axes[inner] = (len(view_shape) + 1,)
            view_shape += [g, c // g]
        else:
            view_axes[s] = tuple(range(len(view_shape), len(view_shape) + len(sym[s])))
            view_shape += [shape[a] for a in sym[s]]

    if reduce_axes is not None:
        if any(not -len(shape) <= int(a) < len(shape) for a in reduce_axes) or not len(reduce_axes):
            raise SpecError(f"axes {tuple(reduce_axes)} are not a non-empty set of axes of input shape {shape}")
        if spec.mix:
            raise SpecError(f"{spec.name}: an explicit axis set cannot be combined with a mixture of statistics")
        if spec.split:
            raise SpecError(f"{spec.name}: an explicit axis set cannot be combined with grouped channels")
        red = tuple(sorted({a % len(shape) for a in reduce_axes}))
        view_shape, view_axes = list(shape), {s: a for s, a in sym.items()}
        if set(spec.affine_axes) <= set(spec.reduce):
            aff = red  # LayerNorm-like: the affine parameters live on the normalized axes
        else:  # BatchNorm-like: per "channel", every axis neither reduced nor the batch axis
            aff = tuple(a for a in range(len(shape)) if a not in red and a != 0)
            for s in spec.affine_axes:  # running statistics are kept per channel too
                view_axes[s] = aff
            if "N" in view_axes:
                view_axes["N"] = () if 0 in red else (0,)
    else:
        red = tuple(a for s in spec.reduce for a in view_axes[s])
        aff = tuple(a for s in spec.affine_axes for a in sym[s])
    affine_shape = tuple(shape[a] for a in aff)
    affine_broadcast = tuple(shape[a] if a in aff else 1 for a in range(len(shape)))
    return Plan(shape, tuple(view_shape), red, view_axes, affine_shape, affine_broadcast)


def component_axes(spec: Spec, plan: Plan) -> tuple[tuple[int, ...], ...]:
    """The reduction axes (of ``plan.view_shape``) of each mixture component, in ``spec.mix`` order."""
    return tuple(tuple(a for s in c.reduce for a in plan.symbols[s]) for c in spec.mix)
