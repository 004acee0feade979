"""A site's objects as the planner sees them, built from plain Kubernetes objects.

The input is what the API returns (or `kubectl get -o yaml` prints): dicts of Sites,
PowerBudgets, ComputeLeases, Nodes and Pods. The operator builds snapshots from its
indexes with the same code, so `dualcap plan` on a file decides exactly as the operator
would on the cluster.

Everything uncertain is classified conservatively (DESIGN.md §3): a controller counts as
mining until its curtailment is confirmed, a node that is NotReady or unknown counts at
full power, and a lease pod counts from its creation until it is gone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pydantic

from dualcap.api.budget import PowerBudget
from dualcap.api.common import (
    CURTAILED_AT_ANNOTATION,
    HASHRATE_THS_ANNOTATION,
    IDLE_POWER_KW_ANNOTATION,
    LEASE_LABEL,
    POWER_KW_ANNOTATION,
    POWER_PER_GPU_KW_ANNOTATION,
    SITE_LABEL,
    LabelSelector,
    parse_rfc3339,
)
from dualcap.api.lease import ComputeLease, ComputeLeaseSpec
from dualcap.api.marks import RESUMED_AT_ANNOTATION, is_marked, marks_complete
from dualcap.api.site import Site
from dualcap.planning.quantity import parse_count

PLANNED_NODE_ANNOTATION = "dualcap.io/node"
HOSTNAME_LABEL = "kubernetes.io/hostname"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Obj = Mapping[str, Any]


class ControllerState(Enum):
    MINING = "Mining"  # not curtailed by dualcap: counts at full power
    CURTAILING = "Curtailing"  # curtailed by dualcap, not confirmed yet: full power
    CURTAILED = "Curtailed"  # curtailed by dualcap, no mining pod left: no power
    HELD = "Held"  # cordoned by a person: left alone; full power while miners run
    UNREADY = "Unready"  # NotReady or unknown: full power, no commands


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the input dualcap cannot act on as written (reported, never fatal)."""

    kind: str
    name: str
    reason: str
    message: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {self.message}"


@dataclass(slots=True)
class Controller:
    """An ASIC controller node: a controllable block of miners."""

    name: str
    power_kw: float  # IT kW while mining
    hashrate_ths: float
    state: ControllerState
    mining_pods: int
    marked: bool  # carries dualcap's curtailment marks (annotation or taint)
    marks_complete: bool  # cordon, taint and annotation all present
    curtailed_at: datetime | None = None
    resumed_at: datetime | None = None
    # Derived once (the planner reads them many times):
    committed_it_kw: float = field(init=False)  # conservative IT draw now
    dispatchable: bool = field(init=False)  # dualcap may curtail or resume it

    def __post_init__(self) -> None:
        state = self.state
        if state is ControllerState.CURTAILED:
            self.committed_it_kw = 0.0
        elif state is ControllerState.HELD:
            self.committed_it_kw = self.power_kw if self.mining_pods else 0.0
        else:
            self.committed_it_kw = self.power_kw
        self.dispatchable = state in (
            ControllerState.MINING,
            ControllerState.CURTAILING,
            ControllerState.CURTAILED,
        )


@dataclass(slots=True)
class GpuNode:
    """A GPU node: its GPUs, what is used, and what it draws."""

    name: str
    gpus: int  # allocatable
    used_gpus: int  # by every pod not yet gone (lease pods and others)
    per_gpu_kw: float
    idle_kw: float
    ready: bool
    schedulable: bool  # ready, not cordoned
    labels: dict[str, str]
    taints: list[dict[str, Any]]  # NoSchedule and NoExecute taints
    foreign_gpus: int = 0  # GPUs used by pods that are not dualcap lease pods

    @property
    def free_gpus(self) -> int:
        return max(0, self.gpus - self.used_gpus)


@dataclass(slots=True)
class LeasePod:
    namespace: str
    name: str
    lease: str  # the lease's name (label dualcap.io/lease)
    node: str | None
    gpus: int
    terminating: bool
    terminal: bool  # Succeeded or Failed: holds no GPU, draws nothing
    index: int | None


@dataclass(slots=True)
class Lease:
    namespace: str
    name: str
    uid: str | None
    created: datetime
    generation: int | None
    spec: ComputeLeaseSpec | None  # None when invalid (see error)
    error: str | None
    pods: list[LeasePod] = field(default_factory=list)
    previous_phase: str | None = None
    deleting: bool = False
    # The template asks for particular nodes (nodeSelector, affinity or tolerations).
    constrained: bool = False
    # Why the operator refused to build its pods from this generation's template (the
    # lease's Stalled condition, reason TemplateRejected): not admitted until edited.
    rejected: str | None = None
    key: tuple[str, str] = field(init=False)
    start: datetime | None = field(init=False)  # parsed spec.start
    end: datetime | None = field(init=False)  # parsed spec.end

    def __post_init__(self) -> None:
        self.key = (self.namespace, self.name)
        spec = self.spec
        self.start = parse_rfc3339(spec.start) if spec and spec.start else None
        self.end = parse_rfc3339(spec.end) if spec and spec.end else None

    @property
    def live_pods(self) -> list[LeasePod]:
        return [p for p in self.pods if not p.terminal]


