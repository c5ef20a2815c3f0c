"""The findings registry (``specs/findings.toml``): known, explained deviations of frameworks.

A failing check that matches a registered finding (implementation id glob, property glob, dtype,
and the package's version within the PEP 440 range) is reported as ``finding``, not ``fail``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from normcheck import installed
from normcheck.spec import specs_dir

__all__ = [
    "Bound",
    "Finding",
    "Part",
    "applicable",
    "applicable_to",
    "bound_to",
    "findings_keys",
    "load",
    "match",
    "match_impl",
    "range_warnings",
]


@dataclass(frozen=True)
class Part:
    """A finding's occurrence in one more framework (same cause): its package, version range,
    smallest case and what that case gives."""

    framework: str
    package: str
    versions: str
    case: dict[str, Any] = field(default_factory=dict, compare=False)
    observed: str = ""
    # the versions of ``package`` on which the version matrix (scripts/matrix.py) met the finding,
    # and those on which it ran the finding's checks without meeting it
    observed_in: tuple[str, ...] = ()
    absent_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A known deviation. ``package``/``versions``/``case``/``observed`` are those of the framework
    of ``impl[0]``; a cause shared by other frameworks lists them in ``also`` (one :class:`Part`
    each, with its own smallest case)."""

    id: str
    package: str
    versions: str
    impl: tuple[str, ...]  # globs over implementation ids; "!glob" excludes the ids it matches
    property: tuple[str, ...]  # globs over property names
    explanation: str
    dtypes: tuple[str, ...] = ()
    case: dict[str, Any] = field(default_factory=dict, compare=False)
    observed: str = ""
    where: str = ""  # a condition on the case (see ``covers``); empty: any case
    raises: bool = False  # the deviation is an exception: it explains errors, and only errors
    also: tuple[Part, ...] = ()
    observed_in: tuple[str, ...] = ()  # the first framework's (``Part.observed_in``)
    absent_in: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[Part, ...]:
        """Every framework's occurrence, the first one's from the top-level fields."""
        first = Part(
            self.impl[0].split("/")[0],
            self.package,
            self.versions,
            self.case,
            self.observed,
            self.observed_in,
            self.absent_in,
        )
        return (first, *self.also)

    def part(self, framework: str) -> Part | None:
        return next((p for p in self.parts if p.framework == framework), None)

    def covers(self, case, config=None) -> bool:
        """Does the case fall in the finding's region? ``where`` is a Python expression over
        ``N, C, G, shape, spatial, numel, args, dtype, regime, running, weight, bias, prod`` and
        ``amax`` (``max |x|``, in float64), ``vmax`` (the largest biased variance of a statistics set,
        in float64), ``rvmax`` (the largest running variance the case carries, in float64; NaN
        without running buffers), ``set_size`` (the size n of a reduction set) and ``config`` (the constructor options the implementation ran
        the case with, :meth:`normcheck.adapters.Impl.configuration`; ``{}`` for the defaults and where it
        has no configuration axes) (the registry is our own data).
        Failures it covers are counted as this finding and exploration goes on past them."""
        if not self.where:
            return True
        import math

        shape = tuple(case.x.shape)
        names = {
            "shape": shape,
            "N": shape[0] if shape else 1,
            "C": shape[1] if len(shape) > 1 else 1,
            "G": case.args.get("num_groups"),
            "spatial": shape[2:],
            "numel": case.x.size,
            "args": case.args,
            "dtype": case.dtype,
            "regime": case.regime,
            "running": case.running_mean is not None,
            "weight": case.weight is not None,
            "bias": case.bias is not None,
            "prod": math.prod,
            "amax": float(np.max(np.abs(case.x.astype(np.float64)), initial=0.0)),
            "set_size": case.plan().reduce_size,
            "vmax": _max_variance(case) if "vmax" in self.where else math.nan,
            "rvmax": _max_running_variance(case) if "rvmax" in self.where else math.nan,
            "config": config or {},
        }
        return bool(eval(self.where, {"__builtins__": {}}, names))

    def explains(self, case, verdict: str, config=None) -> bool:
        """Does the finding explain a check's ``verdict`` ("fail" or "error") on ``case`` (run in the
        configuration ``config``)? A raise is explained only by a finding that says it raises
        (``raises = true``), a wrong value only by one that does not: an exception never hides behind
        a numerical finding."""
        return self.kind_of(verdict) and self.covers(case, config)

    def kind_of(self, verdict: str) -> bool:
        """Is ``verdict`` ("fail" or "error") the kind of deviation this finding is?"""
        return (verdict == "error") == self.raises

    def names_impl(self, impl_id: str) -> bool:
        """Does ``impl`` name ``impl_id``: a glob matches it and no ``!glob`` (an exclusion, e.g. the
        compiled twins of eager kernels: ``"!torch/*/compiled"``) does?"""
        keep = [g for g in self.impl if not g.startswith("!")]
        drop = [g[1:] for g in self.impl if g.startswith("!")]
        return any(_id_matches(impl_id, g) for g in keep) and not any(fnmatch.fnmatch(impl_id, g) for g in drop)

    def applies(self, impl_id: str, prop: str, dtype: str, version: str | None = None) -> bool:
        """Does the finding apply to ``impl_id`` (an implementation id, or ``framework/norm/*``:
        any implementation of that framework's norm, as for a user's target that runs on it)?"""
        if not self.names_impl(impl_id):
            return False
        if not any(fnmatch.fnmatch(prop, g) for g in self.property):
            return False
        if self.dtypes and dtype not in self.dtypes:
            return False
        part = self.part(impl_id.split("/")[0])
        if part is None:
            return False
        version = version or _installed(part.package)
        if version is None:
            return False
        try:
            return Version(version) in SpecifierSet(part.versions)
        except InvalidVersion:
            return False


