"""Gradient properties on a user's target (issue 15, item 1): ``normcheck check`` differentiates the
target with its own framework's autodiff (torch autograd, custom ``autograd.Function``s and module
parameters included; ``jax.vjp``; ``tf.GradientTape``, Keras layer classes too) under the native
implementations' error model, and second order (torch double backward, JAX forward-over-reverse)
against the float64 reference's Hessian-vector product. A NumPy target has no autodiff: said once,
and a check of gradient properties alone tests nothing (exit 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normcheck import adapters, autodiff, checker, cli, target
from normcheck.adapters import Impl
from normcheck.case import Case, fixed_cases
from normcheck.properties import gradients, second_order
from tests.doubles import gradient as D

GRADS = ["gradient_agreement", "gradient_sums_to_zero", "gradient_orthogonal"]
FAST = {"profile": "ci", "dtypes": ["float32"]}
DOUBLES = str(Path(__file__).parents[1] / "doubles" / "gradient.py")


def _check(obj, norm, **kw):
    for k, v in FAST.items():
        kw.setdefault(k, v)
    return checker.check(obj, norm, **kw)


def _verdicts(report) -> dict[str, str]:
    return {r.property: r.verdict for r in report.records}


def _user(obj, norm, framework=None, **kw) -> Impl:
    t = target.wrap(obj, norm, framework=framework, **kw)
    return Impl("user", norm, t.form, t, dtypes=("float32",), runs_on=t.framework)


# --- torch -------------------------------------------------------------------------------------------


def test_torch_statistics_under_no_grad_deviate_on_the_gradient_only():
    pytest.importorskip("torch")
    r = _check(D.layer_norm_no_grad_stats, "layer_norm", properties=["agreement", *GRADS])
    v = _verdicts(r)
    assert v["agreement"] == "pass" and v["gradient_agreement"] == "fail", r.summary()
    assert r.verdict == "deviates" and r.framework == "torch"
    fail = next(x for x in r.failures if x.property == "gradient_agreement")
    assert fail.message.startswith("dinput:") and fail.counterexample and "Case.from_json" in fail.repro


def test_torch_rms_norm_with_a_detached_rsqrt_deviates():
    pytest.importorskip("torch")
    r = _check(D.rms_norm_detached_rsqrt, "rms_norm", properties=["agreement", "gradient_agreement"])
    assert _verdicts(r) == {"agreement": "pass", "gradient_agreement": "fail"}, r.summary()


def test_custom_function_with_a_correct_backward_conforms():
    pytest.importorskip("torch")
    r = _check(D.layer_norm_custom_function, "layer_norm", properties=["agreement", *GRADS, "gradient_second_order"])
    assert r.conforms, r.summary()
    assert {x.property for x in r.ran} == {"agreement", *GRADS, "gradient_second_order"}


def test_custom_function_forgetting_the_mean_term_deviates_with_its_counterexample():
    pytest.importorskip("torch")
    r = _check(D.layer_norm_custom_function_no_mean_term, "layer_norm", properties=["agreement", *GRADS])
    v = _verdicts(r)
    assert v["agreement"] == "pass" and v["gradient_agreement"] == "fail", r.summary()
    assert v["gradient_sums_to_zero"] == "fail"  # the missing term is exactly what sums to zero
    fail = next(x for x in r.failures if x.property == "gradient_agreement")
    assert fail.counterexample and "fn" in fail.repro
    out = r.summary()
    assert "FAIL gradient_agreement (float32): dinput:" in out and "shrunk case:" in out


def test_module_parameters_are_differentiated():
    """A module's weight and bias gradients are checked: torch's own LayerNorm passes on all three,
    a bias gradient doubled (exact output) deviates on dbias, a detached weight on dweight."""
    pytest.importorskip("torch")
    import torch

    case = next(c for c in fixed_cases("layer_norm", "float32") if c.weight is not None and c.bias is not None)
    good = gradients.gradient_agreement(_user(torch.nn.LayerNorm, "layer_norm"), case)
    assert good.verdict == "pass" and set(good.details) == {"dinput", "dweight", "dbias"}, good
    bad = gradients.gradient_agreement(_user(D.LayerNormTwiceBiasGradient, "layer_norm"), case)
    assert bad.verdict == "fail" and bad.message.startswith("dbias:"), bad
    frozen = gradients.gradient_agreement(_user(D.LayerNormFrozenWeight, "layer_norm"), case)
    assert frozen.verdict == "fail" and frozen.message.startswith("dweight:"), frozen
    r = _check(D.LayerNormTwiceBiasGradient, "layer_norm", properties=["agreement", "gradient_agreement"])
    assert _verdicts(r) == {"agreement": "pass", "gradient_agreement": "fail"}, r.summary()
    assert r.form == "module"


def test_the_gradient_path_leaves_the_forward_path_alone():
    """native_call builds a fresh grad-enabled layer; the NumPy call still runs under no_grad with
    frozen parameters, and a continuing instance is not replaced by the gradient path's."""
    torch = pytest.importorskip("torch")
    t = target.wrap(torch.nn.BatchNorm1d, "batch_norm")
    case = next(c for c in fixed_cases("batch_norm", "float32") if c.running_mean is not None and c.use_batch_stats)
    rm, rv = case.running_mean.copy(), case.running_var.copy()
    t(case.x.copy(), rm, rv, case.weight, case.bias, True, case.args.get("momentum", 0.1), case.args.get("eps", 1e-5))
    kept = t._last
    got = autodiff.vjp(Impl("user", "batch_norm", "module", t, runs_on="torch"), case, gradients.cotangent(case))
    assert set(got) == {"input", "weight", "bias"} and np.abs(got["weight"]).max() > 0
    assert t._last is kept and all(not p.requires_grad for p in kept[1].parameters())


