"""Hand-written implementations: the classic mistakes are caught (issue 3's acceptance), and
correct ones in other styles pass."""

from __future__ import annotations

import pytest

from normcheck import audit
from normcheck.adapters import Impl
from normcheck.profiles import Run
from tests.doubles import basic as doubles

WRONG = [
    ("layer_norm", doubles.layer_norm_one_pass, "catastrophic cancellation"),
    ("group_norm", doubles.group_norm_unbiased, "Bessel's correction"),
    ("group_norm", doubles.group_norm_eps_outside, "eps outside the sqrt"),
]
RIGHT = [("layer_norm", doubles.layer_norm_two_pass), ("group_norm", doubles.group_norm_rsqrt)]


def _impl(norm, fn):
    return Impl("user", norm, "function", fn, api=fn.__name__, dtypes=("float32",))


@pytest.mark.parametrize(("norm", "fn", "why"), WRONG, ids=[w[1].__name__ for w in WRONG])
def test_wrong_implementation_is_caught(norm, fn, why):
    rec = audit.run_check(_impl(norm, fn), "agreement", "float32", Run("ci", seed=0))
    assert rec.verdict == "fail", f"{fn.__name__} ({why}) was not caught: {rec.message}"
    assert rec.counterexample is not None and rec.repro and "Case.from_json" in rec.repro


@pytest.mark.parametrize(("norm", "fn"), RIGHT, ids=[r[1].__name__ for r in RIGHT])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_implementation_passes(norm, fn, seed):
    for prop in ("agreement", "statistics", "batch_independence", "special_values"):  # all apply to LN and GN
        rec = audit.run_check(_impl(norm, fn), prop, "float32", Run("ci", seed=seed))
        assert rec.verdict == "pass" and rec.examples > 0, f"{fn.__name__} {prop}: {rec.verdict}: {rec.message}"


def test_one_pass_fails_only_through_conditioning():
    """The one-pass double is fine on well-conditioned input and fails on a large offset: the
    model separates the two by kappa, not by a loose tolerance."""
    import numpy as np

    from normcheck import properties
    from normcheck.case import Case

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 64)).astype(np.float32)
    impl = _impl("layer_norm", doubles.layer_norm_one_pass)
    assert properties.agreement(impl, Case("layer_norm", x, {"normalized_shape": (64,)})).verdict == "pass"
    shifted = (x.astype(np.float64) + 3000).astype(np.float32)
    assert properties.agreement(impl, Case("layer_norm", shifted, {"normalized_shape": (64,)})).verdict == "fail"
    good = _impl("layer_norm", doubles.layer_norm_two_pass)
    assert properties.agreement(good, Case("layer_norm", shifted, {"normalized_shape": (64,)})).verdict == "pass"
