"""The pure decision core: a snapshot of a site and a time in, a plan of commands out.

No kopf, no Kubernetes client, no I/O, no clock: ``now`` is a parameter.

- ``snapshot``: objects -> a site's ``entities`` (incremental, with references to the objects)
- ``plan``: the numbered pipeline; ``decisions``: what it returns
- ``lifecycle``, ``leases``, ``gpus``: a lease's life, admission and GPU packing
- ``mining`` (with ``knapsack``): which controllers mine
- ``accounting``: power and economics; ``envelope``: the limit at a time
- ``commands``: the commands and make-before-break
"""

from dualcap.planning.commands import Command, Kind, Schedule, make_before_break
from dualcap.planning.decisions import Hold, LeaseDecision, Plan
from dualcap.planning.entities import Fleet, SiteSnapshot
from dualcap.planning.envelope import Envelope, evaluate
from dualcap.planning.parse import ParseCache
from dualcap.planning.plan import plan
from dualcap.planning.snapshot import build_fleet

__all__ = [
    "Command",
    "Envelope",
    "Fleet",
    "Hold",
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
