"""`normcheck check TARGET --norm NORM`: is your own implementation of a norm right?

Exit status: 0 the target conforms, 1 it deviates (or raises, crashes, or hangs), 2 the target could
not be loaded or the arguments are wrong (one line; the traceback with ``--verbose``). The target
runs in a worker process (``--in-process``: in this one); see docs/crashes.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from normcheck.cli import DTYPES, PROFILES, CLIError, csv_choices, name_value, write_text
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
    g = p.add_argument_group("how the target is built and which inputs it takes")
    g.add_argument(
        "--init",
        metavar="TEMPLATE",
        help="a module class's constructor arguments as a template, e.g. 'hidden_size={C}, eps={eps}' "
        "(placeholders {C} {G} {eps} {momentum} {affine} {normalized_shape} {bias} {track}); "
        "default: mapped from the class's own signature",
    )
    g.add_argument(
        "--arg",
        dest="pins",
        action="append",
        type=name_value,
        metavar="NAME=VALUE",
        help="pin a constructor or canonical argument (repeatable), e.g. --arg num_groups=4, --arg eps=1e-6 "
        "(the drawn cases use the value too), --arg data_format=channels_first",
    )
    g.add_argument("--no-bias", action="store_true", help="the layer has a weight but no bias (cases without one)")
    g.add_argument("--no-affine", action="store_true", help="the layer has no weight and no bias")
    g.add_argument(
        "--rank",
        action="append",
        type=_ranks,
        metavar="N[,N]",
        help="input ranks the target takes (repeatable; default: inferred for a module class)",
    )
    g.add_argument(
        "--shape",
        type=_shape,
        metavar="N,C,H,W",
        help="input shape: a size per axis, or a letter or * for a free side (e.g. N,64,H,W)",
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
    p.add_argument(
        "--eager",
        action="store_true",
        help="run a JAX function op by op (by default it runs under jax.jit, as JAX users run it)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the target in this process (for debugging: a crash of the target then ends normcheck; "
        "by default it runs in a worker process, and a crash is the verdict CRASHES)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes the checks are split over (default: two for a JAX target, which compiles a "
        "program per shape, one otherwise; at most the machine's cores)",
    )
    p.add_argument("--no-diagnosis", action="store_true", help="skip the diagnosis of failing cases")
    p.add_argument(
        "--no-cache", action="store_true", help="no persistent compilation cache: JAX compiles every program afresh"
    )
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


def _ranks(text: str) -> tuple[int, ...]:
    try:
        ranks = tuple(int(r) for r in text.split(",") if r.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ranks") from None
    if not ranks or min(ranks) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more ranks >= 1")
    return ranks


def _shape(text: str) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for tok in (t.strip() for t in text.split(",")):
        if tok.isdigit() and int(tok) > 0:
            out.append(int(tok))
        elif tok == "*" or tok.isidentifier():
            out.append(None)
        else:
            raise argparse.ArgumentTypeError(f"{text!r}: each axis is a size >= 1, a letter or * (e.g. N,64,H,W)")
    return tuple(out)


def _command(args) -> list[str]:
    out = ["check", args.target, "--norm", args.norm]
    for flag in ("framework", "form", "profile", "max_examples", "seed", "properties", "timeout", "jobs"):
        v = getattr(args, flag, None)
        if v is not None:
            out += [f"--{flag.replace('_', '-')}", str(v)]
    if args.dtypes:
        out += ["--dtypes", ",".join(args.dtypes)]
    if args.axes:
        out += ["--axes", ",".join(map(str, args.axes))]
    if getattr(args, "init", None):
        out += ["--init", args.init]
    for k, v in getattr(args, "pins", None) or ():
        out += ["--arg", f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}"]
    for flag in ("no_bias", "no_affine", "in_process", "eager"):
        if getattr(args, flag, False):
            out.append(f"--{flag.replace('_', '-')}")
    for r in getattr(args, "rank", None) or ():
        out += ["--rank", ",".join(map(str, r))]
    if getattr(args, "shape", None):
        out += ["--shape", ",".join("*" if s is None else str(s) for s in args.shape)]
    return out


def _drive(args) -> dict:
    """check()'s options for how the target is built and which inputs it takes."""
    pins: dict = {}
    for k, v in getattr(args, "pins", None) or ():
        if k in pins:
            raise CLIError(f"--arg {k} is given twice")
        pins[k] = v
    ranks = sorted({r for group in getattr(args, "rank", None) or () for r in group})
    return {
        "init": getattr(args, "init", None),
        "args": pins or None,
        "no_bias": bool(getattr(args, "no_bias", False)),
        "no_affine": bool(getattr(args, "no_affine", False)),
        "ranks": tuple(ranks) or None,
        "shape": getattr(args, "shape", None),
        "eager": bool(getattr(args, "eager", False)),
    }


