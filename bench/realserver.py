"""The benchmarks' real Kubernetes API: a local control plane (kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, kwok) from `make kube-bins`, loaded with the CRDs
and a fleet, beside the sandbox they also run on. Figures on both are printed side by side.

    server = RealServer(tmp / "real")
    await server.load(objects)      # POSTed concurrently, as a client would
    async with server.session() as s: ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import copy
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.realcluster.launcher import ControlPlane, LaunchError, which_kubectl  # noqa: E402

CORE = {"Node": "nodes", "Pod": "pods", "Namespace": "namespaces"}


def _settled(node: dict[str, Any]) -> bool:
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )
    return ready and "node.alpha.kubernetes.io/ttl" in (node["metadata"].get("annotations") or {})


def _collection(obj: dict[str, Any]) -> str:
    kind, meta = obj["kind"], obj["metadata"]
    if kind in CORE:
        ns = f"/namespaces/{meta['namespace']}" if kind == "Pod" else ""
        return f"/api/v1{ns}/{CORE[kind]}"
    plural = kind.lower() + "s"
    ns = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    return f"/apis/{obj['apiVersion']}{ns}/{plural}"


class RealServer:
    def __init__(self, workdir: Path, disable_qps_limits: bool = False):
        self.cp = ControlPlane(workdir, disable_qps_limits=disable_qps_limits)
        try:
            self.cp.start()
        except LaunchError as err:
            raise SystemExit(
                f"the real control plane did not start (make kube-bins?): {err}"
            ) from None
        self.url = self.cp.server
        self.kubeconfig = self.cp.kubeconfig
        subprocess.run(
            [which_kubectl(), "--kubeconfig", str(self.kubeconfig), "apply", "--server-side",
             "-f", str(ROOT / "crds")],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [which_kubectl(), "--kubeconfig", str(self.kubeconfig), "wait",
             "--for=condition=Established", "--timeout=60s", "crd", "--all"],
            check=True, capture_output=True,
        )  # fmt: skip

    def ssl_context(self) -> ssl.SSLContext:
        assert self.cp.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.cp.pki.ca_cert))
        ctx.load_cert_chain(str(self.cp.pki.admin_cert), str(self.cp.pki.admin_key))
        return ctx

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        """An admin session (the benchmark's own set-up and measurements)."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context(), limit=limit)
        )

    async def load(self, objects: list[dict[str, Any]], concurrency: int = 32) -> float:
        """Create every object (namespaces first); returns the seconds it took."""
        start = time.perf_counter()
        bound = asyncio.Semaphore(concurrency)
        async with self.session(limit=concurrency) as s:

            async def create(obj: dict[str, Any]) -> None:
                body = copy.deepcopy(obj)
                for key in ("uid", "resourceVersion", "generation", "creationTimestamp"):
                    body["metadata"].pop(key, None)
                if body["kind"] == "Node":  # kwok's kubelets say Ready (and heartbeat) themselves
                    body.get("status", {}).pop("conditions", None)
                else:
                    body.pop("status", None)  # kwok sets a pod's phase
                async with bound, s.post(self.url + _collection(body), json=body) as r:
                    if r.status not in (200, 201, 409):
                        raise SystemExit(
                            f"creating {body['kind']} {body['metadata']['name']}: {r.status} {await r.text()}"
                        )

            order = ("Namespace", "Node", "Site", "PowerBudget")
            for kind in order:
                await asyncio.gather(*(create(o) for o in objects if o["kind"] == kind))
            await asyncio.gather(*(create(o) for o in objects if o["kind"] not in order))
        return time.perf_counter() - start

    async def settle(self, timeout: float = 240.0) -> float:
        """Waits until kwok has made every node Ready and kube-controller-manager has
        written each once (its TTL controller annotates every new node, at its 20 requests
        a second): the churn of new nodes is over, as on a site whose nodes are old. What
        stays is the kubelets' (kwok's) status heartbeats, as on every real cluster.
        Returns the seconds it took."""
        start = time.perf_counter()
        async with self.session() as s:
            while True:
                async with s.get(self.url + "/api/v1/nodes") as r:
                    nodes = (await r.json())["items"]
                if all(_settled(n) for n in nodes):
                    return time.perf_counter() - start
                if time.perf_counter() - start > timeout:
                    raise SystemExit(f"the nodes did not settle within {timeout:.0f} s")
                # a second per 1,000 nodes: a listing of 5,000 every second (25 MB of JSON)
                # kept the apiserver busy enough that the full scale never settled
                await asyncio.sleep(max(1.0, len(nodes) / 1000))

    def stop(self) -> None:
        self.cp.stop()
