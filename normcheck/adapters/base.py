"""What every framework adapter provides (one small class per framework, as in einops' backends).

An :class:`Adapter` knows how to find its framework without importing it, convert arrays to and
from NumPy, and list :class:`Impl` objects: the framework's native norms behind the canonical
calling convention of :mod:`normcheck.reference` (the ``torch.nn.functional`` signatures).

Canonical convention every ``Impl.fn`` follows:

- arguments are the spec's signature (``spec.params``); arrays are NumPy arrays (bfloat16 via
  ``ml_dtypes``); the input is laid out channels-first ``(N, C, *spatial)``;
- ``weight``/``bias`` have the input's dtype; running buffers are float32 for 16-bit inputs;
- momentum is torch's (``new = (1 - m) * old + m * batch``), the stored running variance is the
  unbiased one, ``eps`` is added inside the square root;
- the result is a NumPy array of the input's dtype and shape; running buffers passed in are
  updated in place with the framework's new values, translated to the canonical convention;
- an argument combination the framework cannot express raises :class:`Unsupported` (never a
  silent substitute: no InstanceNorm faked with another norm).

All translation (momentum, default eps, channel axis, variance estimator, train/eval) happens in
the adapter module, in one place per convention.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LAYOUTS", "MODES", "Adapter", "Impl", "Unsupported"]

LAYOUTS = ("channels_first", "channels_last")
MODES = ("eager", "jit", "compiled")


class Unsupported(Exception):
    """The framework has no native way to compute this norm with these arguments."""


@dataclass(frozen=True)
class Impl:
    """One native implementation of one norm, callable with the canonical signature."""

    framework: str
    norm: str
    form: str  # "functional", "module", "linen", "nnx", "keras", "tf.nn", "float32", "reference", ...
    fn: Callable = field(repr=False, compare=False)
    api: str = ""  # the native call, e.g. "torch.nn.functional.group_norm"
    dtypes: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
    layout: str = "channels_first"  # how the native call receives the input (the adapter transposes)
    mode: str = "eager"  # execution mode: eager, jit, compiled
    running_stats: bool = False  # updates running buffers passed to it
    stateful: bool = False  # a layer object (module form) rather than a function
    notes: str = ""
    # An expensive variant whose code path a cheaper Impl of the same framework already covers
    # (e.g. op-by-op Flax linen beside linen under jit and nnx): audited by the `thorough`
    # profile and `--all-forms`, listed by `normcheck frameworks` all the same.
    extended: bool = False

    @property
    def id(self) -> str:
        parts = [self.framework, self.norm, self.form]
        if self.layout != "channels_first":
            parts.append(self.layout)
        if self.mode != "eager":
            parts.append(self.mode)
        return "/".join(parts)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class Adapter:
    """Base class: subclasses set ``name``/``module`` and implement the framework-specific parts."""

    name: str = ""
    module: str = ""  # top-level import name
    distribution: str = ""  # pip distribution for the version, if different from module

    # --- discovery, never importing the framework -------------------------------------------
    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        for dist in (self.distribution or self.module, self.module):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def loaded(self) -> bool:
        return self.module in sys.modules

    def owns(self, x) -> bool:
        """Is ``x`` an array of this framework? Checked via sys.modules, importing nothing."""
        return False

    # --- using the framework (imports it) ------------------------------------------------------
    def devices(self) -> list[str]:
        return ["cpu"]

    def to_native(self, a: np.ndarray, *, device: str | None = None):
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def implementations(self) -> list[Impl]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
