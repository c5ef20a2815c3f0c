"""Calibrate the error model's one constant, lambda (normcheck.error_model.MODEL.lam).

Runs the `agreement` property on every installed native implementation over Hypothesis cases of
every value regime, and prints, per implementation and dtype, the distribution of observed errors
in units of u·s. Checks covered by a registered finding are reported apart (they are known
deviations, not calibration data). Then runs the one-pass LayerNorm double, which must fail.
lambda is the smallest power of two at least 4x the worst error of any passing native implementation
(a margin for the sampling tail and the metamorphic properties, which add two bounds).

    python scripts/calibrate.py [--examples 50] [--frameworks numpy,torch,jax,tensorflow] [--dtypes float32,bfloat16]

With ``--documents``, calibrates instead over the draws of saved audit documents (a seed sweep's,
``scripts/seed_sweep.py``): every observed error of every property, in u·s, per property and dtype
over all seeds, apart from checks a registered finding explains; the same rule on the worst of them.

    python scripts/calibrate.py --documents out/sweep/seed-*.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normcheck import adapters, audit
from normcheck.error_model import MODEL


def from_documents(paths: list[str]) -> int:
    """lambda over the samples of saved audit documents: per (property, dtype), the observed errors
    of the examples of checks that passed or deviated anew (a finding's checks are set apart)."""
    import json

    by: dict[tuple[str, str], list[float]] = {}
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    new: list[tuple[float, str]] = []
    seeds = []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        seeds.append(doc["run"]["seed"])
        for r in doc["records"]:
            if r["verdict"] not in ("pass", "fail") or not r.get("samples"):
                continue
            key = (r["property"], r["dtype"])
            by.setdefault(key, []).extend(r["samples"])
            m = max(r["samples"])
            where = f"{r['impl']} seed {doc['run']['seed']}"
            if m > worst.get(key, (-1.0, ""))[0]:
                worst[key] = (m, where)
            if r["verdict"] == "fail":
                new.append(
                    (float(r["observed"]), f"{r['impl']} {r['property']} {r['dtype']} seed {doc['run']['seed']}")
                )
    print(f"{len(paths)} documents (seeds {sorted(seeds)}); samples of checks that passed or deviated anew, in u·s")
    print(f"{'property':<26} {'dtype':<9} {'n':>7} {'median':>8} {'p99':>8} {'p99.9':>8} {'max':>8}  worst at")
    allw = []
    for key in sorted(by):
        s = np.array(by[key])
        allw.append(s)
        print(
            f"{key[0]:<26} {key[1]:<9} {len(s):>7} {np.median(s):>8.3g} {np.quantile(s, 0.99):>8.3g} "
            f"{np.quantile(s, 0.999):>8.3g} {s.max():>8.3g}  {worst[key][1]}"
        )
    every = np.concatenate(allw) if allw else np.zeros(1)
    ok = every[every <= MODEL.lam]
    print()
    print(f"{len(every)} samples; {np.sum(every > MODEL.lam)} above lambda = {MODEL.lam:g}")
    fractions = "; ".join(f"lambda/{k}: {np.mean(every <= MODEL.lam / k):.5f}" for k in (1, 2, 4))
    print(f"fraction of samples within {fractions}")
    print(f"worst sample within lambda: {ok.max():.3g} u·s")
    agree = np.concatenate([v for (p, _), v in by.items() if p == "agreement"] or [np.zeros(1)])
    agree = agree[agree <= MODEL.lam]
    lam = 2.0 ** math.ceil(math.log2(max(4 * agree.max(), 1.0)))
    print(
        f"agreement (the rule's basis): worst {agree.max():.3g} u·s, a power of two >= 4x that: {lam:g} (in use: {MODEL.lam:g})"
    )
    for obs, what in sorted(new, reverse=True):
        print(f"  new deviation: {obs:.3g} u·s  {what}")
    return 0 if not new else 1


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--documents":
        return from_documents(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=50)
    ap.add_argument("--frameworks", default=",".join(adapters.FRAMEWORKS))
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.time()
    worst_ok = 0.0
    run = audit.Run("default", seed=a.seed, max_examples=a.examples)
    print(f"{'implementation':<44} {'dtype':<9} {'n':>5} {'median':>8} {'p99':>8} {'max':>8}  verdict")
    for impl in adapters.implementations(a.frameworks.split(",")):
        if impl.form == "reference":
            continue
        for dt in a.dtypes.split(","):
            r = audit.run_check(impl, "agreement", dt, run)
            if r.verdict == "skip" or not r.samples:
                continue
            s = np.array(r.samples)
            print(
                f"{impl.id:<44} {dt:<9} {len(s):>5} {np.median(s):>8.3g} {np.quantile(s, 0.99):>8.3g} "
                f"{s.max():>8.3g}  {r.verdict}{' ' + r.finding if r.finding else ''}"
            )
            if r.verdict == "pass":
                worst_ok = max(worst_ok, float(s.max()))
    from tests.doubles.basic import layer_norm_one_pass  # the wrong implementation the model must catch

    one = audit.run_check(
        adapters.Impl("user", "layer_norm", "function", layer_norm_one_pass, dtypes=("float32",)),
        "agreement",
        "float32",
        run,
    )
    lam = 2.0 ** math.ceil(math.log2(max(4 * worst_ok, 1.0)))
    print()
    print(f"worst observed error of a passing native implementation: {worst_ok:.3g} u·s")
    print(f"smallest power of two >= 4x that: lambda = {lam:g}  (in use: {MODEL.lam:g})")
    print(f"one-pass LayerNorm double: {one.verdict}, {one.message}")
    print(f"({time.time() - t0:.0f} s)")
    return 0 if lam <= MODEL.lam and one.verdict == "fail" else 1


if __name__ == "__main__":
    sys.exit(main())
