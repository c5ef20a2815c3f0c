"""The audit's ``equivalence`` section (issue 27): every pair of implementations of a norm per dtype,
decided from the records by the triangle inequality where both pass, measured exactly on the
deviating side's case where one deviates (:mod:`normcheck.audit.equivalence`)."""

from __future__ import annotations

import json

import pytest

from normcheck import audit
from normcheck.audit import equivalence
from normcheck.case import Case

#: torch's float16 BatchNorm on a constant batch with a tiny eps (the finding
#: torch-half-batch-norm-eps-underflow: var + eps underflows in float16, 0/0).
CONSTANT = {
    "norm": "batch_norm",
    "regime": "near_constant",
    "args": {"eps": 4.8321745035644744e-11, "training": True},
    "input": {"shape": [6, 3, 3], "dtype": "float16", "values": [31.625] * 54},
    "weight": {"shape": [3], "dtype": "float16", "values": [1.134765625, -1.3310546875, -1.23046875]},
}


def _row(impl, verdict="pass", observed=1.0, prop="agreement", norm="layer_norm", dtype="float32", **kw):
    framework = impl.split("/")[0]
    return audit.Record(impl=impl, framework=framework, version=None, norm=norm, form="f", layout="channels_first",
                        mode="eager", api=impl, dtype=dtype, property=prop, verdict=verdict, observed=observed,
                        allowed=16.0, examples=10, **kw).to_json()  # fmt: skip


def test_two_passing_records_are_equivalent_by_the_triangle_inequality():
    """|a - b| <= |a - r| + |b - r| <= u s (o_a + o_b): in units of both bounds, (o_a + o_b) / 2."""
    sec = equivalence.section([_row("x/layer_norm/a", observed=3.0), _row("y/layer_norm/b", observed=9.0)])
    (pair,) = sec["norms"]["layer_norm"]["dtypes"]["float32"]["pairs"]
    assert pair["verdict"] == "equivalent" and pair["quantities"]["output"]["bound"] == 6.0
    assert pair["worst"] == 6.0 and pair["findings"] == [] and not pair["explained"]
    assert equivalence.lines({"equivalence": sec}) == ["layer_norm: 2 implementations, 1 pair: 1 equivalent"]


def test_a_registered_finding_is_a_difference_it_explains():
    rows = [
        _row("x/layer_norm/a"),
        _row("y/layer_norm/b"),
        _row("z/layer_norm/c", "finding", 500.0, finding="some-finding", counterexample={"norm": "layer_norm"}),
        _row("x/layer_norm/a", prop="gradient_agreement"),
        _row("y/layer_norm/b", prop="gradient_agreement", observed=2.0),
        _row("x/layer_norm/a", prop="statistics"),  # not a reference-judged quantity of the section
    ]
    sec = equivalence.section(rows)
    e = sec["norms"]["layer_norm"]
    assert (e["implementations"], e["pairs"], e["equivalent"], e["differ"], e["unexplained"]) == (3, 3, 1, 2, 0)
    assert e["findings"] == ["some-finding"]
    pairs = {(p["a"], p["b"]): p for p in e["dtypes"]["float32"]["pairs"]}
    ab = pairs[("x/layer_norm/a", "y/layer_norm/b")]
    assert set(ab["quantities"]) == {"output", "gradients"} and ab["quantities"]["gradients"]["bound"] == 1.5
    ac = pairs[("x/layer_norm/a", "z/layer_norm/c")]
    q = ac["quantities"]["output"]
    assert q["verdict"] == "differ" and not q["confirmed"] and q["case_of"] == "b" and ac["explained"]
    line = equivalence.lines({"equivalence": sec})[0]
    assert line == "layer_norm: 3 implementations, 3 pairs: 1 equivalent, 2 differ, all explained by 1 finding"


