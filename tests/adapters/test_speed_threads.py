"""The audit's processes let idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) without changing how
many there are, so torch splits every reduction as before; a user's own setting is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from normcheck.audit import schedule


def test_quiet_threads_sets_the_wait_policy_and_keeps_a_users(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    schedule.quiet_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    schedule.quiet_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_torch_keeps_its_thread_count_under_the_policy():
    pytest.importorskip("torch")
    code = "import torch; print(torch.get_num_threads(), torch.get_num_interop_threads())"
    counts = []
    for policy in (None, "PASSIVE"):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        counts.append(out.stdout.split())
    assert counts[0] == counts[1]
