"""A module target's constructor call, mapped from the class's own signature (:class:`Constructor`):
canonical arguments by name and alias (:data:`ALIASES`), the torch.nn positional order
(:data:`ROLE_ORDER`), a torch.nn-like call (:data:`CONSTRUCTORS`), an ``--init`` template, ``--arg`` pins."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from normcheck import spec as _spec
from normcheck.target.errors import TargetError, unsupported
from normcheck.target.templates import PLACEHOLDERS, ast_unparse, evaluate_template, parse_template

#: The ``torch.nn`` constructor conventions: how a module class taking only ``*args`` is called.
CONSTRUCTORS = {
    "batch_norm": "cls(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)",
    "instance_norm": "cls(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)",
    "group_norm": "cls(num_groups, num_channels, eps=eps, affine=affine)",
    "layer_norm": "cls(normalized_shape, eps=eps, elementwise_affine=affine)",
    "rms_norm": "cls(normalized_shape, eps=eps, elementwise_affine=affine)",
}


#: Constructor parameter names real code uses for each canonical argument ("role"), most common first.
ALIASES: dict[str, tuple[str, ...]] = {
    "features": (
        "num_features", "num_channels", "normalized_shape", "hidden_size", "dim", "d_model", "channels",
        "features", "n_embd", "size", "ndim", "embed_dim", "hidden_dim", "n_channels", "in_channels",
        "n_features", "n_state", "width", "c", "C", "input_size", "input_dim", "shape", "c_num", "channel_num",
    ),
    "groups": ("num_groups", "groups", "G", "n_groups", "num_group", "group_num", "ngroups", "g"),
    "eps": (
        "eps", "epsilon", "variance_epsilon", "layer_norm_eps", "norm_eps", "rms_norm_eps", "layer_norm_epsilon",
    ),
    "momentum": ("momentum", "bn_momentum"),
    "track": ("track_running_stats", "track_stats"),
    "affine": (
        "affine", "elementwise_affine", "learnable", "use_affine", "elementwise_scale_and_shift", "channelwise_affine",
    ),
    "weight": ("use_weight", "use_scale", "with_scale", "scale", "weight", "create_scale"),  # bool flags only
    "bias": ("use_bias", "with_bias", "bias", "center", "add_bias", "create_offset"),  # bool flags only
}  # fmt: skip

#: The torch.nn positional order of the roles, for parameters whose names do not say.
ROLE_ORDER: dict[str, tuple[str, ...]] = {
    "batch_norm": ("features", "eps", "momentum", "affine", "track"),
    "instance_norm": ("features", "eps", "momentum", "affine", "track"),
    "group_norm": ("groups", "features", "eps", "affine"),
    "layer_norm": ("features", "eps", "affine"),
    "rms_norm": ("features", "eps", "affine"),
}


EMPTY = inspect.Parameter.empty
OMIT = object()  # "pass nothing: the layer's own default"


def is_number(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def annotation_text(p: inspect.Parameter) -> str:
    a = p.annotation
    if a is EMPTY:
        return ""
    return a if isinstance(a, str) else a.__name__ if isinstance(a, type) else str(a)


def _is_flag(p: inspect.Parameter, *, bare_ok: bool = False) -> bool:
    if isinstance(p.default, bool):
        return True
    ann = annotation_text(p)
    if ann in ("bool", "builtins.bool"):
        return True
    return bare_ok and p.default is EMPTY and not ann


def role_of(p: inspect.Parameter, roles: tuple[str, ...]) -> str | None:
    """The canonical argument a constructor parameter names, judged by its name and default."""
    for role in roles:
        names = ALIASES[role]
        if p.name not in names and not (len(p.name) > 1 and p.name.lower() in {n.lower() for n in names if len(n) > 1}):
            continue
        d = p.default
        if role in ("features", "groups"):
            sized = (is_number(d) and d > 0) or (role == "features" and isinstance(d, tuple | list))
            if _is_flag(p) or not (d is EMPTY or d is None or sized):
                continue
        elif role == "eps":
            if isinstance(d, bool) or not (d is EMPTY or d is None or is_number(d)):
                continue
        elif role in ("affine", "track"):
            if not (_is_flag(p) or d is EMPTY):
                continue
        elif role in ("weight", "bias"):
            if not _is_flag(p, bare_ok=role == "bias"):
                continue
        return role
    return None


@dataclass(frozen=True)
class Canon:
    """The canonical constructor arguments of one call: what a torch.nn layer would be built with."""

    C: int | None
    G: int | None
    normalized_shape: tuple[int, ...] | None
    eps: Any  # a float, or None: the layer's default
    momentum: Any  # a float, or None: the cumulative average
    weight: bool
    bias: bool
    track: bool

    @property
    def affine(self) -> bool:
        return self.weight or self.bias


class Constructor:
    """How a module target is constructed for a :class:`Canon`, mapped from its own signature.

    Parameters are mapped to the canonical arguments by name (:data:`ALIASES`), then in the
    torch.nn positional order (:data:`ROLE_ORDER`) for required parameters whose names do not say;
    a class taking only ``*args`` is called like the torch.nn layer. ``init`` (``--init``) replaces
    the mapping with a template; ``pins`` (``--arg``) fix constructor values. Raises
    :class:`TargetError` for a required parameter nothing maps.
    """

    def __init__(
        self, cls, norm: str, *, init: str | None = None, pins: dict | None = None, axes=None, conventions=None
    ):
        self.cls, self.spec = cls, _spec.get(norm)
        # an ecosystem's constructor facts (its adapter's): parameter -> role ("decay": 1 - momentum;
        # "axes": the reduction axes), and parameter -> value it is always given
        conv = conventions or {}
        self.conv_roles: dict[str, str] = dict(conv.get("roles") or {})
        self.conv_fixed: dict[str, Any] = dict(conv.get("fixed") or {})
        self.name = getattr(cls, "__name__", type(cls).__name__)
        s = self.spec
        roles = ROLE_ORDER.get(norm)
        self.mode = "signature" if roles else "reference"
        if roles and not s.has_running_stats:
            roles = tuple(r for r in roles if r not in ("momentum", "track"))
        self.roles_known = (*(roles or ()), "weight", "bias")
        self.assign: dict[str, str] = {}  # parameter name -> role
        self.fixed: dict[str, Any] = {}  # parameter name -> user-given value
        self.canon_pins: dict[str, Any] = {}  # canonical argument -> value every case must have
        self.flags: dict[str, bool] = {}  # no_bias / no_affine / no_track implied by pins
        self.ns_style = "list"  # how normalized_shape is passed: "int" (one axis) or "list"
        self.features_int = False  # the features parameter takes one size (one normalized axis)
        self.features_seq = False  # ... given as a one-element list (an int failed: ``hidden_size[-1]``)
        self.template = None
        self.params: list[inspect.Parameter] = []
        self.var_kw = self.var_pos = False
        self.base: str | None = None  # the base class whose signature a (*args, **kwargs) constructor follows
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            for p in sig.parameters.values():
                if p.kind is p.VAR_POSITIONAL:
                    self.var_pos = True
                elif p.kind is p.VAR_KEYWORD:
                    self.var_kw = True
                else:
                    self.params.append(p)
        if not self.params and (self.var_kw or self.var_pos):
            self._follow_bases(cls)
        if self.mode == "reference":
            return
        if init:
            self._map_template(init)
        elif not self.params and (self.var_pos or sig is None):
            self.mode = "like_nn"  # (*args, **kwargs): called like the torch.nn layer
        else:
            self._map_signature(roles)
        for name, v in self.conv_fixed.items():
            if name in self.by_name:
                self.fixed[name] = v
        self._apply_pins(pins or {})
        if axes is not None and "data_format" in self.by_name and "data_format" not in self.fixed:
            red = tuple(sorted(axes))
            if red == (1,):
                self.fixed["data_format"] = "channels_first"  # ConvNeXt's LayerNorm switch
        feat = [n for n, r in self.assign.items() if r == "features"]
        if s.shape_arg == "normalized_shape" and feat:
            p = self.by_name.get(feat[0])
            if feat[0] != "normalized_shape" and self.mode != "template":
                self.features_int = True
            elif p is not None:
                ann = annotation_text(p).lower()
                if ann and not any(k in ann for k in ("list", "tuple", "sequence", "size", "shape", "iterable")):
                    self.features_int = True  # annotated int
        if self.template is not None and "C" in self.template[3] and s.shape_arg == "normalized_shape":
            self.features_int = True
        if self.features_int:
            self.ns_style = "int"
            self.canon_pins.setdefault("normalized_shape", (None,))
        if self.mode == "signature":
            self._check_required()

    def _follow_bases(self, cls) -> None:
        """A ``(*args, **kwargs)`` constructor passes them on: the first base class whose own
        signature names parameters is the one that receives them (an ``nn.GroupNorm`` subclass)."""
        for base in getattr(cls, "__mro__", ()):
            if base is object or "__init__" not in vars(base):
                continue
            try:
                sig = inspect.signature(vars(base)["__init__"])
            except (TypeError, ValueError):
                continue
            params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)][1:]
            if params:
                self.params = params
                self.base = base.__name__ if base is not cls else None  # cls: a metaclass hid its signature
                self.var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
                return
            # a base that takes (*args, **kwargs) too passes them further up

    @property
    def by_name(self) -> dict[str, inspect.Parameter]:
        return {p.name: p for p in self.params}

    @property
    def mapped_roles(self) -> set[str]:
        if self.mode == "like_nn":
            return set(self.roles_known)
        if self.template is not None:
            return {PLACEHOLDERS[k] for k in self.template[3]} | set(self.assign.values())
        return {ROLE_OF_CONVENTION.get(r, r) for r in self.assign.values()}

    def _map_signature(self, roles) -> None:
        for p in self.params:
            if p.name in self.conv_roles:  # the ecosystem's own meaning (two may share one role)
                self.assign[p.name] = self.conv_roles[p.name]
                continue
            role = role_of(p, self.roles_known)
            if role and role not in self.assign.values() and p.name not in self.conv_fixed:
                self.assign[p.name] = role
        free = [r for r in roles if r not in self.mapped_roles]
        for p in self.params:
            if p.name in self.assign or p.default is not EMPTY or p.kind is p.KEYWORD_ONLY or not free:
                continue
            if p.name in self.conv_fixed or not anonymous(p):
                continue  # a name that says something else: an error naming it, never another role's value
            self.assign[p.name] = free.pop(0)  # positional order where names do not say

    def _map_template(self, text: str) -> None:
        import ast

        tree, call, code, used = parse_template(text)
        self.template = (tree, call, code, used)
        self.mode = "template"
        for kw in call.keywords:  # a literal keyword that names a canonical argument pins it
            try:
                value = ast.literal_eval(kw.value)
            except ValueError:
                continue
            p = self.by_name.get(kw.arg) or inspect.Parameter(kw.arg, inspect.Parameter.KEYWORD_ONLY)
            role = role_of(p, self.roles_known)
            if role:
                self._pin_role(role, value, kw.arg)

    def _apply_pins(self, pins: dict) -> None:
        for name, value in pins.items():
            p = self.by_name.get(name)
            if p is not None:  # a constructor parameter: passed as given
                self.fixed[name] = value
                role = self.assign.get(name) or role_of(p, self.roles_known)
            else:  # a canonical argument (or an alias of one): every case has it, the mapping passes it
                q = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
                role = canonical_role(name) or role_of(q, self.roles_known)
                if role is None:
                    if not (self.var_kw or self.mode == "like_nn"):
                        known = ", ".join(q.name for q in self.params) or "none"
                        raise TargetError(
                            f"--arg {name}: {self.name} has no parameter {name!r} (its parameters: {known})"
                        )
                    self.fixed[name] = value  # through **kwargs
            if role is not None:
                self._pin_role(role, value, name)

    def _pin_role(self, role: str, value, name: str) -> None:
        s = self.spec
        if role == "features":
            if s.shape_arg == "normalized_shape":
                ns = (value,) if is_number(value) else tuple(value)
                self.canon_pins["normalized_shape"] = tuple(int(v) for v in ns)
            else:
                self.canon_pins["C"] = int(value)
        elif role == "groups":
            self.canon_pins["num_groups"] = int(value)
        elif role == "eps":
            self.canon_pins["eps"] = None if value is None else float(value)
        elif role == "momentum":
            self.canon_pins["momentum"] = None if value is None else float(value)
        elif role == "decay":
            self.canon_pins["momentum"] = 1.0 - float(value)
        elif role in ("affine", "weight") and value is False:
            self.flags["no_affine"] = True
        elif role == "bias" and value is False:
            self.flags["no_bias"] = True
        elif role == "track" and value is False:
            self.flags["no_track"] = True

    def _check_required(self) -> None:
        for p in self.params:
            if p.default is EMPTY and p.name not in self.assign and p.name not in self.fixed:
                sketch = self.sketch(missing=p.name)
                raise TargetError(
                    f"cannot construct {sketch}: normcheck cannot tell what {p.name!r} is; "
                    f"give it with --arg {p.name}=VALUE or the whole call with --init"
                )

    # --- one call ---------------------------------------------------------------------------------
    def value(self, role: str, c: Canon, p: inspect.Parameter | None, dtype) -> Any:
        s = self.spec
        if role == "features":
            if s.shape_arg == "normalized_shape":
                ns = c.normalized_shape or ()
                if self.features_int or (p is not None and p.name != "normalized_shape"):
                    if len(ns) != 1:
                        raise unsupported(f"{self.name} takes one normalized size, the case has {list(ns)}")
                    return [int(ns[0])] if self.features_seq else int(ns[0])
                return int(ns[0]) if self.ns_style == "int" and len(ns) == 1 else list(ns)
            return c.C
        if role == "groups":
            return c.G
        if role == "eps":
            if c.eps is None:
                if p is not None and p.default is not EMPTY:
                    return OMIT
                return s.resolve_eps(None, dtype)
            return float(c.eps)
        if role == "momentum":
            return c.momentum
        if role == "decay":  # an exponential average's decay rate: 1 - torch's momentum
            if c.momentum is None:
                if c.track:
                    raise unsupported(f"{self.name} keeps an exponential average; momentum=None has none")
                return 0.9  # no running statistics in this case: any
            return 1.0 - float(c.momentum)
        if role == "axes":  # the reduction axes of a layer/RMS norm, counted from the end
            return tuple(range(-len(c.normalized_shape or (None,)), 0))
        if role == "track":
            return c.track
        if role == "affine":
            return c.affine
        if role == "weight":
            return c.affine
        if role == "bias":
            return c.bias
        raise AssertionError(role)

    def call(self, c: Canon, dtype) -> tuple[list, dict]:
        """(args, kwargs) of the constructor call for ``c``."""
        if self.mode == "like_nn":
            return self._like_nn_call(c, dtype)
        if self.mode == "template":
            return self._template_call(c, dtype)
        args: list = []
        kwargs: dict = {}
        for p in self.params:
            if p.name in self.fixed:
                v = self.fixed[p.name]
            elif p.name in self.assign:
                v = self.value(self.assign[p.name], c, p, dtype)
            else:
                v = OMIT
            if p.kind is p.POSITIONAL_ONLY:
                if v is OMIT:
                    if p.default is EMPTY:
                        raise TargetError(f"cannot construct {self.sketch(missing=p.name)}: no value for {p.name!r}")
                    v = p.default
                args.append(v)
            elif v is not OMIT:
                kwargs[p.name] = v
        for k, v in self.fixed.items():  # through **kwargs
            if k not in self.by_name:
                kwargs[k] = v
        return args, kwargs

    def _like_nn_call(self, c: Canon, dtype) -> tuple[list, dict]:
        s = self.spec
        eps = s.resolve_eps(None, dtype) if c.eps is None and s.name != "rms_norm" else c.eps
        n = s.name
        if n in ("batch_norm", "instance_norm"):
            kw = {"eps": eps, "momentum": c.momentum, "affine": c.affine, "track_running_stats": c.track}
            return [c.C], {**kw, **self.fixed}
        if n == "group_norm":
            return [c.G, c.C], {"eps": eps, "affine": c.affine, **self.fixed}
        ns = c.normalized_shape or ()
        return [list(ns)], {"eps": eps, "elementwise_affine": c.affine, **self.fixed}

    def _template_call(self, c: Canon, dtype) -> tuple[list, dict]:
        _, _, code, used = self.template
        ns = tuple(c.normalized_shape or ())
        feat = c.C if self.spec.shape_arg != "normalized_shape" else (int(ns[0]) if len(ns) == 1 else None)
        if "C" in used and feat is None:
            raise unsupported(f"{{C}} is one size, the case normalizes over {list(ns)}")
        eps = c.eps
        if eps is None:
            eps = self.template_eps_default()
            eps = self.spec.resolve_eps(None, dtype) if eps is None else eps
        values = {
            "C": feat,
            "normalized_shape": ns,
            "G": c.G,
            "eps": eps,
            "momentum": c.momentum,
            "affine": c.affine,
            "bias": c.bias,
            "track": c.track,
        }
        return evaluate_template(code, used, values)

    def template_eps_default(self):
        """The default of the parameter ``--init`` passes {eps} to (a float), if the signature says."""
        if self.template is None:
            return None
        for kw in self.template[1].keywords:
            if getattr(kw.value, "id", None) == "__nc_eps":
                p = self.by_name.get(kw.arg)
                if p is not None and is_number(p.default):
                    return float(p.default)
        return None

    def eps_default(self):
        """The float the layer uses for eps when given none (its signature's default), or None."""
        if self.mode == "template":
            return self.template_eps_default()
        for n, r in self.assign.items():
            if r == "eps" and n not in self.fixed:
                d = self.by_name[n].default
                return float(d) if is_number(d) else None
        return None

    def describe(self, args, kwargs) -> str:
        parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def sketch(self, *, missing: str | None = None) -> str:
        """The mapped call with role names for values (``RMSNorm(hidden_size=C, eps=eps)``)."""
        if self.mode == "like_nn":
            return self.name + CONSTRUCTORS.get(self.spec.name, "cls(...)")[3:]
        if self.mode == "template":
            return f"{self.name}({ast_unparse(self.template[1])})"
        words = {"features": "C", "groups": "G", "track": "track_running_stats", "decay": "1-momentum"}
        if self.spec.shape_arg == "normalized_shape" and not self.features_int:
            words["features"] = "normalized_shape"
        parts = []
        for p in self.params:
            if p.name in self.fixed:
                v = short(self.fixed[p.name])
            elif p.name in self.assign:
                v = words.get(self.assign[p.name], self.assign[p.name])
            elif p.name == missing:
                v = "?"
            else:
                continue
            parts.append(v if p.kind is p.POSITIONAL_ONLY else f"{p.name}={v}")
        return f"{self.name}({', '.join(parts)})"


#: Roles of an ecosystem's conventions and the canonical argument each one carries.
ROLE_OF_CONVENTION = {"decay": "momentum", "axes": "features"}


def anonymous(p: inspect.Parameter) -> bool:
    """A parameter whose name says nothing (positional-only, or one or two letters): the torch.nn
    positional order may give it a role."""
    return p.kind is p.POSITIONAL_ONLY or len(p.name) <= 2


def short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def canonical_role(name: str) -> str | None:
    """The role of a canonical argument name (``--arg num_groups=4`` for any target)."""
    return {
        "num_groups": "groups",
        "eps": "eps",
        "momentum": "momentum",
        "normalized_shape": "features",
        "num_features": "features",
        "num_channels": "features",
        "C": "features",
        "affine": "affine",
        "bias": "bias",
        "track_running_stats": "track",
    }.get(name)
