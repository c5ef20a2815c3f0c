"""TensorFlow's autodiff of its native norms (:meth:`TensorFlowAdapter.vjp`): ``tf.GradientTape``
over a freshly built Keras layer (under ``tf.function(jit_compile=True)`` in the compiled mode) and
over the ``tf.nn.moments`` + ``tf.nn.batch_normalization`` composition.

A user's target (:meth:`TensorFlowAdapter.target_vjp`): ``tf.GradientTape`` over
``Target.native_call`` with the input, weight and bias watched (a function, ``tf.custom_gradient``
included, or a torch-style module class), or for a Keras layer class over the layer built and driven
as the adapter drives it (channels-last for the channel norms); the whole pass runs in the target's
guard (the tape is per thread).

Second order (:func:`hvp`, :func:`target_hvp`): nested tapes, the derivative along ``v`` of the input
gradient of ``<dy, f(x)>`` (reverse over reverse), through the same layer, composition or target.

Every convention is the adapter's (:mod:`normcheck.adapters.tensorflow`): its helpers are used, not
restated. Training mode differentiates through the batch statistics; the running-buffer update is
not differentiated.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from normcheck.adapters.base import TargetLike, Unsupported, case_arguments, gradient_keys, spell_axes
from normcheck.case import Case

__all__ = ["hvp", "target_hvp", "target_vjp", "vjp"]


class _TapeGrads:
    """``(x, dy) -> [dx, *dvariables]`` through one Keras layer; a callable object rather than a
    closure, so that ``tf.function`` keys its retracing statistics on each object (as the adapter's
    ``_Run`` does)."""

    def __init__(self, tf, layer, variables, training: bool):
        self.tf, self.layer, self.variables, self.training = tf, layer, variables, training
        self.takes_training = "training" in inspect.signature(layer.call).parameters

    def forward(self, xv):
        return self.layer(xv, training=self.training) if self.takes_training else self.layer(xv)

    def __call__(self, xv, g):
        with self.tf.GradientTape() as tape:
            tape.watch(xv)
            y = self.forward(xv)
        return tape.gradient(y, [xv, *self.variables], output_gradients=g)


class _TapeHvp(_TapeGrads):
    """``(x, dy, v) -> H v``: nested tapes, the derivative along ``v`` of the input gradient of
    ``<dy, layer(x)>`` (reverse over reverse; the Hessian of that scalar is symmetric)."""

    def __call__(self, xv, g, v):
        return _nested(self.tf, self.forward, xv, g, v)


def _nested(tf, forward, xt, dy, v):
    """H v of ``<dy, forward(x)>`` at ``xt`` by nested tapes, a tensor (None where the gradient
    leaves the tape)."""
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            y = forward(xt)
        dx = inner.gradient(y, xt, output_gradients=tf.cast(dy, y.dtype))
    return None if dx is None else outer.gradient(dx, xt, output_gradients=tf.cast(v, dx.dtype))


def _second(tf, forward, xt, dy, v):
    """:func:`_nested` as a NumPy array, zeros where the gradient leaves the tape."""
    h = _nested(tf, forward, xt, dy, v)
    return np.zeros(tuple(xt.shape)) if h is None else h.numpy()


#: Built layers and their (compiled) tape functions by configuration, shape, eps and momentum, so
#: the gradient properties of one case share one trace; a call only assigns the variables.
_TF_VJPS: dict[tuple, tuple[Any, Any]] = {}


def _keras_vjp(
    tfa,
    case: Case,
    a: dict[str, Any],
    dy: np.ndarray,
    layout: str,
    mode: str,
    cls=None,
    dtype_policy: str = "mixed",
    axis_spelling: str = "negative",
    feed: str = "own",
    *,
    v: np.ndarray | None = None,
):
    """``tf.GradientTape`` through the Keras layer of the case's norm (or ``cls``, a user's Keras
    layer class constructed like it, as the adapter's forward call builds it); with ``v``, the second
    order instead: H v by nested tapes (:class:`_TapeHvp`), an array shaped like the input."""
    s, norm = case.spec, case.norm
    if (norm, "keras") in tfa.NOT_NATIVE:
        raise Unsupported(tfa.NOT_NATIVE[(norm, "keras")])
    x = np.asarray(a["input"])
    eps = s.resolve_eps(a.get("eps"), x.dtype)
    use_batch = tfa._use_batch(s, a)
    if s.has_running_stats:
        tfa._check_buffers(a, use_batch)
    momentum = tfa._keras_momentum(a["momentum"]) if s.has_running_stats and use_batch else 0.99
    keras, tf = tfa.import_keras(), tfa.import_tensorflow()
    xt = tfa._to_layout(x, layout)
    config = tfa._keras_config(norm, a, layout, axis_spelling)
    policy = tfa.policy(x.dtype, dtype_policy)
    key = (norm, tuple(sorted((k, str(v)) for k, v in config.items())), xt.shape, policy, eps, momentum)
    key += (bool(use_batch), case.weight is not None, case.bias is not None, mode, cls, v is not None)
    cached = _TF_VJPS.get(key)
    if cached is None:
        layer = (cls or tfa.keras_layer(keras, norm))(epsilon=eps, dtype=policy, **config)
        layer.build(xt.shape)
        if norm == "batch_norm":
            layer.momentum = momentum
    else:
        layer, grads = cached
    p = case.plan()
    gamma = layer.scale if norm == "rms_norm" else layer.gamma
    if gamma is not None:
        tfa._assign(gamma, np.ones(p.affine_shape) if case.weight is None else case.weight)
    if case.bias is not None:
        tfa._assign(layer.beta, case.bias)
    if norm == "batch_norm":
        rm, rv = a.get("running_mean"), a.get("running_var")
        tfa._assign(layer.moving_mean, np.zeros(p.affine_shape) if rm is None else rm)
        tfa._assign(layer.moving_variance, np.ones(p.affine_shape) if rv is None else rv)
    if cached is None:
        weighted = gamma if case.weight is not None else None
        variables = [v for v in (weighted, getattr(layer, "beta", None)) if v is not None]
        grads = (_TapeGrads if v is None else _TapeHvp)(tf, layer, variables, bool(use_batch))
        if mode == "compiled":
            grads = tf.function(grads, jit_compile=True)
        if len(_TF_VJPS) > 128:
            _TF_VJPS.clear()
        _TF_VJPS[key] = (layer, grads)
    xin, g = tf.convert_to_tensor(tfa.fed(xt, feed)), tf.convert_to_tensor(tfa._to_layout(np.asarray(dy), layout))
    if v is not None:
        h = grads(xin, g, tf.convert_to_tensor(tfa._to_layout(np.asarray(v), layout)))
        return tfa._from_layout(np.zeros(xt.shape) if h is None else h.numpy(), layout).astype(x.dtype)
    res = grads(xin, g)
    out = {"input": tfa._from_layout(res[0].numpy(), layout).astype(x.dtype)}
    rest = [r.numpy() for r in res[1:]]
    if case.weight is not None:
        out["weight"] = rest.pop(0).reshape(case.weight.shape)
    if case.bias is not None:
        out["bias"] = rest.pop(0).reshape(case.bias.shape)
    return out


def _tfnn_vjp(
    tfa,
    case: Case,
    a: dict[str, Any],
    dy: np.ndarray,
    jit_compile: bool = False,
    axis_spelling: str = "positive",
    *,
    v: np.ndarray | None = None,
):
    """The adapter's tf.nn composition (:func:`normcheck.adapters.tensorflow.tfnn_program`, eager or
    compiled), differentiated: moments over the norm's axes, then batch_normalization; the affine
    parameters are watched constants of the statistics' dtype. With ``v``: H v by nested tapes."""
    s, norm = case.spec, case.norm
    if (norm, "tf.nn") in tfa.NOT_NATIVE:
        raise Unsupported(tfa.NOT_NATIVE[(norm, "tf.nn")])
    x = np.asarray(a["input"])
    use_batch = tfa._use_batch(s, a)
    rm, rv = a.get("running_mean"), a.get("running_var")
    if s.has_running_stats:
        tfa._check_buffers(a, use_batch)
        if use_batch and (rm is not None or rv is not None):
            raise Unsupported("tf.nn has no running-statistics update")
    tf = tfa.import_tensorflow()
    p = case.plan()
    if norm == "group_norm":
        n, c, g = x.shape[0], x.shape[1], int(a["num_groups"])
        view, axes, affine = (
            (n, g, c // g, *x.shape[2:]),
            list(range(2, x.ndim + 1)),
            (1, g, c // g) + (1,) * (x.ndim - 2),
        )
    elif norm == "layer_norm":
        view, axes, affine = x.shape, list(p.reduce), p.affine_shape
    else:
        view = x.shape
        axes = [0, *range(2, x.ndim)] if norm == "batch_norm" else list(range(2, x.ndim))
        affine = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    xt = tf.convert_to_tensor(x)
    stat_dt = np.float32 if x.dtype.itemsize == 2 and not use_batch else x.dtype
    consts = {
        k: tf.convert_to_tensor(np.reshape(getattr(case, k), affine).astype(stat_dt)) for k in gradient_keys(case)[1:]
    }
    run = tfa.tfnn_program(tf, tuple(view), spell_axes(axes, len(view), axis_spelling), jit_compile)
    stats = None if use_batch else (np.reshape(rm, affine), np.reshape(rv, affine))
    eps = tf.constant(s.resolve_eps(a["eps"], x.dtype), tf.float64)
    if v is not None:

        def forward(xv):
            return tf.reshape(run(xv, stats, consts.get("bias"), consts.get("weight"), eps), x.shape)

        return _second(tf, forward, xt, tf.convert_to_tensor(np.asarray(dy)), tf.convert_to_tensor(np.asarray(v)))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        for t in consts.values():
            tape.watch(t)
        y = tf.reshape(run(xt, stats, consts.get("bias"), consts.get("weight"), eps), x.shape)
    keys = list(consts)
    res = tape.gradient(y, [xt, *consts.values()], output_gradients=tf.convert_to_tensor(np.asarray(dy)))
    out = {"input": res[0].numpy()}
    for k, r in zip(keys, res[1:]):
        out[k] = r.numpy().reshape(getattr(case, k).shape)
    return out


def vjp(impl, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``tf.GradientTape`` through the Keras layer or the tf.nn composition of ``impl``."""
    from normcheck.adapters import tensorflow as tfa

    a, options = case_arguments(case), case.configuration(impl)
    if impl.form == "keras":
        return _keras_vjp(tfa, case, a, dy, impl.layout, impl.mode, **options)
    if impl.form == "tf.nn":
        return _tfnn_vjp(tfa, case, a, dy, **options)
    raise Unsupported(f"no tensorflow autodiff for the {impl.form} form")


def hvp(impl, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Second order: nested ``tf.GradientTape`` (reverse over reverse) through the Keras layer or the
    tf.nn composition of ``impl``: the derivative of its input gradient along ``v``."""
    from normcheck.adapters import tensorflow as tfa

    a, options = case_arguments(case), case.configuration(impl)
    if impl.form == "keras":
        return _keras_vjp(tfa, case, a, dy, impl.layout, impl.mode, **options, v=v)
    if impl.form == "tf.nn":
        return _tfnn_vjp(tfa, case, a, dy, **options, v=v)
    raise Unsupported(f"no tensorflow autodiff for the {impl.form} form")


# --- a user's target -------------------------------------------------------------------------------

#: The layout a user's Keras layer class runs in (:func:`normcheck.adapters.tensorflow.keras_layer_function`'s
#: default: Keras's channels-last data format for the channel norms).
_USER_KERAS_LAYOUT = {"batch_norm": "channels_last", "group_norm": "channels_last"}


def _output(tf, y, case: Case):
    if not isinstance(y, tf.Tensor | tf.Variable):
        got = "None" if y is None else type(y).__module__.split(".")[0] + "." + type(y).__qualname__
        raise TypeError(f"the target's output is {got}, not a tf.Tensor")
    if tuple(y.shape) != case.x.shape:
        raise ValueError(f"the target's output has shape {tuple(y.shape)}, expected {case.x.shape}")
    return y


def target_vjp(target: TargetLike, case: Case, dy: np.ndarray) -> dict[str, np.ndarray]:
    """``tf.GradientTape`` over a user's target at ``case`` for ``dy``: a function (or torch-style
    module) through ``Target.native_call`` with the input, weight and bias watched; a Keras layer
    class built and driven like the native layer. A gradient that reaches no watched tensor is zero."""
    from normcheck.adapters import tensorflow as tfa

    a = case_arguments(case)
    if target.adapted is not None:  # a Keras layer class: constructed and called like keras.layers' own
        layout = _USER_KERAS_LAYOUT.get(case.norm, "channels_first")
        return target.guard.call(_keras_vjp, tfa, case, a, dy, layout, "eager", target.obj)
    tf = tfa.import_tensorflow()
    keys = gradient_keys(case)

    def run():
        leaves = {k: tfa.ADAPTER.to_native(a[k]) for k in keys}
        with tf.GradientTape() as tape:
            for t in leaves.values():
                tape.watch(t)
            y = _output(tf, target.native_call({**a, **leaves}, meta=a), case)
        g = tf.cast(tfa.ADAPTER.to_native(np.asarray(dy)), y.dtype)
        got = tape.gradient(y, [leaves[k] for k in keys], output_gradients=g)
        return {
            k: np.zeros(np.shape(a[k])) if r is None else tfa.ADAPTER.to_numpy(tf.convert_to_tensor(r))
            for k, r in zip(keys, got, strict=True)
        }

    return target.guard.call(run)


def target_hvp(target: TargetLike, case: Case, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Second order of a user's target by nested tapes: a function (or torch-style module) through
    ``Target.native_call`` with the input watched, a Keras layer class as :func:`hvp` drives the
    native layer. A gradient that leaves the tape gives a zero second derivative."""
    from normcheck.adapters import tensorflow as tfa

    a = case_arguments(case)
    if target.adapted is not None:
        layout = _USER_KERAS_LAYOUT.get(case.norm, "channels_first")
        return target.guard.call(_keras_vjp, tfa, case, a, dy, layout, "eager", target.obj, v=v)
    tf = tfa.import_tensorflow()

    def run():
        xt = tfa.ADAPTER.to_native(a["input"])

        def forward(xv):
            return _output(tf, target.native_call({**a, "input": xv}, meta=a), case)

        return _second(tf, forward, xt, tfa.ADAPTER.to_native(np.asarray(dy)), tfa.ADAPTER.to_native(np.asarray(v)))

    return target.guard.call(run)
