"""Every registered finding reproduces from its stored smallest case (so the registry cannot rot),
and the registry's matching rules work."""

from __future__ import annotations

import fnmatch

import numpy as np
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


def test_an_identity_failing_through_the_rhs_is_the_rhs_finding():
    """GN(G=C) == IN on torch float16 with eps below float16's smallest subnormal: the rhs,
    F.instance_norm, hits the registered eps-underflow finding (NaN on a constant slice) while
    F.group_norm is right. The identity record is that finding, not a new deviation."""
    pytest.importorskip("torch")
    from hypothesis import strategies as st

    from normcheck import audit, spec

    impls = {i.id: i for i in adapters.get("torch").implementations()}
    lhs, rhs = impls["torch/group_norm/functional"], impls["torch/instance_norm/functional"]
    ident = next(i for i in spec.get("group_norm").identities if i.name == "gn_gc_is_in")
    x = np.repeat(np.array([1.5, -0.5, 0.25]), 4).reshape(1, 3, 4).astype(np.float16)
    case = Case("group_norm", x, {"num_groups": 3, "eps": 1e-11}, bias=np.array([0.5, -1, 2], np.float16))
    assert not properties.identity(ident, lhs, rhs, case).ok  # the identity really fails here
    name = f"identity:{ident.name}"
    known = findings.applicable(lhs.id, name, "float16") + findings.applicable(rhs.id, name, "float16")
    drive = audit._drive(
        lambda c: properties.identity(ident, lhs, rhs, c), st.just(case), audit._settings("quick", 1), 0, known
    )
    rec = audit._record(lhs, "float16", name, 0.0, drive, repro_call="fn")
    assert rec.verdict == "finding" and rec.finding == "torch-half-batch-norm-eps-underflow", rec
