"""Issue 28: every framework fact lives on its adapter and is asked of :mod:`normcheck.adapters`
(never by naming a framework elsewhere), and asking imports no framework."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from normcheck import adapters


def test_the_schedule_starts_the_costliest_framework_first_and_splits_jax_and_tensorflow():
    assert adapters.costliest_first(adapters.FRAMEWORKS) == ["jax", "tensorflow", "torch", "numpy", "onnxruntime"]
    assert {n: adapters.get(n).processes for n in adapters.FRAMEWORKS} == {
        "numpy": 1,
        "torch": 1,
        "jax": 2,
        "tensorflow": 2,
        "onnxruntime": 1,
    }


def test_the_packages_a_run_records():
    assert set(adapters.packages()) == {
        *("flax", "jax", "jaxlib", "keras", "tensorflow-cpu", "tensorflow"),
        *("onnxruntime", "onnx", "torch", "numpy"),
    }


@pytest.mark.parametrize(
    ("module", "framework"),
    [("flax.linen", "jax"), ("jaxlib", "jax"), ("keras.layers", "tensorflow"), ("torch.nn", "torch"),
     ("numpy", "numpy"), ("onnx", None), ("os.path", None), (None, None)],
)  # fmt: skip
def test_the_framework_a_module_belongs_to(module, framework):
    """flax and jaxlib are JAX's, keras TensorFlow's; ONNX Runtime is no target framework."""
    assert adapters.framework_of_module(module) == framework


def test_target_frameworks_leave_out_onnx_runtime():
    assert adapters.target_frameworks() == ("numpy", "torch", "jax", "tensorflow")


def _fake(monkeypatch, name: str, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    monkeypatch.setitem(sys.modules, name, m)
    return m


def test_module_kinds_are_read_from_loaded_modules(monkeypatch):
    """A class subclassing a loaded library's module base is of that kind, its adapter's."""

    class Module:
        pass

    class Layer:
        pass

    _fake(monkeypatch, "equinox", Module=Module)
    _fake(monkeypatch, "keras", layers=types.SimpleNamespace(Layer=Layer))

    class Eqx(Module):
        pass

    class Ker(Layer):
        pass

    a, kind = adapters.module_kind(Eqx)
    assert (a.name, kind, a.ecosystems[kind]) == ("jax", "equinox", "equinox")
    a, kind = adapters.module_kind(Ker)
    assert (a.name, kind, a.layer_kinds[kind]) == ("tensorflow", "keras", "keras.layers")
    assert adapters.module_kind(Eqx()) is None  # an instance is no module class
    assert adapters.module_kind(int) is None


def test_the_native_log_lines_are_dropped_and_fatal_ones_kept():
    line = adapters.native_log_line()
    assert line.match(b"I0000 00:00:1730000000.123456   12345 port.cc:153] oneDNN custom operations are on")
    assert line.match(b"2024-01-01 12:00:00.000001: I tensorflow/core/util/port.cc:113] oneDNN")
    assert not line.match(b"F0000 00:00:1730000000.123456   12345 check.cc:1] fatal")
    assert not line.match(b"normcheck audit: error: something")
    assert adapters.log_env()["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_the_strategies_draw_every_frameworks_default_eps():
    """strategies.py still writes the defaults out (owned by another change; to read
    adapters.default_eps() next): they are the adapters' own."""
    from normcheck import strategies

    assert set(strategies._FRAMEWORK_EPS) == set(adapters.default_eps())


def test_asking_the_adapters_imports_no_framework():
    code = (
        "import normcheck.adapters as a\n"
        "a.target_frameworks(); a.costliest_first(a.FRAMEWORKS); a.packages(); a.log_env(); a.native_log_line()\n"
        "a.framework_of_module('flax.linen'); a.module_kind(dict); a.refused(len); a.default_eps()\n"
        "import sys; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy = {"torch", "jax", "flax", "tensorflow", "keras", "onnx", "onnxruntime", "equinox", "haiku", "sonnet"}
    assert not set(out.split()) & heavy
