"""The version matrix (scripts/matrix.py): its plan (what it would build and run, installing
nothing), the registry updater that writes observed_in/absent_in and nothing else, the ranges it
derives from audit documents, and the audit's warning when a finding is met (or not) outside them."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest

from normcheck import findings
from normcheck.audit import records
from normcheck.commands import audit as audit_cmd

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("normcheck_matrix_script", ROOT / "scripts" / "matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


matrix = _load_script()

REGISTRY = """\
# A registry (comments stay).

[[finding]]
id = "fast"
package = "flax"
versions = ">=0.8"
impl = ["jax/layer_norm/linen*",
        "jax/layer_norm/nnx*"]  # two globs
property = "*"
explanation = "one pass"
observed = "returns 158"

# between the tables

[[finding]]
id = "grad"
package = "jax"
versions = ">=0.4.30"
impl = ["jax/*", "tensorflow/layer_norm/keras/compiled"]
property = "gradient_*"
explanation = "rsqrt"
observed_in = ["0.4.38"]
absent_in = [
    "0.6.2",
    "0.10.2",
]

[[finding.also]]
framework = "tensorflow"
package = "tensorflow"
versions = ">=2.16"
observed = "keras"
"""


# --- the registry updater ---------------------------------------------------------------------------


def test_update_adds_the_keys_after_the_tables_last_key_and_touches_nothing_else():
    out = matrix.update_registry(REGISTRY, {("fast", "jax"): (["0.10.2", "0.12.8"], ["0.9.0"])})
    added = [ln for ln in out.splitlines() if ln not in REGISTRY.splitlines()]
    assert added == ['observed_in = ["0.10.2", "0.12.8"]', 'absent_in = ["0.9.0"]']
    lines = out.splitlines()
    assert lines[lines.index('observed = "returns 158"') + 1] == added[0]  # right after the table's last key
    assert lines[lines.index(added[1]) + 2] == "# between the tables"  # the blank line and comment stay
    for ln in REGISTRY.splitlines():
        assert ln in lines
    parsed = tomllib.loads(out)["finding"][0]
    assert parsed["observed_in"] == ["0.10.2", "0.12.8"] and parsed["absent_in"] == ["0.9.0"]


def test_update_merges_with_recorded_versions_and_moves_a_version_between_the_lists():
    ranges = {("grad", "jax"): (["0.6.2"], ["0.11.0"]), ("grad", "tensorflow"): (["2.21.0"], ["2.17.1"])}
    out = matrix.update_registry(REGISTRY, ranges)
    grad = tomllib.loads(out)["finding"][1]
    assert grad["observed_in"] == ["0.4.38", "0.6.2"]  # 0.6.2 now observed: it leaves absent_in
    assert grad["absent_in"] == ["0.10.2", "0.11.0"]  # sorted as versions, not as text
    assert grad["also"][0]["observed_in"] == ["2.21.0"] and grad["also"][0]["absent_in"] == ["2.17.1"]
    assert 'absent_in = ["0.10.2", "0.11.0"]' in out.splitlines()  # the multi-line value, rewritten on one line
    assert out.splitlines()[-3:] == ['observed = "keras"', 'observed_in = ["2.21.0"]', 'absent_in = ["2.17.1"]']
    again = matrix.update_registry(out, ranges)
    assert again == out  # idempotent


def test_update_refuses_a_finding_or_framework_the_registry_lacks():
    with pytest.raises(ValueError, match="no table"):
        matrix.update_registry(REGISTRY, {("nope", "jax"): (["1"], [])})
    with pytest.raises(ValueError, match="no table"):
        matrix.update_registry(REGISTRY, {("fast", "torch"): (["1"], [])})


def test_update_of_the_real_registry_only_adds_those_keys():
    text = (ROOT / "specs" / "findings.toml").read_text()
    ranges = {}
    for f in findings.load(str(ROOT / "specs" / "findings.toml")):
        for p in f.parts:
            ranges[(f.id, p.framework)] = (["99.0"], ["98.0"])
    out = matrix.update_registry(text, ranges)
    old, new = text.splitlines(), out.splitlines()
    assert [ln for ln in old if ln not in new] == [] or all(
        ln.startswith(("observed_in", "absent_in")) for ln in old if ln not in new
    )
    assert all(ln.startswith(("observed_in", "absent_in")) for ln in new if ln not in old)
    assert [ln for ln in new if not ln.startswith(("observed_in", "absent_in"))] == [
        ln for ln in old if not ln.startswith(("observed_in", "absent_in"))
    ]


# --- ranges from documents --------------------------------------------------------------------------


def _rec(impl, prop="agreement", dtype="float32", verdict="pass", finding=None):
    return {"impl": impl, "framework": impl.split("/")[0], "property": prop, "dtype": dtype, "verdict": verdict}


def _doc(*recs):
    out = []
    for r in recs:
        r = dict(r)
        r.setdefault("finding", None)
        out.append(r)
    return {"run": {"environment": {"frameworks": {}}}, "records": out}


def test_verified_ranges_from_documents(tmp_path):
    reg = tmp_path / "findings.toml"
    reg.write_text(REGISTRY)
    hit = {**_rec("jax/layer_norm/linen/eager"), "verdict": "finding", "finding": "fast"}
    runs = [
        (_doc(hit, _rec("jax/layer_norm/standardize")), {"flax": "0.10.2", "jax": "0.4.38"}),
        (_doc(_rec("jax/layer_norm/linen/eager")), {"flax": "0.12.8", "jax": "0.10.2"}),  # ran, not met
        (_doc(_rec("jax/layer_norm/linen/eager", verdict="skip")), {"flax": "0.11.2", "jax": "0.6.2"}),  # did not run
        (_doc(_rec("tensorflow/layer_norm/keras/eager")), {"tensorflow-cpu": "2.21.0"}),
    ]
    ranges = matrix.verified_ranges(runs, registry=str(reg))
    assert ranges[("fast", "jax")] == (["0.10.2"], ["0.12.8"])
    assert ("grad", "jax") not in ranges  # no gradient check ran
    assert ("grad", "tensorflow") not in ranges  # the compiled LayerNorm's gradients never ran
    # one flax release met in one set and not in another (other packages differ): not recorded
    same_flax = (_doc(_rec("jax/layer_norm/linen/eager")), {"flax": "0.10.2", "jax": "0.4.30"})
    assert matrix.mixed([*runs, same_flax], registry=str(reg)) == {("fast", "jax"): ["0.10.2"]}
    assert ("fast", "jax") not in matrix.verified_ranges([*runs, same_flax], registry=str(reg))
    # never met by any run: its absence says only that the examples did not reach it
    assert matrix.verified_ranges(runs[1:], registry=str(reg)) == {}


def test_a_finding_that_explained_examples_of_a_record_labelled_with_another_is_met(tmp_path):
    reg = tmp_path / "findings.toml"
    reg.write_text(REGISTRY)
    # the record's label is the finding of its smallest hit ("grad"); "fast" explained two other examples
    both = {
        **_rec("jax/layer_norm/linen/eager"),
        "verdict": "finding",
        "finding": "grad",
        "explained": {"grad": 1, "fast": 2},
    }
    runs = [
        (_doc(both), {"flax": "0.10.2", "jax": "0.4.38"}),
        (_doc(_rec("jax/layer_norm/linen/eager")), {"flax": "0.12.8", "jax": "0.10.2"}),
    ]
    assert matrix.verified_ranges(runs, registry=str(reg))[("fast", "jax")] == (["0.10.2"], ["0.12.8"])
    assert matrix.met(both, "fast") and matrix.met(both, "grad")
    assert not matrix.met({**both, "verdict": "skip"}, "fast")  # a skipped check meets nothing
    assert not matrix.met({**both, "explained": {"fast": 0}, "finding": "grad"}, "fast")
    old = {k: v for k, v in both.items() if k != "explained"}  # a document from before `explained`
    assert matrix.met(old, "grad") and not matrix.met(old, "fast")


def test_a_set_outside_the_findings_range_counts_neither_way(tmp_path):
    reg = tmp_path / "findings.toml"
    reg.write_text(REGISTRY)
    runs = [(_doc(_rec("jax/layer_norm/linen/eager")), {"flax": "0.7.5"})]  # versions = ">=0.8"
    assert matrix.verified_ranges(runs, registry=str(reg)) == {}


# --- the audit's range warnings --------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path, monkeypatch):
    reg = tmp_path / "findings.toml"
    reg.write_text(
        REGISTRY.replace('observed = "returns 158"', 'observed_in = ["0.10.2", "0.11.2"]\nabsent_in = ["0.9.0"]')
    )
    loaded = findings.load(str(reg))
    monkeypatch.setattr(findings, "load", lambda path=None: loaded)
    installed = {}
    monkeypatch.setattr(findings, "_installed", lambda package: installed.get(package))
    return installed


def test_the_registry_loads_the_ranges(registry):
    fast, grad = findings.load()
    assert fast.observed_in == ("0.10.2", "0.11.2") and fast.absent_in == ("0.9.0",)
    assert fast.parts[0].observed_in == ("0.10.2", "0.11.2")
    assert grad.part("tensorflow").observed_in == () and grad.part("jax").absent_in == ("0.6.2", "0.10.2")


def test_a_hit_on_a_version_recorded_absent_is_possibly_a_regression(registry):
    registry["flax"] = "0.9.0"
    recs = [{**_rec("jax/layer_norm/linen/eager"), "verdict": "finding", "finding": "fast"}]
    (line,) = findings.range_warnings(recs)
    assert line.startswith("fast: met on flax 0.9.0") and "possibly a regression" in line


def test_no_hit_on_a_newer_version_whose_checks_ran_is_possibly_fixed(registry):
    registry["flax"] = "0.13.0"
    recs = [_rec("jax/layer_norm/linen/eager", finding=None) | {"finding": None}]
    (line,) = findings.range_warnings(recs)
    assert "not met on flax 0.13.0" in line and "last 0.11.2" in line and "possibly fixed" in line
    assert findings.range_warnings(recs, complete=False) == []  # one shard cannot tell
    skipped = [{**recs[0], "verdict": "skip"}]
    assert findings.range_warnings(skipped) == []  # its checks did not run: nothing to say


def test_a_finding_met_beside_the_one_a_record_is_filed_under_is_met(registry):
    registry["flax"] = "0.9.0"
    other = {**_rec("jax/layer_norm/linen/eager"), "verdict": "finding", "finding": "grad", "explained": {"grad": 3}}
    assert findings.range_warnings([other]) == []  # filed under "grad" alone: "fast" not met
    both = {**other, "explained": {"grad": 3, "fast": 1}}  # its examples met "fast" too
    (line,) = findings.range_warnings([both])
    assert line.startswith("fast: met on flax 0.9.0") and "possibly a regression" in line


def test_a_hit_outside_the_observations_and_the_quiet_cases(registry):
    hit = [{**_rec("jax/layer_norm/linen/eager"), "verdict": "finding", "finding": "fast"}]
    registry["flax"] = "0.12.8"
    (line,) = findings.range_warnings(hit)
    assert "outside its recorded observations" in line and "0.10.2 to 0.11.2" in line
    registry["flax"] = "0.11.2"
    assert findings.range_warnings(hit) == []  # met where it was observed
    assert findings.range_warnings([{**hit[0], "verdict": "pass", "finding": None}]) == []  # not newer
    registry["flax"] = "0.11.2+local"
    assert findings.range_warnings(hit) == []  # local labels compare as the public version
    assert findings.range_warnings([_rec("torch/layer_norm/functional")]) == []  # no framework of it ran


def test_the_document_carries_the_warnings_and_the_audit_prints_them(registry, capsys):
    registry["flax"] = "0.9.0"
    rec = records.Record(
        impl="jax/layer_norm/linen/eager",
        framework="jax",
        version="0.4.30",
        norm="layer_norm",
        form="linen",
        layout="",
        mode="eager",
        api="flax.linen.LayerNorm",
        dtype="float32",
        property="agreement",
        verdict="finding",
        finding="fast",
    )
    doc = records.document([rec], profile="ci", seed=0, started=0.0)
    assert len(doc["warnings"]) == 1 and "possibly a regression" in doc["warnings"][0]
    assert set(doc["records"][0]) == set(rec.to_json())  # records keep their keys
    assert doc["findings"][0]["verified"] == {
        "jax": {"package": "flax", "observed_in": ["0.10.2", "0.11.2"], "absent_in": ["0.9.0"]}
    }
    audit_cmd._print_warnings(doc)
    out = capsys.readouterr().out
    assert "version-range warnings" in out and "! fast: met on flax 0.9.0" in out


# --- the plan ---------------------------------------------------------------------------------------


def test_the_default_plan_covers_four_flax_three_keras_two_onnxruntime(tmp_path):
    opts = matrix.options(["--envs", str(tmp_path / "envs"), "--out", str(tmp_path / "out"), "--installer", "uv"])
    steps = matrix.plan(matrix.select(), opts)
    by_fw = {}
    for s in steps:
        by_fw.setdefault(s.set.framework, []).append(s.set.name)
    assert len(by_fw["jax"]) == 4 and len(by_fw["tensorflow"]) == 3 and len(by_fw["onnxruntime"]) == 2
    assert "torch" not in by_fw  # only on request: one CPU build here
    flax = steps[0]
    assert flax.env == tmp_path / "envs" / flax.set.name
    assert flax.create[1:3] == ["venv", "--quiet"]
    assert "-e" in flax.install and str(ROOT) in flax.install and "flax==0.10.2" in flax.install
    assert any(a.startswith("hypothesis==") for a in flax.install)  # the same draws in every environment
    assert flax.audit[0] == str(tmp_path / "envs" / flax.set.name / "bin" / "normcheck")
    assert flax.audit[1:7] == ["audit", "--frameworks", "jax", "--profile", "ci", "--seed"]
    assert flax.audit[-2:] == ["--json", str(tmp_path / "out" / "flax-0.10.2.json")]
    assert not (tmp_path / "envs").exists() and not (tmp_path / "out").exists()  # planning creates nothing


def test_plan_options_restrict_and_pass_through(tmp_path):
    argv = ["--frameworks", "jax", "--norms", "layer_norm", "--max-examples", "5", "--installer", "pip"]
    opts = matrix.options([*argv, "--envs", str(tmp_path)])
    steps = matrix.plan(matrix.select(frameworks=["jax"]), opts)
    assert [s.set.name for s in steps] == ["flax-0.10.2", "flax-0.11.2", "flax-0.12.1", "flax-0.12.8"]
    s = steps[0]
    assert s.create == [sys.executable, "-m", "venv", str(tmp_path / "flax-0.10.2")]
    assert s.install[:4] == [str(tmp_path / "flax-0.10.2" / "bin" / "python"), "-m", "pip", "install"]
    i = s.audit.index("--norms")
    assert s.audit[i : i + 2] == ["--norms", "layer_norm"] and "--max-examples" in s.audit
    torch = matrix.select(names=["torch-2.13.0"])
    assert [t.pins for t in torch] == [("torch==2.13.0",)]
    extra = matrix.parse_set("flax-0.11.0=jax:flax==0.11.0,jax==0.6.0")
    assert extra == matrix.VersionSet("flax-0.11.0", "jax", ("flax==0.11.0", "jax==0.6.0"))
    assert [x.name for x in matrix.select(names=["flax-0.12.8"], extra=[extra])] == ["flax-0.12.8", "flax-0.11.0"]
    with pytest.raises(ValueError, match="unknown set"):
        matrix.select(names=["flax-9"])
    with pytest.raises(Exception, match="NAME=FRAMEWORK"):
        matrix.parse_set("flax==0.11.0")


def test_plan_command_prints_json_and_installs_nothing(tmp_path, capsys):
    argv = ["--plan", "--json-plan", "--envs", str(tmp_path / "e"), "--out", str(tmp_path / "o"), "--sets"]
    assert matrix.main([*argv, "onnxruntime-1.32.0,keras-3.15.1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [p["set"] for p in plan] == ["onnxruntime-1.32.0", "keras-3.15.1"]
    assert plan[0]["status"] == "planned" and "--frameworks" in plan[0]["audit"]
    assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


def test_a_set_that_cannot_be_installed_is_reported_not_fatal(tmp_path):
    opts = matrix.options(["--envs", str(tmp_path / "e"), "--out", str(tmp_path / "o")])
    (step,) = matrix.plan(matrix.select(names=["onnxruntime-1.32.0"]), opts)
    step.create = [sys.executable, "-c", "pass"]
    step.install = [sys.executable, "-c", "import sys; print('× No solution found: onnxruntime==0.0'); sys.exit(1)"]
    matrix.execute(step, opts)
    assert step.status == "install failed" and "No solution found" in step.message
    assert "install failed" in matrix.set_label(step)


def test_merge_lists_a_set_that_did_not_run_among_the_runs(tmp_path):
    opts = matrix.options(["--envs", str(tmp_path / "e"), "--out", str(tmp_path), "--slim"])
    a, b, bad = matrix.plan(
        [
            matrix.VersionSet("np-a", "numpy", ("numpy==2.4.6",)),
            matrix.VersionSet("np-b", "numpy", ("numpy==2.4.6",)),
            matrix.VersionSet("np-bad", "numpy", ("numpy==0.0",)),
        ],
        opts,
    )
    fields = dict(norm="layer_norm", form="f", layout="", mode="", api="", dtype="float32", property="agreement")
    for step, verdict in ((a, "pass"), (b, "fail")):
        rec = records.Record(impl="numpy/layer_norm/f", framework="numpy", version="2.4.6", verdict=verdict, **fields)
        skip = records.Record(impl="numpy/layer_norm/g", framework="numpy", version="2.4.6", verdict="skip", **fields)
        step.document.write_text(json.dumps(records.document([rec, skip], profile="ci", seed=0, started=0.0)))
        step.status, step.packages = "ok", {"numpy": "2.4.6"}
    bad.status, bad.message = "install failed", "error: No solution found"
    assert matrix.merge([a, b, bad], opts) == 0
    merged = json.loads(Path(opts.json_out).read_text())
    labels = [r["label"] for r in merged["run"]["runs"]]
    assert labels[0].endswith("set np-a: numpy 2.4.6") and labels[1].endswith("set np-b: numpy 2.4.6")
    assert labels[2] == "not run: np-bad (numpy==0.0): install failed: error: No solution found"
    assert [m["status"] for m in merged["matrix"]] == ["ok", "ok", "install failed"]
    assert merged["compare"]["numpy/layer_norm/f | agreement | float32"] == ["pass", "fail"]
    assert merged["differ"] == {"numpy/layer_norm/f | agreement | float32": ["pass", "fail"]}
    assert all(r["verdict"] != "skip" for r in merged["records"])  # --slim
    assert merged["summary"]["skip"] == 2  # the counts stay
    html = Path(opts.html).read_text()
    assert "not run: np-bad" in html and "Runs compared" in html


def test_differing_ignores_runs_that_lack_the_check():
    table = {"a": ["pass", "pass", None], "b": [None, "fail", "pass"], "c": [None, None, "error"]}
    assert matrix.differing(table) == {"b": [None, "fail", "pass"]}
