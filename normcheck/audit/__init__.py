"""The audit: every property on every installed (framework, norm, form, dtype), under Hypothesis.

:func:`run_check` drives one property on one implementation and dtype (:mod:`.driver`);
:func:`run_audit` runs the whole matrix (:mod:`.schedule`) and returns the JSON-able result
document (:mod:`.records`, schema ``normcheck.audit/1``, docs/schema.md).
"""

from __future__ import annotations

from normcheck.audit.driver import run_check, run_identity
from normcheck.audit.merge import merge
from normcheck.audit.records import SCHEMA, Record, document, environment, exit_status
from normcheck.audit.schedule import Interrupted, identity_pairs, plan, run_audit
from normcheck.profiles import Run

__all__ = [
    "SCHEMA",
    "Interrupted",
    "Record",
    "Run",
    "document",
    "environment",
    "exit_status",
    "identity_pairs",
    "merge",
    "plan",
    "run_audit",
    "run_check",
    "run_identity",
]
