"""`normcheck.checker.check` on hand-written implementations (issue 4): every wrong double is
diagnosed as the variant it implements, bad targets get a clear verdict and never crash the check,
correct implementations in several styles pass under every profile and seed tried."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from normcheck import checker, diagnose, error_model, target, testing
from normcheck.case import Case, fixed_cases
from normcheck.target import Guard, TargetError, TargetHung
from tests.doubles import check as D

torch = D.torch
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install 'normcheck[torch]')")


def _check(fn, norm, framework="numpy", **kw):
    kw.setdefault("profile", "quick")
    kw.setdefault("seed", 0)
    return checker.check(fn, norm, framework, **kw)


# --- diagnosis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(D.WRONG))
def test_wrong_double_is_diagnosed(key):
    norm, fn, want = D.WRONG[key]
    report = _check(fn, norm, properties=["agreement"], dtypes=["float32"])
    assert report.verdict == "deviates", report.summary()
    d = report.diagnosis
    assert d is not None and d.best == want, f"{key}: {d.text if d else None}"
    assert d.counts[want] == d.failing and d.failing >= 1
    assert d.text.startswith(f"matches {d.descriptions[want]} on {d.failing}/{d.failing} failing cases")
    fail = report.failures[0]
    assert fail.diagnosis == d.text and fail.counterexample and "Case.from_json" in fail.repro


def test_diagnosis_text_names_bessel():
    report = _check(D.group_norm_unbiased, "group_norm", properties=["agreement"], dtypes=["float32"])
    assert "matches group_norm with unbiased variance (Bessel's correction) on" in report.diagnosis.text
    assert "diagnosis: matches group_norm with unbiased variance" in report.summary()


@needs_torch
def test_torch_unbiased_var_nan_on_single_element_groups_is_still_bessel():
    """torch.var (unbiased by default) gives NaN on one-element groups; the variant is undefined there."""

    def gn(x, num_groups, weight=None, bias=None, eps=1e-5):
        v = x.reshape(x.shape[0], num_groups, -1)
        y = ((v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, keepdim=True) + eps)).reshape(x.shape)
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        y = y if weight is None else y * weight.reshape(shape)
        return y if bias is None else y + bias.reshape(shape)

    report = checker.check(gn, "group_norm", profile="quick", properties=["agreement"], dtypes=["float32"])
    assert report.framework == "torch"
    assert report.diagnosis.best == "unbiased_variance", report.diagnosis.text


@needs_torch
def test_torch_module_double_is_diagnosed():
    report = checker.check(D.TorchBatchNormSwapped, "batch_norm", profile="quick", properties=["agreement"])
    assert (report.framework, report.form) == ("torch", "module")
    assert report.diagnosis.best == "momentum_swapped", report.diagnosis.text


def test_reference_options_reproduce_reference_and_error_model():
    """The variant machinery at its defaults is the reference, judged with the model's own scale."""
    for norm in ("batch_norm", "group_norm", "layer_norm", "instance_norm", "rms_norm"):
        for case in fixed_cases(norm):
            out, s, undefined = diagnose._compute(case)
            ref = case.reference()
            np.testing.assert_allclose(out.y, ref.y, rtol=1e-12, atol=1e-12)
            expected = error_model.scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **case.kwargs())
            np.testing.assert_allclose(s, expected, rtol=1e-12)
            assert not undefined.any()
            if ref.running_mean is not None and case.use_batch_stats:
                np.testing.assert_allclose(out.running_mean, ref.running_mean, rtol=1e-12)
                np.testing.assert_allclose(out.running_var, ref.running_var, rtol=1e-12)


