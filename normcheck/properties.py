"""Properties of a norm implementation, each a plain function ``(impl, case) -> Result``.

Tests, the audit and the custom-implementation checker all call these. A property never raises
for a deviation: it returns a :class:`Result` whose ``verdict`` is ``pass``, ``fail``, ``error``
(the implementation raised or returned garbage) or ``skip`` (the case does not apply, e.g. the
framework cannot express it: :class:`normcheck.adapters.Unsupported`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import error_model
from normcheck.adapters.base import Unsupported
from normcheck.case import Case

__all__ = ["Result", "agreement", "PROPERTIES"]


@dataclass
class Result:
    property: str
    verdict: str  # pass | fail | error | skip
    observed: float = 0.0  # worst error in model units (u·s)
    allowed: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict in ("pass", "skip")


def _call(impl, case: Case):
    """Run ``impl`` on fresh copies of ``case``; turn exceptions into a Result."""
    try:
        return case.call(impl), None
    except Unsupported as e:
        return None, Result("", "skip", message=f"unsupported: {e}")
    except Exception as e:  # the implementation under test raised
        return None, Result("", "error", message=f"{type(e).__name__}: {e}".splitlines()[0][:300])


def _worst(results: list[tuple[str, error_model.Comparison]], name: str) -> Result:
    failed = [(k, c) for k, c in results if not c.ok]
    k, c = max(failed or results, key=lambda kc: kc[1].observed)
    details = {
        k2: {"observed": c2.observed, "max_abs": c2.max_abs, "max_rel": c2.max_rel, "index": c2.worst_index}
        for k2, c2 in results
    }
    return Result(
        name,
        "fail" if failed else "pass",
        c.observed,
        c.allowed,
        f"{k}: {c.describe()}",
        details,
    )


def agreement(impl, case: Case) -> Result:
    """The output (and any updated running buffers) agree with the float64 reference."""
    got, err = _call(impl, case)
    if err:
        err.property = "agreement"
        return err
    ref = case.reference()
    kw = case.kwargs()
    s = error_model.scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **kw, **_axes(case))
    if got.y.dtype != case.x.dtype:
        return Result("agreement", "fail", np.inf, error_model.MODEL.lam, f"output dtype {got.y.dtype} != input {case.x.dtype}")
    results = [("output", error_model.compare(got.y, ref.y, s, case.dtype))]
    if case.running_mean is not None and case.use_batch_stats:
        sm, sv = error_model.running_scale(
            case.norm, case.x, ref.running_mean, ref.running_var, momentum=case.args.get("momentum", 0.1)
        )
        bdt = case.running_mean.dtype.name
        results.append(("running_mean", error_model.compare(got.running_mean, ref.running_mean, sm, bdt)))
        results.append(("running_var", error_model.compare(got.running_var, ref.running_var, sv, bdt)))
    return _worst(results, "agreement")


def _axes(case: Case) -> dict[str, Any]:
    ra = case.args.get("reduce_axes")
    return {} if ra is None else {"reduce_axes": ra}


PROPERTIES = {"agreement": agreement}
