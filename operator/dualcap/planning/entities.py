"""What the planner sees of a site: its controllers, GPU nodes, leases and their pods.

Built from the objects by ``planning.snapshot``; every entity carries a reference to its
source object (``ref``). Entities are values: a build reuses those of unchanged objects, so
nothing changes one once built (they are not frozen only because frozen dataclasses are
slow to build, and a cold start builds tens of thousands).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dualcap.api.budget import PowerBudget
from dualcap.api.common import parse_rfc3339
from dualcap.api.conditions import HoldReason
from dualcap.api.lease import ComputeLeaseSpec, LeasePhase
from dualcap.api.site import AsicSpec, ControllerState, GpuSpec, Site

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DISPATCHABLE = (ControllerState.MINING, ControllerState.CURTAILING, ControllerState.CURTAILED)


@dataclass(frozen=True, slots=True)
class BlockReport:
    """One MinerBlock report, as the planner counts it."""

    node: str
    observed_at: datetime
    miners: int
    mining: int
    sleeping: int
    unreachable: int
    power_kw: float  # measured sum of the reachable miners (the recent peak, from History)
    hashrate_ths: float  # measured sum
    # Hashrate of the whole block while it mines, from its latest report with miners
    # mining (scaled to every miner): the economics of a block asleep now.
    mining_hashrate_ths: float | None = None

    def fresh(self, now: datetime, stale_after: timedelta) -> bool:
        return now - self.observed_at <= stale_after

    @property
    def asleep(self) -> bool:
        """Every miner measured asleep: none mining, none unreachable."""
        return self.mining == 0 and self.unreachable == 0 and self.sleeping == self.miners


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Whether one of the tolerations tolerates the taint (Kubernetes' rules)."""
    for t in tolerations:
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key")
        if not key:
            if t.get("operator") == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Placement:
    """Which GPU nodes a lease's pods may use, by its template's nodeSelector and
    tolerations (the common forms; the scheduler has the last word)."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    # The template asks for particular nodes (nodeSelector, tolerations or affinity): its
    # pods may not go on just any open node, so counting free GPUs says nothing about it.
    constrained: bool

    @classmethod
    def of(cls, spec: ComputeLeaseSpec) -> Placement:
        pod_spec = spec.template.spec
        extra = pod_spec.model_extra or {}
        if not pod_spec.tolerations and not extra.get("nodeSelector") and not extra.get("affinity"):
            return ANYWHERE  # the common lease: one shared value
        selector = extra.get("nodeSelector")
        node_selector = dict(selector) if isinstance(selector, dict) else {}
        tolerations = tuple(
            t.model_dump(by_alias=True, exclude_none=True) for t in pod_spec.tolerations or []
        )
        constrained = bool(node_selector or tolerations or extra.get("affinity"))
        return cls(node_selector, tolerations, constrained)

    def allows(self, node: GpuNode) -> bool:
        labels = node.labels
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return all(tolerates(self.tolerations, taint) for taint in node.taints)


ANYWHERE = Placement({}, (), False)  # no nodeSelector, tolerations or affinity


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
class Ref:
    """The object an entity was built from."""

    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace or "", name): how the operator's view keys objects."""
        return (self.kind, self.namespace or "", self.name)

    @property
    def key_version(self) -> tuple[str, str] | None:
        """(uid, resourceVersion), None when either is unknown."""
        uid, rv = self.uid, self.resource_version
        return (uid, rv) if uid and rv else None


