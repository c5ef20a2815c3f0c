r"""The error model: how far a correct low-precision norm may be from the float64 reference.

For one reduction set S of size n, computed in a dtype with unit roundoff u, write
sigma = sqrt(var_S + eps), kappa_S = max_S |x| / sigma (the conditioning of the centring; eps
enters through sigma) and y^ = (x - mean_S) / sigma the normalized value. Under the standard
probabilistic rounding model (Higham & Mary, 2019: a length-n sum has error <= lambda sqrt(n) u
with probability >= 1 - 2 exp(-lambda^2 / 2), for recursive, blocked and pairwise orders alike):

- the mean has absolute error <~ sqrt(n) u max_S|x|, which moves y by sqrt(n) u kappa_S;
- a backward-stable variance (two-pass, Welford, pairwise-merged Welford) has relative error
  <~ sqrt(n) u kappa_S, which moves y by about sqrt(n) u kappa_S |y^| / 2;
- the elementwise subtract, divide, scale and shift add a few u |w y^| + u |b|.

So, element by element, the allowed error is ``lambda * u * s_i`` with the **scale**

    s_i = sqrt(n) kappa_S (1 + |y^_i|) |w_i|  +  |w_i y^_i|  +  |b_i|        (centered norms)
    s_i = sqrt(n) |y^_i| |w_i|               +  |w_i y^_i|                  (RMS: no cancellation)

and, in eval mode (running statistics, no reduction), kappa_i = (|x_i| + |running_mean|) / sigma
with n = 1. A one-pass ``E[x^2] - E[x]^2`` variance has relative error ~ u kappa_S^2 instead, so it
exceeds the bound by a factor ~ kappa_S / sqrt(n) and fails on inputs with a large common offset;
an unbiased variance, eps outside the square root or the wrong axis set err by O(1/n), O(eps) or
O(1), far above ``u s`` on generic inputs.

Underflow: a result that lands in the subnormal range rounds to an absolute grid, not a relative
one (the standard model with underflow, Higham 2002 sec. 2.1: fl(x op y) = (x op y)(1 + delta) + eta,
|eta| <= eta_min = half the smallest subnormal, u times the smallest normal). So the unit of error
is ``u s_i + eta_min``, not ``u s_i``: an output of float16 ~ 2e-6 (below float16's smallest normal
6.1e-5) may err by 3e-8 = 1.4% however small its scale. eta_min is negligible in float32 and
bfloat16 (1e-45 and 5e-41) and in float16 is 3e-8: an implementation that flushes float16
outputs above 16 eta_min = 4.8e-7 to zero still deviates. (Seen on the seed sweep: our own NumPy
RMSNorm in float16 erred by 8.6 u·s on a 2e-6 output, one subnormal rounding.)

Overflow: where the exact value, within the allowed error, reaches the dtype's overflow threshold
(float16: 65520), ±inf of the same sign is the correctly rounded result and is accepted as such.

Results are reported in units of ``u s`` (with eta_min added, as above): "observed 3.1 u·s, allowed 16 u·s". The reference's own
float64 error (u64 s) is added to the bound, which matters only for float64 cases. ``lambda`` is
the one calibrated constant (see README, "Error model"): the smallest power of two at least four
times the worst error of any passing native implementation of the four frameworks on the
calibration run (``python scripts/calibrate.py``: 3.2 u·s, Keras BatchNormalization in float32),
with the one-pass variance still failing.

Second order (:func:`second_order_scale`): the derivative along an input direction v of the input
gradient dx = (g - a - y^ b) / sigma (a = mean_S g, b = mean_S(g y^), g = dy w), i.e. the
Hessian-vector product H v of <dy, f(x)>, is

    H v = -(sigma'/sigma) dx - (y^' b + y^ b') / sigma,   sigma'/sigma = mean_S(y^ v) / sigma,
    y^' = (v - mean_S v - y^ mean_S(y^ v)) / sigma,        b' = mean_S(g y^'),

so with A = mean_S(|g| (1 + |y^|)), B = mean_S(|v| (1 + |y^|)) and M = mean_S(|g| (1 + |y^|) (|v| + B))
every term is bounded by (1 + |y^_i|) ((|g_i| + A)(|v_i| + B) + A B + M) / sigma^2. A double
backward (or forward-over-reverse) kernel reuses the forward statistics, whose errors are the
forward model's (relative sqrt(n) u kappa_S in sigma and y^), and adds a few more length-n
reductions (mean_S(y^ v), mean_S(g y^'), ...), each erring by sqrt(n) u times its magnitude bound.
So element i may err by lambda u s2_i with

    s2_i = (1 + sqrt(n) kappa_S) (1 + |y^_i|) ((|g_i| + A)(|v_i| + B) + A B + M) / sigma^2,

the first-order scale's (1 + sqrt(n) kappa_S)(1 + |y^|)(|g| + A)/sigma differentiated once more:
one more factor (|v| + B)/sigma and the cross terms. The same lambda, no new constant: on the
default profile's draws (every regime, float32/float16/bfloat16) torch's and JAX's correct second
derivatives stayed below 2.2 u·s2 (LayerNorm in bfloat16; float32 below 0.3), inside lambda/2;
torch's float16 double backward, which keeps powers of rstd in float16, reaches 10-30 u·s2 and
overflows (a registered finding). s2 is about 250 |H v| on ordinary inputs (the first-order s about
50 |dx|), so a second derivative that is wrong by O(1) -- a custom backward that leaves the graph
-- is off by ~1e5 u·s2 in float32, while in 16-bit precision only gross errors show. The float64
reference is the complex-step derivative of the analytic gradient, exact to float64 rounding (its
u64 term is added as everywhere). In eval mode the gradient does not depend
on the input: H v = 0 exactly and A = B = M = 0, so a kernel may differ from 0 only by its rounding
of |g| |v| / sigma^2.

Forward mode (:func:`jvp_scale`): the derivative of the output along tangents (v, w', b') of the
input, weight and bias, y' = w y^' + w' y^ + b', with

    y^' = (v - mean_S v - y^ mean_S(y^ v)) / sigma      centered norms, batch statistics
    y^' = (v - y^ mean_S(y^ v)) / sigma                 RMS (sigma = sqrt(mean_S x^2 + eps))
    y^' = v / sigma                                     running statistics (eval mode)

(sigma'/sigma = mean_S(y^ v) / sigma, exactly, eps included). This is the transpose of the VJP
dx = (g - mean_S g - y^ mean_S(g y^)) / sigma: the Jacobian J = (I - 1/n - y^ y^T/n) / sigma of the
normalization is symmetric, so its two products have the same form with v in g's place, and the
first-order model's derivation carries over term for term. A forward-mode kernel reuses the forward
statistics (sigma with relative error ~ sqrt(n) u kappa_S, y^_i with absolute error ~ sqrt(n) u
kappa_S (1 + |y^_i|)) and adds two length-n reductions, a = mean_S v and b = mean_S(y^ v), each
erring by ~ sqrt(n) u B with B = mean_S(|v| (1 + |y^|)) >= |a| + |b|. Propagated through
``(v - a - y^ b) / sigma``: sigma's error moves it by sqrt(n) u kappa_S (|v_i| + B (1 + |y^_i|)) / sigma,
y^'s error times b by sqrt(n) u kappa_S (1 + |y^_i|) B / sigma, the reductions by sqrt(n) u B
(1 + |y^_i|) / sigma, the elementwise steps by u (|v_i| + B (1 + |y^_i|)) / sigma; all are below

    s'_i = (1 + sqrt(n) kappa_S) (1 + |y^_i|) (|v_i| + B) / sigma |w_i|
           + |w'_i| (t_i + |y^_i|) + |b'_i|                                   (jvp scale)

where the w' term is w' times y^'s error (t_i: the forward model's sqrt(n) kappa_S (1 + |y^_i|),
sqrt(n) |y^_i| for RMS, kappa_i (1 + |y^_i|) in eval mode) and b' rounds once. It is the VJP's
input scale (1 + sqrt(n) kappa_S)(1 + |y^|)(|g| + A)/sigma with v in g's place and B in A's: the
cancellation inside ``v - a - y^ b`` (y' may be much smaller than its terms) is covered by B. RMS has
no centring (kappa_S = 1 in the first term, as in the VJP's); in eval mode nothing is reduced:
s'_i = |w_i v_i| / sigma_i + |w'_i| (t_i + |y^_i|) + |b'_i|. A mixture of statistics takes n, kappa
and B as the worst of its input-dependent components. The same lambda, no new constant. The
float64 reference is the complex-step derivative of the reference itself
(:func:`normcheck.properties.forward_mode.reference_jvp`), exact to float64 rounding.

Running statistics: ``running_mean`` may err by lambda (u_in sqrt(n) m max|x| + u_buf |new|), and
``running_var`` by lambda (u_in m (sqrt(n) max|x| sigma + n u_in max|x|^2) n/(n-1) + u_buf |new|) per
channel (the second term is the squared error of the mean, all there is on a constant batch): the
batch statistic may be computed in the input's precision u_in, the kept state only rounds in the
buffer's u_buf (so rounding float32 buffers to a 16-bit input's precision is a deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from normcheck import dtypes
from normcheck import spec as _spec

__all__ = [
    "FLOOR",
    "MODEL",
    "Comparison",
    "ErrorModel",
    "Expectation",
    "compare",
    "exact_centering",
    "fused_share",
    "jvp_scale",
    "running_scale",
    "running_scales_of",
    "scale",
    "second_order_scale",
]

U64 = dtypes.unit_roundoff("float64")
#: The floor of a scale and of the unit of error: float64's eta_min (half of 5e-324) rounds to 0, so
#: a zero scale (a zero weight and bias, an eval-mode second derivative) would make an exact match 0/0.
FLOOR = float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class ErrorModel:
    lam: float = 16.0  # lambda: calibrated (README "Error model"); widen only with a note there

    def allowed(self, u: float) -> float:
        return self.lam


MODEL = ErrorModel()


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing an output against the reference under the model."""

    ok: bool
    observed: float  # max_i |err_i| / (u s_i), in model units
    allowed: float  # lambda
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...] | None
    u: float
    mismatch: str = ""  # NaN/Inf pattern or shape mismatch, if any

    def describe(self) -> str:
        if self.mismatch:
            return self.mismatch
        where = f" at index {self.worst_index}" if self.worst_index is not None else ""
        return (
            f"observed {self.observed:.3g} u·s, allowed {self.allowed:g} u·s{where} "
            f"(max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g}, u={self.u:.3g})"
        )


