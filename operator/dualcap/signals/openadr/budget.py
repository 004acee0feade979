"""The adapter's PowerBudget: its body from the decisions, the decisions read back from
it, and its write (create or update, never another writer's budget)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dualcap.api.budget import PowerBudget
from dualcap.api.names import API_VERSION
from dualcap.signals.openadr.config import SiteConfig
from dualcap.signals.openadr.mapping import Decision, parse_time
from dualcap.signals.openadr.names import (
    ADAPTER,
    ADAPTER_LABEL,
    BUDGETS,
    EVENTS_ANNOTATION,
    VTN_ANNOTATION,
)

log = logging.getLogger("dualcap.openadr")


def budget_name(site: str) -> str:
    return f"openadr-{site}"


def budget_body(
    site: SiteConfig,
    decisions: Iterable[Decision],
    now: datetime,
    default_lead_seconds: int,
    vtn_url: str,
) -> dict[str, Any]:
    """The adapter's PowerBudget for one site: the events of every opted-in decision that
    has not ended, and every decision (opt-outs with their reasons) in an annotation."""
    kept = sorted(
        (d for d in decisions if d.end is None or d.end > now),
        key=lambda d: d.event_id,
    )
    live = [d for d in kept if d.opt == "optIn" and d.events]
    events = sorted(
        (e for d in live for e in d.events if parse_time(e["end"]) > now),
        key=lambda e: (e["start"], e["name"]),
    )
    # Each event's lead is its own ramp-up when it has one (the config's default when it
    # has none); a budget has one lead time, so the largest of the live events' counts.
    lead = max((d.lead_time_seconds for d in live), default=default_lead_seconds)
    return {
        "apiVersion": API_VERSION,
        "kind": "PowerBudget",
        "metadata": {
            "name": budget_name(site.name),
            "labels": {ADAPTER_LABEL: ADAPTER},
            "annotations": {
                VTN_ANNOTATION: vtn_url,
                EVENTS_ANNOTATION: json.dumps(
                    [d.to_json() for d in kept if d.reason not in ("Cancelled", "Completed")],
                    sort_keys=True,
                    separators=(",", ":"),
                ),
            },
        },
        "spec": {
            "siteRef": site.name,
            "limitKW": site.interconnect_kw,
            "leadTimeSeconds": lead,
            "events": events,
        },
    }


def decisions_from_budget(site: str, budget: Mapping[str, Any] | None) -> list[Decision]:
    """What an earlier run delivered, read back from its budget's annotation."""
    annotations = ((budget or {}).get("metadata") or {}).get("annotations") or {}
    try:
        docs = json.loads(annotations.get(EVENTS_ANNOTATION) or "[]")
        return [Decision.from_json(site, d) for d in docs if isinstance(d, Mapping)]
    except (ValueError, KeyError, TypeError):
        log.warning(
            "budget %s: unreadable %s annotation, ignored", budget_name(site), EVENTS_ANNOTATION
        )
        return []


class BudgetWriteError(Exception):
    pass


async def write_budget(client: Any, body: dict[str, Any], attempts: int = 5) -> bool:
    """Create or update the adapter's budget: a merge patch carrying the resourceVersion it
    was computed against, retried on a conflict; a budget of that name that is not the
    adapter's is never touched. Returns whether anything was written."""
    PowerBudget.model_validate(body)  # the API would refuse it anyway; say why here
    name = body["metadata"]["name"]
    path = f"{BUDGETS}/{name}"
    for _ in range(attempts):
        got = await client.request("GET", path)
        if got.code == 404:
            made = await client.create(BUDGETS, body)
            if made.ok:
                return True
            if made.code == 409:
                continue
            raise BudgetWriteError(f"create {name}: {made.code} {made.message}")
        if not got.ok:
            raise BudgetWriteError(f"get {name}: {got.code} {got.message}")
        current = got.body
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(ADAPTER_LABEL) != ADAPTER:
            raise BudgetWriteError(
                f"PowerBudget {name} exists and is not labelled {ADAPTER_LABEL}={ADAPTER}: not ours"
            )
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        wanted = body["metadata"]["annotations"]
        if current.get("spec") == body["spec"] and all(
            annotations.get(k) == v for k, v in wanted.items()
        ):
            return False
        patch = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "labels": body["metadata"]["labels"],
                "annotations": wanted,
            },
            "spec": body["spec"],
        }
        done = await client.patch(path, patch)
        if done.ok:
            return True
        if done.code != 409:
            raise BudgetWriteError(f"patch {name}: {done.code} {done.message}")
    raise BudgetWriteError(f"{name}: still conflicting after {attempts} attempts")
