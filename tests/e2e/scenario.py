"""The end-to-end scenario, written once against any Kubernetes API: a real cluster
(`make e2e`, kind in CI) or the sandbox (`make test`). The operator is a real
`dualcap run` process; the scenario talks to the API over HTTP with the kubeconfig's
credentials, exactly as kubectl would.

One ASIC controller and one GPU node (on a real cluster: two schedulable nodes, labelled
for the test, the GPU advertised by patching the node's status), a fake miner DaemonSet
(pause containers), a Site, a PowerBudget and a guaranteed one-GPU lease:
1. mining and the lease both fit: the lease's pod runs on the GPU node, the miner mines;
2. a demand-response event cuts the limit below mining: the controller is cordoned,
   tainted and its miner evicted, the lease keeps running;
3. the event ends: the controller resumes (taint and cordon gone), the miner returns;
4. the lease is deleted: its pod goes;
5. clean-up leaves the nodes as they were.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf

from dualcap.client import Client, Response
from tests.sandbox.conftest import wait_for

NS = "dualcap-e2e"
SITE = "e2e"
GPU = "nvidia.com/gpu"
TAINT = "dualcap.io/curtailed"
API = "/apis/dualcap.io/v1alpha1"
PAUSE = "registry.k8s.io/pause:3.9"


@dataclass
class Target:
    client: Client
    kubeconfig: Path
    real: bool  # a real cluster: pick its nodes instead of creating them
    timeout: float  # seconds for each wait (image pulls take a while on a real cluster)
    kwok: bool = False  # a real cluster whose nodes are kwok's: create them as for the sandbox
    operator_kubeconfig: Path | None = None  # the operator's own login (default: kubeconfig's)


def connect(kubeconfig: Path) -> Client:
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        info = kopf.login_with_kubeconfig(
            logger=logging.getLogger("e2e"), settings=kopf.OperatorSettings()
        )
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
    assert info is not None, f"no credentials in {kubeconfig}"
    return Client(info)


async def ok(resp: Awaitable[Response], *allowed: int) -> Any:
    r = await resp
    assert r.ok or r.code in allowed, f"{r.code} {r.reason}: {r.message}"
    return r.body


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    return await wait_for(check, timeout=timeout, interval=0.25, what=what)


async def until_or_say(
    check: Callable[[], Awaitable[Any]],
    timeout: float,
    what: str,
    describe: Callable[[], Awaitable[str]],
) -> Any:
    """``until``, and on a timeout what ``describe`` says of the cluster then."""
    try:
        return await until(check, timeout, what)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{await describe()}") from None


@asynccontextmanager
async def operator(kubeconfig: Path, log: Path) -> Any:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dualcap", "run", "--liveness", "none",
            "--metrics-port", "0", "--log-format", "full",
            *(["-v"] if os.environ.get("DUALCAP_E2E_VERBOSE") else []),
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:  # a test may have killed it already
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def pick_nodes(t: Target) -> tuple[str, str]:
    c = t.client
    if not t.real or t.kwok:
        for name in ("e2e-asic-0", "e2e-gpu-0"):
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}],
                               "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                               "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}  # fmt: skip
            await ok(c.create("/api/v1/nodes", node), 409)
        return "e2e-asic-0", "e2e-gpu-0"
    nodes = (await ok(c.request("GET", "/api/v1/nodes")))["items"]
    usable = sorted(
        n["metadata"]["name"]
        for n in nodes
        if not (n.get("spec") or {}).get("unschedulable")
        and not any(
            t.get("effect") in ("NoSchedule", "NoExecute") for t in (n.get("spec") or {}).get("taints") or []
        )
    )  # fmt: skip
    assert len(usable) >= 2, f"the e2e scenario needs two schedulable nodes, found {usable}"
    return usable[0], usable[1]


def objects(asic_node: str, gpu_node: str) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, body) in the order they are created."""
    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        (f"/apis/apps/v1/namespaces/{NS}/daemonsets", miners_daemonset(NS, "miner-agent", "e2e-miner", SITE, PAUSE)),
        (f"{API}/sites", site_object(SITE, miner_app="e2e-miner", asic_kw=100, per_gpu_kw=1.0, idle_kw=0.5)),
        (f"{API}/powerbudgets", {
            "apiVersion": "dualcap.io/v1alpha1", "kind": "PowerBudget", "metadata": {"name": SITE},
            "spec": {"siteRef": SITE, "limitKW": 200, "energyPrice": {"usdPerMWh": 30}},
        }),
        (f"{API}/namespaces/{NS}/computeleases", {
            "apiVersion": "dualcap.io/v1alpha1", "kind": "ComputeLease",
            "metadata": {"name": "inference", "namespace": NS},
            "spec": {
                "siteRef": SITE, "gpus": 1, "gpusPerPod": 1, "priority": 10,
                "preemptible": False, "pricePerGPUHourUSD": 2.0,
                "template": {"spec": {"containers": [{"name": "main", "image": PAUSE}]}},
            },
        }),
    ]  # fmt: skip


