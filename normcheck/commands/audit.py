"""`normcheck audit`: every property on every installed framework (the main job)."""

from __future__ import annotations

import json
import sys

from normcheck.cli import DTYPES, FRAMEWORKS, PROFILES, CLIError, csv_choices, write_text

HELP = "run every property on every installed framework (the main job)"


def add_arguments(p) -> None:
    p.add_argument(
        "--profile", choices=PROFILES, default="default", help="Hypothesis settings profile (default: default)"
    )
    p.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    p.add_argument(
        "--frameworks", type=csv_choices(FRAMEWORKS), help="comma-separated subset of " + ",".join(FRAMEWORKS)
    )
    p.add_argument("--norms", type=str, help="comma-separated subset of the norms in specs/")
    p.add_argument("--dtypes", type=csv_choices(DTYPES), help="comma-separated dtypes (default: the profile's)")
    p.add_argument("--properties", type=str, help="comma-separated subset of properties")
    p.add_argument("--max-examples", type=int, metavar="N", help="override the profile's examples per check")
    p.add_argument("--json", metavar="PATH", help="write machine-readable results (schema normcheck.audit/1)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument(
        "--bench",
        metavar="BENCH.json",
        help="attach a saved `normcheck bench --json` document (the report's benchmark section)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument(
        "--all-forms",
        action="store_true",
        default=None,
        help="also the extended variants (op-by-op Flax linen and nnx, compiled Keras BatchNorm); the thorough profile does",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes: one per framework, two for JAX (default: the CPU count)",
    )


LABELS = {  # five-character column labels for the table
    "agreement": "agree",
    "statistics": "stats",
    "shift_invariance": "shift",
    "scale_equivariance": "scale",
    "batch_independence": "batch",
    "permutation_equivariance": "perm",
    "contracts": "contr",
    "special_values": "nan",
    "constant_input": "const",
    "running_stats_steps": "run",
    "eval_uses_running": "eval",
    "train_eval_convergence": "conv",
    "gradient_agreement": "grad",
    "gradient_sums_to_zero": "g∑0",
    "gradient_orthogonal": "g⊥ŷ",
    "fold_agreement": "fold",
}

_SYMBOL = {"pass": "✓", "finding": "F", "fail": "✗", "error": "E", "skip": "·"}


def _print_table(doc) -> None:
    recs = doc["records"]
    props = list(dict.fromkeys(r["property"] for r in recs if not r["property"].startswith("identity")))
    short = {p: LABELS.get(p, p[:5]) for p in props}
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
    print(
        f"{'implementation':<{width}} {'dtype':<9} " + " ".join(f"{short.get(c, c):>5}" for c in cols) + "  worst u·s"
    )
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
                print(
                    f"  shrunk case: {ce['norm']} x {ce['input']['dtype']}{ce['input']['shape']} args {ce['args']} regime {ce['regime']}"
                )


def run(args) -> int:
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
    if args.jobs is not None and args.jobs < 1:
        raise CLIError("--jobs must be at least 1")
    if args.max_examples is not None and args.max_examples < 1:
        raise CLIError("--max-examples must be at least 1")
    bench_section = None
    if args.bench:  # read before the long run, so a wrong path fails at once
        from normcheck.bench.run import load, report_section

        try:
            bench_section = report_section(load(args.bench))
        except ValueError as e:
            raise CLIError(str(e)) from None
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
        properties=props,
        run=audit.Run(args.profile, seed=args.seed, max_examples=args.max_examples),
        workers=args.jobs or _cpus(),
        all_forms=args.all_forms,
        progress=progress,
    )
    if tty:
        print(file=sys.stderr)
    if bench_section is not None:
        doc["bench"] = bench_section
    _print_table(doc)
    _print_deviations(doc)
    if args.json:
        write_text(args.json, json.dumps(doc, indent=1, allow_nan=False))
        print(f"results: {args.json}")
    if args.html:
        from normcheck.report import write_html

        try:
            write_html(doc, args.html)
        except ImportError as e:
            raise CLIError(str(e)) from None
        print(f"report:  {args.html}")
    return audit.exit_status(doc)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
