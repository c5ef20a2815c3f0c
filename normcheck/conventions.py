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

This module is framework-free: the probes (each framework's layers behind :class:`Probe`) live in
the adapter packages, ``normcheck/adapters/<framework>/conventions.py``, and are reached through
:meth:`normcheck.adapters.Adapter.convention_probes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normcheck.adapters.base import DEFAULT, Probe

NA = "—"

__all__ = ["COLUMNS", "DEFAULT", "Probe", "measure", "measure_all", "probes"]

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
    """What ``momentum=None`` does: two training steps of one freshly built layer (``Probe.steps``,
    where hidden state such as torch's ``num_batches_tracked`` matters; else ``run`` chained with
    the state carried) from buffers (0, 1), on batches of mean 1 then 3. The cumulative average
    (torch's BatchNorm: factor 1 / num_batches_tracked) gives a running mean of 2; the misreadings
    a layer may have give 0 (None read as "no update"), 3 (every batch replaces the buffers: the
    count never moves, the factor stays 1) or 0.39 (None read as the default 0.1); anything else
    is reported with the two steps' batch weights (the cumulative average's are 1 and 1/2)."""
    if not p.stateful:
        return NA
    try:
        x1 = (1.0 + _parity(SHAPE)).astype(np.float32)

        def run(xs):
            if p.steps is not None:
                return p.steps(xs, None)
            st = None
            for x in xs:
                st = _step(p, momentum=None, x=x, state=st)
            return st

        m = float(np.mean(run([x1, x1 + 2])[0]))
        if abs(m - 2.0) < 1e-5:
            return "cumulative average of the batch statistics"
        if abs(m) < 1e-7:
            return "accepted, but the running statistics are never updated"
        if abs(m - 3.0) < 1e-5:
            return "accepted, but each batch replaces the running statistics (a factor of 1 every step, not 1/k)"
        if abs(m - 0.39) < 1e-5:
            return "accepted, but read as momentum 0.1 (an exponential average, not a cumulative one)"
        w1 = float(np.mean(run([x1])[0]))  # from 0 on a batch of mean 1: the first step's batch weight
        w2 = (m - w1) / (3.0 - w1) if abs(3.0 - w1) > 1e-7 else float("nan")
        return (
            f"accepted: running mean {_fmt(m)} from 0 after batches of mean 1 and 3 "
            f"(batch weights {_fmt(w1)}, {_fmt(w2)}; cumulative: 1, 0.5)"
        )
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


# --- the probes: each adapter's -------------------------------------------------------------------


def probes(framework: str) -> list[Probe]:
    """The probes of ``framework``: its adapter's :meth:`~normcheck.adapters.Adapter.convention_probes`
    (in ``normcheck/adapters/<framework>/conventions.py``)."""
    from normcheck import adapters

    return adapters.get(framework).convention_probes()


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
