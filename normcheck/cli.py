"""The ``normcheck`` command line. Parsing imports nothing heavy: ``normcheck --help`` loads no
framework and no NumPy; each subcommand imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
PROFILES = ("quick", "dev", "ci", "default", "thorough")
DTYPES = ("float64", "float32", "float16", "bfloat16")


class CLIError(Exception):
    """A one-line error for the user (exit status 2)."""


def _csv(choices):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}")
        return items

    return parse


def _norm_names() -> tuple[str, ...]:
    from normcheck import spec

    return spec.names()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="normcheck",
        description="Property testing and numerical audit of normalization layers "
        "(BatchNorm, LayerNorm, InstanceNorm, GroupNorm, RMSNorm) across NumPy, PyTorch, JAX and TensorFlow.",
    )
    p.add_argument("--version", action="version", version="normcheck 0.1.0")
    p.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("specs", help="print the canonical norm specs").add_argument("names", nargs="*", help="norms to show")
    fw = sub.add_parser("frameworks", help="installed frameworks, versions, devices and supported norms")
    fw.add_argument("--json", metavar="PATH", help="also write the listing as JSON")

    a = sub.add_parser("audit", help="run every property on every installed framework (the main job)")
    a.add_argument("--profile", choices=PROFILES, default="default", help="Hypothesis settings profile (default: default)")
    a.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    a.add_argument("--frameworks", type=_csv(FRAMEWORKS), help="comma-separated subset of " + ",".join(FRAMEWORKS))
    a.add_argument("--norms", type=str, help="comma-separated subset of the norms in specs/")
    a.add_argument("--dtypes", type=_csv(DTYPES), help="comma-separated dtypes (default: the profile's)")
    a.add_argument("--properties", type=str, help="comma-separated subset of properties")
    a.add_argument("--max-examples", type=int, metavar="N", help="override the profile's examples per check")
    a.add_argument("--json", metavar="PATH", help="write machine-readable results (schema normcheck.audit/1)")
    a.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    a.add_argument("--quiet", action="store_true", help="no progress line")

    r = sub.add_parser("report", help="render a saved --json result document as a self-contained HTML report")
    r.add_argument("json", metavar="RESULTS.json", help="a document written by `normcheck audit --json`")
    r.add_argument("--html", metavar="PATH", required=True, help="where to write the HTML report")
    return p


def _cmd_specs(args) -> int:
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
            print(f"  running      {rs['update']}; stored variance {rs['stored_variance']}; eval uses {rs['eval_uses']}")
        for i in s.identities:
            print(f"  identity     {i.name}: {i.statement}")
        print()
    return 0


def _cmd_frameworks(args) -> int:
    from normcheck import adapters

    rows = []
    for name in adapters.FRAMEWORKS:
        a = adapters.get(name)
        if not a.available():
            rows.append({"framework": name, "installed": False})
            print(f"{name:<11} not installed (pip install 'normcheck[{name}]')")
            continue
        impls = a.implementations()
        devices = a.devices()
        forms: dict[str, list[str]] = {}
        for i in impls:
            forms.setdefault(i.norm, []).append(i.form + ("" if i.layout == "channels_first" else f"[{i.layout}]") + ("" if i.mode == "eager" else f"[{i.mode}]"))
        rows.append({"framework": name, "installed": True, "version": a.version(), "devices": devices, "norms": forms})
        print(f"{name:<11} {a.version() or '?':<12} devices: {', '.join(devices)}")
        for norm in _norm_names():
            print(f"    {norm:<14} {', '.join(dict.fromkeys(forms.get(norm, []))) or 'unsupported'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


_SYMBOL = {"pass": "✓", "finding": "F", "fail": "✗", "error": "E", "skip": "·"}


def _print_table(doc) -> None:
    recs = doc["records"]
    props = list(dict.fromkeys(r["property"] for r in recs if not r["property"].startswith("identity")))
    short = {p: p[:5] for p in props}
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for r in recs:
        key = (r["impl"], r["dtype"])
        prop = "ident" if r["property"].startswith("identity") else r["property"]
        cell = rows.setdefault(key, {})
        prev = cell.get(prop)
        order = ["skip", "pass", "finding", "error", "fail"]
        if prev is None or order.index(r["verdict"]) > order.index(prev["verdict"]):
            cell[prop] = r
    cols = [*props, "ident"]
    width = max([len(k[0]) for k in rows] + [20])
    print()
    print(f"{'implementation':<{width}} {'dtype':<9} " + " ".join(f"{short.get(c, c):>5}" for c in cols) + "  worst u·s")
    for (impl, dt), cells in rows.items():
        worst = max((c["observed"] for c in cells.values() if isinstance(c["observed"], int | float)), default=0)
        line = " ".join(f"{_SYMBOL[cells[c]['verdict']] if c in cells else ' ':>5}" for c in cols)
        print(f"{impl:<{width}} {dt:<9} {line}  {worst:9.3g}")
    s = doc["summary"]
    print()
    print(
        f"{s['pass']} passed, {s['finding']} registered findings, {s['fail']} new deviations, "
        f"{s['error']} errors, {s['skip']} skipped in {doc['run']['seconds']:.0f} s "
        f"(profile {doc['run']['profile']}, seed {doc['run']['seed']})"
    )
    print("legend: ✓ pass  F registered finding  ✗ deviation  E error  · not applicable;  u·s: error-model units")


def _print_deviations(doc) -> None:
    for r in doc["records"]:
        if r["verdict"] in ("fail", "error", "finding"):
            tag = {"fail": "DEVIATION", "error": "ERROR", "finding": f"finding {r['finding']}"}[r["verdict"]]
            print(f"\n[{tag}] {r['impl']} {r['dtype']} {r['property']}: {r['message']}")
            if r.get("counterexample") and r["verdict"] != "finding":
                ce = r["counterexample"]
                print(f"  shrunk case: {ce['norm']} x {ce['input']['dtype']}{ce['input']['shape']} args {ce['args']} regime {ce['regime']}")


def _cmd_audit(args) -> int:
    from normcheck import audit, spec

    norms = None
    if args.norms:
        norms = [n.strip() for n in args.norms.split(",") if n.strip()]
        unknown = [n for n in norms if n not in spec.names()]
        if unknown:
            raise CLIError(f"unknown norm {', '.join(unknown)}; known: {', '.join(spec.names())}")
    props = None
    if args.properties:
        from normcheck.properties import PROPERTIES

        props = [p.strip() for p in args.properties.split(",") if p.strip()]
        bad = [p for p in props if p not in PROPERTIES and p != "identity"]
        if bad:
            raise CLIError(f"unknown property {', '.join(bad)}; known: {', '.join([*PROPERTIES, 'identity'])}")
    if args.max_examples is not None and args.max_examples < 1:
        raise CLIError("--max-examples must be at least 1")
    tty = sys.stderr.isatty() and not args.quiet

    def progress(k, n, r):
        if args.quiet:
            return
        bar = "#" * int(24 * k / n)
        msg = f"[{bar:<24}] {k}/{n} {r.impl} {r.dtype} {r.property}: {r.verdict}"
        if tty:
            print(f"\r{msg[:110]:<110}", end="", file=sys.stderr, flush=True)
        elif r.verdict in ("fail", "error") or k == n or k % 50 == 0:
            print(msg, file=sys.stderr, flush=True)

    doc = audit.run_audit(
        frameworks=args.frameworks,
        norms=norms,
        dtypes=args.dtypes,
        properties=[p for p in props if p != "identity"] + (["identity"] if "identity" in props else []) if props else None,
        profile=args.profile,
        seed=args.seed,
        max_examples=args.max_examples,
        progress=progress,
    )
    if tty:
        print(file=sys.stderr)
    _print_table(doc)
    _print_deviations(doc)
    if args.json:
        _write(args.json, json.dumps(doc, indent=1, allow_nan=False))
        print(f"results: {args.json}")
    if args.html:
        from normcheck.report import write_html

        try:
            write_html(doc, args.html)
        except ImportError as e:
            raise CLIError(str(e)) from None
        print(f"report:  {args.html}")
    return audit.exit_status(doc)


def _cmd_report(args) -> int:
    from normcheck.report import main_report

    try:
        path = main_report(args.json, args.html)
    except (ValueError, ImportError, OSError) as e:
        raise CLIError(str(e)) from None
    print(f"report:  {path}")
    return 0


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


COMMANDS = {"specs": _cmd_specs, "frameworks": _cmd_frameworks, "audit": _cmd_audit, "report": _cmd_report}


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except CLIError as e:
        print(f"normcheck {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.verbose or os.environ.get("NORMCHECK_DEBUG"):
            raise
        print(f"normcheck {args.command}: error: {type(e).__name__}: {e} (run with --verbose for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