@dataclass(slots=True)
class NodeRef(Ref):
    """A Node, with what the curtailment patches read of it (``api.marks``)."""

    unschedulable: bool = False
    taints: Sequence[Mapping[str, Any]] = ()  # every taint, in order
    annotations: Mapping[str, str] = field(default_factory=dict)

    def as_object(self) -> dict[str, Any]:
        """The Node as far as ``curtail_patch``, ``resume_patch`` and ``is_marked`` read it."""
        meta: dict[str, Any] = {"name": self.name, "annotations": dict(self.annotations)}
        if self.uid:
            meta["uid"] = self.uid
        if self.resource_version:
            meta["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"taints": [dict(t) for t in self.taints]}
        if self.unschedulable:
            spec["unschedulable"] = True
        return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec}


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
    ref: NodeRef | None = None
    # At the site's PUE and hashprice (an entity is built for one version of its Site):
    facility_kw: float = 0.0  # facility kW while mining
    revenue_usd_per_hour: float = 0.0  # what its mining earns
    asleep_kw: float = 0.0  # IT kW once confirmed curtailed (measured asleep; 0 by eviction)
    # With curtailment MinerAgent: the block's MinerBlock report, when one is fresh (its
    # power_kw, hashrate_ths and asleep_kw above are then the measured ones).
    report: BlockReport | None = None
    nameplate_it_kw: float | None = None  # what the model says it draws mining (if measured)
    curtailing_kw: float | None = None  # measured IT kW while its curtailment is under way
    # Derived once (the planner reads them many times):
    committed_it_kw: float = field(init=False)  # conservative IT draw now
    dispatchable: bool = field(init=False)  # dualcap may curtail or resume it

    def __post_init__(self) -> None:
        state = self.state
        if state is ControllerState.CURTAILED:
            committed = self.asleep_kw
        elif state is ControllerState.CURTAILING and self.curtailing_kw is not None:
            committed = self.curtailing_kw
        elif state is ControllerState.HELD:
            committed = self.power_kw if self.mining_pods else 0.0
        else:
            committed = self.power_kw
        self.committed_it_kw = committed
        self.dispatchable = state in DISPATCHABLE


@dataclass(slots=True)
class GpuNode:
    """A GPU node: its GPUs, what others use of them, and what it draws."""

    name: str
    gpus: int  # allocatable
    per_gpu_kw: float
    idle_kw: float
    ready: bool
    schedulable: bool  # ready, not cordoned
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]  # NoSchedule and NoExecute taints
    foreign_gpus: int = 0  # GPUs used by pods that are not dualcap lease pods
    ref: NodeRef | None = None
    # With spec.gpu.powerQuery and a fresh reading: what the node draws besides its lease
    # pods (measured, less its lease pods at their nameplate, never below 0); replaces
    # idle power and the foreign GPUs' nameplate.
    measured_baseline_kw: float | None = None


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
    ref: Ref | None = None
    # Made by another controller (a Kueue Workload's Job): counted until gone, never
    # created or deleted by dualcap.
    external: bool = False


@dataclass(frozen=True, slots=True)
class WorkloadState:
    """A Kueue Workload as the power check sees it (a Lease with ``workload`` set)."""

    check: str  # the name of dualcap's AdmissionCheck on it
    check_state: str  # Pending, Ready, Retry or Rejected: the check's entry now
    check_message: str
    quota_reserved: bool  # Kueue has reserved quota: it asks the checks to admit it
    finished: bool
    evicted: bool = False  # Kueue evicted it (Evicted=True): its Job is being stopped
    uid: str | None = None
    resource_version: str | None = None
    # The pod sets (name, count, GPUs a pod): the podSetUpdates name each
    pod_sets: tuple[tuple[str, int, int], ...] = ()

    @property
    def ready(self) -> bool:
        return self.check_state == "Ready"


