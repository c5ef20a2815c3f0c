"""The conventions-table probes of the flax linen and nnx layers and ``jax.nn.standardize``: each layer behind the uniform
:class:`normcheck.conventions.Probe` call, measured by :func:`normcheck.conventions.measure`.

The layers run under ``jax.jit``, as the audit runs them (op by op, every primitive of every probe
is compiled apart): linen's ``init`` and ``apply`` in one program per module configuration, nnx's
call under ``nnx.jit`` (which writes the running statistics back to the layer); a scale's shape is
read with ``jax.eval_shape``.
"""

from __future__ import annotations

import functools

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

__all__ = ["probes"]


def probes() -> list[Probe]:
    import flax.linen as nn
    from flax import nnx

    from normcheck.adapters.jax import put, setup

    jax = setup()

    key = jax.random.PRNGKey(0)

    @functools.cache
    def linen_program(cls, kw: tuple, mutable: bool):
        """``run(x, stats) -> (y, batch_stats or None)``: ``cls(**dict(kw))`` initialised and applied
        in one ``jax.jit`` program, ``stats`` (running mean and variance, or None) replacing the
        initial statistics; built once per configuration."""
        m = cls(**dict(kw))

        def run(x, stats):
            variables = dict(m.init(key, x))
            if stats is not None:
                variables["batch_stats"] = {"mean": stats[0], "var": stats[1]}
            if mutable:
                y, upd = m.apply(variables, x, mutable=["batch_stats"])
                return y, upd["batch_stats"]
            return m.apply(variables, x), variables.get("batch_stats")

        return jax.jit(run)

    def linen_probe(norm, cls_name, fixed=None, stateful=False, notes="") -> Probe:
        fixed = fixed or {}
        cls = getattr(nn, cls_name)

        def run(x, training, momentum=DEFAULT, state=None):
            kw = dict(fixed)
            if momentum is not DEFAULT:
                kw["momentum"] = momentum
            if stateful:
                kw["use_running_average"] = not training
            program = linen_program(cls, tuple(sorted(kw.items())), stateful and training)
            stats = (put(state[0]), put(state[1])) if stateful and state is not None else None
            y, bs = program(put(x), stats)
            return np.asarray(y), (np.asarray(bs["mean"]), np.asarray(bs["var"])) if stateful else None

        def axis():
            kw = dict(fixed)
            if stateful:
                kw["use_running_average"] = False
            x = jax.ShapeDtypeStruct((2, 3, 4, 5), np.float32)
            v = jax.eval_shape(lambda x: cls(**kw).init(key, x), x)  # shapes only: nothing runs
            shape = v["params"]["scale"].shape
            return {(3,): "1", (5,): "-1"}.get(tuple(shape), f"scale shape {tuple(shape)}")

        switch = "use_running_average= (constructor or call)" if stateful else ""
        return Probe("jax", norm, f"flax.linen.{cls_name}", run, axis, switch, stateful, notes=notes)

    call = nnx.jit(lambda layer, x: layer(x))

    def nnx_probe(norm, cls_name, fixed=None, stateful=False, notes="") -> Probe:
        fixed = fixed or {}
        cls = getattr(nnx, cls_name)

        def build(features, momentum=DEFAULT):
            kw = dict(fixed)
            if momentum is not DEFAULT:
                kw["momentum"] = momentum
            return cls(features, **kw, rngs=nnx.Rngs(0))

        def run(x, training, momentum=DEFAULT, state=None):
            layer = build(x.shape[-1], momentum)
            if stateful:
                if state is not None:
                    layer.mean.set_value(put(state[0]))
                    layer.var.set_value(put(state[1]))
                layer.train() if training else layer.eval()
            y = np.asarray(call(layer, put(x)))
            new = (np.asarray(layer.mean[...]), np.asarray(layer.var[...])) if stateful else None
            return y, new

        def axis():
            ok = []
            for a, shape in (("1", (2, 3, 4, 5)), ("-1", (2, 5, 4, 3))):
                try:
                    call(build(3), put(np.zeros(shape, np.float32)))
                    ok.append(a)
                except Exception:
                    pass
            return " or ".join(ok) or "?"

        switch = "layer.train() / layer.eval() (use_running_average)" if stateful else ""
        return Probe("jax", norm, f"flax.nnx.{cls_name}", run, axis, switch, stateful, notes=notes)

    def standardize_run(x, training, momentum=DEFAULT, state=None):
        return np.asarray(jax.nn.standardize(put(x))), None

    def standardize_axis():
        x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
        y = np.asarray(jax.nn.standardize(put(x)))
        zero = [a for a in range(4) if np.allclose(y.mean(axis=a), 0, atol=1e-5)]
        return ", ".join(str(a - 4) for a in zero) + " (reduced)"

    gn_note = "num_groups=1 given (default 32)"
    return [
        linen_probe("batch_norm", "BatchNorm", stateful=True),
        linen_probe("instance_norm", "InstanceNorm", notes="no running statistics"),
        linen_probe("layer_norm", "LayerNorm"),
        linen_probe("group_norm", "GroupNorm", {"num_groups": 1}, notes=gn_note),
        linen_probe("rms_norm", "RMSNorm"),
        *(  # an nnx class an old Flax lacks (nnx.InstanceNorm before 0.12) has no row
            nnx_probe(norm, cls, *rest)
            for norm, cls, *rest in (
                ("batch_norm", "BatchNorm", None, True),
                ("instance_norm", "InstanceNorm", None, False, "no running statistics"),
                ("layer_norm", "LayerNorm"),
                ("group_norm", "GroupNorm", {"num_groups": 1}, False, gn_note),
                ("rms_norm", "RMSNorm"),
            )
            if hasattr(nnx, cls)
        ),
        Probe("jax", "layer_norm", "jax.nn.standardize", standardize_run, standardize_axis),
    ]
