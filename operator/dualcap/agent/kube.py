"""The agent's few Kubernetes calls.

The agent reads one Node and writes one MinerBlock and a few Events; it does not need the
operator's client (which runs kopf's login and a loop of its own), nor an HTTP library
beyond the standard library's: `http.client`, its blocking calls run in worker threads.
One kept-alive connection carries the requests (one at a time, opened again when the
server has closed it), each watch has one of its own; every call is bounded by a socket
timeout and by the loop, which shuts a connection down to unblock a call it gives up on.
Credentials: dualcap's one loader (`dualcap.login`): a kubeconfig, exec
plugins included, or in a pod the service account (its token file is re-read, as bound
tokens rotate); loaded again when they expire or the server answers 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from dualcap.login import Credentials, CredentialsError, renewed
from dualcap.login import load as load_credentials

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster configuration."""


@dataclass
class Connection:
    server: str
    credentials: Credentials | None = None  # loaded again when they expire or on a 401
    token: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def __repr__(self) -> str:  # never print a token
        return f"Connection(server={self.server!r})"


def load_connection(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """dualcap's one way to log in (`dualcap.login`): `--kubeconfig`, else
    `$KUBECONFIG`, else the pod's service account, else `~/.kube/config`; exec credential
    plugins included."""
    try:
        creds = load_credentials(kubeconfig, context)
    except CredentialsError as err:
        raise ConfigError(str(err)) from None
    return Connection(
        server=creds.server,
        credentials=creds,
        ca_file=creds.ca_path,
        cert_file=creds.cert_path,
        key_file=creds.key_path,
        insecure=creds.insecure,
    )


MAX_BODY = 64 * 1024 * 1024  # a list of every node of a large cluster fits
MAX_EVENT = 16 * 1024 * 1024  # one watch event: one object
# what a call can end with: no answer, a broken or closed connection, a protocol error
FAILURES = (OSError, http.client.HTTPException, ValueError)
T = TypeVar("T")


@dataclass
class Reply:
    code: int  # 0: no answer (connection refused, timeout)
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body.get("reason") or "")[:300]
        return str(self.body)[:300]


class WatchGone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class WatchError(Exception):
    """The server refused a watch, or sent what is not one."""


