"""The public API a user reads (issue 28): ``normcheck.__all__`` names check, CheckReport,
assert_conforms, compare and CompareReport (issue 27), loaded lazily; the package is typed (``py.typed``); ``bool(report)`` is
``report.conforms``; bad settings are a ValueError; ``normcheck.testing.assert_conforms`` has a
visible signature and hides its own frame from pytest's tracebacks."""

from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import normcheck
from normcheck import checker, comparison, reference, testing
from normcheck.target import TargetError
from tests.doubles import check as D

ROOT = Path(__file__).resolve().parents[2]
QUICK = {"profile": "quick", "seed": 0, "properties": ["agreement"], "dtypes": ["float32"]}


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def group_norm_f64(input, num_groups, weight=None, bias=None, eps=1e-5):
    """A conforming target whatever the values drawn: the reference in float64, rounded once."""
    y = reference.group_norm(_f64(input), num_groups, _f64(weight), _f64(bias), eps)
    return np.asarray(y).astype(np.asarray(input).dtype)


def test_all_names_the_front_door():
    assert sorted(normcheck.__all__) == ["CheckReport", "CompareReport", "assert_conforms", "check", "compare"]
    assert normcheck.check is checker.check
    assert normcheck.compare is comparison.compare and callable(normcheck.compare)
    assert normcheck.CompareReport is comparison.CompareReport
    assert normcheck.CheckReport is checker.CheckReport
    assert normcheck.assert_conforms is testing.assert_conforms
    assert {"check", "CheckReport", "assert_conforms"} <= set(dir(normcheck))


def test_star_import_gives_the_public_names_and_imports_no_framework():
    code = (
        "import sys\nfrom normcheck import *\n"
        "print(check.__module__, CheckReport.__name__, assert_conforms.__module__)\n"
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "normcheck.checker CheckReport normcheck.testing"
    assert not set(out[1].split()) & {"torch", "jax", "flax", "tensorflow", "keras", "onnx", "onnxruntime"}


def test_the_package_is_typed():
    assert (ROOT / "normcheck" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["normcheck"]


def test_bool_of_a_report_is_conforms():
    good = checker.check(group_norm_f64, "group_norm", "numpy", **QUICK)
    bad = checker.check(D.group_norm_unbiased, "group_norm", "numpy", **QUICK)
    assert good.conforms and bool(good) is True
    assert not bad.conforms and bool(bad) is False
    with pytest.raises(AssertionError):
        assert normcheck.check(D.group_norm_unbiased, "group_norm", "numpy", **QUICK)


def test_bool_of_an_untested_report_is_false():
    """A report in which every check was skipped tested nothing: false, as conforms is."""
    report = checker.CheckReport("t", "group_norm", "numpy", "function", "quick", 0, records=[])
    assert not report.tested and bool(report) is False


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"profile": "fast"}, "unknown profile"), ({"dtypes": ["float8"]}, "unknown dtype")],
)
def test_bad_settings_are_a_value_error_not_a_target_error(settings, match):
    for fn in (normcheck.check, testing.assert_conforms):
        with pytest.raises(ValueError, match=match) as info:
            fn(group_norm_f64, "group_norm", "numpy", **settings)
        assert not isinstance(info.value, TargetError)


def test_a_target_that_cannot_be_checked_is_still_a_target_error():
    with pytest.raises(TargetError, match="not callable"):
        normcheck.check(D.not_callable, "group_norm")


def test_assert_conforms_has_a_visible_signature():
    sig = inspect.signature(testing.assert_conforms)
    kinds = {p.kind for p in sig.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    check_sig = inspect.signature(checker.check)
    for name, p in sig.parameters.items():
        assert name in check_sig.parameters, name
        want = "ci" if name == "profile" else check_sig.parameters[name].default
        assert p.default == want, name  # the same defaults as check(), but the derandomized profile
    internal = {"progress", "argv"}  # the CLI's hooks, not a test's settings
    assert set(check_sig.parameters) - set(sig.parameters) == internal


def test_assert_conforms_hides_its_frame_and_raises_the_summary():
    with pytest.raises(AssertionError) as info:
        testing.assert_conforms(D.group_norm_unbiased, "group_norm", "numpy", **QUICK)
    assert "DEVIATES" in str(info.value)
    frames = [e for e in info.traceback if e.frame.code.name == "assert_conforms"]
    assert frames and all(e.frame.f_locals.get("__tracebackhide__") is True for e in frames)
    assert all(e.ishidden(info) for e in frames)
    report = testing.assert_conforms(group_norm_f64, "group_norm", "numpy", **QUICK)
    assert isinstance(report, checker.CheckReport) and report


# --- properties: "not applicable" is said, never inferred from a ValueError ------------------------


@pytest.fixture
def registry(monkeypatch):
    """A private registry, so the properties registered here never reach the audit's."""
    from normcheck.properties import core

    monkeypatch.setattr(core, "REGISTRY", dict(core.REGISTRY))
    return core


def test_not_applicable_is_a_skip_with_its_reason(registry):
    @registry.register
    def needs_two_axes(impl, case):
        raise registry.NotApplicable("the case has one axis")

    r = needs_two_axes(None, fixed_cases_one())
    assert (r.property, r.verdict, r.message) == ("needs_two_axes", "skip", "not applicable: the case has one axis")
    assert not r.ok  # a skip tested nothing
    assert registry.REGISTRY["needs_two_axes"] is needs_two_axes


def test_a_value_error_in_a_property_is_not_a_skip(registry):
    """A harness bug (a broadcast that fails, a bad reshape) propagates instead of reading as
    "not applicable"."""

    @registry.register
    def buggy(impl, case):
        np.broadcast_to(np.ones(3), (2, 4))  # ValueError: a bug in the property, not a verdict

    with pytest.raises(ValueError, match="broadcast"):
        buggy(None, fixed_cases_one())


def test_only_a_pass_is_ok():
    from normcheck.properties.core import Result

    assert {v: Result("p", v).ok for v in ("pass", "fail", "error", "skip")} == {
        "pass": True,
        "fail": False,
        "error": False,
        "skip": False,
    }


def test_group_norm_jvp_scale_takes_a_weight():
    """The forward-mode bound of a group norm with weight and tangents (was a ValueError, read as a
    skip of every such example of the jvp property)."""
    from normcheck import error_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 3))
    w, wt, bt = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    kw = {"num_groups": 2, "weight": w}
    s = error_model.jvp_scale("group_norm", x, np.ones_like(x), weight_tangent=wt, bias_tangent=bt, **kw)
    plain = error_model.jvp_scale("group_norm", x, np.ones_like(x), num_groups=2)
    assert s.shape == x.shape and np.all(np.isfinite(s))
    # the weight scales channel c's bound by |w_c|, and the tangents add to it
    assert np.all(s >= np.abs(w)[None, :, None] * plain * (1 - 1e-12))


def fixed_cases_one():
    from normcheck.case import fixed_cases

    return fixed_cases("layer_norm", "float32")[0]
