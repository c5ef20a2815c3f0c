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

This module imports no framework: each side of a port is its adapter's
(:meth:`Adapter.layer_porting <normcheck.adapters.base.Adapter.layer_porting>`):
:mod:`normcheck.adapters.torch.port` reads, builds and runs torch modules,
:mod:`normcheck.adapters.tensorflow.port` the Keras layers and :mod:`normcheck.adapters.jax.port`
the Flax ones. What stays here is the front (:func:`torch_to_keras`, :func:`keras_to_torch`,
:func:`torch_to_flax`) and the check (:func:`compare_port`, :class:`PortReport`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import adapters, error_model
from normcheck.adapters.base import PortError

__all__ = ["PortError", "PortReport", "compare_port", "keras_to_torch", "torch_to_flax", "torch_to_keras"]


def _side(framework: str):
    """The framework's side of a port (its adapter's ``layer_porting()``)."""
    return adapters.get(framework).layer_porting()


def _port_of(other):
    """The side whose port ``other`` is (a Keras layer, a ``(flax module, variables)`` pair)."""
    for a in adapters.installed():
        side = a.layer_porting()
        if side is not None and hasattr(side, "owns") and side.owns(other):
            return side
    raise PortError(f"{type(other).__name__} is neither a Keras layer nor a (flax module, variables) pair")


def torch_to_keras(module, *, input_shape=None):
    """A built Keras layer equivalent to the torch ``module`` (channels-first), state copied.

    ``input_shape`` (optional) fixes the input rank Keras builds for; by default BatchNorm1d: 2,
    BatchNorm2d: 4, BatchNorm3d: 5, GroupNorm: 4, LayerNorm: len(normalized_shape) + 1.
    """
    return _side("tensorflow").from_torch(module, input_shape=input_shape)


def keras_to_torch(layer):
    """The torch module equivalent to a built, channels-first Keras norm layer, state copied."""
    return _side("tensorflow").to_torch(layer)


def torch_to_flax(module) -> tuple[Any, dict[str, Any]]:
    """``(flax.linen module, variables)`` equivalent to the torch ``module`` (channels-first).

    BatchNorm's ``use_running_average`` is left to the call (``module.apply(variables, x,
    use_running_average=...)``; in training pass ``mutable=["batch_stats"]``).
    """
    return _side("jax").from_torch(module)


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


def compare_port(torch_module, other, x) -> PortReport:
    """Check a port: ``other`` is a Keras layer or a ``(flax module, variables)`` pair.

    On ``x`` (channels-first NumPy array): the eval outputs, the training outputs and (BatchNorm)
    the running buffers after one training step of the torch module and of ``other``, each against
    the float64 reference of the torch module's state under the error model. The other side's new
    running variance (biased, Keras/Flax) is translated to torch's convention first; the raw
    difference is reported in ``notes``.
    """
    from normcheck import reference

    torch_side = _side("torch")
    kind = torch_side.kind(torch_module)
    x = np.asarray(x)
    dtype = x.dtype.name
    port = _port_of(other)
    name = port.label(other)
    rep = PortReport()
    kw = torch_side.reference_arguments(torch_module, kind)
    modes = (False, True) if kind == "batch_norm" else (False,)
    for training in modes:
        label = "train" if training else "eval"
        ref_kw = dict(kw)
        use_batch = training or kind != "batch_norm"
        if kind == "batch_norm":
            rm, rv, m = torch_side.running_statistics(torch_module)
            ref_kw.update(running_mean=rm, running_var=rv, momentum=m)
        y_ref = reference.normalize(kind, x, use_batch_stats=use_batch, **ref_kw)
        s = error_model.scale(kind, x, use_batch_stats=use_batch, **ref_kw)
        y_t, stepped = torch_side.run(torch_module, x, training)
        y_o, new = port.run(other, kind, x, training)
        rep.comparisons.append((f"torch {label} output", error_model.compare(y_t, y_ref, s, dtype)))
        rep.comparisons.append((f"{name} {label} output", error_model.compare(y_o, y_ref, s, dtype)))
        if kind == "batch_norm" and training:
            _, old_var, m = torch_side.running_statistics(torch_module)
            rep.comparisons += _buffers(stepped, new, x, ref_kw, name, old_var, m)
            rep.notes.append(_bessel_note(new, ref_kw))
    return rep


def _buffers(stepped, new, x, ref_kw, name, old_var, m):
    """The running buffers after one training step: torch's (``stepped``) and the port's (``new``,
    its variance translated from biased to unbiased), against the reference's."""
    from normcheck import spec

    n = spec.plan("batch_norm", x.shape).reduce_size
    sm, sv = error_model.running_scale("batch_norm", x, ref_kw["running_mean"], ref_kw["running_var"], momentum=m)
    translated = (1 - m) * old_var + (np.asarray(new[1], np.float64) - (1 - m) * old_var) * (n / (n - 1))
    bdt = np.asarray(new[0]).dtype.name
    return [
        ("torch running_mean", error_model.compare(stepped[0], ref_kw["running_mean"], sm, bdt)),
        ("torch running_var", error_model.compare(stepped[1], ref_kw["running_var"], sv, bdt)),
        (f"{name} running_mean", error_model.compare(new[0], ref_kw["running_mean"], sm, bdt)),
        (f"{name} running_var (biased -> unbiased)", error_model.compare(translated, ref_kw["running_var"], sv, bdt)),
    ]


def _bessel_note(new, ref_kw) -> str:
    diff = float(np.max(np.abs(np.asarray(new[1], np.float64) - ref_kw["running_var"])))
    return (
        f"after one training step the ported running variance differs from torch's by up to {diff:.3g}: "
        "it averages the biased batch variance (torch: the unbiased one); translated back, it agrees"
    )
