"""Kueue: dualcap's power admission check (``controllerName: dualcap.io/power``).

- ``KueueView``: the AdmissionChecks and Workloads, from informers of their own, started
  once the API serves Kueue's resources and stopped when it stops serving them (Kueue
  installed or removed while dualcap runs: nothing else at a site is disturbed); a change
  wakes the site whose check it concerns.
- The check's state on a Workload is written with server-side apply under dualcap's own
  field manager, only its own entry of ``status.admissionChecks`` (a list keyed by name:
  a merge patch would replace the others' entries): ``Ready`` with the podSetUpdates that
  put its pods on the site's GPU nodes and label them, ``Retry`` to have Kueue evict and
  requeue it, ``Pending`` with why it waits, ``Rejected`` for what can never fit.
- Each of dualcap's AdmissionChecks is kept ``Active`` while its parameters name a Site
  that exists, and says what is wrong otherwise (a ClusterQueue listing an inactive check
  admits nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dualcap.api.conditions import Reason
from dualcap.api.names import (
    GROUP,
    KUEUE_API_VERSION,
    KUEUE_VERSION,
    POWER_CHECK_CONTROLLER,
    SITE_LABEL,
    WORKLOAD_LABEL,
)
from dualcap.api.objects import rfc3339, set_conditions
from dualcap.client import Client, Response
from dualcap.cluster.informer import Informer, stamp
from dualcap.planning.decisions import LeaseDecision
from dualcap.planning.entities import Lease
from dualcap.planning.workloads import check_site

log = logging.getLogger("dualcap")
Obj = dict[str, Any]
FIELD_MANAGER = "dualcap-power-check"
BASE = f"/apis/{KUEUE_API_VERSION}"
DISCOVERY_SECONDS = 30.0  # how often the API is asked whether it serves Kueue
REQUEUE_SECONDS = 15  # a Workload the check evicted (Retry) is queued again after this


def _slim(obj: Mapping[str, Any]) -> Obj:
    """What dualcap reads of a Workload or an AdmissionCheck (managedFields dropped)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": meta,
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }


def _workload(obj: Mapping[str, Any]) -> Obj:
    return {**_slim(obj), "kind": "Workload"}


def _check(obj: Mapping[str, Any]) -> Obj:
    return {**_slim(obj), "kind": "AdmissionCheck"}


