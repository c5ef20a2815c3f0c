"""The pytest-benchmark suite runs only when asked for (`pytest tests/bench --benchmark-only`):
the normal test run skips it, with the reason shown."""

from __future__ import annotations

import importlib.util

import pytest

HINT = "pip install 'normcheck[bench]'"


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("pytest_benchmark") is None:
        reason = f"pytest-benchmark is not installed ({HINT})"
    elif config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False):
        return
    else:
        reason = "benchmarks run with `pytest tests/bench --benchmark-only` (or --benchmark-enable)"
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):  # the pytest-benchmark suite, not tests of bench
            item.add_marker(pytest.mark.skip(reason=reason))
