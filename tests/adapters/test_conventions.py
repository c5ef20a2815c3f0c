"""The conventions table: every cell measured by running the framework, and the measurements agree
with the translations the adapters make (and tell the state doubles apart)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normcheck import conventions
from normcheck.cli import main
from tests.doubles import state as D


def _rows(framework):
    return {r["api"]: r for r in conventions.measure(framework)}


def test_numpy_rows_are_the_specs():
    from normcheck import spec

    rows = _rows("numpy")
    for name in spec.names():
        r = rows[f"normcheck.reference.{name}"]
        s = spec.get(name)
        if isinstance(s.default_eps, float):
            assert float(r["default_eps"]) == s.default_eps
        if s.has_running_stats:
            assert r["momentum"] == "new = (1-m)·old + m·batch"
            assert r["momentum_default"].startswith(f"{s.running_stats['momentum_default']:g} ")
            assert r["stored_variance"].startswith(s.running_stats["stored_variance"])
    assert rows["normcheck.reference.rms_norm"]["default_eps"] == f"{np.finfo(np.float32).eps:.3g}"


def test_torch_rows():
    pytest.importorskip("torch")
    rows = _rows("torch")
    bn = rows["torch.nn.BatchNorm{1,2,3}d"]
    assert (bn["default_eps"], bn["channel_axis"]) == ("1e-05", "1")
    assert bn["momentum"] == "new = (1-m)·old + m·batch" and bn["stored_variance"].startswith("unbiased")
    assert bn["momentum_none"] == "cumulative average of the batch statistics"
    assert bn["one_value_training"].startswith("raises ValueError")
    assert bn["untracked_eval"] == "eval uses the batch statistics"
    assert "eval uses the running statistics" in bn["train_eval"]
    # Finding: InstanceNorm's momentum=None is not BatchNorm's cumulative average: it never updates.
    assert (
        rows["torch.nn.InstanceNorm{1,2,3}d"]["momentum_none"]
        == "accepted, but the running statistics are never updated"
    )
    assert rows["torch.nn.LayerNorm"]["train_eval"] == "none (no state)"


def test_keras_rows_match_the_adapter():
    pytest.importorskip("tensorflow")
    from normcheck.adapters import tensorflow as tfa

    rows = _rows("tensorflow")
    for api, eps in tfa.CONVENTIONS["default_eps"].items():
        r = rows[api]
        assert r["default_eps"] == ("required argument" if eps is None else f"{eps:.3g}"), api
    bn = rows["keras.layers.BatchNormalization"]
    assert bn["momentum"] == "new = m·old + (1-m)·batch" and bn["momentum_default"].startswith("0.99 ")
    assert bn["stored_variance"].startswith(tfa.CONVENTIONS["stored_variance"])
    assert bn["channel_axis"] == str(tfa.CONVENTIONS["channel_axis"]["channels_last"])
    assert bn["one_value_training"].startswith("y = 0, 0")  # no error: the batch's variance is 0


def test_flax_rows_match_the_adapter():
    pytest.importorskip("flax")
    from normcheck.adapters import jax as ja

    rows = _rows("jax")
    for form in ("linen", "nnx"):
        for cls, eps in ja.CONVENTIONS["default_eps"].items():
            api = cls if "." in cls else f"flax.{form}.{cls}"
            assert rows[api]["default_eps"] == f"{eps:.3g}", api
        bn = rows[f"flax.{form}.BatchNorm"]
        assert bn["stored_variance"].startswith(ja.CONVENTIONS["stored_variance"])
        assert bn["momentum_default"].startswith(f"{ja.CONVENTIONS['default_momentum']:g} ")
        assert bn["channel_axis"] == str(ja.CONVENTIONS["channel_axis"])


def _probe(fn):
    def run(x, training, momentum=conventions.DEFAULT, state=None):
        kw = {} if momentum is conventions.DEFAULT else {"momentum": momentum}
        rm, rv = (
            (np.array(s, np.float32) for s in state) if state else (np.zeros(2, np.float32), np.ones(2, np.float32))
        )
        return fn(x, rm, rv, training=training, **kw), (rm, rv)

    return conventions.Probe("user", "batch_norm", fn.__name__, run, switch="training=", stateful=True)


@pytest.mark.parametrize(
    ("fn", "column", "expected"),
    [
        (D.batch_norm_correct, "stored_variance", "unbiased (1/(n-1))"),
        (D.batch_norm_biased_running_var, "stored_variance", "biased (1/n)"),
        (D.batch_norm_keras_momentum, "momentum", "new = m·old + (1-m)·batch"),
        (D.batch_norm_batch_stats_in_eval, "train_eval", "training=; eval uses the batch statistics"),
    ],
)
def test_measurements_tell_the_doubles_apart(fn, column, expected):
    assert conventions.row(_probe(fn), None)[column] == expected


def test_never_updating_double_is_unrecognized():
    assert conventions.row(_probe(D.batch_norm_never_updates), None)["momentum"].startswith("unrecognized")


def test_cli(tmp_path, capsys):
    out = tmp_path / "conv.json"
    assert main(["conventions", "--frameworks", "numpy", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "default eps" in text and "normcheck.reference.batch_norm" in text and "momentum=None" in text
    rows = json.loads(out.read_text())
    assert {r["norm"] for r in rows} >= {"batch_norm", "layer_norm"}
    assert all(set(conventions.COLUMNS) <= set(r) for r in rows)
