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

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from normcheck import spec as _spec
from normcheck.profiles import Run
from normcheck.target import DEFAULT_TIMEOUT, Target, TargetError, TargetHung, repro_setup, wrap

if TYPE_CHECKING:  # loaded on first use: a check in a worker process starts before the audit's modules load here
    from normcheck import audit

__all__ = ["CheckReport", "TargetError", "assert_conforms", "check"]

SMALL = 32  # counterexample arrays up to this many elements are printed in full
_ORDER = {"fail": 0, "error": 1, "finding": 2, "pass": 3, "skip": 4}


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


@dataclass
class CheckReport:
    """The outcome of :func:`check` (see the module docstring)."""

    target: str
    norm: str
    framework: str
    form: str
    profile: str
    seed: int | None
    records: list[audit.Record]
    diagnosis: Any = None  # normcheck.diagnose.Diagnosis | None
    notes: list[str] = field(default_factory=list)
    hung: str | None = None
    seconds: float = 0.0
    started: float = 0.0
    argv: tuple[str, ...] = ()
    outputs: dict[int, Any] = field(default_factory=dict, repr=False)  # id(record) -> target output on its case
    # the deaths of the worker process the target ran in (:func:`check` isolates an importable
    # target): each {"property", "dtype", "how", "signal", "exit_code", "stderr", "case", "reproduced"}
    crashes: list[dict[str, Any]] = field(default_factory=list)
    isolation: str = "in-process"  # "worker": the target ran in a worker process; "in-process"

    # --- verdicts ------------------------------------------------------------------------------
    @property
    def failures(self) -> list[audit.Record]:
        """Records that fail or error, worst first."""
        return [r for r in self.records if r.verdict in ("fail", "error")]

    @property
    def ran(self) -> list[audit.Record]:
        """Records of checks that ran: a property judged on at least one example (pass or a
        registered finding; a failing record ran too, see :attr:`failures`)."""
        return [r for r in self.records if r.verdict in ("pass", "finding") and r.examples > 0]

    @property
    def tested(self) -> bool:
        """Did anything run? A check where every record was skipped (or drew no example) tested nothing."""
        return bool(self.ran or self.failures)

    @property
    def conforms(self) -> bool:
        """No failure, no hang, and something was tested: a check in which nothing ran is never a pass
        (``normcheck check`` exits 1 for it, as for a deviation: the target was not shown to conform;
        2 stays for a target that cannot be loaded or wrong arguments)."""
        return not self.failures and not self.hung and not self.crashes and self.tested

    def __bool__(self) -> bool:
        """``report.conforms``: ``assert normcheck.check(fn, norm)`` fails for a target that deviates,
        raises, hangs or was not tested."""
        return self.conforms

    @property
    def verdict(self) -> str:
        """One of "conforms", "deviates" (some property fails), "raises" (only errors), "crashes" (the
        target killed the process it ran in), "hangs" or "untested" (every check was skipped: nothing
        was tested)."""
        if self.crashes:
            return "crashes"
        if self.hung:
            return "hangs"
        if any(r.verdict == "fail" for r in self.records):
            return "deviates"
        if self.failures:
            return "raises"
        if not self.tested:
            return "untested"
        return "conforms"

    def dtype_status(self) -> dict[str, str]:
        """Each dtype checked (in order) -> "deviates", "raises", "conforms" or "untested"."""
        out: dict[str, str] = {}
        for dt in dict.fromkeys(r.dtype for r in self.records):
            rs = [r for r in self.records if r.dtype == dt]
            if any(r.verdict == "fail" for r in rs):
                out[dt] = "deviates"
            elif any(r.verdict == "error" for r in rs):
                out[dt] = "raises"
            elif any(r.verdict in ("pass", "finding") and r.examples > 0 for r in rs):
                out[dt] = "conforms"
            else:
                out[dt] = "untested"
        return out

    def untested_reason(self) -> str:
        """One line: "nothing was tested: all N checks were skipped (the most common reason)"."""
        skipped = [r for r in self.records if r.verdict == "skip" or (r.verdict == "pass" and not r.examples)]
        if not skipped:
            return "nothing was tested: no check ran"
        reasons = Counter(r.message or "no applicable example" for r in skipped)
        why, k = reasons.most_common(1)[0]
        share = "" if k == len(skipped) else f"{k} of them: "
        n = len(skipped)
        return f"nothing was tested: {'the' if n == 1 else 'all'} {n} check{'s' * (n != 1)} {'was' if n == 1 else 'were'} skipped ({share}{why})"

    @property
    def counterexamples(self) -> list[tuple[str, str, Any]]:
        """(property, dtype, shrunk Case) for every failing record with a counterexample."""
        from normcheck.case import Case

        out = []
        for r in self.failures:
            if r.counterexample:
                try:
                    out.append((r.property, r.dtype, Case.from_json(r.counterexample)))
                except ValueError:
                    continue
        return out

    # --- text ----------------------------------------------------------------------------------
    def headline(self) -> str:
        ran = self.ran
        skipped = len(self.records) - len(ran) - len(self.failures)
        v = self.verdict
        if v == "untested":
            return f"UNTESTED: {self.untested_reason()}"
        if v == "conforms":
            examples = sum(r.examples for r in ran)
            return (
                f"CONFORMS: {len(ran)} check{'s' * (len(ran) != 1)} ran ({examples:,} examples), "
                f"{skipped} not applicable, in {self.seconds:.1f} s{self._explained()}"
            )
        props = list(dict.fromkeys(r.property for r in self.failures))
        if v == "crashes":
            c = self.crashes[0]
            where = f"{c['property']} ({c['dtype']})" if c["dtype"] else c["property"]
            more = f" (and {len(self.crashes) - 1} more)" if len(self.crashes) > 1 else ""
            return f"CRASHES: the target killed its worker process ({c['how']}) during {where}{more}"
        if v == "hangs":
            return f"HANGS: {self.hung}"
        n = f"{len(props)} propert{'y' if len(props) == 1 else 'ies'}"
        if v == "raises":
            return f"RAISES: {n} end in an error: {self.failures[0].message}"
        return f"DEVIATES: {n} fail ({', '.join(props)}) in {self.seconds:.1f} s"

    def _explained(self) -> str:
        """``"; 5 checks met registered findings of torch: a, b"`` where some did (the framework's
        own deviations the target inherits, which the headline must not hide), else ``""``."""
        met: dict[str, int] = {}
        for r in self.records:
            for f in dict.fromkeys(
                [*([r.finding] if r.verdict == "finding" and r.finding else []), *(r.explained or {})]
            ):
                met[f] = met.get(f, 0) + 1
        if not met:
            return ""
        n = sum(1 for r in self.records if r.verdict == "finding" or r.explained)
        return f"; {n} check{'s' * (n != 1)} met registered findings of {self.framework}: {', '.join(met)}"

    def table(self) -> str:
        lines = [_row_header()]
        lines += [_row(r) for r in self.records]
        return "\n".join(lines)

    def summary(self, *, table: bool = True) -> str:
        """A compact text: per-property verdicts, then for each failing property its shrunk case
        (values when small), observed vs allowed error and repro, then the diagnosis."""
        head = f"normcheck check {self.target} as {self.norm} ({self.framework} {self.form})"
        out = [head, f"profile {self.profile}, seed {self.seed}" + "".join(f"; {n}" for n in self.notes)]
        if table:
            out += ["", self.table()]
        out += ["", self.headline()]
        shown: set[str] = set()
        printed: dict[str, str] = {}  # counterexample -> the property whose details showed it
        for r in sorted(self.failures, key=lambda r: (r.dtype != "float32", _ORDER[r.verdict])):
            if r.property in shown:
                continue
            shown.add(r.property)
            out += ["", *self._details(r, printed)]
        if self.failures:
            out.append("")
            if self.diagnosis is not None:
                out.append(f"diagnosis: {self.diagnosis.text}")
            elif self.hung:
                out.append("diagnosis: none (the target hung; it was not called again)")
            elif self.crashes and all(_crashed(r) for r in self.failures):
                out.append("diagnosis: none (the target crashed; nothing to compare)")
            else:
                out.append(f"diagnosis: {self._plain_answer()}")
        return "\n".join(out)

    def _plain_answer(self) -> str:
        """The answer across dtypes without a diagnosis: each deviating dtype's plain reason."""
        from normcheck.diagnose import answer

        status = self.dtype_status()
        bad = [dt for dt, st in status.items() if st in ("deviates", "raises")]
        return answer(status, {dt: self._plain_diagnosis(dt) for dt in bad}) or self._plain_diagnosis()

    def _plain_diagnosis(self, dtype: str | None = None) -> str:
        fails = [r for r in self.failures if dtype is None or r.dtype == dtype]
        msgs = [r.message for r in fails]
        if fails and all(_crashed(r) for r in fails):
            return "the target crashed its process on the cases tried; nothing to compare"
        if all(r.verdict == "error" for r in fails):
            return "the target raised on the cases tried; nothing to compare"
        if any("modified in place" in m for m in msgs):
            return "the target modifies its input in place"
        if any("output shape" in m or "output dtype" in m for m in msgs):
            return "the target returns the wrong shape or dtype (see above)"
        return "the output agrees with the reference; the deviation is in the property named above"

    def _details(self, r: audit.Record, printed: dict[str, str]) -> list[str]:
        tag = "FAIL" if r.verdict == "fail" else "CRASH" if _crashed(r) else "ERROR"
        out = [f"── {tag} {r.property} ({r.dtype}): {r.message}"]
        crash = next((c for c in self.crashes if (c["property"], c["dtype"]) == (r.property, r.dtype)), None)
        if crash is not None:
            if crash["reproduced"] is not None:
                again = "yes" if crash["reproduced"] else "no (it depends on the calls before it)"
                out.append(f"   the case alone, re-run in a fresh worker, crashes again: {again}")
            if crash["stderr"]:
                out.append("   the worker's last stderr lines:")
                out += [f"     | {line}" for line in crash["stderr"]]
        if r.verdict == "fail" and math.isfinite(r.observed) and "u·s" not in r.message:
            out.append(f"   observed {r.observed:.3g} u·s, allowed {r.allowed:g} u·s (error-model units)")
        if r.verdict == "fail" and r.raises:  # it also raised, on other examples: both are reported
            out.append(f"   also raises when: {_raised_on(r.raises)}")
        if not r.counterexample:
            return out
        key = repr(r.counterexample)
        what = "the case it was on" if crash is not None else "shrunk case"
        if key in printed:
            out.append(f"   {what}: the same as {printed[key]}'s above")
            return out
        printed[key] = r.property
        from normcheck.case import Case

        try:
            case = Case.from_json(r.counterexample)
        except ValueError:
            return out
        out.append(f"   {what}: {case.describe()}")
        if case.x.size <= SMALL:
            out.append(f"   input:        {_fmt(case.x)}")
            for k in ("weight", "bias", "running_mean", "running_var"):
                a = getattr(case, k)
                if a is not None:
                    out.append(f"   {k + ':':<13} {_fmt(a)}")
            got = self.outputs.get(id(r)) if r.property == "agreement" else None
            if got is not None:
                try:
                    with np.errstate(all="ignore"):
                        ref = case.reference().y
                    out.append(f"   reference:    {_fmt(ref)}")
                    out.append(f"   target:       {_fmt(got)}")
                except ValueError:
                    pass
        if r.repro:
            out.append("   repro:")
            out += [f"     {line}" for line in r.repro.splitlines()]
        return out

    # --- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """An audit document (``normcheck.audit/1``) with an extra ``"check"`` section."""
        from normcheck import audit

        doc = audit.document(self.records, profile=self.profile, seed=self.seed, started=self.started, argv=self.argv)
        doc["run"]["seconds"] = round(self.seconds, 2)
        d = self.diagnosis
        doc["check"] = {
            "target": self.target,
            "norm": self.norm,
            "framework": self.framework,
            "form": self.form,
            "verdict": self.verdict,
            "conforms": self.conforms,
            "notes": list(self.notes),
            "hung": self.hung,
            "crashes": list(self.crashes),
            "isolation": self.isolation,
            "dtypes": self.dtype_status(),
            "ran": len(self.ran),
            "examples": sum(r.examples for r in self.ran),
            "untested": self.untested_reason() if self.verdict == "untested" else None,
            "diagnosis": None if d is None else d.to_json(),
        }
        return doc

    def __str__(self) -> str:
        return self.summary()


