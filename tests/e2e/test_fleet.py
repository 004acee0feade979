"""One queue for several sites: MultiKueue on three real control planes, dualcap choosing.

A manager cluster and two worker clusters (sites), each its own etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok and Kueue v0.17.0. The manager's Kueue
dispatches through MultiKueue with `dispatcherName: dualcap.io/fleet`; its workers are
reached with kubeconfigs of a ServiceAccount token in Secrets, as MultiKueue requires.
Each worker runs its own `dualcap run` with the power admission check and publishes its
offer (`spec.offer`); `dualcap fleet` runs against the manager.

site-a buys energy at 20 USD/MWh, site-b at 60: both have 16 GPUs and room.
1. a Job submitted to the manager goes to site-a (the cheaper energy), with an Event
   saying why and why not site-b; its pod runs at site-a;
2. a demand-response event cuts site-a to 5 kW: its power check evicts the Job (Retry),
   MultiKueue requeues it on the manager, and dualcap places it again, at site-b;
3. the fleet is restarted; a new Job goes to site-b (site-a has 5 kW, it needs 8);
4. the event ends, site-b's kube-apiserver stops answering: a new Job goes to site-a, and
   the Event says site-b is unreachable;
5. site-a's dualcap frozen (its offer still fresh for a while): a new Job is nominated to
   site-a, which never admits it; when the nomination times out, it is placed at site-b.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, dualcap_process
from tests.e2e.scenario import connect, ok, operator, site_object, until_or_say
from tests.realcluster.launcher import (
    ControlPlane,
    default_bin_dir,
    missing_binaries,
    which_kubectl,
)

pytestmark = pytest.mark.e2e

NS = "ai"
API = "/apis/dualcap.io/v1alpha1"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
GPU = "nvidia.com/gpu"
TIMEOUT = 150.0
SITES = {"site-a": 20.0, "site-b": 60.0}  # energy price, USD/MWh
NOMINATION_TIMEOUT = 20  # seconds (an admission at a worker takes a second or two)


def kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    r = subprocess.run(
        [which_kubectl(), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True, text=True, input=input, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}{r.stdout}"
    return r.stdout


def queue_objects(check: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default"}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "gpus"},
         "spec": {"namespaceSelector": {},
                  "resourceGroups": [{"coveredResources": ["cpu", "memory", GPU],
                                      "flavors": [{"name": "default", "resources": [
                                          {"name": "cpu", "nominalQuota": "100"},
                                          {"name": "memory", "nominalQuota": "500Gi"},
                                          {"name": GPU, "nominalQuota": "64"}]}]}],
                  "admissionChecksStrategy": {"admissionChecks": [{"name": check}]}}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": "team", "namespace": NS}, "spec": {"clusterQueue": "gpus"}},
    ]  # fmt: skip


def worker_objects(site: str, price: float) -> list[dict[str, Any]]:
    nodes = [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": f"{site}-gpu-{i}", "labels": {"dualcap.io/site": site, "dualcap.io/role": "gpu"}},
         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110", GPU: "8"},
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110", GPU: "8"}}}
        for i in range(2)
    ]  # fmt: skip
    return [
        *nodes,
        site_object(site, offer={"refreshSeconds": 10}),
        {"apiVersion": "dualcap.io/v1alpha1", "kind": "PowerBudget", "metadata": {"name": site},
         "spec": {"siteRef": site, "limitKW": 100, "leadTimeSeconds": 0,
                  "energyPrice": {"usdPerMWh": price}}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck", "metadata": {"name": "power"},
         "spec": {"controllerName": "dualcap.io/power",
                  "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": site}}},
        *queue_objects("power"),
    ]  # fmt: skip


def token_kubeconfig(cp: ControlPlane) -> str:
    """What MultiKueue accepts: the CA inline and a ServiceAccount's token (no file paths)."""
    kc = cp.kubeconfig
    kubectl(kc, "create", "serviceaccount", "-n", "kube-system", "multikueue")
    kubectl(kc, "create", "clusterrolebinding", "multikueue", "--clusterrole=cluster-admin",
            "--serviceaccount=kube-system:multikueue")  # fmt: skip
    token = kubectl(
        kc, "create", "token", "-n", "kube-system", "multikueue", "--duration=2h"
    ).strip()
    assert cp.pki is not None
    ca = base64.b64encode(cp.pki.ca_cert.read_bytes()).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "w",
        "clusters": [{"name": "w", "cluster": {"server": cp.server, "certificate-authority-data": ca}}],
        "users": [{"name": "w", "user": {"token": token}}],
        "contexts": [{"name": "w", "context": {"cluster": "w", "user": "w"}}],
    })  # fmt: skip


