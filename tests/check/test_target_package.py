"""normcheck.target is a package, one module per job (issue 28): each module short, the package
re-exporting every name the rest of normcheck, the tests and the scripts import from it, and its
modules importing one another's modules, never the half-built package itself."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import normcheck
import normcheck.target

ROOT = pathlib.Path(normcheck.__file__).parent
REPO = ROOT.parent
PKG = ROOT / "target"
MODULES = sorted(p for p in PKG.glob("*.py"))


def test_the_package_has_one_module_per_job():
    names = {p.stem for p in MODULES}
    assert {
        "loading",
        "guard",
        "frameworks",
        "inference",
        "constructor",
        "templates",
        "layer",
        "calling",
        "probes",
        "constraints",
        "wrapping",
    } <= names
    assert not (ROOT / "target.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_is_under_700_lines(path):
    assert len(path.read_text().splitlines()) < 700


def _used_names() -> set[str]:
    """Names taken from normcheck.target anywhere outside it: ``from normcheck.target import X`` and
    ``target.X`` where ``target`` is the module imported as ``from normcheck import target``."""
    used: set[str] = set()
    files = [p for d in ("normcheck", "tests", "scripts") for p in (REPO / d).rglob("*.py")]
    for p in files:
        if PKG in p.parents:
            continue
        tree = ast.parse(p.read_text())
        module_alias = None
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "normcheck.target":
                used.update(a.name for a in node.names)
            if isinstance(node, ast.ImportFrom) and node.module == "normcheck":
                for a in node.names:
                    if a.name == "target":
                        module_alias = a.asname or "target"
        if module_alias:
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == module_alias
                ):
                    used.add(node.attr)
    return used


def test_every_name_used_outside_is_exported():
    used = _used_names()
    assert {"wrap", "Target", "TargetError", "TargetHung", "Guard", "repro_setup"} <= used  # the scan works
    missing = sorted(n for n in used if n not in normcheck.target.__all__)
    assert missing == []
    for n in normcheck.target.__all__:
        assert not isinstance(getattr(normcheck.target, n), type(normcheck)), n  # a name, not a submodule


def test_the_repro_head_imports_resolve():
    t = normcheck.target.wrap(lambda x, *a: x, "layer_norm", framework="numpy", probe=False, timeout=None)
    head = normcheck.target.repro_setup(t, None).splitlines()[0]
    assert head == "from normcheck.target import load, wrap"
    scope: dict = {}
    exec(head, scope)
    assert scope["wrap"] is normcheck.target.wrap and scope["load"] is normcheck.target.load


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_modules_do_not_import_the_package_front(path):
    """A submodule that imported ``from normcheck.target import Name`` would depend on the order in
    which ``__init__`` imports its parts; they import from the owning module instead."""
    if path.name == "__init__.py":
        return
    submodules = {p.stem for p in MODULES}
    bad = [
        f"{path.name}:{node.lineno} imports {a.name} from normcheck.target"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "normcheck.target"
        for a in node.names
        if a.name not in submodules
    ]
    assert bad == []


def test_a_jax_function_target_runs_under_jit_unless_eager():
    """A JAX function target is compiled with ``jax.jit`` (shapes static, eps traced): its Python body
    runs once per traced signature, not once per call; ``eager=True`` runs it op by op every call."""
    pytest.importorskip("jax", reason="jax is not installed")
    import jax.numpy as jnp

    from normcheck import target

    calls = []

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        calls.append(type(input).__name__)
        dims = tuple(range(-len(normalized_shape), 0))
        mean = input.mean(dims, keepdims=True)
        return (input - mean) / jnp.sqrt(((input - mean) ** 2).mean(dims, keepdims=True) + eps)

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for eager, want in ((False, 1), (True, 3)):
        calls.clear()
        t = target.wrap(layer_norm, "layer_norm", framework="jax", eager=eager)
        calls.clear()
        outs = [t(x, (4,), eps=e) for e in (1e-5, 1e-3, 1e-5)]
        assert len(calls) == want, (eager, calls)
        assert np.allclose(outs[0], outs[2]) and not np.array_equal(outs[0], outs[1])
