"""Collecting failing cases, searching the catalogue (single variants, then compositions), and the
text of the diagnosis: per dtype, and the answer across dtypes (:func:`combine`)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import dtypes as _dt
from normcheck import error_model
from normcheck import spec as _spec
from normcheck.case import Case, Outcome
from normcheck.diagnose import families
from normcheck.diagnose.evaluate import REFERENCE, explains, matches
from normcheck.diagnose.known import Variant, catalogue, combinable, compose
from normcheck.profiles import run_seeded

__all__ = [
    "CLOSEST",
    "CONSISTENT",
    "MAX_CANDIDATES",
    "Diagnosis",
    "describe",
    "diagnose",
    "failing_cases",
    "search",
    "supported",
]

F64 = np.float64

#: A variant is named "closest" only when it explains at least this share of the failing cases.
CLOSEST = 0.75

_REGIMES = {
    "normal": "standard normal",
    "offset": "|mean| ≫ std",
    "tiny": "std 1e-4, where eps dominates",
    "huge": "max|x| large for the dtype",
    "constant": "a zero-variance set",
    "outliers": "a few values of magnitude 1e3",
}


# --- collecting failing cases ---------------------------------------------------------------------------


def _generate(norm: str, dtype: str, *, seed: int, count: int, running: bool, strategy=None, axes=None) -> list[Case]:
    """``count`` fresh random cases from the property-suite strategy (generation only, no shrinking)."""
    from hypothesis import HealthCheck, Phase, given, settings

    from normcheck import strategies

    out: list[Case] = []
    if strategy is None:
        if axes is not None:
            strategy = strategies.cases(norm, dtypes=(dtype,), axes=axes)
        else:
            strategy = strategies.cases(norm, dtypes=(dtype,), running_stats=None if running else False)

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(strategy)
    def collect(c):
        out.append(c)

    run_seeded(collect, seed)
    return out


@dataclass
class _Collected:
    fails: list[tuple[Case, Outcome]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    raised_ranks: Counter = field(default_factory=Counter)
    ok_ranks: Counter = field(default_factory=Counter)
    buffers: int = 0  # failing cases whose updated running buffers deviate


#: Fresh cases scanned past ``want`` failing ones for a case whose running buffers deviate, where
#: none has yet: the buffers family needs its own cases (a target can be wrong in output and buffers
#: for two unrelated reasons, and the first failing cases drawn may all be eval-mode ones).
BUFFER_SEARCH = 12


def _outcome(impl, c: Case) -> Outcome | None:
    """The target's outcome on ``c``, or None where it raises."""
    try:
        return c.call(impl)
    except Exception:
        return None


def _buffers_off(c: Case, got: Outcome) -> bool:
    return c.running_mean is not None and not matches(c, got, REFERENCE, "buffers")


def _collect(impl, cases, *, norm, dtype, seed, extra, want, strategy=None, running=True) -> _Collected:
    """The target on ``cases``, then on up to ``extra`` fresh ones drawn from ``seed``: bounded by
    counts, never by time, so the same seed collects the same failing cases on any machine."""
    out = _Collected()
    seen: set[bytes] = set()

    def consider(c: Case) -> bool:
        key = repr(c.to_json()).encode()
        if key in seen:
            return True
        seen.add(key)
        try:
            got = c.call(impl)
        except Exception as e:
            out.errors.append(f"{type(e).__name__}: {e}".splitlines()[0][:200])
            out.raised_ranks[c.x.ndim] += 1
            from normcheck.target import TargetHung

            return not isinstance(e, TargetHung)
        out.ok_ranks[c.x.ndim] += 1
        if not matches(c, got, REFERENCE):
            off = _buffers_off(c, got)
            if len(out.fails) < want or (off and not out.buffers):
                out.fails.append((c, got))
                out.buffers += off
        return True

    for c in cases:
        if len(out.fails) >= want or not consider(c):
            return out
    if extra > 0:
        axes = next((c.args["reduce_axes"] for c in cases if c.args.get("reduce_axes") is not None), None)
        fresh = _generate(norm, dtype, seed=seed + 7919, count=extra, running=running, strategy=strategy, axes=axes)
        past = 0
        for c in fresh:
            if len(out.fails) >= want:
                past += 1
                if out.buffers or not running or past > BUFFER_SEARCH:
                    break
            if not consider(c):
                break
    return out


