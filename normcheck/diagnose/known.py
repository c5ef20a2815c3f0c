"""The catalogue: known wrong variants of each norm, and their compositions.

Each :class:`Variant` is a set of options for :func:`normcheck.diagnose.evaluate.outcome` (a float64
variant of :func:`normcheck.reference.normalize` with one thing changed), the cases it applies to,
the *dimension* it changes (the variance estimator, the eps placement, the eps value, the axis set,
the affine transform, the precision, the output dtype, one aspect of the running statistics) and a
short phrase for a composition. Two or three variants along different dimensions, with disjoint
options, compose (:func:`compose`): "group_norm with unbiased variance and eps added to the std".

- :func:`variants`: the variants defined on any case of the norm (each differs from the reference
  on generic float32 inputs);
- :func:`catalogue`: what the diagnosis of one dtype's failing cases tries: :func:`variants` plus
  the variants defined only on some cases (a weight without a bias; 16-bit inputs: statistics
  computed in the 16-bit dtype, the output promoted to float32, eps defaulted from the input
  dtype) and a hard-wired eps, fitted from :data:`EPS_FITS`;
- :func:`gradient_variants`: variants whose forward output is the reference's (detached mean,
  variance or rsqrt), diagnosed from gradient failures only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from normcheck import dtypes as _dt
from normcheck import spec as _spec
from normcheck.case import Case

__all__ = [
    "EPS_FITS",
    "Grouping",
    "Variant",
    "catalogue",
    "combinable",
    "compose",
    "gradient_variants",
    "on_axes",
    "variants",
]

#: Hard-wired eps values a fit tries (eps = 0 is the ``eps_ignored`` variant): the frameworks'
#: defaults (torch 1e-5, Keras 1e-3, Flax 1e-6) and values common in hand-written code.
EPS_FITS = (1e-5, 1e-6, 1e-3, 1e-8, 1e-12)

Grouping = Callable[[Case], tuple[tuple[int, ...], tuple[int, ...]]]


def _always(c: Case) -> bool:
    return True


def _never(c: Case) -> bool:
    return False


@dataclass(frozen=True)
class Variant:
    """One known variant of a norm (or a composition of several): ``options`` for
    :func:`~normcheck.diagnose.evaluate.outcome`, and when it applies."""

    name: str
    description: str  # reads after "matches": "group_norm with unbiased variance (Bessel's correction)"
    options: dict[str, Any] = field(default_factory=dict)
    applies: Callable[[Case], bool] = field(default=_always, repr=False)
    loose: bool = False  # judged with the one-pass rule (see normcheck.diagnose)
    dim: str = ""  # the dimension it changes; variants compose only across dimensions
    short: str = ""  # its phrase in a composition: "unbiased variance"
    gradient: bool = False  # the forward output is the reference's: diagnosed from gradient failures only
    parts: tuple[Variant, ...] = ()  # a composition: its variants (empty for a single variant)

    @property
    def members(self) -> tuple[Variant, ...]:
        return self.parts or (self,)

    def active(self, case: Case) -> tuple[Variant, ...]:
        """The members that apply to ``case`` (a member that does not apply computes the reference).
        Batch statistics in eval mode bring a composition's axis set into eval mode with them."""
        on = tuple(v for v in self.members if v.applies(case))
        if self.parts and any(v.options.get("eval_stats") == "batch" for v in on):
            on = tuple(v for v in self.members if v in on or v.dim == "axes")
        return on

    def merged(self, case: Case) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for v in self.active(case):
            out.update(v.options)
        return out


# --- axis sets ---------------------------------------------------------------------------------------


def _rest(c: Case):
    return c.x.shape, tuple(range(1, c.x.ndim))


def _last(c: Case):
    return c.x.shape, (c.x.ndim - 1,)


def _instance(c: Case):
    return c.x.shape, tuple(range(2, c.x.ndim))


def _batch(c: Case):
    return c.x.shape, (0, *range(2, c.x.ndim))


def _across(c: Case):
    p = c.plan()
    return p.view_shape, tuple(sorted({0, *p.reduce}))


