"""The operator as a service: what the kopf handlers call.

- ``Resources``: Sites, PowerBudgets and ComputeLeases as kopf's events deliver them, kept
  by name and grouped by the site they name (no kopf index: with any index, kopf holds
  every object's worker until all are indexed, quadratic on a cold start);
- the ``ClusterView``: Nodes and Pods from the operator's own informers;
- one loop per Site: gather its objects -> reconcile (snapshot -> plan -> commands ->
  status -> events) -> sleep until woken, the plan's next wake-up or a safety period;
- Site deletion: release (or retain) the controllers dualcap curtailed; per-site state is
  dropped with the Site.

Which nodes belong to a site is decided in one place, ``node_selector_of``: the view, the
resync against the API and the release all ask it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections.abc import Awaitable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dualcap.api.common import API_VERSION, GROUP, SITE_LABEL, VERSION, LabelSelector
from dualcap.api.conditions import ConditionType, Reason
from dualcap.api.crd import RESOURCES
from dualcap.api.feeds import PriceFeeds
from dualcap.api.measurement import GpuPowerQuery, MeterSpec
from dualcap.api.names import KUEUE_API_VERSION
from dualcap.api.site import node_selector_of
from dualcap.client import Client, ConnectionInfo, connection_info
from dualcap.cluster import apply, events
from dualcap.cluster.feeds import PricePoller
from dualcap.cluster.informer import ClusterView, stamp
from dualcap.cluster.kueue import KueueView, check_conditions
from dualcap.cluster.meters import GpuPowerPoller, MeterPoller
from dualcap.cluster.metrics import Metrics
from dualcap.cluster.pollers import SitePollers
from dualcap.cluster.reconcile import Reconciler
from dualcap.cluster.settings import OperatorSettings
from dualcap.cluster.status import site_not_found_status, status_path
from dualcap.login import Credentials
from dualcap.login import load as load_credentials
from dualcap.planning.entities import GpuPowerState, LivePrices, MeterState
from dualcap.planning.measured import History, report_from
from dualcap.planning.workloads import check_site
from dualcap.signals.freshness import SignalAge

log = logging.getLogger("dualcap")
Obj = dict[str, Any]
LeaseKey = tuple[str, str]  # namespace, name


class TryAgain(Exception):
    """Not possible yet (not logged in, the API refused a release): retry after ``delay``."""

    def __init__(self, message: str, delay: float = 1.0):
        super().__init__(message)
        self.delay = delay


class Stopped(Protocol):
    """A daemon's stop flag (kopf's ``DaemonStopped``)."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[Any]: ...


def _site_ref(body: Mapping[str, Any]) -> str:
    return str((body.get("spec") or {}).get("siteRef"))


