"""ONNX Runtime: the ONNX normalization operators, each as a one-node model run by ORT's CPU provider.

Forms, behind the canonical convention of :mod:`normcheck.adapters.base`:

- ``onnx``: the native operator at the opset in ``CONVENTIONS["opset"]``: BatchNormalization-15
  (training and inference mode), InstanceNormalization-22, LayerNormalization-17,
  GroupNormalization-21 (per-channel scale) and RMSNormalization-23;
- ``opset18`` (group_norm): GroupNormalization-18, whose scale and bias are per *group*;
- ``torch-export`` (group_norm): the graph ``torch.onnx.export`` (TorchScript exporter) emits for
  ``nn.GroupNorm`` -- Reshape to ``(N, G, -1)``, InstanceNormalization with scale 1 and bias 0,
  Reshape back, Mul by the weight, Add the bias.

Every translation between the canonical (torch) convention and ONNX's lives in
:data:`CONVENTIONS` and the helpers right below it. A model is built with ``onnx.helper`` once per
(graph, attributes, input shapes and dtypes, opset) and its ``InferenceSession`` cached; weight,
bias and running statistics are graph inputs, so one session serves every value, or (a configuration,
:data:`PARAMETER_CONFIG`) initializers stored in the model, as an exported model holds them. ORT's
results come back as NumPy arrays.

Importing this module imports neither onnx nor onnxruntime; an Impl imports them when called.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.adapters.base import Adapter, Impl, Unsupported

__all__ = [
    "ADAPTER",
    "CONVENTIONS",
    "NOT_NATIVE",
    "PARAMETER_CONFIG",
    "OnnxRuntimeAdapter",
    "build_count",
    "clear_cache",
]

# --- the one place where ONNX's conventions meet the canonical (torch) ones ---------------------
CONVENTIONS: dict[str, Any] = {
    # The opset each form's model imports (the operator's newest version at that opset).
    "opset": {
        "BatchNormalization": 15,
        "InstanceNormalization": 22,
        "LayerNormalization": 17,
        "GroupNormalization": 21,
        "GroupNormalization-18": 18,
        "RMSNormalization": 23,
        "torch-export": 17,  # what torch.onnx.export(dynamo=False) emits GroupNorm as below opset 21
    },
    # BatchNormalization: running = running * momentum + batch * (1 - momentum).
    "momentum": "onnx keeps the old fraction: onnx_momentum = 1 - torch_momentum; momentum=None is unsupported",
    # The operators' default epsilon (every call passes the canonical eps explicitly).
    "default_eps": {
        "BatchNormalization": 1e-5,
        "InstanceNormalization": 1e-5,
        "LayerNormalization": 1e-5,
        "GroupNormalization": 1e-5,
        "RMSNormalization": 1e-5,
    },
    "eps": (
        "inside the square root; `epsilon` is a FLOAT (32-bit) attribute: for float32 and 16-bit "
        "inputs rounding eps to float32 is within the computation's own rounding (torch rounds it "
        "the same way), for float64 an eps float32 cannot hold exactly is Unsupported"
    ),
    # BatchNormalization in training mode stores the batch variance ReduceVar(X): the biased one.
    # The canonical buffer is the unbiased one; with n values per channel the conversion is the
    # pure rescale of the batch term by n / (n - 1) (see _torch_running_var).
    "stored_variance": "biased",
    "channel_axis": 1,  # ONNX tensors are (N, C, D1, ..., Dk): channels first, nothing transposed
    "train_eval": (
        "BatchNormalization's training_mode attribute: 1 normalizes with the batch statistics and "
        "must have the 3 outputs (Y, running_mean, running_var); 0 normalizes with the input mean/var"
    ),
    # Inputs ONNX requires that the canonical call may omit; ones/zeros are exact (x*1 = x, x+0 = x).
    "required_inputs": {
        "BatchNormalization": "scale, B, input_mean, input_var: weight/bias None -> ones/zeros; "
        "training without running buffers -> mean 0, var 1 (unused: training mode normalizes with the batch's)",
        "InstanceNormalization": "scale and B: None -> ones/zeros",
        "LayerNormalization": "Scale: None -> ones (B is optional and omitted)",
        "GroupNormalization": "scale and bias: None -> ones/zeros",
        "RMSNormalization": "scale: None -> ones",
    },
    "group_norm_scale": {
        18: "per group (G,): a per-channel weight/bias not constant within each group is Unsupported",
        21: "per channel (C,)",
    },
    "layer_norm_axis": "axis = input.ndim - len(normalized_shape): ONNX normalizes from axis to the last axis",
    # stash_type is the precision of the statistics: float32 (1) for float32 and 16-bit inputs, as
    # torch's opmath; float64 (11) for float64 inputs (the default 1 would compute them in float32).
    "stash_type": {"float64": 11, "float32": 1, "float16": 1},
    # What ORT's CPU provider has kernels for (measured: float64 InstanceNormalization and every
    # bfloat16 variant raise NOT_IMPLEMENTED; bfloat16 NumPy arrays cannot even be fed).
    "dtypes": {
        "BatchNormalization": ("float64", "float32", "float16"),
        "InstanceNormalization": ("float32", "float16"),
        "LayerNormalization": ("float64", "float32", "float16"),
        "GroupNormalization": ("float64", "float32", "float16"),
        "RMSNormalization": ("float64", "float32", "float16"),
    },
    # BatchNormalization's T2 (mean/var) may differ from T (X): float32 buffers for 16-bit inputs.
    "running_dtype": "the buffers' own dtype is passed (float32 for 16-bit inputs, as canonical)",
    "session": "CPUExecutionProvider, default graph optimizations, intra_op_num_threads=1",
}

NOT_NATIVE: dict[tuple[str, str], str] = {
    ("instance_norm", "running_stats"): "InstanceNormalization has no running statistics (no update, no eval mode)",
}

_ONNX_TYPES = {"float64": 11, "float32": 1, "float16": 10}  # onnx.TensorProto.DOUBLE, FLOAT, FLOAT16


def _onnx_momentum(momentum, dtype) -> float:
    if momentum is None:
        raise Unsupported("ONNX BatchNormalization has no cumulative moving average (momentum=None)")
    m = 1.0 - float(momentum)
    _float32_attribute("momentum", m, dtype)
    return m


def _float32_attribute(name: str, value: float, dtype) -> float:
    """ONNX float attributes are 32-bit: a float64 computation must get the value exactly."""
    if np.dtype(dtype) == np.float64 and float(np.float32(value)) != value:
        raise Unsupported(
            f"ONNX's {name} attribute is a 32-bit float: {value!r} is not exact in float32, "
            "which a float64 computation would see"
        )
    return value


def _eps(s: _spec.Spec, eps, dtype) -> float:
    return _float32_attribute("epsilon", s.resolve_eps(eps, dtype), dtype)


def _stash_type(dtype) -> int:
    return CONVENTIONS["stash_type"][np.dtype(dtype).name]


def _torch_running_var(old, onnx_new, momentum: float, n: int) -> np.ndarray:
    """ONNX stores the biased batch variance in its running average; torch the unbiased one.

    onnx_new = (1 - m) old + m var_b, torch_new = (1 - m) old + m var_b n / (n - 1), so
    torch_new = (1 - m) old + (onnx_new - (1 - m) old) n / (n - 1)   (m: torch's momentum).
    """
    if n < 2:
        raise ValueError(f"the unbiased running variance needs more than 1 value per channel, got {n}")
    kept = (1.0 - float(momentum)) * np.asarray(old, np.float64)
    return kept + (np.asarray(onnx_new, np.float64) - kept) * (n / (n - 1))


def _filled(a, shape, dtype, fill: float) -> np.ndarray:
    """``a``, or a constant array where the canonical call omits an input ONNX requires (exact)."""
    return np.full(shape, fill, dtype) if a is None else np.asarray(a)


def _per_group(a, c: int, g: int, what: str) -> np.ndarray | None:
    """GroupNormalization-18's per-group scale/bias from a per-channel one (constant within groups)."""
    if a is None:
        return None
    blocks = np.asarray(a).reshape(g, c // g)
    if not np.all(blocks == blocks[:, :1]):
        raise Unsupported(
            f"GroupNormalization-18 takes one {what} per group: a per-channel {what} that varies within a group"
        )
    return np.ascontiguousarray(blocks[:, 0])


# --- lazy imports -----------------------------------------------------------------------------
def _onnx():
    import onnx

    return onnx


def _ort():
    import onnxruntime

    return onnxruntime


# --- cached sessions --------------------------------------------------------------------------
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 256
_BUILDS: Counter = Counter()


def clear_cache() -> None:
    """Drop every cached session."""
    _CACHE.clear()


def build_count(op: str | None = None) -> int:
    """How many sessions were built (for the graph named ``op``, or all)."""
    return _BUILDS[op] if op is not None else sum(_BUILDS.values())


def _value_info(name: str, dtype, shape):
    onnx = _onnx()
    return onnx.helper.make_tensor_value_info(name, _ONNX_TYPES[np.dtype(dtype).name], shape)


def _session(key, name: str, make_graph: Callable[[], Any], opset: int):
    """The cached InferenceSession for ``key``; ``make_graph()`` returns (nodes, inputs, outputs) and
    optionally the initializers."""
    sess = _CACHE.get(key)
    if sess is not None:
        _CACHE.move_to_end(key)
        return sess
    onnx, ort = _onnx(), _ort()
    nodes, inputs, outputs, *initializers = make_graph()
    graph = onnx.helper.make_graph(
        nodes, f"normcheck_{name}", inputs, outputs, initializer=initializers[0] if initializers else None
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(
        graph, opset_imports=opsets, ir_version=onnx.helper.find_min_ir_version_for(opsets), producer_name="normcheck"
    )
    # Not onnx.checker: it refuses GroupNormalization-18 as deprecated, which ORT still runs; ORT
    # validates the model itself when it loads it.
    so = ort.SessionOptions()
    so.log_severity_level = 4  # errors reach Python as exceptions; ORT need not print them too
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's NotImplemented: no CPU kernel for this op/dtype
        if "NOT_IMPLEMENTED" in str(e):
            raise Unsupported(f"onnxruntime has no CPU kernel: {str(e).splitlines()[0]}") from None
        too_new = _too_new(str(e))
        if too_new:  # an older runtime (1.22: IR version 10, opset 22): RMSNormalization-23 does not load
            raise Unsupported(f"onnxruntime {ort.__version__} does not run opset {opset}: {too_new}") from None
        raise
    _BUILDS[name] += 1
    _CACHE[key] = sess
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return sess


#: How ONNX Runtime refuses a model newer than it supports: its IR version, or an opset it
#: calls "under development" (1.22.1 on RMSNormalization-23: IR version 11 and opset 23).
_TOO_NEW = re.compile(
    r"Unsupported model IR version: \d+, max supported IR version: \d+|Opset \d+ is under development"
)


def _too_new(message: str) -> str | None:
    """The part of an InferenceSession error saying the model is newer than the runtime, if it does."""
    m = _TOO_NEW.search(message)
    return m.group(0) if m else None


#: Configuration axes of the operators (``Impl.configs``): weight, bias and running statistics fed as
#: graph inputs (one session serves every value), or stored in the model as initializers, as an exported
#: model holds them: ORT's graph optimizer then sees constants (it may fold them, or share the buffer of
#: equal initializers).
PARAMETER_CONFIG = ("parameters", ("inputs", "initializers"))

#: The ``parameters`` option of the call being run (:func:`_canonical` sets it for the call's duration).
_PARAMETERS: ContextVar[str] = ContextVar("normcheck_onnxruntime_parameters", default="inputs")


def _initializer(name: str, v: np.ndarray):
    """``v`` as an ONNX initializer (bfloat16 through its raw bits)."""
    onnx = _onnx()
    if v.dtype.name == "bfloat16":
        t = onnx.helper.make_tensor(name, onnx.TensorProto.BFLOAT16, v.shape, v.view(np.uint16).tobytes(), raw=True)
        return t
    return onnx.numpy_helper.from_array(v, name)


def run_node(
    op: str,
    inputs: dict[str, np.ndarray | None],
    attrs: dict[str, Any],
    opset: int,
    outputs: dict[str, tuple[Any, tuple[int, ...]]],
) -> list[np.ndarray]:
    """Run one ONNX node: ``inputs`` in the operator's order (None: an omitted optional input at
    the end), ``outputs`` name -> (dtype, shape). The session is cached by (op, attributes, input
    shapes and dtypes, output dtypes, opset), and by the values of the inputs after the first when the
    call's configuration stores them as initializers (:data:`PARAMETER_CONFIG`)."""
    while inputs and list(inputs.values())[-1] is None:
        inputs = dict(list(inputs.items())[:-1])
    if any(v is None for v in inputs.values()):
        raise ValueError(f"{op}: only trailing optional inputs may be omitted")
    feeds = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
    names = list(feeds)
    consts = {k: feeds.pop(k) for k in names[1:]} if _PARAMETERS.get() == "initializers" else {}
    key = (
        "node",
        op,
        tuple(sorted((k, repr(v)) for k, v in attrs.items())),
        tuple((k, v.shape, v.dtype.str) for k, v in feeds.items()),
        tuple((k, np.dtype(d).str, tuple(shape)) for k, (d, shape) in outputs.items()),
        opset,
        tuple((k, v.shape, v.dtype.str, v.tobytes()) for k, v in consts.items()),
    )

    def make():
        onnx = _onnx()
        node = onnx.helper.make_node(op, names, list(outputs), **attrs)
        ins = [_value_info(k, v.dtype, v.shape) for k, v in feeds.items()]
        outs = [_value_info(k, d, shape) for k, (d, shape) in outputs.items()]
        return [node], ins, outs, [_initializer(k, v) for k, v in consts.items()]

    return _session(key, op, make, opset).run(list(outputs), feeds)


# --- the canonical signature --------------------------------------------------------------------
def _canonical(norm: str, body: Callable, dtypes: tuple[str, ...], **fixed) -> Callable:
    """Wrap ``body(spec, arguments, **fixed)`` in the spec's (torch.nn.functional) signature; a
    ``parameters`` option (:data:`PARAMETER_CONFIG`) holds for the call."""
    from normcheck import reference

    s = _spec.get(norm)
    sig = inspect.signature(reference.function(s))

    def fn(*args, parameters: str = "inputs", **kwargs):
        token = _PARAMETERS.set(parameters)
        try:
            return call(*args, **kwargs)
        finally:
            _PARAMETERS.reset(token)

    def call(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        x = np.asarray(a["input"])
        if x.dtype.name not in dtypes:
            raise Unsupported(f"onnxruntime's CPU kernels for {norm} take {', '.join(dtypes)}, not {x.dtype.name}")
        y = body(s, a, x)
        if y.dtype != x.dtype or y.shape != x.shape:
            raise RuntimeError(f"onnxruntime returned {y.dtype}{list(y.shape)} for {x.dtype}{list(x.shape)}")
        return y

    fn.__signature__ = sig
    fn.__name__ = fn.__qualname__ = f"onnxruntime_{norm}"
    return fn


def _use_batch(s: _spec.Spec, a: dict[str, Any]) -> bool:
    return bool(a[s.batch_stats_flag]) if s.batch_stats_flag else True


def _check_buffers(a: dict[str, Any], use_batch: bool) -> None:
    for k in ("running_mean", "running_var"):
        if a.get(k) is not None and not isinstance(a[k], np.ndarray):
            raise TypeError("running buffers must be NumPy arrays to be updated in place")
    if not use_batch and (a.get("running_mean") is None or a.get("running_var") is None):
        raise ValueError("running_mean and running_var are needed without batch statistics")


# --- the forms ------------------------------------------------------------------------------------
def _batch_norm(s: _spec.Spec, a: dict[str, Any], x: np.ndarray) -> np.ndarray:
    op = "BatchNormalization"
    use_batch = _use_batch(s, a)
    _check_buffers(a, use_batch)
    c = x.shape[1]
    eps = _eps(s, a["eps"], x.dtype)
    rm, rv = a.get("running_mean"), a.get("running_var")
    bdt = (rm if rm is not None else rv).dtype if (rm is not None or rv is not None) else x.dtype
    update = use_batch and (rm is not None or rv is not None)
    inputs = {
        "X": x,
        "scale": _filled(a.get("weight"), c, x.dtype, 1.0),
        "B": _filled(a.get("bias"), c, x.dtype, 0.0),
        "input_mean": _filled(rm, c, bdt, 0.0),
        "input_var": _filled(rv, c, bdt, 1.0),
    }
    attrs: dict[str, Any] = {"epsilon": eps, "training_mode": int(use_batch)}
    if update:
        attrs["momentum"] = _onnx_momentum(a["momentum"], x.dtype)
    outputs = {"Y": (x.dtype, x.shape)}
    if use_batch:  # training mode must have the three outputs
        outputs.update(running_mean=(bdt, (c,)), running_var=(bdt, (c,)))
    got = run_node(op, inputs, attrs, CONVENTIONS["opset"][op], outputs)
    if update:
        n = x.size // c
        if rm is not None:
            rm[...] = got[1].astype(rm.dtype)
        if rv is not None:
            rv[...] = _torch_running_var(inputs["input_var"], got[2], a["momentum"], n).astype(rv.dtype)
    return got[0]


def _instance_norm(s: _spec.Spec, a: dict[str, Any], x: np.ndarray) -> np.ndarray:
    op = "InstanceNormalization"
    if not _use_batch(s, a) or a.get("running_mean") is not None or a.get("running_var") is not None:
        raise Unsupported(NOT_NATIVE[("instance_norm", "running_stats")])
    _spec.plan(s, x.shape)
    c = x.shape[1]
    inputs = {
        "input": x,
        "scale": _filled(a.get("weight"), c, x.dtype, 1.0),
        "B": _filled(a.get("bias"), c, x.dtype, 0.0),
    }
    attrs = {"epsilon": _eps(s, a["eps"], x.dtype)}
    return run_node(op, inputs, attrs, CONVENTIONS["opset"][op], {"Y": (x.dtype, x.shape)})[0]


def _layer_norm(s: _spec.Spec, a: dict[str, Any], x: np.ndarray) -> np.ndarray:
    op = "LayerNormalization"
    p = _spec.plan(s, x.shape, normalized_shape=a["normalized_shape"])
    axis = x.ndim - len(p.affine_shape)  # CONVENTIONS["layer_norm_axis"]
    inputs = {
        "X": x,
        "Scale": _filled(a.get("weight"), p.affine_shape, x.dtype, 1.0),
        "B": a.get("bias"),
    }
    attrs = {"axis": axis, "epsilon": _eps(s, a["eps"], x.dtype), "stash_type": _stash_type(x.dtype)}
    return run_node(op, inputs, attrs, CONVENTIONS["opset"][op], {"Y": (x.dtype, x.shape)})[0]


def _rms_norm(s: _spec.Spec, a: dict[str, Any], x: np.ndarray) -> np.ndarray:
    op = "RMSNormalization"
    p = _spec.plan(s, x.shape, normalized_shape=a["normalized_shape"])
    inputs = {"X": x, "scale": _filled(a.get("weight"), p.affine_shape, x.dtype, 1.0)}
    attrs = {
        "axis": x.ndim - len(p.affine_shape),
        "epsilon": _eps(s, a["eps"], x.dtype),
        "stash_type": _stash_type(x.dtype),
    }
    return run_node(op, inputs, attrs, CONVENTIONS["opset"][op], {"Y": (x.dtype, x.shape)})[0]


def _group_norm(s: _spec.Spec, a: dict[str, Any], x: np.ndarray, *, opset: int) -> np.ndarray:
    op = "GroupNormalization"
    g = int(a["num_groups"])
    _spec.plan(s, x.shape, num_groups=g)
    c = x.shape[1]
    w, b = a.get("weight"), a.get("bias")
    if opset < 21:  # CONVENTIONS["group_norm_scale"]
        w, b, size = _per_group(w, c, g, "scale"), _per_group(b, c, g, "bias"), g
    else:
        size = c
    inputs = {
        "X": x,
        "scale": _filled(w, size, x.dtype, 1.0),
        "bias": _filled(b, size, x.dtype, 0.0),
    }
    attrs: dict[str, Any] = {"num_groups": g, "epsilon": _eps(s, a["eps"], x.dtype)}
    if opset >= 21:  # stash_type is new in GroupNormalization-21
        attrs["stash_type"] = _stash_type(x.dtype)
    return run_node(op, inputs, attrs, opset, {"Y": (x.dtype, x.shape)})[0]


def _group_norm_torch_export(s: _spec.Spec, a: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """torch.onnx.export's GroupNorm: InstanceNormalization over the (N, G, C/G * spatial) view."""
    g = int(a["num_groups"])
    _spec.plan(s, x.shape, num_groups=g)
    eps = _eps(s, a["eps"], x.dtype)
    affine = (x.shape[1],) + (1,) * (x.ndim - 2)  # (C, 1, ..., 1): broadcasts against (N, C, *spatial)
    feeds = {"x": np.ascontiguousarray(x)}
    for k in ("weight", "bias"):
        if a.get(k) is not None:
            feeds[k] = np.ascontiguousarray(np.reshape(a[k], affine))
    opset = CONVENTIONS["opset"]["torch-export"]
    key = ("torch-export", tuple((k, v.shape, v.dtype.str) for k, v in feeds.items()), g, eps, opset)

    def make():
        onnx = _onnx()
        h, dt = onnx.helper, _ONNX_TYPES[x.dtype.name]
        nodes = [
            h.make_node("Constant", [], ["shape3"], value=h.make_tensor("shape3", 7, [3], [0, g, -1])),
            h.make_node("Reshape", ["x", "shape3"], ["x3"]),
            h.make_node("Constant", [], ["ones"], value=h.make_tensor("ones", dt, [g], np.ones(g, x.dtype))),
            h.make_node("Constant", [], ["zeros"], value=h.make_tensor("zeros", dt, [g], np.zeros(g, x.dtype))),
            h.make_node("InstanceNormalization", ["x3", "ones", "zeros"], ["n3"], epsilon=eps),
            h.make_node("Shape", ["x"], ["shape"]),
        ]
        last = "n"
        nodes.append(h.make_node("Reshape", ["n3", "shape"], [last]))
        if "weight" in feeds:
            nodes.append(h.make_node("Mul", [last, "weight"], ["scaled"]))
            last = "scaled"
        if "bias" in feeds:
            nodes.append(h.make_node("Add", [last, "bias"], ["biased"]))
            last = "biased"
        nodes.append(h.make_node("Identity", [last], ["y"]))
        ins = [_value_info(k, v.dtype, v.shape) for k, v in feeds.items()]
        return nodes, ins, [_value_info("y", x.dtype, x.shape)]

    return _session(key, "torch-export", make, opset).run(["y"], feeds)[0]


# --- the adapter --------------------------------------------------------------------------------
_OPS = {
    "batch_norm": "BatchNormalization",
    "instance_norm": "InstanceNormalization",
    "layer_norm": "LayerNormalization",
    "group_norm": "GroupNormalization",
    "rms_norm": "RMSNormalization",
}
_BODIES: dict[str, Callable] = {
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "layer_norm": _layer_norm,
    "rms_norm": _rms_norm,
}
_NOTES = {
    "batch_norm": "BatchNormalization-15, training_mode 0/1; momentum 1 - m; the stored biased variance rescaled "
    "to the unbiased one (n/(n-1) on the batch term); weight/bias None -> ones/zeros",
    "instance_norm": "InstanceNormalization-22, scale/B None -> ones/zeros; no running statistics",
    "layer_norm": "LayerNormalization-17, axis = ndim - len(normalized_shape), stash_type = computation dtype; "
    "weight None -> Scale of ones",
    "group_norm": "GroupNormalization-21 (per-channel scale), stash_type = computation dtype; "
    "weight/bias None -> ones/zeros",
    "rms_norm": "RMSNormalization-23, axis = ndim - len(normalized_shape), stash_type = computation dtype; "
    "weight None -> scale of ones",
}


class OnnxRuntimeAdapter(Adapter):
    name = "onnxruntime"
    module = "onnxruntime"
    parts = frozenset({"conventions", "bench"})
    modules = ("onnxruntime", "onnx")
    target = False  # ORT runs ONNX graphs, not Python functions over its own array type
    packages = ("onnxruntime", "onnx")
    default_eps = tuple(dict.fromkeys(e for e in CONVENTIONS["default_eps"].values() if e))

    def owns(self, x) -> bool:
        return False  # ORT hands back NumPy arrays

    def devices(self) -> list[str]:
        return ["cpu"]  # every Impl runs on the CPUExecutionProvider

    def to_native(self, a, *, device=None):
        return np.array(a, copy=True)  # ORT is fed NumPy arrays

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def implementations(self) -> list[Impl]:
        names = _spec.names()
        out = []
        for norm, op in _OPS.items():
            if norm not in names:
                continue
            dts = CONVENTIONS["dtypes"][op]
            opset = CONVENTIONS["opset"][op]
            body = _BODIES.get(norm) or (lambda s, a, x: _group_norm(s, a, x, opset=21))
            out.append(
                Impl(
                    self.name,
                    norm,
                    "onnx",
                    _canonical(norm, body, dts),
                    api=f"onnx {op}-{opset}",
                    dtypes=dts,
                    running_stats=norm == "batch_norm",
                    notes=_NOTES[norm],
                    configs=(PARAMETER_CONFIG,),
                )
            )
            if norm != "group_norm":
                continue
            out.append(
                Impl(
                    self.name,
                    norm,
                    "opset18",
                    _canonical(norm, lambda s, a, x: _group_norm(s, a, x, opset=18), dts),
                    api="onnx GroupNormalization-18",
                    dtypes=dts,
                    configs=(PARAMETER_CONFIG,),
                    notes="GroupNormalization-18: scale/bias per group; a per-channel weight or bias that varies "
                    "within a group is Unsupported",
                )
            )
            ex_dts = CONVENTIONS["dtypes"]["InstanceNormalization"]
            out.append(
                Impl(
                    self.name,
                    norm,
                    "torch-export",
                    _canonical(norm, _group_norm_torch_export, ex_dts),
                    api="onnx Reshape + InstanceNormalization + Mul + Add (torch.onnx.export)",
                    dtypes=ex_dts,
                    notes="the graph torch.onnx.export (TorchScript, opset < 21) emits for nn.GroupNorm: "
                    "InstanceNormalization on the (N, G, -1) view with scale 1 and bias 0, then the per-channel affine",
                )
            )
        return out


ADAPTER = OnnxRuntimeAdapter()
