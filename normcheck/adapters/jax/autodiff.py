"""JAX's autodiff of the flax norms (:meth:`JaxAdapter.vjp`): ``jax.vjp`` over ``module.apply``
(linen; ``jax.jit`` of the whole VJP in the jit mode), over ``nnx.merge(graphdef, params, rest)(x)``
(eager nnx; in the jit mode ``jax.jit`` of the VJP over the layer built from its traced state) and
over ``jax.nn.standardize`` (``jax.jit`` of the whole VJP, as for the jit forms).

A user's target (:meth:`JaxAdapter.target_vjp`): ``jax.vjp`` over ``Target.native_call`` (a
function, ``jax.custom_vjp`` included, or a torch-style module class), or for a flax.linen module
class over its ``apply``, constructed and driven as the adapter drives it (channels-last for the
channel norms, under ``jax.jit``); the whole pass runs in the target's guard.

Second order (:func:`hvp`, :func:`target_hvp`): forward-over-reverse, ``jax.jvp`` of the
``jax.vjp`` pullback along ``v`` (the Hessian-vector product of ``<dy, f(x)>``), jitted like the
VJP in the jit mode.

Forward mode (:func:`jvp`, :func:`target_jvp`): ``jax.jvp`` along tangents of the input and the
layer's parameters (weight and bias, where the case has them) at once, jitted and cached per
configuration like the VJP in the jit modes (one program per shape), op by op in the eager ones; a
user's ``jax.custom_jvp`` is differentiated through its rule.

Every convention is the adapter's (:mod:`normcheck.adapters.jax`): its helpers are used, not
restated. Training mode differentiates through the batch statistics; the running-buffer update is
not differentiated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck.adapters.base import (
    TargetLike,
    Unsupported,
    case_arguments,
    configuration,
    gradient_keys,
    move_channels,
    spell_axes,
)
from normcheck.adapters.jax import programs
from normcheck.adapters.jax.standardize import standardize_options
from normcheck.case import Case

__all__ = ["hvp", "jvp", "target_hvp", "target_jvp", "target_vjp", "vjp"]


def _options(ja, case: Case, form: str) -> dict[str, Any]:
    """The constructor options of the case's configuration (``Case.variant``) for Flax's own layers
    or ``jax.nn.standardize``; none for variant 0 (the defaults, and every user target's cases)."""
    return configuration(ja.config_axes(form, case.norm), case.variant) if case.variant else {}


def _flax_config(
    ja, case: Case, a: dict[str, Any], layout: str, form: str
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(module config, params, num_features) as the jax adapter builds them for this case."""
    from normcheck import spec as _spec

    norm, x = case.norm, np.asarray(a["input"])
    w, b = a.get("weight"), a.get("bias")
    params, flags = ja._affine(w, b, x.dtype)
    cfg = {**ja._common(x, case.spec.resolve_eps(a.get("eps"), x.dtype)), **flags}
    options = _options(ja, case, form)
    if norm in ("batch_norm", "instance_norm", "group_norm", "layer_norm"):
        cfg["use_bias"] = b is not None
    if norm == "batch_norm":
        training = bool(a["training"])
        given = a.get("running_mean") is not None
        momentum = ja._flax_momentum(a["momentum"]) if training and given else ja.CONVENTIONS["default_momentum"]
        cfg.update(use_running_average=not training, axis=-1 if layout == "channels_last" else 1, momentum=momentum)
        cfg.update(ja.reduction_options(options, (), x.ndim, x.dtype))
        return cfg, ja.cast_params(params, cfg), x.shape[1]
    if norm == "instance_norm":
        if a.get("running_mean") is not None or not a["use_input_stats"]:
            raise Unsupported("flax InstanceNorm tracks no running statistics")
        cfg["feature_axes"] = -1 if layout == "channels_last" else 1
        cfg.update(ja.reduction_options(options, (), x.ndim, x.dtype))
        return cfg, ja.cast_params(params, cfg), x.shape[1]
    if norm == "group_norm":
        if layout != "channels_last":
            raise Unsupported("flax GroupNorm groups the last axis only (channels_last)")
        cfg["num_groups"] = int(a["num_groups"])
        cfg.update(ja.reduction_options(options, (), x.ndim, x.dtype))
        return cfg, ja.cast_params(params, cfg), x.shape[1]
    p = case.plan()
    axes = tuple(range(-len(p.reduce), 0))
    cfg.update(reduction_axes=axes, feature_axes=axes)
    if norm == "rms_norm":
        cfg["epsilon"] = float(_spec.get("rms_norm").resolve_eps(a.get("eps"), x.dtype))
    cfg.update(ja.reduction_options(options, axes, x.ndim, x.dtype))
    return cfg, ja.cast_params(params, cfg), int(np.prod(p.affine_shape))


_JAX_VJPS: dict[tuple, Any] = {}


def _cached(key: tuple, build):
    """``_JAX_VJPS[key]``, made by ``build()`` on first use (the cache is bounded)."""
    fn = _JAX_VJPS.get(key)
    if fn is None:
        if len(_JAX_VJPS) > 256:
            _JAX_VJPS.clear()
        fn = _JAX_VJPS[key] = build()
    return fn


def _jit(run, key: tuple, cls=None):
    """``jax.jit(run)``, its executables kept between runs under ``key`` (:mod:`programs`), except
    for a user's class (``cls``), whose code normcheck cannot key."""
    return programs.jit(run, key if cls is None else None)


def _cfg_key(cfg: dict[str, Any], *skip: str) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in cfg.items() if k not in skip))


