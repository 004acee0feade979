"""Benchmark: planning time (targets in the README, Performance). Prints figures; asserts nothing.

make bench      # or: .venv/bin/python bench/bench_plan.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dualcap.planning import ParseCache, build_fleet, plan
from dualcap.planning.snapshot import build_one
from fleetgen import NOW, fleet_objects, site_objects


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def fmt(ms: list[float]) -> str:
    return (
        f"median {statistics.median(ms):8.2f} ms   p90 {sorted(ms)[int(len(ms) * 0.9) - 1]:8.2f} ms"
    )


def one_site(
    controllers: int, gpu_nodes: int, leases: int, repeat: int
) -> tuple[float, float, float, float]:
    objects = site_objects("s", controllers, gpu_nodes, leases)
    site = objects[0]
    rest = objects[1:]
    cache = ParseCache()
    cold = timed(lambda: build_fleet(objects, NOW), 3)
    build_fleet(objects, NOW, cache)
    warm = timed(lambda: build_fleet(objects, NOW, cache), repeat)
    build_one(site, rest, NOW, cache, {}, token=1)
    kept = timed(lambda: build_one(site, rest, NOW, cache, {}, token=1), repeat)
    snap = build_fleet(objects, NOW, cache).sites["s"]
    planned = timed(lambda: plan(snap, NOW), repeat)
    return (
        statistics.median(planned),
        statistics.median(kept),
        statistics.median(warm),
        statistics.median(cold),
    )


def main() -> None:
    print("dualcap planning benchmark (one core of this machine)")
    print()
    print("One site: plan() on a snapshot (the decision core); the snapshot built from objects")
    print("(kept: its objects unchanged since the last build, as the operator's token says:")
    print(" entities kept whole, only what was measured judged again; warm: every object read,")
    print(" models and entities reused by uid+resourceVersion; cold: everything parsed)")
    print(
        f"{'scale':>6} {'controllers':>11} {'GPU nodes':>9} {'leases':>6}  {'plan':>10}"
        f" {'snapshot kept':>14} {'snapshot warm':>14} {'snapshot cold':>14}"
    )
    base = (1000, 200, 500)
    rows = []
    for factor in (0.1, 1, 10):
        c, g, n = (int(x * factor) for x in base)
        repeat = 30 if factor <= 1 else 5
        p, k, w, cold = one_site(c, g, n, repeat)
        rows.append((p, k, w))
        print(
            f"{factor:>5}x {c:>11} {g:>9} {n:>6}  {p:>7.2f} ms {k:>11.3f} ms {w:>11.2f} ms"
            f" {cold:>11.2f} ms"
        )
    for i, what in enumerate(("plan time", "snapshot kept", "snapshot warm")):
        a, b, c = (row[i] for row in rows)
        print(f"growth: x10 size -> {what} x{b / a:.1f}, then x{c / b:.1f} (n log n: ~x11-13)")
    print()
    objects = fleet_objects(40, 5000, 2000)
    cache = ParseCache()
    build_fleet(objects, NOW, cache)

    def fleet_plan() -> None:
        fleet = build_fleet(objects, NOW, cache)
        for snap in fleet.sites.values():
            plan(snap, NOW)

    fleet = build_fleet(objects, NOW, cache)
    plan_only = timed(lambda: [plan(s, NOW) for s in fleet.sites.values()], 10)
    total = timed(fleet_plan, 10)
    print("Fleet: 40 sites, 5,000 nodes, 2,000 leases")
    print(f"  plan every site:                    {fmt(plan_only)}")
    print(f"  snapshot (warm) + plan every site:  {fmt(total)}")
    kueue_cut()


def workloads(site: str, n: int, gpu_nodes: list[str]) -> list[dict[str, Any]]:
    """dualcap's power check for ``site`` and ``n`` admitted Kueue Workloads of 8 GPUs, a
    running pod each (every other one preemptible, priorities spread)."""
    out: list[dict[str, Any]] = [{
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
        "metadata": {"name": "power", "uid": "check-power", "resourceVersion": "1"},
        "spec": {"controllerName": "dualcap.io/power",
                 "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": site}},
    }]  # fmt: skip
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
    for i in range(n):
        name = f"wl-{i:04d}"
        out.append({
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": name, "namespace": "ai", "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": "2026-07-14T10:00:00Z",
                         "labels": {"dualcap.io/preemptible": "true"} if i % 2 else {}},
            "spec": {"priority": i % 7, "podSets": [{"name": "main", "count": 1,
                     "template": {"spec": {"containers": [container]}}}]},
            "status": {"conditions": [{"type": "QuotaReserved", "status": "True"}],
                       "admissionChecks": [{"name": "power", "state": "Ready", "message": ""}]},
        })  # fmt: skip
        out.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-0", "namespace": "ai", "uid": f"uid-{name}-0",
                         "resourceVersion": "1",
                         "labels": {"dualcap.io/workload": name, "dualcap.io/site": site}},
            "spec": {"nodeName": gpu_nodes[i % len(gpu_nodes)], "containers": [container]},
            "status": {"phase": "Running"},
        })  # fmt: skip
    return out


def kueue_cut() -> None:
    """The power check's decision core: a cut on a site running 200 admitted Workloads
    and 1,000 controllers (the plan that curtails every miner it can and evicts the
    preemptible Workloads, lowest priority first)."""
    objects = site_objects("s", 1000, 200, 0)
    gpu = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Node" and "gpu" in o["metadata"]["name"]
    ]
    objects += workloads("s", 200, gpu)
    budget = next(o for o in objects if o["kind"] == "PowerBudget")
    budget["spec"]["limitKW"] = 1_000.0  # below the Workloads' own draw: miners are not enough
    cache = ParseCache()
    build_fleet(objects, NOW, cache)
    snap = build_fleet(objects, NOW, cache).sites["s"]
    p = plan(snap, NOW)
    evict = sum(1 for c in p.schedule.now if c.kind.value == "EvictWorkload")
    curtail = sum(1 for c in p.schedule.now if c.kind.value == "Curtail")
    planned = timed(lambda: plan(snap, NOW), 20)
    total = timed(lambda: plan(build_fleet(objects, NOW, cache).sites["s"], NOW), 20)
    print()
    print("Kueue: a cut to 1,000 kW on a site of 1,000 controllers and 200 admitted Workloads")
    print(f"  commands: {curtail} curtails, {evict} Workloads evicted (Retry)")
    print(f"  plan:                    {fmt(planned)}")
    print(f"  snapshot (warm) + plan:  {fmt(total)}")


if __name__ == "__main__":
    main()
