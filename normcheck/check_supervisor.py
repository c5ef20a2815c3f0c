"""Running a check in worker processes (:mod:`normcheck.isolation`): :func:`supervise` reads the
records a worker sends, and at a worker's death records a crash (or hang) for the check and case it
was on, then starts a fresh worker for the checks left."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from normcheck.check_report import CRASH, CheckReport, crashed, skip_record
from normcheck.target import NEW_SIGNATURE_FACTOR, TargetError

if TYPE_CHECKING:
    from normcheck import audit

__all__ = ["MAX_CRASHES", "Stub", "supervise"]


#: Deaths of the worker process after which the checks not yet run are skipped, not retried.
MAX_CRASHES = 3


def supervise(ref: str, norm: str, options: dict[str, Any], progress) -> CheckReport:
    """:func:`run_checks` in worker processes (:mod:`normcheck.isolation`): the records as they come;
    at a worker's death a crash (or hang) record for the check and case it was on, then a fresh
    worker for the checks left (a hang, or :data:`MAX_CRASHES` deaths: the rest are not run).

    Where the target's framework runs a check in several processes (:func:`normcheck.check_parts.processes`:
    JAX, which compiles a program per shape), the first worker runs the first share and, once it
    has loaded the target, the others start, one supervised worker each; their records are joined
    in the plan's order and, where one deviates, one more worker diagnoses them together (every
    record in its ``prior``)."""
    lock = threading.Lock()

    def told(r: audit.Record) -> None:
        if progress:
            with lock:
                progress(r)

    shares: dict[int, CheckReport] = {}
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    plans: list[dict[str, Any]] = []  # the first worker's (again after each of its deaths)

    def share(k: int, n: int) -> None:
        try:
            shares[k] = _supervised(ref, norm, {**options, "part": (k, n), "diagnose": False}, told)
        except BaseException as e:  # raised again in the calling thread
            errors.append(e)

    def planned(plan: dict[str, Any]) -> None:
        plans.append(plan)
        n = plan.get("parts", 1)
        if threads or n <= 1:  # started already (a fresh first worker after a crash plans again)
            return
        for k in range(1, n):
            t = threading.Thread(target=share, args=(k, n), daemon=True, name=f"normcheck-check-share-{k}")
            t.start()
            threads.append(t)

    first = _supervised(ref, norm, {**options, "part": "auto"}, told, on_plan=planned)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if not threads:
        return first
    rank = {(dt, p): i for i, (dt, p, _) in enumerate(plans[0]["all"])}
    joined = first
    for k in sorted(shares):
        joined.records += shares[k].records
        joined.crashes += shares[k].crashes
        joined.notes += [note for note in shares[k].notes if note not in joined.notes]
        joined.hung = joined.hung or shares[k].hung
        joined.outputs.update(shares[k].outputs)
    joined.records.sort(key=lambda r: rank.get((r.dtype, r.property), len(rank)))
    joined.processes = len(threads) + 1
    if not options.get("diagnose", True) or joined.hung or not any(not crashed(r) for r in joined.failures):
        return joined
    prior = {(r.dtype, r.property): r for r in joined.records}
    final = _supervised(ref, norm, {**options, "part": None}, None, prior=prior)
    final.crashes = joined.crashes + final.crashes
    final.notes = joined.notes + [note for note in final.notes if note not in joined.notes]
    final.processes = joined.processes
    return final


def _supervised(
    ref: str,
    norm: str,
    options: dict[str, Any],
    progress,
    *,
    prior: dict[tuple[str, str], audit.Record] | None = None,
    on_plan=None,
) -> CheckReport:
    """One share of a check (or the whole) in supervised workers, a fresh one after each death;
    ``on_plan`` is told each worker's plan."""
    from normcheck import isolation as iso

    timeout = options.get("timeout")
    done: dict[tuple[str, str], audit.Record] = dict(prior or {})
    plan: dict[str, Any] | None = None
    crashes: list[dict[str, Any]] = []
    hung = None
    notes: list[str] = []

    def keep(r: audit.Record) -> None:
        done[(r.dtype, r.property)] = r
        if progress:
            progress(r)

    while True:
        report = None
        w = iso.Worker({"mode": "check", "target": ref, "norm": norm, "options": options, "prior": done}, timeout)
        try:
            for kind, msg in w.messages():
                if kind == iso.PLAN:
                    plan = msg
                    if on_plan is not None:
                        on_plan(msg)
                elif kind == iso.RECORD:
                    keep(msg)
                elif kind == iso.REPORT:
                    report = msg
                elif kind == iso.RAISE:
                    raise_from_worker(*msg)
            case = w.case
        finally:
            w.close()
        if report is not None:
            report.outputs = {id(report.records[i]): v for i, v in report.outputs.items()}
            report.crashes = crashes
            report.notes += notes
            return report
        death = w.death
        dtype, what = w.stage or ("", "setup")
        stub = Stub(plan, ref, options)
        if death.hung:
            hung = (
                f"the target did not return within {timeout:g} s (per-call timeout; {NEW_SIGNATURE_FACTOR:g} times that "
                "for inputs of a new shape); its worker process was killed and the target was not called again"
            )
            message = f"hang: {hung}"
        else:
            message = f"{CRASH}the target killed its worker process ({death.how})"
            if case is not None:
                message += f" on the case {case.describe()}"
        entry: dict[str, Any] = {
            "property": what,
            "dtype": dtype,
            "how": death.how,
            "signal": death.signal,
            "exit_code": death.exit_code,
            "stderr": list(death.stderr),
            "case": None if case is None else case.to_json(),
            "reproduced": None,
        }
        if what in ("setup", "probe", "diagnosis"):
            stage = {"setup": "loading or probing the target", "probe": f"the probe call at {dtype}"}.get(
                what, "the diagnosis of the failing cases"
            )
            notes.append(f"{stage} {'hung' if death.hung else f'killed the worker process ({death.how})'}")
            if what == "probe":
                for dt, p, _ in plan["order"] if plan else ():
                    if dt == dtype and (dt, p) not in done:
                        keep(skip_record(stub, norm, dt, p, f"not run: {notes[-1]}"))
            if what == "setup" and not done:
                keep(crash_record(stub, norm, dtype or "float32", "setup", message, case, plan))
        else:
            keep(crash_record(stub, norm, dtype, what, message, case, plan))
        if not death.hung:
            if case is not None and what not in ("setup", "diagnosis"):
                entry["reproduced"] = reproduces(ref, norm, dtype, what, case, options)
            crashes.append(entry)
        stop = death.hung or what in ("setup", "diagnosis") or plan is None or len(crashes) >= MAX_CRASHES
        if stop:
            reason = "the target hung" if death.hung else f"the target killed its worker process {len(crashes)} times"
            for dt, p, msg in plan["order"] if plan else ():
                if (dt, p) not in done:
                    keep(skip_record(stub, norm, dt, p, msg or f"not run: {reason}"))
            out = CheckReport(stub.label, norm, stub.framework, stub.form, options["profile"], options["seed"], [])
            rank = {(dt, p): k for k, (dt, p, _) in enumerate(plan["order"])} if plan else {}
            out.records = sorted(done.values(), key=lambda r: rank.get((r.dtype, r.property), -1))
            out.notes = [*(plan["notes"] if plan else []), *notes]
            out.hung, out.crashes = hung, crashes
            return out


