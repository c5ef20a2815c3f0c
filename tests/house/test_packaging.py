"""The specs ship in the wheel: the top-level ``specs/`` folder is the package ``normcheck.specs``.

Fast and offline: the loader finds every spec through the package, the explicit package list in
pyproject.toml names every folder of ``normcheck/``, and a wheel built without build isolation or an
index (a few seconds) holds the TOML files under ``normcheck/specs/``. scripts/wheel_smoke.sh (run by
.ci/run) installs such a wheel into a fresh virtualenv and runs the CLI from it.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from normcheck import findings, spec

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted(p.name for p in (ROOT / "specs").glob("*.toml"))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_checkout_has_specs_and_findings():
    assert "findings.toml" in SPEC_FILES
    assert len(SPEC_FILES) > 1


def test_specs_are_found_through_the_package(monkeypatch):
    monkeypatch.delenv("NORMCHECK_SPECS", raising=False)
    package = importlib.import_module("normcheck.specs")
    d = spec.specs_dir()
    assert [Path(p) for p in package.__path__] == [d]
    # The editable install (and a checkout on sys.path) resolve the package to the top-level folder.
    assert d.resolve() == (ROOT / "specs").resolve()
    assert sorted(p.name for p in d.glob("*.toml")) == SPEC_FILES
    norms = {tomllib.loads((d / f).read_text()).get("name") for f in SPEC_FILES if f != "findings.toml"}
    assert set(spec.load()) == norms
    assert findings.load(), "the findings registry is read from the package too"


def test_specs_dir_honours_the_override(monkeypatch, tmp_path):
    monkeypatch.setenv("NORMCHECK_SPECS", str(tmp_path))
    assert spec.specs_dir() == tmp_path


def test_pyproject_maps_specs_into_the_package_and_lists_every_subpackage():
    st = _pyproject()["tool"]["setuptools"]
    assert st["package-dir"] == {"normcheck.specs": "specs"}
    assert "*.toml" in st["package-data"]["normcheck.specs"]
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "normcheck").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert set(st["packages"]) == folders | {"normcheck.specs"}, "update [tool.setuptools] packages"


def test_the_wheel_ships_the_specs(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel without build isolation needs setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / f, src / f)
    for d in ("normcheck", "specs"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    offline = ("--no-deps", "--no-index", "--no-build-isolation", "--disable-pip-version-check")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", *offline, "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("normcheck-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"normcheck/specs/{f}" for f in SPEC_FILES} <= names
    assert "normcheck/specs/__init__.py" in names
    assert not [n for n in names if n.startswith("specs/")], "the specs belong inside the package"
    sources = {p.relative_to(src).as_posix() for p in (src / "normcheck").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert "normcheck/report/template.html.j2" in names