class KueueView:
    """dualcap's AdmissionChecks and the Workloads that list them, while Kueue is served."""

    def __init__(
        self,
        client: Client,
        wake_site: Callable[[str], None],
        discovery_seconds: float = DISCOVERY_SECONDS,
    ):
        self.client = client
        self.wake_site = wake_site
        self.discovery_seconds = discovery_seconds
        self.served = False
        self.checks: dict[str, Obj] = {}  # name -> AdmissionCheck (dualcap's only)
        self.workloads: dict[tuple[str, str], Obj] = {}
        self._informers: list[Informer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.Task[None] | None = None
        self.on_check: list[Callable[[Obj], None]] = []  # the check's Active condition
        self._forbidden_said = False
        self.changes = stamp()  # the last change of the checks or Workloads (sites' tokens)

    # --- life ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._discover(), name="kueue discovery")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop
            self._loop = None
        await self._stop_informers()

    async def serves_kueue(self) -> bool:
        """The API serves Kueue's Workloads and AdmissionChecks, and dualcap may read them
        (a Kueue installed without the chart's ``kueue.enabled`` is said once, not retried
        every few seconds by the informers)."""
        resp = await self.client.request("GET", BASE)
        if not resp.ok:
            return False
        names = {r.get("name") for r in (resp.body or {}).get("resources") or []}
        if not {"workloads", "workloads/status", "admissionchecks"} <= names:
            return False
        for plural in ("admissionchecks", "workloads"):
            probe = await self.client.request("GET", f"{BASE}/{plural}", params={"limit": "1"})
            if probe.code in (401, 403):
                if not self._forbidden_said:
                    self._forbidden_said = True
                    log.warning(
                        "the API serves Kueue but dualcap may not list its %s (%s): the power"
                        " admission check is off (grant it with the chart's kueue.enabled)",
                        plural,
                        probe.code,
                    )
                return False
        return True

    async def _discover(self) -> None:
        while True:
            try:
                served = await self.serves_kueue()
            except Exception as err:  # the API is down: ask again later
                log.debug("kueue discovery failed: %s", err)
                served = self.served
            if served and not self.served:
                log.info("the API serves Kueue (%s): the power admission check runs", KUEUE_VERSION)
                self._start_informers()
            elif not served and self.served:
                log.warning("the API no longer serves Kueue: the power admission check stops")
                await self._stop_informers()
                for site in {s for c in self.checks.values() if (s := check_site(c))}:
                    self.wake_site(site)
                self.changes = stamp()
                self.checks.clear()
                self.workloads.clear()
            self.served = served
            await asyncio.sleep(self.discovery_seconds)

    def _start_informers(self) -> None:
        self._informers = [
            Informer(self.client, f"{BASE}/admissionchecks", _check, self._on_check, "admissionchecks"),
            Informer(self.client, f"{BASE}/workloads", _workload, self._on_workload, "workloads"),
        ]  # fmt: skip
        self._tasks = [asyncio.create_task(i.run(), name=i.name) for i in self._informers]

    async def _stop_informers(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks, self._informers = [], []

    # --- indexes -----------------------------------------------------------------------------

    def _on_check(self, _kind: str, obj: Obj | None, old: Obj | None) -> None:
        self.changes = stamp()
        for check in (old, obj):
            site = check_site(check) if check is not None else None
            if site is not None:
                self.wake_site(site)
        if obj is None:
            if old is not None:
                self.checks.pop(str(old["metadata"].get("name")), None)
            return
        name = str(obj["metadata"].get("name"))
        if (obj.get("spec") or {}).get("controllerName") == POWER_CHECK_CONTROLLER:
            self.checks[name] = obj
            for hook in self.on_check:
                hook(obj)
        else:
            self.checks.pop(name, None)

    def _on_workload(self, _kind: str, obj: Obj | None, old: Obj | None) -> None:
        self.changes = stamp()
        body = obj or old
        assert body is not None
        key = (str(body["metadata"].get("namespace") or ""), str(body["metadata"].get("name")))
        if obj is None:
            self.workloads.pop(key, None)
        else:
            self.workloads[key] = obj
        for site in self.sites_of(body):
            self.wake_site(site)

    def sites_of(self, workload: Mapping[str, Any]) -> set[str]:
        names = {
            e.get("name")
            for e in (workload.get("status") or {}).get("admissionChecks") or []
            if isinstance(e, Mapping)
        }
        out = set()
        for name in names:
            check = self.checks.get(str(name))
            site = check_site(check) if check is not None else None
            if site is not None:
                out.add(site)
        return out

    def objects_for(self, site: str) -> list[Obj]:
        """The site's checks and the Workloads that list one of them (the snapshot's)."""
        checks = [c for c in self.checks.values() if check_site(c) == site]
        if not checks:
            return []
        names = {str(c["metadata"].get("name")) for c in checks}
        workloads = [
            w
            for w in self.workloads.values()
            if any(
                isinstance(e, Mapping) and e.get("name") in names
                for e in (w.get("status") or {}).get("admissionChecks") or []
            )
        ]
        return [*checks, *workloads]


# --- the check's state on a Workload ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the power check says of one Workload."""

    state: str  # Pending, Ready, Retry or Rejected
    message: str
    # With Ready: for each pod set, the labels and node selector of its pods
    pod_set_updates: tuple[Obj, ...] = ()


def pod_set_updates(lease: Lease, site: str, gpu_labels: Mapping[str, str]) -> tuple[Obj, ...]:
    """The podSetUpdates of an admitted Workload: its pods labelled as the Workload's (so
    they are counted as it, not as a node's other load) and put on the site's GPU nodes."""
    assert lease.workload is not None
    labels = {WORKLOAD_LABEL: lease.name, SITE_LABEL: site}
    out: list[Obj] = []
    for name, _count, _gpus in lease.workload.pod_sets:
        update: Obj = {"name": name, "labels": labels}
        if gpu_labels:
            update["nodeSelector"] = dict(gpu_labels)
        out.append(update)
    return tuple(out)


def entry_of(workload: Mapping[str, Any], check: str) -> Mapping[str, Any] | None:
    for entry in (workload.get("status") or {}).get("admissionChecks") or []:
        if isinstance(entry, Mapping) and entry.get("name") == check:
            return entry
    return None


def differs(entry: Mapping[str, Any] | None, wanted: CheckState) -> bool:
    if entry is None:
        return True
    return entry.get("state") != wanted.state or entry.get("message") != wanted.message[:1024]


async def write_check(
    client: Client,
    namespace: str,
    name: str,
    check: str,
    wanted: CheckState,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> Response:
    """The check's entry on Workload ``namespace/name``, applied under dualcap's field
    manager (the other entries are left as they are)."""
    since = (previous or {}).get("lastTransitionTime")
    if not since or (previous or {}).get("state") != wanted.state:
        since = rfc3339(now)
    entry: Obj = {
        "name": check,
        "state": wanted.state,
        "message": wanted.message[:1024],
        "lastTransitionTime": since,
    }
    if wanted.pod_set_updates:
        entry["podSetUpdates"] = list(wanted.pod_set_updates)
    if wanted.state == "Retry":  # back in the queue soon: the envelope may rise again
        entry["requeueAfterSeconds"] = REQUEUE_SECONDS
    body = {
        "apiVersion": KUEUE_API_VERSION,
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"admissionChecks": [entry]},
    }
    return await client.request(
        "PATCH",
        f"{BASE}/namespaces/{namespace}/workloads/{name}/status",
        body,
        "application/apply-patch+yaml",
        params={"fieldManager": FIELD_MANAGER, "force": "true"},
    )


# --- the AdmissionCheck's Active condition ----------------------------------------------------


def check_conditions(check: Mapping[str, Any], sites: set[str], now: datetime) -> list[Obj]:
    """The Active condition of one of dualcap's checks: True while its parameters name a
    Site that exists."""
    spec = check.get("spec") or {}
    params = spec.get("parameters") or {}
    site = check_site(check)
    if site is None:
        message = (
            f"spec.parameters must name a Site (apiGroup: {GROUP}, kind: Site, name: ...);"
            f" it names {params or 'nothing'}"
        )
        active = (False, "InvalidParameters", message)
    elif site not in sites:
        active = (False, "SiteNotFound", f"no Site {site!r}: no Workload is admitted")
    else:
        active = (True, "Active", f"admits Workloads by the power of Site {site}")
    previous = (check.get("status") or {}).get("conditions")
    generation = (check.get("metadata") or {}).get("generation")
    return set_conditions(previous, [("Active", *active)], generation, now)


# --- what the plan says of each Workload --------------------------------------------------------


def wanted_check(d: LeaseDecision, deferred: bool, in_flight: int) -> CheckState | None:
    """The check's state for a Workload the plan decided as ``d`` and that no command of
    this reconcile admits or evicts (those write their own); None: leave it as it is.
    ``deferred``: its admission waits for decreases to be confirmed (make before break)."""
    lease = d.lease
    w = lease.workload
    assert w is not None
    reason = str(d.reason)
    if w.check_state == "Retry" and w.evicted:
        # Kueue evicted it; a Retry that came after its reset would hold it out for good
        return CheckState("Pending", "evicted for the envelope: waiting to be queued again")
    if reason in (Reason.FINISHED, Reason.QUOTA_NOT_RESERVED, Reason.EVICTED):
        return None  # Kueue's own business (a Retry: Kueue evicts it and resets the check)
    if reason == Reason.NO_GPUS:
        return CheckState("Ready", d.message)
    if reason == Reason.NEVER_FITS:
        return CheckState("Rejected", d.message)
    if d.runs:
        if w.ready or not deferred:
            return None
        return CheckState(
            "Pending",
            f"waiting for {in_flight} curtailments or pod deletions to be confirmed before"
            f" it is admitted ({d.kw:,.0f} kW)",
        )
    if w.ready:
        return None  # admitted before: only a Retry (an EvictWorkload command) stops it
    return CheckState("Pending", d.message)


def workload_ref(lease: Lease) -> Obj:
    meta: Obj = {"name": lease.name, "namespace": lease.namespace}
    if lease.workload is not None and lease.workload.uid:
        meta["uid"] = lease.workload.uid
    return {"apiVersion": KUEUE_API_VERSION, "kind": "Workload", "metadata": meta}
