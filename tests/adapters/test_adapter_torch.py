"""Torch-specific checks of normcheck.adapters.torch: 16-bit and float64 agreement, channels_last,
module vs functional running buffers, no mutation of NumPy inputs, lazy imports, and the few
convention translations the adapter makes (see its module docstring)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'normcheck[torch]')")

from normcheck import dtypes, properties  # noqa: E402
from normcheck.adapters import Unsupported  # noqa: E402
from normcheck.adapters import torch as torch_adapter  # noqa: E402
from normcheck.case import Case, fixed_cases  # noqa: E402
from normcheck.error_model import MODEL  # noqa: E402

ADAPTER = torch_adapter.ADAPTER
# the eager implementations; the torch.compile twins (extended, a compile per signature) are
# tested in test_configurations and by the thorough audit
COMPILED = {i.id: i for i in ADAPTER.implementations() if i.mode == "compiled"}
IMPLS = {i.id: i for i in ADAPTER.implementations() if i.mode != "compiled"}
EXPECTED_IDS = {
    "torch/batch_norm/functional",
    "torch/batch_norm/module",
    "torch/batch_norm/functional/channels_last",
    "torch/group_norm/functional",
    "torch/group_norm/module",
    "torch/group_norm/functional/channels_last",
    "torch/instance_norm/functional",
    "torch/instance_norm/module",
    "torch/instance_norm/functional/channels_last",
    "torch/layer_norm/functional",
    "torch/layer_norm/module",
    "torch/rms_norm/functional",
    "torch/rms_norm/module",
}
SIXTEEN_BIT = ("float16", "bfloat16")


def impl(id_):
    return IMPLS[id_]


def updates_buffers(case: Case) -> bool:
    return case.running_mean is not None and case.use_batch_stats


def known_deviation(i, case: Case) -> bool:
    """torch's CPU instance_norm rounds float32 running buffers to a 16-bit input's dtype (see
    test_instance_norm_rounds_float32_buffers_to_16bit_input_dtype)."""
    return i.norm == "instance_norm" and case.dtype in SIXTEEN_BIT and updates_buffers(case)


# --- the Impl list -----------------------------------------------------------------------------
def test_impl_ids_and_metadata():
    assert set(IMPLS) == EXPECTED_IDS
    assert set(COMPILED) == {f"{i}/compiled" for i in EXPECTED_IDS if i.endswith("/functional")}
    for i in IMPLS.values():
        assert i.framework == "torch"
        assert i.stateful == (i.form == "module")
        assert i.running_stats == (i.norm in ("batch_norm", "instance_norm"))
        assert set(i.dtypes) == set(dtypes.FLOAT_DTYPES)
        assert i.api.startswith("torch.nn.")
    assert impl("torch/group_norm/functional").api == "torch.nn.functional.group_norm"
    assert impl("torch/batch_norm/module").api == "torch.nn.BatchNorm{1,2,3}d"
    assert impl("torch/rms_norm/module").api == "torch.nn.RMSNorm"


# --- agreement beyond the generic float32 run ----------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", *SIXTEEN_BIT])
@pytest.mark.parametrize("impl_id", sorted(EXPECTED_IDS))
def test_agreement_other_dtypes(impl_id, dtype):
    i = impl(impl_id)
    ran = 0
    for case in fixed_cases(i.norm, dtype):
        r = properties.agreement(i, case)
        if r.verdict == "skip":
            continue
        ran += 1
        if known_deviation(i, case):
            # The output agrees. The float32 buffers carry 16-bit rounding, which the model can
            # tell from a batch statistic computed in 16 bits only when the momentum is small:
            # with momentum 0 the buffers must stay exactly as they were.
            assert r.details["output"]["observed"] <= MODEL.lam, r.message
            still = case.with_(args={**case.args, "momentum": 0.0})
            r0 = properties.agreement(i, still)
            assert r0.verdict == "fail" and r0.message.startswith("running_"), r0.message
            continue
        assert r.verdict == "pass", f"{i.id} on {case.describe()}: {r.message}"
    assert ran


def test_instance_norm_rounds_float32_buffers_to_16bit_input_dtype():
    """Finding (torch 2.13 CPU): F.instance_norm with a float16 input and float32 running buffers
    computes the update in float16: even with momentum=0 the stored running_mean is rounded to
    float16. batch_norm on the same data keeps the float32 value (the reference's)."""
    x = np.array([[[1.0, 1.0, 1.0, 1.0005]]], np.float16)
    for id_ in ("torch/instance_norm/functional", "torch/instance_norm/module"):
        rm, rv = np.array([0.1234567], np.float32), np.array([1.0], np.float32)
        impl(id_)(x, rm, rv, use_input_stats=True, momentum=0.0)
        assert rm[0] == np.float32(np.float16(0.1234567)) != np.float32(0.1234567), (id_, rm)
    rm, rv = np.array([0.1234567], np.float32), np.array([1.0], np.float32)
    impl("torch/batch_norm/functional")(x[0].T, rm, rv, training=True, momentum=0.0)  # (4, 1): same 4 values
    assert rm[0] == np.float32(0.1234567)


# --- conventions the adapter translates ----------------------------------------------------------
def test_rms_norm_eps_none_is_the_opmath_machine_epsilon():
    """eps=None: the spec (as torch documents) uses the machine epsilon of the computation dtype,
    finfo(float32).eps for 16-bit inputs; the adapter passes None through to torch."""
    x = np.full((2, 4), 1e-3, np.float16)
    x64 = float(np.float16(1e-3))
    expected = x64 / np.sqrt(x64 * x64 + float(np.finfo(np.float32).eps))
    for id_ in ("torch/rms_norm/functional", "torch/rms_norm/module"):
        y = impl(id_)(x, (4,), None, None)
        assert y.dtype == np.float16
        np.testing.assert_allclose(y.astype(np.float64), expected, rtol=2e-3)
        r = properties.agreement(impl(id_), Case("rms_norm", x, {"normalized_shape": (4,), "eps": None}))
        assert r.verdict == "pass", r.message
    wrong = x64 / np.sqrt(x64 * x64 + float(np.finfo(np.float16).eps))  # finfo(input dtype): ~0.032
    assert abs(expected - wrong) > 0.5


def test_layer_norm_eps_none_is_the_specs_default():
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    for id_ in ("torch/layer_norm/functional", "torch/layer_norm/module"):
        r = properties.agreement(impl(id_), Case("layer_norm", x, {"normalized_shape": (5,), "eps": None}))
        assert r.verdict == "pass", r.message


@pytest.mark.parametrize("dtype", ["float32", *SIXTEEN_BIT])
@pytest.mark.parametrize("form", ["functional", "module"])
def test_batch_norm_16bit_with_float32_buffers_and_affine(form, dtype):
    """torch's CPU batch_norm refuses 16-bit weight with float32 buffers; the adapter widens them."""
    for case in fixed_cases("batch_norm", dtype):
        if case.running_mean is None or case.weight is None:
            continue
        r = properties.agreement(impl(f"torch/batch_norm/{form}"), case)
        assert r.verdict == "pass", f"{case.describe()}: {r.message}"


def test_momentum_none():
    case = next(c for c in fixed_cases("batch_norm") if updates_buffers(c))
    for id_ in ("torch/batch_norm/functional", "torch/batch_norm/module"):
        r = properties.agreement(impl(id_), case.with_(args={**case.args, "momentum": None}))
        assert r.verdict == "skip" and "momentum=None" in r.message, r.message
        # Without an update momentum has no effect: the call runs.
        ev = case.with_(args={**case.args, "training": False, "momentum": None})
        assert properties.agreement(impl(id_), ev).verdict == "pass"


# --- channels_last ------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["batch_norm", "group_norm", "instance_norm"])
def test_channels_last_reaches_torch(norm, monkeypatch):
    """The native call receives a channels_last tensor of the logical NCHW shape; 3D is Unsupported."""
    seen = []
    real = getattr(torch.nn.functional, norm)

    def spy(x, *args, **kwargs):
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        seen.append((x.dim(), x.is_contiguous(memory_format=fmt), x.is_contiguous()))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, norm, spy)
    i = impl(f"torch/{norm}/functional/channels_last")
    ran = 0
    for dtype in ("float32", *SIXTEEN_BIT):
        for case in fixed_cases(norm, dtype):
            r = properties.agreement(i, case)
            if case.x.ndim in (4, 5):
                ran += 1
                assert r.verdict == "pass" or known_deviation(i, case), f"{case.describe()}: {r.message}"
            else:
                assert r.verdict == "skip" and "channels_last" in r.message
    assert ran and seen and all(cl and not cf for _, cl, cf in seen), seen


