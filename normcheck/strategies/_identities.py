"""Cases for a spec identity's left-hand side."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import dtypes as _dt
from normcheck import spec as _spec
from normcheck.case import Case
from normcheck.strategies._cases import build_case, eps_strategy, min_set_size
from normcheck.strategies._common import ALL_REGIMES, REGIMES, check_names, get_spec
from normcheck.strategies._shapes import grow, layout_for, shapes


def find_identity(identity) -> _spec.Identity:
    if isinstance(identity, _spec.Identity):
        return identity
    for s in _spec.load().values():
        for i in s.identities:
            if i.name == identity:
                return i
    raise InvalidArgument(f"unknown identity {identity!r}")


def resolve_symbol(value, shape):
    """An identity argument against the input shape: "C", "rest", "last", "none" or a literal."""
    if not isinstance(value, str):
        return value
    table = {
        "C": shape[1] if len(shape) > 1 else None,
        "rest": tuple(shape[1:]),
        "last": tuple(shape[-1:]),
        "none": None,
    }
    if value not in table:
        raise InvalidArgument(f"unknown identity symbol {value!r}")
    return table[value]


def uses_batch_stats(spec, args) -> bool:
    flag = spec.batch_stats_flag
    return True if flag is None else bool(args.get(flag, spec.defaults.get(flag, True)))


def identity_cases(
    identity,
    *,
    dtypes=("float32",),
    regimes=REGIMES,
    affine: bool | None = None,
    eps=None,
    max_rank: int = 5,
    max_side: int = 6,
    max_numel: int = 4096,
) -> st.SearchStrategy[Case]:
    """lhs cases for a spec identity (an :class:`~normcheck.spec.Identity` or its name).

    The arguments named in ``identity.args`` are fixed, resolved against the drawn shape ("C" ->
    shape[1], "rest" -> shape[1:], "last" -> shape[-1:]); the rank is at least ``identity.min_rank``.
    The lhs uses batch statistics (its flag at the spec default unless the identity sets it) and no
    running buffers unless it needs them. Identities map reduction sets onto reduction sets, so the
    lhs sets (and a mixture's component sets, which a one-hot identity maps onto the rhs's) are made
    large enough for whichever side uses batch statistics. Identities with
    ``affine = "none"`` get no weight or bias; ``input = "center_last"`` subtracts the mean over the
    last axis (in float64, twice, then cast) so that the input has zero mean there up to rounding.
    """
    ident = find_identity(identity)
    spec = get_spec(ident.lhs)
    rhs = get_spec(ident.rhs["norm"])
    dtypes = check_names("dtypes", dtypes, _dt.FLOAT_DTYPES)
    regimes = check_names("regimes", regimes, ALL_REGIMES)
    eps_s = eps_strategy(spec, eps)
    if ident.rhs.get("affine", "same") == "none":
        if affine:
            raise InvalidArgument(f"identity {ident.name} holds without affine parameters only")
        affine = False
    use_batch = uses_batch_stats(spec, ident.args)
    need = max(min_set_size(spec, use_batch), min_set_size(rhs, uses_batch_stats(rhs, ident.rhs.get("args", {}))))
    min_rank = max(2, spec.min_rank, rhs.min_rank, ident.min_rank)
    shp = shapes(spec, min_rank=min_rank, max_rank=max_rank, max_side=max_side, max_numel=max_numel)
    if ident.input not in ("any", "center_last"):
        raise InvalidArgument(f"identity {ident.name}: unknown input transformation {ident.input!r}")

    @st.composite
    def _case(draw):
        layout = draw(shp.flatmap(lambda shape: layout_for(spec, shape)))
        fixed = {k: resolve_symbol(v, layout.shape) for k, v in ident.args.items()}
        layout = layout._replace(**{k: fixed[k] for k in ("normalized_shape", "num_groups") if k in fixed})
        grown = grow(spec, layout, need, max_side, max_numel, every_component=True)
        assume(grown is not None)
        fixed = {k: resolve_symbol(v, grown.shape) for k, v in ident.args.items()}  # re-resolve on the grown shape
        grown = grown._replace(**{k: fixed[k] for k in ("normalized_shape", "num_groups") if k in fixed})
        return draw(
            build_case(
                spec,
                grown,
                dtypes,
                regimes,
                mode=(not use_batch, use_batch),
                need=need,
                affine=affine,
                eps=eps_s,
                fixed_args={k: v for k, v in fixed.items() if k not in ("normalized_shape", "num_groups")},
                max_side=max_side,
                max_numel=max_numel,
                center_last=ident.input == "center_last",
            )
        )

    return _case()
