"""A seed draws the same cases wherever it runs (normcheck.profiles.run_seeded): Hypothesis mixes
literals of every loaded module outside site-packages into its draws, so without the guard a
user's own module (or a normcheck module imported late, or an editable install) changed the cases
a seed gives the diagnosis and compare."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import normcheck
from normcheck import profiles, strategies

LITERALS = [-0.5, -3.25, -7.75, -11.5, 2, 3, 5, 6, 0.123456789, 98765.4321, 1e-7, 4097]


def _draw(run) -> list:
    out: list = []

    @settings(
        max_examples=150, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(strategies.cases("layer_norm", dtypes=("float32",)))
    def collect(c):
        out.append(repr(c.to_json()))

    run(collect)
    return out


def _load(tmp_path: pathlib.Path, name: str, shift: float) -> None:
    """A module with float and integer literals (new to the process: ``shift`` apart from another
    test's), loaded from outside site-packages (local code)."""
    path = tmp_path / f"{name}.py"
    path.write_text("".join(f"C{i} = {v + shift!r}\n" for i, v in enumerate(LITERALS)))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import sys

    sys.modules[name] = module


def test_a_seed_draws_the_same_cases_whatever_local_modules_are_loaded(tmp_path):
    before = _draw(lambda t: profiles.run_seeded(t, 5))
    _load(tmp_path, "users_own_layers", 0.25)
    after = _draw(lambda t: profiles.run_seeded(t, 5))
    assert before == after


def test_without_the_guard_the_local_module_changes_the_draws(tmp_path):
    """The control: plain ``hypothesis.seed`` draws differ once a module with literals is loaded (so
    the test above could fail); skipped where Hypothesis has no local constants."""
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants"):
        pytest.skip(f"Hypothesis {hypothesis.__version__} draws no local constants")
    plain = lambda t: hypothesis.seed(5)(t)()  # noqa: E731
    before = _draw(plain)
    _load(tmp_path, "another_users_layers", 0.375)
    assert _draw(plain) != before


def test_every_seeded_generation_goes_through_the_guard():
    """No module of normcheck seeds a Hypothesis run itself but profiles (run_seeded) and the audit's
    driver (inside no_local_constants)."""
    root = pathlib.Path(normcheck.__file__).parent
    seeding = {
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if re.search(r"hypothesis\.seed\(", p.read_text())
    }
    assert seeding == {"profiles.py", "audit/driver.py"}
    assert "with no_local_constants():" in (root / "audit" / "driver.py").read_text()
