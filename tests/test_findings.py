"""Every registered finding reproduces from its stored smallest case (so the registry cannot rot),
and the registry's matching rules work."""

from __future__ import annotations

import fnmatch

import pytest

from normcheck import adapters, findings, properties
from normcheck.case import Case


def _params():
    out = []
    for f in findings.load():
        fw = f.impl[0].split("/")[0]
        a = adapters.get(fw)
        reason = None if a.available() else f"{fw} is not installed"
        if reason is None and not f.applies(f.impl[0], f.property[0], (f.dtypes or ("float32",))[0]):
            reason = f"{f.package} version outside {f.versions}"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(f, id=f.id, marks=marks))
    return out


@pytest.mark.parametrize("finding", _params())
def test_registered_finding_reproduces(finding):
    case = Case.from_json({**finding.case, "regime": (finding.where and _regime(finding)) or "normal"})
    assert finding.covers(case), f"{finding.id}: its own case is outside its `where` region"
    fw = finding.impl[0].split("/")[0]
    impls = [i for i in adapters.get(fw).implementations() if any(fnmatch.fnmatch(i.id, g) for g in finding.impl)]
    assert impls, f"{finding.id}: no implementation matches {finding.impl}"
    name = next(p for p in properties.PROPERTIES if any(fnmatch.fnmatch(p, g) for g in finding.property))
    prop = properties.PROPERTIES[name]
    results = {impl.id: prop(impl, case) for impl in impls}
    passed = {k: r.message for k, r in results.items() if r.verdict == "pass"}
    assert not passed, f"{finding.id} no longer reproduces on {passed}"
    assert any(r.verdict in ("fail", "error") for r in results.values()), {k: r.message for k, r in results.items()}


def _regime(f):
    for r in ("huge", "offset", "outliers", "constant", "tiny", "normal"):
        if f"'{r}'" in f.where:
            return r
    return "normal"


def test_where_region_and_versions():
    f = findings.Finding("x", "numpy", ">=1", ("numpy/*",), ("agreement",), "e", where="N == 1 and regime == 'offset'")
    import numpy as np

    assert f.covers(Case("layer_norm", np.zeros((1, 3), np.float32), {"normalized_shape": (3,)}, regime="offset"))
    assert not f.covers(Case("layer_norm", np.zeros((2, 3), np.float32), {"normalized_shape": (3,)}, regime="offset"))
    assert f.applies("numpy/layer_norm/float32", "agreement", "float32")
    assert not f.applies("torch/layer_norm/functional", "agreement", "float32")
    assert not findings.Finding("x", "numpy", "<1", ("numpy/*",), ("*",), "e").applies(
        "numpy/a/b", "agreement", "float32"
    )
