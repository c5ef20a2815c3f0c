"""The audit: every property on every installed (framework, norm, form, dtype), under Hypothesis.

:func:`run_check` drives one property on one implementation and dtype with a Hypothesis
strategy, records every example's observed error (model units), and, on a deviation, keeps the
shrunk counterexample (Hypothesis replays the minimal failing example last). :func:`run_audit`
runs the whole matrix and returns the JSON-able result document (schema ``normcheck.audit/1``,
documented in README "Results schema").
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from normcheck import findings as _findings
from normcheck import properties as P
from normcheck import spec as _spec

__all__ = ["PROFILE_DTYPES", "SCHEMA", "Record", "exit_status", "run_audit", "run_check", "run_identity"]

SCHEMA = "normcheck.audit/1"
MAX_SAMPLES = 200  # observed errors kept per record (for the error-distribution plots)
PROFILE_DTYPES = {
    "quick": ("float32",),
    "ci": ("float32", "bfloat16"),
    "dev": ("float32",),
    "default": ("float32", "float16", "bfloat16"),
    "thorough": ("float64", "float32", "float16", "bfloat16"),
}


@dataclass
class Record:
    """One check: one property of one implementation at one dtype (a row of the results)."""

    impl: str
    framework: str
    version: str | None
    norm: str
    form: str
    layout: str
    mode: str
    api: str
    dtype: str
    property: str
    verdict: str  # pass | finding | fail | error | skip
    observed: float = 0.0  # worst observed error, model units (u·s)
    allowed: float = 0.0
    examples: int = 0
    samples: list[float] = field(default_factory=list)  # every example's observed error (capped)
    message: str = ""
    finding: str | None = None
    counterexample: dict[str, Any] | None = None
    repro: str | None = None
    seconds: float = 0.0
    diagnosis: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("observed", "allowed"):
            if not math.isfinite(d[k]):
                d[k] = None if math.isnan(d[k]) else ("inf" if d[k] > 0 else "-inf")
        d["samples"] = [round(s, 4) for s in d["samples"] if math.isfinite(s)]
        return d


class _Deviation(AssertionError):
    pass


def _settings(profile: str | None, max_examples: int | None):
    import hypothesis
    from hypothesis import HealthCheck

    from normcheck import strategies

    strategies.register_profiles()
    base = hypothesis.settings.get_profile(profile) if profile else hypothesis.settings.default
    kw: dict[str, Any] = {
        "database": None,
        "suppress_health_check": list(HealthCheck),
        "deadline": None,
        "print_blob": False,
    }
    if max_examples:
        kw["max_examples"] = max_examples
    return hypothesis.settings(base, **kw)


@dataclass
class _Drive:
    samples: list[float] = field(default_factory=list)
    n: int = 0
    skips: int = 0
    skip: str = ""
    fail: tuple[Any, P.Result] | None = None
    crash: str = ""
    hits: dict[str, tuple[Any, P.Result]] = field(default_factory=dict)  # finding id -> smallest hit


@contextmanager
def _no_local_constants():
    """Draw without Hypothesis's constants from local source. Hypothesis mixes literals of every
    loaded module outside site-packages into its examples (about 1 draw in 20), so a seeded draw
    would depend on which normcheck modules happen to be imported, on their source text (any edit
    to normcheck would change every audit's examples) and on whether normcheck is installed
    editable or from a wheel. Inside this context a seed draws the same examples wherever it runs;
    Hypothesis's own global constants (0, ±inf, float limits, ...) are still drawn."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # a Hypothesis without this mechanism
        yield
        return
    get = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if get is None or cache is None or not hasattr(providers, "Constants"):
        yield
        return
    empty = providers.Constants()
    cache.cache.clear()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = get
        cache.cache.clear()


def _drive(body: Callable[[Any], P.Result], strategy, settings, seed: int | None, known=()) -> _Drive:
    """Run ``body`` over ``strategy``; collect samples, skips and the shrunk failure. A deviation
    a registered finding covers is counted as a hit (the smallest kept) and exploration goes on,
    so a known deviation neither costs shrinking time nor hides a new one."""
    import hypothesis
    from hypothesis import given

    d = _Drive()

    def test(case):
        r = body(case)
        if _judge(d, case, r, known):
            raise _Deviation(r.message)

    t = settings(given(strategy)(test))
    if seed is not None:
        t = hypothesis.seed(seed)(t)
    try:
        with _no_local_constants():
            t()
    except _Deviation:
        pass
    except Exception as e:  # Flaky, a strategy that cannot generate, ...
        d.crash = f"{type(e).__name__}: {e}".splitlines()[0][:300]
    return d


def _judge(d: _Drive, case, r: P.Result, known) -> bool:
    """Account one example's result in ``d``; True when it is a new deviation (the run stops)."""
    d.n += 1
    if r.verdict == "skip":
        d.skips += 1
        d.skip = r.message
        return False
    if len(d.samples) < MAX_SAMPLES and math.isfinite(r.observed):
        d.samples.append(float(r.observed))
    if not r.ok:
        f = next((f for f in known if f.covers(r.case or case)), None)
        if f is not None:
            prev = d.hits.get(f.id)
            if prev is None or case.x.size < prev[0].x.size:
                d.hits[f.id] = (case, r)
            return False
        d.fail = (case, r)
        return True
    return False


#: The examples a seeded (or derandomized) run draws, by (norm, dtype, buffers, profile, seed,
#: max_examples): every property of every implementation of a norm sees the same examples, so they
#: are drawn once per process and replayed (:func:`_replay`) instead of re-generated per property.
_DRAWN: dict[tuple, tuple | None] = {}


def _drawn(key, strategy, settings, seed) -> tuple | None:
    """The drawn examples (None when drawing itself fails: :func:`_drive` then reports it)."""
    if key not in _DRAWN:
        seen: list = []

        def keep(case):
            seen.append(case)
            return P.Result("", "pass")

        d = _drive(keep, strategy, settings, seed)
        if len(_DRAWN) > 64:
            _DRAWN.clear()
        _DRAWN[key] = None if d.crash else tuple(seen)
    return _DRAWN[key]


def _replay(body, cases, known) -> _Drive | None:
    """:func:`_drive` over already drawn ``cases``: the same accounting while every example passes
    or is a registered finding's hit (Hypothesis would generate exactly these, in this order: see
    :func:`_no_local_constants`); None at a new deviation or an exception, which :func:`_drive`
    then reruns and shrinks."""
    if cases is None:
        return None
    d = _Drive()
    for case in cases:
        try:
            r = body(case)
        except Exception:
            return None
        if _judge(d, case, r, known):
            return None
    return d


def _record(impl, dtype, prop_name, t0, d: _Drive, *, repro_call: str) -> Record:
    samples, n, skips, skip_msg, fail, crash = d.samples, d.n, d.skips, d.skip, d.fail, d.crash
    from normcheck.adapters import get

    version = get(impl.framework).version() if impl.framework != "user" else None
    base = dict(
        impl=impl.id,
        framework=impl.framework,
        version=version,
        norm=impl.norm,
        form=impl.form,
        layout=impl.layout,
        mode=impl.mode,
        api=impl.api,
        dtype=dtype,
        property=prop_name,
        examples=n,
        samples=samples,
        seconds=round(time.perf_counter() - t0, 3),
    )
    finding = None
    if fail is None and d.hits:  # only registered deviations: report the finding's smallest hit
        finding, fail = next(iter(d.hits.items()))  # the finding that covered it (an identity: either side's)
    if fail is not None:
        case, r = fail
        if finding is None and r.verdict in ("fail", "error"):
            f = _findings.match(impl.id, prop_name, dtype, r.case or case)
            finding = f.id if f else None
        return Record(
            **base,
            verdict="finding" if finding else r.verdict,
            observed=r.observed,
            allowed=r.allowed,
            message=r.message,
            finding=finding,
            counterexample=case.to_json() if hasattr(case, "to_json") else None,
            repro=case.repro(repro_call) if hasattr(case, "repro") else None,
        )
    if crash:
        return Record(**base, verdict="error", message=f"the check could not run: {crash}")
    if n == skips:
        return Record(**base, verdict="skip", message=skip_msg or "no applicable example")
    from normcheck.error_model import MODEL

    return Record(**base, verdict="pass", observed=max(samples, default=0.0), allowed=MODEL.lam)


def _skip(impl, dtype: str, prop_name: str, message: str) -> Record:
    r = _record(impl, dtype, prop_name, time.perf_counter(), _Drive(skip=message), repro_call="")
    r.message = message
    return r


def _repro_call(impl) -> str:
    if impl.framework == "user":
        return "fn"
    return f"next(i for i in __import__('normcheck.adapters', fromlist=['get']).get({impl.framework!r}).implementations() if i.id == {impl.id!r})"


def run_check(impl, prop_name: str, dtype: str, *, profile=None, seed=None, max_examples=None, strategy=None) -> Record:
    """One property of one implementation at one dtype, driven by Hypothesis."""
    from normcheck import strategies

    t0 = time.perf_counter()
    if dtype not in impl.dtypes:
        return _skip(impl, dtype, prop_name, f"{impl.api or impl.id} does not support {dtype}")
    prop = P.PROPERTIES[prop_name]
    settings = _settings(profile, max_examples)
    known = _findings.applicable(impl.id, prop_name, dtype)
    drive = None
    if strategy is None:
        strategy = strategies.cases(impl.norm, dtypes=(dtype,), running_stats=None if impl.running_stats else False)
        if seed is not None or settings.derandomize:  # the same examples for every property: replay them
            key = (impl.norm, dtype, impl.running_stats, profile, seed, max_examples)
            drive = _replay(lambda c: prop(impl, c), _drawn(key, strategy, settings, seed), known)
    if drive is None:
        drive = _drive(lambda c: prop(impl, c), strategy, settings, seed, known)
    return _record(impl, dtype, prop_name, t0, drive, repro_call=_repro_call(impl))


def run_identity(ident, lhs, rhs, dtype: str, *, profile=None, seed=None, max_examples=None) -> Record:
    """A spec identity between two implementations of one framework/form, driven by Hypothesis."""
    from normcheck import strategies

    t0 = time.perf_counter()
    name = f"identity:{ident.name}"
    if dtype not in lhs.dtypes or dtype not in rhs.dtypes:
        return _skip(lhs, dtype, name, f"{dtype} is not supported by both sides")
    strategy = strategies.identity_cases(ident, dtypes=(dtype,))
    known = _findings.applicable(lhs.id, name, dtype) + _findings.applicable(rhs.id, name, dtype)
    drive = _drive(lambda c: P.identity(ident, lhs, rhs, c), strategy, _settings(profile, max_examples), seed, known)
    return _record(lhs, dtype, name, t0, drive, repro_call=_repro_call(lhs))


def identity_pairs(impls) -> Iterable[tuple[Any, Any, Any]]:
    """(identity, lhs impl, rhs impl) for every spec identity both sides of which one
    framework implements in the same form, layout and mode."""
    by_key = {(i.framework, i.form, i.layout, i.mode, i.norm): i for i in impls}
    for (fw, form, layout, mode, norm), lhs in by_key.items():
        for ident in _spec.get(norm).identities:
            rhs = by_key.get((fw, form, layout, mode, ident.rhs["norm"]))
            if rhs is not None:
                yield ident, lhs, rhs


def environment() -> dict[str, Any]:
    from normcheck import __version__, adapters

    fws = {}
    for a in adapters.installed():
        fws[a.name] = {"version": a.version()}
    return {
        "normcheck": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpus": _cpu_count(),
        "frameworks": fws,
    }


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


COST_ORDER = ("jax", "tensorflow", "torch", "onnxruntime", "numpy")  # slowest first, for the process pool


#: Processes a framework's checks are split over when the audit runs in parallel, so that the
#: slowest framework (JAX compiles per new shape) is not the critical path alone. The processes take
#: whole implementations (each keeps its compile caches) from a shared counter, the costliest first
#: (:func:`_claim_order`), so they finish together; the later ones start after the other frameworks.
SHARDS = {"jax": 2}


def _claim_order(impl, checks: int) -> tuple[int, int, str]:
    """The costliest first, so the processes finish together: eager implementations (op-by-op
    dispatch compiles every primitive per new shape), then those with more checks."""
    return (impl.mode != "eager", -checks, impl.id)


def _framework_records(
    framework: str,
    *,
    norms,
    dtypes,
    props,
    identities,
    profile,
    seed,
    max_examples,
    all_forms=False,
    emit=None,
    claim=None,
) -> list[tuple[int, Record]]:
    """Every check of one framework in this process, as ``(position in the serial order, record)``
    pairs for reassembly; with ``claim`` (a shared counter's next value), only the implementations
    whose turn it draws, until none is left. ``emit(event)`` reports progress."""
    from normcheck import adapters

    impls = [i for i in adapters.implementations([framework], norms) if all_forms or not i.extended]
    jobs: list[tuple[str, Callable[[], Record]]] = []  # (the implementation whose caches it uses, job)
    for impl in impls:
        for dt in dtypes:
            for p in props:
                jobs.append(
                    (
                        impl.id,
                        lambda impl=impl, dt=dt, p=p: run_check(
                            impl, p, dt, profile=profile, seed=seed, max_examples=max_examples
                        ),
                    )
                )
    if identities:
        for ident, lhs, rhs in identity_pairs(impls):
            for dt in dtypes:
                jobs.append(
                    (
                        lhs.id,
                        lambda i=ident, a=lhs, b=rhs, dt=dt: run_identity(
                            i, a, b, dt, profile=profile, seed=seed, max_examples=max_examples
                        ),
                    )
                )
    # Every check of one implementation stays in one process: all its properties replay the same
    # examples, so the compiled programs (JAX) are reused, not rebuilt in each process.
    by_key: dict[str, list[tuple[int, Callable[[], Record]]]] = {}
    for n, (key, job) in enumerate(jobs):
        by_key.setdefault(key, []).append((n, job))
    order = [i.id for i in sorted(impls, key=lambda i: _claim_order(i, len(by_key.get(i.id, ())))) if i.id in by_key]

    def turns():
        if claim is None:
            yield from (by_key[key] for key in order)
            return
        while (turn := claim()) < len(order):
            yield by_key[order[turn]]

    records = []
    for mine in turns():
        if emit:
            emit(("more", framework, len(mine)))
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


def _worker(framework: str, kwargs: dict[str, Any], queue, claim, conventions: bool):
    """A framework's share of the records and, from its first process, its conventions rows
    (measured where the framework is already imported)."""
    pairs = _framework_records(framework, **kwargs, emit=queue.put, claim=claim)
    return pairs, _measure(framework) if conventions else []


def run_audit(
    *,
    frameworks=None,
    norms=None,
    dtypes=None,
    properties=None,
    profile: str = "default",
    seed: int | None = 0,
    max_examples: int | None = None,
    identities: bool = True,
    workers: int = 1,
    all_forms: bool | None = None,
    progress: Callable[[int, int, Record], None] | None = None,
) -> dict[str, Any]:
    """Run the audit matrix and return the result document (see README "Results schema").

    With ``workers > 1`` each framework runs in its own fresh process (a clean interpreter per
    framework: no import-order constraints between them), slowest framework first. Extended
    implementations (``Impl.extended``) run with ``all_forms``, by default in the thorough profile.
    """
    from normcheck import adapters

    t0 = time.time()
    fws = [a.name for a in adapters.installed(frameworks)]
    props = [p for p in (properties or P.PROPERTIES) if p in P.PROPERTIES]
    kwargs = dict(
        norms=norms,
        dtypes=tuple(dtypes or PROFILE_DTYPES.get(profile, ("float32",))),
        props=props,
        identities=identities and (properties is None or "identity" in properties),
        profile=profile,
        seed=seed,
        max_examples=max_examples,
        all_forms=profile == "thorough" if all_forms is None else all_forms,
    )
    planned: dict[str, int] = {}
    done: list[Record] = []

    def on_event(event) -> None:
        kind, fw, payload = event
        if kind == "more":
            planned[fw] = planned.get(fw, 0) + payload
            return
        done.append(payload)
        if progress:
            progress(len(done), max(len(done), sum(planned.values())), payload)

    if workers <= 1 or len(fws) <= 1:
        by_fw = {fw: [r for _, r in _framework_records(fw, **kwargs, emit=on_event)] for fw in fws}
        conventions = [r for fw in fws for r in _measure(fw)]  # FRAMEWORKS order: torch before tensorflow
    else:
        by_fw, conventions = _run_parallel(fws, kwargs, workers, on_event)
    records = [r for fw in fws for r in by_fw[fw]]
    doc = document(records, profile=profile, seed=seed, started=t0, argv=sys.argv[1:])
    doc["conventions"] = conventions
    return doc


def _measure(fw: str) -> list[dict[str, Any]]:
    from normcheck import conventions

    try:
        return conventions.measure(fw)
    except Exception as e:
        return [{"framework": fw, "api": "—", "default_eps": f"could not measure: {type(e).__name__}: {e}"}]


def _run_parallel(fws, kwargs, workers, on_event) -> tuple[dict[str, list[Record]], list[dict[str, Any]]]:
    """One process per framework (a clean interpreter: no import-order constraints between them),
    ``SHARDS`` of them for the slowest, taking its implementations from a shared counter. The
    first of each framework's processes is submitted slowest framework first, the further ones last,
    so they join once the other frameworks are done."""
    import multiprocessing as mp
    import queue as _queue
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    order = sorted(fws, key=lambda f: COST_ORDER.index(f) if f in COST_ORDER else -1)
    units = [(fw, 0) for fw in order] + [(fw, k) for fw in order for k in range(1, SHARDS.get(fw, 1))]
    with ctx.Manager() as manager:
        q = manager.Queue()
        claims = {fw: _Counter(manager.Value("i", 0), manager.Lock()) for fw in order}
        with ProcessPoolExecutor(max_workers=min(workers, len(units)), mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {u: pool.submit(_worker, u[0], kwargs, q, claims[u[0]], u[1] == 0) for u in units}
            while not all(f.done() for f in futures.values()) or not q.empty():
                try:
                    on_event(q.get(timeout=0.2))
                except _queue.Empty:
                    continue
            # every framework's records in its own (serial) order
            out: dict[str, list[Record]] = {}
            for fw in fws:
                pairs = [pair for (f, _), fut in futures.items() if f == fw for pair in fut.result()[0]]
                out[fw] = [r for _, r in sorted(pairs, key=lambda p: p[0])]
            return out, [row for fw in fws for row in futures[(fw, 0)].result()[1]]


def document(records: list[Record], *, profile, seed, started, argv=()) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return {
        "schema": SCHEMA,
        "run": {
            "command": "normcheck " + " ".join(argv),
            "profile": profile,
            "seed": seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 2),
            "environment": environment(),
        },
        "summary": {v: counts.get(v, 0) for v in ("pass", "finding", "fail", "error", "skip")},
        "findings": [
            {
                "id": f.id,
                "package": f.package,
                "versions": f.versions,
                "impl": f.impl,
                "property": f.property,
                "explanation": f.explanation,
            }
            for f in _findings.load()
        ],
        "records": [r.to_json() for r in records],
    }


def exit_status(doc: dict[str, Any]) -> int:
    """0 when everything passed or is a registered finding, 1 on anything new."""
    s = doc["summary"]
    return 1 if s.get("fail", 0) or s.get("error", 0) else 0
