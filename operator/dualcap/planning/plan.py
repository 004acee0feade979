"""The plan of one site: a snapshot and a time in, commands out. Pure: no I/O, no clock.

The steps, in order:
1. why the site holds, if it does (invalid Site, suspended, no usable PowerBudget);
2. the envelope at ``now`` (lead time and margin applied);
3. the committed draw, and what no command changes: facility overhead, the GPU nodes'
   baseline, controllers held by a person or NotReady, pods of invalid leases;
4. leases (``planning.leases``): life cycle, admission, preemption, backfill;
5. mining fills the rest (``planning.mining``);
6. the planned draw, revenue and cost (``planning.accounting``);
7. the commands ordered by make-before-break.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from dualcap.api.conditions import HoldReason
from dualcap.api.site import ControllerState
from dualcap.planning import accounting, mining
from dualcap.planning.accounting import Draw
from dualcap.planning.commands import Schedule, make_before_break
from dualcap.planning.decisions import (
    GpuPowerSummary,
    Hold,
    MeterOutcome,
    MinerSummary,
    Orders,
    Plan,
    PricesUsed,
)
from dualcap.planning.entities import SiteSnapshot
from dualcap.planning.envelope import Envelope, SiteEnvelope, compose
from dualcap.planning.leases import Leases
from dualcap.planning.lifecycle import Context

# Unmodelled load a reading may show once the model's drop is behind it: worth a re-plan.
WAKE_FOR_KW = 1.0


def plan(snap: SiteSnapshot, now: datetime) -> Plan:
    """The plan of one site at ``now`` (an aware datetime)."""
    orders = Orders()
    # 1. Why the site holds.
    hold = hold_of(snap)
    if snap.site is None:
        assert hold is not None
        return _invalid(snap, now, hold)
    # 2. The envelope.
    envelope, composed = _envelope(snap, now, orders)
    price = envelope.energy_price_usd_per_mwh if envelope else 0.0
    if snap.live_energy_usd_per_mwh is not None:
        price = snap.live_energy_usd_per_mwh
    limit = envelope.limit_kw if envelope else None
    # 3. What is drawn now, and what no command changes.
    gpu_baseline = accounting.gpu_baseline_it_kw(snap.gpu_nodes.values())
    committed = accounting.committed(snap, gpu_baseline)
    meter = _meter(snap, committed.total_kw, now, orders)
    if meter is not None:  # real load nobody declared: counted now and in the plan
        committed = replace(committed, unmodelled_kw=meter.unmodelled_kw)
    held_mining = accounting.held_mining_it_kw(snap)
    invalid = accounting.invalid_leases_it_kw(snap)
    if limit is not None and hold is None:
        fixed_it = gpu_baseline + held_mining + invalid
        budget = limit - snap.fixed_kw - snap.pue * fixed_it - committed.unmodelled_kw
    else:
        budget = float("inf")  # hold: nothing is admitted or resumed below
    # 4. Leases.
    leases = Leases(snap, Context(now), hold, orders)
    lease_kw = leases.decide(budget)
    decisions = leases.decisions
    # 5. Mining.
    miners = mining.choose(snap, now, budget - lease_kw, price, hold, orders)
    # 6. Totals.
    running = [d for d in decisions if d.runs]
    planned = accounting.planned(
        snap, miners, held_mining, gpu_baseline, invalid, sum(d.kw for d in running)
    )
    planned = replace(planned, unmodelled_kw=committed.unmodelled_kw)
    asic = snap.asic
    hashrate = sum(c.hashrate_ths for c in miners) + sum(
        c.hashrate_ths for c in snap.controllers if not c.dispatchable and c.committed_it_kw > 0
    )
    hashprice = snap.live_hashprice
    if hashprice is None and asic is not None:
        hashprice = asic.hashprice_usd_per_ph_day
    mining_revenue = (
        accounting.mining_revenue_usd_per_hour(hashrate, hashprice) if hashprice else 0.0
    )
    lease_revenue = sum(
        d.gpus * d.lease.spec.price_per_gpu_hour_usd for d in running if d.lease.spec
    )
    # 7. Commands, make-before-break.
    commands = [] if snap.site.spec.suspend else orders.commands()
    schedule = make_before_break(
        commands, committed.total_kw, limit if limit is not None else committed.total_kw
    )
    if limit is None:
        # No envelope: decreases only (the pods of ended or deleted leases).
        schedule = Schedule(tuple(c for c in schedule.now if c.is_decrease), (), 0.0)

    by_state = Counter(c.state for c in snap.controllers)
    states = {s.value.lower(): by_state[s] for s in ControllerState}
    if snap.next_stale_at is not None:
        orders.wakeups.append(snap.next_stale_at)  # a report goes stale: count it again
    future = [w for w in orders.wakeups if w > now]
    going = [p for lease in snap.leases for p in lease.pods] + snap.orphan_pods
    return Plan(
        site=snap.name,
        at=now,
        envelope=envelope,
        limit_kw=limit,
        committed=committed,
        planned=planned,
        commands=commands,
        schedule=schedule,
        mining=[c.name for c in miners],
        leases=decisions,
        controllers=states,
        held_nodes=[c.name for c in snap.controllers if c.state is ControllerState.HELD],
        gpus_total=sum(n.gpus for n in snap.gpu_nodes.values() if n.schedulable),
        gpus_leased=sum(d.gpus for d in running),
        mining_revenue_usd_per_hour=mining_revenue,
        lease_revenue_usd_per_hour=lease_revenue,
        energy_cost_usd_per_hour=accounting.energy_cost_usd_per_hour(planned.total_kw, price),
        energy_price_usd_per_mwh=price,
        next_wakeup=min(future) if future else None,
        problems=list(snap.problems),
        hold=hold,
        in_flight=states["curtailing"] + sum(1 for p in going if p.terminating and not p.terminal),
        miners=_miner_summary(snap),
        budgets=composed,
        meter=meter,
        gpu_power=_gpu_summary(snap),
        prices=_prices_used(snap, price, hashprice),
        floor_kw=snap.fixed_kw
        + committed.unmodelled_kw
        + snap.pue
        * (
            gpu_baseline
            + held_mining
            + invalid
            + sum(c.asleep_kw for c in snap.controllers if c.dispatchable)
        ),
    )


def _prices_used(snap: SiteSnapshot, energy: float, hashprice: float | None) -> PricesUsed | None:
    feeds = snap.prices
    if feeds is None:
        return None
    return PricesUsed(
        energy_usd_per_mwh=energy,
        energy_source="feed" if feeds.energy_usd_per_mwh is not None else "budget",
        hashprice=hashprice,
        hashprice_source="feed" if feeds.hashprice is not None else "spec",
        fresh=feeds.fresh,
        reason=feeds.reason,
        message=feeds.message,
    )


def _gpu_summary(snap: SiteSnapshot) -> GpuPowerSummary | None:
    state = snap.gpu_power
    if state is None:
        return None
    unreported = sorted(snap.gpu_unreported)
    return GpuPowerSummary(
        nodes=len(snap.gpu_nodes),
        reporting=len(snap.gpu_nodes) - len(unreported),
        unreported=unreported,
        error_reason=state.error_reason,
        error_message=state.error_message,
    )


def _meter(
    snap: SiteSnapshot, modelled_kw: float, now: datetime, orders: Orders
) -> MeterOutcome | None:
    """The site meter bounds the committed draw from below: what it reads beyond the sum
    of the parts is real load (cooling, lighting, what nobody declared) and is counted.
    A stale meter counts as none, but the last unmodelled load stays as a reserve; a meter
    reading below the model lowers nothing (the model stays conservative).

    The model is above the truth while a curtailment is in flight (a curtailing block
    counts until it is confirmed, though its miners have stopped) and while a resumed
    block ramps: a reading then shows less unmodelled load than there is. So the count
    falls only once the readings of a whole staleAfterSeconds show less, and not at all
    while a curtailment is in flight (else each curtailment would forget the load, free
    its power for a resume, and the load would be learnt again once the resume draws)."""
    m = snap.meter
    if m is None:
        return None
    stale_after = timedelta(seconds=m.stale_after_seconds)
    fresh = (
        m.metered_at is not None and m.metered_kw is not None and now - m.metered_at <= stale_after
    )
    measured = 0.0
    if fresh:
        assert m.metered_kw is not None and m.metered_at is not None
        # The reading lies between two comparisons: with the highest model since a poll
        # before it (it may predate a drop, and a curtailment the meter has not seen yet
        # is no unmodelled load) and with the model now (it may have seen the drop).
        # Between them the last count stands: a curtailment the meter has seen is not
        # load gone away (that resumed the block, and the next reading curtailed it
        # again: the site flapped over its limit every other poll).
        low = m.metered_kw - max(modelled_kw, m.modelled_then_kw)
        high = m.metered_kw - modelled_kw
        measured = max(0.0, low)  # the reading's own count, remembered for the window
        unmodelled = max(0.0, min(max(m.reserve_kw, low), high))
        # And neither comparison holds while the model is above the truth (see above).
        in_flight = any(c.state is ControllerState.CURTAILING for c in snap.controllers)
        held = max(m.recent_unmodelled_kw, m.reserve_kw if in_flight else 0.0)
        unmodelled = max(unmodelled, held)
        orders.wakeups.append(m.metered_at + stale_after)
        if unmodelled < high - WAKE_FOR_KW:  # a newer reading, past the drop, may show more
            orders.wakeups.append(m.metered_at + timedelta(seconds=1.5 * m.poll_seconds))
        disagrees = abs(m.metered_kw - modelled_kw) > m.disagreement_kw
        if disagrees:
            since = m.disagreeing_since or now
            limit = since + timedelta(seconds=m.disagreement_seconds)
            if limit > now:
                orders.wakeups.append(limit)  # to say it as soon as it has lasted
        reason, message = "MeterFresh", f"the meter reads {m.metered_kw:,.0f} kW"
    else:
        unmodelled, disagrees = m.reserve_kw, False
        if m.error_reason:
            reason = m.error_reason
            message = m.error_message or reason
        elif m.metered_at is None:
            reason, message = "NoReading", "no reading from the meter yet"
        else:
            reason = "MeterStale"
            message = f"the last reading is from {m.metered_at.isoformat()}"
        message += f"; the model counts, with {unmodelled:,.0f} kW of unmodelled load kept"
    return MeterOutcome(
        m.metered_kw,
        m.metered_at,
        fresh,
        modelled_kw,
        unmodelled,
        reason,
        message,
        disagrees,
        m.disagreement_seconds,
        measured,
        (m.disagreeing_since or now) if disagrees else None,
        disagrees
        and now - (m.disagreeing_since or now) >= timedelta(seconds=m.disagreement_seconds),
    )


def _miner_summary(snap: SiteSnapshot) -> MinerSummary | None:
    asic = snap.asic
    if asic is None or asic.curtailment != "MinerAgent":
        return None
    blocks = [c for c in snap.controllers if c.dispatchable]
    measured = [c for c in blocks if c.report is not None]
    modelled_it = sum(
        0.0 if c.state is ControllerState.CURTAILED else (c.nameplate_it_kw or c.power_kw)
        for c in measured
    )
    reports = [c.report for c in measured if c.report is not None]
    return MinerSummary(
        blocks=len(blocks),
        reporting=len(measured),
        measured_kw=snap.pue * sum(c.committed_it_kw for c in measured),
        modelled_kw=snap.pue * modelled_it,
        unreported=sorted(snap.unreported),
        miners=sum(r.miners for r in reports),
        mining=sum(r.mining for r in reports),
        sleeping=sum(r.sleeping for r in reports),
        unreachable=sum(r.unreachable for r in reports),
        worst_unreachable_share=max(
            (r.unreachable / r.miners for r in reports if r.miners > 0), default=0.0
        ),
    )


def hold_of(snap: SiteSnapshot) -> Hold | None:
    """Why the site holds: its Site invalid, suspended, or no usable PowerBudget."""
    if snap.site is None:
        return Hold(HoldReason.SITE_INVALID, f"the Site is invalid: {snap.site_error}")
    if snap.site.spec.suspend:
        return Hold(HoldReason.SUSPENDED, "the Site is suspended (spec.suspend)")
    if snap.budget_issue is not None:
        return Hold(snap.budget_issue.reason, snap.budget_issue.message)
    return None  # a site with no valid budget has a budget_issue


def site_envelope(snap: SiteSnapshot, now: datetime) -> SiteEnvelope | None:
    """The site's envelope from every valid budget naming it; None when there is none."""
    if not snap.budgets:
        return None
    specs = {name: b.spec for name, b in snap.budgets.items()}
    return compose(specs, now, snap.price_budget)


def _envelope(
    snap: SiteSnapshot, now: datetime, orders: Orders
) -> tuple[Envelope | None, SiteEnvelope | None]:
    site = site_envelope(snap, now)
    if site is None:
        return None, None
    env = site.envelope
    for own in site.by_budget.values():  # each budget's own status changes then
        if own.next_change:
            orders.wakeups.append(own.next_change.at)
    if env.next_change:
        orders.wakeups.append(env.next_change.at)
    if env.next_price_change:
        orders.wakeups.append(env.next_price_change)
    return env, site


def _invalid(snap: SiteSnapshot, now: datetime, hold: Hold) -> Plan:
    empty = Draw()
    return Plan(
        site=snap.name,
        at=now,
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
        problems=list(snap.problems),
        hold=hold,
    )
