"""The kopf handlers: a table of contents. Each calls the operator service
(``dualcap.cluster.operator.Operator``) and does nothing else.

- event handlers on Sites, PowerBudgets and ComputeLeases keep them and wake the sites
  they concern (Nodes and Pods come from the operator's own informers: no kopf handler on
  them at all, or kopf would put finalizers on every node and pod);
- one daemon per Site runs its reconcile loop;
- Site deletion releases (or retains) the controllers dualcap curtailed.
Every handler is ``async def``: kopf runs a plain ``def`` in a thread pool, a hop per
event that costs more than the handler.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from dualcap.api.common import GROUP, VERSION
from dualcap.cluster.operator import Operator, TryAgain
from dualcap.login import CredentialsError

SITES = (GROUP, VERSION, "sites")
LEASES = (GROUP, VERSION, "computeleases")
BUDGETS = (GROUP, VERSION, "powerbudgets")
BLOCKS = (GROUP, VERSION, "minerblocks")


def operator_of(memo: Any) -> Operator:
    service = getattr(memo, "dualcap", None)
    if service is None:
        service = memo.dualcap = Operator()
    return service


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
    # No worker limit: kopf holds an object's worker while its handlers run; a limit below
    # the number of objects stalls a cold start.
    s.queueing.worker_limit = None
    # kopf scans the API for dualcap's resources once, after the startup handler below has
    # waited for them to be served, and never again. Its default (a re-scan whenever a CRD
    # changes) lost every dualcap resource for good when kube-apiserver restarted: the
    # restart's CRD events came while the new apiserver did not yet serve the group, the
    # re-scan found nothing, and the watches stopped (found on the real control plane).
    s.scanning.disabled = True
    s.peering.standalone = standalone and peering is None
    if peering:
        s.peering.name = peering
        s.peering.mandatory = True
        s.peering.priority = priority
        # A standby takes over within this many seconds of the active operator's crash
        # (at once after a graceful stop): 60 s by default is long for a power envelope.
        s.peering.lifetime = 15
    return s


def _body(type: str, body: kopf.Body) -> kopf.Body | None:
    return None if type == "DELETED" else body


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="login", registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        try:
            return operator_of(memo).login()
        except CredentialsError as err:  # said, and tried again: never a crash loop
            raise kopf.TemporaryError(str(err), delay=10) from None

    @kopf.on.startup(id="resources_served", registry=registry)
    async def resources_served(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
        service = operator_of(memo)
        if service.connection is None:  # startup runs before kopf's own login
            try:
                service.login()
            except CredentialsError as err:
                raise kopf.TemporaryError(str(err), delay=10) from None
        await service.wait_for_resources(logger)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await operator_of(memo).close()

    @kopf.on.probe(id="sites", registry=registry)
    async def probe_sites(memo: kopf.Memo, **_: Any) -> int:
        return len(operator_of(memo).wakers)

    @kopf.on.event(*SITES, id="site_changed", registry=registry)
    async def site_changed(
        name: str, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        await operator_of(memo).on_site(name, _body(type, body))

    @kopf.on.event(*BUDGETS, id="budget_changed", registry=registry)
    async def budget_changed(
        name: str, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        await operator_of(memo).on_budget(name, _body(type, body))

    @kopf.on.event(*BLOCKS, id="block_changed", registry=registry)
    async def block_changed(
        name: str, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        operator_of(memo).on_block(name, _body(type, body))

    @kopf.on.event(*LEASES, id="lease_changed", registry=registry)
    async def lease_changed(
        name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, type: str, **_: Any
    ) -> None:
        await operator_of(memo).on_lease(namespace or "default", name, _body(type, body))

    @kopf.daemon(*SITES, cancellation_timeout=30, id="site_loop", registry=registry)
    async def site_loop(name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
        await operator_of(memo).run_site(name, stopped)

    @kopf.on.delete(*SITES, id="site_deleted", registry=registry)
    async def site_deleted(name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            await operator_of(memo).release(name, body)
        except TryAgain as err:
            raise kopf.TemporaryError(str(err), delay=err.delay) from None

    return registry
