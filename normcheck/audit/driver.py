"""Driving one property on one implementation at one dtype with Hypothesis: every example's
observed error (model units) is recorded; a deviation a registered finding covers is counted and
exploration goes on; a new deviation is shrunk to its smallest counterexample. A seeded (or
derandomized) run draws a norm's examples once per process and replays them to every property.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from normcheck import findings as _findings
from normcheck import properties as P
from normcheck.audit.records import MAX_SAMPLES, Record
from normcheck.audit.simplify import simplify
from normcheck.profiles import Run, no_local_constants
from normcheck.properties.second_order import every_case

__all__ = ["cases_for", "not_run", "run_check", "run_identity", "watch_cases"]

#: Called with each example's case before the property runs on it (:func:`watch_cases`).
_WATCHERS: list[Callable[[Any], None]] = []


def watch_cases(callback: Callable[[Any], None] | None) -> None:
    """Call ``callback(case)`` before every example of every check in this process (a worker process
    tells its supervisor which case it is on, so a crash of the process is reported with it); None: stop."""
    _WATCHERS[:] = [callback] if callback is not None else []


def _watched(body: Callable[[Any], P.Result]) -> Callable[[Any], P.Result]:
    if not _WATCHERS:
        return body
    tell = _WATCHERS[0]

    def announced(case):
        tell(case)
        return body(case)

    return announced


class _Deviation(AssertionError):
    pass


@dataclass
class _Drive:
    samples: list[float] = field(default_factory=list)
    n: int = 0
    skips: int = 0
    skip: str = ""
    fail: tuple[Any, P.Result] | None = None
    crash: str = ""
    hits: dict[str, tuple[Any, P.Result]] = field(default_factory=dict)  # finding id -> smallest hit
    raised: tuple[Any, P.Result] | None = None  # the smallest example that raised (keep_errors)
    variants: dict[int, list] = field(default_factory=dict)  # Case.variant -> [examples, worst, deviations]
    explained: dict[str, int] = field(default_factory=dict)  # finding id -> the examples it explained
    explained_worst: dict[str, float] = field(default_factory=dict)  # finding id -> worst hit / λ it alone explains
    unexplained_worst: float = 0.0  # the worst error over the judged examples no finding explains


def _one(case) -> tuple:
    return (case,)


def _drive(
    body: Callable[[Any], P.Result],
    strategy,
    settings,
    seed: int | None,
    known=(),
    *,
    keep_errors: bool = False,
    expand: Callable[[Any], tuple] = _one,
    explicit: tuple = (),
) -> _Drive:
    """Run ``body`` over ``strategy``; collect samples, skips and the shrunk failure. A deviation
    a registered finding covers is counted as a hit (the smallest kept) and exploration goes on,
    so a known deviation neither costs shrinking time nor hides a new one; with ``keep_errors``,
    so does an example on which the implementation raises (the smallest kept). ``expand`` turns
    each drawn case into the cases judged (every configuration of it, with ``--all-configs``);
    ``explicit`` cases run first, ahead of Hypothesis's draws (the hunted failure modes)."""
    import hypothesis
    from hypothesis import given

    d = _Drive()

    def test(drawn):
        for case in expand(drawn):
            r = body(case)
            if _judge(d, case, r, known, keep_errors=keep_errors):
                raise _Deviation(r.message)

    t = given(strategy)(test)
    for case in reversed(explicit):  # the outermost @example runs first
        t = hypothesis.example(case)(t)
    t = settings(t)
    if seed is not None:
        t = hypothesis.seed(seed)(t)
    try:
        with no_local_constants():
            t()
    except _Deviation:
        pass
    except Exception as e:  # Flaky, a strategy that cannot generate, ...
        d.crash = f"{type(e).__name__}: {e}".splitlines()[0][:300]
    return d


def _margin(r: P.Result) -> float:
    """A deviation's size in units of what the model allows (inf for NaN, inf or a non-numeric verdict)."""
    obs, lam = r.observed, r.allowed
    if not isinstance(obs, int | float) or not isinstance(lam, int | float) or not lam > 0 or math.isnan(obs):
        return math.inf
    return float(obs) / float(lam)


