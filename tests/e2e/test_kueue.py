"""AI tenants through real Kueue: plain batch/v1 Jobs through a LocalQueue and a
ClusterQueue that lists dualcap's power admission check, on the local control plane with
Kueue v0.17.0 built from its Go module (its webhooks by URL on 127.0.0.1) and kwok
running the pods; the operator is a real `dualcap run` process.

One site: three ASIC controllers of 40 kW (their miners a DaemonSet), two GPU nodes of 8
GPUs at 2 kW a GPU (a Job of 8 GPUs is 16 kW), a 130 kW budget.
1. the check is kept Active; a Job (low priority, preemptible) is admitted only after a
   miner made room (the controllers' 120 kW + 16 kW > 130 kW), its pods on the GPU nodes;
2. a second Job (high priority, not preemptible) is admitted beside it;
3. Kueue restarted: nothing at the site changes;
4. a demand-response event cuts the site to 20 kW: every miner is curtailed, then the
   preemptible Job is evicted by Retry (its pods go), the other kept; the evicted one is
   requeued and waits, Pending with why;
5. the operator restarted mid-event: nothing changes;
6. the event ends: the evicted Job is readmitted and runs again.
Bad input: a check whose parameters name no Site is not Active; a Job asking more GPUs
than the site has is Rejected, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.scenario import connect as connect_client
from tests.e2e.scenario import miners_daemonset, ok, operator, site_object, until_or_say

pytestmark = pytest.mark.e2e

SITE = "kq"
NS = "dualcap-kueue"
CHECK = "dualcap-power"
API = "/apis/dualcap.io/v1alpha1"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
GPU = "nvidia.com/gpu"
TIMEOUT = 90.0


def node(name: str, role: str, gpus: int = 0) -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "110"}
    if gpus:
        capacity[GPU] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"dualcap.io/site": SITE, "dualcap.io/role": role}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": capacity,
            "capacity": capacity,
        },
    }


def site_objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        (f"/apis/apps/v1/namespaces/{NS}/daemonsets", miners_daemonset(NS, "miners", "kq-miner", SITE, "miner")),
        (f"{API}/sites", site_object(SITE, miner_app="kq-miner", asic_kw=40, per_gpu_kw=2.0)),
        (f"{API}/powerbudgets", {
            "apiVersion": "dualcap.io/v1alpha1", "kind": "PowerBudget", "metadata": {"name": SITE},
            "spec": {"siteRef": SITE, "limitKW": 130, "energyPrice": {"usdPerMWh": 30}},
        }),
        (f"{KUEUE}/admissionchecks", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
            "metadata": {"name": CHECK},
            "spec": {"controllerName": "dualcap.io/power",
                     "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": SITE}},
        }),
        (f"{KUEUE}/resourceflavors", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
            "metadata": {"name": "kq-default"},
        }),
        (f"{KUEUE}/clusterqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
            "metadata": {"name": "kq-gpus"},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [{
                    "coveredResources": ["cpu", "memory", GPU],
                    "flavors": [{"name": "kq-default", "resources": [
                        {"name": "cpu", "nominalQuota": "100"},
                        {"name": "memory", "nominalQuota": "500Gi"},
                        {"name": GPU, "nominalQuota": "64"},
                    ]}],
                }],
                "admissionChecksStrategy": {"admissionChecks": [{"name": CHECK}]},
            },
        }),
        (f"{KUEUE}/namespaces/{NS}/localqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": "team", "namespace": NS},
            "spec": {"clusterQueue": "kq-gpus"},
        }),
        (f"{KUEUE}/workloadpriorityclasses", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
            "metadata": {"name": "kq-low"}, "value": 10,
        }),
        (f"{KUEUE}/workloadpriorityclasses", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
            "metadata": {"name": "kq-high"}, "value": 100,
        }),
    ]  # fmt: skip


def job(name: str, gpus: int, pods: int, priority: str, preemptible: bool) -> dict[str, Any]:
    labels = {"kueue.x-k8s.io/queue-name": "team", "kueue.x-k8s.io/priority-class": priority}
    if preemptible:
        labels["dualcap.io/preemptible"] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "suspend": True,
            "parallelism": pods,
            "completions": pods,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"keeprunning": "yes"}},  # kwok: a long training run
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "train",
                            "image": "trainer",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi", GPU: str(gpus)},
                                "limits": {GPU: str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }


class Kq:
    def __init__(self, client: Any):
        self.c = client

    async def get(self, path: str) -> dict[str, Any] | None:
        r = await self.c.request("GET", path)
        return r.body if r.ok else None

    async def workload_of(self, job_name: str) -> dict[str, Any] | None:
        body = await self.get(f"{KUEUE}/namespaces/{NS}/workloads")
        for w in (body or {}).get("items") or []:
            owners = w["metadata"].get("ownerReferences") or []
            if any(o.get("kind") == "Job" and o.get("name") == job_name for o in owners):
                return w
        return None

    async def check_state(self, job_name: str) -> tuple[str, str] | None:
        w = await self.workload_of(job_name)
        for e in ((w or {}).get("status") or {}).get("admissionChecks") or []:
            if e.get("name") == CHECK:
                return str(e.get("state")), str(e.get("message") or "")
        return None

    async def running_pods(self, job_name: str) -> list[dict[str, Any]]:
        body = await self.get(f"/api/v1/namespaces/{NS}/pods?labelSelector=job-name={job_name}")
        return [
            p
            for p in (body or {}).get("items") or []
            if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ]

    async def site(self) -> dict[str, Any]:
        return (await self.get(f"{API}/sites/{SITE}") or {}).get("status") or {}

    async def describe(self) -> str:
        """The Workloads' conditions and checks, and the pods: what a failure shows."""
        lines = []
        body = await self.get(f"{KUEUE}/namespaces/{NS}/workloads")
        for w in (body or {}).get("items") or []:
            st = w.get("status") or {}
            conds = [f"{c['type']}={c['status']}" for c in st.get("conditions") or []]
            checks = [(e.get("name"), e.get("state"), e.get("message")) for e in st.get("admissionChecks") or []]  # fmt: skip
            lines.append(f"{w['metadata']['name']}: {conds} {checks}")
        pods = await self.get(f"/api/v1/namespaces/{NS}/pods")
        for p in (pods or {}).get("items") or []:
            meta = p["metadata"]
            lines.append(
                f"pod {meta['name']} {p.get('status', {}).get('phase')} on {p['spec'].get('nodeName')}"
                f" labels={meta.get('labels')} deleting={bool(meta.get('deletionTimestamp'))}"
            )
        lines.append(f"site: {await self.site()}")
        return "\n".join(lines)

    async def until(self, check: Any, what: str) -> Any:
        return await until_or_say(check, TIMEOUT, what, self.describe)