def _strided(c: Case):
    n, ch, *sp = c.x.shape
    g = int(c.args["num_groups"])
    return (n, ch // g, g, *sp), (1, *range(3, 3 + len(sp)))


def _group_size(c: Case):
    n, ch, *sp = c.x.shape
    g = ch // int(c.args["num_groups"])
    return (n, g, ch // g, *sp), tuple(range(2, 3 + len(sp)))


def on_axes(case: Case, axes: tuple[int, ...]) -> Case:
    """The case as an axis-set variant over ``axes``; γ, β laid along them (flattened, or broadcast
    from a single value, as ``w.reshape(-1, 1, ...)`` in the user's code would)."""
    sizes = tuple(case.x.shape[a] for a in axes)
    args = {**case.args, "reduce_axes": axes}
    if case.spec.shape_arg == "normalized_shape":
        args["normalized_shape"] = sizes
    lay = {k: _broadcast(getattr(case, k), sizes) for k in ("weight", "bias") if getattr(case, k) is not None}
    return case.with_(args=args, **lay)


def _broadcast(a, sizes):
    import numpy as np

    return np.broadcast_to(a.reshape(-1), (math.prod(sizes),)).reshape(sizes).copy()


# --- when a variant applies ---------------------------------------------------------------------------


def _batch_stats(c: Case) -> bool:
    return c.use_batch_stats


def _rank2(c: Case) -> bool:
    return c.use_batch_stats and c.x.ndim >= 2


def _affine(c: Case) -> bool:
    return c.weight is not None or c.bias is not None


def _weight(c: Case) -> bool:
    return c.weight is not None


def _weight_alone(c: Case) -> bool:
    return c.weight is not None and c.bias is None


def _training_buffers(c: Case) -> bool:
    return c.running_mean is not None and c.use_batch_stats


def _eval(c: Case) -> bool:
    return not c.use_batch_stats


def _eval_buffers(c: Case) -> bool:
    return not c.use_batch_stats and c.running_mean is not None


def _groups_differ(c: Case) -> bool:
    g, ch = int(c.args.get("num_groups", 1)), c.x.shape[1]
    return c.use_batch_stats and 1 < g < ch


def _across_applies(c: Case) -> bool:
    return c.use_batch_stats and c.x.ndim >= 2 and c.x.shape[0] > 1 and 0 not in c.plan().reduce


def _sixteen(c: Case) -> bool:
    return _dt.is_16bit(c.dtype)


def _stats16_applies(c: Case) -> bool:
    return _dt.is_16bit(c.dtype) and c.use_batch_stats


def _eps_from_input(c: Case) -> bool:
    return _dt.is_16bit(c.dtype) and c.args.get("eps") is None and c.spec.default_eps == "finfo_opmath"


def _eps_differs(value: float) -> Callable[[Case], bool]:
    def applies(c: Case) -> bool:
        eps = c.spec.resolve_eps(c.args.get("eps"), c.x.dtype)
        return not math.isclose(eps, value, rel_tol=1e-6, abs_tol=0.0)

    return applies


def _single_axis_applies(case: Case, a: int) -> bool:
    """Statistics over axis ``a`` alone differ from the case's own set and from the last axis's, and the
    affine parameters (if any) fit along that axis."""
    if a >= case.x.ndim or case.plan().reduce == (a,) or not _batch_stats(case):
        return False
    return all(getattr(case, k) is None or getattr(case, k).size in (1, case.x.shape[a]) for k in ("weight", "bias"))


# --- the catalogue ------------------------------------------------------------------------------------


def variants(norm: str) -> list[Variant]:
    """The variants of ``norm`` defined on any case, most likely first (the order in which matches
    are reported)."""
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
            _always,  # in eval mode it computes the reference (a composition with eval_batch_stats needs it)
            dim="variance",
            short="unbiased variance" if s.center else "an unbiased mean square (divided by n − 1)",
        ),
        Variant(
            "eps_outside_sqrt",
            f"{norm} with eps outside the square root: (x − mean) / (sqrt(var) + eps)",
            {"eps_mode": "outside"},
            dim="eps_place",
            short="eps added to the std",
        ),
        Variant(
            "eps_ignored",
            f"{norm} with eps ignored (eps = 0)",
            {"eps_mode": "ignored"},
            dim="eps_value",
            short="eps ignored",
        ),
        Variant(
            "eps_clamped",
            f"{norm} with eps as a clamp: 1 / sqrt(max(var, eps))",
            {"eps_mode": "clamped"},
            dim="eps_place",
            short="eps as a clamp on the variance",
        ),
    ]
    if gn:
        out += [
            Variant(
                "strided_groups",
                f"{norm} with strided groups (channel c in group c % G) instead of contiguous blocks",
                {"grouping": _strided},
                _groups_differ,
                dim="axes",
                short="strided groups (channel c in group c % G)",
            ),
            Variant(
                "groups_as_group_size",
                f"{norm} with num_groups read as the group size (C/G groups of G channels)",
                {"grouping": _group_size},
                lambda c: _batch_stats(c) and int(c.args["num_groups"]) ** 2 != c.x.shape[1],
                dim="axes",
                short="num_groups read as the group size",
            ),
            Variant(
                "affine_per_group",
                f"{norm} with γ, β indexed by group (weight[g] for every channel of group g) instead of by channel",
                {"affine": "group"},
                lambda c: _affine(c) and int(c.args["num_groups"]) < c.x.shape[1],
                dim="affine",
                short="γ, β indexed by group",
            ),
        ]
    out += [
        Variant(
            "affine_first",
            f"{norm} with the affine transform applied before normalizing: normalize(x·γ + β)",
            {"affine": "before"},
            lambda c: _affine(c) and _batch_stats(c),
            dim="affine",
            short="the affine transform applied before normalizing",
        ),
        Variant(
            "one_plus_weight",
            f"{norm} with a (1 + weight) gain: y = ŷ·(1 + γ){' + β' if s.has_bias else ''} (the weight stored as an "
            "offset from 1, "
            "as in Gemma's RMSNorm)",
            {"gain": "one_plus"},
            _weight,
            dim="gain",
            short="a (1 + weight) gain",
        ),
    ]
    name = "layer_norm" if s.center else "rms_norm"
    axis_sets = [
        ("axes_rest", f"{name} over x.shape[1:] (statistics over every axis but the batch)", _rest, _rank2,
         "statistics over x.shape[1:] (C and the spatial axes together)"),
        ("axes_last", f"{name} over the last axis only", _last, _batch_stats, "statistics over the last axis only"),
        (
            "axes_instance",
            "instance_norm (statistics per sample and channel, over the spatial axes)"
            if s.center
            else "rms statistics over instance_norm's axes (per sample and channel, over the spatial axes)",
            _instance,
            _rank2,
            "instance_norm's axes (per sample and channel)",
        ),
        (
            "axes_batch",
            "batch_norm with batch statistics (per channel, over the batch and spatial axes)"
            if s.center
            else "rms statistics over batch_norm's axes (per channel, over the batch and spatial axes)",
            _batch,
            _rank2,
            "batch_norm's axes (per channel, over the batch)",
        ),
    ]  # fmt: skip
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
                    dim="axes",
                    short=f"statistics over axis {a} only (check it with --axes {a} if that is intended)",
                )
            )
    own = {"instance_norm": "axes_instance", "batch_norm": "axes_batch"}.get(norm)
    own_set = "(" + ", ".join(s.reduce) + ")"
    for key, desc, grouping, applies, short in axis_sets:
        if key == own:
            continue
        text = f"{desc} instead of {norm}'s {own_set}"
        if key == "axes_last":
            text += "; if the last axis is intended, check it with --axes=-1"
            short += " (check it with --axes=-1 if that is intended)"
        out.append(Variant(key, text, {"grouping": grouping}, applies, dim="axes", short=short))
    if "N" not in s.reduce and norm != "instance_norm":  # instance_norm's is batch_norm's set (axes_batch)
        out.append(
            Variant(
                "across_samples",
                f"{norm} with statistics across samples (the batch axis included in the set, as if the batch "
                "were one sample)",
                {"grouping": _across},
                _across_applies,
                dim="axes",
                short="statistics across samples (the batch axis included)",
            )
        )
    out.append(
        Variant(
            "uncentered",
            f"rms_norm-style statistics over {norm}'s axes (the mean is not subtracted)",
            {"center": False},
            dim="variance",
            short="the mean not subtracted",
        )
        if s.center
        else Variant(
            "centered",
            f"layer_norm-style statistics over {norm}'s axes (the mean is subtracted)",
            {"center": True},
            dim="variance",
            short="the mean subtracted",
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
                dim="stored",
                short="the biased variance stored in running_var",
            ),
            Variant(
                "momentum_swapped",
                f"{norm} with momentum read the other way round: running = momentum·running + (1 − momentum)·batch "
                "(the Keras/Flax convention)",
                {"momentum": "swapped"},
                _training_buffers,
                dim="momentum",
                short="momentum read the Keras way",
            ),
            Variant(
                "eval_batch_stats",
                f"{norm} using batch statistics in eval mode ({flag}=False)",
                {"eval_stats": "batch"},
                _eval,
                dim="eval_stats",
                short="batch statistics in eval mode",
            ),
            Variant(
                "frozen_stats",
                f"{norm} with frozen statistics: the running buffers used (and kept) in training mode ({flag}=True), "
                "as a FrozenBatchNorm does",
                {"train_stats": "running"},
                _training_buffers,
                dim="train_stats",
                short="frozen statistics (the running buffers used in training)",
            ),
            Variant(
                "averaged_stats",
                f"{norm} normalizing with averaged statistics in training ({flag}=True): the running buffers "
                "updated first, then used in place of the batch's (an EMA of the statistics)",
                {"train_stats": "averaged"},
                _training_buffers,
                dim="train_stats",
                short="averaged (EMA) statistics in training",
            ),
            Variant(
                "averaged_stats_before",
                f"{norm} normalizing with the incoming running buffers in training ({flag}=True) and then updating "
                "them (averaged statistics of the previous steps in place of the batch's)",
                {"train_stats": "averaged_before"},
                _training_buffers,
                dim="train_stats",
                short="the previous steps' averaged (EMA) statistics in training",
            ),
            Variant(
                "buffers_not_updated",
                f"{norm} never updating the running buffers in training (momentum=None read as 0, or the update "
                "dropped)",
                {"momentum": "none"},
                _training_buffers,
                dim="momentum",
                short="the running buffers never updated",
            ),
            Variant(
                "momentum_none_as_default",
                f"{norm} reading momentum=None as the default momentum 0.1 (an exponential average where "
                "torch keeps a cumulative one: a fresh module's first step takes the batch statistics)",
                {"momentum": "default"},
                lambda c: _training_buffers(c) and "momentum" in c.args and c.args["momentum"] is None,
                dim="momentum",
                short="momentum=None read as 0.1",
            ),
            Variant(
                "momentum_one",
                f"{norm} replacing the running buffers by the batch statistics (momentum ignored and read as 1, "
                "which is what momentum=None's cumulative average does on its first step only)",
                {"momentum": "one"},
                _training_buffers,
                dim="momentum",
                short="the running buffers replaced by the batch statistics",
            ),
            Variant(
                "eval_updates_buffers",
                f"{norm} updating the running buffers in eval mode ({flag}=False) as in training",
                {"eval_update": True},
                _eval_buffers,
                dim="eval_update",
                short="the running buffers updated in eval mode",
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
                dim="variance",
                short="a one-pass variance E[x²] − E[x]²",
            )
        )
    return out


