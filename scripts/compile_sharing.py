"""Would JAX compile fewer or cheaper programs for the same checks? Prints what four ideas give;
asserts nothing.

1. ``--batching``: one XLA program holding several cases of different shapes (independent inputs in
   one computation) against one program per case: compile seconds (fresh shapes each round, no
   persistent cache) and whether the outputs are bit-identical. A flax.linen LayerNorm's forward
   pass and its VJP, 8 cases per program.
2. ``--identities``: how many of a spec identity's left-hand-side cases would reuse a program the
   norm's own checks compile (same shape, module configuration, affine parameters and variant) if
   the identity replayed the norm's draws instead of drawing its own: the draws of the default
   profile at one seed, per identity, for one JAX implementation under ``jax.jit``.
3. ``--modes``: a case's four programs (forward, VJP, forward mode, second order) compiled as one
   (each part its own arguments, so XLA shares nothing between them) against four programs: compile
   seconds, lowering included, and whether every output is bit-identical. flax.linen LayerNorm,
   GroupNorm, RMSNorm and BatchNorm in float32, bfloat16 and float16, fresh shapes; and what a
   program of two operations takes (what every compilation costs).
4. ``--options``: XLA compiler options that might make a compilation cheaper, each against the
   defaults on the same lowered programs (those of ``--modes``): compile seconds and how many
   programs give bit-identical outputs.

    python scripts/compile_sharing.py [--batching] [--identities] [--modes] [--options] [--rounds 3] [--seed 0]
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


def _jax():
    """``jax``, set up as the audit sets it up, with no cache (every program compiled afresh)."""
    os.environ["NORMCHECK_NO_CACHE"] = "1"
    from normcheck.adapters.jax import setup

    return setup()


def ln(x, s, b):
    """flax.linen's LayerNorm over every axis but the first."""
    import flax.linen as nn

    axes = tuple(range(1, x.ndim))
    return nn.LayerNorm(reduction_axes=axes, feature_axes=axes).apply({"params": {"scale": s, "bias": b}}, x)


def batching(rounds: int, per_program: int = 8) -> None:
    import numpy as np

    jax = _jax()
    rng = np.random.default_rng(0)

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


#: What ``--options`` tries: XLA options that are documented not to alter arithmetic, or might not.
OPTIONS = {
    "-O1": {"xla_backend_optimization_level": 1},
    "no expensive LLVM passes": {"xla_llvm_disable_expensive_passes": True},
    "no emitter verification": {"xla_cpu_emitter_verification_level": 0},
    "no concurrency-optimized scheduler": {"xla_cpu_enable_concurrency_optimized_scheduler": False},
    "one codegen split": {"xla_cpu_parallel_codegen_split_count": 1},
}


def _linen_cases(rounds: int):
    """(name, f(x, scale, bias), x shape, parameter shape, dtype) over flax.linen norms, fresh shapes."""
    import flax.linen as nn
    import jax.numpy as jnp
    import numpy as np

    def gn(x, s, b):
        return nn.GroupNorm(num_groups=2).apply({"params": {"scale": s, "bias": b}}, x)

    def rms(x, s, b):
        return nn.RMSNorm().apply({"params": {"scale": s}}, x) + 0 * b.sum()

    def bn(x, s, b):
        stats = {"mean": jnp.zeros_like(s), "var": jnp.ones_like(s)}
        variables = {"params": {"scale": s, "bias": b}, "batch_stats": stats}
        return nn.BatchNorm(use_running_average=False, axis=-1).apply(variables, x, mutable=["batch_stats"])[0]

    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for dt in (np.float32, jnp.bfloat16, np.float16):
            n, c, h = int(rng.integers(2, 9)), 2 * int(rng.integers(1, 6)), int(rng.integers(1, 7))
            yield "LayerNorm", ln, (n, c, h), (c, h), dt
            yield "GroupNorm", gn, (n, h, c), (c,), dt
            yield "RMSNorm", rms, (n, h, c), (c,), dt
            yield "BatchNorm", bn, (n, h, c), (c,), dt


