"""``momentum=None`` (torch's cumulative moving average) as a user's training loop sees it (issue 14,
item 5): the reference's ``num_batches_tracked``, the state properties' 1/k chains on one module
instance, the strategies drawing None only for a module target whose constructor accepts it (the
native audit's draws unchanged), the conventions column, and the verdicts: torch's own BatchNorm2d
and a correct hand-written one conform; None read as "no update" or as 0.1, a counter that never
moves, and buffers updated in eval deviate (tests/doubles/momentum.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normcheck import checker, cli, conventions, reference, strategies, target
from normcheck.case import Case
from normcheck.properties import state
from tests.doubles import momentum as D
from tests.sampling import draw

torch = D.torch
DOUBLES = str(Path(__file__).parents[1] / "doubles" / "momentum.py")
STATE = ["running_stats_steps", "eval_uses_running", "train_eval_convergence"]
CI = {"profile": "ci", "dtypes": ["float32"]}
PINNED = {"momentum": None}  # --arg momentum=None


def _check(cls, properties, **kw):
    return checker.check(cls, "batch_norm", properties=properties, diagnose=False, **{**CI, **kw})


# --- the reference --------------------------------------------------------------------------------------


def test_update_factor():
    assert reference.update_factor(0.3) == 0.3
    assert reference.update_factor(0.3, num_batches_tracked=7) == 0.3  # a fixed momentum ignores the counter
    assert [reference.update_factor(None, k) for k in range(4)] == [1.0, 1 / 2, 1 / 3, 1 / 4]
    with pytest.raises(ValueError, match="num_batches_tracked"):
        reference.update_factor(None)
    with pytest.raises(ValueError, match=">= 0"):
        reference.update_factor(None, -1)


def test_reference_cumulative_average_is_the_mean_of_the_batch_statistics():
    """A fresh module's k steps with momentum=None: the initial buffers are forgotten at the first
    step, then the buffers are the plain mean of the k batches' statistics (unbiased variance),
    exactly what torch's nn.BatchNorm keeps."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=k, scale=1 + k, size=(5, 3)) for k in range(4)]
    rm, rv = np.full(3, 7.0), np.full(3, 9.0)
    for k, x in enumerate(batches):
        reference.normalize("batch_norm", x, running_mean=rm, running_var=rv, momentum=None, num_batches_tracked=k)
    np.testing.assert_allclose(rm, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-13)
    np.testing.assert_allclose(rv, np.mean([b.var(0, ddof=1) for b in batches], axis=0), rtol=1e-13)
    with pytest.raises(ValueError, match="num_batches_tracked"):  # the function convention: no counter
        reference.batch_norm(batches[0], rm, rv, training=True, momentum=None)
    y = reference.batch_norm(batches[0], rm, rv, training=False, momentum=None)  # eval: no update, no counter
    assert y.shape == batches[0].shape


def test_reference_cumulative_average_matches_torch():
    m = torch.nn.BatchNorm1d(3, momentum=None)
    rng = np.random.default_rng(1)
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(3):
        x = rng.normal(loc=k, size=(4, 3)).astype(np.float32)
        m(torch.from_numpy(x))
        reference.normalize("batch_norm", x, running_mean=rm, running_var=rv, momentum=None, num_batches_tracked=k)
    np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(m.running_var.numpy(), rv, rtol=1e-5)


# --- the strategies and the target's case options ---------------------------------------------------------


def test_default_draws_never_name_momentum_none():
    cases = draw(strategies.cases("batch_norm", running_stats=True), n=40)
    assert all(c.args["momentum"] is not None for c in cases)
    assert all(m is not None for m in draw(strategies.momenta(), n=60))


def test_momentum_none_option_draws_none_among_floats():
    cases = draw(strategies.cases("batch_norm", running_stats=True, momentum_none=True), n=40)
    drawn = [c.args["momentum"] for c in cases]
    assert None in drawn and any(m is not None for m in drawn)
    assert all(m is None or 0 < m <= 1 for m in drawn)


def test_only_a_constructor_that_accepts_none_gets_none_drawn():
    native = target.wrap(torch.nn.BatchNorm2d, "batch_norm")  # momentum: Optional[float] = 0.1
    assert native.case_options().get("momentum_none") is True
    drawn = draw(native.strategy("float32"), 60, derandomize=True)  # None is one draw among many
    assert any(c.args.get("momentum", 0.1) is None for c in drawn)
    own = target.wrap(D.CumulativeBatchNorm, "batch_norm")  # momentum: float | None = 0.1
    assert own.case_options().get("momentum_none") is True
    from tests.doubles import real_layers as R

    plain = target.wrap(R.ImageBatchNorm, "batch_norm")  # momentum=0.1, no annotation: a float only
    assert "momentum_none" not in plain.case_options()
    pinned = target.wrap(torch.nn.BatchNorm2d, "batch_norm", args=PINNED)
    opts = pinned.case_options()
    assert opts["pinned"] == {"momentum": None} and "momentum_none" not in opts
    assert all(c.args["momentum"] is None for c in draw(pinned.strategy("float32"), 40))


# --- the verdicts --------------------------------------------------------------------------------------------


