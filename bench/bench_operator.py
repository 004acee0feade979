"""A limit drop on a 1,000-controller site: the operator against a bare client.

Each side gets a fresh sandbox (its own process) loaded with the CRDs and one site of
1,000 ASIC controllers, each with its miner pod, mining under a limit that allows all of
them. Then:

- operator: `dualcap run` (its own process) settles, the PowerBudget's limit is cut in half,
  and we time from the accepted PowerBudget patch to the last curtail the sandbox accepted
  (seen on a node watch);
- bare client: the same curtail patches (same nodes, same bodies, the same bound on
  concurrent requests) sent by a plain aiohttp client to its own sandbox.

Prints both and their ratio (target: within 1 s and within 1.5x of the bare client).

`--server real` runs the same on the real control plane (`make kube-bins`: kube-apiserver,
etcd, kube-controller-manager, kube-scheduler, kwok), `--server both` on each in turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dualcap.api.marks import curtail_patch
from fleetgen import site_objects

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench-site"
CONTROLLERS = int(os.environ.get("BENCH_CONTROLLERS", "1000"))
CONCURRENCY = 32  # the operator client's bound
TAINT = "dualcap.io/curtailed"


def fleet(path: Path) -> tuple[list[dict[str, Any]], float]:
    """Writes the site; returns its objects and the limit that lets every controller mine."""
    objects = site_objects(SITE, controllers=CONTROLLERS, gpu_nodes=8, leases=0, seed=1)
    for obj in objects:
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "generation"):
            meta.pop(key, None)
    site = objects[0]["spec"]
    site["behavior"]["minMiningSeconds"] = 0
    site["behavior"]["minCurtailedSeconds"] = 0
    it_kw = sum(
        float((o["metadata"].get("annotations") or {}).get("dualcap.io/power-kw", 1900))
        for o in objects
        if o["kind"] == "Node" and o["metadata"]["labels"]["dualcap.io/role"] == "asic"
    )
    limit = round((it_kw + 8 * 1.2) * 1.08 + 150) * 1.05
    for obj in objects:
        if obj["kind"] == "PowerBudget":
            obj["spec"]["limitKW"] = limit
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mining"}}
    path.write_text(yaml.safe_dump_all([ns, *objects]))
    return [ns, *objects], limit


class Sandbox:
    def __init__(self, tmp: Path, name: str, fleet_file: Path):
        self.port = 19000 + (os.getpid() + hash(name)) % 900
        self.kubeconfig = tmp / f"{name}.kubeconfig"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dualcap_sandbox",
                "--port",
                str(self.port),
                "--kubeconfig",
                str(self.kubeconfig),
                "--load",
                str(ROOT / "crds"),
                "--load",
                str(fleet_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 120
        while not self.kubeconfig.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"sandbox did not start: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Real:
    """The same site on the real control plane (bench/realserver.py)."""

    def __init__(self, tmp: Path, name: str, objects: list[dict[str, Any]]):
        from realserver import RealServer

        self.server = RealServer(tmp / name)
        try:
            took = asyncio.run(self.server.load(objects))
            quiet = asyncio.run(self.server.settle())
        except BaseException:
            self.server.stop()
            raise
        print(
            f"  ({name}: {len(objects)} objects created on the real apiserver in {took:.1f} s;"
            f" kwok and kube-controller-manager done with the new nodes {quiet:.0f} s later)"
        )
        self.url, self.kubeconfig = self.server.url, self.server.kubeconfig

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        return self.server.session(limit)

    def stop(self) -> None:
        self.server.stop()


Server = Sandbox | Real


async def tainted_nodes(s: aiohttp.ClientSession, url: str) -> dict[str, dict[str, Any]]:
    async with s.get(
        f"{url}/api/v1/nodes", params={"labelSelector": f"dualcap.io/site={SITE}"}
    ) as r:
        doc = await r.json()
    return {n["metadata"]["name"]: n for n in doc["items"]}


async def site_status(s: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with s.get(f"{url}/apis/dualcap.io/v1alpha1/sites/{SITE}") as r:
        return (await r.json()).get("status") or {}


def ready(status: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


async def operator_side(sb: Server, limit: float) -> tuple[float, int, float]:
    env = dict(os.environ, KUBECONFIG=str(sb.kubeconfig))
    start = time.perf_counter()
    # BENCH_OPERATOR_LOG=FILE keeps the operator's log (verbose), to see where time goes
    keep = os.environ.get("BENCH_OPERATOR_LOG")
    out = open(keep, "ab") if keep else subprocess.DEVNULL  # noqa: SIM115, ASYNC230
    op = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "dualcap", "run", "--liveness", "none", "--metrics-port", "0",
         "--log-format", "full", "-v" if keep else "-q"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with sb.session() as s:
            while True:  # settled: Ready, everything mining
                status = await site_status(s, sb.url)
                if ready(status) and (status.get("controllers") or {}).get("mining") == CONTROLLERS:
                    break
                if time.perf_counter() - start > 300:
                    raise SystemExit(f"the operator did not settle: {json.dumps(status)[:500]}")
                await asyncio.sleep(0.2)
            settle = time.perf_counter() - start
            nodes = await tainted_nodes(s, sb.url)
            async with s.get(f"{sb.url}/api/v1/nodes", params={"limit": "1"}) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            last: list[float] = []
            curtailed: set[str] = set()

            async def watch() -> None:
                params = {
                    "watch": "true",
                    "resourceVersion": rv,
                    "labelSelector": f"dualcap.io/site={SITE}",
                }
                async with s.get(f"{sb.url}/api/v1/nodes", params=params, timeout=None) as r:
                    async for line in r.content:
                        ev = json.loads(line)
                        node = ev["object"]
                        taints = node["spec"].get("taints") or []
                        if node["metadata"]["name"] not in curtailed and any(
                            t["key"] == TAINT for t in taints
                        ):
                            curtailed.add(node["metadata"]["name"])
                            last.append(time.perf_counter())

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            async with s.patch(
                f"{sb.url}/apis/dualcap.io/v1alpha1/powerbudgets/{SITE}",
                data=json.dumps({"spec": {"limitKW": round(limit / 2)}}),
                headers={"Content-Type": "application/merge-patch+json"},
            ) as r:
                assert r.status == 200, await r.text()
            while True:  # done: Ready again at the new limit, and no new curtail for 2 s
                await asyncio.sleep(0.2)
                status = await site_status(s, sb.url)
                quiet = last and time.perf_counter() - last[-1] > 2
                if ready(status) and quiet and status.get("limitKW", limit) < limit:
                    break
                if time.perf_counter() - t0 > 120:
                    raise SystemExit(f"the operator did not curtail: {json.dumps(status)[:500]}")
            watcher.cancel()
            assert len(nodes) >= CONTROLLERS
            ms = sorted((x - t0) * 1000 for x in last)
            print(
                f"  operator: curtails accepted after the budget patch: first {ms[0]:.0f} ms,"
                f" half {ms[len(ms) // 2]:.0f} ms, 90% {ms[len(ms) * 9 // 10]:.0f} ms"
            )
            return last[-1] - t0, len(curtailed), settle
    finally:
        op.terminate()
        op.wait(30)


async def bare_side(sb: Server, names: list[str]) -> float:
    at = datetime.now(UTC)
    async with sb.session(limit=CONCURRENCY) as s:
        nodes = await tainted_nodes(s, sb.url)
        bodies = {n: json.dumps(curtail_patch(nodes[n], at)) for n in names}
        bound = asyncio.Semaphore(CONCURRENCY)

        async def one(name: str) -> None:
            async with (
                bound,
                s.patch(
                    f"{sb.url}/api/v1/nodes/{name}",
                    data=bodies[name],
                    headers={"Content-Type": "application/merge-patch+json"},
                ) as r,
            ):
                assert r.status == 200, await r.text()
                await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(n) for n in names))
        return time.perf_counter() - t0


async def curtailed_names(sb: Server) -> list[str]:
    async with sb.session() as s:
        nodes = await tainted_nodes(s, sb.url)
    return sorted(
        n
        for n, node in nodes.items()
        if any(t["key"] == TAINT for t in node["spec"].get("taints") or [])
    )


def measure(
    kind: str, tmp: Path, fleet_file: Path, objects: list[dict[str, Any]], limit: float
) -> None:
    def server(name: str) -> Server:
        return (
            Sandbox(tmp, name, fleet_file)
            if kind == "sandbox"
            else Real(tmp, f"{kind}-{name}", objects)
        )

    print(
        f" on the {'sandbox' if kind == 'sandbox' else 'real control plane (kube-apiserver v1.36.3, etcd, kwok)'}:"
    )
    sb = server("operator")
    try:
        took, count, settle = asyncio.run(operator_side(sb, limit))
        names = asyncio.run(curtailed_names(sb))
    finally:
        sb.stop()
    print(f"  cold start to settled (all {CONTROLLERS} mining): {settle:.2f} s")
    print(f"  operator: budget patch -> last of {count} curtails accepted: {took * 1000:.0f} ms")
    sb = server("bare")
    try:
        bare = asyncio.run(bare_side(sb, names))
    finally:
        sb.stop()
    print(
        f"  bare client: the same {len(names)} patches, {CONCURRENCY} at a time: {bare * 1000:.0f} ms"
    )
    print(f"  ratio operator / bare client: {took / bare:.2f}x (target: <= 1.5x and <= 1 s)")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["sandbox", "real", "both"], default="sandbox")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fleet_file = tmp / "fleet.yaml"
        objects, limit = fleet(fleet_file)
        print(
            f"dualcap operator benchmark: limit drop to 50% on a site of {CONTROLLERS} controllers "
            f"(API server, operator and load each in its own process)"
        )
        for kind in ("sandbox", "real") if args.server == "both" else (args.server,):
            measure(kind, tmp, fleet_file, objects, limit)


if __name__ == "__main__":
    main()
