"""Synthetic fleets for benchmarks: sites of ASIC controllers, GPU nodes, leases and pods."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 7, 14, 15, 0, tzinfo=UTC)
Obj = dict[str, Any]


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def site_objects(
    name: str,
    controllers: int,
    gpu_nodes: int,
    leases: int,
    seed: int = 0,
    limit_kw: float | None = None,
) -> list[Obj]:
    """One site. About half the leases run already (their pods exist); the rest wait."""
    rng = random.Random(seed)
    out: list[Obj] = [
        {
            "apiVersion": "dualcap.io/v1alpha1",
            "kind": "Site",
            "metadata": {
                "name": name,
                "uid": f"site-{name}",
                "resourceVersion": "1",
                "generation": 1,
            },
            "spec": {
                "facility": {"pue": 1.08, "fixedKW": 150},
                "asic": {
                    "miningPodSelector": {"matchLabels": {"app": "miner-agent"}},
                    "powerKW": 1900,
                    "hashrateTHs": 108000,
                    "hashpriceUSDPerPHDay": 45,
                },
                "gpu": {"powerPerGPUKW": 1.1, "idlePowerKW": 1.2},
                "behavior": {
                    "minMiningSeconds": 300,
                    "minCurtailedSeconds": 300,
                    "maxRampUpKWPerMinute": 50000,
                },
            },
        }
    ]
    mining_kw = 0.0
    for i in range(controllers):
        node = f"{name}-asic-{i:05d}"
        ann = {}
        kind = rng.random()
        if kind < 0.2:  # older S19 XP blocks
            ann = {"dualcap.io/power-kw": "1650", "dualcap.io/hashrate-ths": "76700"}
            mining_kw += 1650
        elif kind < 0.3:  # smaller containers
            ann = {"dualcap.io/power-kw": "950", "dualcap.io/hashrate-ths": "54000"}
            mining_kw += 950
        else:
            mining_kw += 1900
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "uid": f"uid-{node}",
                    "resourceVersion": "1",
                    "labels": {"dualcap.io/site": name, "dualcap.io/role": "asic"},
                    **({"annotations": ann} if ann else {}),
                },
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"miner-agent-{node}",
                    "namespace": "mining",
                    "uid": f"uid-miner-{node}",
                    "resourceVersion": "1",
                    "labels": {"app": "miner-agent"},
                },
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "agent", "image": "miner-agent"}],
                },
                "status": {"phase": "Running"},
            }
        )
    free = []
    for i in range(gpu_nodes):
        node = f"{name}-gpu-{i:04d}"
        free.append(node)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "uid": f"uid-{node}",
                    "resourceVersion": "1",
                    "labels": {"dualcap.io/site": name, "dualcap.io/role": "gpu"},
                },
                "spec": {},
                "status": {
                    "allocatable": {"nvidia.com/gpu": "8"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    for j in range(leases):
        ns = f"tenant-{j % 20}"
        lname = f"{name}-lease-{j:04d}"
        pods = rng.choice([1, 1, 2, 4])
        per_pod = 8
        obj = {
            "apiVersion": "dualcap.io/v1alpha1",
            "kind": "ComputeLease",
            "metadata": {
                "name": lname,
                "namespace": ns,
                "uid": f"uid-{lname}",
                "resourceVersion": "1",
                "generation": 1,
                "creationTimestamp": _ts(NOW - timedelta(minutes=rng.randint(1, 10_000))),
            },
            "spec": {
                "siteRef": name,
                "gpus": pods * per_pod,
                "gpusPerPod": per_pod,
                "priority": rng.randint(0, 100),
                "preemptible": rng.random() < 0.5,
                "pricePerGPUHourUSD": round(rng.uniform(1.2, 2.5), 2),
                "template": {"spec": {"containers": [{"name": "main", "image": "x"}]}},
            },
        }
        out.append(obj)
        if rng.random() < 0.5 and len(free) >= pods:
            for k in range(pods):
                node = free.pop()
                out.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"{lname}-{k}",
                            "namespace": ns,
                            "uid": f"uid-{lname}-{k}",
                            "resourceVersion": "1",
                            "labels": {"dualcap.io/lease": lname, "dualcap.io/site": name},
                        },
                        "spec": {
                            "nodeName": node,
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "x",  # a real apiserver requires one
                                    "resources": {"limits": {"nvidia.com/gpu": "8"}},
                                }
                            ],
                        },
                        "status": {"phase": "Running"},
                    }
                )
    out.append(
        {
            "apiVersion": "dualcap.io/v1alpha1",
            "kind": "PowerBudget",
            "metadata": {
                "name": name,
                "uid": f"pb-{name}",
                "resourceVersion": "1",
                "generation": 1,
            },
            "spec": {
                "siteRef": name,
                "limitKW": limit_kw if limit_kw is not None else round(mining_kw * 1.08 * 0.8),
                "safetyMarginPercent": 1,
                "energyPrice": {"usdPerMWh": 45},
            },
        }
    )
    return out


def fleet_objects(sites: int, nodes: int, leases: int, seed: int = 0) -> list[Obj]:
    """``sites`` sites sharing ``nodes`` nodes (80% controllers) and ``leases`` leases."""
    out: list[Obj] = []
    for s in range(sites):
        n = nodes // sites
        out += site_objects(
            f"site-{s:02d}",
            controllers=int(n * 0.8),
            gpu_nodes=n - int(n * 0.8),
            leases=leases // sites,
            seed=seed + s,
        )
    return out
