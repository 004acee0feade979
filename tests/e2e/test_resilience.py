"""The operator against a real control plane that fails under it: the operator killed in
the middle of a cut and started again; etcd and kube-apiserver stopped and started again;
a watch that resumes after an etcd compaction gets 410 Gone and must re-list. Each time the
site ends where the plan says, with no duplicate lease pod and nothing lost."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.scenario import (
    API,
    SITE,
    Target,
    connect,
    curtailed,
    get,
    label,
    lease_pods,
    miners,
    namespace_usable,
    objects,
    ok,
    operator,
    pick_nodes,
    site_status,
    until,
)
from tests.realcluster.launcher import ControlPlane

pytestmark = pytest.mark.e2e

TIMEOUT = 120


def event(limit_kw: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"name": f"e2e-cut-{int(limit_kw)}", "limitKW": limit_kw,
            "start": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip


async def settled(t: Target, mining: int) -> dict[str, Any] | None:
    s = await site_status(t)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions") or [])
    return s if ready and (s.get("controllers") or {}).get("mining") == mining else None


async def node_curtailed(t: Target, node: str) -> bool:
    n = await get(t, f"/api/v1/nodes/{node}")
    return bool(n) and curtailed(n) and not await miners(t)  # type: ignore[arg-type]


async def node_resumed(t: Target, node: str) -> bool:
    n = await get(t, f"/api/v1/nodes/{node}")
    return bool(n) and not curtailed(n) and len(await miners(t)) == 1  # type: ignore[arg-type]


async def one_lease_pod(t: Target) -> bool:
    pods = await lease_pods(t)
    return len(pods) == 1 and (pods[0].get("status") or {}).get("phase") == "Running"


@pytest.mark.parametrize("compaction", [False, True], ids=["restarts", "restarts-and-compaction"])
async def test_restarts_and_compaction_lose_nothing(
    cluster: Cluster, local: ControlPlane, tmp_path: Path, compaction: bool
) -> None:
    client = connect(cluster.kubeconfig)
    t = Target(client, cluster.kubeconfig, real=True, timeout=TIMEOUT, kwok=True)
    log = tmp_path / "operator.log"
    await namespace_usable(t)
    asic, gpu = await pick_nodes(t)
    await label(t, asic, "asic", None)
    await label(t, gpu, "gpu", 2)
    created: list[str] = []
    budget = f"{API}/powerbudgets/{SITE}"
    try:
        for path, body in objects(asic, gpu):
            await ok(t.client.create(path, body), 409)
            created.append(f"{path}/{body['metadata']['name']}")

        # 1. The operator killed in the middle of a cut, and started again.
        async with operator(cluster.kubeconfig, log) as proc:
            await until(lambda: one_lease_pod(t), TIMEOUT, "the lease's pod running")
            await until(lambda: settled(t, 1), TIMEOUT, "the site settled, mining")
            await ok(t.client.patch(budget, {"spec": {"events": [event(50)]}}))
            await until(lambda: _marked(t, asic), TIMEOUT, "the cut begun (the node marked)")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        async with operator(cluster.kubeconfig, log) as proc:
            await until(lambda: node_curtailed(t, asic), TIMEOUT, "the controller curtailed")
            await until(lambda: settled(t, 0), TIMEOUT, "the site settled inside 50 kW")
            await exactly_one_lease_pod(t, "after the restart")

            # 2. etcd and kube-apiserver stopped and started again under the operator.
            local.stop_component("kube-apiserver")
            local.stop_component("etcd")
            local.start_component("etcd")
            local.start_component("kube-apiserver")
            await ok(t.client.patch(budget, {"spec": {"events": None}}))
            await until(
                lambda: node_resumed(t, asic), TIMEOUT, "the controller resumed after the restart"
            )
            await until(lambda: settled(t, 1), TIMEOUT, "the site settled, mining again")

            if not compaction:
                return
            # 3. A compaction while the operator cannot watch: frozen, its watches broken by
            #    an apiserver restart, etcd compacted past everything it has seen. Its watches
            #    resume from resourceVersions that are gone (410): it must re-list, and see
            #    the cut that was made meanwhile.
            proc.send_signal(signal.SIGSTOP)
            try:
                await ok(t.client.patch(budget, {"spec": {"events": [event(40)]}}))
                for i in range(20):  # history for the compaction to drop
                    await ok(t.client.patch(f"/api/v1/nodes/{gpu}",
                                            {"metadata": {"annotations": {"e2e/churn": str(i)}}}))  # fmt: skip
                local.stop_component("kube-apiserver")
                local.etcd_compact()
                local.start_component("kube-apiserver")
            finally:
                proc.send_signal(signal.SIGCONT)
            try:
                await until(
                    lambda: node_curtailed(t, asic),
                    TIMEOUT,
                    "the cut made during the freeze carried out",
                )
            except AssertionError as err:  # which side stalled: dualcap's marks or the eviction
                node = await get(t, f"/api/v1/nodes/{asic}") or {}
                pods = [(p["metadata"]["name"], p["spec"].get("nodeName")) for p in await miners(t)]
                status = await site_status(t)
                raise AssertionError(
                    f"{err}\nnode spec: {node.get('spec')}\nminer pods: {pods}\n"
                    f"site: {status.get('controllers')} {status.get('conditions')}"
                ) from None
            status = await until(lambda: settled(t, 0), TIMEOUT, "the site settled inside 40 kW")
            assert status["committedKW"] <= 40
            await exactly_one_lease_pod(t, "after the compaction")
    except BaseException:
        print(log.read_text() if log.exists() else "(no operator log)")
        raise
    finally:
        async with operator(cluster.kubeconfig, log):
            for path in reversed(created):
                await t.client.delete(path)
            await until(lambda: _gone(t, f"{API}/sites/{SITE}"), TIMEOUT, "the Site deleted")
        await label(t, asic, None, None)
        await label(t, gpu, None, 0)
        await client.close()


async def exactly_one_lease_pod(t: Target, when: str) -> None:
    """Never two (a duplicate would draw twice), and the one running again soon (a pod the
    operator made again, after a relist found it gone, starts as Pending)."""
    pods = await lease_pods(t)
    names = [p["metadata"]["name"] for p in pods]
    assert len(pods) <= 1, f"duplicate lease pods {when}: {names}"
    await until(lambda: one_lease_pod(t), 30, f"the lease's one pod running {when}")


async def _marked(t: Target, node: str) -> bool:
    n = await get(t, f"/api/v1/nodes/{node}")
    return bool(n) and curtailed(n)  # type: ignore[arg-type]


async def _gone(t: Target, path: str) -> bool:
    return (await t.client.request("GET", path)).code == 404