def scale(
    norm,
    x,
    *,
    weight=None,
    bias=None,
    eps=None,
    normalized_shape=None,
    num_groups=None,
    running_mean=None,
    running_var=None,
    use_batch_stats=True,
    reduce_axes=None,
    **_ignored,
) -> np.ndarray:
    """The model's per-element scale s_i (see module docstring), in float64, shaped like ``x``."""
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    x = np.asarray(x)
    eps = spec.resolve_eps(eps, x.dtype)
    p = _spec.plan(spec, x.shape, normalized_shape=normalized_shape, num_groups=num_groups, reduce_axes=reduce_axes)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        n, kappa, _, yhat = _terms(spec, p, x64, eps, use_batch_stats, running_mean, running_var, _ignored)
        w = 1.0 if weight is None else np.abs(np.asarray(weight, np.float64)).reshape(p.affine_broadcast)
        b = 0.0 if bias is None else np.abs(np.asarray(bias, np.float64)).reshape(p.affine_broadcast)
        ay = np.abs(yhat)
        if exact_centering(spec, use_batch_stats, n):
            t = fused_share(x.dtype) * kappa
        elif spec.center or not use_batch_stats or spec.mix:
            t = np.sqrt(n) * kappa * (1 + ay)
        else:
            t = np.sqrt(n) * ay
        s = t.reshape(x.shape) * w + ay.reshape(x.shape) * w + b
    # A scale of exactly 0 (zero weight, zero bias) still allows the output's own rounding.
    return np.maximum(s, FLOOR)


