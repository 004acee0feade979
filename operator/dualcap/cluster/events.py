"""Kubernetes Events: which ones a reconcile raises, and how they are posted.

Every Event the operator posts is decided here, so their reasons and wording stay
consistent and one place decides when an Event is news (a phase entered, a problem first
seen) rather than a repeat of the last reconcile; the body is ``api.objects.event``, which
the miner agent's Events share.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dualcap.api.common import API_VERSION
from dualcap.api.objects import event as event_body
from dualcap.client import Client
from dualcap.cluster.apply import Outcome
from dualcap.planning.commands import Kind

log = logging.getLogger("dualcap")
Obj = dict[str, Any]
NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True, slots=True)
class Event:
    about: Mapping[str, Any]  # the object (or a reference: apiVersion, kind, metadata)
    type: str
    reason: str
    message: str


def lease_ref(namespace: str, name: str, uid: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if uid:
        meta["uid"] = uid
    return {"apiVersion": API_VERSION, "kind": "ComputeLease", "metadata": meta}


def _reported(obj: Mapping[str, Any], reason: str) -> bool:
    """A condition of ``obj`` already carries ``reason``: its Event was posted as it came
    (once, not at every reconcile)."""
    return any(
        c.get("reason") == reason and c.get("status") in ("True", "False")
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _names(names: list[str], most: int = 8) -> str:
    shown = ", ".join(sorted(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _command_events(site: Obj, outcome: Outcome) -> list[Event]:
    events = []
    curtailed = [c for c in outcome.done if c.kind is Kind.CURTAIL]
    resumed = [c for c in outcome.done if c.kind is Kind.RESUME]
    if curtailed:
        kw = -sum(c.delta_kw for c in curtailed)
        reasons = ", ".join(sorted({str(c.reason) for c in curtailed}))
        names = _names([c.name for c in curtailed])
        message = f"curtailed {len(curtailed)} controllers ({kw:,.0f} kW; {reasons}): {names}"
        events.append(Event(site, NORMAL, "Curtailed", message))
    if resumed:
        names = _names([c.name for c in resumed])
        events.append(
            Event(site, NORMAL, "Resumed", f"resumed {len(resumed)} controllers: {names}")
        )
    for (ns, lease_name), why in outcome.rejected.items():
        events.append(Event(lease_ref(ns, lease_name), WARNING, "TemplateRejected", why))
    return events


def _lease_events(p: Any, outcome: Outcome | None) -> list[Event]:
    events = []
    acted = {(c.namespace, c.lease) for c in outcome.done} if outcome else set()
    for d in p.leases:
        lease = d.lease
        if lease.external:
            continue  # a Workload: its Events follow its check (Reconciler._workload_checks)
        before = lease.previous_phase
        ref = lease_ref(lease.namespace, lease.name, lease.uid)
        if d.admitted_now and (lease.namespace, lease.name) in acted:
            events.append(Event(ref, NORMAL, "Admitted", d.message))
        if d.preempted_now and before != "Preempted" and d.reason != "Hold":
            events.append(Event(ref, WARNING, "Preempted", d.message))
        if d.phase == "Completed" and before not in ("Completed", None) and not lease.deleting:
            events.append(Event(ref, NORMAL, "Completed", d.message))
        if d.phase == "Failed" and before != "Failed":
            events.append(Event(ref, WARNING, str(d.reason), d.message))
    return events


def _problem_events(site: Obj, objects: list[Obj], p: Any) -> list[Event]:
    events = []
    budgets = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "PowerBudget"}
    for problem in p.problems:
        if problem.kind == "Site" and (site.get("status") or {}).get("conditions") is None:
            events.append(Event(site, WARNING, str(problem.reason), problem.message))
        budget = budgets.get(problem.name) if problem.kind == "PowerBudget" else None
        if budget is not None and not _reported(budget, str(problem.reason)):
            events.append(Event(budget, WARNING, str(problem.reason), problem.message))
    return events


# Site conditions that, as they turn False, are news for whoever runs the site.
WATCHED = {"Metered", "MeterAgrees", "Measured", "GpuPowerMeasured", "PricesFresh"}


def _condition_events(site: Obj, wanted: Mapping[str, Any] | None) -> list[Event]:
    """A Warning as a watched condition turns False (once: the previous status had it
    True or absent)."""
    if not wanted:
        return []
    before = {c.get("type"): c for c in (site.get("status") or {}).get("conditions") or []}
    events = []
    for c in wanted.get("conditions") or []:
        if c.get("type") not in WATCHED or c.get("status") != "False":
            continue
        prev = before.get(c.get("type"))
        if prev is None or prev.get("status") != "False" or prev.get("reason") != c.get("reason"):
            events.append(Event(site, WARNING, str(c.get("reason")), str(c.get("message"))))
    return events


def reconcile_events(
    site: Obj,
    objects: list[Obj],
    p: Any,
    outcome: Outcome | None,
    site_wanted: Mapping[str, Any] | None = None,
) -> list[Event]:
    """What one reconcile of ``site`` has to tell: the commands it carried out, the leases
    that changed phase, the problems newly found, the conditions newly False."""
    events = _command_events(site, outcome) if outcome else []
    return (
        events
        + _lease_events(p, outcome)
        + _problem_events(site, objects, p)
        + _condition_events(site, site_wanted)
    )


async def post(client: Client, event: Event, now: datetime) -> bool:
    """Posts ``event``; an Event that cannot be posted is logged, never an error."""
    meta = event.about.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    body = event_body(
        event.about,
        event.type,
        event.reason,
        event.message,
        now,
        component="dualcap",
        instance="dualcap",
        namespace=namespace,
    )
    resp = await client.create(f"/api/v1/namespaces/{namespace}/events", body)
    if not resp.ok:
        log.info(
            "event %s on %s not posted: %s %s",
            event.reason,
            meta.get("name"),
            resp.code,
            resp.message,
        )
    return resp.ok