def _fwd_over_rev(f, x, dy, v):
    """Forward-over-reverse: the derivative along ``v`` of the input gradient of ``<dy, f(x)>``
    (``jax.jvp`` of the ``jax.vjp`` pullback), the Hessian-vector product H v."""
    import jax
    import jax.numpy as jnp

    def grad(x):
        y, back = jax.vjp(f, x)
        return back(jnp.asarray(dy).astype(y.dtype))[0]

    return jax.jvp(grad, (x,), (v,))[1]


def _linen_module(ja, norm: str, cfg: dict[str, Any], cls=None):
    """Flax's linen class of ``norm`` (or ``cls``, a user's linen class constructed like it)."""
    import flax.linen as nn

    return (cls or getattr(nn, ja.FLAX_CLASSES[norm]))(**cfg)


def _linen_apply(module, training: bool):
    """``f(x, params, stats) -> y``: the linen module applied (batch statistics mutable in training)."""

    def f(x, params, stats):
        variables = {"params": params, **({"batch_stats": stats} if stats is not None else {})}
        if training and stats is not None:
            return module.apply(variables, x, mutable=["batch_stats"])[0]
        return module.apply(variables, x)

    return f


def _linen_vjp_fn(ja, norm: str, cfg: dict[str, Any], training: bool, jit: bool, cls=None):
    def build():
        import jax

        f = _linen_apply(_linen_module(ja, norm, cfg, cls), training)

        def run(x, params, stats, dy):
            _, back = jax.vjp(lambda x, params: f(x, params, stats), x, params)
            return back(dy)

        return _jit(run, key, cls) if jit else run

    key = (norm, _cfg_key(cfg), training, jit, cls)
    return _cached(key, build)


def _linen_hvp_fn(ja, norm: str, cfg: dict[str, Any], training: bool, jit: bool, cls=None):
    """``run(x, params, stats, dy, v)``: forward-over-reverse through the linen module."""

    def build():

        f = _linen_apply(_linen_module(ja, norm, cfg, cls), training)

        def run(x, params, stats, dy, v):
            return _fwd_over_rev(lambda x: f(x, params, stats), x, dy, v)

        return _jit(run, key, cls) if jit else run

    key = ("hvp", norm, _cfg_key(cfg), training, jit, cls)
    return _cached(key, build)


def _linen_jvp_fn(ja, norm: str, cfg: dict[str, Any], training: bool, jit: bool, cls=None):
    """``run(x, params, stats, tx, tparams)``: ``jax.jvp`` through the linen module along the input
    and parameter tangents."""

    def build():
        import jax

        f = _linen_apply(_linen_module(ja, norm, cfg, cls), training)

        def run(x, params, stats, tx, tparams):
            return jax.jvp(lambda x, params: f(x, params, stats), (x, params), (tx, tparams))[1]

        return _jit(run, key, cls) if jit else run

    key = ("jvp", norm, _cfg_key(cfg), training, jit, cls)
    return _cached(key, build)


