"""The agent's HTTP/1.1 client against a raw server: kept-alive connections, a server that
drops an idle one, chunked and length-framed bodies, a watch stream."""

from __future__ import annotations

import asyncio
import json

from dualcap.agent.kube import Connection, Kube


async def serve(handler) -> tuple[asyncio.base_events.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length) if length else b""
    return head.split(b"\r\n")[0].decode(), body


async def test_keep_alive_and_a_server_that_drops_idle_connections() -> None:
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        line, body = await read_request(reader)
        payload = json.dumps({"line": line, "body": body.decode()}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        await writer.drain()
        writer.close()  # gone after one response, without saying so

    server, url = await serve(handler)
    kube = Kube(Connection(server=url, token="t0ken"))
    try:
        first = await kube.request("PATCH", "/api/v1/nodes/a", {"x": 1}, params={"q": "1 2"})
        assert first.ok and first.body["line"] == "PATCH /api/v1/nodes/a?q=1+2 HTTP/1.1"
        assert json.loads(first.body["body"]) == {"x": 1}
        await asyncio.sleep(0.05)
        second = await kube.request("GET", "/b")  # the kept connection is stale: retried
        assert second.ok and second.body["line"] == "GET /b HTTP/1.1"
        assert len(connections) == 2
    finally:
        await kube.close()
        server.close()


async def test_chunked_bodies_and_a_watch() -> None:
    async def handler(reader, writer):
        for _ in range(2):
            line, _ = await read_request(reader)
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


async def test_no_server_is_a_reply_not_an_exception() -> None:
    kube = Kube(Connection(server="http://127.0.0.1:9"), timeout=2)
    reply = await kube.request("GET", "/")
    assert reply.code == 0 and not reply.ok
    await kube.close()