class Stub:
    """The target as the records need it (label, framework, form) where no worker finished."""

    def __init__(self, plan, ref: str, options: dict[str, Any]) -> None:
        self.label = plan["label"] if plan else options.get("label") or ref
        self.framework = plan["framework"] if plan else options.get("framework") or "unknown"
        self.form = plan["form"] if plan else options.get("form") or "unknown"
        self.setup = plan["setup"] if plan else ""
        self.version = plan["version"] if plan else None


def crash_record(stub: Stub, norm: str, dtype: str, prop: str, message: str, case, plan) -> audit.Record:
    r = skip_record(stub, norm, dtype, prop, message)
    r.verdict, r.version = "error", stub.version
    if case is not None:
        r.counterexample = case.to_json()
        r.repro = case.repro("fn", setup=stub.setup)
    return r


def reproduces(ref: str, norm: str, dtype: str, prop: str, case, options: dict[str, Any]) -> bool | None:
    """Does ``case`` alone crash a fresh worker? None when that could not be told (the re-run raised)."""
    from normcheck import isolation as iso

    request = {"mode": "case", "target": ref, "norm": norm, "options": options, "dtype": dtype, "property": prop}
    request["case"] = case
    w = iso.Worker(request, options.get("timeout"))
    try:
        result = None
        for kind, _ in w.messages():
            if kind in (iso.RESULT, iso.RAISE):
                result = kind
    finally:
        w.close()
    if w.death is not None:
        return not w.death.hung
    return False if result == iso.RESULT else None


def raise_from_worker(kind: str, message: str, cause: str = ""):
    """A worker's exception, raised here: the target could not be checked at all (``cause``: the
    traceback of its cause in the worker, which ``--verbose`` shows)."""
    from normcheck.isolation import WorkerTraceback

    there = WorkerTraceback(cause.rstrip()) if cause else None
    if kind == "TargetError":
        raise TargetError(message) from there
    if kind == "ValueError":
        raise ValueError(message) from there
    raise RuntimeError(f"the check's worker process failed: {message.strip().splitlines()[-1]}") from WorkerTraceback(
        message.rstrip()
    )
