"""Forward-mode derivatives (issue 30, item 3): the ``jvp`` property judges each framework's
Jacobian-vector product (torch ``forward_ad`` dual numbers, ``jax.jvp``) of native norms and user
targets against the complex-step derivative of the float64 reference, under
``error_model.jvp_scale``. A custom forward-mode rule that drops the mean-of-v term fails it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from normcheck import adapters, autodiff, error_model, strategies, target
from normcheck.adapters import Impl
from normcheck.case import Case, fixed_cases
from normcheck.properties import PROPERTIES, forward_mode

NORMS = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "switchable_norm")


def _installed(fw: str):
    a = adapters.get(fw)
    if not a.available():
        pytest.skip(f"{fw} is not installed")
    return a


def _impls(fw: str) -> list[Impl]:
    return [i for i in _installed(fw).implementations() if not i.extended]


def _user(obj, norm, framework) -> Impl:
    t = target.wrap(obj, norm, framework=framework)
    return Impl("user", norm, t.form, t, dtypes=("float32",), runs_on=t.framework)


# --- the reference ---------------------------------------------------------------------------------


def _formula(case: Case, t) -> np.ndarray:
    """The hand-derived directional derivative of a single-set norm (module docstring)."""
    p = case.plan()
    x = case.x.astype(np.float64).reshape(p.view_shape)
    v = np.asarray(t["input"], np.float64).reshape(p.view_shape)
    eps = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    ax = p.reduce
    if not case.use_batch_stats:
        rm = case.running_mean.astype(np.float64).reshape(-1, *(1,) * (x.ndim - 2))
        rv = case.running_var.astype(np.float64).reshape(-1, *(1,) * (x.ndim - 2))
        sigma = np.sqrt(rv + eps)
        yhat, dyhat = (x - rm) / sigma, v / sigma
    else:
        mean = x.mean(axis=ax, keepdims=True) if case.spec.center else 0.0
        var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
        sigma = np.sqrt(var + eps)
        yhat = (x - mean) / sigma
        mv = v.mean(axis=ax, keepdims=True) if case.spec.center else 0.0
        dyhat = (v - mv - yhat * (yhat * v).mean(axis=ax, keepdims=True)) / sigma
    yhat, dyhat = yhat.reshape(case.x.shape), dyhat.reshape(case.x.shape)
    out = dyhat
    if case.weight is not None:
        w = case.weight.astype(np.float64).reshape(p.affine_broadcast)
        out = dyhat * w + np.asarray(t["weight"], np.float64).reshape(p.affine_broadcast) * yhat
    if case.bias is not None:
        out = out + np.asarray(t["bias"], np.float64).reshape(p.affine_broadcast)
    return out


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_the_reference_jvp_is_the_hand_derived_derivative(norm):
    cases = fixed_cases(norm, "float64")
    assert cases
    for case in cases:
        t = forward_mode.tangents(case)
        want, got = _formula(case, t), forward_mode.reference_jvp(case, t)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12 * max(1.0, np.max(np.abs(want)))), case.describe()


def test_the_hand_derived_formula_is_checked_on_eval_mode_and_every_tangent():
    """The cases above include eval mode (running statistics) and weight and bias tangents."""
    cases = fixed_cases("batch_norm", "float64")
    assert any(not c.use_batch_stats for c in cases)
    assert any(c.weight is not None and c.bias is not None for c in cases)
    assert {"input", "weight", "bias"} <= set(forward_mode.tangents(next(c for c in cases if c.bias is not None)))


def _moved(case: Case, t, step: float) -> np.ndarray:
    """The reference's output with the input, weight and bias moved by ``step`` along ``t``."""
    changes = {"x": case.x + step * t["input"]}
    for k in ("weight", "bias"):
        if k in t:
            changes[k] = getattr(case, k) + step * t[k]
    rm = None if case.running_mean is None else case.running_mean.copy()
    rv = None if case.running_var is None else case.running_var.copy()
    return case.with_(running_mean=rm, running_var=rv, **changes).reference().y


@pytest.mark.parametrize("norm", NORMS)
def test_the_reference_jvp_is_a_central_difference_of_the_reference(norm):
    """Every spec, a mixture of statistics (switchable_norm) included: the complex step against a
    central difference of the float64 reference along the same tangents."""
    for case in fixed_cases(norm, "float64")[:4]:
        t = forward_mode.tangents(case)
        h = 1e-6
        fd = (_moved(case, t, h) - _moved(case, t, -h)) / (2 * h)
        got = forward_mode.reference_jvp(case, t)
        assert np.allclose(got, fd, rtol=1e-5, atol=1e-6 * max(1.0, np.max(np.abs(fd)))), case.describe()


