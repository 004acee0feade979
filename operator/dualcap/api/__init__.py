"""The three dualcap resources as pydantic models: the one source of truth.

The CRDs in crds/ are generated from these models (`dualcap crds`).

The models are imported when first asked for (`from dualcap.api import Site`), not with
the package: the miner agent uses `dualcap.api.names` and `dualcap.api.marks` only and
must not pay for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dualcap.api.names import API_VERSION, GROUP, VERSION

if TYPE_CHECKING:
    from dualcap.api.budget import PowerBudget, PowerBudgetSpec, PowerBudgetStatus
    from dualcap.api.common import Condition, LabelSelector
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

_MODELS = {
    "ComputeLease": "lease",
    "ComputeLeaseSpec": "lease",
    "ComputeLeaseStatus": "lease",
    "Condition": "common",
    "LabelSelector": "common",
    "PowerBudget": "budget",
    "PowerBudgetSpec": "budget",
    "PowerBudgetStatus": "budget",
    "Site": "site",
    "SiteSpec": "site",
    "SiteStatus": "site",
}

if not TYPE_CHECKING:  # mypy reads the imports above; a __getattr__ would hide typos

    def __getattr__(name: str) -> Any:
        """A model, imported from its module on first use (PEP 562)."""
        module = _MODELS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
