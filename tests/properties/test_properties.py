"""The property suite as parametrized tests: one test per framework/norm/form × property × dtype
and per identity pair, driven by the loaded Hypothesis profile (--hypothesis-profile). A check
passes when it ran (at least one example applied) and every example passed or deviated only as a
registered finding; a property that cannot apply to an implementation must skip every example,
for the reason that makes it inapplicable."""

from __future__ import annotations

import pytest

from normcheck import adapters, audit, autodiff, spec
from normcheck.profiles import Run
from normcheck.properties import PROPERTIES, gradients, state
from normcheck.testing import impl_params

#: Properties run at 16-bit dtypes here (the audit runs every property at every dtype).
SIXTEEN_BIT = {"bfloat16": ("agreement", "special_values")}

GRADIENTS = tuple(gradients.GRADIENT_PROPERTIES)
STATE = tuple(state.STATE_PROPERTIES)


def _inapplicable(impl, prop: str) -> tuple[str, ...]:
    """Why ``prop`` applies to no example of ``impl``, from what the spec and the adapter declare
    (the norm's set S, centering and mixture, running statistics, first- and second-order
    autodiff): the skip reasons it may report (the structural one, and any per-example reason the
    property checks before it), or () when it applies and at least one example must run."""
    s = spec.get(impl.norm)
    if prop in GRADIENTS:
        reasons = []
        if prop != "gradient_agreement" and s.mix:
            reasons.append("a mixture of statistics has no set S")
        if prop == "gradient_sums_to_zero" and not s.center:
            reasons.append("uncentered norm")
        if impl.framework not in autodiff.FRAMEWORKS:
            reasons.append("has no autodiff")
        if reasons:  # a reason checked first: the true gradient unrepresentable, eval mode (no dependence)
            reasons += ["is not representable", "eval mode: the statistics do not depend on the input"]
        return tuple(reasons)
    if prop == "gradient_second_order":
        missing = autodiff.second_order_missing(impl)  # the adapter has no (second-order) autodiff
        return (f"unsupported: {missing}",) if missing else ()
    if prop == "jvp":
        missing = autodiff.forward_mode_missing(impl)  # the adapter has no forward-mode autodiff
        return (f"unsupported: {missing}",) if missing else ()
    if prop in STATE:
        if not s.has_running_stats:
            return (f"{impl.norm} keeps no running statistics",)
        if not impl.running_stats and prop != "eval_uses_running":
            return ("keeps no running statistics", "an axis-set variant is checked without running statistics")
        return ()
    if prop == "fold_agreement" and (impl.framework, impl.norm, impl.form) != ("torch", "batch_norm", "module"):
        return ("folding is a transformation of torch modules",)
    if prop == "statistics" and s.mix:
        return ("a mixture of statistics fixes no set's output moments", "eval mode normalizes with running")
    if prop == "shift_invariance" and not s.center:
        return ("only centered norms with batch statistics are shift invariant",)
    if prop == "constant_input" and not s.center:
        return ("uncentered norm: a constant is not normalized to 0", "eps = 0")
    if prop == "batch_independence" and "N" in s.reduce:
        return ("the statistics run over the batch axis",)
    return ()


def _may_refuse(impl, prop: str) -> bool:
    """An implementation that keeps no running statistics may have no eval mode at all (flax
    InstanceNorm, jax.nn.standardize, ONNX InstanceNormalization): it refuses eval_uses_running's
    calls as unsupported; one that has an eval mode (tf.nn) runs it."""
    return prop == "eval_uses_running" and spec.get(impl.norm).has_running_stats and not impl.running_stats


def _property_params(*, applicable: bool):
    """(impl, prop, dtype) per native implementation and property (16-bit: :data:`SIXTEEN_BIT`,
    where the implementation supports the dtype), the applicable ones or the inapplicable ones; a
    framework that is not installed is one visibly skipped param."""
    out = []
    for p in impl_params(extended=False):  # extended: tests/adapters/test_adapters.py, thorough audit
        (impl,) = p.values
        if impl is None:
            out.append(pytest.param(None, None, None, id=p.id, marks=p.marks))
            continue
        for prop in PROPERTIES:
            if bool(_inapplicable(impl, prop)) == applicable:
                continue
            for dtype in ("float32", *(d for d, props in SIXTEEN_BIT.items() if prop in props)):
                if dtype in impl.dtypes:
                    out.append(pytest.param(impl, prop, dtype, id=f"{impl.id}-{prop}-{dtype}"))
    return out


def _ran(rec) -> bool:
    """The check ran: at least one example applied, and passed or deviated as a registered finding."""
    return rec.verdict in ("pass", "finding") and rec.examples > 0


def _explain(rec) -> str:
    return (
        f"{rec.impl} {rec.dtype} {rec.property}: {rec.verdict} after {rec.examples} examples: {rec.message}\n"
        f"counterexample: {rec.counterexample}\nrepro:\n{rec.repro}"
    )


#: Examples of the seeded draw for a check whose profile drew no applicable example: the most
#: often refused, torch's channels_last BatchNorm (4-D input only), takes about 1 drawn case in 5.
FALLBACK_EXAMPLES = 100


def _run(check, *, refusable: bool = False):
    """``check(run)`` under the loaded profile; where its draw held no applicable example (every
    one skipped: e.g. torch's channels_last kernels take 4-D input only, jax.nn.standardize no
    affine parameters), once more on a seeded draw of :data:`FALLBACK_EXAMPLES`, so that whether
    a check runs depends neither on the luck of a random draw nor on a small profile. A
    ``refusable`` check the implementation refused as unsupported is not drawn again."""
    rec = check(None)
    if rec.verdict == "skip" and not (refusable and rec.message.startswith("unsupported:")):
        rec = check(Run(profile=None, seed=0, max_examples=FALLBACK_EXAMPLES))
    return rec


@pytest.mark.parametrize(("impl", "prop", "dtype"), _property_params(applicable=True))
def test_property(impl, prop, dtype):
    refusable = _may_refuse(impl, prop)
    rec = _run(lambda run: audit.run_check(impl, prop, dtype, run), refusable=refusable)
    if refusable and rec.verdict == "skip":
        assert rec.message.startswith("unsupported:"), _explain(rec)  # no eval mode at all
        return
    assert _ran(rec), _explain(rec)


@pytest.mark.parametrize(("impl", "prop", "dtype"), _property_params(applicable=False))
def test_inapplicable_property_runs_no_example(impl, prop, dtype):
    """The other side of :func:`_inapplicable`: every example is skipped, for a reason it names."""
    rec = audit.run_check(impl, prop, dtype)
    assert rec.verdict == "skip" and rec.examples > 0, _explain(rec)
    assert any(reason in rec.message for reason in _inapplicable(impl, prop)), _explain(rec)


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
    rec = _run(lambda run: audit.run_identity(ident, lhs, rhs, "float32", run))
    assert _ran(rec), _explain(rec)


def test_every_spec_identity_is_checked_on_some_framework():
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
