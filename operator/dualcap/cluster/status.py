"""Status of Sites, PowerBudgets and ComputeLeases from a plan, with kstatus conditions.

Status is ours to design (never handler return values): observedGeneration, the numbers an
operator looks at, and Ready / Reconciling / Stalled (+ WithinEnvelope, Admitted). A
condition keeps its lastTransitionTime while its status stays; numbers are rounded, so an
idle site computes the very same status and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dualcap.api import conditions as c
from dualcap.planning.dispatch import LeaseDecision, Plan
from dualcap.planning.report import rfc3339


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def set_conditions(
    previous: list[Mapping[str, Any]] | None,
    wanted: list[tuple[str, bool | None, str, str]],
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """metav1 Conditions: (type, status, reason, message); lastTransitionTime kept when the
    status is unchanged."""
    before = {x.get("type"): x for x in previous or []}
    out = []
    for type_, status, reason, message in wanted:
        value = "Unknown" if status is None else "True" if status else "False"
        old = before.get(type_)
        since = old.get("lastTransitionTime") if old and old.get("status") == value else None
        cond = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or rfc3339(now),
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out


def site_status(
    p: Plan,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    failures: list[str],
    now: datetime,
) -> dict[str, Any]:
    prev_conditions = (previous or {}).get("conditions")
    status: dict[str, Any] = {"observedGeneration": generation}
    if p.hold_reason and p.envelope is None and not p.controllers:
        # The Site itself is invalid.
        status["conditions"] = set_conditions(prev_conditions, [
            (c.READY, False, c.INVALID_SPEC, p.hold_reason),
            (c.RECONCILING, False, c.INVALID_SPEC, ""),
            (c.STALLED, True, c.INVALID_SPEC, p.hold_reason),
        ], generation, now)  # fmt: skip
        return status
    status.update(
        limitKW=_r(p.limit_kw),
        committedKW=_r(p.committed_kw),
        plannedKW=_r(p.planned_kw),
        headroomKW=_r(p.headroom_kw),
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
        leases=lease_counts(p.leases),
        revenueUSDPerHour=round(p.mining_revenue_usd_per_hour + p.lease_revenue_usd_per_hour, 2),
        energyCostUSDPerHour=round(p.energy_cost_usd_per_hour, 2),
    )
    if p.held_nodes:
        status["heldNodes"] = list(p.held_nodes)
    pending = len(p.schedule.now) + len(p.schedule.deferred) + p.in_flight
    within = p.within_envelope
    if p.hold_reason:
        config = p.envelope is None  # no usable budget: a configuration problem
        reason = (
            c.SUSPENDED
            if "suspend" in p.hold_reason
            else (
                c.NO_POWER_BUDGET
                if "no PowerBudget" in p.hold_reason
                else c.CONFLICTING_BUDGETS
                if "several" in p.hold_reason
                else c.INVALID_SPEC
            )
        )
        ready = (c.READY, False, reason, p.hold_reason)
        reconciling = (c.RECONCILING, False, reason, "")
        stalled = (
            c.STALLED,
            config,
            reason if config else c.SUSPENDED,
            p.hold_reason if config else "",
        )
    elif failures:
        ready = (c.READY, False, c.APPLY_FAILED, "; ".join(failures[:3]))
        reconciling = (
            c.RECONCILING,
            True,
            c.APPLY_FAILED,
            f"{len(failures)} commands failed; retrying",
        )
        stalled = (c.STALLED, False, c.CONVERGING, "")
    elif pending:
        waiting = len(p.schedule.deferred) + p.in_flight
        message = (
            f"{len(p.schedule.now)} commands issued; {p.in_flight} curtailments or pod"
            f" deletions in flight; {len(p.schedule.deferred)} increases wait for them"
        )
        ready = (c.READY, False, c.WAITING_FOR_CONFIRMATION if waiting else c.CONVERGING, message)
        reconciling = (c.RECONCILING, True, c.CONVERGING, message)
        stalled = (c.STALLED, False, c.CONVERGING, "")
    else:
        ready = (c.READY, True, c.SETTLED, "the site is where the plan wants it")
        reconciling = (c.RECONCILING, False, c.SETTLED, "")
        stalled = (c.STALLED, False, c.SETTLED, "")
    envelope = (
        c.WITHIN_ENVELOPE,
        within,
        c.INSIDE_ENVELOPE
        if within
        else c.OUTSIDE_ENVELOPE
        if within is False
        else c.NO_POWER_BUDGET,
        f"committed {p.committed_kw:,.0f} kW, limit {p.limit_kw:,.0f} kW"
        if p.limit_kw is not None
        else "no envelope",
    )
    status["conditions"] = set_conditions(
        prev_conditions, [ready, envelope, reconciling, stalled], generation, now
    )
    return status


def lease_counts(decisions: list[LeaseDecision]) -> dict[str, int]:
    counts = {
        "pending": 0,
        "admitted": 0,
        "running": 0,
        "preempted": 0,
        "completed": 0,
        "failed": 0,
    }
    for d in decisions:
        counts[d.phase.lower()] = counts.get(d.phase.lower(), 0) + 1
    return counts


def budget_status(
    p: Plan, generation: int | None, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    prev = (previous or {}).get("conditions")
    env = p.envelope
    if env is None:
        return {"observedGeneration": generation, "conditions": set_conditions(prev, [
            (c.READY, False, c.INVALID_SPEC, p.hold_reason or "invalid"),
            (c.STALLED, True, c.INVALID_SPEC, p.hold_reason or "invalid"),
        ], generation, now)}  # fmt: skip
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "effectiveLimitKW": _r(env.limit_kw),
        "activeWindows": list(env.active_windows),
        "activeEvents": list(env.active_events),
        "energyPriceUSDPerMWh": env.energy_price_usd_per_mwh,
    }
    if env.next_change:
        status["nextChange"] = {
            "at": rfc3339(env.next_change.at),
            "limitKW": _r(env.next_change.limit_kw),
        }
    status["conditions"] = set_conditions(prev, [
        (c.READY, True, c.ACTIVE, f"effective limit {env.limit_kw:,.0f} kW"),
        (c.STALLED, False, c.ACTIVE, ""),
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
    stalled = phase == "Failed"
    if rejected:
        phase, reason, message, stalled = "Failed", c.TEMPLATE_REJECTED, rejected, True
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "site": site,
        "admittedGPUs": d.gpus if d.runs and not rejected else 0,
    }
    if d.pods and not rejected:
        status["pods"] = list(d.pods)
    running = phase == "Running"
    status["conditions"] = set_conditions(prev, [
        (c.ADMITTED, d.runs and not rejected, reason, message),
        (c.READY, running, reason, message),
        (c.STALLED, stalled, reason if stalled else "", message if stalled else ""),
    ], generation, now)  # fmt: skip
    return status


def same_status(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    return dict(current or {}) == dict(wanted)
