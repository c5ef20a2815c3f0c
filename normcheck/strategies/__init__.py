"""Hypothesis strategies that build valid :class:`~normcheck.case.Case` objects from a norm's spec.

Every strategy reads the spec (:func:`normcheck.spec.get`) and resolves axis sets with
:func:`normcheck.spec.plan`; none restates which axes a norm reduces over. Inputs are not drawn
element by element: a case draws its shape, arguments, *regime* and regime parameters with
Hypothesis, plus one integer seed, and NumPy generates the arrays from that seed
(:func:`make_input`). Generation stays fast for thousands of elements, and shrinking works on the
shape, arguments, regime and seed, so failures shrink to small, readable cases.

Regimes (:data:`REGIMES`), all finite in the case dtype:

=========  ==========================================================================================
normal     standard normal
offset     a large common offset: ``|mean| = r * std`` with ``r`` in [10**1.5, 1e4], std drawn too
tiny       standard deviation 1e-4 (eps dominates the variance)
huge       normal values rescaled so that ``max |x|`` is large for the dtype: for float16
           in [259, 16376] (``x**2`` overflows a float16 accumulator, not a float32 one); for the
           other dtypes in [1e4, 1e15] (sums of squares stay finite in float32)
extreme    (:data:`AUDIT_REGIMES` only) ``max |x|`` from 1e15 up to a quarter of the dtype's max
           (float32 and bfloat16: 8.5e37; float64: 1e100; float16: [5180, 16376]): past ~1e19
           ``n x**2`` overflows a float32 accumulator, though x, the normalized output and the
           float64 reference are all representable
near_constant  (:data:`AUDIT_REGIMES` only) every set near-constant at a large magnitude: ``|mean|``
           in [10, 1e6] (capped by the dtype's range), ``|mean| / std`` in [1e4, 1e7]: where a
           one-pass ``E[x^2] - E[x]^2`` cancels to a negative variance (then NaN) or to 0
constant   one reduction set (or every one) holds a single value: zero variance
outliers   standard normal with 1..3 values of magnitude 1e3..2e3
=========  ==========================================================================================

Usage::

    from hypothesis import given
    from normcheck import strategies as ns

    @given(ns.cases("layer_norm", dtypes=("float32", "bfloat16")))
    def test_agrees(case): ...

Settings profiles ("dev", "quick", "ci", "default", "thorough") live in :mod:`normcheck.profiles`.
"""

from __future__ import annotations

from normcheck.strategies._cases import cases
from normcheck.strategies._common import AUDIT_REGIMES, REGIMES, VARIANTS
from normcheck.strategies._common import FRAMEWORK_EPS as _FRAMEWORK_EPS  # noqa: F401 (the framework defaults eps_values draws)
from normcheck.strategies._identities import identity_cases
from normcheck.strategies._shapes import Layout, layouts, shapes
from normcheck.strategies._values import dtypes, eps_values, inputs, make_input, mixture_logits, momenta, regimes

__all__ = [
    "AUDIT_REGIMES",
    "REGIMES",
    "VARIANTS",
    "Layout",
    "cases",
    "dtypes",
    "eps_values",
    "identity_cases",
    "inputs",
    "layouts",
    "make_input",
    "mixture_logits",
    "momenta",
    "regimes",
    "shapes",
]
