"""Run profiles (one place): how many examples a check draws, how they are drawn, which dtypes an
audit runs; and :class:`Run`, the one run configuration a front door builds and passes down.

Importing this module imports nothing heavy (the CLI reads the names for its choices); Hypothesis
is imported when settings are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PROFILES", "Profile", "Run", "register_profiles"]


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