def site_object(
    name: str,
    *,
    miner_app: str | None = None,
    asic_kw: float = 0.0,
    per_gpu_kw: float = 1.0,
    idle_kw: float = 0.0,
    **spec: Any,
) -> dict[str, Any]:
    """A Site of the real-cluster tier: its nodes by the site label, ASIC controllers (when
    ``miner_app`` names their miners' pods) and GPU nodes by role, no hysteresis, no ramp."""
    body: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"dualcap.io/site": name}},
        "facility": {"pue": 1.0, "fixedKW": 0},
        "gpu": {
            "nodeSelector": {"matchLabels": {"dualcap.io/role": "gpu"}},
            "resourceName": GPU, "powerPerGPUKW": per_gpu_kw, "idlePowerKW": idle_kw,
        },
        "behavior": {"minMiningSeconds": 0, "minCurtailedSeconds": 0,
                     "maxRampUpKWPerMinute": 100000, "onDelete": "Release"},
        **spec,
    }  # fmt: skip
    if miner_app is not None:
        body["asic"] = {
            "nodeSelector": {"matchLabels": {"dualcap.io/role": "asic"}},
            "miningPodSelector": {"matchLabels": {"app": miner_app}},
            "powerKW": asic_kw, "hashrateTHs": 5000, "hashpriceUSDPerPHDay": 45,
        }  # fmt: skip
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name},
        "spec": body,
    }


def miners_daemonset(namespace: str, name: str, app: str, site: str, image: str) -> dict[str, Any]:
    """The site's miners: a DaemonSet on its ASIC controllers (what a curtailment evicts)."""
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "nodeSelector": {"dualcap.io/site": site, "dualcap.io/role": "asic"},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "miner", "image": image}],
                },
            },
        },
    }  # fmt: skip