def _judge(d: _Drive, case, r: P.Result, known, *, keep_errors: bool = False) -> bool:
    """Account one example's result in ``d``; True when it is a new deviation (the run stops)."""
    d.n += 1
    if r.verdict == "skip":
        d.skips += 1
        d.skip = r.message
        return False
    if len(d.samples) < MAX_SAMPLES and math.isfinite(r.observed):
        d.samples.append(float(r.observed))
    per = d.variants.setdefault(getattr(case, "variant", 0), [0, 0.0, 0])
    per[0] += 1
    per[1] = max(per[1], float(r.observed)) if not math.isnan(r.observed) else per[1]
    per[2] += not r.ok
    if r.ok and not math.isnan(r.observed):
        d.unexplained_worst = max(d.unexplained_worst, float(r.observed))
    if not r.ok:
        by = [f for f in known if f.explains(r.case or case, r.verdict)]
        if by:  # the first is the record's; every one that explains the example counts it
            prev = d.hits.get(by[0].id)
            if prev is None or case.x.size < prev[0].x.size:
                d.hits[by[0].id] = (case, r)
            for f in by:
                d.explained[f.id] = d.explained.get(f.id, 0) + 1
            if len(by) == 1:  # a margin is measured where the finding alone explains the example
                d.explained_worst[by[0].id] = max(d.explained_worst.get(by[0].id, 0.0), _margin(r))
            return False
        if keep_errors and r.verdict == "error":
            if d.raised is None or case.x.size < d.raised[0].x.size:
                d.raised = (case, r)
            return False
        d.fail = (case, r)
        return True
    return False


#: The examples a seeded (or derandomized) run draws, by (norm, dtype, buffers, run), or by
#: (identity, dtype, run): every property of every implementation of a norm, and every pair of
#: implementations an identity relates, sees the same examples, so they are drawn once per process
#: and replayed (:func:`_replay`) instead of re-generated per check.
_DRAWN: dict[tuple, tuple | None] = {}


def _drawn(key, strategy, settings, seed, explicit: tuple = ()) -> tuple | None:
    """The drawn examples, ``explicit`` first (None when drawing itself fails: :func:`_drive` then reports it)."""
    if key not in _DRAWN:
        drawn = _collect(strategy, settings, seed, explicit)
        if len(_DRAWN) > 256:  # a process's norms x dtypes x buffers, and identities x dtypes, fit
            _DRAWN.clear()
        _DRAWN[key] = drawn
    return _DRAWN[key]


def _collect(strategy, settings, seed, explicit: tuple = ()) -> tuple | None:
    """The examples a Hypothesis run over ``strategy`` draws, ``explicit`` first (None when drawing fails)."""
    seen: list = []

    def keep(case):
        seen.append(case)
        return P.Result("", "pass")

    d = _drive(keep, strategy, settings, seed, explicit=explicit)
    return None if d.crash else tuple(seen)


def _replay(body, cases, known, *, keep_errors: bool = False, expand=_one) -> _Drive | None:
    """:func:`_drive` over already drawn ``cases``: the same accounting while every example passes
    or is a registered finding's hit (Hypothesis would generate exactly these, in this order: see
    :func:`normcheck.profiles.no_local_constants`); None at a new deviation or an exception, which :func:`_drive`
    then reruns and shrinks."""
    if cases is None:
        return None
    d = _Drive()
    for case in (c for drawn in cases for c in expand(drawn)):
        try:
            r = body(case)
        except Exception:
            return None
        if _judge(d, case, r, known, keep_errors=keep_errors):
            return None
    return d


def _replayed(
    body, key, strategy, settings, seed, known, keep_errors: bool = False, expand=_one, explicit: tuple = ()
) -> _Drive | None:
    """:func:`_replay` over the examples ``key`` draws, where the run is seeded or derandomized (so
    they are the same for every check that shares the key); None otherwise, or where the replay
    stops (:func:`_drive` then runs)."""
    if seed is None and not settings.derandomize:
        return None
    drawn = _drawn(key, strategy, settings, seed, explicit)
    return _replay(body, drawn, known, keep_errors=keep_errors, expand=expand)


#: The hunted examples (:mod:`normcheck.hunting`) of a (norm, dtype, running buffers, run).
_HUNTED: dict[tuple, tuple] = {}
#: Each mode's examples drawn per seed; the last is kept (Hypothesis's first draw is its simplest,
#: the same at every seed).
_HUNT_DRAWS = 3


