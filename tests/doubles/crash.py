"""Targets that end the process they run in (tests/check/test_check_crash.py): each is a correct NumPy
layer_norm for six calls, then on its seventh call in a process it segfaults, aborts, exits,
hangs inside C or allocates without bound (under an RLIMIT_AS it sets itself, in native code
that does not check malloc's result)."""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

GOOD_CALLS = 6
_calls = [0]


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """A correct LayerNorm (float64 inside)."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    x64 = x.astype(np.float64)
    y = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, keepdims=True) + eps)
    y = y * (1 if weight is None else weight) + (0 if bias is None else bias)
    return y.astype(x.dtype)


def _seventh() -> bool:
    _calls[0] += 1
    return _calls[0] > GOOD_CALLS


def _limit_memory() -> None:
    """Cap this process's address space at what it uses now plus 512 MiB (RLIMIT_AS)."""
    import resource

    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = used + (512 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))


def segfaults(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _seventh():
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return layer_norm(x, normalized_shape, weight, bias, eps)


def aborts(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _seventh():
        os.abort()
    return layer_norm(x, normalized_shape, weight, bias, eps)


def exits_0(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _seventh():
        os._exit(0)
    return layer_norm(x, normalized_shape, weight, bias, eps)


def sys_exits_0(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _seventh():
        sys.exit(0)
    return layer_norm(x, normalized_shape, weight, bias, eps)


def hangs_in_c(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _seventh():
        ctypes.CDLL(None).sleep(100)  # blocks inside libc
    return layer_norm(x, normalized_shape, weight, bias, eps)


def allocates(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Native code that allocates without bound and never checks malloc's result: under the
    RLIMIT_AS malloc returns NULL, and the write through it kills the process."""
    if _seventh():
        _limit_memory()
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        while True:
            p = libc.malloc(64 << 20)
            ctypes.memset(p or 0, 0, 64)  # NULL once the address space is used up: SIGSEGV
    return layer_norm(x, normalized_shape, weight, bias, eps)


def segfaults_on_rank_4(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Crashes on every 4-d input, whatever came before: a crash the case alone reproduces."""
    if x.ndim == 4:
        ctypes.string_at(0)
    return layer_norm(x, normalized_shape, weight, bias, eps)