def failing_cases(
    impl, cases, *, norm: str, dtype: str, seed: int = 0, extra: int = 40, want: int = 24
) -> tuple[list[tuple[Case, Outcome]], list[str]]:
    """(case, the target's outcome) for the given cases and up to ``extra`` fresh ones on which the
    target fails agreement (at most ``want`` in all), and the
    first lines of any exceptions the target raised. For a 16-bit input, an output of another dtype
    fails too (the values may still agree: the ``output_promoted`` variant)."""
    col = _collect(impl, cases, norm=norm, dtype=dtype, seed=seed, extra=extra, want=want)
    return col.fails, col.errors


# --- the diagnosis ---------------------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Which known variants (or compositions of them) a target matches on the failing cases examined."""

    norm: str
    failing: int  # failing cases examined
    counts: dict[str, int]  # variant name -> failing cases it matches
    descriptions: dict[str, str]
    matches: list[str]  # variants that match every failing case, most likely first
    symptoms: list[str] = field(default_factory=list)
    text: str = ""
    cases: list[Case] = field(default_factory=list, repr=False)
    dtype: str = "float32"
    closest: str | None = None  # the variant explaining most (>= CLOSEST) failing cases, when none explains all
    observations: list[str] = field(default_factory=list)  # what the failing cases have in common
    by_dtype: dict[str, Diagnosis] = field(default_factory=dict, repr=False)  # the answer across dtypes
    pairs: list[tuple[Case, Outcome]] = field(default_factory=list, repr=False)  # (case, target outcome) judged
    families: dict[str, str | None] = field(default_factory=dict)  # family -> its variant, judged family by family

    def __str__(self) -> str:
        return self.text

    @property
    def best(self) -> str | None:
        return self.matches[0] if self.matches else None

    def to_json(self) -> dict[str, Any]:
        out = {
            "text": self.text,
            "dtype": self.dtype,
            "matches": list(self.matches),
            "failing_cases": self.failing,
            "counts": {k: v for k, v in self.counts.items() if v},
            "closest": self.closest,
            "observations": list(self.observations),
        }
        if self.families:
            out["families"] = dict(self.families)
        if self.by_dtype:
            out["by_dtype"] = {dt: d.to_json() for dt, d in self.by_dtype.items()}
        return out


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


def _rank_restriction(col: _Collected) -> str | None:
    """Says "accepts only rank-4 input" when the target raised on every call of some ranks and on none of others."""
    bad = sorted(r for r in col.raised_ranks if r not in col.ok_ranks)
    good = sorted(col.ok_ranks)
    if not bad or not good or any(r in col.ok_ranks for r in col.raised_ranks):
        return None
    ranks = ", ".join(map(str, good))
    first = col.errors[0] if col.errors else ""
    return (
        f"accepts only rank-{ranks} input: raised on every input of rank {', '.join(map(str, bad))} "
        f"({sum(col.raised_ranks.values())} calls; {first}); the norm is defined for those ranks too"
    )


def describe(v: Variant, judged, dtype: str) -> str:
    """The variant's description, with what statistics in a 16-bit dtype did on these cases."""
    if (per := families.split(v)) is not None:
        return f"{judged[0][0].norm} with a cause per property family [{per}]"
    names = {m.name for m in v.members}
    if "moments16" in names:
        return v.description + _moments_effects(judged, dtype)
    if "stats16" not in names:
        return v.description
    return v.description + _precision_effects(judged, dtype, center=_spec.get(judged[0][0].norm).center)