async def label(t: Target, node: str, role: str | None, gpus: int | None) -> None:
    labels = {"dualcap.io/site": SITE if role else None, "dualcap.io/role": role}
    await ok(t.client.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": labels}}))
    if gpus is not None:  # advertise (or withdraw) the extended resource, as a device plugin would
        value = str(gpus) if gpus else None
        body = {"status": {"capacity": {GPU: value}, "allocatable": {GPU: value}}}
        await ok(t.client.patch(f"/api/v1/nodes/{node}/status", body))


async def get(t: Target, path: str) -> dict[str, Any] | None:
    r = await t.client.request("GET", path)
    return r.body if r.ok else None


async def site_status(t: Target) -> dict[str, Any]:
    return ((await get(t, f"{API}/sites/{SITE}")) or {}).get("status") or {}


async def lease_pods(t: Target) -> list[dict[str, Any]]:
    body = await get(
        t, f"/api/v1/namespaces/{NS}/pods?labelSelector=dualcap.io%2Flease%3Dinference"
    )
    return [p for p in (body or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")]


async def miners(t: Target) -> list[dict[str, Any]]:
    body = await get(t, f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3De2e-miner")
    return [p for p in (body or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")]


def curtailed(node: dict[str, Any]) -> bool:
    spec = node.get("spec") or {}
    return bool(spec.get("unschedulable")) and any(
        t.get("key") == TAINT for t in spec.get("taints") or []
    )


async def namespace_usable(t: Target) -> None:
    """A namespace a previous scenario deleted is gone before this one makes it again (a
    real apiserver refuses creations in a namespace that is being terminated)."""

    async def not_terminating() -> bool:
        ns = await get(t, f"/api/v1/namespaces/{NS}")
        return ns is None or not ns["metadata"].get("deletionTimestamp")

    await until(not_terminating, t.timeout, f"namespace {NS} deleted by the previous scenario")


async def run_scenario(t: Target, log: Path) -> None:
    await namespace_usable(t)
    asic, gpu = await pick_nodes(t)
    await label(t, asic, "asic", None)
    await label(t, gpu, "gpu", 2)
    created: list[str] = []
    async with operator(t.operator_kubeconfig or t.kubeconfig, log):
        try:
            for path, body in objects(asic, gpu):
                await ok(t.client.create(path, body), 409)
                created.append(f"{path}/{body['metadata']['name']}")
            await scenario_steps(t, asic, gpu)
        finally:
            # With the operator still running: it releases the Site and drops its finalizer.
            for path in reversed(created):
                await t.client.delete(path)
            gone = await _wait_quietly(lambda: _gone(t, f"{API}/sites/{SITE}"), t.timeout)
            await label(t, asic, None, None)
            await label(t, gpu, None, 0)
    assert gone, "the Site was not deleted (its finalizer stayed)"


async def _wait_quietly(check: Callable[[], Awaitable[Any]], timeout: float) -> bool:
    try:
        await until(check, timeout, "clean-up")
    except AssertionError:
        return False
    return True


async def _gone(t: Target, path: str) -> bool:
    return (await t.client.request("GET", path)).code == 404


async def scenario_steps(t: Target, asic: str, gpu: str) -> None:
    # 1. Mining and the lease both fit.
    async def lease_running() -> bool:
        pods = await lease_pods(t)
        return (
            len(pods) == 1
            and pods[0]["spec"].get("nodeName") == gpu
            and (pods[0].get("status") or {}).get("phase") == "Running"
        )

    await until(lease_running, t.timeout, "the lease's pod running on the GPU node")

    async def settled(mining: int) -> dict[str, Any] | None:
        s = await site_status(t)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions") or []
        )
        return s if ready and (s.get("controllers") or {}).get("mining") == mining else None

    status = await until(
        lambda: settled(1), t.timeout, "the site settled with its controller mining"
    )
    assert status["gpus"]["leased"] == 1
    assert status["committedKW"] <= status["limitKW"]
    lease = await get(t, f"{API}/namespaces/{NS}/computeleases/inference")
    assert lease and lease["status"]["phase"] == "Running"
    await until(lambda: _one_miner_on(t, asic), t.timeout, "the miner running")

    # 2. A demand-response event: 50 kW, below the controller's 100 kW.
    now = datetime.now(UTC)
    event = {"name": "e2e-dr", "limitKW": 50,
             "start": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    await ok(t.client.patch(f"{API}/powerbudgets/{SITE}", {"spec": {"events": [event]}}))

    async def is_curtailed() -> bool:
        node = await get(t, f"/api/v1/nodes/{asic}")
        return bool(node) and curtailed(node) and not await miners(t)  # type: ignore[arg-type]

    await until(is_curtailed, t.timeout, "the controller curtailed and its miner evicted")
    status = await until(lambda: settled(0), t.timeout, "the site settled inside 50 kW")
    assert status["committedKW"] <= 50 and status["controllers"]["curtailed"] == 1
    assert await lease_running(), "the guaranteed lease keeps running"

    # 3. The event ends: the controller resumes, the miner returns.
    await ok(t.client.patch(f"{API}/powerbudgets/{SITE}", {"spec": {"events": None}}))

    async def resumed() -> bool:
        node = await get(t, f"/api/v1/nodes/{asic}")
        spec = (node or {}).get("spec") or {}
        return not spec.get("unschedulable") and not any(
            x.get("key") == TAINT for x in spec.get("taints") or []
        )

    await until(resumed, t.timeout, "the controller resumed")
    await until(lambda: _one_miner_on(t, asic), t.timeout, "the miner back")
    await until(lambda: settled(1), t.timeout, "the site settled mining again")

    # 4. The lease deleted: its pod goes.
    await ok(t.client.delete(f"{API}/namespaces/{NS}/computeleases/inference"))

    async def no_lease_pods() -> bool:
        return not await lease_pods(t)

    await until(no_lease_pods, t.timeout, "the lease's pod deleted")


async def _one_miner_on(t: Target, node: str) -> bool:
    pods = await miners(t)
    return len(pods) == 1 and pods[0]["spec"].get("nodeName") == node
