"""The report of a check (:class:`CheckReport`) and how it reads: the headline, the table, the
details of each failing property, the JSON document; and the records a check makes for checks that
did not run (:func:`skip_record`) or that it finished (:func:`finish_record`)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from normcheck.numtext import short

if TYPE_CHECKING:
    from normcheck import audit

__all__ = [
    "CRASH",
    "ORDER",
    "SMALL",
    "CheckReport",
    "crashed",
    "finish_record",
    "fmt",
    "not_applicable",
    "plain",
    "raised_on",
    "row",
    "row_header",
    "skip_record",
]

SMALL = 32  # counterexample arrays up to this many elements are printed in full
ORDER = {"fail": 0, "error": 1, "finding": 2, "pass": 3, "skip": 4}


CRASH = "crash: "  # the message of a check during which the target killed its worker process


def crashed(r: audit.Record) -> bool:
    return r.verdict == "error" and r.message.startswith(CRASH)


_NP_SCALAR = re.compile(
    r"np\.(?:float|int|uint|complex|longdouble|half|single|double)\d*\(([^()]*)\)|np\.(True|False)_"
)


def plain(text: str) -> str:
    """``text`` with NumPy scalar reprs as plain numbers: ``np.float64(nan)`` → ``nan``."""
    return _NP_SCALAR.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


def _clean_message(msg: str) -> str:
    msg = plain(msg)
    for prefix in ("raised BadOutput: ", "raised TargetHung: "):
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            return ("hang: " + rest) if "TargetHung" in prefix else rest
    return msg


def finish_record(r: audit.Record, target, setup: str, version) -> audit.Record:
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


def skip_record(target, norm: str, dtype: str, prop: str, message: str) -> audit.Record:
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


def raised_on(raises: dict[str, Any]) -> str:
    """ "<message>, smallest case: <case>" for a record's ``raises``."""
    from normcheck.case import Case

    try:
        return f"{raises['message']}; smallest case: {Case.from_json(raises['counterexample']).describe()}"
    except (ValueError, KeyError, TypeError):
        return str(raises.get("message", ""))


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
    processes: int = 1  # the worker processes its checks were split over (normcheck.check_parts)
    # every failure in one input regime (normcheck.diagnose.regimes.Confinement as JSON), else None
    confined: dict[str, Any] | None = None

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
        if self.confined:
            from normcheck.diagnose.regimes import Confinement

            c = Confinement(**self.confined)
            return f"DEVIATES {c.headline()}: {n} fail ({', '.join(props)}) in {self.seconds:.1f} s; {c.others()}"
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
        """One row per check that ran (or raised), then one line per reason the others were not applicable."""
        lines = [row_header()]
        lines += [row(r) for r in self.records if r.verdict != "skip"]
        lines += not_applicable([r for r in self.records if r.verdict == "skip"])
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
        for r in sorted(self.failures, key=lambda r: (r.dtype != "float32", ORDER[r.verdict])):
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
            elif self.crashes and all(crashed(r) for r in self.failures):
                out.append("diagnosis: none (the target crashed; nothing to compare)")
            else:
                out.append(f"diagnosis: {self._plain_answer()}")
        return "\n".join(out)

    def _plain_answer(self) -> str:
        """The answer across dtypes without a diagnosis: each deviating dtype's plain reason."""
        from normcheck.diagnose import answer

        status = self.dtype_status()
        bad = [dt for dt, st in status.items() if st in ("deviates", "raises")]
        return answer(status, {dt: self.plain_diagnosis(dt) for dt in bad}) or self.plain_diagnosis()

    def plain_diagnosis(self, dtype: str | None = None) -> str:
        fails = [r for r in self.failures if dtype is None or r.dtype == dtype]
        msgs = [r.message for r in fails]
        if fails and all(crashed(r) for r in fails):
            return "the target crashed its process on the cases tried; nothing to compare"
        if all(r.verdict == "error" for r in fails):
            return "the target raised on the cases tried; nothing to compare"
        if any("modified in place" in m for m in msgs):
            return "the target modifies its input in place"
        if any("output shape" in m or "output dtype" in m for m in msgs):
            return "the target returns the wrong shape or dtype (see above)"
        return "the output agrees with the reference; the deviation is in the property named above"

    def _details(self, r: audit.Record, printed: dict[str, str]) -> list[str]:
        tag = "FAIL" if r.verdict == "fail" else "CRASH" if crashed(r) else "ERROR"
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
            out.append(f"   observed {short(r.observed)} u·s, allowed {short(r.allowed, 6)} u·s (error-model units)")
        if r.verdict == "fail" and r.raises:  # it also raised, on other examples: both are reported
            out.append(f"   also raises when: {raised_on(r.raises)}")
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
            out.append(f"   input:        {fmt(case.x)}")
            for k in ("weight", "bias", "running_mean", "running_var"):
                a = getattr(case, k)
                if a is not None:
                    out.append(f"   {k + ':':<13} {fmt(a)}")
            got = self.outputs.get(id(r)) if r.property == "agreement" else None
            if got is not None:
                try:
                    with np.errstate(all="ignore"):
                        ref = case.reference().y
                    out.append(f"   reference:    {fmt(ref)}")
                    out.append(f"   target:       {fmt(got)}")
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
            "processes": self.processes,
            "dtypes": self.dtype_status(),
            "ran": len(self.ran),
            "examples": sum(r.examples for r in self.ran),
            "untested": self.untested_reason() if self.verdict == "untested" else None,
            "diagnosis": None if d is None else d.to_json(),
            "confined": self.confined,
        }
        return doc

    def __str__(self) -> str:
        return self.summary()


def fmt(a) -> str:
    a = np.asarray(a)
    with np.errstate(all="ignore"):
        text = np.array2string(a.astype(np.float64), precision=6, separator=", ", max_line_width=10_000)
    return " ".join(text.split())


def row_header() -> str:
    return f"  {'dtype':<9} {'property':<26} {'verdict':<8} {'observed':>9} {'allowed':>8} {'examples':>8} {'time':>7}"


def not_applicable(skipped: list[audit.Record]) -> list[str]:
    """The skipped checks, one line per reason: "  not applicable, 6 checks (float32, bfloat16):
    gradient_agreement, jvp, …: unsupported: numpy has no autodiff"."""
    groups: dict[str, list[audit.Record]] = {}
    for r in skipped:
        groups.setdefault(plain(r.message) or "no applicable example", []).append(r)
    out = []
    for why, rs in groups.items():
        dts = ", ".join(dict.fromkeys(r.dtype for r in rs))
        props = ", ".join(dict.fromkeys(r.property for r in rs))
        n = f"{len(rs)} check{'s' * (len(rs) != 1)}"
        out.append(f"  not applicable, {n} ({dts}): {props}: {why}")
    return out


def row(r: audit.Record) -> str:
    obs = "" if r.verdict in ("skip", "error") else short(r.observed)
    allowed = short(r.allowed, 6) if r.verdict in ("pass", "fail") and r.allowed else ""
    verdict = {"fail": "FAIL", "error": "ERROR"}.get(r.verdict, r.verdict)
    line = f"  {r.dtype:<9} {r.property:<26} {verdict:<8} {obs:>9} {allowed:>8} {r.examples:>8} {r.seconds:>6.1f}s"
    if r.verdict in ("skip", "error") and r.message:
        line += f"  {plain(r.message)[:90]}"
    return line
