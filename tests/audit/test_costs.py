"""The audit's processes take units (an implementation at one dtype) costliest first: by the
seconds each unit took in the profile's last run, kept in the cache folder; the order never
changes a record."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from normcheck.audit import costs, schedule
from normcheck.profiles import Run

KW = dict(norms=["layer_norm", "group_norm"], dtypes=("float32", "float64"), props=["agreement", "contracts"])


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NORMCHECK_NO_CACHE", raising=False)
    return tmp_path


def _rec(impl, dtype, seconds):
    return SimpleNamespace(impl=impl, dtype=dtype, seconds=seconds)


def test_seconds_are_summed_per_unit_and_kept_beside_other_units(cache_home):
    costs.remember("ci", [_rec("a", "float32", 1.5), _rec("a", "float32", 2.0), _rec("a", "float16", 0.25)])
    costs.remember("ci", [_rec("b", "float32", 4.0)])  # another run's units are added, not replacing
    assert costs.measured("ci", [costs.unit("a", "float32"), costs.unit("b", "float32")]) == {
        costs.unit("a", "float32"): 3.5,
        costs.unit("b", "float32"): 4.0,
    }
    assert costs.measured("default", [costs.unit("a", "float32")]) == {}  # per profile
    assert costs.path("ci").parent == cache_home / "normcheck" / "costs"


def test_a_unit_never_measured_leaves_the_order_to_the_check_counts(cache_home):
    costs.remember("ci", [_rec("a", "float32", 1.0)])
    assert costs.measured("ci", [costs.unit("a", "float32"), costs.unit("new", "float32")]) == {}
    costs.path("ci").write_text("not json")
    assert costs.measured("ci", [costs.unit("a", "float32")]) == {}


def test_nothing_is_kept_with_the_caches_off(cache_home, monkeypatch):
    monkeypatch.setenv("NORMCHECK_NO_CACHE", "1")
    assert costs.path("ci") is None
    costs.remember("ci", [_rec("a", "float32", 1.0)])
    assert not (cache_home / "normcheck").exists()


def test_processes_claim_the_unit_measured_costliest_first_and_the_records_stay(cache_home):
    run = Run("quick", seed=0, max_examples=2)
    serial = schedule._framework_records("numpy", **KW, identities=True, run=run)
    costs.remember("quick", [r for _, r in serial])
    units = sorted({costs.unit(r.impl, r.dtype) for _, r in serial})
    assert len(units) >= 4  # two dtypes: each implementation is two units
    costliest = units[len(units) // 2]
    costs.remember("quick", [_rec(*u.split(" "), 10.0 if u == costliest else 0.1) for u in units])
    started: list[int] = []
    turns = itertools.count()
    claimed = schedule._framework_records(
        "numpy", **KW, identities=True, run=run, claim=lambda: next(turns), emit=lambda e: started.append(e)
    )
    first = next(r for n, r in claimed if n == started[0][2])
    assert costs.unit(first.impl, first.dtype) == costliest
    strip = lambda r: (r.impl, r.dtype, r.property, r.verdict, r.observed)  # noqa: E731
    assert [strip(r) for _, r in claimed] == [strip(r) for _, r in serial]
