"""Float64 reference implementation of every norm in ``specs/``.

One routine, :func:`normalize`, computes ``y = (x - mean_S) / sqrt(var_S + eps) * weight + bias``
over the axis set S that the spec resolves to (:func:`normcheck.spec.plan`); the public functions
(``batch_norm``, ``layer_norm``, ``group_norm``, ``instance_norm``, ``rms_norm``, and any norm a
new spec file adds) are generated from each spec's ``[signature]``, which mirrors
``torch.nn.functional``. They accept NumPy arrays of any float dtype, compute in float64 (a
corrected two-pass variance), return float64, and update ``running_mean``/``running_var`` in place
exactly as torch does (unbiased stored variance, ``new = (1 - momentum) * old + momentum * batch``).

``momentum=None`` is torch's cumulative moving average (the modules' ``momentum=None``): a
training step's factor is ``1 / num_batches_tracked`` *after* the step's increment. The counter
is module state that the canonical function call cannot carry, so :func:`normalize` takes it as
``num_batches_tracked``, the number of batches tracked *before* the step (0 for a freshly built
module, whose first step replaces the initial buffers by the batch statistics; the k-th step of a
fresh module, ``num_batches_tracked=k - 1``, averages k batches equally); without it a step with
``momentum=None`` is a ``ValueError``, as in the functions of :func:`function`
(:func:`update_factor`).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from normcheck import spec as _spec

__all__ = [
    "function",
    "mixture",
    "moments",
    "normalize",
    "running_view",
    "softmax",
    "update_factor",
    *_spec.names(),
]


def moments(v: np.ndarray, axes: tuple[int, ...], *, center: bool = True, dtype=np.float64):
    """Mean and biased variance of ``v`` over ``axes`` (kept as size-1), in float64.

    Computed in ``dtype``. Corrected two-pass: ``mean`` is refined by the mean of the residuals, and the variance is
    ``(sum d^2 - (sum d)^2 / n) / n`` (Chan, Golub & LeVeque, 1983). For ``center=False`` the
    "variance" is the mean square about zero and the mean is 0.
    """
    v = np.asarray(v, dtype=dtype)
    if not center:
        return np.zeros((1,) * v.ndim, dtype), _mean(v * v, axes)
    n = 1
    for a in axes:
        n *= v.shape[a]
    mean = _mean(v, axes)
    d = v - mean
    sd = np.add.reduce(d, axis=axes, keepdims=True)  # np.sum's own reduction, without its wrapper
    mean = mean + sd / n
    var = (np.add.reduce(d * d, axis=axes, keepdims=True) - sd * sd / n) / n
    return mean, np.maximum(var, 0)


def _mean(v: np.ndarray, axes) -> np.ndarray:
    """``np.mean(v, axis=axes, keepdims=True)``, bit for bit: the same sum divided by the same count,
    without the wrapper's overhead (which dominates on the small sets the properties draw)."""
    if v.dtype not in (np.float64, np.float32):  # np.mean accumulates float16 in float32
        return np.mean(v, axis=axes, keepdims=True)
    n = 1
    for a in axes:
        n *= v.shape[a]
    total = np.add.reduce(v, axis=axes, keepdims=True)
    return np.true_divide(total, np.intp(n), out=total, casting="unsafe")


def _as(a, dtype):
    return None if a is None else np.asarray(a).astype(dtype)


def _check_affine(name, p, plan):
    if p is not None and tuple(np.shape(p)) != plan.affine_shape:
        raise ValueError(f"{name} must have shape {plan.affine_shape}, got {tuple(np.shape(p))}")


def running_view(spec, plan, stat, dtype):
    """Broadcast a running statistic of shape (C,) into the view's statistic shape."""
    axes = [a for s in spec.running_stats["shape"] for a in plan.symbols[s]]
    shape = [plan.view_shape[a] if a in axes else 1 for a in range(len(plan.view_shape))]
    return np.asarray(stat).astype(dtype).reshape(shape)


