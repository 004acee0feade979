"""One reconcile of one site: objects -> snapshot -> plan -> commands -> status.

The objects come from the operator's indexes, which lag behind our own writes by a watch
event. A reconcile woken in between would see an increase it just issued as not yet made
and could spend the same headroom twice; so the responses of our writes overlay the
indexes until the indexes have caught up with them (read-your-writes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dualcap.api.common import LEASE_LABEL, SITE_LABEL, parse_rfc3339
from dualcap.api.lease import ComputeLease
from dualcap.api.objects import object_key
from dualcap.api.site import ControllerState, node_selector_of
from dualcap.client import Client
from dualcap.cluster import events
from dualcap.cluster.apply import Outcome, apply_commands
from dualcap.cluster.events import reconcile_events
from dualcap.cluster.kueue import differs, entry_of, wanted_check, workload_ref, write_check
from dualcap.cluster.status import (
    budget_status,
    lease_status,
    offer_refresh_at,
    offer_status,
    site_status,
    status_path,
)
from dualcap.planning import ParseCache, plan
from dualcap.planning.commands import Kind
from dualcap.planning.decisions import Plan
from dualcap.planning.entities import (
    BlockReport,
    GpuPowerState,
    Lease,
    LivePrices,
    MeterState,
    SiteInputs,
)
from dualcap.planning.meter import MeterMemory, prepared, remembered
from dualcap.planning.offer import Offer, offer
from dualcap.planning.snapshot import build_one

log = logging.getLogger("dualcap")
Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name
OVERLAY_SECONDS = 60.0  # an overlay entry the indexes never confirm is dropped after this
# The indexes can keep objects deleted while a watch was down: kopf re-lists after a pause
# (peering) or an error but never drops what the new listing lacks. So a site checks its
# view against the API every RESYNC_SECONDS (two LISTs: its nodes by label, its lease
# pods by label), and at once when a confirmation has been
# pending for STUCK_SECONDS (a miner pod the index still shows on a curtailed node).
RESYNC_SECONDS = 30.0
STUCK_SECONDS = 15.0
SAFETY_PERIOD = timedelta(seconds=60)  # wake at least this often, whatever happens
SETTLING = timedelta(seconds=5)  # recheck this soon while commands are in flight


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


@dataclass
class Overlay:
    """Objects as our own writes left them, until the indexes show them too. Its times
    are of ``ticker`` (monotonic seconds: how long the API lags is real time, whatever
    the planning clock says)."""

    ticker: Callable[[], float] = time.monotonic
    # key -> (action, resourceVersion written, object or None when gone, when)
    entries: dict[Key, tuple[str, int, Obj | None, float]] = field(default_factory=dict)
    # key -> resourceVersion of the listing that found it gone (a stale index entry)
    tombstones: dict[Key, int] = field(default_factory=dict)

    def record(self, written: Mapping[Key, tuple[str, Obj | None]]) -> None:
        now = self.ticker()
        for key, (action, body) in written.items():
            self.entries[key] = (action, _rv(body), body, now)

    def merge(self, objects: list[Obj]) -> list[Obj]:
        if self.tombstones:
            objects = self._bury(objects)
        if not self.entries:
            return objects
        now = self.ticker()
        out = []
        seen: set[Key] = set()
        for obj in objects:
            key = object_key(obj)
            entry = self.entries.get(key)
            if entry is None:
                out.append(obj)
                continue
            seen.add(key)
            _, rv, body, since = entry
            if (body is not None and _rv(obj) >= rv) or now - since > OVERLAY_SECONDS:
                del self.entries[key]  # the index has caught up
                out.append(obj)
            elif body is not None:
                out.append(body)
            # body None: deleted by us; the index has not seen it go yet
        for key, (action, _, body, since) in list(self.entries.items()):
            if key in seen:
                continue
            if action == "create" and body is not None and now - since <= OVERLAY_SECONDS:
                out.append(body)  # created by us, not in the index yet
            else:
                del self.entries[key]  # updated or deleted, and gone from the index: gone
        return out

    def _bury(self, objects: list[Obj]) -> list[Obj]:
        out, present = [], set()
        for obj in objects:
            key = object_key(obj)
            gone_at = self.tombstones.get(key)
            if gone_at is None:
                out.append(obj)
                continue
            present.add(key)
            if _rv(obj) > gone_at:  # created again since
                del self.tombstones[key]
                out.append(obj)
        for key in list(self.tombstones):
            if key not in present:
                del self.tombstones[key]  # the index has dropped it too
        return out


@dataclass
class SiteMemory:
    """What the reconciler keeps for one site between reconciles. Its times are of
    ``ticker`` (monotonic seconds), the meter's of the planning clock."""

    ticker: Callable[[], float]
    resynced_at: float  # when the view was last checked against the API
    overlay: Overlay
    meter: MeterMemory = field(default_factory=MeterMemory)  # the meter's rules' data
    stuck_since: float | None = None  # since when confirmations have waited

    def resync_due(self, every: float) -> bool:
        """Every ``every`` seconds, and sooner while confirmations seem stuck."""
        now = self.ticker()
        stuck = self.stuck_since
        soon = min(every, STUCK_SECONDS)
        return now - self.resynced_at > every or (
            stuck is not None and now - stuck > soon and now - self.resynced_at > soon
        )


