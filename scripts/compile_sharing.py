"""Would JAX compile fewer or cheaper programs for the same checks? Prints what two ideas give;
asserts nothing.

1. ``--batching``: one XLA program holding several cases of different shapes (independent inputs in
   one computation) against one program per case: compile seconds (fresh shapes each round, no
   persistent cache) and whether the outputs are bit-identical. A flax.linen LayerNorm's forward
   pass and its VJP, 8 cases per program.
2. ``--identities``: how many of a spec identity's left-hand-side cases would reuse a program the
   norm's own checks compile (same shape, module configuration, affine parameters and variant) if
   the identity replayed the norm's draws instead of drawing its own: the draws of the default
   profile at one seed, per identity, for one JAX implementation under ``jax.jit``.

    python scripts/compile_sharing.py [--batching] [--identities] [--rounds 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def batching(rounds: int, per_program: int = 8) -> None:
    os.environ["NORMCHECK_NO_CACHE"] = "1"
    import flax.linen as nn
    import jax
    import numpy as np

    from normcheck.adapters.jax import setup

    setup()
    rng = np.random.default_rng(0)

    def ln(x, s, b):
        axes = tuple(range(1, x.ndim))
        return nn.LayerNorm(reduction_axes=axes, feature_axes=axes).apply({"params": {"scale": s, "bias": b}}, x)

    def vjp(x, s, b, dy):
        y, pull = jax.vjp(ln, x, s, b)
        return (y, *pull(dy))

    def cases(shapes):
        out = []
        for s in shapes:
            x, dy = (rng.standard_normal(s).astype(np.float32) for _ in range(2))
            w, b = (rng.standard_normal(s[1:]).astype(np.float32) for _ in range(2))
            out.append((x, w, b, dy))
        return out

    jax.jit(vjp).lower(*cases([(2, 2)])[0]).compile()  # the compiler's own start-up, not counted
    print(f"one program per case vs one program of {per_program} cases (compile seconds; load {load()})")
    for name, f, k in (("forward", ln, 3), ("forward + VJP", vjp, 4)):
        for r in range(rounds):
            single = cases([(2 + r, 3 + i, 2 + i % 3) for i in range(per_program)])
            t = time.perf_counter()
            outs = [jax.jit(f).lower(*c[:k]).compile()(*c[:k]) for c in single]
            t_single = time.perf_counter() - t

            def many(*flat, f=f, k=k):
                return [f(*flat[i * k : (i + 1) * k]) for i in range(per_program)]

            flat = [a for c in single for a in c[:k]]
            t = time.perf_counter()
            together = jax.jit(many).lower(*flat).compile()(*flat)
            t_many = time.perf_counter() - t
            leaves = zip(jax.tree_util.tree_leaves(outs), jax.tree_util.tree_leaves(together), strict=True)
            same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in leaves)
            print(
                f"  {name:14s} round {r}: {per_program} programs {t_single:5.2f} s, one program {t_many:5.2f} s"
                f" ({t_many / t_single:.2f}x), outputs bit-identical: {same}"
            )


def _drawn(strategy, settings, seed: int) -> list:
    """The examples a seeded Hypothesis run over ``strategy`` draws (as the audit draws them)."""
    from hypothesis import given

    from normcheck.profiles import run_seeded

    seen: list = []

    def keep(case):
        seen.append(case)

    run_seeded(settings(given(strategy)(keep)), seed)
    return seen


def identities(seed: int) -> None:
    from normcheck import adapters, spec
    from normcheck.audit.driver import cases_for
    from normcheck.profiles import Run
    from normcheck.strategies import identity_cases

    settings = Run("default", seed=seed).settings()

    def program(c):
        fixed = {k: c.args.get(k) for k in ("normalized_shape", "num_groups", "reduce_axes")}
        return (c.x.shape, c.x.dtype, repr(fixed), c.weight is None, c.bias is None, c.variant)

    print(f"identity left-hand sides that would share a program with the norm's own checks (seed {seed})")
    for norm in ("group_norm", "layer_norm", "rms_norm", "instance_norm", "batch_norm", "switchable_norm"):
        impls = [i for i in adapters.implementations(["jax"], [norm]) if i.mode == "jit"]
        if not impls:
            continue
        for ident in spec.get(norm).identities:
            own = _drawn(cases_for(impls[0], "float32"), settings, seed)
            drawn = _drawn(identity_cases(ident, dtypes=("float32",)), settings, seed)
            programs = {program(c) for c in own}
            now = sum(program(c) in programs for c in drawn)
            fits = sum(_satisfies(ident, c) for c in own)
            print(
                f"  {ident.name:28s} today {now}/{len(drawn)}; replaying the norm's {len(own)} draws: "
                f"{fits} already have the identity's arguments (at most that many shared)"
            )


def _satisfies(ident, case) -> bool:
    """Whether ``case`` already has the identity's arguments (its lhs would be the norm's own program)."""
    symbols = {"C": case.x.shape[1], "rest": case.x.shape[1:], "last": case.x.shape[-1:], "none": None}
    for k, v in ident.args.items():
        want, got = symbols.get(v, v) if isinstance(v, str) else v, case.args.get(k)
        if isinstance(want, tuple | list):
            want, got = tuple(want), tuple(got) if got is not None else None
        if got != want:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batching", action="store_true")
    ap.add_argument("--identities", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    both = not (a.batching or a.identities)
    if a.batching or both:
        batching(a.rounds)
    if a.identities or both:
        identities(a.seed)


if __name__ == "__main__":
    main()
