"""The agent's few Kubernetes calls, with a kubeconfig loader of its own.

The agent reads one Node and writes one MinerBlock and a few Events; it does not need the
operator's client (which runs kopf's login and a loop of its own), nor a full HTTP
library (see `dualcap.agent.minihttp`). Credentials: a
kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`) or, in a pod, the
service account (its token file is re-read, as bound tokens rotate).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualcap.agent import minihttp as http

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


class Kube:
    """A handful of JSON calls against one API server: one kept-alive connection for
    requests (one at a time), one per watch."""

    def __init__(self, conn: Connection, timeout: float = 15.0):
        self.conn = conn
        self._timeout = timeout
        self._token: tuple[float, str] | None = None
        self._endpoint = http.Endpoint.of(conn.server)
        self._context = self._ssl()
        self._http = http.Connection(self._endpoint, self._context)
        self._lock = asyncio.Lock()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.conn.server.startswith("https"):
            return None
        context = ssl.create_default_context(cafile=self.conn.ca_file)
        if self.conn.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.conn.cert_file:
            context.load_cert_chain(self.conn.cert_file, self.conn.key_file)
        return context

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
        await self._http.close()

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
        try:
            async with self._lock:
                resp = await asyncio.wait_for(
                    self._http.request(method, path, params, headers, data), self._timeout
                )
        except (http.HttpError, OSError, EOFError, TimeoutError, ValueError) as err:
            return Reply(0, {"reason": "ConnectionError", "message": type(err).__name__})
        try:
            doc = json.loads(resp.body) if resp.body else None
        except ValueError:
            doc = resp.body.decode(errors="replace")
        return Reply(resp.status, doc)

    async def watch(
        self, path: str, params: dict[str, str], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request; ends when the server closes it. Every read
        waits at most ``timeout`` seconds (the server sends bookmarks meanwhile)."""
        query = {**params, "watch": "1", "allowWatchBookmarks": "true"}
        conn = http.Connection(self._endpoint, self._context)
        try:
            reader = await asyncio.wait_for(
                conn.send("GET", path, query, self._headers(), None), self._timeout
            )
            status, head = await asyncio.wait_for(http.read_head(reader), self._timeout)
            if status == 410:
                raise WatchGone()
            if status >= 400:
                raise http.HttpError(f"watch refused: {status}")
            pending = b""
            stream = (
                http.chunks(reader)
                if "chunked" in head.get("transfer-encoding", "").lower()
                else _raw(reader)
            )
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(stream), timeout)
                except StopAsyncIteration:
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        if (event.get("object") or {}).get("code") == 410:
                            raise WatchGone()
                        return
                    yield event
        finally:
            await conn.close()


async def _raw(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """A body without chunked framing: what arrives until the connection closes."""
    for _ in iter(int, 1):
        data = await reader.read(65536)
        if not data:
            return
        yield data
