"""CI names the frameworks it requires (NORMCHECK_REQUIRE): a required one that does not import fails
its tests rather than skipping them; one not required is still skipped with its reason."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

TEST = """
import pytest

def test_needs_it():
    pytest.importorskip("normcheck_absent_module", reason="normcheck_absent_module is not installed")
"""


def _run(tmp_path: pathlib.Path, required: str) -> subprocess.CompletedProcess:
    conftest = pathlib.Path(__file__).parents[1] / "conftest.py"
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    (tmp_path / "test_it.py").write_text(TEST)
    env = {**os.environ, "NORMCHECK_REQUIRE": required}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


def test_a_required_module_that_does_not_import_fails(tmp_path):
    r = _run(tmp_path, "torch, normcheck_absent_module")
    assert r.returncode == 1, r.stdout
    assert "1 failed" in r.stdout and "ModuleNotFoundError" in r.stdout


def test_a_module_not_required_is_skipped_with_its_reason(tmp_path):
    r = _run(tmp_path, "torch")
    assert r.returncode == 0, r.stdout
    assert "1 skipped" in r.stdout
