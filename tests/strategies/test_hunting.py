"""Failure modes hunted on purpose (normcheck.hunting): each mode draws inside its failure region, one
case of each applicable mode runs ahead of every native check's own draws, from the run's seed."""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import dtypes, error_model, hunting, spec
from normcheck.adapters.base import configuration
from normcheck.adapters.tensorflow import keras_configs
from normcheck.audit import driver
from normcheck.profiles import Run
from tests.sampling import draw


def _amax(case) -> float:
    return float(np.max(np.abs(case.x.astype(np.float64))))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_each_mode_draws_inside_its_failure_region(norm, dtype):
    modes = hunting.modes(norm, dtype)
    assert {"near_constant", "extreme"} <= set(modes)
    assert ("one_element" in modes) == (norm != "rms_norm")  # no mean to make exact
    assert ("underflow" in modes) == (dtype != "float16")
    assert ("momentum_small" in modes) == (norm in ("batch_norm", "instance_norm"))
    assert ("running_16bit" in modes) == (norm in ("batch_norm", "instance_norm") and dtype != "float32")
    assert ("near_constant_groups" in modes) == (norm == "group_norm" and dtype == "float32")
    for name, strategy in modes.items():
        for case in draw(strategy, 8, derandomize=True):
            assert case.dtype == dtype
            if name == "near_constant":
                assert case.regime == "near_constant" and 1e-12 <= case.args["eps"] <= 1e-10
            elif name == "extreme":
                assert case.regime == "extreme" and case.x.size <= 16
                assert _amax(case) >= (5180 if dtype == "float16" else 1e15) * 0.99
            elif name == "underflow":
                assert case.x.size <= 16 and case.plan().reduce_size >= 2
                assert 1e15 * 0.99 <= _amax(case) <= 1e18 * 1.01
            elif name == "one_element":
                if case.args.get("training") is not True and case.args.get("use_input_stats") is not True:
                    assert case.plan().reduce_size == 1
                w, b = (float(np.abs(a.astype(np.float64)).max()) for a in (case.weight, case.bias))
                eps = spec.get(norm).resolve_eps(case.args.get("eps"), case.x.dtype)
                ratio = _amax(case) * w / (float(np.abs(case.bias.astype(np.float64)).min()) * np.sqrt(eps))
                assert b >= 0.1 and 1e3 * 0.95 <= ratio <= 4e3 * 1.05  # the input's own rounding aside
            elif name == "momentum_small":
                m = case.args["momentum"]
                assert 1e-6 * 0.99 <= m <= 1e-4 and case.running_mean is not None
                assert abs(float(case.x.astype(np.float64).mean())) > 1e3 * float(np.abs(case.running_mean).max())
            elif name == "momentum_large":
                assert 1 - 1e-4 <= case.args["momentum"] <= 1 - 1e-6 * 0.99 and case.running_var is not None
            elif name == "running_16bit":
                _assert_16bit_buffers_deviate(case)
            elif name == "near_constant_groups":
                _assert_one_pass_variance_cancels(case)


def _assert_16bit_buffers_deviate(case):
    """A training step on a tiny batch whose updated buffers, rounded to the input's 16-bit dtype,
    err by at least 10x λ of what the model allows float32 buffers, in Keras's full 16-bit policy."""
    assert case.regime == "tiny" and case.use_batch_stats and _amax(case) < 1e-2
    assert 0.05 <= case.args["momentum"] <= 0.5 and case.running_var is not None
    assert configuration(keras_configs("batch_norm"), case.variant)["dtype_policy"] == "full"
    p = case.plan()
    x = case.x.astype(np.float64).reshape(p.view_shape)
    m, rm, rv = case.args["momentum"], case.running_mean.astype(np.float64), case.running_var.astype(np.float64)
    bm = x.mean(axis=p.reduce).reshape(-1, rm.size).mean(axis=0)  # instance_norm: averaged over the batch
    bv = x.var(axis=p.reduce, ddof=1).reshape(-1, rv.size).mean(axis=0)
    new_m, new_v = (1 - m) * rm + m * bm, (1 - m) * rv + m * bv
    sm, sv = error_model.running_scales_of(case, new_m, new_v)
    u = dtypes.unit_roundoff("float32")

    def rounding(a, s):
        return np.abs(a.astype(dtypes.np_dtype(case.dtype)).astype(np.float64) - a) / (u * s)

    worst = max(rounding(new_m, sm).max(), rounding(new_v, sv).max())
    assert worst >= 10 * error_model.MODEL.lam


def _assert_one_pass_variance_cancels(case):
    """Rank 4 (channels and spatial positions >= 2), >= 6 groups of 4-16 elements near-constant at
    |mean| / std in [2, 3] / sqrt(u), eps in [1e-12, 1e-10]; a float32 one-pass variance errs by more
    than the variance itself in some group."""
    _, c, h, w = case.x.shape
    p = case.plan()
    assert case.regime == "near_constant" and 1e-12 <= case.args["eps"] <= 1e-10
    assert c >= 2 and h * w >= 2 and 4 <= p.reduce_size <= 16 and case.x.size // p.reduce_size >= 6
    x = case.x.astype(np.float64)
    ratio = abs(x.mean()) / x.std() * np.sqrt(dtypes.unit_roundoff("float32"))
    assert 10 <= abs(x.mean()) <= 1e4 * 1.01 and 2 * 0.99 <= ratio <= 3 * 1.01
    v = case.x.reshape(p.view_shape)
    mean = v.mean(axis=p.reduce, dtype=np.float32)
    one_pass = ((v * v).mean(axis=p.reduce, dtype=np.float32) - mean * mean).astype(np.float64)
    true = v.astype(np.float64).var(axis=p.reduce)
    assert np.max(np.abs(one_pass - true) / true) >= 1


def test_norms_without_running_buffers_or_implementations_without_them_hunt_no_momentum():
    running = {"momentum_small", "momentum_large", "running_16bit"}
    assert not running & set(hunting.modes("layer_norm", "bfloat16"))
    assert not running & set(hunting.modes("batch_norm", "bfloat16", running_stats=False))


def test_hunted_cases_are_the_seeds_and_run_first_in_every_native_check():
    from normcheck.adapters import get

    impl = next(i for i in get("numpy").implementations() if i.norm == "batch_norm")
    run = Run("ci", 5)
    first = driver.hunted("batch_norm", "float32", None, run)
    assert len(first) == len(hunting.modes("batch_norm", "float32"))
    assert [c.to_json() for c in driver.hunted("batch_norm", "float32", None, Run("ci", 5))] == [
        c.to_json() for c in first
    ]  # a seed draws the same cases
    other = driver.hunted("batch_norm", "float32", None, Run("ci", 6))
    assert [c.to_json() for c in other] != [c.to_json() for c in first]
    seen = []
    driver.watch_cases(seen.append)
    try:
        rec = driver.run_check(impl, "agreement", "float32", run)
    finally:
        driver.watch_cases(None)
    assert rec.verdict == "pass" and rec.examples == 15 + len(first)
    assert [c.to_json() for c in seen[: len(first)]] == [c.to_json() for c in first]


def test_a_users_target_draws_no_hunted_case():
    import dataclasses

    from normcheck.adapters import get

    impl = next(i for i in get("numpy").implementations() if i.norm == "layer_norm")
    user = dataclasses.replace(impl, framework="user")
    seen = []
    driver.watch_cases(seen.append)
    try:
        driver.run_check(user, "agreement", "float32", Run("ci", 5))
    finally:
        driver.watch_cases(None)
    assert len(seen) == 15 and all(c.regime not in ("extreme", "near_constant") for c in seen)
