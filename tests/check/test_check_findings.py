"""`normcheck check` reports a target the way the audit reports a framework: a failure inside a
registered finding of the framework the target runs on is that finding (it does not stop the
exploration), and an example on which the target raises does not hide a deviation elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import checker

torch = pytest.importorskip("torch")


def group_norm_on_torch(x, num_groups, weight=None, bias=None, eps=1e-5):
    """A correct GroupNorm built on F.group_norm (torch refuses one-element groups in training)."""
    return torch.nn.functional.group_norm(x, num_groups, weight, bias, eps)


def group_norm_raises_without_weight_and_uses_bessel(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Two faults: raises when called without affine parameters, and divides by n - 1."""
    if weight is None:
        raise RuntimeError("a weight is required")
    n, c = x.shape[:2]
    v = x.reshape(n, num_groups, -1)
    y = ((v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=True, keepdim=True) + eps)).reshape(x.shape)
    shape = [1, c] + [1] * (x.ndim - 2)
    return y * weight.reshape(shape) + (0 if bias is None else bias.reshape(shape))


def test_a_target_on_f_group_norm_conforms_through_torchs_registered_finding():
    report = checker.check(group_norm_on_torch, "group_norm", "torch", profile="ci", dtypes=["float32"], diagnose=False)
    assert report.conforms, report.summary()
    hits = {r.finding for r in report.records if r.verdict == "finding"}
    assert "torch-group-norm-single-value-check" in hits
    ran = [r for r in report.records if r.verdict in ("pass", "finding") and r.examples > 0]
    assert len(ran) >= 7 and not [r for r in report.records if r.verdict in ("fail", "error")]


def test_an_error_does_not_hide_the_deviation_behind_it():
    report = checker.check(
        group_norm_raises_without_weight_and_uses_bessel,
        "group_norm",
        "torch",
        profile="ci",
        dtypes=["float32"],
        properties=["agreement", "statistics"],
        diagnose=False,
    )
    by_prop = {r.property: r for r in report.records}
    agreement = by_prop["agreement"]
    assert agreement.verdict == "fail"  # the numeric deviation, found past the raising examples
    assert agreement.raises is not None and "a weight is required" in agreement.raises["message"]
    assert agreement.raises["counterexample"]["weight"] is None
    assert np.isfinite(agreement.observed) or agreement.observed == np.inf
    assert "also raises when: raised RuntimeError: a weight is required" in report.summary()
    statistics = by_prop["statistics"]  # runs without affine parameters only: every example raises
    assert statistics.verdict == "error" and "a weight is required" in statistics.message
    assert statistics.to_json()["raises"]["message"] == statistics.message


def test_a_target_gets_the_findings_of_its_frameworks_norm_in_every_form_only():
    """A finding about one native API (Flax linen's fast variance) does not explain a user's JAX
    LayerNorm; one about the framework's norm in every form (torch's single-value GroupNorm check,
    the rsqrt gradient underflow of every JAX norm) does."""
    from types import SimpleNamespace

    from normcheck import findings

    def ids(framework, norm, prop, form="function"):
        impl = SimpleNamespace(framework="user", norm=norm, form=form, id=f"user/{norm}/{form}", runs_on=framework)
        return {f.id for f in findings.applicable_to(impl, prop, "float32")}

    assert "torch-group-norm-single-value-check" in ids("torch", "group_norm", "agreement")
    assert "rsqrt-gradient-underflow" in ids("jax", "layer_norm", "gradient_agreement")
    flax = next(f for f in findings.load() if f.id == "flax-fast-variance")
    assert flax.applies("jax/layer_norm/linen", "agreement", "float32")  # the native API's finding...
    assert "flax-fast-variance" not in ids("jax", "layer_norm", "agreement")  # ...is not the user's
    assert not ids("torch", "layer_norm", "agreement") & {"torch-group-norm-single-value-check"}
    # a torch function calls torch.nn.functional: F.group_norm's bias-only backward applies to it,
    # not to a module class (nn.GroupNorm always passes a weight)
    assert "torch-group-norm-bias-only-backward" in ids("torch", "group_norm", "gradient_agreement")
    assert "torch-group-norm-bias-only-backward" not in ids("torch", "group_norm", "gradient_agreement", "module")