def _fmt(a) -> str:
    a = np.asarray(a)
    with np.errstate(all="ignore"):
        text = np.array2string(a.astype(np.float64), precision=6, separator=", ", max_line_width=10_000)
    return " ".join(text.split())


def _row_header() -> str:
    return f"  {'dtype':<9} {'property':<26} {'verdict':<8} {'observed':>9} {'allowed':>8} {'examples':>8} {'time':>7}"


def _row(r: audit.Record) -> str:
    obs = "" if r.verdict in ("skip", "error") else f"{r.observed:.3g}"
    allowed = f"{r.allowed:g}" if r.verdict in ("pass", "fail") and r.allowed else ""
    verdict = {"fail": "FAIL", "error": "ERROR"}.get(r.verdict, r.verdict)
    line = f"  {r.dtype:<9} {r.property:<26} {verdict:<8} {obs:>9} {allowed:>8} {r.examples:>8} {r.seconds:>6.1f}s"
    if r.verdict in ("skip", "error") and r.message:
        line += f"  {r.message[:90]}"
    return line


# --- the check ---------------------------------------------------------------------------------------


CRASH = "crash: "  # the message of a check during which the target killed its worker process


def _crashed(r: audit.Record) -> bool:
    return r.verdict == "error" and r.message.startswith(CRASH)


