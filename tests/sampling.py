"""Draw examples from a strategy outside a Hypothesis test (for tests that judge a list of cases)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings


def draw(strategy, n: int = 30, *, derandomize: bool = False) -> list:
    """Up to ``n`` examples of ``strategy`` (no database, no deadline, every health check off);
    ``derandomize``: the same examples on every run (for a test that needs one kind among them)."""
    out = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=derandomize,
    )
    @given(strategy)
    def collect(case):
        out.append(case)

    collect()
    return out
