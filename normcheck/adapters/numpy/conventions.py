"""The conventions-table probes of the reference's functions (:mod:`normcheck.reference`, the canonical convention): each layer behind the uniform
:class:`normcheck.conventions.Probe` call, measured by :func:`normcheck.conventions.measure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

__all__ = ["probes"]


def probes() -> list[Probe]:
    from normcheck import reference, spec

    def fn_probe(norm: str, call: Callable, notes: str = "") -> Probe:
        f = reference.function(norm)

        def run(x, training, momentum=DEFAULT, state=None):
            kw: dict[str, Any] = {} if momentum is DEFAULT else {"momentum": momentum}
            if state is not None:
                rm, rv = (np.array(s, np.float64) for s in state)
                y = call(f, x, training=training, running_mean=rm, running_var=rv, **kw)
                return y, (rm, rv)
            return call(f, x, training=training, **kw), None

        def axis():
            ok = []
            for a, shape in (("1", (2, 3, 4, 5)), ("-1", (2, 5, 4, 3))):
                try:
                    call(f, np.zeros(shape), training=True, weight=np.ones(3))
                    ok.append(a)
                except Exception:
                    pass
            return " or ".join(ok) or "?"

        s = reference.function(norm).__signature__
        stateful = "running_mean" in s.parameters
        return Probe(
            "numpy",
            norm,
            f"normcheck.reference.{norm}",
            run,
            axis,
            switch=f"{spec.get(norm).batch_stats_flag}=" if stateful else "",
            stateful=stateful,
            notes=notes,
        )

    def bn(f, x, training, **kw):
        return f(x, kw.pop("running_mean", None), kw.pop("running_var", None), training=training, **kw)

    def inn(f, x, training, **kw):
        return f(x, kw.pop("running_mean", None), kw.pop("running_var", None), use_input_stats=training, **kw)

    def ln(f, x, training, **kw):
        return f(x, x.shape[-1:], **{k: v for k, v in kw.items() if k in ("weight", "bias")})

    def gn(f, x, training, **kw):
        return f(x, 1, **{k: v for k, v in kw.items() if k in ("weight", "bias")})

    def rms(f, x, training, **kw):
        return f(x, x.shape[-1:], **{k: v for k, v in kw.items() if k == "weight"})

    bn_only = np.array([-np.inf, -np.inf, 0.0])  # softmax: exactly one-hot on the BN component

    def sn(f, x, training, **kw):
        rm, rv = kw.pop("running_mean", None), kw.pop("running_var", None)
        return f(x, bn_only, bn_only, rm, rv, training=training, **kw)

    return [
        fn_probe("batch_norm", bn),
        fn_probe("instance_norm", inn),
        fn_probe("layer_norm", ln),
        fn_probe("group_norm", gn),
        fn_probe("rms_norm", rms),
        fn_probe(
            "switchable_norm",
            sn,
            notes="probed with one-hot importance logits on the BN component, the one with running statistics",
        ),
    ]
