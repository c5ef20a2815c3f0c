"""`normcheck check` survives a target that ends its process (issue 25): each target of
tests/doubles/crash.py is correct for six calls, then on its seventh segfaults, aborts, exits,
allocates without bound under an RLIMIT_AS, or hangs inside C. Each is checked by `normcheck check`
in a subprocess (as a user runs it): verdict CRASHES (HANGS for the hang) with the case, exit 1, a
JSON document. A correct target still conforms in its worker, and --in-process still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = str(Path(__file__).parents[1] / "doubles" / "crash.py")
FAST = ["--profile", "quick", "--dtypes", "float32", "--properties", "agreement,statistics,contracts"]


def _check(tmp_path, attr: str, *extra: str, timeout: int = 240):
    out = tmp_path / "result.json"
    p = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "check", f"{TARGETS}:{attr}", "--norm", "layer_norm",
         "--framework", "numpy", *FAST, "--json", str(out), *extra],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    doc = json.loads(out.read_text()) if out.exists() else None
    return p, doc


CRASHES = [
    ("segfaults", "killed by SIGSEGV", "SIGSEGV", None),
    ("aborts", "killed by SIGABRT", "SIGABRT", None),
    ("exits_0", "exit code 0", None, 0),
    ("sys_exits_0", "exit code 0", None, 0),
    ("allocates", "killed by SIGSEGV", "SIGSEGV", None),
]


@pytest.mark.parametrize(("attr", "how", "sig", "code"), CRASHES, ids=[c[0] for c in CRASHES])
def test_a_target_that_kills_its_process_crashes_with_the_case(tmp_path, attr, how, sig, code):
    p, doc = _check(tmp_path, attr)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"CRASHES: the target killed its worker process ({how}) during agreement (float32)" in p.stdout
    assert "Traceback" not in p.stderr
    assert doc is not None, p.stdout + p.stderr
    check = doc["check"]
    assert check["verdict"] == "crashes" and not check["conforms"] and check["isolation"] == "worker"
    first = check["crashes"][0]
    assert (first["property"], first["dtype"], first["signal"], first["exit_code"]) == (
        "agreement",
        "float32",
        sig,
        code,
    )
    # the case it was on: a full case, the same one the record carries with its repro
    rec = next(r for r in doc["records"] if r["property"] == "agreement")
    assert rec["verdict"] == "error" and rec["message"].startswith("crash: ")
    assert rec["counterexample"] == first["case"] and first["case"]["input"]["values"]
    assert "Case.from_json" in rec["repro"] and "crash.py:" + attr in rec["repro"]
    # six good calls per process: alone, in a fresh worker, the case does not crash
    assert first["reproduced"] is False
    if sig:  # Python's fault handler names the signal and the target's frame
        assert first["stderr"][0].startswith("Fatal Python error")
        assert any("crash.py" in line and attr in line for line in first["stderr"]), first["stderr"]
    # a fresh worker went on: each later check crashed its own worker on its seventh call, or ran
    verdicts = {r["property"]: r["verdict"] for r in doc["records"]}
    assert set(verdicts) == {"agreement", "statistics", "contracts"}
    assert [c["property"] for c in check["crashes"]] == [k for k, v in verdicts.items() if v == "error"]


def test_a_crash_the_case_reproduces_alone(tmp_path):
    p, doc = _check(tmp_path, "segfaults_on_rank_4", "--properties", "agreement")
    assert p.returncode == 1 and doc is not None, p.stdout + p.stderr
    (crash,) = doc["check"]["crashes"]
    assert crash["reproduced"] is True and len(crash["case"]["input"]["shape"]) == 4
    assert "crashes again: yes" in p.stdout


def test_a_hang_inside_c_is_ended_by_killing_the_worker(tmp_path):
    p, doc = _check(tmp_path, "hangs_in_c", "--timeout", "1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "HANGS: the target did not return within 1 s" in p.stdout and "worker process was killed" in p.stdout
    assert doc is not None and doc["check"]["verdict"] == "hangs"
    first = doc["records"][0]
    assert first["property"] == "agreement" and first["message"].startswith("hang: ")
    assert first["counterexample"]["input"]["values"]
    assert all(r["verdict"] == "skip" and "hung" in r["message"] for r in doc["records"][1:])


def test_a_correct_target_conforms_in_its_worker_and_in_process(tmp_path):
    for extra in ((), ("--in-process",)):
        p, doc = _check(tmp_path, "layer_norm", *extra)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "CONFORMS" in p.stdout and doc["check"]["verdict"] == "conforms"
        assert doc["check"]["isolation"] == ("in-process" if extra else "worker")
        assert doc["check"]["crashes"] == [] and doc["check"]["ran"] == 3


def test_in_process_a_crash_ends_the_process(tmp_path):
    """--in-process is what it says: the segfault kills normcheck itself (no verdict, no JSON)."""
    p, doc = _check(tmp_path, "segfaults", "--in-process")
    assert p.returncode == -11 and doc is None and "CRASHES" not in p.stdout


def test_the_python_api_isolates_an_importable_target_and_says_when_it_cannot(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import normcheck
from tests.doubles import crash as T

r = normcheck.check(T.segfaults, "layer_norm", "numpy", profile="quick", dtypes=["float32"], properties=["agreement"])
print("A", r.verdict, r.isolation, r.crashes[0]["signal"])

def local(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return T.layer_norm(x, normalized_shape, weight, bias, eps)

r = normcheck.check(local, "layer_norm", "numpy", profile="quick", dtypes=["float32"], properties=["agreement"])
print("B", r.verdict, r.isolation)
print("NOTE", [n for n in r.notes if "not a worker" in n])
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "A crashes worker SIGSEGV" in p.stdout
    assert "B conforms in-process" in p.stdout and "defined in the main script" in p.stdout


def _workers_of(pid: int) -> list[int]:
    """The check's worker processes among ``pid``'s children (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"normcheck.check_worker" in cmd:
            out.append(int(entry.name))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="follows the check's worker in /proc")
