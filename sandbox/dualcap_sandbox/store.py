"""The sandbox's storage: objects, one cluster-wide resourceVersion, watch history.

Objects are plain dicts, replaced (never mutated) on every write, so a reader may keep a
reference. Every write bumps the resourceVersion, appends an event to the resource's
history (watches resume from it; older than the history is 410 Gone) and wakes every
watcher and in-process listener (the cluster controllers).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dualcap_sandbox.resources import BUILTIN, ResourceType

Obj = dict[str, Any]
HISTORY = 20_000  # events kept per resource for watches that resume


class ApiError(Exception):
    """An error the API returns as a ``kind: Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def not_found(rt: ResourceType, name: str) -> ApiError:
    what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return ApiError(
        404,
        "NotFound",
        f'{what} "{name}" not found',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{name}": {why}',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None = None  # the object before (watches with selectors need it)


@dataclass(eq=False)
class Watcher:
    queue: asyncio.Queue[Event | None]
    namespace: str | None
    closed: bool = False


@dataclass
class Table:
    rt: ResourceType
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: deque[Event] = field(default_factory=lambda: deque(maxlen=HISTORY))
    compacted_rv: int = 0  # events at or below this rv are no longer in history
    watchers: set[Watcher] = field(default_factory=set)


Listener = Callable[[ResourceType, str, Obj, Obj | None], None]


class Store:
    def __init__(self) -> None:
        self.rv = 1
        self.tables: dict[str, Table] = {}
        self.by_kind: dict[tuple[str, str], ResourceType] = {}  # (apiVersion, kind)
        self.listeners: list[Listener] = []
        self.owners: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> dependents
        for rt in BUILTIN:
            self.register(rt)

    # --- types ---------------------------------------------------------------------------

    def register(self, rt: ResourceType) -> None:
        table = self.tables.get(rt.key)
        if table is None:
            self.tables[rt.key] = Table(rt)
        else:
            table.rt = rt
        self.by_kind[(rt.api_version, rt.kind)] = rt

    def unregister(self, group: str, plural: str) -> None:
        table = self.tables.pop(f"{group}/{plural}", None)
        if table:
            self.by_kind.pop((table.rt.api_version, table.rt.kind), None)
            for w in table.watchers:
                w.closed = True
                w.queue.put_nowait(None)

    def types(self) -> list[ResourceType]:
        return [t.rt for t in self.tables.values()]

    def rt(self, group: str, plural: str) -> ResourceType | None:
        table = self.tables.get(f"{group}/{plural}")
        return table.rt if table else None

    def rt_for(self, api_version: str, kind: str) -> ResourceType | None:
        return self.by_kind.get((api_version, kind))

    # --- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.tables[rt.key].objects.get((namespace or "", name))

    def list_objects(self, rt: ResourceType, namespace: str | None = None) -> Iterator[Obj]:
        objects = self.tables[rt.key].objects
        if namespace is None:
            yield from objects.values()
        else:
            for (ns, _), obj in objects.items():
                if ns == namespace:
                    yield obj

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        out = []
        for key, ns, name in list(self.owners.get(uid, ())):
            table = self.tables.get(key)
            obj = table.objects.get((ns, name)) if table else None
            if obj is not None:
                out.append((table.rt, obj))  # type: ignore[union-attr]
        return out

    # --- writes --------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, rt: ResourceType, type_: str, obj: Obj, old: Obj | None) -> None:
        table = self.tables[rt.key]
        event = Event(int(obj["metadata"]["resourceVersion"]), type_, obj, old)
        if len(table.history) == table.history.maxlen and table.history:
            table.compacted_rv = table.history[0].rv
        table.history.append(event)
        ns = obj["metadata"].get("namespace")
        for w in list(table.watchers):
            if not w.closed and (w.namespace is None or w.namespace == ns):
                w.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(rt, type_, obj, old)

    def _index_owners(self, rt: ResourceType, old: Obj | None, new: Obj | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            meta = obj["metadata"]
            ref = (rt.key, meta.get("namespace") or "", meta["name"])
            for owner in meta.get("ownerReferences") or []:
                uid = owner.get("uid")
                if not uid:
                    continue
                deps = self.owners.setdefault(uid, set())
                if add:
                    deps.add(ref)
                else:
                    deps.discard(ref)
                    if not deps:
                        self.owners.pop(uid, None)

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError(
                    422,
                    "Invalid",
                    f"{rt.kind} is invalid: metadata.name: Required value: name or generateName is required",
                )
            meta["name"] = prefix + secrets.token_hex(3)[:5]
        ns = meta.get("namespace") or ""
        table = self.tables[rt.key]
        if (ns, meta["name"]) in table.objects:
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(
                409,
                "AlreadyExists",
                f'{what} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": rt.group, "kind": rt.plural},
            )
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        meta["resourceVersion"] = str(self._next_rv())
        meta.pop("deletionTimestamp", None)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        table.objects[(ns, meta["name"])] = obj
        self._index_owners(rt, None, obj)
        self._emit(rt, "ADDED", obj, None)
        return obj

    def replace(self, rt: ResourceType, obj: Obj, old: Obj) -> Obj:
        """Store ``obj`` in place of ``old`` (same name); what is immutable stays (identity,
        creation, a deletion once marked). Whether a write finishes a deletion is the
        registry's decision, not the store's."""
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._next_rv())
        for immutable in ("uid", "creationTimestamp", "name", "namespace"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
        if old["metadata"].get("deletionTimestamp"):
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        table = self.tables[rt.key]
        table.objects[(meta.get("namespace") or "", meta["name"])] = obj
        self._index_owners(rt, old, obj)
        self._emit(rt, "MODIFIED", obj, old)
        return obj

    def remove(self, rt: ResourceType, old: Obj, last: Obj | None = None) -> Obj:
        """Remove at once; the DELETED event carries ``last`` (the final write, e.g. the
        last finalizer removed) or ``old``."""
        table = self.tables[rt.key]
        key = (old["metadata"].get("namespace") or "", old["metadata"]["name"])
        if key not in table.objects:
            return old
        del table.objects[key]
        final = last if last is not None else old
        obj = dict(final, apiVersion=rt.api_version, kind=rt.kind)
        obj["metadata"] = dict(final["metadata"], resourceVersion=str(self._next_rv()))
        for immutable in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if immutable in old["metadata"]:
                obj["metadata"][immutable] = old["metadata"][immutable]
        self._index_owners(rt, old, None)
        self._emit(rt, "DELETED", obj, old)
        return obj

    # --- watches -------------------------------------------------------------------------

    def watch(
        self, rt: ResourceType, namespace: str | None, since: int | None
    ) -> tuple[Watcher, list[Event]]:
        """A watcher, and the events it must see first: every object (since None), or the
        history after ``since`` (410 Gone if that is no longer kept)."""
        table = self.tables[rt.key]
        watcher = Watcher(asyncio.Queue(), namespace)
        if since is None:
            backlog = [
                Event(int(o["metadata"]["resourceVersion"]), "ADDED", o)
                for o in self.list_objects(rt, namespace)
            ]
        else:
            if since < table.compacted_rv:
                raise ApiError(
                    410, "Expired", f"too old resource version: {since} ({table.compacted_rv + 1})"
                )
            backlog = [
                e
                for e in table.history
                if e.rv > since
                and (namespace is None or e.obj["metadata"].get("namespace") == namespace)
            ]
        table.watchers.add(watcher)
        return watcher, backlog

    def unwatch(self, rt: ResourceType, watcher: Watcher) -> None:
        table = self.tables.get(rt.key)
        if table:
            table.watchers.discard(watcher)

    def open_watches(self) -> int:
        """How many watches are open (a test waits for its watch to be registered)."""
        return sum(len(table.watchers) for table in self.tables.values())

    def close_watches(self) -> int:
        """End every open watch (fault injection: dropped watches)."""
        n = 0
        for table in self.tables.values():
            for w in list(table.watchers):
                w.closed = True
                w.queue.put_nowait(None)
                n += 1
            table.watchers.clear()
        return n

    def compact(self) -> None:
        """Forget the watch history (fault injection: 410 Gone on resume)."""
        for table in self.tables.values():
            table.compacted_rv = self.rv
            table.history.clear()