def manager_objects(workers: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, config in workers.items():
        out += [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-kubeconfig", "namespace": "kueue-system"},
             "stringData": {"kubeconfig": config}},
            {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "MultiKueueCluster", "metadata": {"name": name},
             "spec": {"clusterSource": {"kubeConfig": {"locationType": "Secret", "location": f"{name}-kubeconfig"}}}},
        ]  # fmt: skip
    return [
        *out,
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "MultiKueueConfig", "metadata": {"name": "fleet"},
         "spec": {"clusters": sorted(workers)}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck", "metadata": {"name": "multikueue"},
         "spec": {"controllerName": "kueue.x-k8s.io/multikueue",
                  "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "fleet"}}},
        *queue_objects("multikueue"),
    ]  # fmt: skip


def job(name: str, gpus: int = 8) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"kueue.x-k8s.io/queue-name": "team", "dualcap.io/preemptible": "true"}},
        "spec": {"suspend": True, "parallelism": 1, "completions": 1, "backoffLimit": 0,
                 "template": {"metadata": {"labels": {"keeprunning": "yes"}},
                              "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "train", "image": "trainer",
                                                       "resources": {"requests": {"cpu": "1", "memory": "1Gi", GPU: str(gpus)},
                                                                     "limits": {GPU: str(gpus)}}}]}}},
    }  # fmt: skip


def apply(cp: ControlPlane, objects: list[dict[str, Any]]) -> None:
    kubectl(cp.kubeconfig, "apply", "--server-side", "--field-manager=e2e", "-f", "-",
            input=yaml.safe_dump_all(objects))  # fmt: skip


@pytest.fixture(scope="module")
def planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ControlPlane]]:
    if missing_binaries(default_bin_dir(), ("kueue",)):
        pytest.skip("needs Kueue built from its module (make kube-bins)")
    made: dict[str, ControlPlane] = {}
    try:
        made["manager"] = ControlPlane(
            tmp_path_factory.mktemp("manager"),
            kueue=True,
            kueue_settings={"multiKueue": {"dispatcherName": "dualcap.io/fleet"}},
        )
        made["manager"].start()
        for site in SITES:
            made[site] = ControlPlane(tmp_path_factory.mktemp(site), kueue=True)
            made[site].start()
        yield made
    finally:
        for cp in made.values():
            cp.stop()


