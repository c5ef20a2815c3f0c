r"""Gradients of every norm: a float64 analytic reference, its error model, and the properties
that judge each framework's autodiff (:mod:`normcheck.autodiff`) against it.

**Reference** (:func:`reference_grads`). For one reduction set S of size n, with
sigma = sqrt(var_S + eps), y^ = (x - mean_S) / sigma and g = dy * weight (the output cotangent
through the affine), the input gradient of ``y = y^ * weight + bias`` is

    dx = (g - mean_S(g) - y^ mean_S(g y^)) / sigma            centered norms, batch statistics
    dx = (g - y^ mean_S(g y^)) / sigma                         RMSNorm (y^ = x / sqrt(mean_S x^2 + eps))
    dx = g / sigma_running                                     running statistics (BN/IN eval)

(the ``mean_S(g)`` term is the dependence of the mean on x, the ``y^ mean_S(g y^)`` term that of the
variance: BatchNorm in training mode differentiates through its batch statistics.) The parameter
gradients are ``dweight = sum dy y^`` and ``dbias = sum dy``, summed over every axis the affine
parameters are broadcast along. One routine serves every spec: S comes from
:func:`normcheck.spec.plan`. A mixture of statistics (Switchable Norm: mean = sum_k a_k mean_k,
var = sum_k c_k var_k over sets S_k, a and c the softmax weights) differentiates each component:

    dx = g / sigma - sum_k [ a_k mean_{S_k}(g / sigma) + c_k (x - mean_k) mean_{S_k}(g y^ / sigma^2) ]

over the components that depend on the input (the running one is constant in eval mode); with one
component (a = c = 1, sigma constant over S) this is the centered formula above. The formulas are
checked against central finite differences of :func:`normcheck.reference.normalize` in float64
(tests/properties/test_gradients.py).

**Error model** (:func:`grad_scales`), in the forward model's terms (:mod:`normcheck.error_model`):
a backward kernel uses the forward statistics, whose errors are those of the forward model --
sigma has relative error ~ sqrt(n) u kappa_S and y^_i absolute error ~ sqrt(n) u kappa_S (1 + |y^_i|)
-- and two more length-n reductions, mean_S(g) and mean_S(g y^), each erring by ~ sqrt(n) u
mean_S(|g| (1 + |y^|)). Propagating each through ``dx = (g - a - y^ b) / sigma`` with
A = mean_S(|g| (1 + |y^|)) (so |a| + |b| <= A) bounds every term by

    s_i = (1 + sqrt(n) kappa_S) (1 + |y^_i|) (|g_i| + A) / sigma        input gradient

i.e. the gradient's scale |g| (1 + |y^|) sqrt(n) kappa / sigma, with A making it cover the
cancellation inside ``g - a - y^ b`` (the gradient may be much smaller than its terms). RMSNorm has
no centring, so kappa_S = 1 there. In eval mode nothing is reduced: s_i = |g_i| / sigma. The
parameter gradients are sums of N = (elements per parameter) terms dy y^, each carrying y^'s error:

    s_weight = sum |dy| ((1 + sqrt(n) kappa_S) (1 + |y^|) + sqrt(N) |y^|)
    s_bias   = sqrt(N) sum |dy|

(eval mode: n = 1 and kappa_i = (|x_i| + |running_mean|) / sigma as in the forward model). Every
scale gets the dtype's smallest normal number added, so a gradient that lands among subnormals is
allowed its absolute rounding (u * tiny per element). The one constant is the forward model's,
**lambda = 16**, unchanged: on the calibration run (:func:`calibrate`: every native
implementation with autodiff, every regime, float32 and bfloat16, 30-60 Hypothesis examples each)
the worst correct kernel observed 2.3 u s (torch 2.2, TensorFlow 2.3, JAX 2.4 outside its registered
findings), below lambda/2; a float32 BatchNorm gradient that treats the batch statistics as
constants is off by 6e4-7e5 u s on 24-192 values per channel.

**Properties** of the true gradient, checked on the reference (float64) and on each framework:
for centered norms with batch statistics, the input gradient sums to zero over
every S (``gradient_sums_to_zero``), and for every norm with batch statistics
``sum_S dx y^ = (eps / sigma^2) sum_S g y^ / sigma``: orthogonal to the normalized output, up to the
eps term that vanishes at eps = 0 (``gradient_orthogonal``). Both hold for any affine weight, with
g = dy * weight in place of dy (the normalization only sees the cotangent through the affine), so
cases keep their affine parameters: the identities differentiate the same call as
``gradient_agreement``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from normcheck import dtypes, error_model
from normcheck import spec as _spec
from normcheck.adapters.base import Unsupported
from normcheck.case import Case
from normcheck.profiles import run_seeded
from normcheck.properties.core import Result, Stop, register, verdict
from normcheck.reference import moments, running_view, softmax

__all__ = [
    "GRADIENT_PROPERTIES",
    "calibrate",
    "cotangent",
    "detached_input_gradients",
    "direction",
    "finite_differences",
    "grad_scales",
    "gradient_agreement",
    "gradient_orthogonal",
    "gradient_sums_to_zero",
    "hvp_scales",
    "reference_grads",
    "reference_hvp",
]


def cotangent(case: Case) -> np.ndarray:
    """The output cotangent dy the properties use: standard normal in the case dtype, seeded by
    the case's shape (deterministic, so a counterexample replays)."""
    seed = zlib.crc32(repr((case.norm, case.x.shape)).encode())
    return np.random.default_rng(seed).standard_normal(case.x.shape).astype(case.x.dtype)


