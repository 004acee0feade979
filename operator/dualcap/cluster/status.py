"""Status of Sites, PowerBudgets and ComputeLeases from a plan, with kstatus conditions.

Status is ours to design (never handler return values): observedGeneration, the numbers an
operator looks at, and Ready / Reconciling / Stalled (+ WithinEnvelope, Admitted). A
condition keeps its lastTransitionTime while its status stays; numbers are rounded, so an
idle site computes the very same status and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from dualcap.api.common import API_VERSION
from dualcap.api.conditions import ConditionType as T
from dualcap.api.conditions import HoldReason
from dualcap.api.conditions import Reason as R
from dualcap.api.lease import LeasePhase
from dualcap.api.objects import Wanted as Wanted
from dualcap.api.objects import parse_rfc3339, rfc3339
from dualcap.api.objects import set_conditions as set_conditions
from dualcap.planning.decisions import LeaseDecision, MeterOutcome, Plan
from dualcap.planning.offer import Offer


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def site_status(
    p: Plan,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    failures: list[str],
    now: datetime,
    offer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``offer``: the Site's status.offer as ``offer_status`` made it (spec.offer)."""
    prev_conditions = (previous or {}).get("conditions")
    status: dict[str, Any] = {"observedGeneration": generation}
    hold = p.hold
    if hold is not None and hold.reason is HoldReason.SITE_INVALID:
        status["conditions"] = set_conditions(prev_conditions, [
            (T.READY, False, R.INVALID_SPEC, hold.message),
            (T.RECONCILING, False, R.INVALID_SPEC, ""),
            (T.STALLED, True, R.INVALID_SPEC, hold.message),
        ], generation, now)  # fmt: skip
        return status
    status.update(
        limitKW=_r(p.limit_kw),
        committedKW=_r(p.committed_kw),
        plannedKW=_r(p.planned_kw),
        headroomKW=_r(p.headroom_kw),
        floorKW=_r(p.floor_kw),
        draw={
            "miningKW": _r(p.committed.mining_kw),
            "gpuKW": _r(p.committed.gpu_kw),
            "overheadKW": _r(p.committed.overhead_kw),
        },
        controllers={
            "total": sum(p.controllers.values()),
            "mining": p.controllers.get("mining", 0),
            "curtailed": p.controllers.get("curtailed", 0),
            "curtailing": p.controllers.get("curtailing", 0),
            "held": p.controllers.get("held", 0),
            "unready": p.controllers.get("unready", 0),
        },
        gpus={
            "total": p.gpus_total,
            "leased": p.gpus_leased,
            "free": max(0, p.gpus_total - p.gpus_leased),
        },
        leases=lease_counts([d for d in p.leases if not d.lease.external]),
        revenueUSDPerHour=round(p.mining_revenue_usd_per_hour + p.lease_revenue_usd_per_hour, 2),
        energyCostUSDPerHour=round(p.energy_cost_usd_per_hour, 2),
    )
    workloads = [d for d in p.leases if d.lease.external]
    if workloads:
        admitted = [d for d in workloads if d.runs]
        status["workloads"] = {
            "admitted": len(admitted),
            "pending": sum(1 for d in workloads if not d.runs and d.phase == LeasePhase.PENDING),
            "kw": _r(sum(d.kw for d in admitted)),
            "names": [f"{d.lease.namespace}/{d.lease.name}" for d in admitted][:50],
        }
    if p.held_nodes:
        status["heldNodes"] = list(p.held_nodes)
    if p.meter is not None:
        meter = p.meter
        status["unmodelledKW"] = _r(meter.unmodelled_kw)
        if meter.metered_kw is not None and meter.metered_at is not None:
            status["meteredKW"] = _r(meter.metered_kw)
            status["meteredAt"] = rfc3339(meter.metered_at)
        if meter.disagreeing_since is not None:
            status["meterDisagreeingSince"] = rfc3339(meter.disagreeing_since)
        wanted_meter: list[Wanted] = [
            (T.METERED, True, R.METER_FRESH, meter.message)
            if meter.fresh
            else (T.METERED, False, meter.reason, meter.message)
        ]
        if meter.fresh:
            wanted_meter.append(_agreement(meter, prev_conditions))
    else:
        wanted_meter = []
    if p.budgets is not None:
        status["bindingBudget"] = p.budgets.binding
        change = p.budgets.envelope.next_change
        if change is not None:
            status["nextChange"] = {
                "at": rfc3339(change.at),
                "limitKW": _r(change.limit_kw),
                "budget": p.budgets.next_change_budget,
            }
    wanted_extra: list[Wanted] = []
    if p.miners is not None:
        m = p.miners
        status["miners"] = {
            "blocks": m.blocks,
            "reporting": m.reporting,
            "measuredKW": _r(m.measured_kw),
            "modelledKW": _r(m.modelled_kw),
        }
        if m.unreported:
            status["miners"]["unreported"] = m.unreported[:20]
            shown = ", ".join(m.unreported[:8]) + (" and more" if len(m.unreported) > 8 else "")
            wanted_extra.append((
                T.MEASURED, False, R.STALE_MEASUREMENTS,
                f"{len(m.unreported)} blocks have no fresh MinerBlock report and count at"
                f" nameplate: {shown}",
            ))  # fmt: skip
        else:
            wanted_extra.append(
                (T.MEASURED, True, R.MEASUREMENTS_FRESH, f"{m.reporting} blocks measured")
            )
    wanted_extra += wanted_meter
    if p.prices is not None:
        pr = p.prices
        status["prices"] = {
            "energyUSDPerMWh": pr.energy_usd_per_mwh,
            "energySource": pr.energy_source,
            "hashpriceSource": pr.hashprice_source,
        }
        if pr.hashprice is not None:
            status["prices"]["hashpriceUSDPerPHDay"] = round(pr.hashprice, 4)
        wanted_extra.append(
            (T.PRICES_FRESH, True, "Fresh", pr.message)
            if pr.fresh
            else (T.PRICES_FRESH, False, pr.reason, f"{pr.message}; the static price counts")
        )
    if p.gpu_power is not None:
        g = p.gpu_power
        status["gpus"]["measuredNodes"] = g.reporting
        if g.unreported:
            shown = ", ".join(g.unreported[:8]) + (" and more" if len(g.unreported) > 8 else "")
            why = f" ({g.error_reason}: {g.error_message})" if g.error_reason else ""
            wanted_extra.append((
                T.GPU_POWER_MEASURED, False, g.error_reason or R.STALE_MEASUREMENTS,
                f"{len(g.unreported)} GPU nodes have no fresh reading and count at"
                f" nameplate{why}: {shown}",
            ))  # fmt: skip
        else:
            wanted_extra.append(
                (T.GPU_POWER_MEASURED, True, R.MEASUREMENTS_FRESH, f"{g.reporting} nodes read")
            )
    ready, reconciling, stalled = _progress(p, failures)
    within = p.within_envelope
    envelope: Wanted = (
        T.WITHIN_ENVELOPE,
        within,
        R.INSIDE_ENVELOPE
        if within
        else R.OUTSIDE_ENVELOPE
        if within is False
        else R.NO_POWER_BUDGET,
        f"committed {p.committed_kw:,.0f} kW, limit {p.limit_kw:,.0f} kW"
        if p.limit_kw is not None
        else "no envelope",
    )
    if offer is not None:
        status["offer"] = dict(offer)
    status["conditions"] = set_conditions(
        prev_conditions, [ready, envelope, reconciling, stalled, *wanted_extra], generation, now
    )
    return status


