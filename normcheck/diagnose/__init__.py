"""Diagnosis: which known wrong variant of a norm (or which two or three at once) a deviating
implementation computes, dtype by dtype.

A deviation found by the property suite says *that* a target is wrong; the diagnosis says *how*.
The catalogue (:mod:`normcheck.diagnose.known`) lists plausible mistakes for a norm, each a
float64 variant of :func:`normcheck.reference.normalize` with one thing changed
(:mod:`normcheck.diagnose.evaluate`):

- the statistics: unbiased variance (Bessel's correction); a one-pass ``E[x²] − E[x]²`` variance in
  float32; no mean subtraction (or, for RMSNorm, a mean subtracted);
- eps: outside the square root, ignored, used as a clamp ``1 / sqrt(max(var, eps))``, hard-wired
  (fitted from :data:`~normcheck.diagnose.known.EPS_FITS`), or for eps=None defaulted from the
  input dtype (``finfo(float16).eps``) instead of the computation dtype;
- the axis set: another norm's (layer_norm over ``x.shape[1:]`` or the last axis — check it with
  ``--axes=-1`` if that is intended —, instance_norm, batch_norm), one axis only, statistics across
  samples (the batch axis included); for GroupNorm strided groups (channel c in group ``c % G``)
  and ``num_groups`` read as the group size;
- the affine transform: applied before normalizing, (GroupNorm) indexed by group, a ``(1 + γ)``
  gain, the weight ignored without a bias;
- precision (16-bit inputs): the statistics computed in the 16-bit dtype ((x − mean)² overflows
  float16 for |x − mean| ≥ 256, underflows below 2.4e-4), the output returned in float32;
- running statistics (BatchNorm, InstanceNorm): the biased variance stored, momentum read the
  other way round (Keras/Flax), never updated or replaced by the batch's (momentum=None
  mishandled), batch statistics used in eval mode, frozen statistics (the buffers used in
  training), the buffers updated in eval mode (seen in an ``eval_uses_running`` failure);
- gradient only (:func:`~normcheck.diagnose.known.gradient_variants`): the mean, variance or
  rsqrt detached from the graph; the forward output is the reference's, so these are diagnosed from
  gradient failures (gradient properties on user targets: issue 15, item 1).

:func:`diagnose` takes one dtype's failing cases (the shrunk counterexamples plus a bounded number
of fresh random cases of that dtype on which the target fails agreement: float16-only failures
never pollute float32's diagnosis), judges the target against every variant under the error model
exactly as ``agreement`` judges it against the reference (the variant's own axis set gives the
scale), and names the variant(s) that match on every failing case: "matches group_norm with
unbiased variance (Bessel's correction) on 21/21 failing cases". When no single variant does, it
searches pairs (then triples) of variants along distinct dimensions and names the composition
that explains every failing case: "matches group_norm with unbiased variance and eps added to the
std on 24/24 failing cases". A single variant is always preferred. A "closest" variant is named
only when it explains at least :data:`~normcheck.diagnose.search.CLOSEST` (75 %) of the failing
cases; otherwise the diagnosis says what was observed (the failing properties, the input regimes,
train or eval, whether the error grows with |mean|/std). :func:`combine` joins the dtypes' into
one answer: "CONFORMS in float32; DEVIATES in float16: matches layer_norm with its statistics
computed in float16: (x − mean)² overflows float16 for |x − mean| ≥ 255.9 (the native kernels
accumulate in float32) on 12/12 failing cases".

The one-pass variant's error is data-dependent (it grows like u·κ²), so it is matched with a
correspondingly looser rule: within λ·u·(s + √n·κ²·(1 + |ŷ|)·|γ|) of the float32 one-pass result.
The statistics-in-16-bit variant is computed exactly as the 16-bit arithmetic rounds (elementwise
results rounded to the dtype, sums accumulated wide) and judged with the model's own scale.
"""

from __future__ import annotations

from normcheck.diagnose import families
from normcheck.diagnose.across import answer, combine
from normcheck.diagnose.evaluate import REFERENCE, compute, judge, matches, outcome
from normcheck.diagnose.gradient import diagnose_gradient, gradient_family
from normcheck.diagnose.known import (
    EPS_FITS,
    Variant,
    catalogue,
    combinable,
    compose,
    gradient_variants,
    variants,
)
from normcheck.diagnose.search import CLOSEST, Diagnosis, diagnose, failing_cases

_compute = compute  # the name the tests of the variant machinery use

__all__ = [
    "CLOSEST",
    "EPS_FITS",
    "REFERENCE",
    "Diagnosis",
    "Variant",
    "answer",
    "catalogue",
    "combinable",
    "combine",
    "compose",
    "compute",
    "diagnose",
    "diagnose_gradient",
    "failing_cases",
    "families",
    "gradient_family",
    "gradient_variants",
    "judge",
    "matches",
    "outcome",
    "variants",
]