@dataclass(frozen=True)
class _Term:
    """One set of statistics the normalization divides by: its axes (of the view), its weights in
    the mixed mean and variance (1 and 1 for a single-set norm), its mean, and whether it depends
    on the input (batch statistics) or is a constant (running statistics)."""

    axes: tuple[int, ...]
    a: float
    c: float
    mean: np.ndarray
    varying: bool


def _moments(x: np.ndarray, axes: tuple[int, ...], center: bool):
    """:func:`normcheck.reference.moments` (corrected two-pass) for a complex ``x`` too: no clamp of
    the variance at 0, so every operation is analytic (the complex-step derivative of
    :func:`reference_hvp` goes through it)."""
    if not np.iscomplexobj(x):
        return moments(x, axes, center=center)
    if not center:
        return np.zeros((1,) * x.ndim), np.mean(x * x, axis=axes, keepdims=True)
    n = math.prod(x.shape[a] for a in axes)
    mean = np.mean(x, axis=axes, keepdims=True)
    d = x - mean
    sd = np.sum(d, axis=axes, keepdims=True)
    return mean + sd / n, (np.sum(d * d, axis=axes, keepdims=True) - sd * sd / n) / n


def _terms(case: Case, x: np.ndarray | None = None):
    """(plan, x in the view shape, the statistics' terms, mixed mean, sigma, y^) in float64 (or
    complex128 for a complex ``x``, the case's input by default).

    A single-set norm has one term; a mixture (Switchable Norm) one per component, weighted by
    the softmax of its importance logits, the running component constant in eval mode."""
    spec, p = case.spec, case.plan()
    x = (case.x.astype(np.float64) if x is None else np.asarray(x)).reshape(p.view_shape)
    if spec.mix:
        comps = [(c.running, axes) for c, axes in zip(spec.mix, _spec.component_axes(spec, p), strict=True)]
        wm, wv = softmax(case.mean_weight), softmax(case.var_weight)
    else:
        comps, wm, wv = [(True, p.reduce)], [1.0], [1.0]
    terms, mean, var = [], 0.0, 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        for (running, axes), a, c in zip(comps, wm, wv, strict=True):
            if running and not case.use_batch_stats:
                mk = running_view(spec, p, case.running_mean, np.float64)
                vk = running_view(spec, p, case.running_var, np.float64)
            else:
                mk, vk = _moments(x, axes, spec.center)
            terms.append(_Term(axes, float(a), float(c), mk, not (running and not case.use_batch_stats)))
            mean, var = mean + a * mk, var + c * vk
    sigma = np.sqrt(var + spec.resolve_eps(case.args.get("eps"), case.x.dtype))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return p, x, terms, mean, sigma, (x - mean) / sigma


def _normalized(case: Case):
    """(plan, y^ in the view shape, sigma broadcastable to it, mean used) in float64."""
    p, _, _, mean, sigma, yhat = _terms(case)
    return p, yhat, sigma, mean


def _affine(case: Case, p, which: str):
    v = getattr(case, which)
    return 1.0 if v is None else np.asarray(v, np.float64).reshape(p.affine_broadcast)


