"""`normcheck specs`: print the canonical norm specs."""

from __future__ import annotations

HELP = "print the canonical norm specs"


def add_arguments(p) -> None:
    p.add_argument("names", nargs="*", help="norms to show")


def run(args) -> int:
    from normcheck import spec

    names = args.names or spec.names()
    for n in names:
        s = spec.get(n)
        print(f"{s.name}: {s.title}")
        print(f"  formula      {s.formula}")
        print(f"  signature    {s.name}({', '.join(s.params)})")
        split = "".join(f", {k} split into {v[0]} contiguous blocks of {v[1]}" for k, v in s.split.items())
        print(f"  layout       ({', '.join(s.layout)}){split}")
        print(f"  S (reduce)   {', '.join(s.reduce)}")
        stats = "centered, biased variance" if s.center else "uncentered (mean square)"
        print(f"  statistics   {stats}, eps inside sqrt, default eps {s.default_eps}")
        opt = "optional" if s.raw["affine"].get("optional", True) else "required"
        print(f"  affine       over ({', '.join(s.affine_axes)}), {opt}{'' if s.has_bias else ', no bias'}")
        if s.running_stats:
            rs = s.running_stats
            print(
                f"  running      {rs['update']}; stored variance {rs['stored_variance']}; eval uses {rs['eval_uses']}"
            )
        for i in s.identities:
            print(f"  identity     {i.name}: {i.statement}")
        print()
    return 0
