"""`normcheck audit`: every property on every installed framework (the main job)."""

from __future__ import annotations

import json
import sys

from normcheck.adapters import FRAMEWORKS
from normcheck.cli import DTYPES, PROFILES, CLIError, csv_choices, write_text

HELP = "run every property on every installed framework (the main job)"


def add_arguments(p) -> None:
    p.add_argument("--profile", choices=PROFILES, help="Hypothesis settings profile (default: default)")
    p.add_argument("--seed", type=int, help="Hypothesis seed (default 0)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument(
        "--all-forms",
        action="store_true",
        default=None,
        help="also the extended variants (op-by-op Flax linen and nnx, compiled Keras BatchNorm, torch.compile); "
        "the thorough profile does",
    )
    p.add_argument(
        "--all-configs",
        action="store_true",
        default=None,
        help="every drawn case in every configuration of a native layer (the product of its axes) "
        "instead of one drawn configuration per case",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run the I-th of N deterministic, balanced shares of the checks (merge the N --json documents "
        "with `normcheck report`)",
    )
    p.add_argument(
        "--timings",
        action="store_true",
        help="print where the time went: per framework process (setup, checks, conventions; JAX's compilations "
        "and cache hits) and per property; kept in the --json document's `timings`",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="no persistent compilation cache: JAX and TensorFlow's XLA compile every program afresh (sets "
        "NORMCHECK_NO_CACHE=1; the caches live in $XDG_CACHE_HOME/normcheck/{jax,tensorflow}, by default "
        "~/.cache/normcheck)",
    )
    p.add_argument(
        "--resume",
        metavar="RESULTS.json",
        help="run only the checks an interrupted audit did not finish (read from its --json document, or "
        "its journal RESULTS.json.journal), with its profile, seed and selection; writes the completed "
        "document to --json (default: RESULTS.json) and --html (default: the interrupted run's)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes: one per framework, two for JAX (default: the CPU count)",
    )


def _shard(text: str) -> tuple[int, int]:
    import argparse

    i, _, n = text.partition("/")
    try:
        shard = int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 1/3, got {text!r}") from None
    if not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= I <= N, got {text!r}")
    return shard


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
    "gradient_second_order": "g2",
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
    """Each new deviation and error in full (with its shrunk case)."""
    for r in doc["records"]:
        if r["verdict"] in ("fail", "error"):
            tag = {"fail": "DEVIATION", "error": "ERROR"}[r["verdict"]]
            print(f"\n[{tag}] {r['impl']} {r['dtype']} {r['property']}: {r['message']}")
            if r.get("counterexample"):
                ce = r["counterexample"]
                print(
                    f"  shrunk case: {ce['norm']} x {ce['input']['dtype']}{ce['input']['shape']} args {ce['args']} regime {ce['regime']}"
                )


def print_timings(doc, console=None) -> None:
    """Where the time went (``doc["timings"]``, :func:`normcheck.audit.schedule.timings`): a row per
    framework process, then the checks' seconds per property and framework."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = doc["timings"]
    console = console or Console(highlight=False, width=200)
    procs = Table(box=box.SIMPLE_HEAD)
    heads = ("framework", "process", "start", "end", "wall", "setup", "checks", "conventions")
    for c in (*heads, "compiles", "cache hits", "stored", "compile", "trace+lower"):
        procs.add_column(c, justify="left" if c == "framework" else "right")
    for p in sorted(t["processes"], key=lambda p: (p["start"], p["process"])):
        row = [p["framework"], str(p["process"]), *(f"{p[k]:.1f}" for k in ("start", "end"))]
        row += [f"{p['end'] - p['start']:.1f}", *(f"{p[k]:.1f}" for k in ("setup_s", "checks_s", "conventions_s"))]
        if "compiles" in p or "stored_loaded" in p:
            row += [str(p.get("compiles", 0)), str(p.get("cache_hits", 0)), str(p.get("stored_loaded", 0))]
            row += [f"{p.get('compile_s', 0):.1f}"]
            row += [f"{p.get('trace_s', 0) + p.get('lower_s', 0):.1f}"]
        procs.add_row(*row)
    console.print(f"\nwhere the time went, seconds ({doc['run']['seconds']:.0f} s wall):")
    console.print(procs)
    console.print(
        "setup: importing the framework, finding its devices; compile: XLA compilations and cache loads; "
        "stored: programs loaded from normcheck's store (neither traced, lowered nor compiled); "
        "trace+lower: tracing and lowering\n"
    )
    fws = list(t["properties"])
    by_prop = Table(box=box.SIMPLE_HEAD)
    by_prop.add_column("property")
    for c in (*fws, "total"):
        by_prop.add_column(c, justify="right")
    props = {p for cells in t["properties"].values() for p in cells}
    total = {p: sum(t["properties"][f].get(p, 0.0) for f in fws) for p in props}
    for p in sorted(props, key=lambda p: -total[p]):
        by_prop.add_row(p, *(f"{t['properties'][f].get(p, 0.0):.1f}" for f in fws), f"{total[p]:.1f}")
    by_prop.add_row("total", *(f"{sum(t['properties'][f].values()):.1f}" for f in fws), f"{sum(total.values()):.1f}")
    console.print("seconds in checks, per property:")
    console.print(by_prop)


def _scope(impls: list[str]) -> str:
    """The implementations a finding's records cover, in few characters: the one id; or the ids'
    common framework and norm with ``/*`` (``torch/group_norm/*``); or, where they differ in the
    norm or the framework, up to three of those in braces (``jax/{layer_norm,rms_norm}/*``)."""
    distinct = list(dict.fromkeys(impls))
    if len(distinct) == 1:
        return distinct[0]
    parts = [i.split("/") for i in distinct]
    common: list[str] = []
    for segs in zip(*parts):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    if len(common) >= 2:
        return "/".join(common) + "/*"
    n = len(common)
    nxt = sorted({p[n] for p in parts if len(p) > n})
    if len(nxt) > 3 or any(len(p) <= n for p in parts):
        return "/".join(common) + "/*" if common else f"{distinct[0]} and {len(distinct) - 1} more"
    return "/".join([*common, "{" + ",".join(nxt) + "}", "*"])


def finding_lines(doc) -> list[str]:
    """One line per registered finding that records matched: ``F <id>  <n> records (<scope>)``."""
    by_id: dict[str, list[str]] = {}
    for r in doc["records"]:
        if r["verdict"] == "finding":
            by_id.setdefault(r.get("finding") or "?", []).append(r["impl"])
    if not by_id:
        return []
    width = max(map(len, by_id))
    count = max(len(str(len(v))) for v in by_id.values())
    return [
        f"{_SYMBOL['finding']} {fid:<{width}}  {len(impls):>{count}} record{'s' if len(impls) != 1 else ' '} ({_scope(impls)})"
        for fid, impls in by_id.items()
    ]


def _print_findings(doc, *, saved: list[str]) -> None:
    lines = finding_lines(doc)
    if not lines:
        return
    where = " and ".join(saved) if saved else "--json/--html"
    print(f"\nregistered findings (each record in full: {where}):")
    print("\n".join(lines))


def _print_warnings(doc) -> None:
    """The findings met (or not) outside the versions the matrix recorded for them, one line each."""
    lines = doc.get("warnings") or []
    if lines:
        print("\nversion-range warnings (the registry's observed_in/absent_in, from scripts/matrix.py):")
        print("\n".join(f"! {line}" for line in lines))


def first_run_note(frameworks) -> str | None:
    """A line for a run that fills JAX's empty compilation cache (the first run on a machine, by far
    the longest: JAX compiles a program for every new shape), or None."""
    from normcheck import adapters, compile_cache

    for a in map(adapters.get, frameworks):
        if a.first_run_note and compile_cache.first_run(a.name):
            note = a.first_run_note.format(folder=compile_cache.folder(a.name))
            return f"first run: {note}; later runs load them and take a fraction of this one's time"
    return None


def planned_checks(*, frameworks, norms, dtypes, properties, profile, all_forms, shard=None) -> dict[str, int]:
    """The number of records :func:`normcheck.audit.run_audit` will produce for these arguments per
    installed framework, counted before it runs (for a progress bar whose total does not move):
    its implementations × dtypes × properties plus its spec identities × dtypes, the way the audit
    plans them (:func:`normcheck.audit.plan`)."""
    from normcheck import audit

    return audit.plan(
        frameworks=frameworks,
        norms=norms,
        dtypes=dtypes,
        properties=properties,
        run=audit.Run(profile),
        all_forms=all_forms,
        shard=shard,
    )


class Progress:
    """The audit's progress on stderr: a ``rich`` bar whose total is known before the first check
    (:func:`planned_checks`), the last finished check beside it; nothing at all when disabled."""

    def __init__(self, total: int, *, enabled: bool, console=None) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("audit"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}", style="dim"),
            console=console or Console(stderr=True, highlight=False),
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._bar.add_task("", total=total)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, k: int, n: int, r) -> None:
        """``run_audit``'s callback; its own running total ``n`` is ignored (it grows as the
        frameworks plan), unless the audit outruns the plan."""
        self.done = k
        if k > self.total:  # planned_checks and the audit disagree: never show more than 100 %
            self.total = k
        if self._bar is not None:
            desc = f"{r.impl} {r.dtype} {r.property}"
            width = max(10, self._bar.console.width - 66)  # what the columns before it leave
            if len(desc) > width:
                desc = desc[: width - 1] + "…"
            self._bar.update(self._task, completed=k, total=self.total, description=desc)


#: The options an audit's selection consists of: ``--resume`` reads them from the document.
SELECTION = (
    "profile",
    "seed",
    "frameworks",
    "norms",
    "dtypes",
    "properties",
    "max_examples",
    "all_forms",
    "all_configs",
    "shard",
)


def banner(doc) -> str | None:
    """``interrupted after N of M checks (SIGINT)`` for a document marked incomplete, else None."""
    inc = doc.get("incomplete")
    if not inc:
        return None
    return f"interrupted after {inc['done']} of {inc['planned']} checks ({inc.get('signal', inc.get('reason'))})"


def _resumed(args) -> tuple[dict[int, dict], dict | None]:
    """``--resume RESULTS.json``: the records of the checks the interrupted run finished (by
    position), and its profile, seed, selection and HTML path (None when its document is complete).
    Read from its document, and from its journal (``RESULTS.json.journal``) where that holds more
    or the document was never written."""
    from normcheck.audit import journal
    from normcheck.documents import load_document

    given = [n for n in SELECTION if getattr(args, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise CLIError(f"--resume reads the profile, seed and selection from the document: leave out {flags}")
    path, jpath = args.resume, journal.path_for(args.resume)
    doc = None
    try:
        doc = load_document(path)
    except ValueError as e:
        if not jpath.exists():
            raise CLIError(str(e)) from None
    done: dict[int, dict] = {}
    conf = None
    try:
        if doc is not None:
            if not str(doc.get("schema", "")).startswith("normcheck.audit/") or "command" not in doc.get("run", {}):
                raise CLIError(f"{path}: not an audit result document")
            inc = doc.get("incomplete")
            if not inc:
                return {}, None
            done = dict(zip(doc["positions"], doc["records"], strict=True))
            conf = {"profile": doc["run"]["profile"], "seed": doc["run"]["seed"], **inc["resume"]}
        if jpath.exists():
            try:
                header, rows = journal.read(jpath)
            except ValueError as e:
                if doc is None:
                    raise CLIError(str(e)) from None
            else:
                mine = {k: header.get(k) for k in ("profile", "seed", "selection", "html")}
                if conf is None:
                    conf = {"profile": mine["profile"], "seed": mine["seed"], **mine}
                if {k: conf.get(k) for k in mine} == mine:  # the journal of this run: it may hold more
                    done.update(rows)
    except (KeyError, TypeError, ValueError) as e:
        raise CLIError(f"{path}: cannot resume from it ({type(e).__name__}: {e})") from None
    return done, conf


def _apply(args, conf: dict) -> None:
    """The interrupted run's profile, seed and selection into ``args``."""
    sel = conf["selection"]
    args.profile, args.seed = conf["profile"], conf["seed"]
    args.frameworks = sel.get("frameworks")
    args.norms = ",".join(sel["norms"]) if sel.get("norms") else None
    args.dtypes = sel.get("dtypes")
    args.properties = ",".join(sel["properties"]) if sel.get("properties") else None
    args.max_examples = sel.get("max_examples")
    args.all_forms = sel.get("all_forms")
    args.all_configs = sel.get("all_configs")
    args.shard = _shard(sel["shard"]) if sel.get("shard") else None
    args.json = args.json or args.resume
    args.html = args.html or conf.get("html")


def run(args) -> int:
    """The audit; SIGINT and SIGTERM (where not ignored when it started) stop the checks: what
    finished is written, marked incomplete, and the exit status is 130 or 143."""
    import signal

    from normcheck import audit
    from normcheck.audit import schedule

    state: dict = {"stopped": False, "writing": False, "late": []}
    hook = sys.unraisablehook

    def stop(signum, frame):
        if state["writing"]:  # the checks are over: the signal ends the audit once it is written
            state["late"].append(signum)
        elif not state["stopped"]:  # the first one ends the checks; the next ones wait for the writing
            state["stopped"] = True
            schedule.stop(signum)

    def unraisable(u) -> None:  # stop()'s exception where Python only prints it: the audit stops anyway
        if not isinstance(u.exc_value, audit.Interrupted):
            hook(u)

    previous = {}
    for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        try:
            if signal.getsignal(sig) is default:
                previous[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread: no handlers (SIGINT stays KeyboardInterrupt)
            break
    sys.unraisablehook = unraisable
    try:
        return _run(args, state)
    except audit.Interrupted as e:  # before the checks started
        print(f"interrupted ({signal.Signals(e.signum).name})", file=sys.stderr)
        return 128 + e.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook
        schedule.clear_stop()


def _run(args, state: dict) -> int:
    from normcheck import audit, spec

    done: dict[int, dict] = {}
    conf = None
    if args.resume:
        done, conf = _resumed(args)
        if conf is None:
            print(f"nothing to resume: {args.resume} holds a complete audit")
            return 0
        _apply(args, conf)
    args.profile = args.profile or "default"
    args.seed = 0 if args.seed is None else args.seed
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
    if args.no_cache:  # read by each worker process when it sets JAX up
        no_cache()
    from normcheck.audit.schedule import quiet_threads

    quiet_threads()  # before any framework is imported here or in a worker
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
    planned = planned_checks(
        frameworks=args.frameworks,
        norms=norms,
        dtypes=args.dtypes,
        properties=props,
        profile=args.profile,
        all_forms=args.all_forms,
        shard=args.shard,
    )
    total = sum(planned.values())
    selection = {
        "frameworks": list(planned),
        "norms": norms,
        "dtypes": args.dtypes,
        "properties": props,
        "max_examples": args.max_examples,
        "all_forms": args.all_forms,
        "all_configs": args.all_configs,
        "shard": f"{args.shard[0]}/{args.shard[1]}" if args.shard else None,
    }
    run = audit.Run(args.profile, seed=args.seed, max_examples=args.max_examples, all_configs=bool(args.all_configs))
    if conf is not None:
        _check_resumable(conf, selection, done, run)
    note = first_run_note([fw for fw, n in planned.items() if n])
    if note and not args.quiet:
        print(note, file=sys.stderr)
    journal = None
    if args.json:
        from normcheck.audit.journal import Journal, path_for

        header = {"profile": args.profile, "seed": args.seed, "selection": selection, "html": args.html}
        journal = Journal(path_for(args.json), {**header, "planned": total})
        for position in sorted(done):
            journal.append(position, done[position])
    from normcheck.cli import numpy_warnings_silenced

    try:
        with numpy_warnings_silenced(), Progress(total, enabled=_show_progress(args)) as progress:
            doc = audit.run_audit(
                frameworks=args.frameworks,
                norms=norms,
                dtypes=args.dtypes,
                properties=props,
                run=run,
                workers=args.jobs or _cpus(),
                all_forms=args.all_forms,
                progress=progress,
                shard=args.shard,
                timed=args.timings,
                done=done,
                journal=journal,
            )
    finally:
        state["writing"] = True
        if journal is not None:
            journal.close()
    stopped = banner(doc)
    if stopped:
        doc["incomplete"]["resume"] = {"selection": selection, "html": args.html}
        if journal is not None:
            doc["incomplete"]["journal"] = str(journal.path)
    if bench_section is not None:
        doc["bench"] = bench_section
    from normcheck.audit import equivalence  # each pair's differences, measured on the deviating cases

    if not stopped:  # an interrupted audit exits now; its section stays as the records say
        equivalence.refine(doc)
    if args.shard or stopped:  # one shard cannot tell a finding fixed: its other checks ran elsewhere
        from normcheck.findings import range_warnings

        doc["warnings"] = range_warnings(doc["records"], complete=False)
    _print_table(doc)
    print("\nequivalence of every pair of implementations:\n" + "\n".join(equivalence.lines(doc)))
    _print_findings(doc, saved=[p for p in (args.json, args.html) if p])
    _print_warnings(doc)
    _print_deviations(doc)
    if args.timings:
        print_timings(doc)
    if stopped:
        print(f"\n{stopped}")
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
    if stopped:
        if args.json:
            print(f"resume:  normcheck audit --resume {args.json}")
        return 143 if doc["incomplete"]["reason"] == "terminated" else 130
    if journal is not None:  # the document holds every record
        journal.path.unlink(missing_ok=True)
    if state["late"]:
        return 128 + state["late"][0]
    return audit.exit_status(doc)


def _check_resumable(conf: dict, selection: dict, done: dict[int, dict], run) -> None:
    """The checks planned now are those the interrupted run planned: the same frameworks installed,
    and each finished record where this run would put it."""
    from normcheck.audit.schedule import checks

    if selection["frameworks"] != conf["selection"].get("frameworks"):
        raise CLIError(
            f"cannot resume: the interrupted run audited {', '.join(conf['selection'].get('frameworks') or [])}; "
            f"installed now: {', '.join(selection['frameworks'])}"
        )
    planned = checks(
        frameworks=selection["frameworks"],
        norms=selection["norms"],
        dtypes=selection["dtypes"],
        properties=selection["properties"],
        run=run,
        all_forms=selection["all_forms"],
    )
    for position, r in done.items():
        if not 0 <= position < len(planned) or planned[position] != (r.get("impl"), r.get("dtype"), r.get("property")):
            raise CLIError(
                f"cannot resume: the record at position {position} ({r.get('impl')} {r.get('dtype')} "
                f"{r.get('property')}) is not the check this normcheck plans there"
            )


def no_cache() -> None:
    """Turn the persistent compilation cache off in this process and those it starts."""
    import os

    from normcheck.compile_cache import NO_CACHE_ENV

    os.environ[NO_CACHE_ENV] = "1"


def _show_progress(args) -> bool:
    """A progress bar only on a terminal, and not with --quiet."""
    try:
        return not args.quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