def _through_affine(case: Case, p, dy) -> np.ndarray:
    """g = dy * weight in the view shape: the cotangent the normalization itself sees (float64)."""
    return (np.asarray(dy, np.float64) * _affine(case, p, "weight")).reshape(p.view_shape)


def _sum_axes(p) -> tuple[int, ...]:
    return tuple(i for i, d in enumerate(p.affine_broadcast) if d == 1)


def reference_grads(norm, case: Case, dy) -> dict[str, np.ndarray]:
    """Float64 gradients of ``sum(dy * norm(case))`` with respect to the input, and the weight and
    bias where the case has them: ``{"input", "weight", "bias"}`` (see the module docstring)."""
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    if spec.name != case.norm:
        raise ValueError(f"case is of {case.norm}, not {spec.name}")
    p, _, _, _, _, yhat = _terms(case)
    d = np.asarray(dy, np.float64)
    out = {"input": _input_gradient(case, d)}
    ax = _sum_axes(p)
    if case.weight is not None:
        out["weight"] = np.sum(d * yhat.reshape(case.x.shape), axis=ax).reshape(p.affine_shape)
    if case.bias is not None:
        out["bias"] = np.sum(d, axis=ax).reshape(p.affine_shape)
    return out


def _input_gradient(case: Case, dy, x: np.ndarray | None = None) -> np.ndarray:
    """The input gradient of ``sum(dy * norm(x))`` (the module docstring's formula), shaped like the
    input, at the case's input or at ``x`` (float64, or complex128 for :func:`reference_hvp`)."""
    spec = case.spec
    p, xv, terms, _, sigma, yhat = _terms(case, x)
    g = _through_affine(case, p, dy)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dx = g / sigma
        for t in (t for t in terms if t.varying):  # each input-dependent mean and variance
            if spec.center:
                dx = dx - t.a * np.mean(g / sigma, axis=t.axes, keepdims=True)
            dx = dx - t.c * (xv - t.mean) * np.mean(g * yhat / sigma**2, axis=t.axes, keepdims=True)
    return dx.reshape(case.x.shape)


def direction(case: Case) -> np.ndarray:
    """The input direction v of the second-order property: standard normal in the case dtype,
    seeded by the case's shape like :func:`cotangent` but independent of it."""
    seed = zlib.crc32(repr(("direction", case.norm, case.x.shape)).encode())
    return np.random.default_rng(seed).standard_normal(case.x.shape).astype(case.x.dtype)


def reference_hvp(case: Case, dy, v) -> np.ndarray:
    """Float64 second order: the derivative along the input direction ``v`` of the input gradient
    of ``sum(dy * norm(x))`` (the Hessian-vector product H v, H the input Hessian of that scalar),
    weight and bias held fixed, shaped like the input.

    Exact to float64 rounding by the complex step (Squire & Trapp, 1998): the analytic input
    gradient (:func:`_input_gradient`, every operation analytic) evaluated at ``x + i h v``, whose
    imaginary part is ``h H v + O(h^3)``, with no subtraction to cancel. ``h`` is 1e-20 of the
    smallest sigma over ``max |v|``, so the ``O(h^2)`` relative truncation (each derivative of the
    gradient scales as 1/sigma) is ~1e-40 and the imaginary parts stay far from underflow for
    every sigma the strategies draw. In eval mode the gradient does not depend on the input and
    H v is exactly 0."""
    x = case.x.astype(np.float64)
    vv = np.asarray(v, np.float64)
    _, _, _, _, sigma, _ = _terms(case)
    with np.errstate(invalid="ignore"):
        smin = float(np.nanmin(np.where(np.asarray(sigma) > 0, sigma, np.inf))) if np.size(sigma) else 1.0
    vmax = float(np.max(np.abs(vv))) if vv.size else 0.0
    if not math.isfinite(smin) or vmax == 0.0:
        smin = 1.0
    h = 1e-20 * smin / max(vmax, 1e-300)
    return _input_gradient(case, np.asarray(dy, np.float64), x + 1j * h * vv).imag / h


def _kappa(spec, x_abs, terms, sigma):
    """Per element, the worst term's conditioning kappa (a mixture's components, the running ones
    too): max_S |x| / sigma centered, 1 uncentered, (|x| + |running_mean|) / sigma for constants."""
    kappa = 0.0
    for t in terms:
        if not t.varying:
            kappa = np.maximum(kappa, (x_abs + np.abs(t.mean)) / sigma)
        elif spec.center:
            kappa = np.maximum(kappa, np.max(x_abs, axis=t.axes, keepdims=True) / sigma)
        else:
            kappa = np.maximum(kappa, 1.0)
    return kappa


