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
by uid and resourceVersion and reused while neither changed; and ``build_one`` with a
token keeps a site's entities whole while the caller's token says none of its objects
changed (the operator's informers keep one per site), so a site woken by a measurement
alone builds its snapshot without reading any of its objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

from dualcap.api.site import Site
from dualcap.planning import accounting
from dualcap.planning.accounting import mining_revenue_usd_per_hour
from dualcap.planning.derive import (
    budgets_for,
    controller_of,
    gpu_node_of,
    reuse_lease,
    reuse_lease_pod,
)
from dualcap.planning.entities import (
    DEFAULT_GPU_RESOURCE,
    DISPATCHABLE,
    NO_INPUTS,
    BlockReport,
    Controller,
    Fleet,
    GpuNode,
    GpuPowerState,
    Lease,
    LeasePod,
    Problem,
    SiteInputs,
    SiteSnapshot,
)
from dualcap.planning.fields import Obj, meta_of, ref_of
from dualcap.planning.index import ObjectIndex
from dualcap.planning.measured import measured_draw, measured_state
from dualcap.planning.parse import NodeEntry, ParseCache
from dualcap.planning.workloads import check_entry, checks_by_site, workload_lease, workload_pod


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
    index = ObjectIndex(objects)
    cache = cache or ParseCache()
    measured = index.reports if reports is None else reports
    sites: dict[str, SiteSnapshot] = {}
    for site_obj in index.sites:
        name = str(meta_of(site_obj).get("name"))
        site_inputs = (inputs or {}).get(name, NO_INPUTS)
        sites[name] = build_site(site_obj, index, cache, now, measured, site_inputs)
    problems = []
    for site_ref, budgets in index.budgets.items():
        if site_ref not in sites:
            for b in budgets:
                problems.append(
                    Problem(
                        "PowerBudget",
                        meta_of(b).get("name", "?"),
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
                        meta_of(lease).get("name", "?"),
                        "SiteNotFound",
                        f"no Site {site_ref!r}",
                        namespace=meta_of(lease).get("namespace"),
                    )
                )
    return Fleet(sites, problems)


def build_site(
    site_obj: Obj,
    index: ObjectIndex,
    cache: ParseCache,
    now: datetime,
    reports: Mapping[str, BlockReport],
    inputs: SiteInputs = NO_INPUTS,
) -> SiteSnapshot:
    """One site's finished snapshot: its entities (reused from ``cache`` while their
    objects are unchanged), then what was measured of them at ``now``."""
    return _measured(site_entities(site_obj, index, cache), now, reports, inputs)


def build_one(
    site_obj: Obj,
    objects: Iterable[Obj],
    now: datetime,
    cache: ParseCache,
    reports: Mapping[str, BlockReport],
    inputs: SiteInputs = NO_INPUTS,
    token: Hashable | None = None,
) -> SiteSnapshot:
    """The snapshot of the Site ``site_obj`` from ``objects`` (its nodes, their pods, its
    lease pods, leases, budgets, Kueue checks and Workloads), as ``build_fleet`` builds it.

    ``token``: the caller's promise that, for this version of the Site, the same token
    means the same objects (the operator's informers keep one per site, changed by every
    event that could change what the site reads). While it holds, the site's entities are
    reused whole, without reading ``objects`` at all; only what was measured is judged
    again at ``now``. None: every object is read (and reused entity by entity), and what
    was kept whole for the site is dropped (a token that missed a change is healed by the
    next build without one)."""
    if token is None:
        cache.drop_whole_site(site_obj)
        entities = None
    else:
        entities = cache.whole_site(site_obj, token)
    if entities is None:
        entities = site_entities(site_obj, ObjectIndex(objects), cache)
        if token is not None:
            cache.keep_whole_site(site_obj, token, entities)
    return _measured(entities, now, reports, inputs)


class Entities(NamedTuple):
    """What a site's objects make of it, before anything measured is applied: a pure
    function of the objects (no ``now``), so it may be kept while they are unchanged."""

    identity: dict[str, Any]  # the SiteSnapshot's fields that name and judge the site
    controllers: list[Controller]
    gpu_nodes: dict[str, GpuNode]
    leases: list[Lease]
    orphan_pods: list[LeasePod]
    max_per_gpu_kw: float


def site_entities(site_obj: Obj, index: ObjectIndex, cache: ParseCache) -> Entities:
    """The site's entities, reused from ``cache`` entity by entity while their objects
    (and, for a node, the pods on it) are unchanged."""
    name = str(meta_of(site_obj).get("name"))
    problems: list[Problem] = []
    site, site_error = cache.parse(Site, site_obj)
    if site_error:
        problems.append(Problem("Site", name, "InvalidSpec", site_error))

    budgets = index.budgets.get(name, [])
    valid, issue, price_budget = budgets_for(name, budgets, cache, problems)
    identity = {
        "name": name,
        "site": site,
        "site_error": site_error,
        "budgets": valid,
        "budget_issue": issue,
        "price_budget": price_budget,
        "problems": problems,
        "site_ref": ref_of("Site", site_obj),
        "budget_refs": {str(meta_of(b).get("name")): ref_of("PowerBudget", b) for b in budgets},
    }
    if site is None:
        return Entities(identity, [], {}, [], [], 0.0)
    spec = site.spec
    asic, gpu = spec.asic, spec.gpu
    # Entities derived with the site's spec are valid for this version of the Site only:
    # a node's entry (NodeEntry) is its resourceVersion, its role, the versions of the pods on it,
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
        if entry is not None and entry.version == rv:
            role = entry.role
            if role is None:  # not the site's, or neither a controller nor a GPU node
                if table is not None:
                    table[uid] = entry
                continue
            if entry.pods == tuple(pod_versions.get(node_name, ())):
                if table is not None:
                    table[uid] = entry
                problems.extend(entry.problems)
                if role == _ASIC:
                    controllers.append(entry.entity)
                else:
                    gpu_nodes[entry.entity.name] = entry.entity
                continue
        labels = meta.get("labels") or {}
        found: list[Problem] = []
        entity: Controller | GpuNode | None = None
        role = None
        if selector.matches(labels):
            if asic is not None and asic.node_selector.matches(labels):
                controller = controller_of(node, site, on_node, found)
                role, entity = _ASIC, controller
                controllers.append(controller)
            elif gpu is not None and gpu.node_selector.matches(labels):
                gpu_node = gpu_node_of(node, site, on_node, found)
                role, entity = _GPU, gpu_node
                gpu_nodes[gpu_node.name] = gpu_node
        problems.extend(found)
        if table is not None and uid and rv:
            pods = tuple(pod_versions.get(node_name, ())) if role is not None else ()
            if None not in pods:
                table[uid] = NodeEntry(rv, role, pods, entity, tuple(found))
    controllers.sort(key=_by_name)
    per_gpu = [n.per_gpu_kw for n in gpu_nodes.values()]
    max_per_gpu_kw = max([gpu.power_per_gpu_kw if gpu else 0.0, *per_gpu])

    resource = gpu.resource_name if gpu else DEFAULT_GPU_RESOURCE
    pods_by_lease: dict[tuple[str, str], list[LeasePod]] = defaultdict(list)
    for pod in index.lease_pods_by_site.get(name, []):
        lp = reuse_lease_pod(pod, resource, last, table)
        pods_by_lease[(lp.namespace, lp.lease)].append(lp)
    leases = []
    for obj in index.leases.get(name, []):
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        leases.append(reuse_lease(obj, tuple(pods_by_lease.pop(key, ())), cache, last, table))
    orphan_pods = [p for lease_pods in pods_by_lease.values() for p in lease_pods]
    site_checks = checks_by_site(index.checks).get(name, [])
    if site_checks or index.workload_pods_by_site.get(name):
        workload_leases, workload_orphans = _workloads(index, name, site_checks, resource)
        leases.extend(workload_leases)
        orphan_pods.extend(workload_orphans)
    leases.sort(key=_by_order)

    return Entities(identity, controllers, gpu_nodes, leases, orphan_pods, max_per_gpu_kw)


def _measured(
    entities: Entities, now: datetime, reports: Mapping[str, BlockReport], inputs: SiteInputs
) -> SiteSnapshot:
    """The finished snapshot: ``entities`` as what was measured of them says at ``now``
    (cheap, and depends on ``now``: never kept)."""
    identity, controllers, gpu_nodes = entities.identity, entities.controllers, entities.gpu_nodes
    leases, orphan_pods = entities.leases, entities.orphan_pods
    site: Site | None = identity["site"]
    if site is None:
        return SiteSnapshot(controllers=[], gpu_nodes={}, leases=[], orphan_pods=[], **identity)
    asic = site.spec.asic
    stale_at: list[datetime] = []
    controllers, unreported = _measured_controllers(site, controllers, reports, now, stale_at)
    live_hashprice = inputs.prices.hashprice if inputs.prices is not None else None
    if live_hashprice is not None and asic is not None:
        controllers = _priced(controllers, asic.hashprice_usd_per_ph_day, live_hashprice)
    gpu_nodes, gpu_unreported = _measured_gpu_nodes(
        gpu_nodes, leases, orphan_pods, inputs.gpu_power, now, stale_at
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
        max_per_gpu_kw=entities.max_per_gpu_kw,
        **identity,
    )


def _workloads(
    index: ObjectIndex, site: str, checks: list[str], resource: str
) -> tuple[list[Lease], list[LeasePod]]:
    """The site's Kueue Workloads (those listing one of its power checks) as leases, and
    the pods of Workloads that are gone or elsewhere (counted until gone, never deleted)."""
    pods: dict[tuple[str, str], list[LeasePod]] = defaultdict(list)
    for pod in index.workload_pods_by_site.get(site, []):
        wp = workload_pod(pod, resource)
        pods[(wp.namespace, wp.lease)].append(wp)
    leases = []
    for obj in index.workloads:
        entry = check_entry(obj, checks)
        if entry is None:
            continue
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        leases.append(workload_lease(obj, entry, tuple(pods.pop(key, ())), resource))
    return leases, [p for group in pods.values() for p in group]


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
    leases: list[Lease],
    orphan_pods: list[LeasePod],
    state: GpuPowerState | None,
    now: datetime,
    stale_at: list[datetime],
) -> tuple[dict[str, GpuNode], list[str]]:
    """With spec.gpu.powerQuery: each GPU node with a fresh reading counts at what it
    measures, its lease pods still at their nameplate (``GpuNode.measured_baseline_kw``);
    the nodes with none are returned apart and count as the model says."""
    if state is None:
        return gpu_nodes, []
    lease_pods = [p for lease in leases for p in lease.pods] + orphan_pods
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
