"""Issue 8: Switchable Normalization (a mixture spec) and axis-set variants (``--axes``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

from normcheck import checker, error_model, properties, reference, spec, strategies
from normcheck.adapters.base import Impl
from normcheck.case import Case, fixed_cases
from tests.doubles import check as D

NEG = -np.inf


def _x(shape, seed=0, offset=0.0):
    return np.random.default_rng(seed).normal(size=shape) + offset


# --- switchable norm: the reference ---------------------------------------------------------------


def test_switchable_norm_spec_is_a_mixture_of_three_components():
    s = spec.get("switchable_norm")
    assert [c.name for c in s.mix] == ["instance", "layer", "batch"]
    assert [c.running for c in s.mix] == [False, False, True]
    assert s.array_params == ("mean_weight", "var_weight", "running_mean", "running_var", "weight", "bias")
    p = spec.plan(s, (2, 3, 4, 5))
    assert spec.component_axes(s, p) == ((2, 3), (1, 2, 3), (0, 2, 3))


def test_switchable_norm_by_hand():
    """Mixed statistics computed here with plain NumPy from the paper's formula."""
    x = _x((3, 4, 5), offset=2.0)
    lm, lv = np.array([0.3, -1.0, 0.5]), np.array([1.0, 0.2, -0.7])
    wm, wv = np.exp(lm) / np.exp(lm).sum(), np.exp(lv) / np.exp(lv).sum()
    sets = [(2,), (1, 2), (0, 2)]
    mean = sum(w * x.mean(a, keepdims=True) for w, a in zip(wm, sets, strict=True))
    var = sum(w * x.var(a, keepdims=True) for w, a in zip(wv, sets, strict=True))
    g, b = np.array([1.0, -0.5, 2.0, 0.7]), np.array([0.1, 0.2, -0.3, 0.0])
    want = (x - mean) / np.sqrt(var + 1e-3) * g[:, None] + b[:, None]
    rm, rv = np.zeros(4), np.ones(4)
    got = reference.switchable_norm(x, lm, lv, rm, rv, g, b, training=True, momentum=0.25, eps=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    n = 3 * 5  # the BN component's set: unbiased stored variance, torch momentum
    np.testing.assert_allclose(rm, 0.25 * x.mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * x.var((0, 2)) * n / (n - 1), rtol=1e-12)


def test_switchable_norm_eval_replaces_only_the_batch_component():
    x = _x((2, 3, 6))
    lm = lv = np.zeros(3)
    rm, rv = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.5, 3.0])
    got = reference.switchable_norm(x, lm, lv, rm.copy(), rv.copy(), training=False)
    mean = (x.mean(2, keepdims=True) + x.mean((1, 2), keepdims=True) + rm[:, None]) / 3
    var = (x.var(2, keepdims=True) + x.var((1, 2), keepdims=True) + rv[:, None]) / 3
    np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12)


@pytest.mark.parametrize(
    ("logits", "rhs"),
    [
        ([0.0, NEG, NEG], lambda x: reference.instance_norm(x)),
        ([NEG, 0.0, NEG], lambda x: reference.layer_norm(x, x.shape[1:])),
        ([NEG, NEG, 0.0], lambda x: reference.batch_norm(x, None, None, training=True)),
    ],
    ids=["in", "ln", "bn"],
)
def test_one_hot_weights_reduce_to_a_component_exactly(logits, rhs):
    x = _x((3, 4, 2, 3), offset=5.0)
    lg = np.array(logits)
    got = reference.switchable_norm(x, lg, lg, None, None, training=True)
    assert np.array_equal(got, rhs(x))


def test_switchable_norm_rejects_logits_of_the_wrong_length():
    with pytest.raises(ValueError, match="mean_weight must be 3 logits"):
        reference.switchable_norm(_x((2, 3, 4)), np.zeros(2), np.zeros(3), None, None, training=True)


def test_mixture_error_model_bounds_a_float32_computation_and_not_a_wrong_one():
    for c in fixed_cases("switchable_norm"):
        s = error_model.scale(c.norm, c.x, use_batch_stats=c.use_batch_stats, **c.kwargs())
        ref = c.reference()
        f32 = reference.function("switchable_norm", faithful=True)(c.x, **c.kwargs())
        assert error_model.compare(f32, ref.y, s, "float32").ok
        wrong = c.with_(mean_weight=c.mean_weight[::-1].copy())  # mixed with the wrong weights
        assert not error_model.compare(wrong.reference().y, ref.y, s, "float32").ok


def test_switchable_norm_float32_form_passes_the_applicable_properties():
    """Each applicable property passes on every drawn case it applies to, and runs on some."""
    impl = Impl("numpy", "switchable_norm", "float32", reference.function("switchable_norm", faithful=True))
    names = ("agreement", "shift_invariance", "scale_equivariance", "permutation_equivariance", "special_values")
    ran = dict.fromkeys(names, 0)

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(strategies.cases("switchable_norm", dtypes=("float32", "bfloat16")))
    def check(case):
        for name in names:
            r = properties.PROPERTIES[name](impl, case)
            assert r.verdict in ("pass", "skip"), (name, r.message, case.describe())
            ran[name] += r.verdict == "pass"
        assert properties.statistics(impl, case).verdict == "skip"  # no set's moments are fixed by a mixture

    check()
    assert all(ran.values()), ran