def _nnx_jvp_fn(ja, norm: str, cfg: dict[str, Any], features: int, jit: bool):
    """``run(x, params, stats, tx, tparams, epsilon)``: ``jax.jvp`` through the nnx layer built from
    its (traced) state, jitted in the jit mode."""

    def build():
        import jax

        def run(x, params, stats, tx, tparams, epsilon):
            def f(x, params):
                return ja.nnx_layer(norm, features, {**cfg, "epsilon": epsilon}, params, stats)(x)

            return jax.jvp(f, (x, params), (tx, tparams))[1]

        return _jit(run, key) if jit else run

    key = ("nnx-jvp", norm, _cfg_key(cfg, "epsilon"), features, jit)
    return _cached(key, build)


def _nnx_vjp_fn(ja, norm: str, cfg: dict[str, Any], features: int):
    """``jax.jit`` of the VJP through the nnx layer built inside the trace from its traced state
    (as :func:`normcheck.adapters.jax._nnx_runner`), ``epsilon`` an argument; cached per configuration."""

    def build():
        import jax

        def run(x, params, stats, dy, epsilon):
            def f(x, params):
                return ja.nnx_layer(norm, features, {**cfg, "epsilon": epsilon}, params, stats)(x)

            _, back = jax.vjp(f, x, params)
            return back(dy)

        return _jit(run, key)

    key = ("nnx", norm, _cfg_key(cfg, "epsilon"), features)
    return _cached(key, build)


def _nnx_hvp_fn(ja, norm: str, cfg: dict[str, Any], features: int):
    """``jax.jit`` of forward-over-reverse through the nnx layer built inside the trace."""

    def build():

        def run(x, params, stats, dy, v, epsilon):
            def f(x):
                return ja.nnx_layer(norm, features, {**cfg, "epsilon": epsilon}, params, stats)(x)

            return _fwd_over_rev(f, x, dy, v)

        return _jit(run, key)

    key = ("nnx-hvp", norm, _cfg_key(cfg, "epsilon"), features)
    return _cached(key, build)


def _standardize_fn(ja, case: Case, a: dict[str, Any]):
    """``f(x)``: ``jax.nn.standardize`` over the norm's axis set (Unsupported where it is not one)."""
    import jax

    if case.weight is not None or case.bias is not None:
        raise Unsupported("jax.nn.standardize has no affine parameters")
    if case.running_mean is not None or not case.use_batch_stats:
        raise Unsupported("jax.nn.standardize keeps no running statistics")
    if case.norm not in ("batch_norm", "instance_norm", "layer_norm"):
        raise Unsupported(f"{case.norm} is not a standardization")
    options = standardize_options(_options(ja, case, "standardize"))
    axes = spell_axes(case.plan().reduce, case.x.ndim, options.pop("axis_spelling", "positive"))
    eps = float(a["eps"])
    return lambda x: jax.nn.standardize(x, axis=axes, epsilon=eps, **options)


def _standardize_program(ja, case: Case, what: str, build):
    """The cached jitted ``build(f)`` of ``f`` = ``jax.nn.standardize`` bound to the case's axes, eps and
    configuration, which key it (``what`` names the derivative: "standardize-vjp", "-jvp", "-hvp")."""
    a = case_arguments(case)
    f = _standardize_fn(ja, case, a)  # raises Unsupported for what standardize cannot express, cached or not
    key = (what, case.plan().reduce, float(a["eps"]), tuple(sorted(_options(ja, case, "standardize").items())))
    return _cached(key, lambda: _jit(build(f), key))


