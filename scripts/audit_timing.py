"""How fast is the audit itself? Prints numbers; asserts nothing but the import hygiene.

1. `normcheck --help`: wall time in a fresh interpreter, and that it imports no framework.
2. The audit on a profile (default `ci`): the whole run as a user types it (``--jobs 2``), its wall
   time against the 5-minute target; then one subprocess per framework: wall time and examples
   checked per second per framework.
3. Harness overhead: for generated cases, the time of the bare adapter call vs the full
   `agreement` property (generation excluded), as a ratio.
4. JAX: op-by-op vs jit (nnx and linen) on a stream of varying shapes, forward and forward + VJP, calls per second.
5. ``--main-job``: the README's main job (``normcheck audit``, default profile) twice in a fresh
   compilation cache folder, cold then warm, against the 4-minute target, and whether the two runs'
   records are identical (``seconds`` aside).

Every figure is printed with the machine's load average, which says whether it can be trusted.

    python scripts/audit_timing.py [--profile ci] [--frameworks numpy,torch,jax,tensorflow,onnxruntime]
    python scripts/audit_timing.py --main-job
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEAVY = {"torch", "jax", "flax", "tensorflow", "keras", "onnx", "onnxruntime"}


def help_time() -> None:
    code = (
        "import time, sys; t = time.perf_counter(); from normcheck import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('@@', time.perf_counter() - t, ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    line = next(ln for ln in out.splitlines() if ln.startswith("@@"))
    inner, mods = float(line.split()[1]), set(line.split()[2:])
    heavy = sorted(HEAVY & mods)
    print(
        f"normcheck --help: {wall:.2f} s wall with interpreter start, {inner * 1e3:.0f} ms in normcheck; frameworks imported: {heavy or 'none'}"
    )
    assert not heavy, heavy


TARGET_S = 300  # issue 7: the CI profile of the whole property suite in under 5 minutes here


def whole_audit_time(profile: str, frameworks: list[str], jobs: int) -> None:
    """The audit as a user runs it (every framework, ``--jobs`` processes): wall time and its target."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "a.json"
        argv = ["audit", "--profile", profile, "--frameworks", ",".join(frameworks), "--jobs", str(jobs)]
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "normcheck.cli", *argv, "--quiet", "--json", str(out)], capture_output=True
        )
        wall = time.perf_counter() - t0
        doc = json.loads(out.read_text())
    cpu = sum(r["seconds"] for r in doc["records"])
    verdict = "meets" if wall < TARGET_S else "MISSES"
    print(
        f"normcheck {' '.join(argv)}: {wall:.0f} s wall ({verdict} the {TARGET_S} s target), "
        f"{cpu:.0f} s in checks over {len(doc['records'])} records, summary {doc['summary']}"
    )


def audit_time(profile: str, frameworks: list[str]) -> None:
    for fw in frameworks:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "a.json"
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "normcheck.cli",
                    "audit",
                    "--profile",
                    profile,
                    "--frameworks",
                    fw,
                    "--quiet",
                    "--json",
                    str(out),
                ],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            doc = json.loads(out.read_text())
        n = sum(r["examples"] for r in doc["records"])
        print(
            f"audit --profile {profile} --frameworks {fw}: {wall:.0f} s wall, {len(doc['records'])} checks, {n} examples, {n / wall:.1f} examples/s, summary {doc['summary']}"
        )


#: The README's main job on this 2-core machine, quiet: the first run (empty caches) and a later one.
MAIN_JOB_TARGET_S = {"cold": 300, "warm": 180}
#: The first run at most this many times a later one.
FIRST_RUN_RATIO = 2.0


def load() -> str:
    """The 1-, 5- and 15-minute load averages, for the record beside a timing."""
    try:
        one, five, fifteen = (float(v) for v in Path("/proc/loadavg").read_text().split()[:3])
    except (OSError, ValueError):
        return "load average unknown"
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(path.read_text())["records"]]


