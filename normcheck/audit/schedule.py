"""Scheduling the audit: every check of every installed framework, serially or in one process per
framework (JAX in two), and the result document with the conventions table.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from normcheck import properties as P
from normcheck import spec as _spec
from normcheck.audit import costs
from normcheck.audit.driver import run_check, run_identity
from normcheck.audit.records import Record, document
from normcheck.profiles import Run

__all__ = [
    "THREAD_ENV",
    "Interrupted",
    "checks",
    "clear_stop",
    "identity_pairs",
    "plan",
    "quiet_threads",
    "run_audit",
    "shard_of",
    "stop",
    "timings",
]


def identity_pairs(impls) -> Iterable[tuple[Any, Any, Any]]:
    """(identity, lhs impl, rhs impl) for every spec identity both sides of which one
    framework implements in the same form, layout and mode."""
    by_key = {(i.framework, i.form, i.layout, i.mode, i.norm): i for i in impls}
    for (fw, form, layout, mode, norm), lhs in by_key.items():
        for ident in _spec.get(norm).identities:
            rhs = by_key.get((fw, form, layout, mode, ident.rhs["norm"]))
            if rhs is not None:
                yield ident, lhs, rhs


def processes(framework: str) -> int:
    """Processes a framework's checks are split over when the audit runs in parallel
    (:attr:`normcheck.adapters.Adapter.processes`), so that the slowest framework (JAX compiles per
    new shape) is not the critical path alone. The processes take units (an implementation at one
    dtype: its checks share their compiled programs and replayed draws) from a shared counter, the
    costliest first (:func:`_claim_order`), so they finish together; the later ones start after the
    other frameworks. Where the framework's compile cache is keyed by history (TensorFlow), the
    order ignores measured seconds and the second process takes units from the back
    (:func:`from_the_back`)."""
    from normcheck import adapters

    return adapters.get(framework).processes


def _claim_order(impl, checks: int, seconds: float | None) -> tuple[int, float]:
    """The costliest first, so the processes finish together: eager implementations (op-by-op
    dispatch compiles every primitive per new shape), then by the unit's seconds in the last run
    of the profile (:mod:`normcheck.audit.costs`), else by its number of checks."""
    return (impl.mode != "eager", -(checks if seconds is None else seconds))


def _history_keyed(framework: str) -> bool:
    """Does the framework's compile cache find a program only after the same trace history
    (:attr:`normcheck.adapters.Adapter.history_keyed_cache`)?"""
    from normcheck import adapters

    return adapters.get(framework).history_keyed_cache


def from_the_back(framework: str, k: int) -> bool:
    """Does the framework's process ``k`` take its units from the end of the claim order? Where
    the cache is keyed by history, the first process takes them from the front and the second from
    the back, so each one's history is a prefix of one fixed sequence whatever the timing, and a
    later run finds the programs again (but for the units near where the two meet)."""
    return _history_keyed(framework) and k % 2 == 1


def _jobs(framework: str, *, norms, dtypes, props, identities, run: Run, all_forms: bool):
    """The implementations of ``framework`` the audit runs, and its checks in serial order, each
    as (its unit, :func:`normcheck.audit.costs.unit`, a function that runs it)."""
    from normcheck import adapters

    impls = [i for i in adapters.implementations([framework], norms) if all_forms or not i.extended]
    jobs: list[tuple[str, _Job]] = []
    for impl in impls:
        for dt in dtypes:
            for p in props:
                jobs.append((costs.unit(impl.id, dt), _Job(impl, dt, p, run)))
    if identities:
        for ident, lhs, rhs in identity_pairs(impls):
            for dt in dtypes:
                jobs.append((costs.unit(lhs.id, dt), _Job(lhs, dt, f"identity:{ident.name}", run, ident, rhs)))
    return impls, jobs


@dataclass(frozen=True)
class _Job:
    """One check: ``prop`` of ``impl`` at ``dtype`` (an identity: ``ident`` between ``impl`` and ``rhs``)."""

    impl: Any
    dtype: str
    prop: str
    run: Run
    ident: Any = None
    rhs: Any = None

    def __call__(self) -> Record:
        if self.ident is None:
            return run_check(self.impl, self.prop, self.dtype, self.run)
        return run_identity(self.ident, self.impl, self.rhs, self.dtype, self.run)


def _options(*, frameworks, norms, dtypes, properties, run: Run, identities: bool, all_forms) -> tuple[list, dict]:
    """The installed frameworks to audit, and the options of each one's checks."""
    from normcheck import adapters

    props = [p for p in (properties or P.PROPERTIES) if p in P.PROPERTIES]
    return [a.name for a in adapters.installed(frameworks)], dict(
        norms=norms,
        dtypes=tuple(dtypes or run.dtypes),
        props=props,
        identities=identities and (properties is None or "identity" in properties),
        run=run,
        all_forms=run.profile == "thorough" if all_forms is None else all_forms,
    )