@dataclass
class _Flax:
    """A case as a flax layer sees it: the module configuration, its parameters (host and device),
    the batch statistics, the input in the layer's layout."""

    cfg: dict[str, Any]
    params: dict[str, np.ndarray]
    features: int
    last: bool
    x: Any
    p: dict[str, Any]
    stats: dict[str, Any] | None
    training: bool

    def native(self, ja, a) -> Any:
        """A NumPy array of the case (channels-first) on the device, in the layer's layout."""
        return ja.put(move_channels(np.asarray(a), self.last))

    def canonical(self, a) -> np.ndarray:
        return move_channels(np.array(a), self.last, back=True)


def _flax_case(ja, case: Case, a: dict[str, Any], layout: str, form: str) -> _Flax:
    if case.norm == "batch_norm" and bool(a["training"]) and a.get("running_mean") is not None:
        if case.plan().reduce_size < 2:
            raise Unsupported("training with one value per channel: the unbiased running variance is undefined")
    if case.norm == "batch_norm" and not a["training"] and a.get("running_mean") is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    cfg, params, features = _flax_config(ja, case, a, layout, form)
    last = layout == "channels_last"
    stats = None
    if case.norm == "batch_norm":
        sdt = ja._stats_dtype(case.x.dtype)
        rm = np.zeros(features, sdt) if case.running_mean is None else case.running_mean
        rv = np.ones(features, sdt) if case.running_var is None else case.running_var
        stats = {"mean": ja.put(rm), "var": ja.put(rv)}
    training = case.norm == "batch_norm" and bool(a["training"])
    x = ja.put(move_channels(case.x, last))
    return _Flax(cfg, params, features, last, x, {k: ja.put(v) for k, v in params.items()}, stats, training)


def _flax_vjp(ja, case: Case, dy: np.ndarray, form: str, layout: str, mode: str, cls=None) -> dict[str, np.ndarray]:
    """``jax.vjp`` through a flax linen (flax's class or a user's ``cls``) or nnx layer."""
    import jax

    fl = _flax_case(ja, case, case_arguments(case), layout, form)
    params, g = fl.params, fl.native(ja, dy)
    if form == "linen":
        dx, dp = _linen_vjp_fn(ja, case.norm, fl.cfg, fl.training, mode == "jit", cls)(fl.x, fl.p, fl.stats, g)
    elif form == "nnx" and mode == "jit":
        dx, dp = _nnx_vjp_fn(ja, case.norm, fl.cfg, fl.features)(fl.x, fl.p, fl.stats, g, fl.cfg["epsilon"])
        dp = {k: np.asarray(v).reshape(params[k].shape) for k, v in dp.items()}
    elif form == "nnx":
        from flax import nnx

        host = {k: ja.put(np.asarray(v).reshape(-1)) for k, v in params.items()}
        layer = ja.nnx_layer(case.norm, fl.features, fl.cfg, host, fl.stats)
        graphdef, params_state, rest = nnx.split(layer, nnx.Param, ...)

        def f(x, params_state):
            return nnx.merge(graphdef, params_state, rest, copy=True)(x)

        _, back = jax.vjp(f, fl.x, params_state)
        dx, dstate = back(g)
        dp = {k: np.asarray(dstate[k][...]).reshape(params[k].shape) for k in params}
    else:
        raise Unsupported(f"no jax autodiff for the {form} form")
    out = {"input": fl.canonical(dx)}
    for k, name in (("weight", "scale"), ("bias", "bias")):
        if getattr(case, k) is not None:
            out[k] = np.array(dp[name]).reshape(getattr(case, k).shape)
    return out


def _flax_hvp(ja, case: Case, dy: np.ndarray, v: np.ndarray, form: str, layout: str, mode: str, cls=None):
    """Forward-over-reverse through a flax linen (flax's class or ``cls``) or nnx layer."""
    fl = _flax_case(ja, case, case_arguments(case), layout, form)
    g, t = fl.native(ja, dy), fl.native(ja, v)
    if form == "linen":
        h = _linen_hvp_fn(ja, case.norm, fl.cfg, fl.training, mode == "jit", cls)(fl.x, fl.p, fl.stats, g, t)
    elif form == "nnx" and mode == "jit":
        h = _nnx_hvp_fn(ja, case.norm, fl.cfg, fl.features)(fl.x, fl.p, fl.stats, g, t, fl.cfg["epsilon"])
    elif form == "nnx":
        from flax import nnx

        host = {k: ja.put(np.asarray(p).reshape(-1)) for k, p in fl.params.items()}
        graphdef, state = nnx.split(ja.nnx_layer(case.norm, fl.features, fl.cfg, host, fl.stats))
        h = _fwd_over_rev(lambda x: nnx.merge(graphdef, state, copy=True)(x), fl.x, g, t)
    else:
        raise Unsupported(f"no jax second-order autodiff for the {form} form")
    return fl.canonical(h)


