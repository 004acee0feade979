"""The kopf handlers: a table of contents, the work is in `cluster` and `planning`.

- kopf indexes of leases and budgets by site and sites by name; Nodes and Pods are kept by
  the operator's own informers (cluster/informer.py: kopf's per-object machinery does not
  scale to tens of thousands of them), in slim projections;
- event handlers on ComputeLeases and PowerBudgets, and informer callbacks on Nodes and
  Pods, that only wake a site;
- one daemon per Site: snapshot -> plan -> commands -> status, then sleep until woken, the
  plan's next wake-up, or a safety period; reconciles of one site never overlap;
- Site deletion releases (or retains) the controllers dualcap curtailed.
No kopf handlers at all on Nodes or Pods. Every handler
that does not block is `async def`: kopf runs a plain `def` in a thread pool, a hop per
event that costs more than the handler (measured in bench/bench_operator.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from dualcap.api.common import (
    API_VERSION,
    GROUP,
    SITE_LABEL,
    VERSION,
)
from dualcap.api.conditions import ConditionType, Reason
from dualcap.api.marks import is_marked, release_patch
from dualcap.cluster.client import Client
from dualcap.cluster.informer import ClusterView
from dualcap.cluster.metrics import Metrics
from dualcap.cluster.reconcile import Reconciler
from dualcap.cluster.status import set_conditions

log = logging.getLogger("dualcap")
SITES = (GROUP, VERSION, "sites")
LEASES = (GROUP, VERSION, "computeleases")
BUDGETS = (GROUP, VERSION, "powerbudgets")


@dataclass
class State:
    """What the handlers share (kopf's memo holds one)."""

    connection: kopf.ConnectionInfo | None = None
    client: Client | None = None
    reconciler: Reconciler | None = None
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)
    lease_site: dict[tuple[str, str], str] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Site
    leases: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    budgets: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # by siteRef
    budget_site: dict[str, str] = field(default_factory=dict)
    reconciles: int = 0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    safety_period: timedelta = timedelta(seconds=60)
    loop: asyncio.AbstractEventLoop | None = None  # the operator's (wake may come from elsewhere)
    metrics: Metrics | None = None
    view: ClusterView | None = None  # Nodes and Pods (our informers, not kopf's indexes)
    namespaces: list[str] = field(default_factory=list)  # pods watched only there (if any)
    # With peering, no site acts before this monotonic time: operators started together
    # must first see each other, or both would act until kopf pauses the lower priority.
    act_after: float = 0.0

    def ensure_client(self) -> Reconciler:
        if self.reconciler is None:
            if self.connection is None:
                raise kopf.TemporaryError("not logged in yet", delay=1)
            self.client = Client(self.connection)
            self.reconciler = Reconciler(self.client, self.clock, self.safety_period)
            if self.metrics is not None:
                client = self.client
                self.reconciler.on_plan.append(self.metrics.plan_applied)
                self.reconciler.on_stale.append(self.metrics.stale_found)
                self.metrics.api_errors_from(lambda: client.errors)
        return self.reconciler

    async def ensure_view(self) -> ClusterView:
        """Starts the Node and Pod informers (once) and waits for their first listing."""
        self.ensure_client()
        if self.view is None:
            assert self.client is not None
            self.view = ClusterView(self.client, self.wake, self.namespaces)
            self.view.start()
        await self.view.synced()
        return self.view

    def wake(self, site: str | None) -> None:
        if site is None:
            events = list(self.wakers.values())
        else:
            events = [self.wakers[site]] if site in self.wakers else []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for event in events:
            if self.loop is None or running is self.loop:
                event.set()
            else:  # from another thread (tests, embedding): hand it to the operator's loop
                self.loop.call_soon_threadsafe(event.set)


def _state(memo: Any) -> State:
    state = getattr(memo, "dualcap", None)
    if state is None:
        state = memo.dualcap = State()
    return state


