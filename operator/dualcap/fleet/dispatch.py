"""The dispatcher: every Workload waiting on the manager nominated where it earns the most.

A Workload waits for dispatch while Kueue has reserved quota for it on the manager, its
MultiKueue admission check (controllerName `kueue.x-k8s.io/multikueue`) is Pending, and
it has neither a cluster (`status.clusterName`) nor a nomination. Its GPUs are its pod
sets' (count x GPUs a pod, as the sites' power check counts them); what it pays is the
label `dualcap.io/usd-per-gpu-hour` (else `--usd-per-gpu-hour`), for how long the label
`dualcap.io/expected-hours` (else its `maximumExecutionTimeSeconds`, else
`--expected-hours`). Among the clusters of its MultiKueueConfig, `planning.placement`
chooses; the choice is written as `status.nominatedClusterNames` (MultiKueue then creates
the Workload there, and that site's own power check admits it) and explained in an Event
on the Workload: `Placed`, or `NotPlaced` with every cluster's reason (said once, and
again when the reasons change; it is tried again every pass). A nomination its cluster has
not admitted within `--nomination-timeout` (its site's power check still Pending: the room
went between the offer and the Workload's arrival, or the site's operator is not
answering) is withdrawn: the Workload is nominated to the best of the other clusters
(MultiKueue then deletes its copy from the first), with a `Replaced` Event; when no other
cluster will do, the nomination stays and is judged again after another timeout. Several
replicas may run: one acts at a time, by a Lease in Kueue's namespace (`leader.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dualcap.api.objects import event as event_body
from dualcap.client import Client
from dualcap.fleet.leader import Leader
from dualcap.fleet.workers import KUEUE, Workers
from dualcap.planning.offer import taken
from dualcap.planning.placement import Candidate, Choice, Job, choose
from dualcap.planning.workloads import workload_lease

log = logging.getLogger("dualcap.fleet")
MULTIKUEUE = "kueue.x-k8s.io/multikueue"
DISPATCHER = "dualcap.io/fleet"  # Kueue's multiKueue.dispatcherName
KUEUE_ADMISSION = "kueue-admission"  # Kueue's field manager of a Workload's admission status
PRICE_LABEL = "dualcap.io/usd-per-gpu-hour"
HOURS_LABEL = "dualcap.io/expected-hours"
MAX_HOURS = 8_760.0  # a year: longer is no expectation
Obj = dict[str, Any]


@dataclass
class Settings:
    usd_per_gpu_hour: float = 2.0  # what a GPU hour pays without the label
    expected_hours: float = 1.0  # how long a Workload runs without the label
    gpu_resource: str = "nvidia.com/gpu"
    interval: float = 5.0  # a pass this often (and at once on a change of a Workload)
    nomination_timeout: float = 300.0  # a nomination not admitted this long is withdrawn


@dataclass
class Decision:
    workload: str  # namespace/name
    choice: Choice
    written: bool


@dataclass
class Dispatcher:
    manager: Client
    workers: Workers
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    said: dict[str, str] = field(default_factory=dict)  # Workload uid -> the last Event's message
    leader: Leader | None = None  # None: it acts alone (tests, one replica)
    # Workload uid -> (the cluster it is nominated to, since when): written by us, or first
    # seen (after a restart or a change of leader, the timeout counts from then)
    nominated: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    async def step(self) -> list[Decision]:
        """One pass over the manager's Workloads."""
        now = self.clock()
        checks = await self._multikueue_checks()
        if not checks:
            return []
        got = await self.manager.request("GET", f"{KUEUE}/workloads")
        if not got.ok:
            log.warning("cannot list Workloads: %s %s", got.code, got.message)
            return []
        items = got.body.get("items") or []
        waiting = [(w, c) for w in items if (c := _waiting(w, checks))]
        waiting += self._overdue(items, checks, now)
        if not waiting:
            return []
        workers = await self.workers.discover()
        names = sorted({name for _, clusters in waiting for name in clusters})

        async def candidate(name: str) -> Candidate:
            worker = workers.get(name)
            if worker is None:
                return Candidate(name, None, "no MultiKueueCluster of that name")
            return await self.workers.candidate(worker, now)

        # the workers asked side by side: one that does not answer costs one timeout a pass
        found = await asyncio.gather(*(candidate(n) for n in names))
        candidates = dict(zip(names, found, strict=True))
        out = []
        for wl, clusters in waiting:
            meta = wl["metadata"]
            key = f"{meta.get('namespace')}/{meta['name']}"
            try:
                decision = await self._decide(wl, key, clusters, candidates, now)
            except Exception:  # one Workload that cannot be decided never stops the others
                log.exception("deciding %s", key)
                continue
            out.append(decision)
        return out

    def _overdue(
        self, items: list[Obj], checks: Mapping[str, list[str]], now: datetime
    ) -> list[tuple[Obj, list[str]]]:
        """The Workloads whose nomination its cluster has not admitted within the timeout,
        each with the other clusters it may go to; the nominations seen are remembered."""
        seen: dict[str, tuple[str, datetime]] = {}
        out = []
        for wl in items:
            found = _nominated(wl, checks)
            if found is None:
                continue
            cluster, clusters = found
            uid = str(wl["metadata"].get("uid"))
            kept = self.nominated.get(uid)
            since = kept[1] if kept is not None and kept[0] == cluster else now
            seen[uid] = (cluster, since)
            if (now - since).total_seconds() >= self.settings.nomination_timeout:
                seen[uid] = (cluster, now)  # judged again after another timeout at the latest
                out.append((wl, [c for c in clusters if c != cluster]))
        self.nominated = seen
        return out

    async def _decide(
        self,
        wl: Obj,
        key: str,
        clusters: list[str],
        candidates: dict[str, Candidate],
        now: datetime,
    ) -> Decision:
        job = self._job(wl)
        if isinstance(job, str):
            await self._say(wl, "Warning", "NotPlaced", job, now)
            return Decision(key, Choice(None, {}), False)
        choice = choose(job, [candidates[c] for c in clusters], now)
        written = False
        before = (wl.get("status") or {}).get("nominatedClusterNames") or []
        if choice.chosen is not None:
            written = await self._nominate(wl, choice.chosen.name)
            if written:
                uid = str(wl["metadata"].get("uid"))
                self.nominated[uid] = (choice.chosen.name, now)
                if before:
                    reason, message = (
                        "Replaced",
                        (
                            f"{before[0]} did not admit it within {self.settings.nomination_timeout:g} s;"
                            f" {choice.message}"
                        ),
                    )
                else:
                    reason, message = "Placed", choice.message
                await self._say(wl, "Normal", reason, message, now)
                log.info("%s: %s", key, message)
                # what is nominated is taken: the next Workload of this pass sees the rest
                chosen = candidates[choice.chosen.name]
                if chosen.offer is not None:
                    candidates[chosen.name] = Candidate(
                        chosen.name, taken(chosen.offer, job.gpus, choice.chosen.kw)
                    )
        elif before:
            message = (
                f"{before[0]} has not admitted it within {self.settings.nomination_timeout:g} s,"
                f" and no other cluster will do: {choice.message}"
            )
            await self._say(wl, "Warning", "NotReplaced", message, now)
        else:
            await self._say(wl, "Warning", "NotPlaced", choice.message, now)
        return Decision(key, choice, written)

    async def _multikueue_checks(self) -> dict[str, list[str]]:
        """The manager's MultiKueue admission checks: name -> the clusters of its config."""
        got = await self.manager.request("GET", f"{KUEUE}/admissionchecks")
        if not got.ok:
            log.warning("cannot list AdmissionChecks: %s %s", got.code, got.message)
            return {}
        configs: dict[str, list[str]] = {}
        listed = await self.manager.request("GET", f"{KUEUE}/multikueueconfigs")
        for c in (listed.body or {}).get("items") or [] if listed.ok else []:
            configs[str(c["metadata"]["name"])] = [
                str(n) for n in (c.get("spec") or {}).get("clusters") or []
            ]
        out = {}
        for check in got.body.get("items") or []:
            spec = check.get("spec") or {}
            if spec.get("controllerName") != MULTIKUEUE:
                continue
            params = spec.get("parameters") or {}
            out[str(check["metadata"]["name"])] = configs.get(str(params.get("name")), [])
        return out

    def _job(self, wl: Obj) -> Job | str:
        labels = wl["metadata"].get("labels") or {}
        lease = workload_lease(wl, {"name": "fleet"}, (), self.settings.gpu_resource)
        if lease.spec is None:
            return f"cannot place it: {lease.error}"
        try:
            price = float(labels.get(PRICE_LABEL, self.settings.usd_per_gpu_hour))
            hours_label = labels.get(HOURS_LABEL)
            limit = (wl.get("spec") or {}).get("maximumExecutionTimeSeconds")
            if hours_label is not None:
                hours = float(hours_label)
            elif isinstance(limit, int) and limit > 0:
                hours = limit / 3600
            else:
                hours = self.settings.expected_hours
        except ValueError as err:
            return f"cannot place it: a label is not a number ({err})"
        if not (math.isfinite(price) and price >= 0):
            return f"cannot place it: {PRICE_LABEL} must be a number >= 0"
        if not (math.isfinite(hours) and 0 < hours <= MAX_HOURS):
            return f"cannot place it: {HOURS_LABEL} must be more than 0 and at most {MAX_HOURS}"
        return Job(lease.spec.gpus, price, hours)

    async def _nominate(self, wl: Obj, cluster: str) -> bool:
        """The nomination, written as Kueue's own admission status (``nomination_apply``):
        a 409 (it changed under us) is tried again on the next pass."""
        meta = wl["metadata"]
        got = await self.manager.request(
            "PATCH",
            f"{KUEUE}/namespaces/{meta['namespace']}/workloads/{meta['name']}/status",
            nomination_apply(wl, [cluster]),
            "application/apply-patch+yaml",
            params={"fieldManager": KUEUE_ADMISSION, "force": "true"},
        )
        if not got.ok:
            log.info("nominating %s for %s/%s: %s %s", cluster, meta.get("namespace"), meta["name"], got.code, got.message)  # fmt: skip
        return got.ok

    async def _say(self, wl: Obj, type_: str, reason: str, message: str, now: datetime) -> None:
        meta = wl["metadata"]
        uid = str(meta.get("uid"))
        if self.said.get(uid) == f"{reason}: {message}":
            return
        self.said[uid] = f"{reason}: {message}"
        namespace = str(meta.get("namespace") or "default")
        about = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload", "metadata": meta}
        body = event_body(about, type_, reason, message[:1000], now, "dualcap-fleet", "dualcap-fleet", namespace)  # fmt: skip
        got = await self.manager.create(f"/api/v1/namespaces/{namespace}/events", body)
        if not got.ok:
            log.info(
                "event %s on %s not posted: %s %s", reason, meta["name"], got.code, got.message
            )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    if self.leader is None or await self.leader.hold():
                        await self.step()
                except Exception:  # one bad pass must not end the dispatcher
                    log.exception("dispatch pass failed")
                self.said = {k: v for k, v in list(self.said.items())[-10_000:]}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.interval)
        finally:
            if self.leader is not None:
                await self.leader.release()


