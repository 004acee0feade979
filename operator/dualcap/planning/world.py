"""Apply a plan's commands to a set of objects as an ideal cluster would (pure, in memory).

Used to step a site through time offline (`dualcap simulate`, the property tests): curtail
marks the node and, once ``confirm`` is true, its mining pods are gone; resume unmarks it
and its miner pods come back; lease pods are created bound to their planned node and
Running; deleted pods are gone. No I/O: a list of dicts in, a new list out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dualcap.api.common import LEASE_LABEL, SITE_LABEL
from dualcap.api.marks import curtail_patch, merge_patch, resume_patch
from dualcap.api.objects import object_key
from dualcap.planning.commands import Command, Kind

Obj = dict[str, Any]


def miner_pod(node: str, labels: Mapping[str, str], namespace: str = "mining") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"miner-agent-{node}", "namespace": namespace, "labels": dict(labels)},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "miner-agent"}]},
        "status": {"phase": "Running"},
    }


def apply(
    objects: Iterable[Mapping[str, Any]],
    commands: Iterable[Command],
    at: datetime,
    site: str,
    resource: str = "nvidia.com/gpu",
    miner_labels: Mapping[str, str] | None = None,
    confirm: bool = True,
) -> list[Obj]:
    """The objects after ``commands`` took effect at ``at``."""
    by_key = {object_key(o): copy.deepcopy(dict(o)) for o in objects}
    miner_labels = miner_labels or {"app": "miner-agent"}
    for cmd in commands:
        if cmd.kind is Kind.CURTAIL:
            key = ("Node", "", cmd.name)
            by_key[key] = merge_patch(by_key[key], curtail_patch(by_key[key], at))
            if confirm:
                for key in [
                    k
                    for k, o in by_key.items()
                    if k[0] == "Pod"
                    and (o.get("spec") or {}).get("nodeName") == cmd.name
                    and LEASE_LABEL not in (o["metadata"].get("labels") or {})
                ]:
                    del by_key[key]
        elif cmd.kind is Kind.RESUME:
            key = ("Node", "", cmd.name)
            by_key[key] = merge_patch(by_key[key], resume_patch(by_key[key], at))
            pod = miner_pod(cmd.name, miner_labels)
            by_key[object_key(pod)] = pod
        elif cmd.kind is Kind.CREATE_POD:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": cmd.name,
                    "namespace": cmd.namespace,
                    "labels": {LEASE_LABEL: cmd.lease, SITE_LABEL: site},
                },
                "spec": {
                    "nodeName": cmd.node,
                    "containers": [
                        {"name": "main", "resources": {"limits": {resource: str(cmd.gpus)}}}
                    ],
                },
                "status": {"phase": "Running"},
            }
            by_key[object_key(pod)] = pod
        elif cmd.kind is Kind.DELETE_POD:
            by_key.pop(("Pod", cmd.namespace or "", cmd.name), None)
    return list(by_key.values())
