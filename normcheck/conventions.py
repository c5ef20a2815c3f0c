r"""The conventions table: per framework and norm layer, each cell measured by running the framework.

Nothing here is typed in from documentation. Every layer is wrapped in a :class:`Probe` (build it
with its defaults, optionally with a momentum; call it in training or eval mode from given running
statistics), and one generic routine per column runs it on a crafted input:

- **default eps**: an input whose every reduction set (whatever the norm: over N and spatial, the
  trailing axes, a group, the spatial axes) holds the values +d and -d in equal numbers, so
  ``y = d / sqrt(d^2 + eps)`` and ``eps = d^2 (1/y^2 - 1)``; d is refined to sqrt(eps) (y ~ 0.7)
  and the result rounded to 3 significant digits. Run in float32.
- **momentum convention / default**: one training step from buffers (0, 1) on an input whose
  channels all have mean 1 and biased variance 1: the new running mean *is* the weight w the
  update gives the batch. With the native momentum argument set to 0.3, w = 0.3 means
  ``new = (1 - m) old + m batch`` (m weights the batch, torch), w = 0.7 ``new = m old + (1 - m)
  batch`` (m weights the old value, Keras/Flax). With the default momentum, w gives the default
  (reported natively and as the torch-convention batch weight).
- **stored variance**: from the same step, ``v = (new_var - (1 - w) old_var) / w`` is the variance
  the update stores: 1 is the biased estimator (1/n), n/(n-1) the unbiased one. A framework that
  stores the biased one is reported as such -- a convention difference, not hidden.
- **channel axis**: the axis the per-channel parameters (statistics) run along, by building the
  layer with its defaults on an input whose axes all have different sizes and reading the
  parameter shape, or (torch, where the size is a constructor argument) by trying which input
  layout the layer accepts.
- **train/eval switch**: the API that switches mode, and what eval measurably normalizes with
  (the running statistics, or the batch's).
- **momentum=None**, **one value per channel in training** (torch raises; what do the others do?)
  and **eval without tracked statistics** (torch's ``track_running_stats=False``): what happens.

:func:`measure` returns one dict per layer; ``normcheck conventions`` prints the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "Probe", "measure", "measure_all", "probes"]

#: The table's columns (dict keys of every row), in order.
COLUMNS = (
    "framework",
    "version",
    "norm",
    "api",
    "default_eps",
    "momentum",
    "momentum_default",
    "stored_variance",
    "channel_axis",
    "train_eval",
    "momentum_none",
    "one_value_training",
    "untracked_eval",
)

DEFAULT = object()  # "leave the argument at the layer's default"
NA = "—"


@dataclass
class Probe:
    """One layer behind a uniform call.

    ``run(x, training, momentum=DEFAULT, state=None) -> (y, new_state or None)``: build the layer
    with its defaults (``momentum`` the native argument, when given), load ``state`` = (running
    mean, running var) if it keeps running statistics, call it on ``x`` (float32, channels where
    the layer's default puts them) in training or eval mode.
    """

    framework: str
    norm: str
    api: str
    run: Callable[..., tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]]
    axis: Callable[[], str] | None = None
    switch: str = ""  # the train/eval API, "" for a layer without modes
    stateful: bool = False
    eps_required: bool = False
    untracked: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # -> (train y, eval y)
    # training steps on one persistent layer -> running (mean, var), where hidden state (torch's
    # num_batches_tracked) matters; else ``run`` is chained with the state carried explicitly
    steps: Callable[[list[np.ndarray], Any], tuple[np.ndarray, np.ndarray]] | None = None
    modes: bool = True  # a layer that trains (False: a function of given statistics, e.g. tf.nn)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- crafted inputs ------------------------------------------------------------------------------


def _parity(shape) -> np.ndarray:
    """(-1)^(sum of the indices): every reduction set of every norm on a (2, 2, 2) input holds as
    many +1 as -1 (mean 0, mean square 1), whatever axis is the channel."""
    idx = np.indices(shape).sum(axis=0)
    return np.where(idx % 2 == 0, 1.0, -1.0)


SHAPE = (2, 2, 2)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = msg.split(", got")[0].split(" (")[0]
    return f"raises {type(e).__name__}" + (f": {msg[:72]}" if msg else "")


def _fmt(v: float) -> str:
    return f"{v:.3g}"


# --- the generic measurements --------------------------------------------------------------------


def default_eps(p: Probe) -> str:
    s = _parity(SHAPE)
    try:
        d, eps = 1e-3, None
        for _ in range(3):
            y, _ = p.run((d * s).astype(np.float32), training=True)
            y0 = float(np.asarray(y, np.float64).flat[0])
            est = d * d * (1.0 / (y0 * y0) - 1.0)
            if est <= 0:
                d /= 1e3
                continue
            eps, d = est, float(np.sqrt(est))
        if eps is None:
            return "0 (below resolution)"
    except TypeError as e:
        if p.eps_required:
            return "required argument"
        return _short(e)
    except Exception as e:
        return _short(e)
    return _fmt(eps)


def _step(p: Probe, momentum=DEFAULT, x=None, state=None):
    x = (1.0 + _parity(SHAPE)).astype(np.float32) if x is None else x
    st = state or (np.zeros(2, np.float32), np.ones(2, np.float32))
    _, new = p.run(x, training=True, momentum=momentum, state=st)
    return new


def _reduce_size(p: Probe) -> int:
    from normcheck import spec

    return spec.plan(p.norm, SHAPE).reduce_size


def momentum_cells(p: Probe) -> dict[str, str]:
    """momentum convention, default, and the stored variance estimator."""
    if not p.stateful:
        return {"momentum": NA, "momentum_default": NA, "stored_variance": NA}
    out = {}
    try:
        w = float(np.mean(_step(p, momentum=0.3)[0]))
        if abs(w - 0.3) < 1e-4:
            conv, batch_weight = "new = (1-m)·old + m·batch", lambda m: m
        elif abs(w - 0.7) < 1e-4:
            conv, batch_weight = "new = m·old + (1-m)·batch", lambda m: 1 - m
        else:
            conv, batch_weight = f"unrecognized (m=0.3 gives batch weight {_fmt(w)})", None
        out["momentum"] = conv
        new = _step(p)
        wd = float(np.mean(new[0]))
        if batch_weight is None:
            out["momentum_default"] = f"batch weight {_fmt(wd)}"
        else:
            native = wd if batch_weight(0.3) == 0.3 else 1 - wd
            out["momentum_default"] = f"{_fmt(native)} (batch weight {_fmt(wd)})"
        if abs(w) < 1e-7:
            out["stored_variance"] = "never stored (the buffers are not updated)"
            return out
        new = _step(p, momentum=0.3)
        v = float(np.mean((new[1].astype(np.float64) - (1 - w) * 1.0) / w))
        n = _reduce_size(p)
        if abs(v - 1.0) < 1e-3:
            out["stored_variance"] = "biased (1/n)"
        elif abs(v - n / (n - 1)) < 1e-3:
            out["stored_variance"] = "unbiased (1/(n-1))"
        else:
            out["stored_variance"] = f"unrecognized: {_fmt(v)} for biased 1, unbiased {_fmt(n / (n - 1))}"
    except Exception as e:
        for k in ("momentum", "momentum_default", "stored_variance"):
            out.setdefault(k, _short(e))
    return out


def train_eval(p: Probe) -> str:
    if not p.stateful:
        return "none (no state)"
    x = (1.0 + _parity(SHAPE)).astype(np.float32)
    try:
        st = (np.zeros(2, np.float32), np.ones(2, np.float32))
        y_eval, _ = p.run(x, training=False, state=st)
        y_train, _ = p.run(x, training=True, state=st)
        running = np.allclose(y_eval, x / np.sqrt(1 + 1e-3), rtol=1e-3)  # eps <= 1e-3 everywhere
        batch = np.allclose(y_eval, y_train, rtol=1e-4, atol=1e-5)
        what = "running statistics" if running else ("batch statistics" if batch else "neither statistic")
        return f"{p.switch}; eval uses the {what}"
    except Exception as e:
        return f"{p.switch}; {_short(e)}"


def momentum_none(p: Probe) -> str:
    if not p.stateful:
        return NA
    try:
        x1 = (1.0 + _parity(SHAPE)).astype(np.float32)
        if p.steps is not None:
            st = p.steps([x1, x1 + 2], None)
        else:
            st = _step(p, momentum=None, x=x1)
            st = _step(p, momentum=None, x=x1 + 2, state=st)
        m = float(np.mean(st[0]))
        if abs(m - 2.0) < 1e-5:
            return "cumulative average of the batch statistics"
        if abs(m) < 1e-7:
            return "accepted, but the running statistics are never updated"
        return f"accepted: running mean {_fmt(m)} from 0 after batches of mean 1 and 3"
    except Exception as e:
        return "not accepted (" + _short(e) + ")"


def one_value_training(p: Probe) -> str:
    """Training on a batch whose reduction set has one element per channel."""
    if p.norm not in ("batch_norm", "instance_norm") or not p.modes:
        return NA
    last = p.axis is not None and p.axis() == "-1"
    shape = (1, 2) if p.norm == "batch_norm" else ((1, 1, 2) if last else (1, 2, 1))
    x = np.array([0.5, -1.5], np.float32).reshape(shape)
    try:
        st = (np.zeros(2, np.float32), np.ones(2, np.float32)) if p.stateful else None
        y, new = p.run(x, training=True, state=st) if p.stateful else p.run(x, training=True)
    except Exception as e:
        return _short(e)
    y = np.asarray(y, np.float64).ravel()
    out = f"y = {', '.join(_fmt(v) for v in y)}"
    if new is not None:
        out += f"; running_var 1 -> {_fmt(float(np.asarray(new[1]).ravel()[0]))}"
    return out


def untracked_eval(p: Probe) -> str:
    if p.norm not in ("batch_norm", "instance_norm"):
        return NA
    if p.untracked is None:
        return "n/a (no untracked mode)" if p.stateful else NA
    x = (1.0 + _parity(SHAPE) * np.arange(1, 9).reshape(SHAPE) / 4).astype(np.float32)
    try:
        y_train, y_eval = p.untracked(x)
    except Exception as e:
        return _short(e)
    if np.allclose(y_train, y_eval, rtol=1e-5, atol=1e-6):
        return "eval uses the batch statistics"
    return "eval differs from training"


def row(p: Probe, version: str | None) -> dict[str, Any]:
    r: dict[str, Any] = {"framework": p.framework, "version": version, "norm": p.norm, "api": p.api}
    r["default_eps"] = default_eps(p)
    r.update(momentum_cells(p))
    try:
        r["channel_axis"] = p.axis() if p.axis else NA
    except Exception as e:
        r["channel_axis"] = _short(e)
    r["train_eval"] = train_eval(p)
    r["momentum_none"] = momentum_none(p)
    r["one_value_training"] = one_value_training(p)
    r["untracked_eval"] = untracked_eval(p)
    if p.notes:
        r["notes"] = p.notes
    return r


# --- probes: numpy (the canonical reference) --------------------------------------------------


def _numpy_probes() -> list[Probe]:
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


# --- probes: torch -----------------------------------------------------------------------------


def _torch_probes() -> list[Probe]:
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


# --- probes: jax / flax ----------------------------------------------------------------------


def _flax_probes() -> list[Probe]:
    import flax.linen as nn
    import jax
    from flax import nnx

    from normcheck.adapters.jax import put

    key = jax.random.PRNGKey(0)

    def linen_probe(norm, cls_name, fixed=None, stateful=False, notes="") -> Probe:
        fixed = fixed or {}
        cls = getattr(nn, cls_name)

        def run(x, training, momentum=DEFAULT, state=None):
            kw = dict(fixed)
            if momentum is not DEFAULT:
                kw["momentum"] = momentum
            if stateful:
                kw["use_running_average"] = not training
            m = cls(**kw)
            variables = dict(m.init(key, put(x)))
            if stateful and state is not None:
                variables["batch_stats"] = {"mean": put(state[0]), "var": put(state[1])}
            if stateful and training:
                y, upd = m.apply(variables, put(x), mutable=["batch_stats"])
                bs = upd["batch_stats"]
                return np.asarray(y), (np.asarray(bs["mean"]), np.asarray(bs["var"]))
            y = m.apply(variables, put(x))
            bs = variables.get("batch_stats")
            return np.asarray(y), (np.asarray(bs["mean"]), np.asarray(bs["var"])) if stateful else None

        def axis():
            kw = dict(fixed)
            if stateful:
                kw["use_running_average"] = False
            v = cls(**kw).init(key, put(np.zeros((2, 3, 4, 5), np.float32)))
            shape = v["params"]["scale"].shape
            return {(3,): "1", (5,): "-1"}.get(tuple(shape), f"scale shape {tuple(shape)}")

        switch = "use_running_average= (constructor or call)" if stateful else ""
        return Probe("jax", norm, f"flax.linen.{cls_name}", run, axis, switch, stateful, notes=notes)

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
            y = np.asarray(layer(put(x)))
            new = (np.asarray(layer.mean[...]), np.asarray(layer.var[...])) if stateful else None
            return y, new

        def axis():
            ok = []
            for a, shape in (("1", (2, 3, 4, 5)), ("-1", (2, 5, 4, 3))):
                try:
                    build(3)(put(np.zeros(shape, np.float32)))
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
        nnx_probe("batch_norm", "BatchNorm", stateful=True),
        nnx_probe("instance_norm", "InstanceNorm", notes="no running statistics"),
        nnx_probe("layer_norm", "LayerNorm"),
        nnx_probe("group_norm", "GroupNorm", {"num_groups": 1}, notes=gn_note),
        nnx_probe("rms_norm", "RMSNorm"),
        Probe("jax", "layer_norm", "jax.nn.standardize", standardize_run, standardize_axis),
    ]


# --- probes: tensorflow / keras ----------------------------------------------------------------


def _keras_probes() -> list[Probe]:
    from normcheck.adapters import tensorflow as tfa

    keras, tf = tfa._keras(), tfa._tf()

    def keras_probe(norm, cls_name, fixed=None, stateful=False, notes="") -> Probe:
        fixed = fixed or {}
        cls = getattr(keras.layers, cls_name)

        def run(x, training, momentum=DEFAULT, state=None):
            kw = dict(fixed)
            if momentum is not DEFAULT:
                kw["momentum"] = momentum
            layer = cls(**kw)
            layer.build(x.shape)
            if stateful and state is not None:
                layer.moving_mean.assign(np.asarray(state[0]))
                layer.moving_variance.assign(np.asarray(state[1]))
            y = layer(tf.convert_to_tensor(x), training=training).numpy()
            new = (layer.moving_mean.numpy(), layer.moving_variance.numpy()) if stateful else None
            return y, new

        def axis():
            layer = cls(**fixed)
            layer.build((2, 3, 4, 5))
            w = layer.scale if cls_name == "RMSNormalization" else layer.gamma
            return {(3,): "1", (5,): "-1"}.get(tuple(w.shape), f"gamma shape {tuple(w.shape)}")

        switch = "layer(x, training=bool)" if stateful else ""
        return Probe("tensorflow", norm, f"keras.layers.{cls_name}", run, axis, switch, stateful, notes=notes)

    def tfnn_run(x, training, momentum=DEFAULT, state=None):
        mean, var = tf.nn.moments(tf.convert_to_tensor(x), axes=[0, 2], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, None, None).numpy(), None  # no variance_epsilon

    return [
        keras_probe("batch_norm", "BatchNormalization", stateful=True),
        keras_probe("layer_norm", "LayerNormalization"),
        keras_probe("group_norm", "GroupNormalization", {"groups": 1}, notes="groups=1 given (default 32)"),
        keras_probe("rms_norm", "RMSNormalization"),
        Probe(
            "tensorflow",
            "batch_norm",
            "tf.nn.batch_normalization",
            tfnn_run,
            None,
            eps_required=True,
            modes=False,
            notes="a function of given statistics: no state, no layout",
        ),
    ]


# --- probes: onnx runtime ------------------------------------------------------------------------


def _onnxruntime_probes() -> list[Probe]:
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


PROBES: dict[str, Callable[[], list[Probe]]] = {
    "numpy": _numpy_probes,
    "torch": _torch_probes,
    "jax": _flax_probes,
    "tensorflow": _keras_probes,
    "onnxruntime": _onnxruntime_probes,
}


def probes(framework: str) -> list[Probe]:
    if framework not in PROBES:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(PROBES)}")
    return PROBES[framework]()


def measure(framework: str) -> list[dict[str, Any]]:
    """The conventions rows of ``framework`` (see the module docstring), measured now."""
    from normcheck import adapters

    version = adapters.get(framework).version()
    return [row(p, version) for p in probes(framework)]


def measure_all(frameworks=None) -> list[dict[str, Any]]:
    """Rows for every installed framework (numpy, torch, jax, tensorflow order)."""
    from normcheck import adapters

    out = []
    for a in adapters.installed(frameworks):
        out += measure(a.name)
    return out
