"""Preparing a module target (``t``, a :class:`~normcheck.target.Target`): the layer built once, its
attributes found, the settings its constructor does not take pinned."""

from __future__ import annotations

import dataclasses

from normcheck.target.canonical import canon, resolved
from normcheck.target.constructor import ROLE_ORDER, is_number
from normcheck.target.errors import ConstructionError, TargetError, TargetHung, first_line
from normcheck.target.layer import PARAM_ATTRS, get, inspect_layer
from normcheck.target.probes import sample_rank


def _construct(t, c, shape):
    """The sample layer; a size argument given as an int that the constructor refuses is retried as
    a one-element list (``hidden_size[-1]``), and kept so when that builds."""
    ctor = t.ctor
    try:
        return t.guard.call(t.construct, c, "float32", shape)
    except ConstructionError as first:
        sized = ctor.mode == "signature" and t.spec.shape_arg == "normalized_shape" and "features" in ctor.mapped_roles
        if not sized or ctor.features_seq:
            raise
        ctor.features_seq = True
        try:
            built = t.guard.call(t.construct, c, "float32", shape)
        except Exception:
            ctor.features_seq = False
            raise first from first.__cause__
        t.notes.append(f"{ctor.name}'s size argument is a sequence (an int raised {str(first).split(' raised ')[-1]})")
        return built


def prepare_module(t) -> None:
    """Build the layer once (a constructor that cannot be called is a TargetError naming the call),
    find its parameters, buffers and settings, and pin what the constructor does not take."""
    s, ctor = t.spec, t.ctor
    case = t.probe_case(rank=sample_rank(t), buffers=s.has_running_stats)
    a = resolved(s, (case.x,), case.kwargs())
    c = canon(s, a, case.x.shape)
    try:
        layer, desc = _construct(t, c, case.x.shape)
    except TargetHung:
        raise TargetError(f"constructing {ctor.sketch()} did not return within {t.guard.timeout:g} s") from None
    except ConstructionError as e:
        raise TargetError(f"cannot construct the layer: {e} (map its arguments with --init or --arg)") from e.__cause__
    except TargetError:
        raise
    except Exception as e:
        raise TargetError(f"cannot construct {ctor.sketch()}: {first_line(e)}") from e
    info = t.layer = inspect_layer(layer, desc)
    cons = t.constraints
    if not cons.get("no_affine"):
        w, b = info.params.get("weight"), info.params.get("bias")
        if w is None and b is None:
            raise TargetError(
                f"{desc} has no weight or bias (looked for {', '.join(PARAM_ATTRS['weight'])}); "
                "if it has no parameters, check it with --no-affine"
            )
        if w is None:
            raise TargetError(f"{desc} has a bias but no weight (looked for {', '.join(PARAM_ATTRS['weight'])})")
        if s.has_bias and b is None and not cons.get("no_bias"):
            cons["no_bias"] = True  # by design (T5-, Cohere-style): a bias-free norm
            t.notes.append(
                f"{ctor.name} has a weight and no bias (looked for {', '.join(PARAM_ATTRS['bias'])}): "
                "checked as a bias-free norm"
            )
    if s.has_running_stats:
        if cons.get("no_track") or len(info.buffers) < 2:
            t.running_stats = False
            if not cons.get("no_track"):
                t.notes.append(f"{ctor.name} keeps no running_mean/running_var: checked with batch statistics only")
    if t.running_stats and s.has_running_stats:
        t.notes.append("16-bit cases with running buffers: parameters float32 like the buffers (mixed precision)")
    mapped = ctor.mapped_roles
    user = set(ctor.canon_pins)
    pinned = cons.setdefault("pinned", {})
    for role, key in (("eps", "eps"), ("momentum", "momentum"), ("groups", "num_groups")):
        if role not in ROLE_ORDER.get(s.name, ()) or role in mapped or key in user:
            continue
        if role == "momentum" and not t.running_stats:
            continue
        attr = info.settings.get(role)
        if attr is None:
            if role == "groups":
                raise TargetError(
                    f"cannot tell the number of groups of {desc}: no parameter or attribute names it; "
                    "give it with --arg num_groups=G"
                )
            t.unknown.add(role)
            t.notes.append(f"{ctor.name} takes no {role} and keeps none in an attribute: its {role} is unknown")
            continue
        v = info.values[role]
        pinned[key] = int(v) if role == "groups" else (None if v is None else float(v))
        if role != "groups":
            t.set_attrs[role] = attr
        t.notes.append(f"{ctor.name} takes no {role}: its own, {attr}={v!r}, is used")
    d = ctor.eps_default()
    attr = info.settings.get("eps")
    if d is None and "eps" in mapped and attr and ctor.mode == "signature":
        try:  # a None default the layer resolves to a float of its own
            v = get(t.guard.call(t.construct, dataclasses.replace(c, eps=None), "float32", case.x.shape)[0], attr)
        except Exception:
            v = None
        d = float(v) if is_number(v) else None
    t.eps_default = d
