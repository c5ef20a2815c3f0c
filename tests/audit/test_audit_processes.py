"""The audit's worker processes end with it: killed by a signal that does not reach its process
group (a CI timeout's SIGTERM, a SIGKILL), it leaves no process computing on for no one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to follow the worker processes")
def test_workers_and_manager_end_when_the_audit_is_killed(tmp_path):
    cmd = [sys.executable, "-m", "normcheck.cli", "audit", "--frameworks", "numpy,torch", "--jobs", "2"]
    audit = subprocess.Popen([*cmd, "--quiet", "--json", str(tmp_path / "a.json")], stdout=subprocess.DEVNULL)
    kids: list[int] = []
    deadline = time.monotonic() + 120
    while len(kids) < 3 and time.monotonic() < deadline:  # resource tracker, two workers
        time.sleep(0.5)
        kids = _children(audit.pid)
    assert len(kids) >= 3, f"the audit started {kids} (expected a resource tracker and two workers)"
    os.kill(audit.pid, signal.SIGKILL)
    audit.wait()
    deadline = time.monotonic() + 30
    while any(map(_alive, kids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [k for k in kids if _alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"processes {left} outlived the killed audit"