def main_job(jobs: int, verbose: bool = False, keep: Path | None = None) -> None:
    """The README's main job, cold then warm compilation cache (a fresh folder), wall time each;
    with ``verbose`` each run's ``--timings`` tables; with ``keep`` a folder the two result
    documents are copied into (cold.json, warm.json)."""
    import os

    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(d) / "cache")}
        env.pop("NORMCHECK_NO_CACHE", None)
        docs, walls = {}, {}
        for run in ("cold", "warm"):
            out = Path(d) / f"{run}.json"
            argv = ["audit", "--jobs", str(jobs), "--quiet", "--timings", "--json", str(out)]
            before = load()
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "normcheck.cli", *argv], capture_output=True, env=env)
            wall = time.perf_counter() - t0
            doc = json.loads(out.read_text())
            docs[run] = out
            walls[run] = wall
            verdict = "meets" if wall <= MAIN_JOB_TARGET_S[run] else "MISSES"
            jax = [p for p in doc["timings"]["processes"] if p["framework"] == "jax"]
            compiled = sum(p.get("compiles", 0) for p in jax)
            hits = sum(p.get("cache_hits", 0) for p in jax)
            stored = sum(p.get("stored_loaded", 0) for p in jax)
            print(
                f"main job (normcheck audit, default profile), {run} cache: {wall:.0f} s wall ({verdict} the "
                f"{MAIN_JOB_TARGET_S[run]} s target); JAX {compiled} programs compiled or loaded, {hits} of them from"
                f" JAX's cache, {stored} executables from normcheck's store; summary "
                f"{doc['summary']}; {before} before, {load()} after"
            )
            if verbose:
                from normcheck.commands.audit import print_timings

                print_timings(doc)
        same = _records(docs["cold"]) == _records(docs["warm"])
        print(f"main job: cold and warm records {'identical' if same else 'DIFFER'} (seconds aside)")
        ratio = walls["cold"] / walls["warm"]
        verdict = "meets" if ratio <= FIRST_RUN_RATIO else "MISSES"
        print(f"main job: the first run took {ratio:.2f}x a later one ({verdict} the {FIRST_RUN_RATIO:g}x target)")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for run, path in docs.items():
                (keep / f"{run}.json").write_text(path.read_text())


def _sample(strategy, n: int) -> list:
    import hypothesis

    out = []

    @hypothesis.settings(max_examples=n, database=None, derandomize=True, deadline=None)
    @hypothesis.given(strategy)
    def collect(c):
        out.append(c)

    collect()
    return out


def overhead(frameworks: list[str], n: int = 40, rounds: int = 9) -> None:
    """The `agreement` property over the bare adapter call, on the same warm cases (generation
    excluded), two ways: ``fresh``, each case's float64 reference and scale computed for this call
    (a new case object each time); ``as the audit runs``, the same case objects replayed to every
    implementation of the norm, as the audit replays its draws (the reference, scale and prepared
    comparison are computed once per case object, so the framework's implementations of a norm
    share them: the first implementation pays for them). Each case is timed ``rounds`` times, the
    three measurements interleaved, and each takes its fastest round (a shared machine's
    interruptions only ever add time)."""
    from normcheck import adapters, properties, strategies

    for fw in frameworks:
        impls = [
            i for i in adapters.get(fw).implementations() if not i.extended and i.norm in ("layer_norm", "group_norm")
        ]
        drawn, work = {}, []
        for impl in impls:
            if impl.norm not in drawn:
                drawn[impl.norm] = _sample(strategies.cases(impl.norm, dtypes=("float32",), regimes=("normal",)), n)
            for c in drawn[impl.norm]:  # warm: compile caches filled for every measurement
                try:
                    c.call(impl)
                except Exception:
                    continue
                work.append((impl, c))
        best = {k: [float("inf")] * len(work) for k in ("bare", "fresh", "shared")}
        for _ in range(rounds):
            # each round, new case objects: one per drawn case, replayed to the norm's implementations
            # (the first computes its reference and scale, the others reuse them), and one per call
            replayed = {id(c): c.with_() for cases in drawn.values() for c in cases}
            for k, (impl, c) in enumerate(work):
                fresh = c.with_()
                t0 = time.perf_counter()
                c.call(impl)
                t1 = time.perf_counter()
                properties.agreement(impl, fresh)
                t2 = time.perf_counter()
                properties.agreement(impl, replayed[id(c)])
                t3 = time.perf_counter()
                for key, dt in (("bare", t1 - t0), ("fresh", t2 - t1), ("shared", t3 - t2)):
                    best[key][k] = min(best[key][k], dt)
        bare, fresh, shared = (sum(best[k]) for k in ("bare", "fresh", "shared"))
        print(
            f"harness overhead {fw}: agreement property / bare adapter call = {fresh / bare:.2f}x "
            f"fresh, {shared / bare:.2f}x as the audit runs (bare call {bare / len(work) * 1e6:.0f} us on "
            f"average; {len(impls)} implementations of LayerNorm and GroupNorm, {n} cases each, warm, fastest "
            f"of {rounds} rounds; {load()})"
        )


