"""Which framework a target is written in (:func:`infer_framework`), importing none."""

from __future__ import annotations

import dataclasses

from normcheck import adapters
from normcheck.target.calling import Target
from normcheck.target.errors import BadOutput, TargetHung, first_line
from normcheck.target.frameworks import array_name, loaded_frameworks, named_frameworks
from normcheck.target.guard import DEFAULT_TIMEOUT, Guard
from normcheck.target.loading import describe


def probe_cases(norm: str) -> list:
    """Small float32 cases, one per rank (the first a target accepts decides its framework)."""
    from normcheck.case import fixed_cases

    out, seen = [], set()
    for c in fixed_cases(norm, "float32"):
        if c.x.ndim not in seen:
            seen.add(c.x.ndim)
            out.append(c)
    return out


def infer_framework(
    obj, norm: str, *, form: str = "function", guard: Guard | None = None, target: Target | None = None
) -> tuple[str, str]:
    """(framework, how it was decided) for a target, importing no framework.

    A module class of a framework's own (a torch.nn.Module subclass) is that framework's. Otherwise
    the frameworks already imported (those the target's module names first; NumPy first if it is the
    only one named, else last) are tried on small float32 cases (one per rank, until one returns);
    the first whose own array type comes back wins. When no call succeeds, the framework the
    target's module names (or NumPy) is assumed, so the check can still report what the target does.
    ``target``: the prepared Target to try (constructor mapping, constraints), else a plain one.
    """
    found = adapters.module_kind(obj) if form == "module" else None
    if found is not None:
        return found[0].name, f"a {found[0].module_base(found[1])} subclass"
    guard = guard or (target.guard if target is not None else Guard(DEFAULT_TIMEOUT))
    names = named_frameworks(obj)
    named = [fw for fw in names if fw != "numpy"]
    loaded = [fw for fw in loaded_frameworks() if fw != "numpy"]
    # the module's own frameworks first; a module that names only NumPy is NumPy code, even when
    # another framework happens to be imported in this process (its arrays may pass through NumPy code)
    first = named or (["numpy"] if "numpy" in names else [])
    order = list(dict.fromkeys([*first, *loaded, "numpy"]))
    if target is not None:
        cases = [c for c in (target.probe_case(rank=r) for r in target.ranks()) if c is not None]
    else:
        cases = probe_cases(norm)
    failures = []
    for fw in order:
        if target is not None:
            t = dataclasses.replace(target, framework=fw, notes=[], _last=None, _pending=None)
        else:
            t = Target(obj, norm, fw, form, describe(obj), guard=guard)
        why = None
        for case in cases:
            try:
                t(case.x.copy(), **case.kwargs())  # a success: the target returned its framework's array type
            except TargetHung:
                break
            except BadOutput as e:
                why = f"{fw}: {e}"
                break
            except Exception as e:
                why = why or f"{fw}: raised {first_line(e)}"
                continue
            return fw, f"it returns a {array_name(fw)} for {array_name(fw)} inputs"
        if guard.hung:
            break
        if why:
            failures.append(why)
    fallback = named[0] if named else "numpy"
    why = "; ".join(failures[:3]) or "the probe call did not return"
    return fallback, f"assumed: no probe call succeeded ({why})"