def hunted(norm: str, dtype: str, running_stats: bool | None, run: Run) -> tuple:
    """One case of each failure mode :mod:`normcheck.hunting` hunts for ``norm`` at ``dtype``,
    drawn from the run's seed: the explicit examples every property of a native implementation
    runs first."""
    key = (norm, dtype, running_stats, run)
    if key not in _HUNTED:
        import hypothesis

        from normcheck import hunting

        settings = hypothesis.settings(run.settings(), max_examples=_HUNT_DRAWS)
        out = []
        for name, strategy in hunting.modes(norm, dtype, running_stats=running_stats).items():
            seed = None if run.seed is None else zlib.crc32(f"{run.seed}:{name}".encode())  # stable across processes
            drawn = _collect(strategy, settings, seed)
            if drawn:
                out.append(drawn[-1])
        _HUNTED[key] = tuple(out)
    return _HUNTED[key]


def every_configuration(impl) -> Callable[[Any], tuple]:
    """``expand`` for :func:`_drive`: a drawn case in each of ``impl``'s configurations (the product
    of its axes, ``Impl.config_count`` cases), whatever variant it was drawn with."""
    n = impl.config_count
    return lambda case: tuple(case.with_(variant=v) for v in range(n))


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
    if getattr(impl, "configs", ()) and d.variants:
        base["configs"] = _by_configuration(impl, d.variants)
    if d.explained:  # every finding the examples met, and what the others measured
        base["explained"] = dict(d.explained)
        base["unexplained_worst"] = d.unexplained_worst
        base["explained_worst"] = dict(d.explained_worst)
    finding = None
    if d.raised is not None:
        case, r = d.raised
        base["raises"] = {
            "message": r.message,
            "counterexample": _counterexample(impl, case),
            "repro": case.repro(repro_call) if hasattr(case, "repro") else None,
        }
        if fail is None:  # it raised, and deviated nowhere else: the raise is the record's verdict
            fail = d.raised
    if fail is None and d.hits:  # only registered deviations: report the finding's smallest hit
        finding, fail = next(iter(d.hits.items()))  # the finding that covered it (an identity: either side's)
    if fail is not None:
        case, r = fail
        if finding is None and r.verdict in ("fail", "error"):
            f = _findings.match_impl(impl, prop_name, dtype, r.case or case, r.verdict)
            finding = f.id if f else None
        return Record(
            **base,
            verdict="finding" if finding else r.verdict,
            observed=r.observed,
            allowed=r.allowed,
            message=r.message,
            finding=finding,
            counterexample=_counterexample(impl, case),
            repro=case.repro(repro_call) if hasattr(case, "repro") else None,
        )
    if crash:
        return Record(**base, verdict="error", message=f"the check could not run: {crash}")
    if n == skips:
        return Record(**base, verdict="skip", message=skip_msg or "no applicable example")
    from normcheck.error_model import MODEL

    return Record(**base, verdict="pass", observed=max(samples, default=0.0), allowed=MODEL.lam)


def _counterexample(impl, case) -> dict[str, Any] | None:
    """The case's JSON, with the constructor options the implementation ran it in (``config``)."""
    if not hasattr(case, "to_json"):
        return None
    out = case.to_json()
    if getattr(impl, "configs", ()):
        out["config"] = case.configuration(impl)
    return out


def _by_configuration(impl, variants: dict[int, list]) -> dict[str, dict[str, Any]]:
    """Judged examples (skips aside), worst error (u·s) and deviations per configuration the examples drew, by the options
    set away from their defaults ("defaults": none)."""
    out: dict[str, dict[str, Any]] = {}
    for variant, (n, worst, bad) in sorted(variants.items()):
        row = out.setdefault(impl.config_label(variant) or "defaults", {"examples": 0, "worst": 0.0, "deviations": 0})
        row["examples"] += n
        row["worst"] = max(row["worst"], worst)
        row["deviations"] += bad
    return out


def _skip(impl, dtype: str, prop_name: str, message: str) -> Record:
    r = _record(impl, dtype, prop_name, time.perf_counter(), _Drive(skip=message), repro_call="")
    r.message = message
    return r


def not_run(impl, dtype: str, prop_name: str, message: str, case=None) -> Record:
    """The error record of a check that did not finish (its worker process died): ``message``, and
    the case it was on (when known) as the counterexample, with its repro."""
    r = _record(impl, dtype, prop_name, time.perf_counter(), _Drive(crash=message), repro_call="")
    r.message = message
    if case is not None and hasattr(case, "to_json"):
        r.counterexample = _counterexample(impl, case)
        r.repro = case.repro(_repro_call(impl))
    return r


