r"""Fold an eval-mode BatchNorm into the convolution or linear layer before it (torch).

Deployment replaces ``bn(conv(x))`` by one layer: in eval mode BN is the per-channel affine map
``y = a (z - running_mean) + beta`` with ``a = gamma / sqrt(running_var + eps)``, so

    W' = W * a[c]          (every weight of output channel c)
    b' = (b - running_mean) * a + beta

:func:`fold` does this for ``torch.nn.Linear`` and ``torch.nn.Conv{1,2,3}d`` (any stride, padding,
padding mode, dilation, groups, with or without bias) followed by ``torch.nn.BatchNorm{1,2,3}d``,
computing ``a``, ``W'`` and ``b'`` in float64 and rounding once to the layer's dtype. It refuses,
with :class:`FoldError`, a BN in training mode (it normalizes with each batch's statistics: no
fixed layer reproduces that) and one that tracks no running statistics (``track_running_stats=False``
normalizes with the batch's statistics in eval too).

**Error model** (:func:`fold_scale`). The folded layer computes ``sum_j W'_j x_j + b'`` in the
layer's dtype; the reference is conv -> BN of the *original* parameters in float64. Rounding
``W' = a W`` costs u |a W x| per term, the K-term accumulation of the convolution (K = fan-in =
C_in/groups * prod(kernel)) ~ sqrt(K) u sum |a W x| under the probabilistic model the norms use,
rounding ``b'`` u |b'| and the final addition u |y|:

    s_i = (1 + sqrt(K)) |a_c| (|W| * |x|)_i + |b'_c| + |y_i|

where ``|W| * |x|`` is the same convolution of the absolute values (float64). The allowed error is
``lambda u s`` with the model's lambda = 16. :func:`fold_agreement` is the audit property (torch's
BatchNorm module form): it builds a conv (or linear) layer in front of the case's BN from the
case's own data -- groups a divisor of C, kernel, stride, dilation, padding and padding mode,
bias or not -- folds, compares, and checks that a training-mode BN is refused.

The torch modules are read, built and run in :mod:`normcheck.adapters.torch.fold` (reached through
:meth:`TorchAdapter.batch_norm_folding <normcheck.adapters.base.Adapter.batch_norm_folding>`); this
module keeps the error model, the comparison and the property.
"""

from __future__ import annotations

import numpy as np

from normcheck import adapters, error_model
from normcheck.adapters.base import FoldError
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, register, verdict

__all__ = ["FoldError", "check", "fold", "fold_agreement", "fold_scale", "random_layer"]


def _folding():
    """The BatchNorm folding of the framework that has one (torch's)."""
    return next(f for n in adapters.FRAMEWORKS if (f := adapters.get(n).batch_norm_folding()) is not None)


def fold(layer, bn):
    """A copy of ``layer`` (Linear/Conv1d/2d/3d) computing ``bn(layer(x))`` of an eval-mode ``bn``.

    Raises :class:`FoldError` if ``bn`` is in training mode, tracks no running statistics, or does
    not fit the layer. The original modules are not modified.
    """
    return _folding().fold(layer, bn)


def fold_scale(layer, bn, x) -> tuple[np.ndarray, np.ndarray]:
    """(float64 reference of ``bn(layer(x))`` in eval mode, the scale s of the module docstring)."""
    r = _folding().reference(layer, bn, x)
    y = r["y"]
    shape = (1, -1) + (1,) * (y.ndim - 2)
    conv = np.abs(r["a"]).reshape(shape) * r["abs_conv"]
    s = (1 + np.sqrt(r["fan_in"])) * conv + np.abs(r["folded_bias"]).reshape(shape) + np.abs(y)
    return y, np.maximum(s, error_model.FLOOR)


def check(layer, bn, x, *, dtype=None) -> error_model.Comparison:
    """Fold ``bn`` into ``layer`` and compare the folded layer on ``x`` with the float64
    conv -> BN under the error model (``dtype``: the layer's, by default)."""
    folded = fold(layer, bn)
    got, name = _folding().run(folded, x)  # x rounded to the layer's dtype exactly
    ref, s = fold_scale(layer, bn, x)
    return error_model.compare(got, ref, s, dtype or name)


def random_layer(rng: np.random.Generator, x_shape: tuple[int, ...], dtype=None):
    """A Linear (2D input) or Conv{1,2,3}d layer taking ``x_shape`` with C output channels:
    random groups (a divisor of C), kernel, stride, dilation, padding, padding mode and bias."""
    return _folding().random_layer(rng, x_shape, dtype)


@register
def fold_agreement(impl, case: Case) -> Result:
    """torch: the conv/linear layer with an eval-mode BN folded in equals conv -> BN (float64)
    under the error model, for a layer drawn from the case; a training-mode BN is refused."""
    folding = _folding()
    if "/".join((getattr(impl, "framework", ""), impl.norm, getattr(impl, "form", ""))) != folding.APPLIES_TO:
        return Result("", "skip", message=f"folding is a transformation of {folding.WHAT} ({folding.APPLIES_TO})")
    if case.x.ndim > 5:
        return Result("", "skip", message="no torch BatchNorm for a rank > 5 input")
    layer, bn = folding.layers_for(case)
    try:
        comp = check(layer, bn, case.x, dtype=case.dtype)
    except RuntimeError as e:
        if folding.not_implemented(e):
            raise Stop(Result("", "skip", message=f"unsupported: {str(e).splitlines()[0][:200]}")) from None
        raise Stop(
            Result("", "error", message=f"raised RuntimeError: {str(e).splitlines()[0][:200]}", case=case)
        ) from None
    comps = [(f"fold({layer}, eval BN)", comp)]
    folding.train(bn)
    try:
        fold(layer, bn)
    except FoldError:
        pass
    else:
        lam = error_model.MODEL.lam
        refused = error_model.Comparison(False, np.inf, lam, 0, 0, None, 0.0, "folded a BN in training mode")
        comps.append(("a training-mode BN is refused", refused))
    r = verdict("fold_agreement", comps)
    if r.verdict != "pass":
        r.case = case
    return r
