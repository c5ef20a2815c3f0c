"""Every native implementation agrees with the float64 reference on fixed float32 cases of several
ranks, train and eval, running buffers included (issue 2's acceptance test)."""

from __future__ import annotations

import pytest

from normcheck import properties
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