def _repro_call(impl) -> str:
    if impl.framework == "user":
        return "fn"
    return f"next(i for i in __import__('normcheck.adapters', fromlist=['get']).get({impl.framework!r}).implementations() if i.id == {impl.id!r})"


def cases_for(impl, dtype: str):
    """The strategy of the cases a check of ``impl`` draws: a native implementation's include the
    inputs to the dtype's limits (:data:`normcheck.strategies.AUDIT_REGIMES`) and the configuration
    each case runs in (``Case.variant``); a user's target's (``normcheck check``) neither."""
    from normcheck import strategies

    native = impl.framework != "user"
    return strategies.cases(
        impl.norm,
        dtypes=(dtype,),
        running_stats=None if impl.running_stats else False,
        regimes=strategies.AUDIT_REGIMES if native else strategies.REGIMES,
        variants=native,
    )


def run_check(
    impl,
    prop_name: str,
    dtype: str,
    run: Run | None = None,
    *,
    strategy=None,
    keep_errors: bool = False,
    explicit: tuple | None = None,
) -> Record:
    """One property of one implementation at one dtype, driven by Hypothesis (``run``: the
    profile, seed and examples; by default the loaded Hypothesis profile, unseeded). With
    ``keep_errors`` (a user's target) an example on which the implementation raises does not end
    the exploration: the smallest is kept in the record's ``raises`` beside any deviation.
    ``explicit``: cases run ahead of the draws (None: a native implementation's hunted failure
    modes, :func:`hunted`, where the strategy is the default one; none otherwise)."""

    run = run or Run(profile=None, seed=None)
    t0 = time.perf_counter()
    if dtype not in impl.dtypes:
        return _skip(impl, dtype, prop_name, f"{impl.api or impl.id} does not support {dtype}")
    prop = P.PROPERTIES[prop_name]
    settings = run.settings()
    known = _findings.bound_to(impl, prop_name, dtype)
    drive = None
    body = _watched(lambda c: prop(impl, c))
    expand = every_configuration(impl) if run.all_configs and impl.config_count > 1 else _one
    with every_case(run.profile == "thorough"):  # the second order on every case, not only small ones
        if strategy is None:  # the same examples for every property: replayed
            strategy = cases_for(impl, dtype)
            if explicit is None and impl.framework != "user":
                explicit = hunted(impl.norm, dtype, None if impl.running_stats else False, run)
            explicit = explicit or ()
            key = (impl.norm, dtype, impl.running_stats, impl.framework == "user", run)
            drive = _replayed(body, key, strategy, settings, run.seed, known, keep_errors, expand, explicit)
        if drive is None:
            explicit = explicit or ()
            drive = _drive(
                body, strategy, settings, run.seed, known, keep_errors=keep_errors, expand=expand, explicit=explicit
            )
        if drive.fail is not None:  # a new deviation: its values simplified after Hypothesis's shrink
            drive.fail = simplify(body, *drive.fail)
    return _record(impl, dtype, prop_name, t0, drive, repro_call=_repro_call(impl))


def run_identity(ident, lhs, rhs, dtype: str, run: Run | None = None) -> Record:
    """A spec identity between two implementations of one framework/form, driven by Hypothesis."""
    from normcheck import strategies

    run = run or Run(profile=None, seed=None)
    t0 = time.perf_counter()
    name = f"identity:{ident.name}"
    if dtype not in lhs.dtypes or dtype not in rhs.dtypes:
        return _skip(lhs, dtype, name, f"{dtype} is not supported by both sides")
    strategy = strategies.identity_cases(ident, dtypes=(dtype,))
    known = _findings.applicable(lhs.id, name, dtype) + _findings.applicable(rhs.id, name, dtype)
    settings = run.settings()
    body = _watched(lambda c: P.identity(ident, lhs, rhs, c))
    drive = _replayed(body, (name, dtype, run), strategy, settings, run.seed, known)  # the same for every pair
    if drive is None:
        drive = _drive(body, strategy, settings, run.seed, known)
    if drive.fail is not None:
        drive.fail = simplify(body, *drive.fail)
    return _record(lhs, dtype, name, t0, drive, repro_call=_repro_call(lhs))
