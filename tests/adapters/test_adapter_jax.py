"""The JAX adapter: 16-bit agreement, the momentum/variance translation, jit cache reuse, lazy
imports, and the conventions it claims for Flax."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax", reason="the JAX adapter needs jax and flax (pip install 'normcheck[jax]')")

from normcheck import findings, properties, reference
from normcheck import spec as _spec
from normcheck.adapters import Unsupported, get
from normcheck.adapters import jax as jax_adapter
from normcheck.case import Case, fixed_cases
from normcheck.dtypes import np_dtype

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = get("jax")
IMPLS = ADAPTER.implementations()
BY_ID = {i.id: i for i in IMPLS}


# Real deviations of the framework (reported, never loosened): the test still runs and must fail.
def _params(dtypes_):
    out = []
    for impl in IMPLS:
        for dt in dtypes_:
            out.append(pytest.param(impl, dt, id=f"{impl.id}-{dt}"))
    return out


def _applicable(impl, case):
    return impl.running_stats or case.running_mean is None


# --- 16-bit agreement ------------------------------------------------------------------------


@pytest.mark.parametrize(("impl", "dtype"), _params(("bfloat16", "float16")))
def test_16bit_agrees_with_reference(impl, dtype):
    assert dtype in impl.dtypes
    ran = 0
    for case in fixed_cases(impl.norm, dtype):
        if not _applicable(impl, case):
            continue
        r = properties.agreement(impl, case)
        if r.verdict == "skip":
            continue
        ran += 1
        if r.verdict == "fail" and findings.match(impl.id, "agreement", dtype, case):
            continue  # a registered finding (specs/findings.toml), e.g. jax.nn.standardize in bfloat16
        assert r.verdict == "pass", f"{impl.id} ({impl.api}) on {case.describe()}: {r.message}"
    assert ran, f"{impl.id}: every fixed {dtype} case was unsupported"


def test_standardize_bfloat16_deviation_smallest_case():
    import ml_dtypes

    x = np.array([2.1875, 2.484375], ml_dtypes.bfloat16)
    case = Case("layer_norm", x, {"normalized_shape": (2,), "eps": 1e-5})
    r = properties.agreement(BY_ID["jax/layer_norm/standardize/jit"], case)
    assert r.verdict == "fail" and r.observed > 100, r.message


# --- running statistics: momentum and stored variance -----------------------------------------

RUNNING = [pytest.param(i, id=i.id) for i in IMPLS if i.running_stats]


@pytest.mark.parametrize("impl", RUNNING)
def test_running_buffers_follow_torch_over_two_steps(impl):
    rng = np.random.default_rng(7)
    c, m = 3, 0.2
    rm, rv = rng.normal(size=c).astype(np.float32), rng.uniform(0.5, 2, size=c).astype(np.float32)
    ref_m, ref_v = rm.astype(np.float64), rv.astype(np.float64)
    w, b = (rng.normal(size=c) + 1).astype(np.float32), rng.normal(size=c).astype(np.float32)
    for step in range(2):
        x = (rng.normal(size=(4, c, 5)) * 1.5 + step).astype(np.float32)  # n = 20: n/(n-1) = 1.05
        y = impl(x, rm, rv, w, b, training=True, momentum=m, eps=1e-5)
        y_ref = reference.batch_norm(x, ref_m, ref_v, w, b, training=True, momentum=m, eps=1e-5)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5, err_msg=f"output, step {step}")
        np.testing.assert_allclose(rm, ref_m, rtol=1e-5, atol=1e-6, err_msg=f"running_mean, step {step}")
        np.testing.assert_allclose(rv, ref_v, rtol=1e-5, atol=1e-6, err_msg=f"running_var, step {step}")
    assert rm.dtype == rv.dtype == np.float32
    # eval with the buffers: uses them and leaves them alone
    x = rng.normal(size=(2, c, 5)).astype(np.float32)
    before = rm.copy(), rv.copy()
    y = impl(x, rm, rv, w, b, training=False, eps=1e-5)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, w, b, eps=1e-5), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_flax_stores_the_biased_variance_with_the_kept_fraction():
    """The conventions the translation relies on, checked on raw flax."""
    import flax.linen as nn
    import jax.numpy as jnp

    assert jax_adapter.CONVENTIONS["stored_variance"] == "biased"
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    old_m, old_v = np.array([0.5, -1.0], np.float32), np.array([2.0, 0.5], np.float32)
    kept = 0.75
    bn = nn.BatchNorm(use_running_average=False, momentum=kept, use_fast_variance=False)
    variables = {"params": {"scale": jnp.ones(2), "bias": jnp.zeros(2)}, "batch_stats": {"mean": old_m, "var": old_v}}
    _, new = bn.apply(variables, x, mutable=["batch_stats"])
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(new["batch_stats"]["mean"], kept * old_m + (1 - kept) * x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(new["batch_stats"]["var"], kept * old_v + (1 - kept) * x64.var(0), rtol=1e-6)


def test_conventions_match_flax_defaults():
    import flax.linen as nn
    import jax
    from flax import nnx

    eps = jax_adapter.CONVENTIONS["default_eps"]
    for name in ("BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm", "InstanceNorm"):
        linen = {f.name: f.default for f in dataclasses.fields(getattr(nn, name))}
        nnx_defaults = inspect.signature(getattr(nnx, name).__init__).parameters
        assert linen["epsilon"] == eps[name], name
        assert nnx_defaults["epsilon"].default == eps[name], name
        assert linen["use_fast_variance"] is True and nnx_defaults["use_fast_variance"].default is True, name
    assert inspect.signature(jax.nn.standardize).parameters["epsilon"].default == eps["jax.nn.standardize"]
    linen_bn = {f.name: f.default for f in dataclasses.fields(nn.BatchNorm)}
    assert linen_bn["momentum"] == jax_adapter.CONVENTIONS["default_momentum"]
    assert linen_bn["axis"] == jax_adapter.CONVENTIONS["channel_axis"]
    assert inspect.signature(nnx.BatchNorm.__init__).parameters["momentum"].default == 0.99


def test_fast_variance_deviation_stays_visible():
    """The adapter keeps flax's default use_fast_variance=True: a large common offset must show."""
    x = np.array([10000.0, 10001.0], np.float32)
    case = Case("layer_norm", x, {"normalized_shape": (2,), "eps": 1e-5})
    for form in ("linen", "linen/jit", "nnx", "nnx/jit", "standardize/jit"):
        r = properties.agreement(BY_ID[f"jax/layer_norm/{form}"], case)
        assert r.verdict == "fail", f"{form}: {r.message}"


