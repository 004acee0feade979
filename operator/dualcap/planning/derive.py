"""The entities derived from objects: a controller, a GPU node, a lease and its pods, the
budgets of a site; each reused from the last build while its objects are unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualcap.api.budget import PowerBudget
from dualcap.api.common import (
    CURTAILED_AT_ANNOTATION,
    HASHRATE_THS_ANNOTATION,
    IDLE_POWER_KW_ANNOTATION,
    LEASE_LABEL,
    POWER_KW_ANNOTATION,
    POWER_PER_GPU_KW_ANNOTATION,
)
from dualcap.api.conditions import HoldReason
from dualcap.api.lease import ComputeLease, LeasePhase
from dualcap.api.marks import RESUMED_AT_ANNOTATION, is_marked, marks_complete
from dualcap.api.names import WORKLOAD_LABEL
from dualcap.api.site import ControllerState, Site
from dualcap.planning.accounting import mining_revenue_usd_per_hour
from dualcap.planning.entities import (
    BudgetIssue,
    Controller,
    GpuNode,
    Lease,
    LeasePod,
    Problem,
)
from dualcap.planning.fields import (
    EPOCH,
    PHASES,
    Obj,
    float_annotation,
    meta_of,
    node_ready,
    node_ref_of,
    pod_gpus,
    pod_node,
    pod_terminal,
    ref_of,
    time_of,
)
from dualcap.planning.parse import LeaseEntry, ParseCache, PodEntry
from dualcap.planning.quantity import parse_count


def reuse_lease_pod(
    pod: Obj, resource: str, last: dict[str, Any], table: dict[str, Any] | None
) -> LeasePod:
    """The pod's entity, reused while the pod (and the Site) are the versions it was
    built from."""
    meta = pod.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not rv:
        return lease_pod_of(pod, resource)
    entry = last.get(uid)
    if entry is None or entry.version != rv:
        entry = PodEntry(rv, lease_pod_of(pod, resource))
    if table is not None:
        table[uid] = entry
    lease_pod: LeasePod = entry.pod
    return lease_pod


def reuse_lease(
    obj: Obj,
    pods: tuple[LeasePod, ...],
    cache: ParseCache,
    last: dict[str, Any],
    table: dict[str, Any] | None,
) -> Lease:
    """The lease's entity, reused while the lease and its pods are the versions it was
    built from."""
    meta = obj.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    versions = tuple(p.ref.key_version for p in pods if p.ref is not None)
    if not uid or not rv or len(versions) < len(pods) or None in versions:
        return lease_of(obj, pods, cache)
    entry = last.get(uid)
    if entry is None or entry.version != rv or entry.pods != versions:
        entry = LeaseEntry(rv, versions, lease_of(obj, pods, cache))
    if table is not None:
        table[uid] = entry
    lease: Lease = entry.lease
    return lease


def _pod_index(pod_name: str, lease_name: str) -> int | None:
    suffix = pod_name[len(lease_name) + 1 :] if pod_name.startswith(lease_name + "-") else ""
    return int(suffix) if suffix.isdigit() else None


def budgets_for(
    site: str, budgets: list[Obj], cache: ParseCache, problems: list[Problem]
) -> tuple[dict[str, PowerBudget], BudgetIssue | None, str | None]:
    """Every PowerBudget naming the site composes its envelope (GitOps and each adapter
    own budgets of their own). One that does not validate holds the site: its limit is
    unknown, so nothing is increased on the strength of the others. The energy price
    comes from one budget (the first by name that sets one); a second is reported."""
    if not budgets:
        msg = f"no PowerBudget has siteRef {site!r}: without an envelope nothing is increased"
        problems.append(Problem("Site", site, "NoPowerBudget", msg))
        return {}, BudgetIssue(HoldReason.NO_POWER_BUDGET, msg), None
    valid: dict[str, PowerBudget] = {}
    issue = None
    for obj in sorted(budgets, key=lambda b: str(meta_of(b).get("name"))):
        name = str(meta_of(obj).get("name"))
        budget, error = cache.parse(PowerBudget, obj)
        if error or budget is None:
            problems.append(Problem("PowerBudget", name, "InvalidSpec", error or "invalid"))
            issue = issue or BudgetIssue(
                HoldReason.BUDGET_INVALID, f"PowerBudget {name} is invalid: {error}"
            )
            continue
        valid[name] = budget
    priced = [n for n, b in valid.items() if b.spec.energy_price is not None]
    for other in priced[1:]:
        problems.append(
            Problem(
                "PowerBudget",
                other,
                "SecondPriceSource",
                f"site {site!r} takes its energy price from PowerBudget {priced[0]}; this"
                " budget's energyPrice is not used (one price source per site)",
            )
        )
    return valid, issue, priced[0] if priced else None


def controller_of(node: Obj, site: Site, pods: list[Obj], problems: list[Problem]) -> Controller:
    asic = site.spec.asic
    assert asic is not None
    meta = meta_of(node)
    annotations = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    power = float_annotation(node, POWER_KW_ANNOTATION, asic.power_kw, problems)
    hashrate = float_annotation(node, HASHRATE_THS_ANNOTATION, asic.hashrate_ths, problems)
    selector = asic.mining_pod_selector  # None with MinerAgent: its reports confirm instead
    mining_pods = (
        sum(
            1
            for pod in pods
            if not pod_terminal(pod) and selector.matches(meta_of(pod).get("labels"))
        )
        if selector is not None
        else 0
    )
    cordoned = bool(spec.get("unschedulable"))
    marked = is_marked(node)
    complete = marks_complete(node)
    if not node_ready(node):
        state = ControllerState.UNREADY
    elif cordoned and not marked:
        state = ControllerState.HELD
    elif marked:
        confirmed = complete and mining_pods == 0
        state = ControllerState.CURTAILED if confirmed else ControllerState.CURTAILING
    else:
        state = ControllerState.MINING
    return Controller(
        name=str(meta.get("name")),
        power_kw=power,
        hashrate_ths=hashrate,
        state=state,
        mining_pods=mining_pods,
        marked=marked,
        marks_complete=complete,
        curtailed_at=time_of(annotations.get(CURTAILED_AT_ANNOTATION)),
        resumed_at=time_of(annotations.get(RESUMED_AT_ANNOTATION)),
        ref=node_ref_of(node),
        facility_kw=site.spec.facility.pue * power,
        revenue_usd_per_hour=hashrate
        * mining_revenue_usd_per_hour(1.0, asic.hashprice_usd_per_ph_day),
    )


def gpu_node_of(node: Obj, site: Site, pods: list[Obj], problems: list[Problem]) -> GpuNode:
    gpu = site.spec.gpu
    assert gpu is not None
    meta = meta_of(node)
    name = str(meta.get("name"))
    status = node.get("status") or {}
    raw = (status.get("allocatable") or {}).get(gpu.resource_name)
    if raw is None:
        raw = (status.get("capacity") or {}).get(gpu.resource_name, 0)
    try:
        gpus = parse_count(raw)
    except ValueError:
        problems.append(Problem("Node", name, "InvalidCapacity", f"{gpu.resource_name}={raw!r}"))
        gpus = 0
    foreign = sum(
        pod_gpus(pod, gpu.resource_name)
        for pod in pods
        if not pod_terminal(pod) and not _gated(meta_of(pod).get("labels"))
    )
    spec = node.get("spec") or {}
    ready = node_ready(node)
    taints = tuple(
        t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
    )
    return GpuNode(
        name=name,
        gpus=gpus,
        per_gpu_kw=float_annotation(
            node, POWER_PER_GPU_KW_ANNOTATION, gpu.power_per_gpu_kw, problems
        ),
        idle_kw=float_annotation(node, IDLE_POWER_KW_ANNOTATION, gpu.idle_power_kw, problems),
        ready=ready,
        schedulable=ready and not spec.get("unschedulable"),
        labels=meta.get("labels") or {},
        taints=taints,
        foreign_gpus=foreign,
        ref=node_ref_of(node),
    )


def _gated(labels: Any) -> bool:
    """A pod dualcap counts as a lease's or a Workload's (not in its node's baseline)."""
    return bool(labels) and (LEASE_LABEL in labels or WORKLOAD_LABEL in labels)


def lease_pod_of(pod: Obj, resource: str) -> LeasePod:
    meta = meta_of(pod)
    lease_name = meta["labels"][LEASE_LABEL]
    name = str(meta.get("name"))
    return LeasePod(
        namespace=str(meta.get("namespace")),
        name=name,
        lease=lease_name,
        node=pod_node(pod),
        gpus=pod_gpus(pod, resource),
        terminating=meta.get("deletionTimestamp") is not None,
        terminal=pod_terminal(pod),
        index=_pod_index(name, lease_name),
        ref=ref_of("Pod", pod),
    )


def lease_of(obj: Obj, pods: tuple[LeasePod, ...], cache: ParseCache) -> Lease:
    meta = meta_of(obj)
    model, error = cache.parse(ComputeLease, obj)
    status = obj.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return Lease(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        created=time_of(meta.get("creationTimestamp")) or EPOCH,
        generation=meta.get("generation"),
        spec=model.spec if model is not None else None,
        error=error,
        pods=tuple(
            sorted(pods, key=lambda p: (p.index if p.index is not None else 1 << 30, p.name))
        ),
        previous_phase=LeasePhase(phase) if phase in PHASES else None,
        deleting=meta.get("deletionTimestamp") is not None,
        rejected=_rejected(status, meta.get("generation")),
        ref=ref_of("ComputeLease", obj),
    )


def _rejected(status: Any, generation: Any) -> str | None:
    if not isinstance(status, Mapping) or status.get("observedGeneration") != generation:
        return None
    for c in status.get("conditions") or []:
        if (
            isinstance(c, Mapping)
            and c.get("type") == "Stalled"
            and c.get("status") == "True"
            and c.get("reason") == "TemplateRejected"
        ):
            return str(c.get("message") or "the template was rejected")
    return None
