"""``normcheck.compare`` and ``normcheck compare`` (issue 27): two implementations on the same cases,
equivalent under both sides' bounds, and a difference named by the convention slip that explains it
(the ports of tests/doubles/compare.py: faithful, eps default, momentum convention, stored variance)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from normcheck import comparison, dtypes, error_model
from normcheck.cli import main
from normcheck.testing import assert_equivalent
from tests.doubles import compare as D

torch = pytest.importorskip("torch", reason="torch is not installed: the torch side of every pair")


def _compare(b, norm, **kw):
    a = torch.nn.BatchNorm2d if norm == "batch_norm" else torch.nn.LayerNorm
    kw.setdefault("framework_b", "numpy")
    return comparison.compare(a, b, norm, **kw)


# --- the allowance -----------------------------------------------------------------------------------


def test_difference_allows_both_sides_bounds():
    """|a - b| <= lambda ((u + u64)(s_a + s_b) + eta): with s_a = s_b = 1 in float32, a difference of
    20 u is 20 / (2 (1 + u64/u)) ~ 10 u·s (within 16), 40 u is ~ 20 u·s (beyond)."""
    u = dtypes.unit_roundoff("float32")
    one = np.ones(3)
    near = comparison.difference(np.float32(1.0) + 20 * u * one, one, one, one, "float32")
    far = comparison.difference(np.float32(1.0) + 40 * u * one, one, one, one, "float32")
    assert near.ok and math.isclose(near.observed, 10.0, rel_tol=1e-3)
    assert not far.ok and math.isclose(far.observed, 20.0, rel_tol=1e-3)
    assert error_model.MODEL.lam == 16.0
    nan = comparison.difference(np.array([np.nan]), np.array([1.0]), np.ones(1), np.ones(1), "float32")
    assert not nan.ok and nan.mismatch


# --- layer classes of NumPy ports against torch -------------------------------------------------------


def test_faithful_layer_norm_port_is_equivalent():
    r = _compare(D.LayerNormPort, "layer_norm")
    assert r.equivalent and r.verdict == "equivalent" and bool(r)
    assert r.cases == 40 and r.tallies["float32 output"].compared == 40
    assert r.worst.between.observed <= error_model.MODEL.lam
    assert r.slip is None and "EQUIVALENT" in r.summary()
    assert "gradients not compared: numpy has no autodiff" in r.notes


def test_faithful_batch_norm_port_is_equivalent_through_train_and_eval():
    r = _compare(D.BatchNormPort, "batch_norm")
    assert r.equivalent, r.summary()
    for q in ("running_mean", "running_var", "eval after training"):
        assert r.tallies[f"float32 {q}"].compared > 0


@pytest.mark.parametrize(
    ("port", "norm", "slip", "words"),
    [
        (D.LayerNormFlaxEps, "layer_norm", "eps default", ["eps=1e-05", "eps=1e-06"]),
        (D.BatchNormKerasEps, "batch_norm", "eps default", ["eps=0.001"]),
        (D.BatchNormKerasMomentum, "batch_norm", "momentum convention", ["B (", "old running value"]),
        (D.BatchNormBiasedVar, "batch_norm", "stored variance estimator", ["B (", "biased batch variance"]),
    ],
)
def test_a_slipped_port_differs_and_the_slip_is_named(port, norm, slip, words):
    r = _compare(port, norm)
    assert r.verdict == "differ" and not r
    assert r.slip == slip, r.summary()
    for w in words:
        assert w in r.explanation
    text = r.summary()
    assert "DIFFER" in text and f"explained by a convention slip: {slip}" in text
    w = r.worst
    assert not w.equivalent and w.between.observed > error_model.MODEL.lam


def test_the_deviating_side_is_the_one_off_its_reference():
    r = _compare(D.BatchNormKerasMomentum, "batch_norm")
    w = r.worst
    assert w.a_ref.ok and not w.b_ref.ok
    assert r.closer() == "A"
    assert "closer to the reference: A" in r.summary()


def test_an_eps_default_slip_has_no_closer_side():
    """Each side agrees with its own reference (its own eps): a convention, not an error."""
    r = _compare(D.LayerNormFlaxEps, "layer_norm")
    assert r.worst.a_ref.ok and r.worst.b_ref.ok and r.closer() is None


# --- gradients: torch functions --------------------------------------------------------------------------


def test_torch_function_ports_compare_gradients():
    ok = comparison.compare(torch.nn.LayerNorm, D.torch_layer_norm, "layer_norm")
    assert ok.equivalent, ok.summary()
    assert ok.tallies["float32 dinput"].compared == comparison.GRADIENT_CASES
    bad = comparison.compare(torch.nn.LayerNorm, D.torch_layer_norm_eps6, "layer_norm")
    assert bad.verdict == "differ" and bad.slip == "eps default"
    assert "uses eps=1e-06 (Flax's default) whatever eps it is given" in bad.explanation
    assert bad.explanation.startswith("eps: B (")


def test_a_target_that_always_raises_is_untested():
    def broken(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        raise RuntimeError("not ported yet")

    r = comparison.compare(D.torch_layer_norm, broken, "layer_norm", framework_a="torch", framework_b="numpy",
                           examples=5, gradients=False)  # fmt: skip
    assert r.verdict == "untested" and not r
    assert "not ported yet" in r.headline()


# --- JAX and Keras ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "slip"),
    [(D.jax_batch_norm, None), (D.jax_batch_norm_keras_momentum, "momentum convention")],
)
def test_jax_batch_norm_ports(port, slip):
    pytest.importorskip("jax", reason="jax is not installed")
    r = comparison.compare(torch.nn.BatchNorm2d, port, "batch_norm", framework_b="jax", examples=25)
    assert r.slip == slip, r.summary()
    assert r.equivalent == (slip is None)
    assert r.tallies["float32 running_var"].compared > 0 and r.tallies["float32 dinput"].compared > 0


def test_keras_layer_norm_class_is_equivalent_to_torch():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    import keras

    r = comparison.compare(torch.nn.LayerNorm, keras.layers.LayerNormalization, "layer_norm", examples=20)
    assert r.equivalent, r.summary()
    assert r.frameworks == ("torch", "tensorflow") and r.tallies["float32 dweight"].compared > 0


# --- the front doors ---------------------------------------------------------------------------------------


def test_assert_equivalent():
    report = assert_equivalent(torch.nn.LayerNorm, D.LayerNormPort, "layer_norm", framework_b="numpy", examples=10)
    assert report.equivalent
    with pytest.raises(AssertionError, match="explained by a convention slip: stored variance estimator"):
        assert_equivalent(torch.nn.BatchNorm2d, D.BatchNormBiasedVar, "batch_norm", framework_b="numpy")


def test_cli_exit_status_and_json(tmp_path, capsys):
    ok = ["compare", "torch.nn:LayerNorm", "tests/doubles/compare.py:LayerNormPort", "--norm", "layer_norm"]
    assert main([*ok, "--framework-b", "numpy", "--examples", "10"]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out
    path = tmp_path / "c.json"
    bad = ["compare", "torch.nn:BatchNorm2d", "tests/doubles/compare.py:BatchNormKerasMomentum"]
    assert main([*bad, "--norm", "batch_norm", "--framework-b", "numpy", "--json", str(path)]) == 1
    out = capsys.readouterr().out
    assert "DIFFER" in out and "momentum convention" in out
    doc = json.loads(path.read_text())
    assert doc["schema"] == "normcheck.compare/1" and doc["verdict"] == "differ"
    assert doc["slip"] == "momentum convention" and doc["closer"] == "A"
    assert doc["worst"]["quantity"] in ("running_mean", "running_var", "eval after training")
    assert main(["compare", "nope:x", "tests/doubles/compare.py:LayerNormPort", "--norm", "layer_norm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: no module named 'nope'" in err
    assert main([*ok, "--norm", "layer_norm", "--examples", "0"]) == 2


def test_comparing_two_torch_targets_imports_neither_tensorflow_nor_jax():
    code = (
        "import sys, torch\n"
        "from normcheck import compare\n"
        "from tests.doubles import compare as D\n"
        "r = compare(torch.nn.LayerNorm, D.torch_layer_norm_eps6, 'layer_norm', examples=8)\n"
        "print(r.verdict, r.slip)\n"
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "differ eps default"
    assert not set(out[1].split()) & {"tensorflow", "keras", "jax", "flax", "onnxruntime"}


def test_pinned_arguments_reach_both_sides():
    """--arg momentum=None: every case uses torch's cumulative average; a port reading None as 0.1
    differs, no convention slip explains it, and the diagnosis names it."""
    from tests.doubles import momentum as M

    pins = {"momentum": None}
    ok = comparison.compare(torch.nn.BatchNorm2d, M.CumulativeBatchNorm, "batch_norm", args=pins, gradients=False)
    assert ok.equivalent and ok.tallies["float32 running_mean"].compared > 0
    bad = comparison.compare(torch.nn.BatchNorm2d, M.NoneMeansDefault, "batch_norm", args=pins, gradients=False)
    assert bad.verdict == "differ" and bad.slip is None
    assert bad.worst.case.args["momentum"] is None
    assert bad.diagnosis.startswith("B (") and "momentum=None" in bad.diagnosis
