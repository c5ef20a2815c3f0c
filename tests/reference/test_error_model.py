"""The error model's unit, u s + eta_min, on hand-derived cases (docs/error-model.md)."""

from __future__ import annotations

import numpy as np

from normcheck import dtypes, properties
from normcheck.adapters import get
from normcheck.case import Case
from normcheck.error_model import MODEL, compare


def test_underflow_unit_is_half_the_smallest_subnormal():
    assert dtypes.underflow_unit("float16") == 2.0**-25  # 2**-24 is float16's smallest subnormal
    assert dtypes.underflow_unit("float32") == 2.0**-150
    assert dtypes.underflow_unit("bfloat16") == 2.0**-134


def test_a_subnormal_output_may_err_by_one_rounding_of_the_grid():
    # The float16 output nearest to 2.06e-6 (a subnormal: float16's smallest normal is 6.1e-5)
    # errs by up to 2**-25 = 3e-8 however small its scale; u s alone would call that 8.6 u·s.
    expected = np.array([2.0603e-6])
    actual = expected.astype(np.float16)
    s = np.array([7.0e-6])
    assert abs(float(actual[0]) - expected[0]) > 0.5 * 2.0**-25  # a real subnormal rounding error
    c = compare(actual, expected, s, "float16")
    assert c.ok and c.observed < 2, c.describe()


def test_flushing_a_float16_output_to_zero_still_deviates():
    expected = np.array([1.0e-6, 3.0e-5])
    c = compare(np.zeros(2, np.float16), expected, np.abs(expected), "float16")
    assert not c.ok and c.observed > MODEL.lam, c.describe()


def test_numpy_rms_norm_float16_outlier_case_passes():
    """The seed sweep's case: an outlier of 1030 beside 0.0015 gives a subnormal float16 output."""
    x = np.array([[-0.9277, 0.001506, 0.2649], [-1.856, 1030.0, -0.469]], np.float16)
    w = np.array([[-0.623, 0.574, 0.7017], [0.8345, -1.011, 0.508]], np.float16)
    impl = next(i for i in get("numpy").implementations() if i.id == "numpy/rms_norm/reference")
    case = Case("rms_norm", x.reshape(1, 2, 3), {"normalized_shape": (2, 3), "eps": None}, weight=w)
    r = properties.PROPERTIES["agreement"](impl, case)
    assert r.verdict == "pass" and r.observed < 2, r.message


def test_overflow_to_inf_is_the_rounded_answer_where_the_exact_value_overflows():
    # float16 overflows from 65520 (max 65504 plus half its ulp): 1.03e5 rounds to inf.
    s = np.array([1.0])
    assert compare(np.array([np.inf, -np.inf], np.float16), np.array([102853.08, -228532.2]), 1.0, "float16").ok
    assert not compare(np.array([np.inf], np.float16), np.array([-102853.08]), s, "float16").ok  # wrong sign
    assert not compare(np.array([np.inf], np.float16), np.array([60000.0]), s, "float16").ok  # in range
    assert not compare(np.array([np.inf], np.float32), np.array([102853.08]), s, "float32").ok
    assert not compare(np.array([np.inf]), np.array([1e308]), s, "float64").ok  # float64 has no such threshold
    assert compare(np.array([1.0]), np.array([1.0]), s, "float64").ok
    assert compare(np.array([np.float16(65504)]), np.array([65519.0]), 65519.0, "float16").ok  # rounds to max


def test_numpy_switchable_norm_float16_overflow_case_passes():
    """The seed sweep's case (seed 7): the exact output 1.03e5 is beyond float16's range."""
    impls = {i.id: i for i in get("numpy").implementations()}
    x = np.array([951.5, -1000.0], np.float16).reshape(2, 1, 1)
    # equal weights for the means, the variance of the one-element sets alone: y = ±1.03e5
    equal, first = np.zeros(3, np.float16), np.array([0.0, -np.inf, -np.inf], np.float16)
    case = Case("switchable_norm", x, {"eps": 1e-5, "training": True}, mean_weight=equal, var_weight=first)
    assert np.abs(case.reference().y).min() > 65504  # the exact output is past float16's range
    for key in ("numpy/switchable_norm/reference", "numpy/switchable_norm/float32"):
        r = properties.PROPERTIES["agreement"](impls[key], case)
        assert r.verdict == "pass", (key, r.verdict, r.message)  # not a skip or an error either


def test_the_all_finite_path_judges_as_the_special_value_path_does():
    """compare() takes a short path when nothing is NaN or inf; appending a matching NaN to both
    sides sends the same numbers down the general path, which must find the same worst element."""
    rng = np.random.default_rng(7)
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        for _ in range(20):
            e = rng.standard_normal(17) * 10.0 ** rng.integers(-3, 4)  # finite in float16
            s = np.abs(rng.standard_normal(17)) + 1e-3
            s[rng.integers(17)] = 0.0  # a zero scale: only eta_min allows any error
            a = (e + rng.standard_normal(17) * s * 16 * dtypes.unit_roundoff(dtype)).astype(dtypes.np_dtype(dtype))
            a[0], e[3] = e[0], 0.0
            short = compare(a, e, s, dtype)
            nan = np.array([np.nan])
            general = compare(
                np.concatenate([a.astype(np.float64), nan]), np.concatenate([e, nan]), np.append(s, 1.0), dtype
            )
            assert not short.mismatch and not general.mismatch
            assert (short.ok, short.observed, short.worst_index) == (general.ok, general.observed, general.worst_index)
            assert (short.max_abs, short.max_rel) == (general.max_abs, general.max_rel)


