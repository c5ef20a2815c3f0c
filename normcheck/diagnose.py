"""Diagnosis: which known wrong variant of a norm a deviating implementation computes.

A deviation found by the property suite says *that* a target is wrong; the diagnosis says *how*.
:func:`variants` lists a small catalogue of plausible mistakes for a norm, each a float64 variant
of :func:`normcheck.reference.normalize` with one thing changed:

- the statistics: unbiased variance (Bessel's correction); a one-pass ``E[x²] − E[x]²`` variance in
  float32; no mean subtraction (or, for RMSNorm, a mean subtracted);
- eps: outside the square root, ignored, or used as a clamp ``1 / sqrt(max(var, eps))``;
- the axis set: another norm's (layer_norm over ``x.shape[1:]`` or the last axis, instance_norm,
  batch_norm); for GroupNorm strided groups (channel c in group ``c % G``) and ``num_groups`` read
  as the group size;
- the affine transform: applied before normalizing, or (GroupNorm) indexed by group;
- running statistics (BatchNorm, InstanceNorm): the biased variance stored, momentum read the
  other way round (Keras/Flax), batch statistics used in eval mode.

:func:`diagnose` collects failing cases (the shrunk counterexamples plus a bounded number of fresh
random cases on which the target fails agreement), judges the target against every variant under
the error model exactly as ``agreement`` judges it against the reference (the variant's own axis
set gives the scale), and names the variant(s) that match on every failing case: "matches
group_norm with unbiased variance (Bessel's correction) on 21/21 failing cases". The one-pass
variant's error is data-dependent (it grows like u·κ²), so it is matched with a correspondingly
looser rule: within λ·u·(s + √n·κ²·(1 + |ŷ|)·|γ|) of the float32 one-pass result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from normcheck import error_model
from normcheck import spec as _spec
from normcheck.case import Case, Outcome
from normcheck.reference import moments, running_view

__all__ = ["Diagnosis", "Variant", "diagnose", "failing_cases", "outcome", "variants"]

F64 = np.float64


# --- the catalogue -------------------------------------------------------------------------------

Grouping = Callable[[Case], tuple[tuple[int, ...], tuple[int, ...]]]


@dataclass(frozen=True)
class Variant:
    """One known variant of a norm: ``options`` for :func:`outcome`, and when it applies."""

    name: str
    description: str  # reads after "matches": "group_norm with unbiased variance (Bessel's correction)"
    options: dict[str, Any] = field(default_factory=dict)
    applies: Callable[[Case], bool] = field(default=lambda c: True, repr=False)
    loose: bool = False  # judged with the one-pass rule (see module docstring)


def _rest(c: Case):
    return c.x.shape, tuple(range(1, c.x.ndim))


def _last(c: Case):
    return c.x.shape, (c.x.ndim - 1,)


def _instance(c: Case):
    return c.x.shape, tuple(range(2, c.x.ndim))


def _batch(c: Case):
    return c.x.shape, (0, *range(2, c.x.ndim))


def _strided(c: Case):
    n, ch, *sp = c.x.shape
    g = int(c.args["num_groups"])
    return (n, ch // g, g, *sp), (1, *range(3, 3 + len(sp)))


def _group_size(c: Case):
    n, ch, *sp = c.x.shape
    g = ch // int(c.args["num_groups"])
    return (n, g, ch // g, *sp), tuple(range(2, 3 + len(sp)))


def _batch_stats(c: Case) -> bool:
    return c.use_batch_stats


def _rank2(c: Case) -> bool:
    return c.use_batch_stats and c.x.ndim >= 2


def _affine(c: Case) -> bool:
    return c.weight is not None or c.bias is not None


def _training_buffers(c: Case) -> bool:
    return c.running_mean is not None and c.use_batch_stats


def _eval(c: Case) -> bool:
    return not c.use_batch_stats


def _groups_differ(c: Case) -> bool:
    g, ch = int(c.args.get("num_groups", 1)), c.x.shape[1]
    return c.use_batch_stats and 1 < g < ch


def _single_axis_applies(case: Case, a: int) -> bool:
    """Statistics over axis ``a`` alone differ from the case's own set and from the last axis's, and the
    affine parameters (if any) fit along that axis."""
    if a >= case.x.ndim or case.plan().reduce == (a,) or not _batch_stats(case):
        return False
    return all(getattr(case, k) is None or getattr(case, k).size in (1, case.x.shape[a]) for k in ("weight", "bias"))


def _on_axes(case: Case, axes: tuple[int, ...]) -> Case:
    """The case as an axis-set variant over ``axes``; γ, β laid along them (flattened, or broadcast
    from a single value, as ``w.reshape(-1, 1, ...)`` in the user's code would)."""
    sizes = tuple(case.x.shape[a] for a in axes)
    args = {**case.args, "reduce_axes": axes}
    if case.spec.shape_arg == "normalized_shape":
        args["normalized_shape"] = sizes
    lay = {
        k: np.broadcast_to(getattr(case, k).reshape(-1), (math.prod(sizes),)).reshape(sizes).copy()
        for k in ("weight", "bias")
        if getattr(case, k) is not None
    }
    return case.with_(args=args, **lay)


def variants(norm: str) -> list[Variant]:
    """The catalogue for ``norm``, most likely first (the order in which matches are reported)."""
    s = _spec.get(norm)
    if s.mix:  # the output-side variants are defined for a single set S; the buffers' are generic
        keep = ("running_var_biased", "momentum_swapped")
        return [
            replace(v, description=v.description.replace("batch_norm", norm))
            for v in variants("batch_norm")
            if v.name in keep
        ]
    gn = s.split and s.shape_arg == "num_groups"
    out = [
        Variant(
            "unbiased_variance",
            f"{norm} with unbiased variance (Bessel's correction)"
            if s.center
            else f"{norm} with an unbiased mean square (divided by n − 1)",
            {"variance": "unbiased"},
            _batch_stats,
        ),
        Variant(
            "eps_outside_sqrt",
            f"{norm} with eps outside the square root: (x − mean) / (sqrt(var) + eps)",
            {"eps_mode": "outside"},
        ),
        Variant("eps_ignored", f"{norm} with eps ignored (eps = 0)", {"eps_mode": "ignored"}),
        Variant("eps_clamped", f"{norm} with eps as a clamp: 1 / sqrt(max(var, eps))", {"eps_mode": "clamped"}),
    ]
    if gn:
        out += [
            Variant(
                "strided_groups",
                f"{norm} with strided groups (channel c in group c % G) instead of contiguous blocks",
                {"grouping": _strided},
                _groups_differ,
            ),
            Variant(
                "groups_as_group_size",
                f"{norm} with num_groups read as the group size (C/G groups of G channels)",
                {"grouping": _group_size},
                lambda c: _batch_stats(c) and int(c.args["num_groups"]) ** 2 != c.x.shape[1],
            ),
            Variant(
                "affine_per_group",
                f"{norm} with γ, β indexed by group (weight[g] for every channel of group g) instead of by channel",
                {"affine": "group"},
                lambda c: _affine(c) and int(c.args["num_groups"]) < c.x.shape[1],
            ),
        ]
    out.append(
        Variant(
            "affine_first",
            f"{norm} with the affine transform applied before normalizing: normalize(x·γ + β)",
            {"affine": "before"},
            lambda c: _affine(c) and _batch_stats(c),
        )
    )
    name = "layer_norm" if s.center else "rms_norm"
    axis_sets = [
        ("axes_rest", f"{name} over x.shape[1:] (statistics over every axis but the batch)", _rest, _rank2),
        ("axes_last", f"{name} over the last axis only", _last, _batch_stats),
        (
            "axes_instance",
            "instance_norm (statistics per sample and channel, over the spatial axes)"
            if s.center
            else "rms statistics over instance_norm's axes (per sample and channel, over the spatial axes)",
            _instance,
            _rank2,
        ),
        (
            "axes_batch",
            "batch_norm with batch statistics (per channel, over the batch and spatial axes)"
            if s.center
            else "rms statistics over batch_norm's axes (per channel, over the batch and spatial axes)",
            _batch,
            _rank2,
        ),
    ]
    if set(s.affine_axes) <= set(s.reduce) and not s.mix:  # LayerNorm-like: any one axis can be the set
        for a in (1, 2, 3):
            out.append(
                Variant(
                    f"axes_{a}",
                    f"{norm} over axis {a} only, with γ, β along that axis"
                    + (" (the channels-first LayerNorm of ConvNeXt)" if a == 1 else "")
                    + f"; if that is intended, check it with --axes {a}",
                    {"axes": (a,)},
                    lambda c, a=a: _single_axis_applies(c, a),
                )
            )
    own = {"instance_norm": "axes_instance", "batch_norm": "axes_batch"}.get(norm)
    own_set = "(" + ", ".join(s.reduce) + ")"
    for key, desc, grouping, applies in axis_sets:
        if key != own:
            out.append(Variant(key, f"{desc} instead of {norm}'s {own_set}", {"grouping": grouping}, applies))
    out.append(
        Variant(
            "uncentered",
            f"rms_norm-style statistics over {norm}'s axes (the mean is not subtracted)",
            {"center": False},
            _batch_stats,
        )
        if s.center
        else Variant(
            "centered",
            f"layer_norm-style statistics over {norm}'s axes (the mean is subtracted)",
            {"center": True},
            _batch_stats,
        )
    )
    if s.has_running_stats:
        flag = s.batch_stats_flag
        out += [
            Variant(
                "running_var_biased",
                f"{norm} storing the biased variance in running_var (torch stores the unbiased one)",
                {"stored": "biased"},
                _training_buffers,
            ),
            Variant(
                "momentum_swapped",
                f"{norm} with momentum read the other way round: running = momentum·running + (1 − momentum)·batch "
                "(the Keras/Flax convention)",
                {"momentum": "swapped"},
                _training_buffers,
            ),
            Variant(
                "eval_batch_stats",
                f"{norm} using batch statistics in eval mode ({flag}=False)",
                {"eval_stats": "batch"},
                _eval,
            ),
        ]
    if s.center:
        out.append(
            Variant(
                "one_pass_variance",
                f"{norm} with a one-pass variance E[x²] − E[x]² in float32 (catastrophic cancellation when "
                "|mean| ≫ std)",
                {"variance": "one_pass"},
                _batch_stats,
                loose=True,
            )
        )
    return out


# --- computing a variant ------------------------------------------------------------------------------


def _stats(v, reduce, center: bool, one_pass: bool):
    """Mean and biased variance over ``reduce`` (float64), or the float32 one-pass pair."""
    if not one_pass:
        return moments(v, reduce, center=center)
    v32 = v.astype(np.float32)
    msq = np.mean(v32 * v32, axis=reduce, keepdims=True, dtype=np.float32)
    if not center:
        return np.zeros((1,) * v.ndim), msq.astype(F64)
    mean = np.mean(v32, axis=reduce, keepdims=True, dtype=np.float32)
    return mean.astype(F64), np.maximum(msq - mean * mean, np.float32(0)).astype(F64)


def _size(shape, axes) -> int:
    return math.prod(shape[a] for a in axes)


def _affine_arrays(case: Case, p: _spec.Plan, mode: str):
    w = None if case.weight is None else case.weight.astype(F64)
    b = None if case.bias is None else case.bias.astype(F64)
    if mode == "group":  # weight[g] for every channel of group g
        ch, g = case.x.shape[1], int(case.args["num_groups"])
        idx = np.arange(ch) // (ch // g)
        w = None if w is None else w[idx]
        b = None if b is None else b[idx]
    shape = p.affine_broadcast
    return (None if w is None else w.reshape(shape)), (None if b is None else b.reshape(shape))


def outcome(case: Case, **options) -> Outcome:
    """The float64 output (and updated running buffers) of one variant of ``case``'s norm.

    With no options this is :func:`normcheck.reference.normalize`. Options: ``grouping`` (a
    function of the case giving ``(view_shape, reduce_axes)``), ``center``, ``variance``
    ("biased", "unbiased", "one_pass"), ``eps_mode`` ("inside", "outside", "ignored", "clamped"),
    ``affine`` ("channel", "group", "before"), ``eval_stats`` ("running", "batch"), ``stored``
    ("unbiased", "biased") and ``momentum`` ("torch", "swapped"). With another axis set
    (``grouping``) the running buffers are the reference's: only the normalization changes.
    """
    return _compute(case, **options)[0]


def _compute(case: Case, *, grouping: Grouping | None = None, center=None, variance: str = "biased",
             eps_mode: str = "inside", affine: str = "channel", eval_stats: str = "running",
             stored: str = "unbiased", momentum: str = "torch",
             axes: tuple[int, ...] | None = None) -> tuple[Outcome, np.ndarray, np.ndarray]:  # fmt: skip
    """(outcome, the error model's scale for this computation, where the variant is undefined).

    A variant is undefined where it divides 0 by 0 (eps ignored on a constant set): any output
    is as good as another there.

    The scale is the model's ``s_i`` (:mod:`normcheck.error_model`) for the variant's own
    computation: its axis set, its input (``affine="before"``), and its effective standard
    deviation ``1 / inv`` (eps outside, ignored or clamped changes how much a rounding error in
    the mean is amplified). For the reference options it equals :func:`error_model.scale`.
    """
    if axes is not None:  # an axis-set variant: the reference over those axes
        case = _on_axes(case, axes)
    if case.spec.mix:  # a mixture: the reference output; only the running-buffer variants differ
        return _mixture_outcome(case, stored, momentum)
    s = case.spec
    p = case.plan()
    x = case.x.astype(F64)
    eps = s.resolve_eps(case.args.get("eps"), case.x.dtype)
    center = s.center if center is None else center
    w, b = _affine_arrays(case, p, "group" if affine == "group" else "channel")
    if affine == "before":
        x = x * (1.0 if w is None else w) + (0.0 if b is None else b)
        w = b = None
    view, red = grouping(case) if grouping else (p.view_shape, p.reduce)
    v = x.reshape(view)
    use_batch = case.use_batch_stats or eval_stats == "batch"
    rm = rv = None
    with np.errstate(all="ignore"):
        if use_batch:
            mean, var_b = _stats(v, red, center, variance == "one_pass")
            mean = np.broadcast_to(mean, np.shape(var_b))  # uncentered: a scalar 0 per set
            n = _size(view, red)
            var = var_b * (n / (n - 1)) if variance == "unbiased" and n > 1 else var_b
            if case.running_mean is not None and case.use_batch_stats:
                if grouping is None:
                    rm, rv = _updated(case, p, mean, var_b, stored, momentum)
                else:  # another axis set normalizes; the buffers are judged as the reference's
                    m0, v0 = moments(case.x.astype(F64).reshape(p.view_shape), p.reduce, center=s.center)
                    rm, rv = _updated(case, p, m0, v0, stored, momentum)
        else:
            n = 1
            mean = running_view(s, p, case.running_mean, F64)
            var = running_view(s, p, case.running_var, F64)
        if eps_mode == "inside":
            inv = 1 / np.sqrt(var + eps)
        elif eps_mode == "outside":
            inv = 1 / (np.sqrt(var) + eps)
        elif eps_mode == "ignored":
            inv = 1 / np.sqrt(var)
        elif eps_mode == "clamped":
            inv = 1 / np.sqrt(np.maximum(var, eps))
        else:
            raise ValueError(f"unknown eps_mode {eps_mode!r}")
        yhat = (v - mean) * inv
        undefined = np.broadcast_to(~np.isfinite(inv), v.shape).reshape(x.shape) & np.isfinite(x)
        if use_batch and variance == "unbiased" and n == 1:  # var·n/(n − 1) is 0/0: torch.var gives NaN
            undefined = np.isfinite(x)
        y = yhat.reshape(x.shape)
        # the model's scale, over the variant's own sets
        if use_batch:
            amax = np.max(np.abs(v), axis=red, keepdims=True) if red else np.abs(v)
            kappa = np.broadcast_to(amax * inv, v.shape)
        else:
            kappa = (np.abs(v) + np.abs(mean)) * inv
        ay = np.abs(yhat)
        if center or not use_batch:
            s0 = np.sqrt(n) * kappa * (1 + ay) + ay
        else:
            s0 = np.sqrt(n) * ay + ay
        if variance == "one_pass":
            s0 = s0 + np.sqrt(n) * kappa**2 * (1 + ay)  # a one-pass variance errs like u·κ²
        s0 = s0.reshape(x.shape)
        sc = (1.0 if w is None else np.abs(w)) * s0 + (0.0 if b is None else np.abs(b))
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
    sc = np.maximum(np.nan_to_num(sc, nan=np.inf), np.finfo(F64).tiny)
    return Outcome(y, rm, rv), sc, undefined


def _mixture_outcome(case: Case, stored: str, momentum: str):
    ref = case.reference()
    sc = error_model.scale(case.norm, case.x, use_batch_stats=case.use_batch_stats, **case.kwargs())
    rm, rv = ref.running_mean, ref.running_var
    if case.running_mean is not None and case.use_batch_stats:
        p = case.plan()  # the running component's set (the spec's S)
        m0, v0 = moments(case.x.astype(F64).reshape(p.view_shape), p.reduce, center=True)
        rm, rv = _updated(case, p, m0, v0, stored, momentum)
    return Outcome(ref.y, rm, rv), sc, np.zeros(case.x.shape, bool)


def _updated(case: Case, p: _spec.Plan, mean, var_b, stored: str, momentum: str):
    rs = case.spec.running_stats
    avg = tuple(a for sym in rs.get("average_over", []) for a in p.symbols[sym])
    n = p.reduce_size
    var_s = var_b * (n / (n - 1)) if stored == "unbiased" and n > 1 else var_b
    m = float(case.args.get("momentum", rs["momentum_default"]))
    out = []
    for buf, stat in ((case.running_mean, mean), (case.running_var, var_s)):
        stat = np.mean(stat, axis=avg) if avg else stat
        stat = np.reshape(stat, buf.shape)
        old = buf.astype(F64)
        out.append((1 - m) * old + m * stat if momentum == "torch" else m * old + (1 - m) * stat)
    return out[0], out[1]


# --- judging -----------------------------------------------------------------------------------------


def _judge(case: Case, got: Outcome, exp: Outcome, s, undefined, *, momentum: float) -> bool:
    if np.shape(got.y) != case.x.shape:
        return False
    y = exp.y
    if undefined.any():
        y = np.where(undefined, np.asarray(got.y).astype(F64), y)
    if not error_model.compare(got.y, y, s, case.dtype).ok:
        return False
    if exp.running_mean is not None and got.running_mean is not None:
        sm, sv = error_model.running_scale(
            case.norm,
            case.x,
            exp.running_mean,
            exp.running_var,
            momentum=momentum,
            num_groups=case.args.get("num_groups"),
            buffer_dtype=case.running_mean.dtype,
        )
        bdt = case.running_mean.dtype.name
        for name, sc in (("running_mean", sm), ("running_var", sv)):
            if not error_model.compare(getattr(got, name), getattr(exp, name), sc, bdt).ok:
                return False
    return True


def _effective_momentum(case: Case, v: Variant) -> float:
    m = float(case.args.get("momentum", 0.1))
    return 1 - m if v.options.get("momentum") == "swapped" else m


_REFERENCE = Variant("reference", "the reference")


def matches(case: Case, got: Outcome, v: Variant) -> bool:
    """Does the target's outcome ``got`` on ``case`` match variant ``v`` under the error model?"""
    try:
        if not v.applies(case):
            return False
        exp, s, undefined = _compute(case, **v.options)
        return _judge(case, got, exp, s, undefined, momentum=_effective_momentum(case, v))
    except (ValueError, ZeroDivisionError, IndexError, KeyError, _spec.SpecError):
        return False


# --- collecting failing cases ---------------------------------------------------------------------------


def _generate(norm: str, dtype: str, *, seed: int, count: int, running: bool) -> list[Case]:
    """``count`` fresh random cases from the property-suite strategy (generation only, no shrinking)."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings

    from normcheck import strategies

    out: list[Case] = []
    strat = strategies.cases(norm, dtypes=(dtype,), running_stats=None if running else False)

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(strat)
    def collect(c):
        out.append(c)

    hypothesis.seed(seed)(collect)()
    return out


def failing_cases(
    impl, cases, *, norm: str, dtype: str, seed: int = 0, extra: int = 40, want: int = 24, budget_s: float = 10.0
) -> tuple[list[tuple[Case, Outcome]], list[str]]:
    """(case, the target's outcome) for the given cases and up to ``extra`` fresh ones on which the
    target fails agreement (at most ``want`` in all, within about ``budget_s`` seconds), and the
    first lines of any exceptions the target raised."""
    t0 = time.perf_counter()
    fails: list[tuple[Case, Outcome]] = []
    errors: list[str] = []
    seen: set[bytes] = set()

    def consider(c: Case) -> bool:
        key = repr(c.to_json()).encode()
        if key in seen:
            return True
        seen.add(key)
        try:
            got = c.call(impl)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}".splitlines()[0][:200])
            from normcheck.target import TargetHung

            return not isinstance(e, TargetHung)
        if not matches(c, got, _REFERENCE):
            fails.append((c, got))
        return True

    for c in cases:
        if len(fails) >= want or not consider(c):
            return fails, errors
    if extra > 0 and time.perf_counter() - t0 < budget_s:
        s = _spec.get(norm)
        for c in _generate(norm, dtype, seed=seed + 7919, count=extra, running=s.has_running_stats):
            if len(fails) >= want or time.perf_counter() - t0 > budget_s or not consider(c):
                break
    return fails, errors


# --- the diagnosis ---------------------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Which known variants a target matches on the failing cases examined."""

    norm: str
    failing: int  # failing cases examined
    counts: dict[str, int]  # variant name -> failing cases it matches
    descriptions: dict[str, str]
    matches: list[str]  # variants that match every failing case, most likely first
    symptoms: list[str] = field(default_factory=list)
    text: str = ""
    cases: list[Case] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return self.text

    @property
    def best(self) -> str | None:
        return self.matches[0] if self.matches else None


def _symptoms(pairs) -> list[str]:
    out = []
    n = len(pairs)
    nan = 0
    shapes = []
    for c, got in pairs:
        ref = c.reference().y
        with np.errstate(all="ignore"):
            g = np.asarray(got.y).astype(F64)
        if g.shape != ref.shape:
            shapes.append((g.shape, ref.shape))
        elif (~np.isfinite(g) & np.isfinite(ref)).any():
            nan += 1
    if shapes:
        (got_shape, want), k = shapes[0], len(shapes)
        out.append(f"returns shape {got_shape} for an input of shape {want} (wrong shape on {k}/{n} failing cases)")
    if nan:
        out.append(f"returns NaN/Inf where the reference is finite on {nan}/{n} failing cases")
    return out


def diagnose(
    impl, norm: str, cases, *, dtype: str = "float32", seed: int = 0, extra: int = 40, budget_s: float = 10.0
) -> Diagnosis | None:
    """Diagnose ``impl`` (a canonical NumPy callable) from failing ``cases`` plus fresh random ones.

    Returns None when there is nothing to diagnose: the target fails agreement on none of the
    cases (its deviations are of another kind, e.g. a contract), or it raised on every call.
    """
    pairs, _ = failing_cases(impl, cases, norm=norm, dtype=dtype, seed=seed, extra=extra, budget_s=budget_s)
    if not pairs:
        return None
    cat = variants(norm)
    # A wrong output shape is a contract violation no variant explains: the variants are judged on
    # the failing cases where the shape is right, and the wrong shapes are reported beside.
    shaped = [(c, got) for c, got in pairs if np.shape(got.y) == c.x.shape]
    judged = shaped if shaped and len(shaped) < len(pairs) else pairs
    counts = {v.name: sum(matches(c, got, v) for c, got in judged) for v in cat}
    desc = {v.name: v.description for v in cat}
    n = len(judged)
    full = [v for v in cat if counts[v.name] == n]
    strict = [v.name for v in full if not v.loose]
    names = strict or [v.name for v in full]
    d = Diagnosis(norm, n, counts, desc, names, cases=[c for c, _ in judged])
    if names:
        text = f"matches {desc[names[0]]} on {n}/{n} failing cases"
        if judged is not pairs:
            d.symptoms = _symptoms(pairs)
            text = "; ".join(d.symptoms) + f"; on the other failing cases it {text} (with the right shape)"
        if len(names) > 1:
            text += "; equally consistent with: " + "; ".join(desc[k] for k in names[1:])
    else:
        d.symptoms = _symptoms(pairs)
        best = max(cat, key=lambda v: counts[v.name])
        text = f"matches none of the {len(cat)} known variants of {norm} on every failing case"
        if d.symptoms:
            text = "; ".join(d.symptoms) + f"; {text}"
        if counts[best.name]:
            text += f" (closest: {desc[best.name]} on {counts[best.name]}/{n} failing cases)"
    d.text = text
    return d
