"""Server-side printing (``kind: Table``), as `kubectl get` asks for it: printer columns
of CRDs evaluated with a JSONPath subset, and the usual columns of built-in kinds."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dualcap_sandbox.resources import ResourceType

Obj = dict[str, Any]
_FILTER = re.compile(r"^\?\(@\.([\w.]+)\s*==\s*[\"']([^\"']*)[\"']\)$")


def _tokens(path: str) -> list[str]:
    out, buf, depth = [], "", 0
    for ch in path.strip().lstrip("{").rstrip("}").lstrip("."):
        if ch == "[":
            if depth == 0 and buf:
                out.append(buf)
                buf = ""
            depth += 1
            buf += ch
        elif ch == "]":
            depth -= 1
            buf += ch
            if depth == 0:
                out.append(buf)
                buf = ""
        elif ch == "." and depth == 0:
            if buf:
                out.append(buf)
            buf = ""
        else:
            buf += ch
    if buf:
        out.append(buf)
    return out


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Values at a JSONPath like ``.status.conditions[?(@.type=="Ready")].status``."""
    current = [obj]
    for token in _tokens(path):
        nxt: list[Any] = []
        if token.startswith("["):
            inner = token[1:-1]
            match = _FILTER.match(inner)
            for value in current:
                if not isinstance(value, list):
                    continue
                if inner == "*":
                    nxt.extend(value)
                elif match:
                    keys, want = match.group(1).split("."), match.group(2)
                    for item in value:
                        probe = item
                        for k in keys:
                            probe = probe.get(k) if isinstance(probe, dict) else None
                        if probe is not None and str(probe) == want:
                            nxt.append(item)
                else:
                    with contextlib.suppress(ValueError, IndexError):
                        nxt.append(value[int(inner)])
        else:
            for value in current:
                if isinstance(value, dict) and token in value:
                    nxt.append(value[token])
        current = nxt
    return current


def age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _cell(value: list[Any], type_: str) -> Any:
    if not value:
        return None
    v = value[0] if len(value) == 1 else ",".join(str(x) for x in value)
    if type_ == "date":
        return age(str(v))
    if isinstance(v, dict | list):
        return json.dumps(v)
    return v


def _col(
    name: str, type_: str = "string", priority: int = 0, description: str = "", fmt: str = ""
) -> Obj:
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


def _node_status(node: Obj) -> str:
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    status = (
        "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    )
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _pod_ready(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


Cells = Callable[[Obj], list[Any]]


def meta_age(o: Obj) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _builtin(rt: ResourceType) -> tuple[list[Obj], Cells]:
    if rt.kind == "Node":
        return [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Taints", priority=1),
        ], lambda o: [
            o["metadata"]["name"],
            _node_status(o),
            ",".join(
                sorted(
                    k.split("/", 1)[1]
                    for k in (o["metadata"].get("labels") or {})
                    if k.startswith("node-role.kubernetes.io/")
                )
            )
            or "<none>",
            meta_age(o),
            ((o.get("status") or {}).get("nodeInfo") or {}).get(
                "kubeletVersion", "v1.33.0-sandbox"
            ),
            len((o.get("spec") or {}).get("taints") or []),
        ]
    if rt.kind == "Pod":
        return [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ], lambda o: [
            o["metadata"]["name"],
            _pod_ready(o),
            "Terminating"
            if o["metadata"].get("deletionTimestamp")
            else (o.get("status") or {}).get("phase", "Pending"),
            0,
            meta_age(o),
            (o.get("status") or {}).get("podIP", "<none>"),
            (o.get("spec") or {}).get("nodeName", "<none>"),
        ]
    if rt.kind == "Namespace":
        return [_col("Name", fmt="name"), _col("Status"), _col("Age")], lambda o: [
            o["metadata"]["name"],
            (o.get("status") or {}).get("phase", "Active"),
            meta_age(o),
        ]
    if rt.kind == "DaemonSet":
        return [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
        ], lambda o: [
            o["metadata"]["name"],
            (o.get("status") or {}).get("desiredNumberScheduled", 0),
            (o.get("status") or {}).get("currentNumberScheduled", 0),
            (o.get("status") or {}).get("numberReady", 0),
            meta_age(o),
        ]
    if rt.kind == "Event":
        return [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Message"),
        ], lambda o: [
            age(
                o.get("lastTimestamp")
                or o.get("eventTime")
                or o["metadata"].get("creationTimestamp")
            ),
            o.get("type", ""),
            o.get("reason", ""),
            f"{(o.get('involvedObject') or o.get('regarding') or {}).get('kind', '').lower()}/{(o.get('involvedObject') or o.get('regarding') or {}).get('name', '')}",
            o.get("message") or o.get("note", ""),
        ]
    return [_col("Name", fmt="name"), _col("Age")], lambda o: [o["metadata"]["name"], meta_age(o)]


def table(
    rt: ResourceType, objects: list[Obj], resource_version: str, include_object: str = "Metadata"
) -> Obj:
    cells: Cells
    if rt.custom:
        columns = [_col("Name", fmt="name", description="Name must be unique within a namespace.")]
        paths = []
        for c in rt.columns or (
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ):
            columns.append(
                _col(
                    c["name"],
                    c.get("type", "string") if c.get("type") != "date" else "string",
                    c.get("priority", 0),
                    c.get("description", ""),
                )
            )
            paths.append((c["jsonPath"], c.get("type", "string")))

        def custom_cells(o: Obj) -> list[Any]:
            return [o["metadata"]["name"], *(_cell(jsonpath(o, p), t) for p, t in paths)]

        cells = custom_cells
    else:
        columns, cells = _builtin(rt)
    rows = []
    for o in objects:
        if include_object == "Object":
            row_obj = o
        elif include_object == "None":
            row_obj = None
        else:
            row_obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        row: Obj = {"cells": cells(o)}
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