def run(args) -> int:
    from normcheck import check_report, checker
    from normcheck.cli import numpy_warnings_silenced
    from normcheck.target import TargetError

    verbose = bool(getattr(args, "verbose", False))
    if args.no_cache:
        from normcheck.commands.audit import no_cache

        no_cache()
    if args.max_examples is not None and args.max_examples < 1:
        raise CLIError("--max-examples must be at least 1")
    if args.timeout < 0:
        raise CLIError("--timeout must be >= 0")
    if args.jobs is not None and args.jobs < 1:
        raise CLIError("--jobs must be at least 1")
    props = [p.strip() for p in args.properties.split(",") if p.strip()] if args.properties else None
    try:
        checker.validate_norm(args.norm, props)
        options = checker.CheckOptions(
            form=args.form,
            profile=args.profile,
            seed=args.seed,
            max_examples=args.max_examples,
            dtypes=args.dtypes,
            properties=props,
            timeout=args.timeout or None,
            diagnose=not args.no_diagnosis,
            axes=args.axes,
            in_process=bool(getattr(args, "in_process", False)),
            jobs=args.jobs,
            **_drive(args),
        )
    except ValueError as e:
        raise CLIError(str(e)) from None

    state = {"header": False, "first": False}
    skipped: list = []  # not-applicable checks: printed at the end, one line per reason

    def progress(r) -> None:
        if args.quiet:
            return
        if r.verdict == "skip":
            skipped.append(r)
            return
        if not state["header"]:
            print(check_report.row_header(), flush=True)
            state["header"] = True
        print(check_report.row(r), flush=True)
        if not state["first"] and r.verdict in ("fail", "error") and r.counterexample:
            state["first"] = True
            from normcheck.case import Case

            try:
                case = Case.from_json(r.counterexample)
            except ValueError:
                return
            print(f"      first counterexample: {case.describe()}", flush=True)
            if case.x.size <= check_report.SMALL:
                print(f"      input: {check_report.fmt(case.x)}", flush=True)

    if not args.quiet:
        over = f" over axes {args.axes}" if args.axes else ""
        print(
            f"normcheck check {args.target} as {args.norm}{over}, profile {args.profile}, seed {args.seed}", flush=True
        )
    try:
        with numpy_warnings_silenced():  # the target computing on NaN, Inf, ...: the checks judge it
            report = checker.check(args.target, args.norm, args.framework, options, progress=progress)
        report.argv = _command(args)  # the document names the command that made it
    except TargetError as e:
        if verbose and (e.__cause__ is not None):
            import traceback

            traceback.print_exception(e.__cause__, file=sys.stderr)
        raise CLIError(str(e)) from None
    if not args.quiet:
        for line in check_report.not_applicable(skipped):
            print(line)
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
    if report.hung and report.isolation == "in-process":
        print(
            "note: the hung call is still running in a background thread; normcheck exits without waiting for it",
            file=sys.stderr,
        )
    return 0 if report.conforms else 1