def update_factor(momentum, num_batches_tracked=None) -> float:
    """The weight a training step gives the batch statistics: ``momentum``, or for ``momentum=None``
    (the cumulative moving average) ``1 / (num_batches_tracked + 1)``, ``num_batches_tracked``
    being the count *before* the step (torch increments it, then divides by it)."""
    if momentum is not None:
        return float(momentum)
    if num_batches_tracked is None:
        raise ValueError(
            "momentum=None (a cumulative average) needs num_batches_tracked, the module's count of batches "
            "before the step; the canonical function call carries no counter"
        )
    k = int(num_batches_tracked)
    if k < 0:
        raise ValueError(f"num_batches_tracked={k} must be >= 0")
    return 1.0 / (k + 1)


def _update_running(spec, plan, mean, var, running_mean, running_var, momentum, num_batches_tracked=None):
    """Torch's update: per-stat-element batch statistics, averaged over ``average_over``."""
    rs = spec.running_stats
    avg_axes = tuple(a for s in rs.get("average_over", []) for a in plan.symbols[s])
    n = plan.reduce_size
    unbiased = var * (n / (n - 1)) if rs["stored_variance"] == "unbiased" and n > 1 else var
    bm = np.mean(mean, axis=avg_axes) if avg_axes else mean
    bv = np.mean(unbiased, axis=avg_axes) if avg_axes else unbiased
    m = update_factor(momentum, num_batches_tracked)
    for buf, stat in ((running_mean, bm), (running_var, bv)):
        if buf is None:
            continue
        if not isinstance(buf, np.ndarray):
            raise TypeError("running buffers must be NumPy arrays to be updated in place")
        new = (1.0 - m) * buf.astype(np.float64) + m * np.reshape(stat, buf.shape)
        buf[...] = new.astype(buf.dtype)