def test_a_new_deviation_is_unexplained():
    sec = equivalence.section([_row("x/layer_norm/a"), _row("y/layer_norm/b", "fail", 90.0)])
    assert sec["norms"]["layer_norm"]["unexplained"] == 1
    assert "1 not explained by a registered finding" in equivalence.lines({"equivalence": sec})[0]


def test_the_document_carries_the_section_and_stays_strict_json():
    doc = audit.document([_row("x/layer_norm/a"), _row("y/layer_norm/b")], profile="ci", seed=0, started=0.0)
    assert doc["equivalence"]["norms"]["layer_norm"]["equivalent"] == 1
    assert doc["equivalence"]["allowed"] == 16.0
    json.dumps(doc, allow_nan=False)


def test_refine_measures_the_deviating_case_exactly():
    """numpy's float32 BatchNorm and torch's float16 one on the finding's case: torch returns NaN
    where the reference (and numpy) give the bias: a confirmed, explained difference, with both values."""
    pytest.importorskip("torch", reason="torch is not installed")
    case = Case.from_json(CONSTANT)
    assert case.x.dtype.name == "float16"
    rows = [
        _row("numpy/batch_norm/float32", norm="batch_norm", dtype="float16", observed=0.3),
        _row(
            "torch/batch_norm/functional",
            "finding",
            1e30,
            norm="batch_norm",
            dtype="float16",
            finding="torch-half-batch-norm-eps-underflow",
            counterexample=CONSTANT,
        ),
        _row(
            "numpy/batch_norm/reference",
            "finding",
            1e30,
            norm="batch_norm",
            dtype="float16",
            finding="made-up",
            counterexample=CONSTANT,
        ),
    ]
    doc = audit.document(rows, profile="ci", seed=0, started=0.0)
    equivalence.refine(doc)
    pairs = {(p["a"], p["b"]): p for p in doc["equivalence"]["norms"]["batch_norm"]["dtypes"]["float16"]["pairs"]}
    q = pairs[("numpy/batch_norm/float32", "torch/batch_norm/functional")]["quantities"]["output"]
    assert q["confirmed"] and q["verdict"] == "differ" and q["observed"] == "inf" and q["mismatch"]
    assert q["a_vs_reference"] < 16 and q["b_vs_reference"] == "inf"
    assert len(q["a_values"]) == 54 and len(q["reference"]) == 54
    # the two NumPy implementations both give the reference on that case: equivalent once measured
    same = pairs[("numpy/batch_norm/float32", "numpy/batch_norm/reference")]
    assert same["verdict"] == "equivalent" and same["quantities"]["output"]["observed"] <= 16
    e = doc["equivalence"]["norms"]["batch_norm"]
    assert (e["equivalent"], e["differ"]) == (1, 2) and "replay_seconds" in doc["equivalence"]
    json.dumps(doc, allow_nan=False)


def test_the_report_shows_a_matrix_per_norm_and_a_card_per_differing_pair():
    pytest.importorskip("jinja2", reason="the report needs jinja2 (pip install 'normcheck[report]')")
    pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install 'normcheck[report]')")
    from normcheck.report import render_html, view

    rows = [
        _row("x/layer_norm/a", observed=3.0),
        _row("y/layer_norm/<b>", observed=5.0),
        _row("z/layer_norm/c", "finding", 500.0, finding="some-finding", counterexample=None),
    ]
    doc = audit.document(rows, profile="ci", seed=0, started=0.0)
    (e,) = view.equivalence_view(doc)
    assert e["norm"] == "layer_norm" and e["impls"] == ["x/layer_norm/a", "y/layer_norm/<b>", "z/layer_norm/c"]
    assert e["line"] == "3 implementations, 3 pairs: 1 equivalent, 2 differ, all explained by 1 finding"
    a_row = e["rows"][0]["cells"]
    assert a_row[0] is None and a_row[1]["cls"] == "pass" and a_row[1]["worst"] == "4"
    assert a_row[2]["cls"] == "finding" and a_row[2]["href"] == e["cards"][0]["id"]
    html = render_html(doc)
    assert 'id="equivalence"' in html and f'id="{e["cards"][0]["id"]}"' in html
    assert "y/layer_norm/&lt;b&gt;" in html and "y/layer_norm/<b>" not in html  # escaped
    assert "<code>some-finding</code>" in html


