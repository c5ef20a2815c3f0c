"""The audit's driver: replayed examples give exactly the records a Hypothesis run per property gives."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from normcheck import adapters, audit, properties, strategies
from normcheck.audit import driver
from normcheck.profiles import Run
from normcheck.properties import Result
from tests.doubles.basic import layer_norm_one_pass


@pytest.fixture(autouse=True)
def _stable_draws():
    driver._DRAWN.clear()
    yield
    driver._DRAWN.clear()


def _plain(impl, prop, dtype):
    """The record of a Hypothesis run of this property alone (an explicit strategy is never replayed),
    with the hunted cases ahead of its draws as the audit runs them."""
    native = impl.framework != "user"
    hunted = driver.hunted(impl.norm, dtype, None if impl.running_stats else False, Run("ci", seed=0)) if native else ()
    return audit.run_check(
        impl, prop, dtype, Run("ci", seed=0), strategy=driver.cases_for(impl, dtype), explicit=hunted
    )


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_replayed_examples_give_the_records_of_a_run_per_property(norm):
    impls = [i for i in adapters.get("numpy").implementations() if i.norm == norm]
    compared = 0
    for impl in impls:
        for prop in properties.PROPERTIES:
            for dtype in ("float32", "bfloat16"):
                replayed = audit.run_check(impl, prop, dtype, Run("ci", seed=0)).to_json()
                plain = _plain(impl, prop, dtype).to_json()
                replayed.pop("seconds"), plain.pop("seconds")
                assert replayed == plain, (impl.id, prop, dtype)
                compared += replayed["verdict"] != "skip"
    assert compared > 20
    assert any(k[0] == norm for k in driver._DRAWN)  # the replay path was taken


def test_identities_replay_their_draws_and_give_the_records_of_a_hypothesis_run(monkeypatch):
    from normcheck.audit.schedule import identity_pairs

    pairs = list(identity_pairs(i for i in adapters.get("numpy").implementations() if not i.extended))
    assert len(pairs) >= 5

    def records():
        out = []
        for ident, lhs, rhs in pairs:
            for dtype in ("float32", "float16"):
                r = audit.run_identity(ident, lhs, rhs, dtype, Run("ci", seed=0)).to_json()
                r.pop("seconds")
                out.append(r)
        return out

    replayed = records()
    assert any(k[0].startswith("identity:") for k in driver._DRAWN)  # the replay path was taken
    monkeypatch.setattr(driver, "_replay", lambda *a, **k: None)  # every check a Hypothesis run of its own
    plain = records()
    assert replayed == plain
    assert sum(r["verdict"] == "pass" for r in plain) > 5


def test_a_new_deviation_is_still_shrunk_by_hypothesis():
    from normcheck.adapters.base import Impl

    impl = Impl("user", "layer_norm", "one_pass", fn=layer_norm_one_pass)
    replayed = audit.run_check(impl, "agreement", "float32", Run("ci", seed=0))
    plain = _plain(impl, "agreement", "float32")
    assert replayed.verdict == plain.verdict == "fail"
    assert replayed.counterexample == plain.counterexample  # the shrunk example, not the first failing draw


def test_an_unseeded_random_run_is_not_replayed():
    import hypothesis

    # explicitly random: a registered profile inherits derandomize from the one loaded (pytest's ci)
    hypothesis.settings.register_profile("test-random", max_examples=5, derandomize=False, database=None)
    impl = next(i for i in adapters.get("numpy").implementations() if i.norm == "rms_norm")
    rec = audit.run_check(impl, "agreement", "float32", Run("test-random", seed=None))
    hunted = driver.hunted("rms_norm", "float32", False, Run("test-random", seed=None))
    assert rec.verdict == "pass" and rec.examples == 5 + len(hunted)  # its draws, after the hunted cases
    assert not driver._DRAWN
    audit.run_check(impl, "agreement", "float32", Run("test-random", seed=0))  # seeded: replayable
    assert driver._DRAWN


def test_replay_stops_at_an_exception_so_hypothesis_reports_it():
    case = next(iter(driver._drawn(("t",), strategies.cases("rms_norm"), Run("quick", max_examples=3).settings(), 0)))

    def boom(c):
        raise RuntimeError("boom")

    assert driver._replay(boom, (case,), ()) is None
    assert driver._replay(lambda c: Result("", "pass", 0.5), (case, case), ()).samples == [0.5, 0.5]
    assert driver._replay(lambda c: Result("", "fail", np.inf, 1.0, "bad"), (case,), ()) is None


_DRAW = """
import json
{before}
from normcheck import strategies
from normcheck.audit import driver
from normcheck.profiles import Run
s = strategies.cases("layer_norm", dtypes=("float32",))
cases = driver._drawn(("layer_norm", "float32", None), s, Run("ci", seed=0).settings(), 0)
print(json.dumps([[c.x.shape, c.x.ravel().tolist(), c.args] for c in cases], default=str))
"""


def test_a_seeded_draw_does_not_depend_on_the_local_modules_imported_before_it(tmp_path):
    """Hypothesis mixes the literals of loaded local modules into its draws: the same seed must draw
    the same examples in a process that imported only the audit, in one that had already imported
    the modules a gradient or diagnosis check loads, and in one that loaded a local module full of
    constants a draw could pick (0.25, 3.0, 1e4, ...)."""
    (tmp_path / "lots_of_constants.py").write_text(
        "C = [" + ", ".join(repr(v) for v in (0.25, 0.5, 3.0, 7.0, 1e4, -2.5, 1e-3, 12345.678, 2, 3, 5, 8)) + "]\n"
    )
    outs = []
    for before in (
        "",
        "import normcheck.autodiff, normcheck.properties.gradients, normcheck.diagnose",
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import lots_of_constants",
    ):
        run = subprocess.run([sys.executable, "-c", _DRAW.format(before=before)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        outs.append(run.stdout)
    assert outs[0] == outs[1] == outs[2]