class Fleet:
    def __init__(self, planes: dict[str, ControlPlane], tmp: Path):
        self.planes = planes
        self.tmp = tmp
        self.m = connect(planes["manager"].kubeconfig)
        self.w = {site: connect(planes[site].kubeconfig) for site in SITES}
        self.process: subprocess.Popen[bytes] | None = None
        self.standby: subprocess.Popen[bytes] | None = None

    def fleet_process(self, log: str) -> subprocess.Popen[bytes]:
        return dualcap_process(
            ["fleet", "--kubeconfig", str(self.planes["manager"].kubeconfig), "--interval", "1",
             "--usd-per-gpu-hour", "3", "--nomination-timeout", str(NOMINATION_TIMEOUT)],
            self.tmp / log,
        )  # fmt: skip

    def start_fleet(self) -> None:
        self.process = self.fleet_process("fleet.log")

    def stop_fleet(self) -> None:
        for p in (self.process, self.standby):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(20)
        self.process = self.standby = None

    async def workload(self, job_name: str) -> dict[str, Any] | None:
        r = await self.m.request("GET", f"{KUEUE}/namespaces/{NS}/workloads")
        for w in (r.body or {}).get("items") or [] if r.ok else []:
            if any(o.get("name") == job_name for o in w["metadata"].get("ownerReferences") or []):
                return w
        return None

    async def cluster_of(self, job_name: str) -> str | None:
        w = await self.workload(job_name)
        return ((w or {}).get("status") or {}).get("clusterName")

    async def running_at(self, site: str, job_name: str) -> bool:
        r = await self.w[site].request(
            "GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=job-name={job_name}"
        )
        return any(
            (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            for p in (r.body or {}).get("items") or []
        )  # fmt: skip

    async def events(self, job_name: str, reason: str) -> list[str]:
        w = await self.workload(job_name)
        if w is None:
            return []
        r = await self.m.request("GET", f"/api/v1/namespaces/{NS}/events")
        return [
            e["message"] for e in (r.body or {}).get("items") or []
            if e.get("reason") == reason and (e.get("involvedObject") or {}).get("name") == w["metadata"]["name"]
        ]  # fmt: skip

    async def describe(self) -> str:
        lines = []
        r = await self.m.request("GET", f"{KUEUE}/namespaces/{NS}/workloads")
        for w in (r.body or {}).get("items") or []:
            st = w.get("status") or {}
            lines.append(
                f"manager {w['metadata']['name']}: cluster={st.get('clusterName')} nominated={st.get('nominatedClusterNames')}"
                f" checks={[(e.get('name'), e.get('state'), e.get('message')) for e in st.get('admissionChecks') or []]}"
                f" conds={[(c['type'], c['status'], c.get('reason')) for c in st.get('conditions') or []]}"
            )
        for site, c in self.w.items():
            r = await c.request("GET", f"{KUEUE}/namespaces/{NS}/workloads")
            for w in (r.body or {}).get("items") or [] if r.ok else []:
                st = w.get("status") or {}
                lines.append(f"{site} {w['metadata']['name']}: checks={[(e.get('name'), e.get('state'), e.get('message')) for e in st.get('admissionChecks') or []]}")  # fmt: skip
            s = await c.request("GET", f"{API}/sites/{site}")
            lines.append(
                f"{site} offer: {((s.body or {}).get('status') or {}).get('offer') if s.ok else s.code}"
            )
        log = self.tmp / "fleet.log"
        if log.exists():
            lines.append("fleet log:\n" + "\n".join(log.read_text().splitlines()[-30:]))
        return "\n".join(lines)

    async def until(self, check: Any, what: str) -> Any:
        return await until_or_say(check, TIMEOUT, what, self.describe)


@pytest.fixture
async def fleet(planes: dict[str, ControlPlane], tmp_path: Path) -> AsyncIterator[Fleet]:
    crds = str(ROOT / "crds")
    for site, price in SITES.items():
        kubectl(planes[site].kubeconfig, "apply", "--server-side", "-f", crds)
        kubectl(planes[site].kubeconfig, "wait", "--for=condition=Established", "-f", crds)
        apply(planes[site], worker_objects(site, price))
    apply(planes["manager"], manager_objects({s: token_kubeconfig(planes[s]) for s in SITES}))
    f = Fleet(planes, tmp_path)
    try:
        yield f
    finally:
        f.stop_fleet()
        for c in (f.m, *f.w.values()):
            await c.close()


async def test_one_queue_places_work_where_the_power_is(fleet: Fleet, tmp_path: Path) -> None:
    planes = fleet.planes
    async with operator(planes["site-a"].kubeconfig, tmp_path / "site-a.log") as site_a, \
            operator(planes["site-b"].kubeconfig, tmp_path / "site-b.log"):  # fmt: skip

        async def offers() -> bool:
            for site, c in fleet.w.items():
                s = await c.request("GET", f"{API}/sites/{site}")
                if not ((s.body or {}).get("status") or {}).get("offer"):
                    return False
            return True

        await fleet.until(offers, "both sites publishing their offers")

        async def active() -> bool:
            r = await fleet.m.request("GET", f"{KUEUE}/multikueueclusters")
            conds = [c for w in (r.body or {}).get("items") or [] for c in (w.get("status") or {}).get("conditions") or [] if c["type"] == "Active"]  # fmt: skip
            return len(conds) == 2 and all(c["status"] == "True" for c in conds)

        await fleet.until(active, "the manager's MultiKueueClusters active")
        fleet.start_fleet()
        leases = "/apis/coordination.k8s.io/v1/namespaces/kueue-system/leases/dualcap-fleet"

        async def leading() -> bool:
            r = await fleet.m.request("GET", leases)
            return r.ok and bool((r.body.get("spec") or {}).get("holderIdentity"))

        await fleet.until(leading, "the fleet holding its Lease")
        fleet.standby = fleet.fleet_process("fleet-standby.log")  # a second replica: it waits

        # 1. The cheaper energy wins.
        await ok(fleet.m.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("one")))
        await fleet.until(
            lambda: _is(fleet.cluster_of("one"), "site-a"), "job one dispatched to site-a"
        )
        await fleet.until(lambda: fleet.running_at("site-a", "one"), "job one running at site-a")
        placed = await fleet.until(lambda: fleet.events("one", "Placed"), "the Placed Event")
        assert placed[0].startswith("placed at site-a: ") and "not at site-b: " in placed[0], placed

        # 2. A demand-response event at site-a: the job is evicted there and placed again.
        now = datetime.now(UTC)
        event = {"name": "dr", "limitKW": 5,
                 "start": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        await ok(
            fleet.w["site-a"].patch(f"{API}/powerbudgets/site-a", {"spec": {"events": [event]}})
        )
        await fleet.until(
            lambda: _is(fleet.cluster_of("one"), "site-b"), "job one placed again, at site-b"
        )
        await fleet.until(lambda: fleet.running_at("site-b", "one"), "job one running at site-b")
        assert not await fleet.running_at("site-a", "one")

        # Two replicas, one acting: each placement said once.
        assert len(await fleet.events("one", "Placed")) == 2  # site-a, then site-b
        assert "placed at" not in (tmp_path / "fleet-standby.log").read_text()

        # 3. The fleet restarted; new work goes where there is room.
        fleet.stop_fleet()
        await ok(fleet.m.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("two")))
        fleet.start_fleet()
        await fleet.until(
            lambda: _is(fleet.cluster_of("two"), "site-b"), "job two dispatched to site-b"
        )
        placed = await fleet.until(lambda: fleet.events("two", "Placed"), "job two's Placed Event")
        assert "not at site-a: needs 8 kW, 5 kW of room" in placed[0], placed

        # 4. The event over, site-b silent: new work goes to site-a only.
        await ok(fleet.w["site-a"].patch(f"{API}/powerbudgets/site-a", {"spec": {"events": None}}))

        async def room_again() -> bool:
            s = await fleet.w["site-a"].request("GET", f"{API}/sites/site-a")
            return (((s.body or {}).get("status") or {}).get("offer") or {}).get("freeKW", 0) >= 50

        await fleet.until(room_again, "site-a offering room again")
        planes["site-b"].stop_component("kube-apiserver")
        try:
            await ok(fleet.m.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("three")))
            await fleet.until(
                lambda: _is(fleet.cluster_of("three"), "site-a"), "job three to site-a"
            )
            placed = await fleet.until(lambda: fleet.events("three", "Placed"), "job three's Event")
            assert "not at site-b: " in placed[0] and "unreachable" in placed[0], placed
        finally:
            await asyncio.to_thread(planes["site-b"].start_component, "kube-apiserver")

        # 5. site-a's dualcap frozen: its offer still fresh, its power check silent. Job one
        #    leaves site-b (room for 8 GPUs there); job four goes to site-a, the cheaper,
        #    which never admits it; at the timeout it is placed at site-b.
        await ok(fleet.m.request("DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/one",
                                 params={"propagationPolicy": "Background"}))  # fmt: skip

        async def b_has_room() -> bool:
            s = await fleet.w["site-b"].request("GET", f"{API}/sites/site-b")
            offer = ((s.body or {}).get("status") or {}).get("offer") or {}
            return bool(s.ok and offer.get("gpusFree", 0) >= 8)

        await fleet.until(b_has_room, "site-b offering 8 GPUs again")
        site_a.send_signal(signal.SIGSTOP)
        try:
            await ok(fleet.m.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job("four")))
            placed = await fleet.until(lambda: fleet.events("four", "Placed"), "job four placed")
            assert placed[0].startswith("placed at site-a: "), placed
            await fleet.until(
                lambda: _is(fleet.cluster_of("four"), "site-b"), "job four placed again at site-b"
            )
            replaced = await fleet.events("four", "Replaced")
            assert replaced and replaced[0].startswith(
                f"site-a did not admit it within {NOMINATION_TIMEOUT} s; placed at site-b: "
            ), replaced
            await fleet.until(lambda: fleet.running_at("site-b", "four"), "job four running at b")
        finally:
            site_a.send_signal(signal.SIGCONT)
    for name in ("fleet.log", "fleet-standby.log"):
        log = (tmp_path / name).read_text()
        assert "Traceback" not in log, log[-3000:]


async def _is(value: Any, expected: str) -> bool:
    return (await value) == expected