def catalogue(norm: str, dtype: str = "float32") -> list[Variant]:
    """Every single variant the diagnosis of ``dtype`` cases of ``norm`` tries: :func:`variants`,
    then the variants defined only on some cases, then a hard-wired eps (one per :data:`EPS_FITS`)."""
    s = _spec.get(norm)
    out = variants(norm)
    if s.mix:
        return out
    weight_rule = (
        f"{norm} with the weight ignored when no bias is given (γ applied only together with β)"
        if s.has_bias
        else f"{norm} with the weight ignored"
    )
    out.append(
        Variant("weight_needs_bias", weight_rule, {"affine": "needs_bias"}, _weight_alone, dim="affine",
                short="the weight ignored without a bias" if s.has_bias else "the weight ignored")
    )  # fmt: skip
    if _dt.is_16bit(dtype):
        out += [
            Variant(
                "stats16",
                f"{norm} with its statistics computed in {dtype}",  # the effects are added from the cases
                {"precision": "stats16"},
                _stats16_applies,
                dim="precision",
                short=f"statistics computed in {dtype}",
            ),
            Variant(
                "moments16",
                f"{norm} with its mean and variance computed wide but returned in {dtype} by the framework's "
                f"moments function (as tf.nn.moments does for a {dtype} input)",  # the effects are added from the cases
                {"precision": "moments16"},
                _stats16_applies,
                dim="precision",
                short=f"mean and variance returned in {dtype} by the moments function",
            ),
            Variant(
                "output_promoted",
                f"{norm} returning float32 for {dtype} inputs (the output dtype promoted)",
                {"output": "promoted"},
                _sixteen,
                dim="output",
                short=f"the output returned in float32 for {dtype} inputs",
            ),
        ]
        if s.default_eps == "finfo_opmath":
            e16, e32 = float(_dt.finfo(dtype).eps), float(_dt.finfo("float32").eps)
            out.append(
                Variant(
                    "eps_input_dtype",
                    f"{norm} with eps=None defaulting to finfo({dtype}).eps = {e16:.3g} (the input dtype's) "
                    f"instead of finfo(float32).eps = {e32:.3g} (the computation dtype's)",
                    {"eps_value": "input"},
                    _eps_from_input,
                    dim="eps_value",
                    short=f"eps=None read as finfo({dtype}).eps",
                )
            )
    if dtype == "bfloat16":
        out.append(
            Variant(
                "input_float16",
                f"{norm} with its {dtype} input cast to float16 first (as x.half() does): |x| > 65504 becomes inf",
                {"input_cast": "float16"},
                _always,
                dim="input",
                short="the input cast to float16 (|x| > 65504 becomes inf)",
            )
        )
    for v in EPS_FITS:
        out.append(
            Variant(
                f"eps_hardwired_{v:g}",
                f"{norm} with eps hard-wired to {v:g} (the eps argument is ignored)",
                {"eps_value": v},
                _eps_differs(v),
                dim="eps_value",
                short=f"eps hard-wired to {v:g}",
            )
        )
    return out