def hvp_scales(case: Case, dy, v) -> np.ndarray:
    """Per-element scale s2 of the second derivative H v (:func:`reference_hvp`): allowed error
    lambda u s2 (:func:`normcheck.error_model.second_order_scale`; A, B and M per set, the largest
    over a mixture's input-dependent components)."""
    spec = case.spec
    p, x64, terms, _, sigma, yhat = _terms(case)
    g = (np.abs(np.asarray(dy, np.float64)) * np.abs(_affine(case, p, "weight"))).reshape(p.view_shape)
    av = np.abs(np.asarray(v, np.float64)).reshape(p.view_shape)
    varying = [t for t in terms if t.varying]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ay = np.abs(yhat)
        kappa = _kappa(spec, np.abs(x64), terms, sigma)
        a = b = m = 0.0
        n = 1
        if varying:
            n = max(math.prod(p.view_shape[k] for k in t.axes) for t in varying)
            for t in varying:
                b = np.maximum(b, np.mean(av * (1 + ay), axis=t.axes, keepdims=True))
            for t in varying:
                a = np.maximum(a, np.mean(g * (1 + ay), axis=t.axes, keepdims=True))
                m = np.maximum(m, np.mean(g * (1 + ay) * (av + b), axis=t.axes, keepdims=True))
        s2 = error_model.second_order_scale(yhat, g, av, sigma, conditioning=1 + np.sqrt(n) * kappa, a=a, b=b, m=m)
    return np.broadcast_to(s2, p.view_shape).reshape(case.x.shape) + float(dtypes.finfo(case.dtype).tiny)


def detached_input_gradients(case: Case, dy) -> dict[str, np.ndarray]:
    """The float64 input gradient of an implementation that treats statistics as constants (a
    ``detach``, ``no_grad`` or ``stop_gradient`` on them), by what it detaches. With g = dy weight
    and y^ = (x - mean) / sigma over each set S, the true gradient is
    ``(g - mean_S(g) - y^ mean_S(g y^)) / sigma``; a detached mean drops ``mean_S(g)``, a detached
    variance (rsqrt) drops ``y^ mean_S(g y^)``, both leave ``g / sigma``. Single-set norms in
    training only (an empty dict otherwise)."""
    if case.spec.mix or not case.use_batch_stats:
        return {}
    p, yhat, sigma, _ = _normalized(case)
    g = _through_affine(case, p, dy)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mg = np.mean(g, axis=p.reduce, keepdims=True)
        mgy = np.mean(g * yhat, axis=p.reduce, keepdims=True)
        if case.spec.center:
            out = {
                "detached_mean_and_variance": g / sigma,
                "detached_mean": (g - yhat * mgy) / sigma,
                "detached_variance": (g - mg) / sigma,
            }
        else:
            out = {"detached_rsqrt": g / sigma}
    return {k: v.reshape(case.x.shape) for k, v in out.items()}


def grad_scales(case: Case, dy) -> dict[str, np.ndarray]:
    """Per-element scales s of each gradient (the module docstring): allowed error lambda u s."""
    spec = case.spec
    p, x64, terms, _, sigma, yhat = _terms(case)
    d = np.abs(np.asarray(dy, np.float64))
    x = np.abs(x64)
    g = (d * np.abs(_affine(case, p, "weight"))).reshape(p.view_shape)
    varying = [t for t in terms if t.varying]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ay = np.abs(yhat)
        kappa = _kappa(spec, x, terms, sigma)
        if varying:
            n = max(math.prod(p.view_shape[a] for a in t.axes) for t in varying)
            big_a = 0.0
            for t in varying:
                big_a = np.maximum(big_a, np.mean(g * (1 + ay), axis=t.axes, keepdims=True))
            s_in = (1 + np.sqrt(n) * kappa) * (1 + ay) * (g + big_a) / sigma
        else:
            n = 1
            s_in = g / sigma
        tiny = float(dtypes.finfo(case.dtype).tiny)
        out = {"input": s_in.reshape(case.x.shape) + tiny}
        ax = _sum_axes(p)
        count = case.x.size // max(int(np.prod(p.affine_shape)), 1)
        per = ((1 + np.sqrt(n) * kappa) * (1 + ay) + np.sqrt(count) * ay).reshape(case.x.shape)
        if case.weight is not None:
            out["weight"] = np.sum(d * per, axis=ax).reshape(p.affine_shape) + tiny
        if case.bias is not None:
            out["bias"] = np.sqrt(count) * np.sum(d, axis=ax).reshape(p.affine_shape) + tiny
    return out


