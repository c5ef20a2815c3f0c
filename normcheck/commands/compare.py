"""`normcheck compare A B --norm NORM`: are two implementations of a norm equivalent, and if not, why?

Both targets are resolved as ``normcheck check`` resolves its one (functions or layer classes of any
framework), run on the same drawn cases, and judged against the float64 reference and against each
other (:mod:`normcheck.comparison`). Exit status: 0 equivalent, 1 they differ (or nothing could be
compared, or a target hangs), 2 a target could not be loaded or the arguments are wrong (one line;
the traceback with ``--verbose``).
"""

from __future__ import annotations

import argparse
import json
import sys

from normcheck.cli import DTYPES, CLIError, csv_choices, name_value, write_text
from normcheck.target import TARGET_FRAMEWORKS

HELP = "compare two implementations of a norm on the same cases (a port against its original)"


def add_arguments(p) -> None:
    for side in ("A", "B"):
        p.add_argument(
            side.lower(),
            metavar=side,
            help=f"target {side}: package.module:attr or path/to/file.py:attr (a function with the norm's canonical "
            "signature, a torch-style module class, a Keras layer or flax.linen module class)",
        )
    p.add_argument("--norm", required=True, help="the norm both implement: batch_norm, layer_norm, ...")
    p.add_argument("--framework-a", choices=TARGET_FRAMEWORKS, help="A's framework (default: inferred)")
    p.add_argument("--framework-b", choices=TARGET_FRAMEWORKS, help="B's framework (default: inferred)")
    p.add_argument("--dtypes", type=csv_choices(DTYPES), help="comma-separated dtypes (default: float32)")
    p.add_argument("--examples", type=int, default=40, metavar="N", help="cases drawn per dtype (default 40)")
    p.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per-call timeout (default 5; 0: none)"
    )
    p.add_argument(
        "--arg",
        dest="pins",
        action="append",
        type=name_value,
        metavar="NAME=VALUE",
        help="pin a constructor or canonical argument on both sides (repeatable), e.g. --arg momentum=None",
    )
    p.add_argument("--no-gradients", action="store_true", help="compare outputs and running buffers only")
    p.add_argument("--no-diagnosis", action="store_true", help="skip the diagnosis of a deviating side")
    p.add_argument("--json", metavar="PATH", help="write the comparison as JSON (schema normcheck.compare/1)")
    p.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors and the frameworks' native log lines",
    )


def run(args) -> int:
    from normcheck import comparison, spec
    from normcheck.cli import numpy_warnings_silenced
    from normcheck.target import TargetError

    if args.norm not in spec.names():
        raise CLIError(f"unknown norm {args.norm!r}; known: {', '.join(spec.names())}")
    if args.examples < 1:
        raise CLIError("--examples must be at least 1")
    if args.timeout < 0:
        raise CLIError("--timeout must be >= 0")
    print(f"normcheck compare {args.a} {args.b} as {args.norm}, seed {args.seed}", flush=True)
    live = sys.stderr.isatty()

    def progress(line: str) -> None:  # one live line on a terminal: the case being compared
        print(f"\r\033[K{line[:100]}", end="", file=sys.stderr, flush=True)

    try:
        with numpy_warnings_silenced():
            report = comparison.compare(
                args.a,
                args.b,
                args.norm,
                framework_a=args.framework_a,
                framework_b=args.framework_b,
                dtypes=tuple(args.dtypes or ("float32",)),
                examples=args.examples,
                seed=args.seed,
                gradients=not args.no_gradients,
                diagnose=not args.no_diagnosis,
                timeout=args.timeout or None,
                args=dict(args.pins or ()) or None,
                progress=progress if live else None,
            )
    except TargetError as e:
        if getattr(args, "verbose", False) and e.__cause__ is not None:
            import traceback

            traceback.print_exception(e.__cause__, file=sys.stderr)
        raise CLIError(str(e)) from None
    finally:
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    print()
    print(report.summary())
    if args.json:
        write_text(args.json, json.dumps(report.to_json(), indent=1, allow_nan=False))
        print(f"\nresults: {args.json}")
    if report.hung:
        print(
            "note: the hung call is still running in a background thread; normcheck exits without waiting for it",
            file=sys.stderr,
        )
    return 0 if report.equivalent else 1
