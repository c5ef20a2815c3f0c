"""The package's shape (issue 18): the import graph runs data → reference → adapters → strategies →
properties → front doors with no cycle; only ``normcheck.adapters`` imports a framework; no module
imports another's private name. Read from the source with ``ast`` (module-level and function-level
imports alike), so a lazy import counts as a dependency too."""

from __future__ import annotations

import ast
import pathlib

import pytest

import normcheck

ROOT = pathlib.Path(normcheck.__file__).parent
FRAMEWORKS = ("torch", "jax", "jaxlib", "flax", "tensorflow", "keras", "onnx", "onnxruntime", "optax")

#: Each module's layer, by the longest matching prefix; a module may import its own layer or lower.
LAYERS = {
    "normcheck": 0,  # the lazy package namespace
    "normcheck.specs": 0,
    "normcheck.spec": 0,
    "normcheck.dtypes": 0,
    "normcheck.findings": 0,
    "normcheck.profiles": 0,
    "normcheck.compile_cache": 0,
    "normcheck.installed": 0,
    "normcheck.reference": 1,
    "normcheck.case": 1,
    "normcheck.error_model": 1,
    "normcheck.expected": 1,
    "normcheck.adapters": 2,
    "normcheck.strategies": 3,
    "normcheck.properties": 4,
    "normcheck.autodiff": 4,
}
FRONT = 5  # everything else: audit, checker, target, diagnose, commands, cli, report, bench, port, conventions, ...


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _imports(name: str, path: pathlib.Path):
    """(imported module, imported name or None, line) for every import statement in the file."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                yield base, a.name, node.lineno


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for base, attr, _ in _imports(m, p):
            full = f"{base}.{attr}" if attr else base
            target = full if full in MODULES else base if base in MODULES else None
            if target and target != m:
                edges[m].add(target)
    return edges


def _layer(m: str) -> int:
    best = max((k for k in LAYERS if m == k or m.startswith(k + ".")), key=len, default=None)
    return FRONT if best is None or (best == "normcheck" and m != "normcheck") else LAYERS[best]


def _cycles(edges) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package importing its own submodules (its __init__ re-exporting them) is not a cycle
            root = min(comp)
            if len(comp) > 1 and not all(x == root or x.startswith(root + ".") for x in comp):
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_module_list_is_read():
    assert {"normcheck.reference", "normcheck.adapters.base", "normcheck.properties.core"} <= set(MODULES)


def test_no_import_cycle():
    assert _cycles(_edges()) == []


def test_layers_only_import_downwards():
    up = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in _edges().items()
        for t in sorted(targets)
        if _layer(t) > _layer(m) and not t.startswith(m + ".")  # a package's __init__ may import its parts
    ]
    assert up == []


def test_only_the_adapters_import_a_framework():
    found = [
        f"{m}:{line} imports {base}"
        for m, p in MODULES.items()
        if not m.startswith("normcheck.adapters")
        for base, _, line in _imports(m, p)
        if base.split(".")[0] in FRAMEWORKS
    ]
    assert found == []


def test_no_private_name_crosses_modules():
    found = []
    for m, p in MODULES.items():
        for base, attr, line in _imports(m, p):
            if attr and attr.startswith("_") and not attr.startswith("__") and base.startswith("normcheck"):
                if f"{base}.{attr}" not in MODULES and base != m:
                    found.append(f"{m}:{line} imports {base}.{attr}")
    assert found == []


@pytest.mark.parametrize("wrong", ["cycle", "upward"])
def test_the_checks_can_fail(wrong):
    """The graph checks see a planted defect (so a pass means something)."""
    edges = {"normcheck.a": {"normcheck.b"}, "normcheck.b": set()}
    if wrong == "cycle":
        edges["normcheck.b"].add("normcheck.a")
        assert _cycles(edges) == [["normcheck.a", "normcheck.b"]]
    else:
        assert _layer("normcheck.properties.core") > _layer("normcheck.reference")
        assert _layer("normcheck.audit.driver") == FRONT