# --- second order --------------------------------------------------------------------------------------


def test_torch_native_layer_norm_double_backward_agrees():
    pytest.importorskip("torch")
    impl = next(i for i in adapters.get("torch").implementations() if i.id == "torch/layer_norm/functional")
    with second_order.every_case():
        for case in fixed_cases("layer_norm", "float32"):
            r = second_order.gradient_second_order(impl, case)
            assert r.verdict == "pass" and r.observed < 1, (case.describe(), r.message)


def test_a_backward_that_leaves_the_graph_deviates_on_second_order_only():
    pytest.importorskip("torch")
    props = ["gradient_agreement", "gradient_second_order"]
    r = _check(D.layer_norm_custom_function_detached_backward, "layer_norm", properties=props)
    assert _verdicts(r) == {"gradient_agreement": "pass", "gradient_second_order": "fail"}, r.summary()
    fail = r.failures[0]
    assert fail.message.startswith("d2x:") and fail.counterexample


def test_second_order_skips_large_cases_outside_every_case():
    pytest.importorskip("torch")
    impl = next(i for i in adapters.get("torch").implementations() if i.id == "torch/layer_norm/functional")
    big = next(c for c in fixed_cases("layer_norm", "float32") if c.x.size > second_order.MAX_SIZE)
    assert second_order.gradient_second_order(impl, big).verdict == "skip"
    with second_order.every_case():
        assert second_order.gradient_second_order(impl, big).verdict == "pass"


def test_the_reference_second_derivative_is_the_derivative_of_the_reference_gradient():
    """The complex-step H v against a central difference of the analytic float64 gradient."""
    for norm in ("layer_norm", "batch_norm", "group_norm", "rms_norm", "switchable_norm"):
        for case in fixed_cases(norm, "float64")[:3]:
            dy, v = gradients.cotangent(case), gradients.direction(case)
            h = 1e-6
            up = case.with_(x=case.x + h * v)
            down = case.with_(x=case.x - h * v)
            fd = (
                gradients.reference_grads(norm, up, dy)["input"] - gradients.reference_grads(norm, down, dy)["input"]
            ) / (2 * h)
            got = gradients.reference_hvp(case, dy, v)
            assert np.allclose(got, fd, rtol=1e-5, atol=1e-6 * np.max(np.abs(fd))), (norm, case.describe())


# --- JAX, TensorFlow ---------------------------------------------------------------------------------


def test_jax_stop_gradient_statistics_deviate():
    pytest.importorskip("jax")
    r = _check(D.jax_layer_norm_stop_gradient, "layer_norm", properties=["agreement", "gradient_agreement"])
    assert r.framework == "jax" and _verdicts(r) == {"agreement": "pass", "gradient_agreement": "fail"}, r.summary()


def test_jax_function_conforms_to_first_and_second_order():
    pytest.importorskip("jax")
    r = _check(D.jax_layer_norm, "layer_norm", properties=["gradient_agreement", "gradient_second_order"])
    assert r.conforms, r.summary()


