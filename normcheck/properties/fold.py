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
"""

from __future__ import annotations

import copy
import zlib

import numpy as np

from normcheck import error_model
from normcheck.case import Case
from normcheck.properties.core import Result, Stop, register, verdict

__all__ = ["FoldError", "check", "fold", "fold_agreement", "fold_scale", "random_layer"]

_CONV_BN = {
    "Linear": ("BatchNorm1d",),
    "Conv1d": ("BatchNorm1d",),
    "Conv2d": ("BatchNorm2d",),
    "Conv3d": ("BatchNorm3d",),
}


class FoldError(ValueError):
    """The BatchNorm cannot be folded into the layer (training mode, no running statistics, or a
    layer/BN pair that does not fit)."""


def _check(layer, bn) -> None:
    import torch

    kind = type(layer).__name__
    if not isinstance(layer, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d):
        raise FoldError(f"can fold into torch.nn.Linear or Conv1d/2d/3d, not {kind}")
    if not isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
        raise FoldError(f"can fold a torch.nn.BatchNorm1d/2d/3d, not {type(bn).__name__}")
    if type(bn).__name__ not in _CONV_BN[kind]:
        raise FoldError(f"{kind} is followed by {' or '.join(_CONV_BN[kind])}, not {type(bn).__name__}")
    if bn.training:
        raise FoldError(
            f"{type(bn).__name__} is in training mode: it normalizes with each batch's statistics, which no "
            "fixed layer reproduces; call bn.eval() first"
        )
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise FoldError(
            f"{type(bn).__name__} tracks no running statistics (track_running_stats=False): it normalizes with "
            "the batch's statistics in eval mode too, so there is nothing fixed to fold"
        )
    out = layer.out_features if kind == "Linear" else layer.out_channels
    if out != bn.num_features:
        raise FoldError(f"{kind} has {out} output channels, {type(bn).__name__} {bn.num_features} features")


def _affine64(bn):
    """(a, shift) in float64 with bn(z) = a z + shift in eval mode."""
    import torch

    rv = bn.running_var.detach().to(torch.float64)
    rm = bn.running_mean.detach().to(torch.float64)
    gamma = bn.weight.detach().to(torch.float64) if bn.weight is not None else torch.ones_like(rv)
    beta = bn.bias.detach().to(torch.float64) if bn.bias is not None else torch.zeros_like(rv)
    a = gamma / torch.sqrt(rv + bn.eps)
    return a, beta - rm * a


def fold(layer, bn):
    """A copy of ``layer`` (Linear/Conv1d/2d/3d) computing ``bn(layer(x))`` of an eval-mode ``bn``.

    Raises :class:`FoldError` if ``bn`` is in training mode, tracks no running statistics, or does
    not fit the layer. The original modules are not modified.
    """
    import torch

    _check(layer, bn)
    a, shift = _affine64(bn)
    w = layer.weight.detach().to(torch.float64)
    b = (
        layer.bias.detach().to(torch.float64)
        if layer.bias is not None
        else torch.zeros(w.shape[0], dtype=torch.float64)
    )
    new = copy.deepcopy(layer)
    dt, dev = layer.weight.dtype, layer.weight.device
    with torch.no_grad():
        w_new = (w * a.reshape(-1, *([1] * (w.dim() - 1)))).to(dt)
        b_new = (b * a + shift).to(dt)
    new.weight = torch.nn.Parameter(w_new.to(dev), requires_grad=layer.weight.requires_grad)
    new.bias = torch.nn.Parameter(b_new.to(dev), requires_grad=layer.weight.requires_grad)
    return new


def _conv64(layer, x64, weight64, bias64):
    """``layer``'s operation (its stride, padding, mode, dilation, groups) in float64."""
    import torch

    m = copy.deepcopy(layer).to(torch.float64)
    with torch.no_grad():
        m.weight = torch.nn.Parameter(weight64)
        m.bias = None if bias64 is None else torch.nn.Parameter(bias64)
        return m(x64)


def fold_scale(layer, bn, x) -> tuple[np.ndarray, np.ndarray]:
    """(float64 reference of ``bn(layer(x))`` in eval mode, the scale s of the module docstring)."""
    import torch

    _check(layer, bn)
    x64 = torch.as_tensor(np.asarray(x, np.float64))
    w = layer.weight.detach().to(torch.float64)
    b = None if layer.bias is None else layer.bias.detach().to(torch.float64)
    a, shift = _affine64(bn)
    shape = (1, -1) + (1,) * (x64.dim() - 2)
    z = _conv64(layer, x64, w, b)
    y = (z * a.reshape(shape) + shift.reshape(shape)).numpy()
    absconv = _conv64(layer, x64.abs(), w.abs(), None)
    fan_in = w[0].numel()
    b0 = b if b is not None else torch.zeros_like(a)
    b_new = (b0 * a + shift).abs().reshape(shape)
    s = (1 + np.sqrt(fan_in)) * (a.abs().reshape(shape) * absconv).numpy() + b_new.numpy() + np.abs(y)
    return y, np.maximum(s, np.finfo(np.float64).tiny)


