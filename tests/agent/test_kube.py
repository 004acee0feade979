"""The agent's Kubernetes client (the standard library's http.client in worker threads)
against a raw server: kept-alive connections, a server that drops an idle one, chunked
and length-framed bodies, a watch stream, a server that never answers, a watch stopped."""

from __future__ import annotations

import asyncio
import json
import time

from dualcap.agent.kube import Connection, Kube


async def serve(handler) -> tuple[asyncio.base_events.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return lines[0], headers, body


async def test_keep_alive_and_a_server_that_drops_idle_connections() -> None:
    connections = []
    dropped = asyncio.Event()

    async def handler(reader, writer):
        connections.append(writer)
        for served in range(2):  # two requests on one connection, then gone unannounced
            line, headers, body = await read_request(reader)
            doc = {"line": line, "body": body.decode(), "auth": headers.get("authorization")}
            payload = json.dumps(doc).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
            await writer.drain()
            if served == 1:
                writer.close()
                await writer.wait_closed()
                dropped.set()

    server, url = await serve(handler)
    kube = Kube(Connection(server=url, token="t0ken"))
    try:
        first = await kube.request("PATCH", "/api/v1/nodes/a", {"x": 1}, params={"q": "1 2"})
        assert first.ok and first.body["line"] == "PATCH /api/v1/nodes/a?q=1+2 HTTP/1.1"
        assert json.loads(first.body["body"]) == {"x": 1}
        assert first.body["auth"] == "Bearer t0ken"
        second = await kube.request("GET", "/b")  # the same connection, kept alive
        assert second.ok and second.body["line"] == "GET /b HTTP/1.1"
        assert len(connections) == 1
        await asyncio.wait_for(dropped.wait(), 5)  # the server has closed the kept connection
        third = await kube.request("GET", "/c")  # the kept connection is stale: retried
        assert third.ok and third.body["line"] == "GET /c HTTP/1.1"
        assert len(connections) == 2
    finally:
        await kube.close()
        server.close()


async def test_chunked_bodies_and_a_watch() -> None:
    async def handler(reader, writer):
        for _ in range(2):
            line, _, _ = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            if "watch=1" in line:
                events = [{"type": "ADDED", "object": {"n": 1}}, {"type": "BOOKMARK"}]
                data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
                for piece in (data[:7], data[7:30], data[30:]):  # events split across chunks
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                for piece in (b'{"items": ', b"[1, 2, 3]}"):
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        writer.close()

    server, url = await serve(handler)
    kube = Kube(Connection(server=url))
    try:
        reply = await kube.request("GET", "/list")
        assert reply.body == {"items": [1, 2, 3]}
        events = [e async for e in kube.watch("/w", {}, timeout=5)]
        assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    finally:
        await kube.close()
        server.close()


async def test_a_server_that_never_answers_costs_one_timeout() -> None:
    held = []

    async def handler(reader, writer):
        held.append(writer)  # reads nothing, answers nothing, keeps the connection open
        await asyncio.sleep(30)

    server, url = await serve(handler)
    kube = Kube(Connection(server=url), timeout=0.5)
    try:
        started = time.monotonic()
        reply = await kube.request("GET", "/")
        assert reply.code == 0 and not reply.ok
        assert time.monotonic() - started < 5
        assert held  # it did connect: the timeout was the answer's
    finally:
        await kube.close()
        server.close()


async def test_a_silent_watch_stops_at_once_when_its_reader_is_cancelled() -> None:
    streaming = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        streaming.set()
        await asyncio.sleep(30)  # no event, no bookmark

    server, url = await serve(handler)
    kube = Kube(Connection(server=url))
    got: list[dict] = []

    async def read() -> None:
        async for event in kube.watch("/w", {}, timeout=300):
            got.append(event)

    try:
        task = asyncio.create_task(read())
        await asyncio.wait_for(streaming.wait(), 5)  # the watch is open: its reader blocks
        await asyncio.sleep(0)
        assert not task.done()
        started = time.monotonic()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done and task.cancelled() and not got
        # the worker thread was unblocked too: the default executor shuts down at once
        await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 5)
        assert time.monotonic() - started < 5
    finally:
        await kube.close()
        server.close()


async def test_no_server_is_a_reply_not_an_exception() -> None:
    kube = Kube(Connection(server="http://127.0.0.1:9"), timeout=2)
    reply = await kube.request("GET", "/")
    assert reply.code == 0 and not reply.ok
    await kube.close()
