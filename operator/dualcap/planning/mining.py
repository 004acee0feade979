"""Mining fills the power the leases leave: a knapsack of profit, shaped by hysteresis and
the ramp limit.

Only controllers dualcap may dispatch take part (not held by a person, Ready). Each is an
item of weight its facility kW and value its revenue minus its energy cost; the knapsack
(``planning.knapsack``) chooses the most profitable set in the room left. Hysteresis: a
controller resumed less than minMiningSeconds ago stays in if it fits, one curtailed less
than minCurtailedSeconds ago stays out. The ramp limit caps resumed power per minute (a
shed is never limited). While the site holds, mining is left as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dualcap.api.site import ControllerState
from dualcap.planning import knapsack
from dualcap.planning.commands import Command, CommandReason, Kind
from dualcap.planning.decisions import Hold, Orders
from dualcap.planning.entities import Controller, SiteSnapshot

RAMP_WINDOW = timedelta(minutes=1)
MINING = ControllerState.MINING
CURTAILED = ControllerState.CURTAILED


def choose(
    snap: SiteSnapshot,
    now: datetime,
    room_kw: float,
    price_usd_per_mwh: float,
    hold: Hold | None,
    orders: Orders,
) -> list[Controller]:
    """The controllers that mine once the plan has taken effect; emits the commands."""
    if snap.site is None or not snap.controllers:
        return []
    behavior = snap.site.spec.behavior
    controllers = [c for c in snap.controllers if c.dispatchable]
    min_mining = timedelta(seconds=behavior.min_mining_seconds)
    min_curtailed = timedelta(seconds=behavior.min_curtailed_seconds)
    price_per_kwh = price_usd_per_mwh / 1000.0
    make_item = knapsack.Item
    items = [
        make_item(k, c.facility_kw, c.revenue_usd_per_hour - c.facility_kw * price_per_kwh)
        for k, c in enumerate(controllers)
    ]
    prefer = {k for k, c in enumerate(controllers) if c.state is MINING}
    # Hysteresis: recently resumed controllers stay in, recently curtailed ones stay out.
    forced_in, forced_out = set(), set()
    unreported = set(snap.unreported)
    wakeups = orders.wakeups
    for k, c in enumerate(controllers):
        if c.state is MINING:
            resumed_at = c.resumed_at
            if resumed_at is not None and now - resumed_at < min_mining:
                forced_in.add(k)
                if items[k].value <= 0:
                    wakeups.append(resumed_at + min_mining)
        elif c.curtailed_at is not None and now - c.curtailed_at < min_curtailed:
            forced_out.add(k)
            wakeups.append(c.curtailed_at + min_curtailed)
        if c.marked and c.name in unreported:
            # A curtailed block whose agent has gone quiet is not resumed: nothing would
            # carry the resume to its miners, and nothing could confirm it.
            forced_out.add(k)
    if hold is not None:
        # Hold: change nothing about mining (no curtailment without an envelope to
        # justify it, no resume without one to allow it); heal half-done marks only.
        chosen = prefer
    else:
        chosen = knapsack.solve(
            items, room_kw, frozenset(forced_in), frozenset(forced_out), frozenset(prefer)
        )
        chosen = _ramp(snap, now, controllers, items, chosen, orders)
    mining = []
    resumes, decreases = orders.resumes, orders.decreases
    for k, c in enumerate(controllers):
        state = c.state
        if k in chosen:
            mining.append(c)
            if c.marked:
                item = items[k]
                resumes.append(
                    Command(
                        Kind.RESUME,
                        c.name,
                        item.weight if state is CURTAILED else 0.0,
                        CommandReason.MINING_PAYS if item.value > 0 else CommandReason.HYSTERESIS,
                        f"mining earns {item.value:,.0f} USD/h in the power left",
                    )
                )
        elif state is MINING or (c.marked and not c.marks_complete):
            item = items[k]
            if item.value <= 0:
                reason = CommandReason.UNPROFITABLE
                message = f"energy costs more than it earns ({item.value:,.0f} USD/h)"
            else:
                reason, message = CommandReason.ENVELOPE, "the envelope needs its power"
            delta = -item.weight if state is MINING else 0.0
            decreases.append(Command(Kind.CURTAIL, c.name, delta, reason, message))
    return mining


def _ramp(
    snap: SiteSnapshot,
    now: datetime,
    controllers: list[Controller],
    items: list[knapsack.Item],
    chosen: set[int],
    orders: Orders,
) -> set[int]:
    """Limit resumed mining to maxRampUpKWPerMinute over any minute."""
    assert snap.site is not None
    rate = snap.site.spec.behavior.max_ramp_up_kw_per_minute
    window_start = now - RAMP_WINDOW
    recent = [
        c
        for c in controllers
        if c.state is MINING and c.resumed_at is not None and c.resumed_at > window_start
    ]
    allowance = rate - sum(c.facility_kw for c in recent)
    resumes = sorted(
        (k for k in chosen if controllers[k].state is CURTAILED),
        key=lambda k: (-items[k].value / items[k].weight, k),
    )
    kept = set(chosen)
    for k in resumes:
        if items[k].weight <= allowance + 1e-9:
            allowance -= items[k].weight
        else:
            kept.discard(k)
    if len(kept) < len(chosen):
        oldest = min((c.resumed_at for c in recent if c.resumed_at), default=now)
        orders.wakeups.append(max(oldest + RAMP_WINDOW, now + timedelta(seconds=1)))
    return kept
