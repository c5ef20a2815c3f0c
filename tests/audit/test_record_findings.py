"""A record tells what was measured: every finding its examples met, how many each explained, and the
worst error over the examples no finding explains; the report groups the checks by finding."""

from __future__ import annotations

import json

import pytest

from normcheck.audit.driver import run_check
from normcheck.profiles import Run


@pytest.fixture(scope="module")
def standardize():
    pytest.importorskip("jax", reason="needs jax")
    from normcheck.adapters import get

    return next(i for i in get("jax").implementations() if i.id == "jax/layer_norm/standardize/jit")


def test_a_record_lists_the_findings_it_met_and_the_worst_of_the_other_examples(standardize):
    rec = run_check(standardize, "gradient_agreement", "float32", Run("ci", 0))
    assert rec.verdict == "finding"
    assert rec.explained and all(n >= 1 for n in rec.explained.values())
    assert "jax-standardize-fast-variance" in rec.explained or "float32-sum-of-squares-overflow" in rec.explained
    assert sum(rec.explained.values()) < rec.examples  # the other examples were judged on their own
    assert 0 < rec.unexplained_worst < 16  # and they pass: the finding hides no measured error
    doc = json.loads(json.dumps(rec.to_json(), allow_nan=False))
    assert doc["explained"] == rec.explained
    # each finding's worst hit over λ where it alone explains an example: above 1 (it deviated)
    assert set(rec.explained_worst) <= set(rec.explained) and rec.explained_worst
    assert all(w > 1 for w in rec.explained_worst.values())
    if isinstance(rec.observed, float) and rec.observed == rec.observed and rec.finding in rec.explained_worst:
        assert rec.explained_worst[rec.finding] >= rec.observed / rec.allowed * (1 - 1e-12)


def test_the_seed_table_reads_every_finding_a_record_met():
    """scripts/seed_sweep.py's margins come from every finding a record explained, not only the
    record's first (a record met by two findings shows both), and a NaN/inf hit counts as inf."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "scripts" / "seed_sweep.py"
    spec = importlib.util.spec_from_file_location("seed_sweep", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a, b = "flax-fast-variance", "float32-sum-of-squares-overflow"
    recs = [
        {"finding": a, "explained": {a: 3, b: 1}, "explained_worst": {a: 40.0, b: "inf"}},
        {"finding": a, "explained": {a: 1}, "explained_worst": {a: 900.0}},
    ]
    table = mod.margins({0: {"records": recs}, 1: {"records": recs[:1]}})
    assert table[a] == {0: 900.0, 1: 40.0}
    assert table[b] == {0: float("inf"), 1: float("inf")}


def test_the_report_groups_checks_by_finding(standardize):
    pytest.importorskip("jinja2", reason="the report needs jinja2")
    from normcheck.report.view import build

    recs = [run_check(standardize, p, "float32", Run("ci", 0)).to_json() for p in ("gradient_agreement", "agreement")]
    view = build({"schema": "normcheck.audit/1", "run": {"profile": "ci", "seed": 0}, "summary": {}, "records": recs})
    by = {g["id"]: g for g in view["by_finding"]}
    met = set().union(*(r.get("explained", {}) for r in recs))
    assert met and set(by) == met
    for fid, g in by.items():
        assert g["records"] == sum(fid in r.get("explained", {}) for r in recs)
        assert g["examples"] == sum(r.get("explained", {}).get(fid, 0) for r in recs)
        assert g["impls"] == "jax/layer_norm/standardize/jit"


def test_the_seed_table_says_why_a_finding_is_out_of_the_profiles_reach():
    import importlib.util
    import pathlib

    from normcheck import findings

    path = pathlib.Path(__file__).parents[2] / "scripts" / "seed_sweep.py"
    spec = importlib.util.spec_from_file_location("seed_sweep", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    by = {f.id: f for f in findings.load()}
    doc = {"run": {"profile": "ci", "environment": {"packages": {"keras": "3.15.1", "torch": "2.13.0"}}}}
    assert "float16 only" in mod.out_of_reach(by["torch-half-batch-norm-eps-underflow"], {0: doc})
    assert "outside <3.7" in mod.out_of_reach(by["keras-group-norm-16bit-compute"], {0: doc})
    assert mod.out_of_reach(by["momentum-weight-rounded-to-float32"], {0: doc}) == ""
    ran = {**doc, "records": [{"impl": "torch/layer_norm/functional"}]}
    assert "no implementation it names" in mod.out_of_reach(by["torch-compile-forward-mode-tangent-dropped"], {0: ran})