# --- jit: one trace per shape ------------------------------------------------------------------

JIT = [pytest.param(i, id=i.id) for i in IMPLS if i.mode == "jit" and i.form in ("linen", "nnx")]


def _trace_key(impl) -> str:
    return f"linen/{impl.norm}/{impl.layout}" if impl.form == "linen" else f"nnx/{impl.norm}"


def _args(norm, shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    kw = {"eps": 1e-5}
    if norm == "batch_norm":
        c = shape[1]
        kw |= {"running_mean": np.zeros(c, np.float32), "running_var": np.ones(c, np.float32), "training": True}
    elif norm in ("layer_norm", "rms_norm"):
        kw["normalized_shape"] = shape[-1:]
    elif norm == "group_norm":
        kw["num_groups"] = 1
    return x, kw


@pytest.mark.parametrize("impl", JIT)
def test_jit_reuses_the_compiled_apply(impl, monkeypatch):
    monkeypatch.setenv("NORMCHECK_NO_CACHE", "1")  # no program from the store: each new shape is traced
    rng = np.random.default_rng(0)
    key = _trace_key(impl)
    traces = jax_adapter.TRACES
    x, kw = _args(impl.norm, (3, 5, 7), rng)
    t0 = traces[key]
    impl(x, **kw)
    t1 = traces[key]
    assert t1 - t0 <= 1
    x, kw = _args(impl.norm, (3, 5, 7), rng)  # same shape, new values
    impl(x, **kw)
    assert traces[key] == t1, "a second call of the same shape re-traced"
    x, kw = _args(impl.norm, (2, 5, 11), rng)  # a new shape traces once (the counter works)
    impl(x, **kw)
    assert traces[key] == t1 + 1


@pytest.mark.parametrize("impl", JIT)
def test_jit_takes_eps_as_an_argument_bit_identically(impl, monkeypatch):
    """A new eps on a seen shape reuses the compiled apply, and its output is bit-identical to the
    program with eps compiled in as a literal (float32 and bfloat16, eps from 1e-12 to 1)."""
    rng = np.random.default_rng(1)
    key = _trace_key(impl)
    x, kw = _args(impl.norm, (4, 6, 5), rng)
    impl(x, **kw)
    t = jax_adapter.TRACES[key]
    calls = []
    for dt in ("float32", "bfloat16"):
        xd = x.astype(np_dtype(dt))
        for eps in (1e-12, 3.3e-7, 1e-5, 0.1234567, 1.0):
            args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kw.items()} | {"eps": eps}
            calls.append(
                (xd, args, impl(xd, **{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}))
            )
    assert jax_adapter.TRACES[key] - t <= 1  # the bfloat16 input is one new program; no eps is
    monkeypatch.setattr(jax_adapter, "DYNAMIC_EPS", False)
    for xd, args, dynamic in calls:
        literal = impl(xd, **args)
        assert literal.dtype == dynamic.dtype
        assert np.array_equal(literal.view(np.uint16 if literal.itemsize == 2 else np.uint32),
                              dynamic.view(np.uint16 if dynamic.itemsize == 2 else np.uint32)), (impl.id, args["eps"])  # fmt: skip


