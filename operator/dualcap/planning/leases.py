"""Leases: the life cycle, then admission, preemption and backfill.

1. every lease goes through the life-cycle rules (``planning.lifecycle``): invalid,
   rejected, deleting, ended and not started leases are decided there;
2. running non-preemptible leases keep running unless they alone do not fit the budget
   (shed lowest priority first, then newest);
3. every other active lease in priority order (then age), all or nothing: a running one
   keeps running while its power fits; one not running is admitted if its pods fit on
   free GPUs (or on those of running preemptible leases below it, which are preempted)
   and its power fits in what is left; a smaller lease lower down backfills what a bigger
   one cannot use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from dualcap.api.conditions import Reason
from dualcap.api.lease import ComputeLeaseSpec, LeasePhase
from dualcap.planning import lifecycle
from dualcap.planning.accounting import per_gpu_kw, pod_kw
from dualcap.planning.commands import Command, CommandReason, Kind
from dualcap.planning.decisions import Hold, LeaseDecision, Orders
from dualcap.planning.entities import Lease, LeasePod, Placement, SiteSnapshot
from dualcap.planning.gpus import Gpus, LeaseKey

EPS = 1e-9
WAS_RUNNING = (LeasePhase.RUNNING, LeasePhase.ADMITTED, LeasePhase.PREEMPTED)


@functools.cache
def _no_gpus(count: int, per_pod: int) -> str:
    return f"{count} pods of {per_pod} GPUs do not fit on the free GPUs of schedulable nodes"


def _spec(lease: Lease) -> ComputeLeaseSpec:
    assert lease.spec is not None
    return lease.spec


def _placement(lease: Lease) -> Placement:
    assert lease.placement is not None
    return lease.placement


class Leases:
    """Decides every lease of a snapshot; emits pod commands into ``orders``."""

    def __init__(
        self, snap: SiteSnapshot, ctx: lifecycle.Context, hold: Hold | None, orders: Orders
    ):
        self.snap = snap
        self.ctx = ctx
        self.hold = hold
        self.orders = orders
        self.decisions: list[LeaseDecision] = []

    def delete_pods(
        self, pods: Iterable[LeasePod], reason: CommandReason | Reason, message: str
    ) -> None:
        snap, decreases = self.snap, self.orders.decreases
        for pod in pods:
            if pod.terminating or pod.external:
                continue  # already going, or not dualcap's (a Job's); counts until gone
            delta = 0.0 if pod.terminal else -pod_kw(snap, pod.node, pod.gpus)
            decreases.append(
                Command(
                    Kind.DELETE_POD,
                    pod.name,
                    delta,
                    reason,
                    message,
                    namespace=pod.namespace,
                    lease=pod.lease,
                    node=pod.node,
                    gpus=pod.gpus,
                    index=pod.index,
                )
            )

    def decide(self, budget_kw: float) -> float:
        """Decide every lease; returns the facility kW of the leases that run."""
        snap = self.snap
        holding = self.hold is not None
        wakeups = self.orders.wakeups
        self.delete_pods(
            snap.orphan_pods,
            CommandReason.LEASE_GONE,
            "its ComputeLease is gone or names another site",
        )
        gpus = Gpus(snap.gpu_nodes)
        active: list[Lease] = []
        for lease in snap.leases:
            stop = lifecycle.first_stop(lease, self.ctx)
            if lease.end is not None and (stop is None or stop.rule is lifecycle.NOT_STARTED):
                wakeups.append(lease.end)
            if stop is None:
                # Terminal pods hold nothing; delete them so they can be created again.
                if lease.finished:
                    self.delete_pods(lease.finished, CommandReason.POD_FINISHED, "pod finished")
                active.append(lease)
                continue
            rule = stop.rule
            if rule.pods is lifecycle.Pods.KEEP:
                for pod in lease.pods:
                    if not pod.terminal:
                        gpus.charge(pod.node, pod.gpus)
            else:
                assert rule.pod_reason is not None
                self.delete_pods(lease.pods, rule.pod_reason, stop.message)
            if rule is lifecycle.NOT_STARTED and lease.start is not None:
                wakeups.append(lease.start)
            self.decisions.append(
                LeaseDecision(lease, rule.phase, False, stop.reason, stop.message)
            )
        used_kw = self._admit_active(active, gpus, budget_kw, holding)
        self.decisions.sort(key=lambda d: d.lease.key)  # (namespace, name)
        return used_kw

    def _admit_active(
        self, active: list[Lease], gpus: Gpus, budget_kw: float, holding: bool
    ) -> float:
        # Running pods hold their GPUs; a higher-priority lease may take those of a running
        # preemptible lease below it only when it cannot fit otherwise.
        running = {lease.key for lease in active if lease.admitted}
        for lease in active:
            if lease.key in running:
                for pod in lease.existing:
                    gpus.reserve_soft(pod.node, lease.key, pod.gpus)

        used_kw = 0.0
        # Running non-preemptible leases keep running unless they alone do not fit.
        pinned = [
            lease for lease in active if lease.key in running and not _spec(lease).preemptible
        ]
        pinned_kw = {lease.key: self._full_kw(lease) for lease in pinned}
        shed: set[LeaseKey] = set()
        total = pinned_total = sum(pinned_kw.values())
        # Shed order among them: the lowest priority first, then the newest.
        for lease in sorted(pinned, key=lambda x: (_spec(x).priority, -x.created.timestamp())):
            if total <= budget_kw + EPS or holding:
                break
            shed.add(lease.key)
            total -= pinned_kw[lease.key]
            gpus.release_soft(lease.key)  # preempted: its GPUs are free for any lease
        # The GPUs of the running preemptible leases below the lease at hand may be taken
        # for it (the below pool of ``Gpus``), the lowest first.
        running_preemptible = [
            lease.key for lease in active if lease.key in running and _spec(lease).preemptible
        ]
        for key in running_preemptible:
            gpus.join_below(key)
        gpus.seal()

        displaced: set[LeaseKey] = set()
        decided: dict[LeaseKey, LeaseDecision] = {}
        for lease in pinned:
            if lease.key not in shed:
                used_kw += self._keep(lease, gpus, decided)

        # Every other active lease, in priority order; all or nothing; backfill.
        bottom = len(running_preemptible)  # the pool is running_preemptible[...:bottom]
        for lease in active:
            key = lease.key
            gpus.leave_below(key)  # admission has reached it
            if key in decided:
                continue
            spec = _spec(lease)
            if key in shed:
                decided[key] = self._preempt(
                    lease,
                    Reason.ENVELOPE_TOO_LOW,
                    "the envelope cannot hold this non-preemptible lease even with all mining and"
                    f" preemptible leases stopped (the non-preemptible ones need {pinned_total:,.0f}"
                    f" kW, {max(0.0, budget_kw):,.0f} kW are left for them)",
                )
                continue
            if key in running:
                if key in displaced:
                    decided[key] = self._preempt(
                        lease,
                        Reason.PREEMPTED_BY_PRIORITY,
                        "a lease of higher priority needs its GPUs",
                    )
                    continue
                need_kw = self._full_kw(lease)
                if holding or used_kw + need_kw <= budget_kw + EPS:
                    used_kw += self._keep(lease, gpus, decided)
                else:
                    gpus.release_soft(key)
                    decided[key] = self._preempt(
                        lease,
                        Reason.INSUFFICIENT_POWER,
                        "the envelope is too low for it beside leases of higher priority",
                    )
                continue
            # Not running: admit if it fits.
            if self.hold is not None:
                decided[key] = self._wait(
                    lease, Reason.HOLD, f"nothing is admitted: {self.hold.message}"
                )
                continue
            per_pod, count = spec.gpus_per_pod, spec.pod_count
            placement = _placement(lease)
            if lease.external and not gpus.could_ever_hold(count, per_pod):
                decided[key] = self._never(lease, count, per_pod)
                continue
            if not placement.constrained and gpus.capacity(per_pod, with_below=True) < count:
                # Cannot fit even with the GPUs of every lease below it: no search.
                decided[key] = self._wait(lease, Reason.INSUFFICIENT_GPUS, _no_gpus(count, per_pod))
                continue
            nodes = None
            if placement.constrained or gpus.capacity(per_pod) >= count:
                nodes = gpus.pack(count, per_pod, placement)
            steal = False
            if nodes is None and gpus.below:
                # Try the GPUs of running preemptible leases below this one.
                nodes = gpus.pack(count, per_pod, placement, with_below=True)
                steal = nodes is not None
            if nodes is None:
                decided[key] = self._wait(lease, Reason.INSUFFICIENT_GPUS, _no_gpus(count, per_pod))
                continue
            need_kw = sum(pod_kw(self.snap, node, per_pod) for node in nodes)
            if used_kw + need_kw > budget_kw + EPS:
                decided[key] = self._wait(
                    lease,
                    Reason.INSUFFICIENT_POWER,
                    f"needs {need_kw:,.0f} kW; {max(0.0, budget_kw - used_kw):,.0f} kW left in the envelope beside leases of higher priority",
                )
                continue
            if steal:
                # Take exactly the soft GPUs needed: release the lowest leases first.
                while bottom > 0 and running_preemptible[bottom - 1] in gpus.below:
                    bottom -= 1
                    victim = running_preemptible[bottom]
                    gpus.release_soft(victim)
                    displaced.add(victim)
                    if gpus.pack(count, per_pod, placement) is not None:
                        break
                nodes = gpus.pack(count, per_pod, placement) or nodes
                need_kw = sum(pod_kw(self.snap, node, per_pod) for node in nodes)
            used_kw += need_kw
            decided[key] = self._admit(lease, nodes, gpus, need_kw)
        for lease in active:
            self.decisions.append(decided[lease.key])
        return used_kw

    def _full_kw(self, lease: Lease) -> float:
        """Power of the whole lease: existing pods where they are, missing ones at the
        highest kW per GPU of the site."""
        spec = _spec(lease)
        existing = lease.existing
        snap = self.snap
        it = sum(p.gpus * per_gpu_kw(snap, p.node) for p in existing)
        missing = max(0, spec.pod_count - len(existing))
        return snap.pue * (it + missing * spec.gpus_per_pod * snap.max_per_gpu_kw)

    def _keep(self, lease: Lease, gpus: Gpus, decided: dict[LeaseKey, LeaseDecision]) -> float:
        """A running lease keeps running; its missing pods are created where they fit."""
        spec = _spec(lease)
        existing: Sequence[LeasePod] = lease.existing
        gpus.release_soft(lease.key)
        for pod in existing:
            gpus.charge(pod.node, pod.gpus)
        if lease.external:
            return self._keep_workload(lease, gpus, decided)
        present = {p.index for p in existing}
        missing = [i for i in range(spec.pod_count) if i not in present]
        extra = [p for p in existing if p.index is None or p.index >= spec.pod_count]
        if extra:  # the lease was made smaller: its surplus pods go
            self.delete_pods(
                extra, CommandReason.LEASE_RESIZED, f"the lease now runs {spec.pod_count} pods"
            )
            for pod in extra:
                gpus.charge(pod.node, -pod.gpus)
            existing = [p for p in existing if p not in extra]
        kw = sum(pod_kw(self.snap, p.node, p.gpus) for p in existing)
        pods = [p.name for p in existing]
        if not missing and not extra:
            phase, reason, message = LeasePhase.RUNNING, Reason.RUNNING, f"all {spec.pod_count} pods exist"  # fmt: skip
        else:
            phase, reason = LeasePhase.ADMITTED, Reason.RUNNING
            message = f"{len(existing)} of {spec.pod_count} pods exist"
        if missing and self.hold is None:
            nodes = gpus.pack(len(missing), spec.gpus_per_pod, _placement(lease))
            if nodes is None:
                reason = Reason.WAITING_FOR_GPUS
                message = f"{len(missing)} pods wait for free GPUs"
                kw += len(missing) * pod_kw(self.snap, None, spec.gpus_per_pod)
            else:
                for index, node in zip(missing, nodes, strict=True):
                    kw += self._create(lease, index, node, gpus)
                    pods.append(f"{lease.name}-{index}")
        decided[lease.key] = LeaseDecision(
            lease, phase, True, reason, message, gpus=spec.gpus, kw=kw, pods=sorted(pods)
        )
        return kw

    def _keep_workload(
        self, lease: Lease, gpus: Gpus, decided: dict[LeaseKey, LeaseDecision]
    ) -> float:
        """A Workload the check admitted keeps running: its pods are its Job's to make; the
        ones not there yet count at the site's highest kW per GPU, their GPUs held."""
        spec = _spec(lease)
        existing = lease.existing
        kw = sum(pod_kw(self.snap, p.node, p.gpus) for p in existing)
        missing = max(0, spec.pod_count - len(existing))
        if missing:
            nodes = gpus.pack(missing, spec.gpus_per_pod, _placement(lease))
            for node in nodes or []:
                gpus.charge(node, spec.gpus_per_pod)
            kw += missing * pod_kw(self.snap, None, spec.gpus_per_pod)
            phase, message = LeasePhase.ADMITTED, f"admitted: {len(existing)} of {spec.pod_count} pods exist"  # fmt: skip
        else:
            phase, message = LeasePhase.RUNNING, f"all {spec.pod_count} pods exist"
        decided[lease.key] = LeaseDecision(
            lease, phase, True, Reason.RUNNING, message, gpus=spec.gpus, kw=kw,
            pods=sorted(p.name for p in existing),
        )  # fmt: skip
        return kw

    def _never(self, lease: Lease, count: int, per_pod: int) -> LeaseDecision:
        return LeaseDecision(
            lease,
            LeasePhase.FAILED,
            False,
            Reason.NEVER_FITS,
            f"{count} pods of {per_pod} GPUs can never fit: the site has"
            f" {self.snap_gpus()} GPUs on schedulable nodes, at most {self.largest_node()} on one",
        )

    def snap_gpus(self) -> int:
        return sum(n.gpus for n in self.snap.gpu_nodes.values() if n.schedulable)

    def largest_node(self) -> int:
        return max((n.gpus for n in self.snap.gpu_nodes.values() if n.schedulable), default=0)

    def _create(self, lease: Lease, index: int, node: str, gpus: Gpus) -> float:
        spec = _spec(lease)
        kw = pod_kw(self.snap, node, spec.gpus_per_pod)
        gpus.charge(node, spec.gpus_per_pod)
        self.orders.creates.append(
            Command(
                Kind.CREATE_POD,
                f"{lease.name}-{index}",
                kw,
                CommandReason.LEASE_ADMITTED,
                f"lease {lease.namespace}/{lease.name} (priority {spec.priority})",
                namespace=lease.namespace,
                lease=lease.name,
                node=node,
                gpus=spec.gpus_per_pod,
                index=index,
            )
        )
        return kw

    def _admit(self, lease: Lease, nodes: list[str], gpus: Gpus, kw: float) -> LeaseDecision:
        spec = _spec(lease)
        if lease.external:  # a Workload: the check turns Ready; its Job makes the pods
            for node in nodes:
                gpus.charge(node, spec.gpus_per_pod)
            self.orders.creates.append(
                _workload_command(
                    Kind.ADMIT_WORKLOAD,
                    lease,
                    kw,
                    CommandReason.LEASE_ADMITTED,
                    f"Workload {lease.namespace}/{lease.name} (priority {spec.priority})",
                )
            )
            pods = []
        else:
            for index, node in enumerate(nodes):
                self._create(lease, index, node, gpus)
            pods = [f"{lease.name}-{i}" for i in range(len(nodes))]
        return LeaseDecision(
            lease,
            LeasePhase.ADMITTED,
            True,
            Reason.ADMITTED,
            f"admitted: {spec.pod_count} pods of {spec.gpus_per_pod} GPUs, {kw:,.1f} kW",
            gpus=spec.gpus,
            kw=kw,
            pods=pods,
            admitted_now=True,
        )

    def _preempt(self, lease: Lease, reason: Reason, message: str) -> LeaseDecision:
        if lease.external:  # a Workload: the check's Retry; Kueue evicts and requeues it
            existing_kw = sum(pod_kw(self.snap, p.node, p.gpus) for p in lease.existing)
            self.orders.decreases.append(
                _workload_command(Kind.EVICT_WORKLOAD, lease, -existing_kw, reason, message)
            )
        self.delete_pods(lease.existing, reason, message)
        return LeaseDecision(
            lease, LeasePhase.PREEMPTED, False, reason, message, preempted_now=True
        )

    def _wait(self, lease: Lease, reason: Reason, message: str) -> LeaseDecision:
        phase = LeasePhase.PREEMPTED if lease.previous_phase in WAS_RUNNING else LeasePhase.PENDING
        return LeaseDecision(lease, phase, False, reason, message)


def _workload_command(
    kind: Kind, lease: Lease, kw: float, reason: CommandReason | Reason, message: str
) -> Command:
    """The power check's Ready (``ADMIT_WORKLOAD``) or Retry (``EVICT_WORKLOAD``) on a
    Workload, as a command of the plan (make-before-break orders it like any other)."""
    return Command(
        kind,
        lease.name,
        kw,
        reason,
        message,
        namespace=lease.namespace,
        lease=lease.name,
        gpus=_spec(lease).gpus,
    )