def test_a_zero_scale_in_float64_accepts_an_exact_match_and_nothing_else():
    """float64's eta_min rounds to 0, so with a zero scale the unit of error is 0: an exact match
    is 0 u·s (not 0/0), any difference infinitely many."""
    exact = compare(np.zeros(3), np.zeros(3), np.zeros(3), "float64")
    assert exact.ok and exact.observed == 0.0
    off = compare(np.array([0.0, 1e-300, 0.0]), np.zeros(3), np.zeros(3), "float64")
    assert not off.ok and off.observed > 1e16 and off.worst_index == (1,)


def test_a_one_element_set_allows_its_exact_centering_no_error_of_the_input_precision():
    """On a one-element set x - mean is exactly 0, so y = b exactly; what the model still allows is a
    fused scale and shift formed in float32 (u32 kappa |w|) and the rounding of b (u |b|): 11 for a
    bias of 3 deviates in every dtype, 3 and one ulp of it pass, and a two-element set keeps the
    conditioning bound."""
    from normcheck import error_model as em

    x64 = np.array([[1000.0], [-3.0]])
    kappa = np.abs(x64) / np.sqrt(1e-5)
    for dt in ("float32", "bfloat16", "float16"):
        x = x64.astype(dtypes.np_dtype(dt))
        kw = dict(normalized_shape=(1,), eps=1e-5, weight=np.array([1.5]), bias=np.array([3.0]))
        s = em.scale("layer_norm", x, **kw)
        share = dtypes.unit_roundoff("float32") / dtypes.unit_roundoff(dt)
        assert np.allclose(s, share * kappa * 1.5 + 3.0, rtol=1e-12)
        assert em.compare(np.full((2, 1), 3.0), np.full((2, 1), 3.0), s, dt).ok
        wrong = em.compare(np.array([[11.0], [3.0]]), np.full((2, 1), 3.0), s, dt)
        assert not wrong.ok, (dt, wrong.describe())
        ulp = 3.0 * 2 * dtypes.unit_roundoff(dt)  # the rounding of b itself
        assert em.compare(np.array([[3.0 + ulp], [3.0]]), np.full((2, 1), 3.0), s, dt).ok
    two = em.scale("layer_norm", np.array([[1000.0, 999.0]], np.float32), normalized_shape=(2,), eps=1e-5)
    assert two.min() > 1e2  # sqrt(2) kappa (1 + |y^|): the centring's conditioning


def test_a_bfloat16_batchs_two_pass_variance_error_is_allowed_in_the_running_variance():
    """The seed sweep's case (CI profile, seed 2): Flax BatchNorm's two-pass float32 variance of a
    constant bfloat16 batch at 1e8 is 64, not 0 (its mean rounds by one float32 step, 8), and the
    running variance carries m * 64. The model's squared-mean term, n u_in max|x|^2, used float64's
    u for bfloat16 (NumPy's kind "V", not "f") and so allowed none of it."""
    from normcheck import error_model

    x = np.full((1, 2, 5, 3), -100139008.0).astype(np.float32)
    m, n, amax = 1.2e-5, 15, 100139008.0
    new_var = np.array([1.29, 1.43])
    u_bf16 = 2.0**-8
    sv = {}
    for dt in ("float32", "bfloat16"):
        xs = x.astype(dtypes.np_dtype(dt))
        _, sv[dt] = error_model.running_scale(
            "batch_norm", xs, np.zeros(2), new_var, momentum=m, buffer_dtype=np.float32
        )
    ratio = u_bf16 / 2.0**-24
    assert sv["bfloat16"].min() >= ratio * m * n * u_bf16 * amax**2  # the term, in the input's precision
    err = m * 64.0  # what a correct two-pass float32 kernel stores
    assert err <= MODEL.lam * 2.0**-24 * sv["bfloat16"].min()
    assert sv["bfloat16"].min() > sv["float32"].min()


def test_numpy_switchable_norm_float32_extreme_constant_case_is_finite():
    """The seed sweep's case (CI profile, seed 2): a constant input at 1e24 whose mixture weights
    sum to 1 - u leaves a centring residue while eps k^2 underflows in float32: the float32 form
    returned inf (residue / 0) where the value is finite."""
    impl = next(i for i in get("numpy").implementations() if i.id == "numpy/switchable_norm/float32")
    case = Case.from_json(
        {"norm": "switchable_norm", "regime": "extreme", "args": {"eps": 1e-05, "training": True},
         "input": {"shape": [1, 4, 4, 1, 1], "dtype": "float32",
                   "values": [4e24, 6e24, 8e24, 1e25, 3e24, -2e24, -1e25, 7e23, 2e23, 1e24, -1e25, -6e24, -5e24, -8e23,
                              -4e24, 3e24]},
         "mean_weight": {"shape": [3], "dtype": "float32", "values": [3.5453746, 3.7106607, 2.7358892]},
         "var_weight": {"shape": [3], "dtype": "float32", "values": [-0.0, 3.9569921, 2.7019725]}}
    )  # fmt: skip
    r = properties.PROPERTIES["constant_input"](impl, case)
    assert r.verdict == "pass", r.message
