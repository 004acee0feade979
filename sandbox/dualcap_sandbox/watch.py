"""Watch: a stream of events from a resourceVersion (or a streaming list), filtered by
selectors as the API server filters them (an object leaving the selection is DELETED for
the watcher), with bookmarks, a timeout, and 410 Gone for a compacted resourceVersion."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from dualcap_sandbox.registry import Target
from dualcap_sandbox.selectors import fields_match, labels_match
from dualcap_sandbox.store import ApiError, Event, Obj, Store

JSON = "application/json"


def _line(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def serve_watch(
    request: web.Request,
    t: Target,
    store: Store,
    selectors: tuple[Any, Any],
    bookmark_seconds: float,
) -> web.StreamResponse:
    labels, fields = selectors
    q = request.query
    raw_rv = q.get("resourceVersion")
    initial = q.get("sendInitialEvents") in ("true", "1")
    since = (
        None if initial else int(raw_rv) if raw_rv and raw_rv.isdigit() and raw_rv != "0" else None
    )
    try:
        watcher, backlog = store.watch(t.rt, t.namespace, since)
    except ApiError as err:
        if err.code != 410:
            raise
        # As the API server does: the watch opens (200), and its one event is an ERROR
        # carrying the 410 Status; the client re-lists.
        gone = web.StreamResponse(headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"})
        await gone.prepare(request)
        await gone.write(_line("ERROR", err.status()))
        await gone.write_eof()
        return gone
    timeout = float(q.get("timeoutSeconds") or 1800)
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
    response = web.StreamResponse(headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"})
    await response.prepare(request)

    def visible(o: Obj | None) -> bool:
        return (
            o is not None
            and labels_match(labels, o["metadata"].get("labels"))
            and fields_match(fields, o)
        )

    async def send(type_: str, obj: Obj) -> None:
        await response.write(_line(type_, obj))

    async def deliver(event: Event) -> None:
        now_in = visible(event.obj)
        if event.type == "MODIFIED" and (labels or fields):
            was_in = visible(event.old)
            if now_in and not was_in:
                await send("ADDED", event.obj)
            elif was_in and not now_in:
                await send("DELETED", event.obj)
            elif now_in:
                await send("MODIFIED", event.obj)
        elif now_in or (event.type == "DELETED" and visible(event.old)):
            await send(event.type, event.obj)

    def bookmark(meta: Obj) -> Obj:
        return {"kind": t.rt.kind, "apiVersion": t.rt.api_version, "metadata": meta}

    deadline = time.monotonic() + timeout
    try:
        for first in backlog:
            await deliver(first)
        if initial:
            # A streaming list (sendInitialEvents): the initial events end with this.
            end = {
                "resourceVersion": str(store.rv),
                "annotations": {"k8s.io/initial-events-end": "true"},
            }
            await send("BOOKMARK", bookmark(end))
        while not watcher.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(remaining, bookmark_seconds) if bookmarks else remaining
            try:
                async with asyncio.timeout(wait):
                    event = await watcher.queue.get()
            except TimeoutError:
                if bookmarks:
                    await send("BOOKMARK", bookmark({"resourceVersion": str(store.rv)}))
                continue
            if event is None:
                break
            await deliver(event)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unwatch(t.rt, watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