def _agreement(m: MeterOutcome, previous: Any) -> Wanted:
    """MeterAgrees: False once the meter and the parts have differed by more than the
    tolerance for ``disagreementSeconds`` (the plan decides; a pending disagreement is
    told in the True condition's message). Once False, its message stays as it was said,
    so a gap that moves does not rewrite the status at every reading."""
    gap = (m.metered_kw or 0.0) - m.modelled_kw
    since = m.disagreeing_since
    if since is None:
        return (T.METER_AGREES, True, R.AGREES, f"meter - model = {gap:,.0f} kW")
    before = next((c for c in previous or [] if c.get("type") == T.METER_AGREES), None)
    if m.disagreement_lasted:
        if before is not None and before.get("status") == "False":
            return (T.METER_AGREES, False, R.DISAGREES, before.get("message") or "")
        return (
            T.METER_AGREES, False, R.DISAGREES,
            f"the meter and the model differ by {gap:,.0f} kW since {rfc3339(since)}",
        )  # fmt: skip
    return (T.METER_AGREES, True, R.DISAGREEING, f"differ by {gap:,.0f} kW since {rfc3339(since)}")


def _progress(p: Plan, failures: list[str]) -> tuple[Wanted, Wanted, Wanted]:
    """Ready, Reconciling and Stalled of a valid Site."""
    hold = p.hold
    if hold is not None:
        reason = hold.reason.condition_reason
        # A problem in the objects is Stalled until someone edits them; so is a suspended
        # Site that has no usable PowerBudget either.
        config = hold.reason.is_configuration or p.envelope is None
        return (
            (T.READY, False, reason, hold.message),
            (T.RECONCILING, False, reason, ""),
            (T.STALLED, config, reason if config else R.SUSPENDED, hold.message if config else ""),
        )
    if failures:
        return (
            (T.READY, False, R.APPLY_FAILED, "; ".join(failures[:3])),
            (T.RECONCILING, True, R.APPLY_FAILED, f"{len(failures)} commands failed; retrying"),
            (T.STALLED, False, R.CONVERGING, ""),
        )
    if p.schedule.now or p.schedule.deferred or p.in_flight:
        waiting = len(p.schedule.deferred) + p.in_flight
        message = (
            f"{len(p.schedule.now)} commands issued; {p.in_flight} curtailments or pod"
            f" deletions in flight; {len(p.schedule.deferred)} increases wait for them"
        )
        return (
            (T.READY, False, R.WAITING_FOR_CONFIRMATION if waiting else R.CONVERGING, message),
            (T.RECONCILING, True, R.CONVERGING, message),
            (T.STALLED, False, R.CONVERGING, ""),
        )
    return (
        (T.READY, True, R.SETTLED, "the site is where the plan wants it"),
        (T.RECONCILING, False, R.SETTLED, ""),
        (T.STALLED, False, R.SETTLED, ""),
    )


