"""The harness's shared computations give what the plain ones give, bit for bit: ``expected.of``
(one moments pass for the reference output and the model's scale) against ``Case.reference`` and
``error_model.scale``, and a prepared ``error_model.Expectation`` against ``compare`` per output."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from normcheck import error_model, expected, spec, strategies
from normcheck.case import Case
from tests.sampling import draw


def _plain_scale(case: Case) -> np.ndarray:
    kw = {k: v for k, v in case.args.items() if k != "reduce_axes"}
    kw.update({k: getattr(case, k, None) for k in case.spec.array_params})
    ra = case.args.get("reduce_axes")
    return error_model.scale(
        case.norm, case.x, use_batch_stats=case.use_batch_stats, **kw, **({"reduce_axes": ra} if ra is not None else {})
    )


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("norm", spec.names())
def test_one_moments_pass_gives_the_reference_and_the_scale_bit_for_bit(norm):
    shared = 0
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        for running in (None, False):  # every regime, special values included; with and without buffers
            for case in draw(strategies.cases(norm, dtypes=(dtype,), running_stats=running), 40):
                try:
                    ref, s = case.reference(), _plain_scale(case)
                except ValueError as e:  # the reference refuses the case: so does expected.of
                    with pytest.raises(ValueError, match=str(e)[:20]):
                        expected.of(case)
                    continue
                out, got_s = expected.of(case)
                assert _same(out.y, ref.y), (norm, dtype, case.x.shape)
                assert _same(out.running_mean, ref.running_mean) and _same(out.running_var, ref.running_var)
                assert _same(got_s, s), (norm, dtype, case.x.shape)
                plain = case.spec.mix or not case.use_batch_stats or case.running_mean is not None
                shared += not plain
    if not spec.get(norm).mix:
        assert shared >= 40, f"only {shared} cases took the shared moments pass"


def test_a_prepared_expectation_judges_each_output_as_compare_does():
    """One Expectation judges several outputs (finite, NaN, inf, a wrong shape) as compare() does on each."""
    rng = np.random.default_rng(3)
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        for special_expected in (False, True):
            e = rng.standard_normal((3, 5))
            s = np.abs(rng.standard_normal((3, 5))) + 0.1
            if special_expected:
                e[1, 2], e[2, 4] = np.nan, -np.inf
            e[0, 0] = 0.0  # no relative error where the expected value is 0
            u = error_model.dtypes.unit_roundoff(dtype)
            good = e + rng.standard_normal(e.shape) * s * u
            bad = good.copy()
            bad[2, 1] += 1e3 * u * s[2, 1]
            nan = good.copy()
            nan[0, 3] = np.nan
            inf = good.copy()
            inf[1, 1] = np.inf
            expectation = error_model.Expectation(e, s, dtype)
            for actual in (good, bad, nan, inf, good[:2], good.astype(np.float32), good):
                plain, prepared = error_model.compare(actual, e, s, dtype), expectation.compare(actual)
                assert repr(dataclasses.astuple(prepared)) == repr(dataclasses.astuple(plain))
            assert expectation.compare(bad).worst_index == (2, 1) or special_expected


def test_an_expectation_broadcasts_a_per_set_scale():
    e = np.arange(6.0).reshape(2, 3)
    a = e.copy()
    a[0, 1] += 1e-7
    a[1, 2] += 1.5e-7  # the larger error, under the larger scale: 0.75 units against 1.0 at [0, 1]
    got = error_model.Expectation(e, np.array([[1.0], [2.0]]), "float32").compare(a)
    u = error_model.dtypes.unit_roundoff("float32")
    assert got.ok and got.worst_index == (0, 1) and got.observed == pytest.approx(1e-7 / u, rel=1e-6)


def test_a_difference_that_overflows_is_judged_as_compare_did_on_finite_sides():
    """Both sides finite, their difference beyond float64's range: an infinite error, not a match."""
    e = np.array([-1.5e308, 1.0, 2.0])
    got = error_model.Expectation(e, np.ones(3), "float64").compare(np.array([1.5e308, 1.0, 2.0]))
    assert not got.ok and got.observed == np.inf and got.worst_index == (0,) and not got.mismatch


def test_an_output_of_the_wrong_shape_is_a_mismatch_whatever_the_scale():
    """The shapes are compared first, as compare() always did: a scale shaped like the output, not
    like the expected value, does not turn a mismatch into an exception."""
    got = error_model.compare(np.zeros((2, 3)), np.zeros((3, 2)), np.ones((2, 3)), "float32")
    assert not got.ok and got.mismatch == "shape (2, 3) != expected (3, 2)"
