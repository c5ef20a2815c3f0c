"""Check a user's norm implementation: is it right, and if not, what exactly is wrong.

:func:`check` runs every property of :mod:`normcheck.properties` that applies to the claimed norm
on the target (a function with the norm's canonical signature, or a torch-style module class; see
:mod:`normcheck.target`), each driven by Hypothesis through :func:`normcheck.audit.run_check`:
float32 first, then the profile's other dtypes where a probe call shows the target accepts them.
The spec identities need a second norm from the same implementation and are reported as skipped.
For deviations it keeps the shrunk counterexample and a repro snippet, then diagnoses the failing
cases against the catalogue of known variants (:mod:`normcheck.diagnose`).

The result is a :class:`CheckReport`: ``.conforms``, ``.verdict``, ``.records`` (audit
:class:`~normcheck.audit.Record` objects), ``.diagnosis``, ``.summary()`` (human-readable) and
``.to_json()`` (an audit document, schema ``normcheck.audit/1``, so ``normcheck report`` and
:func:`normcheck.report.write_html` render it; it carries an extra ``"check"`` section).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from normcheck import check_parts
from normcheck import spec as _spec
from normcheck.check_options import CheckOptions, validate_norm
from normcheck.check_report import SMALL, CheckReport, crashed, finish_record, skip_record
from normcheck.check_supervisor import supervise
from normcheck.profiles import Run
from normcheck.target import DEFAULT_TIMEOUT, Target, TargetError, TargetHung, repro_setup, wrap

if TYPE_CHECKING:  # loaded on first use: a check in a worker process starts before the audit's modules load here
    from normcheck import audit

__all__ = ["CheckOptions", "CheckReport", "Events", "TargetError", "check", "rerun_case", "run_checks", "validate_norm"]


def _dtypes(profile: str, dtypes) -> tuple[str, ...]:
    if dtypes:
        chosen = tuple(dtypes)
    else:
        chosen = Run(profile).dtypes
    return tuple(sorted(dict.fromkeys(chosen), key=lambda d: d != "float32"))  # float32 first


def _probe(target: Target, norm: str, dtype: str, axes=None) -> str | None:
    """None if the target accepts ``dtype`` inputs, else why not (one line)."""
    from normcheck.case import fixed_cases

    case = target.probe_case(dtype) or fixed_cases(norm, dtype, axes=axes)[0]  # within --rank/--shape/--arg
    try:
        target(case.x.copy(), **case.kwargs())
    except TargetHung:
        return "the target hung"
    except Exception as e:
        first = f"{type(e).__name__}: {e}".strip().splitlines()[0][:200]
        return f"the target does not accept {dtype} inputs (a probe call raised {first})"
    return None


def check(
    fn,
    norm: str,
    framework: str | None = None,
    options: CheckOptions | None = None,
    *,
    progress: Callable[[audit.Record], None] | None = None,
    **settings: Any,
) -> CheckReport:
    """Check ``fn`` (a callable, a module class, or a ``"module:attr"`` / ``"file.py:attr"``
    reference) as an implementation of ``norm``; see the module docstring.

    ``framework`` is inferred when not given. ``options`` (a :class:`CheckOptions`) says what is
    drawn, how the target is built and called, and where it runs; ``settings`` are its fields as
    keywords, overriding ``options`` (``check(fn, "layer_norm", profile="ci", dtypes=["float32"])``).
    ``progress`` is called with each record as it comes. Raises ``ValueError`` for a bad setting (an
    unknown norm, profile, dtype or property; :class:`CheckOptions`), ``TypeError`` for an unknown
    option name, :class:`~normcheck.target.TargetError` for a target that cannot be checked at all
    (not callable, an unsupported layer kind); anything the target itself does (raising, returning
    garbage, hanging, killing its process) is reported, never raised.

    An importable target (a reference string, or a function or class its module's name and qualified
    name load) runs in a worker process (:mod:`normcheck.isolation`): a crash of that process (a
    signal, ``abort()``, ``os._exit``, ``sys.exit`` in the target, the OOM killer) is the verdict
    "crashes" with the case it was on, and the other checks go on in a fresh worker; a hang is ended
    by killing the worker. ``in_process=True`` (or a target no other process can load) runs it here,
    guarded by a thread (the report's ``isolation`` says which).
    """
    from normcheck import isolation

    t0_wall, t0 = time.time(), time.perf_counter()
    opts = (options or CheckOptions()).replace(**settings)
    validate_norm(norm, opts.properties)  # the properties where the check runs (their modules load there)
    in_process, label = opts.in_process, opts.label
    options = {"framework": framework, **opts.settings()}
    del options["in_process"]
    ref, why = (None, "--in-process") if in_process else isolation.importable_ref(fn)
    if ref is not None:
        import pickle

        try:
            pickle.dumps(options)
        except Exception as e:
            ref, why = None, f"its options cannot be sent to a worker process ({type(e).__name__})"
    if ref is None:
        report = run_checks(fn, norm, progress=progress, **options)
        if not in_process:
            report.notes.append(f"ran in this process, not a worker ({why}): a crash of the target ends it")
    else:
        if not isinstance(fn, str) and label is None:
            from normcheck.target import describe

            options["label"] = describe(fn)
        report = supervise(ref, norm, options, progress)
        report.isolation = "worker"
    report.started = t0_wall
    report.seconds = time.perf_counter() - t0
    return report


class Events:
    """What :func:`run_checks` tells as it goes (a worker process sends it to its supervisor):
    ``plan`` once the target is loaded, ``stage`` before each step that calls the target."""

    def plan(self, info: dict[str, Any]) -> None:
        """The target's label, framework, form, notes, repro setup and the checks in order
        (``order``: (dtype, property, message of a skip known in advance or None))."""

    def stage(self, dtype: str, what: str) -> None:
        """About to run ``what`` (a property, "probe", "setup" or "diagnosis") at ``dtype``."""


def _wrap(fn, norm: str, o: dict[str, Any]) -> Target:
    axes = o.get("axes")
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(int(a) for a in axes)
    return wrap(
        fn,
        norm,
        framework=o.get("framework"),
        form=o.get("form"),
        timeout=o.get("timeout", DEFAULT_TIMEOUT),
        label=o.get("label"),
        init=o.get("init"),
        args=o.get("args"),
        no_bias=o.get("no_bias", False),
        no_affine=o.get("no_affine", False),
        ranks=o.get("ranks"),
        shape=o.get("shape"),
        axes=axes,
        eager=o.get("eager", False),
    )


def run_checks(
    fn,
    norm: str,
    *,
    progress: Callable[[audit.Record], None] | None = None,
    prior: dict[tuple[str, str], audit.Record] | None = None,
    events: Events | None = None,
    **options,
) -> CheckReport:
    """:func:`check`'s work in this process (its ``options``). ``prior``: records of checks already
    run elsewhere (by (dtype, property)): kept as they are, not run again, not passed to
    ``progress``; ``events``: told the plan and each stage (:class:`Events`). The option ``part``
    (k, n) runs only the k-th of n shares (:func:`normcheck.check_parts.assign`) and leaves the
    diagnosis to the supervisor; ``"auto"``: the first share of as many as the target's framework
    runs in (:func:`normcheck.check_parts.processes`), told in the plan's ``parts``."""
    from normcheck import adapters, audit
    from normcheck import diagnose as _diagnose
    from normcheck.properties import PROPERTIES

    o = options
    t0 = time.perf_counter()
    prior = prior or {}
    events = events or Events()
    validate_norm(norm, o.get("properties"))
    profile, seed, properties = o.get("profile", "default"), o.get("seed", 0), o.get("properties")
    props = list(properties or PROPERTIES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events.stage("", "setup")
        target = _wrap(fn, norm, o)
        axes = target.axes
        ref = fn if isinstance(fn, str) else None
        setup = repro_setup(target, ref)
        version = adapters.get(target.framework).version()
        s = _spec.get(norm)
        run_dtypes = _dtypes(profile, o.get("dtypes"))
        config = Run(profile, seed=seed, max_examples=o.get("max_examples"))

        strategy_for = None
        if target.strategy("float32") is not None:  # axes, ranks, shape, pinned arguments (validated by wrap)

            def strategy_for(dt):
                return target.strategy(dt)

        impl = _user_impl(target, norm, dtypes=run_dtypes, running_stats=s.has_running_stats and target.running_stats)
        report = CheckReport(
            target.label, norm, target.framework, target.form, profile, seed, [], notes=list(target.notes)
        )
        identities = []
        if properties is None and axes is None:
            for ident in s.identities:
                msg = f"needs {ident.rhs['norm']} from the same implementation (a check has one target)"
                identities.append((f"identity:{ident.name}", msg))
        order = []
        for dt in run_dtypes:
            order += [(dt, p, None) for p in props]
            order += [(dt, name, msg) for name, msg in identities if dt == "float32"]
        part = o.get("part")  # (k, n): this process runs the k-th of n shares; "auto": its framework's
        if part == "auto":
            part = (0, check_parts.processes(target.framework, o.get("jobs")))
        k, n = part or (0, 1)
        owner = check_parts.assign([(dt, p) for dt, p, msg in order if msg is None], n)
        mine = [(dt, p, msg) for dt, p, msg in order if owner.get((dt, p), 0) == k]
        events.plan(
            {
                "label": target.label,
                "framework": target.framework,
                "form": target.form,
                "notes": list(target.notes),
                "setup": setup,
                "version": version,
                "order": mine,
                "all": order,
                "parts": n,
            }
        )

        def add(r: audit.Record) -> None:
            report.records.append(r)
            if progress:
                progress(r)

        for dt in run_dtypes:
            todo = [p for p in props if (dt, p) not in prior and owner[(dt, p)] == k]
            why = None
            if dt != "float32" and todo:
                events.stage(dt, "probe")
                why = _probe(target, norm, dt, axes)
            for p in props:
                if (dt, p) in prior:
                    report.records.append(prior[(dt, p)])
                elif owner[(dt, p)] != k:  # another process's share
                    continue
                elif target.hung:
                    add(skip_record(target, norm, dt, p, "not run: the target hung"))
                elif why:
                    add(skip_record(target, norm, dt, p, why))
                else:
                    events.stage(dt, p)
                    r = audit.run_check(
                        impl, p, dt, config, strategy=strategy_for(dt) if strategy_for else None, keep_errors=True
                    )
                    add(finish_record(r, target, setup, version))
            if dt == "float32" and k == 0:
                for name, msg in identities:
                    if (dt, name) in prior:
                        report.records.append(prior[(dt, name)])
                    else:
                        add(skip_record(target, norm, dt, name, msg))
        if target.hung:
            report.hung = target.hung
            for r in report.records:
                if r.message.startswith("hang: ") or "TargetHung" in r.message:
                    r.verdict = "error"
        if n > 1:  # a share: the supervisor joins the shares, then diagnoses them together
            report.seconds = time.perf_counter() - t0
            return report
        events.stage("", "diagnosis")
        _outputs(report, target)
        if o.get("diagnose", True) and _diagnosable(report) and not target.hung:
            report.confined = _confined(report, target, impl, seed)
            report.diagnosis = _run_diagnosis(report, target, _diagnose, seed)
        if report.diagnosis is not None:
            for r in report.failures:
                if not crashed(r):
                    r.diagnosis = report.diagnosis.text
    report.seconds = time.perf_counter() - t0
    return report


def _confined(report: CheckReport, target: Target, impl, seed) -> dict[str, Any] | None:
    """Where every failure of a deviating check lies in one input regime: its
    :class:`~normcheck.diagnose.regimes.Confinement` as JSON (None otherwise, or when it cannot be told)."""
    from normcheck.diagnose.regimes import confinement

    if report.verdict != "deviates":
        return None
    try:
        options = target.case_options() if callable(getattr(target, "case_options", None)) else {}
        found = confinement(impl, report.norm, report.failures, seed=0 if seed is None else seed, options=options,
                            axes=getattr(target, "axes", None))  # fmt: skip
    except Exception as e:  # never turn a report into a crash
        report.notes.append(f"the regime sweep could not run: {type(e).__name__}: {e}".splitlines()[0])
        return None
    return None if found is None else found.to_json()


def _diagnosable(report: CheckReport) -> bool:
    return any(not crashed(r) for r in report.failures)


def rerun_case(fn, norm: str, dtype: str, prop: str, case, **options) -> None:
    """Run property ``prop`` of the target (loaded as :func:`check` loads it) on ``case`` alone: a
    crashing case, re-run in a fresh worker to see whether it crashes by itself."""
    from normcheck.properties import PROPERTIES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = _wrap(fn, norm, options)
        s = _spec.get(norm)
        impl = _user_impl(target, norm, dtypes=(dtype,), running_stats=s.has_running_stats and target.running_stats)
        if prop in PROPERTIES:
            PROPERTIES[prop](impl, case)
        else:
            case.call(target)


def _outputs(report: CheckReport, target: Target) -> None:
    """The target's output on each small counterexample (for the summary), one call each."""
    from normcheck.case import Case

    seen: dict[str, Any] = {}
    for r in report.failures:
        if not r.counterexample or target.hung or crashed(r):  # never call it on a case that crashed it
            continue
        key = repr(r.counterexample)
        if key not in seen:
            try:
                case = Case.from_json(r.counterexample)
                seen[key] = None if case.x.size > SMALL else case.call(target).y
            except Exception:
                seen[key] = None
        if seen[key] is not None:
            report.outputs[id(r)] = seen[key]


def _user_impl(target: Target, norm: str, **kw):
    """The target as the Impl the properties and autodiff drive (framework "user", running on its
    own framework, whose registered findings apply to it)."""
    from normcheck.adapters.base import Impl

    return Impl("user", norm, target.form, target, api=target.label, runs_on=target.framework, **kw)


def _run_diagnosis(report: CheckReport, target: Target, module, seed):
    """Diagnose each deviating dtype on its own failing cases (float16-only failures never enter
    float32's diagnosis), then join them into one answer (:func:`normcheck.diagnose.combine`)."""
    from normcheck.case import Case

    status = report.dtype_status()
    bad = [dt for dt, st in status.items() if st in ("deviates", "raises")]
    per: dict[str, Any] = {}
    extra = max(16, 40 // max(len(bad), 1))  # fresh cases per dtype: a count, so the seed alone decides the text
    for dt in bad:
        fails = [r for r in report.failures if r.dtype == dt and not crashed(r)]
        cases, grads = [], []  # every failing record's case; the gradient properties' cases
        for r in fails:
            if r.counterexample:
                try:
                    cases.append(Case.from_json(r.counterexample))
                except ValueError:
                    continue
                if r.property.startswith("gradient_") or r.property == "jvp":
                    grads.append(cases[-1])
        if not cases:
            continue
        try:
            strategy = target.strategy(dt) if callable(getattr(target, "strategy", None)) else None
            d = module.diagnose(
                target,
                report.norm,
                cases,
                dtype=dt,
                seed=0 if seed is None else seed,
                extra=extra,
                properties=list(dict.fromkeys(r.property for r in fails)),
                strategy=strategy,
                running=bool(getattr(target, "running_stats", True)),
            )
            if grads and d is None:
                d = module.diagnose_gradient(_user_impl(target, report.norm), report.norm, cases, dtype=dt)
            elif grads:  # the gradients as a family of their own, on the cases whose output is right
                g = module.gradient_family(_user_impl(target, report.norm), target, report.norm, grads, dtype=dt)
                d = d if g is None else module.families.with_gradients(d, g)
        except Exception as e:  # the diagnosis must never turn a report into a crash
            report.notes.append(f"the diagnosis could not run: {type(e).__name__}: {e}".splitlines()[0])
            continue
        if d is not None:
            per[dt] = d
    texts = {dt: per[dt].text if dt in per else report.plain_diagnosis(dt) for dt in bad}
    return module.combine(per, status, texts)
