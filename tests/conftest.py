"""Hypothesis settings profiles for the suite: select with --hypothesis-profile (dev, quick, ci,
default, thorough); the default for a plain `pytest` run is `dev`.

Under pytest-xdist, a worker collects its garbage at the end of the session, before it reports
itself finished (see :func:`pytest_sessionfinish`).

``NORMCHECK_REQUIRE`` (comma-separated module names; CI sets it to what ``.[dev]`` installs) turns
``pytest.importorskip`` of those modules into a plain import: a framework CI requires that does
not import (a broken install) fails its tests instead of turning them into green skips."""

from __future__ import annotations

import gc
import importlib
import os

import hypothesis
import pytest

from normcheck import profiles

profiles.register_profiles()
hypothesis.settings.load_profile("dev")

#: Modules the run requires (``NORMCHECK_REQUIRE``): never skipped for being absent.
REQUIRED = frozenset(m.strip() for m in os.environ.get("NORMCHECK_REQUIRE", "").split(",") if m.strip())
_importorskip = pytest.importorskip


def _import_or_skip(modname: str, minversion: str | None = None, reason: str | None = None, **kw):
    """``pytest.importorskip``, except that a module of :data:`REQUIRED` (or a submodule of one) is
    imported outright: its ImportError fails the test."""
    if modname.split(".")[0] in REQUIRED:
        importlib.import_module(modname)
    return _importorskip(modname, minversion, reason, **kw)


pytest.importorskip = _import_or_skip


def pytest_sessionfinish(session):
    """In an xdist worker: collect the garbage now, then freeze what survives (all of it live).

    Once a worker reports itself finished, execnet gives it 5 s to return before it sends the
    worker a SIGINT; pytest's own end-of-run collections (two full gc.collect calls) take about 2 s
    each on a heap holding torch, JAX and TensorFlow, so on a loaded machine the SIGINT landed in
    one of them, as a KeyboardInterrupt in Hypothesis's gc callback, printed as an unraisable
    exception after a green run. Here (this hook runs before xdist reports the worker finished)
    the one full collection happens in no hurry, and any unraisable exception it raises is still
    reported by pytest; the later collections only walk what is allocated after the freeze."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        gc.collect()
        gc.freeze()
