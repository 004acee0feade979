"""A site's objects as the planner sees them, built from plain Kubernetes objects.

The input is what the API returns (or `kubectl get -o yaml` prints): dicts of Sites,
PowerBudgets, ComputeLeases, Nodes and Pods, and what the site's pollers read
(``SiteInputs``: the meter, the GPU power query, the price feeds) at ``now``. The snapshot
comes out finished and frozen: nothing changes it after it is built. The operator builds
snapshots from its view with the same code, so `dualcap plan` on a file decides exactly as
the operator would on the cluster.

Everything uncertain is classified conservatively: a controller counts as mining until its
curtailment is confirmed, a node that is NotReady or unknown counts at full power, and a
lease pod counts from its creation until it is gone.

Every entity carries a reference to the object it was built from (``ref``: uid,
resourceVersion, name; for Nodes also what the curtailment patches read), so the executor
and the status writer need not look the objects up again. A build is incremental: the
entities derived from an object (and the pods on its node) are kept in the ``ParseCache``
by uid and resourceVersion and reused while neither changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

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
from dualcap.api.conditions import HoldReason
from dualcap.api.lease import ComputeLease, LeasePhase
from dualcap.api.marks import RESUMED_AT_ANNOTATION, is_marked, marks_complete
from dualcap.api.names import PLANNED_NODE_ANNOTATION
from dualcap.api.site import ControllerState, Site
from dualcap.planning import accounting
from dualcap.planning.accounting import mining_revenue_usd_per_hour
from dualcap.planning.entities import (
    DEFAULT_GPU_RESOURCE,
    DISPATCHABLE,
    NO_INPUTS,
    BlockReport,
    BudgetIssue,
    Controller,
    Fleet,
    GpuNode,
    GpuPowerState,
    Lease,
    LeasePod,
    NodeRef,
    Problem,
    Ref,
    SiteInputs,
    SiteSnapshot,
)
from dualcap.planning.measured import measured_draw, measured_state, report_from
from dualcap.planning.quantity import parse_count

HOSTNAME_LABEL = "kubernetes.io/hostname"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PHASES = frozenset(p.value for p in LeasePhase)
Obj = Mapping[str, Any]
T = TypeVar("T")


class ParseCache:
    """Parsed models and derived entities keyed by uid and resourceVersion: a reconcile
    re-parses and re-derives only what changed since the last one."""

    def __init__(self, max_entries: int = 200_000):
        self._entries: dict[tuple[Any, ...], Any] = {}
        self._max = max_entries
        # Site uid -> (its resourceVersion, the entities built for that version, by uid).
        self._sites: dict[str, tuple[str, dict[str, Any]]] = {}

    def forget(self, site_uid: str) -> None:
        """Drop the entities kept for a Site (it is gone): nothing outlives its Site."""
        self._sites.pop(site_uid, None)

    def site_entities(self, site_obj: Obj) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The entities built for this version of the Site at the last build (to reuse),
        and the table this build fills (what the next one may reuse); None when the Site
        has no uid and resourceVersion (nothing is reused)."""
        version = _version(site_obj)
        if version is None:
            return None
        uid, rv = version
        last = self._sites.get(uid)
        table: dict[str, Any] = {}
        self._sites[uid] = (rv, table)
        return (last[1] if last is not None and last[0] == rv else {}), table

    def parse(self, model: type[pydantic.BaseModel], obj: Obj) -> Any:
        meta = obj.get("metadata") or {}
        uid, rv = meta.get("uid"), meta.get("resourceVersion")
        if not uid or not rv:
            return _parse(model, obj)
        return self.memo((model.__name__, uid, rv), lambda: _parse(model, obj))

    def memo(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        """The entity under ``key``, built once."""
        entries = self._entries
        hit: T | None = entries.get(key)
        if hit is None:
            if len(entries) >= self._max:
                entries.clear()
            hit = entries[key] = build()
        return hit


def _parse(model: type[pydantic.BaseModel], obj: Obj) -> tuple[Any, str | None]:
    try:
        return model.model_validate(dict(obj)), None
    except pydantic.ValidationError as err:
        return None, _explain(err)


def _explain(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {err.error_count() - 3} more)" if err.error_count() > 3 else ""
    return "; ".join(parts) + more


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _version(obj: Obj) -> tuple[str, str] | None:
    """(uid, resourceVersion), or None when either is missing (then nothing is reused)."""
    meta = obj.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    return (uid, rv) if uid and rv else None


def _ref(kind: str, obj: Obj) -> Ref:
    meta = _meta(obj)
    return Ref(
        kind,
        str(meta.get("name")),
        meta.get("namespace"),
        meta.get("uid"),
        meta.get("resourceVersion"),
    )


def _node_ref(node: Obj) -> NodeRef:
    meta = _meta(node)
    spec = node.get("spec") or {}
    return NodeRef(
        "Node",
        str(meta.get("name")),
        None,
        meta.get("uid"),
        meta.get("resourceVersion"),
        unschedulable=bool(spec.get("unschedulable")),
        taints=spec.get("taints") or (),
        annotations=meta.get("annotations") or {},
    )


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
        # (uid, resourceVersion) of the pods on each node, None for one lacking either.
        self.pod_versions: dict[str, list[tuple[str, str] | None]] = defaultdict(list)
        self.reports: dict[str, BlockReport] = {}  # by node: the MinerBlocks among objects
        pods_by_node, lease_pods = self.pods_by_node, self.lease_pods_by_site
        pod_versions = self.pod_versions
        for obj in objects:
            kind = obj.get("kind")
            if kind == "Pod":
                node = (obj.get("spec") or {}).get("nodeName") or pod_node(obj)
                meta = obj.get("metadata") or {}
                if node:
                    pods_by_node[node].append(obj)
                    uid, rv = meta.get("uid"), meta.get("resourceVersion")
                    pod_versions[node].append((uid, rv) if uid and rv else None)
                labels = meta.get("labels")
                if labels and LEASE_LABEL in labels and SITE_LABEL in labels:
                    lease_pods[labels[SITE_LABEL]].append(obj)
            elif kind == "Node":
                self.nodes.append(obj)
                site = ((obj.get("metadata") or {}).get("labels") or {}).get(SITE_LABEL)
                if site is not None:
                    self.nodes_by_site_label[site].append(obj)
            elif kind == "ComputeLease":
                self.leases[str((obj.get("spec") or {}).get("siteRef"))].append(obj)
            elif kind == "Site":
                self.sites.append(obj)
            elif kind == "PowerBudget":
                self.budgets[str((obj.get("spec") or {}).get("siteRef"))].append(obj)
            elif kind == "MinerBlock":
                report = report_from(obj)
                if report is not None:
                    self.reports[report.node] = report

    def candidates(self, selector: LabelSelector) -> list[Obj]:
        """The nodes that may match ``selector``: those with its site label, when it asks
        for one; else every node."""
        site = (selector.match_labels or {}).get(SITE_LABEL)
        return self.nodes_by_site_label.get(site, []) if site is not None else self.nodes


def build_fleet(
    objects: Iterable[Obj],
    now: datetime,
    cache: ParseCache | None = None,
    reports: Mapping[str, BlockReport] | None = None,
    inputs: Mapping[str, SiteInputs] | None = None,
) -> Fleet:
    """Finished snapshots of every Site among ``objects`` at ``now``; budgets and leases
    for unknown sites are reported as problems.

    ``reports``: the MinerBlock reports by node (the operator keeps their recent history);
    by default those of the MinerBlocks among ``objects``. ``inputs``: by site, what its
    meter, its GPU power query and its price feeds last read. Each counts while it is
    fresh at ``now``."""
    index = _Index(objects)
    cache = cache or ParseCache()
    measured = index.reports if reports is None else reports
    sites: dict[str, SiteSnapshot] = {}
    for site_obj in index.sites:
        name = str(_meta(site_obj).get("name"))
        site_inputs = (inputs or {}).get(name, NO_INPUTS)
        sites[name] = build_site(site_obj, index, cache, now, measured, site_inputs)
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


def build_site(
    site_obj: Obj,
    index: _Index,
    cache: ParseCache,
    now: datetime,
    reports: Mapping[str, BlockReport],
    inputs: SiteInputs = NO_INPUTS,
) -> SiteSnapshot:
    """One site's finished snapshot: its entities (reused from ``cache`` while their
    objects are unchanged), then what was measured of them at ``now``."""
    name = str(_meta(site_obj).get("name"))
    problems: list[Problem] = []
    site, site_error = cache.parse(Site, site_obj)
    if site_error:
        problems.append(Problem("Site", name, "InvalidSpec", site_error))

    budgets = index.budgets.get(name, [])
    valid, issue, price_budget = _budgets_for(name, budgets, cache, problems)
    identity = {
        "name": name,
        "site": site,
        "site_error": site_error,
        "budgets": valid,
        "budget_issue": issue,
        "price_budget": price_budget,
        "problems": problems,
        "site_ref": _ref("Site", site_obj),
        "budget_refs": {str(_meta(b).get("name")): _ref("PowerBudget", b) for b in budgets},
    }
    if site is None:
        return SiteSnapshot(controllers=[], gpu_nodes={}, leases=[], orphan_pods=[], **identity)

    spec = site.spec
    asic, gpu = spec.asic, spec.gpu
    # Entities derived with the site's spec are valid for this version of the Site only:
    # a node's entry is (its resourceVersion, its role, the versions of the pods on it,
    # the entity, the problems found building it).
    tables = cache.site_entities(site_obj)
    last, table = tables if tables is not None else ({}, None)
    pods_by_node, pod_versions = index.pods_by_node, index.pod_versions
    controllers: list[Controller] = []
    gpu_nodes: dict[str, GpuNode] = {}
    selector = site.node_selector()
    for node in index.candidates(selector):
        meta = node.get("metadata") or {}
        uid: str = meta.get("uid") or ""
        rv = meta.get("resourceVersion")
        node_name = meta.get("name") or ""
        on_node = pods_by_node.get(node_name, [])
        entry = last.get(uid) if uid and rv else None
        if entry is not None and entry[0] == rv:
            role = entry[1]
            if role is None:  # not the site's, or neither a controller nor a GPU node
                if table is not None:
                    table[uid] = entry
                continue
            if entry[2] == tuple(pod_versions.get(node_name, ())):
                if table is not None:
                    table[uid] = entry
                problems.extend(entry[4])
                if role == _ASIC:
                    controllers.append(entry[3])
                else:
                    gpu_nodes[entry[3].name] = entry[3]
                continue
        labels = meta.get("labels") or {}
        found: list[Problem] = []
        entity: Controller | GpuNode | None = None
        role = None
        if selector.matches(labels):
            if asic is not None and asic.node_selector.matches(labels):
                controller = _controller(node, site, on_node, found)
                role, entity = _ASIC, controller
                controllers.append(controller)
            elif gpu is not None and gpu.node_selector.matches(labels):
                gpu_node = _gpu_node(node, site, on_node, found)
                role, entity = _GPU, gpu_node
                gpu_nodes[gpu_node.name] = gpu_node
        problems.extend(found)
        if table is not None and uid and rv:
            pods = tuple(pod_versions.get(node_name, ())) if role is not None else ()
            if None not in pods:
                table[uid] = (rv, role, pods, entity, found or ())
    controllers.sort(key=_by_name)
    per_gpu = [n.per_gpu_kw for n in gpu_nodes.values()]
    max_per_gpu_kw = max([gpu.power_per_gpu_kw if gpu else 0.0, *per_gpu])

    resource = gpu.resource_name if gpu else DEFAULT_GPU_RESOURCE
    pods_by_lease: dict[tuple[str, str], list[LeasePod]] = defaultdict(list)
    for pod in index.lease_pods_by_site.get(name, []):
        lp = _reuse_lease_pod(pod, resource, last, table)
        pods_by_lease[(lp.namespace, lp.lease)].append(lp)
    leases = []
    for obj in index.leases.get(name, []):
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        leases.append(_reuse_lease(obj, tuple(pods_by_lease.pop(key, ())), cache, last, table))
    orphan_pods = [p for lease_pods in pods_by_lease.values() for p in lease_pods]
    leases.sort(key=_by_order)

    # What was measured (cheap, and depends on ``now``: never cached).
    stale_at: list[datetime] = []
    controllers, unreported = _measured_controllers(site, controllers, reports, now, stale_at)
    live_hashprice = inputs.prices.hashprice if inputs.prices is not None else None
    if live_hashprice is not None and asic is not None:
        controllers = _priced(controllers, asic.hashprice_usd_per_ph_day, live_hashprice)
    lease_pods = [p for lease in leases for p in lease.pods] + orphan_pods
    gpu_nodes, gpu_unreported = _measured_gpu_nodes(
        gpu_nodes, lease_pods, inputs.gpu_power, now, stale_at
    )
    if inputs.prices is not None and inputs.prices.stale_at is not None:
        stale_at.append(inputs.prices.stale_at)  # the static price counts from then
    return SiteSnapshot(
        controllers=controllers,
        gpu_nodes=gpu_nodes,
        leases=leases,
        orphan_pods=orphan_pods,
        unreported=unreported,
        meter=inputs.meter,
        gpu_power=inputs.gpu_power,
        gpu_unreported=gpu_unreported,
        prices=inputs.prices,
        next_stale_at=min(stale_at, default=None),
        max_per_gpu_kw=max_per_gpu_kw,
        **identity,
    )


def _measured_controllers(
    site: Site,
    controllers: list[Controller],
    reports: Mapping[str, BlockReport],
    now: datetime,
    stale_at: list[datetime],
) -> tuple[list[Controller], list[str]]:
    """With curtailment MinerAgent: each controller as its fresh MinerBlock report says
    (the cached entities stay the modelled ones), and those with no fresh report. The time
    each fresh report goes stale is added to ``stale_at``."""
    asic = site.spec.asic
    if asic is None or asic.curtailment != "MinerAgent":
        return controllers, []
    stale_after = timedelta(seconds=asic.stale_after_seconds)
    pue = site.spec.facility.pue
    rate = mining_revenue_usd_per_hour(1.0, asic.hashprice_usd_per_ph_day)
    out: list[Controller] = []
    unreported: list[str] = []
    for c in controllers:
        report = reports.get(c.name)
        fresh = report is not None and report.fresh(now, stale_after)
        if report is None or not fresh:
            unreported.append(c.name)
        if c.state not in DISPATCHABLE:
            out.append(c)  # held or NotReady: counted as the model says
            continue
        state = measured_state(c.state, c.marks_complete, c.curtailed_at, report if fresh else None)
        if report is None or not fresh:
            out.append(c if state is c.state else replace(c, state=state))
            continue
        stale_at.append(report.observed_at + stale_after)
        mining_kw, ths, asleep_kw, curtailing_kw = measured_draw(c.power_kw, c.hashrate_ths, report)
        out.append(
            replace(
                c,
                state=state,
                power_kw=mining_kw,
                hashrate_ths=ths,
                asleep_kw=asleep_kw,
                curtailing_kw=curtailing_kw,
                facility_kw=pue * mining_kw,
                revenue_usd_per_hour=ths * rate,
                report=report,
                nameplate_it_kw=c.power_kw,
            )
        )
    return out, unreported


def _priced(
    controllers: list[Controller], static_hashprice: float, live_hashprice: float
) -> list[Controller]:
    """Every controller's revenue at the live hashprice instead of the Site's static one."""
    if static_hashprice > 0:
        scale = live_hashprice / static_hashprice
        return [
            replace(c, revenue_usd_per_hour=c.revenue_usd_per_hour * scale) for c in controllers
        ]
    # a static hashprice of 0: the revenue from each controller's hashrate
    return [
        replace(c, revenue_usd_per_hour=mining_revenue_usd_per_hour(c.hashrate_ths, live_hashprice))
        for c in controllers
    ]


def _measured_gpu_nodes(
    gpu_nodes: dict[str, GpuNode],
    lease_pods: list[LeasePod],
    state: GpuPowerState | None,
    now: datetime,
    stale_at: list[datetime],
) -> tuple[dict[str, GpuNode], list[str]]:
    """With spec.gpu.powerQuery: each GPU node with a fresh reading counts at what it
    measures, its lease pods still at their nameplate (``GpuNode.measured_baseline_kw``);
    the nodes with none are returned apart and count as the model says."""
    if state is None:
        return gpu_nodes, []
    stale_after = timedelta(seconds=state.stale_after_seconds)
    lease_kw = accounting.lease_pods_kw_by_node(lease_pods, gpu_nodes)
    out: dict[str, GpuNode] = {}
    unreported: list[str] = []
    for name, node in gpu_nodes.items():
        reading = state.readings.get(name)
        if reading is None or now - reading[1] > stale_after:
            unreported.append(name)
            out[name] = node
            continue
        kw, at = reading
        stale_at.append(at + stale_after)
        baseline = max(0.0, kw - lease_kw.get(name, 0.0))
        out[name] = replace(node, measured_baseline_kw=baseline)
    return out, unreported


_ASIC, _GPU = "asic", "gpu"
_by_name = attrgetter("name")
_by_order = attrgetter("order")


def _reuse_lease_pod(
    pod: Obj, resource: str, last: dict[str, Any], table: dict[str, Any] | None
) -> LeasePod:
    """The pod's entity, reused while the pod (and the Site) are the versions it was
    built from."""
    meta = pod.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not rv:
        return _lease_pod(pod, resource)
    entry = last.get(uid)
    if entry is None or entry[0] != rv:
        entry = (rv, _lease_pod(pod, resource))
    if table is not None:
        table[uid] = entry
    lease_pod: LeasePod = entry[1]
    return lease_pod


def _reuse_lease(
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
        return _lease(obj, pods, cache)
    entry = last.get(uid)
    if entry is None or entry[0] != rv or entry[1] != versions:
        entry = (rv, versions, _lease(obj, pods, cache))
    if table is not None:
        table[uid] = entry
    lease: Lease = entry[2]
    return lease


def _pod_index(pod_name: str, lease_name: str) -> int | None:
    suffix = pod_name[len(lease_name) + 1 :] if pod_name.startswith(lease_name + "-") else ""
    return int(suffix) if suffix.isdigit() else None


def _budgets_for(
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
    for obj in sorted(budgets, key=lambda b: str(_meta(b).get("name"))):
        name = str(_meta(obj).get("name"))
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


def _controller(node: Obj, site: Site, pods: list[Obj], problems: list[Problem]) -> Controller:
    asic = site.spec.asic
    assert asic is not None
    meta = _meta(node)
    annotations = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    power = _float_annotation(node, POWER_KW_ANNOTATION, asic.power_kw, problems)
    hashrate = _float_annotation(node, HASHRATE_THS_ANNOTATION, asic.hashrate_ths, problems)
    selector = asic.mining_pod_selector  # None with MinerAgent: its reports confirm instead
    mining_pods = (
        sum(
            1
            for pod in pods
            if not pod_terminal(pod) and selector.matches(_meta(pod).get("labels"))
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
        curtailed_at=_time(annotations.get(CURTAILED_AT_ANNOTATION)),
        resumed_at=_time(annotations.get(RESUMED_AT_ANNOTATION)),
        ref=_node_ref(node),
        facility_kw=site.spec.facility.pue * power,
        revenue_usd_per_hour=hashrate
        * mining_revenue_usd_per_hour(1.0, asic.hashprice_usd_per_ph_day),
    )


def _gpu_node(node: Obj, site: Site, pods: list[Obj], problems: list[Problem]) -> GpuNode:
    gpu = site.spec.gpu
    assert gpu is not None
    meta = _meta(node)
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
        if not pod_terminal(pod) and LEASE_LABEL not in (_meta(pod).get("labels") or {})
    )
    spec = node.get("spec") or {}
    ready = node_ready(node)
    taints = tuple(
        t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
    )
    return GpuNode(
        name=name,
        gpus=gpus,
        per_gpu_kw=_float_annotation(
            node, POWER_PER_GPU_KW_ANNOTATION, gpu.power_per_gpu_kw, problems
        ),
        idle_kw=_float_annotation(node, IDLE_POWER_KW_ANNOTATION, gpu.idle_power_kw, problems),
        ready=ready,
        schedulable=ready and not spec.get("unschedulable"),
        labels=meta.get("labels") or {},
        taints=taints,
        foreign_gpus=foreign,
        ref=_node_ref(node),
    )


def _lease_pod(pod: Obj, resource: str) -> LeasePod:
    meta = _meta(pod)
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
        ref=_ref("Pod", pod),
    )


def _lease(obj: Obj, pods: tuple[LeasePod, ...], cache: ParseCache) -> Lease:
    meta = _meta(obj)
    model, error = cache.parse(ComputeLease, obj)
    status = obj.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return Lease(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        created=_time(meta.get("creationTimestamp")) or EPOCH,
        generation=meta.get("generation"),
        spec=model.spec if model is not None else None,
        error=error,
        pods=tuple(
            sorted(pods, key=lambda p: (p.index if p.index is not None else 1 << 30, p.name))
        ),
        previous_phase=LeasePhase(phase) if phase in _PHASES else None,
        deleting=meta.get("deletionTimestamp") is not None,
        rejected=_rejected(status, meta.get("generation")),
        ref=_ref("ComputeLease", obj),
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
