"""`normcheck audit --shard i/n` runs a deterministic, balanced share of the checks, and the n
documents merge (`normcheck report a.json b.json ...`) into exactly the records of one run; audits of
other runs are compared side by side."""

from __future__ import annotations

import json

import pytest

from normcheck import adapters, audit, cli

FRAMEWORKS = ["numpy", "torch"] if adapters.get("torch").available() else ["numpy"]
ARGS = ["--profile", "ci", "--seed", "0", "--norms", "layer_norm,group_norm,batch_norm", "--dtypes", "float32"]
ARGS += ["--frameworks", ",".join(FRAMEWORKS), "--properties", "agreement,contracts,shift_invariance,identity"]
ARGS += ["--jobs", "1", "--quiet"]


def _strip(doc):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in doc["records"]]


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    out = {}
    for name, extra in [("whole", []), *((f"s{i}", ["--shard", f"{i}/3"]) for i in (1, 2, 3))]:
        path = tmp / f"{name}.json"
        assert cli.main(["audit", *ARGS, *extra, "--json", str(path)]) == 0
        out[name] = json.loads(path.read_text())
    return tmp, out


def test_three_shards_merge_to_the_unsharded_records(docs, capsys):
    tmp, d = docs
    shards = [d["s1"], d["s2"], d["s3"]]
    assert all(s["records"] for s in shards)  # each shard ran something
    assert sum(len(s["records"]) for s in shards) == len(d["whole"]["records"])
    merged = audit.merge([d["s2"], d["s3"], d["s1"]])  # any order
    assert _strip(merged) == _strip(d["whole"])
    assert merged["summary"] == d["whole"]["summary"]
    assert merged["conventions"] == d["whole"]["conventions"]
    out = tmp / "merged.json"
    argv = ["report", *(str(tmp / f"s{i}.json") for i in (1, 2, 3)), "--json-out", str(out)]
    assert cli.main(argv) == 0
    assert _strip(json.loads(out.read_text())) == _strip(d["whole"])


def test_the_split_is_deterministic_and_balanced(docs):
    _, d = docs
    sizes = [len(d[f"s{i}"]["records"]) for i in (1, 2, 3)]
    kw = dict(frameworks=FRAMEWORKS, norms=["layer_norm", "group_norm", "batch_norm"], dtypes=["float32"])
    kw |= dict(properties=["agreement", "contracts", "shift_invariance", "identity"], run=audit.Run("ci"))
    planned = [sum(audit.plan(**kw, shard=(i, 3)).values()) for i in (1, 2, 3)]
    assert planned == sizes  # the plan is the split the runs made
    per_impl: dict[str, int] = {}
    for r in d["whole"]["records"]:
        per_impl[r["impl"]] = per_impl.get(r["impl"], 0) + 1
    assert max(sizes) - min(sizes) <= max(per_impl.values())  # greedy by whole implementations


def test_missing_or_repeated_shards_are_refused(docs):
    _, d = docs
    with pytest.raises(ValueError, match=r"shards 1\.\.n"):
        audit.merge([d["s1"], d["s2"]])
    with pytest.raises(ValueError, match=r"shards 1\.\.n"):
        audit.merge([d["s1"], d["s1"], d["s3"]])


def test_other_runs_are_compared_side_by_side(docs):
    _, d = docs
    other = json.loads(json.dumps(d["whole"]))
    other["run"]["environment"]["frameworks"]["numpy"]["version"] = "0.0-other"
    flipped = next(r for r in other["records"] if r["verdict"] == "pass")
    flipped["verdict"] = "fail"
    doc = audit.merge([d["whole"], other])
    assert [r["run"] for r in doc["records"]] == [0] * len(d["whole"]["records"]) + [1] * len(other["records"])
    key = f"{flipped['impl']} | {flipped['property']} | {flipped['dtype']}"
    assert doc["compare"][key] == ["pass", "fail"]
    assert len(doc["run"]["runs"]) == 2
    pytest.importorskip("jinja2")
    from normcheck.report import render_html

    html = render_html(doc)
    assert "Runs compared" in html and flipped["impl"] in html and "0.0-other" in html
