"""Cluster behaviour: scheduling by GPUs, selectors, taints and cordons; kubelets; NoExecute
eviction; DaemonSets coming back; garbage collection; namespaces."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import wait_for

NODES = "/api/v1/nodes"
PODS = "/api/v1/namespaces/default/pods"
DS = "/apis/apps/v1/namespaces/default/daemonsets"


def node(name: str, gpus: int = 0, *, taints=None, cordoned=False, **labels) -> dict:
    status = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "allocatable": {"cpu": "8", "pods": "110"},
    }
    if gpus:
        status["allocatable"]["nvidia.com/gpu"] = str(gpus)
    spec = {"unschedulable": True} if cordoned else {}
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": status,
    }


def gpu_pod(name: str, gpus: int, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
            **spec,
        },
    }


async def placed(client, name: str) -> str | None:
    _, p = await client.get(f"{PODS}/{name}")
    return (p.get("spec") or {}).get("nodeName")


async def phase(client, name: str) -> str | None:
    code, p = await client.get(f"{PODS}/{name}")
    return (p.get("status") or {}).get("phase") if code == 200 else None


async def test_an_8_gpu_pod_lands_only_on_a_node_with_8_free(client) -> None:
    await client.post(NODES, node("small", 4))
    await client.post(NODES, node("big", 8))
    await client.post(PODS, gpu_pod("first", 8))
    assert await wait_for(lambda: placed(client, "first"), what="a binding") == "big"
    await wait_for(lambda: _is(phase(client, "first"), "Running"), what="the pod running")
    # The big node is full now: a second 8-GPU pod stays Pending, Unschedulable.
    await client.post(PODS, gpu_pod("second", 8))

    async def unschedulable():
        _, p = await client.get(f"{PODS}/second")
        cond = [c for c in p["status"].get("conditions", []) if c["type"] == "PodScheduled"]
        return (
            cond
            and cond[0]["status"] == "False"
            and "Insufficient nvidia.com/gpu" in cond[0]["message"]
        )

    await wait_for(unschedulable, what="an Unschedulable condition")
    # Free the GPUs: the pending pod is bound.
    await client.delete(f"{PODS}/first", params={"gracePeriodSeconds": "0"})
    assert await wait_for(lambda: placed(client, "second"), what="a binding") == "big"


async def _is(coro, value):
    return (await coro) == value


async def test_cordoned_and_tainted_nodes_get_no_pods(client) -> None:
    await client.post(NODES, node("cordoned", 8, cordoned=True))
    await client.post(
        NODES, node("tainted", 8, taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    )
    await client.post(PODS, gpu_pod("p", 8))

    async def reasons():
        _, p = await client.get(f"{PODS}/p")
        cond = [c for c in p["status"].get("conditions", []) if c["type"] == "PodScheduled"]
        return cond[0]["message"] if cond else None

    message = await wait_for(reasons, what="a scheduling failure")
    assert "unschedulable" in message and "untolerated taint" in message
    await client.post(
        PODS, gpu_pod("tolerant", 8, tolerations=[{"key": "gpu", "operator": "Exists"}])
    )
    assert await wait_for(lambda: placed(client, "tolerant")) == "tainted"


async def test_node_selector_and_affinity(client) -> None:
    await client.post(NODES, node("h100", 8, model="h100"))
    await client.post(NODES, node("a100", 8, model="a100"))
    await client.post(PODS, gpu_pod("sel", 8, nodeSelector={"model": "a100"}))
    assert await wait_for(lambda: placed(client, "sel")) == "a100"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "model", "operator": "In", "values": ["h100"]}]}
                ]
            }
        }
    }
    await client.post(PODS, gpu_pod("aff", 8, affinity=affinity))
    assert await wait_for(lambda: placed(client, "aff")) == "h100"


async def test_kubelet_runs_pods_and_finishes_graceful_deletion(client) -> None:
    await client.post(NODES, node("n"))
    await client.post(PODS, gpu_pod("p", 0, nodeName="n"))
    await wait_for(lambda: _is(phase(client, "p"), "Running"), what="Running")
    code, p = await client.delete(f"{PODS}/p")
    assert code == 200 and p["metadata"]["deletionTimestamp"]  # graceful: still there
    await wait_for(lambda: _is(phase(client, "p"), None), what="the pod gone")


def daemonset(name: str = "miner-agent") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"role": "asic"},
                    "containers": [{"name": "agent", "image": "x"}],
                },
            },
        },
    }


async def miner_nodes(client) -> list[str]:
    _, doc = await client.get(PODS, params={"labelSelector": "app=miner-agent"})
    return sorted(
        p["spec"]["nodeName"] for p in doc["items"] if not p["metadata"].get("deletionTimestamp")
    )


async def test_no_execute_taint_evicts_a_miner_and_its_daemonset_brings_it_back(client) -> None:
    for name in ("c1", "c2"):
        await client.post(NODES, node(name, role="asic"))
    await client.post(NODES, node("g1", 8, role="gpu"))
    await client.post(DS, daemonset())
    await wait_for(lambda: _is(miner_nodes(client), ["c1", "c2"]), what="a miner per controller")
    # Cordoned: DaemonSet pods tolerate that and stay.
    await client.patch(f"{NODES}/c1", {"spec": {"unschedulable": True}})
    # Curtailment taint: the miner is evicted and not recreated.
    taint = {"key": "dualcap.io/curtailed", "value": "true", "effect": "NoExecute"}
    await client.patch(f"{NODES}/c1", {"spec": {"taints": [taint]}})
    await wait_for(lambda: _is(miner_nodes(client), ["c2"]), what="the miner on c1 evicted")

    async def gone_for_good():
        _, doc = await client.get(PODS, params={"fieldSelector": "spec.nodeName=c1"})
        return doc["items"] == []

    await wait_for(gone_for_good, what="no pod left on c1")
    _, ds = await client.get(f"{DS}/miner-agent")
    assert ds["status"]["desiredNumberScheduled"] == 1
    # Resume: the taint goes, the DaemonSet brings the miner back.
    await client.patch(f"{NODES}/c1", {"spec": {"taints": None, "unschedulable": None}})
    await wait_for(lambda: _is(miner_nodes(client), ["c1", "c2"]), what="the miner back on c1")


async def test_toleration_seconds_delay_eviction(client) -> None:
    await client.post(NODES, node("n"))
    tol = [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0.2}]
    await client.post(PODS, gpu_pod("p", 0, nodeName="n", tolerations=tol))
    await wait_for(lambda: _is(phase(client, "p"), "Running"))
    await client.patch(f"{NODES}/n", {"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}})
    assert await phase(client, "p") == "Running"  # tolerated for now
    await wait_for(lambda: _is(phase(client, "p"), None), what="eviction after tolerationSeconds")


async def test_deleting_an_owner_deletes_its_pods(client) -> None:
    await client.post(NODES, node("c1", role="asic"))
    await client.post(DS, daemonset())
    await wait_for(lambda: _is(miner_nodes(client), ["c1"]))
    await client.delete(f"{DS}/miner-agent")
    await wait_for(lambda: _is(miner_nodes(client), []), what="the DaemonSet's pods collected")


async def test_orphan_propagation_keeps_dependents(client) -> None:
    await client.post(NODES, node("c1", role="asic"))
    await client.post(DS, daemonset())
    await wait_for(lambda: _is(miner_nodes(client), ["c1"]))
    await client.delete(f"{DS}/miner-agent", params={"propagationPolicy": "Orphan"})
    _, doc = await client.get(PODS)
    assert len(doc["items"]) == 1 and "ownerReferences" not in doc["items"][0]["metadata"]


async def test_deleting_a_namespace_deletes_its_content(client) -> None:
    await client.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}
    )
    await client.post(
        "/api/v1/namespaces/t/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    )
    await client.delete("/api/v1/namespaces/t")

    async def gone():
        return (await client.get("/api/v1/namespaces/t"))[0] == 404

    await wait_for(gone, what="the namespace gone")
    assert (await client.get("/api/v1/namespaces/t/configmaps/c"))[0] == 404


@pytest.mark.parametrize("piece", ["scheduler"])
async def test_pieces_can_be_switched_off(piece, client, sandbox) -> None:
    setattr(sandbox.cluster.b, piece, False)
    await client.post(NODES, node("n", 8))
    await client.post(PODS, gpu_pod("p", 8))
    await sandbox.settle(0.2)
    assert await placed(client, "p") is None
