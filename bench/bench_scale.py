"""The operator at scale: 40 sites, 5,000 nodes, 20,000 pods, in the sandbox.

- the sandbox (its own process) is loaded with 40 sites of 100 ASIC controllers (each with
  its miner pod) and 25 GPU nodes, 2,000 leases (about half running), and the pods every
  node runs besides (node exporter, log shipper, CNI: 3 per node), 20,000 pods in all;
- `dualcap run` starts cold (its own process): time until every Site is Ready;
- its resident memory once settled (target: under 300 MB);
- the limit of every site cut by a third at once: time until every site is Ready again
  inside its new limit.

    python bench/bench_scale.py        (SCALE=0.2 for a fifth of the size)
    python bench/bench_scale.py --server real   (on the real control plane of make kube-bins)
    python bench/bench_scale.py --server real --disable-qps-limits   (its controllers unthrottled)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleetgen import fleet_objects

ROOT = Path(__file__).resolve().parent.parent
SCALE = float(os.environ.get("SCALE", "1"))
SITES = 40
NODES = int(5000 * SCALE)
LEASES = int(2000 * SCALE)
TARGET_PODS = int(20_000 * SCALE)


def fleet(path: Path) -> tuple[int, int, dict[str, float], list[dict[str, Any]]]:
    objects = fleet_objects(SITES, NODES, LEASES, seed=7)
    limits: dict[str, float] = {}
    for obj in objects:
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "generation"):
            meta.pop(key, None)
        if obj["kind"] == "Site":
            obj["spec"]["behavior"].update(minMiningSeconds=0, minCurtailedSeconds=0)
        if obj["kind"] == "PowerBudget":
            limits[obj["spec"]["siteRef"]] = obj["spec"]["limitKW"]
    nodes = [o["metadata"]["name"] for o in objects if o["kind"] == "Node"]
    pods = sum(1 for o in objects if o["kind"] == "Pod")
    extra = []
    i = 0
    while pods + len(extra) < TARGET_PODS:
        node = nodes[i % len(nodes)]
        app = ("node-exporter", "fluent-bit", "cni")[(i // len(nodes)) % 3]
        extra.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{i}-{node}", "namespace": "kube-system", "labels": {"app": app}},
            # as the DaemonSets of CNI plugins, node exporters and log shippers do: they
            # tolerate every taint, so a curtailment evicts the miner alone
            "spec": {"nodeName": node, "containers": [{"name": app, "image": app}],
                     "tolerations": [{"operator": "Exists"}]},
            "status": {"phase": "Running"},
        })  # fmt: skip
        i += 1
    namespaces = {o["metadata"].get("namespace") for o in objects + extra} - {
        None,
        "default",
        "kube-system",
    }
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in sorted(namespaces)]  # fmt: skip
    path.write_text(yaml.safe_dump_all(docs + objects + extra))
    return len(nodes), pods + len(extra), limits, docs + objects + extra


async def sites(s: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with s.get(f"{url}/apis/dualcap.io/v1alpha1/sites") as r:
        return (await r.json())["items"]


def ready(site: dict[str, Any]) -> bool:
    status = site.get("status") or {}
    return status.get("observedGeneration") == site["metadata"].get("generation") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(
    url: str, kubeconfig: Path, limits: dict[str, float], session: Any = aiohttp.ClientSession
) -> None:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    # DUALCAP_BENCH_LOG=<file>: the operator's debug log goes there (to find a slow site)
    log_to = os.environ.get("DUALCAP_BENCH_LOG")
    verbosity = "-v" if log_to else "-q"
    out = open(log_to, "w") if log_to else subprocess.DEVNULL  # noqa: SIM115, ASYNC230 - before timing
    start = time.perf_counter()
    op = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "dualcap", "run", "--liveness", "none", "--metrics-port", "0", verbosity],
        env=env, stdout=out, stderr=out,
    )  # fmt: skip
    try:
        async with session() as s:
            while True:
                items = await sites(s, url)
                if len(items) == SITES and all(ready(i) for i in items):
                    break
                if time.perf_counter() - start > 1800:
                    n = sum(ready(i) for i in items)
                    raise SystemExit(f"not settled after 30 min: {n} of {SITES} sites Ready")
                await asyncio.sleep(1.0)
            settle = time.perf_counter() - start
            await asyncio.sleep(5)
            print(f"  cold start to every site Ready: {settle:.1f} s")
            print(
                f"  operator resident memory once settled: {rss_mb(op.pid):.0f} MB (target < 300 MB)"
            )
            t0 = time.perf_counter()
            new = {site: round(kw * 2 / 3) for site, kw in limits.items()}

            async def cut(site: str) -> None:
                async with s.patch(
                    f"{url}/apis/dualcap.io/v1alpha1/powerbudgets/{site}",
                    data=json.dumps({"spec": {"limitKW": new[site]}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                ) as r:
                    assert r.status == 200, await r.text()

            await asyncio.gather(*(cut(site) for site in limits))
            complied: dict[str, float] = {}  # site -> seconds after the cut it was done
            while True:
                items = await sites(s, url)
                done = [
                    i for i in items
                    if ready(i) and (i.get("status") or {}).get("limitKW", 1e12) <= new[i["metadata"]["name"]]
                    and i["status"]["committedKW"] <= i["status"]["limitKW"]
                ]  # fmt: skip
                for i in done:
                    complied.setdefault(i["metadata"]["name"], time.perf_counter() - t0)
                if len(done) == SITES:
                    break
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"only {len(done)} of {SITES} sites complied after 10 min")
                await asyncio.sleep(0.2)
            print(f"  limit cut on all {SITES} sites at once -> every site Ready inside it: {time.perf_counter() - t0:.1f} s")  # fmt: skip
            times = sorted(complied.values())
            print(
                f"    (median site {times[len(times) // 2]:.1f} s; last {max(complied, key=complied.__getitem__)})"
            )
            print(f"  operator resident memory after the cut: {rss_mb(op.pid):.0f} MB")
    finally:
        op.terminate()
        op.wait(30)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["sandbox", "real"], default="sandbox")
    ap.add_argument(
        "--disable-qps-limits",
        action="store_true",
        help="real: kube-controller-manager and kube-scheduler without their default client"
        " limit of 20 requests a second (as `kwokctl --disable-qps-limits` starts them)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "fleet.yaml"
        nodes, pods, limits, objects = fleet(path)
        where = (
            "sandbox"
            if args.server == "sandbox"
            else "real control plane: kube-apiserver, etcd, kwok"
            + (", controllers' QPS limits off" if args.disable_qps_limits else "")
        )
        print(f"dualcap scale benchmark: {SITES} sites, {nodes:,} nodes, {pods:,} pods ({where}; operator in its own process)")  # fmt: skip
        if args.server == "real":
            from realserver import RealServer

            server = RealServer(tmp / "real", args.disable_qps_limits)
            try:
                took = asyncio.run(server.load(objects))
                print(f"  {len(objects):,} objects created on the real apiserver in {took:.0f} s")
                quiet = asyncio.run(server.settle(timeout=1200))
                print(
                    f"  kwok and kube-controller-manager done with the new nodes {quiet:.0f} s later"
                )
                asyncio.run(run(server.url, server.kubeconfig, limits, lambda: server.session(64)))
            finally:
                server.stop()
            return
        port = 19500 + os.getpid() % 400
        kubeconfig = tmp / "kubeconfig"
        t = time.perf_counter()
        sb = subprocess.Popen(
            [sys.executable, "-m", "dualcap_sandbox", "--port", str(port), "--kubeconfig",
             str(kubeconfig), "--load", str(ROOT / "crds"), "--load", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            while not kubeconfig.exists():
                if sb.poll() is not None:
                    raise SystemExit(f"sandbox failed: {sb.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.5)
            print(f"  sandbox loaded in {time.perf_counter() - t:.0f} s")
            asyncio.run(
                run(
                    f"http://127.0.0.1:{port}",
                    kubeconfig,
                    limits,
                    lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)),
                )
            )
        finally:
            sb.terminate()
            sb.wait(30)


if __name__ == "__main__":
    main()