def lease_counts(decisions: list[LeaseDecision]) -> dict[str, int]:
    counts = {phase.value.lower(): 0 for phase in LeasePhase}
    for d in decisions:
        counts[d.phase.value.lower()] += 1
    return counts


def budget_status(
    p: Plan,
    name: str,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The status of PowerBudget ``name``, one of those naming the site of ``p``: its own
    envelope, and whether it binds the site now."""
    prev = (previous or {}).get("conditions")
    env = p.budgets.by_budget.get(name) if p.budgets is not None else None
    if env is None:
        problem = next(
            (x.message for x in p.problems if x.kind == "PowerBudget" and x.name == name),
            p.hold_reason or "invalid",
        )
        return {"observedGeneration": generation, "conditions": set_conditions(prev, [
            (T.READY, False, R.INVALID_SPEC, problem),
            (T.STALLED, True, R.INVALID_SPEC, problem),
        ], generation, now)}  # fmt: skip
    assert p.budgets is not None
    binds = p.budgets.binding == name
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "effectiveLimitKW": _r(env.limit_kw),
        "activeWindows": list(env.active_windows),
        "activeEvents": list(env.active_events),
        "energyPriceUSDPerMWh": env.energy_price_usd_per_mwh,
        "binding": binds,
    }
    if env.next_change:
        status["nextChange"] = {
            "at": rfc3339(env.next_change.at),
            "limitKW": _r(env.next_change.limit_kw),
        }
    message = f"effective limit {env.limit_kw:,.0f} kW" + (
        ", the site's envelope now" if binds else f"; {p.budgets.binding} binds the site now"
    )
    second = next(
        (x.message for x in p.problems
         if x.kind == "PowerBudget" and x.name == name and x.reason == R.SECOND_PRICE_SOURCE),
        None,
    )  # fmt: skip
    if second is not None:
        price: Wanted = (T.PRICE_SOURCE, False, R.SECOND_PRICE_SOURCE, second)
    elif p.budgets.price_budget == name:
        price = (T.PRICE_SOURCE, True, R.PRICE_USED, "the site's energy price comes from here")
    else:
        price = (T.PRICE_SOURCE, True, R.NO_PRICE, "sets no energy price")
    status["conditions"] = set_conditions(prev, [
        (T.READY, True, R.ACTIVE, message),
        (T.STALLED, False, R.ACTIVE, ""),
        price,
    ], generation, now)  # fmt: skip
    return status


def lease_status(
    d: LeaseDecision,
    site: str,
    previous: Mapping[str, Any] | None,
    now: datetime,
    rejected: str | None = None,
) -> dict[str, Any]:
    prev = (previous or {}).get("conditions")
    generation = d.lease.generation
    phase, reason, message = d.phase, d.reason, d.message
    if rejected:
        phase, reason, message = LeasePhase.FAILED, R.TEMPLATE_REJECTED, rejected
    stalled = phase is LeasePhase.FAILED
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase.value,
        "site": site,
        "admittedGPUs": d.gpus if d.runs and not rejected else 0,
    }
    if d.pods and not rejected:
        status["pods"] = list(d.pods)
    running = phase is LeasePhase.RUNNING
    status["conditions"] = set_conditions(prev, [
        (T.ADMITTED, d.runs and not rejected, reason, message),
        (T.READY, running, reason, message),
        (T.STALLED, stalled, reason if stalled else "", message if stalled else ""),
    ], generation, now)  # fmt: skip
    return status


PLURALS = {"Site": "sites", "PowerBudget": "powerbudgets", "ComputeLease": "computeleases"}


def status_path(obj: Mapping[str, Any]) -> str:
    """The status subresource of one of dualcap's objects."""
    meta = obj.get("metadata") or {}
    plural = PLURALS[str(obj.get("kind"))]
    where = f"namespaces/{meta.get('namespace') or 'default'}/" if plural == "computeleases" else ""
    return f"/apis/{API_VERSION}/{where}{plural}/{meta.get('name')}/status"


def site_not_found_status(body: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], str]:
    """The status of a PowerBudget or ComputeLease whose siteRef names no Site (Stalled,
    SiteNotFound), and the message it tells."""
    meta = body.get("metadata") or {}
    site = (body.get("spec") or {}).get("siteRef")
    generation = meta.get("generation")
    previous = (body.get("status") or {}).get("conditions")
    if body.get("kind") == "PowerBudget":
        message = f"no Site {site!r}: the budget binds nothing until it exists"
        wanted: dict[str, Any] = {"observedGeneration": generation}
        marks: list[Wanted] = [
            (T.READY, False, R.SITE_NOT_FOUND, message),
            (T.STALLED, True, R.SITE_NOT_FOUND, message),
        ]
    else:
        message = f"no Site {site!r}: the lease waits until it exists"
        wanted = {"observedGeneration": generation, "phase": LeasePhase.PENDING.value}
        marks = [
            (T.ADMITTED, False, R.SITE_NOT_FOUND, message),
            (T.READY, False, R.SITE_NOT_FOUND, message),
            (T.STALLED, True, R.SITE_NOT_FOUND, message),
        ]
    wanted["conditions"] = set_conditions(previous, marks, generation, now)
    return wanted, message