# --- module form vs functional form -------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", *SIXTEEN_BIT])
@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm", "layer_norm", "group_norm", "rms_norm"])
def test_module_matches_functional_bitwise(norm, dtype):
    """Same tensors, same kernel: outputs and updated running buffers are identical."""
    f, m = impl(f"torch/{norm}/functional"), impl(f"torch/{norm}/module")
    for case in fixed_cases(norm, dtype):
        of, om = case.call(f), case.call(m)
        np.testing.assert_array_equal(of.y, om.y, err_msg=case.describe())
        if case.running_mean is not None:
            np.testing.assert_array_equal(of.running_mean, om.running_mean, err_msg=case.describe())
            np.testing.assert_array_equal(of.running_var, om.running_var, err_msg=case.describe())
            if updates_buffers(case):
                assert not np.array_equal(om.running_mean, case.running_mean)
                assert not np.array_equal(om.running_var, case.running_var)
            else:
                np.testing.assert_array_equal(om.running_mean, case.running_mean)


@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm", "layer_norm", "group_norm"])
@pytest.mark.parametrize("which", ["weight", "bias"])
def test_module_with_only_weight_or_only_bias(norm, which):
    """Modules have a weight whenever they have a bias; the adapter fills ones or uses bias=False."""
    for case in fixed_cases(norm):
        if case.weight is None:
            continue
        drop = "bias" if which == "weight" else "weight"
        c = case.with_(**{drop: None})
        for form in ("functional", "module"):
            r = properties.agreement(impl(f"torch/{norm}/{form}"), c)
            assert r.verdict == "pass", f"{form} {c.describe()}: {r.message}"


