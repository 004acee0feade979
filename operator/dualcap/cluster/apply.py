"""Commands applied to the cluster: curtail, resume, create and delete lease pods.

Every write is idempotent: a retry after a crash or a lost response finds its goal already
reached (409 AlreadyExists on a create of our own pod, 404 on a delete) and counts it a
success. Node writes carry the resourceVersion they were computed from, so a write based
on a stale view fails with 409 and the next reconcile recomputes it. Writes go out
concurrently (the client bounds how many at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dualcap.api.common import LEASE_LABEL
from dualcap.api.lease import ComputeLease
from dualcap.api.marks import curtail_patch, is_marked, release_patch, resume_patch
from dualcap.client import Client, Response
from dualcap.cluster.kueue import CheckState, entry_of, pod_set_updates, write_check
from dualcap.cluster.pods import TemplateRejected, lease_pod
from dualcap.planning.commands import Command, Kind
from dualcap.planning.entities import Lease


@dataclass
class Outcome:
    """What applying a batch did: objects as written (read-your-writes), failures."""

    # key -> (what the write did: create, update or delete; the object as written or None)
    written: dict[tuple[str, str, str], tuple[str, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    failures: list[tuple[Command, str]] = field(default_factory=list)
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)  # lease -> why
    done: list[Command] = field(default_factory=list)


async def apply_commands(
    client: Client,
    commands: list[Command],
    nodes: Mapping[str, Mapping[str, Any]],
    leases: Mapping[tuple[str, str], tuple[dict[str, Any], ComputeLease]],
    site: str,
    resource: str,
    gpu_labels: dict[str, str],
    at: datetime,
    workloads: Mapping[tuple[str, str], tuple[Lease, Mapping[str, Any]]] | None = None,
) -> Outcome:
    """``workloads``: the site's Kueue Workloads, by (namespace, name): the planner's
    entity and the object (its check's entry now)."""
    outcome = Outcome()

    async def one(cmd: Command) -> None:
        if cmd.kind in (Kind.ADMIT_WORKLOAD, Kind.EVICT_WORKLOAD):
            assert cmd.namespace is not None
            found = (workloads or {}).get((cmd.namespace, cmd.name))
            if found is None:
                outcome.failures.append((cmd, "Workload not in the operator's view"))
                return
            entity, body = found
            assert entity.workload is not None
            check = entity.workload.check
            if cmd.kind is Kind.ADMIT_WORKLOAD:
                wanted = CheckState(
                    "Ready", f"{cmd.message}: {cmd.delta_kw:,.1f} kW",
                    pod_set_updates(entity, site, gpu_labels),
                )  # fmt: skip
            else:
                wanted = CheckState("Retry", f"{cmd.reason}: {cmd.message}")
            resp = await write_check(
                client, cmd.namespace, cmd.name, check, wanted, entry_of(body, check), at
            )
            _record(outcome, cmd, resp, ("Workload", cmd.namespace, cmd.name))
            return
        if cmd.kind in (Kind.CURTAIL, Kind.RESUME):
            node = nodes.get(cmd.name)
            if node is None:
                outcome.failures.append((cmd, "node not in the operator's view"))
                return
            patch = curtail_patch(node, at) if cmd.kind is Kind.CURTAIL else resume_patch(node, at)
            resp = await client.patch(f"/api/v1/nodes/{cmd.name}", patch)
            _record(outcome, cmd, resp, ("Node", "", cmd.name))
        elif cmd.kind is Kind.CREATE_POD:
            assert cmd.namespace and cmd.lease and cmd.node and cmd.index is not None
            lease_obj, lease = leases[(cmd.namespace, cmd.lease)]
            try:
                body = lease_pod(lease_obj, lease, site, cmd.index, cmd.node, resource, gpu_labels)
            except TemplateRejected as err:
                outcome.rejected[(cmd.namespace, cmd.lease)] = str(err)
                return
            resp = await client.create(f"/api/v1/namespaces/{cmd.namespace}/pods", body)
            if resp.code == 409 and resp.reason == "AlreadyExists":
                # A retry of our own create: success if the pod is the lease's.
                got = await client.request(
                    "GET", f"/api/v1/namespaces/{cmd.namespace}/pods/{cmd.name}"
                )
                if (
                    got.ok
                    and (got.body["metadata"].get("labels") or {}).get(LEASE_LABEL) == cmd.lease
                ):
                    resp = got
            _record(outcome, cmd, resp, ("Pod", cmd.namespace, cmd.name))
        elif cmd.kind is Kind.DELETE_POD:
            resp = await client.delete(f"/api/v1/namespaces/{cmd.namespace}/pods/{cmd.name}")
            if resp.code == 404:
                resp = Response(200, {"kind": "Status", "status": "Success"})
            _record(outcome, cmd, resp, ("Pod", cmd.namespace or "", cmd.name))

    await asyncio.gather(*(one(c) for c in commands))
    return outcome


async def release(client: Client, nodes: Sequence[Mapping[str, Any]]) -> tuple[int, str | None]:
    """A deleted Site's curtailed controllers handed back (``onDelete: Release``): each
    node dualcap marked loses its marks. (released, the first failure or None); a node
    already gone counts as released."""
    released = 0
    for node in nodes:
        if not is_marked(node):
            continue
        name = node["metadata"]["name"]
        resp = await client.patch(f"/api/v1/nodes/{name}", release_patch(node))
        if not resp.ok and resp.code != 404:
            return released, f"releasing {name}: {resp.code} {resp.message}"
        released += 1
    return released, None


def _record(outcome: Outcome, cmd: Command, resp: Response, key: tuple[str, str, str]) -> None:
    if not resp.ok:
        outcome.failures.append((cmd, f"{resp.code} {resp.reason}: {resp.message}".strip()))
        return
    outcome.done.append(cmd)
    body = (
        resp.body
        if isinstance(resp.body, dict) and resp.body.get("kind") in ("Node", "Pod", "Workload")
        else None
    )
    action = {Kind.CREATE_POD: "create", Kind.DELETE_POD: "delete"}.get(cmd.kind, "update")
    outcome.written[key] = (action, body)  # body None: gone
