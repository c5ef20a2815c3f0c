"""NumPy: the float64 reference rounded to the input dtype, and a float32-faithful implementation.

The ``reference`` form is the best a kernel can do (float64 computation, one final rounding): the
floor of the error model's calibration.
The float32 form runs the same spec-driven routine as :mod:`normcheck.reference`, but in the
input's precision (16-bit inputs are computed in float32 and rounded back): it is what a careful
hand-written NumPy kernel does, and it must pass the error model at float32.
"""

from __future__ import annotations

import numpy as np

from normcheck import reference, spec
from normcheck.adapters.base import Adapter, Impl


def _rounded(fn):
    def rounded(input, *args, **kwargs):
        return fn(input, *args, **kwargs).astype(np.asarray(input).dtype)

    rounded.__signature__ = fn.__signature__
    rounded.__name__ = fn.__name__
    return rounded


class NumpyAdapter(Adapter):
    name = "numpy"
    module = "numpy"
    parts = frozenset({"conventions", "bench"})
    modules = ("numpy",)
    array_name = "numpy.ndarray"
    cost = 1
    packages = ("numpy",)
    roof_devices = ("cpu",)  # the copy roof's baseline

    def owns(self, x) -> bool:
        return isinstance(x, np.ndarray | np.generic)

    def to_native(self, a, *, device=None):
        return np.array(a, copy=True)

    def to_numpy(self, x):
        return np.asarray(x)

    def implementations(self) -> list[Impl]:
        out = []
        for name in spec.names():
            s = spec.get(name)
            for form, fn, api in (
                ("reference", _rounded(reference.function(s)), f"normcheck.reference.{name}"),
                (
                    "float32",
                    reference.function(s, faithful=True),
                    f"normcheck.reference.function({name!r}, faithful=True)",
                ),
            ):
                out.append(
                    Impl(
                        "numpy",
                        name,
                        form,
                        fn,
                        api=api,
                        running_stats=s.has_running_stats,
                    )
                )
        return out


ADAPTER = NumpyAdapter()