#: A flax parameter's canonical name.
_CANONICAL = {"scale": "weight", "bias": "bias"}


def _flax_jvp(ja, case: Case, tangents: dict[str, np.ndarray], form: str, layout: str, mode: str, cls=None):
    """``jax.jvp`` through a flax linen (flax's class or a user's ``cls``) or nnx layer, along the
    input tangent and the parameters' (zero for a parameter without one)."""
    fl = _flax_case(ja, case, case_arguments(case), layout, form)
    tx = fl.native(ja, np.asarray(tangents["input"]).astype(case.x.dtype))
    tp = {}
    for k, p in fl.p.items():
        t = tangents.get(_CANONICAL.get(k, k))
        t = np.zeros(p.shape) if t is None else np.asarray(t).reshape(p.shape)
        tp[k] = ja.put(t.astype(p.dtype))
    if form == "linen":
        out = _linen_jvp_fn(ja, case.norm, fl.cfg, fl.training, mode == "jit", cls)(fl.x, fl.p, fl.stats, tx, tp)
    elif form == "nnx":
        run = _nnx_jvp_fn(ja, case.norm, fl.cfg, fl.features, mode == "jit")
        out = run(fl.x, fl.p, fl.stats, tx, tp, fl.cfg["epsilon"])
    else:
        raise Unsupported(f"no jax forward-mode autodiff for the {form} form")
    return fl.canonical(out)


def jvp(impl, case: Case, tangents: dict[str, np.ndarray]) -> np.ndarray:
    """``jax.jvp`` through the flax linen/nnx layer or ``jax.nn.standardize`` of ``impl``: the output's
    derivative along the input, weight and bias tangents."""
    from normcheck.adapters import jax as ja

    jax = ja.setup()

    ja._check_dtype(case.x.dtype)
    if impl.form == "standardize":
        run = _standardize_program(ja, case, "standardize-jvp", lambda f: lambda x, t: jax.jvp(f, (x,), (t,))[1])
        return np.array(run(ja.put(case.x), ja.put(np.asarray(tangents["input"]).astype(case.x.dtype))))
    return _flax_jvp(ja, case, tangents, impl.form, impl.layout, impl.mode)


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``jax.vjp`` through the flax linen/nnx layer or ``jax.nn.standardize`` of ``impl``."""
    from normcheck.adapters import jax as ja

    ja.setup()

    ja._check_dtype(case.x.dtype)
    if impl.form == "standardize":
        run = _standardize_program(ja, case, "standardize-vjp", _pullback)
        return {"input": np.array(run(ja.put(case.x), ja.put(dy)))}
    return _flax_vjp(ja, case, dy, impl.form, impl.layout, impl.mode)


def _pullback(f):
    """``run(x, dy)``: the input gradient of ``<dy, f(x)>``, ``jax.vjp``'s pullback, as one function
    to jit (as a training step differentiates under ``jax.jit``): one program per shape, where the
    pullback of ``jax.nn.standardize`` run op by op compiled some eight."""
    import jax

    def run(x, dy):
        return jax.vjp(f, x)[1](dy)[0]

    return run


def hvp(impl, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Forward-over-reverse (``jax.jvp`` of the ``jax.vjp`` pullback) through the flax linen/nnx
    layer or ``jax.nn.standardize`` of ``impl``: the derivative of its input gradient along ``v``."""
    from normcheck.adapters import jax as ja

    ja.setup()

    ja._check_dtype(case.x.dtype)
    if impl.form == "standardize":
        run = _standardize_program(ja, case, "standardize-hvp", lambda f: lambda x, dy, v: _fwd_over_rev(f, x, dy, v))
        return np.array(run(ja.put(case.x), ja.put(dy), ja.put(v)))
    return _flax_hvp(ja, case, dy, v, impl.form, impl.layout, impl.mode)


