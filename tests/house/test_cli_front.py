"""The command line's front: what the help names, the lists it shares with the package, and a
document `normcheck report` refuses with one line (exit 2)."""

from __future__ import annotations

import json

import pytest

from normcheck import adapters, cli, profiles


def test_the_cli_lists_are_the_packages(capsys):
    assert set(cli.PROFILES) == set(profiles.PROFILES)
    with pytest.raises(SystemExit):
        cli.main(["audit", "--help"])
    assert ",".join(adapters.FRAMEWORKS) in capsys.readouterr().out  # --frameworks: the adapters' list


def test_top_level_help_names_onnx_runtime(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "ONNX Runtime" in " ".join(capsys.readouterr().out.split())


def test_check_help_says_where_onnx_runtime_is_checked(capsys):
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "ONNX Runtime" in out and "--frameworks onnxruntime" in out


def test_report_refuses_a_bench_document_in_one_line(tmp_path, capsys):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"schema": "normcheck.bench/1", "results": []}))
    assert cli.main(["report", str(bench), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "normcheck.bench/1" in err[0] and "not an audit" in err[0]
    assert not (tmp_path / "r.html").exists()