def test_flax_linen_module_gradients_through_apply():
    pytest.importorskip("flax")
    import flax.linen as nn

    class MyLayerNorm(nn.LayerNorm):
        pass

    case = next(c for c in fixed_cases("layer_norm", "float32") if c.weight is not None)
    r = gradients.gradient_agreement(_user(MyLayerNorm, "layer_norm"), case)
    assert r.verdict == "pass" and {"dinput", "dweight"} <= set(r.details), r


def test_tensorflow_stop_gradient_statistics_deviate():
    pytest.importorskip("tensorflow")
    good, stopped, keras_stopped = D.tensorflow_doubles()
    r = _check(stopped, "layer_norm", properties=["agreement", "gradient_agreement"])
    assert r.framework == "tensorflow" and _verdicts(r) == {"agreement": "pass", "gradient_agreement": "fail"}
    assert _check(good, "layer_norm", properties=["gradient_agreement"]).conforms
    r = _check(keras_stopped, "layer_norm", properties=["agreement", "gradient_agreement"])
    assert r.form == "module" and _verdicts(r) == {"agreement": "pass", "gradient_agreement": "fail"}, r.summary()


def test_tensorflow_second_order_by_nested_tapes():
    """Nested tapes: a LayerNorm of plain reductions is right to the second order; one through
    tf.nn.moments (whose stop_gradient on the mean breaks second derivatives) deviates, and the
    check names the registered finding."""
    pytest.importorskip("tensorflow")
    good, _, _ = D.tensorflow_doubles()
    plain = D.tensorflow_plain_layer_norm()
    x = np.array([[0.0, 1.0, 3.0], [2.0, -1.0, 0.5]], np.float32)
    case = Case("layer_norm", x, {"normalized_shape": (3,), "eps": 1e-5})
    assert second_order.gradient_second_order(_user(plain, "layer_norm", "tensorflow"), case).verdict == "pass"
    assert second_order.gradient_second_order(_user(good, "layer_norm", "tensorflow"), case).verdict == "fail"
    r = _check(good, "layer_norm", properties=["gradient_second_order"])
    rec = next(x for x in r.records if x.property == "gradient_second_order")
    assert rec.verdict == "finding" and rec.finding == "tf-moments-second-order-stop-gradient", r.summary()
    # the verdict conforms (the framework's own deviation), and its headline says which finding it met
    assert r.conforms and r.headline().endswith(
        "; 1 check met registered findings of tensorflow: tf-moments-second-order-stop-gradient"
    )
    assert _check(plain, "layer_norm", properties=["gradient_second_order"]).conforms


# --- NumPy: no autodiff -------------------------------------------------------------------------------


def test_a_numpy_target_has_no_autodiff_said_once(capsys):
    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        axes = tuple(range(-len(tuple(normalized_shape)), 0))
        x = input.astype(np.float64)
        y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
        y = y if weight is None else y * weight
        return (y if bias is None else y + bias).astype(input.dtype)

    r = _check(layer_norm, "layer_norm", framework="numpy", properties=["gradient_agreement", "gradient_sums_to_zero"])
    assert r.verdict == "untested" and not r.conforms
    assert r.notes.count("numpy has no autodiff: the gradient properties are not applicable") == 1
    assert all(x.message == "unsupported: numpy has no autodiff" for x in r.records)


def test_the_cli_exits_1_for_gradient_properties_on_a_numpy_target(capsys):
    argv = ["check", "tests/doubles/check.py:group_norm_two_pass", "--norm", "group_norm", "--framework", "numpy"]
    argv += ["--profile", "ci", "--dtypes", "float32", "--properties", "gradient_agreement,gradient_sums_to_zero"]
    code = cli.main([*argv, "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "UNTESTED: nothing was tested" in out and "numpy has no autodiff" in out
    assert "CONFORMS" not in out


def test_the_cli_shows_a_gradient_deviation_of_a_torch_function(capsys):
    pytest.importorskip("torch")
    argv = ["check", f"{DOUBLES}:layer_norm_no_grad_stats", "--norm", "layer_norm", "--profile", "ci"]
    code = cli.main([*argv, "--dtypes", "float32", "--properties", "agreement,gradient_agreement", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert (
        "DEVIATES: 1 property fail (gradient_agreement)" in out and "FAIL gradient_agreement (float32): dinput:" in out
    )
