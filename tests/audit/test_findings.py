"""Every registered finding reproduces from its stored smallest case (so the registry cannot rot),
and the registry's matching rules work."""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest

from normcheck import adapters, findings, properties
from normcheck.audit import driver
from normcheck.case import Case
from normcheck.profiles import Run


def _params():
    """One test per finding and framework it names (a shared cause has a smallest case for each)."""
    out = []
    for f in findings.load():
        for part in f.parts:
            fw = part.framework
            globs = [g for g in f.impl if g.split("/")[0] == fw]  # no "!" exclusion starts with a framework
            reason = None if adapters.get(fw).available() else f"{fw} is not installed"
            if reason is None and not f.applies(globs[0], f.property[0], (f.dtypes or ("float32",))[0]):
                reason = f"{part.package} version outside {part.versions}"
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            out.append(pytest.param(f, part, id=f"{f.id}-{fw}" if f.also else f.id, marks=marks))
    return out


@pytest.mark.parametrize(("finding", "part"), _params())
def test_registered_finding_reproduces(finding, part):
    case = Case.from_json({**part.case, "regime": (finding.where and _regime(finding)) or "normal"})
    fw = part.framework
    impls = [i for i in adapters.get(fw).implementations() if finding.names_impl(i.id) and i.norm == case.norm]
    assert impls, f"{finding.id}: no {case.norm} implementation of {fw} matches {finding.impl}"
    # the case's variant picks each implementation's configuration, which a `where` may read
    impls = [i for i in impls if finding.covers(case, case.configuration(i))]
    assert impls, f"{finding.id}: its own case is outside its `where` region"
    name = next(p for p in properties.PROPERTIES if any(fnmatch.fnmatch(p, g) for g in finding.property))
    prop = properties.PROPERTIES[name]
    results = {impl.id: prop(impl, case) for impl in impls}
    passed = {k: r.message for k, r in results.items() if r.verdict == "pass"}
    assert not passed, f"{finding.id} no longer reproduces on {passed}"
    want = "error" if finding.raises else "fail"  # a raise and a wrong value are different findings
    assert any(r.verdict == want for r in results.values()), (want, {k: r.message for k, r in results.items()})


def test_an_error_is_not_explained_by_a_numerical_finding():
    case = Case("layer_norm", np.zeros((1, 3), np.float32), {"normalized_shape": (3,)})
    numeric = findings.Finding("n", "numpy", ">=1", ("numpy/*",), ("agreement",), "e")
    raising = findings.Finding("r", "numpy", ">=1", ("numpy/*",), ("agreement",), "e", raises=True)
    assert numeric.explains(case, "fail") and not numeric.explains(case, "error")
    assert raising.explains(case, "error") and not raising.explains(case, "fail")


def test_every_raising_finding_says_so():
    """A finding whose smallest case raises is marked ``raises`` (else the audit would not match it)."""
    for f in findings.load():
        assert f.raises == ("raises" in f.observed), f"{f.id}: observed {f.observed!r} but raises={f.raises}"


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


def test_the_variance_region_variables():
    """``vmax``: the largest biased variance of a statistics set of the input; ``rvmax``: the largest
    running variance the case carries (NaN without buffers, so no comparison holds)."""
    x = np.array([[100.0, -100.0], [600.0, 90.0]], np.float16)  # channel variances 62500 and 9025
    bn = dict(eps=1e-5, training=False)
    plain = Case("batch_norm", x, bn)
    buffers = Case("batch_norm", x, bn, running_mean=np.zeros(2, np.float32),
                   running_var=np.array([1.0, 140000.0], np.float32))  # fmt: skip
    big_v = findings.Finding("x", "numpy", ">=1", ("*",), ("*",), "e", where="vmax > 60000")
    big_rv = findings.Finding("x", "numpy", ">=1", ("*",), ("*",), "e", where="rvmax > 65504")
    assert big_v.covers(plain) and big_v.covers(buffers)
    assert not big_rv.covers(plain) and big_rv.covers(buffers)
    assert not big_rv.covers(buffers.with_(running_var=np.array([1.0, 65000.0], np.float32)))


