"""Running statistics over steps, train/eval modes: the four classic state bugs are caught (issue 5's
acceptance), the correct double and every native implementation pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normcheck import adapters, audit
from normcheck.adapters import Impl
from normcheck.case import Case, fixed_cases
from normcheck.profiles import Run
from normcheck.properties import state
from normcheck.testing import impl_params
from tests.doubles import state as D

WRONG = [
    (D.batch_norm_biased_running_var, ("running_stats_steps", "train_eval_convergence")),
    (D.batch_norm_keras_momentum, ("running_stats_steps", "train_eval_convergence")),
    (D.batch_norm_batch_stats_in_eval, ("eval_uses_running", "train_eval_convergence")),
    (D.batch_norm_never_updates, ("running_stats_steps", "train_eval_convergence")),
]


def _impl(fn):
    return Impl("user", "batch_norm", "function", fn, api=fn.__name__, dtypes=("float32",), running_stats=True)


@pytest.mark.parametrize(("fn", "catchers"), WRONG, ids=[w[0].__name__ for w in WRONG])
def test_state_bug_is_caught(fn, catchers):
    for prop in catchers:
        rec = audit.run_check(_impl(fn), prop, "float32", Run("ci", seed=0))
        assert rec.verdict == "fail", f"{fn.__name__} not caught by {prop}: {rec.message}"
        assert rec.counterexample is not None and "Case.from_json" in rec.repro


@pytest.mark.parametrize("seed", [0, 1])
def test_correct_double_passes(seed):
    for prop in state.STATE_PROPERTIES:
        rec = audit.run_check(_impl(D.batch_norm_correct), prop, "float32", Run("ci", seed=seed))
        assert rec.verdict == "pass", f"{prop}: {rec.message}"


def test_keras_momentum_is_invisible_at_one_half():
    """m and 1 - m coincide at 0.5: no property can tell them apart there (so Hypothesis must
    draw other momenta, and does)."""
    case = fixed_cases("batch_norm")[1].with_(args={"eps": 1e-5, "training": True, "momentum": 0.5})
    r = state.running_stats_steps(_impl(D.batch_norm_keras_momentum), case)
    assert r.verdict == "pass"


def _native(norms=("batch_norm", "instance_norm")):
    out = []
    for p in impl_params(norms, ["numpy", "torch", "jax", "tensorflow"]):  # not installed: a visible skip
        (impl,) = p.values
        if impl is not None and (impl.mode == "jit" or (impl.framework == "tensorflow" and impl.mode == "compiled")):
            continue  # same kernels as eager; keeps the file fast
        out.append(p)
    return out


@pytest.mark.parametrize("impl", _native())
def test_native_state(impl):
    """On the fixed cases of ranks 3 and 4 (every layout takes them: torch's channels_last kernels
    only 4-D): each state property runs on at least one and passes, skipping only cases the
    implementation refuses as unsupported; without running statistics of its own, the two
    properties of updates run on none, and eval_uses_running runs unless it has no eval mode."""
    cases = [c for c in fixed_cases(impl.norm, "float32") if c.x.ndim in (3, 4)]
    assert cases
    for name, prop in state.STATE_PROPERTIES.items():
        results = [(case, prop(impl, case)) for case in cases]
        for case, r in results:
            assert r.verdict in ("pass", "skip"), f"{impl.id} {name} on {case.describe()}: {r.message}"
        ran = sum(r.verdict == "pass" for _, r in results)
        skipped = {r.message for _, r in results if r.verdict == "skip"}
        if not impl.running_stats and name != "eval_uses_running":
            assert ran == 0 and all("keeps no running statistics" in m for m in skipped), (name, skipped)
        elif not impl.running_stats and ran == 0:  # no eval mode at all (flax InstanceNorm): refused
            assert all(m.startswith("unsupported:") for m in skipped), (name, skipped)
        else:
            assert ran >= 1, f"{impl.id} {name} ran on no case: {skipped}"
            assert all(m.startswith("unsupported:") for m in skipped), (name, skipped)


def test_tf_nn_eval_uses_running_without_updates():
    pytest.importorskip("tensorflow")
    impl = next(i for i in adapters.get("tensorflow").implementations() if i.id == "tensorflow/batch_norm/tf.nn")
    case = fixed_cases("batch_norm")[1]
    assert state.eval_uses_running(impl, case).verdict == "pass"
    assert state.running_stats_steps(impl, case).verdict == "skip"


def test_constant_set_variance_rounding_is_allowed():
    """A correct kernel may store a variance of ~(u max|x|)^2 for a constant channel (torch's
    channels_last batch_norm does): the second-order term of the running-variance scale."""
    pytest.importorskip("torch")
    impl = next(
        i for i in adapters.get("torch").implementations() if i.id == "torch/batch_norm/functional/channels_last"
    )
    x = np.concatenate([np.full((1, 1, 3, 4), 0.9034701585769653), np.full((1, 1, 3, 4), 0.0940122976899147)], 1)
    case = Case("batch_norm", x.astype(np.float32), {"eps": 1e-5, "training": True, "momentum": 1.0})
    assert state.running_stats_steps(impl, case).verdict == "pass"


def test_torch_momentum_none_is_a_cumulative_average():
    """torch's momentum=None (module form): running = average of the batch statistics so far,
    the initial buffers forgotten after the first step."""
    torch = pytest.importorskip("torch")
    m = torch.nn.BatchNorm1d(2, momentum=None)
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=k, size=(5, 2)).astype(np.float32) for k in range(3)]
    for b in batches:
        m(torch.from_numpy(b))
    means = np.mean([b.mean(0) for b in batches], axis=0)
    variances = np.mean([b.var(0, ddof=1) for b in batches], axis=0)
    np.testing.assert_allclose(m.running_mean.numpy(), means, rtol=1e-5)
    np.testing.assert_allclose(m.running_var.numpy(), variances, rtol=1e-5)


STATE_DOUBLES = str(Path(__file__).parents[1] / "doubles" / "state.py")


@pytest.mark.parametrize(
    ("fn", "catchers"), [*WRONG, (D.batch_norm_correct, ())], ids=[*(w[0].__name__ for w in WRONG), "correct"]
)
def test_normcheck_check_catches_state_bugs(monkeypatch, capsys, fn, catchers):
    """`normcheck check file.py:fn --norm batch_norm` exits 1 on each state bug, 0 on the correct one."""
    from normcheck import cli

    props = ",".join(catchers or state.STATE_PROPERTIES)
    argv = ["check", f"{STATE_DOUBLES}:{fn.__name__}", "--norm", "batch_norm", "--profile", "ci"]
    argv += ["--properties", props, "--dtypes", "float32", "--no-diagnosis", "--quiet"]
    rc = cli.main(argv)
    out = capsys.readouterr()
    assert rc == (1 if catchers else 0), out.out + out.err
