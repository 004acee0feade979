"""What the operator keeps of each Node and Pod in its indexes: only what planning reads.

Watching 5,000 nodes and 20,000 pods, keeping whole objects would cost hundreds of MB;
these projections keep the fields the snapshot reads, in the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DUALCAP_PREFIX = "dualcap.io/"


def _meta(body: Mapping[str, Any], annotations: bool) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    out: dict[str, Any] = {"name": meta.get("name")}
    for key in ("namespace", "uid", "resourceVersion", "deletionTimestamp", "creationTimestamp"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    if annotations:
        kept = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(DUALCAP_PREFIX)
        }
        if kept:
            out["annotations"] = kept
    if meta.get("ownerReferences"):
        out["ownerReferences"] = [
            {"kind": r.get("kind"), "name": r.get("name"), "uid": r.get("uid")}
            for r in meta["ownerReferences"]
        ]
    return out


def node(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    slim_spec: dict[str, Any] = {}
    if spec.get("unschedulable"):
        slim_spec["unschedulable"] = True
    if spec.get("taints"):
        slim_spec["taints"] = [dict(t) for t in spec["taints"]]
    ready = [
        {"type": "Ready", "status": c.get("status")}
        for c in status.get("conditions") or []
        if c.get("type") == "Ready"
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(body, annotations=True),
        "spec": slim_spec,
        "status": {
            "allocatable": dict(status.get("allocatable") or {}),
            "capacity": dict(status.get("capacity") or {}),
            "conditions": ready,
        },
    }


def pod(body: Mapping[str, Any], resource: str | None = None) -> dict[str, Any]:
    spec = body.get("spec") or {}

    def slim(container: Mapping[str, Any]) -> dict[str, Any]:
        res = container.get("resources") or {}
        keep = {}
        for part in ("limits", "requests"):
            values = {k: v for k, v in (res.get(part) or {}).items() if "/" in k}  # extended only
            if values:
                keep[part] = values
        return {"name": container.get("name"), **({"resources": keep} if keep else {})}

    slim_spec: dict[str, Any] = {"containers": [slim(c) for c in spec.get("containers") or []]}
    if spec.get("initContainers"):
        slim_spec["initContainers"] = [slim(c) for c in spec["initContainers"]]
    if spec.get("nodeName"):
        slim_spec["nodeName"] = spec["nodeName"]
    if spec.get("nodeSelector"):
        slim_spec["nodeSelector"] = dict(spec["nodeSelector"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(body, annotations=True),
        "spec": slim_spec,
        "status": {"phase": (body.get("status") or {}).get("phase", "Pending")},
    }
