"""Power and economics: what draws how much, and what it earns and costs.

One place for each formula: the planner counts committed and planned draw with these,
`dualcap simulate` accounts its policies with the same ones. All draws are facility kW
(IT kW times the site's PUE) unless the name says IT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from dualcap.api.site import ControllerState

if TYPE_CHECKING:
    from dualcap.planning.entities import Controller, GpuNode, LeasePod, SiteSnapshot


@dataclass(slots=True)
class Draw:
    """Facility kW by kind."""

    mining_kw: float = 0.0
    gpu_kw: float = 0.0
    overhead_kw: float = 0.0
    unmodelled_kw: float = 0.0  # what the site meter reads beyond the sum of the parts

    @property
    def total_kw(self) -> float:
        return self.mining_kw + self.gpu_kw + self.overhead_kw + self.unmodelled_kw


def mining_revenue_usd_per_hour(hashrate_ths: float, hashprice_usd_per_ph_day: float) -> float:
    """What a hashrate earns at a hashprice (USD per PH/s per day)."""
    return hashrate_ths * hashprice_usd_per_ph_day / 1000.0 / 24.0


def energy_cost_usd_per_hour(kw: float, price_usd_per_mwh: float) -> float:
    return kw * price_usd_per_mwh / 1000.0


def breakeven_usd_per_mwh(controller: Controller, hashprice: float, pue: float) -> float:
    """The energy price at which a controller's mining just pays its energy."""
    revenue = mining_revenue_usd_per_hour(controller.hashrate_ths, hashprice)
    return revenue / (pue * controller.power_kw) * 1000.0


def per_gpu_kw(snap: SiteSnapshot, node: str | None) -> float:
    """IT kW of one busy GPU on ``node`` (unknown or no node: the site's highest)."""
    gpu_node = snap.gpu_nodes.get(node) if node is not None else None
    return gpu_node.per_gpu_kw if gpu_node is not None else snap.max_per_gpu_kw


def pod_kw(snap: SiteSnapshot, node: str | None, gpus: int) -> float:
    """Facility kW of a pod: its GPUs at the node's kW per GPU."""
    return snap.pue * gpus * per_gpu_kw(snap, node)


def pods_it_kw(snap: SiteSnapshot, pods: Iterable[LeasePod]) -> float:
    """IT kW of the pods that are not finished (a pod draws until it is gone)."""
    return sum(p.gpus * per_gpu_kw(snap, p.node) for p in pods if not p.terminal)


def lease_pods_kw_by_node(
    pods: Iterable[LeasePod], gpu_nodes: Mapping[str, GpuNode]
) -> dict[str, float]:
    """IT kW of the unfinished lease pods on each GPU node, at the node's kW per GPU (what
    a node's measured draw holds besides its baseline)."""
    out: dict[str, float] = {}
    for pod in pods:
        node = gpu_nodes.get(pod.node) if pod.node is not None else None
        if node is not None and not pod.terminal:
            out[node.name] = out.get(node.name, 0.0) + pod.gpus * node.per_gpu_kw
    return out


def gpu_baseline_it_kw(nodes: Iterable[GpuNode]) -> float:
    """IT kW the GPU nodes draw whatever dualcap does: idle power and others' GPU pods."""
    return sum(
        n.idle_kw + n.foreign_gpus * n.per_gpu_kw
        if n.measured_baseline_kw is None
        else n.measured_baseline_kw
        for n in nodes
    )


def committed(snap: SiteSnapshot, gpu_baseline_it: float) -> Draw:
    """The draw now, counted conservatively: controllers until confirmed stopped, every
    lease pod (orphans too) until gone."""
    mining_it = sum(c.committed_it_kw for c in snap.controllers)
    pods = chain.from_iterable((*(lease.pods for lease in snap.leases), snap.orphan_pods))
    pue = snap.pue
    return Draw(
        mining_kw=pue * mining_it,
        gpu_kw=pue * (gpu_baseline_it + pods_it_kw(snap, pods)),
        overhead_kw=snap.fixed_kw,
    )


def held_mining_it_kw(snap: SiteSnapshot) -> float:
    """IT kW of controllers no command changes (held by a person, NotReady), and of blocks
    being curtailed whose agent has gone quiet: nothing carries the curtailment to their
    miners, so what they draw is not freed and the rest of the site must make room."""
    quiet = set(snap.unreported)
    return sum(
        c.committed_it_kw
        for c in snap.controllers
        if not c.dispatchable or (c.state is ControllerState.CURTAILING and c.name in quiet)
    )


def invalid_leases_it_kw(snap: SiteSnapshot) -> float:
    """IT kW of the pods of leases invalid as written (kept running, never planned)."""
    return sum(pods_it_kw(snap, lease.pods) for lease in snap.leases if lease.spec is None)


def planned(
    snap: SiteSnapshot,
    mining: Iterable[Controller],
    held_mining_it: float,
    gpu_baseline_it: float,
    invalid_it: float,
    lease_kw: float,
) -> Draw:
    """The draw once the plan has taken effect: ``mining`` mine, the leases that run draw
    ``lease_kw`` (facility kW), the rest of the GPU nodes their baseline."""
    pue = snap.pue
    chosen = {c.name for c in mining}
    asleep_it = sum(
        c.asleep_kw for c in snap.controllers if c.dispatchable and c.name not in chosen
    )
    mining_it = sum(c.power_kw for c in mining) + held_mining_it + asleep_it
    return Draw(
        mining_kw=pue * mining_it,
        gpu_kw=pue * gpu_baseline_it + lease_kw + pue * invalid_it,
        overhead_kw=snap.fixed_kw,
    )
