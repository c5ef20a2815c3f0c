"""`normcheck check` on the torch layers it used to refuse (issue 26, item 2): a weight and no bias
checked as bias-free, ``(**kwargs)`` constructors following their base, a size argument retried as a
sequence, weights and eps in a child module, momentum=None drawn where a probe shows it is taken.
Each conforming layer conforms and its wrong twin deviates."""

from __future__ import annotations

import inspect

import pytest

from normcheck import checker, target
from tests.doubles import stragglers as S

pytestmark = pytest.mark.skipif(S.torch is None, reason="torch is not installed (pip install 'normcheck[torch]')")

FAST = {"profile": "quick", "dtypes": ["float32"]}
if "in_process" in inspect.signature(checker.check).parameters:
    FAST["in_process"] = True  # the doubles are this process's classes


@pytest.mark.parametrize(
    ("name", "norm", "note"),
    [
        ("CohereLayerNorm", "layer_norm", "checked as a bias-free norm"),
        ("KwargsGroupNorm", "group_norm", "from GroupNorm's signature"),
        ("SequenceSizeLayerNorm", "layer_norm", "size argument is a sequence"),
        ("ChildGroupNorm", "group_norm", "norm.eps=1e-06, is used"),
        ("ChildLayerNorm", "layer_norm", "ln.eps=1e-05, is used"),
        ("HandBatchNorm", "batch_norm", "accepts momentum=None (a probe call)"),
    ],
)
def test_straggler_conforms_and_says_how_it_was_driven(name, norm, note):
    report = checker.check(getattr(S, name), norm, **FAST)
    assert report.conforms, report.summary()
    assert any(note in n for n in report.notes), report.notes


@pytest.mark.parametrize(
    ("name", "norm", "failing"),
    [
        ("WrongCohereLayerNorm", "layer_norm", "agreement"),
        ("WrongKwargsGroupNorm", "group_norm", "constant_input"),
        ("WrongChildLayerNorm", "layer_norm", "agreement"),
        ("WrongNoneBatchNorm", "batch_norm", "running_stats_steps"),
    ],
)
def test_wrong_twin_deviates(name, norm, failing):
    report = checker.check(getattr(S, name), norm, **FAST)
    assert not report.conforms
    assert failing in {r.property for r in report.records if r.verdict == "fail"}


def test_the_pieces():
    t = target.wrap(S.CohereLayerNorm, "layer_norm")
    assert t.constraints["no_bias"]
    c = target.Constructor(S.KwargsGroupNorm, "group_norm")
    assert (c.mode, c.base) == ("signature", "GroupNorm") and c.assign["num_groups"] == "groups"
    t = target.wrap(S.SequenceSizeLayerNorm, "layer_norm")
    assert t.ctor.features_seq and t.layer.params["weight"] == "weight"
    t = target.wrap(S.ChildGroupNorm, "group_norm")
    assert t.layer.params == {"weight": "norm.weight", "bias": "norm.bias"}
    assert t.constraints["pinned"]["eps"] == 1e-6
    assert target.wrap(S.HandBatchNorm, "batch_norm").momentum_none is True
    # torch's own BatchNorm takes None (the probe agrees with its Optional annotation)
    assert target.wrap(S.torch.nn.BatchNorm1d, "batch_norm").case_options()["momentum_none"]
