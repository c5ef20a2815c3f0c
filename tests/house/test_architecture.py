"""The package's shape (issue 18): the import graph runs data → reference → adapters → strategies →
properties → front doors with no cycle; only ``normcheck.adapters`` imports a framework, and no
module outside it names one (issue 28: every framework fact lives on its adapter); no module
imports another's private name. Read from the source with ``ast`` (module-level and function-level
imports alike), so a lazy import counts as a dependency too."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

import normcheck

ROOT = pathlib.Path(normcheck.__file__).parent
FRAMEWORKS = (
    *("torch", "jax", "jaxlib", "flax", "tensorflow", "keras", "onnx", "onnxruntime", "optax"),
    *("equinox", "haiku", "sonnet"),
)
#: A string that is a framework module's name (``"torch"``, ``"flax.linen"``)
MODULE_NAME = re.compile(rf"^(?:{'|'.join(FRAMEWORKS)})(?:\.\w+)*$")

#: The framework names that stay outside ``normcheck/adapters/``, (module, name) -> why. Keep it short.
NAMED_OUTSIDE = {
    **dict.fromkeys(
        [("normcheck.port", "torch"), ("normcheck.port", "tensorflow"), ("normcheck.port", "jax")],
        "the public functions are named for the two frameworks they join (torch_to_keras, keras_to_torch, "
        "torch_to_flax) and pick each side's adapter by that name",
    ),
    ("normcheck.reference", "torch"): "the specs' `torch` key (the torch signature a reference function mirrors), data",
}

#: Each module's layer, by the longest matching prefix; a module may import its own layer or lower.
LAYERS = {
    "normcheck": 0,  # the lazy package namespace
    "normcheck.specs": 0,
    "normcheck.spec": 0,
    "normcheck.dtypes": 0,
    "normcheck.profiles": 0,
    "normcheck.compile_cache": 0,
    "normcheck.installed": 0,
    "normcheck.reference": 1,
    "normcheck.case": 1,
    "normcheck.error_model": 1,
    "normcheck.expected": 1,
    "normcheck.adapters": 2,
    "normcheck.strategies": 3,
    "normcheck.findings": 3,  # asks the adapters which native form a user's target calls
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


def _docstrings(tree) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, kinds) and n.body and isinstance(n.body[0], ast.Expr)
        if isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str)
    }


def _framework_names(source: str):
    """(line, name) for every string constant (docstrings aside), attribute or variable that names a
    framework module: ``sys.modules.get("torch")``, ``"jax" in sys.modules``, ``x.startswith("jax")``,
    ``torch.nn.Module``, ``"keras.layers"``."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if MODULE_NAME.match(n.value):
                yield n.lineno, n.value
        elif isinstance(n, ast.Attribute) and n.attr in FRAMEWORKS:
            yield n.lineno, n.attr
        elif isinstance(n, ast.Name) and n.id in FRAMEWORKS:
            yield n.lineno, n.id


def test_no_framework_is_named_outside_the_adapters():
    """Only an adapter knows its framework: the rest asks :mod:`normcheck.adapters` (which owns an
    object, a class, an array; the schedule's costs; the packages; the log filtering; CUDA)."""
    found, allowed = [], set()
    for m, p in MODULES.items():
        if m.startswith("normcheck.adapters"):
            continue
        for line, name in _framework_names(p.read_text()):
            if (m, name) in NAMED_OUTSIDE:
                allowed.add((m, name))
            else:
                found.append(f"{m}:{line} names {name!r}")
    assert found == []
    assert allowed == set(NAMED_OUTSIDE), f"allowed but no longer there: {set(NAMED_OUTSIDE) - allowed}"


def test_the_adapters_read_of_a_target_only_what_target_like_names():
    """``target.<attribute>`` in the adapters is a member of :class:`~normcheck.adapters.base.TargetLike`."""
    from normcheck.adapters.base import TargetLike

    members = set(TargetLike.__annotations__) | {k for k in vars(TargetLike) if not k.startswith("_")}
    read = {
        (m, n.attr)
        for m, p in MODULES.items()
        if m.startswith("normcheck.adapters")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "target"
    }
    assert read and {a for _, a in read} <= members, sorted(r for r in read if r[1] not in members)


def test_no_private_name_crosses_modules():
    found = []
    for m, p in MODULES.items():
        for base, attr, line in _imports(m, p):
            if attr and attr.startswith("_") and not attr.startswith("__") and base.startswith("normcheck"):
                if f"{base}.{attr}" not in MODULES and base != m:
                    found.append(f"{m}:{line} imports {base}.{attr}")
    assert found == []


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ('import sys\ntorch = sys.modules.get("torch")', ["torch", "torch"]),
        ('import sys\nloaded = "jax" in sys.modules', ["jax"]),
        ('name = "x"\nok = name.startswith("jax") or name == "flax.linen"', ["jax", "flax.linen"]),
        ('def f(m):\n    """torch and jax in a docstring"""\n    return m.tensorflow', ["tensorflow"]),
        ('msg = "a torch.nn.Module instance"', []),
    ],
)
def test_the_name_check_sees_a_framework_named(source, names):
    assert [n for _, n in _framework_names(source)] == names


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
