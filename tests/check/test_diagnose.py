"""Issue 15, items 2-4: nothing tested is never a pass; the diagnosis runs per dtype, names the
variants added for the issue and compositions of two or three, says "closest" only for most of
the failing cases, and the summary reads like an answer.

Each double of tests/doubles/diagnosis.py is diagnosed exactly (``matches[0]`` is the variant it
implements). The checks run under the ci profile (derandomized), one or two properties, so each
test takes a few seconds. Not here yet: the detached-statistics variants are diagnosed from
gradient failures, which need gradient properties on user targets (issue 15, item 1); only their
catalogue entries are tested.
"""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import checker, cli, diagnose, strategies, testing
from normcheck import spec as _spec
from normcheck.case import Case, fixed_cases
from tests.doubles import check as C
from tests.doubles import diagnosis as D

AGREEMENT = {"properties": ["agreement"], "profile": "ci", "seed": 0}


def _check(fn, norm, *, dtypes=("float32",), framework="numpy", **kw):
    settings = {**AGREEMENT, **kw}
    return checker.check(fn, norm, framework, dtypes=list(dtypes), **settings)


def _diagnosed(report, dtype="float32"):
    d = report.diagnosis
    assert d is not None, report.summary()
    return d.by_dtype.get(dtype, d) if d.by_dtype else d


# --- nothing tested is never a pass ------------------------------------------------------------------


def test_a_check_where_everything_was_skipped_does_not_conform():
    r = _check(C.group_norm_two_pass, "group_norm", properties=["running_stats_steps", "eval_uses_running"])
    assert r.verdict == "untested" and not r.conforms
    assert r.headline() == (
        "UNTESTED: nothing was tested: all 2 checks were skipped (group_norm keeps no running statistics)"
    )
    assert "CONFORMS" not in r.summary()
    doc = r.to_json()["check"]
    assert doc["conforms"] is False and doc["verdict"] == "untested" and doc["ran"] == 0
    assert doc["untested"].startswith("nothing was tested")
    with pytest.raises(AssertionError, match="nothing was tested"):
        testing.assert_conforms(C.group_norm_two_pass, "group_norm", "numpy", properties=["running_stats_steps"])


