"""TensorFlow's XLA persistent cache (normcheck.compile_cache): the first process writes the
executables of the compiled Keras forms into ~/.cache/normcheck/tensorflow, a second reads them
(writes nothing new) and gets the same records; NORMCHECK_NO_CACHE=1 and a user's own cache folder
in TF_XLA_FLAGS leave the folder alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

CHECKS = """
import json, os
from normcheck import adapters
from normcheck.audit import Run, run_check

impl = next(i for i in adapters.get("tensorflow").implementations() if i.id == "tensorflow/layer_norm/keras/compiled")
r = run_check(impl, "agreement", "float32", Run("quick", seed=0, max_examples=3), explicit=()).to_json()
del r["seconds"]
print(json.dumps({"record": r, "flags": os.environ.get("TF_XLA_FLAGS", "")}))
"""


def _run(cache_home, **env) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("NORMCHECK_NO_CACHE", "TF_XLA_FLAGS")}
    e.update(XDG_CACHE_HOME=str(cache_home), **env)
    out = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, env=e, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _listing(folder):
    return (
        {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)} if os.path.isdir(folder) else {}
    )


def test_a_second_process_reads_the_executables_the_first_wrote(tmp_path):
    folder = tmp_path / "normcheck" / "tensorflow"
    cold = _run(tmp_path)
    assert f"--tf_xla_persistent_cache_directory={folder}" in cold["flags"]
    written = _listing(folder)
    assert written and all(name.startswith("xla_compile_cache") for name in written)
    assert cold["record"]["verdict"] == "pass" and cold["record"]["examples"] == 3

    warm = _run(tmp_path)
    assert _listing(folder) == written  # every program found, none compiled and written again
    assert warm["record"] == cold["record"]


def test_no_cache_and_a_users_folder_leave_ours_alone(tmp_path):
    folder = tmp_path / "normcheck" / "tensorflow"
    off = _run(tmp_path, NORMCHECK_NO_CACHE="1")
    assert "persistent_cache" not in off["flags"] and not folder.exists()
    mine = tmp_path / "mine"
    own = _run(tmp_path, TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={mine}")
    assert own["flags"] == f"--tf_xla_persistent_cache_directory={mine}" and not folder.exists()
    assert os.listdir(mine) and own["record"] == off["record"]


def test_a_second_audit_finds_every_program_the_first_wrote(tmp_path):
    """The first run's measured seconds do not reorder TensorFlow's units: a second audit traces
    the same history, so XLA's cache keys (which hold each tf.function's counted name) are found
    again, none written anew. (With two processes, the second takes units from the back: each
    history is a prefix of the same sequence, but where the two meet depends on timing.)"""
    e = {k: v for k, v in os.environ.items() if k not in ("NORMCHECK_NO_CACHE", "TF_XLA_FLAGS")}
    e["XDG_CACHE_HOME"] = str(tmp_path)
    folder = tmp_path / "normcheck" / "tensorflow"
    cmd = [sys.executable, "-m", "normcheck.cli", "audit", "--frameworks", "tensorflow", "--norms", "layer_norm"]
    cmd += ["--dtypes", "float32,float16", "--profile", "quick", "--properties", "agreement", "--jobs", "1"]
    docs = []
    for k in range(2):
        out = tmp_path / f"run{k}.json"
        subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, env=e, check=False)
        docs.append(json.loads(out.read_text()))
        if k == 0:
            written = _listing(folder)
            assert written and (tmp_path / "normcheck" / "costs" / "quick.json").exists()
    assert _listing(folder) == written
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in d["records"]] for d in docs]
    assert strip[0] == strip[1] and len(strip[0]) >= 6
