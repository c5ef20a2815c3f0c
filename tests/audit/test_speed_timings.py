"""`normcheck audit --timings`: where the time went, per framework process and per property, printed
and kept in the document's optional `timings`; without the option the document has none."""

from __future__ import annotations

import json

from normcheck import audit, cli

ARGS = ["audit", "--frameworks", "numpy", "--norms", "layer_norm,rms_norm", "--properties", "agreement,statistics"]
ARGS += ["--profile", "quick", "--max-examples", "3", "--jobs", "1", "--quiet"]


def test_timings_add_up_to_the_records_and_the_run(tmp_path, capsys):
    out = tmp_path / "a.json"
    cli.main([*ARGS, "--timings", "--json", str(out)])
    doc = json.loads(out.read_text())
    t = doc["timings"]
    (proc,) = t["processes"]
    assert proc["framework"] == "numpy" and proc["process"] == 0
    assert 0 <= proc["start"] <= proc["end"] <= doc["run"]["seconds"] + 0.01
    assert abs(proc["end"] - proc["start"] - proc["setup_s"] - proc["checks_s"] - proc["conventions_s"]) < 0.01
    in_records = {}
    for r in doc["records"]:
        in_records[r["property"]] = in_records.get(r["property"], 0.0) + r["seconds"]
    assert set(t["properties"]["numpy"]) == {"agreement", "statistics"}
    for prop, seconds in in_records.items():
        assert abs(t["properties"]["numpy"][prop] - seconds) < 0.01
    assert sum(in_records.values()) <= proc["checks_s"] + 0.01
    printed = capsys.readouterr().out
    assert "where the time went" in printed and "seconds in checks, per property" in printed
    row = next(line.split() for line in printed.splitlines() if line.split()[:1] == ["statistics"])
    assert float(row[1]) == round(t["properties"]["numpy"]["statistics"], 1)


def test_without_the_option_the_document_has_no_timings():
    doc = audit.run_audit(
        frameworks=["numpy"], norms=["layer_norm"], properties=["agreement"], run=audit.Run("quick", max_examples=2)
    )
    assert "timings" not in doc and doc["summary"]["pass"] == 2


def test_jax_alone_runs_in_its_two_processes_with_the_records_of_one():
    """An audit of JAX alone (as the seed sweep runs it) uses JAX's two processes, not one serial
    process, and gets the serial run's records."""
    import pytest

    pytest.importorskip("flax")
    from normcheck.profiles import Run

    kw = dict(frameworks=["jax"], norms=["rms_norm", "layer_norm"], properties=["agreement"], dtypes=["float32"])
    run = Run("quick", seed=0, max_examples=2)
    serial = audit.run_audit(run=run, workers=1, timed=True, **kw)
    parallel = audit.run_audit(run=run, workers=2, timed=True, **kw)
    assert sorted(p["process"] for p in parallel["timings"]["processes"]) == [0, 1]  # in the order they end
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in serial["records"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in parallel["records"]]
    assert len(strip) >= 4 and all(r["verdict"] in ("pass", "finding") for r in strip)
