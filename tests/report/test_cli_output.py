"""The terminal output of the commands stays quiet and readable: registered findings one line each,
a progress bar whose total is known before the first check (and nothing per record off a
terminal), no line wider than the terminal, no native log lines of the frameworks, no NumPy
floating-point warnings from the code under test, `check --quiet` only the summary."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from normcheck import cli
from normcheck.commands import audit as audit_cmd
from normcheck.commands import conventions as conventions_cmd

ROOT = Path(__file__).resolve().parents[2]
DOUBLES = str(Path(__file__).parents[1] / "doubles" / "check.py")


def _normcheck(*argv, env=None, timeout=300, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "normcheck.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _record(impl, prop, verdict, finding=None, dtype="float32"):
    return {
        "impl": impl,
        "framework": impl.split("/")[0],
        "dtype": dtype,
        "property": prop,
        "verdict": verdict,
        "observed": 0.5,
        "message": "raised ValueError: Expected more than 1 value per channel when training",
        "finding": finding,
        "counterexample": None,
    }


def _fake_doc():
    props = ["agreement", "statistics", "shift_invariance", "scale_equivariance", "contracts", "special_values"]
    records = [_record("torch/group_norm/module", p, "finding", "torch-group-norm-single-value-check") for p in props]
    records += [
        _record("torch/group_norm/functional/channels_last", p, "finding", "torch-group-norm-single-value-check")
        for p in props
    ]
    records += [_record("jax/rms_norm/linen", "agreement", "finding", "flax-rms-norm-something")]
    records += [_record("numpy/layer_norm/reference", p, "pass") for p in props]
    summary = {"pass": 6, "finding": 13, "fail": 0, "error": 0, "skip": 0}
    run = {"profile": "quick", "seed": 0, "seconds": 1.0}
    return {"schema": "normcheck.audit/1", "run": run, "summary": summary, "findings": [], "records": records}


# --- registered findings: one line each ---------------------------------------------------------------


def test_a_known_finding_is_one_line_with_its_count():
    lines = audit_cmd.finding_lines(_fake_doc())
    assert len(lines) == 2
    torch_line = next(x for x in lines if "torch-group-norm-single-value-check" in x)
    assert torch_line.startswith("F torch-group-norm-single-value-check")
    assert "12 records (torch/group_norm/*)" in torch_line
    assert any("flax-rms-norm-something" in x and " 1 record " in x and "(jax/rms_norm/linen)" in x for x in lines)


def test_audit_prints_no_per_record_lines_for_known_findings(monkeypatch, tmp_path, capsys):
    doc = _fake_doc()
    monkeypatch.setattr("normcheck.audit.run_audit", lambda **kw: doc)
    out_json = tmp_path / "a.json"
    assert cli.main(["audit", "--frameworks", "numpy", "--profile", "quick", "--json", str(out_json)]) == 0
    out, err = capsys.readouterr()
    assert "[finding" not in out  # the old one-record-per-block listing
    assert sum("torch-group-norm-single-value-check" in line for line in out.splitlines()) == 1
    assert f"each record in full: {out_json}" in out
    assert err == ""  # stderr is no terminal here: no progress at all
    assert len(json.loads(out_json.read_text())["records"]) == len(doc["records"])  # the full list stays


def test_scope_of_a_finding():
    assert audit_cmd._scope(["a/b/c", "a/b/c"]) == "a/b/c"
    assert audit_cmd._scope(["torch/group_norm/module", "torch/group_norm/functional/nhwc"]) == "torch/group_norm/*"
    assert audit_cmd._scope(["jax/rms_norm/linen/jit", "jax/layer_norm/nnx"]) == "jax/{layer_norm,rms_norm}/*"
    assert audit_cmd._scope([f"jax/n{i}/linen" for i in range(4)]) == "jax/*"
    assert audit_cmd._scope(["torch/x", "jax/x", "onnxruntime/x"]) == "{jax,onnxruntime,torch}/*"
    assert audit_cmd._scope(["torch/x", "jax/x", "onnxruntime/x", "numpy/x"]) == "torch/x and 3 more"


# --- progress ---------------------------------------------------------------------------------------------


def test_progress_total_is_known_up_front_and_equals_the_records(monkeypatch, tmp_path, capsys):
    from rich.console import Console

    shown: list = []

    class Recording(audit_cmd.Progress):
        def __init__(self, total, *, enabled, console=None):
            self.screen = io.StringIO()
            console = Console(file=self.screen, force_terminal=True, width=120)
            super().__init__(total, enabled=True, console=console)
            self.planned = total
            self.totals: set[int] = set()
            shown.append(self)

        def __call__(self, k, n, r):
            super().__call__(k, n, r)
            self.totals.add(self.total)

    monkeypatch.setattr(audit_cmd, "Progress", Recording)
    out_json = tmp_path / "a.json"
    argv = ["audit", "--frameworks", "numpy", "--profile", "quick", "--norms", "layer_norm", "--jobs", "1"]
    assert cli.main([*argv, "--json", str(out_json)]) == 0
    records = json.loads(out_json.read_text())["records"]
    (p,) = shown
    assert p.planned == len(records) == p.done > 0
    assert p.totals == {len(records)}  # the total never moved
    assert f"{len(records)}/{len(records)}" in p.screen.getvalue()


def test_planned_checks_counts_identities_and_dtypes(tmp_path):
    planned = audit_cmd.planned_checks(
        frameworks=["numpy"],
        norms=["layer_norm", "rms_norm"],
        dtypes=["float32", "float64"],
        properties=["agreement", "identity"],
        profile="quick",
        all_forms=None,
    )
    from normcheck import adapters, audit

    impls = adapters.implementations(["numpy"], ["layer_norm", "rms_norm"])
    pairs = list(audit.identity_pairs(impls))
    assert pairs  # rms_norm is layer_norm on zero-mean input
    assert planned == {"numpy": len(impls) * 2 + len(pairs) * 2}


def test_no_progress_output_when_stderr_is_not_a_terminal(tmp_path):
    p = _normcheck("audit", "--frameworks", "numpy", "--profile", "quick", "--norms", "layer_norm", "--jobs", "1")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "passed" in p.stdout


# --- widths -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "audit", "check", "conventions"])
def test_help_fits_80_columns(command):
    p = _normcheck(*([command] if command else []), "--help", env={"COLUMNS": "80"}, timeout=120)
    assert p.returncode == 0, p.stderr
    wide = [line for line in p.stdout.splitlines() if len(line) > 80]
    assert not wide, wide


def test_conventions_output_fits_80_columns():
    p = _normcheck("conventions", "--frameworks", "numpy", env={"COLUMNS": "80"}, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert not [line for line in lines if len(line) > 80]
    assert any("normcheck.reference.batch_norm" in line for line in lines)  # names are not cut


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140, 500])
def test_table_fits_any_width_and_keeps_every_word(width):
    long = " ".join(f"word{i}" for i in range(60))
    rows = [
        {"framework": "torch", "api": "torch.nn.BatchNorm{1,2,3}d", "default_eps": "1e-05", "train_eval": long},
        {"framework": "jax", "api": "flax.linen.BatchNorm", "default_eps": "1e-05", "train_eval": "none (no state)"},
    ]
    columns = (("framework", "framework"), ("api", "layer"), ("default_eps", "default eps"), ("train_eval", "switch"))
    text = conventions_cmd.table(rows, columns, width)
    assert max(map(len, text.splitlines())) <= width
    assert re.findall(r"word\d+", text) == long.split()  # wrapped, never cut, in order
    if width >= 60:  # room for the names: kept whole, and the short header on one line
        assert "torch.nn.BatchNorm{1,2,3}d" in text and "default eps" in text
    if width >= 500:
        assert len(text.splitlines()) == 4  # header, rule, two rows: nothing wraps


def test_table_uses_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    assert conventions_cmd.terminal_width() == 72
    monkeypatch.delenv("COLUMNS")
    rows = [{"api": "x", "notes": "word " * 100}]
    text = conventions_cmd.table(rows, (("api", "layer"), ("notes", "notes")))
    assert max(map(len, text.splitlines())) <= conventions_cmd.terminal_width()


# --- native log lines and NumPy warnings ----------------------------------------------------------------


def test_native_log_lines_are_dropped_and_the_rest_kept(capfd):
    noise = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1796222120.298074    4517 port.cc:153] oneDNN custom operations are on.\n",
        b"E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory\n",
        b"2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda\n",
    ]
    with cli.native_logs_filtered():
        for line in noise:
            os.write(2, line)
        os.write(2, b"Traceback (most recent call last): kept\n")
        print("python-level stderr kept", file=sys.stderr)
        os.write(2, b"F0000 00:00:1.0 1 x.cc:1] fatal lines are kept\n")
    err = capfd.readouterr().err
    assert "E0000" not in err and "absl" not in err and "oneDNN" not in err and "cudart" not in err
    assert "Traceback (most recent call last): kept" in err
    assert "python-level stderr kept" in err and "fatal lines are kept" in err


def test_numpy_floating_point_warnings_are_silenced_here_and_in_children(recwarn):
    before = os.environ.get("PYTHONWARNINGS")
    with cli.numpy_warnings_silenced():
        import numpy as np

        np.float64(0.0) / np.float64(0.0)
        np.log(np.float64(-1.0))
        warnings.warn("something else", RuntimeWarning, stacklevel=1)
        child = subprocess.run(
            [sys.executable, "-c", "import numpy as np; np.float64(0.0) / np.float64(0.0); np.sqrt(-np.ones(2))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert [str(w.message) for w in recwarn] == ["something else"]
    assert child.returncode == 0 and child.stderr == ""
    assert os.environ.get("PYTHONWARNINGS") == before


def test_tensorflow_audit_slice_prints_no_native_log_lines(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed: no TensorFlow log lines to silence")
    p = _normcheck(
        "audit",
        "--frameworks",
        "tensorflow,numpy",
        "--profile",
        "quick",
        "--norms",
        "rms_norm",
        "--properties",
        "agreement,special_values",
        "--jobs",
        "2",
        "--json",
        str(tmp_path / "tf.json"),
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert "E0000" not in p.stderr and "I0000" not in p.stderr and "absl" not in p.stderr, p.stderr
    assert "RuntimeWarning" not in p.stderr, p.stderr
    assert p.stderr == "", p.stderr
    records = json.loads((tmp_path / "tf.json").read_text())["records"]
    assert any(r["framework"] == "tensorflow" for r in records)


# --- check --quiet ----------------------------------------------------------------------------------------


def test_check_quiet_prints_only_the_summary(capsys):
    argv = ["check", f"{DOUBLES}:group_norm_two_pass", "--norm", "group_norm", "--profile", "quick"]
    argv += ["--properties", "agreement,contracts", "--dtypes", "float32"]
    assert cli.main([*argv, "--quiet"]) == 0
    quiet = capsys.readouterr().out
    assert cli.main(argv) == 0
    loud = capsys.readouterr().out
    assert "CONFORMS" in quiet and "CONFORMS" in loud
    assert "verdict" in loud and "agreement" in loud  # the per-check rows, as they come
    assert "verdict" not in quiet and "agreement" not in quiet  # neither rows nor a table
    assert len(quiet.splitlines()) < len(loud.splitlines())


def test_a_first_run_says_it_fills_the_jax_cache(tmp_path, monkeypatch):
    """The one line a newcomer's first audit prints: only while JAX's folder is empty, never with
    the caches off or for a run without JAX."""
    from normcheck.commands.audit import first_run_note

    monkeypatch.delenv("NORMCHECK_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "normcheck" / "jax"
    note = first_run_note(["numpy", "jax"])
    assert note is not None and str(folder) in note and note.count("\n") == 0
    assert first_run_note(["numpy", "torch"]) is None
    folder.mkdir(parents=True)
    assert first_run_note(["jax"]) is not None  # made, still empty
    (folder / "jit_run-0123").write_bytes(b"x")
    assert first_run_note(["jax"]) is None
    monkeypatch.setenv("NORMCHECK_NO_CACHE", "1")
    (folder / "jit_run-0123").unlink()
    assert first_run_note(["jax"]) is None


def test_check_collapses_not_applicable_rows_into_one_line_per_reason(capsys):
    """Issue 28, item 6: a NumPy target's gradient checks are not applicable in every dtype; they read
    as one line naming the checks and the dtypes, not a row per check and dtype."""
    code = cli.main(
        [*("check", f"{DOUBLES}:group_norm_two_pass", "--norm", "group_norm", "--framework", "numpy"),
         *("--profile", "ci", "--dtypes", "float32,float16")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line for line in out.splitlines() if re.match(r"\s+(float32|float16)\s+\S+\s+skip\b", line)]
    assert rows == [], rows
    autodiff = [line for line in out.splitlines() if line.strip().startswith("not applicable") and "autodiff" in line]
    assert len(autodiff) == 1, out
    assert "(float32, float16)" in autodiff[0] and "gradient_agreement" in autodiff[0] and "jvp" in autodiff[0]
    assert "np.float64(" not in out and "e+0" not in out


def test_the_report_table_lists_every_skipped_check_once():
    from normcheck import checker

    r = checker.check(
        f"{DOUBLES}:group_norm_two_pass", "group_norm", "numpy", profile="ci", dtypes=["float32"],
        properties=["agreement", "running_stats_steps", "eval_uses_running", "gradient_agreement"],
    )  # fmt: skip
    table = r.table()
    lines = [line for line in table.splitlines() if "not applicable" in line]
    assert len(lines) == 2, table
    skipped = {x.property for x in r.records if x.verdict == "skip"}
    named = {p for line in lines for p in skipped if p in line}
    assert named == skipped == {"running_stats_steps", "eval_uses_running", "gradient_agreement"}
    assert "not applicable, 2 checks (float32): running_stats_steps, eval_uses_running: " in table