# --- a user's target -------------------------------------------------------------------------------

#: The layout a user's linen class runs in (:func:`normcheck.adapters.jax.linen_layer_function`'s
#: default: flax's own channels-last for the channel norms).
_USER_LINEN_LAYOUT = {"batch_norm": "channels_last", "group_norm": "channels_last", "instance_norm": "channels_last"}


def _output(y, expected: tuple[int, ...]):
    """The target's output ``y``, checked to be a JAX array of the input's shape ``expected``."""
    shape = getattr(y, "shape", None)
    if shape is None or not hasattr(y, "dtype"):
        raise TypeError(
            f"the target's output is {type(y).__module__.split('.')[0]}.{type(y).__qualname__}, not a jax.Array"
        )
    if tuple(shape) != expected:
        raise ValueError(f"the target's output has shape {tuple(shape)}, expected {expected}")
    return y


#: A function target's derivative programs (:func:`_whole`): id(target) -> (the target, its programs
#: by derivative and the call's constant arguments).
_WHOLE: dict[int, tuple[Any, dict]] = {}
#: Targets whose derivative could not be compiled whole with eps traced, by id: tried again with eps
#: compiled in once their own calls show it must be (``floats_static``).
_RETRY: dict[int, Any] = {}


def _whole(target: TargetLike, a: dict[str, Any], kind: str, body):
    """``jax.jit`` of a function target's derivative together with the target (``body(f, *rest)``,
    ``f`` the target over the traced arguments), as a training step under ``jax.jit`` differentiates
    it: one program per shape, where ``jax.vjp`` of the target's own ``jax.jit`` compiles its forward
    and its pullback apart. The arrays (and eps and momentum, unless the target needs them constant)
    are the program's arguments, the rest its constants. Returns (the program, its traced arguments),
    or None where the target is not a compiled function."""
    if not target.compiles_whole:
        if _RETRY.get(id(target)) is not target or not target.floats_static:
            return None
        del _RETRY[id(target)]
        target.whole = True
    traced = {}
    for k, v in a.items():
        if isinstance(v, np.ndarray) or (isinstance(v, float | np.floating) and not target.floats_static):
            traced[k] = v
    static = {k: v for k, v in a.items() if k not in traced}
    key = (kind, repr(sorted(static.items())), tuple(sorted(traced)))
    held = _WHOLE.get(id(target))
    if held is None or held[0] is not target:
        if len(_WHOLE) > 8:
            _WHOLE.clear()
        held = _WHOLE[id(target)] = (target, {})
    programs_of = held[1]
    fn = programs_of.get(key)
    if fn is None:
        import jax

        if len(programs_of) > 64:
            programs_of.clear()

        def run(traced_args, *rest):
            full = {**static, **traced_args}

            def f(**arrays):
                args = {**full, **arrays}
                return _output(target.native_call(args, meta=args), tuple(full["input"].shape))

            return body(f, full, *rest)

        fn = programs_of[key] = jax.jit(run)
    return fn, traced


def _call_whole(target: TargetLike, whole, *rest):
    """The program of :func:`_whole` run in the target's guard; None where the compiler could not
    trace the target with its derivative (from then on its derivatives run as before, unless it
    failed with eps traced and the target's calls then compile eps in: then it is tried again)."""
    from normcheck.adapters import jax as ja

    fn, traced = whole

    def run():
        with target.traced():
            return fn(traced, *rest)

    try:
        return target.guard.call(run)
    except Exception as e:
        if not ja.ADAPTER.untraceable(e):
            raise
        target.whole = False
        if not target.floats_static:  # eps compiled in may be what it needs: tried again then
            if len(_RETRY) > 8:
                _RETRY.clear()
            _RETRY[id(target)] = target
        return None