@dataclass(slots=True)
class SiteSnapshot:
    name: str
    site: Site | None
    site_error: str | None
    generation: int | None
    budget: PowerBudget | None
    budget_error: str | None
    controllers: list[Controller]
    gpu_nodes: dict[str, GpuNode]
    leases: list[Lease]
    orphan_pods: list[LeasePod]  # lease pods of the site whose lease is gone or elsewhere
    problems: list[Problem]

    max_per_gpu_kw: float = 0.0  # the highest kW per GPU: for pods not yet on a node

    @property
    def pue(self) -> float:
        return self.site.spec.facility.pue if self.site else 1.0

    @property
    def fixed_kw(self) -> float:
        return self.site.spec.facility.fixed_kw if self.site else 0.0


@dataclass(slots=True)
class Fleet:
    """Every site found in a set of objects, and what could not be tied to one."""

    sites: dict[str, SiteSnapshot]
    problems: list[Problem]


class ParseCache:
    """Parsed models keyed by (kind, uid, resourceVersion): a reconcile re-parses only what
    changed since the last one."""

    def __init__(self, max_entries: int = 200_000):
        self._entries: dict[tuple[str, str, str], Any] = {}
        self._max = max_entries

    def parse(self, model: type[pydantic.BaseModel], obj: Obj) -> Any:
        meta = obj.get("metadata") or {}
        uid, rv = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not rv:
            return _parse(model, obj)
        key = (model.__name__, uid, rv)
        hit = self._entries.get(key)
        if hit is None:
            if len(self._entries) >= self._max:
                self._entries.clear()
            hit = self._entries[key] = _parse(model, obj)
        return hit


def _parse(model: type[pydantic.BaseModel], obj: Obj) -> tuple[Any, str | None]:
    try:
        return model.model_validate(dict(obj)), None
    except pydantic.ValidationError as err:
        return None, _explain(err)


def _explain(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int) or True)
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {err.error_count() - 3} more)" if err.error_count() > 3 else ""
    return "; ".join(parts) + more


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False  # unknown counts as not ready


def _float_annotation(
    node: Obj, key: str, default: float, problems: list[Problem], low: float = 0.0
) -> float:
    raw = (_meta(node).get("annotations") or {}).get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= low or value > 1e7:  # also catches NaN
        problems.append(
            Problem(
                "Node",
                _meta(node).get("name", "?"),
                "InvalidAnnotation",
                f"annotation {key}={raw!r} is not a number >= {low}; using {default}",
            )
        )
        return default
    return value


def pod_gpus(pod: Obj, resource: str) -> int:
    """GPUs a pod holds: its containers' limits (or requests), or the largest init container."""
    spec = pod.get("spec") or {}

    def one(container: Obj) -> int:
        res = container.get("resources") or {}
        value = (res.get("limits") or {}).get(resource, (res.get("requests") or {}).get(resource))
        if value is None:
            return 0
        try:
            return parse_count(value)
        except ValueError:
            return 0

    regular = sum(one(c) for c in spec.get("containers") or [])
    init = max((one(c) for c in spec.get("initContainers") or []), default=0)
    return max(regular, init)


