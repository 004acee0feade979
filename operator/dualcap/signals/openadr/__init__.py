"""OpenADR 2.0b VEN adapter: demand-response events from an aggregator's VTN, written as
the events of a PowerBudget of the adapter's own, one per site (``openadr-<site>``).

The adapter never edits a budget it did not create, and GitOps never edits the adapter's:
one writer per object. Each OpenADR event becomes one budget event per signal interval,
with the limit from the ``LOAD_DISPATCH`` setpoint (converted to kW from the signal's unit
and SI scale) or from the ``SIMPLE`` level through the configured table. Modifications
replace what an event delivered, cancellations remove it. The adapter opts in when every
limit of the event is at or above the site's non-curtailable floor and opts out, with the
reason, otherwise: an opted-out event is not delivered, the site cannot honour it anyway.

What was delivered is also written on the budget (annotation ``openadr.dualcap.io/events``)
so that a restarted adapter, or one whose VTN is unreachable, keeps every event it
delivered until the event's end: a silent VTN is not a cancellation.

The mapping (``decide``) is pure; ``Adapter`` is the I/O around it.
"""

from __future__ import annotations

from dualcap.signals.openadr.budget import BudgetWriteError as BudgetWriteError
from dualcap.signals.openadr.budget import budget_body as budget_body
from dualcap.signals.openadr.budget import budget_name as budget_name
from dualcap.signals.openadr.budget import decisions_from_budget as decisions_from_budget
from dualcap.signals.openadr.budget import write_budget as write_budget
from dualcap.signals.openadr.config import Config as Config
from dualcap.signals.openadr.config import ConfigError as ConfigError
from dualcap.signals.openadr.config import SigningConfig as SigningConfig
from dualcap.signals.openadr.config import SiteConfig as SiteConfig
from dualcap.signals.openadr.config import TlsConfig as TlsConfig
from dualcap.signals.openadr.config import load_config as load_config
from dualcap.signals.openadr.mapping import SI_SCALE as SI_SCALE
from dualcap.signals.openadr.mapping import Decision as Decision
from dualcap.signals.openadr.mapping import Opt as Opt
from dualcap.signals.openadr.mapping import decide as decide
from dualcap.signals.openadr.mapping import event_name as event_name
from dualcap.signals.openadr.mapping import floor_from_site as floor_from_site
from dualcap.signals.openadr.mapping import lead_time_seconds as lead_time_seconds
from dualcap.signals.openadr.mapping import overall_opt as overall_opt
from dualcap.signals.openadr.mapping import sites_for as sites_for
from dualcap.signals.openadr.mapping import targets_of as targets_of
from dualcap.signals.openadr.names import ADAPTER as ADAPTER
from dualcap.signals.openadr.names import ADAPTER_LABEL as ADAPTER_LABEL
from dualcap.signals.openadr.names import BUDGETS as BUDGETS
from dualcap.signals.openadr.names import EVENTS_ANNOTATION as EVENTS_ANNOTATION
from dualcap.signals.openadr.names import MAX_LEAD_SECONDS as MAX_LEAD_SECONDS
from dualcap.signals.openadr.names import SITES as SITES
from dualcap.signals.openadr.names import SOURCE as SOURCE
from dualcap.signals.openadr.names import VTN_ANNOTATION as VTN_ANNOTATION
from dualcap.signals.openadr.ven import Adapter as Adapter
from dualcap.signals.openadr.ven import quiet_openleadr as quiet_openleadr
from dualcap.signals.openadr.ven import run as run
