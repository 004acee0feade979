"""The plan of one site: a snapshot and a time in, commands out (DESIGN.md §5).

The steps, in order:
1. the envelope at ``now`` (lead time and margin applied);
2. what nobody dispatches: facility overhead, idle GPU nodes, GPU pods that are not
   dualcap's, controllers held by a person or NotReady, pods of invalid leases;
3. leases: running non-preemptible leases first (shed only when they alone do not fit,
   lowest priority and newest first), then every active lease in priority order (then
   age), all or nothing, each admitted if its pods fit on free GPUs and its power in what
   is left; a smaller lower-priority lease backfills what a bigger one cannot use;
4. mining fills the rest: a knapsack of profit in the remaining power, only controllers
   whose revenue beats their energy cost, with hysteresis and the ramp limit shaping the
   economic choices and the increases (never a shed);
5. commands (curtail, resume, create and delete pods), ordered by make-before-break.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dualcap.api.lease import ComputeLeaseSpec
from dualcap.planning import knapsack
from dualcap.planning.commands import Command, Kind, Schedule, make_before_break
from dualcap.planning.envelope import Envelope, evaluate
from dualcap.planning.snapshot import (
    Controller,
    ControllerState,
    GpuNode,
    Lease,
    LeasePod,
    Problem,
    SiteSnapshot,
)

RAMP_WINDOW = timedelta(minutes=1)


@dataclass(slots=True)
class LeaseDecision:
    """What the plan does with one lease, and why."""

    lease: Lease
    phase: str  # Pending, Admitted, Running, Preempted, Completed, Failed
    runs: bool  # runs once the plan has taken effect
    reason: str  # CamelCase, for conditions
    message: str
    gpus: int = 0  # GPUs it holds in the planned state
    kw: float = 0.0  # facility kW of its pods in the planned state
    pods: list[str] = field(default_factory=list)  # pod names in the planned state
    admitted_now: bool = False
    preempted_now: bool = False


@dataclass(slots=True)
class Draw:
    """Facility kW by kind."""

    mining_kw: float = 0.0
    gpu_kw: float = 0.0
    overhead_kw: float = 0.0

    @property
    def total_kw(self) -> float:
        return self.mining_kw + self.gpu_kw + self.overhead_kw


@dataclass(slots=True)
class Plan:
    site: str
    at: datetime
    envelope: Envelope | None
    limit_kw: float | None  # None: no usable envelope (hold)
    committed: Draw
    planned: Draw
    commands: list[Command]
    schedule: Schedule
    mining: list[str]  # controllers mining once the plan has taken effect
    leases: list[LeaseDecision]
    controllers: dict[str, int]  # by state now: mining, curtailing, curtailed, held, unready
    held_nodes: list[str]
    gpus_total: int
    gpus_leased: int
    mining_revenue_usd_per_hour: float
    lease_revenue_usd_per_hour: float
    energy_cost_usd_per_hour: float
    energy_price_usd_per_mwh: float
    next_wakeup: datetime | None
    problems: list[Problem]
    hold_reason: str | None = None  # why nothing is increased (no envelope, suspended, ...)
    in_flight: int = 0  # curtailments not yet confirmed + lease pods not yet gone

    @property
    def committed_kw(self) -> float:
        return self.committed.total_kw

    @property
    def planned_kw(self) -> float:
        return self.planned.total_kw

    @property
    def headroom_kw(self) -> float | None:
        return None if self.limit_kw is None else self.limit_kw - self.committed_kw

    @property
    def within_envelope(self) -> bool | None:
        return None if self.limit_kw is None else self.committed_kw <= self.limit_kw + 1e-6

    def commands_of(self, kind: Kind) -> list[Command]:
        return [c for c in self.commands if c.kind is kind]


# --- small helpers -------------------------------------------------------------------------


def tolerates(tolerations: list[Any], taint: Any) -> bool:
    """Whether one of the tolerations tolerates the taint (Kubernetes' rules)."""
    for t in tolerations:
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key")
        if not key:
            if t.get("operator") == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


class _Placement:
    """Which GPU nodes a lease's pods may use, by its template's nodeSelector and
    tolerations (the common forms; the scheduler has the last word)."""

    def __init__(self, spec: ComputeLeaseSpec):
        pod_spec = spec.template.spec
        selector = (pod_spec.model_extra or {}).get("nodeSelector")
        self.node_selector: dict[str, str] = dict(selector) if isinstance(selector, dict) else {}
        self.tolerations: list[dict[str, Any]] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in pod_spec.tolerations or []
        ]
        self.unconstrained = not self.node_selector and not self.tolerations

    def allows(self, node: GpuNode) -> bool:
        if any(node.labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return all(tolerates(self.tolerations, taint) for taint in node.taints)


class _Gpus:
    """Free GPUs per node in the planned state, with best-fit packing.

    Nodes that any lease may use (schedulable, untainted) sit in buckets by free GPUs, so
    best fit for the common lease (no nodeSelector, no tolerations) costs a few bucket
    look-ups instead of a scan. Constrained leases, and leases that may take the GPUs of
    running preemptible leases below them, scan the nodes (the rare path).
    """

    def __init__(self, nodes: dict[str, GpuNode]):
        self.nodes = nodes
        self.free: dict[str, int] = {n.name: n.gpus - n.foreign_gpus for n in nodes.values()}
        self.open = {n.name for n in nodes.values() if n.schedulable and not n.taints}
        self.max_gpus = max((n.gpus for n in nodes.values()), default=0)
        self.buckets: list[list[str]] = [[] for _ in range(self.max_gpus + 1)]
        for name in sorted(self.open):
            f = self.free[name]
            if 0 < f <= self.max_gpus:
                self.buckets[f].append(name)
        self.soft: dict[tuple[str, str], list[tuple[str, int]]] = {}  # lease -> (node, GPUs)

    def _move(self, node: str, delta: int) -> None:
        before = self.free[node]
        after = before + delta
        self.free[node] = after
        if node in self.open:
            if 0 < before <= self.max_gpus:
                bucket = self.buckets[before]
                del bucket[bisect.bisect_left(bucket, node)]
            if 0 < after <= self.max_gpus:
                bisect.insort(self.buckets[after], node)

    def charge(self, node: str | None, gpus: int) -> None:
        if node in self.free and gpus:
            self._move(node, -gpus)

    def reserve_soft(self, node: str | None, lease: tuple[str, str], gpus: int) -> None:
        if node in self.free:
            self.soft.setdefault(lease, []).append((node, gpus))
            self._move(node, -gpus)

    def release_soft(self, lease: tuple[str, str]) -> None:
        for node, gpus in self.soft.pop(lease, []):
            self._move(node, gpus)

    def soft_gpus(self, lease: tuple[str, str]) -> int:
        return sum(g for _, g in self.soft.get(lease, []))

    def capacity(self, per_pod: int) -> int:
        """Pods of ``per_pod`` GPUs the open nodes can still take."""
        return sum(len(self.buckets[f]) * (f // per_pod) for f in range(per_pod, self.max_gpus + 1))

    def pack(
        self, count: int, per_pod: int, placement: _Placement, use_soft: set[tuple[str, str]]
    ) -> list[str] | None:
        """Nodes for ``count`` pods of ``per_pod`` GPUs each (best fit), or None."""
        if placement.unconstrained and not use_soft:
            if per_pod > self.max_gpus or self.capacity(per_pod) < count:
                return None
            chosen: list[str] = []
            for _ in range(count):
                # Best fit: the fullest open node that still takes the pod (ties: by name).
                f = next(f for f in range(per_pod, self.max_gpus + 1) if self.buckets[f])
                name = self.buckets[f][0]
                chosen.append(name)
                self._move(name, -per_pod)  # provisional, undone below
            for name in chosen:
                self._move(name, per_pod)
            return chosen
        extra: dict[str, int] = {}
        for lease in use_soft:
            for held_on, gpus in self.soft.get(lease, []):
                extra[held_on] = extra.get(held_on, 0) + gpus
        avail = {}
        for name, gpu_node in self.nodes.items():
            if not gpu_node.schedulable:
                continue
            if placement.unconstrained and gpu_node.taints:
                continue
            if not placement.unconstrained and not placement.allows(gpu_node):
                continue
            free = self.free[name] + extra.get(name, 0)
            if free >= per_pod:
                avail[name] = free
        if sum(f // per_pod for f in avail.values()) < count:
            return None
        picked = []
        for _ in range(count):
            name = min(avail, key=lambda n: (avail[n], n))  # best fit: the fullest node
            picked.append(name)
            avail[name] -= per_pod
            if avail[name] < per_pod:
                del avail[name]
        return picked


def _pod_kw(snap: SiteSnapshot, node: str | None, gpus: int) -> float:
    """Facility kW of a pod: its GPUs at the node's kW per GPU (unknown node: the highest)."""
    per_gpu = _per_gpu_kw(snap, node)
    return snap.pue * gpus * per_gpu


def _per_gpu_kw(snap: SiteSnapshot, node: str | None) -> float:
    gpu_node = snap.gpu_nodes.get(node) if node is not None else None
    return gpu_node.per_gpu_kw if gpu_node is not None else snap.max_per_gpu_kw


def _no_gpus(count: int, per_pod: int) -> str:
    return f"{count} pods of {per_pod} GPUs do not fit on the free GPUs of schedulable nodes"


def _live(pods: Iterable[LeasePod]) -> list[LeasePod]:
    return [p for p in pods if not p.terminal]


# --- the plan ------------------------------------------------------------------------------


def plan(snap: SiteSnapshot, now: datetime) -> Plan:
    """The plan of one site at ``now`` (an aware datetime). Pure: no I/O, no clock."""
    return _Planner(snap, now).run()


class _Planner:
    def __init__(self, snap: SiteSnapshot, now: datetime):
        self.snap = snap
        self.now = now
        self.commands_dec: list[Command] = []
        self.lease_creates: list[Command] = []
        self.resumes: list[Command] = []
        self.decisions: list[LeaseDecision] = []
        self.wakeups: list[datetime] = []
        self.problems = list(snap.problems)
        self._existing_pods: dict[tuple[str, str], list[LeasePod]] = {}

    # Each step below reads and extends the state above; run() is the table of contents.
    def run(self) -> Plan:
        snap = self.snap
        if snap.site is None:
            return self._empty(f"the Site is invalid: {snap.site_error}")
        self.envelope = self._envelope()
        self.price = self.envelope.energy_price_usd_per_mwh if self.envelope else 0.0
        self.hold_reason = self._hold_reason()
        self.committed = self._committed()
        self.limit = self.envelope.limit_kw if self.envelope else None
        fixed_it = self._undispatchable_it_kw()
        if self.limit is not None and self.hold_reason is None:
            budget = self.limit - snap.fixed_kw - snap.pue * fixed_it
        else:
            budget = float("inf")  # hold: nothing is admitted or resumed below
        lease_kw = self._leases(budget)
        self.mining = self._mining(budget - lease_kw)
        return self._finish(fixed_it)

    def _envelope(self) -> Envelope | None:
        if self.snap.budget is None:
            return None
        env = evaluate(self.snap.budget.spec, self.now)
        if env.next_change:
            self.wakeups.append(env.next_change.at)
        if env.next_price_change:
            self.wakeups.append(env.next_price_change)
        return env

    def _hold_reason(self) -> str | None:
        assert self.snap.site is not None
        if self.snap.site.spec.suspend:
            return "the Site is suspended (spec.suspend)"
        if self.envelope is None:
            return self.snap.budget_error or "no PowerBudget"
        return None

    def _committed(self) -> Draw:
        snap = self.snap
        pue = snap.pue
        mining_it = sum(c.committed_it_kw for c in snap.controllers)
        gpu_it = sum(n.idle_kw + n.foreign_gpus * n.per_gpu_kw for n in snap.gpu_nodes.values())
        pods = [p for lease in snap.leases for p in lease.pods] + snap.orphan_pods
        gpu_it += sum(p.gpus * _per_gpu_kw(snap, p.node) for p in pods if not p.terminal)
        return Draw(mining_kw=pue * mining_it, gpu_kw=pue * gpu_it, overhead_kw=snap.fixed_kw)

    def _undispatchable_it_kw(self) -> float:
        """IT kW no command of this plan changes: idle GPU nodes, foreign GPU pods,
        controllers held by a person or NotReady, pods of invalid leases."""
        snap = self.snap
        it = sum(n.idle_kw + n.foreign_gpus * n.per_gpu_kw for n in snap.gpu_nodes.values())
        it += sum(c.committed_it_kw for c in snap.controllers if not c.dispatchable)
        for lease in snap.leases:
            if lease.spec is None:
                it += sum(p.gpus * _per_gpu_kw(snap, p.node) for p in _live(lease.pods))
        return it

    # --- leases ----------------------------------------------------------------------------

    def _delete_pods(self, pods: Iterable[LeasePod], reason: str, message: str) -> None:
        for pod in pods:
            if pod.terminating:
                continue  # already going; counts until gone
            delta = 0.0 if pod.terminal else -_pod_kw(self.snap, pod.node, pod.gpus)
            self.commands_dec.append(
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

    def _leases(self, budget_kw: float) -> float:
        """Decide every lease; returns the facility kW of the leases that run."""
        snap, now = self.snap, self.now
        holding = self.hold_reason is not None
        self._delete_pods(
            snap.orphan_pods, "LeaseGone", "its ComputeLease is gone or names another site"
        )
        gpus = _Gpus(snap.gpu_nodes)
        active: list[Lease] = []
        for lease in snap.leases:
            spec = lease.spec
            if spec is None:
                # Invalid as written: report it, keep what runs (bad input loses nothing).
                for pod in _live(lease.pods):
                    gpus.charge(pod.node, pod.gpus)
                self.decisions.append(
                    LeaseDecision(lease, "Failed", False, "InvalidSpec", lease.error or "invalid")
                )
                continue
            if lease.rejected is not None and not lease.deleting:
                # Its template was refused at this generation: wait for an edit.
                for pod in _live(lease.pods):
                    gpus.charge(pod.node, pod.gpus)
                self.decisions.append(
                    LeaseDecision(lease, "Failed", False, "TemplateRejected", lease.rejected)
                )
                continue
            start, end = lease.start, lease.end
            if lease.deleting:
                self._delete_pods(lease.pods, "LeaseDeleted", "the ComputeLease is being deleted")
                self.decisions.append(
                    LeaseDecision(lease, "Completed", False, "Deleted", "being deleted")
                )
                continue
            if end is not None and end <= now:
                self._delete_pods(lease.pods, "LeaseEnded", f"the lease ended at {spec.end}")
                self.decisions.append(
                    LeaseDecision(lease, "Completed", False, "Ended", f"ended at {spec.end}")
                )
                continue
            if end is not None:
                self.wakeups.append(end)
            if start is not None and start > now:
                self._delete_pods(
                    lease.pods, "LeaseNotStarted", f"the lease starts at {spec.start}"
                )
                self.wakeups.append(start)
                self.decisions.append(
                    LeaseDecision(lease, "Pending", False, "NotStarted", f"starts at {spec.start}")
                )
                continue
            # Terminal pods hold nothing; delete them so they can be created again.
            self._delete_pods([p for p in lease.pods if p.terminal], "PodFinished", "pod finished")
            active.append(lease)

        # Running pods hold their GPUs; a higher-priority lease may take those of a running
        # preemptible lease below it only when it cannot fit otherwise.
        running = {lease.key for lease in active if self._existing(lease)}
        for lease in active:
            if lease.key in running:
                for pod in self._existing(lease):
                    gpus.reserve_soft(pod.node, lease.key, pod.gpus)

        used_kw = 0.0
        # 1. Running non-preemptible leases keep running unless they alone do not fit.
        pinned = [
            lease for lease in active if lease.key in running and not self._spec(lease).preemptible
        ]
        pinned_kw = {lease.key: self._full_kw(lease) for lease in pinned}
        shed: set[tuple[str, str]] = set()
        total = sum(pinned_kw.values())
        # Shed order among them: the lowest priority first, then the newest.
        order_to_shed = sorted(
            pinned, key=lambda x: (self._spec(x).priority, -x.created.timestamp())
        )
        for lease in order_to_shed:
            if total <= budget_kw + 1e-9 or holding:
                break
            shed.add(lease.key)
            total -= pinned_kw[lease.key]

        displaced: set[tuple[str, str]] = set()
        decided: dict[tuple[str, str], LeaseDecision] = {}
        for lease in pinned:
            if lease.key in shed:
                continue
            used_kw += self._keep(lease, gpus, decided)

        # 2. Every other active lease, in priority order; all or nothing; backfill.
        position = {lease.key: n for n, lease in enumerate(active)}
        # GPUs held by running preemptible leases not yet passed or displaced: an upper
        # bound of what the lease at hand could take from the leases below it.
        soft_held = {
            lease.key: gpus.soft_gpus(lease.key)
            for lease in active
            if lease.key in running and self._spec(lease).preemptible
        }
        soft_below = sum(soft_held.values())
        running_preemptible = [
            lease.key for lease in active if lease.key in running and self._spec(lease).preemptible
        ]
        for n, lease in enumerate(active):
            key = lease.key
            if key in soft_held and key not in displaced:
                soft_below -= soft_held[key]
            if key in decided:
                continue
            spec = self._spec(lease)
            if key in shed:
                gpus.release_soft(key)
                decided[key] = self._preempt(
                    lease,
                    "EnvelopeTooLow",
                    "the envelope cannot hold this non-preemptible lease even with all mining and preemptible leases stopped",
                )
                continue
            if key in running:
                if key in displaced:
                    decided[key] = self._preempt(
                        lease, "PreemptedByPriority", "a lease of higher priority needs its GPUs"
                    )
                    continue
                need_kw = self._full_kw(lease)
                if holding or used_kw + need_kw <= budget_kw + 1e-9:
                    used_kw += self._keep(lease, gpus, decided)
                else:
                    gpus.release_soft(key)
                    decided[key] = self._preempt(
                        lease,
                        "InsufficientPower",
                        "the envelope is too low for it beside leases of higher priority",
                    )
                continue
            # Not running: admit if it fits.
            if holding:
                decided[key] = self._wait(lease, "Hold", f"nothing is admitted: {self.hold_reason}")
                continue
            per_pod, count = spec.gpus_per_pod, spec.pod_count
            capacity = gpus.capacity(per_pod)
            if not lease.constrained and capacity + soft_below // per_pod < count:
                # Cannot fit even with the GPUs of every lease below it: no search.
                decided[key] = self._wait(lease, "InsufficientGPUs", _no_gpus(count, per_pod))
                continue
            placement = _Placement(spec)
            nodes = None
            if not placement.unconstrained or capacity >= count:
                nodes = gpus.pack(count, per_pod, placement, set())
            steal: set[tuple[str, str]] = set()
            if nodes is None:
                # Try the GPUs of running preemptible leases below this one.
                below = {k for k in running_preemptible if position[k] > n and k not in decided}
                if below:
                    nodes = gpus.pack(spec.pod_count, spec.gpus_per_pod, placement, below)
                    if nodes is not None:
                        steal = below
            if nodes is None:
                decided[key] = self._wait(lease, "InsufficientGPUs", _no_gpus(count, per_pod))
                continue
            need_kw = sum(_pod_kw(self.snap, node, spec.gpus_per_pod) for node in nodes)
            if used_kw + need_kw > budget_kw + 1e-9:
                decided[key] = self._wait(
                    lease,
                    "InsufficientPower",
                    f"needs {need_kw:,.0f} kW; {max(0.0, budget_kw - used_kw):,.0f} kW left in the envelope beside leases of higher priority",
                )
                continue
            if steal:
                # Take exactly the soft GPUs needed: release the lowest leases first.
                for victim in reversed([k for k in running_preemptible if k in steal]):
                    gpus.release_soft(victim)
                    displaced.add(victim)
                    soft_below -= soft_held[victim]
                    if gpus.pack(spec.pod_count, spec.gpus_per_pod, placement, set()) is not None:
                        break
                nodes = gpus.pack(spec.pod_count, spec.gpus_per_pod, placement, set()) or nodes
                need_kw = sum(_pod_kw(self.snap, node, spec.gpus_per_pod) for node in nodes)
            used_kw += need_kw
            decided[key] = self._admit(lease, nodes, gpus, need_kw)
        for lease in active:
            self.decisions.append(decided[lease.key])
        self.decisions.sort(key=lambda d: (d.lease.namespace, d.lease.name))
        return used_kw

    @staticmethod
    def _spec(lease: Lease) -> ComputeLeaseSpec:
        assert lease.spec is not None
        return lease.spec

    def _existing(self, lease: Lease) -> list[LeasePod]:
        """The lease's pods that exist and stay (not finished, not being deleted)."""
        cached = self._existing_pods.get(lease.key)
        if cached is None:
            cached = [p for p in lease.pods if not p.terminal and not p.terminating]
            self._existing_pods[lease.key] = cached
        return cached

    def _full_kw(self, lease: Lease) -> float:
        """Power of the whole lease: existing pods where they are, missing ones at the
        highest kW per GPU of the site."""
        spec = self._spec(lease)
        existing = self._existing(lease)
        snap = self.snap
        nodes = snap.gpu_nodes
        it = 0.0
        for p in existing:
            node = nodes.get(p.node) if p.node is not None else None
            it += p.gpus * (node.per_gpu_kw if node is not None else snap.max_per_gpu_kw)
        missing = max(0, spec.pod_count - len(existing))
        return snap.pue * (it + missing * spec.gpus_per_pod * snap.max_per_gpu_kw)

    def _keep(
        self, lease: Lease, gpus: _Gpus, decided: dict[tuple[str, str], LeaseDecision]
    ) -> float:
        """A running lease keeps running; its missing pods are created where they fit."""
        spec = self._spec(lease)
        existing = self._existing(lease)
        gpus.release_soft(lease.key)
        for pod in existing:
            gpus.charge(pod.node, pod.gpus)
        present = {p.index for p in existing}
        missing = [i for i in range(spec.pod_count) if i not in present]
        extra = [p for p in existing if p.index is None or p.index >= spec.pod_count]
        if extra:  # the lease was made smaller: its surplus pods go
            self._delete_pods(extra, "LeaseResized", f"the lease now runs {spec.pod_count} pods")
            for pod in extra:
                gpus.charge(pod.node, -pod.gpus)
            existing = [p for p in existing if p not in extra]
        kw = sum(_pod_kw(self.snap, p.node, p.gpus) for p in existing)
        pods = [p.name for p in existing]
        reason, message = "Running", f"{len(existing)} of {spec.pod_count} pods exist"
        if missing and self.hold_reason is None:
            nodes = gpus.pack(len(missing), spec.gpus_per_pod, _Placement(spec), set())
            if nodes is None:
                reason, message = "WaitingForGPUs", f"{len(missing)} pods wait for free GPUs"
                kw += len(missing) * _pod_kw(self.snap, None, spec.gpus_per_pod)
            else:
                for index, node in zip(missing, nodes, strict=True):
                    kw += self._create(lease, index, node, gpus)
                    pods.append(f"{lease.name}-{index}")
        phase = "Running" if not missing and not extra else "Admitted"
        if phase == "Running":
            message = f"all {spec.pod_count} pods exist"
        decided[lease.key] = LeaseDecision(
            lease,
            phase,
            True,
            reason if phase == "Admitted" else "Running",
            message,
            gpus=spec.gpus,
            kw=kw,
            pods=sorted(pods),
        )
        return kw

    def _create(self, lease: Lease, index: int, node: str, gpus: _Gpus) -> float:
        spec = self._spec(lease)
        kw = _pod_kw(self.snap, node, spec.gpus_per_pod)
        gpus.charge(node, spec.gpus_per_pod)
        self.lease_creates.append(
            Command(
                Kind.CREATE_POD,
                f"{lease.name}-{index}",
                kw,
                "LeaseAdmitted",
                f"lease {lease.namespace}/{lease.name} (priority {spec.priority})",
                namespace=lease.namespace,
                lease=lease.name,
                node=node,
                gpus=spec.gpus_per_pod,
                index=index,
            )
        )
        return kw

    def _admit(self, lease: Lease, nodes: list[str], gpus: _Gpus, kw: float) -> LeaseDecision:
        spec = self._spec(lease)
        for index, node in enumerate(nodes):
            self._create(lease, index, node, gpus)
        return LeaseDecision(
            lease,
            "Admitted",
            True,
            "Admitted",
            f"admitted: {spec.pod_count} pods of {spec.gpus_per_pod} GPUs, {kw:,.1f} kW",
            gpus=spec.gpus,
            kw=kw,
            pods=[f"{lease.name}-{i}" for i in range(len(nodes))],
            admitted_now=True,
        )

    def _preempt(self, lease: Lease, reason: str, message: str) -> LeaseDecision:
        self._delete_pods(self._existing(lease), reason, message)
        return LeaseDecision(lease, "Preempted", False, reason, message, preempted_now=True)

    def _wait(self, lease: Lease, reason: str, message: str) -> LeaseDecision:
        was_running = lease.previous_phase in ("Running", "Admitted", "Preempted")
        return LeaseDecision(
            lease, "Preempted" if was_running else "Pending", False, reason, message
        )

    # --- mining ----------------------------------------------------------------------------

    def _mining(self, room_kw: float) -> set[str]:
        """The controllers that mine once the plan has taken effect; emits the commands."""
        snap, now = self.snap, self.now
        assert snap.site is not None
        site = snap.site.spec
        behavior = site.behavior
        pue = snap.pue
        controllers = [c for c in snap.controllers if c.dispatchable]
        revenue_per_th = site.asic.hashprice_usd_per_ph_day / 1000.0 / 24.0
        items = []
        forced_in, forced_out, prefer = set(), set(), set()
        min_mining = timedelta(seconds=behavior.min_mining_seconds)
        min_curtailed = timedelta(seconds=behavior.min_curtailed_seconds)
        mining_state = ControllerState.MINING
        price_per_kwh = self.price / 1000.0
        make_item = knapsack.Item
        for k, c in enumerate(controllers):
            weight = pue * c.power_kw
            value = c.hashrate_ths * revenue_per_th - weight * price_per_kwh
            items.append(make_item(k, weight, value))
            if c.state is mining_state:
                prefer.add(k)
                resumed_at = c.resumed_at
                if resumed_at is not None and now - resumed_at < min_mining:
                    forced_in.add(k)
                    if value <= 0:
                        self.wakeups.append(resumed_at + min_mining)
            elif c.curtailed_at is not None and now - c.curtailed_at < min_curtailed:
                forced_out.add(k)
                self.wakeups.append(c.curtailed_at + min_curtailed)
        if self.hold_reason is not None:
            # Hold: change nothing about mining (no curtailment without an envelope to
            # justify it, no resume without one to allow it); heal half-done marks only.
            chosen = {k for k, c in enumerate(controllers) if c.state is ControllerState.MINING}
        else:
            chosen = knapsack.solve(
                items, room_kw, frozenset(forced_in), frozenset(forced_out), frozenset(prefer)
            )
            chosen = self._ramp(controllers, items, chosen)
        mining = set()
        curtailed_state = ControllerState.CURTAILED
        resumes, decreases = self.resumes, self.commands_dec
        for k, c in enumerate(controllers):
            state = c.state
            if k in chosen:
                mining.add(c.name)
                if c.marked:
                    item = items[k]
                    resumes.append(
                        Command(
                            Kind.RESUME,
                            c.name,
                            item.weight if state is curtailed_state else 0.0,
                            "MiningPays" if item.value > 0 else "Hysteresis",
                            f"mining earns {item.value:,.0f} USD/h in the power left",
                        )
                    )
            elif state is mining_state or (c.marked and not c.marks_complete):
                item = items[k]
                if item.value <= 0:
                    reason = "Unprofitable"
                    message = f"energy costs more than it earns ({item.value:,.0f} USD/h)"
                else:
                    reason, message = "Envelope", "the envelope needs its power"
                delta = -item.weight if state is mining_state else 0.0
                decreases.append(Command(Kind.CURTAIL, c.name, delta, reason, message))
        return mining

    def _ramp(
        self, controllers: list[Controller], items: list[knapsack.Item], chosen: set[int]
    ) -> set[int]:
        """Limit resumed mining to maxRampUpKWPerMinute over any minute."""
        assert self.snap.site is not None
        rate = self.snap.site.spec.behavior.max_ramp_up_kw_per_minute
        window_start = self.now - RAMP_WINDOW
        recent = [
            c
            for c in controllers
            if c.state is ControllerState.MINING and c.resumed_at and c.resumed_at > window_start
        ]
        allowance = rate - sum(self.snap.pue * c.power_kw for c in recent)
        resumes = sorted(
            (k for k in chosen if controllers[k].state is ControllerState.CURTAILED),
            key=lambda k: (-items[k].value / items[k].weight, k),
        )
        kept = set(chosen)
        for k in resumes:
            if items[k].weight <= allowance + 1e-9:
                allowance -= items[k].weight
            else:
                kept.discard(k)
        if len(kept) < len(chosen):
            oldest = min((c.resumed_at for c in recent if c.resumed_at), default=self.now)
            self.wakeups.append(max(oldest + RAMP_WINDOW, self.now + timedelta(seconds=1)))
        return kept

    # --- totals ----------------------------------------------------------------------------

    def _finish(self, fixed_it: float) -> Plan:
        snap = self.snap
        assert snap.site is not None
        pue = snap.pue
        by_name = {c.name: c for c in snap.controllers}
        mining_it = sum(by_name[n].power_kw for n in self.mining)
        mining_it += sum(c.committed_it_kw for c in snap.controllers if not c.dispatchable)
        gpu_it = sum(n.idle_kw + n.foreign_gpus * n.per_gpu_kw for n in snap.gpu_nodes.values())
        lease_kw = sum(d.kw for d in self.decisions if d.runs)
        invalid_kw = pue * sum(
            p.gpus * _per_gpu_kw(snap, p.node)
            for lease in snap.leases
            if lease.spec is None
            for p in _live(lease.pods)
        )
        planned = Draw(
            mining_kw=pue * mining_it,
            gpu_kw=pue * gpu_it + lease_kw + invalid_kw,
            overhead_kw=snap.fixed_kw,
        )

        commands = [*self.commands_dec, *self.lease_creates, *self.resumes]
        if snap.site.spec.suspend:
            commands = []
        limit = self.limit if self.limit is not None else self.committed.total_kw
        schedule = make_before_break(commands, self.committed.total_kw, limit)
        if self.limit is None:
            # No envelope: decreases only (the pods of ended or deleted leases).
            schedule = Schedule(tuple(c for c in schedule.now if c.is_decrease), (), 0.0)

        asic = snap.site.spec.asic
        mining_names = set(self.mining) | {
            c.name for c in snap.controllers if not c.dispatchable and c.committed_it_kw > 0
        }
        mining_rev = (
            sum(by_name[n].hashrate_ths for n in mining_names)
            * asic.hashprice_usd_per_ph_day
            / 1000.0
            / 24.0
        )
        lease_rev = sum(
            d.gpus * self._spec(d.lease).price_per_gpu_hour_usd for d in self.decisions if d.runs
        )
        states = {s.value.lower(): 0 for s in ControllerState}
        for c in snap.controllers:
            states[c.state.value.lower()] += 1
        future = [w for w in self.wakeups if w > self.now]
        return Plan(
            site=snap.name,
            at=self.now,
            envelope=self.envelope,
            limit_kw=self.limit,
            committed=self.committed,
            planned=planned,
            commands=commands,
            schedule=schedule,
            mining=sorted(self.mining),
            leases=self.decisions,
            controllers=states,
            held_nodes=sorted(c.name for c in snap.controllers if c.state is ControllerState.HELD),
            gpus_total=sum(n.gpus for n in snap.gpu_nodes.values() if n.schedulable),
            gpus_leased=sum(d.gpus for d in self.decisions if d.runs),
            mining_revenue_usd_per_hour=mining_rev,
            lease_revenue_usd_per_hour=lease_rev,
            energy_cost_usd_per_hour=planned.total_kw * self.price / 1000.0,
            energy_price_usd_per_mwh=self.price,
            next_wakeup=min(future) if future else None,
            problems=self.problems,
            hold_reason=self.hold_reason,
            in_flight=states["curtailing"]
            + sum(
                1 for lease in snap.leases for p in lease.pods if p.terminating and not p.terminal
            )
            + sum(1 for p in snap.orphan_pods if p.terminating and not p.terminal),
        )

    def _empty(self, reason: str) -> Plan:
        empty = Draw()
        return Plan(
            site=self.snap.name,
            at=self.now,
            envelope=None,
            limit_kw=None,
            committed=empty,
            planned=empty,
            commands=[],
            schedule=Schedule((), (), 0.0),
            mining=[],
            leases=[],
            controllers={},
            held_nodes=[],
            gpus_total=0,
            gpus_leased=0,
            mining_revenue_usd_per_hour=0.0,
            lease_revenue_usd_per_hour=0.0,
            energy_cost_usd_per_hour=0.0,
            energy_price_usd_per_mwh=0.0,
            next_wakeup=None,
            problems=self.problems,
            hold_reason=reason,
        )
