"""`normcheck check TARGET --norm NORM`: is your own implementation of a norm right?

Exit status: 0 the target conforms, 1 it deviates (or raises, or hangs), 2 the target could not
be loaded or the arguments are wrong (one line; the traceback with ``--verbose``).
"""

from __future__ import annotations

import argparse
import json
import sys

from normcheck.cli import DTYPES, PROFILES, CLIError, csv_choices, write_text
from normcheck.target import TARGET_FRAMEWORKS

HELP = "check your own implementation of a norm (a function or a torch-style module class)"

FORMS = ("function", "module")


def add_arguments(p) -> None:
    p.add_argument(
        "target",
        metavar="TARGET",
        help="package.module:attr or path/to/file.py:attr (a function with the norm's canonical "
        "signature, or a module class constructed like the torch.nn layer)",
    )
    p.add_argument(
        "--norm",
        required=True,
        help="the norm the target implements: batch_norm, layer_norm, instance_norm, group_norm, rms_norm "
        "(or any norm in specs/)",
    )
    p.add_argument(
        "--axes",
        type=_axes,
        metavar="LIST",
        help="judge an axis-set variant: statistics over these comma-separated input axes instead of the "
        "norm's own set (e.g. --norm layer_norm --axes 1: ConvNeXt's channels-first LayerNorm)",
    )
    p.add_argument(
        "--framework",
        choices=TARGET_FRAMEWORKS,
        help="the target's framework (default: inferred); ONNX Runtime's operators are audited by "
        "`normcheck audit --frameworks onnxruntime`, not checked as targets",
    )
    p.add_argument("--form", choices=FORMS, help="function or module (default: module for a class)")
    p.add_argument(
        "--profile", choices=PROFILES, default="default", help="Hypothesis settings profile (default: default)"
    )
    p.add_argument("--max-examples", type=int, metavar="N", help="override the profile's examples per property")
    p.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    p.add_argument(
        "--dtypes", type=csv_choices(DTYPES), help="comma-separated dtypes (default: float32, then the profile's)"
    )
    p.add_argument("--properties", type=str, help="comma-separated subset of the properties")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="per-call timeout; a call that takes longer is a hang (default 5; 0: none)",
    )
    p.add_argument("--no-diagnosis", action="store_true", help="skip the diagnosis of failing cases")
    p.add_argument("--json", metavar="PATH", help="write machine-readable results (schema normcheck.audit/1)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument(
        "--quiet", action="store_true", help="print only the final summary (no per-check rows, no verdict table)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors and the frameworks' native log lines",
    )


def _axes(text: str) -> tuple[int, ...]:
    try:
        axes = tuple(int(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not axes or len(set(axes)) != len(axes):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more distinct axes")
    return axes


def _command(args) -> list[str]:
    out = ["check", args.target, "--norm", args.norm]
    for flag in ("framework", "form", "profile", "max_examples", "seed", "properties", "timeout"):
        v = getattr(args, flag, None)
        if v is not None:
            out += [f"--{flag.replace('_', '-')}", str(v)]
    if args.dtypes:
        out += ["--dtypes", ",".join(args.dtypes)]
    if args.axes:
        out += ["--axes", ",".join(map(str, args.axes))]
    return out


def run(args) -> int:
    from normcheck import checker, spec
    from normcheck.cli import numpy_warnings_silenced
    from normcheck.target import TargetError

    verbose = bool(getattr(args, "verbose", False))
    if args.norm not in spec.names():
        raise CLIError(f"unknown norm {args.norm!r}; known: {', '.join(spec.names())}")
    if args.max_examples is not None and args.max_examples < 1:
        raise CLIError("--max-examples must be at least 1")
    if args.timeout < 0:
        raise CLIError("--timeout must be >= 0")
    props = None
    if args.properties:
        from normcheck.properties import PROPERTIES

        props = [p.strip() for p in args.properties.split(",") if p.strip()]
        bad = [p for p in props if p not in PROPERTIES]
        if bad:
            raise CLIError(f"unknown property {', '.join(bad)}; known: {', '.join(PROPERTIES)}")

    state = {"header": False, "first": False}

    def progress(r) -> None:
        if args.quiet:
            return
        if not state["header"]:
            print(checker._row_header(), flush=True)
            state["header"] = True
        print(checker._row(r), flush=True)
        if not state["first"] and r.verdict in ("fail", "error") and r.counterexample:
            state["first"] = True
            from normcheck.case import Case

            try:
                case = Case.from_json(r.counterexample)
            except ValueError:
                return
            print(f"      first counterexample: {case.describe()}", flush=True)
            if case.x.size <= checker.SMALL:
                print(f"      input: {checker._fmt(case.x)}", flush=True)

    if not args.quiet:
        over = f" over axes {args.axes}" if args.axes else ""
        print(
            f"normcheck check {args.target} as {args.norm}{over}, profile {args.profile}, seed {args.seed}", flush=True
        )
    try:
        with numpy_warnings_silenced():  # the target computing on NaN, Inf, ...: the checks judge it
            report = checker.check(
                args.target,
                args.norm,
                args.framework,
                form=args.form,
                profile=args.profile,
                seed=args.seed,
                max_examples=args.max_examples,
                dtypes=args.dtypes,
                properties=props,
                timeout=args.timeout or None,
                diagnose=not args.no_diagnosis,
                progress=progress,
                argv=_command(args),
                axes=args.axes,
            )
    except TargetError as e:
        if verbose and (e.__cause__ is not None):
            import traceback

            traceback.print_exception(e.__cause__, file=sys.stderr)
        raise CLIError(str(e)) from None
    if not args.quiet:
        print()
    print(report.summary(table=False))  # the rows were printed as they came (or --quiet asked for none)
    if args.json:
        write_text(args.json, json.dumps(report.to_json(), indent=1, allow_nan=False))
        print(f"\nresults: {args.json}")
    if args.html:
        from normcheck.report import write_html

        try:
            write_html(report.to_json(), args.html)
        except ImportError as e:
            raise CLIError(str(e)) from None
        print(f"report:  {args.html}")
    if report.hung:
        print(
            "note: the hung call is still running in a background thread; normcheck exits without waiting for it",
            file=sys.stderr,
        )
    return 0 if report.conforms else 1