def test_the_cli_exits_1_when_nothing_was_tested(capsys):
    code = cli.main(
        [
            *("check", "tests/doubles/check.py:group_norm_two_pass", "--norm", "group_norm", "--framework", "numpy"),
            *("--profile", "ci", "--dtypes", "float32", "--properties", "running_stats_steps", "--quiet"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "UNTESTED: nothing was tested: the 1 check was skipped (group_norm keeps no running statistics)" in out


def test_a_conforming_summary_counts_what_ran():
    r = _check(C.group_norm_two_pass, "group_norm", properties=["agreement", "contracts", "eval_uses_running"])
    assert r.conforms and r.verdict == "conforms"
    ran = r.ran
    assert [x.property for x in ran] == ["agreement", "contracts"]
    examples = sum(x.examples for x in ran)
    assert examples > 0
    assert r.headline().startswith(f"CONFORMS: 2 checks ran ({examples:,} examples), 1 not applicable, in ")
    assert r.dtype_status() == {"float32": "conforms"}


# --- the variants added for issue 15 -----------------------------------------------------------------

SINGLE = [
    pytest.param("layer_norm", D.layer_norm_one_plus_weight, "one_plus_weight", "a (1 + weight) gain", id="one_plus"),
    pytest.param("layer_norm", D.layer_norm_weight_needs_bias, "weight_needs_bias", "weight ignored when no bias",
                 id="weight_needs_bias"),
    pytest.param("group_norm", D.group_norm_hardwired_eps, "eps_hardwired_0.001", "eps hard-wired to 0.001",
                 id="hardwired_eps"),
    pytest.param("group_norm", D.group_norm_across_samples, "across_samples", "statistics across samples",
                 id="across_samples"),
    pytest.param("batch_norm", D.batch_norm_frozen, "frozen_stats", "frozen statistics", id="frozen"),
    pytest.param("batch_norm", D.batch_norm_never_updates, "buffers_not_updated", "never updating the running",
                 id="never_updated"),
    pytest.param("batch_norm", D.batch_norm_momentum_one, "momentum_one", "momentum=None's cumulative average",
                 id="momentum_one"),
    pytest.param("layer_norm", C.layer_norm_last_axis, "axes_last", "check it with --axes=-1", id="last_axis"),
]  # fmt: skip


@pytest.mark.parametrize(("norm", "fn", "want", "phrase"), SINGLE)
def test_new_variant_is_diagnosed(norm, fn, want, phrase):
    r = _check(fn, norm)
    d = _diagnosed(r)
    assert d.best == want, d.text
    assert d.counts[want] == d.failing >= 1
    assert d.text.startswith(f"matches {d.descriptions[want]} on {d.failing}/{d.failing} failing cases")
    assert phrase in d.text


def test_buffers_updated_in_eval_are_diagnosed_from_eval_uses_running():
    """Agreement never sees it (eval mode compares outputs only); eval_uses_running's failing case
    carries the changed buffers, and the diagnosis judges the buffers in eval mode too."""
    r = _check(D.batch_norm_eval_updates, "batch_norm", properties=["agreement", "eval_uses_running"])
    assert {f.property for f in r.failures} == {"eval_uses_running"}, r.summary()
    d = _diagnosed(r)
    assert d.best == "eval_updates_buffers", d.text
    assert "updating the running buffers in eval mode (training=False)" in d.text


# --- per dtype, and precision ------------------------------------------------------------------------


def test_statistics_in_float16_conform_in_float32_and_are_named_in_float16():
    r = _check(D.layer_norm_native_stats, "layer_norm", dtypes=("float32", "float16"))
    assert r.dtype_status() == {"float32": "conforms", "float16": "deviates"}
    d = r.diagnosis
    assert set(d.by_dtype) == {"float16"} and d.best == "stats16", d.text
    assert d.text.startswith(
        "CONFORMS in float32; DEVIATES in float16: matches layer_norm with its statistics computed in float16: "
        "(x − mean)² overflows float16 for |x − mean| ≥ 256"
    ), d.text
    assert "(the native kernels accumulate in float32)" in d.text
    assert f"diagnosis: {d.text}" in r.summary()
    js = r.to_json()["check"]
    assert js["dtypes"] == {"float32": "conforms", "float16": "deviates"}
    assert js["diagnosis"]["by_dtype"]["float16"]["matches"][0] == "stats16"


def test_the_16_bit_variant_computes_what_float16_arithmetic_does():
    """Overflow of (x − mean)² past 65504 (|x − mean| ≥ 256) gives an infinite variance, so the set
    normalizes to 0 (then β); below, the variant is the reference up to float16 rounding."""
    x = np.array([[0.0, 300.0, -300.0, 10.0]], np.float16)
    c = Case("layer_norm", x, {"normalized_shape": (4,), "eps": 1e-5})
    out = diagnose.outcome(c, precision="stats16")
    assert np.array_equal(out.y, np.zeros((1, 4)))
    small = c.with_(x=np.array([[0.0, 3.0, -3.0, 1.0]], np.float16))
    np.testing.assert_allclose(diagnose.outcome(small, precision="stats16").y, small.reference().y, rtol=2e-3)


def test_output_promotion_is_named_and_float32_is_untouched():
    r = _check(D.group_norm_promoted, "group_norm", dtypes=("float32", "float16"))
    assert r.dtype_status() == {"float32": "conforms", "float16": "deviates"}
    assert "output dtype float32 != input float16" in r.failures[0].message
    assert r.diagnosis.best == "output_promoted"
    assert r.diagnosis.text == (
        "CONFORMS in float32; DEVIATES in float16: matches group_norm returning float32 for float16 inputs "
        f"(the output dtype promoted) on {r.diagnosis.failing}/{r.diagnosis.failing} failing cases"
    )


def test_each_dtype_is_diagnosed_on_its_own_cases():
    """Unbiased in both dtypes, promoted in float16 only: float32 names the single variant, float16
    the pair; the float16 failures do not enter float32's diagnosis."""
    r = _check(D.group_norm_unbiased_promoted, "group_norm", dtypes=("float32", "float16"))
    f32, f16 = r.diagnosis.by_dtype["float32"], r.diagnosis.by_dtype["float16"]
    assert all(c.dtype == "float32" for c in f32.cases) and all(c.dtype == "float16" for c in f16.cases)
    assert f32.best == "unbiased_variance", f32.text
    assert f16.best == "unbiased_variance+output_promoted", f16.text
    assert r.diagnosis.text.startswith("DEVIATES in float32: matches group_norm with unbiased variance (Bessel's")
    assert (
        "; DEVIATES in float16: matches group_norm with unbiased variance and the output returned in float32 "
        "for float16 inputs on" in r.diagnosis.text
    )


def _tiny_rms_cases(dtype):
    from normcheck.dtypes import np_dtype

    out = []
    for seed in range(4):
        x = (1e-4 * np.random.default_rng(seed).normal(size=(3, 8))).astype(np_dtype(dtype))
        out.append(Case("rms_norm", x, {"normalized_shape": (8,), "eps": None}, regime="tiny"))
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_eps_default_from_the_input_dtype(dtype):
    """rms_norm with eps=None: the reference takes finfo(float32).eps (the computation dtype's); the
    double takes the input dtype's. Visible where the mean square is far below it (std 1e-4)."""
    cases = _tiny_rms_cases(dtype)
    d = diagnose.diagnose(D.rms_norm_eps_from_input, "rms_norm", cases, dtype=dtype, extra=0)
    assert d is not None and d.failing == len(cases)
    assert d.best == "eps_input_dtype", d.text
    assert f"eps=None defaulting to finfo({dtype}).eps" in d.text


# --- compositions --------------------------------------------------------------------------------------


def test_group_batchnorm2d_is_unbiased_variance_and_eps_added_to_the_std():
    r = _check(D.group_batchnorm2d, "group_norm")
    d = _diagnosed(r)
    assert d.matches == ["unbiased_variance+eps_outside_sqrt"], d.text
    n = d.failing
    assert d.text == f"matches group_norm with unbiased variance and eps added to the std on {n}/{n} failing cases"
    assert d.counts["unbiased_variance"] < d.failing and d.counts["eps_outside_sqrt"] < d.failing


def test_group_batchnorm2d_reads_as_one_cause_across_dtypes():
    """bfloat16 is too coarse to tell eps added to the std from other eps mistakes: the float32 pair
    is named for both dtypes, bfloat16's alternatives in a note."""
    r = _check(D.group_batchnorm2d, "group_norm", dtypes=("float32", "bfloat16"))
    d = r.diagnosis
    assert set(d.by_dtype) == {"float32", "bfloat16"}
    assert all(x.best == "unbiased_variance+eps_outside_sqrt" for x in d.by_dtype.values()), d.text
    n = sum(x.failing for x in d.by_dtype.values())
    assert d.text.startswith(
        f"DEVIATES in float32, bfloat16: matches group_norm with unbiased variance and eps added to the std "
        f"on {n}/{n} failing cases"
    ), d.text


def test_the_answer_groups_dtypes_and_sums_their_counts():
    status = {"float32": "conforms", "float16": "deviates", "bfloat16": "deviates", "float64": "untested"}
    texts = {"float16": "matches X on 3/3 failing cases", "bfloat16": "matches X on 5/5 failing cases"}
    assert diagnose.answer(status, texts) == (
        "CONFORMS in float32; DEVIATES in float16, bfloat16: matches X on 8/8 failing cases; not tested in float64"
    )
    texts["bfloat16"] = "matches Y on 5/5 failing cases"
    assert diagnose.answer(status, texts, {"bfloat16": "in bfloat16 Z too"}) == (
        "CONFORMS in float32; DEVIATES in float16: matches X on 3/3 failing cases; DEVIATES in bfloat16: matches Y "
        "on 5/5 failing cases (in bfloat16 Z too); not tested in float64"
    )
    assert diagnose.answer({"float32": "deviates"}, {"float32": "matches X on 2/2 failing cases"}) == (
        "matches X on 2/2 failing cases"
    )


def test_annotated_transformer_layer_norm_over_its_last_axis_is_a_pair():
    r = _check(D.annotated_layer_norm, "layer_norm", axes=(-1,))
    d = _diagnosed(r)
    assert d.matches == ["unbiased_variance+eps_outside_sqrt"], d.text
    assert "matches layer_norm with unbiased variance and eps added to the std on" in d.text


def test_annotated_transformer_layer_norm_as_layer_norm_is_a_triple_with_the_axes_hint():
    r = _check(D.annotated_layer_norm, "layer_norm")
    d = _diagnosed(r)
    assert d.best == "unbiased_variance+eps_outside_sqrt+axes_last", d.text
    assert "unbiased variance, eps added to the std and statistics over the last axis only" in d.text
    assert "--axes=-1" in d.text


@pytest.mark.parametrize(
    ("fn", "norm", "axes"),
    [("torch_group_batchnorm2d", "group_norm", None), ("torch_annotated_layer_norm", "layer_norm", (-1,))],
)
def test_torch_originals_are_named_as_pairs(fn, norm, axes):
    pytest.importorskip("torch")
    r = checker.check(getattr(D, fn), norm, profile="ci", seed=0, properties=["agreement"], dtypes=["float32"],
                      **({"axes": axes} if axes else {}))  # fmt: skip
    assert r.framework == "torch"
    d = _diagnosed(r)
    assert d.best == "unbiased_variance+eps_outside_sqrt", d.text
    assert "unbiased variance and eps added to the std" in d.text


def test_a_single_variant_is_preferred_to_any_composition():
    r = _check(C.group_norm_unbiased, "group_norm")
    assert r.diagnosis.matches[0] == "unbiased_variance" and "+" not in "".join(r.diagnosis.matches)


def test_compositions_only_combine_distinct_dimensions():
    cat = {v.name: v for v in diagnose.catalogue("group_norm", "float16")}
    assert diagnose.combinable([cat["unbiased_variance"], cat["eps_outside_sqrt"]])
    assert not diagnose.combinable([cat["eps_outside_sqrt"], cat["eps_ignored"]])  # both eps_mode
    assert not diagnose.combinable([cat["eps_ignored"], cat["eps_hardwired_1e-05"]])  # both the eps value
    assert not diagnose.combinable([cat["strided_groups"], cat["axes_last"]])  # both the axis set
    pair = diagnose.compose("group_norm", [cat["unbiased_variance"], cat["eps_outside_sqrt"]])
    assert pair.name == "unbiased_variance+eps_outside_sqrt"
    assert pair.description == "group_norm with unbiased variance and eps added to the std"


# --- closest, observations, structure ----------------------------------------------------------------------


def _unbiased_clipped(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Unbiased variance, and (a second, uncatalogued mistake) the input clipped to ±100."""
    x = np.clip(np.asarray(input).astype(np.float32), -100, 100)
    ax = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    m = x.mean(ax, keepdims=True)
    var = ((x - m) ** 2).sum(ax, keepdims=True) / np.float32(np.prod([x.shape[a] for a in ax]) - 1)
    return ((x - m) / np.sqrt(var + np.float32(eps))).astype(np.asarray(input).dtype)


def _ln_cases(regimes):
    p = _spec.plan("layer_norm", (3, 8), normalized_shape=(8,))
    return [
        Case("layer_norm", strategies.make_input(p, "float32", r, seed=i), {"normalized_shape": (8,), "eps": 1e-5},
             regime=r)
        for i, r in enumerate(regimes)
    ]  # fmt: skip


def test_closest_is_named_for_most_failing_cases_with_what_the_others_share():
    d = diagnose.diagnose(_unbiased_clipped, "layer_norm", _ln_cases(["normal"] * 4 + ["outliers"]), extra=0)
    assert d.failing == 5 and d.matches == [] and d.closest == "unbiased_variance", d.text
    assert "; closest: layer_norm with unbiased variance (Bessel's correction) on 4/5 failing cases" in d.text
    assert "the other 1: every failing case is in the outliers regime" in d.text


def test_no_closest_below_three_quarters_only_observations():
    d = diagnose.diagnose(_unbiased_clipped, "layer_norm", _ln_cases(["normal"] * 2 + ["outliers"] * 3), extra=0)
    assert d.closest is None and "closest" not in d.text, d.text
    assert "matches none of the" in d.text and "(nor any pair or triple of them)" in d.text
    assert "observed: " in d.text and "failing cases by input regime: outliers 3, normal 2 (of 5)" in d.text


def test_the_error_growing_with_the_offset_is_observed():
    """A one-pass variance whose two moments are rounded to float16 before they are subtracted (a
    float32 input): not the catalogue's float32 one-pass, and its error grows with |mean|/std."""

    def one_pass_half(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        x = np.asarray(input).astype(np.float64)
        m = x.mean(-1, keepdims=True)
        msq = (x * x).mean(-1, keepdims=True)
        var = np.maximum(msq.astype(np.float16).astype(np.float64) - (m * m).astype(np.float16), 0)
        return ((x - m) / np.sqrt(var + eps)).astype(np.float32)

    p = _spec.plan("layer_norm", (2, 8), normalized_shape=(8,))
    cases = [
        Case("layer_norm", strategies.make_input(p, "float32", "offset", seed=i, ratio=r), {"normalized_shape": (8,),
             "eps": 1e-5}, regime="offset")
        for i, r in enumerate([4, 8, 12, 18, 25, 32])
    ]  # fmt: skip
    d = diagnose.diagnose(one_pass_half, "layer_norm", cases, extra=0)
    assert d.failing == 6 and d.matches == [] and d.closest is None, d.text
    assert "the error grows with |mean|/std (rank correlation" in d.text, d.text


def test_an_unclamped_one_pass_variance_whose_nan_comes_from_cancellation_is_named():
    """A float32 one-pass variance summed in another order than NumPy's and not clamped at 0: on
    near-constant rows of large magnitude E[x²] − E[x]² comes out negative, var + eps < 0 and the
    output NaN. The catalogue's one-pass variant cannot say which sign its sums give there (they are
    within their rounding error of 0), so those rows are undefined for it and the rest match."""

    def one_pass_sequential(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        x = np.asarray(input, np.float32)
        n = np.float32(x.shape[-1])
        s1 = np.cumsum(x, -1, dtype=np.float32)[..., -1:]  # left to right, as a loop in float32 sums
        s2 = np.cumsum(x * x, -1, dtype=np.float32)[..., -1:]
        m = s1 / n
        var = s2 / n - m * m
        with np.errstate(invalid="ignore"):
            return ((x - m) / np.sqrt(var + np.float32(eps))).astype(np.float32)

    p = _spec.plan("layer_norm", (2, 7), normalized_shape=(7,))
    args = {"normalized_shape": (7,), "eps": 1e-5}
    offset = [
        Case("layer_norm", strategies.make_input(p, "float32", "offset", seed=i, ratio=r), args, regime="offset")
        for i, r in enumerate([300, 1000, 3000])
    ]
    rows = np.array([[4097.3] * 7, [-70001.5] * 7], np.float32)
    constant = Case("layer_norm", rows, args, regime="offset")
    with np.errstate(all="ignore"):
        assert np.isnan(one_pass_sequential(rows, (7,))).any()  # the case the variant must not be held to
    d = diagnose.diagnose(one_pass_sequential, "layer_norm", [*offset, constant], extra=0)
    assert d.failing == 4 and d.matches[:1] == ["one_pass_variance"], d.text


def test_a_rank_restricted_target_is_said_to_be_one():
    fixed = fixed_cases("group_norm")
    cases = [c for c in fixed if c.x.ndim != 4] + [c for c in fixed if c.x.ndim == 4]
    d = diagnose.diagnose(D.group_norm_rank4_only, "group_norm", cases, extra=0)
    assert d is not None and d.failing == 0 and d.matches == []
    assert d.text.startswith("accepts only rank-4 input: raised on every input of rank 2, 3, 5"), d.text


def test_gradient_only_variants_are_catalogued_but_never_match_a_forward_case():
    names = [v.name for v in diagnose.gradient_variants("layer_norm")]
    assert names == ["detached_mean", "detached_variance", "detached_rsqrt"]
    assert [v.name for v in diagnose.gradient_variants("rms_norm")] == ["detached_variance", "detached_rsqrt"]
    for v in diagnose.gradient_variants("layer_norm"):
        assert v.gradient and "diagnosed from gradient failures" in v.description
        assert not any(v.applies(c) for c in fixed_cases("layer_norm"))
    assert not any(v.gradient for v in diagnose.catalogue("layer_norm", "float16"))


def test_the_catalogue_depends_on_the_dtype():
    f32 = {v.name for v in diagnose.catalogue("rms_norm", "float32")}
    f16 = {v.name for v in diagnose.catalogue("rms_norm", "float16")}
    assert f16 - f32 == {"stats16", "moments16", "output_promoted", "eps_input_dtype"}
    assert {"weight_needs_bias", "eps_hardwired_1e-05", "eps_hardwired_1e-06"} <= f32
    assert "eps_input_dtype" not in {v.name for v in diagnose.catalogue("layer_norm", "float16")}  # eps given
