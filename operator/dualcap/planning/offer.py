"""What a site offers a new GPU load: a pure function of its snapshot and its plan.

The fleet (``dualcap fleet``, on a MultiKueue manager) reads each site's offer from its
Site's status to choose where a Workload runs. The offer says:

- how many GPUs are free;
- the room for new load now, cheapest first: the headroom under the limit costs nothing;
  each mining controller's draw is room too, at the mining margin the site would lose by
  curtailing it (revenue minus its energy at the current price, per MWh it frees; zero
  when mining does not pay);
- the envelope ahead: every change of the limit or of the energy price over the next
  hours, so that a long job is placed where the power stays;
- the facility kW a GPU draws, so the fleet can turn a Workload's GPUs into kW.

Each site's own power check still decides admission: an offer is advice, never a promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from dualcap.api.site import ControllerState
from dualcap.planning.accounting import energy_cost_usd_per_hour
from dualcap.planning.decisions import Plan
from dualcap.planning.entities import SiteSnapshot
from dualcap.planning.envelope import compose

HORIZON = timedelta(hours=12)  # how far ahead the envelope is told
MAX_STEPS = 16  # and at most this many changes
MAX_TIERS = 8  # room tiers: the cheapest, the rest merged into the last


@dataclass(frozen=True, slots=True)
class Room:
    """Facility kW a new load can have, at what it costs the site per MWh it takes."""

    kw: float
    lost_usd_per_mwh: float


@dataclass(frozen=True, slots=True)
class Step:
    """From ``at``: the limit and the energy price."""

    at: datetime
    limit_kw: float
    energy_usd_per_mwh: float


@dataclass(frozen=True, slots=True)
class Offer:
    observed_at: datetime
    gpus_free: int
    per_gpu_kw: float  # facility kW of one busy GPU (the site's highest)
    limit_kw: float
    free_kw: float  # the headroom: room that costs nothing
    room: tuple[Room, ...]  # cheapest first, free_kw first
    energy_usd_per_mwh: float
    ahead: tuple[Step, ...]  # changes of the limit or the price within HORIZON, in time order
    # All the room: the headroom and every mining controller curtailed
    available_kw: float = field(init=False, compare=False)
    # What the site draws that no new load can displace (the limit minus the room)
    floor_kw: float = field(init=False, compare=False)
    ahead_at: tuple[datetime, ...] = field(init=False, compare=False)  # when each step comes

    def __post_init__(self) -> None:
        available = sum(r.kw for r in self.room)
        object.__setattr__(self, "available_kw", available)
        object.__setattr__(self, "floor_kw", max(0.0, self.limit_kw - available))
        object.__setattr__(self, "ahead_at", tuple(s.at for s in self.ahead))


def offer(snap: SiteSnapshot, p: Plan, now: datetime) -> Offer | None:
    """The site's offer at ``now``; None while it has no usable envelope (a hold)."""
    if p.limit_kw is None or p.hold is not None or snap.site is None:
        return None
    price = p.energy_price_usd_per_mwh
    free = max(0.0, p.limit_kw - p.committed_kw)
    tiers: list[Room] = []
    for c in snap.controllers:
        if c.state is not ControllerState.MINING or not c.dispatchable:
            continue
        freed = c.committed_it_kw * snap.pue - snap.pue * c.asleep_kw
        if freed <= 0:
            continue
        margin = c.revenue_usd_per_hour - energy_cost_usd_per_hour(freed, price)
        tiers.append(Room(freed, max(0.0, margin) / freed * 1000.0))
    tiers.sort(key=lambda r: r.lost_usd_per_mwh)
    room = [Room(free, 0.0), *_merged(tiers)]
    return Offer(
        observed_at=now,
        gpus_free=max(0, p.gpus_total - p.gpus_leased),
        per_gpu_kw=snap.pue * snap.max_per_gpu_kw,
        limit_kw=p.limit_kw,
        free_kw=free,
        room=tuple(r for r in room if r.kw > 0),
        energy_usd_per_mwh=price,
        ahead=ahead(snap, now),
    )


def _merged(tiers: list[Room]) -> list[Room]:
    """At most MAX_TIERS - 1 tiers (the headroom is the first): equal margins merged, and
    the dearest beyond the limit merged into the last at their weighted margin."""
    merged: list[Room] = []
    for r in tiers:
        if merged and abs(merged[-1].lost_usd_per_mwh - r.lost_usd_per_mwh) < 0.5:
            last = merged[-1]
            merged[-1] = Room(last.kw + r.kw, last.lost_usd_per_mwh)
        else:
            merged.append(r)
    keep = MAX_TIERS - 1
    if len(merged) > keep:
        rest = merged[keep - 1 :]
        kw = sum(r.kw for r in rest)
        cost = sum(r.kw * r.lost_usd_per_mwh for r in rest) / kw
        merged = [*merged[: keep - 1], Room(kw, cost)]
    return merged


def taken(o: Offer, gpus: int, kw: float) -> Offer:
    """``o`` once a Workload of ``gpus`` GPUs and ``kw`` is nominated there: its GPUs gone,
    its kW out of the room, the cheapest first (as the fleet's choice counted it)."""
    left, room = kw, []
    for r in o.room:
        take = min(left, r.kw)
        left -= take
        if r.kw - take > 1e-9:
            room.append(Room(r.kw - take, r.lost_usd_per_mwh))
    return replace(
        o, gpus_free=max(0, o.gpus_free - gpus), free_kw=max(0.0, o.free_kw - kw), room=tuple(room)
    )


def ahead(snap: SiteSnapshot, now: datetime) -> tuple[Step, ...]:
    """Every change of the site's limit or energy price within HORIZON of ``now``."""
    if not snap.budgets:
        return ()
    specs = {name: b.spec for name, b in snap.budgets.items()}
    steps: list[Step] = []
    at = now
    site = compose(specs, at, snap.price_budget)
    last = (site.envelope.limit_kw, site.envelope.energy_price_usd_per_mwh)
    # Stepped on every budget's own next change (the composite's next change is only the
    # first that moves the lowest limit among each budget's first change), and the price's.
    for _ in range(4 * MAX_STEPS):
        changes = [e.next_change.at for e in site.by_budget.values() if e.next_change]
        if site.envelope.next_price_change is not None:
            changes.append(site.envelope.next_price_change)
        changes = [t for t in changes if t > at]
        if not changes or min(changes) > now + HORIZON or len(steps) >= MAX_STEPS:
            break
        at = min(changes)
        site = compose(specs, at, snap.price_budget)
        now_is = (site.envelope.limit_kw, site.envelope.energy_price_usd_per_mwh)
        if now_is != last:
            steps.append(Step(at, *now_is))
            last = now_is
    return tuple(steps)