@dataclass
class Resources:
    """dualcap's own objects as their events arrive; each change says which sites to wake."""

    sites: dict[str, Obj] = field(default_factory=dict)
    budgets: dict[str, Obj] = field(default_factory=dict)  # name -> PowerBudget
    leases: dict[LeaseKey, Obj] = field(default_factory=dict)
    # Each Site's node selector, parsed once per change of the Site:
    selectors: dict[str, LabelSelector | None] = field(default_factory=dict)
    _by_site_label: dict[str, set[str]] = field(default_factory=dict)  # label value -> sites
    _custom: set[str] = field(default_factory=set)  # sites selecting by other labels
    _budgets_by_site: dict[str, dict[str, Obj]] = field(default_factory=dict)
    _leases_by_site: dict[str, dict[LeaseKey, Obj]] = field(default_factory=dict)
    # The stamp of the last change of each site's Site, budgets or leases: the site's part
    # of its snapshot token (``site_version``)
    _changed: dict[str, int] = field(default_factory=dict)
    born: int = field(default_factory=stamp)

    def site_version(self, site: str) -> int:
        return self._changed.get(site, self.born)

    def _mark(self, sites: set[str]) -> set[str]:
        now = stamp()
        for site in sites:
            self._changed[site] = now
        return sites

    def site_event(self, name: str, body: Mapping[str, Any] | None) -> set[str]:
        return self._mark(self._site_event(name, body))

    def _site_event(self, name: str, body: Mapping[str, Any] | None) -> set[str]:
        old = self.selectors.pop(name, None)
        label = old.site_label() if old is not None else None
        if label is not None:
            self._by_site_label.get(label, set()).discard(name)
        self._custom.discard(name)
        if body is None:
            self.sites.pop(name, None)
            return {name}
        site = self.sites[name] = copy.deepcopy(dict(body))
        selector = self.selectors[name] = node_selector_of(site)
        label = selector.site_label() if selector is not None else None
        if label is not None:
            self._by_site_label.setdefault(label, set()).add(name)
        elif selector is not None:
            self._custom.add(name)
        return {name}

    def sites_selecting(self, labels: Mapping[str, str]) -> list[str]:
        """The sites whose selector selects a node with ``labels``."""
        candidates = self._by_site_label.get(labels.get(SITE_LABEL, ""), set()) | self._custom
        found = []
        for name in candidates:
            selector = self.selectors.get(name)
            if selector is not None and selector.matches(dict(labels)):
                found.append(name)
        return found

    def budget_event(self, name: str, body: Mapping[str, Any] | None) -> set[str]:
        return self._mark(_move(self.budgets, self._budgets_by_site, name, body))

    def lease_event(self, key: LeaseKey, body: Mapping[str, Any] | None) -> set[str]:
        return self._mark(_move(self.leases, self._leases_by_site, key, body))

    def budgets_of(self, site: str) -> list[Obj]:
        return list(self._budgets_by_site.get(site, {}).values())

    def leases_of(self, site: str) -> list[Obj]:
        return list(self._leases_by_site.get(site, {}).values())


def _move(
    by_key: dict[Any, Obj], by_site: dict[str, dict[Any, Obj]], key: Any, body: Any
) -> set[str]:
    """Stores (or, body None, drops) ``key``; the sites it left and joined are woken."""
    wake = set()
    old = by_key.pop(key, None)
    if old is not None:
        before = _site_ref(old)
        group = by_site.get(before, {})
        group.pop(key, None)
        if not group:
            by_site.pop(before, None)
        wake.add(before)
    if body is not None:
        obj = by_key[key] = copy.deepcopy(dict(body))
        site = _site_ref(obj)
        by_site.setdefault(site, {})[key] = obj
        wake.add(site)
    return wake