class _Connection:
    """One `http.client` connection used from the event loop.

    Its blocking calls run in worker threads, one at a time, each bounded by the socket's
    timeout and by the loop's own. A call the loop gives up on (a timeout, a cancellation)
    is unblocked by `abort`: a socket shutdown wakes a thread blocked on it, where closing
    it would not; the connection itself is closed once no thread uses it any more.
    """

    def __init__(self, conn: http.client.HTTPConnection):
        self.http = conn
        self.aborted = False
        self._sock: socket.socket | None = None  # kept: a response may outlive conn.sock
        self._lock = threading.Lock()
        self._future: asyncio.Future[Any] | None = None

    def connect(self) -> None:
        """Open the connection if it is not open (in a worker thread)."""
        if self.http.sock is not None:
            return
        self.http.connect()
        with self._lock:
            self._sock, aborted = self.http.sock, self.aborted
        if aborted:  # given up on while connecting
            self.http.close()
            raise ConnectionAbortedError("connection given up on")

    def settimeout(self, seconds: float) -> None:
        if self._sock is not None:
            self._sock.settimeout(seconds)

    async def call(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """``fn(*args)`` in a worker thread, waited for at most ``timeout`` seconds."""
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._future = future
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:
            self.abort()
            raise
        if not done:
            self.abort()
            raise TimeoutError(f"no answer within {timeout:g}s")
        return future.result()

    def abort(self) -> None:
        """Unblock the call in flight (from the loop); the connection is of no more use."""
        with self._lock:
            self.aborted, sock = True, self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        future = self._future
        if future is None or future.done():
            self.http.close()
        else:
            future.add_done_callback(self._close_after)

    def _close_after(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: the loop gave up on it, nobody else will
        self.http.close()


def _once(
    conn: _Connection, method: str, target: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes]:
    """One request and its whole response (in a worker thread)."""
    try:
        conn.connect()
        conn.http.request(method, target, body=body, headers=headers)
        resp = conn.http.getresponse()
        data = resp.read(MAX_BODY + 1)
    except BaseException:
        conn.http.close()
        raise
    if len(data) > MAX_BODY or not resp.isclosed():
        conn.http.close()  # the rest of the body is unread: the connection is done
    if len(data) > MAX_BODY:
        raise ValueError("response too large")
    return resp.status, data


def _exchange(
    conn: _Connection, method: str, target: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes]:
    """A request on the kept-alive connection; one the server closed while it was idle
    fails at once, and the request goes once more on a fresh connection."""
    reused = conn.http.sock is not None
    try:
        return _once(conn, method, target, headers, body)
    except ConnectionError:
        if not reused or conn.aborted:
            raise
    return _once(conn, method, target, headers, body)


def _open_watch(
    conn: _Connection, target: str, headers: dict[str, str], read_timeout: float
) -> http.client.HTTPResponse:
    """Send a watch request and read its response's head (in a worker thread)."""
    conn.connect()
    conn.http.request("GET", target, headers=headers)
    resp = conn.http.getresponse()
    conn.settimeout(read_timeout)  # the server sends bookmarks meanwhile
    return resp


class Kube:
    """A handful of JSON calls against one API server: one kept-alive connection for
    requests (one at a time), one per watch."""

    def __init__(self, conn: Connection, timeout: float = 15.0):
        self.conn = conn
        self._timeout = timeout
        parts = urlsplit(conn.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {conn.server!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")  # a path the server URL carries (a proxy)
        self._context = self._ssl()
        self._http: _Connection | None = None
        self._lock = asyncio.Lock()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self._tls:
            return None
        context = ssl.create_default_context(cafile=self.conn.ca_file)
        if self.conn.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.conn.cert_file:
            context.load_cert_chain(self.conn.cert_file, self.conn.key_file)
        return context

    def _connection(self) -> _Connection:
        if self._tls:
            return _Connection(
                http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            )
        return _Connection(
            http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        )

    def _target(self, path: str, params: dict[str, str] | None) -> str:
        return self._prefix + path + ("?" + urlencode(params) if params else "")

    def _headers(self, ctype: str | None = None) -> dict[str, str]:
        headers = {"User-Agent": "dualcap-agent", "Accept": "application/json"}
        if ctype:
            headers["Content-Type"] = ctype
        token = self.conn.token
        if self.conn.credentials is not None:
            try:
                token = self.conn.credentials.bearer()
            except CredentialsError as err:
                log.warning("%s", err)
                token = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _renew(self, force: bool = False) -> None:
        """Load the credentials again when they have expired (or ``force``: a 401)."""
        if self.conn.credentials is not None:
            self.conn.credentials = await renewed(self.conn.credentials, force)

    async def close(self) -> None:
        conn, self._http = self._http, None
        if conn is not None:
            conn.abort()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        params: dict[str, str] | None = None,
        accept: str | None = None,
    ) -> Reply:
        reply = await self._request(method, path, body, ctype, params, accept)
        if reply.code == 401 and self.conn.credentials is not None:
            await self._renew(force=True)
            reply = await self._request(method, path, body, ctype, params, accept)
        return reply

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        ctype: str,
        params: dict[str, str] | None,
        accept: str | None,
    ) -> Reply:
        await self._renew()
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(ctype if body is not None else None)
        if accept:
            headers["Accept"] = accept
        target = self._target(path, params)
        async with self._lock:
            conn = self._http = self._http or self._connection()
            try:
                status, raw = await conn.call(
                    _exchange, conn, method, target, headers, data, timeout=self._timeout
                )
            except BaseException as err:
                self._http = None  # closed, or given up on: the next request opens another
                if isinstance(err, FAILURES):
                    return Reply(0, {"reason": "ConnectionError", "message": type(err).__name__})
                raise
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return Reply(status, doc)

    async def watch(
        self, path: str, params: dict[str, str], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request; ends when the server closes it. Every read
        waits at most ``timeout`` seconds (the server sends bookmarks meanwhile); closing
        the iterator (or cancelling its reader) shuts the connection down at once."""
        query = {**params, "watch": "1", "allowWatchBookmarks": "true"}
        await self._renew()
        conn = self._connection()
        try:
            resp = await conn.call(
                _open_watch,
                conn,
                self._target(path, query),
                self._headers(),
                timeout,
                timeout=self._timeout,
            )
            if resp.status == 410:
                raise WatchGone()
            if resp.status == 401:
                await self._renew(force=True)  # for the watch opened next
            if resp.status >= 400:
                raise WatchError(f"watch refused: {resp.status}")
            for _ in iter(int, 1):  # until the server ends the watch; every read is bounded
                line = await conn.call(resp.readline, MAX_EVENT + 1, timeout=timeout + 1)
                if not line:
                    return
                if len(line) > MAX_EVENT:
                    raise WatchError("watch event too large")
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if (event.get("object") or {}).get("code") == 410:
                        raise WatchGone()
                    return
                yield event
        finally:
            conn.abort()
