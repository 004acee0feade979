"""GPU packing: which nodes a lease's pods may use, and best-fit placement on free GPUs."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from dualcap.planning.entities import GpuNode, Placement

LeaseKey = tuple[str, str]


class Gpus:
    """Free GPUs per node in the planned state, with best-fit packing.

    Nodes that any lease may use (schedulable, untainted) sit in buckets by free GPUs, so
    best fit for the common lease (no nodeSelector, tolerations or affinity) costs a few
    bucket look-ups instead of a scan. Constrained leases scan the nodes (the rare path).

    GPUs of running leases are held "soft": a lease of higher priority may take those of
    the running preemptible leases below it. Those leases are the *below* pool (a range of
    them in priority order: the lease at hand leaves it as admission passes it, victims
    leave it from the bottom); a second set of buckets, by free plus below-pool GPUs, packs
    a lease as if it took them.
    """

    def __init__(self, nodes: Mapping[str, GpuNode]):
        self.nodes = nodes
        self.free: dict[str, int] = {n.name: n.gpus - n.foreign_gpus for n in nodes.values()}
        self.open = {n.name for n in nodes.values() if n.schedulable and not n.taints}
        self.max_gpus = max((n.gpus for n in nodes.values()), default=0)
        self.soft: dict[LeaseKey, list[tuple[str, int]]] = {}  # lease -> (node, GPUs)
        self.below_gpus: dict[str, int] = {}  # node -> GPUs held by the below pool
        self.below: set[LeaseKey] = set()
        # The buckets are built by seal(), once the GPUs already held are charged. They
        # hold the open nodes by rank (their place in name order: ints compare fast).
        self.sealed = False
        self.names = sorted(self.open)
        self.rank = {name: r for r, name in enumerate(self.names)}
        self.buckets: list[list[int]] = []
        self.below_buckets: list[list[int]] = []

    def seal(self) -> None:
        """Build the buckets from the GPUs charged and held so far; queries may follow."""
        self.buckets = [[] for _ in range(self.max_gpus + 1)]
        self.below_buckets = [[] for _ in range(self.max_gpus + 1)]
        top, below = self.max_gpus, self.below_gpus
        for r, name in enumerate(self.names):
            f = self.free[name]
            if 0 < f <= top:
                self.buckets[f].append(r)
            f += below.get(name, 0)
            if 0 < f <= top:
                self.below_buckets[f].append(r)
        self.sealed = True

    @staticmethod
    def _rebucket(buckets: list[list[int]], rank: int, before: int, after: int) -> None:
        top = len(buckets) - 1
        if 0 < before <= top:
            bucket = buckets[before]
            del bucket[bisect.bisect_left(bucket, rank)]
        if 0 < after <= top:
            bisect.insort(buckets[after], rank)

    def _move(self, node: str, delta: int, below_delta: int = 0) -> None:
        before = self.free[node]
        after = before + delta
        self.free[node] = after
        rank = self.rank.get(node) if self.sealed else None
        if rank is not None:
            self._rebucket(self.buckets, rank, before, after)
            if delta + below_delta:
                extra = self.below_gpus.get(node, 0)
                self._rebucket(
                    self.below_buckets, rank, before + extra, after + extra + below_delta
                )
        if below_delta:
            self.below_gpus[node] = self.below_gpus.get(node, 0) + below_delta

    def _shift_below(self, node: str, delta: int) -> None:
        """GPUs held by the below pool on ``node`` change by ``delta`` (free unchanged)."""
        self._move(node, 0, delta)

    def charge(self, node: str | None, gpus: int) -> None:
        if node is not None and node in self.free and gpus:
            self._move(node, -gpus)

    def reserve_soft(self, node: str | None, lease: LeaseKey, gpus: int) -> None:
        if node is not None and node in self.free:
            self.soft.setdefault(lease, []).append((node, gpus))
            self._move(node, -gpus)

    def release_soft(self, lease: LeaseKey) -> None:
        """The lease's soft GPUs are free again (it is preempted, or kept and charged)."""
        in_pool = lease in self.below
        self.below.discard(lease)
        for node, gpus in self.soft.pop(lease, []):
            self._move(node, gpus, -gpus if in_pool else 0)

    def join_below(self, lease: LeaseKey) -> None:
        """The lease's soft GPUs may be taken by leases above it."""
        if lease not in self.below:
            self.below.add(lease)
            for node, gpus in self.soft.get(lease, []):
                self._shift_below(node, gpus)

    def leave_below(self, lease: LeaseKey) -> None:
        """The lease's soft GPUs may no longer be taken (admission has reached it)."""
        if lease in self.below:
            self.below.discard(lease)
            for node, gpus in self.soft.get(lease, []):
                self._shift_below(node, -gpus)

    @staticmethod
    def _capacity(buckets: list[list[int]], per_pod: int) -> int:
        pods = 0
        for f in range(per_pod, len(buckets)):
            bucket = buckets[f]
            if bucket:
                pods += len(bucket) * (f // per_pod)
        return pods

    def could_ever_hold(self, count: int, per_pod: int) -> bool:
        """Whether ``count`` pods of ``per_pod`` GPUs would fit on the schedulable nodes
        with nothing else on them (False: waiting will never make room)."""
        pods = 0
        for node in self.nodes.values():
            if node.schedulable and per_pod > 0:
                pods += node.gpus // per_pod
        return pods >= count

    def capacity(self, per_pod: int, with_below: bool = False) -> int:
        """Pods of ``per_pod`` GPUs the open nodes can still take (``with_below``: taking
        the GPUs of the below pool too)."""
        return self._capacity(self.below_buckets if with_below else self.buckets, per_pod)

    def pack(
        self, count: int, per_pod: int, placement: Placement, with_below: bool = False
    ) -> list[str] | None:
        """Nodes for ``count`` pods of ``per_pod`` GPUs each (best fit), or None. With
        ``with_below``, the GPUs of the below pool count as free."""
        if not placement.constrained:
            buckets = self.below_buckets if with_below else self.buckets
            if per_pod > self.max_gpus or self._capacity(buckets, per_pod) < count:
                return None
            chosen: list[str] = []
            moved: list[tuple[int, int]] = []
            for _ in range(count):
                # Best fit: the fullest open node that still takes the pod (ties: by name).
                f = next(f for f in range(per_pod, self.max_gpus + 1) if buckets[f])
                rank = buckets[f][0]
                chosen.append(self.names[rank])
                # Provisional, undone below.
                self._rebucket(buckets, rank, f, f - per_pod)
                moved.append((rank, f - per_pod))
            for rank, f in reversed(moved):
                self._rebucket(buckets, rank, f, f + per_pod)
            return chosen
        avail = {}
        below_gpus = self.below_gpus if with_below else {}
        for name, gpu_node in self.nodes.items():
            if not gpu_node.schedulable or not placement.allows(gpu_node):
                continue
            free = self.free[name] + below_gpus.get(name, 0)
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
