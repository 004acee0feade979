"""The shapes dualcap writes into Kubernetes objects, built in one place for the operator
and the miner agent alike: RFC 3339 times, object keys, metav1 Conditions and core/v1
Events. Plain functions over dicts, no pydantic (the agent imports this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

MESSAGE_LIMIT = 1024  # what the API keeps of an Event's message; a condition's too
ObjectKey = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name
# (type, status, reason, message): status None is Unknown
Wanted = tuple[str, bool | None, str, str]


def rfc3339(at: datetime, micro: bool = False) -> str:
    """``at`` in UTC as RFC 3339 ("...Z"), to the second (metav1.Time) or, ``micro``, to
    the microsecond (metav1.MicroTime, and reports whose order matters)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    """An aware datetime from an RFC 3339 string ('Z' or an offset required)."""
    parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset (RFC 3339 needs 'Z' or +hh:mm)")
    return parsed


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """(kind, namespace, name) of an object as the API returns it."""
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def condition(
    wanted: Wanted,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """One metav1 Condition; its lastTransitionTime is kept from ``previous`` (the same
    type's condition as it was) while its status is unchanged."""
    type_, status, reason, message = wanted
    value = "Unknown" if status is None else "True" if status else "False"
    since = (
        previous.get("lastTransitionTime") if previous and previous.get("status") == value else None
    )
    cond: dict[str, Any] = {
        "type": str(type_),
        "status": value,
        "reason": str(reason),
        "message": message[:MESSAGE_LIMIT],
        "lastTransitionTime": since or rfc3339(now),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def set_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[Wanted],
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The conditions ``wanted``, in that order, each as ``condition`` makes it."""
    before = {x.get("type"): x for x in previous or []}
    return [condition(w, before.get(w[0]), generation, now) for w in wanted]


def event(
    about: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    now: datetime,
    component: str,
    instance: str,
    namespace: str,
    host: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about ``about`` (an object or a reference: apiVersion, kind,
    metadata), to be created in ``namespace``."""
    meta = about.get("metadata") or {}
    at = rfc3339(now)
    source = {"component": component}
    if host is not None:
        source["host"] = host
    involved = {
        "apiVersion": about.get("apiVersion"),
        "kind": about.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    if meta.get("namespace"):
        involved["namespace"] = meta.get("namespace")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name') or component}.", "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "type": type_,
        "source": source,
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    }
