"""A plan for people (a table) and for programs (a stable JSON document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dualcap.api.objects import rfc3339
from dualcap.planning.commands import Command, Kind
from dualcap.planning.decisions import LeaseDecision, Plan


def _lease_ref(d: LeaseDecision) -> dict[str, Any]:
    return {
        "namespace": d.lease.namespace,
        "name": d.lease.name,
        "gpus": d.gpus or (d.lease.spec.gpus if d.lease.spec else 0),
    }


def _command(c: Command) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": c.kind.value,
        "name": c.name,
        "deltaKW": round(c.delta_kw, 3),
        "reason": c.reason,
        "message": c.message,
    }
    if c.namespace:
        out.update(namespace=c.namespace, lease=c.lease, node=c.node, gpus=c.gpus)
    return out


def site_json(p: Plan) -> dict[str, Any]:
    """One site's plan. The first keys (name to energyCostUSDPerHour) are the stable
    interface programs may rely on; the rest are additions (commands with reasons, what
    waits, why)."""
    deferred = {(c.kind, c.namespace, c.name) for c in p.schedule.deferred}
    return {
        "name": p.site,
        "limitKW": round(p.limit_kw, 3) if p.limit_kw is not None else None,
        "committedKW": round(p.committed_kw, 3),
        "plannedKW": round(p.planned_kw, 3),
        "curtail": [c.name for c in p.commands_of(Kind.CURTAIL)],
        "resume": [c.name for c in p.commands_of(Kind.RESUME)],
        "admit": [_lease_ref(d) for d in p.leases if d.admitted_now],
        "preempt": [_lease_ref(d) for d in p.leases if d.preempted_now],
        "running": [_lease_ref(d) for d in p.leases if d.runs],
        "mining": list(p.mining),
        "revenueUSDPerHour": {
            "mining": round(p.mining_revenue_usd_per_hour, 2),
            "leases": round(p.lease_revenue_usd_per_hour, 2),
        },
        "energyCostUSDPerHour": round(p.energy_cost_usd_per_hour, 2),
        # additions
        "headroomKW": round(p.headroom_kw, 3) if p.headroom_kw is not None else None,
        "energyPriceUSDPerMWh": p.energy_price_usd_per_mwh,
        "activeWindows": list(p.envelope.active_windows) if p.envelope else [],
        "activeEvents": list(p.envelope.active_events) if p.envelope else [],
        "nextChange": (
            {"at": rfc3339(p.envelope.next_change.at), "limitKW": p.envelope.next_change.limit_kw}
            if p.envelope and p.envelope.next_change
            else None
        ),
        "commands": [
            _command(c) | {"deferred": (c.kind, c.namespace, c.name) in deferred}
            for c in p.commands
        ],
        "leases": [
            {
                "namespace": d.lease.namespace,
                "name": d.lease.name,
                "phase": d.phase,
                "reason": d.reason,
                "message": d.message,
            }
            for d in p.leases
        ],
        "hold": p.hold_reason,
        "problems": [str(x) for x in p.problems],
    }


def plans_json(plans: list[Plan], at: datetime) -> dict[str, Any]:
    return {"at": rfc3339(at), "sites": [site_json(p) for p in plans]}


def _kw(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} kW"


def plans_table(plans: list[Plan], at: datetime) -> str:
    lines = [f"dualcap plan at {rfc3339(at)}", ""]
    for p in plans:
        env = p.envelope
        lines.append(f"Site {p.site}")
        if p.hold_reason:
            lines.append(f"  HOLD: {p.hold_reason}")
        active = []
        if env:
            active = [f"window {w}" for w in env.active_windows] + [
                f"event {e}" for e in env.active_events
            ]
        lines.append(
            f"  limit     {_kw(p.limit_kw):>12}" + (f"   ({', '.join(active)})" if active else "")
        )
        lines.append(
            f"  committed {_kw(p.committed_kw):>12}   mining {_kw(p.committed.mining_kw)}, GPUs {_kw(p.committed.gpu_kw)}, overhead {_kw(p.committed.overhead_kw)}"
        )
        lines.append(
            f"  planned   {_kw(p.planned_kw):>12}   mining {_kw(p.planned.mining_kw)}, GPUs {_kw(p.planned.gpu_kw)}, overhead {_kw(p.planned.overhead_kw)}"
        )
        lines.append(f"  headroom  {_kw(p.headroom_kw):>12}")
        if env and env.next_change:
            lines.append(
                f"  next change {rfc3339(env.next_change.at)} -> {_kw(env.next_change.limit_kw)}"
            )
        lines.append(
            f"  energy {p.energy_price_usd_per_mwh:,.0f} USD/MWh; per hour: mining {p.mining_revenue_usd_per_hour:,.0f} USD,"
            f" leases {p.lease_revenue_usd_per_hour:,.0f} USD, energy cost {p.energy_cost_usd_per_hour:,.0f} USD"
        )
        c = p.controllers
        lines.append(
            f"  controllers: {len(p.mining)} mining once planned; now {c.get('mining', 0)} mining,"
            f" {c.get('curtailing', 0)} curtailing, {c.get('curtailed', 0)} curtailed, {c.get('held', 0)} held,"
            f" {c.get('unready', 0)} unready"
        )
        lines.append(f"  GPUs: {p.gpus_leased} of {p.gpus_total} leased once planned")
        if p.leases:
            lines.append("  leases:")
            for d in p.leases:
                ref = f"{d.lease.namespace}/{d.lease.name}"
                lines.append(f"    {ref:<32} {d.phase:<10} {d.reason:<20} {d.message}")
        deferred = set(map(id, p.schedule.deferred))
        if p.commands:
            lines.append("  commands:")
            for cmd in p.commands:
                when = "waits" if id(cmd) in deferred else "now"
                lines.append(
                    f"    {when:<5} {cmd.describe():<48} {cmd.delta_kw:>+10,.0f} kW  {cmd.reason}: {cmd.message}"
                )
        else:
            lines.append("  commands: none (the site is where the plan wants it)")
        for prob in p.problems:
            lines.append(f"  problem: {prob}")
        lines.append("")
    return "\n".join(lines)