@pytest.fixture
async def kq(cluster: Cluster) -> AsyncIterator[Kq]:
    if cluster.local is None or not cluster.local.kueue:
        pytest.skip("needs the local control plane with Kueue (make kube-bins builds it)")
    client = connect_client(cluster.kubeconfig)
    for name in ("kq-asic-0", "kq-asic-1", "kq-asic-2"):
        await ok(client.create("/api/v1/nodes", node(name, "asic")), 409)
    for name in ("kq-gpu-0", "kq-gpu-1"):
        await ok(client.create("/api/v1/nodes", node(name, "gpu", 8)), 409)
    for path, body in site_objects():
        await ok(client.create(path, body), 409)
    try:
        yield Kq(client)
    finally:
        await client.close()


async def test_jobs_through_kueue_are_admitted_by_power(
    cluster: Cluster, kq: Kq, tmp_path: Path
) -> None:
    local = cluster.local
    assert local is not None
    async with operator(cluster.kubeconfig, tmp_path / "operator.log") as op:

        async def active() -> bool:
            check = await kq.get(f"{KUEUE}/admissionchecks/{CHECK}")
            conds = ((check or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Active" and c["status"] == "True" for c in conds)

        await kq.until(active, "the power check Active")

        async def mining(n: int) -> bool:
            s = await kq.site()
            return (s.get("controllers") or {}).get("mining") == n

        await kq.until(lambda: mining(3), "the three controllers mining")

        # 1. The low-priority, preemptible Job: 16 kW beside 120 kW under 130 kW.
        await ok(
            kq.c.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("low", 8, 1, "kq-low", True))
        )

        async def admitted(name: str) -> bool:
            state = await kq.check_state(name)
            return (
                state is not None and state[0] == "Ready" and len(await kq.running_pods(name)) >= 1
            )

        await kq.until(lambda: admitted("low"), "the low Job admitted and running")
        status = await kq.site()
        assert status["controllers"]["mining"] == 2, "a miner made room first"
        pods = await kq.running_pods("low")
        assert pods[0]["spec"]["nodeName"].startswith("kq-gpu-")
        assert pods[0]["metadata"]["labels"]["dualcap.io/workload"]
        assert status["committedKW"] <= status["limitKW"]

        # 2. The high-priority, non-preemptible Job beside it.
        await ok(
            kq.c.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("high", 8, 1, "kq-high", False))
        )
        await kq.until(lambda: admitted("high"), "the high Job admitted and running")

        async def workloads(n: int) -> dict[str, Any] | None:
            s = await kq.site()
            w = s.get("workloads") or {}
            return s if w.get("admitted") == n else None

        status = await kq.until(lambda: workloads(2), "two Workloads in the Site's status")
        assert status["workloads"]["kw"] == pytest.approx(32.0)

        # 3. Kueue restarted: the site is left as it is.
        local.stop_component("kueue")
        await asyncio.to_thread(local.start_component, "kueue")
        assert (await kq.check_state("low") or ("",))[0] == "Ready"
        assert len(await kq.running_pods("low")) == 1 and len(await kq.running_pods("high")) == 1

        # 4. A demand-response event: 20 kW. Miners first, then the preemptible Job.
        now = datetime.now(UTC)
        event = {"name": "kq-dr", "limitKW": 20,
                 "start": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        await ok(kq.c.patch(f"{API}/powerbudgets/{SITE}", {"spec": {"events": [event]}}))

        async def low_evicted() -> bool:
            state = await kq.check_state("low")
            return not await kq.running_pods("low") and state is not None and state[0] != "Ready"

        await kq.until(low_evicted, "the preemptible Job evicted by Retry and stopped")
        await kq.until(lambda: mining(0), "every miner curtailed")
        assert len(await kq.running_pods("high")) == 1, "the non-preemptible Job is kept"

        async def waits_with_reason() -> tuple[str, str] | None:
            state = await kq.check_state("low")
            return state if state and state[0] == "Pending" and "kW" in state[1] else None

        state = await kq.until(waits_with_reason, "the requeued Job Pending, saying why")
        assert "needs 16 kW" in state[1], state

        # 5. The operator restarted mid-event: nothing changes.
        op.terminate()
        await op.wait()
    async with operator(cluster.kubeconfig, tmp_path / "operator-2.log"):
        await kq.until(lambda: waits_with_reason(), "still Pending after the restart")
        assert len(await kq.running_pods("high")) == 1

        # 6. The event ends: the evicted Job is admitted again and runs.
        await ok(kq.c.patch(f"{API}/powerbudgets/{SITE}", {"spec": {"events": None}}))
        await kq.until(lambda: admitted("low"), "the low Job readmitted after the event")
        status = await kq.site()
        assert status["committedKW"] <= status["limitKW"]

        # Bad input: more GPUs than the site has (3 pods of 8; 16 GPUs in all): Rejected,
        # so Kueue deactivates it, and the Event says why.
        await ok(
            kq.c.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("huge", 8, 3, "kq-low", True))
        )

        async def deactivated() -> dict[str, Any] | None:
            w = await kq.workload_of("huge")
            return w if w and (w.get("spec") or {}).get("active") is False else None

        await kq.until(deactivated, "the Job that can never fit rejected and deactivated")

        async def said() -> list[dict[str, Any]]:
            body = await kq.get(f"/api/v1/namespaces/{NS}/events")
            return [
                e for e in (body or {}).get("items") or []
                if e.get("reason") == "NeverFits" and "can never fit" in e.get("message", "")
            ]  # fmt: skip

        await kq.until(said, "an Event saying it can never fit")

        # A check whose parameters name no Site is not Active, and says why.
        await ok(kq.c.create(f"{KUEUE}/admissionchecks", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
            "metadata": {"name": "dualcap-power-nowhere"},
            "spec": {"controllerName": "dualcap.io/power",
                     "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": "nowhere"}},
        }), 409)  # fmt: skip

        async def inactive() -> dict[str, Any] | None:
            check = await kq.get(f"{KUEUE}/admissionchecks/dualcap-power-nowhere")
            conds = ((check or {}).get("status") or {}).get("conditions") or []
            found = [c for c in conds if c["type"] == "Active" and c["status"] == "False"]
            return found[0] if found else None

        cond = await kq.until(inactive, "the check naming no Site inactive")
        assert cond["reason"] == "SiteNotFound" and "nowhere" in cond["message"]
    for log in ("operator.log", "operator-2.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text, f"{log}:\n{text[text.index('Traceback') - 300 :][:3000]}"
