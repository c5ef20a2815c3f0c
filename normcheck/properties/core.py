"""What every property shares: :class:`Result`, the :class:`Stop` signal, calling an
implementation on a case, turning comparisons into a verdict, and the registry.

A property is a plain function ``(impl, case) -> Result`` registered with :func:`register`. It never
raises for a deviation: its body returns a Result, or raises :class:`Stop` carrying one from deep
inside (:func:`call` does, when the implementation raises or returns the wrong shape or dtype). The
verdict is ``pass``, ``fail``, ``error`` (the implementation raised or returned garbage) or ``skip``
(the case does not apply: the property raised :class:`NotApplicable`; or the framework cannot
express it: :class:`normcheck.adapters.Unsupported`). Any other exception a property's own code
raises (a ``ValueError`` included) is a bug of the harness and propagates: it is never read as
"not applicable". Every numeric judgement goes through
:mod:`normcheck.error_model`: an output may err by ``lambda u s`` (s the reference's condition
scale); a relation between two outputs of the same implementation is allowed both sides' bounds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import error_model, expected
from normcheck.adapters.base import Unsupported
from normcheck.case import Case, Outcome

__all__ = [
    "REGISTRY",
    "NotApplicable",
    "Result",
    "Stop",
    "call",
    "expectation",
    "ordered",
    "pair",
    "reference",
    "register",
    "scale",
    "verdict",
]


@dataclass
class Result:
    property: str
    verdict: str  # pass | fail | error | skip
    observed: float = 0.0  # worst error in model units (u·s)
    allowed: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    case: Case | None = field(default=None, repr=False)  # the exact (derived) case that misbehaved

    @property
    def ok(self) -> bool:
        """The property held: a pass. A skip tested nothing, so it is not ok (and not a failure:
        check ``verdict == "skip"`` first where that matters)."""
        return self.verdict == "pass"


class NotApplicable(Exception):
    """Raised by a property's body when the case does not fit the property (its transformation
    cannot be applied to it): :func:`register` turns it into a skip carrying the message."""


class Stop(Exception):
    """Carries a non-pass Result out of a property's body."""

    def __init__(self, result: Result):
        self.result = result


def call(impl, case: Case) -> Outcome:
    """Run ``impl`` on fresh copies of ``case``; raise :class:`Stop` with a skip (unsupported), an
    error (it raised) or a fail (wrong output shape or dtype)."""
    try:
        out = case.call(impl)
    except Unsupported as e:
        raise Stop(Result("", "skip", message=f"unsupported: {e}")) from None
    except Exception as e:  # the implementation under test raised
        msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300] if str(e) else type(e).__name__
        raise Stop(Result("", "error", message=f"raised {msg}", case=case)) from None
    lam = error_model.MODEL.lam
    if out.y.shape != case.x.shape:
        raise Stop(Result("", "fail", np.inf, lam, f"output shape {out.y.shape} != input {case.x.shape}", case=case))
    if out.y.dtype != case.x.dtype:
        raise Stop(Result("", "fail", np.inf, lam, f"output dtype {out.y.dtype} != input {case.x.dtype}", case=case))
    return out


#: Every registered property by name (:func:`register`); :func:`ordered` lists them for running.
REGISTRY: dict[str, Callable[..., Result]] = {}


def register(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Register ``fn`` as the property named ``fn.__name__``: the wrapper names its Result, turns
    :class:`Stop` into its Result and :class:`NotApplicable` (the case does not fit the property's
    transformation) into a skip. Any other exception propagates: a ``ValueError`` from the
    property's own code is a harness bug, not a skip."""

    def wrapper(impl, case: Case, **kw) -> Result:
        try:
            r = fn(impl, case, **kw)
        except Stop as stop:
            r = stop.result
        except NotApplicable as e:
            r = Result("", "skip", message=f"not applicable: {e}")
        r.property = fn.__name__
        return r

    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__module__ = fn.__module__
    REGISTRY[fn.__name__] = wrapper
    return wrapper


def ordered(modules) -> dict[str, Callable[..., Result]]:
    """The registered properties of ``modules`` (imported), module by module, each module's in the
    order it defines them: the order the audit runs them and its records list them."""
    return {n: f for m in modules for n, f in REGISTRY.items() if f.__module__ == m.__name__}


#: Pure functions of a case computed once per case object (:func:`scale`, :func:`reference`): the
#: audit replays the same drawn cases to every property of every implementation of a norm. Keyed by
#: (what, id(case)) and holding the case, so an id is never another case's; least recently used out.
_MEMO: OrderedDict[tuple[str, int], tuple[Case, Any]] = OrderedDict()
_MEMO_SIZE = 1024


def _memo(what: str, case: Case, compute: Callable[[], Any]) -> Any:
    key = (what, id(case))
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is case:
        _MEMO.move_to_end(key)
        return hit[1]
    value = compute()
    _MEMO[key] = (case, value)
    if len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


def _frozen(a):
    """``a`` read-only (a shared result no caller may change), or None."""
    if a is not None:
        a.flags.writeable = False
    return a


def _expected(case: Case) -> tuple[Outcome, np.ndarray]:
    """(reference outcome, scale) of the case (:func:`normcheck.expected.of`: one moments pass for
    both where they share it), read-only, computed once per case object."""

    def compute():
        out, s = expected.of(case)
        return Outcome(_frozen(out.y), _frozen(out.running_mean), _frozen(out.running_var)), _frozen(s)

    return _memo("expected", case, compute)


def scale(case: Case) -> np.ndarray:
    """The case's condition scale s (:func:`normcheck.error_model.scale`), read-only, computed once
    per case."""
    return _expected(case)[1]


def reference(case: Case) -> Outcome:
    """``case.reference()`` (the float64 reference's output and updated buffers), read-only,
    computed once per case."""
    return _expected(case)[0]


def expectation(case: Case) -> error_model.Expectation:
    """The case's float64 reference output with its scale, prepared for judging outputs
    (:class:`normcheck.error_model.Expectation`), computed once per case object."""
    return _memo("expectation", case, lambda: error_model.Expectation(reference(case).y, scale(case), case.dtype))


def verdict(name: str, comparisons: list[tuple[str, error_model.Comparison]]) -> Result:
    """One Result from named comparisons: fail if any fails, reporting the worst."""
    failed = [(k, c) for k, c in comparisons if not c.ok]
    k, c = max(failed or comparisons, key=lambda kc: kc[1].observed)
    details = {
        k2: {"observed": c2.observed, "max_abs": c2.max_abs, "max_rel": c2.max_rel, "index": c2.worst_index}
        for k2, c2 in comparisons
    }
    return Result(name, "fail" if failed else "pass", c.observed, c.allowed, f"{k}: {c.describe()}", details)


def pair(a: np.ndarray, b: np.ndarray, s: np.ndarray, dtype) -> error_model.Comparison:
    """Compare two low-precision outputs that should be equal; each may err by lambda u s."""
    return error_model.compare(a, np.asarray(b).astype(np.float64), 2 * s, dtype)
