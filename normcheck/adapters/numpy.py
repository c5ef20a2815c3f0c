"""NumPy: the float64 reference itself, and a float32-faithful NumPy implementation.

The float32 form runs the same spec-driven routine as :mod:`normcheck.reference`, but in the
input's precision (16-bit inputs are computed in float32 and rounded back): it is what a careful
hand-written NumPy kernel does, and it must pass the error model at float32.
"""

from __future__ import annotations

import numpy as np

from normcheck import reference, spec
from normcheck.adapters.base import Adapter, Impl


class NumpyAdapter(Adapter):
    name = "numpy"
    module = "numpy"

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
            for form, faithful, api in (
                ("reference", False, f"normcheck.reference.{name}"),
                ("float32", True, f"normcheck.reference.function({name!r}, faithful=True)"),
            ):
                out.append(
                    Impl(
                        "numpy",
                        name,
                        form,
                        reference.function(s, faithful=faithful),
                        api=api,
                        running_stats=s.has_running_stats,
                    )
                )
        return out


ADAPTER = NumpyAdapter()
