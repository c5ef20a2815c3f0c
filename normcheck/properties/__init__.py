"""Properties of a norm implementation, each a plain function ``(impl, case) -> Result``.

Tests, the audit and ``normcheck check`` all call these through :data:`PROPERTIES` (every
registered property, in this order):

=========================  ==================================================================
module                     properties
=========================  ==================================================================
forward                    agreement, statistics, shift_invariance, scale_equivariance,
                           batch_independence, permutation_equivariance, contracts,
                           special_values, constant_input
state                      running_stats_steps, eval_uses_running, train_eval_convergence
gradients                  gradient_agreement, gradient_sums_to_zero, gradient_orthogonal
fold                       fold_agreement
second_order               gradient_second_order (after the others: earlier records keep their order)
forward_mode               jvp (forward-mode derivative; after second_order, for the same reason)
identities                 identity (pairwise: the spec's identities between two norms)
=========================  ==================================================================

:mod:`normcheck.properties.core` holds what they share (Result, Stop, call, verdict, register).
A new property module registers with ``@register`` and is listed in :data:`PROPERTIES` below.
"""

from __future__ import annotations

from normcheck.properties import fold, forward, forward_mode, gradients, second_order, state
from normcheck.properties.core import Result, Stop, call, ordered, register, verdict
from normcheck.properties.forward import (
    agreement,
    batch_independence,
    constant_input,
    contracts,
    permutation_equivariance,
    scale_equivariance,
    shift_invariance,
    special_values,
    statistics,
)
from normcheck.properties.identities import identity, run_identity_sides

#: Every property by name, in the order the audit runs them.
PROPERTIES = ordered((forward, state, gradients, fold, second_order, forward_mode))

__all__ = [
    "PROPERTIES",
    "Result",
    "Stop",
    "agreement",
    "batch_independence",
    "call",
    "constant_input",
    "contracts",
    "fold",
    "forward_mode",
    "gradients",
    "identity",
    "permutation_equivariance",
    "register",
    "run_identity_sides",
    "scale_equivariance",
    "second_order",
    "shift_invariance",
    "special_values",
    "state",
    "statistics",
    "verdict",
]