def exact_centering(spec, use_batch_stats: bool, n: int) -> bool:
    """Is the centring exact in floating point? On a one-element set the batch mean is the element
    itself (a sum of one term, divided by 1), so ``x - mean`` is exactly 0, y^ = 0 and y = b exactly.
    Running statistics (eval) and mixtures are not exact. See :func:`fused_share` for what the model
    still allows there."""
    return use_batch_stats and spec.center and not spec.mix and n == 1


def fused_share(dtype) -> float:
    """Where the centring is exact (:func:`exact_centering`) the model allows it no error of the
    input's precision: what remains is the normalization applied as a fused scale and shift,
    ``x a + (b - mean a)`` with ``a = w / sigma``, which a kernel forms in its accumulation precision
    (float32 for 16-bit inputs, as every native does: u_acc kappa |w|) before the output rounds ``b``
    in the input's (u |b|). So the centring term's kappa |w| is weighted by u_acc / u: 1 in float32 and
    float64, 2^-24 / 2^-8 in bfloat16, where a kernel that forms the shift in bfloat16, or gives 11 for
    a bias of 3, is no longer forgiven by a bound that grew with max|x| / sqrt(eps)."""
    u = dtypes.unit_roundoff(dtype)
    acc = dtypes.unit_roundoff("float32") if dtypes.is_16bit(dtype) else u
    return acc / u


