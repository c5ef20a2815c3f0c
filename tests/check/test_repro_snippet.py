"""A repro snippet printed by `normcheck check` runs anywhere: from another folder, in a fresh
interpreter, it rebuilds the target (file by its absolute path, the check's options such as
``--axes`` included) and reproduces the failure."""

from __future__ import annotations

import json
import subprocess
import sys

from normcheck import cli

UNBIASED = """
import numpy as np

def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    y = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, ddof=1, keepdims=True) + eps)
    y = y * (1 if weight is None else weight) + (0 if bias is None else bias)
    return y.astype(x.dtype)
"""


def test_a_snippet_runs_from_another_folder_and_reproduces(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    (work / "my_ln.py").write_text(UNBIASED)
    monkeypatch.chdir(work)
    out = work / "r.json"
    argv = ["check", "my_ln.py:layer_norm", "--norm", "layer_norm", "--profile", "ci", "--dtypes", "float32"]
    assert cli.main([*argv, "--axes", "-1", "--properties", "agreement", "--json", str(out), "--quiet"]) == 1
    rec = next(r for r in json.loads(out.read_text())["records"] if r["verdict"] == "fail")
    snippet = rec["repro"]
    assert str(work / "my_ln.py") in snippet and "axes" in snippet  # absolute path, the --axes option
    run = subprocess.run([sys.executable, "-c", snippet], cwd=elsewhere, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() and run.stdout.strip() in rec["message"]  # the record's own deviation