# Kueue's conditions of its admission status (its workload.admissionManagedConditions)
ADMISSION_CONDITIONS = (
    "QuotaReserved", "BlockedOnPreemptionGates", "Evicted", "Admitted", "Preempted",
    "Requeued", "DeactivationTarget", "Finished",
)  # fmt: skip


def nomination_apply(wl: Obj, clusters: list[str]) -> Obj:
    """The Workload's admission status as Kueue itself applies it (field manager
    ``kueue-admission``: its workload.PrepareWorkloadPatch), with ``clusters`` nominated.

    Kueue v0.17 records the worker that admitted a Workload by such an apply, setting
    ``clusterName`` and dropping the nomination in one write (its validation refuses both
    at once, and its webhook a cluster that was not nominated). An apply can drop only a
    field its own manager owns, so a nomination written under any other manager is never
    dropped and the Workload is never recorded (found against Kueue v0.17.0). Kueue's own
    tests of an external dispatcher nominate this way; everything Kueue's manager owns is
    applied as it is, under the Workload's resourceVersion, so nothing of Kueue's is lost."""
    meta = wl["metadata"]
    status = wl.get("status") or {}
    out: Obj = {}
    if status.get("admission") is not None:
        out["admission"] = status["admission"]
        out["resourceRequests"] = []
    elif status.get("resourceRequests"):
        out["resourceRequests"] = status["resourceRequests"]
    requeue = status.get("requeueState") or {}
    if requeue.get("count") is not None or requeue.get("requeueAt") is not None:
        out["requeueState"] = requeue
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    out["conditions"] = [conditions[t] for t in ADMISSION_CONDITIONS if t in conditions]
    if status.get("accumulatedPastExecutionTimeSeconds") is not None:
        out["accumulatedPastExecutionTimeSeconds"] = status["accumulatedPastExecutionTimeSeconds"]
    evictions = (status.get("schedulingStats") or {}).get("evictions")
    if evictions:
        out["schedulingStats"] = {"evictions": evictions}
    for key in ("unhealthyNodes", "preemptionGates"):
        if status.get(key):
            out[key] = status[key]
    out["admissionChecks"] = status.get("admissionChecks") or []
    out["nominatedClusterNames"] = clusters
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        "status": out,
    }