@dataclass
class Operator:
    """What the handlers share (kopf's memo holds one): the ``settings`` it runs on, and
    what it keeps while it runs."""

    settings: OperatorSettings = field(default_factory=OperatorSettings)
    metrics: Metrics | None = None
    # Logged in: the credentials loaded from the settings' kubeconfig (the client renews
    # them itself) and the connection kopf is given.
    credentials: Credentials | None = None
    connection: ConnectionInfo | None = None
    # With peering, no site acts before this monotonic time: operators started together
    # must first see each other, or both would act until kopf pauses the lower priority.
    act_after: float = 0.0
    resources: Resources = field(default_factory=Resources)
    history: History = field(default_factory=History)  # MinerBlock reports, by node
    gpu_nodes: dict[str, list[str]] = field(default_factory=dict)  # site -> its GPU nodes
    signal_ages: SignalAge | None = None  # dualcap_signal_age_seconds, in the metrics
    reconciles: int = 0
    client: Client | None = None
    reconciler: Reconciler | None = None
    view: ClusterView | None = None
    kueue: KueueView | None = None  # dualcap's power admission check, while Kueue is served
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)
    # site -> (its token, the objects gathered under it): kept while nothing changed
    _gathered: dict[str, tuple[Hashable, list[Obj]]] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)  # fire-and-forget writes
    loop: asyncio.AbstractEventLoop | None = None  # the operator's (wake may come from elsewhere)
    # Outside input, one poller per Site that asks for it (made again when its spec changes).
    meters: SitePollers[MeterPoller] = field(init=False)
    gpu_pollers: SitePollers[GpuPowerPoller] = field(init=False)
    price_pollers: SitePollers[PricePoller] = field(init=False)

    def __post_init__(self) -> None:
        self.meters = SitePollers(self._make_meter)
        self.gpu_pollers = SitePollers(self._make_gpu_poller)
        self.price_pollers = SitePollers(self._make_price_poller)

    # --- set-up ---------------------------------------------------------------------------

    def login(self) -> ConnectionInfo:
        """Credentials loaded again (kopf calls this at start, at expiry and after a 401)."""
        self.credentials = load_credentials(self.settings.kubeconfig, self.settings.context)
        self.connection = connection_info(self.credentials)
        return self.connection

    def ensure_client(self) -> Reconciler:
        if self.reconciler is None:
            if self.connection is None:
                raise TryAgain("not logged in yet", delay=1)
            self.client = client = Client(self.connection, credentials=self.credentials)
            settings = self.settings
            self.reconciler = Reconciler(
                client, settings.clock, settings.safety_period, settings.resync_seconds
            )
            if self.metrics is not None:
                self.reconciler.on_plan.append(self.metrics.plan_applied)
                self.reconciler.on_offer.append(self.metrics.offer_made)
                self.reconciler.on_stale.append(self.metrics.stale_found)
                self.metrics.api_errors_from(lambda: client.errors)
        return self.reconciler

    async def wait_for_resources(self, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        """Returns once the API serves every dualcap resource (kopf looks for them once,
        right after). Until then it says, every half minute, what is missing and how to
        install it: an operator started before its CRDs waits for them instead of
        crash-looping or serving nothing."""
        client = self.ensure_client().client
        want = {crd.plural for crd in RESOURCES}
        said = -math.inf
        while True:
            r = await client.request("GET", f"/apis/{GROUP}/{VERSION}")
            served = (
                {x.get("name") for x in (r.body or {}).get("resources") or []} if r.ok else set()
            )
            missing = want - served
            if not missing:
                return
            now = time.monotonic()
            if now - said >= 30:
                said = now
                why = f"HTTP {r.code}" if r.code else "the API does not answer"
                logger.warning(
                    f"waiting for the API to serve {GROUP}/{VERSION} {', '.join(sorted(missing))} "
                    f"({why}): install the CRDs (kubectl apply --server-side -f crds/, or the chart)"
                )
            await asyncio.sleep(2)

    async def ensure_view(self) -> ClusterView:
        """Starts the Node and Pod informers (once) and waits for their first listing."""
        self.ensure_client()
        if self.view is None:
            assert self.client is not None
            namespaces = list(self.settings.namespaces)
            self.view = ClusterView(self.client, self.wake_labels, self.wake, namespaces)
            self.view.start()
            self.kueue = KueueView(self.client, self.wake, self.settings.kueue_discovery_seconds)
            self.kueue.on_check.append(self._check_changed)
            self.kueue.start()
        await self.view.synced()
        return self.view

    async def close(self) -> None:
        for pollers in (self.meters, self.gpu_pollers, self.price_pollers):
            await pollers.stop()
        if self.view is not None:
            await self.view.stop()
        if self.kueue is not None:
            await self.kueue.stop()
        if self.client is not None:
            await self.client.close()

    # --- waking ---------------------------------------------------------------------------

    def wake(self, site: str | None) -> None:
        """Wakes the loop of ``site`` (every site's, None): from any thread."""
        if site is None:
            targets = list(self.wakers.values())
        else:
            targets = [self.wakers[site]] if site in self.wakers else []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for event in targets:
            if self.loop is None or running is self.loop:
                event.set()
            else:  # from another thread (tests, embedding): hand it to the operator's loop
                self.loop.call_soon_threadsafe(event.set)

    def wake_labels(self, labels: Mapping[str, str]) -> None:
        """Wakes every site whose selector selects a node with ``labels``."""
        for name in self.resources.sites_selecting(labels):
            self.wake(name)

    # --- events from kopf -------------------------------------------------------------------

    async def on_site(self, name: str, body: Mapping[str, Any] | None) -> None:
        if self.kueue is not None and (body is None or name not in self.resources.sites):
            for check in self.kueue.checks.values():  # a Site came or went: their Active
                if check_site(check) == name:
                    self._check_changed(check)
        orphans = []
        if body is None:  # what named it names nothing now: each says so
            orphans = self.resources.budgets_of(name) + self.resources.leases_of(name)
        for site in self.resources.site_event(name, body):
            self.wake(site)
        if body is None:
            self.forget(name)
        for obj in orphans:
            await self._report_unknown_site(obj)

    def on_block(self, name: str, body: Mapping[str, Any] | None) -> None:
        """A MinerBlock report: kept in its block's recent history; the site of its node
        is woken (a confirmation or a measured draw may have changed)."""
        if body is None:
            self.history.forget(name)
        else:
            report = report_from(body)
            if report is not None:
                self.history.observe(report)
        node = self.view.nodes.get(name) if self.view is not None else None
        if node is not None:
            self.wake_labels(node["metadata"].get("labels") or {})

    async def on_budget(self, name: str, body: Mapping[str, Any] | None) -> None:
        for site in self.resources.budget_event(name, body):
            self.wake(site)
        if body is not None and _site_ref(body) not in self.resources.sites:
            await self._report_unknown_site(body)

    async def on_lease(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        for site in self.resources.lease_event((namespace, name), body):
            self.wake(site)
        if body is not None and _site_ref(body) not in self.resources.sites:
            await self._report_unknown_site(body)

    # --- the site loop ----------------------------------------------------------------------

    def site_token(self, name: str, view: ClusterView) -> Hashable:
        """Changes with every event that can change what ``gather`` returns for ``name``
        (its nodes and their pods, its lease pods, its Site, budgets and leases, the Kueue
        objects): the snapshot's entities and the gathered objects are kept while it holds."""
        kueue = (self.kueue.changes, self.kueue.served) if self.kueue is not None else None
        selector = self.resources.selectors.get(name)
        return (view.site_version(name, selector), self.resources.site_version(name), kueue)

    def gather_kept(self, name: str, view: ClusterView, token: Hashable) -> list[Obj]:
        """``gather``, done again only when the site's token changed."""
        kept = self._gathered.get(name)
        if kept is not None and kept[0] == token:
            return kept[1]
        objects = self.gather(name, view)
        self._gathered[name] = (token, objects)
        return objects

    def gather(self, name: str, view: ClusterView) -> list[Obj]:
        """The objects a site's plan reads (the site itself excluded): the nodes its
        selector selects and their pods, its lease pods, its leases and budgets."""
        selector = self.resources.selectors.get(name)
        nodes = view.nodes_for(selector) if selector is not None else []
        objects: list[Obj] = list(nodes)
        seen: set[tuple[str, str]] = set()
        pod_groups = [view.pods_by_node.get(n["metadata"]["name"], {}) for n in nodes]
        pod_groups.append(view.lease_pods_by_site.get(name, {}))
        for group in pod_groups:
            for key, pod in group.items():
                if key not in seen:
                    seen.add(key)
                    objects.append(pod)
        objects += self.resources.leases_of(name) + self.resources.budgets_of(name)
        if self.kueue is not None:
            objects += self.kueue.objects_for(name)
        return objects

    async def run_site(self, name: str, stopped: Stopped) -> None:
        """The site's loop, until ``stopped``: reconciles of one site never overlap."""
        self.loop = asyncio.get_running_loop()
        waker = self.wakers.setdefault(name, asyncio.Event())
        grace = self.act_after - time.monotonic()
        if grace > 0:
            log.info("site %s: waiting %.0fs to see peering operators before acting", name, grace)
            await stopped.wait(grace)
        try:
            while not stopped:
                waker.clear()
                delay = await self.reconcile_once(name)
                await _wait(waker, stopped, min(max(delay, 0.05), 60.0))
        finally:
            self.wakers.pop(name, None)
            if name not in self.resources.sites:  # deleted, not merely paused (peering)
                self.forget(name)

    async def reconcile_once(self, name: str) -> float:
        """One reconcile of ``name``; the seconds until the next one is due."""
        site = self.resources.sites.get(name)
        if site is None:
            return 1.0
        started = time.perf_counter()
        try:
            reconciler = self.ensure_client()
            view = await self.ensure_view()
            reports = {n: r for n in self.history.nodes() if (r := self.history.report(n))}
            meter = await self._meter_state(name, site)
            gpu_power = await self._gpu_state(name, site)
            prices_now = await self._prices_now(name, site)
            token = self.site_token(name, view)
            objects = self.gather_kept(name, view, token)
            result = await reconciler.reconcile(
                site, objects, reports, meter, gpu_power, prices_now, token
            )
            self.gpu_nodes[name] = result.gpu_nodes
        except TryAgain as err:
            return err.delay
        except Exception:  # one bad reconcile must not stop the site's loop
            log.exception("site %s: reconcile failed; retrying", name)
            if self.metrics is not None:
                self.metrics.reconciled(name, time.perf_counter() - started, False)
            return 5.0
        self.reconciles += 1
        if self.metrics is not None:
            self.metrics.reconciled(name, time.perf_counter() - started, True)
        return (result.wake_at - reconciler.clock()).total_seconds()

    async def _meter_state(self, name: str, site: Mapping[str, Any]) -> MeterState | None:
        """The site meter's last reading; starts (or restarts, on a change of the Site's
        ``spec.meter``) its poller. None when the Site has no meter."""
        poller = await self.meters.get(name, (site.get("spec") or {}).get("meter"))
        return poller.state() if poller is not None else None

    def _make_meter(self, name: str, raw: Any) -> MeterPoller:
        spec = MeterSpec.model_validate(raw)
        assert self.client is not None
        return MeterPoller(
            name,
            spec,
            self.client,
            self.settings.secret_namespace,
            lambda: self.wake(name),
            self.settings.clock,
        )

    async def _prices_now(self, name: str, site: Mapping[str, Any]) -> LivePrices | None:
        """The live prices in force; starts (or restarts) the site's feed pollers."""
        poller = await self.price_pollers.get(name, (site.get("spec") or {}).get("prices"))
        return poller.now() if poller is not None else None

    def _make_price_poller(self, name: str, raw: Any) -> PricePoller:
        spec = PriceFeeds.model_validate(raw)
        if self.signal_ages is None and self.metrics is not None:
            self.signal_ages = SignalAge(self.metrics.registry)
        return PricePoller(
            name, spec, self.settings.clock, lambda: self.wake(name), self.signal_ages
        )

    async def _gpu_state(self, name: str, site: Mapping[str, Any]) -> GpuPowerState | None:
        """The GPU nodes' last readings; starts (or restarts) the site's query poller."""
        raw = ((site.get("spec") or {}).get("gpu") or {}).get("powerQuery")
        poller = await self.gpu_pollers.get(name, raw)
        return poller.state() if poller is not None else None

    def _make_gpu_poller(self, name: str, raw: Any) -> GpuPowerPoller:
        spec = GpuPowerQuery.model_validate(raw)
        assert self.client is not None
        return GpuPowerPoller(
            name,
            spec,
            self.client,
            self.settings.secret_namespace,
            lambda: self.gpu_nodes.get(name, []),
            lambda: self.wake(name),
        )

    def forget(self, name: str) -> None:
        """Drops every piece of state kept for site ``name``."""
        self.gpu_pollers.forget(name)
        self.price_pollers.forget(name)
        self.meters.forget(name)
        self.gpu_nodes.pop(name, None)
        self._gathered.pop(name, None)
        if self.reconciler is not None:
            uid = ((self.resources.sites.get(name) or {}).get("metadata") or {}).get("uid")
            self.reconciler.forget(name, uid)
        if self.metrics is not None:
            self.metrics.forget(name)

    # --- Site deletion ----------------------------------------------------------------------

    async def release(self, name: str, site: Mapping[str, Any]) -> int:
        """The Site ``name`` is being deleted: with ``onDelete: Release`` (the default) its
        controllers that dualcap curtailed are handed back; the count released."""
        reconciler = self.ensure_client()
        view = await self.ensure_view()
        self.forget(name)
        policy = ((site.get("spec") or {}).get("behavior") or {}).get("onDelete") or "Release"
        if policy != "Release":
            log.info("site %s deleted: curtailed controllers retained (onDelete: Retain)", name)
            return 0
        selector = node_selector_of(site)
        nodes = view.nodes_for(selector) if selector is not None else []
        released, failed = await apply.release(reconciler.client, nodes)
        if failed is not None:
            raise TryAgain(failed, delay=5)
        log.info("site %s deleted: released %d curtailed controllers", name, released)
        return released

    # --- dualcap's admission checks: Active while their Site exists ---------------------------

    def _check_changed(self, check: Mapping[str, Any]) -> None:
        loop = self.loop or asyncio.get_running_loop()
        task = loop.create_task(self._check_active(dict(check)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _check_active(self, check: Obj) -> None:
        """Writes the Active condition of one of dualcap's AdmissionChecks when it changed."""
        if self.client is None:
            return
        wanted = check_conditions(check, set(self.resources.sites), self.settings.clock())
        if (check.get("status") or {}).get("conditions") == wanted:
            return
        name = check["metadata"]["name"]
        resp = await self.client.patch(
            f"/apis/{KUEUE_API_VERSION}/admissionchecks/{name}/status",
            {"status": {"conditions": wanted}},
        )
        if not resp.ok and resp.code != 404:
            log.warning(
                "AdmissionCheck %s: Active not written: %s %s", name, resp.code, resp.message
            )

    # --- a budget or a lease that names no Site ----------------------------------------------

    async def _report_unknown_site(self, body: Mapping[str, Any]) -> None:
        """A PowerBudget or ComputeLease names a Site that does not exist: its status says
        so (Stalled, SiteNotFound) with a Warning Event, once; nothing else is touched. It
        takes effect as soon as the Site is created (its loop writes the status anew)."""
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        site = _site_ref(body)
        conditions = status.get("conditions") or []
        if any(
            c.get("type") == ConditionType.STALLED
            and c.get("reason") == Reason.SITE_NOT_FOUND
            and c.get("status") == "True"
            for c in conditions
        ):
            return
        reconciler = self.ensure_client()
        # The Sites' events may not all have come yet (a cold start): ask the API itself.
        found = await reconciler.client.request("GET", f"/apis/{API_VERSION}/sites/{site}")
        if found.code != 404:
            return  # it exists (its loop will take the object), or we cannot tell now
        now = self.settings.clock()
        wanted, message = site_not_found_status(body, now)
        resp = await reconciler.client.patch(status_path(body), {"status": wanted})
        if not resp.ok and resp.code != 404:
            log.warning(
                "status of %s %s: %s %s",
                body.get("kind"),
                meta.get("name"),
                resp.code,
                resp.message,
            )
        await events.post(
            reconciler.client,
            events.Event(body, events.WARNING, Reason.SITE_NOT_FOUND, message),
            now,
        )


async def _wait(waker: asyncio.Event, stopped: Stopped, seconds: float) -> None:
    wake = asyncio.ensure_future(waker.wait())
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({wake, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wake, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