def _id_matches(impl_id: str, glob: str) -> bool:
    if not impl_id.endswith("/*"):
        return fnmatch.fnmatch(impl_id, glob)
    # framework/norm/* (a user's target running on that framework): the findings of the framework's
    # norm in every form ("torch/group_norm/*", "jax/*"), not those of one native API ("jax/layer_norm/linen*")
    fw_norm, parts = impl_id[:-2].split("/"), glob.split("/")
    if any(p != "*" for p in parts[2:]):
        return False
    return all(fnmatch.fnmatch(a, g) for a, g in zip(fw_norm, [*parts, "*"][:2]))


def findings_keys(impl) -> tuple[str, ...]:
    """The ids the registry matches for ``impl``: its own; for a user's target
    (``impl.framework == "user"``) running on a framework (``impl.runs_on``), ``torch/group_norm/*``
    (the findings of that framework's norm in every form) and, where the framework's adapter names the
    native form such code calls (:attr:`~normcheck.adapters.Adapter.user_forms`), that form's id
    (``torch/group_norm/functional``). A finding of another native API (Flax linen's fast variance)
    does not explain a user's code."""
    from normcheck import adapters

    runs_on = getattr(impl, "runs_on", None)
    if impl.framework != "user" or not runs_on:
        return (impl.id,)
    form = adapters.get(runs_on).user_forms.get(impl.form) if runs_on in adapters.FRAMEWORKS else None
    return (f"{runs_on}/{impl.norm}/*", *([f"{runs_on}/{impl.norm}/{form}"] if form else []))


def applicable_to(impl, prop: str, dtype: str) -> tuple[Finding, ...]:
    """:func:`applicable` over :func:`findings_keys`, each finding once."""
    keys = findings_keys(impl)
    return tuple(f for f in load() if any(f.applies(k, prop, dtype) for k in keys))


@dataclass(frozen=True)
class Bound:
    """A finding applicable to one implementation: it reads the configuration the implementation ran
    a case in (``Case.variant`` through ``Impl.configuration``) where the finding's ``where`` asks."""

    finding: Finding
    impl: Any

    @property
    def id(self) -> str:
        return self.finding.id

    def explains(self, case, verdict: str) -> bool:
        return self.finding.explains(case, verdict, case.configuration(self.impl))


def bound_to(impl, prop: str, dtype: str) -> tuple[Bound, ...]:
    """:func:`applicable_to`, each finding bound to ``impl`` (:class:`Bound`)."""
    return tuple(Bound(f, impl) for f in applicable_to(impl, prop, dtype))


def match_impl(impl, prop: str, dtype: str, case=None, verdict: str = "fail") -> Finding | None:
    """:func:`match` over :func:`findings_keys`, on ``case`` in the configuration ``impl`` runs it in."""
    found = (f for f in applicable_to(impl, prop, dtype) if f.kind_of(verdict))
    return next((f for f in found if case is None or f.covers(case, case.configuration(impl))), None)


def _installed(package: str) -> str | None:
    """The installed version of ``package`` (or of its ``-cpu``/``-gpu`` build, as TF ships)."""
    return installed.version(package, f"{package}-cpu", f"{package}-gpu")


