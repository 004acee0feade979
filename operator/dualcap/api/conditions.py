"""Condition types and reasons, beside the types (kstatus: Ready, Reconciling, Stalled).

Reasons are what programs read (``kubectl wait``, Argo CD, alerts): each is a member of an
enum, never a word found in a message. ``HoldReason`` is why the planner changes nothing
about a site; the Site's conditions are decided from it.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    WITHIN_ENVELOPE = "WithinEnvelope"
    ADMITTED = "Admitted"
    PRICE_SOURCE = "PriceSource"  # a budget's energyPrice is the site's (one source per site)
    METERED = "Metered"  # the site meter read fresh (spec.meter)
    METER_AGREES = "MeterAgrees"  # the meter and the sum of the parts within tolerance
    GPU_POWER_MEASURED = "GpuPowerMeasured"  # every GPU node read fresh (powerQuery)
    PRICES_FRESH = "PricesFresh"  # every live price feed fresh (spec.prices)
    MEASURED = "Measured"  # every block's draw measured by a fresh report (MinerAgent)


class Reason(StrEnum):
    """Condition reasons of Sites, PowerBudgets and ComputeLeases."""

    # Sites and PowerBudgets
    SETTLED = "Settled"
    CONVERGING = "Converging"
    WAITING_FOR_CONFIRMATION = "WaitingForConfirmation"
    OUTSIDE_ENVELOPE = "OutsideEnvelope"
    INSIDE_ENVELOPE = "InsideEnvelope"
    INVALID_SPEC = "InvalidSpec"
    NO_POWER_BUDGET = "NoPowerBudget"
    SITE_NOT_FOUND = "SiteNotFound"
    SUSPENDED = "Suspended"
    APPLY_FAILED = "ApplyFailed"
    ACTIVE = "Active"
    PRICE_USED = "PriceUsed"
    NO_PRICE = "NoPrice"
    SECOND_PRICE_SOURCE = "SecondPriceSource"
    METER_FRESH = "MeterFresh"
    AGREES = "Agrees"
    DISAGREEING = "Disagreeing"  # beyond the tolerance, not yet for long enough
    DISAGREES = "Disagrees"
    MEASUREMENTS_FRESH = "MeasurementsFresh"
    STALE_MEASUREMENTS = "StaleMeasurements"
    # ComputeLeases: why a lease is in its phase
    TEMPLATE_REJECTED = "TemplateRejected"
    DELETED = "Deleted"
    ENDED = "Ended"
    NOT_STARTED = "NotStarted"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    WAITING_FOR_GPUS = "WaitingForGPUs"
    INSUFFICIENT_GPUS = "InsufficientGPUs"
    INSUFFICIENT_POWER = "InsufficientPower"
    # Kueue Workloads under dualcap's power check
    NEVER_FITS = "NeverFits"  # more GPUs than the site has, or a pod larger than any node
    NO_GPUS = "NoGPUs"  # asks no GPUs: no power to make room for
    QUOTA_NOT_RESERVED = "QuotaNotReserved"  # Kueue has not reserved quota for it yet
    FINISHED = "Finished"
    EVICTED = "Evicted"  # the check said Retry, or Kueue evicted it: its Job stops
    ENVELOPE_TOO_LOW = "EnvelopeTooLow"
    PREEMPTED_BY_PRIORITY = "PreemptedByPriority"
    HOLD = "Hold"


class HoldReason(StrEnum):
    """Why the planner holds a site: nothing is admitted, resumed or curtailed for economics."""

    SITE_INVALID = "SiteInvalid"  # the Site's spec does not validate
    SUSPENDED = "Suspended"  # spec.suspend
    NO_POWER_BUDGET = "NoPowerBudget"  # no PowerBudget names the site
    BUDGET_INVALID = "BudgetInvalid"  # its PowerBudget does not validate

    @property
    def is_configuration(self) -> bool:
        """A problem in the objects (Stalled until someone edits them), not a choice."""
        return self is not HoldReason.SUSPENDED

    @property
    def condition_reason(self) -> Reason:
        return _CONDITION_REASON[self]


_CONDITION_REASON = {
    HoldReason.SITE_INVALID: Reason.INVALID_SPEC,
    HoldReason.SUSPENDED: Reason.SUSPENDED,
    HoldReason.NO_POWER_BUDGET: Reason.NO_POWER_BUDGET,
    HoldReason.BUDGET_INVALID: Reason.INVALID_SPEC,
}
