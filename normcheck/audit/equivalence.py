r"""Cross-framework equivalence in the audit: every pair of implementations of a norm, per dtype.

The audit replays the same drawn cases to every implementation of a norm (:mod:`.driver`), and
each reference-judged property measures one quantity against the float64 reference
(:data:`QUANTITIES`: the output, the running buffers, the gradients). Two implementations a and b
are **equivalent** on a case when (:func:`normcheck.comparison.difference`)

    |a - b| <= lambda ((u + u64)(s_a + s_b) + eta_min)        (both sides' bounds as the allowance)

On the audit's cases both sides share the case, hence the reference r and the scale s, so the
triangle inequality decides most pairs from the records alone (:func:`section`, no call):

- both records pass (worst errors o_a, o_b <= lambda): |a - b| <= |a - r| + |b - r| <= u s (o_a + o_b),
  so the difference is at most (o_a + o_b) / 2 u·(2s) <= lambda: **equivalent** (``bound``);
- a record deviates (a registered finding, or a new deviation): the pair **differs** on the
  deviating side's case unless both deviate alike there. :func:`refine` replays that case (the
  record's counterexample: a finding's smallest hit, or the shrunk deviation) to both
  implementations and measures the difference exactly (``observed``, both values and the reference);
  where it cannot (the case was saved without its values, an implementation is not installed
  here), the pair stays "differ" with ``confirmed: false``. An implementation that raises on the
  case where the other returns differs (``note``: what it raised; not explained when the raising
  side's own records passed); one that does not take the case (Unsupported: a layout, rank or
  option it lacks) leaves the pair "untested" there, as both raising does. A ``running_stats_steps``
  counterexample is replayed from its first training step (:func:`training_step`).

A difference is **explained** when every deviating side's record is a registered finding (named in
``findings``). :func:`lines` gives the terminal's line per norm.
"""

from __future__ import annotations

import math
import time
from typing import Any

from normcheck import findings as _findings

__all__ = ["QUANTITIES", "Raised", "lines", "refine", "section", "training_step"]

#: Property -> the quantity it compares with the reference.
QUANTITIES = {"agreement": "output", "running_stats_steps": "running buffers", "gradient_agreement": "gradients"}
SMALL = 64  # values up to this many elements are kept in the document


def _lam() -> float:
    from normcheck.error_model import MODEL

    return MODEL.lam