# --- canonical interface -----------------------------------------------------------------------


@pytest.mark.parametrize("impl", [pytest.param(i, id=i.id) for i in IMPLS])
def test_signature_is_canonical(impl):
    s = _spec.get(impl.norm)
    params = inspect.signature(impl.fn).parameters
    assert tuple(params) == s.param_names
    for k, v in s.defaults.items():
        assert params[k].default == v, k


@pytest.mark.parametrize("impl", [pytest.param(i, id=i.id) for i in IMPLS])
def test_inputs_untouched_output_dtype_and_shape(impl):
    for case in fixed_cases(impl.norm, "bfloat16"):
        if not _applicable(impl, case):
            continue
        kw = case.kwargs()
        x = case.x.copy()
        frozen = {k: v.copy() for k, v in kw.items() if isinstance(v, np.ndarray)}
        try:
            y = impl(x, **kw)
        except Unsupported:
            continue
        assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(x, case.x)
        updated = ("running_mean", "running_var") if case.use_batch_stats else ()
        for k, v in frozen.items():
            if k not in updated:
                np.testing.assert_array_equal(kw[k], v, err_msg=k)


def test_unsupported_combinations_raise():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    w = np.ones(3, np.float32)
    with pytest.raises(Unsupported):
        BY_ID["jax/instance_norm/standardize/jit"](x, weight=w)
    with pytest.raises(Unsupported):
        BY_ID["jax/batch_norm/standardize/jit"](x, np.zeros(3, np.float32), np.ones(3, np.float32), training=True)
    with pytest.raises(Unsupported):
        BY_ID["jax/instance_norm/linen"](x, np.zeros(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(Unsupported):
        BY_ID["jax/batch_norm/linen"](x, np.zeros(3, np.float32), np.ones(3, np.float32), training=True, momentum=None)
    assert not any(i.norm == "group_norm" and i.layout == "channels_first" and i.form != "standardize" for i in IMPLS)


def test_float64_only_with_x64():
    import jax

    x = np.ones((2, 3), np.float64)
    if jax.config.jax_enable_x64:
        assert all("float64" in i.dtypes for i in IMPLS)
        return
    assert not any("float64" in i.dtypes for i in IMPLS)
    with pytest.raises(Unsupported, match="x64"):
        BY_ID["jax/layer_norm/linen"](x, (3,))


def test_arrays_round_trip():
    import ml_dtypes

    a = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    native = ADAPTER.to_native(a)
    assert ADAPTER.owns(native) and not ADAPTER.owns(a)
    back = ADAPTER.to_numpy(native)
    assert back.dtype == a.dtype and back.flags.writeable
    np.testing.assert_array_equal(back, a)
    assert ADAPTER.devices() and all(":" in d for d in ADAPTER.devices())
    np.testing.assert_array_equal(ADAPTER.to_numpy(ADAPTER.to_native(a, device=ADAPTER.devices()[0])), a)


# --- imports -------------------------------------------------------------------------------------


def _python(code):
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_importing_the_adapter_imports_no_jax():
    _python(
        "import sys, normcheck.adapters.jax as m\n"
        "assert not {'jax', 'flax'} & set(sys.modules), 'imported jax/flax'\n"
        "m.ADAPTER.implementations(); m.ADAPTER.owns(1.0)\n"
        "assert not {'jax', 'flax'} & set(sys.modules), 'listing imported jax/flax'\n"
    )


def test_using_the_adapter_imports_no_torch_or_tensorflow():
    _python(
        "import sys\n"
        "from normcheck.adapters import get\n"
        "from normcheck.case import fixed_cases\n"
        "for impl in get('jax').implementations():\n"
        "    for case in fixed_cases(impl.norm, 'float32')[:1]:\n"
        "        try: case.call(impl)\n"
        "        except Exception as e: print(type(e).__name__, e)\n"
        "assert 'jax' in sys.modules and 'flax' in sys.modules\n"
        "bad = {'torch', 'tensorflow', 'keras'} & {k.split('.')[0] for k in sys.modules}\n"
        "assert not bad, bad\n"
    )
