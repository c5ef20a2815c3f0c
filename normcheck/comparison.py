r"""Compare two implementations of a norm on the same drawn cases: are they equivalent, and if not, why?

:func:`compare` (``normcheck.compare``, ``normcheck compare A B --norm N``) resolves both targets as
:func:`normcheck.check` does (:func:`normcheck.target.wrap`: functions or layer classes of any
framework), draws cases of the norm (:func:`normcheck.strategies.cases`, within both targets'
constraints; eps drawn or left to each side's default), and calls both on every case:

- the output (train or eval, as the case says);
- after a training step with running buffers: the new ``running_mean`` and ``running_var``, and the
  output of an eval step that reads them (train -> eval, each side on its own buffers);
- the input, weight and bias gradients (where both sides have autodiff) for the cotangent the
  gradient properties use.

Each quantity q is judged three ways under the error model (:mod:`normcheck.error_model`): side A
against its float64 reference, side B against its own (each with the eps it actually uses), and A
against B with both sides' bounds as the allowance:

    equivalent on a case  <=>  |a - b| <= lambda ((u + u64)(s_a + s_b) + eta_min)   (:func:`difference`)

The pair is EQUIVALENT when every quantity on every case is; otherwise it DIFFERS, and the
convention slips a port makes are tried as translations of side B, as ``normcheck conventions``
measures them (:data:`TRANSLATIONS`): the same eps on both sides (default eps: torch 1e-5, Keras
1e-3, Flax 1e-6), momentum read as 1 - m (Keras and Flax weight the old running value), the running
variance's estimator (biased, Keras/Flax, against unbiased, torch: ``new = (1-m) old + m var
n/(n-1)``). The slip whose translation makes every differing case equivalent is named; the side
that deviates from the reference is diagnosed (:mod:`normcheck.diagnose`) when no slip explains it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck import error_model
from normcheck import spec as _spec
from normcheck.case import Case
from normcheck.compare_report import FRAMEWORK_EPS, CompareReport, Measured, Pair, Tally, difference, number_text
from normcheck.profiles import run_seeded
from normcheck.target import DEFAULT_TIMEOUT, Target, TargetError, TargetHung, wrap

__all__ = ["TRANSLATIONS", "CompareReport", "Side", "Translation", "compare", "difference"]

GRADIENT_CASES = 12  # cases whose gradients are compared (the first drawn ones)


# --- the two sides ----------------------------------------------------------------------------------


@dataclass
class Side:
    """One implementation under comparison: the wrapped target and the eps it uses when a case gives none."""

    name: str  # "A" or "B"
    target: Target
    impl: Any = None  # the target as the Impl autodiff drives

    @property
    def label(self) -> str:
        return self.target.label

    @property
    def own_default(self) -> bool:
        """Does a case without eps run with the target's own default (a torch-style layer class),
        rather than being given the spec's (a function: eps is a canonical argument; a Keras or
        flax.linen class: its adapter passes eps)?"""
        return self.target.form == "module" and self.target.adapted is None

    def eps(self, dtype: str) -> float:
        """The eps a case without one runs with: a layer's own default, else the spec's."""
        t = self.target
        if self.own_default and t.eps_default is not None:
            return float(t.eps_default)
        return float(t.spec.resolve_eps(None, dtype))


def _vjp_missing(target: Target) -> str | None:
    from normcheck import adapters

    if not adapters.get(target.framework).has_vjp:
        return f"{target.framework} has no autodiff"
    return None


def _impl(target: Target):
    from normcheck.adapters.base import Impl

    return Impl(
        "user",
        target.norm,
        target.form,
        target,
        api=target.label,
        runs_on=target.framework,
        running_stats=target.spec.has_running_stats and target.running_stats,
    )


# --- what is measured on one case ---------------------------------------------------------------------


@dataclass(frozen=True)
class Translation:
    """A convention slip, undone: ``eps`` (both sides run with one eps, each side's default or a
    framework's: a side that ignores the eps it is given then meets the other), ``momentum`` (B is
    given 1 - m), ``variance`` ("unbiased" or "biased": B's new running variance rescaled to the
    other estimator, ``(1-m) old + (new - (1-m) old) r``, r = n/(n-1) or (n-1)/n)."""

    name: str
    eps: bool = False
    momentum: bool = False
    variance: str | None = None

    def applies(self, case: Case) -> bool:
        if self.eps:
            return True
        return _trains_buffers(case) and case.args.get("momentum", 0.1) is not None


#: The slips tried, in order, when two implementations differ.
TRANSLATIONS = (
    Translation("eps default", eps=True),
    Translation("momentum convention", momentum=True),
    Translation("stored variance estimator", variance="unbiased"),
    Translation("stored variance estimator", variance="biased"),
)


def _trains_buffers(case: Case) -> bool:
    return case.spec.has_running_stats and case.use_batch_stats and case.running_mean is not None


def _with_eps(case: Case, eps: float) -> Case:
    return case.with_(args={**case.args, "eps": eps})


def _eval_of(case: Case, rm, rv) -> Case:
    flag = case.spec.batch_stats_flag
    return case.with_(running_mean=rm, running_var=rv, args={**case.args, flag: False})


def _translated_var(new, old, m: float, n: int, to: str) -> np.ndarray:
    r = n / max(n - 1, 1) if to == "unbiased" else (n - 1) / n
    old64 = np.asarray(old, np.float64)
    return ((1 - m) * old64 + (np.asarray(new, np.float64) - (1 - m) * old64) * r).astype(np.asarray(new).dtype)


def measure(side: Side, case: Case, *, translation: Translation | None = None, eps: float | None = None,
            gradients: bool = False) -> dict[str, Measured]:  # fmt: skip
    """Side's quantities on ``case`` (see the module docstring); ``translation`` undoes a slip on
    side B, ``eps`` (the eps translation) runs the case with that eps. Raises what the target raises."""
    from normcheck import expected

    t = side.target
    dt = case.dtype
    run = _with_eps(case, eps) if eps is not None else case
    ref_case = run if run.args.get("eps") is not None else _with_eps(run, side.eps(dt))
    call = run if side.own_default else ref_case  # a function is given the spec's default, as a caller would
    if translation is not None and translation.momentum and translation.applies(call):
        call = call.with_(args={**call.args, "momentum": 1 - float(call.args.get("momentum", 0.1))})
    out: dict[str, Measured] = {}
    t.start_fresh()
    got = call.call(t)
    ref, s = expected.of(ref_case)
    out["output"] = Measured(got.y, ref.y, s, dt)
    if _trains_buffers(case):
        rm, rv = got.running_mean, got.running_var
        if translation is not None and translation.variance:
            m = case.update_factor()
            n = case.plan().reduce_size
            rv = _translated_var(rv, case.running_var, m, n, translation.variance)
        sm, sv = error_model.running_scales_of(ref_case, ref.running_mean, ref.running_var)
        bdt = np.asarray(case.running_mean).dtype.name
        out["running_mean"] = Measured(rm, ref.running_mean, sm, bdt)
        out["running_var"] = Measured(rv, ref.running_var, sv, bdt)
        ev = _eval_of(call, rm.copy(), rv.copy()).call(t)
        ref_ev_case = _eval_of(ref_case, ref.running_mean, ref.running_var)
        ref_ev, s_ev = expected.of(ref_ev_case)
        out["eval after training"] = Measured(ev.y, ref_ev.y, s_ev, dt)
    if gradients:
        from normcheck import autodiff
        from normcheck.properties.gradients import cotangent, grad_scales, reference_grads

        dy = cotangent(ref_case)
        g = autodiff.vjp(side.impl, call, dy)
        rg = reference_grads(case.norm, ref_case, dy)
        gs = grad_scales(ref_case, dy)
        for k in rg:
            if k in g:
                out[f"d{k}"] = Measured(np.asarray(g[k]), rg[k], gs[k], dt)
    return out


# --- the outcome ------------------------------------------------------------------------------------


# --- the comparison -----------------------------------------------------------------------------------


def _strategy(sides: tuple[Side, Side], norm: str, dtype: str):
    """Cases within both targets' constraints; eps drawn, or None (each side's own default)."""
    from hypothesis import strategies as st

    from normcheck import strategies

    opts: dict[str, Any] = {}
    for side in sides:
        o = side.target.case_options()
        for k, v in o.items():
            if k == "ranks" and "ranks" in opts:
                v = tuple(r for r in opts["ranks"] if r in v)
                if not v:
                    raise TargetError("the two targets take no input rank in common")
            elif k == "momentum_none":
                v = bool(v) and all(s.target.case_options().get("momentum_none") for s in sides)
            elif k == "pinned" and "pinned" in opts:
                v = {**opts["pinned"], **v}
            opts[k] = v
    if "eps" not in (opts.get("pinned") or {}):
        opts["eps"] = st.one_of(st.none(), strategies.eps_values(spec=norm))
    if not all(s.target.running_stats for s in sides) and _spec.get(norm).has_running_stats:
        opts["running_stats"] = False
    axes = sides[0].target.axes or sides[1].target.axes
    return strategies.cases(norm, dtypes=(dtype,), axes=axes, **opts)


def _draw(strategy, n: int, seed: int) -> list[Case]:
    from hypothesis import HealthCheck, Phase, given, settings

    out: list[Case] = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(c):
        out.append(c)

    run_seeded(collect, seed)
    return out


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip().splitlines()[0][:200]


def _both(sides, case, *, translation=None, eps=None, gradients=False):
    """(A's quantities, B's quantities); the translation applies to B only."""
    a = measure(sides[0], case, eps=eps, gradients=gradients)
    b = measure(sides[1], case, translation=translation, eps=eps, gradients=gradients)
    return a, b


def _pairs(case: Case, a: dict[str, Measured], b: dict[str, Measured]) -> list[Pair]:
    return [Pair.of(q, case, a[q], b[q]) for q in a if q in b]


def _explain(sides, differing: list[tuple[Case, bool]], report: CompareReport) -> None:
    """Name the first slip whose translation makes every differing case equivalent."""
    for tr in TRANSLATIONS:
        if not any(tr.applies(c) for c, _ in differing):
            continue
        candidates = dict.fromkeys([*report.eps, *FRAMEWORK_EPS]) if tr.eps else {None: None}
        for eps in candidates:
            if _undone(sides, differing, tr, eps):
                report.slip = tr.name
                report.explanation = _slip_text(tr, sides, report, eps)
                return


def _undone(sides, differing, tr: Translation, eps: float | None) -> bool:
    """Does ``tr`` (with ``eps``) make every differing case equivalent?"""
    for c, grads in differing:
        try:
            a, b = _both(sides, c, translation=tr, eps=eps, gradients=grads)
        except Exception:
            return False
        if not all(p.equivalent for p in _pairs(c, a, b)):
            return False
    return True


def _deviating(report: CompareReport, quantities) -> str | None:
    """The side whose ``quantities`` deviate from its reference on the worst such pair."""
    pairs = [t.worst for k, t in report.tallies.items() if t.worst is not None and k.split(" ", 1)[1] in quantities]
    a = any(not p.a_ref.ok for p in pairs)
    b = any(not p.b_ref.ok for p in pairs)
    return "A" if a and not b else "B" if b and not a else None


def _slip_text(tr: Translation, sides, report: CompareReport, eps: float | None) -> str:
    a, b = sides
    if tr.eps:
        ea, eb = report.eps
        if ea != eb and eps in (ea, eb):
            return (
                f"eps default: A ({a.label}) uses eps={number_text(ea)} where none is given, B ({b.label}) "
                f"eps={number_text(eb)}; with the same eps they are equivalent"
            )
        who = _deviating(report, ("output", "eval after training", "dinput"))
        name = {"A": f"A ({a.label})", "B": f"B ({b.label})"}.get(who or "", "one side")
        whose = FRAMEWORK_EPS.get(eps)
        return (
            f"eps: {name} uses eps={number_text(eps)}{f' ({whose} default)' if whose else ''} whatever eps it is given; "
            f"with eps={number_text(eps)} on both sides they are equivalent"
        )
    who = _deviating(report, ("running_mean", "running_var", "eval after training"))
    name = {"A": f"A ({a.label})", "B": f"B ({b.label})"}.get(who or "", "one side")
    if tr.momentum:
        return (
            f"momentum convention: {name} weights the old running value by momentum (Keras/Flax: "
            "m = 1 - m_torch) where the reference weights the batch; with momentum translated they are equivalent"
        )
    est = "biased" if who is not None or tr.variance == "unbiased" else "unbiased"
    return (
        f"stored variance estimator: {name} keeps the {est} batch variance in running_var (Keras/Flax: "
        "biased; torch: unbiased, n/(n-1)); translated, they are equivalent"
    )


def _diagnose(report: CompareReport, sides, seed: int) -> None:
    """The deviating side's diagnosis (when one side alone deviates from its reference)."""
    from normcheck import diagnose

    w = report.worst
    if w is None:
        return
    bad = [s for s, c in zip(sides, (w.a_ref, w.b_ref), strict=True) if not c.ok]
    if len(bad) != 1:
        return
    side = bad[0]
    cases = [t.worst.case for t in report.tallies.values() if t.worst is not None and not t.worst.equivalent]
    try:
        d = diagnose.diagnose(
            side.target, report.norm, cases, dtype=w.case.dtype, seed=seed, running=bool(side.target.running_stats),
        )  # fmt: skip
    except Exception as e:
        report.notes.append(f"the diagnosis could not run: {_first_line(e)}")
        return
    if d is not None and d.text:
        report.diagnosis = f"{side.name} ({side.label}): {d.text}"


