"""Does the registry hold at every seed? Runs `normcheck audit` at several seeds and groups the new
deviations and errors (by implementation, property, dtype and value regime), printing one smallest
case per group, and prints each registered numeric finding's worst hit over λ per seed (a finding
met at under 10x λ is a seed away from silence). Exits 1 when any seed has a new deviation or error.

    python scripts/seed_sweep.py --seeds 0-9 [--profile default] [--out out/sweep] [-- AUDIT OPTIONS]

Each seed's document is kept (``OUT/seed-N.json``), so a sweep can be regrouped with ``--reuse``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def run_seed(seed: int, profile: str, out: Path, extra: list[str]) -> tuple[Path, float]:
    path = out / f"seed-{seed}.json"
    cmd = [sys.executable, "-m", "normcheck.cli", "--verbose", "audit", "--profile", profile, "--seed", str(seed)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--quiet", "--json", str(path), *extra], stdout=subprocess.DEVNULL, check=False)
    return path, time.perf_counter() - t0


def new_ones(doc: dict) -> list[dict]:
    return [r for r in doc["records"] if r["verdict"] in ("fail", "error")]


def group_key(r: dict) -> tuple[str, str, str, str]:
    regime = (r.get("counterexample") or {}).get("regime", "?")
    return (r["impl"], r["property"], r["dtype"], regime)


def size(r: dict) -> int:
    shape = ((r.get("counterexample") or {}).get("input") or {}).get("shape") or [10**9]
    n = 1
    for d in shape:
        n *= d
    return n


#: A registered numeric finding is met robustly when its worst hit is at least this many times λ.
MARGIN = 10.0


def margins(docs: dict[int, dict]) -> dict[str, dict[int, float]]:
    """Per registered numeric finding (every one in the registry) and seed: its worst hit over λ
    (observed / allowed) among the records whose examples it explained (a record's
    ``explained_worst``; inf where a hit overflows or is NaN; no entry where the seed did not meet
    it: a dtype the profile does not draw, a version outside its range)."""
    from normcheck import findings

    raising = {f.id for f in findings.load() if f.raises}
    out: dict[str, dict[int, float]] = {f.id: {} for f in findings.load() if not f.raises}
    for seed, doc in docs.items():
        for r in doc["records"]:
            worsts = r.get("explained_worst")
            if worsts is None and r["verdict"] == "finding" and r.get("finding"):  # a document before explained_worst
                obs, lam = r.get("observed"), r.get("allowed") or 16.0
                worsts = {r["finding"]: obs / lam if isinstance(obs, int | float) else "inf"}
            for fid, worst in (worsts or {}).items():
                if fid in raising:
                    continue
                ratio = float("inf") if not isinstance(worst, int | float) else float(worst)
                row = out.setdefault(fid, {})
                row[seed] = max(row.get(seed, 0.0), ratio)
    return out


def out_of_reach(finding, docs: dict[int, dict]) -> str:
    """Why the sweep's profile cannot meet ``finding`` ("" where it can): its dtypes are not drawn,
    no implementation it names was audited (e.g. the extended forms), or no installed version of
    its frameworks is in its range (read from the documents)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    from normcheck.profiles import PROFILES

    doc = next(iter(docs.values()))
    profile = PROFILES.get(doc["run"].get("profile"))
    if finding.dtypes and profile is not None and not set(finding.dtypes) & set(profile.dtypes):
        return f"{'/'.join(finding.dtypes)} only; the {profile.name} profile draws {'/'.join(profile.dtypes)}"
    ran = {r["impl"] for d in docs.values() for r in d.get("records", ())}
    if ran and not any(finding.names_impl(i) for i in ran):
        return f"no implementation it names ({', '.join(finding.impl)}) runs in the {doc['run'].get('profile')} audit"
    packages = doc["run"].get("environment", {}).get("packages", {})
    for part in finding.parts:
        v = packages.get(part.package) or packages.get(f"{part.package}-cpu")
        try:
            if v and Version(v) in SpecifierSet(part.versions):
                return ""
        except InvalidVersion:
            return ""
    return "installed " + ", ".join(
        f"{p.package} {packages.get(p.package) or packages.get(p.package + '-cpu') or 'absent'} outside {p.versions}"
        for p in finding.parts
    )


