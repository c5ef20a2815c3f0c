"""Helpers for pytest suites, normcheck's own and users' (pytest is imported only when used)."""

from __future__ import annotations

__all__ = ["assert_conforms", "impl_params"]


def impl_params(norms=None, frameworks=None, **filters):
    """``pytest.param`` per native implementation (id ``framework/norm/form``), optionally
    filtered by norm, framework or any :class:`normcheck.adapters.Impl` field; a framework that is
    not installed becomes one visibly skipped param, never a silent absence."""
    import pytest

    from normcheck import adapters

    params = []
    for name in frameworks or adapters.FRAMEWORKS:
        a = adapters.get(name)
        if not a.available():
            reason = f"{name} is not installed (pip install 'normcheck[{name}]')"
            params.append(pytest.param(None, id=f"{name}/not-installed", marks=pytest.mark.skip(reason=reason)))
            continue
        for impl in a.implementations():
            if norms is not None and impl.norm not in norms:
                continue
            if any(getattr(impl, k) != v for k, v in filters.items()):
                continue
            params.append(pytest.param(impl, id=impl.id))
    return params


def assert_conforms(fn, norm, framework=None, **settings):
    """Check ``fn``, your implementation of ``norm``, with :func:`normcheck.check` (profile "ci"
    unless given) and raise ``AssertionError(report.summary())`` unless it conforms; returns the report."""
    __tracebackhide__ = True
    from normcheck.checker import assert_conforms as _assert_conforms

    return _assert_conforms(fn, norm, framework, **settings)
