"""Floating dtypes by name, including bfloat16 through ``ml_dtypes`` (imported only when asked)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "dtype_name",
    "finfo",
    "is_16bit",
    "np_dtype",
    "overflow_threshold",
    "underflow_unit",
    "unit_roundoff",
]

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def np_dtype(name) -> np.dtype:
    """``"bfloat16"`` -> ``ml_dtypes.bfloat16``; any other name or dtype -> ``np.dtype(name)``."""
    if str(name) == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(dtype) -> str:
    """The dtype's name (``"float32"``, ``"bfloat16"``), read once per dtype (``np.dtype.name`` is
    computed in Python on each access, some microseconds: the audit asks for every case)."""
    return _name(dtype if isinstance(dtype, np.dtype) else np_dtype(dtype))


@lru_cache(maxsize=64)
def _name(dtype: np.dtype) -> str:
    return dtype.name


def finfo(dtype):
    return _finfo(dtype if isinstance(dtype, str) else np.dtype(dtype))


@lru_cache(maxsize=64)
def _finfo(dtype):
    """Cached: ``np.finfo`` and ``dtype.name`` cost microseconds, which the per-case comparison of
    the audit pays several times on inputs of a few elements."""
    dtype = np_dtype(dtype) if isinstance(dtype, str) else dtype
    if dtype.name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.finfo(dtype)
    return np.finfo(dtype)


def unit_roundoff(dtype) -> float:
    """u = eps / 2 = 2**-p for a p-bit significand (float32: 2**-24)."""
    return float(finfo(dtype).eps) / 2


def underflow_unit(dtype) -> float:
    """eta_min: half the smallest subnormal, the largest absolute error of rounding a result into
    the subnormal range (= u times the smallest normal; float16: 2**-25)."""
    f = finfo(dtype)
    return float(getattr(f, "smallest_subnormal", f.tiny * f.eps)) / 2


def overflow_threshold(dtype) -> float:
    """The magnitude from which a real number rounds to inf in ``dtype`` (round to nearest):
    ``2**emax (2 - 2**-p)``, i.e. the largest finite value plus half an ulp (float16: 65520);
    ``math.inf`` for float64, the reference's own dtype."""
    f = finfo(dtype)
    top, half_ulp = int(f.maxexp), int(f.maxexp) - int(f.nmant) - 2
    return float("inf") if top > 1023 else 2.0**top - 2.0**half_ulp


def is_16bit(dtype) -> bool:
    return np_dtype(dtype).itemsize == 2
