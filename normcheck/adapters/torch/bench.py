"""torch's part of ``normcheck bench`` (:meth:`TorchAdapter.bench_natives`):
``torch.nn.functional.<norm>`` on torch tensors (channels_last: the ``torch.channels_last`` memory
format of the same NCHW tensor; ``mode="compiled"``: ``torch.compile``), ``torch.autograd.grad``
for the backward pass, ``torch.Tensor.copy_`` for the copy roof, and the CUDA device's name and L2.

The tables are the adapter's (:mod:`normcheck.adapters.torch`): the functional APIs, the
channels-last memory formats and norms, the norms whose CPU kernel wants float32 parameters with a
16-bit input."""

from __future__ import annotations

from normcheck.adapters.base import BenchNatives
from normcheck.adapters.torch import (
    CHANNELS_LAST,
    CHANNELS_LAST_NORMS,
    FUNCTIONAL,
    MIXED_PRECISION_FLOAT32_PARAMS,
)

__all__ = ["NATIVES"]


def api(norm: str, mode: str = "eager") -> str:
    name = f"torch.nn.functional.{norm}"
    return f"torch.compile({name})" if mode == "compiled" else name


def build(case):
    import torch

    F = torch.nn.functional
    norm, shape, dtype = case.norm, case.shape, case.dtype
    dev = torch.device(case.device)
    dt = getattr(torch, dtype)
    cuda = dev.type == "cuda"
    fmt = None
    if case.layout == "channels_last":
        name = CHANNELS_LAST.get(len(shape))
        if name is None:
            raise ValueError(f"torch's channels_last memory formats need a 4D or 5D input, got {len(shape)}D")
        fmt = getattr(torch, name)

    def tensor(a, shape_):
        t = torch.from_numpy(a).reshape(shape_).to(device=dev, dtype=dt)
        return t if fmt is None else t.contiguous(memory_format=fmt)

    x = tensor(case.host(), shape)
    w32, b32 = case.params()
    # torch's CPU batch_norm takes a 16-bit input with float32 parameters and buffers (as autocast does).
    pdt = torch.float32 if norm in MIXED_PRECISION_FLOAT32_PARAMS and dtype in ("float16", "bfloat16") else dt
    w, b = (torch.from_numpy(p).to(device=dev, dtype=pdt) for p in (w32, b32))
    rm = torch.zeros(case.channels, device=dev, dtype=torch.float32)
    rv = torch.ones(case.channels, device=dev, dtype=torch.float32)
    native = getattr(F, FUNCTIONAL[norm].rpartition(".")[2])  # KeyError for a norm torch has no function of
    op = case.canonical(case.target or native, rm, rv)
    if case.mode == "compiled":
        op = torch.compile(op, dynamic=False)
    sync = (lambda _: torch.cuda.synchronize(dev)) if cuda else None

    if case.forward:

        def run():
            with torch.no_grad():
                return op(x, w, b)

    else:
        xg = x.detach().requires_grad_(True)
        wg, bg = w.detach().requires_grad_(True), b.detach().requires_grad_(True)
        inputs = (xg, wg) if norm == "rms_norm" else (xg, wg, bg)
        dy = tensor(case.host(seed=1), shape)

        def run():
            y = op(xg, wg, bg)
            return (y.detach(), *torch.autograd.grad(y, inputs, dy))

    def output(out):
        y = case.first(out).detach().to("cpu").contiguous()
        return y.float().numpy()

    name = case.target_api() if case.target else api(norm, case.mode)
    return case.native(run, sync, name, output)


def copy(nbytes: int, device: str):
    import torch

    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = (lambda _: torch.cuda.synchronize()) if device.startswith("cuda") else None
    return "torch.Tensor.copy_", lambda: dst.copy_(src), sync


def gpu(device: str) -> dict:
    """The CUDA device's name and L2 size (0 where torch does not report it)."""
    import torch

    props = torch.cuda.get_device_properties(torch.device(device))
    return {
        "name": torch.cuda.get_device_name(torch.device(device)),
        "l2_bytes": int(getattr(props, "L2_cache_size", 0) or 0),
        "l2_source": f"torch.cuda.get_device_properties({device!r}).L2_cache_size",
    }


NATIVES = BenchNatives(
    modes=("eager", "compiled"),
    layouts={
        n: ("channels_first", "channels_last") if n in CHANNELS_LAST_NORMS else ("channels_first",) for n in FUNCTIONAL
    },
    api=api,
    build=build,
    layouts_keep_logical_shape=True,
    copy=copy,
    gpu=gpu,
)
