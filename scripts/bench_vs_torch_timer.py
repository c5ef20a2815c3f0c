"""normcheck's bench timer against torch.utils.benchmark.Timer on the same large LayerNorm, measured
in the same run: the medians must agree within a few percent.

    python scripts/bench_vs_torch_timer.py [--rows 4096] [--cols 4096]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--tolerance", type=float, default=0.05)
    a = ap.parse_args()
    import torch
    import torch.utils.benchmark as tb

    from normcheck.bench import native, timer

    shape = (a.rows, a.cols)
    call = native.build("torch", "layer_norm", shape=shape, dtype="float32")
    ours = timer.measure(call.fn, sync=call.sync, min_reps=20, min_time=2.0).median_s
    x = torch.randn(*shape)
    theirs = (
        tb.Timer("F.layer_norm(x, (x.shape[-1],))", globals={"F": torch.nn.functional, "x": x})
        .blocked_autorange(min_run_time=2.0)
        .median
    )
    ours2 = timer.measure(call.fn, sync=call.sync, min_reps=20, min_time=2.0).median_s  # bracket theirs
    mid = (ours + ours2) / 2
    diff = abs(mid - theirs) / theirs
    print(
        f"torch.nn.functional.layer_norm {shape} float32, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"normcheck timer median: {ours * 1e3:.3f} ms, {ours2 * 1e3:.3f} ms (before/after)")
    print(f"torch.utils.benchmark:  {theirs * 1e3:.3f} ms")
    print(f"difference: {100 * diff:.1f}% (tolerance {100 * a.tolerance:.0f}%)")
    return 0 if diff <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
