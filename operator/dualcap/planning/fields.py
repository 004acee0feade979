"""What the planner reads of plain Kubernetes objects: metadata, references, readiness,
annotations, a pod's GPUs, node and phase. Reading never fails: what cannot be read
counts conservatively."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dualcap.api.common import (
    parse_rfc3339,
)
from dualcap.api.lease import LeasePhase
from dualcap.api.names import PLANNED_NODE_ANNOTATION
from dualcap.planning.entities import (
    NodeRef,
    Problem,
    Ref,
)
from dualcap.planning.quantity import parse_count

HOSTNAME_LABEL = "kubernetes.io/hostname"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PHASES = frozenset(p.value for p in LeasePhase)
Obj = Mapping[str, Any]


def meta_of(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def version_of(obj: Obj) -> tuple[str, str] | None:
    """(uid, resourceVersion), or None when either is missing (then nothing is reused)."""
    meta = obj.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    return (uid, rv) if uid and rv else None


def ref_of(kind: str, obj: Obj) -> Ref:
    meta = meta_of(obj)
    return Ref(
        kind,
        str(meta.get("name")),
        meta.get("namespace"),
        meta.get("uid"),
        meta.get("resourceVersion"),
    )


def node_ref_of(node: Obj) -> NodeRef:
    meta = meta_of(node)
    spec = node.get("spec") or {}
    return NodeRef(
        "Node",
        str(meta.get("name")),
        None,
        meta.get("uid"),
        meta.get("resourceVersion"),
        unschedulable=bool(spec.get("unschedulable")),
        taints=spec.get("taints") or (),
        annotations=meta.get("annotations") or {},
    )


def time_of(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False  # unknown counts as not ready


def float_annotation(
    node: Obj, key: str, default: float, problems: list[Problem], low: float = 0.0
) -> float:
    raw = (meta_of(node).get("annotations") or {}).get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= low or value > 1e7:  # also catches NaN
        problems.append(
            Problem(
                "Node",
                meta_of(node).get("name", "?"),
                "InvalidAnnotation",
                f"annotation {key}={raw!r} is not a number >= {low}; using {default}",
            )
        )
        return default
    return value


def pod_gpus(pod: Obj, resource: str) -> int:
    """GPUs a pod holds: its containers' limits (or requests), or the largest init container."""
    spec = pod.get("spec") or {}

    def one(container: Obj) -> int:
        res = container.get("resources") or {}
        value = (res.get("limits") or {}).get(resource, (res.get("requests") or {}).get(resource))
        if value is None:
            return 0
        try:
            return parse_count(value)
        except ValueError:
            return 0

    regular = sum(one(c) for c in spec.get("containers") or [])
    init = max((one(c) for c in spec.get("initContainers") or []), default=0)
    return max(regular, init)


def pod_node(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if node:
        return str(node)
    planned = (meta_of(pod).get("annotations") or {}).get(PLANNED_NODE_ANNOTATION)
    if planned:
        return str(planned)
    return (spec.get("nodeSelector") or {}).get(HOSTNAME_LABEL)


def pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
