"""The property suite as parametrized tests: one test per framework/norm/form × property × dtype
and per identity pair, driven by the active Hypothesis profile (--hypothesis-profile). A check
passes when every example passes or deviates only as a registered finding."""

from __future__ import annotations

import hypothesis
import pytest

from normcheck import adapters, audit
from normcheck.profiles import Run
from normcheck.properties import PROPERTIES
from normcheck.testing import impl_params

DTYPES = ("float32", "bfloat16")


def _profile() -> str:
    return getattr(hypothesis.settings, "_current_profile", None) or "dev"


def _assert_ok(rec):
    assert rec.verdict in ("pass", "skip", "finding"), (
        f"{rec.impl} {rec.dtype} {rec.property}: {rec.verdict}: {rec.message}\n"
        f"counterexample: {rec.counterexample}\nrepro:\n{rec.repro}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("impl", impl_params(extended=False))  # extended: tests/test_adapters.py, thorough audit
def test_property(impl, prop, dtype):
    if dtype != "float32" and prop not in ("agreement", "special_values"):
        pytest.skip("16-bit dtypes run agreement and special values here; the audit runs every property")
    _assert_ok(audit.run_check(impl, prop, dtype, Run(_profile())))


def _identity_params():
    out = []
    for name in adapters.FRAMEWORKS:
        a = adapters.get(name)
        if not a.available():
            out.append(
                pytest.param(
                    None,
                    None,
                    None,
                    id=f"{name}/not-installed",
                    marks=pytest.mark.skip(reason=f"{name} is not installed"),
                )
            )
            continue
        for ident, lhs, rhs in audit.identity_pairs([i for i in a.implementations() if not i.extended]):
            out.append(pytest.param(ident, lhs, rhs, id=f"{lhs.id}-{ident.name}"))
    return out


@pytest.mark.parametrize(("ident", "lhs", "rhs"), _identity_params())
def test_identity(ident, lhs, rhs):
    _assert_ok(audit.run_identity(ident, lhs, rhs, "float32", Run(_profile())))


def test_every_spec_identity_is_checked_on_some_framework():
    from normcheck import spec

    checked = {i.name for i, _, _ in audit.identity_pairs(adapters.implementations())}
    declared = {i.name for n in spec.names() for i in spec.get(n).identities}
    assert declared <= checked, declared - checked


def test_statistics_bound_is_consistent_with_the_output_bound():
    """Two bfloat16 values one ulp apart (kappa ~ 160): a zero output is within the output's own bound
    (as TensorFlow's tf.nn.moments-based instance norm returns), so the mean square 0 instead of
    var/(var+eps) ~ 0.28 must be within the statistics bound too (its second-order term), while a
    well-conditioned set still catches a mean square that is off."""
    import numpy as np

    from normcheck import properties
    from normcheck.adapters import Impl
    from normcheck.case import Case
    from normcheck.dtypes import np_dtype

    bf16 = np_dtype("bfloat16")
    x = np.array([0.5859375, 0.58203125]).reshape(1, 1, 2).astype(bf16)
    case = Case("instance_norm", x, {"eps": 1e-5, "use_input_stats": True})
    zeros = Impl("user", "instance_norm", "function", lambda x, **kw: np.zeros_like(x))
    assert properties.agreement(zeros, case).verdict == "pass"
    assert properties.statistics(zeros, case).verdict == "pass"
    wide = case.with_(x=np.array([-1.0, 1.0]).reshape(1, 1, 2).astype(bf16))
    halved = Impl(
        "user", "instance_norm", "function", lambda x, **kw: (np.sign(x.astype(np.float64)) / 2).astype(x.dtype)
    )
    assert properties.statistics(halved, wide).verdict == "fail"
