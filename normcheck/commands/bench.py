"""`normcheck bench`: time each framework's norms against the copy roof measured in the same run."""

from __future__ import annotations

import json

from normcheck.adapters import FRAMEWORKS
from normcheck.cli import DTYPES, CLIError, csv_choices, write_text
from normcheck.target import TARGET_FRAMEWORKS

HELP = "time the norms: median, GB/s and fraction of the memory-bandwidth roof measured in the same run"


def add_arguments(p) -> None:
    p.add_argument(
        "target",
        nargs="?",
        metavar="TARGET",
        help="optional: your own implementation (package.module:attr or path/file.py:attr, the canonical "
        "signature on its framework's arrays), timed beside the native norm on the same cases; needs --norm",
    )
    p.add_argument("--norm", help="with TARGET: the norm it implements")
    p.add_argument("--framework", choices=TARGET_FRAMEWORKS, help="with TARGET: its framework (default: inferred)")
    p.add_argument("--frameworks", type=csv_choices(FRAMEWORKS), help="comma-separated subset")
    p.add_argument("--norms", type=str, help="comma-separated subset of the norms in specs/")
    p.add_argument("--dtypes", type=csv_choices(DTYPES), default=["float32"], help="default float32")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default: cuda if present")
    p.add_argument("--shapes", type=str, help="semicolon-separated shapes, e.g. '4096x4096;8x64x64x64'")
    p.add_argument(
        "--layouts", type=csv_choices(("channels_first", "channels_last")), default=["channels_first", "channels_last"]
    )
    p.add_argument(
        "--compiled", action="store_true", help="also torch.compile / jax.jit / tf.function(jit_compile=True)"
    )
    p.add_argument("--backward", action="store_true", help="also forward+backward")
    p.add_argument("--small", action="store_true", help="also in-cache shapes, reported as latency")
    p.add_argument("--quick", action="store_true", help="smaller shapes and fewer repetitions (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="write the results (schema normcheck.bench/1)")


def run(args) -> int:
    from normcheck import spec
    from normcheck.bench import native
    from normcheck.bench import run as bench

    norms = [n.strip() for n in args.norms.split(",")] if args.norms else None
    if norms and (bad := [n for n in norms if n not in spec.names()]):
        raise CLIError(f"unknown norm {', '.join(bad)}; known: {', '.join(spec.names())}")
    device = args.device
    if device == "auto":
        device = "cuda" if _cuda() else "cpu"
    elif device == "cuda" and not _cuda():
        raise CLIError("no CUDA device here (torch.cuda.is_available() is False); use --device cpu")
    modes = None
    if args.compiled:
        modes = ("eager", "jit", "compiled")
    shapes = [s for s in args.shapes.split(";") if s.strip()] if args.shapes else None
    frameworks, target = args.frameworks, None
    if args.target is not None or args.norm is not None:
        target, fw = _target(args)
        frameworks, norms = [fw], [args.norm]
    doc = bench.run(
        target=target,
        frameworks=frameworks,
        norms=norms,
        dtypes=tuple(args.dtypes),
        device=device,
        layouts=tuple(args.layouts),
        modes=modes,
        passes=(native.FORWARD, native.FORWARD_BACKWARD) if args.backward else (native.FORWARD,),
        sizes=("large", "small") if args.small else ("large",),
        shapes=shapes,
        quick=args.quick,
    )
    print(bench.table(doc))
    if args.json:
        write_text(args.json, json.dumps(doc, indent=1, default=str))
        print(f"results: {args.json}")
    return 0


def _target(args):
    """(the loaded target, its framework) for ``normcheck bench TARGET --norm NAME``; CLIError otherwise."""
    from normcheck import spec
    from normcheck.bench import native
    from normcheck.target import TargetError, infer_framework, load

    if args.target is None or args.norm is None:
        raise CLIError("a benchmark of your own implementation needs both TARGET and --norm")
    if args.norm not in spec.names():
        raise CLIError(f"unknown norm {args.norm}; known: {', '.join(spec.names())}")
    try:
        fn = load(args.target)
    except TargetError as e:
        raise CLIError(str(e)) from None
    fw = args.framework or infer_framework(fn, args.norm)[0]
    if fw not in native.MODES:
        raise CLIError(f"the bench times {', '.join(native.MODES)} targets, not {fw}")
    return fn, fw


def _cuda() -> bool:
    """Is a CUDA device there (asked of the installed frameworks' adapters)?"""
    from normcheck import adapters

    return adapters.cuda()