def check(layer, bn, x, *, dtype=None) -> error_model.Comparison:
    """Fold ``bn`` into ``layer`` and compare the folded layer on ``x`` with the float64
    conv -> BN under the error model (``dtype``: the layer's, by default)."""
    import torch

    folded = fold(layer, bn)
    with torch.no_grad():
        got = folded(torch.as_tensor(np.asarray(x).astype(np.float64)).to(folded.weight.dtype))  # exact
    ref, s = fold_scale(layer, bn, x)
    name = dtype or str(folded.weight.dtype).removeprefix("torch.")
    return error_model.compare(got.to(torch.float64).numpy(), ref, s, name)


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


def random_layer(rng: np.random.Generator, x_shape: tuple[int, ...], dtype=None):
    """A Linear (2D input) or Conv{1,2,3}d layer taking ``x_shape`` with C output channels:
    random groups (a divisor of C), kernel, stride, dilation, padding, padding mode and bias."""
    import torch

    c, spatial = x_shape[1], x_shape[2:]
    bias = bool(rng.integers(2))
    if not spatial:
        layer = torch.nn.Linear(c, c, bias=bias)
    else:
        groups = int(rng.choice(_divisors(c)))
        kernel, dilation, stride, padding = [], [], [], []
        pad = int(rng.integers(0, 2))
        for size in spatial:
            d = int(rng.integers(1, 3))
            k = int(rng.integers(1, 4))
            while (k - 1) * d + 1 > size + 2 * pad:  # the output must have at least one position
                k, d = (k - 1, d) if k > 1 else (k, max(1, d - 1))
            kernel.append(k)
            dilation.append(d)
            stride.append(int(rng.integers(1, 3)))
            padding.append(pad)
        mode = "circular" if pad and all(pad <= s for s in spatial) and rng.integers(3) == 0 else "zeros"
        cls = getattr(torch.nn, f"Conv{len(spatial)}d")
        layer = cls(c, c, kernel, stride, padding, dilation, groups, bias, padding_mode=mode)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.as_tensor(rng.standard_normal(tuple(p.shape))))
    return layer if dtype is None else layer.to(dtype)


def _bn_from_case(case: Case, torch_dtype):
    import torch

    c, rank = case.x.shape[1], case.x.ndim
    cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[rank]
    eps = case.spec.resolve_eps(case.args.get("eps"), case.x.dtype)
    bn = cls(c, eps=eps, affine=case.weight is not None or case.bias is not None)
    rng = np.random.default_rng(zlib.crc32(case.x.tobytes()))
    rm = case.running_mean if case.running_mean is not None else rng.standard_normal(c)
    rv = case.running_var if case.running_var is not None else rng.uniform(0.5, 2.0, c)
    with torch.no_grad():
        bn.running_mean.copy_(torch.as_tensor(np.asarray(rm, np.float64)))
        bn.running_var.copy_(torch.as_tensor(np.asarray(rv, np.float64)))
        if bn.weight is not None:
            bn.weight.copy_(
                torch.as_tensor(np.asarray(case.weight if case.weight is not None else np.ones(c), np.float64))
            )
            bn.bias.copy_(torch.as_tensor(np.asarray(case.bias if case.bias is not None else np.zeros(c), np.float64)))
    return bn.to(torch_dtype).eval(), rng


@register
def fold_agreement(impl, case: Case) -> Result:
    """torch: the conv/linear layer with an eval-mode BN folded in equals conv -> BN (float64)
    under the error model, for a layer drawn from the case; a training-mode BN is refused."""
    if (getattr(impl, "framework", ""), impl.norm, getattr(impl, "form", "")) != ("torch", "batch_norm", "module"):
        return Result("", "skip", message="folding is a transformation of torch modules (torch/batch_norm/module)")
    if case.x.ndim > 5:
        return Result("", "skip", message="no torch BatchNorm for a rank > 5 input")
    from normcheck.adapters import torch as ta

    x = ta.ADAPTER.to_native(case.x)
    bn, rng = _bn_from_case(case, x.dtype)
    layer = random_layer(rng, case.x.shape, x.dtype)
    try:
        comp = check(layer, bn, case.x, dtype=case.dtype)
    except RuntimeError as e:
        if "not implemented" in str(e):
            raise Stop(Result("", "skip", message=f"unsupported: {str(e).splitlines()[0][:200]}")) from None
        raise Stop(
            Result("", "error", message=f"raised RuntimeError: {str(e).splitlines()[0][:200]}", case=case)
        ) from None
    comps = [(f"fold({layer}, eval BN)", comp)]
    bn.train()
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