@settings(max_examples=20, deadline=None, derandomize=True)
@given(strategies.identity_cases("sn_onehot_ln_is_ln", dtypes=("float32",)))
def test_identity_cases_carry_one_hot_logits(case):
    assert np.array_equal(case.mean_weight, np.array([NEG, 0.0, NEG], np.float32))
    ident = next(i for i in spec.get("switchable_norm").identities if i.name == "sn_onehot_ln_is_ln")
    f = reference.function
    lhs = Impl("numpy", "switchable_norm", "float32", f("switchable_norm", faithful=True))
    rhs = Impl("numpy", "layer_norm", "float32", f("layer_norm", faithful=True))
    assert properties.identity(ident, lhs, rhs, case).verdict == "pass"


# --- switchable norm: checking user implementations ------------------------------------------------


def test_check_switchable_norm_double_conforms():
    r = checker.check(D.switchable_norm, "switchable_norm", "numpy", profile="ci", dtypes=["float32"])
    assert r.conforms, r.summary()


def test_check_switchable_norm_with_biased_buffers_is_diagnosed():
    r = checker.check(D.switchable_norm_authors_buffers, "switchable_norm", "numpy", profile="ci", dtypes=["float32"])
    assert not r.conforms
    assert {f.property for f in r.failures} >= {"running_stats_steps"}
    assert r.diagnosis is not None and r.diagnosis.best == "running_var_biased", r.diagnosis


def test_check_switchable_norm_with_derived_statistics_fails_agreement():
    """The authors' shortcut (LN/BN variance as mean(var_in + mean_in^2) - mean^2) cancels."""
    x = _x((2, 3, 4), seed=1, offset=3e3).astype(np.float32)
    lg = np.zeros(3, np.float32)
    c = Case("switchable_norm", x, {"training": True, "eps": 1e-5}, mean_weight=lg, var_weight=lg)
    impl = Impl("user", "switchable_norm", "function", D.switchable_norm_derived)
    assert properties.agreement(impl, c).verdict == "fail"
    ok = Impl("user", "switchable_norm", "function", D.switchable_norm)
    assert properties.agreement(ok, c).verdict == "pass"


# --- axis-set variants --------------------------------------------------------------------------------


def test_plan_with_explicit_axes():
    p = spec.plan("layer_norm", (2, 3, 4, 5), normalized_shape=(3,), reduce_axes=(1,))
    assert p.reduce == (1,) and p.affine_shape == (3,) and p.affine_broadcast == (1, 3, 1, 1)
    p = spec.plan("batch_norm", (2, 7, 3), reduce_axes=(0, 1))  # BatchNorm over (N, L) of (N, L, C)
    assert p.reduce == (0, 1) and p.affine_shape == (3,)
    with pytest.raises(spec.SpecError, match="does not match the sizes"):
        spec.plan("layer_norm", (2, 3, 4), normalized_shape=(4,), reduce_axes=(1,))
    with pytest.raises(spec.SpecError, match="grouped channels"):
        spec.plan("group_norm", (2, 4, 3), num_groups=2, reduce_axes=(1,))


def test_axes_reference_is_convnext_layer_norm():
    x = _x((2, 3, 4, 5), offset=1.0)
    w, b = np.array([1.0, 2.0, -1.0]), np.array([0.0, 0.5, 1.0])
    u = x.mean(1, keepdims=True)
    want = (x - u) / np.sqrt(((x - u) ** 2).mean(1, keepdims=True) + 1e-6) * w[:, None, None] + b[:, None, None]
    got = reference.function("layer_norm", axes=(1,))(x, (3,), w, b, eps=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(strategies.cases("layer_norm", axes=(1,), dtypes=("float32",)))
def test_axes_cases(case):
    assert case.args["reduce_axes"] == (1,) and case.args["normalized_shape"] == (case.x.shape[1],)
    assert "reduce_axes" not in case.kwargs()  # never passed to the implementation
    assert case.running_mean is None


def test_axes_strategy_validation():
    with pytest.raises(InvalidArgument):
        strategies.cases("group_norm", axes=(1,)).validate()
    with pytest.raises(InvalidArgument):
        strategies.cases("layer_norm", axes=(1, 1)).validate()


def test_convnext_layer_norm_passes_with_axes_and_fails_as_layer_norm():
    ok = checker.check(D.layer_norm_channels_first, "layer_norm", "numpy", profile="ci", axes=(1,))
    assert ok.conforms, ok.summary()
    bad = checker.check(D.layer_norm_channels_first, "layer_norm", "numpy", profile="ci", dtypes=["float32"])
    assert not bad.conforms
    assert bad.diagnosis is not None and bad.diagnosis.best == "axes_1", bad.diagnosis
    assert "--axes 1" in bad.diagnosis.text


def test_axes_cli(capsys):
    from normcheck import cli

    code = cli.main(
        [
            *("check", "tests/doubles/check.py:layer_norm_channels_first", "--norm", "layer_norm", "--axes", "1"),
            *("--profile", "ci", "--dtypes", "float32", "--quiet"),
        ]
    )
    assert code == 0, capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "tests/doubles/check.py:layer_norm_channels_first", "--norm", "layer_norm", "--axes", "x"])
    assert e.value.code == 2
    assert "not a comma-separated list" in capsys.readouterr().err
