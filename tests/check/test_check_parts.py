"""A check split over worker processes (`--jobs`, by default two for a JAX target): units of a
property family at one dtype, balanced by their estimated seconds; the joined records are the serial
run's, a deviating target is diagnosed once over all of them, and a crash in one share stays there."""

from __future__ import annotations

from pathlib import Path

import pytest

import normcheck
from normcheck import check_parts
from normcheck.properties import PROPERTIES

DOUBLES = Path(__file__).parents[1] / "doubles"
PAIRS = [(dt, p) for dt in ("float32", "float16", "bfloat16") for p in PROPERTIES]


def test_every_check_has_one_process_and_a_family_at_a_dtype_stays_together():
    for n in (1, 2, 3):
        owner = check_parts.assign(PAIRS, n)
        assert set(owner) == set(PAIRS) and set(owner.values()) == set(range(n))
        for dt, p in PAIRS:
            same = [q for d, q in PAIRS if d == dt and check_parts.family(q) == check_parts.family(p)]
            assert {owner[(dt, q)] for q in same} == {owner[(dt, p)]}
        assert check_parts.assign(list(reversed(PAIRS)), n) == owner  # deterministic, order aside


def test_the_shares_are_balanced_by_the_estimated_seconds():
    owner = check_parts.assign(PAIRS, 2)
    load = [0.0, 0.0]
    for dt, fam in {(dt, check_parts.family(p)) for dt, p in PAIRS}:
        load[owner[next((d, p) for d, p in PAIRS if d == dt and check_parts.family(p) == fam)]] += check_parts.SECONDS[
            fam
        ]
    assert abs(load[0] - load[1]) <= max(check_parts.SECONDS.values())
    assert sum(load) == pytest.approx(3 * sum(check_parts.SECONDS.values()))


def test_processes_follow_the_framework_and_the_machine(monkeypatch):
    monkeypatch.setattr(check_parts.os, "cpu_count", lambda: 8)
    assert check_parts.processes("jax", None) == 2  # it compiles a program per shape
    assert check_parts.processes("numpy", None) == 1
    assert check_parts.processes("numpy", 3) == 3
    monkeypatch.setattr(check_parts.os, "cpu_count", lambda: 1)
    assert check_parts.processes("jax", None) == 1
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        normcheck.CheckOptions(jobs=0)


def _strip(report):
    return [
        (r.dtype, r.property, r.verdict, r.observed, r.examples, r.message, r.counterexample) for r in report.records
    ]


FAST = dict(profile="quick", max_examples=4, dtypes=("float32", "float16"))


@pytest.mark.parametrize("attr", ["layer_norm_rsqrt", "group_norm_eps_outside"])
def test_two_shares_give_the_serial_records_and_one_diagnosis(attr):
    ref = f"{DOUBLES / 'check.py'}:{attr}"
    norm = "layer_norm" if attr.startswith("layer") else "group_norm"
    serial = normcheck.check(ref, norm, framework="numpy", jobs=1, **FAST)
    split = normcheck.check(ref, norm, framework="numpy", jobs=2, **FAST)
    assert split.isolation == serial.isolation == "worker"
    assert (serial.processes, split.processes) == (1, 2)
    assert split.to_json()["check"]["processes"] == 2
    assert _strip(split) == _strip(serial)
    assert split.verdict == serial.verdict
    text = lambda d: None if d is None else d.text  # noqa: E731
    assert text(split.diagnosis) == text(serial.diagnosis)
    if serial.verdict == "deviates":
        assert split.diagnosis is not None


def test_a_crash_in_one_share_is_recorded_there_and_the_other_share_runs():
    ref = f"{DOUBLES / 'crash.py'}:segfaults"
    props = ("agreement", "gradient_agreement", "statistics", "contracts")
    report = normcheck.check(ref, "layer_norm", framework="numpy", jobs=2, profile="quick", max_examples=4,
                             dtypes=("float32",), properties=props)  # fmt: skip
    assert report.verdict == "crashes" and report.processes == 2
    assert report.crashes and all(c["signal"] == "SIGSEGV" for c in report.crashes)
    assert [r.property for r in report.records] == list(props)  # joined in the plan's order