def settings(
    standalone: bool = True, peering: str | None = None, priority: int = 0
) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    s.persistence.finalizer = f"{GROUP}/finalizer"
    s.posting.level = logging.WARNING  # our own Events say what happens; kopf's are noise
    s.watching.server_timeout = 300  # a silent watch is restarted within minutes
    s.watching.client_timeout = 330
    s.watching.connect_timeout = 30
    # No worker limit: until every index is populated, kopf holds each object's worker;
    # with a limit below the number of objects it deadlocks on a cold start.
    s.queueing.worker_limit = None
    s.peering.standalone = standalone and peering is None
    if peering:
        s.peering.name = peering
        s.peering.mandatory = True
        s.peering.priority = priority
        # A standby takes over within this many seconds of the active operator's crash
        # (at once after a graceful stop): 60 s by default is long for a power envelope.
        s.peering.lifetime = 15
    return s


def gather(
    name: str, site: Mapping[str, Any], view: ClusterView, state: State
) -> list[dict[str, Any]]:
    """The objects a site's plan reads (the site itself excluded): its nodes and their
    pods and its lease pods from the informers, its leases and budgets from kopf's events."""
    selector = ((site.get("spec") or {}).get("nodeSelector") or {}).get("matchLabels") or {}
    custom = (site.get("spec") or {}).get("nodeSelector") is not None and SITE_LABEL not in selector
    label = selector.get(SITE_LABEL, name)
    if custom:  # a selector not based on the site label: every node is a candidate
        view.custom_selectors = True
        nodes = [n for by_name in view.nodes_by_site.values() for n in by_name.values()]
    else:
        nodes = list(view.nodes_by_site.get(label, {}).values())
    objects: list[dict[str, Any]] = list(nodes)
    seen: set[tuple[str, str]] = set()
    for node in nodes:
        for key, pod in view.pods_by_node.get(node["metadata"]["name"], {}).items():
            if key not in seen:
                seen.add(key)
                objects.append(pod)
    for key, pod in view.lease_pods_by_site.get(name, {}).items():
        if key not in seen:
            seen.add(key)
            objects.append(pod)
    objects += list(state.leases.get(name, {}).values())
    objects += list(state.budgets.get(name, {}).values())
    return objects


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="login", registry=registry)
    def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        _state(memo).connection = info
        return info

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state = _state(memo)
        if state.view is not None:
            await state.view.stop()
        if state.client is not None:
            await state.client.close()

    @kopf.on.probe(id="sites", registry=registry)
    async def probe_sites(memo: kopf.Memo, **_: Any) -> int:
        return len(_state(memo).wakers)

    # --- indexes -------------------------------------------------------------------------

    # --- what the site loops read, kept from the events (no kopf indexes: with any index,
    # kopf holds every object's worker until all are indexed, quadratic on a cold start) --

    @kopf.on.event(*SITES, id="site_changed", registry=registry)
    async def site_changed(
        name: str, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        state = _state(memo)
        if type == "DELETED":
            state.sites.pop(name, None)
        else:
            state.sites[name] = _plain(body)
        state.wake(name)

    @kopf.on.event(*BUDGETS, id="budget_changed", registry=registry)
    async def budget_changed(
        name: str, spec: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        state = _state(memo)
        site = str(spec.get("siteRef"))
        before = state.budget_site.get(name)
        if before is not None and before != site:
            state.budgets.get(before, {}).pop(name, None)
            state.wake(before)
        if type == "DELETED":
            state.budgets.get(site, {}).pop(name, None)
            state.budget_site.pop(name, None)
        else:
            state.budgets.setdefault(site, {})[name] = _plain(body)
            state.budget_site[name] = site
        state.wake(site)

    @kopf.on.event(*LEASES, id="lease_changed", registry=registry)
    async def lease_changed(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        body: kopf.Body,
        memo: kopf.Memo,
        type: str,
        **_: Any,
    ) -> None:
        namespace = namespace or "default"
        key = (namespace, name)
        state = _state(memo)
        site = str(spec.get("siteRef"))
        before = state.lease_site.get(key)
        if before and before != site:
            state.leases.get(before, {}).pop(key, None)
            state.wake(before)  # its pods there are now orphans to remove
        if type == "DELETED":
            state.leases.get(site, {}).pop(key, None)
            state.lease_site.pop(key, None)
            state.wake(site)
            return
        state.leases.setdefault(site, {})[key] = _plain(body)
        state.lease_site[key] = site
        if site in state.sites:
            state.wake(site)
        else:
            await _report_unknown_site(state, name, namespace, site, status, meta)

    # --- the site loop -------------------------------------------------------------------

    @kopf.daemon(*SITES, cancellation_timeout=30, id="site_loop", registry=registry)
    async def site_loop(
        name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        state = _state(memo)
        state.loop = asyncio.get_running_loop()
        waker = state.wakers.setdefault(name, asyncio.Event())
        grace = state.act_after - time.monotonic()
        if grace > 0:
            log.info("site %s: waiting %.0fs to see peering operators before acting", name, grace)
            await stopped.wait(grace)
        try:
            while not stopped:
                waker.clear()
                site = state.sites.get(name)
                if site is None:
                    await _wait(waker, stopped, 1.0)
                    continue
                delay = 5.0
                started = time.perf_counter()
                try:
                    reconciler = state.ensure_client()
                    view = await state.ensure_view()
                    result = await reconciler.reconcile(site, gather(name, site, view, state))
                    state.reconciles += 1
                    delay = (result.wake_at - reconciler.clock()).total_seconds()
                    if state.metrics is not None:
                        state.metrics.reconciled(name, time.perf_counter() - started, True)
                except kopf.TemporaryError as err:
                    delay = float(err.delay or 1.0)
                except Exception:  # one bad reconcile must not stop the site's loop
                    log.exception("site %s: reconcile failed; retrying", name)
                    if state.metrics is not None:
                        state.metrics.reconciled(name, time.perf_counter() - started, False)
                await _wait(waker, stopped, min(max(delay, 0.05), 60.0))
        finally:
            state.wakers.pop(name, None)

    @kopf.on.delete(*SITES, id="site_deleted", registry=registry)
    async def site_deleted(name: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
        state = _state(memo)
        reconciler = state.ensure_client()
        view = await state.ensure_view()
        if state.metrics is not None:
            state.metrics.forget(name)
        policy = ((spec.get("behavior") or {}).get("onDelete")) or "Release"
        if policy != "Release":
            log.info("site %s deleted: curtailed controllers retained (onDelete: Retain)", name)
            return
        selector = ((spec.get("nodeSelector") or {}).get("matchLabels") or {}).get(SITE_LABEL, name)
        released = 0
        for node in list(view.nodes_by_site.get(selector, {}).values()):
            if not is_marked(node):
                continue
            patch = release_patch(node)
            resp = await reconciler.client.patch(f"/api/v1/nodes/{node['metadata']['name']}", patch)
            if not resp.ok and resp.code != 404:
                raise kopf.TemporaryError(
                    f"releasing {node['metadata']['name']}: {resp.code} {resp.message}", delay=5
                )
            released += 1
        log.info("site %s deleted: released %d curtailed controllers", name, released)

    return registry


async def _wait(waker: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    wake = asyncio.ensure_future(waker.wait())
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({wake, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wake, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(body))


async def _report_unknown_site(
    state: State,
    name: str,
    namespace: str,
    site: str,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> None:
    conditions = status.get("conditions") or []
    if any(
        c.get("type") == ConditionType.STALLED
        and c.get("reason") == Reason.SITE_NOT_FOUND
        and c.get("status") == "True"
        for c in conditions
    ):
        return
    reconciler = state.ensure_client()
    # The Sites' events may not all have come yet (a cold start): ask the API itself.
    found = await reconciler.client.request("GET", f"/apis/{API_VERSION}/sites/{site}")
    if found.code != 404:
        return  # it exists (its loop will take the lease), or we cannot tell now
    now = datetime.now(UTC)
    message = f"no Site {site!r}: the lease waits until it exists"
    wanted = {
        "observedGeneration": meta.get("generation"),
        "phase": "Pending",
        "conditions": set_conditions(
            conditions,
            [
                ("Admitted", False, Reason.SITE_NOT_FOUND, message),
                ("Ready", False, Reason.SITE_NOT_FOUND, message),
                (ConditionType.STALLED, True, Reason.SITE_NOT_FOUND, message),
            ],
            meta.get("generation"),
            now,
        ),
    }
    await reconciler.client.patch(
        f"/apis/{API_VERSION}/namespaces/{namespace}/computeleases/{name}/status",
        {"status": wanted},
    )
    ref = {
        "apiVersion": API_VERSION,
        "kind": "ComputeLease",
        "metadata": {"name": name, "namespace": namespace, "uid": meta.get("uid")},
    }
    await reconciler.post_event(ref, "Warning", Reason.SITE_NOT_FOUND, message, now)
