"""One concrete test case for a norm: input, arguments, and how to call an implementation on it.

Strategies generate :class:`Case` objects, properties consume them, the audit writes them as JSON
counterexamples, and :meth:`Case.repro` turns one into a self-contained Python snippet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from normcheck import dtypes
from normcheck import spec as _spec

__all__ = ["Case", "Outcome", "fixed_cases"]

_ARRAYS = ("weight", "bias", "running_mean", "running_var", "mean_weight", "var_weight")


@dataclass(frozen=True)
class Outcome:
    """What an implementation returned on a case: the output and the running buffers after the call."""

    y: np.ndarray
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None


@dataclass(frozen=True)
class Case:
    norm: str
    x: np.ndarray
    args: dict[str, Any] = field(default_factory=dict)  # normalized_shape, num_groups, eps, momentum, training ...
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    regime: str = "normal"
    mean_weight: np.ndarray | None = None  # mixture importance logits (switchable_norm)
    var_weight: np.ndarray | None = None
    # Which configuration of a native implementation runs the case (``Impl.configuration``); 0: every
    # constructor option at its default. Ignored by implementations without configuration axes.
    variant: int = 0

    @property
    def spec(self) -> _spec.Spec:
        return _spec.get(self.norm)

    @property
    def dtype(self) -> str:
        return dtypes.dtype_name(self.x.dtype)

    @property
    def use_batch_stats(self) -> bool:
        flag = self.spec.batch_stats_flag
        if flag is None:
            return True
        return bool(self.args.get(flag, self.spec.defaults.get(flag, True)))

    def plan(self) -> _spec.Plan:
        return _spec.plan(
            self.spec,
            self.x.shape,
            normalized_shape=self.args.get("normalized_shape"),
            num_groups=self.args.get("num_groups"),
            reduce_axes=self.args.get("reduce_axes"),
        )

    def kwargs(self) -> dict[str, Any]:
        """Fresh copies of every canonical argument but the input (safe to hand to untrusted code)."""
        out = {k: v for k, v in self.args.items() if k != "reduce_axes"}
        for k in _ARRAYS:
            v = getattr(self, k)
            if k in self.spec.param_names:
                out[k] = None if v is None else v.copy()
        return out

    def call(self, fn) -> Outcome:
        """Call ``fn(x, **kwargs)`` on fresh copies; return the output and the updated buffers."""
        kw = self.kwargs()
        config = self.configuration(fn)
        y = fn(self.x.copy(), **kw, **config)
        return Outcome(np.asarray(y), kw.get("running_mean"), kw.get("running_var"))

    def configuration(self, impl) -> dict[str, Any]:
        """The constructor options ``impl`` runs this case with (``{}`` where it has no axes)."""
        return impl.configuration(self.variant) if getattr(impl, "configs", ()) else {}

    def reference(self, *, num_batches_tracked: int = 0) -> Outcome:
        """The float64 reference's outcome. A training step with ``momentum=None`` (the cumulative
        average) is the step of a module that had tracked ``num_batches_tracked`` batches before
        it: by default a freshly built one, whose first step takes the batch statistics."""
        from normcheck import reference

        kw = self.kwargs()
        for k in ("running_mean", "running_var"):  # the reference updates float64 copies
            if kw.get(k) is not None:
                kw[k] = kw[k].astype(np.float64)
        y = reference.normalize(
            self.spec,
            self.x,
            use_batch_stats=self.use_batch_stats,
            reduce_axes=self.args.get("reduce_axes"),
            num_batches_tracked=num_batches_tracked,
            **{k: kw[k] for k in kw if k not in ("training", "use_input_stats")},
        )
        return Outcome(y, kw.get("running_mean"), kw.get("running_var"))

    def update_factor(self) -> float:
        """The weight this case's training step gives the batch statistics: its momentum (the
        spec's default when absent), or 1 for ``momentum=None`` (a fresh module's first step)."""
        from normcheck import reference

        rs = self.spec.running_stats or {}
        return reference.update_factor(self.args.get("momentum", rs.get("momentum_default", 0.1)), 0)

    def with_(self, **changes) -> Case:
        return replace(self, **changes)

    # --- serialization -------------------------------------------------------------------------
    def to_json(self, *, max_values: int = 4096) -> dict[str, Any]:
        """A small JSON-able description; arrays up to ``max_values`` elements are kept in full."""

        def arr(a):
            if a is None:
                return None
            d = {"shape": list(a.shape), "dtype": a.dtype.name}
            if a.size <= max_values:
                d["values"] = _readable(np.asarray(a))
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    summary = {"min": np.min(a), "max": np.max(a), "mean": np.mean(a, dtype=np.float64)}
                d["summary"] = {k: _json_number(float(v)) for k, v in summary.items()}
            return d

        args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.args.items()}
        return {
            "norm": self.norm,
            "regime": self.regime,
            "args": args,
            "input": arr(self.x),
            **{k: arr(getattr(self, k)) for k in _ARRAYS},
            **({"variant": self.variant} if self.variant else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Case:
        def arr(a):
            if a is None:
                return None
            if "values" not in a:
                raise ValueError("case was saved without its values (too large)")
            return np.asarray(a["values"], dtype=np.float64).astype(dtypes.np_dtype(a["dtype"])).reshape(a["shape"])

        args = dict(d.get("args", {}))
        for k in ("normalized_shape", "reduce_axes"):
            if isinstance(args.get(k), list):
                args[k] = tuple(args[k])
        arrays = {k: arr(d.get(k)) for k in _ARRAYS}
        return cls(d["norm"], arr(d["input"]), args, **arrays, regime=d.get("regime", ""), variant=d.get("variant", 0))

    def repro(self, call: str = "fn", *, setup: str = "") -> str:
        """A self-contained snippet that rebuilds this case and compares ``call`` with the reference."""
        payload = json.dumps(self.to_json())
        return "\n".join(
            [
                "import json, numpy as np",
                "from normcheck.case import Case",
                "from normcheck.error_model import compare, scale",
                *([setup] if setup else []),
                f"case = Case.from_json(json.loads({payload!r}))",
                f"got = case.call({call})",
                "ref = case.reference()",
                "s = scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **case.kwargs())",
                "print(compare(got.y, ref.y, s, case.dtype).describe())",
            ]
        )

    def describe(self) -> str:
        parts = [f"{self.norm}", f"x: {self.dtype}{list(self.x.shape)}"]
        parts += [f"{k}={v}" for k, v in self.args.items()]
        for k in _ARRAYS:
            if getattr(self, k) is not None:
                parts.append(f"{k}: {list(getattr(self, k).shape)}")
        parts.append(f"regime={self.regime}")
        return ", ".join(parts)


def _running(c, dtype):
    bdt = np.float32 if dtypes.is_16bit(dtype) else dtypes.np_dtype(dtype)
    rng = np.random.default_rng(c)
    return rng.normal(size=c).astype(bdt), rng.uniform(0.5, 2.0, size=c).astype(bdt)


def fixed_cases(norm: str, dtype: str = "float32", *, seed: int = 0, axes=None) -> list[Case]:
    """A few fixed random cases of several ranks, with and without affine, train and eval.

    With ``axes`` (an axis-set variant): statistics over those axes, batch statistics only.
    """
    s = _spec.get(norm)
    rng = np.random.default_rng(seed)
    dt = dtypes.np_dtype(dtype)
    shapes = [(4, 6), (3, 6, 5), (2, 6, 4, 3), (2, 4, 3, 2, 2)]
    out = []
    for i, shape in enumerate(shapes):
        if len(shape) < s.min_rank:
            continue
        if axes is not None:
            red = (
                tuple(sorted({a % len(shape) for a in axes}))
                if all(-len(shape) <= a < len(shape) for a in axes)
                else None
            )
            if red is None:
                continue
        x = (rng.normal(size=shape) * 2 + 0.5).astype(dt)
        args: dict[str, Any] = {"eps": 1e-5}
        if s.batch_stats_flag:
            args[s.batch_stats_flag] = True
        c = shape[1]
        if axes is not None:
            args["reduce_axes"] = red
            if s.shape_arg == "normalized_shape":
                args["normalized_shape"] = tuple(shape[a] for a in red)
        elif s.shape_arg == "normalized_shape":
            args["normalized_shape"] = tuple(shape[1 + i % (len(shape) - 1) :])
        elif s.shape_arg == "num_groups":
            divisors = [g for g in range(1, c + 1) if c % g == 0]
            args["num_groups"] = divisors[(i + 1) % len(divisors)]
        affine = i % 2 == 0
        p = _spec.plan(
            s,
            shape,
            normalized_shape=args.get("normalized_shape"),
            num_groups=args.get("num_groups"),
            reduce_axes=args.get("reduce_axes"),
        )
        w = (rng.normal(size=p.affine_shape) + 1).astype(dt) if affine else None
        b = rng.normal(size=p.affine_shape).astype(dt) if affine and s.has_bias else None
        logits = {}
        if s.mix:  # importance logits, in the case dtype like the other parameters
            logits = {k: rng.normal(size=len(s.mix)).astype(dt) for k in ("mean_weight", "var_weight")}
        base = Case(norm, x, args, weight=w, bias=b, **logits)
        out.append(base)
        if s.has_running_stats and axes is None:
            rm, rv = _running(c, dtype)
            flag = s.batch_stats_flag
            out.append(base.with_(running_mean=rm, running_var=rv, args={**args, flag: True, "momentum": 0.3}))
            out.append(base.with_(running_mean=rm, running_var=rv, args={**args, flag: False}))
    return out


def _readable(a: np.ndarray) -> list[float | str]:
    """The values of ``a`` for JSON, each as the shorter of its exact value and the shortest decimal
    that reads back to the same value in ``a``'s dtype (``100.1``, not float32's
    ``100.0999984741211``; ``65504``, not float16's ``6.55e+04``)."""
    exact = np.asarray(a, dtype=np.float64).ravel().tolist()
    if a.dtype == np.float64:
        return [_json_number(v) for v in exact]
    out: list[float | str] = []
    for v, e in zip(a.ravel(), exact, strict=True):
        if not math.isfinite(e):
            out.append(_json_number(e))
            continue
        short = float(str(v))
        keep = len(repr(short)) < len(repr(e)) and np.asarray(short).astype(a.dtype) == v
        out.append(short if keep else e)
    return out


def _json_number(v: float) -> float | str:
    """A float as strict JSON has it: NaN and ±inf, which JSON lacks, as the strings "nan", "inf" and
    "-inf" (NumPy reads them back: ``np.asarray(["-inf", 1.0], dtype=np.float64)``)."""
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
