"""The names the OpenADR adapter gives what it writes: its budget's label and annotations,
the paths it writes to, the source it reports."""

from __future__ import annotations

from dualcap.api.names import API_VERSION

ADAPTER_LABEL = "dualcap.io/adapter"
ADAPTER = "openadr"
EVENTS_ANNOTATION = "openadr.dualcap.io/events"
VTN_ANNOTATION = "openadr.dualcap.io/vtn"
BUDGETS = f"/apis/{API_VERSION}/powerbudgets"
SITES = f"/apis/{API_VERSION}/sites"
SOURCE = "openadr"
MAX_LEAD_SECONDS = 86_400  # the budget's own bound on leadTimeSeconds
