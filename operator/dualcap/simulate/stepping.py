"""The run: the planner stepped over the scenario, each step applied as an ideal cluster
would and accounted; the naive policies on the same series with the same accounting."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dualcap.api.names import API_VERSION
from dualcap.planning import build_fleet, plan
from dualcap.planning.accounting import (
    breakeven_usd_per_mwh,
    energy_cost_usd_per_hour,
    gpu_baseline_it_kw,
    mining_revenue_usd_per_hour,
)
from dualcap.planning.entities import SiteSnapshot
from dualcap.planning.plan import site_envelope
from dualcap.planning.world import apply, miner_pod
from dualcap.simulate.scenario import KINDS, POLICIES, Arrival, Scenario


@dataclass
class Totals:
    energy_kwh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    revenue_usd: dict[str, float] = field(default_factory=lambda: {"mining": 0.0, "gpu": 0.0})
    energy_cost_usd: float = 0.0
    gpu_hours: float = 0.0
    over_steps: int = 0
    # per step, for the chart: kW by kind and the limit
    series: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in (*KINDS, "limit")})  # fmt: skip

    @property
    def net_usd(self) -> float:
        return sum(self.revenue_usd.values()) - self.energy_cost_usd


def account(
    totals: Totals,
    snap: SiteSnapshot,
    mining: set[str],
    leased_gpus: Sequence[tuple[int, float]],
    limit_kw: float,
    price: float,
    hashprice: float,
    hours: float,
) -> None:
    """One step of a policy: which controllers mine, which GPUs are leased at what price."""
    pue = snap.pue
    by_name = {c.name: c for c in snap.controllers}
    mining_it = sum(by_name[n].power_kw for n in mining if n in by_name)
    used = sum(g for g, _ in leased_gpus)
    nodes = [n for n in snap.gpu_nodes.values() if n.schedulable]
    gpu_it = gpu_baseline_it_kw(nodes) + used * (snap.max_per_gpu_kw if nodes else 0.0)
    draw = {"mining": pue * mining_it, "gpu": pue * gpu_it, "overhead": snap.fixed_kw}
    for kind, kw in draw.items():
        totals.energy_kwh[kind] += kw * hours
        totals.series[kind].append(kw)
    totals.series["limit"].append(limit_kw)
    hashrate = sum(by_name[n].hashrate_ths for n in mining if n in by_name)
    totals.revenue_usd["mining"] += mining_revenue_usd_per_hour(hashrate, hashprice) * hours
    totals.revenue_usd["gpu"] += sum(g * p for g, p in leased_gpus) * hours
    totals.gpu_hours += used * hours
    totals.energy_cost_usd += energy_cost_usd_per_hour(sum(draw.values()), price) * hours
    if sum(draw.values()) > limit_kw + 1e-6:
        totals.over_steps += 1


def _active(arrivals: Sequence[Arrival], at: datetime) -> list[Arrival]:
    live = [a for a in arrivals if a.at <= at < a.at + timedelta(hours=a.hours)]
    return sorted(live, key=lambda a: (-a.priority, a.at, a.name))


def naive(
    snap: SiteSnapshot,
    arrivals: Sequence[Arrival],
    at: datetime,
    limit_kw: float,
    gpu_cap_kw: float | None,
) -> tuple[set[str], list[tuple[int, float]]]:
    """always-mine (``gpu_cap_kw`` None) or fixed-split: leases first as they fit (within
    the GPU share), then every controller that fits, in name order, whatever the price."""
    pue = snap.pue
    nodes = [n for n in snap.gpu_nodes.values() if n.schedulable]
    free = sum(n.gpus for n in nodes)
    gpu_kw = pue * gpu_baseline_it_kw(nodes)
    per_gpu = pue * (snap.max_per_gpu_kw if nodes else 0.0)
    room = limit_kw - snap.fixed_kw - gpu_kw
    leased: list[tuple[int, float]] = []
    for a in _active(arrivals, at):
        kw = a.gpus * per_gpu
        cap_ok = gpu_cap_kw is None or gpu_kw + kw <= gpu_cap_kw
        if a.gpus <= free and kw <= room and cap_ok:
            leased.append((a.gpus, a.price))
            free -= a.gpus
            room -= kw
            gpu_kw += kw
    if gpu_cap_kw is not None:
        room = min(room, limit_kw - snap.fixed_kw - gpu_cap_kw)
    mining: set[str] = set()
    for c in sorted(snap.controllers, key=lambda c: c.name):
        if pue * c.power_kw <= room:
            mining.add(c.name)
            room -= pue * c.power_kw
    return mining, leased


@dataclass
class Result:
    scenario: Scenario
    totals: dict[str, Totals]
    times: list[datetime]
    prices: list[float]
    breakeven: list[float]  # USD/MWh at which a typical controller's mining pays its energy
    reconciles: int


def _lease_object(a: Arrival, site: str) -> dict[str, Any]:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeLease",
        "metadata": {
            "name": a.name,
            "namespace": a.namespace,
            "uid": f"sim-{a.namespace}-{a.name}",
            "generation": 1,
            "creationTimestamp": a.at.astimezone(ZoneInfo("UTC")).strftime(stamp),
        },
        "spec": {
            "siteRef": site,
            "gpus": a.gpus,
            "gpusPerPod": a.gpus_per_pod,
            "priority": a.priority,
            "preemptible": a.preemptible,
            "pricePerGPUHourUSD": a.price,
            "start": a.at.astimezone(ZoneInfo("UTC")).strftime(stamp),
            "end": (a.at + timedelta(hours=a.hours)).astimezone(ZoneInfo("UTC")).strftime(stamp),
            "template": {"spec": {"containers": [{"name": "main", "image": "sim"}]}},
        },
    }


def simulate(sc: Scenario, max_reconciles: int = 12) -> Result:
    objects = copy.deepcopy(sc.objects)
    site_obj = next(o for o in objects if o.get("kind") == "Site")
    asic = site_obj["spec"].get("asic")  # none on a GPU-only site
    miner_labels = asic["miningPodSelector"]["matchLabels"] if asic else None
    for node in [o for o in objects if o.get("kind") == "Node"]:
        if miner_labels and node["metadata"].get("labels", {}).get("dualcap.io/role") == "asic":
            objects.append(miner_pod(node["metadata"]["name"], miner_labels))
    totals = {name: Totals() for name in POLICIES}
    times: list[datetime] = []
    prices: list[float] = []
    breakeven: list[float] = []
    arrived: set[str] = set()
    hours = sc.step.total_seconds() / 3600
    reconciles = 0
    base_limit = next(o for o in objects if o.get("kind") == "PowerBudget")["spec"]["limitKW"]
    for i in range(sc.steps):
        at = sc.start + i * sc.step
        price, hashprice = sc.energy_price(i, at), sc.hourly(sc.hashprices, at)
        for obj in objects:  # this hour's economics
            if obj.get("kind") == "PowerBudget":
                obj["spec"]["energyPrice"] = {"usdPerMWh": price}
            elif obj.get("kind") == "Site" and obj["spec"].get("asic"):
                obj["spec"]["asic"]["hashpriceUSDPerPHDay"] = hashprice
        for a in sc.arrivals:
            if a.at <= at and a.name not in arrived:
                arrived.add(a.name)
                objects.append(_lease_object(a, sc.site))
        for _ in range(max_reconciles):
            p = plan(build_fleet(objects, at).sites[sc.site], at)
            reconciles += 1
            if not p.schedule.now:
                break
            objects = apply(objects, p.schedule.now, at, sc.site, miner_labels=miner_labels)
        snap = build_fleet(objects, at).sites[sc.site]
        envelope = site_envelope(snap, at)
        assert envelope is not None
        limit = envelope.envelope.limit_kw
        leased = [
            (d.gpus, d.lease.spec.price_per_gpu_hour_usd)
            for d in p.leases
            if d.runs and d.lease.spec is not None
        ]
        account(totals["dualcap"], snap, set(p.mining), leased, limit, price, hashprice, hours)
        for name, cap in (
            ("always-mine", None),
            ("fixed-split", sc.split_percent / 100 * base_limit),
        ):
            mining, leased_naive = naive(snap, sc.arrivals, at, limit, cap)
            account(totals[name], snap, mining, leased_naive, limit, price, hashprice, hours)
        times.append(at)
        prices.append(price)
        typical = max(snap.controllers, key=lambda c: c.power_kw, default=None)
        breakeven.append(
            breakeven_usd_per_mwh(typical, hashprice, snap.pue) if typical else math.nan
        )
    return Result(sc, totals, times, prices, breakeven, reconciles)
