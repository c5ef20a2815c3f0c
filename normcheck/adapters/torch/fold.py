"""Folding an eval-mode ``torch.nn.BatchNorm{1,2,3}d`` into the ``torch.nn.Linear`` or
``torch.nn.Conv{1,2,3}d`` before it (:meth:`TorchAdapter.batch_norm_folding`): the fold itself, the
float64 conv -> BN reference and its pieces, and the layers the ``fold_agreement`` property draws.

The property, the error model and the public front (``fold``, ``check``, ``random_layer``) are
:mod:`normcheck.properties.fold`'s; everything here reads or builds torch modules.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np

from normcheck.adapters.base import FoldError

__all__ = [
    "affine64",
    "batch_norm_from_case",
    "check_pair",
    "conv64",
    "fold",
    "layers_for",
    "not_implemented",
    "random_layer",
    "reference",
    "run",
    "train",
]

#: The implementation whose modules fold (the ``fold_agreement`` property runs on it), and what they are
APPLIES_TO = "torch/batch_norm/module"
WHAT = "torch modules"

_CONV_BN = {
    "Linear": ("BatchNorm1d",),
    "Conv1d": ("BatchNorm1d",),
    "Conv2d": ("BatchNorm2d",),
    "Conv3d": ("BatchNorm3d",),
}


def check_pair(layer, bn) -> None:
    """:class:`FoldError` unless ``bn`` is an eval-mode BatchNorm with running statistics that fits
    ``layer`` (a Linear or Conv1d/2d/3d)."""
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


def affine64(bn):
    """(a, shift) in float64 with bn(z) = a z + shift in eval mode."""
    import torch

    rv = bn.running_var.detach().to(torch.float64)
    rm = bn.running_mean.detach().to(torch.float64)
    gamma = bn.weight.detach().to(torch.float64) if bn.weight is not None else torch.ones_like(rv)
    beta = bn.bias.detach().to(torch.float64) if bn.bias is not None else torch.zeros_like(rv)
    a = gamma / torch.sqrt(rv + bn.eps)
    return a, beta - rm * a


def fold(layer, bn):
    """A copy of ``layer`` (Linear/Conv1d/2d/3d) computing ``bn(layer(x))`` of an eval-mode ``bn``:
    ``a``, ``W'`` and ``b'`` in float64, rounded once to the layer's dtype. Raises
    :class:`FoldError` if ``bn`` is in training mode, tracks no running statistics, or does not fit
    the layer. The original modules are not modified.
    """
    import torch

    check_pair(layer, bn)
    a, shift = affine64(bn)
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


def conv64(layer, x64, weight64, bias64):
    """``layer``'s operation (its stride, padding, mode, dilation, groups) in float64."""
    import torch

    m = copy.deepcopy(layer).to(torch.float64)
    with torch.no_grad():
        m.weight = torch.nn.Parameter(weight64)
        m.bias = None if bias64 is None else torch.nn.Parameter(bias64)
        return m(x64)


def reference(layer, bn, x) -> dict:
    """The float64 pieces of the error model of :func:`normcheck.properties.fold.fold_scale`, as NumPy:
    ``y`` = bn(layer(x)) in eval mode, ``abs_conv`` = the same convolution of the absolute values
    (``|W| * |x|``, no bias), ``a`` the BN's per-channel scale, ``folded_bias`` b' and ``fan_in``
    K = C_in/groups * prod(kernel)."""
    import torch

    check_pair(layer, bn)
    x64 = torch.as_tensor(np.asarray(x, np.float64))
    w = layer.weight.detach().to(torch.float64)
    b = None if layer.bias is None else layer.bias.detach().to(torch.float64)
    a, shift = affine64(bn)
    shape = (1, -1) + (1,) * (x64.dim() - 2)
    z = conv64(layer, x64, w, b)
    y = (z * a.reshape(shape) + shift.reshape(shape)).numpy()
    abs_conv = conv64(layer, x64.abs(), w.abs(), None).numpy()
    b0 = b if b is not None else torch.zeros_like(a)
    return {
        "y": y,
        "abs_conv": abs_conv,
        "a": a.numpy(),
        "folded_bias": (b0 * a + shift).numpy(),
        "fan_in": w[0].numel(),
    }


def run(layer, x) -> tuple[np.ndarray, str]:
    """(``layer(x)`` in the layer's dtype, as float64 NumPy; the dtype's name): ``x`` is rounded to
    that dtype exactly as a float64 array would be."""
    import torch

    if segfaults(layer, np.shape(x)):
        raise RuntimeError(
            "not run: torch's CPU convolution in 16-bit precision segfaults with a dilation > 1 along a "
            "size-1 dimension (finding torch-conv-16bit-dilated-segfault)"
        )
    with torch.no_grad():
        got = layer(torch.as_tensor(np.asarray(x).astype(np.float64)).to(layer.weight.dtype))
    return got.to(torch.float64).numpy(), str(layer.weight.dtype).removeprefix("torch.")


def segfaults(layer, x_shape) -> bool:
    """Would ``layer(x)`` crash the process? torch 2.13's CPU convolutions in 16-bit precision
    segfault when a dilation > 1 runs along a spatial dimension of size 1 (found by the seed sweep:
    Conv3d bfloat16 at seed 5, Conv2d float16 at seed 2; float32 computes both; tests/properties/test_fold.py
    runs the crashes in a subprocess, so a fix shows)."""
    import torch

    conv = isinstance(layer, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d)
    if not conv or layer.weight.dtype not in (torch.float16, torch.bfloat16):
        return False
    return any(d > 1 and n == 1 for d, n in zip(layer.dilation, x_shape[2:], strict=True))


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


def batch_norm_from_case(case, torch_dtype):
    """(the eval-mode BatchNorm module of the case's running statistics, affine parameters and eps,
    in ``torch_dtype``; the generator the layer in front of it is drawn from, seeded by the input)."""
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


def layers_for(case):
    """(layer, bn) for a :class:`~normcheck.case.Case`: the case's BatchNorm (eval mode) and a layer
    drawn to stand in front of it, both in the dtype of the case's input."""
    from normcheck.adapters.torch import ADAPTER

    dtype = ADAPTER.to_native(case.x).dtype
    bn, rng = batch_norm_from_case(case, dtype)
    return random_layer(rng, case.x.shape, dtype), bn


def not_implemented(error: BaseException) -> bool:
    """Is ``error`` torch saying the layer's dtype has no kernel here (a ``RuntimeError`` "... not
    implemented for ...")?"""
    return isinstance(error, RuntimeError) and "not implemented" in str(error)


def train(bn):
    """Put ``bn`` in training mode (in place); returns it."""
    return bn.train()