def _clean_message(msg: str) -> str:
    for prefix in ("raised BadOutput: ", "raised TargetHung: "):
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            return ("hang: " + rest) if "TargetHung" in prefix else rest
    return msg


def _finish(r: audit.Record, target: Target, setup: str, version) -> audit.Record:
    r.impl = r.api = target.label
    r.framework, r.version, r.form = target.framework, version, target.form
    r.message = _clean_message(r.message)
    if r.counterexample:
        from normcheck.case import Case

        try:
            r.repro = Case.from_json(r.counterexample).repro("fn", setup=setup)
        except ValueError:
            pass
    return r


def _skip(target: Target, norm: str, dtype: str, prop: str, message: str) -> audit.Record:
    from normcheck import audit

    return audit.Record(
        impl=target.label,
        framework=target.framework,
        version=None,
        norm=norm,
        form=target.form,
        layout="channels_first",
        mode="eager",
        api=target.label,
        dtype=dtype,
        property=prop,
        verdict="skip",
        message=message,
    )


def check(
    fn,
    norm: str,
    framework: str | None = None,
    *,
    form: str | None = None,
    profile: str = "default",
    seed: int | None = 0,
    max_examples: int | None = None,
    dtypes=None,
    properties=None,
    timeout: float | None = DEFAULT_TIMEOUT,
    diagnose: bool = True,
    label: str | None = None,
    progress: Callable[[audit.Record], None] | None = None,
    argv=(),
    axes=None,
    init: str | None = None,
    args: dict[str, Any] | None = None,
    no_bias: bool = False,
    no_affine: bool = False,
    ranks=None,
    shape=None,
    in_process: bool = False,
    eager: bool = False,
) -> CheckReport:
    """Check ``fn`` (a callable, a module class, or a ``"module:attr"`` / ``"file.py:attr"``
    reference) as an implementation of ``norm``; see the module docstring.

    ``framework``/``form`` are inferred when not given; ``profile``/``seed``/``max_examples`` drive
    Hypothesis (profiles of :mod:`normcheck.strategies`); ``dtypes`` overrides the profile's
    dtypes; ``properties`` restricts the property suite; ``timeout`` is the per-call limit in
    seconds; ``axes`` (a tuple of input axes) judges an axis-set variant: the statistics over those
    axes instead of the spec's set S (``axes=(1,)`` with ``"layer_norm"``: ConvNeXt's channels-first
    LayerNorm, called with ``normalized_shape`` = the sizes of those axes). ``init``, ``args``,
    ``no_bias``, ``no_affine``, ``ranks`` and ``shape`` say how a module class is constructed and
    which inputs the target takes (:func:`~normcheck.target.wrap`); a JAX function runs under
    ``jax.jit`` as its users run it, op by op with ``eager=True``. Raises ``ValueError`` for an
    unknown profile or dtype, :class:`~normcheck.target.TargetError` for a target that cannot be
    checked at all (not callable, an unsupported layer kind, an unknown norm or property); anything
    the target itself does (raising, returning garbage, hanging, killing its process) is reported,
    never raised.

    An importable target (a reference string, or a function or class its module's name and qualified
    name load) runs in a worker process (:mod:`normcheck.isolation`): a crash of that process (a
    signal, ``abort()``, ``os._exit``, ``sys.exit`` in the target, the OOM killer) is the verdict
    "crashes" with the case it was on, and the other checks go on in a fresh worker; a hang is ended
    by killing the worker. ``in_process=True`` (or a target no other process can load) runs it here,
    guarded by a thread (the report's ``isolation`` says which).
    """
    from normcheck import isolation

    t0_wall, t0 = time.time(), time.perf_counter()
    _validate(norm, None, profile, dtypes)  # the properties where the check runs (their modules load there)
    options = dict(
        framework=framework,
        form=form,
        profile=profile,
        seed=seed,
        max_examples=max_examples,
        dtypes=dtypes,
        properties=properties,
        timeout=timeout,
        diagnose=diagnose,
        label=label,
        argv=argv,
        axes=axes,
        init=init,
        args=args,
        no_bias=no_bias,
        no_affine=no_affine,
        ranks=ranks,
        shape=shape,
        eager=eager,
    )
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
        report = _supervise(ref, norm, options, progress)
        report.isolation = "worker"
    report.started, report.argv = t0_wall, tuple(argv)
    report.seconds = time.perf_counter() - t0
    return report