def test_an_identity_failing_through_the_rhs_is_the_rhs_finding():
    """GN(G=C) == IN on torch float16 with eps below float16's smallest subnormal: the rhs,
    F.instance_norm, hits the registered eps-underflow finding (NaN on a constant slice) while
    F.group_norm is right. The identity record is that finding, not a new deviation."""
    pytest.importorskip("torch")
    from hypothesis import strategies as st

    from normcheck import spec

    impls = {i.id: i for i in adapters.get("torch").implementations()}
    lhs, rhs = impls["torch/group_norm/functional"], impls["torch/instance_norm/functional"]
    ident = next(i for i in spec.get("group_norm").identities if i.name == "gn_gc_is_in")
    x = np.repeat(np.array([1.5, -0.5, 0.25]), 4).reshape(1, 3, 4).astype(np.float16)
    case = Case("group_norm", x, {"num_groups": 3, "eps": 1e-11}, bias=np.array([0.5, -1, 2], np.float16))
    assert not properties.identity(ident, lhs, rhs, case).ok  # the identity really fails here
    name = f"identity:{ident.name}"
    known = findings.applicable(lhs.id, name, "float16") + findings.applicable(rhs.id, name, "float16")
    drive = driver._drive(
        lambda c: properties.identity(ident, lhs, rhs, c),
        st.just(case),
        Run("quick", max_examples=1).settings(),
        0,
        known,
    )
    rec = driver._record(lhs, "float16", name, 0.0, drive, repro_call="fn")
    assert rec.verdict == "finding" and rec.finding == "torch-half-batch-norm-eps-underflow", rec


def test_a_shifted_input_is_judged_as_the_offset_input_it_is():
    """shift_invariance feeds x + c (c >= 2 max|x|, so |mean| >= 2 std): torch's one-pass
    channels_last GroupNorm errs 22 u·s there on a normal-regime draw, and the registry's region
    (offset inputs) covers it because the failing side is recorded as the offset case it is."""
    pytest.importorskip("torch")
    import json

    case = Case.from_json(
        json.loads(
            '{"norm": "group_norm", "regime": "normal", "args": {"num_groups": 3, "eps": 1e-05}, "input": {"shape": [3, 3, 1, 2], "dtype": "float32", "values": [0.1257302165031433, -0.13210485875606537, 0.6404226422309875, 0.10490011423826218, -0.5356693863868713, 0.3615950644016266, 1.3040000200271606, 0.9470809698104858, -0.7037352323532104, -1.2654215097427368, -0.6232744455337524, 0.04132597893476486, -2.32503080368042, -0.218791663646698, -1.2459110021591187, -0.7322673797607422, -0.5442590117454529, -0.3163001537322998]}, "weight": null, "bias": null, "running_mean": null, "running_var": null, "mean_weight": null, "var_weight": null}'
        )
    )
    impl = next(
        i for i in adapters.get("torch").implementations() if i.id == "torch/group_norm/functional/channels_last"
    )
    r = properties.shift_invariance(impl, case)
    assert case.regime == "normal" and r.verdict == "fail" and r.case.regime == "offset"
    f = findings.match(impl.id, "shift_invariance", "float32", r.case)
    assert f is not None and f.id == "torch-group-norm-channels-last-one-pass-variance"
    contiguous = next(i for i in adapters.get("torch").implementations() if i.id == "torch/group_norm/functional")
    assert properties.shift_invariance(contiguous, case).verdict == "pass"


def test_an_exclusion_glob_leaves_out_the_ids_it_matches():
    f = findings.Finding("x", "torch", ">=1", ("torch/layer_norm/*", "!torch/*/compiled"), ("agreement",), "e")
    assert f.names_impl("torch/layer_norm/functional") and f.names_impl("torch/layer_norm/module")
    assert not f.names_impl("torch/layer_norm/functional/compiled")
    assert not f.names_impl("torch/group_norm/functional")
    assert f.names_impl("torch/layer_norm/*")  # a user's target running on torch's layer_norm
    eager = next(f for f in findings.load() if f.id == "torch-half-backward-rstd-overflow")
    assert eager.names_impl("torch/layer_norm/functional") and not eager.names_impl(
        "torch/layer_norm/functional/compiled"
    )


def test_the_docs_table_and_the_readme_count_every_registered_finding():
    import pathlib
    import re

    root = pathlib.Path(__file__).parents[2]
    ids = [f.id for f in findings.load()]
    table = re.findall(r"^\| `([^`]+)`", (root / "docs" / "findings.md").read_text(), re.M)
    assert sorted(set(table)) == sorted(ids)
    readme = (root / "README.md").read_text()
    assert f"holds **{len(ids)} findings**" in readme
    assert f"The table of all {len(ids)}:" in readme  # every count the README states
