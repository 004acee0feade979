"""The three dualcap resources as pydantic models: the one source of truth.

The CRDs in crds/ are generated from these models (`dualcap crds`).
"""

from dualcap.api.budget import PowerBudget, PowerBudgetSpec, PowerBudgetStatus
from dualcap.api.common import API_VERSION, GROUP, VERSION, Condition, LabelSelector
from dualcap.api.lease import ComputeLease, ComputeLeaseSpec, ComputeLeaseStatus
from dualcap.api.site import Site, SiteSpec, SiteStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ComputeLease",
    "ComputeLeaseSpec",
    "ComputeLeaseStatus",
    "Condition",
    "LabelSelector",
    "PowerBudget",
    "PowerBudgetSpec",
    "PowerBudgetStatus",
    "Site",
    "SiteSpec",
    "SiteStatus",
]