def plan(
    *,
    frameworks=None,
    norms=None,
    dtypes=None,
    properties=None,
    run: Run | None = None,
    identities=True,
    all_forms=None,
    shard: tuple[int, int] | None = None,
) -> dict[str, int]:
    """The number of checks (records) :func:`run_audit` runs per framework with these arguments,
    counted before it runs; listing implementations imports no framework."""
    fws, kwargs = _options(
        frameworks=frameworks,
        norms=norms,
        dtypes=dtypes,
        properties=properties,
        run=run or Run(),
        identities=identities,
        all_forms=all_forms,
    )
    owner = shard_of(fws, kwargs, shard[1]) if shard else None
    return {fw: sum(owner is None or owner[key] == shard[0] - 1 for key, _ in _jobs(fw, **kwargs)[1]) for fw in fws}


def checks(
    *,
    frameworks=None,
    norms=None,
    dtypes=None,
    properties=None,
    run: Run | None = None,
    identities=True,
    all_forms=None,
) -> list[tuple[str, str, str]]:
    """Every check :func:`run_audit` plans with these arguments (unsharded), as (implementation,
    dtype, property) in the serial order: the record at position P is the check ``checks(...)[P]``."""
    fws, kwargs = _options(
        frameworks=frameworks,
        norms=norms,
        dtypes=dtypes,
        properties=properties,
        run=run or Run(),
        identities=identities,
        all_forms=all_forms,
    )
    return [(job.impl.id, job.dtype, job.prop) for fw in fws for _, job in _jobs(fw, **kwargs)[1]]


