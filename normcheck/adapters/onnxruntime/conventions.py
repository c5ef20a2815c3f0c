"""The conventions-table probes of the ONNX operators, each run by ONNX Runtime as a one-node model: each layer behind the uniform
:class:`normcheck.conventions.Probe` call, measured by :func:`normcheck.conventions.measure`.
"""

from __future__ import annotations

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

__all__ = ["probes"]


def probes() -> list[Probe]:
    """Each ONNX operator as a one-node model run by ORT's CPU provider, with only the attributes
    a probe sets (everything else at the operator's default); inputs the operator requires (scale,
    B, input_mean, input_var) are ones/zeros/the given state."""
    from normcheck.adapters import onnxruntime as oa

    def op_probe(norm, op, opset, inputs, fixed=None, stateful=False, notes="") -> Probe:
        """``inputs(x, channels) -> dict`` of the inputs after X (channels: the scale's size)."""
        fixed = fixed or {}

        def call(x, training, attrs, state=None, channels=None):
            x = np.asarray(x, np.float32)
            feeds = {"X": x, **inputs(x, channels)}
            outputs = {"Y": (np.float32, x.shape)}
            if stateful:
                c = len(feeds["scale"])
                if state is not None:
                    feeds["input_mean"], feeds["input_var"] = (np.asarray(s, np.float32) for s in state)
                attrs = {**attrs, "training_mode": int(training)}
                if training:
                    outputs.update(running_mean=(np.float32, (c,)), running_var=(np.float32, (c,)))
            got = oa.run_node(op, feeds, {**fixed, **attrs}, opset, outputs)
            if not stateful:
                return got[0], None
            return got[0], ((got[1], got[2]) if training else (feeds["input_mean"], feeds["input_var"]))

        def run(x, training, momentum=DEFAULT, state=None):
            attrs = {} if momentum is DEFAULT else {"momentum": momentum}  # None: onnx.helper omits it
            return call(x, training, attrs, state)

        def axis():
            ok = []
            for a, shape in (("1", (2, 3, 4, 5)), ("-1", (2, 5, 4, 3))):
                try:
                    call(np.zeros(shape, np.float32), True, {}, channels=3)
                    ok.append(a)
                except Exception:
                    pass
            return " or ".join(ok) or "?"

        switch = "training_mode attribute (1: three outputs Y, running_mean, running_var)" if stateful else ""
        return Probe("onnxruntime", norm, f"onnx {op}-{opset}", run, axis, switch, stateful, notes=notes)

    def ones(n):
        return np.ones(n, np.float32)

    def zeros(n):
        return np.zeros(n, np.float32)

    def per_channel(x, c, mean_var=False):
        c = c or x.shape[1]
        d = {"scale": ones(c), "B": zeros(c)}
        if mean_var:
            d.update(input_mean=zeros(c), input_var=ones(c))
        return d

    def trailing(x, c, bias=True):
        c = c or x.shape[-1]
        return {"scale": ones(c), "B": zeros(c)} if bias else {"scale": ones(c)}

    def gn(x, c):
        c = c or x.shape[1]
        return {"scale": ones(c), "bias": zeros(c)}

    given = "scale/B (and input_mean/input_var) are required inputs: ones/zeros given"
    return [
        op_probe(
            "batch_norm",
            "BatchNormalization",
            15,
            lambda x, c: per_channel(x, c, mean_var=True),
            stateful=True,
            notes=given + "; momentum=None: onnx.helper omits the attribute (its default)",
        ),
        op_probe("instance_norm", "InstanceNormalization", 22, per_channel, notes=given + "; no running statistics"),
        op_probe("layer_norm", "LayerNormalization", 17, trailing, notes="Scale required (ones given); axis=-1"),
        op_probe(
            "group_norm",
            "GroupNormalization",
            21,
            gn,
            {"num_groups": 1},
            notes="num_groups=1 given (required); scale/bias per channel (opset 21), ones/zeros given",
        ),
        op_probe(
            "rms_norm",
            "RMSNormalization",
            23,
            lambda x, c: trailing(x, c, bias=False),
            notes="scale required (ones given); axis=-1",
        ),
    ]
