"""Scheduling the audit: every check of every installed framework, serially or in one process per
framework (JAX in two), and the result document with the conventions table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from normcheck import properties as P
from normcheck import spec as _spec
from normcheck.audit.driver import run_check, run_identity
from normcheck.audit.records import Record, document
from normcheck.profiles import Run

__all__ = ["THREAD_ENV", "identity_pairs", "plan", "quiet_threads", "run_audit", "shard_of", "timings"]


def identity_pairs(impls) -> Iterable[tuple[Any, Any, Any]]:
    """(identity, lhs impl, rhs impl) for every spec identity both sides of which one
    framework implements in the same form, layout and mode."""
    by_key = {(i.framework, i.form, i.layout, i.mode, i.norm): i for i in impls}
    for (fw, form, layout, mode, norm), lhs in by_key.items():
        for ident in _spec.get(norm).identities:
            rhs = by_key.get((fw, form, layout, mode, ident.rhs["norm"]))
            if rhs is not None:
                yield ident, lhs, rhs


COST_ORDER = ("jax", "tensorflow", "torch", "numpy", "onnxruntime")  # slowest first, for the process pool


#: Processes a framework's checks are split over when the audit runs in parallel, so that the
#: slowest framework (JAX compiles per new shape) is not the critical path alone. The processes take
#: whole implementations (each keeps its compile caches) from a shared counter, the costliest first
#: (:func:`_claim_order`), so they finish together; the later ones start after the other frameworks.
SHARDS = {"jax": 2}


def _claim_order(impl, checks: int) -> tuple[int, int, str]:
    """The costliest first, so the processes finish together: eager implementations (op-by-op
    dispatch compiles every primitive per new shape), then those with more checks."""
    return (impl.mode != "eager", -checks, impl.id)


def _jobs(framework: str, *, norms, dtypes, props, identities, run: Run, all_forms: bool):
    """The implementations of ``framework`` the audit runs, and its checks in serial order, each
    as (the implementation whose caches it uses, a function that runs it)."""
    from normcheck import adapters

    impls = [i for i in adapters.implementations([framework], norms) if all_forms or not i.extended]
    jobs: list[tuple[str, Callable[[], Record]]] = []
    for impl in impls:
        for dt in dtypes:
            for p in props:
                jobs.append((impl.id, lambda impl=impl, dt=dt, p=p: run_check(impl, p, dt, run)))
    if identities:
        for ident, lhs, rhs in identity_pairs(impls):
            for dt in dtypes:
                jobs.append((lhs.id, lambda i=ident, a=lhs, b=rhs, dt=dt: run_identity(i, a, b, dt, run)))
    return impls, jobs


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


def shard_of(fws, kwargs, n: int) -> dict[str, int]:
    """Each implementation's shard (0..n-1): whole implementations (each keeps its compile caches
    and replayed draws), the largest first, each to the shard with the fewest checks so far (ties
    to the lowest index). Deterministic for the same frameworks, norms, dtypes and properties."""
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


def _framework_records(
    framework: str,
    *,
    norms,
    dtypes,
    props,
    identities,
    run: Run,
    all_forms=False,
    keep: frozenset[str] | None = None,
    emit=None,
    claim=None,
) -> list[tuple[int, Record]]:
    """Every check of one framework in this process, as ``(position in the serial order, record)``
    pairs for reassembly; with ``keep``, only those of the implementations it names (a shard);
    with ``claim`` (a shared counter's next value), only the implementations whose turn it draws,
    until none is left. ``emit(event)`` reports progress."""
    impls, jobs = _jobs(
        framework, norms=norms, dtypes=dtypes, props=props, identities=identities, run=run, all_forms=all_forms
    )
    # Every check of one implementation stays in one process: all its properties replay the same
    # examples, so the compiled programs (JAX) are reused, not rebuilt in each process.
    by_key: dict[str, list[tuple[int, Callable[[], Record]]]] = {}
    for n, (key, job) in enumerate(jobs):
        by_key.setdefault(key, []).append((n, job))
    order = [i.id for i in sorted(impls, key=lambda i: _claim_order(i, len(by_key.get(i.id, ())))) if i.id in by_key]
    if keep is not None:
        order = [key for key in order if key in keep]

    def turns():
        if claim is None:
            yield from (by_key[key] for key in order)
            return
        while (turn := claim()) < len(order):
            yield by_key[order[turn]]

    records = []
    for mine in turns():
        for n, job in mine:
            r = job()
            records.append((n, r))
            if emit:
                emit(("done", framework, r))
    return sorted(records, key=lambda pair: pair[0])


class _Counter:
    """``next()`` of a counter shared by processes (a manager's Value and Lock)."""

    def __init__(self, value, lock):
        self.value, self.lock = value, lock

    def __call__(self) -> int:
        with self.lock:
            n = self.value.value
            self.value.value = n + 1
        return n


def _unit(framework: str, k: int, kwargs: dict[str, Any], *, emit=None, claim=None, conventions: bool = False):
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
    pairs = _framework_records(framework, **kwargs, emit=emit, claim=claim)
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


def _worker(framework: str, k: int, kwargs: dict[str, Any], queue, claim, conventions: bool):
    """:func:`_unit` in a worker process, reporting each record on ``queue``."""
    quiet_threads()
    _exit_with_parent()
    return _unit(framework, k, kwargs, emit=queue.put, claim=claim, conventions=conventions)


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
) -> dict[str, Any]:
    """Run the audit matrix and return the result document (docs/schema.md); with ``timed``, where
    the time went in its ``timings`` (:func:`timings`).

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
    done: list[Record] = []

    def on_event(event) -> None:
        kind, _, payload = event
        if kind == "done":
            done.append(payload)
            if progress:
                progress(len(done), total, payload)

    measure = shard is None or shard[0] == 1  # the conventions table: once per audit
    if workers <= 1 or sum(SHARDS.get(fw, 1) for fw in fws) <= 1:  # one process's work (JAX alone needs two)
        units = {fw: _unit(fw, 0, kwargs, emit=on_event) for fw in fws}
        by_fw, spent = {fw: u[0] for fw, u in units.items()}, [u[2] for u in units.values()]
        conventions = [r for fw in fws for r in _measure(fw)] if measure else []  # torch before tensorflow
    else:
        by_fw, conventions, spent = _run_parallel(fws, kwargs, workers, on_event, measure)
    offsets = dict(zip(fws, [sum(len(keys[f]) for f in fws[:k]) for k in range(len(fws))], strict=True))
    pairs = [(offsets[fw] + n, r) for fw in fws for n, r in by_fw[fw]]
    doc = document([r for _, r in pairs], profile=run.profile, seed=run.seed, started=t0, argv=sys.argv[1:])
    doc["conventions"] = conventions
    if timed:
        doc["timings"] = timings(spent, [r for _, r in pairs], t0)
    if shard is not None:
        doc["run"]["shard"] = f"{shard[0]}/{shard[1]}"
        doc["positions"] = [n for n, _ in pairs]
    return doc


def _measure(fw: str) -> list[dict[str, Any]]:
    from normcheck import conventions

    try:
        return conventions.measure(fw)
    except Exception as e:
        return [{"framework": fw, "api": "—", "default_eps": f"could not measure: {type(e).__name__}: {e}"}]


def _run_parallel(fws, kwargs, workers, on_event, measure=True) -> tuple[dict[str, list], list[dict], list[dict]]:
    """One process per framework (a clean interpreter: no import-order constraints between them),
    ``SHARDS`` of them for the slowest, taking its implementations from a shared counter. The
    first of each framework's processes is submitted slowest framework first, the further ones last,
    so they join once the other frameworks are done. Returns the records by framework, the
    conventions rows and each process's timing."""
    import multiprocessing as mp
    import queue as _queue
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    order = sorted(fws, key=lambda f: COST_ORDER.index(f) if f in COST_ORDER else -1)
    units = [(fw, 0) for fw in order] + [(fw, k) for fw in order for k in range(1, SHARDS.get(fw, 1))]
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=ctx)
    manager.start(_exit_with_parent)  # the manager process, too, ends with the audit
    with manager:
        q = manager.Queue()
        claims = {fw: _Counter(manager.Value("i", 0), manager.Lock()) for fw in order}
        with ProcessPoolExecutor(max_workers=min(workers, len(units)), mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {u: pool.submit(_worker, *u, kwargs, q, claims[u[0]], measure and u[1] == 0) for u in units}
            while not all(f.done() for f in futures.values()) or not q.empty():
                try:
                    on_event(q.get(timeout=0.2))
                except _queue.Empty:
                    continue
            # every framework's (position, record) pairs in its own (serial) order
            out: dict[str, list] = {}
            for fw in fws:
                pairs = [pair for (f, _), fut in futures.items() if f == fw for pair in fut.result()[0]]
                out[fw] = sorted(pairs, key=lambda p: p[0])
            spent = [fut.result()[2] for fut in futures.values()]
            return out, [row for fw in fws for row in futures[(fw, 0)].result()[1]], spent
