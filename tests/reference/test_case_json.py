"""A case with special values survives strict JSON (the audit document is written with
allow_nan=False): a counterexample with ±inf or NaN in it once made the audit write no document."""

from __future__ import annotations

import json

import numpy as np

from normcheck.case import Case


def test_special_values_round_trip_through_strict_json():
    x = np.array([[-np.inf, 0.5, np.nan, np.inf]], np.float32)
    rm = np.array([np.inf], np.float32)
    case = Case("layer_norm", x, {"normalized_shape": (4,), "eps": 1e-5}, running_mean=rm)
    text = json.dumps(case.to_json(), allow_nan=False)
    back = Case.from_json(json.loads(text))
    np.testing.assert_array_equal(back.x, x)
    np.testing.assert_array_equal(back.running_mean, rm)
    assert back.x.dtype == np.float32


def test_a_large_array_summary_with_inf_is_strict_json():
    x = np.full((1, 5000), 1.0, np.float32)
    x[0, 7] = -np.inf
    d = Case("layer_norm", x, {"normalized_shape": (5000,)}).to_json()
    assert d["input"]["summary"]["min"] == "-inf"
    json.dumps(d, allow_nan=False)
