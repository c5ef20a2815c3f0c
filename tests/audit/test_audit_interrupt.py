"""An interrupted audit keeps what it finished (issue 25): Ctrl-C (SIGINT to the process group) or
SIGTERM to the main process alone ends it with the JSON and HTML of the finished checks, marked
incomplete, exit 130 / 143 and no traceback; ``--resume`` runs only the rest, and its records are
those of a run that was not interrupted; a worker process killed mid-audit leaves an error record
and the rest goes on. Each audit runs in a subprocess; the signals are sent once the journal holds
records (polled, never a fixed sleep)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="follows the audit's processes in /proc")

ROOT = Path(__file__).resolve().parents[2]
NORMS = "layer_norm,group_norm,instance_norm,rms_norm"
#: numpy alone: one process (the checks run in the main process)
SERIAL = ["--profile", "quick", "--seed", "0", "--frameworks", "numpy", "--norms", NORMS]
#: numpy and ONNX Runtime: a worker process each
PARALLEL = ["--profile", "quick", "--seed", "0", "--frameworks", "numpy,onnxruntime", "--norms", NORMS, "--jobs", "2"]


def _default_sigint() -> None:  # a shell's background job starts with SIGINT ignored: undo that
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Audit:
    """``normcheck audit ARGS --json/--html`` in its own process group, its output in files."""

    def __init__(self, tmp: Path, name: str, args: list[str]) -> None:
        self.json, self.html = tmp / f"{name}.json", tmp / f"{name}.html"
        self.journal = Path(str(self.json) + ".journal")
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        cmd = [sys.executable, "-m", "normcheck.cli", "audit", *args, "--quiet"]
        cmd += ["--json", str(self.json), "--html", str(self.html)]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=out, stderr=err, start_new_session=True, preexec_fn=_default_sigint
            )

    def journaled(self) -> list[dict]:
        try:
            lines = self.journal.read_text().splitlines()[1:]
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line)["record"])
            except (json.JSONDecodeError, KeyError):  # a line being written
                pass
        return out

    def wait_for(self, enough, timeout: float = 150.0) -> list[dict]:
        """Poll the journal until ``enough(records)``; fails if the audit ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.journaled()
            if enough(recs):
                return recs
            assert self.proc.poll() is None, f"the audit ended (exit {self.proc.returncode}) before the signal"
            time.sleep(0.02)
        pytest.fail("the audit journaled too few records in time")

    def finish(self, timeout: float = 300.0) -> int:
        return self.proc.wait(timeout)

    def workers(self) -> list[int]:
        """The worker processes (multiprocessing's spawned interpreters) the audit runs now."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in out if "spawn_main" in _cmdline(int(pid))]

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def document(self) -> dict:
        return json.loads(self.json.read_text())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _same(r: dict) -> dict:
    """A record without its timing."""
    return {k: v for k, v in r.items() if k != "seconds"}


def _uninterrupted(tmp_path_factory, name: str, args: list[str]) -> tuple[int, list[dict]]:
    a = Audit(tmp_path_factory.mktemp(name), name, args)
    rc = a.finish()
    assert rc in (0, 1), a.stderr
    doc = a.document()
    assert "incomplete" not in doc and not a.journal.exists()  # a complete document replaces its journal
    return rc, doc["records"]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    return _uninterrupted(tmp_path_factory, "serial", SERIAL)


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    return _uninterrupted(tmp_path_factory, "parallel", PARALLEL)


def _assert_incomplete(a: Audit, rc: int, expected_rc: int, sig: str, full: list[dict]) -> dict:
    assert rc == expected_rc, a.stderr
    assert "Traceback" not in a.stderr, a.stderr
    doc = a.document()
    inc = doc["incomplete"]
    assert inc["signal"] == sig and inc["reason"] == ("interrupted" if sig == "SIGINT" else "terminated")
    assert 0 < inc["done"] == len(doc["records"]) < inc["planned"] == len(full)
    assert sum(doc["summary"].values()) == inc["done"]
    # each finished record is the uninterrupted run's record at its place
    assert len(set(doc["positions"])) == len(doc["positions"])
    assert [_same(full[p]) for p in doc["positions"]] == [_same(r) for r in doc["records"]]
    text = f"interrupted after {inc['done']} of {inc['planned']} checks"
    assert text in a.stdout and f"--resume {a.json}" in a.stdout
    assert text in a.html.read_text()
    assert a.journal.exists()
    return doc


def _resume(a: Audit, full_rc: int, full: list[dict]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "normcheck.cli", "audit", "--resume", str(a.json), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == full_rc, r.stderr
    assert "Traceback" not in r.stderr
    doc = a.document()
    assert "incomplete" not in doc and "positions" not in doc
    assert [_same(x) for x in doc["records"]] == [_same(x) for x in full]
    assert not a.journal.exists()
    html = a.html.read_text()  # the interrupted run's HTML path, rewritten without the banner
    assert "interrupted after" not in html and f"{len(full)}</b><span>checks in all" in html


def test_ctrl_c_keeps_what_finished_and_resume_completes_it(tmp_path, serial_run):
    full_rc, full = serial_run
    a = Audit(tmp_path, "a", SERIAL)
    a.wait_for(lambda recs: len(recs) >= 10)
    os.killpg(a.proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    rc = a.finish(timeout=60)
    doc = _assert_incomplete(a, rc, 130, "SIGINT", full)
    assert doc["incomplete"]["done"] < len(full) - 10
    _resume(a, full_rc, full)


def test_sigterm_to_the_main_process_stops_every_worker(tmp_path, parallel_run):
    full_rc, full = parallel_run
    a = Audit(tmp_path, "b", PARALLEL)
    a.wait_for(lambda recs: len({r["framework"] for r in recs}) == 2 and len(recs) >= 10)
    workers = a.workers()
    assert workers, "no worker process is running"
    os.kill(a.proc.pid, signal.SIGTERM)  # the main process alone, as a CI runner or process manager does
    t0 = time.monotonic()
    while any(map(_alive, workers)) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} still ran 10 s after the audit got SIGTERM"
    rc = a.finish(timeout=60)
    _assert_incomplete(a, rc, 143, "SIGTERM", full)
    a.json.unlink()  # killed before it wrote anything else: the journal alone resumes it
    _resume(a, full_rc, full)


def test_a_killed_worker_leaves_an_error_record_and_the_rest_goes_on(tmp_path, parallel_run):
    _, full = parallel_run
    a = Audit(tmp_path, "c", PARALLEL)
    ort: list[int] = []

    def ort_running(recs) -> bool:  # ONNX Runtime's worker is at its checks
        ort[:] = [w for w in a.workers() if "onnxruntime" in _maps(w)]
        return len(ort) == 1 and sum(r["framework"] == "onnxruntime" for r in recs) >= 3

    recs = a.wait_for(ort_running)
    assert sum(r["framework"] == "onnxruntime" for r in recs) < len(full) // 4  # it has most of its work ahead
    os.kill(ort[0], signal.SIGKILL)
    rc = a.finish()
    assert rc == 1, a.stderr
    assert "Traceback" not in a.stderr
    doc = a.document()
    assert "incomplete" not in doc and len(doc["records"]) == len(full)
    differ = [(r, f) for r, f in zip(doc["records"], full, strict=True) if _same(r) != _same(f)]
    assert len(differ) == 1, [r["message"] for r, _ in differ]
    ((r, f),) = differ
    assert r["framework"] == "onnxruntime" and r["verdict"] == "error" and "SIGKILL" in r["message"]
    assert (r["impl"], r["dtype"], r["property"]) == (f["impl"], f["dtype"], f["property"])
