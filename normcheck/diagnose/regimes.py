"""Failures confined to one input regime: "DEVIATES only for |x| ≥ 9.5e13 (regime huge)".

A check's failing records each keep one shrunk counterexample, which carries its input regime
(:mod:`normcheck.strategies`). When every one lies in the same regime other than "normal", each failing
property is run again on a fixed number of fresh cases of every regime (:data:`PER_REGIME`, drawn from
the seed: counts, never time), and the failures are confined to that regime when none of the other
regimes' cases fails. The threshold is read from the failing cases: the smallest max|x| among them
(huge, extreme), the smallest |mean|/std (offset, near_constant), the largest std (tiny).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from normcheck.numtext import trim_exponent
from normcheck.profiles import run_seeded

__all__ = ["PER_REGIME", "SWEPT", "Confinement", "confinement", "floor", "number"]

#: Fresh cases per regime and failing property.
PER_REGIME = 5
#: Failing properties (by dtype) run again per regime, the first ones in the check's order.
SWEPT = 3


def number(v: float) -> str:
    """A plain number for a sentence: 9.5e13, 1e-4, 250, never ``np.float64(...)`` or ``1e+14``."""
    v = float(v)
    if not math.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "nan"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    return trim_exponent(f"{v:.2g}")


def floor(v: float) -> str:
    """:func:`number` rounded down to two significant digits, for a threshold ("|x| ≥ 9.9e4" for a
    failure at 99840, never 1e5 above it)."""
    v = float(v)
    if not math.isfinite(v) or v <= 0:
        return number(v)
    k = math.floor(math.log10(v)) - 1
    return number(math.floor(v / 10**k) * 10**k)


@dataclass
class Confinement:
    """Every failing case of a check lies in ``regime``; the other regimes passed on ``passed`` cases."""

    regime: str
    condition: str  # "|x| ≥ 9.5e13"
    failing: int  # failing cases seen (counterexamples and fresh ones)
    passed: dict[str, int] = field(default_factory=dict)  # other regime -> fresh cases that passed

    def headline(self) -> str:
        """ "only for |x| ≥ 9.5e13 (regime huge)" """
        return f"only {self.condition} (regime {self.regime})"

    def others(self) -> str:
        """ "the other 5 regimes passed (25 fresh cases: normal, offset, tiny, constant, outliers)" """
        n = sum(self.passed.values())
        k = len(self.passed)
        return f"the other {k} regime{'s' * (k != 1)} passed ({n} fresh cases: {', '.join(self.passed)})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(c) -> float:
    from normcheck.reference import moments

    p = c.plan()
    mean, var = moments(c.x.astype(np.float64).reshape(p.view_shape), p.reduce, center=True)
    with np.errstate(all="ignore"):
        r = np.nan_to_num(np.abs(mean) / np.sqrt(var), nan=0.0)
    return float(np.min(r)) if r.size else 0.0


def _condition(regime: str, cases) -> str | None:
    if regime in ("huge", "extreme"):
        return f"for |x| ≥ {floor(min(float(np.max(np.abs(c.x.astype(np.float64)))) for c in cases))}"
    if regime in ("offset", "near_constant"):
        return f"for |mean|/std ≥ {floor(min(_ratio(c) for c in cases))}"
    if regime == "tiny":
        return "for std ~1e-4, where eps dominates"
    if regime == "constant":
        return "on zero-variance sets"
    if regime == "outliers":
        return "with a few outliers among the values"
    return None


def _draw(norm: str, dtype: str, regime: str, count: int, seed: int, options: dict[str, Any], axes):
    from hypothesis import HealthCheck, Phase, given, settings

    from normcheck import strategies

    out: list = []
    strategy = strategies.cases(norm, dtypes=(dtype,), regimes=(regime,), axes=axes, **options)

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def collect(c):
        out.append(c)

    run_seeded(collect, seed)
    return out[:count]


def confinement(impl, norm: str, failures, *, seed: int = 0, options=None, axes=None) -> Confinement | None:
    """Whether the failing records ``failures`` (all verdict "fail", each with a counterexample) lie
    in one regime other than "normal", checked by running the failing properties of ``impl`` again
    on :data:`PER_REGIME` fresh cases of each regime (``options``: the target's
    :func:`normcheck.strategies.cases` constraints). None when they do not, or it cannot be told."""
    from normcheck import strategies
    from normcheck.case import Case
    from normcheck.properties import PROPERTIES

    if not failures or any(r.verdict != "fail" or not r.counterexample for r in failures):
        return None
    try:
        shrunk = [Case.from_json(r.counterexample) for r in failures]
    except ValueError:
        return None
    regimes = {c.regime for c in shrunk}
    if len(regimes) != 1 or regimes & {"normal", "", None}:
        return None
    (regime,) = regimes
    failing = list(shrunk)
    passed: dict[str, int] = {}
    swept = list(dict.fromkeys((r.dtype, r.property) for r in failures))[:SWEPT]
    for k, (dtype, prop) in enumerate(swept):
        for j, other in enumerate(strategies.REGIMES):
            try:
                cases = _draw(norm, dtype, other, PER_REGIME, seed + 1009 * k + 101 * j, dict(options or {}), axes)
            except Exception:
                return None
            for c in cases:
                try:
                    verdict = PROPERTIES[prop](impl, c).verdict
                except Exception:
                    verdict = "error"
                if verdict in ("fail", "error"):
                    if other != regime:
                        return None
                    failing.append(c)
                elif verdict == "pass" and other != regime:
                    passed[other] = passed.get(other, 0) + 1
    condition = _condition(regime, failing)
    if condition is None or not passed:
        return None
    return Confinement(regime, condition, len(failing), passed)