def test_torch_batchnorm2d_with_momentum_none_conforms(capsys):
    """`normcheck check torch.nn:BatchNorm2d --norm batch_norm --arg momentum=None`: the state
    properties run (the 1/k chain on one instance), nothing is skipped as unsupported."""
    props = ",".join(["agreement", *STATE])
    rc = cli.main(
        ["check", "torch.nn:BatchNorm2d", "--norm", "batch_norm", "--arg", "momentum=None",
         "--profile", "ci", "--dtypes", "float32", "--properties", props]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "CONFORMS" in out and "momentum=None" in out  # built as BatchNorm2d(..., momentum=None, ...)
    for p in STATE:
        assert any(line.split()[1:3] == [p, "pass"] for line in out.splitlines() if p in line), out


def test_hand_written_cumulative_batchnorm_conforms():
    for args in (PINNED, None):  # every case momentum=None, or None drawn among floats
        report = _check(D.CumulativeBatchNorm, STATE, args=args)
        assert report.conforms, report.summary()
        assert [r.verdict for r in report.records] == ["pass"] * 3, report.summary()


@pytest.mark.parametrize(
    ("cls", "weights", "says"),
    [
        (D.NoneMeansNoUpdate, "0, 0, 0, 0", "momentum=None read as no update"),
        (D.NoneMeansDefault, "0.1, 0.1, 0.1, 0.1", "momentum=None read as momentum 0.1"),
        (D.CounterNeverMoves, "1, 1, 1, 1", "num_batches_tracked never moves"),
    ],
    ids=["no_update", "default_0.1", "counter_never_moves"],
)
def test_mishandled_momentum_none_deviates_on_running_stats_steps(cls, weights, says):
    report = _check(cls, ["running_stats_steps"], args=PINNED)
    assert report.verdict == "deviates", report.summary()
    (r,) = report.records
    assert (r.property, r.verdict) == ("running_stats_steps", "fail")
    assert r.counterexample is not None and r.counterexample["args"]["momentum"] is None
    case = Case.from_json(r.counterexample)
    assert case.use_batch_stats and case.args["momentum"] is None
    assert f"batch weight per step {weights} (the cumulative average's: 1, 1/2, 1/3, 1/4): {says}" in r.message


def test_counter_that_never_moves_is_right_on_the_first_step_only():
    """Invisible on any single call (a fresh module's first step has factor 1): only the chain shows it."""
    t = target.wrap(D.CounterNeverMoves, "batch_norm", args=PINNED)
    case = t.probe_case(rank=3, buffers=True)
    assert case.args["momentum"] is None and case.running_mean is not None
    assert state.batch_weights(t, case) == pytest.approx([1, 1, 1, 1], abs=1e-6)
    right = target.wrap(D.CumulativeBatchNorm, "batch_norm", args=PINNED)
    assert state.batch_weights(right, case) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4], abs=1e-6)


def test_buffers_updated_in_eval_deviate_on_eval_uses_running():
    report = _check(D.EvalUpdatesBuffers, STATE, args=PINNED)
    assert report.verdict == "deviates", report.summary()
    fails = [r for r in report.records if r.verdict == "fail"]
    assert [r.property for r in fails] == ["eval_uses_running"], report.summary()
    assert "eval leaves running_" in fails[0].message and fails[0].counterexample is not None
    assert not [r for r in report.records if r.verdict == "error"], report.summary()


def test_buffers_updated_in_eval_are_diagnosed_with_a_fixed_momentum():
    report = checker.check(D.EvalUpdatesBuffers, "batch_norm", properties=["eval_uses_running"], args={"momentum": 0.1},
                           **CI)  # fmt: skip
    assert report.verdict == "deviates"
    assert "updating the running buffers in eval mode" in str(report.diagnosis), report.summary()


def test_buffers_updated_in_eval_are_diagnosed_with_momentum_none_too():
    """A single call with momentum=None is a fresh module's first step (the reference, the error
    model and the diagnosis agree on it), so the diagnosis runs on such cases."""
    report = checker.check(D.EvalUpdatesBuffers, "batch_norm", properties=["eval_uses_running"], args=PINNED, **CI)
    assert "updating the running buffers in eval mode" in str(report.diagnosis), report.summary()


def test_momentum_none_read_as_the_default_is_diagnosed_by_name():
    report = checker.check(D.NoneMeansDefault, "batch_norm", args=PINNED, **CI)
    assert report.verdict == "deviates"
    assert "reading momentum=None as the default momentum 0.1" in str(report.diagnosis), report.summary()


# --- the conventions column ---------------------------------------------------------------------------------


def _probe(cls):
    def run(x, training, momentum=conventions.DEFAULT, state=None):
        raise AssertionError("momentum_none uses the persistent-layer steps")

    def steps(xs, momentum):
        m = cls(2, momentum=momentum)
        m.train()
        with torch.no_grad():
            for x in xs:
                m(torch.from_numpy(x))
        return m.running_mean.numpy().copy(), m.running_var.numpy().copy()

    return conventions.Probe("user", "batch_norm", cls.__name__, run, stateful=True, steps=steps)


@pytest.mark.parametrize(
    ("cls", "cell"),
    [
        (D.CumulativeBatchNorm, "cumulative average of the batch statistics"),
        (D.NoneMeansNoUpdate, "accepted, but the running statistics are never updated"),
        (D.NoneMeansDefault, "accepted, but read as momentum 0.1"),
        (D.CounterNeverMoves, "accepted, but each batch replaces the running statistics"),
    ],
    ids=["cumulative", "no_update", "default_0.1", "counter_never_moves"],
)
def test_conventions_momentum_none_tells_the_misreadings_apart(cls, cell):
    assert conventions.momentum_none(_probe(cls)).startswith(cell)