def _moments_effects(judged, dtype: str) -> str:
    """What returning the variance in ``dtype`` did on these cases: ": the variance overflows float16
    (inf) for std ≥ 256, where the output becomes 0" when some set's did."""
    top = float(_dt.finfo(dtype).max)
    center = _spec.get(judged[0][0].norm).center
    over = False
    for c, _ in judged:
        p = c.plan()
        from normcheck.reference import moments

        _, var = moments(c.x.astype(F64).reshape(p.view_shape), p.reduce, center=center)
        with np.errstate(all="ignore"):
            over |= bool(np.isinf(np.asarray(var, F64).astype(_dt.np_dtype(dtype))).any())
    if not over:
        return ""
    std = math.sqrt(top)
    what = "std" if center else "rms"
    return f": the variance overflows {dtype} (inf) for {what} ≥ {std:.4g}, where the output becomes 0"


def _square_threshold(dtype: str, *, overflow: bool) -> float:
    """The smallest |d| representable in ``dtype`` whose square rounds to inf (``overflow``), or the
    smallest whose square does not round to 0: found by bisection on the rounded arithmetic."""
    dt = _dt.np_dtype(dtype)

    def q(a):
        with np.errstate(all="ignore"):
            return float(np.asarray(a, F64).astype(dt).astype(F64))

    fi = _dt.finfo(dtype)
    tiny = float(getattr(fi, "smallest_subnormal", fi.tiny))
    lo, hi = (math.sqrt(float(fi.max)) / 2, math.sqrt(float(fi.max)) * 2) if overflow else (0.0, math.sqrt(tiny) * 2)

    def bad(x):
        v = q(x)
        sq = q(v * v)
        return math.isinf(sq) if overflow else sq > 0

    for _ in range(200):
        mid = (lo + hi) / 2
        if bad(mid):
            hi = mid
        else:
            lo = mid
    return q(hi)


def _precision_effects(judged, dtype: str, *, center: bool) -> str:
    big = _square_threshold(dtype, overflow=True)
    small = _square_threshold(dtype, overflow=False)
    over = under = False
    for c, _ in judged:
        p = c.plan()
        v = c.x.astype(F64).reshape(p.view_shape)
        d = v - np.mean(v, axis=p.reduce, keepdims=True) if center else v
        a = np.abs(d)
        over |= bool((a >= big).any())
        under |= bool(((a > 0) & (a < small)).any())
    what = "(x − mean)²" if center else "x²"
    arg = "|x − mean|" if center else "|x|"
    effects = []
    if over:
        effects.append(f"{what} overflows {dtype} for {arg} ≥ {big:.4g}")
    if under:
        effects.append(f"{'' if over else what + ' '}underflows to 0 for {arg} < {small:.2g}")
    head = ": " + " and ".join(effects) if effects else ""
    return f"{head} (the native kernels accumulate in float32)"


def _ratio(c: Case) -> float:
    """max over the case's sets of |mean| / std (inf for a constant set with a nonzero mean)."""
    p = c.plan()
    from normcheck.reference import moments

    mean, var = moments(c.x.astype(F64).reshape(p.view_shape), p.reduce, center=True)
    with np.errstate(all="ignore"):
        r = np.abs(mean) / np.sqrt(var)
    r = np.nan_to_num(r, nan=0.0, posinf=np.inf)
    return float(np.max(r)) if r.size else 0.0


def _observed(c: Case, got: Outcome) -> float:
    ref = c.reference().y
    s = error_model.scale(
        c.norm, c.x, use_batch_stats=c.use_batch_stats, **c.kwargs(),
        **({"reduce_axes": c.args["reduce_axes"]} if c.args.get("reduce_axes") is not None else {}),
    )  # fmt: skip
    return error_model.compare(got.y, ref, s, c.dtype).observed