def offer_status(
    o: Offer | None,
    refresh_seconds: int,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The Site's ``status.offer``: the previous one kept as it is (nothing written) while
    the offer has not materially changed and is younger than ``refresh_seconds``; else
    the new one, observed now and valid for three refreshes."""
    if o is None:
        return None
    body: dict[str, Any] = {
        "gpusFree": o.gpus_free,
        "perGPUKW": _r(o.per_gpu_kw),
        "limitKW": _r(o.limit_kw),
        "freeKW": _r(o.free_kw),
        "availableKW": _r(o.available_kw),
        "room": [{"kw": _r(r.kw), "lostUSDPerMWh": _r(r.lost_usd_per_mwh)} for r in o.room],
        "energyUSDPerMWh": _r(o.energy_usd_per_mwh),
        "ahead": [
            {
                "at": rfc3339(s.at),
                "limitKW": _r(s.limit_kw),
                "energyUSDPerMWh": _r(s.energy_usd_per_mwh),
            }
            for s in o.ahead
        ],
    }
    if previous and _same_offer(previous, body, o.limit_kw):
        try:
            observed = parse_rfc3339(str(previous["observedAt"]))
        except (KeyError, ValueError):
            observed = None
        if observed is not None and now < observed + timedelta(seconds=refresh_seconds):
            return dict(previous)
    body["observedAt"] = rfc3339(now)
    body["validUntil"] = rfc3339(now + timedelta(seconds=3 * refresh_seconds))
    return body


def offer_refresh_at(previous: Mapping[str, Any] | None, refresh_seconds: int) -> datetime | None:
    """When the offer written last is due to be written again."""
    try:
        observed = parse_rfc3339(str((previous or {})["observedAt"]))
    except (KeyError, ValueError):
        return None
    return observed + timedelta(seconds=refresh_seconds)


def _same_offer(previous: Mapping[str, Any], body: Mapping[str, Any], limit_kw: float) -> bool:
    """No material change: the same GPUs, limit, price and envelope ahead, and room within
    1 % of the limit (measured draw moves a little on every poll)."""
    for key in ("gpusFree", "limitKW", "energyUSDPerMWh", "ahead", "perGPUKW"):
        if previous.get(key) != body.get(key):
            return False
    tolerance = max(1.0, 0.01 * limit_kw)
    for key in ("freeKW", "availableKW"):
        before = previous.get(key)
        if not isinstance(before, int | float) or abs(before - body[key]) > tolerance:
            return False
    return True
