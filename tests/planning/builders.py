"""Builders of Kubernetes objects as the API returns them, so a test case reads as intent.

snap = snapshot(site(), budget(limit_kw=10_000), *asics(5), *gpus(2), lease("a", gpus=8))
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dualcap.planning.entities import (
    GpuPowerState,
    LivePrices,
    MeterState,
    SiteInputs,
    SiteSnapshot,
)
from dualcap.planning.snapshot import build_fleet

SITE = "s1"
T0 = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)  # a Tuesday
Obj = dict[str, Any]


def ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def site(
    name: str = SITE,
    pue: float = 1.0,
    fixed_kw: float = 0.0,
    power_kw: float = 1000.0,
    hashrate_ths: float = 50_000.0,
    hashprice: float = 45.0,
    per_gpu_kw: float = 1.0,
    idle_kw: float = 0.0,
    min_mining_seconds: int = 0,
    min_curtailed_seconds: int = 0,
    ramp_kw_per_minute: float = 1e7,
    suspend: bool = False,
    without: tuple[str, ...] = (),
    **spec: Any,
) -> Obj:
    """A Site; ``without=("gpu",)`` makes it mining-only, ``("asic",)`` GPU-only."""
    obj: Obj = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "facility": {"pue": pue, "fixedKW": fixed_kw},
            "asic": {
                "miningPodSelector": {"matchLabels": {"app": "miner"}},
                "powerKW": power_kw,
                "hashrateTHs": hashrate_ths,
                "hashpriceUSDPerPHDay": hashprice,
            },
            "gpu": {"powerPerGPUKW": per_gpu_kw, "idlePowerKW": idle_kw},
            "behavior": {
                "minMiningSeconds": min_mining_seconds,
                "minCurtailedSeconds": min_curtailed_seconds,
                "maxRampUpKWPerMinute": ramp_kw_per_minute,
            },
            "suspend": suspend,
            **spec,
        },
    }
    for part in without:
        del obj["spec"][part]
    return obj


def budget(
    limit_kw: float = 1e6,
    site_ref: str = SITE,
    margin_kw: float | None = None,
    margin_percent: float | None = None,
    lead_seconds: int = 120,
    windows: list[Obj] | None = None,
    events: list[Obj] | None = None,
    price: float | None = None,
    price_windows: list[Obj] | None = None,
    name: str | None = None,
) -> Obj:
    spec: Obj = {"siteRef": site_ref, "limitKW": limit_kw, "leadTimeSeconds": lead_seconds}
    if margin_kw is not None:
        spec["safetyMarginKW"] = margin_kw
    if margin_percent is not None:
        spec["safetyMarginPercent"] = margin_percent
    if windows:
        spec["windows"] = windows
    if events:
        spec["events"] = events
    if price is not None or price_windows:
        spec["energyPrice"] = {
            "usdPerMWh": price or 0.0,
            **({"windows": price_windows} if price_windows else {}),
        }
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": name or site_ref, "generation": 1},
        "spec": spec,
    }


def window(
    name: str = "w",
    start: str = "14:00",
    end: str = "19:00",
    limit_kw: float = 0.0,
    tz: str = "UTC",
    days: list[str] | None = None,
    months: list[int] | None = None,
    **extra: Any,
) -> Obj:
    out: Obj = {
        "name": name,
        "start": start,
        "end": end,
        "timezone": tz,
        "limitKW": limit_kw,
        **extra,
    }
    if days:
        out["days"] = days
    if months:
        out["months"] = months
    return out


def event(name: str, start: datetime, end: datetime, limit_kw: float) -> Obj:
    return {"name": name, "start": ts(start), "end": ts(end), "limitKW": limit_kw}


def node(
    name: str,
    role: str,
    *,
    site_name: str = SITE,
    ready: bool = True,
    cordoned: bool = False,
    annotations: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    gpus: int | None = None,
    labels: dict[str, str] | None = None,
) -> Obj:
    meta: Obj = {
        "name": name,
        "labels": {"dualcap.io/site": site_name, "dualcap.io/role": role, **(labels or {})},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: Obj = {}
    if cordoned:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    status: Obj = {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}
    if gpus is not None:
        status["allocatable"] = {"nvidia.com/gpu": str(gpus)}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status}


def miner(node_name: str, terminating: bool = False) -> Obj:
    meta: Obj = {"name": f"miner-{node_name}", "namespace": "mining", "labels": {"app": "miner"}}
    if terminating:
        meta["deletionTimestamp"] = ts(T0)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node_name},
        "status": {"phase": "Running"},
    }


def asic(
    name: str,
    *,
    mining: bool = True,
    curtailed_at: datetime | None = None,
    resumed_at: datetime | None = None,
    power_kw: float | None = None,
    hashrate_ths: float | None = None,
    **kw: Any,
) -> list[Obj]:
    """A controller node and (when ``mining``) its miner pod. ``curtailed_at`` marks it as
    curtailed by dualcap (cordon + taint + annotation)."""
    annotations = dict(kw.pop("annotations", {}) or {})
    if power_kw is not None:
        annotations["dualcap.io/power-kw"] = str(power_kw)
    if hashrate_ths is not None:
        annotations["dualcap.io/hashrate-ths"] = str(hashrate_ths)
    taints = kw.pop("taints", None)
    cordoned = kw.pop("cordoned", False)
    if curtailed_at is not None:
        annotations["dualcap.io/curtailed-at"] = ts(curtailed_at)
        taints = [
            *(taints or []),
            {"key": "dualcap.io/curtailed", "value": "true", "effect": "NoExecute"},
        ]
        cordoned = True
    if resumed_at is not None:
        annotations["dualcap.io/resumed-at"] = ts(resumed_at)
    out = [node(name, "asic", annotations=annotations, taints=taints, cordoned=cordoned, **kw)]
    if mining:
        out.append(miner(name))
    return out


def asics(n: int, prefix: str = "a", **kw: Any) -> list[Obj]:
    return [o for i in range(n) for o in asic(f"{prefix}{i:02d}", **kw)]


def gpu_node(name: str, gpus: int = 8, **kw: Any) -> Obj:
    return node(name, "gpu", gpus=gpus, **kw)


def gpu_nodes(n: int, gpus: int = 8, prefix: str = "g", **kw: Any) -> list[Obj]:
    return [gpu_node(f"{prefix}{i:02d}", gpus, **kw) for i in range(n)]


def lease(
    name: str,
    gpus: int = 8,
    per_pod: int = 8,
    *,
    ns: str = "t",
    priority: int = 0,
    preemptible: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    created: datetime | None = None,
    price: float = 2.0,
    site_ref: str = SITE,
    template_spec: Obj | None = None,
    phase: str | None = None,
) -> Obj:
    spec: Obj = {
        "siteRef": site_ref,
        "gpus": gpus,
        "gpusPerPod": per_pod,
        "priority": priority,
        "preemptible": preemptible,
        "pricePerGPUHourUSD": price,
        "template": {"spec": template_spec or {"containers": [{"name": "c", "image": "x"}]}},
    }
    if start:
        spec["start"] = ts(start)
    if end:
        spec["end"] = ts(end)
    obj: Obj = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}",
            "creationTimestamp": ts(created or T0),
            "generation": 1,
        },
        "spec": spec,
    }
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def lease_pod(
    lease_name: str,
    index: int,
    node_name: str | None,
    gpus: int = 8,
    *,
    ns: str = "t",
    site_name: str = SITE,
    phase: str = "Running",
    terminating: bool = False,
) -> Obj:
    meta: Obj = {
        "name": f"{lease_name}-{index}",
        "namespace": ns,
        "labels": {"dualcap.io/lease": lease_name, "dualcap.io/site": site_name},
    }
    if terminating:
        meta["deletionTimestamp"] = ts(T0)
    spec: Obj = {
        "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase},
    }


def running(lease_obj: Obj, nodes: list[str]) -> list[Obj]:
    """The lease and its pods, running on ``nodes`` (one pod each)."""
    spec = lease_obj["spec"]
    ns = lease_obj["metadata"]["namespace"]
    return [
        lease_obj,
        *(
            lease_pod(lease_obj["metadata"]["name"], i, n, spec["gpusPerPod"], ns=ns)
            for i, n in enumerate(nodes)
        ),
    ]


def flatten(*parts: Obj | list[Obj]) -> list[Obj]:
    out: list[Obj] = []
    for p in parts:
        out.extend(p if isinstance(p, list) else [p])
    return out


def snapshot(
    *parts: Obj | list[Obj],
    name: str = SITE,
    now: datetime = T0,
    meter: MeterState | None = None,
    gpu_power: GpuPowerState | None = None,
    prices: LivePrices | None = None,
) -> SiteSnapshot:
    """The finished snapshot of ``parts`` at ``now``, with what its pollers read."""
    inputs = {name: SiteInputs(meter, gpu_power, prices)}
    return build_fleet(flatten(*parts), now, inputs=inputs).sites[name]
