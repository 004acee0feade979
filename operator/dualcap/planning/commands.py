"""The plan as explicit commands, and the make-before-break rule that orders them.

Every command carries the change of committed draw it makes once it has taken effect
(``delta_kw``, facility kW: negative for a decrease) and a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

from dualcap.api.conditions import Reason


class Kind(Enum):
    CURTAIL = "Curtail"  # cordon + taint + mark an ASIC controller
    RESUME = "Resume"  # remove dualcap's taint, uncordon, unmark
    CREATE_POD = "CreatePod"  # a lease pod, from the lease's template
    DELETE_POD = "DeletePod"  # a lease pod of a preempted, ended or vanished lease
    ADMIT_WORKLOAD = "AdmitWorkload"  # the power check Ready on a Kueue Workload
    EVICT_WORKLOAD = "EvictWorkload"  # the power check Retry: Kueue evicts and requeues it


DECREASES = (Kind.CURTAIL, Kind.DELETE_POD, Kind.EVICT_WORKLOAD)


class CommandReason(StrEnum):
    """Why a command is issued (its Event's words). A pod deleted because its lease is
    preempted carries the lease's reason (``Reason``) instead."""

    ENVELOPE = "Envelope"  # curtail: the envelope needs the power
    UNPROFITABLE = "Unprofitable"  # curtail: energy costs more than mining earns
    MINING_PAYS = "MiningPays"  # resume: mining earns more than its energy costs
    HYSTERESIS = "Hysteresis"  # resume or keep: held by minMiningSeconds
    LEASE_ADMITTED = "LeaseAdmitted"  # create a lease pod, or admit a Workload
    LEASE_GONE = "LeaseGone"  # delete: its ComputeLease is gone or names another site
    LEASE_DELETED = "LeaseDeleted"  # delete: its ComputeLease is being deleted
    LEASE_ENDED = "LeaseEnded"  # delete: past the lease's end
    LEASE_NOT_STARTED = "LeaseNotStarted"  # delete: before the lease's start
    LEASE_RESIZED = "LeaseResized"  # delete: the lease now runs fewer pods
    POD_FINISHED = "PodFinished"  # delete: a Succeeded or Failed pod, to be created again


@dataclass(slots=True)
class Command:
    """One change to the cluster. A value: never changed once made (not frozen only
    because a plan makes many, and a frozen dataclass is slow to build)."""

    kind: Kind
    name: str  # node name, or pod name
    delta_kw: float  # change of committed draw once in effect (facility kW)
    reason: CommandReason | Reason
    message: str
    namespace: str | None = None  # pods
    lease: str | None = None  # pods: the lease's name
    node: str | None = None  # pods: the node planned for it
    gpus: int = 0  # pods
    index: int | None = None  # pods: <lease>-<index>

    @property
    def is_decrease(self) -> bool:
        return self.kind in DECREASES

    @property
    def group(self) -> tuple[str, str] | str:
        """Commands that go together: a lease's pods (all or nothing), else one command."""
        if self.kind is Kind.CREATE_POD and self.namespace and self.lease:
            return (self.namespace, self.lease)
        return f"{self.kind.value}/{self.namespace or ''}/{self.name}"

    def describe(self) -> str:
        if self.kind in (Kind.CREATE_POD, Kind.DELETE_POD):
            where = f" on {self.node}" if self.node else ""
            return f"{self.kind.value} {self.namespace}/{self.name}{where} ({self.gpus} GPUs)"
        if self.kind in (Kind.ADMIT_WORKLOAD, Kind.EVICT_WORKLOAD):
            return f"{self.kind.value} {self.namespace}/{self.name} ({self.gpus} GPUs)"
        return f"{self.kind.value} {self.name}"


@dataclass(frozen=True, slots=True)
class Schedule:
    now: tuple[Command, ...]  # issue these in this reconcile
    deferred: tuple[Command, ...]  # increases waiting for decreases to be confirmed
    headroom_kw: float  # limit - committed - increases issued now


def make_before_break(
    commands: Sequence[Command], committed_kw: float, limit_kw: float
) -> Schedule:
    """Decreases go at once; an increase only while ``committed + increases <= limit``.

    Committed draw already counts unconfirmed curtailments and pods not yet gone at full
    power, so increases that depend on a decrease wait until it is confirmed. A lease's pods
    go together or not at all. Once a lease's pods must wait, mining resumes wait too, so
    the power being freed goes to the lease first.
    """
    now: list[Command] = [c for c in commands if c.is_decrease]
    deferred: list[Command] = []
    headroom = limit_kw - committed_kw
    groups: dict[object, list[Command]] = {}
    for c in commands:
        if not c.is_decrease:
            groups.setdefault(c.group, []).append(c)
    lease_waiting = False
    for members in groups.values():
        increase = sum(max(0.0, c.delta_kw) for c in members)
        resume = members[0].kind is Kind.RESUME
        if increase <= 1e-9:
            now.extend(members)  # healing or already counted: costs no headroom
        elif increase <= headroom + 1e-9 and not (resume and lease_waiting):
            now.extend(members)
            headroom -= increase
        else:
            deferred.extend(members)
            if not resume:
                lease_waiting = True
    return Schedule(tuple(now), tuple(deferred), headroom)
