"""The findings registry (``specs/findings.toml``): known, explained deviations of frameworks.

A failing check that matches a registered finding (implementation id glob, property glob, dtype,
and the package's version within the PEP 440 range) is reported as ``finding``, not ``fail``.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from normcheck.spec import specs_dir

__all__ = ["Finding", "load", "match"]


@dataclass(frozen=True)
class Finding:
    id: str
    package: str
    versions: str
    impl: str
    property: str
    explanation: str
    dtypes: tuple[str, ...] = ()
    case: dict[str, Any] = field(default_factory=dict, compare=False)
    observed: str = ""

    def applies(self, impl_id: str, prop: str, dtype: str, version: str | None = None) -> bool:
        if not (fnmatch.fnmatch(impl_id, self.impl) and fnmatch.fnmatch(prop, self.property)):
            return False
        if self.dtypes and dtype not in self.dtypes:
            return False
        version = version or _installed(self.package)
        if version is None:
            return False
        try:
            return Version(version) in SpecifierSet(self.versions)
        except InvalidVersion:
            return False


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


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
            impl=f["impl"],
            property=f["property"],
            explanation=f["explanation"],
            dtypes=tuple(f.get("dtypes", ())),
            case=f.get("case", {}),
            observed=f.get("observed", ""),
        )
        for f in raw.get("finding", [])
    )


def match(impl_id: str, prop: str, dtype: str) -> Finding | None:
    """The registered finding that explains a failure of ``prop`` on ``impl_id`` at ``dtype``."""
    return next((f for f in load() if f.applies(impl_id, prop, dtype)), None)