def _waiting(wl: Obj, checks: Mapping[str, list[str]]) -> list[str] | None:
    """The clusters a Workload waits to be dispatched to (None: it does not wait)."""
    status = wl.get("status") or {}
    if status.get("clusterName") or status.get("nominatedClusterNames"):
        return None
    return _pending(wl, checks)


def _nominated(wl: Obj, checks: Mapping[str, list[str]]) -> tuple[str, list[str]] | None:
    """A Workload nominated to one cluster that has not admitted it yet: that cluster, and
    the clusters of its MultiKueue check (None: it is not such a Workload)."""
    status = wl.get("status") or {}
    nominated = status.get("nominatedClusterNames") or []
    if status.get("clusterName") or len(nominated) != 1:
        return None
    clusters = _pending(wl, checks)
    return (str(nominated[0]), clusters) if clusters is not None else None


def _pending(wl: Obj, checks: Mapping[str, list[str]]) -> list[str] | None:
    """The clusters of the Workload's MultiKueue check while it is Pending, its quota
    reserved on the manager (None: not dispatchable now)."""
    status = wl.get("status") or {}
    if wl["metadata"].get("deletionTimestamp"):
        return None
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conds.get("QuotaReserved") != "True" or conds.get("Finished") == "True":
        return None
    for entry in status.get("admissionChecks") or []:
        if entry.get("name") in checks and entry.get("state") == "Pending":
            return checks[entry["name"]]
    return None


def run(
    settings: Settings,
    namespace: str = "kueue-system",
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """``dualcap fleet``: until interrupted (SIGTERM or SIGINT end the pass in progress)."""
    import signal

    from dualcap.client import connection_info
    from dualcap.login import load as load_credentials

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    creds = load_credentials(kubeconfig, context)  # CredentialsError: the CLI says it

    async def main() -> None:
        manager = Client(connection_info(creds), credentials=creds)
        workers = Workers(manager, namespace)
        leader = Leader(manager, namespace, duration_seconds=max(15, int(3 * settings.interval)))
        dispatcher = Dispatcher(manager, workers, settings, leader=leader)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        log.info("dispatching for MultiKueue (dispatcherName %s) from %s", DISPATCHER, creds.server)
        try:
            await dispatcher.run(stop)
        finally:
            await workers.close()
            await manager.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
