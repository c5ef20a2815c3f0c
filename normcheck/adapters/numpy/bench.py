"""NumPy's part of ``normcheck bench`` (:meth:`NumpyAdapter.bench_natives`): the float32 NumPy
kernel ``normcheck.reference.function(norm, faithful=True)`` on host arrays, forward only, and
``numpy.copyto`` for the copy roof."""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import BenchNatives

__all__ = ["NATIVES"]

NORMS = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
NO_AUTODIFF = "NumPy has no automatic differentiation (forward only)"


def api(norm: str, mode: str = "eager") -> str:
    return f"normcheck.reference.function({norm!r}, faithful=True)"


def build(case):
    from normcheck import reference

    if not case.forward:
        raise ValueError(NO_AUTODIFF)
    fn = case.target or reference.function(case.norm, faithful=True)
    name = getattr(case.target, "__qualname__", "target") if case.target else api(case.norm)
    return case.host_call(fn, name)


def copy(nbytes: int, device: str):
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    return "numpy.copyto", lambda: np.copyto(dst, src), None


NATIVES = BenchNatives(
    modes=("eager",),
    layouts={n: ("channels_first",) for n in NORMS},
    api=api,
    build=build,
    forward_only=NO_AUTODIFF,
    cpu_only="NumPy runs on the CPU only",
    copy=copy,
)
