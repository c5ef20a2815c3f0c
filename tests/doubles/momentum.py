"""Hand-written torch BatchNorm modules for ``momentum=None`` (torch's cumulative moving average:
a training step weights the batch by ``1 / num_batches_tracked`` after its increment), one correct
and the ways real code gets it wrong (issue 14, item 5). Each has torch.nn's constructor, so
``normcheck check tests/doubles/momentum.py:Name --norm batch_norm --arg momentum=None`` builds it
with no wrapper; the statistics are torch's own ``F.batch_norm``, only the update factor (and, for
one, the mode) is each class's own.

- :class:`CumulativeBatchNorm` is right (conforms);
- :class:`NoneMeansNoUpdate` reads None as "no update" (``self.momentum or 0.0``);
- :class:`NoneMeansDefault` reads None as torch's default 0.1;
- :class:`CounterNeverMoves` computes ``1 / (num_batches_tracked + 1)`` from a counter it never
  increments (``self.num_batches_tracked + 1`` where ``add_(1)`` was meant): the factor stays 1;
- :class:`EvalUpdatesBuffers` is right in training and its eval output is right, but it also
  updates its buffers in eval.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn


class CumulativeBatchNorm(nn.Module):
    """A BatchNorm with torch.nn's constructor and momentum=None as torch implements it: the
    counter is incremented in every training step, then the factor is 1 / num_batches_tracked."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def factor(self) -> float:
        """The batch's weight for this training step (called once per step)."""
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def forward(self, x):
        tracked = self.running_mean is not None
        use_batch = self.training or not tracked
        m = self.factor() if self.training and tracked else 0.0
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch, m, self.eps)


class NoneMeansNoUpdate(CumulativeBatchNorm):
    """Deviates: ``momentum=None`` read as "no update" (the buffers keep their initial values)."""

    def factor(self) -> float:
        self.num_batches_tracked.add_(1)
        return self.momentum or 0.0


class NoneMeansDefault(CumulativeBatchNorm):
    """Deviates: ``momentum=None`` read as torch's default momentum 0.1 (an exponential average)."""

    def factor(self) -> float:
        self.num_batches_tracked.add_(1)
        return 0.1 if self.momentum is None else self.momentum


class CounterNeverMoves(CumulativeBatchNorm):
    """Deviates: the counter is read but never incremented, so the factor stays 1 (every batch
    replaces the buffers; right on the first step only)."""

    def factor(self) -> float:
        n = self.num_batches_tracked + 1  # the bug: a new tensor, not self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(n)
        return self.momentum


class EvalUpdatesBuffers(CumulativeBatchNorm):
    """Deviates: right in training, and its eval output uses the running statistics, but eval also
    updates the buffers (a "free" update: the step a training-mode call would have made)."""

    def forward(self, x):
        if self.training or self.running_mean is None:
            return super().forward(x)
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if x.numel() > x.shape[1]:  # the bug (where a training step is defined: 2+ values per channel)
            F.batch_norm(x, self.running_mean, self.running_var, None, None, True, self.factor(), self.eps)
        return y
