"""The sandbox as a whole: API server + cluster behaviour on localhost, with a kubeconfig."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from dualcap_sandbox.cluster import Behaviour, Cluster
from dualcap_sandbox.faults import Faults
from dualcap_sandbox.manifests import ManifestError, read_objects
from dualcap_sandbox.server import Api
from dualcap_sandbox.store import ApiError, Store

# Load order: what other objects need must exist first.
_FIRST = ("CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "Node")


def kubeconfig(server: str, name: str = "dualcap-sandbox") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": "sandbox"}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        ],
        "current-context": name,
        "preferences": {},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    """A local Kubernetes API with cluster behaviour. ``async with Sandbox() as sb``."""

    def __init__(
        self, port: int = 0, behaviour: Behaviour | None = None, bookmark_seconds: float = 5.0
    ):
        self.store = Store()
        self.faults = Faults()
        self.api = Api(self.store, self.faults, bookmark_seconds=bookmark_seconds)
        self.behaviour = behaviour or Behaviour()
        self.cluster: Cluster | None = None
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Sandbox:
        self.cluster = Cluster(self.store, self.api, self.behaviour)
        self.cluster.start()
        self._runner = web.AppRunner(self.api.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        return self

    async def stop(self) -> None:
        self.store.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.cluster is not None:
            await self.cluster.stop()

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(kubeconfig(self.url)))
        return out

    def load_objects(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create objects (CRDs, namespaces and nodes first); returns what was created."""
        ordered = sorted(
            objects,
            key=lambda o: _FIRST.index(o.get("kind")) if o.get("kind") in _FIRST else len(_FIRST),
        )
        created = []
        for obj in ordered:
            created.append(self.api.create_object(obj))
        return created

    def load_files(self, paths: list[str]) -> int:
        objects = [o for p in paths for o in read_objects(p)]
        return len(self.load_objects(objects))

    async def settle(self, seconds: float = 0.05) -> None:
        """Let the cluster behaviour catch up (tests prefer waiting on a condition)."""
        await asyncio.sleep(seconds)


async def serve(port: int, kubeconfig_path: str, load: list[str], behaviour: Behaviour) -> None:
    sandbox = Sandbox(port=port, behaviour=behaviour)
    await sandbox.start()
    try:
        if load:
            try:
                n = sandbox.load_files(load)
            except ApiError as err:
                raise SystemExit(
                    f"dualcap-sandbox: error: loading {', '.join(load)}: {err.message}"
                ) from err
            except ManifestError as err:
                raise SystemExit(f"dualcap-sandbox: error: {err}") from err
            print(f"loaded {n} objects", flush=True)
        path = sandbox.write_kubeconfig(kubeconfig_path)
        print(f"sandbox API at {sandbox.url}", flush=True)
        print(f"kubeconfig: {path}   (export KUBECONFIG={path})", flush=True)
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()
