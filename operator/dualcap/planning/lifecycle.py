"""A lease's life cycle before admission: a chain of small named rules.

Each rule looks at a lease (and the time) and either says nothing or decides the lease's
phase, with a reason and a message; the first rule that fires decides, and a lease no rule
stops is active: admission (``planning.leases``) decides it. Each rule also says what
becomes of the lease's pods: kept where they run (bad input loses nothing) or deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from dualcap.api.conditions import Reason
from dualcap.api.lease import LeasePhase
from dualcap.planning.commands import CommandReason
from dualcap.planning.entities import Lease

Verdict = tuple[Reason, str]


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime


class Pods(Enum):
    KEEP = "keep"  # its pods stay and hold their GPUs
    DELETE = "delete"  # its pods are deleted


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    check: Callable[[Lease, Context], Verdict | None]
    phase: LeasePhase
    pods: Pods
    pod_reason: CommandReason | None = None  # the reason of its pods' deletion


def _workload_finished(lease: Lease, _: Context) -> Verdict | None:
    if lease.workload is not None and lease.workload.finished:
        return Reason.FINISHED, "the Workload has finished"
    return None


def _workload_evicting(lease: Lease, _: Context) -> Verdict | None:
    w = lease.workload
    if w is not None and (w.check_state == "Retry" or (w.evicted and not w.quota_reserved)):
        return Reason.EVICTED, "evicted: its Job is stopping; Kueue queues it again"
    return None


def _workload_rejected(lease: Lease, _: Context) -> Verdict | None:
    w = lease.workload
    if w is not None and w.check_state == "Rejected":
        return Reason.NEVER_FITS, w.check_message
    return None


def _workload_no_gpus(lease: Lease, _: Context) -> Verdict | None:
    if lease.workload is not None and lease.spec is None and lease.error == "asks no GPUs":
        return Reason.NO_GPUS, "it asks no GPUs: dualcap has no power to make room for"
    return None


def _workload_not_reserved(lease: Lease, _: Context) -> Verdict | None:
    w = lease.workload
    if w is not None and not w.quota_reserved and not lease.admitted:
        return Reason.QUOTA_NOT_RESERVED, "waiting for Kueue to reserve quota for it"
    return None


def _invalid(lease: Lease, _: Context) -> Verdict | None:
    if lease.spec is None:
        return Reason.INVALID_SPEC, lease.error or "invalid"
    return None


def _rejected(lease: Lease, _: Context) -> Verdict | None:
    if lease.rejected is not None and not lease.deleting:
        return Reason.TEMPLATE_REJECTED, lease.rejected
    return None


def _deleting(lease: Lease, _: Context) -> Verdict | None:
    if lease.deleting:
        return Reason.DELETED, "the ComputeLease is being deleted"
    return None


def _ended(lease: Lease, ctx: Context) -> Verdict | None:
    if lease.end is not None and lease.end <= ctx.now and lease.spec is not None:
        return Reason.ENDED, f"the lease ended at {lease.spec.end}"
    return None


def _not_started(lease: Lease, ctx: Context) -> Verdict | None:
    if lease.start is not None and lease.start > ctx.now and lease.spec is not None:
        return Reason.NOT_STARTED, f"the lease starts at {lease.spec.start}"
    return None


# A Workload's pods are its Job's: these rules keep them (Kueue stops them)
WORKLOAD_FINISHED = Rule("finished", _workload_finished, LeasePhase.COMPLETED, Pods.KEEP)
# the check said Retry: Kueue stops it and queues it again (its pods count until gone)
WORKLOAD_EVICTING = Rule("evicting", _workload_evicting, LeasePhase.PREEMPTED, Pods.KEEP)
WORKLOAD_REJECTED = Rule("rejected by the check", _workload_rejected, LeasePhase.FAILED, Pods.KEEP)  # fmt: skip
WORKLOAD_NO_GPUS = Rule("no GPUs", _workload_no_gpus, LeasePhase.RUNNING, Pods.KEEP)
WORKLOAD_NOT_RESERVED = Rule("quota not reserved", _workload_not_reserved, LeasePhase.PENDING, Pods.KEEP)  # fmt: skip
INVALID = Rule("invalid", _invalid, LeasePhase.FAILED, Pods.KEEP)
REJECTED = Rule("rejected", _rejected, LeasePhase.FAILED, Pods.KEEP)
DELETING = Rule("deleting", _deleting, LeasePhase.COMPLETED, Pods.DELETE, CommandReason.LEASE_DELETED)  # fmt: skip
ENDED = Rule("ended", _ended, LeasePhase.COMPLETED, Pods.DELETE, CommandReason.LEASE_ENDED)
NOT_STARTED = Rule("not started", _not_started, LeasePhase.PENDING, Pods.DELETE, CommandReason.LEASE_NOT_STARTED)  # fmt: skip

# In order: a Workload finished, being evicted, rejected, asking no GPUs, without quota;
# invalid as written,
# template refused at this generation, being deleted, past its end, before its start.
CHAIN: tuple[Rule, ...] = (
    WORKLOAD_FINISHED,
    WORKLOAD_EVICTING,
    WORKLOAD_REJECTED,
    WORKLOAD_NO_GPUS,
    WORKLOAD_NOT_RESERVED,
    INVALID,
    REJECTED,
    DELETING,
    ENDED,
    NOT_STARTED,
)


@dataclass(frozen=True, slots=True)
class Stop:
    """The rule that decided a lease, with its reason and message."""

    rule: Rule
    reason: Reason
    message: str


def first_stop(lease: Lease, ctx: Context, chain: Sequence[Rule] = CHAIN) -> Stop | None:
    """The first rule of ``chain`` that fires for ``lease``; None: the lease is active."""
    for rule in chain:
        verdict = rule.check(lease, ctx)
        if verdict is not None:
            return Stop(rule, *verdict)
    return None