def test_ctrl_c_ends_the_check_and_its_worker(tmp_path):
    """Ctrl-C (SIGINT to normcheck's process group) during a call that never returns (no timeout):
    exit 130, "interrupted", no traceback, and the worker (in a session of its own) is gone."""
    import signal
    import time

    p = subprocess.Popen(
        [sys.executable, "-m", "normcheck.cli", "check", f"{TARGETS}:hangs_in_c", "--norm", "layer_norm",
         "--framework", "numpy", *FAST, "--timeout", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while not workers and time.monotonic() < deadline and p.poll() is None:
        workers = _workers_of(p.pid)
        time.sleep(0.05)
    assert workers, "no worker process started"
    time.sleep(3.0)  # into the checks (the hang comes on the seventh call)
    assert p.poll() is None
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{w}").exists() for w in workers), "the worker outlived the check"


# --- the audit: a native call that kills its worker (issue 25, item 2) ---------------------------------

#: Installed as sitecustomize in every process of the audit below: the agreement check of one
#: implementation at float32 segfaults on its third example, as a crashing native kernel would.
CRASHING_NATIVE = """
import os

impl_id = os.environ.get("NORMCHECK_TEST_CRASH")
if impl_id:
    import ctypes

    from normcheck import properties as P

    inner, calls = P.PROPERTIES["agreement"], [0]

    def agreement(impl, case):
        if impl.id == impl_id and case.dtype == "float32":
            calls[0] += 1
            if calls[0] == 3:
                ctypes.string_at(0)
        return inner(impl, case)

    P.PROPERTIES["agreement"] = agreement
"""


def test_an_audit_worker_killed_by_a_native_call_leaves_an_error_record_with_its_case(tmp_path):
    pytest.importorskip("onnxruntime", reason="the audit below runs numpy and onnxruntime in two workers")
    (tmp_path / "sitecustomize.py").write_text(CRASHING_NATIVE)
    out = tmp_path / "audit.json"
    crash = "numpy/layer_norm/float32"
    p = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "audit", "--frameworks", "numpy,onnxruntime", "--jobs", "2",
         "--norms", "layer_norm", "--profile", "quick", "--seed", "0", "--quiet", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "NORMCHECK_TEST_CRASH": crash},
    )  # fmt: skip
    assert out.exists(), p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(out.read_text())
    assert "incomplete" not in doc
    died = [r for r in doc["records"] if "worker process died" in r["message"]]
    assert len(died) == 1, [r["message"] for r in died]
    (r,) = died
    assert (r["impl"], r["property"], r["dtype"], r["verdict"]) == (crash, "agreement", "float32", "error")
    assert "SIGSEGV" in r["message"] and " on the case layer_norm, x: float32" in r["message"]
    assert r["counterexample"]["input"]["dtype"] == "float32" and r["counterexample"]["input"]["values"]
    assert "Case.from_json" in r["repro"]
    # that implementation's other checks, and the rest of the audit, went on
    same = [x for x in doc["records"] if x["impl"] == crash and x is not r]
    assert same and all("died" not in x["message"] for x in same)
    assert any(x["verdict"] == "pass" for x in same)
    assert any(x["framework"] == "onnxruntime" and x["verdict"] == "pass" for x in doc["records"])