def finite_differences(case: Case, dy, *, h: float = 1e-6) -> dict[str, np.ndarray]:
    """Central finite differences of ``sum(dy * reference(case))`` in float64 (for the tests):
    each element of the input, weight and bias perturbed by ``h * max(1, |v|)``."""
    d = np.asarray(dy, np.float64)
    base = {k: None if getattr(case, k) is None else getattr(case, k).astype(np.float64) for k in ("weight", "bias")}
    c64 = case.with_(
        x=case.x.astype(np.float64),
        running_mean=None if case.running_mean is None else case.running_mean.astype(np.float64),
        running_var=None if case.running_var is None else case.running_var.astype(np.float64),
        **base,
    )

    def loss(c: Case) -> float:
        return float(np.sum(d * c.reference().y))

    out = {}
    for k in ("input", "weight", "bias"):
        attr = "x" if k == "input" else k
        v = getattr(c64, attr)
        if v is None:
            continue
        grad = np.zeros(v.shape)
        for i in np.ndindex(v.shape):
            step = h * max(1.0, abs(float(v[i])))
            hi, lo = v.copy(), v.copy()
            hi[i] += step
            lo[i] -= step
            grad[i] = (loss(c64.with_(**{attr: hi})) - loss(c64.with_(**{attr: lo}))) / (2 * step)
        out[k] = grad
    return out


# --- properties ------------------------------------------------------------------------------


def _native(impl, case: Case, dy) -> dict[str, np.ndarray]:
    """The implementation's own gradients, or a skip/error Result (as :func:`normcheck.properties.core.call` does)."""
    from normcheck import autodiff

    try:
        got = autodiff.vjp(impl, case, dy)
    except Unsupported as e:
        raise Stop(Result("", "skip", message=f"unsupported: {e}")) from None
    except Exception as e:
        msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
        raise Stop(Result("", "error", message=f"gradient raised {msg}", case=case)) from None
    for k, v in got.items():
        want = (case.x if k == "input" else getattr(case, k)).shape
        if np.shape(v) != want:
            lam = error_model.MODEL.lam
            raise Stop(Result("", "fail", np.inf, lam, f"d{k} has shape {np.shape(v)}, expected {want}", case=case))
    return got


def _representable(case: Case, ref: dict[str, np.ndarray]) -> None:
    big = float(dtypes.finfo(case.dtype).max) / 4
    for k, v in ref.items():
        if not np.isfinite(v).all() or (v.size and float(np.max(np.abs(v))) > big):
            raise Stop(Result("", "skip", message=f"the true d{k} is not representable in {case.dtype}"))


def _single_set(case: Case) -> None:
    if case.spec.mix:  # shifting or scaling one component's set moves the others' statistics too
        raise Stop(Result("", "skip", message="a mixture of statistics has no set S the gradient sums over"))


@register
def gradient_agreement(impl, case: Case) -> Result:
    """The framework's input, weight and bias gradients equal the float64 reference's."""
    dy = cotangent(case)
    ref = reference_grads(case.norm, case, dy)
    _representable(case, ref)
    got = _native(impl, case, dy)
    s = grad_scales(case, dy)
    return verdict(
        "gradient_agreement",
        [(f"d{k}", error_model.compare(got[k], ref[k], s[k], case.dtype)) for k in ref if k in got],
    )


def _applicable(case: Case, *, centered: bool) -> Case:
    """The case itself, affine parameters kept (g = dy weight takes dy's place), so the identities
    differentiate the very call gradient_agreement does (and reuse its compiled programs); an
    implementation without affine parameters (jax.nn.standardize) is checked without them."""
    _single_set(case)
    if centered and not case.spec.center:
        raise Stop(Result("", "skip", message="uncentered norm: the gradient need not sum to zero"))
    if not case.use_batch_stats:
        raise Stop(Result("", "skip", message="eval mode: the statistics do not depend on the input"))
    return case


