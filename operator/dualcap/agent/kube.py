"""The agent's few Kubernetes calls, with a kubeconfig loader of its own.

The agent reads one Node and writes one MinerBlock and a few Events; it does not need the
operator's client (which runs kopf's login and a loop of its own), nor an HTTP library
beyond the standard library's: `http.client`, its blocking calls run in worker threads.
One kept-alive connection carries the requests (one at a time, opened again when the
server has closed it), each watch has one of its own; every call is bounded by a socket
timeout and by the loop, which shuts a connection down to unblock a call it gives up on.
Credentials: a kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`) or,
in a pod, the service account (its token file is re-read, as bound tokens rotate).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster configuration."""


@dataclass
class Connection:
    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def __repr__(self) -> str:  # never print a token
        return f"Connection(server={self.server!r})"


def _data_file(data: str, suffix: str) -> str:
    out = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)  # noqa: SIM115
    out.write(base64.b64decode(data))
    out.close()
    os.chmod(out.name, 0o600)
    return out.name


def _from_kubeconfig(path: Path) -> Connection:
    import yaml  # only here: an agent in a pod reads no kubeconfig

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read kubeconfig {path}: {err}") from err
    base = path.parent

    def named(kind: str, name: str | None) -> dict[str, Any]:
        for item in doc.get(kind + "s") or []:
            if item.get("name") == name:
                return dict(item.get(kind) or {})
        raise ConfigError(f"kubeconfig {path}: no {kind} {name!r}")

    context = named("context", doc.get("current-context"))
    cluster = named("cluster", context.get("cluster"))
    user = named("user", context.get("user")) if context.get("user") else {}
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig {path}: the cluster has no server")

    def file(key: str, data_key: str, suffix: str, section: dict[str, Any]) -> str | None:
        if section.get(data_key):
            return _data_file(section[data_key], suffix)
        if section.get(key):
            return str(base / section[key])
        return None

    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        token=user.get("token"),
        token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else None,
        ca_file=file("certificate-authority", "certificate-authority-data", ".crt", cluster),
        cert_file=file("client-certificate", "client-certificate-data", ".crt", user),
        key_file=file("client-key", "client-key-data", ".key", user),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def load_connection(kubeconfig: str | None = None) -> Connection:
    """`--kubeconfig`, else `$KUBECONFIG` (its first file), else the pod's service account
    when running in a cluster, else `~/.kube/config`."""
    if kubeconfig:
        return _from_kubeconfig(Path(kubeconfig))
    env = os.environ.get("KUBECONFIG")
    if env:
        return _from_kubeconfig(Path(env.split(os.pathsep)[0]))
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
    )
    if host and (SERVICE_ACCOUNT / "token").exists():
        if ":" in host:
            host = f"[{host}]"
        return Connection(
            server=f"https://{host}:{port}",
            token_file=str(SERVICE_ACCOUNT / "token"),
            ca_file=str(SERVICE_ACCOUNT / "ca.crt"),
        )
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return _from_kubeconfig(default)
    raise ConfigError("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod")


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
        self._token: tuple[float, str] | None = None
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
        if self.conn.token_file:
            now = time.monotonic()
            if self._token is None or now - self._token[0] > 60:
                try:
                    self._token = (now, Path(self.conn.token_file).read_text().strip())
                except OSError:
                    self._token = None
            token = self._token[1] if self._token else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

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
