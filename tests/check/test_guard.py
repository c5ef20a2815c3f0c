"""The per-call timeout allows a call with inputs of a new shape (where a JIT-compiled target
compiles) NEW_SIGNATURE_FACTOR times as long; a call with shapes already seen gets the timeout itself."""

from __future__ import annotations

import time

import numpy as np
import pytest

from normcheck.target.errors import TargetHung
from normcheck.target.guard import NEW_SIGNATURE_FACTOR, CallClock, Guard, allowance


def _slow(x, seconds):
    time.sleep(seconds)
    return x


def test_a_new_input_shape_is_allowed_the_compile_factor_and_a_seen_one_is_not():
    x = np.zeros((3, 7, 11, 13), np.float32)  # a shape no other test calls with
    g = Guard(0.25)
    assert g.call(_slow, x, 0.6) is x  # new: allowed 0.25 * 12 = 3 s
    with pytest.raises(TargetHung, match=r"within 0\.25 s"):
        g.call(_slow, x, 0.6)  # seen: 0.25 s


def test_the_allowance_follows_shapes_and_dtypes():
    a, b = np.zeros((5, 9, 17), np.float32), np.zeros((5, 9, 17), np.float16)
    assert allowance((a,), {}) == NEW_SIGNATURE_FACTOR
    assert allowance((a.copy(),), {}) == 1.0  # the same shape and dtype
    assert allowance((b,), {}) == NEW_SIGNATURE_FACTOR  # another dtype compiles again
    assert allowance((a,), {"eps": 1e-5}) == NEW_SIGNATURE_FACTOR


def test_each_derivative_mode_gets_the_first_call_allowance_again():
    """A jvp (or vjp, hvp) of a user's target calls it with a shape its plain calls have seen; the
    first such call initializes the framework's forward mode (torch.func, jax.jvp) and is allowed the
    factor again, once per mode."""
    from normcheck import autodiff

    a = np.zeros((7, 3, 19), np.float32)
    assert allowance((a,), {}) == NEW_SIGNATURE_FACTOR
    assert allowance((a,), {}) == 1.0
    token = autodiff.MODE.set("jvp")
    try:
        assert allowance((a,), {}) == NEW_SIGNATURE_FACTOR
        assert allowance((a,), {}) == 1.0
    finally:
        autodiff.MODE.reset(token)
    assert allowance((a,), {}) == 1.0  # back to plain calls, seen


def test_a_worker_call_writes_its_allowance_on_the_clock(tmp_path):
    clock = CallClock.create(str(tmp_path / "clock"))
    clock.start(NEW_SIGNATURE_FACTOR)
    time.sleep(0.05)
    assert not clock.overdue(0.01)  # 0.05 s < 0.01 s * 12
    assert clock.overdue(0.001)
    clock.stop()
    assert not clock.overdue(0.0001) and clock.running_for() == 0.0
