"""What the module ecosystems' drivers share (Equinox, Haiku, Sonnet; :attr:`Adapter.ecosystems`),
free of any framework."""

from __future__ import annotations

import numpy as np


def unbias_update(new, old, decay: float, n: int):
    """A running variance updated with the biased batch variance (``decay old + (1 - decay) var``, as
    flax, Equinox, Haiku and Sonnet store it) as torch updates it, with the unbiased one (``n / (n - 1)``):
    a NumPy array in float64 (the translation adds no rounding of its own)."""
    new64 = np.asarray(new, np.float64)
    if n <= 1:
        return new64
    kept = decay * np.asarray(old, np.float64)
    return kept + (new64 - kept) * (n / (n - 1))


def concrete(v) -> bool:
    """Whether ``v`` holds values (not a tracer on a gradient path, whose buffers nobody reads)."""
    try:
        np.asarray(v)
    except Exception:
        return False
    return True