def _terms(spec, p, x64, eps, use_batch, running_mean, running_var, kw):
    """(n, kappa, sigma, yhat) of the statistics the case normalizes with, in the plan's view: the
    batch's per set (kappa_S = max_S |x| / sigma, per set), the running statistics' in eval mode (n = 1,
    kappa_i = (|x_i| + |running_mean|) / sigma), or a mixture's (:func:`_mixture_terms`)."""
    if spec.mix:
        return _mixture_terms(spec, p, x64, eps, use_batch, running_mean, running_var, kw)
    v = x64.reshape(p.view_shape)
    if use_batch:
        from normcheck.reference import moments

        mean, var = moments(v, p.reduce, center=spec.center)
        sigma = np.sqrt(var + eps)
        kappa = np.maximum.reduce(np.abs(v), axis=p.reduce, keepdims=True) / sigma
        return p.reduce_size, kappa, sigma, (v - mean) / sigma
    from normcheck.reference import running_view

    rm = np.broadcast_to(running_view(spec, p, running_mean, np.float64), p.view_shape)
    rv = np.broadcast_to(running_view(spec, p, running_var, np.float64), p.view_shape)
    sigma = np.sqrt(rv + eps)
    return 1, (np.abs(v) + np.abs(rm)) / sigma, sigma, (v - rm) / sigma


def _mixture_terms(spec, p, x64, eps, use_batch, running_mean, running_var, kw):
    """(n, kappa, sigma, yhat) for a mixture of statistics (Switchable Normalization).

    The mixed mean and variance are convex combinations of the components' (the softmax weights
    sum to 1, and carry a relative rounding error u of their own), so their errors are bounded by
    the worst component's: n is the largest component set, and kappa takes, per element, the
    largest max|x| over the sets that contain it (plus |running_mean| for the running component in
    eval mode), over the *mixed* sigma, which is what divides.
    """
    from normcheck.reference import mixture, running_view

    v = x64.reshape(p.view_shape)
    rm = rv = None
    if not use_batch:
        rm, rv = running_mean, running_var
    mean, var = mixture(spec, p, v, kw.get("mean_weight"), kw.get("var_weight"), rm, rv, use_batch, 0.0, np.float64)
    sigma_v = np.sqrt(var + eps)
    amax = np.zeros(p.view_shape)
    n = 1
    for c, axes in zip(spec.mix, _spec.component_axes(spec, p), strict=True):
        if c.running and not use_batch:
            amax = np.maximum(amax, np.abs(v) + np.abs(running_view(spec, p, running_mean, np.float64)))
            continue
        amax = np.maximum(amax, np.max(np.abs(v), axis=axes, keepdims=True))
        n = max(n, math.prod(p.view_shape[a] for a in axes))
    shape = x64.shape
    sigma = np.broadcast_to(sigma_v, p.view_shape).reshape(shape)
    yhat = ((v - mean) / sigma_v).reshape(shape)
    return n, amax.reshape(shape) / sigma, sigma, yhat