def test_the_jvp_scale_is_the_vjp_scale_with_v_for_g():
    """By the symmetry of the Jacobian: without weight/bias tangents and with weight 1, the forward
    scale at tangent v equals the first-order input-gradient scale at cotangent v."""
    from normcheck.properties import gradients

    for norm in ("layer_norm", "group_norm", "rms_norm", "batch_norm"):
        for case in fixed_cases(norm, "float64"):
            c = case.with_(weight=None, bias=None)
            v = gradients.direction(c)
            s_f = forward_mode.jvp_scales(c, {"input": v})
            s_b = gradients.grad_scales(c, v)["input"]
            assert np.allclose(s_f, s_b, rtol=1e-12), c.describe()


def test_the_eval_mode_scale_has_no_reduction_term():
    case = next(c for c in fixed_cases("batch_norm", "float64") if not c.use_batch_stats and c.weight is not None)
    v = forward_mode.tangents(case)["input"]
    s = error_model.jvp_scale("batch_norm", case.x, v, weight=case.weight, **{
        k: a for k, a in case.kwargs().items() if k != "weight"} | {"use_batch_stats": False})  # fmt: skip
    sigma = np.sqrt(case.running_var.astype(np.float64) + case.args["eps"]).reshape(-1, *(1,) * (case.x.ndim - 2))
    want = np.abs(v * case.weight.reshape(sigma.shape)) / sigma
    assert np.allclose(s, np.maximum(want, error_model.FLOOR))


def test_jvp_is_registered_and_numpy_has_no_forward_mode():
    assert "jvp" in PROPERTIES
    impl = adapters.get("numpy").implementations()[0]
    case = fixed_cases(impl.norm, "float32")[0]
    assert autodiff.forward_mode_missing(impl) == "numpy has no autodiff"
    r = PROPERTIES["jvp"](impl, case)
    assert r.verdict == "skip" and r.message == "unsupported: numpy has no autodiff"


# --- natives ---------------------------------------------------------------------------------------

_DRAWN = settings(max_examples=6, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip


def _judge(impl, ran: dict[str, int], findings):
    def judge(case):
        r = forward_mode.jvp(impl, case)
        if r.verdict in ("fail", "error"):
            assert findings.match_impl(impl, "jvp", case.dtype, case, r.verdict), (
                f"{impl.id} {case.describe()}: {r.message}"
            )
        if r.verdict == "pass":
            ran[impl.id] = ran.get(impl.id, 0) + 1

    return judge


def _natives_pass(fw: str, dtype: str, norms=None):
    """Every native of ``fw`` (one norm each where ``norms``) passes jvp on fixed and drawn cases
    (or deviates only as a registered finding); at least one case of each runs."""
    from normcheck import findings

    ran: dict[str, int] = {}
    for impl in _impls(fw):
        if (norms and impl.norm not in norms) or dtype not in impl.dtypes:
            continue
        judge = _judge(impl, ran, findings)
        for case in fixed_cases(impl.norm, dtype):
            judge(case)
        strategy = strategies.cases(impl.norm, dtypes=(dtype,), running_stats=None if impl.running_stats else False)
        _DRAWN(given(strategy)(judge))()
    return ran


def test_torch_natives_pass_jvp():
    ran = _natives_pass("torch", "float32")
    ids = {i.id for i in _impls("torch") if "float32" in i.dtypes}
    # torch's channels_last GroupNorm has no working forward mode (a registered finding)
    assert ids - set(ran) <= {"torch/group_norm/functional/channels_last"}, sorted(ids - set(ran))


def test_torch_natives_pass_jvp_in_bfloat16():
    ran = _natives_pass("torch", "bfloat16", norms=("layer_norm", "batch_norm"))
    assert ran


def test_jax_natives_pass_jvp():
    ran = _natives_pass("jax", "float32")
    ids = {i.id for i in _impls("jax") if "float32" in i.dtypes}
    assert ids == set(ran), sorted(ids - set(ran))


def test_torch_group_norm_channels_last_forward_mode_raises():
    """The registered finding torch-group-norm-channels-last-forward-mode: torch's GroupNorm forward-mode
    formula views a channels_last tensor, and raises."""
    impl = next(i for i in _impls("torch") if i.id == "torch/group_norm/functional/channels_last")
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 1, 2)
    r = forward_mode.jvp(impl, Case("group_norm", x, {"num_groups": 1, "eps": 1e-5}))
    assert r.verdict == "error" and "view size is not compatible" in r.message, r


# --- user targets ------------------------------------------------------------------------------------


