"""Gradient-only diagnosis (issue 15): a target whose forward output is exact but whose backward
treats statistics as constants is named by what it detaches, judged against the float64 gradient
with those statistics constant, under the gradient error model."""

from __future__ import annotations

import pytest

from normcheck import checker

torch = pytest.importorskip("torch")

CI = {"profile": "ci", "dtypes": ["float32"]}


def _ln(x, normalized_shape, weight, bias, eps, *, detach_mean, detach_var):
    dims = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    mean = mean.detach() if detach_mean else mean
    var = var.detach() if detach_var else var
    y = (x - mean) / torch.sqrt(var + eps)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)


def ln_mean_detached(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _ln(input, normalized_shape, weight, bias, eps, detach_mean=True, detach_var=False)


def ln_variance_detached(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _ln(input, normalized_shape, weight, bias, eps, detach_mean=False, detach_var=True)


def ln_both_detached(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _ln(input, normalized_shape, weight, bias, eps, detach_mean=True, detach_var=True)


def rms_rsqrt_detached(input, normalized_shape, weight=None, eps=None):
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    e = torch.finfo(input.dtype).eps if eps is None else eps
    r = torch.rsqrt((input * input).mean(dims, keepdim=True) + e).detach()
    return input * r * (1 if weight is None else weight)


@pytest.mark.parametrize(
    ("fn", "norm", "says"),
    [
        (ln_both_detached, "layer_norm", "its mean and variance detached"),
        (ln_mean_detached, "layer_norm", "its mean detached"),
        (ln_variance_detached, "layer_norm", "its variance (or its rsqrt) detached"),
        (rms_rsqrt_detached, "rms_norm", "its rsqrt detached"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_a_detached_statistic_is_named(fn, norm, says):
    report = checker.check(fn, norm, "torch", **CI)
    assert report.verdict == "deviates"
    failed = {r.property for r in report.failures}
    assert "gradient_agreement" in failed and "agreement" not in failed  # forward exact, backward wrong
    assert says in str(report.diagnosis) and "forward output is exact" in str(report.diagnosis), report.summary()