def _validate(norm: str, properties, profile: str, dtypes) -> None:
    from normcheck.dtypes import FLOAT_DTYPES
    from normcheck.profiles import PROFILES

    if norm not in _spec.names():
        raise TargetError(f"unknown norm {norm!r}; known: {', '.join(_spec.names())}")
    if properties:
        from normcheck.properties import PROPERTIES

        unknown = [p for p in properties if p not in PROPERTIES]
        if unknown:
            raise TargetError(f"unknown property {', '.join(unknown)}; known: {', '.join(PROPERTIES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    bad = [d for d in dtypes or () if d not in FLOAT_DTYPES]
    if bad:
        raise ValueError(f"unknown dtype {', '.join(map(str, bad))}; known: {', '.join(FLOAT_DTYPES)}")


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
    ``progress``; ``events``: told the plan and each stage (:class:`Events`)."""
    from normcheck import adapters, audit
    from normcheck import diagnose as _diagnose
    from normcheck.properties import PROPERTIES

    o = options
    t0 = time.perf_counter()
    prior = prior or {}
    events = events or Events()
    _validate(norm, o.get("properties"), o.get("profile", "default"), o.get("dtypes"))
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
        events.plan(
            {
                "label": target.label,
                "framework": target.framework,
                "form": target.form,
                "notes": list(target.notes),
                "setup": setup,
                "version": version,
                "order": order,
            }
        )

        def add(r: audit.Record) -> None:
            report.records.append(r)
            if progress:
                progress(r)

        for dt in run_dtypes:
            todo = [p for p in props if (dt, p) not in prior]
            why = None
            if dt != "float32" and todo:
                events.stage(dt, "probe")
                why = _probe(target, norm, dt, axes)
            for p in props:
                if (dt, p) in prior:
                    report.records.append(prior[(dt, p)])
                elif target.hung:
                    add(_skip(target, norm, dt, p, "not run: the target hung"))
                elif why:
                    add(_skip(target, norm, dt, p, why))
                else:
                    events.stage(dt, p)
                    r = audit.run_check(
                        impl, p, dt, config, strategy=strategy_for(dt) if strategy_for else None, keep_errors=True
                    )
                    add(_finish(r, target, setup, version))
            if dt == "float32":
                for name, msg in identities:
                    if (dt, name) in prior:
                        report.records.append(prior[(dt, name)])
                    else:
                        add(_skip(target, norm, dt, name, msg))
        if target.hung:
            report.hung = target.hung
            for r in report.records:
                if r.message.startswith("hang: ") or "TargetHung" in r.message:
                    r.verdict = "error"
        events.stage("", "diagnosis")
        _outputs(report, target)
        if o.get("diagnose", True) and _diagnosable(report) and not target.hung:
            report.diagnosis = _run_diagnosis(report, target, _diagnose, seed)
        if report.diagnosis is not None:
            for r in report.failures:
                if not _crashed(r):
                    r.diagnosis = report.diagnosis.text
    report.seconds = time.perf_counter() - t0
    return report


def _diagnosable(report: CheckReport) -> bool:
    return any(not _crashed(r) for r in report.failures)


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


#: Deaths of the worker process after which the checks not yet run are skipped, not retried.
MAX_CRASHES = 3


def _supervise(ref: str, norm: str, options: dict[str, Any], progress) -> CheckReport:
    """:func:`run_checks` in worker processes (:mod:`normcheck.isolation`): the records as they come;
    at a worker's death a crash (or hang) record for the check and case it was on, then a fresh
    worker for the checks left (a hang, or :data:`MAX_CRASHES` deaths: the rest are not run)."""
    from normcheck import isolation as iso

    timeout = options.get("timeout")
    done: dict[tuple[str, str], audit.Record] = {}
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
                elif kind == iso.RECORD:
                    keep(msg)
                elif kind == iso.REPORT:
                    report = msg
                elif kind == iso.RAISE:
                    _raise(*msg)
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
        stub = _Stub(plan, ref, options)
        if death.hung:
            hung = (
                f"the target did not return within {timeout:g} s (per-call timeout); its worker process was "
                "killed and the target was not called again"
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
                        keep(_skip(stub, norm, dt, p, f"not run: {notes[-1]}"))
            if what == "setup" and not done:
                keep(_crash_record(stub, norm, dtype or "float32", "setup", message, case, plan))
        else:
            keep(_crash_record(stub, norm, dtype, what, message, case, plan))
        if not death.hung:
            if case is not None and what not in ("setup", "diagnosis"):
                entry["reproduced"] = _reproduces(ref, norm, dtype, what, case, options)
            crashes.append(entry)
        stop = death.hung or what in ("setup", "diagnosis") or plan is None or len(crashes) >= MAX_CRASHES
        if stop:
            reason = "the target hung" if death.hung else f"the target killed its worker process {len(crashes)} times"
            for dt, p, msg in plan["order"] if plan else ():
                if (dt, p) not in done:
                    keep(_skip(stub, norm, dt, p, msg or f"not run: {reason}"))
            out = CheckReport(stub.label, norm, stub.framework, stub.form, options["profile"], options["seed"], [])
            rank = {(dt, p): k for k, (dt, p, _) in enumerate(plan["order"])} if plan else {}
            out.records = sorted(done.values(), key=lambda r: rank.get((r.dtype, r.property), -1))
            out.notes = [*(plan["notes"] if plan else []), *notes]
            out.hung, out.crashes = hung, crashes
            return out


class _Stub:
    """The target as the records need it (label, framework, form) where no worker finished."""

    def __init__(self, plan, ref: str, options: dict[str, Any]) -> None:
        self.label = plan["label"] if plan else options.get("label") or ref
        self.framework = plan["framework"] if plan else options.get("framework") or "unknown"
        self.form = plan["form"] if plan else options.get("form") or "unknown"
        self.setup = plan["setup"] if plan else ""
        self.version = plan["version"] if plan else None


def _crash_record(stub: _Stub, norm: str, dtype: str, prop: str, message: str, case, plan) -> audit.Record:
    r = _skip(stub, norm, dtype, prop, message)
    r.verdict, r.version = "error", stub.version
    if case is not None:
        r.counterexample = case.to_json()
        r.repro = case.repro("fn", setup=stub.setup)
    return r


def _reproduces(ref: str, norm: str, dtype: str, prop: str, case, options: dict[str, Any]) -> bool | None:
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


def _raise(kind: str, message: str, cause: str = ""):
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


def _outputs(report: CheckReport, target: Target) -> None:
    """The target's output on each small counterexample (for the summary), one call each."""
    from normcheck.case import Case

    seen: dict[str, Any] = {}
    for r in report.failures:
        if not r.counterexample or target.hung or _crashed(r):  # never call it on a case that crashed it
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


def _raised_on(raises: dict[str, Any]) -> str:
    """ "<message>, smallest case: <case>" for a record's ``raises``."""
    from normcheck.case import Case

    try:
        return f"{raises['message']}; smallest case: {Case.from_json(raises['counterexample']).describe()}"
    except (ValueError, KeyError, TypeError):
        return str(raises.get("message", ""))


def _run_diagnosis(report: CheckReport, target: Target, module, seed):
    """Diagnose each deviating dtype on its own failing cases (float16-only failures never enter
    float32's diagnosis), then join them into one answer (:func:`normcheck.diagnose.combine`)."""
    from normcheck.case import Case

    status = report.dtype_status()
    bad = [dt for dt, st in status.items() if st in ("deviates", "raises")]
    per: dict[str, Any] = {}
    budget = max(4.0, 12.0 / max(len(bad), 1))  # seconds of fresh cases per dtype
    for dt in bad:
        fails = [r for r in report.failures if r.dtype == dt and not _crashed(r)]
        cases = []
        for r in fails:
            if r.counterexample:
                try:
                    cases.append(Case.from_json(r.counterexample))
                except ValueError:
                    continue
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
                budget_s=budget,
                properties=list(dict.fromkeys(r.property for r in fails)),
                strategy=strategy,
                running=bool(getattr(target, "running_stats", True)),
            )
            if d is None and any(r.property.startswith("gradient_") for r in fails):
                d = module.diagnose_gradient(_user_impl(target, report.norm), report.norm, cases, dtype=dt)
        except Exception as e:  # the diagnosis must never turn a report into a crash
            report.notes.append(f"the diagnosis could not run: {type(e).__name__}: {e}".splitlines()[0])
            continue
        if d is not None:
            per[dt] = d
    texts = {dt: per[dt].text if dt in per else report._plain_diagnosis(dt) for dt in bad}
    return module.combine(per, status, texts)


def assert_conforms(fn, norm: str, framework: str | None = None, **settings) -> CheckReport:
    """Check ``fn`` as ``norm`` (see :func:`check`; ``profile`` defaults to "ci", derandomized) and
    raise ``AssertionError(report.summary())`` unless it conforms. Returns the report.
    :func:`normcheck.testing.assert_conforms` is the same with its parameters spelled out."""
    __tracebackhide__ = True
    settings.setdefault("profile", "ci")
    report = check(fn, norm, framework, **settings)
    if not report.conforms:
        raise AssertionError(report.summary())
    return report
