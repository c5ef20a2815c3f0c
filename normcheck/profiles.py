"""Run profiles (one place): how many examples a check draws, how they are drawn, which dtypes an
audit runs; and :class:`Run`, the one run configuration a front door builds and passes down.

Importing this module imports nothing heavy (the CLI reads the names for its choices); Hypothesis
is imported when settings are built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["PROFILES", "Profile", "Run", "no_local_constants", "register_profiles", "run_seeded"]


@dataclass(frozen=True)
class Profile:
    name: str
    settings: dict[str, Any]  # keyword arguments of hypothesis.settings
    dtypes: tuple[str, ...]  # the dtypes an audit (and a check) runs by default


#: The profiles by name. Select one for the test suite with ``pytest --hypothesis-profile=ci``.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("dev", {"max_examples": 10, "deadline": None}, ("float32",)),
        Profile("quick", {"max_examples": 10, "derandomize": True, "deadline": None, "database": None}, ("float32",)),
        Profile(
            "ci",
            {"max_examples": 15, "derandomize": True, "deadline": None, "print_blob": True, "database": None},
            ("float32", "bfloat16"),
        ),
        Profile("default", {"max_examples": 25, "deadline": None}, ("float32", "float16", "bfloat16")),
        Profile("thorough", {"max_examples": 500, "deadline": None}, ("float64", "float32", "float16", "bfloat16")),
    )
}


def register_profiles(load: str | None = None) -> tuple[str, ...]:
    """Register every profile with Hypothesis; load ``load`` if given. Returns the names."""
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    for p in PROFILES.values():
        settings.register_profile(p.name, **p.settings)
    if load is not None:
        if load not in PROFILES:
            raise InvalidArgument(f"unknown profile {load!r}; known: {', '.join(PROFILES)}")
        settings.load_profile(load)
    return tuple(PROFILES)


@dataclass(frozen=True)
class Run:
    """One run's configuration: the profile (one of :data:`PROFILES`, or any other Hypothesis
    profile registered by its name; None: the one loaded now, e.g. by ``pytest
    --hypothesis-profile``), the seed (None: Hypothesis's own randomness; a derandomized
    profile still draws the same examples) and an optional examples override."""

    profile: str | None = "default"
    seed: int | None = 0
    max_examples: int | None = None
    all_configs: bool = False  # every drawn case in every configuration of a native (the product)

    def __post_init__(self):
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be at least 1, got {self.max_examples}")

    @property
    def dtypes(self) -> tuple[str, ...]:
        return PROFILES[self.profile].dtypes if self.profile in PROFILES else ("float32",)

    def settings(self):
        """The Hypothesis settings of a check: the profile's, without a database, deadline or
        health checks (a norm implementation may be slow; the draws are what they are)."""
        import hypothesis
        from hypothesis import HealthCheck

        register_profiles()
        kw: dict[str, Any] = {
            "database": None,
            "suppress_health_check": list(HealthCheck),
            "deadline": None,
            "print_blob": False,
        }
        if self.max_examples:
            kw["max_examples"] = self.max_examples
        base = hypothesis.settings.get_profile(self.profile) if self.profile else hypothesis.settings.default
        return hypothesis.settings(base, **kw)


@contextmanager
def no_local_constants() -> Iterator[None]:
    """Draw without Hypothesis's constants from local source. Hypothesis mixes literals of every
    loaded module outside site-packages into its examples (about 1 draw in 20), so a seeded draw
    would depend on which normcheck modules happen to be imported, on their source text (any edit
    to normcheck would change every audit's examples) and on whether normcheck is installed
    editable or from a wheel. Inside this context a seed draws the same examples wherever it runs;
    Hypothesis's own global constants (0, ±inf, float limits, ...) are still drawn."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # a Hypothesis without this mechanism
        yield
        return
    get = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if get is None or cache is None or not hasattr(providers, "Constants"):
        yield
        return
    empty = providers.Constants()
    cache.cache.clear()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = get
        cache.cache.clear()


def run_seeded(test: Callable[[], None], seed: int) -> None:
    """Run the Hypothesis test ``test`` (a ``@given`` function of no arguments) from ``seed``, its
    draws independent of the modules loaded (:func:`no_local_constants`): every generation normcheck
    does outside the audit's driver (the diagnosis' fresh cases, compare's cases, the gradient
    sweeps) goes through here, so a seed gives the same cases in a worker, in the user's process
    beside their own modules, and from a wheel."""
    import hypothesis

    with no_local_constants():
        hypothesis.seed(seed)(test)()