def _globs(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


@cache
def load(path: str | None = None) -> tuple[Finding, ...]:
    p = Path(path) if path else specs_dir() / "findings.toml"
    if not p.exists():
        return ()
    raw = tomllib.loads(p.read_text())
    return tuple(
        Finding(
            id=f["id"],
            package=f["package"],
            versions=f.get("versions", ""),
            impl=_globs(f["impl"]),
            property=_globs(f["property"]),
            explanation=f["explanation"],
            dtypes=tuple(f.get("dtypes", ())),
            case=f.get("case", {}),
            observed=f.get("observed", ""),
            where=f.get("where", ""),
            raises=bool(f.get("raises", False)),
            also=tuple(
                Part(
                    a["framework"],
                    a["package"],
                    a.get("versions", ""),
                    a.get("case", {}),
                    a.get("observed", ""),
                    tuple(a.get("observed_in", ())),
                    tuple(a.get("absent_in", ())),
                )
                for a in f.get("also", [])
            ),
            observed_in=tuple(f.get("observed_in", ())),
            absent_in=tuple(f.get("absent_in", ())),
        )
        for f in raw.get("finding", [])
    )


def match(impl_id: str, prop: str, dtype: str, case=None, verdict: str = "fail") -> Finding | None:
    """The registered finding that explains a ``verdict`` ("fail": a wrong value, "error": a raise)
    of ``prop`` on ``impl_id`` at ``dtype`` (on ``case``, for findings with a ``where`` region)."""
    found = (f for f in load() if f.applies(impl_id, prop, dtype) and f.kind_of(verdict))
    return next((f for f in found if case is None or f.covers(case)), None)


def applicable(impl_id: str, prop: str, dtype: str) -> tuple[Finding, ...]:
    """The findings that may explain failures of ``prop`` on ``impl_id`` at ``dtype``."""
    return tuple(f for f in load() if f.applies(impl_id, prop, dtype))


def _public(v: str) -> Version | None:
    try:
        return Version(Version(v).public)
    except InvalidVersion:
        return None


def range_warnings(records, versions=None, *, complete: bool = True) -> list[str]:
    """One line per registered finding met (or not) outside the version range the matrix recorded
    for it (``observed_in``/``absent_in``), over an audit's record dicts: met on a version on
    which it was recorded absent (possibly a regression); met on a version outside every recorded
    observation; not met, though its checks ran, on a version newer than every recorded
    observation (possibly fixed; decided only over a ``complete`` audit, not over one shard).
    ``versions``: package -> version (default: the installed ones)."""
    out = []
    for f in load():
        for p in f.parts:
            if not (p.observed_in or p.absent_in):
                continue
            recs = [r for r in records if r.get("framework") == p.framework]
            version = (versions or {}).get(p.package) if versions is not None else _installed(p.package)
            v = _public(version) if version else None
            if not recs or v is None:
                continue
            seen = [x for x in map(_public, p.observed_in) if x is not None]
            absent = [x for x in map(_public, p.absent_in) if x is not None]
            label = f"{f.id}" + (f" ({p.framework})" if f.also else "")
            met = any(_met(r, f.id) for r in recs)
            if met and v in absent:
                out.append(
                    f"{label}: met on {p.package} {v}, a version the matrix recorded it absent on: possibly a regression"
                )
            elif met and seen and v not in seen and not min(seen) <= v <= max(seen):
                out.append(
                    f"{label}: met on {p.package} {v}, outside its recorded observations "
                    f"({p.package} {min(seen)} to {max(seen)}): the recorded range can be extended"
                )
            elif not met and complete and seen and v > max(seen) and v not in absent:
                ran = any(
                    r.get("verdict") != "skip" and f.applies(r["impl"], r["property"], r["dtype"], str(v)) for r in recs
                )
                if ran:
                    out.append(
                        f"{label}: not met on {p.package} {v}, newer than every version it was observed on "
                        f"(last {max(seen)}), though its checks ran: possibly fixed"
                    )
    return out


def _met(record: dict, finding: str) -> bool:
    """Did the audit record (a dict) meet ``finding``: the one it is filed under, or any of the
    findings its examples met (``explained``, with counts)?"""
    return record.get("finding") == finding or bool((record.get("explained") or {}).get(finding))


def _max_running_variance(case) -> float:
    """The largest running variance the case carries, in float64 (NaN without running buffers)."""
    rv = case.running_var
    if rv is None or np.size(rv) == 0:
        return float("nan")
    return float(np.nanmax(np.asarray(rv, np.float64)))


def _max_variance(case) -> float:
    """The largest biased variance over the case's statistics sets, in float64 (0 for an empty input;
    NaN, which no comparison meets, where the sets are not axes of the input itself: groups)."""
    x = case.x.astype(np.float64)
    if x.size == 0:
        return 0.0
    try:
        with np.errstate(all="ignore"):
            v = np.var(x, axis=tuple(case.plan().reduce))
    except (ValueError, IndexError):  # numpy's AxisError is both
        return float("nan")
    return float(np.nanmax(v, initial=0.0)) if np.size(v) else 0.0
