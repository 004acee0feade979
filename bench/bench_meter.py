"""Benchmark: the cost of the measurement loop (issue 14). Prints figures; asserts nothing.

40 sites, each with a SunSpec meter (pymodbus's own Modbus TCP server, one port each on
127.0.0.1) and a GPU power query against one real Prometheus (Debian's package) that
scrapes a fake DCGM exporter every second: 40 sites x 10 GPU nodes x 8 GPUs. The peers run
in a child process, so the CPU figures are the clients' alone (what the operator pays); a
round polls every meter and runs every GPU query at once (the worst case of a poll tick).
Figures: latency of one poll (median, p99), CPU seconds per round, and Prometheus's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from tests.peers.prometheus import FakeExporter, Prometheus, PrometheusUnavailable  # noqa: E402

from dualcap.api.measurement import DCGM_POWER_QUERY, SunSpecMeter  # noqa: E402
from dualcap.signals.meter import SunSpecMeterClient  # noqa: E402
from dualcap.signals.prometheus import PrometheusClient  # noqa: E402
from dualcap_sandbox.sunspec import SunSpecMeterPeer  # noqa: E402

SITES = 40
NODES_PER_SITE = 10
GPUS_PER_NODE = 8
ROUNDS = 30
WARMUP_ROUNDS = 2


def node_name(site: int, node: int) -> str:
    return f"s{site:02d}-gpu-{node:02d}"


async def serve_peers(sites: int) -> None:
    """The child process: the meters and the exporter, until stdin closes."""
    peers = [await SunSpecMeterPeer(serial=f"DC-{i:04d}").start() for i in range(sites)]
    for i, peer in enumerate(peers):
        peer.set_watts(1_500_000 + 1000 * i, 2)
    exporter = FakeExporter().start()
    for site in range(sites):
        label = "Hostname" if site % 2 else "hostname"  # both exporter generations
        for node in range(NODES_PER_SITE):
            for gpu in range(GPUS_PER_NODE):
                exporter.set_gpu(node_name(site, node), gpu, 300.0 + gpu, host_label=label)
    print(json.dumps({"meters": [p.port for p in peers], "exporter": exporter.target}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for peer in peers:
        await peer.stop()
    exporter.stop()


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<34} median {statistics.median(ms):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms"
        f"   max {max(ms):7.2f} ms   (n={len(ms)})"
    )


async def timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def bench(ports: list[int], prometheus: Prometheus) -> None:
    clients = [
        SunSpecMeterClient(SunSpecMeter(host="127.0.0.1", port=port), timeout_seconds=2.0)
        for port in ports
    ]
    first = await asyncio.gather(*(timed(c.read()) for c in clients))

    meter_latency: list[float] = []
    meter_cpu: list[float] = []
    for r in range(WARMUP_ROUNDS + ROUNDS):
        cpu = time.process_time()
        latencies = await asyncio.gather(*(timed(c.read()) for c in clients))
        if r >= WARMUP_ROUNDS:
            meter_cpu.append(time.process_time() - cpu)
            meter_latency += latencies
    for c in clients:
        c.close()

    nodes = [[node_name(s, n) for n in range(NODES_PER_SITE)] for s in range(len(ports))]
    gpu_latency: list[float] = []
    gpu_cpu: list[float] = []
    prom_cpu: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        gpu_clients = [
            PrometheusClient(prometheus.url, timeout_seconds=5.0, session=session) for _ in ports
        ]
        for r in range(WARMUP_ROUNDS + ROUNDS):
            cpu = time.process_time()
            before = cpu_seconds_of(prometheus.pid)
            results = await asyncio.gather(
                *(
                    timed(client.gpu_power_by_node(DCGM_POWER_QUERY, site_nodes))
                    for client, site_nodes in zip(gpu_clients, nodes, strict=True)
                )
            )
            if r >= WARMUP_ROUNDS:
                gpu_cpu.append(time.process_time() - cpu)
                prom_cpu.append(cpu_seconds_of(prometheus.pid) - before)
                gpu_latency += results
        check = await gpu_clients[0].gpu_power_by_node(DCGM_POWER_QUERY, nodes[0])
        assert len(check) == NODES_PER_SITE

        # The same figures when every site shares one query (same URL, same expression):
        # run once a round, its answer split among the sites.
        shared_latency: list[float] = []
        shared_cpu: list[float] = []
        shared_prom_cpu: list[float] = []
        everyone = [n for site_nodes in nodes for n in site_nodes]
        for r in range(WARMUP_ROUNDS + ROUNDS):
            cpu = time.process_time()
            before = cpu_seconds_of(prometheus.pid)
            start = time.perf_counter()
            power = await gpu_clients[0].gpu_power_by_node(DCGM_POWER_QUERY, everyone)
            per_site = [{n: power[n] for n in site_nodes if n in power} for site_nodes in nodes]
            elapsed = time.perf_counter() - start
            if r >= WARMUP_ROUNDS:
                shared_latency.append(elapsed)
                shared_cpu.append(time.process_time() - cpu)
                shared_prom_cpu.append(cpu_seconds_of(prometheus.pid) - before)
            assert all(len(site) == NODES_PER_SITE for site in per_site)

    series = len(ports) * NODES_PER_SITE * GPUS_PER_NODE
    print(f"Measurement loop: {len(ports)} sites, {ROUNDS} rounds (all sites at once a round)")
    print(f"SunSpec meters over Modbus TCP ({len(ports)} pymodbus servers on 127.0.0.1):")
    print(line("first poll (connect + discovery)", list(first)))
    print(line("steady poll (one 5-register read)", meter_latency))
    print(
        f"  client CPU per round of {len(ports)} polls: median"
        f" {statistics.median(meter_cpu) * 1000:.1f} ms, max {max(meter_cpu) * 1000:.1f} ms"
    )
    print(
        f"GPU power queries against a real Prometheus ({series} DCGM series,"
        f" {NODES_PER_SITE} nodes a site, the default query a site):"
    )
    print(line("one query", gpu_latency))
    print(
        f"  client CPU per round of {len(ports)} queries: median"
        f" {statistics.median(gpu_cpu) * 1000:.1f} ms, max {max(gpu_cpu) * 1000:.1f} ms"
    )
    print(
        f"  Prometheus CPU per round: median {statistics.median(prom_cpu) * 1000:.0f} ms,"
        f" max {max(prom_cpu) * 1000:.0f} ms"
    )
    print("The same GPU power when the sites share one query a round (one answer, split):")
    print(line("the shared query", shared_latency))
    print(
        f"  client CPU per round: median {statistics.median(shared_cpu) * 1000:.1f} ms,"
        f" max {max(shared_cpu) * 1000:.1f} ms; Prometheus CPU per round: median"
        f" {statistics.median(shared_prom_cpu) * 1000:.0f} ms"
    )
    for label, gpu in (("a query a site", gpu_cpu), ("one shared query", shared_cpu)):
        per_round = statistics.median(meter_cpu) + statistics.median(gpu)
        print(
            f"At a 5 s poll, {label}: {per_round / 5 * 100:.2f}% of one core for the"
            f" clients ({per_round * 1000:.1f} ms of CPU per 5 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=SITES)
    parser.add_argument("--serve-peers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_peers:
        asyncio.run(serve_peers(args.sites))
        return

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-peers", "--sites", str(args.sites)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    prometheus: Prometheus | None = None
    try:
        assert child.stdout is not None
        ready = json.loads(child.stdout.readline())
        prometheus = Prometheus([ready["exporter"]]).start()
        want = args.sites * NODES_PER_SITE * GPUS_PER_NODE
        prometheus.wait_for(
            "count(DCGM_FI_DEV_POWER_USAGE)",
            lambda r: bool(r) and int(float(r[0]["value"][1])) == want,
            deadline_seconds=60,
        )
        asyncio.run(bench(ready["meters"], prometheus))
    except PrometheusUnavailable as err:
        print(f"bench_meter: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if child.stdin is not None:
            child.stdin.close()
        child.wait(30)


if __name__ == "__main__":
    main()