def softmax(logits, dtype=np.float64) -> np.ndarray:
    """``exp(l - max l) / sum exp(l - max l)`` (a logit of -inf gets exactly 0)."""
    z = np.asarray(logits).astype(dtype).ravel()
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def mixture(
    spec, p, v, mean_weight, var_weight, running_mean, running_var, use_batch, momentum, dtype, num_batches_tracked=None,
    scale=1.0,
):  # fmt: skip
    """The softmax-weighted mean and variance over the spec's components (see :func:`normalize`), of
    ``v`` already scaled by the power of two ``scale`` (the running statistics are scaled to match, and
    their updates unscaled)."""
    k = len(spec.mix)
    for name, lg in (("mean_weight", mean_weight), ("var_weight", var_weight)):
        if lg is None or np.shape(lg) != (k,):
            raise ValueError(f"{spec.name}: {name} must be {k} logits (one per component), got {np.shape(lg)}")
    wm, wv = softmax(mean_weight, dtype), softmax(var_weight, dtype)
    mean = var = np.asarray(0, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for i, (c, axes) in enumerate(zip(spec.mix, _spec.component_axes(spec, p), strict=True)):
            if c.running and not use_batch:
                mk = running_view(spec, p, running_mean, dtype) * scale
                vk = running_view(spec, p, running_var, dtype) * scale * scale
            else:
                mk, vk = moments(v, axes, center=spec.center, dtype=dtype)
                if c.running and (running_mean is not None or running_var is not None):
                    s64 = np.float64(scale)  # the batch statistics unscaled where float32 may not hold them
                    _update_running(spec, p, mk / s64, vk / s64 / s64, running_mean, running_var, momentum,
                                    num_batches_tracked)  # fmt: skip
            mean, var = mean + wm[i] * mk, var + wv[i] * vk
    return mean, var


def normalize(
    norm,
    input,
    *,
    weight=None,
    bias=None,
    eps=None,
    normalized_shape=None,
    num_groups=None,
    running_mean=None,
    running_var=None,
    use_batch_stats: bool = True,
    momentum: float | None = 0.1,
    reduce_axes=None,
    mean_weight=None,
    var_weight=None,
    dtype=np.float64,
    num_batches_tracked: int | None = None,
) -> np.ndarray:
    """Normalize ``input`` over the spec's axis set S (or ``reduce_axes``), in float64.

    ``y = (x - mean_S) / sqrt(var_S + eps) * weight + bias``; with ``use_batch_stats=False`` the
    running statistics replace the batch's; with it and running buffers given, they are updated.
    For a mixture spec (``spec.mix``: Switchable Normalization) the mean and variance are
    ``sum_k softmax(mean_weight)_k mean_k`` and ``sum_k softmax(var_weight)_k var_k`` over the
    components' sets; without batch statistics only the running component is replaced.
    ``dtype`` is the computation dtype (float64 for the reference; the NumPy adapter's
    float32-faithful form passes float32) and the dtype of the result.

    The running buffers are updated with the factor :func:`update_factor` gives: ``momentum``, or
    for ``momentum=None`` (torch's cumulative average) ``1 / (num_batches_tracked + 1)``, where
    ``num_batches_tracked`` is the module's count of batches before this step (0: a freshly built
    module); ``momentum=None`` without it raises ``ValueError`` when the buffers would be updated.
    """
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    x = np.asarray(input)
    eps = spec.resolve_eps(eps, x.dtype)
    p = _spec.plan(spec, x.shape, normalized_shape=normalized_shape, num_groups=num_groups, reduce_axes=reduce_axes)
    _check_affine("weight", weight, p)
    _check_affine("bias", bias, p)
    v = x.astype(dtype).reshape(p.view_shape)
    buffers = running_mean is not None or running_var is not None
    if use_batch_stats and p.reduce_size < spec.min_reduce_size_training:
        raise ValueError(
            f"{spec.name}: expected more than 1 value per statistic when using batch statistics, "
            f"got input shape {x.shape}"
        )
    if not use_batch_stats and (running_mean is None or running_var is None):
        raise ValueError(f"{spec.name}: running_mean and running_var are needed without batch statistics")
    if np.dtype(dtype) != np.float64 and (spec.mix or use_batch_stats):
        return _normalize_scaled(spec, p, x, v, eps, weight, bias, dtype, use_batch_stats, buffers,
                                 (running_mean, running_var, momentum, num_batches_tracked, mean_weight, var_weight))  # fmt: skip
    if spec.mix:
        mean, var = mixture(spec, p, v, mean_weight, var_weight, running_mean, running_var, use_batch_stats,
                             momentum, dtype, num_batches_tracked)  # fmt: skip
    elif use_batch_stats:
        with np.errstate(invalid="ignore", over="ignore"):
            mean, var = moments(v, p.reduce, center=spec.center, dtype=dtype)
        if buffers:
            _update_running(spec, p, mean, var, running_mean, running_var, momentum, num_batches_tracked)
    else:
        mean, var = running_view(spec, p, running_mean, dtype), running_view(spec, p, running_var, dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN/Inf propagate by design
        y = ((v - mean) / np.sqrt(var + np.asarray(eps, dtype))).reshape(x.shape)
    return _affine(y, weight, bias, p, dtype)


def _affine(y, weight, bias, p, dtype):
    """``y * weight + bias``, each where given."""
    if weight is not None:
        y = y * _as(weight, dtype).reshape(p.affine_broadcast)
    if bias is not None:
        y = y + _as(bias, dtype).reshape(p.affine_broadcast)
    return y


def _normalize_scaled(spec, p, x, v, eps, weight, bias, dtype, use_batch, buffers, running):
    """Batch statistics in a precision below float64, computed on each set scaled by a power of two
    ``k`` that brings ``max_S |x|`` into [0.5, 1) (or as near as ``eps k^2`` stays finite):
    ``(k x - mean(k x)) / sqrt(var(k x) + eps k^2)``
    (for a mixture, whose components run over different sets, one ``k`` for the whole input).

    Scaling by a power of two is exact, so wherever ``n x^2`` fits the dtype this is bit for bit the
    unscaled computation; past that (``|x|`` above ~1e19 in float32) the moments stay finite where
    the unscaled ones overflow, as a careful kernel's do. ``eps k^2`` may underflow to 0: a constant
    set (numerator and denominator 0) then gives 0, as the reference does."""
    running_mean, running_var, momentum, num_batches_tracked, mean_weight, var_weight = running
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        amax = np.max(np.where(np.isfinite(v), np.abs(v), 0), axis=None if spec.mix else p.reduce, keepdims=True)
        # scaled up no further than eps k^2 stays finite (a subnormal max, 1e-45 in float32, would
        # need k = 2^149): the set leaves the subnormal range, whose arithmetic loses bits
        info = np.finfo(dtype)
        top = info.maxexp - 2
        room = np.log2(float(info.max) / float(np.real(eps))) if np.real(eps) > 0 else np.inf
        if np.isfinite(room):  # (a long double's max is inf as a float: no limit there)
            top = min(top, int(room // 2) - 1)
        e = np.minimum(-np.frexp(np.where(amax > 0, amax, 1).astype(np.float64))[1], top)
        k = np.ldexp(np.ones_like(amax), e).astype(dtype)
        vs = v * k
        if spec.mix:
            mean, var = mixture(spec, p, vs, mean_weight, var_weight, running_mean, running_var, use_batch, momentum,
                                dtype, num_batches_tracked, k)  # fmt: skip
        else:
            mean, var = moments(vs, p.reduce, center=spec.center, dtype=dtype)
            if buffers:
                k64 = k.astype(np.float64)  # the batch statistics unscaled where float32 may not hold them
                _update_running(spec, p, mean / k64, var / k64 / k64, running_mean, running_var, momentum,
                                num_batches_tracked)  # fmt: skip
        num = vs - mean
        den = np.sqrt(var + np.asarray(eps, dtype) * k * k)
        y = np.divide(num, den, out=np.zeros_like(num), where=(den != 0) | (num != 0))
        lost = (den == 0) & (num != 0)  # eps k^2 underflowed on a set whose centring left a residue
        if lost.any():  # (a mixture's weights summing to 1 - u): num / (sqrt(eps) k), as unscaled
            k64 = np.broadcast_to(k, num.shape).astype(np.float64)
            y = np.where(lost, (num.astype(np.float64) / (np.sqrt(eps) * k64)).astype(dtype), y)
    return _affine(y.reshape(x.shape), weight, bias, p, dtype)


_ROLE_ARGS = (
    "weight",
    "bias",
    "eps",
    "normalized_shape",
    "num_groups",
    "running_mean",
    "running_var",
    "momentum",
    "mean_weight",
    "var_weight",
)


def function(norm, *, faithful: bool = False, axes=None):
    """The reference function of a spec, with the spec's (torch-mirroring) signature.

    ``faithful=True`` gives the float32-faithful variant instead: computed in the input's dtype
    promoted to at least float32, and returned in the input's dtype (the NumPy adapter's form).
    ``axes`` makes it an axis-set variant: the statistics run over those input axes instead of the
    spec's set S (``function("layer_norm", axes=(1,))`` is ConvNeXt's channels-first LayerNorm;
    ``normalized_shape`` then gives the sizes of those axes).
    """
    spec = _spec.get(norm) if isinstance(norm, str) else norm
    params = []
    for p in spec.params:
        name, sep, default = p.partition("=")
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=_spec._literal(default) if sep else inspect.Parameter.empty,
            )
        )
    sig = inspect.Signature(params)

    def fn(*args: Any, **kwargs: Any) -> np.ndarray:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        use_batch = bool(a[spec.batch_stats_flag]) if spec.batch_stats_flag else True
        if spec.batch_stats_flag == "training" and not use_batch and a.get("running_mean") is None:
            raise ValueError(f"{spec.name}: running_mean and running_var are needed when training=False")
        kw = {k: a[k] for k in _ROLE_ARGS if k in a}
        if axes is not None:
            kw["reduce_axes"] = tuple(axes) if not isinstance(axes, int) else (axes,)
        if not faithful:
            return normalize(spec, a["input"], use_batch_stats=use_batch, **kw)
        x = np.asarray(a["input"])
        dt = np.promote_types(np.float32, np.float64 if x.dtype == np.float64 else np.float32)
        return normalize(spec, x, use_batch_stats=use_batch, dtype=dt, **kw).astype(x.dtype)

    fn.__signature__ = sig
    fn.__name__ = fn.__qualname__ = spec.name
    fn.__module__ = __name__
    fn.__doc__ = f"{spec.title} in float64: {spec.formula}.\n\nMirrors {spec.raw.get('torch', 'torch')}."
    return fn


def __getattr__(name: str):
    if name in _spec.names():
        f = function(name)
        globals()[name] = f
        return f
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_spec.names()))
