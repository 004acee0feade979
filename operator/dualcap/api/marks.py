"""The curtailment marks: what dualcap puts on an ASIC controller Node, in one place.

A curtailment is one merge patch that cordons the node, adds the NoExecute taint
``dualcap.io/curtailed=true`` and stamps ``dualcap.io/curtailed-at``. A resume removes
exactly that and stamps ``dualcap.io/resumed-at``; a release (the Site deleted) removes
the marks and both stamps. A node is dualcap's to resume only while it carries the
annotation or the taint: a node cordoned by a person carries neither and is left alone.

The executor sends these patches, the offline world applies them to plain objects, and
the snapshot reads the marks back with ``is_marked`` and ``marks_complete``: the three can
never disagree on what a mark is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dualcap.api.names import CURTAILED_AT_ANNOTATION, CURTAILED_TAINT_KEY, GROUP

RESUMED_AT_ANNOTATION = f"{GROUP}/resumed-at"
CURTAIL_TAINT: Mapping[str, str] = {
    "key": CURTAILED_TAINT_KEY,
    "value": "true",
    "effect": "NoExecute",
}
Obj = dict[str, Any]


def stamp(at: datetime) -> str:
    """RFC 3339 in UTC with microseconds: a ramp step must not come a second early."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _annotations(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return (node.get("metadata") or {}).get("annotations") or {}


def _taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((node.get("spec") or {}).get("taints") or [])


def is_tainted(node: Mapping[str, Any]) -> bool:
    return any(t.get("key") == CURTAILED_TAINT_KEY for t in _taints(node))


def is_marked(node: Mapping[str, Any]) -> bool:
    """dualcap curtailed this node (the annotation or the taint is there)."""
    return CURTAILED_AT_ANNOTATION in _annotations(node) or is_tainted(node)


def marks_complete(node: Mapping[str, Any]) -> bool:
    """Cordon, taint and annotation all present: the curtailment patch has landed whole."""
    return (
        bool((node.get("spec") or {}).get("unschedulable"))
        and is_tainted(node)
        and CURTAILED_AT_ANNOTATION in _annotations(node)
    )


def _other_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in _taints(node) if t.get("key") != CURTAILED_TAINT_KEY]


def _with_precondition(node: Mapping[str, Any], patch: Obj) -> Obj:
    rv = (node.get("metadata") or {}).get("resourceVersion")
    if rv:  # a write computed from a stale view fails with 409
        patch["metadata"]["resourceVersion"] = rv
    return patch


def curtail_patch(node: Mapping[str, Any], at: datetime) -> Obj:
    """The merge patch that curtails ``node`` (keeps an earlier curtailed-at)."""
    since = _annotations(node).get(CURTAILED_AT_ANNOTATION) or stamp(at)
    return _with_precondition(
        node,
        {
            "metadata": {
                "annotations": {CURTAILED_AT_ANNOTATION: since, RESUMED_AT_ANNOTATION: None}
            },
            "spec": {"unschedulable": True, "taints": [*_other_taints(node), dict(CURTAIL_TAINT)]},
        },
    )


def resume_patch(node: Mapping[str, Any], at: datetime) -> Obj:
    """The merge patch that resumes ``node``: the marks go, the resume is stamped."""
    return _with_precondition(
        node,
        {
            "metadata": {
                "annotations": {CURTAILED_AT_ANNOTATION: None, RESUMED_AT_ANNOTATION: stamp(at)}
            },
            "spec": {"unschedulable": None, "taints": _other_taints(node) or None},
        },
    )


def release_patch(node: Mapping[str, Any]) -> Obj:
    """The merge patch that hands ``node`` back (its Site is gone): marks and stamps go."""
    return {
        "metadata": {"annotations": {CURTAILED_AT_ANNOTATION: None, RESUMED_AT_ANNOTATION: None}},
        "spec": {"unschedulable": None, "taints": _other_taints(node) or None},
    }


def merge_patch(obj: Mapping[str, Any], patch: Mapping[str, Any]) -> Obj:
    """RFC 7386 JSON merge patch applied to a copy of ``obj`` (how the API applies ours)."""
    out: Obj = copy.deepcopy(dict(obj))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge_patch({}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out
