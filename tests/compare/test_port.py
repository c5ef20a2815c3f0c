"""normcheck.port: torch -> Keras -> torch and torch -> Flax round trips agree under the error model
(eval, training, running buffers after a step); wrong ports are caught; untranslatable settings
are refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from normcheck import port  # noqa: E402


def _randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        if getattr(m, "running_mean", None) is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return m


MODULES = [
    ("bn1d", lambda: torch.nn.BatchNorm1d(3), (6, 3)),
    ("bn1d-3d", lambda: torch.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3), (4, 3, 5)),
    ("bn2d", lambda: torch.nn.BatchNorm2d(3, momentum=0.7), (4, 3, 5, 2)),
    ("bn3d-noaffine", lambda: torch.nn.BatchNorm3d(2, affine=False), (2, 2, 3, 2, 2)),
    ("ln", lambda: torch.nn.LayerNorm((4, 5)), (2, 3, 4, 5)),
    ("ln-nobias", lambda: torch.nn.LayerNorm(5, bias=False, eps=1e-6), (3, 5)),
    ("gn", lambda: torch.nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    ("gn-noaffine", lambda: torch.nn.GroupNorm(1, 3, affine=False), (2, 3, 7)),
]


def _x(shape, seed=1):
    return (np.random.default_rng(seed).normal(size=shape) * 2 + 1).astype(np.float32)


@pytest.mark.parametrize(("make", "shape"), [m[1:] for m in MODULES], ids=[m[0] for m in MODULES])
def test_torch_keras_torch_round_trip(make, shape):
    pytest.importorskip("tensorflow")
    m = _randomize(make())
    layer = port.torch_to_keras(m, input_shape=shape)
    rep = port.compare_port(m, layer, _x(shape))
    assert rep.ok, rep.describe()
    back = port.keras_to_torch(layer)
    assert type(back) is type(m) or (
        type(m).__name__.startswith("BatchNorm") and type(back).__name__ == type(m).__name__
    )
    for k, v in m.state_dict().items():
        if k != "num_batches_tracked":
            assert torch.equal(back.state_dict()[k], v), k
    assert back.eps == pytest.approx(m.eps, rel=1e-7)
    assert getattr(back, "momentum", None) == getattr(m, "momentum", None)
    back_rep = port.compare_port(back, layer, _x(shape, seed=2))
    assert back_rep.ok, back_rep.describe()


@pytest.mark.parametrize(("make", "shape"), [m[1:] for m in MODULES], ids=[m[0] for m in MODULES])
def test_torch_to_flax(make, shape):
    pytest.importorskip("flax")
    m = _randomize(make())
    rep = port.compare_port(m, port.torch_to_flax(m), _x(shape))
    assert rep.ok, rep.describe()
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        assert any("biased" in n for n in rep.notes)  # the stored-variance convention is reported


def test_untranslated_momentum_is_caught():
    """A port that copies torch's momentum as Keras's (no 1 - m) fails on the running buffers."""
    pytest.importorskip("tensorflow")
    m = _randomize(torch.nn.BatchNorm1d(3, momentum=0.1))
    layer = port.torch_to_keras(m)
    layer.momentum = 0.1  # wrong: Keras keeps the fraction momentum of the old value
    rep = port.compare_port(m, layer, _x((8, 3)))
    failed = [name for name, c in rep.comparisons if not c.ok]
    assert failed and all("running" in f for f in failed), rep.describe()


def test_default_eps_port_is_caught():
    """A port that leaves Flax's default eps (1e-6 for LayerNorm) instead of torch's 1e-5 is caught
    on an input whose variance is of the order of eps."""
    pytest.importorskip("flax")
    import flax.linen as nn

    m = _randomize(torch.nn.LayerNorm(6))
    flax_module, variables = port.torch_to_flax(m)
    wrong = nn.LayerNorm(use_fast_variance=False)  # epsilon left at flax's default
    x = (_x((4, 6)) * 1e-3).astype(np.float32)
    assert port.compare_port(m, (flax_module, variables), x).ok
    assert not port.compare_port(m, (wrong, variables), x).ok


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: torch.nn.BatchNorm1d(3, momentum=None), "cumulative average"),
        (lambda: torch.nn.BatchNorm1d(3, track_running_stats=False), "track_running_stats"),
        (lambda: torch.nn.InstanceNorm1d(3), "can port"),
    ],
)
def test_refusals(make, match):
    with pytest.raises(port.PortError, match=match):
        port.torch_to_flax(make())


def test_channels_last_keras_layer_is_refused():
    pytest.importorskip("tensorflow")
    from normcheck.adapters import tensorflow as tfa

    keras = tfa.import_keras()
    layer = keras.layers.BatchNormalization()  # axis=-1
    layer.build((None, 4, 4, 3))
    with pytest.raises(port.PortError, match="channels-last"):
        port.keras_to_torch(layer)
