"""Configurations as data: a native implementation's constructor options (``Impl.configs``), drawn
per case (``Case.variant``), run by the adapter, recorded per record, and read by findings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

from normcheck import findings
from normcheck import strategies as ns
from normcheck.adapters import Impl
from normcheck.adapters.base import configuration
from normcheck.case import Case

AXES = (("fast", (True, False)), ("reduce", ("float32", "input", "float64")))


def _impl(**kw):
    return Impl("numpy", "layer_norm", "x", lambda x, **k: x, configs=AXES, **kw)


def test_variant_zero_is_every_default_and_each_configuration_is_reached():
    impl = _impl()
    assert impl.config_count == 6
    assert impl.configuration(0) == {"fast": True, "reduce": "float32"}
    assert impl.config_label(0) == ""
    seen = {tuple(impl.configuration(v).items()) for v in range(impl.config_count)}
    assert len(seen) == 6
    assert impl.configuration(1) == {"fast": False, "reduce": "float32"}  # mixed radix, first axis fastest
    assert impl.configuration(2) == {"fast": True, "reduce": "input"}
    assert impl.config_label(5) == "fast=False, reduce=float64"
    assert configuration((), 12345) == {}


def test_case_call_passes_the_configuration_only_to_an_implementation_with_axes():
    got = {}

    def fn(x, normalized_shape, eps, weight=None, bias=None, **options):
        got.update(options)
        return x

    case = Case("layer_norm", np.ones((1, 2), np.float32), {"normalized_shape": (2,), "eps": 1e-5}, variant=5)
    case.call(Impl("numpy", "layer_norm", "x", fn, configs=AXES))
    assert got == {"fast": False, "reduce": "float64"}
    got.clear()
    case.call(fn)  # a plain function (a user's target) gets the canonical arguments only
    assert got == {}


def test_variant_round_trips_through_json():
    case = Case("layer_norm", np.ones((1, 2), np.float32), {"normalized_shape": (2,), "eps": 1e-5}, variant=3)
    back = Case.from_json(json.loads(json.dumps(case.to_json())))
    assert back.variant == 3
    assert "variant" not in case.with_(variant=0).to_json()


@settings(max_examples=40, derandomize=True, deadline=None)
@given(ns.cases("layer_norm", variants=True))
def test_cases_draw_variants_when_asked(case):
    assert 0 <= case.variant < ns.VARIANTS


@settings(max_examples=20, derandomize=True, deadline=None)
@given(ns.cases("layer_norm"))
def test_cases_draw_no_variant_by_default(case):
    assert case.variant == 0


def test_a_finding_can_be_conditioned_on_the_configuration():
    (flax_fast,) = [f for f in findings.load() if f.id == "flax-fast-variance"]
    case = Case("layer_norm", np.array([[1e4, 1e4 + 1]], np.float32), {"normalized_shape": (2,), "eps": 1e-5})
    assert flax_fast.covers(case, {})  # the default: use_fast_variance=True
    assert flax_fast.covers(case, {"use_fast_variance": True})
    assert not flax_fast.covers(case, {"use_fast_variance": False})


# --- JAX: Flax's options and jax.nn.standardize's algorithm ---------------------------------------------


@pytest.fixture(scope="module")
def jax_impls():
    pytest.importorskip("flax", reason="the JAX adapter needs jax and flax (pip install 'normcheck[jax]')")
    from normcheck.adapters import get

    return {i.id: i for i in get("jax").implementations()}


@pytest.mark.parametrize(
    ("impl_id", "option"),
    [
        ("jax/layer_norm/linen/jit", {"use_fast_variance": False}),
        ("jax/layer_norm/nnx/jit", {"use_fast_variance": False}),
        ("jax/layer_norm/standardize/jit", {"algorithm": "stable"}),
    ],
)
def test_two_pass_configuration_of_flax_and_standardize_passes_where_the_default_one_pass_fails(
    jax_impls, impl_id, option
):
    """[1e4, 1e4 + 1, ...]: the default one-pass variance cancels (the registered finding), the two-pass
    option is right to a fraction of a unit; the finding explains the first and not the second."""
    from normcheck.properties import PROPERTIES

    impl = jax_impls[impl_id]
    variant = next(v for v in range(impl.config_count) if impl.configuration(v).items() >= option.items())
    x = np.array([[10000.0, 10001.0, 10000.5, 10000.25]], np.float32)
    case = Case("layer_norm", x, {"normalized_shape": (4,), "eps": 1e-5})
    for prop in ("agreement", "gradient_agreement"):
        default = PROPERTIES[prop](impl, case)
        assert default.verdict == "fail" and default.observed > 1e3, default.message
        assert findings.match_impl(impl, prop, "float32", case) is not None
        two_pass = PROPERTIES[prop](impl, case.with_(variant=variant))
        assert two_pass.verdict == "pass" and two_pass.observed < 2, two_pass.message
        assert findings.match_impl(impl, prop, "float32", case.with_(variant=variant)) is None


def test_flax_axes_are_options_of_the_installed_classes(jax_impls):
    """Every declared option is a constructor keyword of the class the form builds (read, not assumed)."""
    import inspect

    import flax.linen as linen
    from flax import nnx

    from normcheck.adapters.jax import FLAX_CLASSES

    for impl in jax_impls.values():
        if impl.form not in ("linen", "nnx"):
            continue
        cls = getattr(linen if impl.form == "linen" else nnx, FLAX_CLASSES[impl.norm])
        params = inspect.signature(cls if impl.form == "linen" else cls.__init__).parameters
        assert impl.configs, impl.id
        for name, values in impl.configs:
            assert (name if name != "axis_spelling" else "reduction_axes") in params, (impl.id, name)
            if impl.form == "linen" and name == "param_dtype":
                assert np.dtype(params[name].default) == np.dtype(values[0]), impl.id
            elif impl.form == "linen" and name != "axis_spelling":
                assert params[name].default == values[0], (impl.id, name)


def test_audit_records_the_configurations_it_drew(jax_impls):
    from normcheck.audit.driver import run_check
    from normcheck.profiles import Run

    impl = jax_impls["jax/layer_norm/standardize/jit"]
    rec = run_check(impl, "agreement", "float32", Run("ci", 0))
    labels = {impl.config_label(v) or "defaults" for v in range(impl.config_count)}
    assert rec.configs is not None and set(rec.configs) <= labels and len(rec.configs) > 1
    assert 0 < sum(row["examples"] for row in rec.configs.values()) <= rec.examples  # skips are not judged
    assert "configs" in rec.to_json()


def test_all_configs_runs_every_drawn_case_in_every_configuration(jax_impls):
    """``--all-configs`` (``Run.all_configs``): the product, each configuration judged on every drawn
    case, where the default draws one configuration per case."""
    from normcheck.audit.driver import run_check
    from normcheck.profiles import Run

    impl = jax_impls["jax/layer_norm/standardize/jit"]
    drawn = run_check(impl, "agreement", "float32", Run("ci", 0, max_examples=6))
    every = run_check(impl, "agreement", "float32", Run("ci", 0, max_examples=6, all_configs=True))
    labels = {impl.config_label(v) or "defaults" for v in range(impl.config_count)}
    assert set(every.configs) == labels and len(labels) == impl.config_count > 1
    judged = {row["examples"] for row in every.configs.values()}
    assert len(judged) == 1 and judged.pop() == sum(row["examples"] for row in drawn.configs.values())
    assert every.examples == impl.config_count * drawn.examples


# --- TensorFlow: Keras's dtype policies and tf.nn under XLA ----------------------------------------------


@pytest.fixture(scope="module")
def tf_impls():
    pytest.importorskip("torch", reason="torch is imported before tensorflow in one process")
    pytest.importorskip(
        "tensorflow", reason="the TensorFlow adapter needs tensorflow (pip install 'normcheck[tensorflow]')"
    )
    from normcheck.adapters import get

    return {i.id: i for i in get("tensorflow").implementations()}


def test_tf_nn_under_xla_is_one_compiled_program_per_view_and_passes(tf_impls):
    from normcheck.adapters import tensorflow as tfa
    from normcheck.properties import PROPERTIES

    impl = tf_impls["tensorflow/layer_norm/tf.nn"]
    assert impl.configs == tfa.TFNN_CONFIGS and impl.configuration(1)["jit_compile"] is True
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    case = Case("layer_norm", x, {"normalized_shape": (5,), "eps": 1e-5}, variant=1)
    for prop in ("agreement", "gradient_agreement"):
        r = PROPERTIES[prop](impl, case)
        assert r.verdict == "pass", r.message
    assert any(k[:3] == ((3, 5), (1,), "float32") for k in tfa.TFNN_PROGRAMS)  # its XLA program ran


def test_keras_full_16_bit_policy_is_a_configuration_and_keeps_16_bit_moving_statistics(tf_impls):
    """The mixed policy keeps float32 moving statistics (exact); the full float16 one rounds them to
    float16 and overflows past 65504 (the registered finding, which covers only that configuration)."""
    from normcheck.properties import PROPERTIES

    impl = tf_impls["tensorflow/batch_norm/keras"]
    assert impl.configuration(1) == {"dtype_policy": "full", "feed": "own"}
    case = Case(
        "batch_norm",
        np.array([[-400.0], [400.0]], np.float16),
        {"eps": 1e-5, "training": True, "momentum": 1.0},
        running_mean=np.array([0.5], np.float32),
        running_var=np.array([1.0], np.float32),
    )
    mixed, full = (PROPERTIES["agreement"](impl, case.with_(variant=v)) for v in (0, 1))
    assert mixed.verdict == "pass", mixed.message
    assert full.verdict == "fail" and "running_var" in full.message
    assert findings.match_impl(impl, "agreement", "float16", case.with_(variant=1)).id == (
        "keras-full-16bit-policy-running-stats-in-16-bits"
    )
    assert findings.match_impl(impl, "agreement", "float16", case) is None


@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm", "group_norm", "rms_norm"])
def test_a_keras_layer_fed_float32_casts_a_16_bit_case_itself_and_is_judged_in_16_bits(tf_impls, norm):
    """The ``feed=float32`` configuration hands a float16 case's input over as float32 (the same
    values), as a mixed-precision model's first layer receives it: the layer casts it to its compute
    dtype, so its output is the float16 one, bit for bit, in either dtype policy."""
    from normcheck.adapters import tensorflow as tfa
    from normcheck.properties import PROPERTIES

    impl = tf_impls[f"tensorflow/{norm}/keras"]
    x = (np.random.default_rng(1).standard_normal((4, 6)) * 3).astype(np.float16)
    assert tfa.fed(x, "float32").dtype == np.float32 and tfa.fed(x.astype(np.float32), "float32").dtype == np.float32
    args = {"normalized_shape": (6,)} if norm in ("layer_norm", "rms_norm") else {}
    if norm == "group_norm":
        args = {"num_groups": 2}
    if norm == "batch_norm":
        args = {"training": True}
    case = Case(norm, x, {**args, "eps": 1e-3})
    fed = [v for v in range(impl.config_count) if impl.configuration(v)["feed"] == "float32"]
    assert fed and all(impl.config_label(v).count("feed=float32") == 1 for v in fed)
    for v in fed:
        own = v - next(k for k in range(impl.config_count) if impl.configuration(k)["feed"] == "float32")
        y_own, y_fed = (case.with_(variant=k).call(impl).y for k in (own, v))
        assert y_fed.dtype == np.float16 and np.array_equal(y_own, y_fed, equal_nan=True), impl.config_label(v)
        r = PROPERTIES["agreement"](impl, case.with_(variant=v))
        assert r.verdict == "pass", r.message


def test_a_record_with_an_infinite_worst_configuration_is_valid_json():
    from normcheck.audit.records import Record

    rec = Record(
        "jax/layer_norm/linen/jit", "jax", "0", "layer_norm", "linen", "channels_first", "jit", "", "float32",
        "agreement", "finding", observed=float("inf"),
        configs={"defaults": {"examples": 2, "worst": float("inf"), "deviations": 1}},
    )  # fmt: skip
    doc = json.loads(json.dumps(rec.to_json(), allow_nan=False))
    assert doc["configs"]["defaults"]["worst"] == "inf" and doc["observed"] == "inf"


def test_the_report_shows_each_record_and_matrix_cell_by_configuration():
    pytest.importorskip("jinja2", reason="the report needs jinja2 (pip install 'normcheck[report]')")
    from normcheck.report.view import build

    def rec(prop, verdict, configs):
        return {
            "impl": "jax/layer_norm/linen/jit", "framework": "jax", "version": "0.10.2", "norm": "layer_norm",
            "form": "linen", "layout": "channels_first", "mode": "jit", "api": "flax.linen.LayerNorm",
            "dtype": "float32", "property": prop, "verdict": verdict, "observed": 2e4, "allowed": 16,
            "examples": 15, "message": "output: observed 2e4 u·s", "finding": "flax-fast-variance",
            "configs": configs,
        }  # fmt: skip

    doc = {
        "schema": "normcheck.audit/1",
        "run": {"profile": "ci", "seed": 0},
        "summary": {},
        "records": [
            rec("agreement", "finding", {"defaults": {"examples": 9, "worst": 2e4, "deviations": 3},
                                         "use_fast_variance=False": {"examples": 6, "worst": 0.98, "deviations": 0}}),
            rec("statistics", "pass", {"defaults": {"examples": 9, "worst": 1.5, "deviations": 0},
                                       "use_fast_variance=False": {"examples": 6, "worst": "inf", "deviations": 2}}),
        ],
    }  # fmt: skip
    view = build(doc)
    (group,) = [g for g in view["groups"] if g["norm"] == "layer_norm"]
    by = {c["config"]: c for c in group["configs"]}
    assert by["defaults"]["examples"] == "18" and by["defaults"]["deviations"] == "3"
    assert by["use_fast_variance=False"]["deviations"] == "2"
    assert "by configuration: defaults 3 of 18 deviating" in group["title"]
    card = next(r for r in view["issues"] if r["property"] == "agreement")
    assert [c["config"] for c in card["configs"]] == ["defaults", "use_fast_variance=False"]


def test_axis_spellings_name_the_same_set():
    from normcheck.adapters.base import spell_axes

    assert spell_axes((-2, -1), 3, "negative") == (-2, -1)
    assert spell_axes((-2, -1), 3, "positive") == (1, 2)
    assert spell_axes((2, 1), 3, "descending") == (2, 1)
    assert spell_axes((1, -1), 4, "descending") == (3, 1)
    with pytest.raises(ValueError, match="unknown axis spelling"):
        spell_axes((1,), 2, "sideways")


@pytest.mark.parametrize(
    "impl_id", ["jax/layer_norm/linen/jit", "jax/rms_norm/nnx/jit", "jax/instance_norm/standardize/jit"]
)
def test_every_axis_spelling_of_a_multi_axis_set_gives_a_correct_result(jax_impls, impl_id):
    """The same axis set spelled negative, positive and descending: each configuration passes."""
    from normcheck.properties import PROPERTIES

    impl = jax_impls[impl_id]
    spellings = set()
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 2)).astype(np.float32)
    args = (
        {"eps": 1e-5, "use_input_stats": True} if "instance" in impl_id else {"normalized_shape": (4, 2), "eps": 1e-5}
    )
    for v in range(impl.config_count):
        spellings.add(impl.configuration(v).get("axis_spelling"))
        r = PROPERTIES["agreement"](impl, Case(impl.norm, x, args, variant=v))
        assert r.verdict == "pass", (impl.config_label(v), r.message)
    assert spellings >= {"negative", "positive", "descending"}


def test_torch_natives_also_run_under_torch_compile_as_an_extended_mode():
    """Each functional torch norm has a ``compiled`` twin (inductor on CPU), audited by the thorough
    profile and ``--all-forms``: its forward and VJP agree with the reference; AOTAutograd has no
    double backward, which the second order says rather than reporting a raise."""
    pytest.importorskip("torch", reason="torch is not installed")
    from normcheck import adapters
    from normcheck.properties import PROPERTIES

    impls = {i.id: i for i in adapters.get("torch").implementations() if i.mode == "compiled"}
    assert set(impls) == {
        f"torch/{n}/functional/compiled"
        for n in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
    }
    assert all(i.extended and i.api.startswith("torch.compile(") for i in impls.values())
    impl = impls["torch/layer_norm/functional/compiled"]
    case = Case(
        "layer_norm", np.array([[0.0, 1.0, 3.0], [2.0, -1.0, 0.5]], np.float32), {"normalized_shape": (3,), "eps": 1e-5}
    )
    for prop in ("agreement", "gradient_agreement"):
        r = PROPERTIES[prop](impl, case)
        assert r.verdict == "pass", r.message
    r = PROPERTIES["gradient_second_order"](impl, case)
    assert r.verdict == "skip" and "double backward" in r.message


@pytest.mark.parametrize("impl_id", ["jax/layer_norm/linen/jit", "jax/batch_norm/nnx/jit"])
def test_flax_param_dtype_float32_is_a_configuration_of_16_bit_cases(jax_impls, impl_id):
    """``param_dtype=float32`` with a 16-bit ``dtype`` (Flax's default split, variant 0): the parameters
    are float32 (their gradient comes back in float32); ``param_dtype=input`` keeps them 16-bit; the
    output is judged in 16 bits either way and agrees; a float32 case's options are the same."""
    import ml_dtypes

    from normcheck import autodiff
    from normcheck.adapters import jax as ja
    from normcheck.properties import PROPERTIES

    impl = jax_impls[impl_id]
    assert impl.configs[-1] == ja.PARAM_DTYPE_CONFIG
    v = next(k for k in range(impl.config_count) if impl.config_label(k) == "param_dtype=input")
    rng = np.random.default_rng(2)
    bf = ml_dtypes.bfloat16
    x, w, b = (rng.standard_normal(s).astype(bf) for s in ((3, 4), (4,), (4,)))
    args = {"normalized_shape": (4,)} if impl.norm == "layer_norm" else {"training": True, "momentum": 0.1}
    case = Case(impl.norm, x, {**args, "eps": 1e-3}, weight=w, bias=b)
    dy = rng.standard_normal((3, 4)).astype(bf)
    split, own = (autodiff.vjp(impl, case.with_(variant=k), dy) for k in (0, v))
    assert own["weight"].dtype == bf and split["weight"].dtype == np.float32
    for k in (0, v):
        r = PROPERTIES["agreement"](impl, case.with_(variant=k))
        assert r.verdict == "pass", r.message
    assert ja.reduction_options({"param_dtype": "float32"}, (), 2, np.float32) == {}
