"""Issue 26, item 4: verdicts that say what matters.

- named causes, each from a double of tests/doubles/cause.py: dtype promotion, 16-bit statistics
  overflow from the framework's moments function, a (1 + weight) gain, training with averaged (EMA)
  statistics, gradient underflow (torch);
- the diagnosis per property family: a wrong axis set in the output and never-updated buffers are
  named as two causes;
- the regime-confined headline ("DEVIATES only for |x| ≥ 1e14 (regime huge)");
- the diagnosis is a function of the seed (no time budget changes it).

The checks run under the ci profile (derandomized), on few properties, so each takes seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from normcheck import checker, diagnose, findings
from normcheck.case import Case
from normcheck.diagnose import families
from normcheck.diagnose.evaluate import matches
from normcheck.diagnose.regimes import Confinement, number
from normcheck.target import wrap
from tests.doubles import cause as D
from tests.doubles import diagnosis as DD
from tests.doubles import state as S

CI = {"profile": "ci", "seed": 0, "properties": ["agreement"]}


def _check(fn, norm, dtypes=("float32",), framework="numpy", **kw):
    return checker.check(fn, norm, framework, dtypes=list(dtypes), **{**CI, **kw})


def _diagnosed(report, dtype):
    d = report.diagnosis
    assert d is not None, report.summary()
    return d.by_dtype.get(dtype, d) if d.by_dtype else d


# --- named causes --------------------------------------------------------------------------------------


def test_a_float16_input_returned_as_float32_is_named_dtype_promotion():
    r = _check(D.layer_norm_promoted, "layer_norm", dtypes=("float16",))
    d = _diagnosed(r, "float16")
    assert d.best == "output_promoted", d.text
    assert "returning float32 for float16 inputs (the output dtype promoted)" in d.text
    assert "NaN/Inf" not in d.text


def test_the_moments_function_returning_a_float16_variance_is_named_with_its_overflow():
    r = _check(D.layer_norm_tf_moments, "layer_norm", dtypes=("float16",))
    d = _diagnosed(r, "float16")
    assert d.best == "moments16", d.text
    assert "returned in float16 by the framework's moments function" in d.text
    assert "the variance overflows float16 (inf) for std ≥ 255.9" in d.text
    assert "eps ignored" not in d.text and "one-pass" not in d.text


def test_the_moments16_variant_is_what_the_double_computes():
    """Judged case by case on a set whose std is above 256 (the variance becomes inf, the output 0)
    and on one below it (right): the variant predicts both, the reference only the second."""
    from normcheck.diagnose import REFERENCE, matches

    target = wrap(D.layer_norm_tf_moments, "layer_norm", framework="numpy")
    moments16 = next(v for v in diagnose.catalogue("layer_norm", "float16") if v.name == "moments16")
    big = Case("layer_norm", np.array([[300.0, -300.0]], np.float16), {"normalized_shape": (2,), "eps": 1e-5})
    small = big.with_(x=np.array([[3.0, -3.0]], np.float16))
    got_big, got_small = big.call(target), small.call(target)
    assert np.all(np.asarray(got_big.y) == 0)
    assert matches(big, got_big, moments16) and not matches(big, got_big, REFERENCE)
    assert matches(small, got_small, REFERENCE)


def test_gemma_rms_norm_is_named_a_one_plus_weight_gain():
    r = _check(D.rms_norm_gemma, "rms_norm")
    d = _diagnosed(r, "float32")
    assert d.best == "one_plus_weight", d.text
    assert "a (1 + weight) gain" in d.text and "Gemma" in d.text


def test_training_with_averaged_statistics_is_named():
    r = _check(D.batch_norm_averaged, "batch_norm")
    d = _diagnosed(r, "float32")
    assert d.best == "averaged_stats", d.text
    assert "normalizing with averaged statistics in training" in d.text


def test_frozen_statistics_are_not_read_as_averaged_ones():
    r = _check(DD.batch_norm_frozen, "batch_norm")
    assert _diagnosed(r, "float32").best == "frozen_stats"


def _without_findings(monkeypatch):
    """The registered findings emptied: the torch double's underflow is then a deviation of its own."""
    monkeypatch.setattr(findings, "load", lambda path=None: ())


def test_gradient_underflow_is_named_with_its_finding_and_confined_to_huge_inputs(monkeypatch):
    pytest.importorskip("torch")
    _without_findings(monkeypatch)
    r = checker.check(D.layer_norm_rsqrt_torch, "layer_norm", "torch", dtypes=["float32"], seed=0, in_process=True,
                      properties=["agreement", "gradient_agreement"])  # fmt: skip
    assert {x.property for x in r.failures} == {"gradient_agreement"}, r.summary()
    text = str(r.diagnosis)
    assert "the input gradient is lost to underflow" in text and "rsqrt-gradient-underflow" in text, text
    assert "the same cases scaled by 1e-6 pass" in text
    smallest = min(float(np.max(np.abs(c.x.astype(np.float64)))) for _, _, c in r.counterexamples)
    assert smallest >= 1e13  # the underflow starts at |x| ~ 1e13 in float32
    head = r.headline()
    assert head.startswith("DEVIATES only for |x| ≥ "), head
    assert "(regime huge)" in head and "the other 5 regimes passed" in head
    assert r.to_json()["check"]["confined"]["regime"] == "huge"