@dataclass
class Result:
    plan: Plan
    outcome: Outcome | None
    wake_at: datetime
    writes: int
    gpu_nodes: list[str] = field(default_factory=list)  # the site's GPU nodes, by name


class Reconciler:
    """Reconciles sites; shared by every site's loop (one per Site)."""

    def __init__(
        self,
        client: Client,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        safety_period: timedelta = SAFETY_PERIOD,
        resync_seconds: float = RESYNC_SECONDS,
        ticker: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.clock = clock
        self.ticker = ticker
        self.safety_period = safety_period
        self.resync_seconds = resync_seconds
        self.cache = ParseCache()
        self._writes = 0
        self.resyncs = 0  # the view checked against the API, in all (tests, debugging)
        self.memory: dict[str, SiteMemory] = {}  # per site, dropped with the Site (forget)
        self.on_plan: list[Callable[[Plan, Outcome | None], None]] = []  # metrics hooks
        self.on_offer: list[Callable[[str, Offer | None], None]] = []  # with spec.offer
        self.on_stale: list[Callable[[str, int], None]] = []  # metrics: stale entries found

    async def reconcile(
        self,
        site: Obj,
        objects: list[Obj],
        reports: Mapping[str, BlockReport] | None = None,
        meter: MeterState | None = None,
        gpu_power: GpuPowerState | None = None,
        prices: LivePrices | None = None,
        token: Hashable | None = None,
    ) -> Result:
        """``reports``: the MinerBlock reports by node (their recent peaks); ``meter``,
        ``gpu_power``, ``prices``: what the site's pollers last read. ``token``: changes
        whenever ``objects`` may have (the operator's view keeps one per site): while it
        holds, the site's entities are not built again. It is not used while our own
        writes overlay the view, nor when the view is checked against the API (so even a
        token that failed to change would be caught within a resync)."""
        name = site["metadata"]["name"]
        now = self.clock()
        memory = self.memory.get(name)
        if memory is None:
            memory = self.memory[name] = SiteMemory(
                self.ticker, self.ticker(), Overlay(self.ticker), _meter_memory_from(site)
            )
        if meter is not None:  # the unmodelled load last counted is the reserve
            reserve = (site.get("status") or {}).get("unmodelledKW")
            kept = float(reserve) if isinstance(reserve, int | float) else 0.0
            meter = prepared(meter, memory.meter, kept)
        inputs = SiteInputs(meter, gpu_power, prices)
        overlay = memory.overlay
        resync = memory.resync_due(self.resync_seconds)
        if resync or overlay.entries or overlay.tombstones:
            token = None
        objects = overlay.merge([site, *objects])
        site_obj = next((o for o in objects if o.get("kind") == "Site"), site)  # the first
        snap = build_one(site_obj, objects, now, self.cache, reports or {}, inputs, token)
        if resync and await self._resync(name, site, snap, objects, memory):
            objects = overlay.merge(objects)
            site_obj = next((o for o in objects if o.get("kind") == "Site"), site)
            snap = build_one(site_obj, objects, now, self.cache, reports or {}, inputs)
        p = plan(snap, now)
        if p.meter is not None and meter is not None:
            memory.meter = remembered(
                memory.meter,
                now,
                p.meter.modelled_kw,
                meter,
                p.meter.fresh,
                p.meter.measured_unmodelled_kw,
                p.meter.disagreeing_since if p.meter.fresh else memory.meter.disagreeing_since,
            )
        if p.in_flight and not p.schedule.now:
            memory.stuck_since = memory.stuck_since or self.ticker()
        else:
            memory.stuck_since = None
        writes = 0
        outcome = None
        if p.schedule.now and snap.site is not None:
            nodes = {c.name: c.ref.as_object() for c in snap.controllers if c.ref is not None}
            leases = {}
            for obj in objects:
                if obj.get("kind") == "ComputeLease":
                    model, _ = self.cache.parse(ComputeLease, obj)
                    if model is not None:
                        leases[
                            (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
                        ] = (obj, model)
            gpu_labels = snap.gpu_node_labels
            outcome = await apply_commands(
                self.client,
                list(p.schedule.now),
                nodes,
                leases,
                name,
                snap.gpu_resource,
                gpu_labels,
                now,
                _workloads(snap.leases, objects),
            )
            overlay.record(outcome.written)
            writes += len(outcome.done) + len(outcome.failures)
            for cmd, why in outcome.failures:
                log.warning("site %s: %s failed: %s", name, cmd.describe(), why)
        offer_spec = snap.site.spec.offer if snap.site is not None else None
        offered, made = None, None
        if offer_spec is not None:
            previous = (site.get("status") or {}).get("offer")
            made = offer(snap, p, now)
            offered = offer_status(made, offer_spec.refresh_seconds, previous, now)
        for offer_hook in self.on_offer:
            offer_hook(name, made)
        site_wanted = await self._statuses(site, objects, p, outcome, now, offered)
        writes += self._writes
        for event in reconcile_events(site, objects, p, outcome, site_wanted):
            await events.post(self.client, event, now)
            writes += 1
        for hook in self.on_plan:
            hook(p, outcome)
        if log.isEnabledFor(logging.DEBUG):  # what the plan does, and why (-v)
            log.debug(
                "site %s: now %s, deferred %s, in flight: %s; limit %s kW, committed %s,"
                " controllers %s, not running: %s",
                name,
                [f"{c.describe()} ({c.reason}: {c.message})" for c in p.schedule.now],
                [c.describe() for c in p.schedule.deferred],
                bool(p.in_flight),
                p.limit_kw,
                p.committed,
                p.controllers,
                [f"{d.lease.name}: {d.reason}: {d.message}" for d in p.leases if not d.runs][:5],
            )
        wake = now + min(self.safety_period, timedelta(seconds=self.resync_seconds))
        if p.next_wakeup is not None:
            wake = min(wake, p.next_wakeup)
        if offer_spec is not None and (
            due := offer_refresh_at(offered, offer_spec.refresh_seconds)
        ):
            wake = min(wake, max(due, now + SETTLING))
        if p.schedule.now or p.schedule.deferred or p.in_flight or (outcome and outcome.failures):
            wake = min(wake, now + SETTLING)
        return Result(p, outcome, wake, writes, sorted(snap.gpu_nodes))

    # --- resync: the view checked against the API -------------------------------------------

    def forget(self, name: str, uid: str | None = None) -> None:
        """Drops what was kept for site ``name`` (its Site is gone)."""
        self.memory.pop(name, None)
        if uid:
            self.cache.forget(uid)

    async def _resync(
        self, name: str, site: Obj, snap: Any, objects: list[Obj], memory: SiteMemory
    ) -> bool:
        """Lists the site's nodes, its lease pods and the pods on nodes whose curtailment
        waits; entries of the view the API no longer has are buried. True if any was."""
        memory.resynced_at = self.ticker()
        self.resyncs += 1
        overlay = memory.overlay
        selector = node_selector_of(site)
        if selector is None:
            return False  # an invalid selector selects nothing: nothing to check
        lists: dict[str, dict[str, str]] = {
            "nodes": {"labelSelector": selector.to_query()},
            "lease-pods": {"labelSelector": f"{SITE_LABEL}={name}"},
        }
        waiting = [c.name for c in snap.controllers if c.state is ControllerState.CURTAILING]
        for node in waiting:
            lists[f"pods-on/{node}"] = {"fieldSelector": f"spec.nodeName={node}"}
        checked: dict[str, tuple[set[Key], int]] = {}
        for what, params in lists.items():
            path = "/api/v1/nodes" if what == "nodes" else "/api/v1/pods"
            resp = await self.client.request("GET", path, params=params)
            if not resp.ok:
                return False  # try again at the next resync
            body = resp.body
            rv = _rv(body)
            checked[what] = ({object_key({**o, "kind": "Node" if what == "nodes" else "Pod"}) for o in body.get("items", [])}, rv)  # fmt: skip
        buried = 0
        for obj in objects:
            key = object_key(obj)
            kind, labels = key[0], (obj.get("metadata") or {}).get("labels") or {}
            if kind == "Node":
                scope = "nodes"
            elif kind == "Pod" and LEASE_LABEL in labels and labels.get(SITE_LABEL) == name:
                scope = "lease-pods"
            elif kind == "Pod" and f"pods-on/{(obj.get('spec') or {}).get('nodeName')}" in checked:
                scope = f"pods-on/{obj['spec']['nodeName']}"
            else:
                continue
            found, rv = checked[scope]
            if key not in found and _rv(obj) <= rv:
                overlay.tombstones[key] = rv
                buried += 1
        if buried:
            for hook in self.on_stale:
                hook(name, buried)
            log.warning(
                "site %s: %d objects in the operator's view were gone from the API", name, buried
            )
        return buried > 0

    # --- status --------------------------------------------------------------------------

    async def _workload_checks(
        self, p: Plan, objects: list[Obj], outcome: Outcome | None, now: datetime
    ) -> int:
        """The power check's entry on each Workload no command of this reconcile wrote:
        Pending with why it waits, Rejected for what can never fit, Ready for one that
        asks no GPUs; Events for what the commands did and for a rejection."""
        done = outcome.done if outcome else []
        acted = {
            (c.namespace, c.name): c
            for c in done
            if c.kind in (Kind.ADMIT_WORKLOAD, Kind.EVICT_WORKLOAD)
        }
        deferred = {
            (c.namespace, c.name) for c in p.schedule.deferred if c.kind is Kind.ADMIT_WORKLOAD
        }
        workloads = _workloads([d.lease for d in p.leases], objects)
        writes = 0
        for d in p.leases:
            lease = d.lease
            if lease.workload is None:
                continue
            key = (lease.namespace, lease.name)
            cmd = acted.get(key)
            if cmd is not None:
                admitted = cmd.kind is Kind.ADMIT_WORKLOAD
                await events.post(
                    self.client,
                    events.Event(
                        workload_ref(lease),
                        events.NORMAL if admitted else events.WARNING,
                        "PowerAdmitted" if admitted else "PowerEvicted",
                        d.message if admitted else f"{cmd.reason}: {cmd.message}",
                    ),
                    now,
                )
                writes += 1
                continue
            found = workloads.get(key)
            wanted = wanted_check(d, key in deferred, p.in_flight)
            if found is None or wanted is None:
                continue
            entry = entry_of(found[1], lease.workload.check)
            if not differs(entry, wanted):
                continue
            resp = await write_check(
                self.client, lease.namespace, lease.name, lease.workload.check, wanted, entry, now
            )
            writes += 1
            if not resp.ok and resp.code != 404:
                log.warning(
                    "Workload %s/%s: check not written: %s %s", *key, resp.code, resp.message
                )
            elif wanted.state == "Rejected":
                await events.post(
                    self.client,
                    events.Event(workload_ref(lease), events.WARNING, str(d.reason), d.message),
                    now,
                )
        return writes

    async def _patch_status(self, obj: Obj, wanted: Obj) -> int:
        """Writes ``wanted`` as the status of ``obj`` (a Site, budget or lease) when it
        differs; 1 if it wrote."""
        current = obj.get("status")
        if dict(current or {}) == wanted:
            return 0
        path = status_path(obj)
        resp = await self.client.patch(path, {"status": _replace_nulls(current, wanted)})
        if not resp.ok and resp.code != 404:
            log.warning("status write %s failed: %s %s", path, resp.code, resp.message)
        return 1

    async def _statuses(
        self,
        site: Obj,
        objects: list[Obj],
        p: Plan,
        outcome: Outcome | None,
        now: datetime,
        offered: Obj | None = None,
    ) -> Obj:
        """Leases, then the budget, then the Site: its Ready, the summary, is written last.
        Returns the Site's status as wanted (``self._writes``: how many were written)."""
        name = site["metadata"]["name"]
        failures = [
            f"{cmd.describe()}: {why}" for cmd, why in (outcome.failures if outcome else [])
        ]
        writes = 0
        bodies = {
            (o["metadata"].get("namespace") or "", o["metadata"]["name"]): o
            for o in objects
            if o.get("kind") == "ComputeLease"
        }
        rejected = outcome.rejected if outcome else {}
        for d in p.leases:
            body = bodies.get(d.lease.key)
            if body is None or d.lease.deleting:
                continue
            wanted = lease_status(d, name, body.get("status"), now, rejected.get(d.lease.key))
            writes += await self._patch_status(body, wanted)
        writes += await self._workload_checks(p, objects, outcome, now)
        for b in (o for o in objects if o.get("kind") == "PowerBudget"):
            b_name = b["metadata"]["name"]
            wanted = budget_status(p, b_name, b["metadata"].get("generation"), b.get("status"), now)
            writes += await self._patch_status(b, wanted)
        wanted = site_status(
            p, site["metadata"].get("generation"), site.get("status"), failures, now, offered
        )
        writes += await self._patch_status(site, wanted)
        self._writes = writes
        return wanted


def _workloads(leases: list[Lease], objects: list[Obj]) -> dict[tuple[str, str], tuple[Lease, Obj]]:
    """The site's Kueue Workloads: the planner's entity and the object, by (namespace, name)."""
    bodies = {
        (o["metadata"].get("namespace") or "", o["metadata"]["name"]): o
        for o in objects
        if o.get("kind") == "Workload"
    }
    return {
        (lease.namespace, lease.name): (lease, bodies[(lease.namespace, lease.name)])
        for lease in leases
        if lease.workload is not None and (lease.namespace, lease.name) in bodies
    }


def _meter_memory_from(site: Obj) -> MeterMemory:
    """A site's meter memory when the operator starts: the disagreement it had reported
    goes on from when it began (an operator restart does not restart its clock)."""
    since = (site.get("status") or {}).get("meterDisagreeingSince")
    try:
        return MeterMemory(disagreeing_since=parse_rfc3339(since) if since else None)
    except ValueError:
        return MeterMemory()


def _replace_nulls(current: Mapping[str, Any] | None, wanted: Obj) -> Obj:
    """A merge patch that makes status exactly ``wanted``: keys it drops are nulled, in
    nested objects too (a merge patch merges objects, so a key left out would stay)."""
    out: Obj = dict(wanted)
    for key, value in (current or {}).items():
        if key not in wanted:
            out[key] = None
        elif isinstance(value, Mapping) and isinstance(wanted[key], Mapping):
            out[key] = _replace_nulls(value, dict(wanted[key]))
    return out
