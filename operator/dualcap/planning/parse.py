"""Parsed models kept by uid and resourceVersion: a build re-parses only what changed,
and the entities built for one version of a Site are kept for the next build."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import pydantic

from dualcap.planning.entities import Lease, LeasePod, Problem
from dualcap.planning.fields import Obj, version_of

T = TypeVar("T")


class NodeEntry(NamedTuple):
    """What a build derived from one node, kept for the next build of the same Site."""

    version: str  # the node's resourceVersion
    role: str | None  # asic, gpu, or None: neither (or not the site's)
    pods: tuple[tuple[str, str] | None, ...]  # (uid, resourceVersion) of the pods on it
    entity: Any  # the Controller or GpuNode (None with no role)
    problems: tuple[Problem, ...]  # found building it


class PodEntry(NamedTuple):
    version: str  # the lease pod's resourceVersion
    pod: LeasePod


class LeaseEntry(NamedTuple):
    version: str  # the lease's resourceVersion
    pods: tuple[tuple[str, str] | None, ...]  # the versions of its pods
    lease: Lease


class ParseCache:
    """Parsed models and derived entities keyed by uid and resourceVersion: a reconcile
    re-parses and re-derives only what changed since the last one."""

    def __init__(self, max_entries: int = 200_000):
        self._entries: dict[tuple[Any, ...], Any] = {}
        self._max = max_entries
        # Site uid -> (its resourceVersion, the entities built for that version, by uid).
        self._sites: dict[str, tuple[str, dict[str, Any]]] = {}
        # Site uid -> (its resourceVersion, the caller's token, the site's entities whole).
        self._whole: dict[str, tuple[str, Hashable, Any]] = {}

    def forget(self, site_uid: str) -> None:
        """Drop the entities kept for a Site (it is gone): nothing outlives its Site."""
        self._sites.pop(site_uid, None)
        self._whole.pop(site_uid, None)

    def whole_site(self, site_obj: Obj, token: Hashable) -> Any:
        """The entities kept whole for this version of the Site under ``token``, or None."""
        version = version_of(site_obj)
        kept = self._whole.get(version[0]) if version is not None else None
        if kept is None or version is None or kept[0] != version[1] or kept[1] != token:
            return None
        return kept[2]

    def drop_whole_site(self, site_obj: Obj) -> None:
        version = version_of(site_obj)
        if version is not None:
            self._whole.pop(version[0], None)

    def keep_whole_site(self, site_obj: Obj, token: Hashable, entities: Any) -> None:
        """Keep ``entities`` for this version of the Site while ``token`` holds."""
        version = version_of(site_obj)
        if version is not None:
            self._whole[version[0]] = (version[1], token, entities)

    def site_entities(self, site_obj: Obj) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The entities built for this version of the Site at the last build (to reuse),
        and the table this build fills (what the next one may reuse); None when the Site
        has no uid and resourceVersion (nothing is reused)."""
        version = version_of(site_obj)
        if version is None:
            return None
        uid, rv = version
        last = self._sites.get(uid)
        table: dict[str, Any] = {}
        self._sites[uid] = (rv, table)
        return (last[1] if last is not None and last[0] == rv else {}), table

    def parse(self, model: type[pydantic.BaseModel], obj: Obj) -> Any:
        meta = obj.get("metadata") or {}
        uid, rv = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not rv:
            return parse_model(model, obj)
        return self.memo((model.__name__, uid, rv), lambda: parse_model(model, obj))

    def memo(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        """The entity under ``key``, built once."""
        entries = self._entries
        hit: T | None = entries.get(key)
        if hit is None:
            if len(entries) >= self._max:
                entries.clear()
            hit = entries[key] = build()
        return hit


def parse_model(model: type[pydantic.BaseModel], obj: Obj) -> tuple[Any, str | None]:
    try:
        return model.model_validate(dict(obj)), None
    except pydantic.ValidationError as err:
        return None, explain(err)


def explain(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {err.error_count() - 3} more)" if err.error_count() > 3 else ""
    return "; ".join(parts) + more
