"""ONNX Runtime's part of ``normcheck bench`` (:meth:`OnnxRuntimeAdapter.bench_natives`): the
adapter's native-operator Impls (form ``onnx``: one cached ``InferenceSession`` per shape), whose
call is the native one since ORT takes and returns NumPy arrays; CPU provider, forward only."""

from __future__ import annotations

from normcheck.adapters.base import BenchNatives

__all__ = ["NATIVES"]

NORMS = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
NO_AUTODIFF = "ONNX Runtime runs inference graphs (no automatic differentiation)"


def _impl(norm: str):
    """The adapter's native-operator form (GroupNormalization-21 for group_norm)."""
    from normcheck.adapters.onnxruntime import ADAPTER

    return next(i for i in ADAPTER.implementations() if i.norm == norm and i.form == "onnx")


def api(norm: str, mode: str = "eager") -> str:
    return _impl(norm).api + " (InferenceSession.run)"


def build(case):
    """The first call builds the session, the timed ones only run it; the canonical arguments are
    translated to the operator's inputs and attributes (a few per-channel values)."""
    if not case.forward:
        raise ValueError(NO_AUTODIFF)
    name = case.target_api() if case.target else api(case.norm)
    return case.host_call(case.target or _impl(case.norm), name)


NATIVES = BenchNatives(
    modes=("eager",),  # one InferenceSession.run per call (the adapter's mode)
    layouts={n: ("channels_first",) for n in NORMS},  # ONNX tensors are (N, C, D1, ...)
    api=api,
    build=build,
    forward_only=NO_AUTODIFF,
    cpu_only="the ONNX Runtime adapter runs the CPU execution provider only",
)
