"""The TensorFlow adapter: 16-bit agreement, the running-statistics translation, layouts, compiled
mode without retracing, and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install 'normcheck[tensorflow]')")

from normcheck import properties, reference
from normcheck.adapters import Unsupported
from normcheck.adapters import tensorflow as tfa
from normcheck.case import fixed_cases

IMPLS = {i.id: i for i in tfa.ADAPTER.implementations()}


def impl(impl_id):
    return IMPLS[impl_id]


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


# --- agreement in 16 bits -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("impl_id", sorted(IMPLS))
def test_16bit_agreement(impl_id, dtype):
    i = impl(impl_id)
    ran = 0
    for case in fixed_cases(i.norm, dtype):
        r = properties.agreement(i, case)
        if r.verdict == "skip":
            continue
        ran += 1
        assert r.verdict == "pass", f"{i.id} on {case.describe()}: {r.message}"
    assert ran


def test_output_dtype_shape_and_input_untouched():
    x = np.random.default_rng(0).normal(size=(3, 6, 5)).astype(np.float16)
    x0 = x.copy()
    for i in IMPLS.values():
        if i.norm == "batch_norm":
            y = i(x, None, None, training=True)
        elif i.norm == "instance_norm":
            y = i(x)
        elif i.norm == "group_norm":
            y = i(x, 3)
        else:
            y = i(x, (5,))
        assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape, i.id
        np.testing.assert_array_equal(x, x0)


# --- the running-statistics translation -----------------------------------------------------------
@pytest.mark.parametrize(
    "impl_id",
    [
        "tensorflow/batch_norm/keras",
        "tensorflow/batch_norm/keras/channels_last",
        "tensorflow/batch_norm/keras/compiled",
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_running_stats_follow_torch_over_two_steps(impl_id, dtype):
    # n = 4 * 2 = 8 values per channel: the unbiased variance is 8/7 of the biased one, and a
    # momentum of 0.25 tells m from 1 - m; either slip is far outside the tolerance.
    rng = np.random.default_rng(1)
    i = impl(impl_id)
    rm, rv = rng.normal(size=3).astype(dtype), rng.uniform(0.5, 2, size=3).astype(dtype)
    rm_ref, rv_ref = rm.astype(np.float64), rv.astype(np.float64)
    for step in range(2):
        x = (rng.normal(size=(4, 3, 2)) * (step + 1) + 3).astype(dtype)
        w, b = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
        y = i(x, rm, rv, w, b, training=True, momentum=0.25, eps=1e-5)
        y_ref = reference.batch_norm(x, rm_ref, rv_ref, w, b, training=True, momentum=0.25, eps=1e-5)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(rm, rm_ref, rtol=rtol, atol=rtol, err_msg=f"running_mean, step {step}")
        np.testing.assert_allclose(rv, rv_ref, rtol=rtol, atol=rtol, err_msg=f"running_var, step {step}")
    # eval uses exactly those buffers and leaves them alone
    before = rm.copy(), rv.copy()
    y = i(x, rm, rv, w, b, training=False, eps=1e-5)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm_ref, rv_ref, w, b, eps=1e-5), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_running_stats_in_16bit_are_float32_buffers():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 5)).astype(np.float16)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    rm_ref, rv_ref = rm.astype(np.float64), rv.astype(np.float64)
    impl("tensorflow/batch_norm/keras")(x, rm, rv, training=True, momentum=0.1)
    reference.batch_norm(x, rm_ref, rv_ref, training=True, momentum=0.1)
    assert rm.dtype == rv.dtype == np.float32
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-5)
    np.testing.assert_allclose(rm, rm_ref, rtol=1e-5, atol=1e-6)


def test_translation_helpers():
    assert tfa._keras_momentum(0.1) == pytest.approx(0.9)
    old, m, n, var_b = np.array([2.0]), 0.25, 8, np.array([3.0])
    keras_new = (1 - m) * old + m * var_b  # what Keras stores: the biased batch variance
    torch_new = (1 - m) * old + m * var_b * n / (n - 1)
    np.testing.assert_allclose(tfa._torch_running_var(old, keras_new, m, n), torch_new, rtol=1e-15)
    assert tfa.CONVENTIONS["stored_variance"] == "biased"
    with pytest.raises(ValueError):
        tfa._torch_running_var(old, keras_new, m, 1)


def test_keras_stores_biased_variance():
    """The fact CONVENTIONS records, checked on the layer itself (not through the adapter)."""
    tfa.import_keras()
    import keras

    x = np.array([[1.0], [3.0]], np.float32)  # biased variance 1, unbiased 2
    layer = keras.layers.BatchNormalization(axis=1, momentum=0.0)
    layer.build(x.shape)
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0])


# --- layouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["batch_norm", "group_norm"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_channels_last_agrees(norm, dtype):
    first, last = impl(f"tensorflow/{norm}/keras"), impl(f"tensorflow/{norm}/keras/channels_last")
    for case in fixed_cases(norm, dtype):
        r = properties.agreement(last, case)
        assert r.verdict == "pass", f"{last.id} on {case.describe()}: {r.message}"
        a, b = case.call(first), case.call(last)
        scale = np.maximum(np.abs(a.y.astype(np.float64)), 1)
        assert np.max(np.abs(a.y.astype(np.float64) - b.y.astype(np.float64)) / scale) < 1e-2


# --- compiled mode -------------------------------------------------------------------------------
@pytest.mark.parametrize("impl_id", [k for k in IMPLS if k.endswith("/compiled")])
def test_compiled_does_not_retrace(impl_id):
    i = impl(impl_id)
    rng = np.random.default_rng(3)
    shape = (5, 4, 3, 2)

    def call():
        x = rng.normal(size=shape).astype(np.float32)
        w, b = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
        if i.norm == "batch_norm":
            return i(x, np.zeros(4, np.float32), np.ones(4, np.float32), w, b, training=True, momentum=0.1, eps=1e-5)
        if i.norm == "group_norm":
            return i(x, 2, w, b, eps=1e-5)
        return i(x, (2,), rng.normal(size=2).astype(np.float32), None, eps=1e-5)

    call()
    traced = tfa.trace_count(impl_id)
    assert traced >= 1
    for _ in range(3):  # new values, same shape and config: the traced function is reused
        call()
    assert tfa.trace_count(impl_id) == traced


def test_compiled_traces_per_shape_not_per_call():
    i = impl("tensorflow/layer_norm/keras/compiled")
    before = tfa.trace_count(i.id)
    x = np.random.default_rng(4).normal(size=(7, 9)).astype(np.float32)
    i(x, (9,))
    i(x + 1, (9,))
    i(np.concatenate([x, x]), (9,))
    assert tfa.trace_count(i.id) - before == 2


# --- unsupported ----------------------------------------------------------------------------------
def test_unsupported_combinations():
    x = np.random.default_rng(5).normal(size=(4, 3, 2)).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(Unsupported, match=r"tf\.nn has no running"):
        impl("tensorflow/batch_norm/tf.nn")(x, rm, rv, training=True)
    with pytest.raises(Unsupported, match="momentum=None"):
        impl("tensorflow/batch_norm/keras")(x, rm, rv, training=True, momentum=None)
    with pytest.raises(Unsupported, match=r"tf\.nn has no running"):
        impl("tensorflow/instance_norm/tf.nn")(x, rm, rv, use_input_stats=True)
    assert "tensorflow/instance_norm/keras" not in IMPLS
    assert "InstanceNormalization" in tfa.NOT_NATIVE[("instance_norm", "keras")]
    # rms_scaling (LayerNormalization's deprecated flag) is not RMS normalization and never used
    assert impl("tensorflow/rms_norm/keras").api == "keras.layers.RMSNormalization"


# --- adapter plumbing -----------------------------------------------------------------------------
def test_arrays_devices_version():
    import ml_dtypes

    a = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    t = tfa.ADAPTER.to_native(a)
    assert tfa.ADAPTER.owns(t) and not tfa.ADAPTER.owns(a)
    back = tfa.ADAPTER.to_numpy(t)
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)
    assert "cpu:0" in tfa.ADAPTER.devices()
    assert tfa.ADAPTER.to_native(a, device="cpu:0").device.endswith("CPU:0")
    import tensorflow as tf

    assert tfa.ADAPTER.version() == tf.__version__


def test_importing_the_adapter_imports_no_framework():
    r = _run_python(
        "import sys, normcheck.adapters.tensorflow as m\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported tensorflow'\n"
        "assert m.ADAPTER.available() and m.ADAPTER.version()\n"
        "assert len(m.ADAPTER.implementations()) > 0\n"
        "assert 'tensorflow' not in sys.modules, 'implementations() imported tensorflow'\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_using_the_adapter_imports_neither_jax_nor_torch():
    r = _run_python(
        "import sys, numpy as np\n"
        "from normcheck.adapters import tensorflow as m\n"
        "x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)\n"
        "for i in m.ADAPTER.implementations():\n"
        "    if i.norm in ('layer_norm', 'rms_norm'):\n"
        "        i(x, (3,))\n"
        "    elif i.norm == 'group_norm':\n"
        "        i(x, 2)\n"
        "    elif i.norm == 'batch_norm':\n"
        "        i(x, None, None, training=True)\n"
        "    else:\n"
        "        i(x)\n"
        "assert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
        "bad = [k for k in ('jax', 'torch') if k in sys.modules]\n"
        "assert not bad, f'imported {bad}'\n"
        "import jax  # still importable afterwards\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