def _torch_layer_norm(drop_mean: bool):
    torch = pytest.importorskip("torch")

    class Normalize(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, dims, eps):
            mean = x.mean(dims, keepdim=True)
            sigma = ((x - mean) ** 2).mean(dims, keepdim=True).add(eps).sqrt()
            yhat = (x - mean) / sigma
            ctx.save_for_forward(yhat, sigma)
            ctx.save_for_backward(yhat, sigma)
            ctx.dims = dims
            return yhat

        @staticmethod
        def jvp(ctx, vx, _dims, _eps):
            yhat, sigma = ctx.saved_tensors
            mv = 0.0 if drop_mean else vx.mean(ctx.dims, keepdim=True)
            return (vx - mv - yhat * (yhat * vx).mean(ctx.dims, keepdim=True)) / sigma

        @staticmethod
        def backward(ctx, g):
            yhat, sigma = ctx.saved_tensors
            d = ctx.dims
            return (g - g.mean(d, keepdim=True) - yhat * (g * yhat).mean(d, keepdim=True)) / sigma, None, None

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        dims = tuple(range(-len(normalized_shape), 0))
        y = Normalize.apply(input, dims, eps)
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        return y

    return layer_norm


def _cases(norm="layer_norm"):
    return [c for c in fixed_cases(norm, "float32") if c.use_batch_stats]


def test_torch_custom_function_with_a_right_jvp_passes():
    impl = _user(_torch_layer_norm(drop_mean=False), "layer_norm", "torch")
    results = [forward_mode.jvp(impl, c) for c in _cases()]
    assert results and all(r.verdict == "pass" for r in results), [r.message for r in results]


def test_torch_custom_function_whose_jvp_drops_the_mean_of_v_fails():
    impl = _user(_torch_layer_norm(drop_mean=True), "layer_norm", "torch")
    results = [forward_mode.jvp(impl, c) for c in _cases()]
    assert results and all(r.verdict == "fail" for r in results), [r.message for r in results]
    assert min(r.observed for r in results) > 1e3 * error_model.MODEL.lam


def test_torch_custom_function_without_jvp_is_unsupported_not_an_error():
    torch = pytest.importorskip("torch")

    class NoJvp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.nn.functional.layer_norm(x, x.shape[-1:])

        @staticmethod
        def backward(ctx, g):
            return g

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        return NoJvp.apply(input)

    case = next(c for c in _cases() if c.weight is None and len(c.args["normalized_shape"]) == 1)
    r = forward_mode.jvp(_user(layer_norm, "layer_norm", "torch"), case)
    assert r.verdict == "skip" and "no forward-mode derivative" in r.message, r


def _jax_layer_norm(drop_mean: bool):
    pytest.importorskip("jax")
    import jax
    import jax.numpy as jnp

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        dims = tuple(range(-len(normalized_shape), 0))

        @jax.custom_jvp
        def normalize(x):
            mean = x.mean(dims, keepdims=True)
            return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(dims, keepdims=True) + eps)

        @normalize.defjvp
        def _(primals, tangents):
            (x,), (v,) = primals, tangents
            mean = x.mean(dims, keepdims=True)
            sigma = jnp.sqrt(((x - mean) ** 2).mean(dims, keepdims=True) + eps)
            yhat = (x - mean) / sigma
            mv = 0.0 if drop_mean else v.mean(dims, keepdims=True)
            return yhat, (v - mv - yhat * (yhat * v).mean(dims, keepdims=True)) / sigma

        y = normalize(input)
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        return y

    return layer_norm


def test_jax_custom_jvp_with_a_right_rule_passes():
    impl = _user(_jax_layer_norm(drop_mean=False), "layer_norm", "jax")
    results = [forward_mode.jvp(impl, c) for c in _cases()]
    assert results and all(r.verdict == "pass" for r in results), [r.message for r in results]


def test_jax_custom_jvp_that_drops_the_mean_of_v_fails():
    impl = _user(_jax_layer_norm(drop_mean=True), "layer_norm", "jax")
    results = [forward_mode.jvp(impl, c) for c in _cases()]
    assert results and all(r.verdict == "fail" for r in results), [r.message for r in results]
    assert min(r.observed for r in results) > 1e3 * error_model.MODEL.lam


def test_tensorflow_has_no_forward_mode_here():
    _installed("tensorflow")
    impl = next(i for i in _impls("tensorflow"))
    assert autodiff.forward_mode_missing(impl) == "tensorflow: no forward-mode autodiff"


def test_jvp_scale_of_a_grouped_norm_broadcasts_the_affine_over_channels_not_groups():
    """GroupNorm's sets are (N, G, C/G, ...) views while its affine is per channel: the weight and bias
    tangents' terms broadcast over the input's shape (a (2, 2) input with G=2 once raised)."""
    from normcheck import error_model

    x = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    w, b = np.array([1.5, -2.0], np.float32), np.array([0.5, 3.0], np.float32)
    v = np.ones_like(x)
    s = error_model.jvp_scale("group_norm", x, v, weight=w, bias=b, weight_tangent=w, bias_tangent=b, num_groups=2)
    assert s.shape == x.shape and np.isfinite(s).all()
    # one element per group: y^ = 0 and sigma = sqrt(eps), so the bias tangent's term is |b'| per channel
    no_w = error_model.jvp_scale("group_norm", x, np.zeros_like(x), bias_tangent=b, num_groups=2)
    assert np.allclose(no_w, np.abs(b)[None, :])