def test_every_variant_differs_from_the_reference_somewhere():
    """Each catalogue entry is a real alternative: on some fixed case it is not the reference."""
    for norm in ("batch_norm", "group_norm", "layer_norm", "rms_norm"):
        cases = fixed_cases(norm) + fixed_cases(norm, seed=1)
        if norm in ("layer_norm", "rms_norm"):  # fixed_cases normalize over the last axis only
            x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
            cases.append(Case(norm, x, {"normalized_shape": (3, 4), "eps": 1e-5}))
        if norm == "batch_norm":  # a module's momentum=None (the cumulative average), first step
            x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
            buffers = {"running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32)}
            cases.append(Case(norm, x, {"training": True, "momentum": None, "eps": 1e-5}, **buffers))
        for v in diagnose.variants(norm):
            differs = False
            for c in cases:
                if not v.applies(c):
                    continue
                ref, out = c.reference(), diagnose.outcome(c, **v.options)
                if not np.allclose(out.y, ref.y, rtol=1e-6, atol=1e-6, equal_nan=True):
                    differs = True
                elif out.running_var is not None and not np.allclose(out.running_var, ref.running_var, rtol=1e-6):
                    differs = True
            assert differs or v.name in ("eps_ignored", "eps_clamped", "one_pass_variance"), (norm, v.name)


def test_diagnosis_is_none_without_agreement_failures():
    assert diagnose.diagnose(D.group_norm_two_pass, "group_norm", fixed_cases("group_norm"), extra=5) is None


# --- bad targets --------------------------------------------------------------------------------------

FAST = {"properties": ["agreement", "contracts"], "dtypes": ["float32"]}


def test_target_that_raises():
    report = _check(D.group_norm_raises, "group_norm", **FAST)
    assert report.verdict == "raises" and not report.conforms
    assert all(r.verdict == "error" for r in report.records)
    assert "NotImplementedError: TODO: implement group_norm" in report.records[0].message
    assert report.diagnosis is None
    assert "RAISES" in report.summary() and "nothing to compare" in report.summary()


def test_target_with_wrong_shape():
    report = _check(D.group_norm_wrong_shape, "group_norm", **FAST)
    assert report.verdict == "deviates"
    assert "output shape" in report.records[0].message
    assert "returns shape" in report.diagnosis.text


def test_target_with_wrong_dtype():
    report = _check(D.group_norm_wrong_dtype, "group_norm", **FAST)
    assert report.verdict == "deviates"
    assert "output dtype float64 != input float32" in report.records[0].message
    assert report.diagnosis is None and "wrong shape or dtype" in report.summary()  # the values are right


def test_target_returning_nan():
    report = _check(D.group_norm_nan, "group_norm", **FAST)
    assert report.verdict == "deviates"
    assert "NaN/Inf pattern differs" in report.records[0].message
    assert report.diagnosis.matches == []
    assert report.diagnosis.text.startswith("returns NaN/Inf where the reference is finite")


def test_target_that_mutates_its_input():
    report = _check(D.group_norm_mutates_input, "group_norm", **FAST)
    verdicts = {r.property: r.verdict for r in report.records}
    assert verdicts == {"agreement": "pass", "contracts": "fail"}, report.summary()
    assert "the input array was modified in place" in report.failures[0].message
    assert "modifies its input in place" in report.summary()


def test_target_that_hangs():
    report = _check(D.group_norm_hangs, "group_norm", timeout=0.3, properties=None, dtypes=None, profile="ci")
    assert report.verdict == "hangs" and not report.conforms
    assert report.records[0].verdict == "error" and report.records[0].message.startswith("hang: ")
    assert "worker process was killed" in report.hung
    later = [r for r in report.records[1:] if not r.property.startswith("identity:")]
    assert later and all(r.verdict == "skip" and "hung" in r.message for r in later)
    assert "HANGS" in report.summary()


def test_hang_during_framework_inference_still_reports():
    report = checker.check(D.group_norm_hangs, "group_norm", timeout=0.3, profile="quick", **FAST)
    assert report.verdict == "hangs"


def test_not_callable():
    with pytest.raises(TargetError, match="not callable"):
        checker.check(D.not_callable, "group_norm")


def test_unknown_norm_property_profile_dtype():
    with pytest.raises(ValueError, match="unknown norm"):
        checker.check(D.group_norm_two_pass, "groupnorm")
    with pytest.raises(ValueError, match="unknown property"):
        checker.check(D.group_norm_two_pass, "group_norm", properties=["agreemnt"])
    with pytest.raises(ValueError, match="unknown profile"):
        checker.check(D.group_norm_two_pass, "group_norm", profile="fast")
    with pytest.raises(ValueError, match="unknown dtype"):
        checker.check(D.group_norm_two_pass, "group_norm", dtypes=["float8"])


@needs_torch
def test_module_instance_is_refused_with_a_hint():
    with pytest.raises(TargetError, match="instance"):
        checker.check(D.TorchGroupNorm(2, 4), "group_norm")


def test_nnx_layers_are_not_supported_yet(monkeypatch):
    import types

    class Module:  # stands in for flax.nnx.Module without importing Flax
        pass

    fake = types.ModuleType("flax.nnx")
    fake.Module = Module
    monkeypatch.setitem(sys.modules, "flax.nnx", fake)

    class MyNorm(Module):
        pass

    with pytest.raises(TargetError, match=r"flax\.nnx layer targets are not supported yet"):
        checker.check(MyNorm, "layer_norm")


@pytest.mark.parametrize("kind", ["keras", "flax"])
def test_layer_class_targets(kind):
    """A Keras layer / flax.linen module class, constructed like the framework's own LayerNorm, is
    driven by the framework's adapter: a correct one conforms, an unbiased one is diagnosed."""
    from tests.doubles import layers as L

    pytest.importorskip("keras" if kind == "keras" else "flax")
    make = L.keras_layer_norm if kind == "keras" else L.linen_layer_norm
    fw = "tensorflow" if kind == "keras" else "jax"
    good = checker.check(make(), "layer_norm", profile="quick", dtypes=["float32"], timeout=60)
    assert good.framework == fw and good.form == "module"
    assert good.conforms, good.summary()
    bad = checker.check(make(unbiased=True), "layer_norm", profile="quick", dtypes=["float32"], timeout=60)
    assert not bad.conforms
    assert bad.diagnosis is not None and "unbiased variance (Bessel" in bad.diagnosis.text, bad.summary()
    with pytest.raises(TargetError, match=f"is {fw} code"):
        checker.check(make(), "layer_norm", framework="torch")


def test_a_target_cannot_change_another_propertys_verdict():
    """Each call gets fresh copies: a target that scribbles on every array it gets still passes
    agreement, and only the contracts property sees the mutation."""
    calls = []

    def scribbler(input, num_groups, weight=None, bias=None, eps=1e-5):
        y = D.group_norm_two_pass(input.copy(), num_groups, weight, bias, eps)
        calls.append(input)
        input[...] = 7
        for a in (weight, bias):
            if a is not None:
                a[...] = 7
        return y

    report = _check(scribbler, "group_norm", **FAST)
    verdicts = {r.property: r.verdict for r in report.records}
    assert verdicts == {"agreement": "pass", "contracts": "fail"}, report.summary()
    assert len({id(a) for a in calls}) == len(calls)  # never the same array twice


# --- correct implementations ---------------------------------------------------------------------------

CORRECT = [
    pytest.param("group_norm", D.group_norm_two_pass, "numpy", id="two_pass"),
    pytest.param("layer_norm", D.layer_norm_rsqrt, "numpy", id="rsqrt"),
    pytest.param("group_norm", D.group_norm_upcast, "numpy", id="float32_upcast"),
    pytest.param("group_norm", D.group_norm_var_mean, "torch", id="torch_var_mean", marks=needs_torch),
]


# ci is derandomized (the seed changes nothing there); dev draws from the seed
PROFILE_SEEDS = [("ci", 0), ("dev", 0), ("dev", 1), ("dev", 2)]


@pytest.mark.parametrize(("norm", "fn", "framework"), CORRECT)
@pytest.mark.parametrize(("profile", "seed"), PROFILE_SEEDS, ids=[f"{p}-seed{s}" for p, s in PROFILE_SEEDS])
def test_correct_implementation_conforms(norm, fn, framework, profile, seed):
    report = checker.check(fn, norm, profile=profile, seed=seed)
    assert report.framework == framework
    assert report.conforms, report.summary()
    assert report.verdict == "conforms" and "CONFORMS" in report.summary()
    ran = [r for r in report.records if r.verdict == "pass"]
    assert {r.property for r in ran} >= {"agreement", "contracts", "statistics", "special_values"}


def test_upcast_double_is_checked_in_16_bit_too():
    report = checker.check(D.group_norm_upcast, "group_norm", "numpy", profile="quick", dtypes=["float32", "float16"])
    assert {r.dtype for r in report.records} == {"float32", "float16"}
    assert report.conforms and any(r.dtype == "float16" and r.verdict == "pass" for r in report.records)


def test_16_bit_is_skipped_when_the_target_refuses_it():
    def f32_only(input, num_groups, weight=None, bias=None, eps=1e-5):
        if input.dtype != np.float32:
            raise TypeError(f"float32 only, got {input.dtype}")
        return D.group_norm_two_pass(input, num_groups, weight, bias, eps)

    report = _check(f32_only, "group_norm", properties=["agreement"], dtypes=["float32", "bfloat16"])
    bf = [r for r in report.records if r.dtype == "bfloat16"]
    assert bf and all(r.verdict == "skip" and "does not accept bfloat16" in r.message for r in bf)
    assert report.conforms


@needs_torch
@pytest.mark.parametrize(("cls", "norm"), [("TorchGroupNorm", "group_norm"), ("TorchBatchNorm", "batch_norm")])
def test_torch_module_conforms(cls, norm):
    report = checker.check(getattr(D, cls), norm, profile="ci")
    assert (report.framework, report.form) == ("torch", "module")
    assert report.conforms, report.summary()


def test_numpy_batch_norm_with_running_buffers_conforms():
    report = checker.check(D.batch_norm, "batch_norm", profile="ci")
    assert report.conforms, report.summary()
    assert any(r.counterexample is None and r.verdict == "pass" for r in report.records)


# --- the report ---------------------------------------------------------------------------------------


def test_report_json_is_an_audit_document():
    from normcheck.report import render_html

    report = _check(D.group_norm_eps_outside, "group_norm", properties=["agreement", "statistics"])
    doc = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert doc["schema"] == "normcheck.audit/1"
    assert doc["summary"]["fail"] >= 1 and doc["check"]["verdict"] == "deviates"
    assert doc["check"]["diagnosis"]["matches"][0] == "eps_outside_sqrt"
    fails = [r for r in doc["records"] if r["verdict"] == "fail"]
    assert fails and all(r["diagnosis"] and r["repro"] and r["counterexample"] for r in fails)
    case = Case.from_json(fails[0]["counterexample"])
    assert case.norm == "group_norm"
    assert "eps outside the square root" in render_html(doc)


def test_repro_snippet_runs_and_shows_the_deviation(capsys):
    report = checker.check(
        "tests.doubles.check:group_norm_unbiased", "group_norm", profile="quick", properties=["agreement"]
    )
    code = report.failures[0].repro
    assert "load('tests.doubles.check:group_norm_unbiased')" in code
    exec(compile(code, "<repro>", "exec"), {})
    assert "allowed 16" in capsys.readouterr().out


def test_summary_shows_small_counterexample_values():
    report = _check(D.group_norm_unbiased, "group_norm", properties=["agreement"], dtypes=["float32"])
    text = report.summary()
    for needle in ("FAIL agreement (float32)", "shrunk case: group_norm", "input:", "reference:", "target:", "repro:"):
        assert needle in text
    assert report.counterexamples and report.counterexamples[0][0] == "agreement"


def test_default_profile_finds_a_counterexample():
    report = _check(D.group_norm_unbiased, "group_norm", profile="default", properties=["agreement"])
    assert report.records[0].verdict == "fail" and report.records[0].counterexample


def test_assert_conforms():
    assert testing.assert_conforms(D.group_norm_two_pass, "group_norm", "numpy", profile="quick").conforms
    with pytest.raises(AssertionError, match="unbiased variance"):
        testing.assert_conforms(D.group_norm_unbiased, "group_norm", "numpy", profile="quick", properties=["agreement"])


def test_public_entry_points():
    import normcheck

    assert normcheck.check is checker.check
    from normcheck import testing

    assert testing.assert_conforms(D.group_norm_two_pass, "group_norm", "numpy", profile="quick").conforms


# --- the target wrapper ------------------------------------------------------------------------------


@needs_torch
def test_framework_inference():
    assert target.wrap(D.group_norm_two_pass, "group_norm").framework == "numpy"
    assert target.wrap(D.group_norm_var_mean, "group_norm").framework == "torch"
    t = target.wrap(D.TorchGroupNorm, "group_norm")
    assert (t.framework, t.form) == ("torch", "module")
    raising = target.wrap(D.group_norm_raises, "group_norm")
    named = "torch" if torch is not None else "numpy"  # the doubles' module imports torch
    assert raising.framework == named and "no probe call succeeded" in raising.notes[0]


@needs_torch
def test_torch_function_updates_running_buffers_in_place():
    def bn(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        return torch.nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)

    t = target.wrap(bn, "batch_norm", framework="torch")
    case = next(c for c in fixed_cases("batch_norm") if c.running_mean is not None and c.use_batch_stats)
    got, ref = case.call(t), case.reference()
    np.testing.assert_allclose(got.running_mean, ref.running_mean, rtol=1e-5)
    np.testing.assert_allclose(got.running_var, ref.running_var, rtol=1e-5)
    assert not np.array_equal(got.running_mean, case.running_mean)


def test_immutable_framework_may_return_new_buffers():
    """A JAX/TF-style function returns (y, new_running_mean, new_running_var)."""

    def bn(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        rm, rv = running_mean.copy(), running_var.copy()
        y = D.batch_norm(input, rm, rv, weight, bias, training, momentum, eps)
        return y, rm, rv

    t = target.wrap(bn, "batch_norm", framework="numpy")
    case = next(c for c in fixed_cases("batch_norm") if c.running_mean is not None and c.use_batch_stats)
    got, ref = case.call(t), case.reference()
    np.testing.assert_allclose(got.running_var, ref.running_var, rtol=1e-5)


def test_bad_return_value_is_named():
    t = target.wrap(lambda x, g, w=None, b=None, eps=1e-5: None, "group_norm", framework="numpy")
    case = fixed_cases("group_norm")[0]
    with pytest.raises(target.BadOutput, match=r"is None, not a numpy\.ndarray"):
        case.call(t)
    report = _check(lambda x, g, w=None, b=None, eps=1e-5: [0.0], "group_norm", **FAST)
    assert "builtins.list, not a numpy.ndarray" in report.records[0].message


def test_guard():
    g = Guard(0.2)
    assert g.call(lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(ValueError, match="boom"):
        g.call(lambda: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(RuntimeError, match="SystemExit"):
        g.call(lambda: (_ for _ in ()).throw(SystemExit(3)))
    with pytest.raises(TargetHung):
        g.call(time.sleep, 5)
    called = []
    with pytest.raises(TargetHung):
        g.call(called.append, 1)  # never called again
    assert called == []
    assert Guard(None).call(lambda: 5) == 5
