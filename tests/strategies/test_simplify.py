"""Counterexamples that read like hand-written ones (issue 28 item 6): after Hypothesis's shrink, a new
deviation's values are simplified while it persists, and case JSON writes each value as the shortest
decimal that reads back to it in its dtype."""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import audit
from normcheck.adapters.base import Impl
from normcheck.audit import driver, simplify
from normcheck.case import Case
from normcheck.profiles import Run
from normcheck.properties import Result
from tests.doubles.basic import layer_norm_one_pass


def _digits(v: float) -> int:
    return len(repr(float(v)).replace("-", "").replace(".", "").rstrip("0").lstrip("0"))


def test_a_near_constant_array_becomes_an_offset_plus_small_integers():
    a = np.array([9999.31, 10000.77], np.float32)
    first = next(simplify._candidates(a))
    assert first.tolist() == [9999.0, 10001.0]


def test_values_are_rounded_to_few_significant_digits_when_not_near_constant():
    a = np.array([0.123456, -1.98765], np.float32)
    assert next(simplify._candidates(a)).astype(np.float64).tolist() == pytest.approx([0.1, -2.0])


def test_a_new_deviation_reads_like_a_hand_written_case(monkeypatch):
    impl = Impl("user", "layer_norm", "one_pass", fn=layer_norm_one_pass)
    simplified = audit.run_check(impl, "agreement", "float32", Run("ci", seed=0))
    driver._DRAWN.clear()
    monkeypatch.setattr(driver, "simplify", lambda body, case, r: (case, r))
    raw = audit.run_check(impl, "agreement", "float32", Run("ci", seed=0))
    assert simplified.verdict == raw.verdict == "fail"
    got, was = simplified.counterexample["input"], raw.counterexample["input"]
    assert got["shape"] == was["shape"]  # Hypothesis's shrink is kept
    assert max(map(_digits, got["values"])) <= 4 < max(map(_digits, was["values"]))
    assert simplified.observed > simplified.allowed  # and it still deviates, measured on the simpler case
    x = np.asarray(got["values"], np.float64).astype(np.float32).reshape(got["shape"])
    rerun = audit.run_check(impl, "agreement", "float32", Run("ci", seed=0), strategy=_just(raw, x))
    assert rerun.verdict == "fail"


def _just(record, x):
    from hypothesis import strategies as st

    case = Case.from_json(record.counterexample).with_(x=x)
    return st.just(case)


def test_a_case_no_simpler_value_keeps_failing_is_returned_as_given():
    case = Case("layer_norm", np.array([[1.2345, -0.6789]], np.float32), {"normalized_shape": (2,), "eps": 1e-5})

    def body(c):  # deviates on exactly this input only
        return Result("", "fail" if np.array_equal(c.x, case.x) else "pass", 99.0, 16.0)

    r = body(case)
    assert simplify.simplify(body, case, r) == (case, r)


def test_registered_hits_and_errors_are_not_simplified():
    case = Case("layer_norm", np.array([[1.2345, -0.6789]], np.float32), {"normalized_shape": (2,), "eps": 1e-5})
    calls = []
    r = Result("", "error", message="raised")
    assert simplify.simplify(lambda c: calls.append(c), case, r) == (case, r) and not calls


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_case_json_values_are_the_shortest_that_read_back_in_their_dtype(dtype):
    from normcheck import dtypes

    dt = dtypes.np_dtype(dtype)
    x = np.array([[100.1, 65504.0 if dtype != "bfloat16" else 3.0, 0.3, -1e-3]]).astype(dt)
    case = Case("layer_norm", x, {"normalized_shape": (4,), "eps": 1e-5})
    values = case.to_json()["input"]["values"]
    assert np.array_equal(Case.from_json(case.to_json()).x, x)  # exactly the same values back
    assert values[0] == 100.1 if dtype == "float32" else _digits(values[0]) <= 4
    if dtype == "float16":
        assert values[1] == 65504.0  # the exact value where it is no longer than the shortest