def print_margins(docs: dict[int, dict]) -> int:
    """The table of every registered numeric finding's worst hit / λ per seed ("—": not met); the
    findings the profile cannot meet are listed after it with the reason. Returns the number of
    findings within reach that some seed meets below MARGIN x λ or not at all."""
    from normcheck import findings

    table = margins(docs)
    if not table:
        return 0
    by_id = {f.id: f for f in findings.load()}
    seeds_ = sorted(docs)
    reach = {fid: out_of_reach(by_id[fid], docs) if fid in by_id else "" for fid in table}
    short = 0
    print(f"\nregistered numeric findings: worst hit / λ per seed (* below {MARGIN:g}x, — not met)")
    print(f"{'finding':<52}" + "".join(f"{s:>9}" for s in seeds_))
    for fid in sorted(f for f in table if not reach[f]):
        cells = []
        for s in seeds_:
            v = table[fid].get(s)
            cells.append("—" if v is None else (f"{v:.3g}" if v < 1e6 else f"{v:.1e}") + ("*" if v < MARGIN else ""))
            short += v is None or v < MARGIN
        print(f"{fid:<52}" + "".join(f"{c:>9}" for c in cells))
    unreachable = sorted(f for f in table if reach[f])
    if unreachable:
        print("\nnot within this profile's reach:")
        for fid in unreachable:
            print(f"  {fid}: {reach[fid]}")
    return short


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seeds, default=seeds("0-9"))
    ap.add_argument("--profile", default="default")
    ap.add_argument("--out", type=Path, default=Path("out/sweep"))
    ap.add_argument("--reuse", action="store_true", help="regroup the documents already in --out")
    ap.add_argument("extra", nargs="*", help="further `normcheck audit` options (after --)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    docs: dict[int, dict] = {}
    print(f"seed sweep, profile {a.profile}: {len(a.seeds)} seeds")
    print(f"{'seed':>4} {'passed':>7} {'registered':>10} {'new':>5} {'errors':>6} {'seconds':>8}")
    for s in a.seeds:
        path = a.out / f"seed-{s}.json"
        took = 0.0
        if not (a.reuse and path.exists()):
            path, took = run_seed(s, a.profile, a.out, a.extra)
        if not path.exists():
            print(f"{s:>4} the audit wrote no document")
            groups.setdefault(("(no document)", "the audit crashed", "", ""), []).append(
                (s, {"verdict": "error", "message": "no document"})
            )
            continue
        doc = docs[s] = json.loads(path.read_text())
        sm = doc["summary"]
        print(
            f"{s:>4} {sm['pass']:>7} {sm['finding']:>10} {sm['fail']:>5} {sm['error']:>6} {took or doc['run']['seconds']:>8.0f}"
        )
        for r in new_ones(doc):
            groups.setdefault(group_key(r), []).append((s, r))
    short = print_margins(docs)
    if short:
        print(f"\n{short} cells of findings within reach are below {MARGIN:g}x λ or not met")
    if not groups:
        print("\nno new deviation and no error at any seed")
        return 0
    print(f"\n{len(groups)} groups of new deviations or errors (implementation, property, dtype, regime):")
    for (impl, prop, dtype, regime), hits in sorted(groups.items()):
        seed, r = min(hits, key=lambda h: size(h[1]))
        seeds_hit = sorted({h[0] for h in hits})
        print(f"\n- {impl} {prop} {dtype} regime={regime}: seeds {seeds_hit}; smallest at seed {seed}")
        print(f"  {r['verdict']}: {r['message'][:200]}")
        ce = r.get("counterexample") or {}
        inp = ce.get("input") or {}
        print(f"  x {inp.get('dtype')}{inp.get('shape')} = {str(inp.get('values'))[:160]}  args {ce.get('args')}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