def compare(
    a,
    b,
    norm: str,
    *,
    framework_a: str | None = None,
    framework_b: str | None = None,
    dtypes=("float32",),
    examples: int = 40,
    seed: int = 0,
    gradients: bool = True,
    diagnose: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    args: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompareReport:
    """Compare ``a`` and ``b`` (callables, module classes, or ``"module:attr"`` /
    ``"file.py:attr"`` references, as :func:`normcheck.check` takes them) as implementations of
    ``norm`` on ``examples`` drawn cases per dtype (see the module docstring); returns a
    :class:`CompareReport` (``bool(report)``: equivalent). ``args`` pins constructor or canonical
    arguments on both sides, as :func:`normcheck.check` does (``{"momentum": None}``: every case
    uses torch's cumulative average; ``{"eps": 1e-3}``). Raises
    :class:`~normcheck.target.TargetError` for a target that cannot be loaded or wrapped, ValueError
    for an unknown dtype; what the targets do (raise, return garbage, hang) is reported.
    """
    from normcheck.dtypes import FLOAT_DTYPES

    t0 = time.perf_counter()
    if norm not in _spec.names():
        raise TargetError(f"unknown norm {norm!r}; known: {', '.join(_spec.names())}")
    bad = [d for d in dtypes if d not in FLOAT_DTYPES]
    if bad:
        raise ValueError(f"unknown dtype {', '.join(map(str, bad))}; known: {', '.join(FLOAT_DTYPES)}")
    if examples < 1:
        raise ValueError("examples must be at least 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = wrap(a, norm, framework=framework_a, timeout=timeout, args=args)
        tb = wrap(b, norm, framework=framework_b, timeout=timeout, args=args)
        sides = (Side("A", ta), Side("B", tb))
        for s in sides:
            s.impl = _impl(s.target)
        report = CompareReport(ta.label, tb.label, norm, (ta.framework, tb.framework), tuple(dtypes), seed)
        report.eps = (sides[0].eps("float32"), sides[1].eps("float32"))
        report.own_eps = (sides[0].own_default, sides[1].own_default)
        grad_why = next((w for w in map(_vjp_missing, (ta, tb)) if w), None)
        if gradients and grad_why:
            report.notes.append(f"gradients not compared: {grad_why}")
        differing: list[tuple[Case, bool]] = []
        with np.errstate(all="ignore"):
            for dt in dtypes:
                for i, case in enumerate(_draw(_strategy(sides, norm, dt), examples, seed)):
                    grads = gradients and not grad_why and i < GRADIENT_CASES
                    if progress:
                        progress(f"{dt} case {i + 1}: {case.describe()}")
                    try:
                        qa, qb = _both(sides, case, gradients=grads)
                    except TargetHung as e:
                        report.hung = str(e)
                        break
                    except Exception as e:
                        if grads:  # the gradients alone may be what fails: compare the rest
                            try:
                                qa, qb = _both(sides, case)
                                report.raised.append(f"gradients: {_first_line(e)}")
                            except Exception as e2:
                                report.raised.append(f"{_first_line(e2)} on {case.describe()}")
                                continue
                        else:
                            report.raised.append(f"{_first_line(e)} on {case.describe()}")
                            continue
                    report.cases += 1
                    pairs = _pairs(case, qa, qb)
                    for p in pairs:
                        report.tallies.setdefault(f"{dt} {p.quantity}", Tally()).add(p)
                    if not all(p.equivalent for p in pairs):
                        differing.append((case, grads))
                if report.hung:
                    break
        if report.verdict == "differ":
            _explain(sides, differing[:8], report)
            if report.slip is None and diagnose:
                _diagnose(report, sides, seed)
        if report.slip is None and report.eps[0] != report.eps[1]:
            report.notes.append(f"eps defaults differ ({number_text(report.eps[0])} and {number_text(report.eps[1])})")
    report.seconds = time.perf_counter() - t0
    return report
