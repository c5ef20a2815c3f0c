"""Helpers for pytest suites, normcheck's own and users' (pytest is imported only when used)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normcheck.checker import CheckOptions, CheckReport
    from normcheck.comparison import CompareReport

__all__ = ["assert_conforms", "assert_equivalent", "impl_params"]


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


def assert_conforms(
    fn,
    norm: str,
    framework: str | None = None,
    options: CheckOptions | None = None,
    **settings: Any,
) -> CheckReport:
    """Check ``fn``, your implementation of ``norm``, with :func:`normcheck.check` and raise
    ``AssertionError(report.summary())`` unless it conforms; returns the report.

    The parameters are :func:`normcheck.check`'s; without ``options`` the profile is "ci"
    (derandomized: the same examples on every run) instead of "default". Raises ``ValueError`` for
    a bad setting (:class:`normcheck.CheckOptions`) and :class:`normcheck.target.TargetError` for a
    target that cannot be checked at all.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's
    from normcheck.checker import CheckOptions, check

    report = check(fn, norm, framework, options or CheckOptions(profile="ci"), **settings)
    if not report.conforms:
        raise AssertionError(report.summary())
    return report


def assert_equivalent(
    a,
    b,
    norm: str,
    *,
    framework_a: str | None = None,
    framework_b: str | None = None,
    dtypes: Sequence[str] = ("float32",),
    examples: int = 40,
    seed: int = 0,
    gradients: bool = True,
    diagnose: bool = True,
    timeout: float | None = 5.0,
) -> CompareReport:
    """Compare ``a`` and ``b`` as implementations of ``norm`` with :func:`normcheck.compare` (the
    same drawn cases to both: outputs, running buffers through train -> eval, gradients) and raise
    ``AssertionError(report.summary())`` unless they are equivalent (``|a - b| <= lambda u (s_a +
    s_b)`` everywhere); returns the report. The summary names the convention slip that explains a
    difference (eps default, momentum convention, stored variance estimator) where one does."""
    __tracebackhide__ = True
    from normcheck.comparison import compare

    report = compare(
        a,
        b,
        norm,
        framework_a=framework_a,
        framework_b=framework_b,
        dtypes=tuple(dtypes),
        examples=examples,
        seed=seed,
        gradients=gradients,
        diagnose=diagnose,
        timeout=timeout,
    )
    if not report.equivalent:
        raise AssertionError(report.summary())
    return report