def running_scale(
    norm, x, new_mean, new_var, *, momentum, num_groups=None, buffer_dtype=None
) -> tuple[np.ndarray, np.ndarray]:
    """Scales for the updated running mean and variance (shape of the buffers), in units of the
    buffer's u: the batch statistic may carry the error of a computation in the *input's*
    precision (the ``sqrt(n) m ...`` term, weighted by u_input / u_buffer), while keeping the
    stored state (the ``|new|`` term) costs only the buffer's own rounding."""
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    x_dtype = np.asarray(x).dtype
    x = np.asarray(x).astype(np.float64)
    p = _spec.plan(spec, x.shape, num_groups=num_groups)
    from normcheck.reference import moments

    v = x.reshape(p.view_shape)
    amax = np.max(np.abs(v), axis=p.reduce, keepdims=True)
    _, var = moments(v, p.reduce, center=spec.center)
    rs = spec.running_stats
    avg = tuple(a for s in rs.get("average_over", []) for a in p.symbols[s])
    n = p.reduce_size
    if avg:
        amax, var = np.max(amax, axis=avg), np.max(var, axis=avg)
    amax, sd = amax.reshape(np.shape(new_mean)), np.sqrt(var).reshape(np.shape(new_mean))
    m = abs(float(momentum))
    ratio = 1.0
    if buffer_dtype is not None:
        ratio = max(1.0, dtypes.unit_roundoff(x_dtype) / dtypes.unit_roundoff(buffer_dtype))
    sm = ratio * np.sqrt(n) * m * amax + np.abs(np.asarray(new_mean, np.float64))
    # a two-pass variance also carries the squared error of its mean, (sqrt(n) u_in max|x|)^2: the
    # whole error on a constant batch, where sigma = 0 (in u_buf units: ratio m n u_in max|x|^2)
    floating = dtypes.dtype_name(x_dtype) in dtypes.FLOAT_DTYPES  # bfloat16's NumPy kind is "V", not "f"
    u_in = dtypes.unit_roundoff(x_dtype) if floating else dtypes.unit_roundoff("float64")
    bessel = n / max(n - 1, 1)
    sv = ratio * m * bessel * (np.sqrt(n) * amax * sd + n * u_in * amax**2) + np.abs(np.asarray(new_var, np.float64))
    return np.maximum(sm, FLOOR), np.maximum(sv, FLOOR)


def running_scales_of(case, new_mean, new_var, *, momentum=None, buffer_dtype=None):
    """:func:`running_scale` for a :class:`normcheck.case.Case` (its norm, input, groups, momentum
    and buffer dtype); ``momentum`` and ``buffer_dtype`` override the case's."""
    if buffer_dtype is None:
        buffer_dtype = case.running_mean.dtype if case.running_mean is not None else np.float32
    return running_scale(
        case.norm,
        case.x,
        new_mean,
        new_var,
        momentum=case.update_factor() if momentum is None else momentum,
        num_groups=case.args.get("num_groups"),
        buffer_dtype=buffer_dtype,
    )