def test_a_detached_variance_is_not_read_as_underflow():
    """A detach loses the same term in every regime: the scaled-down case fails too."""
    torch = pytest.importorskip("torch")

    def ln_variance_detached(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
        mean = input.mean(dims, keepdim=True)
        var = ((input - mean) ** 2).mean(dims, keepdim=True).detach()
        return (input - mean) / torch.sqrt(var + eps)

    impl = checker._user_impl(wrap(ln_variance_detached, "layer_norm", framework="torch"), "layer_norm")
    case = Case("layer_norm", np.array([[1e14, -0.5e14, 0.2e14]], np.float32), {"normalized_shape": (3,), "eps": 1e-5})
    assert diagnose.gradient.underflow(impl, "layer_norm", [case], dtype="float32") is None


# --- per property family ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "output"),
    [
        (
            D.instance_norm_wrong_axes_stale_buffers,
            "output: statistics over x.shape[1:] (C and the spatial axes together); ",
        ),
        (
            D.instance_norm_wrong_axes_no_buffers,
            "output: statistics over x.shape[1:] (C and the spatial axes together) and batch statistics in eval",
        ),
    ],
    ids=["stale_buffers", "no_buffers"],
)
def test_wrong_axes_and_unused_buffers_are_named_as_two_causes(fn, output):
    r = _check(fn, "instance_norm", properties=None)
    d = _diagnosed(r, "float32")
    assert "a cause per property family [" in d.text, d.text
    assert output in d.text and "running buffers: never updated]" in d.text
    assert "none of the known variants" not in d.text


def test_each_family_is_judged_on_its_own_cases():
    """by_family on the failing cases: the output family's cases judged on outputs alone give the
    axis set (with batch statistics in eval mode), the buffers family's the never-updated buffers."""
    from normcheck.diagnose import search

    target = wrap(D.instance_norm_wrong_axes_no_buffers, "instance_norm", framework="numpy")
    pairs, _ = search.failing_cases(target, [], norm="instance_norm", dtype="float32", seed=0, extra=60)
    assert pairs
    cat = diagnose.catalogue("instance_norm", "float32")
    found = families.by_family("instance_norm", cat, pairs, search.search, search.supported, lambda c: c.call(target))
    assert set(found) == {"output", "buffers"}
    out, buffers = found["output"][0], found["buffers"][0]
    assert out is not None and {m.name for m in out.members} == {"axes_rest", "eval_batch_stats"}, out
    assert buffers is not None and buffers.name == "buffers_not_updated"
    assert families.text("instance_norm", found).startswith("matches instance_norm family by family")


def test_a_probe_tells_apart_variants_alike_on_the_failing_cases():
    """At momentum 1 "never updated" and "momentum read the other way round" give the same buffers;
    a probe at momentum 0.3 keeps the one the target implements, for either target."""
    from normcheck.case import fixed_cases

    cat = diagnose.catalogue("batch_norm", "float32")
    alike = [v for v in cat if v.name in ("momentum_swapped", "buffers_not_updated")]
    base = next(c for c in fixed_cases("batch_norm", "float32") if c.running_mean is not None)
    case = dataclasses.replace(base, args={**base.args, "training": True, "momentum": 1.0})
    for name, (fn, want) in {
        "never updated": (S.batch_norm_never_updates, "buffers_not_updated"),
        "swapped": (S.batch_norm_keras_momentum, "momentum_swapped"),
    }.items():
        got = case.call(fn)
        assert all(matches(case, got, v, "buffers") for v in alike), name  # alike at momentum 1
        kept = families.discriminate(alike, [(case, got)], "buffers", lambda c, fn=fn: c.call(fn))
        assert [v.name for v in kept] == [want], name


def test_a_composition_within_one_family_is_not_split():
    cat = {v.name: v for v in diagnose.catalogue("group_norm")}
    pair = diagnose.compose("group_norm", [cat["unbiased_variance"], cat["eps_outside_sqrt"]])
    assert families.split(pair) is None and families.family(pair) == "output"
    bn = {v.name: v for v in diagnose.catalogue("batch_norm")}
    assert families.family(bn["buffers_not_updated"]) == "buffers"


# --- the diagnosis is a function of the seed -----------------------------------------------------------


