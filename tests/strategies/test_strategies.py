"""The Hypothesis strategies build valid cases, reach the edge sizes, and shrink to tiny ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import find as _find
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import dtypes as _dt
from normcheck import profiles, spec
from normcheck import strategies as ns
from normcheck.case import Case
from normcheck.properties import run_identity_sides
from normcheck.strategies import _values

NORMS = spec.names()
ALL_DTYPES = _dt.FLOAT_DTYPES
IDENTITIES = [i for n in NORMS for i in spec.get(n).identities]
FAST = settings(max_examples=40, deadline=None)


def find(strategy, condition):
    """hypothesis.find without the example database and the (slow) explain phase."""
    return _find(
        strategy, condition, settings=settings(database=None, max_examples=1000, phases=(Phase.generate, Phase.shrink))
    )


def _check_valid(case: Case, *, dtypes=ALL_DTYPES, max_numel=4096):
    s = case.spec
    assert case.dtype in dtypes
    assert case.x.size <= max_numel
    assert case.x.ndim >= max(2, s.min_rank)
    assert np.isfinite(case.x.astype(np.float64)).all()
    assert case.regime in ns.REGIMES
    p = case.plan()
    for name in ("weight", "bias"):
        a = getattr(case, name)
        if a is not None:
            assert a.shape == p.affine_shape
            assert a.dtype == case.x.dtype
    if not s.has_bias:
        assert case.bias is None
    eps = case.args["eps"]
    if eps is None:
        assert s.defaults["eps"] is None  # rms_norm: machine epsilon
    else:
        assert 0 < eps <= 1
    if s.shape_arg:
        assert s.shape_arg in case.args
    if s.batch_stats_flag:
        assert isinstance(case.args[s.batch_stats_flag], bool)
    if case.use_batch_stats:
        assert p.reduce_size >= s.min_reduce_size_training
    else:
        assert case.running_mean is not None and case.running_var is not None
    if case.running_mean is not None:
        buf_dtype = "float32" if _dt.is_16bit(case.dtype) else case.dtype
        assert case.running_mean.shape == case.running_var.shape == (case.x.shape[1],)
        assert case.running_mean.dtype.name == case.running_var.dtype.name == buf_dtype
        assert (case.running_var > 0).all()
        assert 0 < case.args["momentum"] <= 1
    ref = case.reference()  # raises on an invalid case
    assert ref.y.shape == case.x.shape
    assert np.isfinite(ref.y).all()
    with np.errstate(over="raise"):
        assert np.isfinite(ref.y.astype(case.x.dtype).astype(np.float64)).all()


@pytest.mark.parametrize("norm", NORMS)
@FAST
@given(data=st.data())
def test_cases_are_valid(norm, data):
    case = data.draw(ns.cases(norm, dtypes=ALL_DTYPES))
    assert case.norm == norm
    _check_valid(case)


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_constant_regime_has_a_zero_variance_set(norm, data):
    case = data.draw(ns.cases(norm, dtypes=ALL_DTYPES, regimes=("constant",)))
    p = case.plan()
    v = case.x.astype(np.float64).reshape(p.view_shape)
    assert (np.ptp(v, axis=p.reduce) == 0).any()
    _check_valid(case)


@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_offset_regime_has_a_large_common_mean(norm, data):
    case = data.draw(ns.cases(norm, dtypes=ALL_DTYPES, regimes=("offset",)))
    x = case.x.astype(np.float64)
    assert abs(x.mean()) >= 5 * x.std()
    assert abs(x.mean()) > 0


@FAST
@given(ns.cases("rms_norm", dtypes=("float16",), regimes=("huge",)))
def test_huge_float16_squares_overflow_float16_not_float32(case):
    x = case.x.astype(np.float64)
    assert np.isfinite(case.x).all()
    assert (x * x).max() > float(_dt.finfo("float16").max)
    assert x.size * (x * x).max() < float(_dt.finfo("float32").max)


def test_extreme_reaches_past_float32_sums_of_squares_up_to_the_dtype_limit():
    """float32 and bfloat16 "extreme" draws reach |x| where n x**2 overflows float32 (~1e19 and beyond), and
    stop at a quarter of the dtype's max; float64 stops where the float64 reference's squares stay finite."""
    assert "extreme" in ns.AUDIT_REGIMES and "extreme" not in ns.REGIMES
    for dt in ("float32", "bfloat16"):
        lo, hi = _values.extreme_exponents(dt)
        assert lo == 15.0 and 37.5 < hi <= math.log10(float(_dt.finfo(dt).max) / 4)
        plan = spec.plan(spec.get("layer_norm"), (2, 8), normalized_shape=[8])
        x = ns.make_input(plan, dt, "extreme", seed=1, scale=10.0**hi).astype(np.float64)
        assert np.isfinite(x).all() and np.abs(x).max() > 1e37
        with np.errstate(over="ignore"):
            assert not np.isfinite((x.astype(np.float32) ** 2).sum())
    assert _values.extreme_exponents("float64")[1] == 100.0
    lo16, hi16 = _values.extreme_exponents("float16")
    assert hi16 == math.log10(float(_dt.finfo("float16").max) / 4) and lo16 == hi16 - 0.5


@FAST
@given(ns.cases("layer_norm", dtypes=("float32", "bfloat16"), regimes=("extreme",)))
def test_extreme_cases_are_finite_and_past_huge(case):
    x = np.abs(case.x.astype(np.float64))
    assert np.isfinite(x).all() and x.max() >= 0.99e15


@FAST
@given(ns.cases("layer_norm", dtypes=("float32",), regimes=("tiny", "outliers")))
def test_tiny_and_outlier_regimes(case):
    x = np.abs(case.x.astype(np.float64))
    if case.regime == "tiny":
        assert x.max() < 1e-2
    else:
        assert 1e3 <= x.max() <= 2e3


@pytest.mark.parametrize("norm", NORMS)
def test_shrinks_to_a_tiny_case(norm):
    case = find(ns.cases(norm, dtypes=ALL_DTYPES), lambda c: c.x.size >= 1)
    assert case.x.size <= 2
    assert case.regime == "normal" and case.dtype == ALL_DTYPES[0]
    assert case.weight is None and case.bias is None and case.running_mean is None


def test_group_norm_shrinks_to_one_element():
    case = find(ns.cases("group_norm"), lambda c: c.x.size >= 1)
    assert case.x.shape == (1, 1) and case.args["num_groups"] == 1


@pytest.mark.parametrize("norm", NORMS)
def test_sizes_of_one_are_reached(norm):
    assert find(ns.cases(norm), lambda c: c.x.shape[0] == 1 and c.x.size > 1).x.shape[0] == 1
    assert find(ns.cases(norm), lambda c: c.x.shape[1] == 1 and c.x.shape[0] > 1).x.shape[1] == 1
    c = find(ns.cases(norm, min_rank=3), lambda c: 1 in c.x.shape[2:] and c.x.size > 4)
    assert 1 in c.x.shape[2:]


def test_large_and_signed_cases_are_reached():
    c = find(ns.cases("batch_norm", max_numel=4096), lambda c: c.x.ndim == 5 and c.x.size >= 1000)
    assert c.x.size <= 4096
    w = find(ns.cases("layer_norm", affine=True), lambda c: (c.weight < 0).any()).weight
    assert (w < 0).any() and (np.abs(w) >= 0.5).all()


@pytest.mark.parametrize("norm", NORMS)
@FAST
@given(data=st.data())
def test_layouts(norm, data):
    s = spec.get(norm)
    lay = data.draw(ns.layouts(norm, max_numel=256))
    assert 2 <= len(lay.shape) <= 5 and len(lay.shape) >= s.min_rank
    assert all(1 <= d <= 6 for d in lay.shape) and np.prod(lay.shape) <= 256
    if s.shape_arg == "num_groups":
        assert lay.shape[1] % lay.num_groups == 0
    elif s.shape_arg == "normalized_shape":
        k = len(lay.normalized_shape)
        assert 1 <= k <= min(3, len(lay.shape)) and lay.normalized_shape == lay.shape[-k:]
    lay.plan(norm)


def test_shape_options():
    assert find(ns.shapes("layer_norm", min_rank=1), lambda s: True) == (1,)
    assert find(ns.shapes("batch_norm", min_side=2), lambda s: True) == (2, 2)
    big = find(ns.shapes("instance_norm", max_side=10, max_numel=64), lambda s: np.prod(s) >= 50)
    assert np.prod(big) <= 64 and len(big) >= 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: ns.shapes("instance_norm", min_rank=2),
        lambda: ns.shapes("batch_norm", min_side=0),
        lambda: ns.shapes("batch_norm", min_side=3, max_numel=8),
        lambda: ns.cases("layer_norm", running_stats=True),
        lambda: ns.cases("layer_norm", batch_stats=False),
        lambda: ns.cases("batch_norm", running_stats=False, batch_stats=False),
        lambda: ns.cases("nope"),
        lambda: ns.cases("batch_norm", dtypes=("int8",)),
        lambda: ns.cases("batch_norm", regimes=("weird",)),
        lambda: ns.cases("batch_norm", eps=-1.0),
        lambda: ns.identity_cases("nope"),
        lambda: ns.identity_cases("ln_is_bn_on_transposed_view", affine=True),
    ],
)
def test_invalid_arguments_raise_eagerly(make):
    with pytest.raises(InvalidArgument):
        make()


@FAST
@given(ns.cases("batch_norm", running_stats=False))
def test_batch_norm_without_buffers_trains(case):
    assert case.args["training"] is True and case.running_mean is None
    assert case.plan().reduce_size >= 2


@FAST
@given(ns.cases("instance_norm", batch_stats=False, affine=True, eps=1e-3))
def test_eval_mode_has_buffers_and_fixed_options(case):
    assert case.args["use_input_stats"] is False and case.args["eps"] == 1e-3
    assert case.running_mean is not None and case.weight is not None and case.bias is not None
    assert "momentum" in case.args


def test_eps_values():
    assert find(ns.eps_values(spec="rms_norm"), lambda e: True) is None
    assert find(ns.eps_values(spec="layer_norm"), lambda e: True) == 1e-5
    assert find(ns.eps_values(spec="layer_norm"), lambda e: e < 1e-9) >= 1e-12
    assert find(ns.eps_values(spec="layer_norm"), lambda e: e > 0.5) <= 1.0
    assert find(ns.cases("rms_norm", eps=st.none()), lambda c: True).args["eps"] is None


@FAST
@given(ns.eps_values(spec="layer_norm"), ns.momenta(), ns.dtypes(), ns.regimes())
def test_scalar_strategies(eps, momentum, dtype, regime):
    assert eps is not None and 1e-12 <= eps <= 1.0
    assert 0 < momentum <= 1
    assert dtype in ALL_DTYPES and regime in ns.REGIMES


def test_make_input_is_reproducible():
    p = spec.plan("group_norm", (2, 4, 3), num_groups=2)
    for regime in ns.REGIMES:
        a = ns.make_input(p, "bfloat16", regime, seed=7)
        b = ns.make_input(p, "bfloat16", regime, seed=7)
        assert a.dtype.name == "bfloat16" and a.shape == (2, 4, 3)
        np.testing.assert_array_equal(a.astype(np.float64), b.astype(np.float64))


def _expected(value, shape):
    return {"C": shape[1], "rest": tuple(shape[1:]), "last": tuple(shape[-1:])}.get(value, value)


@pytest.mark.parametrize("ident", IDENTITIES, ids=lambda i: i.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_identity_cases(ident, data):
    case = data.draw(ns.identity_cases(ident, dtypes=ALL_DTYPES))
    assert case.norm == ident.lhs
    assert case.x.ndim >= ident.min_rank
    lhs = spec.get(ident.lhs)
    for k, v in ident.args.items():
        if k in lhs.extra_arrays:  # mixture logits travel as arrays on the case, not in args
            np.testing.assert_array_equal(getattr(case, k).astype(np.float64), np.asarray(v, np.float64))
        else:
            assert case.args[k] == _expected(v, case.x.shape)
    if ident.rhs.get("affine") == "none":
        assert case.weight is None and case.bias is None
    if ident.input == "center_last":
        x = case.x.astype(np.float64)
        fi = _dt.finfo(case.dtype)
        slack = 8 * float(fi.eps) * np.abs(x).max(axis=-1) + float(fi.smallest_subnormal)
        assert (np.abs(x.mean(axis=-1)) <= slack).all()
    _check_valid(case)
    _, rc, _ = run_identity_sides(ident, case)
    assert np.isfinite(rc.reference().y).all()  # the rhs is valid too


def test_identity_gn_g_equals_c():
    c = find(ns.identity_cases("gn_gc_is_in"), lambda c: c.x.shape[1] > 1)
    assert c.args["num_groups"] == c.x.shape[1] and c.x.ndim >= 3
    assert find(ns.identity_cases("gn_g1_is_ln"), lambda c: True).args["num_groups"] == 1


def test_profiles():
    names = profiles.register_profiles()
    assert set(names) == {"dev", "quick", "ci", "default", "thorough"} == set(profiles.PROFILES)
    got = {n: settings.get_profile(n) for n in names}
    for n in names:  # registered as declared
        for k, v in profiles.PROFILES[n].settings.items():
            assert getattr(got[n], k) == v, (n, k)
    ci, quick = got["ci"], got["quick"]
    assert ci.derandomize and quick.derandomize  # reproducible runs
    assert ci.deadline is None and ci.print_blob
    examples = {n: got[n].max_examples for n in names}
    assert examples["quick"] <= examples["ci"] < examples["default"] < examples["thorough"], examples
    assert examples["dev"] < examples["default"], examples


#: The norms torch.nn.functional ships (by the specs' own ``torch`` field; Switchable Norm has none).
TORCH_NORMS = [n for n in NORMS if spec.get(n).raw.get("torch", "").startswith(f"torch.nn.functional.{n} ")]


def test_torch_norms_are_the_five_classic_ones():
    assert set(TORCH_NORMS) == {"batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm"}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(TORCH_NORMS).flatmap(lambda n: ns.cases(n, dtypes=("float32", "float64"))))
def test_torch_accepts_the_cases(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    kw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs().items()}
    x = torch.from_numpy(case.x.copy())
    if case.norm == "group_norm" and case.x.size // case.args["num_groups"] == 1:
        # torch quirk: F.group_norm rejects N * C/G * prod(spatial) == 1 ("more than 1 value per
        # channel"), though a group of one element normalizes to 0 like LayerNorm over one element
        with pytest.raises(ValueError, match="more than 1 value"):
            F.group_norm(x, **kw)
        return
    y = getattr(F, case.norm)(x, **kw)
    assert tuple(y.shape) == case.x.shape


def test_the_drawn_framework_eps_are_the_adapters_defaults():
    """eps draws favour each framework's default eps. The strategies keep their own tuple, whose
    order is part of what a seed draws; it must hold exactly the values the adapters declare
    (:func:`normcheck.adapters.default_eps`), so a framework's default cannot drift from it."""
    from normcheck import adapters

    assert set(ns._FRAMEWORK_EPS) == set(adapters.default_eps())
    assert len(ns._FRAMEWORK_EPS) == len(set(ns._FRAMEWORK_EPS))