def second_order_scale(yhat, g, v, sigma, *, conditioning, a=0.0, b=0.0, m=0.0) -> np.ndarray:
    """The scale s2 of a second derivative (module docstring, "Second order"), in float64:
    ``conditioning (1 + |y^|) ((|g| + a)(|v| + b) + a b + m) / sigma^2``, with ``g`` the cotangent
    through the affine weight, ``v`` the input direction, ``conditioning`` = 1 + sqrt(n) kappa_S, and
    ``a``, ``b``, ``m`` the per-set A, B and M (0 where the statistics do not depend on the input).
    All arguments broadcast together."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ay, ag, av = np.abs(yhat), np.abs(g), np.abs(v)
        return conditioning * (1 + ay) * ((ag + a) * (av + b) + a * b + m) / np.asarray(sigma, np.float64) ** 2


def jvp_scale(
    norm,
    x,
    v,
    *,
    weight=None,
    bias=None,
    weight_tangent=None,
    bias_tangent=None,
    eps=None,
    normalized_shape=None,
    num_groups=None,
    running_mean=None,
    running_var=None,
    use_batch_stats=True,
    reduce_axes=None,
    **_ignored,
) -> np.ndarray:
    """The scale s' of a forward-mode derivative (module docstring, "Forward mode"): the output's
    derivative along the input tangent ``v`` and the weight and bias tangents (None: not varied),
    in float64, shaped like ``x``. Arguments as :func:`scale`'s (``mean_weight``/``var_weight``
    for a mixture among the keywords)."""
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    x = np.asarray(x)
    eps = spec.resolve_eps(eps, x.dtype)
    p = _spec.plan(spec, x.shape, normalized_shape=normalized_shape, num_groups=num_groups, reduce_axes=reduce_axes)
    x64 = x.astype(np.float64)
    view = p.view_shape

    def as_view(a):
        a = np.asarray(a, np.float64)
        return a.reshape(view) if a.shape == x.shape else np.broadcast_to(a, view)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        n, kappa, sigma, yhat = _terms(spec, p, x64, eps, use_batch_stats, running_mean, running_var, _ignored)
        if spec.mix:
            sets = [
                axes
                for c, axes in zip(spec.mix, _spec.component_axes(spec, p), strict=True)
                if use_batch_stats or not c.running
            ]
        elif use_batch_stats:
            kappa = kappa if spec.center else 1.0  # RMS: no centring to condition
            sets = [p.reduce]
        else:
            sets = []
        sigma, yhat, kappa = as_view(sigma), as_view(yhat), as_view(kappa)
        ay, av = np.abs(yhat), np.abs(as_view(v))
        if sets:
            big_b = 0.0
            for axes in sets:
                big_b = np.maximum(big_b, np.mean(av * (1 + ay), axis=axes, keepdims=True))
            s = (1 + np.sqrt(n) * kappa) * (1 + ay) * (av + big_b) / sigma
        else:
            s = av / sigma

        def as_input(a):  # a view-shaped term in the input's shape, where the affine parameters broadcast
            return np.broadcast_to(a, view).reshape(x.shape)

        def affine(a):
            return np.abs(np.asarray(a, np.float64).reshape(p.affine_broadcast))

        s = as_input(s)
        if weight is not None:
            s = s * affine(weight)
        if weight_tangent is not None:
            # y^'s own error, as the forward model's: centered (and eval) sqrt(n) kappa (1 + |y^|), RMS sqrt(n) |y^|
            t = np.sqrt(n) * kappa * (1 + ay) if (spec.center or not use_batch_stats or spec.mix) else np.sqrt(n) * ay
            s = s + affine(weight_tangent) * as_input(t + ay)
        if bias_tangent is not None:
            s = s + affine(bias_tangent)
    return np.maximum(np.asarray(s, np.float64), FLOOR)


def _unit(s, u, eta):
    """The unit of error over u: ``(u + u64) s + eta_min``, divided by u (floored at FLOOR)."""
    return np.maximum(s * (1 + U64 / u) + eta / u, FLOOR)


@lru_cache(maxsize=64)
def _constants(dtype) -> tuple[float, float, float]:
    """(u, eta_min, overflow threshold) of ``dtype`` (a name or np.dtype)."""
    return dtypes.unit_roundoff(dtype), dtypes.underflow_unit(dtype), dtypes.overflow_threshold(dtype)


def compare(actual, expected, s, dtype, *, model: ErrorModel = MODEL) -> Comparison:
    """Judge ``actual`` (any dtype) against the float64 ``expected`` with per-element scale ``s``.

    NaN must match NaN and ±Inf must match exactly; elsewhere ``|actual - expected| <=
    lambda ((u + u64) s + eta_min)``, with u the unit roundoff of ``dtype`` and eta_min half its
    smallest subnormal (the absolute error of a rounding into the subnormal range).
    ``Expectation(expected, s, dtype).compare(actual)``: build the :class:`Expectation` once to judge several
    outputs against one expected value.
    """
    return Expectation(expected, s, dtype, model=model).compare(actual)


class Expectation:
    """An expected float64 value and its scale, prepared for judging outputs against it
    (:func:`compare`): what depends on the expected side alone (the unit of error
    ``(u + u64) s + eta_min`` over u, ``|expected|``, whether it is finite) is computed on the first
    comparison and kept, so each further output costs only its own error. ``expected`` and ``s`` are
    read, never written; the caller keeps them unchanged while the expectation is in use."""

    __slots__ = ("_prepared", "e", "eta", "lam", "overflow", "s", "u")

    def __init__(self, expected, s, dtype, *, model: ErrorModel = MODEL):
        self.u, self.eta, self.overflow = _constants(dtype if isinstance(dtype, str) else np.dtype(dtype))
        self.lam = model.allowed(self.u)
        self.e = np.asarray(expected, dtype=np.float64)
        self.s = np.asarray(s, dtype=np.float64)
        self._prepared = None

    def _prepare(self):
        """(unit of error over u, |e| with inf where e = 0, e all finite), once; the scale
        broadcast to the expected shape."""
        if self._prepared is None:
            if self.s.shape != self.e.shape:
                self.s = np.broadcast_to(self.s, self.e.shape)
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                finite = bool(np.isfinite(self.e).all())
                unit = _unit(self.s, self.u, self.eta) if finite else None
                abs_e = np.abs(self.e)
                abs_e[abs_e == 0] = np.inf  # err / inf = 0: no relative error where e = 0
            self._prepared = (unit, abs_e, finite)
        return self._prepared

    def compare(self, actual) -> Comparison:
        """``actual`` judged against the expected value (:func:`compare`)."""
        u, lam, e = self.u, self.lam, self.e
        a = np.asarray(actual).astype(np.float64)
        if a.shape != e.shape:
            return Comparison(False, np.inf, lam, np.inf, np.inf, None, u, f"shape {a.shape} != expected {e.shape}")
        if not a.size:
            return Comparison(True, 0.0, lam, 0.0, 0.0, None, u)
        unit, abs_e, finite = self._prepare()
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            err = np.subtract(a, e)
            if finite:  # the common case: no special value to match unless the output has one
                err = np.abs(err, out=err)
                ratio = err / unit
                ratio /= u
                k = int(ratio.argmax())  # the first NaN, if any: argmax propagates NaN
                observed = float(ratio.flat[k])
                if math.isfinite(observed):  # so every difference is finite, and both sides are
                    worst = _index(k, ratio.shape)
                    return Comparison(
                        observed <= lam, observed, lam, float(err.max()), float((err / abs_e).max()), worst, u
                    )
            return _compare_special(a, e, self.s, u, self.eta, self.overflow, lam)


def _index(k: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``np.unravel_index(k, shape)`` as a tuple of ints (a few divisions: the audit asks per case)."""
    out = []
    for n in reversed(shape):
        k, i = divmod(k, n)
        out.append(i)
    return tuple(reversed(out))