@dataclass(slots=True)
class Lease:
    namespace: str
    name: str
    created: datetime
    generation: int | None
    spec: ComputeLeaseSpec | None  # None when invalid (see error)
    error: str | None
    pods: tuple[LeasePod, ...] = ()  # by index, then name
    previous_phase: LeasePhase | None = None
    deleting: bool = False
    # Why the operator refused to build its pods from this generation's template (the
    # lease's Stalled condition, reason TemplateRejected): not admitted until edited.
    rejected: str | None = None
    ref: Ref | None = None
    # A Kueue Workload gated by dualcap's power check: the same GPU load as a lease, its
    # pods made by its Job (``external``), admitted by the check's Ready, evicted by Retry.
    workload: WorkloadState | None = None
    key: tuple[str, str] = field(init=False)
    start: datetime | None = field(init=False)  # parsed spec.start
    end: datetime | None = field(init=False)  # parsed spec.end
    # Where its pods may go (nodeSelector, tolerations, affinity); None when invalid.
    placement: Placement | None = field(init=False)
    # Its pods that exist and stay (not finished, not being deleted).
    existing: tuple[LeasePod, ...] = field(init=False)
    finished: tuple[LeasePod, ...] = field(init=False)  # its Succeeded or Failed pods
    order: tuple[int, datetime, str, str] = field(init=False)  # lease_order()

    def __post_init__(self) -> None:
        spec = self.spec
        # a Workload's key cannot be a ComputeLease's of the same name ("/" is no name's)
        self.key = (self.namespace, self.name if self.workload is None else f"workload/{self.name}")
        self.start = parse_rfc3339(spec.start) if spec and spec.start else None
        self.end = parse_rfc3339(spec.end) if spec and spec.end else None
        if spec is None:
            self.placement = None
        elif spec.template is None:  # a Workload: the check's podSetUpdates place its pods
            self.placement = ANYWHERE
        else:
            self.placement = Placement.of(spec)
        pods = self.pods
        existing = tuple(p for p in pods if not p.terminal and not p.terminating)
        if len(existing) == len(pods):
            existing = pods  # the common case: share the tuple
        self.existing = existing
        self.finished = tuple(p for p in pods if p.terminal) if existing is not pods else ()
        self.order = lease_order(self)

    @property
    def uid(self) -> str | None:
        return self.ref.uid if self.ref else None

    @property
    def external(self) -> bool:
        """Its pods are made by another controller (a Kueue Workload)."""
        return self.workload is not None

    @property
    def admitted(self) -> bool:
        """It runs by dualcap's leave: its pods exist, or its power check is Ready."""
        return bool(self.existing) or (self.workload is not None and self.workload.ready)


@dataclass(frozen=True, slots=True)
class MeterState:
    """The site meter as the operator last read it (``spec.meter``)."""

    metered_kw: float | None  # the last good reading (None: none yet)
    metered_at: datetime | None
    stale_after_seconds: float
    error_reason: str | None = None  # why the last poll failed, if it did
    error_message: str | None = None
    disagreement_kw: float = 100.0
    disagreement_seconds: float = 120.0
    # The unmodelled load last counted (from the Site's status): kept as a reserve while
    # the meter is stale, so a lost meter never lowers what is counted.
    reserve_kw: float = 0.0
    poll_seconds: float = 5.0
    # The highest modelled draw since the reading was taken (less a poll interval): a
    # reading is compared with the model as it was then, not with a model that has since
    # dropped (a curtailment the meter has not seen yet is no unmodelled load).
    modelled_then_kw: float = 0.0
    # The highest unmodelled load of the readings taken in the staleAfterSeconds up to the
    # last one (each as it was measured): the count falls only once the readings of a
    # whole staleAfterSeconds show less, so a reading taken while the model is above the
    # truth (a block counted at its nameplate while it ramps) does not erase it - nor,
    # when it is the last before the meter goes quiet, the reserve kept.
    recent_unmodelled_kw: float = 0.0
    # Since when the meter and the model have differed by more than disagreement_kw
    # (None: they agreed at the last plan), from the site's ``MeterMemory``.
    disagreeing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class GpuPowerState:
    """The GPU nodes' measured power as last read (spec.gpu.powerQuery)."""

    readings: Mapping[str, tuple[float, datetime]]  # node -> (IT kW, when)
    stale_after_seconds: float
    error_reason: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetIssue:
    """Why the site has no usable PowerBudget."""

    reason: HoldReason
    message: str


