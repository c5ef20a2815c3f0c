"""`normcheck check` on the module classes of the JAX and TensorFlow ecosystems with no wrapper
(issue 26): Equinox, Haiku and Sonnet, their own classes and doubles in their styles
(tests/doubles/ecosystem.py). Conforming layers conform, wrong twins deviate, gradients are checked
through the ecosystem's own call path, and what cannot be built is one line naming the call."""

from __future__ import annotations

import importlib.util
import inspect

import pytest

from normcheck import checker, target
from normcheck.target import TargetError
from tests.doubles import ecosystem as E

FAST = {"profile": "quick", "dtypes": ["float32"], "max_examples": 6}
if "in_process" in inspect.signature(checker.check).parameters:
    FAST["in_process"] = True  # the doubles are this process's classes


def _needs(*mods):
    missing = [m for m in mods if importlib.util.find_spec(m) is None]
    extra = {"equinox": "equinox", "haiku": "dm-haiku", "sonnet": "dm-sonnet"}
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed (pip install {' '.join(extra.get(m, m) for m in missing)})",
    )


EQX, HK, SNT = _needs("equinox", "jax"), _needs("haiku", "jax"), _needs("sonnet", "tensorflow")
KERAS = _needs("keras", "tensorflow")


def _check(obj, norm, **kw):
    return checker.check(obj, norm, **{**FAST, **kw})


def _failed(report) -> set[str]:
    return {r.property for r in report.records if r.verdict == "fail"}


DOUBLES = [
    pytest.param("equinox_layer_norm", "layer_norm", "unbiased", marks=EQX),
    pytest.param("equinox_batch_norm", "batch_norm", "eps_outside", marks=EQX),
    pytest.param("haiku_layer_norm", "layer_norm", "axes", marks=HK),
    pytest.param("haiku_batch_norm", "batch_norm", "unbiased", marks=HK),
    pytest.param("sonnet_layer_norm", "layer_norm", "eps_outside", marks=SNT),
    pytest.param("keras_hub_rms_norm", "rms_norm", "eps_outside", marks=KERAS),
    pytest.param("keras_input_dim_layer_norm", "layer_norm", "unbiased", marks=KERAS),
]


@pytest.mark.parametrize(("builder", "norm", "wrong"), DOUBLES)
def test_double_conforms_with_gradients_and_its_wrong_twin_deviates(builder, norm, wrong):
    make = getattr(E, builder)
    report = _check(make(), norm)
    assert report.conforms, report.summary()
    ran = {r.property for r in report.records if r.verdict == "pass"}
    assert "gradient_agreement" in ran, sorted(ran)  # the gradient path goes through the ecosystem's call
    bad = _check(make(wrong=wrong), norm, properties=["agreement", "statistics"])
    assert not bad.conforms and "agreement" in _failed(bad), bad.summary()


@EQX
def test_equinox_own_classes():
    import equinox as eqx

    r = _check(eqx.nn.LayerNorm, "layer_norm")
    assert r.conforms and "vmapped over the batch" in r.notes[0], r.summary()
    r = _check(eqx.nn.BatchNorm, "batch_norm", args={"mode": "batch"})
    assert r.conforms, r.summary()
    assert any(p.startswith("gradient") for p in {x.property for x in r.records if x.verdict == "pass"})
    # the default mode ("ema") normalizes training batches with the averaged statistics: not batch norm
    r = _check(eqx.nn.BatchNorm, "batch_norm", properties=["agreement"])
    assert "agreement" in _failed(r)


@HK
def test_haiku_own_classes():
    import haiku as hk

    t = target.wrap(hk.LayerNorm, "layer_norm")
    assert t.ctor.assign["create_scale"] == "weight" and t.ctor.assign["param_axis"] == "axes"
    assert _check(hk.LayerNorm, "layer_norm").conforms
    # hk.BatchNorm's variance is one-pass (E[x^2] - E[x]^2): it cancels as |mean|/std grows
    r = _check(hk.BatchNorm, "batch_norm", properties=["shift_invariance"])
    assert "data_format='channels_first'" in r.notes[0]
    assert "shift_invariance" in _failed(r), r.summary()


