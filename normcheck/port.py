r"""Port torch norm layers to Keras and Flax (and Keras back to torch), and check the port.

Supported: ``torch.nn.BatchNorm{1,2,3}d``, ``torch.nn.LayerNorm``, ``torch.nn.GroupNorm``.

- :func:`torch_to_keras` -> a built ``keras.layers.BatchNormalization`` / ``LayerNormalization`` /
  ``GroupNormalization`` (channels-first: ``axis=1``), weights and running statistics copied;
- :func:`keras_to_torch` -> the torch module of such a Keras layer (channels-first ones only:
  torch's norms take the channel at axis 1);
- :func:`torch_to_flax` -> ``(flax.linen module, variables)``: ``BatchNorm(axis=1)``,
  ``LayerNorm(reduction_axes=feature_axes=the normalized axes)``, and for GroupNorm a small
  channels-first wrapper around ``flax.linen.GroupNorm`` (which groups the last axis only);
- :func:`compare_port` -> a :class:`PortReport`: eval outputs, training outputs and the running
  buffers after one training step, each side against the float64 reference under the error model.

Translated hyper-parameters (each from the conventions the adapters use, measured in
``normcheck conventions``):

- momentum: Keras and Flax weight the *old* value, ``m_keras = m_flax = 1 - m_torch``; torch's
  ``momentum=None`` (cumulative average) has no equivalent and is refused (:class:`PortError`);
- eps is passed explicitly (the defaults differ: torch 1e-5, Keras 1e-3, Flax 1e-6 for LN/GN);
- affine: torch's ``weight``/``bias`` presence maps to ``scale``/``center`` (``use_scale``/``use_bias``);
- Flax layers get ``use_fast_variance=False``: Flax's default one-pass variance is a registered
  finding (``flax-fast-variance``), and a port should not add error the original does not have;
- **stored variance**: torch's running variance is the unbiased batch variance's average, Keras's
  and Flax's the biased one's. The copied buffers mean the same thing in eval (both normalize
  with them), but after a training step the ported layer's running variance moves by
  ``m var_biased`` instead of ``m var n/(n-1)``. No hyper-parameter changes that;
  :func:`compare_port` translates the other side's new buffer back with the adapters' formula
  and reports the raw difference in ``notes``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import error_model

__all__ = ["PortError", "PortReport", "compare_port", "keras_to_torch", "torch_to_flax", "torch_to_keras"]


def _flip(m: float) -> float:
    """``1 - m`` (torch <-> Keras/Flax momentum), rounded to 15 significant digits so that a round
    trip returns the momentum as typed (1 - (1 - 0.1) is 0.09999999999999998 in binary)."""
    return float(f"{1.0 - float(m):.15g}")


class PortError(ValueError):
    """The layer (or one of its settings) has no equivalent on the other side."""


_BN_RANK = {"BatchNorm1d": 2, "BatchNorm2d": 4, "BatchNorm3d": 5}


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _kind(module) -> str:
    import torch

    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return "batch_norm"
    if isinstance(module, torch.nn.LayerNorm):
        return "layer_norm"
    if isinstance(module, torch.nn.GroupNorm):
        return "group_norm"
    raise PortError(f"can port torch BatchNorm{{1,2,3}}d, LayerNorm and GroupNorm, not {type(module).__name__}")


def _torch_momentum(module) -> float:
    if module.momentum is None:
        raise PortError("momentum=None (torch's cumulative average) has no Keras/Flax equivalent")
    return float(module.momentum)


def _bn_checks(module) -> None:
    if not module.track_running_stats or module.running_mean is None:
        raise PortError("track_running_stats=False (eval with batch statistics) has no Keras/Flax equivalent")


# --- torch -> keras ----------------------------------------------------------------------------


def torch_to_keras(module, *, input_shape=None):
    """A built Keras layer equivalent to the torch ``module`` (channels-first), state copied.

    ``input_shape`` (optional) fixes the input rank Keras builds for; by default BatchNorm1d: 2,
    BatchNorm2d: 4, BatchNorm3d: 5, GroupNorm: 4, LayerNorm: len(normalized_shape) + 1.
    """
    from normcheck.adapters import tensorflow as tfa

    keras = tfa._keras()
    kind = _kind(module)
    if kind == "batch_norm":
        _bn_checks(module)
        rank = len(input_shape) if input_shape else _BN_RANK[type(module).__name__]
        layer = keras.layers.BatchNormalization(
            axis=1,
            momentum=_flip(_torch_momentum(module)),
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None, module.num_features) + (None,) * (rank - 2))
        layer.moving_mean.assign(_np(module.running_mean))
        layer.moving_variance.assign(_np(module.running_var))
    elif kind == "group_norm":
        rank = len(input_shape) if input_shape else 4
        layer = keras.layers.GroupNormalization(
            groups=module.num_groups,
            axis=1,
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None, module.num_channels) + (None,) * (rank - 2))
    else:
        ns = tuple(module.normalized_shape)
        rank = len(input_shape) if input_shape else len(ns) + 1
        layer = keras.layers.LayerNormalization(
            axis=list(range(-len(ns), 0)),
            epsilon=float(module.eps),
            center=module.bias is not None,
            scale=module.weight is not None,
        )
        layer.build((None,) * (rank - len(ns)) + ns)
    if module.weight is not None:
        layer.gamma.assign(_np(module.weight))
    if module.bias is not None:
        layer.beta.assign(_np(module.bias))
    return layer


# --- keras -> torch ----------------------------------------------------------------------------


def _keras_rank(layer) -> int:
    spec = getattr(layer, "input_spec", None)
    if spec is not None and getattr(spec, "ndim", None):
        return int(spec.ndim)
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    shape = next(iter(shapes.values()), None)
    if shape is None:
        raise PortError("build the Keras layer first (its input rank decides the torch module)")
    return len(shape)


def keras_to_torch(layer):
    """The torch module equivalent to a built, channels-first Keras norm layer, state copied."""
    import torch

    name = type(layer).__name__
    rank = _keras_rank(layer)
    gamma, beta = getattr(layer, "gamma", None), getattr(layer, "beta", None)
    has_w, has_b = gamma is not None, beta is not None
    if name in ("BatchNormalization", "GroupNormalization"):
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        if axis % rank != 1:
            raise PortError(f"{name}(axis={layer.axis}) on a rank-{rank} input is channels-last; torch takes axis 1")
    if name == "BatchNormalization":
        c = int(layer.moving_mean.shape[0])
        cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[rank]
        m = cls(c, eps=float(layer.epsilon), momentum=_flip(layer.momentum), affine=has_w or has_b, bias=has_b)
        with torch.no_grad():
            m.running_mean.copy_(torch.as_tensor(np.asarray(layer.moving_mean.numpy())))
            m.running_var.copy_(torch.as_tensor(np.asarray(layer.moving_variance.numpy())))
    elif name == "GroupNormalization":
        c = int(layer.input_spec.axes[1]) if layer.input_spec and layer.input_spec.axes else int(gamma.shape[0])
        m = torch.nn.GroupNorm(int(layer.groups), c, eps=float(layer.epsilon), affine=has_w or has_b, bias=has_b)
    elif name == "LayerNormalization":
        axes = sorted(a % rank for a in (layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]))
        if axes != list(range(rank - len(axes), rank)):
            raise PortError(f"LayerNormalization(axis={layer.axis}) is not over trailing axes; torch normalizes those")
        shape = _keras_build_shape(layer)
        ns = [int(shape[a]) for a in axes]
        m = torch.nn.LayerNorm(ns, eps=float(layer.epsilon), elementwise_affine=has_w or has_b, bias=has_b)
    else:
        raise PortError(f"can port Keras BatchNormalization, LayerNormalization, GroupNormalization, not {name}")
    with torch.no_grad():
        if m.weight is not None:
            m.weight.copy_(torch.as_tensor(gamma.numpy()) if has_w else torch.ones_like(m.weight))
        if has_b:
            m.bias.copy_(torch.as_tensor(beta.numpy()))
    return m


def _keras_build_shape(layer):
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    shape = next(iter(shapes.values()), None)
    if shape is None:
        raise PortError("build the Keras layer first")
    return shape


# --- torch -> flax -----------------------------------------------------------------------------

_FLAX_CLASSES: dict[str, Any] = {}


def _channels_first_group_norm():
    """A flax.linen module: GroupNorm over the channel axis 1 (flax groups the last axis only)."""
    if "gn" in _FLAX_CLASSES:
        return _FLAX_CLASSES["gn"]
    import flax.linen as nn
    import jax.numpy as jnp

    class ChannelsFirstGroupNorm(nn.Module):
        num_groups: int
        epsilon: float = 1e-5
        use_bias: bool = True
        use_scale: bool = True

        @nn.compact
        def __call__(self, x):
            gn = nn.GroupNorm(
                num_groups=self.num_groups,
                epsilon=self.epsilon,
                use_bias=self.use_bias,
                use_scale=self.use_scale,
                use_fast_variance=False,
                name="group_norm",
            )
            return jnp.moveaxis(gn(jnp.moveaxis(x, 1, -1)), -1, 1)

    _FLAX_CLASSES["gn"] = ChannelsFirstGroupNorm
    return ChannelsFirstGroupNorm


def torch_to_flax(module) -> tuple[Any, dict[str, Any]]:
    """``(flax.linen module, variables)`` equivalent to the torch ``module`` (channels-first).

    BatchNorm's ``use_running_average`` is left to the call (``module.apply(variables, x,
    use_running_average=...)``; in training pass ``mutable=["batch_stats"]``).
    """
    import flax.linen as nn
    import jax.numpy as jnp

    kind = _kind(module)
    params: dict[str, Any] = {}
    if module.weight is not None:
        params["scale"] = jnp.asarray(_np(module.weight))
    if module.bias is not None:
        params["bias"] = jnp.asarray(_np(module.bias))
    common = {"epsilon": float(module.eps), "use_bias": module.bias is not None, "use_scale": module.weight is not None}
    if kind == "batch_norm":
        _bn_checks(module)
        flax_module = nn.BatchNorm(axis=1, momentum=_flip(_torch_momentum(module)), use_fast_variance=False, **common)
        stats = {"mean": jnp.asarray(_np(module.running_mean)), "var": jnp.asarray(_np(module.running_var))}
        return flax_module, {"params": params, "batch_stats": stats}
    if kind == "layer_norm":
        axes = tuple(range(-len(module.normalized_shape), 0))
        flax_module = nn.LayerNorm(reduction_axes=axes, feature_axes=axes, use_fast_variance=False, **common)
        return flax_module, {"params": params}
    flax_module = _channels_first_group_norm()(num_groups=module.num_groups, **common)
    return flax_module, {"params": {"group_norm": params}}


# --- checking a port ---------------------------------------------------------------------------


@dataclass
class PortReport:
    """Comparisons of a ported layer (and the torch original) with the float64 reference."""

    comparisons: list[tuple[str, error_model.Comparison]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for _, c in self.comparisons)

    def describe(self) -> str:
        lines = [f"{'ok  ' if c.ok else 'FAIL'} {name}: {c.describe()}" for name, c in self.comparisons]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _reference_args(module, kind: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"eps": float(module.eps)}
    for k in ("weight", "bias"):
        t = getattr(module, k)
        kw[k] = None if t is None else _np(t).astype(np.float64)
    if kind == "layer_norm":
        kw["normalized_shape"] = tuple(module.normalized_shape)
    if kind == "group_norm":
        kw["num_groups"] = module.num_groups
    return kw


class _Other:
    """The ported layer behind one interface: ``run(x, training) -> (y, (mean, var) or None)``
    from the state it was handed (it is never mutated)."""

    def __init__(self, other, kind: str):
        self.kind = kind
        if isinstance(other, tuple):
            self.flax, self.variables = other
            self.keras = None
        else:
            self.keras, self.flax = other, None

    def run(self, x: np.ndarray, training: bool):
        if self.keras is not None:
            layer = type(self.keras).from_config(self.keras.get_config())
            layer.build(_keras_build_shape(self.keras))
            layer.set_weights(self.keras.get_weights())
            y = np.asarray(layer(x, training=training))
            if self.kind == "batch_norm":
                return y, (layer.moving_mean.numpy(), layer.moving_variance.numpy())
            return y, None
        import jax.numpy as jnp

        xv = jnp.asarray(x)
        if self.kind != "batch_norm":
            return np.asarray(self.flax.apply(self.variables, xv)), None
        if training:
            y, upd = self.flax.apply(self.variables, xv, use_running_average=False, mutable=["batch_stats"])
            bs = upd["batch_stats"]
        else:
            y, bs = self.flax.apply(self.variables, xv, use_running_average=True), self.variables["batch_stats"]
        return np.asarray(y), (np.asarray(bs["mean"]), np.asarray(bs["var"]))

    @property
    def name(self) -> str:
        return f"keras {type(self.keras).__name__}" if self.keras is not None else f"flax {type(self.flax).__name__}"


def compare_port(torch_module, other, x) -> PortReport:
    """Check a port: ``other`` is a Keras layer or a ``(flax module, variables)`` pair.

    On ``x`` (channels-first NumPy array): the eval outputs, the training outputs and (BatchNorm)
    the running buffers after one training step of the torch module and of ``other``, each against
    the float64 reference of the torch module's state under the error model. The other side's new
    running variance (biased, Keras/Flax) is translated to torch's convention first; the raw
    difference is reported in ``notes``.
    """
    import torch

    from normcheck import reference

    kind = _kind(torch_module)
    x = np.asarray(x)
    dtype = x.dtype.name
    port = _Other(other, kind)
    rep = PortReport()
    kw = _reference_args(torch_module, kind)
    modes = (False, True) if kind == "batch_norm" else (False,)
    for training in modes:
        label = "train" if training else "eval"
        ref_kw = dict(kw)
        use_batch = training or kind != "batch_norm"
        if kind == "batch_norm":
            rm, rv = _np(torch_module.running_mean).astype(np.float64), _np(torch_module.running_var).astype(np.float64)
            ref_kw.update(running_mean=rm, running_var=rv, momentum=float(torch_module.momentum))
        y_ref = reference.normalize(kind, x, use_batch_stats=use_batch, **ref_kw)
        s = error_model.scale(kind, x, use_batch_stats=use_batch, **ref_kw)
        t = copy.deepcopy(torch_module).train(training)
        with torch.no_grad():
            y_t = t(torch.as_tensor(x)).numpy()
        y_o, new = port.run(x, training)
        rep.comparisons.append((f"torch {label} output", error_model.compare(y_t, y_ref, s, dtype)))
        rep.comparisons.append((f"{port.name} {label} output", error_model.compare(y_o, y_ref, s, dtype)))
        if kind == "batch_norm" and training:
            rep.comparisons += _buffers(torch_module, t, new, x, ref_kw, port.name)
            rep.notes.append(_bessel_note(torch_module, new, ref_kw))
    return rep


def _buffers(orig, stepped, new, x, ref_kw, name):
    from normcheck import spec

    m = float(orig.momentum)
    n = spec.plan("batch_norm", x.shape).reduce_size
    old_var = _np(orig.running_var).astype(np.float64)
    sm, sv = error_model.running_scale("batch_norm", x, ref_kw["running_mean"], ref_kw["running_var"], momentum=m)
    translated = (1 - m) * old_var + (np.asarray(new[1], np.float64) - (1 - m) * old_var) * (n / (n - 1))
    bdt = np.asarray(new[0]).dtype.name
    return [
        ("torch running_mean", error_model.compare(_np(stepped.running_mean), ref_kw["running_mean"], sm, bdt)),
        ("torch running_var", error_model.compare(_np(stepped.running_var), ref_kw["running_var"], sv, bdt)),
        (f"{name} running_mean", error_model.compare(new[0], ref_kw["running_mean"], sm, bdt)),
        (f"{name} running_var (biased -> unbiased)", error_model.compare(translated, ref_kw["running_var"], sv, bdt)),
    ]


def _bessel_note(orig, new, ref_kw) -> str:
    diff = float(np.max(np.abs(np.asarray(new[1], np.float64) - ref_kw["running_var"])))
    return (
        f"after one training step the ported running variance differs from torch's by up to {diff:.3g}: "
        "it averages the biased batch variance (torch: the unbiased one); translated back, it agrees"
    )
