"""The audit's results: one :class:`Record` per check, and the result document (schema
``normcheck.audit/1``, documented in docs/schema.md) with the run's environment.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from normcheck import findings as _findings
from normcheck.audit import equivalence

__all__ = ["MAX_SAMPLES", "SCHEMA", "Record", "document", "environment", "exit_status"]

SCHEMA = "normcheck.audit/1"
MAX_SAMPLES = 200  # observed errors kept per record (for the error-distribution plots)


@dataclass
class Record:
    """One check: one property of one implementation at one dtype (a row of the results)."""

    impl: str
    framework: str
    version: str | None
    norm: str
    form: str
    layout: str
    mode: str
    api: str
    dtype: str
    property: str
    verdict: str  # pass | finding | fail | error | skip
    observed: float = 0.0  # worst observed error, model units (u·s)
    allowed: float = 0.0
    examples: int = 0
    samples: list[float] = field(default_factory=list)  # every example's observed error (capped)
    message: str = ""
    finding: str | None = None
    counterexample: dict[str, Any] | None = None
    repro: str | None = None
    seconds: float = 0.0
    diagnosis: str | None = None
    # a check that keeps exploring after the target raises (``normcheck check``): the smallest case
    # on which it raised ({"message", "counterexample", "repro"}), reported beside any deviation
    raises: dict[str, Any] | None = None
    # for a native implementation with configuration axes: examples, worst error and deviations per
    # configuration drawn, by the options set away from their defaults ("defaults": none)
    configs: dict[str, dict[str, Any]] | None = None
    # where registered findings explained examples: each finding met and how many examples it explained,
    # and the worst error (u·s) over the judged examples no finding explains (the record's verdict and
    # observed speak for the first finding's smallest hit)
    explained: dict[str, int] | None = None
    unexplained_worst: float | None = None
    explained_worst: dict[str, float] | None = None  # each finding's worst hit over what the model allows

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("raises", "configs", "explained", "unexplained_worst", "explained_worst"):
            if d[k] is None:
                del d[k]
        if "unexplained_worst" in d:
            d["unexplained_worst"] = _number(d["unexplained_worst"])
        if "explained_worst" in d:
            d["explained_worst"] = {k: _number(v) for k, v in d["explained_worst"].items()}
        for k in ("observed", "allowed"):
            d[k] = _number(d[k])
        for row in d.get("configs", {}).values():
            row["worst"] = _number(row["worst"])
        d["samples"] = [round(s, 4) for s in d["samples"] if math.isfinite(s)]
        return d


def _number(v: float):
    """``v`` as JSON holds it: a finite float, ``"inf"``/``"-inf"``, or None for NaN."""
    if math.isfinite(v):
        return v
    return None if math.isnan(v) else ("inf" if v > 0 else "-inf")


def document(records: list[Record | dict[str, Any]], *, profile, seed, started, argv=()) -> dict[str, Any]:
    """The result document of ``records`` (docs/schema.md): :class:`Record` objects, or records
    already in their JSON form (read back from a journal or an interrupted run's document)."""
    rows = [r.to_json() if isinstance(r, Record) else r for r in records]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "schema": SCHEMA,
        "run": {
            "command": "normcheck " + " ".join(argv),
            "profile": profile,
            "seed": seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 2),
            "environment": environment(),
        },
        "summary": {v: counts.get(v, 0) for v in ("pass", "finding", "fail", "error", "skip")},
        "findings": [_finding_json(f) for f in _findings.load()],
        "records": rows,
        # findings met (or not) outside the versions the matrix recorded for them (one line each)
        "warnings": _findings.range_warnings(rows),
        # every pair of implementations of a norm, per dtype (normcheck.audit.equivalence)
        "equivalence": equivalence.section(rows),
    }


def _finding_json(f: _findings.Finding) -> dict[str, Any]:
    out = {
        "id": f.id,
        "package": f.package,
        "versions": f.versions,
        "impl": f.impl,
        "property": f.property,
        "explanation": f.explanation,
    }
    if f.also:  # the same cause in other frameworks
        out["also"] = [{"framework": p.framework, "package": p.package, "versions": p.versions} for p in f.also]
    ranges = {  # the versions the matrix (scripts/matrix.py) met it on, and ran its checks on without it
        p.framework: {"package": p.package, "observed_in": list(p.observed_in), "absent_in": list(p.absent_in)}
        for p in f.parts
        if p.observed_in or p.absent_in
    }
    if ranges:
        out["verified"] = ranges
    return out


def exit_status(doc: dict[str, Any]) -> int:
    """0 when everything passed or is a registered finding, 1 on anything new."""
    s = doc["summary"]
    return 1 if s.get("fail", 0) or s.get("error", 0) else 0


def environment() -> dict[str, Any]:
    from normcheck import __version__, adapters  # the adapters: which frameworks are installed

    fws = {}
    for a in adapters.installed():
        fws[a.name] = {"version": a.version()}
    return {
        "normcheck": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpus": _cpu_count(),
        "frameworks": fws,
        "packages": _packages(),
    }


def _packages() -> dict[str, str]:
    """The versions of the distributions a run records beside the frameworks' (a framework's version
    is one package's: JAX's is jax, not flax): each adapter's :attr:`~normcheck.adapters.Adapter.packages`
    (what the registry's packages build on) and the registry's packages."""
    from normcheck import adapters, installed

    dists = dict.fromkeys([*adapters.packages(), *(f.package for f in _findings.load())])
    return {dist: v for dist in dists if (v := installed.version(dist)) is not None}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
