"""Merging audit documents: the n shards of one audit (``normcheck audit --shard i/n``) back into
its records, or audits of other versions and machines side by side (each record tagged with its run).
"""

from __future__ import annotations

from typing import Any

from normcheck.audit import equivalence
from normcheck.audit.records import SCHEMA

__all__ = ["compare", "merge", "merge_shards"]


def _summary(records) -> dict[str, int]:
    return {v: sum(r["verdict"] == v for r in records) for v in ("pass", "finding", "fail", "error", "skip")}


def merge_shards(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The n shard documents of one audit as the document of the unsharded run: its records in
    their serial order, the conventions table, the summary recounted. ValueError (one line) when
    they are not exactly shards 1..n of one audit."""
    shards = [d["run"].get("shard") for d in docs]
    if None in shards:
        raise ValueError("not every document is a shard (normcheck audit --shard i/n)")
    n = {int(s.split("/")[1]) for s in shards}
    if len(n) != 1 or sorted(int(s.split("/")[0]) for s in shards) != list(range(1, n.pop() + 1)):
        raise ValueError(f"expected shards 1..n of one audit, got {', '.join(sorted(shards))}")
    same = {(d["run"]["profile"], d["run"]["seed"]) for d in docs}
    if len(same) != 1:
        raise ValueError(f"the shards come from audits with different profiles or seeds: {sorted(same, key=str)}")
    pairs = sorted((p, r) for d in docs for p, r in zip(d["positions"], d["records"], strict=True))
    positions = [p for p, _ in pairs]
    if positions != list(range(len(positions))):
        raise ValueError("the shards' records do not make up one audit (positions missing or repeated)")
    first = min(docs, key=lambda d: d["run"]["shard"])
    records = [r for _, r in pairs]
    run = {**first["run"], "seconds": max(d["run"]["seconds"] for d in docs)}
    run.pop("shard")
    run["merged"] = [d["run"]["shard"] for d in docs]
    return {
        "schema": SCHEMA,
        "run": run,
        "summary": _summary(records),
        "findings": first["findings"],
        "records": records,
        "conventions": [row for d in docs for row in d.get("conventions", [])],
        "equivalence": equivalence.section(records),  # every pair across the shards, from their records
    }


def _label(doc: dict[str, Any], k: int) -> str:
    env = doc["run"].get("environment", {})
    fws = env.get("frameworks", {})
    versions = " ".join(f"{name} {v.get('version')}" for name, v in fws.items())
    return f"run {k + 1}: {versions} on {env.get('machine', '?')} ({doc['run'].get('profile')}, seed {doc['run'].get('seed')})"


def compare(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Audits of other versions or machines side by side: one document whose ``runs`` lists each
    run's environment and whose records carry their run's index (``run``); ``compare`` maps each
    implementation × property × dtype to the verdict (or finding id) of every run."""
    runs, records = [], []
    for k, d in enumerate(docs):
        runs.append({"label": _label(d, k), **{key: d["run"].get(key) for key in ("profile", "seed", "environment")}})
        records += [{**r, "run": k} for r in d["records"]]
    table: dict[str, dict[str, Any]] = {}
    for r in records:
        key = f"{r['impl']} | {r['property']} | {r['dtype']}"
        cell = r["finding"] if r["verdict"] == "finding" else r["verdict"]
        table.setdefault(key, [None] * len(docs))[r["run"]] = cell
    seen: dict[str, dict[str, list[str]]] = {}  # finding -> framework -> versions it was observed in
    for d in docs:
        for r in d["records"]:
            if r.get("finding"):
                v = (d["run"].get("environment", {}).get("frameworks", {}).get(r["framework"]) or {}).get("version")
                seen.setdefault(r["finding"], {}).setdefault(r["framework"], [])
                if v and v not in seen[r["finding"]][r["framework"]]:
                    seen[r["finding"]][r["framework"]].append(v)
    return {
        "schema": SCHEMA,
        "run": {"command": "normcheck report (merged)", "runs": runs},
        "summary": _summary(records),
        "findings": docs[0]["findings"],
        "records": records,
        "compare": table,
        "finding_versions": seen,
        "conventions": [row for d in docs for row in d.get("conventions", [])],
    }


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Shards of one audit merge into it; other documents are compared side by side."""
    if len(docs) == 1:
        return docs[0]
    if all(d["run"].get("shard") for d in docs):
        return merge_shards(docs)
    return compare(docs)
