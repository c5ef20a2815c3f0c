"""The ONNX Runtime adapter: float64/float16 agreement, the BatchNormalization translations
(momentum, biased stored variance), session caching, what ONNX cannot express, lazy imports, and
torch modules exported with torch.onnx.export agreeing with torch when run by ORT.

float32 agreement of every Impl on the fixed cases is tests/adapters/test_adapters.py's (it is
parametrized over every framework in normcheck.adapters.FRAMEWORKS)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'normcheck[onnxruntime]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'normcheck[onnxruntime]')")

from normcheck import conventions, error_model, properties, reference
from normcheck.adapters import Unsupported
from normcheck.adapters import onnxruntime as oa
from normcheck.case import Case, fixed_cases

IMPLS = {i.id: i for i in oa.ADAPTER.implementations()}
EXPECTED_IDS = {
    "onnxruntime/batch_norm/onnx",
    "onnxruntime/instance_norm/onnx",
    "onnxruntime/layer_norm/onnx",
    "onnxruntime/group_norm/onnx",
    "onnxruntime/group_norm/opset18",
    "onnxruntime/group_norm/torch-export",
    "onnxruntime/rms_norm/onnx",
}
EPS64 = 2.0**-17  # exact in float32: ONNX's epsilon attribute is a 32-bit float


def impl(id_):
    return IMPLS[id_]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_impl_ids_and_metadata():
    assert set(IMPLS) == EXPECTED_IDS
    for i in IMPLS.values():
        assert i.framework == "onnxruntime" and not i.stateful
        assert i.running_stats == (i.norm == "batch_norm")
        assert "bfloat16" not in i.dtypes and {"float32", "float16"} <= set(i.dtypes)
        assert ("float64" in i.dtypes) == ("InstanceNormalization" not in i.api), i.id
    assert impl("onnxruntime/group_norm/onnx").api == "onnx GroupNormalization-21"
    assert impl("onnxruntime/group_norm/opset18").api == "onnx GroupNormalization-18"


# --- agreement beyond the float32 run of tests/adapters/test_adapters.py -----------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float16"])
@pytest.mark.parametrize("impl_id", sorted(EXPECTED_IDS))
def test_agreement_other_dtypes(impl_id, dtype):
    i = impl(impl_id)
    if dtype not in i.dtypes:
        pytest.skip(f"{i.api} has no {dtype} CPU kernel")
    ran = 0
    for case in fixed_cases(i.norm, dtype):
        if dtype == "float64":  # the fixed eps 1e-5 and momentum 0.3 are not exact in float32
            case = case.with_(
                args={**case.args, "eps": EPS64, **({"momentum": 0.25} if "momentum" in case.args else {})}
            )
        r = properties.agreement(i, case)
        if r.verdict == "skip":
            continue
        ran += 1
        assert r.verdict == "pass", f"{i.id} on {case.describe()}: {r.message}"
    assert ran


def test_float64_group_norm_computes_in_float64():
    """stash_type follows the input: with the ONNX default (float32) a float64 GroupNorm errs ~1e-7."""
    x = np.random.default_rng(0).normal(size=(2, 4, 6)) + 1
    y = impl("onnxruntime/group_norm/onnx")(x, 2, eps=EPS64)
    np.testing.assert_allclose(y, reference.group_norm(x, 2, eps=EPS64), rtol=0, atol=1e-13)
    assert oa.CONVENTIONS["stash_type"]["float64"] == 11


# --- the BatchNormalization translations ---------------------------------------------------------
X_BN = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 14.0], [7.0, 14.0]])  # per channel: mean 4, 12; biased var 5, 4


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_norm_running_stats_by_hand(dtype):
    """torch momentum 0.25 from buffers (0, 1): mean 0.75*0 + 0.25*(4, 12) = (1, 3); variance with
    the unbiased batch variance (n = 4): 0.75 + 0.25*(20/3, 16/3) = (29/12, 25/12)."""
    x = X_BN.astype(dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    y = impl("onnxruntime/batch_norm/onnx")(x, rm, rv, training=True, momentum=0.25, eps=EPS64)
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(rm, [1.0, 3.0], rtol=rtol)
    np.testing.assert_allclose(rv, [29 / 12, 25 / 12], rtol=rtol)
    # training normalizes with the biased batch variance: channel 0 is (x - 4) / sqrt(5 + eps)
    np.testing.assert_allclose(y[:, 0], (X_BN[:, 0] - 4) / np.sqrt(5 + EPS64), rtol=rtol)
    # eval normalizes with those buffers and leaves them alone
    before = rm.copy(), rv.copy()
    y = impl("onnxruntime/batch_norm/onnx")(x, rm, rv, training=False, eps=EPS64)
    np.testing.assert_allclose(y[:, 1], (X_BN[:, 1] - 3) / np.sqrt(25 / 12 + EPS64), rtol=rtol)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_onnx_stores_the_biased_variance_and_weights_the_old_value():
    """The facts CONVENTIONS records, on the bare operator (no translation): attribute momentum 0.75
    keeps 0.75 of the old buffer, and the batch term is the biased variance (5, 4)."""
    feeds = {"X": X_BN.astype(np.float32), "scale": np.ones(2, np.float32), "B": np.zeros(2, np.float32)}
    feeds.update(input_mean=np.zeros(2, np.float32), input_var=np.ones(2, np.float32))
    out = {"Y": (np.float32, (4, 2)), "running_mean": (np.float32, (2,)), "running_var": (np.float32, (2,))}
    _, m, v = oa.run_node("BatchNormalization", feeds, {"momentum": 0.75, "training_mode": 1}, 15, out)
    np.testing.assert_allclose(m, [1.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(v, [0.75 + 0.25 * 5, 0.75 + 0.25 * 4], rtol=1e-6)
    assert oa.CONVENTIONS["stored_variance"] == "biased"


def test_conventions_rows_match_the_adapter():
    """The measured conventions table (normcheck conventions) agrees with what CONVENTIONS translates."""
    rows = {r["api"].split("-")[0].removeprefix("onnx "): r for r in conventions.measure("onnxruntime")}
    for op, eps in oa.CONVENTIONS["default_eps"].items():
        assert rows[op]["default_eps"] == f"{eps:.3g}", op
    bn = rows["BatchNormalization"]
    assert bn["momentum"] == "new = m·old + (1-m)·batch" and bn["momentum_default"].startswith("0.9 ")
    assert bn["stored_variance"].startswith(oa.CONVENTIONS["stored_variance"])
    assert bn["channel_axis"] == str(oa.CONVENTIONS["channel_axis"])
    assert "eval uses the running statistics" in bn["train_eval"]
    assert (rows["LayerNormalization"]["channel_axis"], rows["GroupNormalization"]["channel_axis"]) == ("-1", "1")


def test_translation_helpers():
    assert oa._onnx_momentum(0.1, np.float32) == pytest.approx(0.9)
    old, m, n, var_b = np.array([2.0]), 0.25, 8, np.array([3.0])
    onnx_new = (1 - m) * old + m * var_b
    torch_new = (1 - m) * old + m * var_b * n / (n - 1)
    np.testing.assert_allclose(oa._torch_running_var(old, onnx_new, m, n), torch_new, rtol=1e-15)
    with pytest.raises(ValueError):
        oa._torch_running_var(old, onnx_new, m, 1)


def test_16bit_batch_norm_keeps_float32_buffers():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 5)).astype(np.float16)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    rm_ref, rv_ref = rm.astype(np.float64), rv.astype(np.float64)
    impl("onnxruntime/batch_norm/onnx")(x, rm, rv, training=True, momentum=0.1)
    reference.batch_norm(x, rm_ref, rv_ref, training=True, momentum=0.1)
    assert rm.dtype == rv.dtype == np.float32
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-5)
    np.testing.assert_allclose(rm, rm_ref, rtol=1e-5, atol=1e-6)


# --- sessions ------------------------------------------------------------------------------------
def test_one_session_per_shape_not_per_call():
    rng = np.random.default_rng(3)
    i = impl("onnxruntime/layer_norm/onnx")
    oa.clear_cache()
    before = oa.build_count("LayerNormalization")
    for _ in range(3):  # new values (weight and bias too), same shapes and attributes
        x = rng.normal(size=(5, 7)).astype(np.float32)
        i(x, (7,), rng.normal(size=7).astype(np.float32), rng.normal(size=7).astype(np.float32), eps=1e-5)
    assert oa.build_count("LayerNormalization") - before == 1
    i(rng.normal(size=(6, 7)).astype(np.float32), (7,), eps=1e-5)  # new shape, no weight/bias: new sessions
    assert oa.build_count("LayerNormalization") - before == 2
    b = oa.build_count("torch-export")
    g = impl("onnxruntime/group_norm/torch-export")
    for _ in range(2):
        g(rng.normal(size=(2, 4, 3)).astype(np.float32), 2, rng.normal(size=4).astype(np.float32), eps=1e-5)
    assert oa.build_count("torch-export") - b == 1


# --- what ONNX cannot express ----------------------------------------------------------------------
def test_unsupported_combinations():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    w = np.arange(1, 7, dtype=np.float32)
    with pytest.raises(Unsupported, match="per group"):
        impl("onnxruntime/group_norm/opset18")(x, 2, w)
    # constant within each group: expressible, and right
    wg = np.repeat(np.array([0.5, 2.0], np.float32), 3)
    np.testing.assert_allclose(
        impl("onnxruntime/group_norm/opset18")(x, 2, wg), reference.group_norm(x, 2, wg), rtol=1e-5, atol=1e-5
    )
    rm, rv = np.zeros(6, np.float32), np.ones(6, np.float32)
    with pytest.raises(Unsupported, match="momentum=None"):
        impl("onnxruntime/batch_norm/onnx")(x, rm, rv, training=True, momentum=None)
    for kw in (
        {"running_mean": rm, "running_var": rv},
        {"running_mean": rm, "running_var": rv, "use_input_stats": False},
    ):
        with pytest.raises(Unsupported, match="no running statistics"):
            impl("onnxruntime/instance_norm/onnx")(x, **kw)
    with pytest.raises(Unsupported, match="32-bit float"):
        impl("onnxruntime/layer_norm/onnx")(x.astype(np.float64), (3,), eps=1e-5)
    import ml_dtypes

    with pytest.raises(Unsupported, match="bfloat16"):
        impl("onnxruntime/layer_norm/onnx")(x.astype(ml_dtypes.bfloat16), (3,))
    with pytest.raises(Unsupported, match="float64"):
        impl("onnxruntime/instance_norm/onnx")(x.astype(np.float64), eps=EPS64)
    # no silent substitute: eval without running statistics is an error, never batch statistics
    with pytest.raises(ValueError, match="running_mean and running_var"):
        impl("onnxruntime/batch_norm/onnx")(x, None, None, training=False)


def test_group_norm_one_pass_variance_and_the_two_pass_forms():
    """The registered finding onnx-group-norm-one-pass-variance, next to the forms that are right."""
    x = np.array([[9999.0, 10001.0]], np.float32)
    case = Case("group_norm", x, {"num_groups": 1, "eps": 1e-5}, regime="offset")
    for id_, verdict in [
        ("onnxruntime/group_norm/onnx", "fail"),
        ("onnxruntime/group_norm/opset18", "fail"),
        ("onnxruntime/group_norm/torch-export", "pass"),
    ]:
        assert properties.agreement(impl(id_), case).verdict == verdict, id_
    ln = Case("layer_norm", x, {"normalized_shape": (2,), "eps": 1e-5}, regime="offset")
    assert properties.agreement(impl("onnxruntime/layer_norm/onnx"), ln).verdict == "pass"


# --- imports -------------------------------------------------------------------------------------
def test_importing_the_adapter_imports_neither_onnx_nor_onnxruntime():
    r = _python(
        "import sys, numpy as np, normcheck.adapters.onnxruntime as m\n"
        "a = m.ADAPTER\n"
        "assert a.available() and a.version() and not a.owns(np.zeros(2))\n"
        "assert len(a.implementations()) == 7\n"
        "from normcheck.adapters import framework_of\n"
        "assert framework_of(np.zeros(2)) == 'numpy'\n"
        "bad = [k for k in ('onnx', 'onnxruntime', 'torch', 'tensorflow', 'jax') if k in sys.modules]\n"
        "assert not bad, bad\n"
        "a.implementations()[0](np.ones((2, 2), np.float32), None, None, training=True)\n"
        "assert 'onnxruntime' in sys.modules\n"
        "bad = [k for k in ('torch', 'tensorflow', 'jax') if k in sys.modules]\n"
        "assert not bad, bad\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]


# --- torch.onnx.export -> ORT agrees with the torch module ----------------------------------------
def _torch_modules(torch):
    rng = np.random.default_rng(7)

    def bn():
        m = torch.nn.BatchNorm2d(4).eval()
        with torch.no_grad():
            m.running_mean.copy_(torch.from_numpy(rng.normal(size=4).astype(np.float32)))
            m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2, size=4).astype(np.float32)))
        return m

    return [
        ("batch_norm", bn()),
        ("instance_norm", torch.nn.InstanceNorm2d(4, affine=True)),
        ("layer_norm", torch.nn.LayerNorm((3, 5))),
        ("group_norm", torch.nn.GroupNorm(2, 4)),
    ]


def test_torch_export_runs_in_onnxruntime_like_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'normcheck[torch]')")
    import inspect
    import io
    import warnings

    import onnxruntime as ort

    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        pytest.skip("this torch.onnx.export has no dynamo=False (TorchScript) exporter switch")
    rng = np.random.default_rng(8)
    for norm, m in _torch_modules(torch):
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape)).astype(np.float32)))
        x = (rng.normal(size=(2, 4, 3, 5)) * 3 + 20).astype(np.float32)  # mean 7 std: two-pass territory
        f = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (torch.from_numpy(x),), f, dynamo=False, opset_version=17, input_names=["x"])
        sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x})[0]
        with torch.no_grad():
            want = m(torch.from_numpy(x)).numpy()
        # the case torch's module computes, for the error model's per-element scale
        kw = {"weight": m.weight.detach().numpy(), "bias": m.bias.detach().numpy()}
        if norm == "batch_norm":
            kw.update(running_mean=m.running_mean.numpy(), running_var=m.running_var.numpy(), training=False)
        elif norm == "layer_norm":
            kw["normalized_shape"] = (3, 5)
        elif norm == "group_norm":
            kw["num_groups"] = 2
        case = Case(norm, x, {k: v for k, v in kw.items() if not isinstance(v, np.ndarray)}, regime="offset")
        case = case.with_(**{k: v for k, v in kw.items() if isinstance(v, np.ndarray)})
        s = error_model.scale(norm, x, use_batch_stats=case.use_batch_stats, **case.kwargs())
        # a relation between two implementations: the sum of both sides' bounds
        c = error_model.compare(got, want.astype(np.float64), 2 * s, "float32")
        assert c.ok, f"{norm}: ORT on the exported graph vs torch: {c.describe()}"
        r = error_model.compare(got, case.reference().y, s, "float32")
        assert r.ok, f"{norm}: ORT on the exported graph vs the reference: {r.describe()}"


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "group_norm"])
def test_parameters_stored_as_initializers_is_a_configuration_and_agrees(norm):
    """``parameters=initializers`` (the second configuration) stores weight, bias and running
    statistics in the model, as an exported model holds them: a session per value set, and the
    property still holds against the reference."""
    from normcheck.properties import PROPERTIES

    impl = next(i for i in oa.ADAPTER.implementations() if i.id == f"onnxruntime/{norm}/onnx")
    assert impl.configs == (oa.PARAMETER_CONFIG,) and impl.configuration(1) == {"parameters": "initializers"}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    args = {
        "batch_norm": {"training": False},
        "layer_norm": {"normalized_shape": (2,)},
        "group_norm": {"num_groups": 2},
    }
    shape = (2,) if norm == "layer_norm" else (4,)
    extra = {
        "running_mean": rng.standard_normal(4).astype(np.float32),
        "running_var": rng.random(4).astype(np.float32) + 0.5,
    }
    case = Case(
        norm,
        x,
        {**args[norm], "eps": 1e-5},
        weight=rng.standard_normal(shape).astype(np.float32),
        bias=rng.standard_normal(shape).astype(np.float32),
        **(extra if norm == "batch_norm" else {}),
    )
    op = impl.api.split()[1].split("-")[0]
    oa.clear_cache()
    before = oa.build_count(op)
    for v in (0, 1):
        r = PROPERTIES["agreement"](impl, case.with_(variant=v))
        assert r.verdict == "pass", (v, r.message)
    other = case.with_(weight=case.weight + 1)
    other.call(impl), other.with_(variant=1).call(impl)
    # initializers: a session for each value set; inputs: one session serves both
    assert oa.build_count(op) - before == 3
