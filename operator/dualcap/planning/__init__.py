"""The pure decision core: a snapshot of a site and a time in, a plan of commands out.

No kopf, no Kubernetes client, no I/O, no clock: ``now`` is a parameter.
"""

from dualcap.planning.commands import Command, Kind, Schedule, make_before_break
from dualcap.planning.dispatch import LeaseDecision, Plan, plan
from dualcap.planning.envelope import Envelope, evaluate
from dualcap.planning.snapshot import Fleet, ParseCache, SiteSnapshot, build_fleet

__all__ = [
    "Command",
    "Envelope",
    "Fleet",
    "Kind",
    "LeaseDecision",
    "ParseCache",
    "Plan",
    "Schedule",
    "SiteSnapshot",
    "build_fleet",
    "evaluate",
    "make_before_break",
    "plan",
]
