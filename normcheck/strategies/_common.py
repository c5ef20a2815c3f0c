"""Validation and the constants every strategy module shares."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from normcheck import spec as _spec

REGIMES = ("normal", "offset", "tiny", "huge", "constant", "outliers")


#: What the audit draws for native implementations: :data:`REGIMES` and inputs to the dtype's limit.
#: (``normcheck check`` draws :data:`REGIMES`: a user's float32 kernel that sums squares unscaled fails
#: on "extreme" inputs, as every framework's does, and its diagnosis would be that alone.)
AUDIT_REGIMES = (*REGIMES, "extreme", "near_constant")


ALL_REGIMES = AUDIT_REGIMES


#: ``Case.variant`` is drawn from ``range(VARIANTS)``, read in mixed radix over an implementation's axes.
VARIANTS = 1 << 16


#: The frameworks' default eps values (the adapters' default_eps, each once), drawn first by eps_values;
#: in this fixed order, which is part of what a seed draws (a test keeps the values equal to the adapters').
FRAMEWORK_EPS = (1e-5, 1e-3, 1e-6)


SEEDS = st.integers(0, 2**32 - 1)


OUTLIER = 1e3


def get_spec(norm) -> _spec.Spec:
    if isinstance(norm, _spec.Spec):
        return norm
    try:
        return _spec.get(norm)
    except _spec.SpecError as e:
        raise InvalidArgument(str(e)) from None


def check_int(name, value, lo=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if lo is not None and value < lo:
        raise InvalidArgument(f"{name}={value} must be >= {lo}")


def check_names(name, values, known):
    if isinstance(values, str):
        values = (values,)
    values = tuple(values)
    if not values:
        raise InvalidArgument(f"{name} must not be empty")
    bad = [v for v in values if v not in known]
    if bad:
        raise InvalidArgument(f"{name}: unknown {bad}; known: {', '.join(known)}")
    return values
