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

    monkeypatch.setattr(audit, "SHARDS", {"numpy": 2})
    kw = dict(frameworks=["numpy", "onnxruntime"] if adapters.get("onnxruntime").available() else ["numpy", "torch"])
    kw |= dict(norms=["layer_norm", "group_norm"], properties=["agreement", "contracts", "identity"])
    kw |= dict(profile="quick", max_examples=2, dtypes=["float32"])
    serial = audit.run_audit(**kw, workers=1)["records"]
    parallel = audit.run_audit(**kw, workers=2)["records"]
    key = [(r["impl"], r["dtype"], r["property"]) for r in serial]
    assert key == [(r["impl"], r["dtype"], r["property"]) for r in parallel]
    assert [r["verdict"] for r in serial] == [r["verdict"] for r in parallel]
    assert len({r["impl"] for r in serial if r["framework"] == "numpy"}) >= 4  # both shards had work
