"""The answer across dtypes: "CONFORMS in float32; DEVIATES in float16, bfloat16: <diagnosis>", one
cause named for every dtype it explains (:func:`combine`), dtypes that read the same grouped with
their counts summed (:func:`answer`)."""

from __future__ import annotations

import re
from dataclasses import replace

from normcheck.diagnose.evaluate import matches
from normcheck.diagnose.known import Variant, catalogue, compose
from normcheck.diagnose.search import CONSISTENT, Diagnosis, describe, supported

__all__ = ["answer", "combine"]


_COUNT = re.compile(r"(\d+)/(\d+) failing cases")


def _group_text(texts: list[str]) -> str:
    """One text for dtypes whose diagnoses read the same up to their counts: the counts summed."""
    if len(texts) == 1:
        return texts[0]
    found = [[(int(a), int(b)) for a, b in _COUNT.findall(t)] for t in texts]
    sums = [(sum(f[i][0] for f in found), sum(f[i][1] for f in found)) for i in range(len(found[0]))]
    it = iter(sums)
    return _COUNT.sub(lambda m: "{}/{} failing cases".format(*next(it)), texts[0])


def _by_name(norm: str, dtype: str, name: str) -> Variant | None:
    cat = {v.name: v for v in catalogue(norm, dtype)}
    parts = [cat.get(p) for p in name.split("+")]
    if any(p is None for p in parts):
        return None
    return parts[0] if len(parts) == 1 else compose(norm, parts)


def _explaining(d: Diagnosis, dt: str, name: str) -> Variant | None:
    """The variant ``name`` where it explains every failing case of ``d`` (``dt``'s), else None."""
    v = _by_name(d.norm, dt, name)
    return v if v is not None and all(matches(c, got, v) for c, got in d.pairs) else None


def _named(d: Diagnosis, dt: str, name: str, v: Variant, note: str, names: list[str], **changes) -> Diagnosis:
    """``d`` answered by ``name`` (the variant ``v``), ``note`` after its text, ``names`` its matches."""
    n = d.failing
    desc = describe(v, d.pairs, dt)
    return replace(
        d,
        matches=names,
        text=f"matches {desc} on {n}/{n} failing cases ({note})",
        descriptions={**d.descriptions, name: desc},
        counts={**d.counts, name: n},
        **changes,
    )


def _alternatives(dt: str, d: Diagnosis, names: list[str]) -> str:
    """ "in bfloat16 equally consistent with: A; B; C; 2 more" """
    note = f"in {dt} equally consistent with: " + "; ".join(d.descriptions[k] for k in names[:3])
    return note + (f"; {len(names) - 3} more" if len(names) > 3 else "")


def _borrow(out: dict[str, Diagnosis], notes: dict[str, str], dt: str, d: Diagnosis, per: dict[str, Diagnosis]) -> None:
    """A dtype whose failing cases no variant explains where it is defined (each a 0/0 of the
    variant: NaN either way) takes another dtype's answer when that variant explains them too: the
    other dtype holds the evidence (e.g. bfloat16 failing only on one-element groups, where an
    unbiased variance is 0/0, and float32 showing the unbiased variance on real sets)."""
    for other_dt, o in per.items():
        v = None if other_dt == dt or not o.best else _explaining(d, dt, o.best)
        if v is not None:
            notes[dt] = (
                f"in {dt} every failing case is one where it is undefined (0/0, or a variance cancelled away); {other_dt} shows it"
            )
            out[dt] = _named(d, dt, o.best, v, notes[dt], [o.best], closest=None, observations=[])
            return


def _adopt(out: dict[str, Diagnosis], notes: dict[str, str], dt: str, d: Diagnosis, other: str) -> bool:
    """Name ``other`` (another dtype's answer) for ``dt`` where it explains every one of ``dt``'s
    failing cases too, ``dt``'s own matches in a note: one implementation, one cause (bfloat16's
    coarse cases are often consistent with a simpler variant, e.g. eps ignored on one-element groups
    where an unbiased variance is 0/0 as well)."""
    v = _explaining(d, dt, other)
    if v is None:
        return False
    notes[dt] = _alternatives(dt, d, d.matches)
    out[dt] = _named(d, dt, other, v, notes[dt], [other, *d.matches])
    return True