def _rank_corr(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _observe(judged, norm: str, dtype: str, properties) -> list[str]:
    """What the failing cases have in common: properties, regimes, mode, and whether the error grows
    with |mean|/std."""
    n = len(judged)
    s = _spec.get(norm)
    out = []
    if properties:
        out.append(f"failing properties in {dtype}: {', '.join(properties)}")
    regimes = Counter(c.regime or "unknown" for c, _ in judged)
    if len(regimes) == 1:
        (r,) = regimes
        out.append(f"every failing case is in the {r} regime ({_REGIMES.get(r, r)})")
    else:
        out.append(
            "failing cases by input regime: " + ", ".join(f"{r} {k}" for r, k in regimes.most_common()) + f" (of {n})"
        )
    if s.batch_stats_flag:
        train = sum(c.use_batch_stats for c, _ in judged)
        if train == 0:
            out.append(f"only in eval mode ({s.batch_stats_flag}=False)")
        elif train == n and all(c.running_mean is not None for c, _ in judged):
            out.append("only in training with running buffers")
    if n >= 5 and s.center:
        errs, ratios = [], []
        for c, got in judged:
            try:
                e, r = _observed(c, got), _ratio(c)
            except (ValueError, _spec.SpecError):
                continue
            if math.isfinite(e) and math.isfinite(r):
                errs.append(e)
                ratios.append(r)
        if len(errs) >= 5:
            rho = _rank_corr(np.asarray(ratios), np.asarray(errs))
            if rho >= 0.7:
                out.append(
                    f"the error grows with |mean|/std (rank correlation {rho:.2f} over {len(errs)} failing cases)"
                )
    return out


def _coverage(v: Variant, judged) -> int:
    """A bit mask of the failing cases ``v`` applies to."""
    mask = 0
    for i, (c, _) in enumerate(judged):
        try:
            if v.applies(c):
                mask |= 1 << i
        except (ValueError, KeyError, IndexError, ZeroDivisionError, _spec.SpecError):
            pass
    return mask


#: The most compositions :func:`_search` judges (a count, not a time: the diagnosis is a function of
#: the seed). Candidates are tried in the catalogue's order, most likely first.
MAX_CANDIDATES = 6000


def search(
    norm: str, cat: list[Variant], judged, *, limit: int = MAX_CANDIDATES, sizes=(2, 3), part: str = "all"
) -> list[Variant]:
    """Compositions of ``sizes`` variants (along distinct dimensions) that match every failing
    case: pairs first, triples only when no pair does. A member must apply to some failing case,
    and together the members must cover all of them. Each candidate is tried first on the case
    that rejected the last one (most candidates fail at once)."""
    n = len(judged)
    everything = (1 << n) - 1
    cov = {v.name: _coverage(v, judged) for v in cat if not v.gradient}
    usable = [v for v in cat if cov.get(v.name)]
    order = list(range(n))
    tried = 0
    for k in sizes:
        found = []
        for combo in itertools.combinations(usable, k):
            union = 0
            for v in combo:
                union |= cov[v.name]
            if union != everything or not combinable(combo):
                continue
            tried += 1
            if tried > limit:
                return found
            cand = compose(norm, combo)
            for pos, i in enumerate(order):
                c, got = judged[i]
                if not matches(c, got, cand, part):
                    order.insert(0, order.pop(pos))
                    break
            else:
                if supported(cand, judged, part):
                    found.append(cand)
        if found:
            return found
    return []


def supported(v: Variant, judged, part: str = "all") -> bool:
    """Is ``v`` defined somewhere on the failing cases it matches (not only 0/0 on every set)?"""
    return any(explains(c, got, v, part) == "yes" for c, got in judged)


CONSISTENT = "; equally consistent with: "


def _consistent(names, desc) -> str:
    rest = [desc[k] for k in names[1:]]
    if len(rest) > 3:
        rest = [*rest[:3], f"{len(rest) - 3} more"]
    return CONSISTENT + "; ".join(rest)


def diagnose(
    impl,
    norm: str,
    cases,
    *,
    dtype: str = "float32",
    seed: int = 0,
    extra: int = 40,
    properties=(),
    strategy=None,
    running: bool = True,
) -> Diagnosis | None:
    """Diagnose ``impl`` (a canonical NumPy callable) from failing ``cases`` of one ``dtype`` plus
    fresh random ones (from ``strategy``, else the property suite's for the dtype).

    Returns None when there is nothing to diagnose: the target fails agreement on none of the
    cases (its deviations are of another kind, e.g. a contract), or it raised on every call
    (unless it raised on exactly the inputs of some ranks: a rank-restricted target).
    ``properties`` (the failing properties of this dtype) only enter the observations.
    """
    col = _collect(impl, cases, norm=norm, dtype=dtype, seed=seed, extra=extra, want=24,
                   strategy=strategy, running=running)  # fmt: skip
    pairs = col.fails
    if not pairs:
        text = _rank_restriction(col)
        if text is None:
            return None
        return Diagnosis(norm, 0, {}, {}, [], symptoms=[text], text=text, dtype=dtype)
    cat = catalogue(norm, dtype)
    # A wrong output shape is a contract violation no variant explains: the variants are judged on
    # the failing cases where the shape is right, and the wrong shapes are reported beside.
    shaped = [(c, got) for c, got in pairs if np.shape(got.y) == c.x.shape]
    judged = shaped if shaped and len(shaped) < len(pairs) else pairs
    counts = {v.name: sum(matches(c, got, v) for c, got in judged) for v in cat}
    desc = {v.name: describe(v, judged, dtype) for v in cat}
    n = len(judged)
    full = [v for v in cat if counts[v.name] == n and supported(v, judged)]
    searched = False
    if not full:
        searched = True
        full = search(norm, cat, judged)
        for v in full:
            counts[v.name] = n
            desc[v.name] = describe(v, judged, dtype)
    strict = [v.name for v in full if not v.loose]
    names = strict or [v.name for v in full]
    d = Diagnosis(norm, n, counts, desc, names, cases=[c for c, _ in judged], dtype=dtype, pairs=list(judged))
    found = {} if names else families.by_family(norm, cat, judged, search, supported, lambda c: _outcome(impl, c))
    if names:
        text = f"matches {desc[names[0]]} on {n}/{n} failing cases"
        if judged is not pairs:
            d.symptoms = _symptoms(pairs)
            text = "; ".join(d.symptoms) + f"; on the other failing cases it {text} (with the right shape)"
        if len(names) > 1:
            text += _consistent(names, desc)
    elif any(v is not None for v, _ in found.values()):
        d.families = {part: (None if v is None else v.name) for part, (v, _) in found.items()}
        d.symptoms = _symptoms(pairs)
        text = "; ".join([*d.symptoms, families.text(norm, found)])
    else:
        d.symptoms = _symptoms(pairs)
        best = max(cat, key=lambda v: counts[v.name])
        nothing = " (nor any pair or triple of them)" if searched else ""
        text = f"matches none of the {len(cat)} known variants of {norm}{nothing} on every failing case"
        if d.symptoms:
            text = "; ".join(d.symptoms) + f"; {text}"
        if counts[best.name] == n:  # it explains them all, but only where it is 0/0 (any output)
            d.closest = best.name
            text += (
                f"; consistent with {desc[best.name]} on {n}/{n} failing cases, each one where it is "
                "undefined (0/0, or a variance cancelled away), which cannot tell it from other causes"
            )
        elif counts[best.name] >= CLOSEST * n:
            d.closest = best.name
            text += f"; closest: {desc[best.name]} on {counts[best.name]}/{n} failing cases"
            rest = [(c, got) for c, got in judged if not matches(c, got, best)]
            d.observations = [f"the other {len(rest)}: " + "; ".join(_observe(rest, norm, dtype, ()))]
        else:
            d.observations = _observe(judged, norm, dtype, properties)
        if d.observations:
            text += "; observed: " + "; ".join(d.observations)
    d.text = text
    return d