def _vjp_body(keys: tuple[str, ...]):
    """The pullback of ``<dy, f>`` for the arguments ``keys`` (the body :func:`_whole` compiles)."""

    def body(f, full, dy):
        import jax

        y, back = jax.vjp(lambda *arrays: f(**dict(zip(keys, arrays, strict=True))), *(full[k] for k in keys))
        return back(dy.astype(y.dtype))

    return body


def _hvp_body(f, full, dy, v):
    """Forward-over-reverse along ``v`` in the input (the body :func:`_whole` compiles)."""
    return _fwd_over_rev(lambda x: f(input=x), full["input"], dy, v)


def target_vjp(target: TargetLike, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``jax.vjp`` of a user's target at ``case`` for ``dy``: a function (or torch-style module) through
    ``Target.native_call``, a flax.linen module class through ``apply`` as the adapter drives it."""
    from normcheck.adapters import jax as ja

    jax = ja.setup()

    ja._check_dtype(case.x.dtype)
    if target.adapted is not None:  # a flax.linen class: constructed and applied like flax's own
        layout = _USER_LINEN_LAYOUT.get(case.norm, "channels_first")
        return target.guard.call(_flax_vjp, ja, case, dy, "linen", layout, "jit", target.obj)
    a = case_arguments(case)
    keys = gradient_keys(case)
    whole = _whole(target, a, "vjp", _vjp_body(keys))
    if whole is not None:
        grads = _call_whole(target, whole, np.asarray(dy))
        if grads is not None:
            return {k: np.array(g) for k, g in zip(keys, grads, strict=True)}

    def run():
        def f(*arrays):
            return _output(target.native_call({**a, **dict(zip(keys, arrays, strict=True))}, meta=a), case.x.shape)

        y, back = jax.vjp(f, *(ja.put(a[k]) for k in keys))
        grads = back(ja.put(np.asarray(dy).astype(y.dtype)))
        return {k: np.array(g) for k, g in zip(keys, grads, strict=True)}

    return target.guard.call(run)


def target_hvp(target: TargetLike, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Forward-over-reverse through a user's target: the derivative of its input gradient along ``v``."""
    from normcheck.adapters import jax as ja

    ja.setup()

    ja._check_dtype(case.x.dtype)
    if target.adapted is not None:
        layout = _USER_LINEN_LAYOUT.get(case.norm, "channels_first")
        return target.guard.call(_flax_hvp, ja, case, dy, v, "linen", layout, "jit", target.obj)
    a = case_arguments(case)
    whole = _whole(target, a, "hvp", _hvp_body)
    if whole is not None:
        out = _call_whole(target, whole, np.asarray(dy), np.asarray(v))
        if out is not None:
            return np.array(out)

    def run():
        def f(x):
            return _output(target.native_call({**a, "input": x}, meta=a), case.x.shape)

        return np.array(_fwd_over_rev(f, ja.put(case.x), np.asarray(dy), ja.put(v)))

    return target.guard.call(run)


def target_jvp(target: TargetLike, case: Case, tangents: dict[str, np.ndarray]) -> np.ndarray:
    """``jax.jvp`` of a user's target at ``case`` along ``tangents`` (input, weight, bias): a function
    (``jax.custom_jvp`` through its rule) or torch-style module through ``Target.native_call``, a
    flax.linen module class through ``apply`` as the adapter drives it."""
    from normcheck.adapters import jax as ja

    jax = ja.setup()

    ja._check_dtype(case.x.dtype)
    if target.adapted is not None:
        layout = _USER_LINEN_LAYOUT.get(case.norm, "channels_first")
        return target.guard.call(_flax_jvp, ja, case, tangents, "linen", layout, "jit", target.obj)
    a = case_arguments(case)
    keys = tuple(k for k in gradient_keys(case) if k in tangents)

    def run():
        def f(*arrays):
            return _output(target.native_call({**a, **dict(zip(keys, arrays, strict=True))}, meta=a), case.x.shape)

        primals = tuple(ja.put(a[k]) for k in keys)
        ts = tuple(ja.put(np.asarray(tangents[k]).astype(np.asarray(a[k]).dtype)) for k in keys)
        return np.array(jax.jvp(f, primals, ts)[1])

    return target.guard.call(run)
