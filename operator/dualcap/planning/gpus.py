"""GPU packing: which nodes a lease's pods may use, and best-fit placement on free GPUs."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dualcap.api.lease import ComputeLeaseSpec

if TYPE_CHECKING:
    from dualcap.planning.snapshot import GpuNode

LeaseKey = tuple[str, str]


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
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


@dataclass(frozen=True, slots=True)
class Placement:
    """Which GPU nodes a lease's pods may use, by its template's nodeSelector and
    tolerations (the common forms; the scheduler has the last word)."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    # The template asks for particular nodes (nodeSelector, tolerations or affinity): its
    # pods may not go on just any open node, so counting free GPUs says nothing about it.
    constrained: bool

    @classmethod
    def of(cls, spec: ComputeLeaseSpec) -> Placement:
        pod_spec = spec.template.spec
        extra = pod_spec.model_extra or {}
        selector = extra.get("nodeSelector")
        node_selector = dict(selector) if isinstance(selector, dict) else {}
        tolerations = tuple(
            t.model_dump(by_alias=True, exclude_none=True) for t in pod_spec.tolerations or []
        )
        constrained = bool(node_selector or tolerations or extra.get("affinity"))
        return cls(node_selector, tolerations, constrained)

    def allows(self, node: GpuNode) -> bool:
        labels = node.labels
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return all(tolerates(self.tolerations, taint) for taint in node.taints)


class Gpus:
    """Free GPUs per node in the planned state, with best-fit packing.

    Nodes that any lease may use (schedulable, untainted) sit in buckets by free GPUs, so
    best fit for the common lease (no nodeSelector, tolerations or affinity) costs a few
    bucket look-ups instead of a scan. Constrained leases, and leases that may take the
    GPUs of running preemptible leases below them, scan the nodes (the rare path).

    GPUs of running leases are held "soft": a lease of higher priority may take them.
    """

    def __init__(self, nodes: Mapping[str, GpuNode]):
        self.nodes = nodes
        self.free: dict[str, int] = {n.name: n.gpus - n.foreign_gpus for n in nodes.values()}
        self.open = {n.name for n in nodes.values() if n.schedulable and not n.taints}
        self.max_gpus = max((n.gpus for n in nodes.values()), default=0)
        self.buckets: list[list[str]] = [[] for _ in range(self.max_gpus + 1)]
        for name in sorted(self.open):
            f = self.free[name]
            if 0 < f <= self.max_gpus:
                self.buckets[f].append(name)
        self.soft: dict[LeaseKey, list[tuple[str, int]]] = {}  # lease -> (node, GPUs)

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
        if node is not None and node in self.free and gpus:
            self._move(node, -gpus)

    def reserve_soft(self, node: str | None, lease: LeaseKey, gpus: int) -> None:
        if node is not None and node in self.free:
            self.soft.setdefault(lease, []).append((node, gpus))
            self._move(node, -gpus)

    def release_soft(self, lease: LeaseKey) -> None:
        for node, gpus in self.soft.pop(lease, []):
            self._move(node, gpus)

    def soft_gpus(self, lease: LeaseKey) -> int:
        return sum(g for _, g in self.soft.get(lease, []))

    def capacity(self, per_pod: int) -> int:
        """Pods of ``per_pod`` GPUs the open nodes can still take."""
        buckets = self.buckets
        return sum(len(buckets[f]) * (f // per_pod) for f in range(per_pod, self.max_gpus + 1))

    def pack(
        self, count: int, per_pod: int, placement: Placement, use_soft: Iterable[LeaseKey] = ()
    ) -> list[str] | None:
        """Nodes for ``count`` pods of ``per_pod`` GPUs each (best fit), or None. With
        ``use_soft``, the GPUs those leases hold count as free."""
        use_soft = tuple(use_soft)
        if not placement.constrained and not use_soft:
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
            if not gpu_node.schedulable or not placement.allows(gpu_node):
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