def _modes(f):
    """A case's four programs over ``f(x, s, b)``, each ``g(x, s, b, t)`` (t: the cotangent or tangent)."""
    import jax

    def fwd(x, s, b, t):
        return f(x, s, b)

    def vjp(x, s, b, t):
        y, pull = jax.vjp(f, x, s, b)
        return (y, *pull(t))

    def jvp(x, s, b, t):
        return jax.jvp(lambda x: f(x, s, b), (x,), (t,))

    def hvp(x, s, b, t):
        return jax.jvp(lambda x: jax.vjp(f, x, s, b)[1](t)[0], (x,), (t,))

    return (fwd, vjp, jvp, hvp)


def _inputs(rng, shape, pshape, dt):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dt)
    return x, *(rng.standard_normal(pshape).astype(dt) for _ in range(2)), rng.standard_normal(shape).astype(dt)


def _leaves(out) -> list[bytes]:
    import jax
    import numpy as np

    return [np.asarray(a).tobytes() for a in jax.tree_util.tree_leaves(out)]


def modes(rounds: int) -> None:
    import numpy as np

    jax = _jax()
    rng = np.random.default_rng(1)
    apart = together = 0.0
    same = total = 0
    jax.jit(lambda x: x + 1).lower(np.ones(3, np.float32)).compile()  # the compiler's start-up
    t = time.perf_counter()
    for k in range(2, 12):
        jax.jit(lambda x, k=k: x * k + 1).lower(np.ones((k, 3), np.float32)).compile()
    print(f"any program's share: one of two operations compiles in {(time.perf_counter() - t) * 100:.0f} ms")
    for _name, f, shape, pshape, dt in _linen_cases(rounds):
        parts = _modes(f)
        args = [_inputs(rng, shape, pshape, dt) for _ in parts]
        t = time.perf_counter()
        outs = [jax.jit(g).lower(*a).compile()(*a) for g, a in zip(parts, args, strict=True)]
        apart += time.perf_counter() - t

        def whole(*flat, parts=parts):
            return tuple(g(*flat[4 * i : 4 * i + 4]) for i, g in enumerate(parts))

        flat = [a for arg in args for a in arg]
        t = time.perf_counter()
        both = jax.jit(whole).lower(*flat).compile()(*flat)
        together += time.perf_counter() - t
        same += sum(_leaves(a) == _leaves(b) for a, b in zip(outs, both, strict=True))
        total += len(parts)
    print(
        f"a case's four programs compiled as one (load {load()}): {apart:.1f} s as four programs, {together:.1f} s"
        f" as one ({together / apart:.2f}x); outputs bit-identical {same}/{total}"
    )


def options(rounds: int) -> None:
    import numpy as np

    jax = _jax()
    rng = np.random.default_rng(2)
    tried = {"defaults": {}, **OPTIONS}
    seconds, same, total = dict.fromkeys(tried, 0.0), dict.fromkeys(tried, 0), 0
    jax.jit(lambda x: x + 1).lower(np.ones(3, np.float32)).compile()
    for _name, f, shape, pshape, dt in _linen_cases(rounds):
        for g in _modes(f):
            a = _inputs(rng, shape, pshape, dt)
            lowered = jax.jit(g).lower(*a)
            outs = {}
            for name, opts in tried.items():
                t = time.perf_counter()
                compiled = lowered.compile(compiler_options={**opts, "xla_cpu_enable_fast_math": False})
                seconds[name] += time.perf_counter() - t
                outs[name] = _leaves(compiled(*a))
            total += 1
            for name in tried:
                same[name] += outs[name] == outs["defaults"]
    print(f"XLA options against the defaults on the same {total} lowered programs (load {load()})")
    for name in tried:
        print(
            f"  {name:36s} {seconds[name]:5.1f} s ({seconds[name] / seconds['defaults']:.2f}x),"
            f" outputs bit-identical {same[name]}/{total}"
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
            count = max(1, impls[0].config_count)
            default = sum(_satisfies(ident, c) and c.variant % count == 0 for c in own)
            print(
                f"  {ident.name:28s} today {now}/{len(drawn)}; replaying the norm's {len(own)} draws: "
                f"{fits} already have the identity's arguments, {default} of them in the default configuration"
                " (the identity's; at most that many shared)"
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
    ap.add_argument("--modes", action="store_true")
    ap.add_argument("--options", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    every = not (a.batching or a.identities or a.modes or a.options)
    if a.batching or every:
        batching(a.rounds)
    if a.identities or every:
        identities(a.seed)
    if a.modes or every:
        modes(a.rounds)
    if a.options or every:
        options(a.rounds)


if __name__ == "__main__":
    main()