def jax_modes(n: int = 30) -> None:
    """Each JAX form and mode on a stream of fresh LayerNorm shapes: the forward call, then the
    forward and its VJP (what gradient_agreement runs), calls per second."""
    import numpy as np

    from normcheck import adapters, autodiff
    from normcheck.case import Case

    impls = {i.id: i for i in adapters.get("jax").implementations()}
    rng = np.random.default_rng(0)
    keys = ("jax/layer_norm/nnx", "jax/layer_norm/nnx/jit", "jax/layer_norm/linen", "jax/layer_norm/linen/jit")
    # Each run gets its own shapes (disjoint widths), so none profits from another's compile caches.
    for k, (key, grad) in enumerate((key, grad) for grad in (False, True) for key in keys):
        shapes = [(int(rng.integers(1, 6)), 100 * (k + 1) + int(rng.integers(1, 64))) for _ in range(n)]
        t = time.perf_counter()
        for s in shapes:
            x = rng.normal(size=s).astype(np.float32)
            impls[key](x, (s[-1],))
            if grad:
                autodiff.jax_vjp(impls[key], Case("layer_norm", x, {"normalized_shape": (s[-1],), "eps": 1e-5}), x)
        dt = time.perf_counter() - t
        what = "forward + VJP" if grad else "forward"
        print(
            f"jax {key} ({what}): {n} calls on {len(set(shapes))} distinct shapes in {dt:.2f} s ({n / dt:.1f} calls/s)"
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--frameworks", default="numpy,torch,jax,tensorflow,onnxruntime")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--skip-audit", action="store_true", help="skip the audit runs (the whole one and per framework)")
    ap.add_argument("--whole-only", action="store_true", help="of the audit runs, only the whole one")
    ap.add_argument("--main-job", action="store_true", help="only the main job, cold and warm cache")
    ap.add_argument("--timings", action="store_true", help="with --main-job: each run's --timings tables")
    ap.add_argument("--overhead", action="store_true", help="only the harness overhead per framework")
    ap.add_argument("--keep", type=Path, help="with --main-job: a folder to keep the two result documents in")
    a = ap.parse_args()
    fws = a.frameworks.split(",")
    print(f"machine: {load()}")
    if a.main_job:
        main_job(a.jobs, a.timings, a.keep)
        return 0
    if a.overhead:
        overhead(fws)
        return 0
    help_time()
    if not a.skip_audit:
        whole_audit_time(a.profile, fws, a.jobs)
        if not a.whole_only:
            audit_time(a.profile, fws)
    overhead([f for f in fws if f != "numpy"] or fws)
    if "jax" in fws:
        jax_modes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