def _set_sums(case: Case, dx, s, weight_fn):
    """(sum_S dx w, sum_S s |w|, expected) per set, with w = weight_fn(y^, sigma, g)."""
    p, yhat, sigma, _ = _normalized(case)
    g = _through_affine(case, p, cotangent(case))
    w, expected = weight_fn(yhat, sigma, g, p)
    v = np.asarray(dx, np.float64).reshape(p.view_shape)
    sv = np.asarray(s, np.float64).reshape(p.view_shape)
    bound = np.sum(sv * np.abs(w), axis=p.reduce, keepdims=True)
    tiny = float(dtypes.finfo(case.dtype).tiny)  # all y^ = 0 (a constant set): nothing to weigh
    return np.sum(v * w, axis=p.reduce, keepdims=True), np.maximum(bound, tiny), expected


def _identity_check(name: str, impl, case: Case, weight_fn) -> Result:
    if case.weight is not None or case.bias is not None:
        try:
            return _identity_on(name, impl, case, weight_fn)
        except Stop as stop:
            if stop.result.verdict != "skip" or not stop.result.message.startswith("unsupported"):
                raise
        case = case.with_(weight=None, bias=None)  # an implementation without affine parameters
    return _identity_on(name, impl, case, weight_fn)


def _identity_on(name: str, impl, case: Case, weight_fn) -> Result:
    dy = cotangent(case)
    ref = reference_grads(case.norm, case, dy)
    _representable(case, ref)
    got = _native(impl, case, dy)
    s = grad_scales(case, dy)["input"]
    comps = []
    for who, dx, dt in (("reference", ref["input"], "float64"), ("implementation", got["input"], case.dtype)):
        total, bound, expected = _set_sums(case, dx, s, weight_fn)
        comps.append((who, error_model.compare(total, expected, bound, dt)))
    if not comps[0][1].ok:  # the identity's own float64 residual is past its bound: nothing to judge by
        msg = f"not applicable: the float64 reference misses the identity by {comps[0][1].observed:.3g} u·s here"
        raise Stop(Result("", "skip", message=msg))
    return verdict(name, comps)


@register
def gradient_sums_to_zero(impl, case: Case) -> Result:
    """Centered norms, batch statistics: sum_S dx = 0 over every set S (with or without affine)."""
    c = _applicable(case, centered=True)

    def ones(yhat, sigma, g, p):
        return np.ones_like(yhat), np.zeros(p.stat_shape)

    return _identity_check("gradient_sums_to_zero", impl, c, ones)


@register
def gradient_orthogonal(impl, case: Case) -> Result:
    """Batch statistics: sum_S dx y^ = (eps / sigma^2) sum_S g y^ / sigma with g = dy weight
    (orthogonal to the normalized output up to the eps term)."""
    c = _applicable(case, centered=False)
    eps = c.spec.resolve_eps(c.args.get("eps"), c.x.dtype)

    def along_yhat(yhat, sigma, g, p):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return yhat, eps / sigma**2 * np.sum(g * yhat, axis=p.reduce, keepdims=True) / sigma

    return _identity_check("gradient_orthogonal", impl, c, along_yhat)


GRADIENT_PROPERTIES = {f.__name__: f for f in (gradient_agreement, gradient_sums_to_zero, gradient_orthogonal)}


def calibrate(*, examples: int = 40, dtypes_=("float32", "bfloat16"), seed: int = 0, frameworks=None) -> dict:
    """Observed gradient errors (model units) of every native implementation with autodiff on
    random cases of every regime: ``{impl id: (worst observed, worst case description)}``."""
    import hypothesis
    from hypothesis import HealthCheck, given

    from normcheck import adapters, strategies

    worst: dict[str, tuple[float, str]] = {}
    for impl in adapters.implementations([f for f in (frameworks or autodiff_frameworks())]):
        for dt in dtypes_:
            if dt not in impl.dtypes:
                continue

            record = _recorder(impl, f"{impl.id}[{dt}]", worst)
            strategy = strategies.cases(impl.norm, dtypes=(dt,), running_stats=None if impl.running_stats else False)
            settings = hypothesis.settings(
                max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck)
            )
            run_seeded(settings(given(strategy)(record)), seed)
    return worst


def _recorder(impl, key: str, worst: dict):
    def record(case):
        r = gradient_agreement(impl, case)
        if r.verdict in ("pass", "fail") and r.observed > worst.get(key, (-1.0, ""))[0]:
            worst[key] = (r.observed, f"{case.describe()}: {r.message}")

    return record


def autodiff_frameworks() -> tuple[str, ...]:
    from normcheck import autodiff

    return tuple(autodiff.FRAMEWORKS)
