"""`normcheck check` on layers written the way real libraries ship them (issue 14), with no wrapper:
the constructor is mapped from each class's own signature, parameters follow the case's dtype, the
accepted ranks are inferred, one instance carries a train -> eval sequence, and each layer gets the
right verdict. torch's own nn.BatchNorm2d, nn.GroupNorm and an F.group_norm function conform."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from normcheck import checker, cli, target
from normcheck.target import TargetError
from tests.doubles import real_layers as R
from tests.sampling import draw

torch = R.torch
pytestmark = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install 'normcheck[torch]')")

LAYERS = str(Path(__file__).parents[1] / "doubles" / "real_layers.py")
FAST = {"profile": "quick", "dtypes": ["float32"]}


def _check(obj, norm, **kw):
    for k, v in FAST.items():
        kw.setdefault(k, v)
    return checker.check(obj, norm, **kw)


# --- verdicts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "norm", "kw"),
    [
        ("LlamaRMSNorm", "rms_norm", {"dtypes": ["float32", "float16"]}),  # float32 compute, cast back, * weight
        ("T5LayerNorm", "rms_norm", {}),
        ("SwappedGroupNorm", "group_norm", {}),  # (num_channels, num_groups, eps)
        ("KeywordOnlyLayerNorm", "layer_norm", {}),  # (*, dim, eps=1e-5)
        ("AliasLayerNorm", "layer_norm", {}),  # (d_model, epsilon=...), gamma/beta
        ("BiasFreeLayerNorm", "layer_norm", {"no_bias": True}),
        ("ParameterFreeRMSNorm", "rms_norm", {"no_affine": True}),
        ("ConvNeXtLayerNorm", "layer_norm", {"axes": (1,)}),  # data_format="channels_first", 4-D only
        ("ImageBatchNorm", "batch_norm", {}),  # raises on other ranks
        ("FixedMomentumBatchNorm", "batch_norm", {}),  # no momentum parameter
    ],
)
def test_real_style_layer_conforms(name, norm, kw):
    report = _check(getattr(R, name), norm, **kw)
    assert (report.framework, report.form) == ("torch", "module")
    assert report.conforms, report.summary()
    ran = [r for r in report.records if r.verdict == "pass"]
    assert {r.dtype for r in ran} == set(kw.get("dtypes", FAST["dtypes"]))


@pytest.mark.parametrize(
    ("name", "props", "failing", "needle"),
    [
        ("GemmaRMSNorm", ["agreement"], "agreement", "output"),  # (1 + weight) gain, undeclared
        ("FrozenBatchNorm2d", ["agreement"], "agreement", "output"),  # running statistics in training
        ("EvalUpdatingBatchNorm", ["agreement", "eval_uses_running"], "eval_uses_running", "eval leaves running_"),
        ("GradModeBatchNorm", ["agreement"], "agreement", "output"),  # statistics by grad mode
    ],
)
def test_wrong_real_style_layer_deviates(name, props, failing, needle):
    norm = "rms_norm" if "RMS" in name else "batch_norm"
    report = _check(getattr(R, name), norm, properties=props, diagnose=False)
    assert report.verdict == "deviates", report.summary()
    fails = [r for r in report.records if r.verdict == "fail"]
    assert fails and all(r.property == failing for r in fails), report.summary()
    assert needle in fails[0].message
    assert not [r for r in report.records if r.verdict == "error"], report.summary()


@pytest.mark.parametrize(
    ("obj", "norm"),
    [("torch.nn:BatchNorm2d", "batch_norm"), ("torch.nn:GroupNorm", "group_norm"), (R.group_norm, "group_norm")],
)
def test_torch_own_layers_and_functional_group_norm_conform(obj, norm):
    report = _check(obj, norm, dtypes=["float32", "float16"])
    assert report.conforms, report.summary()
    assert any(r.verdict == "pass" for r in report.records if r.dtype == "float16"), report.summary()


# --- the constructor ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "norm", "sketch"),
    [
        ("LlamaRMSNorm", "rms_norm", "LlamaRMSNorm(hidden_size=C, eps=eps)"),
        ("SwappedGroupNorm", "group_norm", "SwappedGroupNorm(num_channels=C, num_groups=G, eps=eps)"),
        ("KeywordOnlyLayerNorm", "layer_norm", "KeywordOnlyLayerNorm(dim=C, eps=eps)"),
        ("AliasLayerNorm", "layer_norm", "AliasLayerNorm(d_model=C, epsilon=eps)"),
        ("ImageBatchNorm", "batch_norm", "ImageBatchNorm(num_features=C, eps=eps, momentum=momentum)"),
    ],
)
def test_constructor_is_mapped_from_the_signature(name, norm, sketch):
    t = target.wrap(getattr(R, name), norm)
    assert t.ctor.sketch() == sketch
    assert any(n.startswith(f"built as {sketch}") for n in t.notes), t.notes


def test_positional_order_where_names_do_not_say_and_star_args():
    class Anonymous(torch.nn.Module):  # (a, b): torch.nn's order for GroupNorm, groups first
        def __init__(self, a, b, /, eps=1e-5):
            super().__init__()
            self.g, self.eps = a, eps
            self.weight, self.bias = torch.nn.Parameter(torch.ones(b)), torch.nn.Parameter(torch.zeros(b))

        def forward(self, x):
            return torch.nn.functional.group_norm(x, self.g, self.weight, self.bias, self.eps)

    assert target.Constructor(Anonymous, "group_norm").assign == {"a": "groups", "b": "features", "eps": "eps"}

    class StarArgs(torch.nn.GroupNorm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    c = target.Constructor(StarArgs, "group_norm")  # (*args, **kwargs) follows the base's signature
    assert (c.mode, c.base) == ("signature", "GroupNorm")
    canon = target.Canon(C=4, G=2, normalized_shape=None, eps=1e-5, momentum=None, weight=True, bias=True, track=False)
    assert c.call(canon, "float32") == (
        [],
        {"num_groups": 2, "num_channels": 4, "eps": 1e-5, "affine": True, "bias": True},
    )
    assert _check(StarArgs, "group_norm").conforms


def test_unmappable_required_parameter_is_one_line_naming_the_call():
    class KeywordConfig(torch.nn.Module):
        def __init__(self, dim, *, config, eps=1e-5):
            super().__init__()

    with pytest.raises(TargetError) as e:
        target.wrap(KeywordConfig, "layer_norm")
    msg = str(e.value)
    assert "KeywordConfig(dim=C, config=?, eps=eps)" in msg and "--arg config=VALUE" in msg
    assert "\n" not in msg


def test_eps_default_is_the_layers_own():
    """eps=None (rms_norm's default) passes no eps; the cases then carry the layer's default."""
    t = target.wrap(R.LlamaRMSNorm, "rms_norm")
    assert t.eps_default == 1e-6
    cases = draw(t.strategy("float32"))
    assert all(c.args["eps"] is not None for c in cases)
    assert any(c.args["eps"] == 1e-6 for c in cases)
    assert all(len(c.args["normalized_shape"]) == 1 for c in cases)  # hidden_size: one normalized size
    native = target.wrap(torch.nn.RMSNorm, "rms_norm")  # eps=None there: torch's own finfo default
    assert native.eps_default is None


def test_init_template_and_pinned_arguments():
    t = target.wrap(R.LlamaRMSNorm, "rms_norm", init="hidden_size={C}, eps={eps}")
    assert t.ctor.mode == "template" and "--init" in t.notes[1]
    g = target.wrap(R.SwappedGroupNorm, "group_norm", args={"num_groups": 4})
    cases = draw(g.strategy("float32"))
    assert {c.args["num_groups"] for c in cases} == {4} and all(c.x.shape[1] % 4 == 0 for c in cases)
    e = target.wrap(R.LlamaRMSNorm, "rms_norm", args={"eps": 1e-3})
    assert {c.args["eps"] for c in draw(e.strategy("float32"))} == {1e-3}
    with pytest.raises(TargetError, match=r"unknown placeholder \{X\}"):
        target.wrap(R.LlamaRMSNorm, "rms_norm", init="hidden_size={X}")
    with pytest.raises(TargetError, match="has no parameter 'foo'"):
        target.wrap(R.LlamaRMSNorm, "rms_norm", args={"foo": 1})
    with pytest.raises(TargetError, match="not a multiple of the pinned num_groups=3"):
        target.wrap(torch.nn.GroupNorm, "group_norm", args={"num_groups": 3}, shape=(2, 8))


def test_bias_free_layer_needs_no_bias_and_parameter_free_no_affine():
    t = target.wrap(R.BiasFreeLayerNorm, "layer_norm")  # a weight and no bias: checked as bias-free
    assert t.constraints["no_bias"] and any("checked as a bias-free norm" in n for n in t.notes)
    t = target.wrap(R.BiasFreeLayerNorm, "layer_norm", no_bias=True)
    assert all(c.bias is None for c in draw(t.strategy("float32")))
    with pytest.raises(TargetError, match=r"has no weight or bias.*--no-affine"):
        target.wrap(R.ParameterFreeRMSNorm, "rms_norm")
    t = target.wrap(R.ParameterFreeRMSNorm, "rms_norm", no_affine=True)
    assert all(c.weight is None and c.bias is None for c in draw(t.strategy("float32")))


# --- dtypes, ranks, one instance --------------------------------------------------------------------------


def test_parameters_follow_the_case_dtype():
    """A layer that computes in float32, casts back and multiplies by its weight returns float16."""
    t = target.wrap(R.LlamaRMSNorm, "rms_norm")
    case = t.probe_case("float16")
    y = t(case.x.copy(), **case.kwargs())
    assert y.dtype == np.float16
    bn = target.wrap(torch.nn.BatchNorm2d, "batch_norm")  # float32 buffers of a bfloat16 case: mixed precision
    case = bn.probe_case("bfloat16", buffers=True)
    out = case.call(bn)
    assert out.y.dtype.name == "bfloat16" and out.running_mean.dtype == np.float32
    assert not np.array_equal(out.running_mean, case.running_mean)


def test_ranks_inferred_from_the_name_or_a_probe_and_noted():
    bn = target.wrap(torch.nn.BatchNorm2d, "batch_norm")
    assert bn.ranks() == (4,) and any("ends in 2d" in n for n in bn.notes)
    assert target.wrap(torch.nn.BatchNorm1d, "batch_norm").ranks() == (2, 3)
    img = target.wrap(R.ImageBatchNorm, "batch_norm")
    assert img.ranks() == (4,) and any("rank 4 only" in n and "expected 4D input" in n for n in img.notes)
    assert target.wrap(torch.nn.GroupNorm, "group_norm").ranks() == (2, 3, 4, 5)
    given_ = target.wrap(torch.nn.GroupNorm, "group_norm", ranks=(3,), shape=(None, 8, None))
    assert all(c.x.shape[1] == 8 and c.x.ndim == 3 for c in draw(given_.strategy("float32")))


def test_one_instance_carries_a_train_eval_sequence():
    """Calls that continue each other (the buffers passed in are those the last call left) use one
    layer, so num_batches_tracked moves; other buffers start a fresh layer."""
    t = target.wrap(torch.nn.BatchNorm2d, "batch_norm")
    case = t.probe_case(buffers=True)
    first = case.call(t)
    layer = t._last[1]
    step = dataclasses.replace(case, running_mean=first.running_mean, running_var=first.running_var)
    step.call(t)
    assert t._last[1] is layer and int(layer.num_batches_tracked) == 2
    case.call(t)  # the original buffers again: a new sequence, a new layer
    assert t._last[1] is not layer and int(t._last[1].num_batches_tracked) == 1


# --- the command line -------------------------------------------------------------------------------------


def _main(capsys, *argv):
    rc = cli.main(["check", *argv, "--profile", "quick", "--dtypes", "float32", "--quiet"])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("name", "call"),
    [("NeedsConfig", "NeedsConfig(config=?)"), ("RefusesToBuild", "RefusesToBuild(num_features=4, eps=1e-05)")],
)
def test_constructor_that_cannot_be_called_exits_2_naming_the_call(capsys, name, call):
    rc, _, err = _main(capsys, f"{LAYERS}:{name}", "--norm", "rms_norm" if name == "NeedsConfig" else "batch_norm")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and call in lines[0] and "Traceback" not in err, err


def test_cli_options(capsys):
    rc, out, err = _main(capsys, f"{LAYERS}:LlamaRMSNorm", "--norm", "rms_norm", "--init", "hidden_size={C}, eps={eps}")
    assert rc == 0, out + err
    rc, out, err = _main(capsys, f"{LAYERS}:BiasFreeLayerNorm", "--norm", "layer_norm")  # checked as bias-free
    assert rc == 0 and "checked as a bias-free norm" in out, out + err
    rc, out, err = _main(capsys, f"{LAYERS}:BiasFreeLayerNorm", "--norm", "layer_norm", "--no-bias")
    assert rc == 0, out + err
    argv = ["torch.nn:GroupNorm", "--norm", "group_norm", "--rank", "4", "--shape", "N,8,H,W", "--arg", "num_groups=4"]
    rc, out, err = _main(capsys, *argv)
    assert rc == 0 and "CONFORMS" in out, out + err
    rc, out, err = _main(capsys, f"{LAYERS}:ConvNeXtLayerNorm", "--norm", "layer_norm", "--axes", "1")
    assert rc == 0 and "data_format='channels_first'" in out, out + err
    for bad in (["--shape", "2,x-1"], ["--arg", "noequals"], ["--rank", "four"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["check", "torch.nn:GroupNorm", "--norm", "group_norm", *bad])
        assert e.value.code == 2
    capsys.readouterr()
