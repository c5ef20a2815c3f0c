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


def test_a_history_keyed_cache_claims_in_an_order_no_measurement_changes(cache_home):
    """TensorFlow's XLA cache keys a program by its tf.function's name, which counts the functions
    traced before it: measured seconds must not reorder its units, and its second process takes
    them from the back, so each process's history is a prefix of one sequence whatever the timing."""
    run = Run("quick", seed=0, max_examples=2)
    kw = dict(norms=["layer_norm"], dtypes=("float32", "float16"), props=["agreement"], identities=False, run=run)
    before, _, _ = schedule._turns("tensorflow", **kw)
    assert len(before) >= 4
    costs.remember("quick", [_rec(*u.split(" "), float(k)) for k, u in enumerate(before)])  # the reverse order
    assert schedule._turns("tensorflow", **kw)[0] == before
    assert schedule.from_the_back("tensorflow", 1) and not schedule.from_the_back("tensorflow", 0)
    numpy_units = schedule._turns("numpy", **kw)[0]
    costs.remember("quick", [_rec(*u.split(" "), float(k)) for k, u in enumerate(numpy_units)])
    assert schedule._turns("numpy", **kw)[0] == numpy_units[::-1]  # measured seconds order the others
    assert not schedule.from_the_back("numpy", 1) and not schedule.from_the_back("jax", 1)
