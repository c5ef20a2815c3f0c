"""Every native implementation agrees with the float64 reference on fixed float32 cases of several
ranks, train and eval, running buffers included (issue 2's acceptance test)."""

from __future__ import annotations

import pytest

from normcheck import adapters, properties
from normcheck.case import fixed_cases
from normcheck.testing import impl_params


@pytest.mark.parametrize("impl", impl_params())
def test_agrees_with_reference(impl):
    cases = [c for c in fixed_cases(impl.norm, "float32") if impl.running_stats or c.running_mean is None]
    ran = 0
    for case in cases:
        r = properties.agreement(impl, case)
        if r.verdict == "skip":
            continue
        ran += 1
        assert r.verdict == "pass", f"{impl.id} ({impl.api}) on {case.describe()}: {r.message}"
    assert ran, f"{impl.id}: every fixed case was unsupported"


def test_sharded_parallel_audit_keeps_the_serial_order(monkeypatch):
    """A framework split over processes (by implementation, so each keeps its compile caches) comes
    back in the order of the serial run, record for record."""
    from normcheck import audit

    monkeypatch.setattr(type(adapters.get("numpy")), "processes", 2)
    kw = dict(frameworks=["numpy", "onnxruntime"] if adapters.get("onnxruntime").available() else ["numpy", "torch"])
    kw |= dict(norms=["layer_norm", "group_norm"], properties=["agreement", "contracts", "identity"])
    kw |= dict(run=audit.Run("quick", max_examples=2), dtypes=["float32"])
    serial_doc, parallel_doc = audit.run_audit(**kw, workers=1), audit.run_audit(**kw, workers=2)
    serial, parallel = serial_doc["records"], parallel_doc["records"]
    assert serial_doc["conventions"] == parallel_doc["conventions"]  # measured in the workers, same rows
    key = [(r["impl"], r["dtype"], r["property"]) for r in serial]
    assert key == [(r["impl"], r["dtype"], r["property"]) for r in parallel]
    assert [r["verdict"] for r in serial] == [r["verdict"] for r in parallel]
    assert len({r["impl"] for r in serial if r["framework"] == "numpy"}) >= 4


def test_processes_claiming_implementations_reassemble_the_serial_order():
    """Two processes taking turns at the shared counter (here: every other turn each) together run
    each unit's checks exactly once, in one process, and reassemble to the serial run."""
    import itertools

    from normcheck.audit import schedule
    from normcheck.profiles import Run

    kw = dict(norms=["layer_norm", "group_norm"], dtypes=("float32",), props=["agreement", "contracts"])
    kw |= dict(identities=True, run=Run("quick", seed=0, max_examples=2))
    serial = schedule._framework_records("numpy", **kw)
    evens, odds = itertools.count(0, 2), itertools.count(1, 2)
    a = schedule._framework_records("numpy", **kw, claim=lambda: next(evens))
    b = schedule._framework_records("numpy", **kw, claim=lambda: next(odds))
    assert a and b
    assert not {r.impl for _, r in a} & {r.impl for _, r in b if not r.property.startswith("identity")}
    merged = sorted(a + b, key=lambda p: p[0])
    assert [n for n, _ in merged] == [n for n, _ in serial] == list(range(len(serial)))
    strip = lambda r: (r.impl, r.dtype, r.property, r.verdict, r.observed)  # noqa: E731
    assert [strip(r) for _, r in merged] == [strip(r) for _, r in serial]


def test_optional_capabilities_live_in_the_adapters():
    """autodiff and the conventions table dispatch to the adapters' public capabilities; the base
    class says "not offered"; the generic modules import no framework."""
    import subprocess
    import sys

    from normcheck import autodiff

    base = adapters.Adapter()
    with pytest.raises(adapters.Unsupported):
        base.vjp(None, None, None)
    assert base.convention_probes() == [] and not base.has_vjp
    with_vjp = tuple(n for n in adapters.FRAMEWORKS if adapters.get(n).has_vjp)
    assert tuple(autodiff.FRAMEWORKS) == with_vjp == ("torch", "jax", "tensorflow")
    assert autodiff.jax_vjp == adapters.get("jax").vjp  # the former per-framework names still resolve
    heavy = ("torch", "jax", "flax", "tensorflow", "keras", "onnx", "onnxruntime")
    code = (
        "import sys, normcheck.autodiff, normcheck.conventions\nprint(' '.join(m.split('.')[0] for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not set(out) & set(heavy), set(out) & set(heavy)