def test_module_refuses_what_it_cannot_express():
    rng = np.random.default_rng(1)
    x6 = rng.normal(size=(2, 3, 2, 2, 2, 2)).astype(np.float32)
    with pytest.raises(Unsupported, match="6D"):
        impl("torch/batch_norm/module")(x6, None, None, training=True)
    assert impl("torch/batch_norm/functional")(x6, None, None, training=True).shape == x6.shape
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    with pytest.raises(Unsupported, match="both running buffers"):
        impl("torch/instance_norm/module")(x, np.zeros(3, np.float32), None)
    # No silent substitute: eval mode without running statistics is an error, never batch statistics.
    with pytest.raises(ValueError, match="running_mean and running_var"):
        impl("torch/batch_norm/module")(x, None, None, training=False)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        impl("torch/instance_norm/module")(x, use_input_stats=False)
    with pytest.raises(Unsupported, match="channels_last"):
        impl("torch/group_norm/functional/channels_last")(x, 3)


# --- arrays -------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl_id", sorted(EXPECTED_IDS))
def test_numpy_inputs_are_not_mutated(impl_id):
    i = impl(impl_id)
    for dtype in ("float32", "bfloat16"):
        for case in fixed_cases(i.norm, dtype):
            kw = case.kwargs()
            x = case.x.copy()
            before = {k: (None if v is None else v.copy()) for k, v in kw.items() if isinstance(v, np.ndarray)}
            try:
                y = i(x, **kw)
            except Unsupported:
                continue
            np.testing.assert_array_equal(x, case.x)
            for k, v in before.items():
                if k in ("running_mean", "running_var") and updates_buffers(case):
                    assert kw[k].dtype == v.dtype and kw[k].shape == v.shape
                    continue
                np.testing.assert_array_equal(kw[k], v, err_msg=k)
            assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape
            assert not np.shares_memory(y, x)


@pytest.mark.parametrize("dtype", dtypes.FLOAT_DTYPES)
def test_to_native_to_numpy_round_trip(dtype):
    a = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7 - 1).astype(dtypes.np_dtype(dtype))
    t = ADAPTER.to_native(a)
    assert t.dtype == getattr(torch, dtype) and ADAPTER.owns(t) and not ADAPTER.owns(a)
    t.add_(1)  # a copy: the NumPy array is untouched
    assert not np.array_equal(ADAPTER.to_numpy(t), a)
    b = ADAPTER.to_numpy(ADAPTER.to_native(a))
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    nc = a[:, ::-1, ::2]  # non-contiguous, negative strides
    np.testing.assert_array_equal(ADAPTER.to_numpy(ADAPTER.to_native(nc)), nc)
    cl = ADAPTER.to_native(np.ones((2, 3, 4, 5), a.dtype)).contiguous(memory_format=torch.channels_last)
    assert ADAPTER.to_numpy(cl).flags.c_contiguous


def test_devices():
    assert ADAPTER.devices()[0] == "cpu"
    assert ("cuda" in ADAPTER.devices()) == torch.cuda.is_available()


def test_deterministic():
    for i in IMPLS.values():
        for case in fixed_cases(i.norm, "bfloat16"):
            try:
                a, b = case.call(i), case.call(i)
            except Unsupported:
                continue
            np.testing.assert_array_equal(a.y, b.y)


# --- imports ------------------------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_does_not_import_torch():
    code = (
        "import sys, numpy as np, normcheck.adapters.torch as t\n"
        "a = t.ADAPTER\n"
        "assert a.available() and a.version() and not a.loaded()\n"
        "assert not a.owns(np.zeros(2)) and len(a.implementations()) == 18\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    p = _python(code)
    assert p.returncode == 0, p.stderr


def test_use_does_not_import_tensorflow_or_jax():
    code = (
        "import sys\n"
        "from normcheck.adapters.torch import ADAPTER\n"
        "from normcheck.case import fixed_cases\n"
        "from normcheck.adapters import Unsupported\n"
        "for i in ADAPTER.implementations():\n"
        "    if i.extended: continue\n"
        "    for c in fixed_cases(i.norm, 'float32'):\n"
        "        try:\n"
        "            c.call(i)\n"
        "        except Unsupported:\n"
        "            pass\n"
        "ADAPTER.devices()\n"
        "assert 'torch' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'jaxlib', 'flax'))\n"
        "assert not bad, bad\n"
    )
    p = _python(code)
    assert p.returncode == 0, p.stderr
