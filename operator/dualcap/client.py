"""A thin async Kubernetes client over aiohttp, with the credentials kopf logged in with
(and, where they came from `dualcap.login`, loaded again when they expire or
the server answers 401: an exec plugin's token, a service account's rotated token file).

The operator needs a handful of calls (patch a node, create and delete a pod, patch a
status); one small client keeps them explicit, bounded and non-blocking.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

from dualcap import __version__
from dualcap.login import Credentials, renewed

ConnectionInfo = kopf.ConnectionInfo  # the credentials kopf logged in with


def connection_info(creds: Credentials) -> kopf.ConnectionInfo:
    """kopf's form of the credentials: kopf logs in again when they expire."""
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=creds.insecure or None,
        scheme="Bearer" if creds.bearer() else None,
        token=creds.bearer(),
        certificate_path=creds.cert_path,
        private_key_path=creds.key_path,
        expiration=creds.expires_at,
    )


@dataclass
class Response:
    code: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message", ""))
        return str(self.body)[:200]


def _ssl(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    if not info.server.startswith("https"):
        return True
    context = ssl.create_default_context(cafile=info.ca_path)
    if info.ca_data:
        context.load_verify_locations(cadata=base64.b64decode(info.ca_data).decode())
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert_file = tempfile.NamedTemporaryFile(delete=False, suffix=".crt")  # noqa: SIM115
        cert_file.write(base64.b64decode(info.certificate_data))
        cert_file.close()
        key_file = tempfile.NamedTemporaryFile(delete=False, suffix=".key")  # noqa: SIM115
        key_file.write(base64.b64decode(info.private_key_data))
        key_file.close()
        cert, key = cert_file.name, key_file.name
    if cert:
        context.load_cert_chain(cert, key)
    return context


class StreamError(Exception):
    def __init__(self, code: int, body: bytes):
        super().__init__(f"{code}: {body[:200]!r}")
        self.code = code


class Client:
    """Requests run on an event loop of their own, in a thread: the operator's loop is
    busy with kopf's watch events exactly when a limit drop needs a burst of writes (a
    curtail batch makes a watch event per node and per evicted pod), and on a shared loop
    those events would queue ahead of every response. The caller awaits as usual."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        concurrency: int = 32,
        timeout: float = 30.0,
        credentials: Credentials | None = None,
    ):
        self.info = info
        # Where the token came from, to load it again (None: the token of `info`, as is).
        self.credentials = credentials
        self.server = info.server.rstrip("/")
        self.errors: dict[int, int] = {}  # API errors by code, for metrics
        self._concurrency = concurrency
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failed: BaseException | None = None  # the set-up's error (a bad CA, a bad key)
        self._thread = threading.Thread(target=self._run, name="dualcap-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._setup())
        except BaseException as err:  # said to the caller, never a thread waited on forever
            self._failed = err
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.session.close())
        self._loop.close()

    async def _setup(self) -> None:
        info = self.info
        # Which operator process wrote what (peering: only one of them may act).
        headers = {
            "User-Agent": f"dualcap/{__version__} ({socket.gethostname()}; pid {os.getpid()})"
        }
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self.session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=_ssl(info), limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        self.limit = asyncio.Semaphore(self._concurrency)

    async def _authorization(self, renew: bool = False) -> dict[str, str]:
        """The Authorization header for the next request (on the client's loop): the
        credentials loaded again first when they have expired or ``renew`` asks."""
        creds = self.credentials
        if creds is None:
            return {"Authorization": f"Bearer {self.info.token}"} if self.info.token else {}
        self.credentials = creds = await renewed(creds, force=renew)
        token = creds.bearer()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Response:
        future = asyncio.run_coroutine_threadsafe(
            self._request(method, path, body, ctype, params), self._loop
        )
        return await asyncio.wrap_future(future)

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        ctype: str,
        params: dict[str, str] | None,
    ) -> Response:
        data = None if body is None else json.dumps(body)
        async with self.limit:
            for attempt in (1, 2):  # a 401 with renewable credentials: once more, renewed
                headers = {"Content-Type": ctype, **await self._authorization(renew=attempt > 1)}
                try:
                    async with self.session.request(
                        method, self.server + path, data=data, params=params, headers=headers
                    ) as resp:
                        raw = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as err:
                    self.errors[0] = self.errors.get(0, 0) + 1
                    return Response(0, {"reason": "ConnectionError", "message": repr(err)})
                if status == 401 and attempt == 1 and self.credentials is not None:
                    continue
                break
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = raw.decode(errors="replace")
            if status >= 400:
                self.errors[status] = self.errors.get(status, 0) + 1
            return Response(status, doc)

    async def stream(
        self, path: str, params: dict[str, str], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch, one JSON object per line, read on the client's loop and
        handed to the caller's; an HTTP error status ends it with ``StreamError``."""
        caller = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        async def read() -> None:
            try:
                async with self.session.get(
                    self.server + path,
                    params=params,
                    headers=await self._authorization(),
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout),
                ) as resp:
                    if resp.status == 401 and self.credentials is not None:
                        await self._authorization(renew=True)  # the watcher's retry gets them
                    if resp.status >= 400:
                        self.errors[resp.status] = self.errors.get(resp.status, 0) + 1
                        body = await resp.read()
                        caller.call_soon_threadsafe(
                            queue.put_nowait, StreamError(resp.status, body)
                        )
                        return
                    async for line in resp.content:
                        if line.strip():
                            caller.call_soon_threadsafe(queue.put_nowait, json.loads(line))
            except Exception as err:
                caller.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                caller.call_soon_threadsafe(queue.put_nowait, done)

        future = asyncio.run_coroutine_threadsafe(read(), self._loop)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()

    async def patch(
        self, path: str, body: Any, ctype: str = "application/merge-patch+json"
    ) -> Response:
        return await self.request("PATCH", path, body, ctype)

    async def create(self, path: str, body: Any) -> Response:
        return await self.request("POST", path, body)

    async def delete(self, path: str, body: Any = None) -> Response:
        return await self.request("DELETE", path, body)
