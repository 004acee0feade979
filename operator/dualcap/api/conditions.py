"""Condition types and reasons, beside the types (kstatus: Ready, Reconciling, Stalled)."""

from __future__ import annotations

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
WITHIN_ENVELOPE = "WithinEnvelope"
ADMITTED = "Admitted"

# Reasons
SETTLED = "Settled"
CONVERGING = "Converging"
WAITING_FOR_CONFIRMATION = "WaitingForConfirmation"
OUTSIDE_ENVELOPE = "OutsideEnvelope"
INSIDE_ENVELOPE = "InsideEnvelope"
INVALID_SPEC = "InvalidSpec"
NO_POWER_BUDGET = "NoPowerBudget"
CONFLICTING_BUDGETS = "ConflictingBudgets"
SITE_NOT_FOUND = "SiteNotFound"
SUSPENDED = "Suspended"
APPLY_FAILED = "ApplyFailed"
TEMPLATE_REJECTED = "TemplateRejected"
ACTIVE = "Active"