@SNT
def test_sonnet_own_classes():
    import sonnet as snt

    r = _check(snt.LayerNorm, "layer_norm")
    # tf.nn.moments' stop_gradient on the mean (finding tf-moments-second-order-stop-gradient): first
    # derivatives right, second ones wrong where the draws reach it
    assert _failed(r) <= {"gradient_second_order"}, r.summary()
    assert "gradient_agreement" in {x.property for x in r.records if x.verdict == "pass"}
    t = target.wrap(snt.BatchNorm, "batch_norm")  # the signature behind Sonnet's metaclass
    assert t.ctor.assign["decay_rate"] == "decay" and t.framework == "tensorflow"
    r = _check(snt.BatchNorm, "batch_norm", properties=["agreement", "eval_uses_running", "gradient_agreement"])
    assert r.conforms, r.summary()


@HK
def test_unknown_required_name_is_an_error_naming_it_never_another_roles_value():
    import haiku as hk

    class Custom(hk.Module):
        def __init__(self, create_scale: bool, create_offset: bool, temperature, eps=1e-5):
            super().__init__()

        def __call__(self, x):
            return x

    with pytest.raises(TargetError, match=r"Custom\(.*temperature=\?.*cannot tell what 'temperature' is"):
        target.wrap(Custom, "layer_norm")


@KERAS
def test_keras_class_by_its_own_constructor_and_errors_naming_the_call():
    from normcheck import cli

    t = target.wrap(E.keras_hub_rms_norm(), "rms_norm")
    assert t.ctor.sketch() == "HubRMSNorm(epsilon=eps)" and t.driver is not None
    t = target.wrap(E.keras_input_dim_layer_norm(), "layer_norm", args={"epsilon": 1e-3})
    assert t.ctor.assign["input_dim"] == "features" and t.constraints["pinned"]["eps"] == 1e-3
    with pytest.raises(TargetError, match=r"Unbuildable\(epsilon=1e-06\) raised ValueError: this layer needs a config"):
        target.wrap(E.keras_unbuildable(), "rms_norm", args={"epsilon": 1e-6})
    # --init for a Keras class; a constructor that cannot be built exits 2 with one line naming it
    t = target.wrap(E.keras_hub_rms_norm(), "rms_norm", init="epsilon={eps}")
    assert t.ctor.mode == "template"
    rc = cli.main(["check", "keras.layers:LayerNormalization", "--norm", "layer_norm", "--arg", "foo=1"])
    assert rc == 2


@pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None, reason="keras-hub not installed (pip install keras-hub)"
)
def test_keras_hub_own_classes():
    from keras_hub.src.models.gemma.rms_normalization import RMSNormalization
    from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm

    r = _check(LlamaLayerNorm, "rms_norm")
    assert r.conforms and "LlamaLayerNorm(epsilon=eps)" in r.notes[0], r.summary()
    r = _check(RMSNormalization, "rms_norm", properties=["agreement"])  # Gemma: x * (1 + scale)
    assert "agreement" in _failed(r)


@_needs("flax", "jax")
def test_linen_class_by_init_and_arg():
    import flax.linen as nn

    from tests.doubles import layers as L

    t = target.wrap(L.linen_layer_norm(), "layer_norm", init="epsilon={eps}")
    assert t.ctor.mode == "template" and t.driver is not None
    r = _check(L.linen_layer_norm(unbiased=True), "layer_norm", init="epsilon={eps}", properties=["agreement"])
    assert "agreement" in _failed(r)
    # flax's own LayerNorm mapped by --init; its default use_fast_variance=True is a one-pass variance
    init = "epsilon={eps}, use_bias={bias}, use_scale={affine}, use_fast_variance=False"
    r = _check(
        nn.LayerNorm, "layer_norm", init=init, properties=["agreement", "shift_invariance", "gradient_agreement"]
    )
    assert r.conforms, r.summary()
    r = _check(
        nn.BatchNorm, "batch_norm", args={"axis": -1, "use_fast_variance": False}, properties=["running_stats_steps"]
    )
    assert r.conforms, r.summary()