def _compare_special(a, e, s, u, eta, overflow, lam) -> Comparison:
    """:func:`compare` where ``a`` or ``e`` holds NaN or ±inf."""
    # A finite expected value that rounds to ±inf in ``dtype`` within the allowed error: ±inf of the
    # same sign is the correctly rounded answer (float16's 1e5 is inf), so it is expected as such.
    reach = np.abs(e) + lam * ((u + U64) * s + eta)
    e = np.where(np.isinf(a) & np.isfinite(e) & (np.sign(a) == np.sign(e)) & (reach >= overflow), a, e)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    inf_mismatch = (np.isinf(a) | np.isinf(e)) & ~(nan_a | nan_e) & (a != e)
    bad_special = (nan_a != nan_e) | inf_mismatch
    finite = np.isfinite(a) & np.isfinite(e)
    err = np.where(finite, np.abs(a - e), 0.0)
    ratio = np.where(finite, err / _unit(s, u, eta), 0.0) / u
    observed = float(np.max(ratio))
    max_abs = float(np.max(err))
    rel = np.where(finite & (e != 0), err / np.abs(e), 0.0)
    max_rel = float(np.max(rel))
    if bad_special.any():
        idx = tuple(int(i) for i in np.argwhere(bad_special)[0])
        return Comparison(
            False,
            np.inf,
            lam,
            max_abs,
            max_rel,
            idx,
            u,
            f"NaN/Inf pattern differs at index {idx}: got {float(a[idx])!r}, expected {float(e[idx])!r}",
        )
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    return Comparison(observed <= lam, observed, lam, max_abs, max_rel, worst, u)
