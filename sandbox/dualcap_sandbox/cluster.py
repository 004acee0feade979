"""What the control plane and the kubelets of a real cluster would do, in small pieces that
tests can switch off: a scheduler, kubelets, NoExecute taint eviction, DaemonSets, garbage
collection by ownerReference, namespace deletion.

Store listeners only note what changed; one loop does the writes (never from inside a
write), with timers for what takes time (a pod starting, a pod terminating, a toleration
running out).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dualcap_sandbox.quantity import quantity
from dualcap_sandbox.resources import ResourceType
from dualcap_sandbox.store import Obj, Store, now_rfc3339
from dualcap_sandbox.tolerations import eviction_delay, tolerated

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


@dataclass
class Behaviour:
    """Which pieces run, and how long things take (seconds)."""

    scheduler: bool = True
    kubelet: bool = True
    taint_eviction: bool = True
    daemonsets: bool = True
    garbage_collector: bool = True
    namespaces: bool = True
    pod_start_seconds: float = 0.0
    pod_termination_seconds: float = 0.2  # a miner's preStop: the time a curtailment takes


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _match_expression(expr: Mapping[str, Any], value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def node_matches(pod_spec: Mapping[str, Any], node: Obj) -> bool:
    """nodeSelector and required node affinity (matchExpressions, matchFields)."""
    labels = node["metadata"].get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms:

        def term_ok(term: Mapping[str, Any]) -> bool:
            for expr in term.get("matchExpressions") or []:
                if not _match_expression(expr, labels.get(expr.get("key"))):
                    return False
            for expr in term.get("matchFields") or []:
                if expr.get("key") == "metadata.name" and not _match_expression(
                    expr, node["metadata"]["name"]
                ):
                    return False
            return True

        if not any(term_ok(t) for t in terms):
            return False
    return True


def pod_requests(pod: Obj) -> dict[str, float]:
    """Requests (limits where requests are absent, as for extended resources)."""
    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for k, v in merged.items():
            try:
                total[k] = total.get(k, 0.0) + quantity(v)
            except ValueError:
                continue
    for c in spec.get("initContainers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for k, v in merged.items():
            try:
                total[k] = max(total.get(k, 0.0), quantity(v))
            except ValueError:
                continue
    return total


class Cluster:
    def __init__(self, store: Store, api: Any, behaviour: Behaviour | None = None):
        self.store = store
        self.api = api  # for deletions with the API's semantics (grace, GC)
        self.b = behaviour or Behaviour()
        self.rt: dict[str, ResourceType] = {}
        for group, name in (
            ("", "pods"),
            ("", "nodes"),
            ("", "namespaces"),
            ("apps", "daemonsets"),
        ):
            rt = store.rt(group, name)
            assert rt is not None, f"built-in resource {name} missing"
            self.rt[name] = rt
        self.wake = asyncio.Event()
        self.pending: set[tuple[str, str]] = set()  # pods to schedule
        self.retry_all = False
        self.dirty_nodes: set[str] = set()
        self.dirty_pods: set[tuple[str, str]] = set()
        self.dirty_ds = True
        self.deleted_uids: list[str] = []
        self.dirty_namespaces: set[str] = set()
        self.timers: dict[tuple[str, str, str], float] = {}  # (what, ns, name) -> due
        self.down_nodes: set[str] = set()  # kubelets stopped by fault injection
        self.pods_by_node: dict[str, set[tuple[str, str]]] = {}
        self._ips = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.errors: list[str] = []
        store.listeners.append(self._on_event)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        ns_rt = self.rt["namespaces"]
        for name in DEFAULT_NAMESPACES:
            if self.store.get(ns_rt, None, name) is None:
                self.store.create(
                    ns_rt,
                    {
                        "metadata": {"name": name},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    },
                )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sandbox-cluster")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Fault injection: a node's kubelet stops (Ready Unknown) or comes back."""
        (self.down_nodes.discard if ready else self.down_nodes.add)(name)
        node = self.store.get(self.rt["nodes"], None, name)
        if node is not None:
            self._write_ready(node, ready)

    # --- events --------------------------------------------------------------------------

    def _on_event(self, rt: Any, type_: str, obj: Obj, old: Obj | None) -> None:
        kind = rt.kind
        meta = obj["metadata"]
        if kind == "Pod":
            key = (meta.get("namespace") or "", meta["name"])
            node = (obj.get("spec") or {}).get("nodeName")
            old_node = ((old or {}).get("spec") or {}).get("nodeName")
            if old_node and old_node != node:
                self.pods_by_node.get(old_node, set()).discard(key)
            if type_ == "DELETED":
                if node:
                    self.pods_by_node.get(node, set()).discard(key)
                self.pending.discard(key)
                self.retry_all = True
                self.dirty_ds = True
            else:
                if node:
                    self.pods_by_node.setdefault(node, set()).add(key)
                else:
                    self.pending.add(key)
                self.dirty_pods.add(key)
                if any(r.get("kind") == "DaemonSet" for r in meta.get("ownerReferences") or []):
                    self.dirty_ds = True
        elif kind == "Node":
            self.dirty_nodes.add(meta["name"])
            self.retry_all = True
            self.dirty_ds = True
        elif kind == "DaemonSet":
            self.dirty_ds = True
        elif kind == "Namespace":
            self.dirty_namespaces.add(meta["name"])
        if type_ == "DELETED" and meta.get("uid"):
            self.deleted_uids.append(meta["uid"])
        if kind != "Namespace" and meta.get("namespace"):
            ns = self.store.get(self.rt["namespaces"], None, meta["namespace"])
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.dirty_namespaces.add(meta["namespace"])
        self.wake.set()

    # --- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            due = min(self.timers.values(), default=None)
            timeout = None if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)
            self.wake.clear()
            try:
                self.step()
            except Exception as err:  # a bug here must not stop the cluster
                self.errors.append(repr(err))
            await asyncio.sleep(0)

    def step(self) -> None:
        """One round of every enabled piece."""
        for _ in range(20):  # until quiet (each write may make more work)
            before = self.store.rv
            self._timers()
            if self.b.namespaces:
                self._namespaces()
            if self.b.garbage_collector:
                self._collect()
            if self.b.kubelet:
                self._kubelet()
            if self.b.taint_eviction:
                self._evict()
            if self.b.daemonsets:
                self._daemonsets()
            if self.b.scheduler:
                self._schedule()
            self.dirty_nodes.clear()
            if self.store.rv == before:
                break

    # --- timers --------------------------------------------------------------------------

    def _timers(self) -> None:
        now = time.monotonic()
        for key, due in list(self.timers.items()):
            if due > now:
                continue
            del self.timers[key]
            what, ns, name = key
            pod_rt = self.rt["pods"]
            pod = self.store.get(pod_rt, ns, name)
            if pod is None:
                continue
            if what == "start":
                self._start(pod)
            elif what == "terminate":
                self.store.remove(pod_rt, pod)
            elif what == "evict" and not pod["metadata"].get("deletionTimestamp"):
                self.api.delete_object(pod_rt, pod)

    # --- kubelet -------------------------------------------------------------------------

    def _kubelet(self) -> None:
        nodes_rt, pod_rt = self.rt["nodes"], self.rt["pods"]
        for name in list(self.dirty_nodes):
            node = self.store.get(nodes_rt, None, name)
            if node is not None and name not in self.down_nodes:
                conditions = (node.get("status") or {}).get("conditions") or []
                if not any(c.get("type") == "Ready" for c in conditions):
                    self._write_ready(node, True)
        pods, self.dirty_pods = self.dirty_pods, set()
        for key in pods:
            pod = self.store.get(pod_rt, key[0], key[1])
            if pod is None:
                continue
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name or node_name in self.down_nodes:
                continue
            node = self.store.get(nodes_rt, None, node_name)
            if pod["metadata"].get("deletionTimestamp"):
                if ("terminate", *key) not in self.timers:
                    grace = pod["metadata"].get("deletionGracePeriodSeconds")
                    delay = (
                        self.b.pod_termination_seconds
                        if grace is None
                        else min(float(grace), self.b.pod_termination_seconds)
                    )
                    self.timers[("terminate", *key)] = time.monotonic() + delay
                continue
            if node is None or not node_ready(node):
                continue
            if self.b.taint_eviction:
                no_execute = [
                    t
                    for t in (node.get("spec") or {}).get("taints") or []
                    if t.get("effect") == "NoExecute"
                ]
                if no_execute:
                    self._evict_pod(pod, no_execute)
                    if self.store.get(pod_rt, key[0], key[1]) is not pod:
                        continue
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if phase == "Pending" and ("start", *key) not in self.timers:
                self.timers[("start", *key)] = time.monotonic() + self.b.pod_start_seconds

    def _start(self, pod: Obj) -> None:
        if (
            pod["metadata"].get("deletionTimestamp")
            or (pod.get("status") or {}).get("phase") != "Pending"
        ):
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node in self.down_nodes:
            return
        new = copy.deepcopy(pod)
        n = next(self._ips)
        now = now_rfc3339()
        status = new.setdefault("status", {})
        status.update(
            phase="Running",
            podIP=f"10.244.{(n >> 8) & 255}.{n & 255}",
            hostIP="192.0.2.1",
            startTime=now,
            conditions=[
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            containerStatuses=[
                {
                    "name": c.get("name", "c"),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": c.get("image", ""),
                    "imageID": "",
                    "state": {"running": {"startedAt": now}},
                }
                for c in new["spec"].get("containers") or []
            ],
        )
        self.store.replace(self.rt["pods"], new, pod)

    def _write_ready(self, node: Obj, ready: bool) -> None:
        new = copy.deepcopy(node)
        conditions = [
            c
            for c in (new.setdefault("status", {}).get("conditions") or [])
            if c.get("type") != "Ready"
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else "Unknown",
                "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                "message": "kubelet is posting ready status"
                if ready
                else "Kubelet stopped posting node status.",
                "lastTransitionTime": now_rfc3339(),
                "lastHeartbeatTime": now_rfc3339(),
            }
        )
        new["status"]["conditions"] = conditions
        self.store.replace(self.rt["nodes"], new, node)

    # --- scheduler -----------------------------------------------------------------------

    def _used(self, node_name: str) -> dict[str, float]:
        used: dict[str, float] = {"pods": 0.0}
        pod_rt = self.rt["pods"]
        for key in self.pods_by_node.get(node_name, ()):
            pod = self.store.get(pod_rt, key[0], key[1])
            if pod is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            used["pods"] += 1
            for k, v in pod_requests(pod).items():
                used[k] = used.get(k, 0.0) + v
        return used

    def feasible(self, pod: Obj, node: Obj) -> str | None:
        """None if the pod can go on the node, else why not."""
        spec = pod.get("spec") or {}
        tolerations = spec.get("tolerations") or []
        if not node_ready(node):
            return "node(s) were not ready"
        if (node.get("spec") or {}).get("unschedulable") and not tolerated(
            tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        ):
            return "node(s) were unschedulable"
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(
                tolerations, taint
            ):
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
        if not node_matches(spec, node):
            return "node(s) didn't match Pod's node affinity/selector"
        allocatable = (
            (node.get("status") or {}).get("allocatable")
            or (node.get("status") or {}).get("capacity")
            or {}
        )
        requests = pod_requests(pod)
        if not requests:
            return None
        used = self._used(node["metadata"]["name"])
        for k, v in requests.items():
            if v <= 0:
                continue
            if k not in allocatable:
                if "/" in k:
                    return f"Insufficient {k}"
                continue
            try:
                cap = quantity(allocatable[k])
            except ValueError:
                continue
            if used.get(k, 0.0) + v > cap + 1e-9:
                return f"Insufficient {k}"
        return None

    def _schedule(self) -> None:
        if not self.pending:
            return
        pod_rt, nodes_rt = self.rt["pods"], self.rt["nodes"]
        nodes = sorted(self.store.list_objects(nodes_rt), key=lambda n: n["metadata"]["name"])
        for key in sorted(self.pending):
            pod = self.store.get(pod_rt, key[0], key[1])
            if (
                pod is None
                or (pod.get("spec") or {}).get("nodeName")
                or pod["metadata"].get("deletionTimestamp")
            ):
                self.pending.discard(key)
                continue
            if (pod.get("spec") or {}).get(
                "schedulerName", "default-scheduler"
            ) != "default-scheduler":
                continue
            reasons: dict[str, int] = {}
            best = None
            for node in nodes:
                why = self.feasible(pod, node)
                if why is None:
                    load = len(self.pods_by_node.get(node["metadata"]["name"], ()))
                    if best is None or load < best[0]:
                        best = (load, node["metadata"]["name"])
                else:
                    reasons[why] = reasons.get(why, 0) + 1
            new = copy.deepcopy(pod)
            conditions = [
                c
                for c in (new.setdefault("status", {}).get("conditions") or [])
                if c.get("type") != "PodScheduled"
            ]
            if best is not None:
                new["spec"]["nodeName"] = best[1]
                conditions.append(
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
                )
                new["status"]["conditions"] = conditions
                self.pending.discard(key)
                self.store.replace(pod_rt, new, pod)
            else:
                message = (
                    f"0/{len(nodes)} nodes are available: "
                    + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                    + "."
                )
                current = next(
                    (
                        c
                        for c in (pod.get("status") or {}).get("conditions") or []
                        if c.get("type") == "PodScheduled"
                    ),
                    None,
                )
                if current is None or current.get("message") != message:
                    conditions.append(
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastTransitionTime": now_rfc3339(),
                        }
                    )
                    new["status"]["conditions"] = conditions
                    self.store.replace(pod_rt, new, pod)
        self.retry_all = False

    # --- taint eviction ------------------------------------------------------------------

    def _evict(self) -> None:
        nodes_rt, pod_rt = self.rt["nodes"], self.rt["pods"]
        for name in list(self.dirty_nodes):
            node = self.store.get(nodes_rt, None, name)
            if node is None:
                continue
            taints = [
                t
                for t in (node.get("spec") or {}).get("taints") or []
                if t.get("effect") == "NoExecute"
            ]
            for key in list(self.pods_by_node.get(name, ())):
                pod = self.store.get(pod_rt, key[0], key[1])
                if pod is None or pod["metadata"].get("deletionTimestamp"):
                    continue
                self._evict_pod(pod, taints)

    def _evict_pod(self, pod: Obj, taints: list[Mapping[str, Any]]) -> None:
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        key = ("evict", pod["metadata"].get("namespace") or "", pod["metadata"]["name"])
        delay = eviction_delay(tolerations, taints)
        if delay <= 0:
            self.api.delete_object(self.rt["pods"], pod)
            self.timers.pop(key, None)
        elif math.isfinite(delay):
            self.timers.setdefault(key, time.monotonic() + delay)
        else:
            self.timers.pop(key, None)

    # --- daemonsets ----------------------------------------------------------------------

    def _daemonsets(self) -> None:
        if not self.dirty_ds:
            return
        self.dirty_ds = False
        ds_rt, nodes_rt, pod_rt = self.rt["daemonsets"], self.rt["nodes"], self.rt["pods"]
        nodes = list(self.store.list_objects(nodes_rt))
        for ds in list(self.store.list_objects(ds_rt)):
            if ds["metadata"].get("deletionTimestamp"):
                continue
            template = (ds.get("spec") or {}).get("template") or {}
            tpl_spec = template.get("spec") or {}
            tolerations = list(tpl_spec.get("tolerations") or []) + DAEMON_TOLERATIONS
            uid = ds["metadata"]["uid"]
            owned = [o for _, o in self.store.dependents(uid) if o.get("kind") == "Pod"]
            by_node: dict[str, list[Obj]] = {}
            for pod in owned:
                by_node.setdefault((pod.get("spec") or {}).get("nodeName") or "", []).append(pod)
            desired = current = ready = 0
            for node in nodes:
                name = node["metadata"]["name"]
                eligible = node_matches(tpl_spec, node) and all(
                    tolerated(tolerations, t)
                    for t in (node.get("spec") or {}).get("taints") or []
                    if t.get("effect") in ("NoSchedule", "NoExecute")
                )
                pods_here = by_node.get(name, [])
                if eligible:
                    desired += 1
                    live = [p for p in pods_here if not p["metadata"].get("deletionTimestamp")]
                    if live:
                        current += 1
                        ready += (
                            sum(
                                1 for p in live if (p.get("status") or {}).get("phase") == "Running"
                            )
                            > 0
                        )
                    elif not pods_here:  # a terminating one goes first
                        self._daemon_pod(ds, template, name, tolerations)
                        current += 1
                elif not node_matches(tpl_spec, node):
                    for pod in pods_here:
                        if not pod["metadata"].get("deletionTimestamp"):
                            self.api.delete_object(pod_rt, pod)
            status = {
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": current,
                "numberReady": int(ready),
                "numberAvailable": int(ready),
                "numberMisscheduled": 0,
                "observedGeneration": ds["metadata"].get("generation", 1),
            }
            if ds.get("status") != status:
                new = copy.deepcopy(ds)
                new["status"] = status
                self.store.replace(ds_rt, new, ds)

    def _daemon_pod(
        self, ds: Obj, template: Mapping[str, Any], node: str, tolerations: list[Any]
    ) -> None:
        meta = template.get("metadata") or {}
        spec: dict[str, Any] = copy.deepcopy(template.get("spec") or {})
        spec["nodeName"] = node
        spec["tolerations"] = tolerations
        pod_meta: dict[str, Any] = {
            "name": f"{ds['metadata']['name']}-{secrets.token_hex(3)[:5]}",
            "namespace": ds["metadata"]["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds["metadata"]["name"],
                    "uid": ds["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if meta.get("annotations"):
            pod_meta["annotations"] = dict(meta["annotations"])
        spec.setdefault("containers", [{"name": "c", "image": "pause"}])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        self.store.create(self.rt["pods"], pod)

    # --- garbage collection and namespaces -----------------------------------------------

    def _collect(self) -> None:
        uids, self.deleted_uids = self.deleted_uids, []
        for uid in uids:
            for rt, dep in self.store.dependents(uid):
                remaining = [
                    r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                if remaining:
                    continue  # other owners keep it
                if not dep["metadata"].get("deletionTimestamp"):
                    self.api.delete_object(rt, dep)

    def _namespaces(self) -> None:
        names, self.dirty_namespaces = self.dirty_namespaces, set()
        ns_rt = self.rt["namespaces"]
        for name in names:
            ns = self.store.get(ns_rt, None, name)
            if ns is None or not ns["metadata"].get("deletionTimestamp"):
                continue
            left = 0
            for rt in self.store.types():
                if not rt.namespaced:
                    continue
                for obj in list(self.store.list_objects(rt, name)):
                    left += 1
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.api.delete_object(rt, obj)
            if left == 0:
                self.store.remove(ns_rt, ns)
            else:
                self.dirty_namespaces.add(name)
                self.timers[("ns", "", name)] = time.monotonic() + 0.05
