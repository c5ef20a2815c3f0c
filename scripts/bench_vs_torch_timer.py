"""normcheck's bench timer against torch.utils.benchmark.Timer on the same large LayerNorm, measured
in the same run: the medians must agree within a few percent.

Both time the bench's own call (``normcheck.bench.native.build``: ``F.layer_norm`` with weight and
bias, eps 1e-5, on the bench's input) with the same thread count (``Timer`` defaults to
``num_threads=1``; the bench runs torch's default). On a shared machine the per-call time drifts
by tens of percent over seconds, so the two timers are interleaved over several rounds and the
median of each timer's round medians is compared.

    python scripts/bench_vs_torch_timer.py [--rows 4096] [--cols 4096] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=1.0, help="measured time per timer and round")
    ap.add_argument("--tolerance", type=float, default=0.05)
    a = ap.parse_args()
    import torch
    import torch.utils.benchmark as tb

    from normcheck.bench import native, timer

    shape = (a.rows, a.cols)
    call = native.build("torch", "layer_norm", shape=shape, dtype="float32")
    theirs_timer = tb.Timer("f()", globals={"f": call.fn}, num_threads=torch.get_num_threads())
    ours, theirs = [], []
    for _ in range(a.rounds):
        ours.append(timer.measure(call.fn, sync=call.sync, min_reps=10, min_time=a.seconds).median_s)
        theirs.append(theirs_timer.blocked_autorange(min_run_time=a.seconds).median)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    diff = abs(mo - mt) / mt
    print(f"{call.api} {shape} float32, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"normcheck timer, median of {a.rounds} round medians: {mo * 1e3:.3f} ms  (rounds: {_ms(ours)})")
    print(f"torch.utils.benchmark.Timer.blocked_autorange:  {mt * 1e3:.3f} ms  (rounds: {_ms(theirs)})")
    print(f"difference: {100 * diff:.1f}% (tolerance {100 * a.tolerance:.0f}%)")
    return 0 if diff <= a.tolerance else 1


def _ms(times) -> str:
    return " ".join(f"{t * 1e3:.1f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