def pod_node(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if node:
        return str(node)
    planned = (_meta(pod).get("annotations") or {}).get(PLANNED_NODE_ANNOTATION)
    if planned:
        return str(planned)
    return (spec.get("nodeSelector") or {}).get(HOSTNAME_LABEL)


def pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class _Index:
    """The objects of a fleet grouped for fast per-site lookups."""

    def __init__(self, objects: Iterable[Obj]):
        self.sites: list[Obj] = []
        self.budgets: dict[str, list[Obj]] = defaultdict(list)
        self.leases: dict[str, list[Obj]] = defaultdict(list)
        self.nodes: list[Obj] = []
        self.nodes_by_site_label: dict[str, list[Obj]] = defaultdict(list)
        self.pods_by_node: dict[str, list[Obj]] = defaultdict(list)
        self.lease_pods_by_site: dict[str, list[Obj]] = defaultdict(list)
        for obj in objects:
            kind = obj.get("kind")
            if kind == "Site":
                self.sites.append(obj)
            elif kind == "PowerBudget":
                self.budgets[str((obj.get("spec") or {}).get("siteRef"))].append(obj)
            elif kind == "ComputeLease":
                self.leases[str((obj.get("spec") or {}).get("siteRef"))].append(obj)
            elif kind == "Node":
                self.nodes.append(obj)
                site = (_meta(obj).get("labels") or {}).get(SITE_LABEL)
                if site is not None:
                    self.nodes_by_site_label[site].append(obj)
            elif kind == "Pod":
                labels = _meta(obj).get("labels") or {}
                node = pod_node(obj)
                if node:
                    self.pods_by_node[node].append(obj)
                if LEASE_LABEL in labels and SITE_LABEL in labels:
                    self.lease_pods_by_site[labels[SITE_LABEL]].append(obj)

    def nodes_for(self, selector: LabelSelector) -> list[Obj]:
        site = (selector.match_labels or {}).get(SITE_LABEL)
        candidates = self.nodes_by_site_label.get(site, []) if site is not None else self.nodes
        return [n for n in candidates if selector.matches(_meta(n).get("labels"))]


def build_fleet(objects: Iterable[Obj], cache: ParseCache | None = None) -> Fleet:
    """Snapshots of every Site among ``objects``; budgets and leases for unknown sites are
    reported as problems."""
    index = _Index(objects)
    cache = cache or ParseCache()
    sites: dict[str, SiteSnapshot] = {}
    for site_obj in index.sites:
        name = str(_meta(site_obj).get("name"))
        sites[name] = build_site(site_obj, index, cache)
    problems = []
    for site_ref, budgets in index.budgets.items():
        if site_ref not in sites:
            for b in budgets:
                problems.append(
                    Problem(
                        "PowerBudget",
                        _meta(b).get("name", "?"),
                        "SiteNotFound",
                        f"no Site {site_ref!r}",
                    )
                )
    for site_ref, leases in index.leases.items():
        if site_ref not in sites:
            for lease in leases:
                problems.append(
                    Problem(
                        "ComputeLease",
                        _meta(lease).get("name", "?"),
                        "SiteNotFound",
                        f"no Site {site_ref!r}",
                        namespace=_meta(lease).get("namespace"),
                    )
                )
    return Fleet(sites, problems)


def build_site(site_obj: Obj, index: _Index, cache: ParseCache) -> SiteSnapshot:
    name = str(_meta(site_obj).get("name"))
    problems: list[Problem] = []
    site, site_error = cache.parse(Site, site_obj)
    if site_error:
        problems.append(Problem("Site", name, "InvalidSpec", site_error))

    budget, budget_error = _budget_for(name, index.budgets.get(name, []), cache, problems)
    snapshot = SiteSnapshot(
        name=name,
        site=site,
        site_error=site_error,
        generation=_meta(site_obj).get("generation"),
        budget=budget,
        budget_error=budget_error,
        controllers=[],
        gpu_nodes={},
        leases=[],
        orphan_pods=[],
        problems=problems,
    )
    if site is None:
        return snapshot

    spec = site.spec
    site_nodes = index.nodes_for(site.node_selector())
    resource = spec.gpu.resource_name
    for node in site_nodes:
        labels = _meta(node).get("labels") or {}
        if spec.asic.node_selector.matches(labels):
            snapshot.controllers.append(_controller(node, site, index, problems))
        elif spec.gpu.node_selector.matches(labels):
            gpu_node = _gpu_node(node, site, index, problems)
            snapshot.gpu_nodes[gpu_node.name] = gpu_node
    snapshot.controllers.sort(key=lambda c: c.name)
    snapshot.max_per_gpu_kw = max(
        [spec.gpu.power_per_gpu_kw, *(n.per_gpu_kw for n in snapshot.gpu_nodes.values())]
    )

    leases = [_lease(obj, cache) for obj in index.leases.get(name, [])]
    by_key = {lease.key: lease for lease in leases}
    for pod in index.lease_pods_by_site.get(name, []):
        meta = _meta(pod)
        lease_name = meta["labels"][LEASE_LABEL]
        lp = LeasePod(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            lease=lease_name,
            node=pod_node(pod),
            gpus=pod_gpus(pod, resource),
            terminating=meta.get("deletionTimestamp") is not None,
            terminal=pod_terminal(pod),
            index=_pod_index(str(meta.get("name")), lease_name),
        )
        owner = by_key.get((lp.namespace, lease_name))
        if owner is not None:
            owner.pods.append(lp)
        else:
            snapshot.orphan_pods.append(lp)
    for lease in leases:
        lease.pods.sort(key=lambda p: (p.index if p.index is not None else 1 << 30, p.name))
    leases.sort(key=lambda lease: lease_order(lease))
    snapshot.leases = leases
    return snapshot


def lease_order(lease: Lease) -> tuple[int, datetime, str, str]:
    """Admission order: priority (higher first), then age (older first), then name."""
    priority = lease.spec.priority if lease.spec else 0
    return (-priority, lease.created, lease.namespace, lease.name)


def _pod_index(pod_name: str, lease_name: str) -> int | None:
    suffix = pod_name[len(lease_name) + 1 :] if pod_name.startswith(lease_name + "-") else ""
    return int(suffix) if suffix.isdigit() else None


def _budget_for(
    site: str, budgets: list[Obj], cache: ParseCache, problems: list[Problem]
) -> tuple[PowerBudget | None, str | None]:
    if not budgets:
        msg = f"no PowerBudget has siteRef {site!r}: without an envelope nothing is increased"
        problems.append(Problem("Site", site, "NoPowerBudget", msg))
        return None, msg
    if len(budgets) > 1:
        names = sorted(str(_meta(b).get("name")) for b in budgets)
        msg = f"several PowerBudgets have siteRef {site!r} ({', '.join(names)}): keep one"
        for b in budgets:
            problems.append(
                Problem("PowerBudget", str(_meta(b).get("name")), "ConflictingBudgets", msg)
            )
        return None, msg
    budget, error = cache.parse(PowerBudget, budgets[0])
    if error:
        problems.append(
            Problem("PowerBudget", str(_meta(budgets[0]).get("name")), "InvalidSpec", error)
        )
    return budget, error


def _controller(node: Obj, site: Site, index: _Index, problems: list[Problem]) -> Controller:
    meta = _meta(node)
    name = str(meta.get("name"))
    annotations = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    asic = site.spec.asic
    power = _float_annotation(node, POWER_KW_ANNOTATION, asic.power_kw, problems)
    hashrate = _float_annotation(node, HASHRATE_THS_ANNOTATION, asic.hashrate_ths, problems)
    selector = asic.mining_pod_selector
    mining_pods = sum(
        1
        for pod in index.pods_by_node.get(name, [])
        if not pod_terminal(pod) and selector.matches(_meta(pod).get("labels"))
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
        name=name,
        power_kw=power,
        hashrate_ths=hashrate,
        state=state,
        mining_pods=mining_pods,
        marked=marked,
        marks_complete=complete,
        curtailed_at=_time(annotations.get(CURTAILED_AT_ANNOTATION)),
        resumed_at=_time(annotations.get(RESUMED_AT_ANNOTATION)),
    )


def _gpu_node(node: Obj, site: Site, index: _Index, problems: list[Problem]) -> GpuNode:
    meta = _meta(node)
    name = str(meta.get("name"))
    gpu = site.spec.gpu
    status = node.get("status") or {}
    raw = (status.get("allocatable") or {}).get(gpu.resource_name)
    if raw is None:
        raw = (status.get("capacity") or {}).get(gpu.resource_name, 0)
    try:
        gpus = parse_count(raw)
    except ValueError:
        problems.append(Problem("Node", name, "InvalidCapacity", f"{gpu.resource_name}={raw!r}"))
        gpus = 0
    used = 0
    foreign = 0
    for pod in index.pods_by_node.get(name, []):
        if pod_terminal(pod):
            continue
        n = pod_gpus(pod, gpu.resource_name)
        used += n
        if LEASE_LABEL not in (_meta(pod).get("labels") or {}):
            foreign += n
    spec = node.get("spec") or {}
    ready = node_ready(node)
    taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return GpuNode(
        name=name,
        gpus=gpus,
        used_gpus=used,
        per_gpu_kw=_float_annotation(
            node, POWER_PER_GPU_KW_ANNOTATION, gpu.power_per_gpu_kw, problems
        ),
        idle_kw=_float_annotation(node, IDLE_POWER_KW_ANNOTATION, gpu.idle_power_kw, problems),
        ready=ready,
        schedulable=ready and not spec.get("unschedulable"),
        labels=dict(meta.get("labels") or {}),
        taints=taints,
        foreign_gpus=foreign,
    )


def _lease(obj: Obj, cache: ParseCache) -> Lease:
    meta = _meta(obj)
    model, error = cache.parse(ComputeLease, obj)
    status = obj.get("status") or {}
    return Lease(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        uid=meta.get("uid"),
        created=_time(meta.get("creationTimestamp")) or EPOCH,
        generation=meta.get("generation"),
        spec=model.spec if model is not None else None,
        error=error,
        previous_phase=status.get("phase") if isinstance(status, Mapping) else None,
        deleting=meta.get("deletionTimestamp") is not None,
        constrained=_constrained(obj),
        rejected=_rejected(status, meta.get("generation")),
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


def _constrained(lease: Obj) -> bool:
    pod_spec = (((lease.get("spec") or {}).get("template") or {}).get("spec")) or {}
    return bool(
        pod_spec.get("nodeSelector") or pod_spec.get("tolerations") or pod_spec.get("affinity")
    )
