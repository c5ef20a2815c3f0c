"""The property suite as parametrized tests: one test per framework/norm/form × property × dtype
and per identity pair, driven by the active Hypothesis profile (--hypothesis-profile). A check
passes when every example passes or deviates only as a registered finding."""

from __future__ import annotations

import hypothesis
import pytest

from normcheck import adapters, audit
from normcheck.properties import PROPERTIES
from normcheck.testing import impl_params

DTYPES = ("float32", "bfloat16")


def _profile() -> str:
    return getattr(hypothesis.settings, "_current_profile", None) or "dev"


def _assert_ok(rec):
    assert rec.verdict in ("pass", "skip", "finding"), (
        f"{rec.impl} {rec.dtype} {rec.property}: {rec.verdict}: {rec.message}\n"
        f"counterexample: {rec.counterexample}\nrepro:\n{rec.repro}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("impl", impl_params(extended=False))  # extended: tests/test_adapters.py, thorough audit
def test_property(impl, prop, dtype):
    if dtype != "float32" and prop not in ("agreement", "special_values"):
        pytest.skip("16-bit dtypes run agreement and special values here; the audit runs every property")
    _assert_ok(audit.run_check(impl, prop, dtype, profile=_profile()))


def _identity_params():
    out = []
    for name in adapters.FRAMEWORKS:
        a = adapters.get(name)
        if not a.available():
            out.append(
                pytest.param(
                    None,
                    None,
                    None,
                    id=f"{name}/not-installed",
                    marks=pytest.mark.skip(reason=f"{name} is not installed"),
                )
            )
            continue
        for ident, lhs, rhs in audit.identity_pairs([i for i in a.implementations() if not i.extended]):
            out.append(pytest.param(ident, lhs, rhs, id=f"{lhs.id}-{ident.name}"))
    return out


@pytest.mark.parametrize(("ident", "lhs", "rhs"), _identity_params())
def test_identity(ident, lhs, rhs):
    _assert_ok(audit.run_identity(ident, lhs, rhs, "float32", profile=_profile()))


def test_every_spec_identity_is_checked_on_some_framework():
    from normcheck import spec

    checked = {i.name for i, _, _ in audit.identity_pairs(adapters.implementations())}
    declared = {i.name for n in spec.names() for i in spec.get(n).identities}
    assert declared <= checked, declared - checked
