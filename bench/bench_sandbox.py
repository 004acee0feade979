"""Benchmark: the sandbox API's speed (issue 4). Prints figures; asserts nothing.

The sandbox runs in its own process (`dualcap-sandbox`), the client here, both on
loopback: requests per second for GET and PATCH in consecutive batches (flat, or not, as
the request count grows) and the time to list 5,000 nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

CONCURRENCY = 16
NODES = 5000
BATCH = 2000
BATCHES = 3


def node(i: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"n{i:05d}",
            "labels": {"dualcap.io/site": f"s{i % 40}", "dualcap.io/role": "asic"},
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "4"},
        },
    }


async def run(base: str) -> None:
    conn = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url=base, connector=conn) as s:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(
            method: str, path: str, body: object = None, ctype: str = "application/json"
        ) -> None:
            async with sem:
                data = json.dumps(body) if body is not None else None
                async with s.request(method, path, data=data, headers={"Content-Type": ctype}) as r:
                    await r.read()
                    if r.status >= 300:
                        raise RuntimeError(f"{method} {path}: {r.status}")

        async def rate(label: str, make) -> list[float]:
            rates = []
            for b in range(BATCHES):
                t = time.perf_counter()
                await asyncio.gather(*(make(b * BATCH + i) for i in range(BATCH)))
                rates.append(BATCH / (time.perf_counter() - t))
            print(
                f"  {label:<34} "
                + "   ".join(f"{r:7.0f}" for r in rates)
                + "   requests/s per batch of 2,000"
            )
            return rates

        t = time.perf_counter()
        await asyncio.gather(*(one("POST", "/api/v1/nodes", node(i)) for i in range(NODES)))
        print(
            f"  create {NODES} nodes: {time.perf_counter() - t:.2f} s ({NODES / (time.perf_counter() - t):.0f} requests/s)"
        )
        await rate("GET a node", lambda i: one("GET", f"/api/v1/nodes/n{i % NODES:05d}"))
        await rate(
            "PATCH a node (merge patch)",
            lambda i: one(
                "PATCH",
                f"/api/v1/nodes/n{i % NODES:05d}",
                {"metadata": {"labels": {"x": str(i)}}},
                "application/merge-patch+json",
            ),
        )
        times = []
        for _ in range(5):
            t = time.perf_counter()
            async with s.get("/api/v1/nodes") as r:
                doc = await r.json()
            times.append(time.perf_counter() - t)
        assert len(doc["items"]) == NODES
        print(f"  list {NODES} nodes: median {statistics.median(times) * 1000:.0f} ms")
        times = []
        for _ in range(5):
            t = time.perf_counter()
            async with s.get("/api/v1/nodes", params={"labelSelector": "dualcap.io/site=s7"}) as r:
                doc = await r.json()
            times.append(time.perf_counter() - t)
        print(
            f"  list with a label selector ({len(doc['items'])} of {NODES}): median {statistics.median(times) * 1000:.0f} ms"
        )


def main() -> None:
    port = 18000 + os.getpid() % 1000
    with tempfile.TemporaryDirectory() as tmp:
        kc = Path(tmp) / "kc"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dualcap_sandbox",
                "--port",
                str(port),
                "--kubeconfig",
                str(kc),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 20
            while not kc.exists() and time.time() < deadline:
                time.sleep(0.05)
            print(
                f"dualcap-sandbox benchmark (server in its own process, {CONCURRENCY} concurrent requests, loopback)"
            )
            asyncio.run(run(f"http://127.0.0.1:{port}"))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
