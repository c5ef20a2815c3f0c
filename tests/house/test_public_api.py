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
    assert sorted(normcheck.__all__) == [
        "CheckOptions",
        "CheckReport",
        "CompareReport",
        "assert_conforms",
        "check",
        "compare",
    ]
    assert normcheck.CheckOptions is checker.CheckOptions
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


BAD_SETTINGS = [
    ({"profile": "fast"}, "unknown profile 'fast'"),
    ({"dtypes": ["float8"]}, "unknown dtype float8"),
    ({"dtypes": "float32"}, "dtypes must be a sequence of names"),
    ({"properties": ["agreemnt"]}, "unknown property agreemnt"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"max_examples": 0}, "max_examples must be a positive integer"),
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"axes": ["1"]}, "axes must be an integer or a sequence of integers"),
    ({"ranks": [0]}, "ranks must be positive"),
    ({"shape": [2, -1]}, "shape must hold positive integers or None"),
    ({"args": {1: 2}}, "args must map keyword names"),
    ({"form": "class"}, "form must be 'function' or 'module'"),
    ({"no_bias": "yes"}, "no_bias must be True or False"),
]


@pytest.mark.parametrize(("settings", "match"), BAD_SETTINGS, ids=[next(iter(s)) for s, _ in BAD_SETTINGS])
def test_bad_settings_are_a_value_error_not_a_target_error(settings, match):
    """Each front door refuses a bad setting before anything runs, naming it: the options object,
    check() and assert_conforms() with the setting as a keyword, and the options passed whole."""
    calls = [
        lambda: normcheck.CheckOptions(**settings),
        lambda: normcheck.check(group_norm_f64, "group_norm", "numpy", **settings),
        lambda: testing.assert_conforms(group_norm_f64, "group_norm", "numpy", **settings),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert not isinstance(info.value, TargetError)


def test_an_unknown_norm_is_a_value_error():
    with pytest.raises(ValueError, match="unknown norm 'groupnorm'; known: "):
        normcheck.check(group_norm_f64, "groupnorm")


def test_an_unknown_option_name_is_a_type_error_naming_the_known_ones():
    with pytest.raises(TypeError, match="unknown check option 'profiel'; known: form, profile, seed"):
        normcheck.check(group_norm_f64, "group_norm", "numpy", profiel="ci")
    with pytest.raises(TypeError):
        normcheck.CheckOptions(profiel="ci")


def test_options_object_and_keywords_are_the_same_check():
    """``check(fn, norm, options=CheckOptions(...))`` runs what the same fields as keywords run; a
    keyword overrides the object's field; the options are normalized (lists to tuples) and frozen."""
    opts = normcheck.CheckOptions(**{**QUICK, "dtypes": ["float32"], "properties": ["agreement"]})
    assert opts.dtypes == ("float32",) and opts.properties == ("agreement",)
    with pytest.raises(AttributeError):
        opts.seed = 3  # frozen
    by_object = normcheck.check(group_norm_f64, "group_norm", "numpy", opts, in_process=True)
    by_keywords = normcheck.check(group_norm_f64, "group_norm", "numpy", **QUICK, in_process=True)
    strip = lambda r: {k: v for k, v in r.to_json().items() if k != "seconds"}  # noqa: E731
    assert [strip(r) for r in by_object.records] == [strip(r) for r in by_keywords.records]
    assert by_object.records and by_object.profile == "quick"
    other = normcheck.check(group_norm_f64, "group_norm", "numpy", opts, seed=1, in_process=True)
    assert other.seed == 1  # the keyword wins over the object's field


def test_a_target_that_cannot_be_checked_is_still_a_target_error():
    with pytest.raises(TargetError, match="not callable"):
        normcheck.check(D.not_callable, "group_norm")


def test_check_and_assert_conforms_take_the_options_object():
    """The signatures a user reads: the target, the norm, the framework, the options object and its
    fields as keywords; check() also takes the progress hook (the CLI's), and no CLI argv."""
    for fn in (checker.check, testing.assert_conforms):
        sig = inspect.signature(fn)
        assert list(sig.parameters)[:4] == ["fn", "norm", "framework", "options"], fn
        assert "argv" not in sig.parameters
        assert sig.parameters["options"].annotation in ("CheckOptions | None", normcheck.CheckOptions | None)
    assert set(inspect.signature(checker.check).parameters) - set(
        inspect.signature(testing.assert_conforms).parameters
    ) == {"progress"}


def test_assert_conforms_defaults_to_the_derandomized_profile():
    report = testing.assert_conforms(
        group_norm_f64, "group_norm", "numpy", properties=["agreement"], dtypes=["float32"]
    )
    assert report.profile == "ci"


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
