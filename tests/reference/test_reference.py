"""The float64 reference against hand-computed values and the definitions, not against a framework."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from normcheck import reference as R
from normcheck import spec


def test_layer_norm_hand_computed():
    # mean 2.5, biased variance 1.25
    y = R.layer_norm(np.array([[1.0, 2, 3, 4]]), (4,), eps=0.0)
    expected = (np.array([1.0, 2, 3, 4]) - 2.5) / math.sqrt(1.25)
    np.testing.assert_allclose(y[0], expected, rtol=1e-15)


def test_group_norm_uses_contiguous_channel_blocks():
    # channels [1, 3 | 10, 14]: each group of 2 normalizes to [-1, 1] (var 1 and 4)
    x = np.array([1.0, 3, 10, 14]).reshape(1, 4, 1)
    np.testing.assert_allclose(R.group_norm(x, 2, eps=0.0).ravel(), [-1, 1, -1, 1], rtol=1e-15)
    # strided groups would pair (1, 10) and (3, 14) and give a different answer
    assert not np.allclose(R.group_norm(x[:, [0, 2, 1, 3]], 2, eps=0.0).ravel(), [-1, -1, 1, 1])


def test_group_norm_affine_is_per_channel():
    x = np.array([1.0, 3, 10, 14]).reshape(1, 4, 1)
    w, b = np.array([1.0, 2, 3, 4]), np.array([0.0, 1, 2, 3])
    np.testing.assert_allclose(R.group_norm(x, 2, w, b, eps=0.0).ravel(), [-1, 3, -1, 7])


def test_batch_norm_training_updates_running_stats_like_torch():
    x = np.array([[1.0, 10.0], [3.0, 14.0]])  # channel 0: [1, 3], channel 1: [10, 14]
    rm, rv = np.zeros(2), np.ones(2)
    y = R.batch_norm(x, rm, rv, training=True, momentum=0.5, eps=0.0)
    np.testing.assert_allclose(y, [[-1, -1], [1, 1]], rtol=1e-15)
    # new = (1 - m) old + m batch, the stored variance unbiased: c0 2/1 = 2, c1 8/1 = 8
    np.testing.assert_allclose(rm, [1.0, 6.0])
    np.testing.assert_allclose(rv, [1.5, 4.5])


def test_batch_norm_eval_uses_running_stats():
    x = np.array([[1.0, 10.0], [3.0, 14.0]])
    rm, rv = np.array([1.0, 2.0]), np.array([4.0, 16.0])
    y = R.batch_norm(x, rm, rv, training=False, eps=0.0)
    np.testing.assert_allclose(y, [[0.0, 2.0], [1.0, 3.0]])
    np.testing.assert_array_equal(rm, [1.0, 2.0])  # untouched in eval


def test_batch_norm_eval_without_running_stats_raises():
    with pytest.raises(ValueError, match="running_mean"):
        R.batch_norm(np.ones((2, 3)), None, None, training=False)


def test_batch_norm_training_needs_two_values_per_channel():
    with pytest.raises(ValueError, match="more than 1 value"):
        R.batch_norm(np.ones((1, 3)), None, None, training=True)


def test_instance_norm_running_stats_average_over_batch():
    # n=0: [1, 3] mean 2, unbiased var 2; n=1: [10, 14] mean 12, unbiased var 8
    x = np.array([[[1.0, 3.0]], [[10.0, 14.0]]])
    rm, rv = np.zeros(1), np.ones(1)
    y = R.instance_norm(x, rm, rv, use_input_stats=True, momentum=1.0, eps=0.0)
    np.testing.assert_allclose(y.ravel(), [-1, 1, -1, 1], rtol=1e-15)
    np.testing.assert_allclose(rm, [7.0])
    np.testing.assert_allclose(rv, [5.0])


def test_rms_norm_hand_computed_and_default_eps():
    y = R.rms_norm(np.array([[3.0, 4.0]]), (2,), eps=0.0)
    np.testing.assert_allclose(y[0], np.array([3.0, 4.0]) / math.sqrt(12.5), rtol=1e-15)
    # eps=None is the machine epsilon of the computation dtype (float32 here): visible on a tiny input
    x = np.full((1, 1), 1e-4, dtype=np.float32)
    eps32 = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(
        R.rms_norm(x, (1,)), 1e-4 / np.sqrt(np.float64(np.float32(1e-4)) ** 2 + eps32), rtol=1e-6
    )


def test_eps_is_inside_the_square_root():
    x = np.array([[0.0, 2.0]])  # var 1
    np.testing.assert_allclose(R.layer_norm(x, (2,), eps=3.0)[0], [-0.5, 0.5])  # 1 / sqrt(1 + 3)


def test_signatures_mirror_torch_functional():
    assert list(inspect.signature(R.batch_norm).parameters) == [
        "input",
        "running_mean",
        "running_var",
        "weight",
        "bias",
        "training",
        "momentum",
        "eps",
    ]
    assert str(inspect.signature(R.group_norm)) == "(input, num_groups, weight=None, bias=None, eps=1e-05)"
    assert str(inspect.signature(R.rms_norm)) == "(input, normalized_shape, weight=None, eps=None)"
    assert inspect.signature(R.instance_norm).parameters["use_input_stats"].default is True


#: Norms that normalize one set S. A mixture (Switchable Norm) fixes no set's moments; its
#: definition is checked by hand in tests/properties/test_variants.py.
SINGLE_SET = [n for n in spec.names() if not spec.get(n).mix]


def test_every_norm_but_the_mixture_has_one_set():
    assert set(spec.names()) - set(SINGLE_SET) == {"switchable_norm"}


@pytest.mark.parametrize("norm", SINGLE_SET)
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 6, 3, 2)])
def test_definition_mean_zero_and_variance_one_over_S(norm, shape):
    """Before affine, over every reduction set: mean 0 (centered norms) and mean square
    var / (var + eps) — checked on the plan's sets, computed independently of the reference."""
    s = spec.get(norm)
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=shape)
    kw = {"eps": 1e-3}
    if s.shape_arg == "normalized_shape":
        kw["normalized_shape"] = shape[1:]
    elif s.shape_arg == "num_groups":
        kw["num_groups"] = 2
    if s.batch_stats_flag:
        kw[s.batch_stats_flag] = True
    for k in ("running_mean", "running_var"):  # required positionals (batch_norm): no buffers
        if k in s.param_names and k not in s.defaults:
            kw[k] = None
    y = getattr(R, norm)(x, **kw)
    p = spec.plan(s, shape, normalized_shape=kw.get("normalized_shape"), num_groups=kw.get("num_groups"))
    v, yv = x.reshape(p.view_shape), y.reshape(p.view_shape)
    if s.center:
        var = v.var(axis=p.reduce, keepdims=True)
        np.testing.assert_allclose(yv.mean(axis=p.reduce), 0, atol=1e-12)
    else:
        var = (v**2).mean(axis=p.reduce, keepdims=True)
    np.testing.assert_allclose((yv**2).mean(axis=p.reduce, keepdims=True), var / (var + 1e-3), rtol=1e-12)