def _num(v) -> float | str | None:
    if v is None:
        return None
    v = float(v)
    if math.isfinite(v):
        return v
    return None if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _float(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return math.inf if v == "inf" else -math.inf if v == "-inf" else math.nan
    return float(v)


def _deviates(r: dict[str, Any]) -> bool:
    return r["verdict"] in ("finding", "fail") or bool(r.get("explained"))


def _findings_of(r: dict[str, Any]) -> list[str]:
    out = list(r.get("explained") or {})
    if r.get("finding") and r["finding"] not in out:
        out.insert(0, r["finding"])
    return out


def _quantity(ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    """One quantity of a pair, from the two records (see the module docstring)."""
    lam = _lam()
    if not _deviates(ra) and not _deviates(rb):
        bound = (_float(ra["observed"]) + _float(rb["observed"])) / 2
        ok = bound <= lam
        return {"verdict": "equivalent" if ok else "differ", "bound": _num(bound), "confirmed": ok}
    side = "a" if _deviates(ra) else "b"
    dev = ra if side == "a" else rb
    findings = list(dict.fromkeys([*_findings_of(ra), *_findings_of(rb)]))
    explained = all(r["verdict"] != "fail" for r in (ra, rb) if _deviates(r)) and bool(findings)
    return {
        "verdict": "differ",
        "confirmed": False,
        "case_of": side,  # whose deviating case the difference is measured on
        "deviating": [k for k, r in (("a", ra), ("b", rb)) if _deviates(r)],
        "counterexample": dev.get("counterexample"),
        "findings": findings,
        "explained": explained,
    }


def _pair(a: str, b: str, qa: dict[str, dict], qb: dict[str, dict]) -> dict[str, Any]:
    qs = {q: _quantity(qa[q], qb[q]) for q in QUANTITIES.values() if q in qa and q in qb}
    out: dict[str, Any] = {"a": a, "b": b, "quantities": qs}
    _settle(out)
    return out


def _settle(p: dict[str, Any]) -> None:
    """The pair's verdict, worst difference, findings and explanation, from its quantities: "differ"
    where one differs, else "equivalent" where one is, else "untested" (one side does not take the
    other's deviating case)."""
    qs = p["quantities"].values()
    differ = [q for q in qs if q["verdict"] == "differ"]
    p["verdict"] = "differ" if differ else "equivalent" if any(q["verdict"] == "equivalent" for q in qs) else "untested"
    worst = [_float(q.get("observed", q.get("bound"))) for q in qs]
    worst = [w for w in worst if not math.isnan(w)]
    p["worst"] = _num(max(worst)) if worst else None
    p["findings"] = list(dict.fromkeys(f for q in differ for f in q.get("findings", [])))
    p["explained"] = bool(differ) and all(q.get("explained") for q in differ)


def section(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The document's ``equivalence`` section from its records (docs/schema.md); no implementation is called."""
    by: dict[tuple[str, str], dict[str, dict[str, dict]]] = {}
    for r in rows:
        q = QUANTITIES.get(r.get("property", ""))
        if q is None or r.get("verdict") not in ("pass", "finding", "fail") or not r.get("examples"):
            continue
        if r.get("framework") == "user":
            continue
        by.setdefault((r["norm"], r["dtype"]), {}).setdefault(r["impl"], {})[q] = r
    norms: dict[str, Any] = {}
    for (norm, dt), impls in sorted(by.items()):
        ids = sorted(impls)
        pairs = [_pair(a, b, impls[a], impls[b]) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        pairs = [p for p in pairs if p["quantities"]]
        norms.setdefault(norm, {"dtypes": {}})["dtypes"][dt] = {"implementations": ids, "pairs": pairs}
    for entry in norms.values():
        _summarize(entry)
    return {"allowed": _lam(), "quantities": dict(QUANTITIES), "norms": norms}


def _summarize(entry: dict[str, Any]) -> None:
    """Per norm: a pair of implementations is equivalent when it is at every dtype both ran."""
    verdicts: dict[tuple[str, str], list[dict]] = {}
    impls: set[str] = set()
    for d in entry["dtypes"].values():
        impls.update(d["implementations"])
        for p in d["pairs"]:
            verdicts.setdefault((p["a"], p["b"]), []).append(p)
    differ = [ps for ps in verdicts.values() if any(p["verdict"] == "differ" for p in ps)]
    bad = [p for ps in differ for p in ps if p["verdict"] == "differ"]
    untested = sum(all(p["verdict"] == "untested" for p in ps) for ps in verdicts.values())
    entry.update(
        implementations=len(impls),
        pairs=len(verdicts),
        equivalent=len(verdicts) - len(differ) - untested,
        differ=len(differ),
        untested=untested,
        unexplained=sum(not all(p["explained"] for p in ps if p["verdict"] == "differ") for ps in differ),
        findings=sorted({f for p in bad for f in p["findings"]}),
    )


def lines(doc: dict[str, Any]) -> list[str]:
    """One line per norm: "layer_norm: 14 implementations, 91 pairs: 70 equivalent, 21 differ, all
    explained by 2 findings"."""
    eq = doc.get("equivalence") or {}
    out = []
    for norm, e in eq.get("norms", {}).items():
        if e["implementations"] < 2:
            out.append(f"{norm}: {e['implementations']} implementation, nothing to compare it with")
            continue
        n_pairs = f"{e['pairs']} pair{'s' * (e['pairs'] != 1)}"
        line = f"{norm}: {e['implementations']} implementations, {n_pairs}: {e['equivalent']} equivalent"
        if e["differ"]:
            n = len(e["findings"])
            line += f", {e['differ']} differ"
            if not e["unexplained"]:
                line += f", all explained by {n} finding{'s' * (n != 1)}"
            else:
                line += f", {e['unexplained']} not explained by a registered finding"
        if e.get("untested"):
            line += f" ({e['untested']} not comparable: one side does not take the other's deviating case)"
        out.append(line)
    return out


# --- exact differences on the deviating cases ------------------------------------------------------------


def refine(doc: dict[str, Any], *, budget_s: float = 120.0) -> None:
    """Measure each unconfirmed difference of ``doc["equivalence"]`` exactly on its case (see the
    module docstring), in place, within ``budget_s`` seconds; then the summaries again."""
    eq = doc.get("equivalence")
    if not eq:
        return
    from normcheck.adapters.base import Unsupported

    t0 = time.perf_counter()
    impls = _implementations(doc)
    cache: dict[tuple, Any] = {}  # (impl id, quantity, case) -> its values: a deviating case meets every other side
    for entry in eq["norms"].values():
        for d in entry["dtypes"].values():
            for p in d["pairs"]:
                for name, q in p["quantities"].items():
                    if q.get("confirmed") or time.perf_counter() - t0 > budget_s:
                        continue
                    try:
                        _measure(q, name, impls.get(p["a"]), impls.get(p["b"]), cache)
                    except Unsupported as e:  # this side does not take that case: not comparable there
                        q.update(verdict="untested", confirmed=True, note=f"not comparable: {e}".splitlines()[0][:200])
                    except Exception as e:  # the replay must never turn a finished audit into a crash
                        q["note"] = f"not replayed: {type(e).__name__}: {e}".splitlines()[0][:200]
                _settle(p)
        _summarize(entry)
    eq["replay_seconds"] = round(time.perf_counter() - t0, 2)


def _implementations(doc: dict[str, Any]) -> dict[str, Any]:
    """The native implementations the document's pairs name, by id (frameworks in the registry's
    order: torch before tensorflow)."""
    from normcheck import adapters

    wanted = {
        p[k]
        for e in doc["equivalence"]["norms"].values()
        for d in e["dtypes"].values()
        for p in d["pairs"]
        if p["verdict"] == "differ"
        for k in ("a", "b")
    }
    frameworks = {r["framework"] for r in doc.get("records", []) if r.get("impl") in wanted}
    out = {}
    for fw in adapters.FRAMEWORKS:
        if fw in frameworks and adapters.get(fw).available():
            out.update({i.id: i for i in adapters.get(fw).implementations() if i.id in wanted})
    return out


def _measure(q: dict[str, Any], quantity: str, ia, ib, cache: dict) -> None:
    """Both implementations on the deviating case: the exact difference and the values."""
    import numpy as np

    from normcheck.case import Case
    from normcheck.comparison import difference

    cx = q.get("counterexample")
    if cx is None or ia is None or ib is None:
        q["note"] = "not replayed: " + (
            "no counterexample" if cx is None else "an implementation is not installed here"
        )
        return
    case = training_step(Case.from_json(cx)) if quantity == "running buffers" else Case.from_json(cx)
    key = repr(cx)
    got = []
    for impl in (ia, ib):
        k = (impl.id, quantity, key)
        if k not in cache:
            try:
                cache[k] = _values(quantity, impl, case)
            except Exception as e:
                cache[k] = e
        if isinstance(cache[k], Exception) and not isinstance(cache[k], Raised):
            raise cache[k]
        got.append(cache[k])
    raised = [(side, g) for side, g in zip("ab", got, strict=True) if isinstance(g, Raised)]
    if raised:  # an implementation raising where the other returns is a difference; both raising is none
        what = "; ".join(f"{side} raises {g}" for side, g in raised)
        verdict = "untested" if len(raised) == 2 else "differ"
        q.update(verdict=verdict, confirmed=True, note=what + ("" if len(raised) == 2 else ", the other returns"))
        if verdict == "differ":  # a registered raising finding of that side on this case explains it
            impl = ia if raised[0][0] == "a" else ib
            prop = next(p for p, name in QUANTITIES.items() if name == quantity)
            f = _findings.match_impl(impl, prop, case.dtype, case, verdict="error")
            if f is not None:
                q["findings"] = list(dict.fromkeys([*q.get("findings", []), f.id]))
                q["explained"] = True
            elif raised[0][0] not in q.get("deviating", ()):  # a side whose records pass raises:
                q["explained"] = False  # met by the replay, not by its own draws, and no finding registered for it
        return
    worst = None
    with np.errstate(all="ignore"):
        for part in got[0][0]:
            a, b = got[0][0][part], got[1][0][part]
            ref, s, dt = got[0][1][part]
            c = difference(a, b, s, s, dt)
            if worst is None or _obs(c) > _obs(worst[1]):
                worst = (part, c, a, b, ref, s, dt)
    part, c, a, b, ref, s, dt = worst
    from normcheck.error_model import compare

    q.update(
        verdict="equivalent" if c.ok else "differ",
        confirmed=True,
        observed=_num(_obs(c)),
        mismatch=c.mismatch or None,
        part=part,
        a_vs_reference=_num(_obs(compare(a, ref, s, dt))),
        b_vs_reference=_num(_obs(compare(b, ref, s, dt))),
    )
    if np.size(a) <= SMALL:
        q.update(a_values=_list(a), b_values=_list(b), reference=_list(ref))
    if c.ok:
        q["alike"] = "both deviate alike on this case"


def _obs(c) -> float:
    return math.inf if c.mismatch else float(c.observed)


def _list(v) -> list:
    import numpy as np

    return [_num(x) for x in np.asarray(v, np.float64).ravel().tolist()]


class Raised(Exception):
    """The implementation itself raised on the case (its message; an Unsupported case is not this)."""


def _call(fn, *args):
    from normcheck.adapters.base import Unsupported

    try:
        return fn(*args)
    except Unsupported:
        raise
    except Exception as e:
        raise Raised(f"{type(e).__name__}: {e}".splitlines()[0][:160]) from e


def training_step(case):
    """The case ``running_stats_steps`` starts from: its buffers and momentum, or the frameworks'
    initial buffers (zeros, ones; float32 for 16-bit inputs) and momentum 0.1, in training."""
    import numpy as np

    from normcheck import dtypes

    args = {**case.args, case.spec.batch_stats_flag: True}
    if "momentum" not in args:
        args["momentum"] = 0.1
    if case.running_mean is not None and case.running_var is not None:
        return case.with_(args=args)
    c = case.x.shape[1]
    bdt = np.float32 if dtypes.is_16bit(case.dtype) else dtypes.np_dtype(case.dtype)
    return case.with_(args=args, running_mean=np.zeros(c, bdt), running_var=np.ones(c, bdt))


def _values(quantity: str, impl, case):
    """({part: value}, {part: (reference, scale, dtype)}) of ``quantity`` for ``impl`` on ``case``;
    :class:`Raised` where the implementation raises."""
    import numpy as np

    from normcheck import error_model, expected

    if quantity == "gradients":
        from normcheck import autodiff
        from normcheck.properties.gradients import cotangent, grad_scales, reference_grads

        dy = cotangent(case)
        g = _call(autodiff.vjp, impl, case, dy)
        ref = reference_grads(case.norm, case, dy)
        s = grad_scales(case, dy)
        keys = [k for k in ref if k in g]
        return {f"d{k}": np.asarray(g[k]) for k in keys}, {f"d{k}": (ref[k], s[k], case.dtype) for k in keys}
    out = _call(case.call, impl)
    ref, s = expected.of(case)
    if quantity == "output":
        return {"output": out.y}, {"output": (ref.y, s, case.dtype)}
    sm, sv = error_model.running_scales_of(case, ref.running_mean, ref.running_var)
    bdt = np.asarray(case.running_mean).dtype.name
    return (
        {"running_mean": out.running_mean, "running_var": out.running_var},
        {"running_mean": (ref.running_mean, sm, bdt), "running_var": (ref.running_var, sv, bdt)},
    )
