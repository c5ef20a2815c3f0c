"""Gradient-only diagnosis: an implementation whose forward output is the reference's but whose
input gradient treats statistics as constants (``torch.no_grad()`` around the mean and variance, a
``.detach()`` on the rsqrt, ``jax.lax.stop_gradient``, ``tf.stop_gradient``). Its gradient is
judged against :func:`normcheck.properties.gradients.detached_input_gradients` under the gradient
error model, exactly as ``gradient_agreement`` judges it against the reference."""

from __future__ import annotations

import numpy as np

from normcheck import autodiff, error_model
from normcheck.case import Case, fixed_cases
from normcheck.diagnose.search import Diagnosis
from normcheck.properties import gradients

__all__ = ["DETACHED", "diagnose_gradient"]

#: What each detached variant reads as, after "matches <norm> with".
DETACHED = {
    "detached_mean_and_variance": "its mean and variance detached from the gradient (treated as constants in backward)",
    "detached_mean": "its mean detached from the gradient (treated as a constant in backward)",
    "detached_variance": "its variance (or its rsqrt) detached from the gradient (treated as a constant in backward)",
    "detached_rsqrt": "its rsqrt detached from the gradient (treated as a constant in backward)",
}
NOTE = "; the forward output is exact"


def diagnose_gradient(impl, norm: str, cases: list[Case], *, dtype: str) -> Diagnosis | None:
    """Which statistics the implementation's input gradient treats as constants, judged on the
    given failing cases and the norm's fixed cases of ``dtype`` where the gradient deviates; None
    when no detached variant explains every such case."""
    counts: dict[str, int] = {}
    examined: list[Case] = []
    for c in [*cases, *fixed_cases(norm, dtype)]:
        dy = gradients.cotangent(c)
        variants = gradients.detached_input_gradients(c, dy)
        if not variants:
            continue
        try:
            got = np.asarray(autodiff.vjp(impl, c, dy)["input"])
        except Exception:
            continue
        s = gradients.grad_scales(c, dy)["input"]
        if error_model.compare(got, gradients.reference_grads(norm, c, dy)["input"], s, c.dtype).ok:
            continue  # the gradient is right on this case: it tells the variants nothing
        examined.append(c)
        for name, v in variants.items():
            counts[name] = counts.get(name, 0) + bool(error_model.compare(got, v, s, c.dtype).ok)
    matches = [n for n, k in counts.items() if examined and k == len(examined)]
    if not matches:
        return None
    n = len(examined)
    text = f"matches {norm} with {DETACHED[matches[0]]} on {n}/{n} failing cases{NOTE}"
    return Diagnosis(
        norm, n, counts, {k: f"{norm} with {v}" for k, v in DETACHED.items()}, matches, text=text, cases=examined,
        dtype=dtype,
    )  # fmt: skip
