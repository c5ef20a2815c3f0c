"""The front of the package: :func:`wrap` (a function or module class into a :class:`Target`) and
:func:`repro_setup` (the lines that rebuild it in a repro snippet)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from normcheck import adapters
from normcheck import spec as _spec
from normcheck.target.calling import Target
from normcheck.target.constraints import validate
from normcheck.target.constructor import ALIASES, Constructor, canonical_role, is_number, role_of
from normcheck.target.errors import TargetError
from normcheck.target.frameworks import TARGET_FRAMEWORKS, adapter
from normcheck.target.guard import DEFAULT_TIMEOUT, Guard
from normcheck.target.inference import infer_framework
from normcheck.target.loading import describe, is_file_ref, load
from normcheck.target.prepare import prepare_module
from normcheck.target.probes import probe_momentum_none, probe_normalized_shape, probe_ranks

FORMS = ("function", "module")


def _pins_for_function(norm: str, pins: dict) -> dict[str, Any]:
    """``--arg`` of a function target (or a Keras/flax layer class): canonical arguments only."""
    s = _spec.get(norm)
    out: dict[str, Any] = {}
    for name, value in pins.items():
        role = canonical_role(name) or role_of(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY), tuple(ALIASES))
        key = {"groups": "num_groups", "eps": "eps", "momentum": "momentum"}.get(role or "")
        if role == "features":
            key = "normalized_shape" if s.shape_arg == "normalized_shape" else "C"
            if key == "normalized_shape":
                value = (value,) if is_number(value) else tuple(value)
        if key is None:
            raise TargetError(
                f"--arg {name}: a function target is called with the canonical arguments; only num_groups, eps, "
                "momentum, normalized_shape and the channel count can be pinned"
            )
        out[key] = value
    return out


def wrap(
    obj,
    norm: str,
    *,
    framework: str | None = None,
    form: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    label: str | None = None,
    init: str | None = None,
    args: dict[str, Any] | None = None,
    no_bias: bool = False,
    no_affine: bool = False,
    ranks=None,
    shape=None,
    axes=None,
    probe: bool = True,
    eager: bool = False,
) -> Target:
    """The target ``obj`` (a function or a module class) as a canonical NumPy callable.

    ``form`` defaults to "module" for a class and "function" otherwise; ``framework`` is inferred
    (:func:`infer_framework`) when not given. A module class is constructed as its own signature
    says (:class:`Constructor`): ``init`` is a template of the constructor's arguments
    (``"hidden_size={C}, eps={eps}"``, placeholders :data:`PLACEHOLDERS`), ``args`` pins constructor
    or canonical arguments (``{"num_groups": 4}``: the cases have them too). ``no_bias``: the layer
    has a weight but no bias; ``no_affine``: no parameters. ``ranks``/``shape`` constrain the inputs
    (a shape's None entries are free sides); without them the ranks are inferred (``probe``: a class
    name ending in 1d/2d/3d, else one small call per rank). ``axes``: an axis-set variant. A JAX
    function runs under ``jax.jit`` (as its users run it), op by op with ``eager``.

    Raises :class:`TargetError` for what cannot be checked: not callable, an unknown norm, framework
    or form, a framework that is not installed, a flax.nnx module class, a torch.nn.Module instance,
    a constructor that cannot be called (naming the call tried), contradictory constraints.
    """
    if isinstance(obj, str):
        label = label or obj
        obj = load(obj)
    if not callable(obj):
        raise TargetError(f"the target is not callable (it is a {type(obj).__name__})")
    if norm not in _spec.names():
        raise TargetError(f"unknown norm {norm!r}; known: {', '.join(_spec.names())}")
    if form is None:
        form = "module" if inspect.isclass(obj) else "function"
    if form not in FORMS:
        raise TargetError(f"unknown form {form!r}; choose from {', '.join(FORMS)}")
    if framework is not None and framework not in TARGET_FRAMEWORKS:
        raise TargetError(f"unknown framework {framework!r}; choose from {', '.join(TARGET_FRAMEWORKS)}")
    refused = adapters.refused(obj)  # a torch.nn.Module instance
    if refused:
        raise TargetError(refused)
    owner, kind = adapters.module_kind(obj) or (None, None)  # a module class: its framework's adapter, its kind
    of_kind = form == "module" and owner is not None
    if of_kind and kind in owner.unsupported_kinds:  # flax.nnx
        raise TargetError(owner.unsupported_kinds[kind].format(norm=norm))
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(int(a) for a in axes)
    options = {
        k: v
        for k, v in (
            ("init", init),
            ("args", dict(args or {}) or None),
            ("no_bias", no_bias),
            ("no_affine", no_affine),
            ("axes", axes),
            ("eager", eager),
        )
        if v
    }
    cons: dict[str, Any] = {}
    if ranks:
        cons["ranks"] = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if shape:
        cons["shape"] = tuple(shape)
    if no_bias:
        cons["no_bias"] = True
    if no_affine:
        cons["no_affine"] = True
    guard = Guard(timeout)
    label = label or describe(obj)
    # a Keras layer or flax.linen class built like the framework's own layer, unless it has a constructor
    # of its own (Keras-Hub style) or --init/--arg: then it is mapped from its signature or fields
    adapted_layer = of_kind and kind in owner.layer_kinds
    if adapted_layer and owner.part(owner.ecosystems[kind]).own_constructor(obj, init, args):
        adapted_layer = False
    if init and form != "module":
        raise TargetError("--init applies to a module class (not a function)")
    ctor = drv = None
    if of_kind and kind in owner.ecosystems and not adapted_layer:  # Equinox, Haiku, Sonnet, ...
        drv = owner.part(owner.ecosystems[kind])
        if framework is not None and framework != drv.FRAMEWORK:
            raise TargetError(f"a {kind} module class is {drv.FRAMEWORK} code, not {framework}")
        framework = drv.FRAMEWORK
    if form == "module" and not adapted_layer:
        conv = drv.conventions(norm) if drv is not None else None
        ctor = Constructor(obj, norm, init=init, pins=args, axes=axes, conventions=conv)
        if conv and conv.get("one_axis") and _spec.get(norm).shape_arg == "normalized_shape":
            ctor.canon_pins.setdefault("normalized_shape", (None,))
        if ctor.canon_pins:
            cons["pinned"] = dict(ctor.canon_pins)
        for flag in ("no_bias", "no_affine", "no_track"):
            if ctor.flags.get(flag):
                cons[flag] = True
    elif args:
        cons["pinned"] = _pins_for_function(norm, args)
    if adapted_layer:
        t = _layer_target(obj, norm, owner, kind, framework, label, guard)
    else:
        t = Target(obj, norm, framework or "numpy", form, label, guard=guard, ctor=ctor, driver=drv, eager=eager)
        if drv is not None:
            t.momentum_none = False  # an exponential average only
    t.constraints, t.axes, t.options = cons, axes, options
    validate(t)  # the user's own constraints first, before any call
    if ctor is not None and ctor.mode != "reference":
        prepare_module(t)
        how = {"template": "(--init)", "like_nn": "(like torch.nn)"}.get(ctor.mode, "(from its signature)")
        if ctor.base and ctor.mode == "signature":
            how = f"(from {ctor.base}'s signature, which its (*args, **kwargs) reach)"
        if drv is not None:
            t.notes.insert(0, drv.describe(ctor.sketch()) + f" {how}")
        else:
            t.notes.insert(0, f"built as {ctor.sketch()} {how}")
    if not adapted_layer:
        if framework is None:
            framework, why = infer_framework(obj, norm, form=form, guard=guard, target=t)
            t.framework = framework
            t.notes.insert(0, f"framework {framework} inferred: {why}")
        elif not adapter(framework).loaded():
            if not adapter(framework).available():
                raise TargetError(f"framework {framework} is not installed (pip install 'normcheck[{framework}]')")
    if probe and ctor is not None and ctor.mode != "reference" and not guard.hung:
        if ctor.mode == "signature":
            probe_normalized_shape(t)
        probe_ranks(t)  # a function's ranks are its own business (--rank says otherwise)
        probe_momentum_none(t)
    if not adapter(t.framework).has_vjp:  # said once, beside the per-property skips
        t.notes.append(f"{t.framework} has no autodiff: the gradient properties are not applicable")
    validate(t)
    return t


def _layer_target(obj, norm: str, owner, kind: str, framework: str | None, label: str, guard: Guard) -> Target:
    """A layer class of one of ``owner``'s :attr:`~normcheck.adapters.Adapter.layer_kinds` (a Keras
    layer or flax.linen module class), constructed and driven like the framework's own layer for
    ``norm`` by its adapter (constructor arguments, variables, momentum, stored variance, channel
    axis and train/eval translated in the adapter's one place)."""
    fw, mirrors = owner.name, owner.layer_kinds[kind]
    if framework is not None and framework != fw:
        raise TargetError(f"a {kind} layer class is {fw} code, not {framework}")
    note = f"a {kind} layer class, built and driven like {mirrors}'s {norm} layer by the {fw} adapter"
    adapted = owner.layer_function(kind, norm, obj)
    return Target(obj, norm, fw, "module", label, guard=guard, notes=[note], adapted=adapted)


def repro_setup(target: Target, ref: str | None) -> str:
    """Python lines that rebuild ``fn`` (the wrapped target) for a repro snippet."""
    head = "from normcheck.target import load, wrap"
    args = f"{target.norm!r}, framework={target.framework!r}, form={target.form!r}, timeout=None"
    args += "".join(f", {k}={v!r}" for k, v in target.options.items())
    if target.options:
        args += ", probe=False"
    if ref:
        path, sep, attr = ref.rpartition(":")
        if sep and is_file_ref(path):  # the snippet runs from any folder: the file by its absolute path
            ref = f"{Path(path).expanduser().resolve()}:{attr}"
        return f"{head}\nfn = wrap(load({ref!r}), {args})"
    mod = getattr(target.obj, "__module__", None)
    qual = getattr(target.obj, "__qualname__", "")
    if mod and mod != "__main__" and "<" not in qual and not mod.startswith("_normcheck_target_"):
        return f"{head}\nfn = wrap(load({f'{mod}:{qual}'!r}), {args})"
    return f"{head}\nfn = wrap(YOUR_TARGET, {args})  # YOUR_TARGET: the function or class you checked"