def shard_of(fws, kwargs, n: int) -> dict[str, int]:
    """Each unit's shard (0..n-1): whole units (:func:`normcheck.audit.costs.unit`: each keeps its compile caches and
    replayed draws), the largest first, each to the shard with the fewest checks so far (ties to
    the lowest index). Deterministic for the same frameworks, norms, dtypes and properties."""
    sizes: dict[str, int] = {}
    for fw in fws:
        for key, _ in _jobs(fw, **kwargs)[1]:
            sizes[key] = sizes.get(key, 0) + 1
    load, out = [0] * n, {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        i = min(range(n), key=lambda j: (load[j], j))
        out[key] = i
        load[i] += sizes[key]
    return out


def _turns(
    framework: str, *, norms, dtypes, props, identities, run: Run, all_forms=False, keep: frozenset[str] | None = None
) -> tuple[list[str], dict[str, list[tuple[int, _Job]]], list[tuple[str, _Job]]]:
    """The units of ``framework`` (:func:`normcheck.audit.costs.unit`) in the order processes claim them (with ``keep``,
    only those it names: a shard), each one's checks as (position in the serial order, job), and the jobs."""
    _, jobs = _jobs(
        framework, norms=norms, dtypes=dtypes, props=props, identities=identities, run=run, all_forms=all_forms
    )
    # Every check of one unit stays in one process: all its properties replay the same examples,
    # so the compiled programs (JAX) are reused, not rebuilt in each process.
    by_key: dict[str, list[tuple[int, _Job]]] = {}
    for n, (key, job) in enumerate(jobs):
        by_key.setdefault(key, []).append((n, job))
    seconds = {} if _history_keyed(framework) else costs.measured(run.profile, by_key)
    order = sorted(by_key, key=lambda k: (*_claim_order(by_key[k][0][1].impl, len(by_key[k]), seconds.get(k)), k))
    if keep is not None:
        order = [key for key in order if key in keep]
    return order, by_key, jobs


def _framework_records(
    framework: str, *, skip: frozenset[int] = frozenset(), emit=None, claim=None, **kwargs
) -> list[tuple[int, Record]]:
    """Every check of one framework in this process, as ``(position in the serial order, record)``
    pairs for reassembly, but those at the positions in ``skip`` (done before: ``--resume``); with
    ``keep``, only those of the implementations it names (a shard); with ``claim`` (a shared
    counter's next value: a turn, or a turn and further positions to skip; None or past the last
    turn: none left), only the implementations whose turn it draws. ``emit(event)`` reports each
    check's start (``("start", framework, n)``) and record (``("done", framework, n, record)``)."""
    order, by_key, _ = _turns(framework, **kwargs)

    def turns():
        if claim is None:
            yield from ((by_key[key], skip) for key in order)
            return
        while True:
            turn, more = claim(), frozenset()
            if isinstance(turn, tuple):
                turn, more = turn
            if turn is None or turn >= len(order):
                return
            yield by_key[order[turn]], skip | more

    records = []
    for mine, skipped in turns():
        for n, job in mine:
            if n in skipped:
                continue
            _stop_point()
            if emit:
                emit(("start", framework, n))
            r = job()
            records.append((n, r))
            if emit:
                emit(("done", framework, n, r))
    return sorted(records, key=lambda pair: pair[0])


def _unit(
    framework: str,
    k: int,
    kwargs: dict[str, Any],
    *,
    emit=None,
    claim=None,
    conventions: bool = False,
    skip: frozenset[int] = frozenset(),
):
    """One process's share of a framework (``k``: its index among the framework's processes): its
    (position, record) pairs, its conventions rows (measured where the framework is already
    imported) and where its time went (:func:`timings`)."""
    from normcheck import adapters

    adapter = adapters.get(framework)
    before = adapter.compile_stats()
    t0 = time.time()
    try:
        adapter.devices()  # the framework's import and device discovery, timed apart from the checks
    except Exception:  # a broken install: its checks report it
        pass
    t1 = time.time()
    pairs = _framework_records(framework, **kwargs, skip=skip, emit=emit, claim=claim)
    t2 = time.time()
    rows = _measure(framework) if conventions else []
    t3 = time.time()
    timing = {"framework": framework, "process": k, "start": t0, "end": t3, "setup_s": t1 - t0, "checks_s": t2 - t1}
    timing["conventions_s"] = t3 - t2
    timing.update({key: v - before.get(key, 0) for key, v in adapter.compile_stats().items()})
    return pairs, rows, timing


#: Set (unless already set) in the audit's processes before a framework is imported: OpenMP threads
#: (torch's intra-op pool) that wait for work sleep instead of spinning. With a process per core, a
#: spinning thread burns the core another process needs: on a busy 2-core machine a small torch
#: BatchNorm took 0.2-1.6 ms a call instead of 80 us. The number of threads, and so how every
#: reduction is split and every result, stays the same.
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def quiet_threads() -> None:
    """:data:`THREAD_ENV` in this process's environment (and its children's), where not set."""
    import os

    for k, v in THREAD_ENV.items():
        os.environ.setdefault(k, v)


def _worker(conn, framework: str, k: int, kwargs: dict[str, Any], skip: frozenset[int], conventions: bool) -> None:
    """:func:`_unit` in a worker process, talking to the main process over ``conn``: each check's
    start and record, a request for the next turn (``("claim", framework)``, answered with the turn),
    and at the end its conventions rows and timing (``("unit", framework, rows, timing)``), or the
    traceback of an exception (``("failed", framework, text)``). SIGINT is ignored (it was blocked
    since the process started): a Ctrl-C reaches the audit's process group, and the main process
    ends its workers itself, with SIGTERM, after keeping what they finished."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    quiet_threads()
    _exit_with_parent()
    from normcheck.audit.driver import watch_cases

    watch_cases(lambda case: conn.send(("case", case)))  # a crash of this process is reported with its case

    def claim():
        conn.send(("claim", framework))
        return conn.recv()

    try:
        _, rows, timing = _unit(framework, k, kwargs, emit=conn.send, claim=claim, conventions=conventions, skip=skip)
    except Exception:
        import traceback

        conn.send(("failed", framework, traceback.format_exc()))
    else:
        conn.send(("unit", framework, rows, timing))
    conn.close()


def _exit_with_parent() -> None:
    """End this worker when the audit that started it is gone (killed by a signal that did not reach
    its process group, e.g. a CI timeout's SIGTERM): else it computes on for no one."""
    import os
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="normcheck-parent-watch").start()


def timings(units: list[dict[str, Any]], records: list[Record], started: float) -> dict[str, Any]:
    """Where the time went: per process (``processes``: its framework and index, ``start``/``end``
    in seconds from the audit's start, ``setup_s`` importing the framework and finding its devices,
    ``checks_s``, ``conventions_s``, and the adapter's compilation counts and seconds, e.g. JAX's
    ``compiles``, ``compile_s``, ``cache_hits``), and the checks' seconds per framework and
    property (``properties``)."""
    procs = []
    for u in units:
        u = {**u, "start": u["start"] - started, "end": u["end"] - started}
        procs.append({k: round(v, 3) if isinstance(v, float) else v for k, v in u.items()})
    props: dict[str, dict[str, float]] = {}
    for r in records:
        cell = props.setdefault(r.framework, {})
        cell[r.property] = round(cell.get(r.property, 0.0) + r.seconds, 3)
    return {"processes": procs, "properties": props}


def run_audit(
    *,
    frameworks=None,
    norms=None,
    dtypes=None,
    properties=None,
    run: Run | None = None,
    identities: bool = True,
    workers: int = 1,
    all_forms: bool | None = None,
    progress: Callable[[int, int, Record], None] | None = None,
    shard: tuple[int, int] | None = None,
    timed: bool = False,
    done: dict[int, dict[str, Any]] | None = None,
    journal=None,
) -> dict[str, Any]:
    """Run the audit matrix and return the result document (docs/schema.md); with ``timed``, where
    the time went in its ``timings`` (:func:`timings`).

    ``done`` maps positions in the serial order to the records (JSON) of checks that ran before
    (``normcheck audit --resume``): they are not run again, and the document holds them in their
    places. ``journal`` (:class:`normcheck.audit.journal.Journal`) gets each record as it comes.
    Interrupted (KeyboardInterrupt, or :class:`Interrupted` raised by a SIGTERM handler), the audit
    ends its workers and returns the document of what finished, with ``incomplete`` and ``positions``.

    ``shard=(i, n)`` (1 <= i <= n) runs the i-th of n deterministic, balanced shares of the checks
    (:func:`shard_of`); the document then names the shard and each record's position in the
    unsharded run, so the n documents merge into its records (:func:`normcheck.report.merge`).

    With ``workers > 1`` each framework runs in its own fresh process (a clean interpreter per
    framework: no import-order constraints between them), slowest framework first. Extended
    implementations (``Impl.extended``) run with ``all_forms``, by default in the thorough profile.
    """
    run = run or Run()
    t0 = time.time()
    fws, kwargs = _options(
        frameworks=frameworks,
        norms=norms,
        dtypes=dtypes,
        properties=properties,
        run=run,
        identities=identities,
        all_forms=all_forms,
    )
    keys = {fw: [key for key, _ in _jobs(fw, **kwargs)[1]] for fw in fws}
    total = sum(map(len, keys.values()))
    if shard is not None:
        i, n = shard
        if not 1 <= i <= n:
            raise ValueError(f"shard {i}/{n}: expected 1 <= i <= n")
        owner = shard_of(fws, kwargs, n)
        kwargs["keep"] = frozenset(k for k, s in owner.items() if s == i - 1)
        total = sum(key in kwargs["keep"] for fw in fws for key in keys[fw])
    offsets = dict(zip(fws, [sum(len(keys[f]) for f in fws[:k]) for k in range(len(fws))], strict=True))
    done = dict(done or {})
    skips = {fw: frozenset(p - offsets[fw] for p in done if 0 <= p - offsets[fw] < len(keys[fw])) for fw in fws}
    got: list[tuple[int, Record]] = []

    def on_event(event) -> None:
        if event[0] != "done":
            return
        _, fw, n, r = event
        got.append((offsets[fw] + n, r))
        if journal is not None:
            journal.append(offsets[fw] + n, r.to_json())
        if progress:
            progress(len(done) + len(got), total, r)

    measure = shard is None or shard[0] == 1  # the conventions table: once per audit
    rows: dict[str, list[dict[str, Any]]] = {}
    spent: list[dict[str, Any]] = []
    stopped = None
    try:
        if workers <= 1 or sum(processes(fw) for fw in fws) <= 1:  # one process's work (JAX alone needs two)
            for fw in fws:
                spent.append(_unit(fw, 0, kwargs, emit=on_event, skip=skips[fw])[2])
            for fw in fws if measure else ():  # torch before tensorflow
                rows[fw] = _measure(fw)
        else:
            _run_parallel(fws, kwargs, workers, on_event, measure, skips=skips, rows=rows, spent=spent)
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM where the caller turned it into Interrupted
        stopped = getattr(e, "signum", signal.SIGINT)
    _STOP.clear()
    if stopped is None:
        costs.remember(run.profile, [r for _, r in got])
    pairs = sorted([*done.items(), *got], key=lambda pair: pair[0])
    doc = document([r for _, r in pairs], profile=run.profile, seed=run.seed, started=t0, argv=sys.argv[1:])
    doc["conventions"] = [row for fw in fws for row in rows.get(fw, [])]
    if timed:
        doc["timings"] = timings(spent, [r for _, r in got], t0)
    if shard is not None:
        doc["run"]["shard"] = f"{shard[0]}/{shard[1]}"
    if shard is not None or stopped is not None:
        doc["positions"] = [n for n, _ in pairs]
    if stopped is not None:
        doc["incomplete"] = {
            "done": len(pairs),
            "planned": total,
            "reason": "terminated" if stopped == signal.SIGTERM else "interrupted",
            "signal": _signal_name(stopped),
        }
    return doc


#: The signals that asked the audit in this process to stop (:func:`stop`); cleared when it returns.
_STOP: list[int] = []


def stop(signum: int) -> None:
    """Stop the audit running in this process (from a signal handler): raises :class:`Interrupted`
    now and, should that be swallowed (an exception raised in a garbage-collector callback or a
    finalizer is only printed), again before the next check."""
    _STOP.append(signum)
    raise Interrupted(signum)


def clear_stop() -> None:
    """Forget the requests to stop (:func:`stop`): the next audit in this process runs."""
    _STOP.clear()


def _stop_point() -> None:
    if _STOP:
        raise Interrupted(_STOP[0])


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM (``signum``) in the audit's main process, raised by the handler that
    ``normcheck audit`` installs; :func:`run_audit` stops at it and returns what finished."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _measure(fw: str) -> list[dict[str, Any]]:
    from normcheck import conventions

    try:
        return conventions.measure(fw)
    except Exception as e:
        return [{"framework": fw, "api": "—", "default_eps": f"could not measure: {type(e).__name__}: {e}"}]


#: Deaths of a framework's worker processes after which its unfinished checks become error records
#: instead of going to a fresh process (a framework whose import kills the process, say).
MAX_DEATHS = 3


class _Proc:
    """A worker process and what the main process knows of it."""

    def __init__(self, fw: str, k: int, conventions: bool, proc, conn) -> None:
        self.fw, self.k, self.conventions, self.proc, self.conn = fw, k, conventions, proc, conn
        self.turn: int | None = None  # the implementation (turn) it claimed last
        self.running: int | None = None  # the check it started and has not finished
        self.case = None  # the example that check was on last (a Case)
        self.finished = False  # it sent its conventions rows and timing: all its work is done
        self.failure = ""  # the traceback of a Python exception it reported


def _run_parallel(fws, kwargs, workers, on_event, measure=True, *, skips=None, rows=None, spent=None) -> None:
    """One process per framework (a clean interpreter: no import-order constraints between them),
    :func:`processes` of them for the slowest, taking its implementations in turn from this process. The
    first of each framework's processes starts slowest framework first, the further ones last,
    so they join once the other frameworks are done; at most ``workers`` run at once. Each record
    goes to ``on_event`` as it comes; ``rows`` gets each framework's conventions rows, ``spent``
    each process's timing.

    A worker that dies (a signal, ``os._exit``, an exception) leaves an error record for the check
    it was on; a fresh process goes on with the rest of the framework (after :data:`MAX_DEATHS`
    deaths, its unfinished checks become error records). Workers start with SIGINT blocked (a Ctrl-C
    to the process group is for this process alone): when this one is interrupted, it ends them."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from normcheck.audit.driver import not_run

    ctx = mp.get_context("spawn")
    skips = skips or {}
    rows = {} if rows is None else rows
    spent = [] if spent is None else spent
    from normcheck import adapters

    order = adapters.costliest_first(fws)
    pending = [(fw, 0, measure) for fw in order] + [(fw, k, False) for fw in order for k in range(1, processes(fw))]
    plans = {fw: _turns(fw, **kwargs) for fw in fws}
    next_turn = dict.fromkeys(fws, 0)
    last_turn = {fw: len(plans[fw][0]) - 1 for fw in fws}  # the back end (from_the_back)
    requeued: dict[str, list[int]] = {fw: [] for fw in fws}
    finished = {fw: set(skips.get(fw, ())) for fw in fws}  # positions done (or given up)
    deaths = dict.fromkeys(fws, 0)
    live: list[_Proc] = []

    def start(fw: str, k: int, conventions: bool) -> None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_worker,
            args=(child, fw, k, kwargs, frozenset(skips.get(fw, ())), conventions),
            name=f"normcheck-audit-{fw}-{k}",
        )
        live.append(_Proc(fw, k, conventions, proc, parent))  # before it starts: a signal now still ends it
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # inherited through exec
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            child.close()

    def claim(w: _Proc):
        fw = w.fw
        if requeued[fw]:  # a dead worker's implementation: what it did not finish
            w.turn = requeued[fw].pop(0)
            return w.turn, frozenset(finished[fw])
        if next_turn[fw] > last_turn[fw]:
            w.turn = None
        elif from_the_back(fw, w.k):
            w.turn = last_turn[fw]
            last_turn[fw] -= 1
        else:
            w.turn = next_turn[fw]
            next_turn[fw] += 1
        return w.turn

    def handle(w: _Proc, msg) -> None:
        kind = msg[0]
        if kind == "claim":
            try:
                w.conn.send(claim(w))
            except OSError:  # it died meanwhile: its sentinel says so
                pass
        elif kind == "case":
            w.case = msg[1]
        elif kind == "start":
            w.running, w.case = msg[2], None
        elif kind == "done":
            w.running = None
            finished[w.fw].add(msg[2])
            on_event(msg)
        elif kind == "unit":
            w.finished = True
            if w.conventions:  # the framework's first process measures them; the others send none
                rows[w.fw] = msg[2]
            spent.append(msg[3])
        elif kind == "failed":
            w.failure = msg[2]

    def drain(w: _Proc) -> bool:
        """Read what ``w`` sent; True at the end of its pipe."""
        try:
            while w.conn.poll():
                handle(w, w.conn.recv())
        except (EOFError, OSError):
            return True
        return False

    def died(w: _Proc) -> None:
        fw, code = w.fw, w.proc.exitcode
        how = _signal_name(-code) if code is not None and code < 0 else f"exit code {code}"
        if w.failure:
            how += ": " + w.failure.strip().splitlines()[-1]
        deaths[fw] += 1
        keys, by_key, jobs = plans[fw]

        def error(n: int, message: str, case=None) -> None:
            job = jobs[n][1]
            finished[fw].add(n)
            on_event(("done", fw, n, not_run(job.impl, job.dtype, job.prop, message, case)))

        if w.running is not None:
            on = f" on the case {w.case.describe()}" if hasattr(w.case, "describe") else ""
            error(w.running, f"the audit's {fw} worker process died ({how}) during this check{on}", w.case)
        if w.turn is not None and w.turn < len(keys) and any(n not in finished[fw] for n, _ in by_key[keys[w.turn]]):
            requeued[fw].insert(0, w.turn)
        if not (requeued[fw] or next_turn[fw] <= last_turn[fw] or w.conventions):
            return
        if deaths[fw] < MAX_DEATHS:
            pending.insert(0, (fw, w.k, w.conventions))
            return
        for turn in [*requeued[fw], *range(next_turn[fw], last_turn[fw] + 1)]:
            for n, _ in by_key[keys[turn]]:
                if n not in finished[fw]:
                    error(n, f"not run: the audit's {fw} worker processes died {deaths[fw]} times (last: {how})")
        requeued[fw].clear()
        next_turn[fw], last_turn[fw] = len(keys), len(keys) - 1

    try:
        while pending or live:
            _stop_point()
            while pending and len(live) < workers:
                start(*pending.pop(0))
            ready = set(wait([w.conn for w in live] + [w.proc.sentinel for w in live], timeout=1.0))
            for w in list(live):
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                if not drain(w) and w.proc.sentinel not in ready:
                    continue
                w.proc.join(timeout=10)  # its pipe is closed: it is exiting
                if w.proc.is_alive():  # stuck at exit
                    w.proc.kill()
                    w.proc.join()
                live.remove(w)
                w.conn.close()
                if not w.finished:
                    died(w)
    finally:  # interrupted (or failed here): end the workers, silently (SIGTERM's default action)
        live = [w for w in live if w.proc.pid is not None]  # started
        for w in live:
            if w.proc.is_alive():
                w.proc.terminate()
        for w in live:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
