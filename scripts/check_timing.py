"""How long does `normcheck check` take on a user's target? Prints numbers; asserts nothing.

Times `normcheck check` (a fresh process, as a user types it) on a fixed set of correct and wrong
LayerNorm / BatchNorm targets per framework, on a profile (default: `default`), and prints each
target's median wall time over --repeat runs beside the target for its framework (on a 2-core
machine: torch and NumPy <= 10 s, TensorFlow <= 20 s, JAX <= 30 s, a deviating JAX target <= 45 s).

    python scripts/check_timing.py [--profile default] [--repeat 3] [--frameworks numpy,torch,jax,tensorflow]
                                   [--cold] [--jobs N]

``--cold`` gives each run a fresh, empty cache folder (``XDG_CACHE_HOME``: no compiled program kept
from before), as on a new machine; ``--jobs N`` is passed on to ``normcheck check``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = {"numpy": 10, "torch": 10, "tensorflow": 20, "jax": 30}
#: A deviating target's, where it differs (its failures are shrunk and diagnosed in one more process).
DEVIATING_TARGET_S = {"jax": 45}

#: framework -> (module source, [(attr, norm, extra CLI arguments, what it is)])
TARGETS = {
    "numpy": (
        """
import numpy as np

def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    y = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, keepdims=True) + eps)
    y = y * (1 if weight is None else weight) + (0 if bias is None else bias)
    return y.astype(x.dtype)

def layer_norm_unbiased(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    y = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, ddof=1, keepdims=True) + eps)
    y = y * (1 if weight is None else weight) + (0 if bias is None else bias)
    return y.astype(x.dtype)
""",
        [("layer_norm", "layer_norm", [], "correct"), ("layer_norm_unbiased", "layer_norm", [], "unbiased variance")],
    ),
    "torch": (
        """
import torch

def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)

def layer_norm_eps_outside(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x32 = x.float()
    y = (x32 - x32.mean(dims, keepdim=True)) / (x32.var(dims, unbiased=False, keepdim=True).sqrt() + eps)
    y = y.to(x.dtype)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)
""",
        [
            ("layer_norm", "layer_norm", [], "correct"),
            ("layer_norm_eps_outside", "layer_norm", [], "eps outside the sqrt"),
            ("torch.nn:BatchNorm2d", "batch_norm", [], "torch.nn.BatchNorm2d (module)"),
        ],
    ),
    "jax": (
        """
import jax.numpy as jnp

def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x32 = x.astype(jnp.float32)
    y = (x32 - x32.mean(axes, keepdims=True)) / jnp.sqrt(x32.var(axes, keepdims=True) + eps)
    y = y.astype(x.dtype)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)

def layer_norm_one_pass(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x32 = x.astype(jnp.float32)
    m = x32.mean(axes, keepdims=True)
    y = (x32 - m) / jnp.sqrt((x32 * x32).mean(axes, keepdims=True) - m * m + eps)
    y = y.astype(x.dtype)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)
""",
        [("layer_norm", "layer_norm", [], "correct"), ("layer_norm_one_pass", "layer_norm", [], "one-pass variance")],
    ),
    "tensorflow": (
        """
import tensorflow as tf

def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = list(range(len(x.shape) - len(normalized_shape), len(x.shape)))
    x32 = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x32, axes, keepdims=True)
    y = tf.cast((x32 - mean) * tf.math.rsqrt(var + eps), x.dtype)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)

def layer_norm_last_axis(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x32 = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x32, [-1], keepdims=True)
    y = tf.cast((x32 - mean) * tf.math.rsqrt(var + eps), x.dtype)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)
""",
        [
            ("layer_norm", "layer_norm", [], "correct"),
            ("layer_norm_last_axis", "layer_norm", [], "last axis only"),
        ],
    ),
}


def time_check(ref: str, norm: str, extra: list[str], profile: str, cwd: Path, cold: bool) -> tuple[float, int]:
    import os

    cmd = [sys.executable, "-m", "normcheck.cli", "check", ref, "--norm", norm, "--profile", profile, "--quiet"]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, **({"XDG_CACHE_HOME": cache} if cold else {})}
        env.pop("NORMCHECK_NO_CACHE", None)
        t0 = time.perf_counter()
        run = subprocess.run([*cmd, *extra], cwd=cwd, capture_output=True, text=True, env=env)
        return time.perf_counter() - t0, run.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frameworks", default=",".join(TARGETS))
    ap.add_argument("--cold", action="store_true", help="a fresh, empty cache folder for each run")
    ap.add_argument("--jobs", type=int, help="passed on to normcheck check")
    a = ap.parse_args()
    import os

    caches = "a fresh cache folder each" if a.cold else "the caches as they are"
    jobs = f", --jobs {a.jobs}" if a.jobs else ""
    print(f"normcheck check, profile {a.profile}{jobs}, median of {a.repeat} runs (a fresh process each, {caches});"
          f" load {' '.join(f'{v:.1f}' for v in os.getloadavg())}")  # fmt: skip
    print(f"{'framework':<11} {'target':<40} {'what':<30} {'exit':>4} {'median s':>9} {'spread s':>9} {'target s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for fw in a.frameworks.split(","):
            if fw != "numpy" and importlib.util.find_spec(fw) is None:
                print(f"{fw:<11} not installed")
                continue
            src, targets = TARGETS[fw]
            (Path(tmp) / f"nc_{fw}_targets.py").write_text(src)
            for attr, norm, extra, what in targets:
                ref = attr if ":" in attr else f"nc_{fw}_targets.py:{attr}"
                times, rc = [], None
                for _ in range(a.repeat):
                    more = [*extra, *(["--jobs", str(a.jobs)] if a.jobs else [])]
                    t, rc = time_check(ref, norm, more, a.profile, Path(tmp), a.cold)
                    times.append(t)
                med, spread = statistics.median(times), max(times) - min(times)
                limit = TARGET_S[fw] if rc == 0 else DEVIATING_TARGET_S.get(fw, TARGET_S[fw])
                flag = "" if med <= limit else "  over"
                print(f"{fw:<11} {ref:<40} {what:<30} {rc:>4} {med:>9.1f} {spread:>9.1f} {limit:>8}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