def gradient_variants(norm: str) -> list[Variant]:
    """Variants with the reference's forward output and a wrong gradient: a statistic detached from
    the graph (``torch.no_grad()``, ``.detach()``, ``jax.lax.stop_gradient``). They are diagnosed
    from gradient failures only, never from the forward cases (``applies`` is never true there);
    gradient properties on user targets arrive with issue 15, item 1."""
    s = _spec.get(norm)
    note = "; the forward output is exact, only the gradient is wrong (diagnosed from gradient failures)"
    out = []
    if s.center:
        out.append(Variant("detached_mean", f"{norm} with the mean detached from the graph{note}",
                           {"detach": "mean"}, _never, dim="gradient", short="the mean detached", gradient=True))  # fmt: skip
    out += [
        Variant(
            "detached_variance",
            f"{norm} with the variance detached from the graph{note}",
            {"detach": "variance"},
            _never,
            dim="gradient",
            short="the variance detached",
            gradient=True,
        ),
        Variant(
            "detached_rsqrt",
            f"{norm} with 1/sqrt(var + eps) detached from the graph{note}",
            {"detach": "rsqrt"},
            _never,
            dim="gradient",
            short="the rsqrt detached",
            gradient=True,
        ),
    ]
    return out


def combinable(vs) -> bool:
    """Variants along distinct dimensions with disjoint options (so their options merge)."""
    dims = [v.dim for v in vs]
    keys = [k for v in vs for k in v.options]
    return len(set(dims)) == len(dims) and len(set(keys)) == len(keys) and not any(v.gradient for v in vs)


def compose(norm: str, vs) -> Variant:
    """The composition of variants ``vs`` (see :func:`combinable`), named ``a+b`` and described
    "norm with A and B" (or "A, B and C")."""
    vs = tuple(vs)
    phrases = [v.short or v.description for v in vs]
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return Variant(
        "+".join(v.name for v in vs),
        f"{norm} with {joined}",
        {k: val for v in vs for k, val in v.options.items()},
        lambda c: any(v.applies(c) for v in vs),
        loose=any(v.loose for v in vs),
        dim="+".join(v.dim for v in vs),
        short=joined,
        parts=vs,
    )
