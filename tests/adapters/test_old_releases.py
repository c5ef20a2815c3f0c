"""An API an older release of a framework lacks makes its checks skip with the reason, never raise
(the version matrix, docs/matrix.md): Keras before 3.9 has no RMSNormalization, ONNX Runtime 1.22
does not load RMSNormalization-23 (IR version 11), Flax before 0.12.1 has no
``nnx.Variable.set_value`` (and 0.10/0.11 no ``nnx.InstanceNorm``), JAX before 0.10.1 no
``algorithm`` parameter of ``jax.nn.standardize``. The old releases are simulated here by removing the
attribute, making the session refuse the model or replacing a function by its old signature."""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import adapters, properties
from normcheck.case import Case


def _impl(framework: str, impl_id: str):
    return next(i for i in adapters.get(framework).implementations() if i.id == impl_id)


def _rms_case(n: int, eps: float) -> Case:
    """A case of a shape and eps no other test uses: no cached layer or session serves it."""
    x = np.linspace(-1.0, 2.0, n).astype(np.float32).reshape(1, n)
    return Case("rms_norm", x, {"normalized_shape": (n,), "eps": eps})


def test_keras_without_rms_normalization_skips_with_the_reason(monkeypatch):
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    from normcheck.adapters import tensorflow as tfa

    keras = tfa.import_keras()
    monkeypatch.delattr(keras.layers, "RMSNormalization", raising=False)  # absent before Keras 3.9
    impl = _impl("tensorflow", "tensorflow/rms_norm/keras")
    case = _rms_case(7, 0.0123)
    for prop in ("agreement", "gradient_agreement"):
        r = properties.PROPERTIES[prop](impl, case)
        assert r.verdict == "skip", (prop, r.verdict, r.message)
        assert "no keras.layers.RMSNormalization (added in Keras 3.9)" in r.message, r.message
    assert all(p.norm != "rms_norm" for p in tfa.ADAPTER.convention_probes())  # no row, no error


def test_onnxruntime_refusing_opset_23_skips_with_the_reason(monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import onnxruntime

    from normcheck.adapters import onnxruntime as oa

    def refuse(*args, **kwargs):  # what onnxruntime 1.22.1 says about RMSNormalization-23
        raise RuntimeError(
            "[ONNXRuntimeError] : 1 : FAIL : onnxruntime/core/graph/model.cc:181 onnxruntime::Model::Model(...) "
            "Unsupported model IR version: 11, max supported IR version: 10"
        )

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    r = properties.PROPERTIES["agreement"](_impl("onnxruntime", "onnxruntime/rms_norm/onnx"), _rms_case(9, 0.03125))
    assert r.verdict == "skip", (r.verdict, r.message)
    assert "does not run opset 23: Unsupported model IR version: 11, max supported IR version: 10" in r.message
    assert oa._too_new("... Opset 23 is under development and support for this is limited ...") == (
        "Opset 23 is under development"
    )
    assert oa._too_new("INVALID_ARGUMENT : Size of X.shape[axis:] must be larger than 1, got 1") is None


@pytest.mark.parametrize(
    ("missing", "impl_id", "reason"),
    [
        ("set_value", "jax/layer_norm/nnx", "has no nnx.Variable.set_value"),
        ("InstanceNorm", "jax/instance_norm/nnx", "has no nnx.InstanceNorm"),
    ],
)
def test_flax_without_the_nnx_api_skips_with_the_reason(monkeypatch, missing, impl_id, reason):
    pytest.importorskip("flax", reason="flax is not installed")
    from flax import nnx

    monkeypatch.delattr(nnx.Variable if missing == "set_value" else nnx, missing, raising=False)  # flax < 0.12.1
    impl = _impl("jax", impl_id)  # the eager form: the layer is built on every call
    if impl.norm == "layer_norm":
        case = Case("layer_norm", np.array([[0.5, -1.0, 2.0]], np.float32), {"normalized_shape": (3,), "eps": 1e-5})
    else:
        case = Case("instance_norm", np.array([[[0.5, -1.0, 2.0]]], np.float32), {"eps": 1e-5})
    for prop in ("agreement", "gradient_agreement"):
        r = properties.PROPERTIES[prop](impl, case)
        assert r.verdict == "skip", (prop, r.verdict, r.message)
        assert reason in r.message and "flax >= 0.12.1" in r.message, r.message


def test_jax_standardize_without_algorithm_runs_fast_and_skips_stable_with_the_reason(monkeypatch):
    pytest.importorskip("jax", reason="jax is not installed")
    import jax

    real = jax.nn.standardize

    def old(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None):  # jax < 0.10.1: one-pass only
        return real(x, axis, mean, variance, epsilon, where)

    monkeypatch.setattr(jax.nn, "standardize", old)
    impl = _impl("jax", "jax/layer_norm/standardize/jit")
    x = np.array([[0.5, -1.0, 2.0, 0.25, 3.0]], np.float32)
    variants = {}
    for v in range(16):  # the variant that picks each algorithm (the other axes at any value)
        case = Case("layer_norm", x, {"normalized_shape": (5,), "eps": 0.0171}, variant=v)
        variants.setdefault(case.configuration(impl)["algorithm"], case)
    fast = properties.PROPERTIES["agreement"](impl, variants["fast"])
    assert fast.verdict == "pass", fast.message  # the old function's only algorithm
    for prop in ("agreement", "gradient_agreement"):
        r = properties.PROPERTIES[prop](impl, variants["stable"])
        assert r.verdict == "skip", (prop, r.verdict, r.message)
        assert "has no algorithm parameter (added in jax 0.10.1)" in r.message, r.message