def _unify(per: dict[str, Diagnosis]) -> tuple[dict[str, Diagnosis], dict[str, str]]:
    """One cause across dtypes, not two answers: where another dtype's match also explains this
    dtype's failing cases — it is among this dtype's equally consistent matches, or it is a richer
    composition containing this dtype's match — name it first here too. Returns the diagnoses and,
    for the dtypes changed, a note on what else explains them in that dtype."""
    out, notes = dict(per), {}
    bests = list(dict.fromkeys(d.best for d in per.values() if d.best))
    for dt, d in per.items():
        if not d.best and d.pairs:
            _borrow(out, notes, dt, d, per)
            continue
        if not d.best or not d.pairs or d.symptoms:
            continue
        mine = set(d.best.split("+"))
        for other in bests:
            if other == d.best:
                break  # this dtype's own answer comes first among the others': keep it
            if other in d.matches:
                n = d.failing
                rest = [k for k in d.matches if k != other]
                notes[dt] = _alternatives(dt, d, rest)
                text = f"matches {d.descriptions[other]} on {n}/{n} failing cases"
                out[dt] = replace(d, matches=[other, *rest], text=f"{text} ({notes[dt]})")
                break
            if not mine < set(other.split("+")):
                if _adopt(out, notes, dt, d, other):
                    break
                continue
            v = _explaining(d, dt, other)
            if v is None or not supported(v, d.pairs):
                continue
            alone = " and ".join(m.short or m.description for m in (_by_name(d.norm, dt, d.best) or v).members)
            notes[dt] = f"in {dt} {alone} alone explains them too"
            out[dt] = _named(d, dt, other, v, notes[dt], [other, *d.matches])
            break
    return out, notes


def combine(per_dtype: dict[str, Diagnosis], status: dict[str, str], texts: dict[str, str]) -> Diagnosis | None:
    """The answer across dtypes: "CONFORMS in float32; DEVIATES in float16, bfloat16: <diagnosis>".

    ``status`` maps every dtype checked to "conforms", "deviates", "raises" or "untested" (in the
    order checked); ``texts`` maps each deviating dtype to its diagnosis (or a plain reason);
    ``per_dtype`` holds the :class:`Diagnosis` of the dtypes that have one. Returns the first
    deviating dtype's Diagnosis with this answer as its text and ``by_dtype`` filled in (None when
    no dtype has a Diagnosis). With a single dtype tested the answer is that dtype's text alone.
    Dtypes that read the same (up to their counts) are grouped, their counts summed.
    """
    if not per_dtype:
        return None
    per_dtype, notes = _unify(per_dtype)
    texts = {**texts, **{dt: d.text for dt, d in per_dtype.items()}}
    for dt, note in notes.items():  # the grouping reads the text without the note
        texts[dt] = texts[dt].removesuffix(f" ({note})")
    if sum(st != "untested" for st in status.values()) > 1:  # alternatives become a dtype's note too
        for dt in per_dtype:
            head, sep, tail = texts[dt].partition(CONSISTENT)
            if sep and dt not in notes:
                texts[dt], notes[dt] = head, f"in {dt} equally consistent with: {tail}"
    primary = next(per_dtype[dt] for dt in status if dt in per_dtype)
    return replace(primary, text=answer(status, texts, notes), by_dtype=dict(per_dtype))


def answer(status: dict[str, str], texts: dict[str, str], notes: dict[str, str] | None = None) -> str:
    """See :func:`combine`: the segments by dtype, dtypes with the same diagnosis grouped (``notes``
    per dtype go in parentheses after the group's text)."""
    notes = notes or {}
    tested = [dt for dt, st in status.items() if st != "untested"]
    bad = [dt for dt in tested if status[dt] in ("deviates", "raises")]
    if len(tested) == 1 and bad:
        dt = bad[0]
        return texts.get(dt, "") + (f" ({notes[dt]})" if dt in notes else "")
    segments: list[tuple[str, list[str]]] = []  # (verdict, dtypes)
    keyed: dict[tuple[str, str], int] = {}
    for dt in status:
        st = status[dt]
        if st == "untested":
            continue
        if st == "conforms":
            key = ("CONFORMS", "")
        else:
            key = ("DEVIATES" if st == "deviates" else "RAISES", _COUNT.sub("#", texts.get(dt, "")))
        if key in keyed:
            segments[keyed[key]][1].append(dt)
        else:
            keyed[key] = len(segments)
            segments.append((key[0], [dt]))
    out = []
    for verdict, dts in segments:
        head = f"{verdict} in {', '.join(dts)}"
        if verdict == "CONFORMS":
            out.append(head)
            continue
        group_notes = [notes[dt] for dt in dts if dt in notes]
        text = _group_text([texts.get(dt, "") for dt in dts])
        out.append(f"{head}: {text}" + (f" ({'; '.join(group_notes)})" if group_notes else ""))
    untested = [dt for dt, st in status.items() if st == "untested"]
    if untested and out:
        out.append(f"not tested in {', '.join(untested)}")
    return "; ".join(out)
