"""A JAX function target's derivatives are compiled with the target as one program per shape (as a
training step under ``jax.jit`` differentiates it): ``jax.vjp`` of the target's own ``jax.jit``
compiles its linearized forward and its pullback apart. A target the compiler cannot trace that way
falls back to the per-call path, and ``eager`` targets are never compiled."""

from __future__ import annotations

import numpy as np
import pytest

from normcheck import adapters, target
from normcheck.adapters import Impl
from normcheck.case import Case
from normcheck.properties import gradients, second_order

jax = pytest.importorskip("jax", reason="jax is not installed")
jnp = pytest.importorskip("jax.numpy", reason="jax is not installed")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(-len(tuple(normalized_shape)), 0))
    mean = input.mean(axes, keepdims=True)
    y = (input - mean) / jnp.sqrt(((input - mean) ** 2).mean(axes, keepdims=True) + eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def layer_norm_float_eps(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """eps read as a Python float: it must be a constant of the compiled program."""
    return layer_norm(input, normalized_shape, weight, bias, float(eps))


def layer_norm_branching(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Python control flow on eps: traced, it cannot be compiled; compiled in, it can."""
    return layer_norm(input, normalized_shape, weight, bias, eps if eps > 0 else 1e-5)


def _impl(fn, **kw):
    t = target.wrap(fn, "layer_norm", framework="jax", **kw)
    return t, Impl("user", "layer_norm", t.form, t, dtypes=("float32",), runs_on="jax")


def _case(shape, seed=0, eps=1e-5) -> Case:
    """A LayerNorm case over the last axis, small enough for the second order (<= 16 elements)."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.standard_normal(shape).astype(np.float32)
    w, b = (rng.uniform(0.5, 2, c).astype(np.float32), rng.standard_normal(c).astype(np.float32))
    return Case("layer_norm", x, {"normalized_shape": (c,), "eps": eps}, weight=w, bias=b)


PROPS = [gradients.gradient_agreement, second_order.gradient_second_order]


def _compiles() -> int:
    return int(adapters.get("jax").compile_stats().get("compiles", 0))


@pytest.mark.parametrize("prop", PROPS)
def test_a_derivative_of_a_new_shape_is_one_program(prop):
    t, impl = _impl(layer_norm)
    assert t.compiles_whole
    assert prop(impl, _case((2, 5))).verdict == "pass"
    before = _compiles()
    r = prop(impl, _case((3, 4), seed=1))  # a shape nothing has run on
    assert r.verdict == "pass", r.message
    assert _compiles() - before == 1  # where jax.vjp of the jitted target compiled two
    before = _compiles()
    assert prop(impl, _case((3, 4), seed=2, eps=0.25)).verdict == "pass"
    assert _compiles() == before  # eps is an argument of the program, not a constant
    assert t.whole


def test_a_target_needing_eps_constant_is_compiled_whole_with_eps_in():
    t, impl = _impl(layer_norm_float_eps)
    case = _case((2, 6))
    t(case.x, (6,), case.weight, case.bias, 1e-5)  # the forward finds eps must be a constant
    assert t.floats_static
    for prop in PROPS:
        before = _compiles()
        assert prop(impl, _case((4, 3), seed=3)).verdict == "pass"
        assert _compiles() - before == 1
    assert t.whole


def test_an_untraceable_target_falls_back_then_is_compiled_whole_with_eps_in():
    """Traced eps cannot be compiled: the first derivative falls back to the per-call path (which
    compiles eps in), and the next one is compiled whole with eps a constant."""
    t, impl = _impl(layer_norm_branching)
    assert gradients.gradient_agreement(impl, _case((2, 3))).verdict == "pass"
    assert not t.whole and t.floats_static
    for k, prop in enumerate(PROPS):
        before = _compiles()
        r = prop(impl, _case((3, 2 + k), seed=k))
        assert r.verdict == "pass", r.message
        assert _compiles() - before == 1
    assert t.whole and t.compiles_whole


def test_an_eager_target_is_never_compiled_whole():
    t, impl = _impl(layer_norm, eager=True)
    assert not t.compiles_whole
    for prop in PROPS:
        assert prop(impl, _case((2, 5))).verdict == "pass"
