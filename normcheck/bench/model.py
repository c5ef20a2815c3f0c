"""The byte model and the benchmark shapes.

Byte model (what an ideal, fused kernel must move to and from memory; ``numel`` elements of
``itemsize`` bytes in the input, ``P`` elements per affine parameter, ``k`` affine parameters
(2: weight and bias; RMSNorm 1), ``S`` statistic sets (LayerNorm: rows, BatchNorm: channels,
GroupNorm: N·G, InstanceNorm: N·C), statistics in float32):

==================  ====================================================================
pass                bytes
==================  ====================================================================
forward             ``2·numel·itemsize`` (read x, write y) ``+ k·P·itemsize`` (read the
                    parameters) ``+ 2·S·4`` (write mean and rstd) ``[+ 4·C·4]`` (BatchNorm
                    training: read and write running mean and variance)
backward            ``3·numel·itemsize`` (read x and dy, write dx) ``+ (1 + k)·P·itemsize``
                    (read the weight, write the parameter gradients) ``+ 2·S·4`` (read the
                    saved statistics)
forward+backward    forward + backward (what one timed training step moves)
==================  ====================================================================

``GB/s = bytes / median time / 1e9``; ``fraction of roof = GB/s / roof GB/s`` where the roof is the
copy bandwidth measured in the same run (:mod:`normcheck.bench.roof`). A backward-only figure is
derived as ``median(forward+backward) − median(forward)`` against the backward bytes.

Shapes: the *large* set is sized from the last-level cache read on this machine: the forward pass
moves at least ``cache_factor`` (default 4) times the LLC, so no repetition finds its data in
cache; every norm gets the same number of elements (equal bytes, so norms and layouts compare
directly): LayerNorm/RMSNorm ``(M, 4096)``, the channel norms ``(N, 64, 128, 128)``. The *small*
set (``(64, 1024)`` and ``(8, 64, 16, 16)``) fits in cache and is reported as latency, not GB/s.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from normcheck import spec as _spec

__all__ = [
    "CHANNEL_SHAPE",
    "ROW",
    "SMALL",
    "Bytes",
    "backward_bytes",
    "forward_bytes",
    "itemsize",
    "large_shape",
    "parse_shape",
    "shape_fits",
]

ROW = 4096  # LayerNorm/RMSNorm normalized size
CHANNEL_SHAPE = (64, 128, 128)  # (C, H, W) of the channel norms
SMALL = {"rows": (64, 1024), "channels": (8, 64, 16, 16)}
STAT_ITEMSIZE = 4  # mean/rstd are kept in float32 (opmath) by every framework
_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
ROW_NORMS = ("layer_norm", "rms_norm")


def itemsize(dtype: str) -> int:
    return _ITEMSIZE[dtype]


def _plan(norm: str, shape: tuple[int, ...]) -> _spec.Plan:
    from normcheck.bench.native import groups

    kw = {}
    if norm in ROW_NORMS:
        kw["normalized_shape"] = (shape[-1],)
    if norm == "group_norm":
        kw["num_groups"] = groups(shape[1])
    return _spec.plan(norm, shape, **kw)


@dataclass(frozen=True)
class Bytes:
    """The byte model's terms for one (norm, shape, dtype)."""

    numel: int
    itemsize: int
    params: int  # elements of one affine parameter
    k: int  # affine parameters (weight, bias)
    sets: int  # statistic sets
    running: int  # running-statistic elements read and written in the forward (BatchNorm training)

    @property
    def forward(self) -> int:
        return (
            2 * self.numel * self.itemsize
            + self.k * self.params * self.itemsize
            + 2 * self.sets * STAT_ITEMSIZE
            + 4 * self.running * STAT_ITEMSIZE
        )

    @property
    def backward(self) -> int:
        return (
            3 * self.numel * self.itemsize + (1 + self.k) * self.params * self.itemsize + 2 * self.sets * STAT_ITEMSIZE
        )

    def of(self, pass_: str) -> int:
        if pass_ == "forward":
            return self.forward
        if pass_ == "backward":
            return self.backward
        if pass_ == "forward+backward":
            return self.forward + self.backward
        raise ValueError(f"unknown pass {pass_!r}")


def model(norm: str, shape: tuple[int, ...], dtype: str) -> Bytes:
    p = _plan(norm, tuple(shape))
    sets = math.prod(p.stat_shape)
    running = shape[1] if norm == "batch_norm" else 0
    return Bytes(
        numel=math.prod(shape),
        itemsize=itemsize(dtype),
        params=math.prod(p.affine_shape),
        k=1 if norm == "rms_norm" else 2,
        sets=sets,
        running=running,
    )


def forward_bytes(norm: str, shape: tuple[int, ...], dtype: str) -> int:
    return model(norm, shape, dtype).forward


def backward_bytes(norm: str, shape: tuple[int, ...], dtype: str) -> int:
    return model(norm, shape, dtype).backward


def large_numel(llc_bytes: int, dtype: str, cache_factor: float = 4.0) -> int:
    """Elements of every large input: the forward pass (2·numel·itemsize) moves at least
    ``cache_factor`` × LLC, rounded up to a whole number of rows and of channel-norm samples."""
    need = math.ceil(cache_factor * llc_bytes / (2 * itemsize(dtype)))
    unit = math.lcm(ROW, math.prod(CHANNEL_SHAPE))
    return max(1, math.ceil(need / unit)) * unit


def large_shape(norm: str, llc_bytes: int, dtype: str, cache_factor: float = 4.0) -> tuple[int, ...]:
    n = large_numel(llc_bytes, dtype, cache_factor)
    if norm in ROW_NORMS:
        return (n // ROW, ROW)
    return (n // math.prod(CHANNEL_SHAPE), *CHANNEL_SHAPE)


def small_shape(norm: str) -> tuple[int, ...]:
    return SMALL["rows"] if norm in ROW_NORMS else SMALL["channels"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"8192x4096"`` (or ``8192,4096`` / ``(8192, 4096)``) -> ``(8192, 4096)``."""
    parts = [p for p in re.split(r"[x×,*\s()\[\]]+", text.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a shape: {text!r} (write e.g. 8192x4096)") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"not a shape: {text!r} (positive sizes, e.g. 8192x4096)")
    return shape


def shape_fits(norm: str, shape: tuple[int, ...]) -> str | None:
    """None if ``norm`` can run on ``shape``, else why not."""
    if norm in ROW_NORMS:
        return None if len(shape) >= 1 else "needs a rank >= 1 input"
    if norm == "instance_norm" and len(shape) < 3:
        return "instance_norm needs (N, C, *spatial) with a spatial axis"
    if len(shape) < 2:
        return f"{norm} needs (N, C, ...)"
    return None