def test_inputs_are_not_modified_and_result_is_float64():
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    before = x.copy()
    y = R.group_norm(x, 3)
    np.testing.assert_array_equal(x, before)
    assert y.dtype == np.float64 and y.shape == x.shape


def test_one_pass_cancellation_does_not_affect_the_reference():
    # mean 1e8, std 1: a one-pass float64 E[x^2] - E[x]^2 loses all digits; the reference does not
    x = 1e8 + np.array([[-1.0, 1.0, -1.0, 1.0]])
    np.testing.assert_allclose(R.layer_norm(x, (4,), eps=0.0), [[-1, 1, -1, 1]], rtol=1e-9)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(spec.SpecError, match="divide"):
        R.group_norm(np.ones((2, 6, 3)), 4)
    with pytest.raises(spec.SpecError, match="normalized_shape"):
        R.layer_norm(np.ones((2, 6, 3)), (6,))
    with pytest.raises(ValueError, match="weight must have shape"):
        R.layer_norm(np.ones((2, 6, 3)), (3,), weight=np.ones(6))


def test_a_sixth_norm_needs_only_a_spec_file(tmp_path):
    """A new "normalize over some axis set" norm is a data file: the reference builds its function."""
    (tmp_path / "channel_norm.toml").write_text(
        """
name = "channel_norm"
title = "Channel normalization"
formula = "y = (x - mean_C(x)) / sqrt(var_C(x) + eps) * weight[c] + bias[c]"
[signature]
params = ["input", "weight=None", "bias=None", "eps=1e-06"]
[axes]
layout = ["N", "C", "*spatial"]
reduce = ["C"]
[statistics]
center = true
variance = "biased"
eps = "inside_sqrt"
default_eps = 1e-6
[affine]
axes = ["C"]
optional = true
"""
    )
    new = spec.load(str(tmp_path))["channel_norm"]
    f = R.function(new)
    assert str(inspect.signature(f)) == "(input, weight=None, bias=None, eps=1e-06)"
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 3))
    y = f(x)
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm"])
@pytest.mark.parametrize("scale", [1e3, 1e20, 1e30, 8e37])
def test_float32_form_scales_each_set_so_sums_of_squares_never_overflow(norm, scale):
    """The float32-faithful form computes the moments of each set scaled by a power of two: right to a few
    float32 ulps at magnitudes where an unscaled float32 n x**2 is inf."""
    x = np.random.default_rng(3).standard_normal((2, 4, 3))
    x = (scale * x / np.abs(x).max()).astype(np.float32)
    kw = {
        "layer_norm": {"normalized_shape": [4, 3]},
        "rms_norm": {"normalized_shape": [3]},
        "group_norm": {"num_groups": 2},
    }.get(norm, {})
    if norm == "batch_norm":
        kw.update(running_mean=None, running_var=None, training=True)
    y32 = R.function(norm, faithful=True)(x, **kw)
    y64 = R.function(norm)(x.astype(np.float64), **kw)
    assert y32.dtype == np.float32 and np.isfinite(y32).all()
    np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5)
