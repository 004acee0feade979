"""The Kueue power admission check at scale, on the real control plane of `make kube-bins`
(kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok) with Kueue's CRDs
from its module: a site of 1,000 ASIC controllers (their miner pods) and 210 GPU nodes of
8 GPUs, 200 of them running Workloads the check admitted (one 8-GPU pod each, kwok running them),
and `dualcap run` in its own process. Kueue's controller does not run: the Workloads'
quota and check states are written as Kueue would, so what is timed is dualcap's side.

- a Workload whose quota Kueue reserved, with room free → its check Ready;
- a cut below the Workloads' own draw: budget write → every curtail accepted and every
  Retry written on the Workloads the plan evicts (preemptible first, lowest priority
  first; how many is the plan's own count on the same objects).

    python bench/bench_kueue.py      (make bench-kueue; about 5 minutes)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_plan import workloads as workload_objects
from fleetgen import site_objects

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench-kueue"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
CUT_KW = 1_000.0
POLL = 0.1  # seconds between the benchmark's own looks (its resolution)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def objects() -> list[dict[str, Any]]:
    out = site_objects(SITE, controllers=1000, gpu_nodes=210, leases=0, seed=1)
    out[0]["spec"]["behavior"].update(minMiningSeconds=0, minCurtailedSeconds=0)
    for obj in out:
        if obj["kind"] == "PowerBudget":
            obj["spec"]["limitKW"] = 10_000_000.0  # room for everything to start with
    gpu = [o["metadata"]["name"] for o in out if o["kind"] == "Node" and "-gpu-" in o["metadata"]["name"]]  # fmt: skip
    ns = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("mining", "ai")
    ]
    return ns + out + workload_objects(SITE, 200, gpu[:200])  # ten GPU nodes left free


def status(state: str) -> dict[str, Any]:
    at = stamp()
    return {
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
                        "message": "bench", "lastTransitionTime": at}],
        "admissionChecks": [{"name": "power", "state": state, "message": "", "lastTransitionTime": at}],
    }  # fmt: skip


def expected(objs: list[dict[str, Any]]) -> tuple[int, int]:
    """(curtails, evictions) the plan makes of the cut, on the same objects."""
    from dualcap.planning import build_fleet, plan

    now = datetime.now(UTC)
    cut = [dict(o) for o in objs]
    for o in cut:
        if o["kind"] == "PowerBudget":
            o["spec"] = {**o["spec"], "limitKW": CUT_KW}
    p = plan(build_fleet(cut, now).sites[SITE], now)
    kinds = [c.kind.value for c in p.schedule.now]
    return kinds.count("Curtail"), kinds.count("EvictWorkload")


async def run(server: Any, objs: list[dict[str, Any]]) -> None:
    url = server.url
    async with server.session(64) as s:

        async def get(path: str) -> Any:
            async with s.get(url + path) as r:
                return await r.json()

        async def patch(path: str, body: Any, ctype: str = "application/merge-patch+json") -> None:
            async with s.patch(url + path, json=body, headers={"Content-Type": ctype}) as r:
                assert r.status == 200, f"{path}: {r.status} {await r.text()}"

        async def checks() -> dict[str, str]:
            body = await get(f"{KUEUE}/namespaces/ai/workloads")
            return {
                w["metadata"]["name"]: ((w.get("status") or {}).get("admissionChecks") or [{}])[0].get("state", "")
                for w in body["items"]
            }  # fmt: skip

        # New nodes carry kube-controller-manager's start-up taints a while (not-ready and
        # the like): no pod goes there, and the plan knows it. A site's nodes are old.
        while True:
            nodes = (await get("/api/v1/nodes"))["items"]
            tainted = [n["metadata"]["name"] for n in nodes if (n.get("spec") or {}).get("taints")]
            if not tainted:
                break
            await asyncio.sleep(1)
        # Kueue's part, written as Kueue would: quota reserved, the check admitted them.
        await asyncio.gather(*(
            patch(f"{KUEUE}/namespaces/ai/workloads/{o['metadata']['name']}/status", {"status": status("Ready")})
            for o in objs if o["kind"] == "Workload"
        ))  # fmt: skip
        env = dict(os.environ, KUBECONFIG=str(server.kubeconfig))
        start = time.perf_counter()
        # DUALCAP_BENCH_LOG=<file>: the operator's debug log goes there
        log_to = os.environ.get("DUALCAP_BENCH_LOG")
        out = open(log_to, "w") if log_to else subprocess.DEVNULL  # noqa: SIM115, ASYNC230 - before timing
        op = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
            [sys.executable, "-m", "dualcap", "run", "--liveness", "none", "--metrics-port", "0",
             "-v" if log_to else "-q"],
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
        try:
            while True:
                site = (await get(f"/apis/dualcap.io/v1alpha1/sites/{SITE}")).get("status") or {}
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in site.get("conditions") or [])  # fmt: skip
                if ready and (site.get("workloads") or {}).get("admitted") == 200:
                    break
                if time.perf_counter() - start > 600:
                    raise SystemExit(f"the site did not settle in 10 min: {site.get('workloads')}")
                await asyncio.sleep(0.5)
            print(f"  operator cold start to the site settled, 200 Workloads admitted: {time.perf_counter() - start:.1f} s (GPUs {site.get('gpus')})")  # fmt: skip

            # A new Workload, quota reserved, room free: its check Ready.
            new = workload_objects(SITE, 201, ["x"])[-2]  # the 201st Workload
            new["metadata"] = {k: v for k, v in new["metadata"].items() if k not in ("uid", "resourceVersion", "creationTimestamp")}  # fmt: skip
            new.pop("status")
            async with s.post(f"{url}{KUEUE}/namespaces/ai/workloads", json=new) as r:
                assert r.status == 201, await r.text()
            name = new["metadata"]["name"]
            t0 = time.perf_counter()
            await patch(
                f"{KUEUE}/namespaces/ai/workloads/{name}/status", {"status": status("Pending")}
            )
            while (await checks()).get(name) != "Ready":  # noqa: ASYNC110 - polling is the measurement
                await asyncio.sleep(POLL / 2)
            print(f"  a Workload with room free: quota reserved → its check Ready: {(time.perf_counter() - t0) * 1000:.0f} ms")  # fmt: skip
            await asyncio.sleep(3)  # its admission settles

            curtails, evictions = expected([*objs, {**new, "status": status("Ready")}])
            t0 = time.perf_counter()
            await patch(
                f"/apis/dualcap.io/v1alpha1/powerbudgets/{SITE}", {"spec": {"limitKW": CUT_KW}}
            )
            t_curtail = t_retry = None
            while t_curtail is None or t_retry is None:
                if t_curtail is None:
                    nodes = await get("/api/v1/nodes?labelSelector=dualcap.io/role%3Dasic")
                    tainted = sum(
                        any(t.get("key") == "dualcap.io/curtailed" for t in (n.get("spec") or {}).get("taints") or [])
                        for n in nodes["items"]
                    )  # fmt: skip
                    if tainted >= curtails:
                        t_curtail = time.perf_counter() - t0
                if (
                    t_retry is None
                    and sum(v == "Retry" for v in (await checks()).values()) >= evictions
                ):
                    t_retry = time.perf_counter() - t0
                if time.perf_counter() - t0 > 300:
                    raise SystemExit("the cut did not complete within 5 min")
                await asyncio.sleep(POLL)
            print(f"  cut to {CUT_KW:,.0f} kW: {curtails} curtails, {evictions} Workloads evicted (Retry), by the plan on the same objects")  # fmt: skip
            print(f"    budget write → every curtail accepted:  {t_curtail:.2f} s")
            print(f"    budget write → every Retry written:     {t_retry:.2f} s   (target < 1 s for both)")  # fmt: skip
        finally:
            op.terminate()
            op.wait(30)


def main() -> None:
    from tests.realcluster.launcher import which_kubectl

    from realserver import RealServer

    print("dualcap Kueue benchmark: 1,000 controllers, 210 GPU nodes, 200 admitted Workloads (real control plane; the operator in its own process; Kueue's CRDs, not its controller)")  # fmt: skip
    objs = objects()
    with tempfile.TemporaryDirectory() as tmp:
        server = RealServer(Path(tmp) / "real")
        try:
            crds = sorted(Path(server.cp.bin_dir.parent / "kueue" / "crds").glob("*.yaml"))
            if not crds:
                raise SystemExit("no Kueue CRDs: make kube-bins copies them from Kueue's module")
            kubectl = [which_kubectl(), f"--kubeconfig={server.kubeconfig}"]
            subprocess.run(
                [*kubectl, "apply", "--server-side", "-f", str(crds[0].parent)],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds[0].parent)],
                check=True, capture_output=True,
            )  # fmt: skip
            took = asyncio.run(server.load(objs))
            quiet = asyncio.run(server.settle(timeout=600))
            print(f"  {len(objs):,} objects created in {took:.0f} s; kwok and kube-controller-manager done {quiet:.0f} s later")  # fmt: skip
            asyncio.run(run(server, objs))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