@dataclass(frozen=True, slots=True)
class LivePrices:
    """The live price feeds of a site (spec.prices) as last read."""

    energy_usd_per_mwh: float | None  # None: the budget's static price counts
    hashprice: float | None  # None: the Site's static hashprice counts
    fresh: bool  # every configured feed is fresh
    reason: str  # Fresh, or why not (Stale, NoReading, OutsideSeries)
    message: str
    # When the first feed fresh now goes stale (the plan wakes the site then, to fall
    # back to the static price at once); None when none is fresh.
    stale_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SiteInputs:
    """What a site's snapshot is built from besides its objects: everything read from
    outside the cluster, each as its poller last read it (None: the Site asks for none).
    ``meter`` is as the plan reads it (``planning.meter.prepared``)."""

    meter: MeterState | None = None
    gpu_power: GpuPowerState | None = None
    prices: LivePrices | None = None


NO_INPUTS = SiteInputs()


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    name: str
    site: Site | None
    site_error: str | None
    budgets: dict[str, PowerBudget]  # every valid PowerBudget naming the site, by name
    budget_issue: BudgetIssue | None
    controllers: list[Controller]
    gpu_nodes: dict[str, GpuNode]
    leases: list[Lease]
    orphan_pods: list[LeasePod]  # lease pods of the site whose lease is gone or elsewhere
    problems: list[Problem]
    site_ref: Ref | None = None
    budget_refs: dict[str, Ref] = field(default_factory=dict)
    price_budget: str | None = None  # the one budget the site's energy price comes from
    # With curtailment MinerAgent: the controllers whose report is missing or stale.
    unreported: list[str] = field(default_factory=list)
    meter: MeterState | None = None  # with spec.meter: the meter's last reading
    gpu_power: GpuPowerState | None = None  # with spec.gpu.powerQuery
    gpu_unreported: list[str] = field(default_factory=list)  # GPU nodes with no fresh reading
    prices: LivePrices | None = None  # with spec.prices: the feeds as last read
    next_stale_at: datetime | None = None  # when the next fresh input goes stale

    max_per_gpu_kw: float = 0.0  # the highest kW per GPU: for pods not yet on a node

    @property
    def live_energy_usd_per_mwh(self) -> float | None:
        """The live energy price while its feed is fresh (None: the static one counts)."""
        return self.prices.energy_usd_per_mwh if self.prices else None

    @property
    def live_hashprice(self) -> float | None:
        return self.prices.hashprice if self.prices else None

    @property
    def pue(self) -> float:
        return self.site.spec.facility.pue if self.site else 1.0

    @property
    def fixed_kw(self) -> float:
        return self.site.spec.facility.fixed_kw if self.site else 0.0

    @property
    def asic(self) -> AsicSpec | None:
        return self.site.spec.asic if self.site else None

    @property
    def gpu(self) -> GpuSpec | None:
        return self.site.spec.gpu if self.site else None

    @property
    def gpu_resource(self) -> str:
        """The extended resource that counts GPUs (the default on a mining-only site)."""
        gpu = self.gpu
        return gpu.resource_name if gpu else DEFAULT_GPU_RESOURCE

    @property
    def gpu_node_labels(self) -> dict[str, str]:
        """The labels that select the site's GPU nodes (lease pods require them)."""
        gpu = self.gpu
        return dict(gpu.node_selector.match_labels or {}) if gpu else {}


@dataclass(slots=True)
class Fleet:
    """Every site found in a set of objects, and what could not be tied to one."""

    sites: dict[str, SiteSnapshot]
    problems: list[Problem]


def lease_order(lease: Lease) -> tuple[int, datetime, str, str]:
    """Admission order: priority (higher first), then age (older first), then name."""
    priority = lease.spec.priority if lease.spec else 0
    return (-priority, lease.created, lease.namespace, lease.name)