def test_the_audit_prints_a_line_per_norm_and_writes_the_section(tmp_path, capsys):
    from normcheck.cli import main

    path = tmp_path / "a.json"
    argv = ["audit", "--profile", "quick", "--frameworks", "numpy", "--norms", "layer_norm", "--dtypes", "float32"]
    assert main([*argv, "--properties", "agreement", "--json", str(path), "--quiet"]) == 0
    assert "layer_norm: 2 implementations, 1 pair: 1 equivalent" in capsys.readouterr().out
    doc = json.loads(path.read_text())
    (pair,) = doc["equivalence"]["norms"]["layer_norm"]["dtypes"]["float32"]["pairs"]
    assert pair["verdict"] == "equivalent" and 0 <= pair["quantities"]["output"]["bound"] <= 16
    assert "replay_seconds" in doc["equivalence"]


def test_a_side_that_raises_on_the_other_sides_case_differs_explained_by_its_raising_finding():
    """torch's GroupNorm raises on one value per group in training (ValueError) where NumPy's returns:
    the replay says so, and the registered raising finding of torch on that very case explains it
    (torch-group-norm-single-value-check), though torch's own records passed."""
    pytest.importorskip("torch", reason="torch is not installed")
    one = {"norm": "group_norm", "regime": "normal", "args": {"num_groups": 1, "eps": 1e-5},
           "input": {"shape": [1, 1], "dtype": "float32", "values": [0.5]}}  # fmt: skip
    rows = [
        _row("numpy/group_norm/float32", "finding", 100.0, norm="group_norm", finding="made-up", counterexample=one),
        _row("torch/group_norm/functional", norm="group_norm"),
    ]
    doc = audit.document(rows, profile="ci", seed=0, started=0.0)
    equivalence.refine(doc)
    (pair,) = doc["equivalence"]["norms"]["group_norm"]["dtypes"]["float32"]["pairs"]
    q = pair["quantities"]["output"]
    assert q["confirmed"] and q["verdict"] == "differ" and q["explained"]
    assert "torch-group-norm-single-value-check" in q["findings"]
    assert q["note"].startswith("b raises ValueError: Expected more than 1 value per channel")
    assert "not explained" not in equivalence.lines(doc)[0]


def test_running_buffers_replay_from_the_frameworks_initial_buffers():
    """A running_stats_steps counterexample without buffers starts from zeros and ones, momentum 0.1."""
    case = Case.from_json({**CONSTANT, "input": {**CONSTANT["input"], "dtype": "float32"}, "weight": None})
    step = equivalence.training_step(case)
    assert step.args["training"] and step.args["momentum"] == 0.1
    assert step.running_mean.tolist() == [0.0, 0.0, 0.0] and step.running_var.tolist() == [1.0, 1.0, 1.0]


def test_merged_shards_hold_every_pair_across_them():
    shards = []
    for i, row in enumerate([_row("x/layer_norm/a", observed=2.0), _row("y/layer_norm/b", observed=4.0)]):
        d = audit.document([row], profile="ci", seed=0, started=0.0)
        d["run"]["shard"], d["positions"] = f"{i + 1}/2", [i]
        assert d["equivalence"]["norms"]["layer_norm"]["pairs"] == 0  # one implementation per shard: no pair
        shards.append(d)
    merged = audit.merge(shards)
    (pair,) = merged["equivalence"]["norms"]["layer_norm"]["dtypes"]["float32"]["pairs"]
    assert pair["verdict"] == "equivalent" and pair["worst"] == 3.0
