"""Importing normcheck, and asking for help, import no framework (array-api-compat style)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "jax", "flax", "tensorflow", "keras", "onnx", "onnxruntime")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_normcheck_imports_no_framework_nor_numpy():
    loaded = _modules_after("import normcheck")
    assert not loaded & {*HEAVY, "numpy"}, loaded & {*HEAVY, "numpy"}


def test_help_imports_no_framework():
    code = "from normcheck import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass"
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_reference_and_adapter_registry_import_no_framework():
    loaded = _modules_after(
        "import normcheck.reference, normcheck.adapters as a\nfor n in a.FRAMEWORKS: a.get(n).available()"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_framework_of_detects_without_importing():
    code = "import numpy as np\nfrom normcheck.adapters import framework_of\nassert framework_of(np.zeros(2)) == 'numpy'\nassert framework_of([1]) is None"
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
