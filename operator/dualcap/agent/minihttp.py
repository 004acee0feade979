"""Just enough HTTP/1.1 for the agent's few API calls, on asyncio streams.

The agent runs on every ASIC controller, beside the miners, and should stay small (a
full HTTP client library costs it a fifth of its memory). It needs one kept-alive
connection for its requests and one for its watch: JSON bodies, `Content-Length` or
chunked responses, TLS. Every read and write is bounded in time by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024  # a list of every node of a large cluster fits
CLOSED = "connection closed before the response"


class HttpError(Exception):
    """The peer broke the protocol or closed the connection mid-response."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    prefix: str  # a path the server URL carries (an API behind a proxy)

    @classmethod
    def of(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One HTTP/1.1 connection, opened on demand, kept alive, reopened after an error."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None):
        self.endpoint = endpoint
        self.context = context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.endpoint.host,
                self.endpoint.port,
                ssl=self.context if self.endpoint.tls else None,
                server_hostname=self.endpoint.host if self.endpoint.tls else None,
            )
        return self._reader, self._writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    def _head(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
    ) -> bytes:
        target = self.endpoint.prefix + path + ("?" + urlencode(params) if params else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.endpoint.authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
    ) -> asyncio.StreamReader:
        """Write one request; returns the reader positioned at the response."""
        reader, writer = await self._open()
        writer.write(self._head(method, path, params, headers, body) + (body or b""))
        await writer.drain()
        return reader

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
    ) -> Response:
        for attempt in (0, 1):
            reused = self._writer is not None and not self._writer.is_closing()
            try:
                reader = await self.send(method, path, params, headers, body)
                status, head = await read_head(reader)
                data = await read_body(reader, head)
            except (HttpError, ConnectionError) as err:
                await self.close()
                # a kept-alive connection the server closed while idle: once more, afresh
                if reused and attempt == 0 and _stale(err):
                    continue
                raise
            except BaseException:
                await self.close()
                raise
            if head.get("connection", "").lower() == "close":
                await self.close()
            return Response(status, head, data)
        raise HttpError("unreachable")


def _stale(err: BaseException) -> bool:
    """The error a request on a connection the server already closed ends with."""
    return isinstance(err, ConnectionError) or str(err) == CLOSED


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise HttpError(CLOSED)
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.1 status line: {line[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            return int(parts[1]), headers
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise HttpError("too many response headers")


async def chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The chunks of a chunked body, until the last one."""
    for _ in iter(int, 1):  # until the zero-size chunk; every read is bounded by the caller
        size_line = await reader.readline()
        if not size_line:
            raise HttpError("connection closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        if size > MAX_BODY:
            raise HttpError("chunk too large")
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        async for chunk in chunks(reader):
            out += chunk
            if len(out) > MAX_BODY:
                raise HttpError("response too large")
        return bytes(out)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise HttpError("response too large")
        return await reader.readexactly(length)
    data = await reader.read(MAX_BODY)  # no length: the body ends with the connection
    return data