def test_the_diagnosis_is_the_same_twice_for_one_seed():
    """GroupBatchnorm2d needs the composition search and fresh cases: both bounded by counts."""
    texts = [str(_check(DD.group_batchnorm2d, "group_norm", seed=3).diagnosis) for _ in range(2)]
    assert texts[0] == texts[1] and texts[0].startswith("matches group_norm with"), texts


def test_the_search_is_bounded_by_a_count():
    import inspect

    from normcheck.diagnose import search

    for fn in (search.search, search.diagnose, search.failing_cases):
        params = inspect.signature(fn).parameters
        assert not {"budget_s", "search_s", "deadline"} & set(params), fn


# --- plain numbers and the regime sentence ---------------------------------------------------------------


def test_numbers_read_plainly():
    from normcheck.check_report import plain
    from normcheck.numtext import short as cell

    assert number(9.517e13) == "9.5e13" and number(1e-6) == "1e-6" and number(255.93) == "255.9"
    assert cell(1.93e6) == "1.93e6" and cell(0.21) == "0.21" and cell(float("inf")) == "inf"
    assert plain("got np.float64(nan), expected np.float32(1.5) and np.True_") == "got nan, expected 1.5 and True"


def test_a_confinement_reads_as_a_sentence():
    c = Confinement("huge", "for |x| ≥ 1e14", 3, {"normal": 5, "offset": 5})
    assert c.headline() == "only for |x| ≥ 1e14 (regime huge)"
    assert c.others() == "the other 2 regimes passed (10 fresh cases: normal, offset)"


def test_the_gradients_are_a_family_of_their_own_on_the_cases_whose_output_is_right():
    """eps ignored breaks the output on a one-element set (0/0); rsqrt's derivative underflows on a
    huge one, where the output is right: only that case enters the gradient family, which names the
    underflow, and the output's diagnosis keeps its text with the gradients' after it."""
    pytest.importorskip("torch")
    target = wrap(D.layer_norm_rsqrt_eps_ignored, "layer_norm", framework="torch")
    impl = checker._user_impl(target, "layer_norm")
    args = {"normalized_shape": (2,), "eps": 1e-5}
    huge = Case("layer_norm", np.array([[1e14, -1e14]], np.float32), args)
    single = Case("layer_norm", np.array([[0.5]], np.float32), {"normalized_shape": (1,), "eps": 1e-5})
    g = diagnose.gradient_family(impl, target, "layer_norm", [single, huge], dtype="float32")
    assert g is not None and g.best == "gradient_underflow" and g.cases == [huge], g
    out = diagnose.Diagnosis(
        "layer_norm", 3, {"eps_ignored": 3}, {}, ["eps_ignored"], text="matches X on 3/3 failing cases"
    )
    both = families.with_gradients(out, g)
    assert both.text.startswith("matches X on 3/3 failing cases; gradients: the input gradient is lost to underflow")
    assert both.families == {"output": "eps_ignored", "gradients": "gradient_underflow"}
    assert both.to_json()["families"] == both.families


def test_a_failure_only_past_float16s_range_reads_as_confined_to_huge_inputs():
    """A bfloat16 input cast to float16 loses only the values past 65504: every failing case is in
    the huge regime, the others pass on fresh cases, and the threshold is the smallest failing max|x|
    rounded down."""
    r = checker.check(D.layer_norm_half_cast, "layer_norm", "numpy", dtypes=["bfloat16"], seed=0,
                      properties=["agreement", "statistics"])  # fmt: skip
    assert r.verdict == "deviates", r.summary()
    conf = r.to_json()["check"]["confined"]
    assert conf is not None and conf["regime"] == "huge", r.summary()
    assert set(conf["passed"]) == {"normal", "offset", "tiny", "constant", "outliers"}
    smallest = min(float(np.max(np.abs(c.x.astype(np.float64)))) for _, _, c in r.counterexamples)
    assert smallest > 65504
    threshold = float(conf["condition"].removeprefix("for |x| ≥ "))
    assert 65504 <= threshold <= smallest
    assert r.headline().startswith(f"DEVIATES only for |x| ≥ {conf['condition'][len('for |x| ≥ ') :]} (regime huge): ")
    d = _diagnosed(r, "bfloat16")
    assert d.best == "input_float16" and "cast to float16 first" in d.text, d.text


def test_failures_in_two_regimes_are_not_confined():
    """The one-pass variance fails in the offset and outliers regimes: no regime in the headline."""
    from tests.doubles import check as C

    r = checker.check(C.group_norm_one_pass, "group_norm", "numpy", dtypes=["float32"], seed=0)
    assert r.verdict == "deviates" and r.confined is None, r.headline()
    assert r.headline().startswith("DEVIATES: ")


def test_thresholds_round_down():
    from normcheck.diagnose.regimes import floor

    assert floor(99840) == "9.9e4" and floor(9.517e13) == "9.5e13" and floor(255.93) == "250"
