"""Hypothesis settings profiles for the suite: select with --hypothesis-profile (dev, quick, ci,
default, thorough); the default for a plain `pytest` run is `dev`."""

from __future__ import annotations

import hypothesis

from normcheck import profiles

profiles.register_profiles()
hypothesis.settings.load_profile("dev")
