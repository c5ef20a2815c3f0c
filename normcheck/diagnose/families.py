"""The diagnosis by property family: the forward output, the running buffers, the gradients.

A target can be wrong in two families for two unrelated reasons (an InstanceNorm whose statistics
run over (C, H, W) and whose running buffers are never written). One variant rarely explains both at
once, so each family is judged on its own failing cases, with the variants that change it
(:func:`family`): the output family on the cases whose output deviates, judging outputs only; the
buffers family on the cases whose updated buffers deviate, judging buffers only. The text names a
cause per family: "output: statistics over x.shape[1:]; running buffers: never updated".
"""

from __future__ import annotations

from normcheck.diagnose.evaluate import REFERENCE, matches
from normcheck.diagnose.known import Variant

__all__ = [
    "BUFFER_DIMS",
    "FAMILIES",
    "PROBE_MOMENTA",
    "by_family",
    "discriminate",
    "family",
    "split",
    "text",
    "with_gradients",
]

#: The dimensions of :class:`~normcheck.diagnose.known.Variant` that change the running buffers only.
BUFFER_DIMS = frozenset({"stored", "momentum", "eval_update"})

#: How each family is named in a diagnosis.
FAMILIES = {"output": "output", "buffers": "running buffers", "gradients": "gradients"}


def family(v: Variant) -> str:
    """ "output", "buffers", "gradients", or "mixed" (a composition across families)."""
    dims = {m.dim for m in v.members}
    if "gradient" in dims:
        return "gradients"
    if dims <= BUFFER_DIMS:
        return "buffers"
    return "mixed" if dims & BUFFER_DIMS else "output"


def _phrase(v: Variant, fam: str) -> str:
    text = v.short or v.description
    return text.removeprefix("the running buffers ") if fam == "buffers" else text


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def split(v: Variant) -> str | None:
    """A composition's causes family by family ("output: A and B; running buffers: never updated"),
    or None when its members all change one family."""
    groups: dict[str, list[str]] = {}
    for m in v.members:
        fam = family(m)
        groups.setdefault(fam, []).append(_phrase(m, fam))
    if len(groups) < 2:
        return None
    return "; ".join(f"{FAMILIES.get(f, f)}: {_join(ph)}" for f, ph in groups.items())


def by_family(
    norm: str, cat: list[Variant], judged, search, supported, probe=None
) -> dict[str, tuple[Variant | None, int]]:
    """For each family with failing cases among ``judged``: (the variant, single or a composition
    found by ``search``, that explains every one of them judged on that family alone, or None; how
    many failing cases the family has). Empty when the failures lie in one family only. Where
    several variants explain a family's cases alike, ``probe`` (a case -> the target's outcome, or
    None) runs the target on cases that tell them apart (:func:`discriminate`)."""
    out: dict[str, tuple[Variant | None, int]] = {}
    fails = {part: [(c, got) for c, got in judged if not matches(c, got, REFERENCE, part)] for part in FAMILIES}
    fails.pop("gradients")  # the forward cases carry no gradients: that family is judged elsewhere
    if sum(bool(f) for f in fails.values()) < 2:
        return {}
    for part, pairs in fails.items():
        pool = [v for v in cat if family(v) == part]
        alike = [v for v in pool if all(matches(c, got, v, part) for c, got in pairs) and supported(v, pairs, part)]
        if len(alike) > 1 and probe is not None:
            alike = discriminate(alike, pairs, part, probe)
        found = alike[0] if alike else None
        if found is None:
            hits = search(norm, pool, pairs, part=part)
            found = next((v for v in hits if not v.loose), hits[0] if hits else None)
        out[part] = (found, len(pairs))
    return out


#: Momentum values a discriminating case takes: away from 0, 1/2 and 1, where momentum read one way
#: or the other, never updated and replaced coincide.
PROBE_MOMENTA = (0.3,)


def discriminate(variants: list[Variant], pairs, part: str, probe) -> list[Variant]:
    """Of ``variants`` (each explaining every case of ``pairs`` on ``part``), those that also explain
    the target's outcome on cases built to tell them apart: a training case's momentum moved to
    :data:`PROBE_MOMENTA` (at momentum 1 the buffers "never updated" and "momentum read the other
    way round" are the same numbers). A probe that raises, or that every variant fails, changes
    nothing."""
    import dataclasses

    for c, _ in pairs[:4]:
        if c.running_mean is None or not isinstance(c.args.get("momentum"), float):
            continue
        for m in PROBE_MOMENTA:
            moved = dataclasses.replace(c, args={**c.args, "momentum": m})
            got = probe(moved)
            if got is None:
                continue
            keep = [v for v in variants if matches(moved, got, v, part)]
            if keep:
                variants = keep
        if len(variants) == 1:
            break
    return variants


def text(norm: str, found: dict[str, tuple[Variant | None, int]]) -> str:
    """ "matches norm family by family: output: A on 12/12 failing cases; running buffers: B on 9/9 ..." """
    parts = []
    for part, (v, n) in found.items():
        name = FAMILIES[part]
        if v is None:
            parts.append(f"{name}: none of the known variants on {n} failing cases")
        else:
            parts.append(f"{name}: {_phrase(v, part)} on {n}/{n} failing cases")
    return f"matches {norm} family by family (no one variant explains every failing case): " + "; ".join(parts)


def with_gradients(d, g):
    """Diagnosis ``d`` (of the output or buffers) with the gradient family's ``g`` added: its text
    after "; gradients: ", its cause under ``families["gradients"]``."""
    from dataclasses import replace

    fams = dict(d.families) or {"output": d.best}
    fams["gradients"] = g.best
    return replace(d, text=f"{d.text}; gradients: {g.text}", families=fams)
