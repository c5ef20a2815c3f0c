"""The conventions-table probes of the ``torch.nn`` modules: each layer behind the uniform
:class:`normcheck.conventions.Probe` call, measured by :func:`normcheck.conventions.measure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

__all__ = ["probes"]


def probes() -> list[Probe]:
    import torch

    def module_probe(norm, api, build: Callable[..., Any], stateful=False, switch="", notes="") -> Probe:
        def run(x, training, momentum=DEFAULT, state=None):
            kw = {} if momentum is DEFAULT else {"momentum": momentum}
            m = build(x.shape, **kw)
            if stateful and state is not None:
                m.running_mean.copy_(torch.from_numpy(np.asarray(state[0])))
                m.running_var.copy_(torch.from_numpy(np.asarray(state[1])))
            m.train(training)
            with torch.no_grad():
                y = m(torch.from_numpy(x)).numpy()
            new = (m.running_mean.numpy().copy(), m.running_var.numpy().copy()) if stateful else None
            return y, new

        def axis():
            ok = []
            for a, shape in (("1", (2, 3, 4, 5)), ("-1", (2, 5, 4, 3))):
                try:
                    m = build((2, 3, 4, 5), features=3, affine=True)
                    with torch.no_grad():
                        m(torch.zeros(shape))
                    ok.append(a)
                except Exception:
                    pass
            return " or ".join(ok) or "?"

        untracked = steps = None
        if stateful:

            def steps(xs, momentum):
                m = build(xs[0].shape, momentum=momentum)
                m.train()
                with torch.no_grad():
                    for x in xs:
                        m(torch.from_numpy(x))
                return m.running_mean.numpy().copy(), m.running_var.numpy().copy()

            def untracked(x):
                m = build(x.shape, track_running_stats=False)
                with torch.no_grad():
                    y_train = m.train()(torch.from_numpy(x)).numpy()
                    y_eval = m.eval()(torch.from_numpy(x)).numpy()
                return y_train, y_eval

        return Probe("torch", norm, api, run, axis, switch, stateful, untracked=untracked, steps=steps, notes=notes)

    def bn(shape, features=None, affine=None, **kw):
        rank = len(shape)
        cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[rank]
        return cls(features or 2, **kw)

    def inn(shape, features=None, affine=None, track_running_stats=True, **kw):
        cls = {3: torch.nn.InstanceNorm1d, 4: torch.nn.InstanceNorm2d, 5: torch.nn.InstanceNorm3d}[max(len(shape), 3)]
        return cls(features or 2, affine=bool(affine), track_running_stats=track_running_stats, **kw)

    def ln(shape, features=None, affine=None, **kw):
        return torch.nn.LayerNorm(features or shape[-1])

    def gn(shape, features=None, affine=None, **kw):
        return torch.nn.GroupNorm(1, features or shape[1])

    def rms(shape, features=None, affine=None, **kw):
        return torch.nn.RMSNorm(features or shape[-1])

    sw = "module.train() / module.eval()"
    return [
        module_probe("batch_norm", "torch.nn.BatchNorm{1,2,3}d", bn, True, sw),
        module_probe(
            "instance_norm",
            "torch.nn.InstanceNorm{1,2,3}d",
            inn,
            True,
            sw,
            "track_running_stats=True given (default False: no running statistics, eval uses the batch's)",
        ),
        module_probe("layer_norm", "torch.nn.LayerNorm", ln),
        module_probe("group_norm", "torch.nn.GroupNorm", gn, notes="num_groups is required (1 given)"),
        module_probe("rms_norm", "torch.nn.RMSNorm", rms, notes="eps=None: finfo(input dtype).eps (float32 here)"),
    ]
