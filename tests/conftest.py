"""Hypothesis settings profiles for the suite (select with --hypothesis-profile)."""
