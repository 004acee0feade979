"""The operator's own view of Nodes and Pods: list + watch, slim projections, by site.

kopf serves Sites, PowerBudgets and ComputeLeases (a few hundred objects). Nodes and Pods
are thousands to tens of thousands, and kopf's per-object machinery does not scale to them:
before its indexes are complete every object's worker waits on one condition that every
other object notifies, quadratic on a cold start (2,500 objects took 47 s; 25,000 would
take hours), and about a millisecond per watch event after that. Nor does a kopf index
drop what a re-list no longer has.

An informer here is what client-go's is: one LIST (paged), then a WATCH from its
resourceVersion with bookmarks; a closed stream resumes from the last resourceVersion; a
410 Gone re-lists, and the re-list *replaces* the view (what it lacks is gone). Every
change calls ``on_change`` (the handlers wake the site it belongs to).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from dualcap.api.common import LEASE_LABEL, SITE_LABEL, LabelSelector
from dualcap.api.names import PLANNED_NODE_ANNOTATION, WORKLOAD_LABEL
from dualcap.client import Client, StreamError
from dualcap.cluster import projections

log = logging.getLogger("dualcap")
Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, name
PAGE = 500
WATCH_SECONDS = 300  # the server closes a watch after this; it resumes from its last RV


def _gated(labels: Mapping[str, str]) -> bool:
    """A lease's pod, or a pod of a Workload dualcap's power check admitted."""
    return LEASE_LABEL in labels or WORKLOAD_LABEL in labels


# Stamps of change, one increasing count for the whole process: the snapshot tokens of the
# views (ClusterView, KueueView) and of dualcap's own objects (Resources).
stamp = itertools.count(1).__next__


class Gone(Exception):
    """410: the resourceVersion is older than the server's history; re-list."""


class Informer:
    def __init__(
        self,
        client: Client,
        path: str,
        project: Callable[[Mapping[str, Any]], Obj],
        on_change: Callable[[str, Obj | None, Obj | None], None],
        name: str,
    ):
        self.client, self.path, self.project, self.on_change = client, path, project, on_change
        self.name = name
        self.items: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self._rv = ""

    @staticmethod
    def key(obj: Mapping[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name")))

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if not self._rv:
                    await self._list()
                await self._watch()
                backoff = 0.5
            except Gone:
                log.debug("%s: resourceVersion %s is gone (410): re-listing", self.name, self._rv)
                self._rv = ""  # re-list
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API is down or slow: keep the view, retry
                log.warning("%s: watch failed (%s); retrying in %.1fs", self.name, err, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _list(self) -> None:
        fresh: dict[Key, Obj] = {}
        cont = ""
        while True:
            params = {"limit": str(PAGE)}
            if cont:
                params["continue"] = cont
            resp = await self.client.request("GET", self.path, params=params)
            if resp.code == 410:
                cont = ""  # the continue token expired: start the listing again
                fresh.clear()
                continue
            if not resp.ok:
                raise RuntimeError(f"list {self.path}: {resp.code} {resp.message}")
            body = resp.body
            for item in body.get("items") or []:
                obj = self.project(item)
                fresh[self.key(obj)] = obj
            meta = body.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                rv = str(meta.get("resourceVersion") or "")
                break
        old = self.items
        self.items = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None or before.get("metadata", {}).get("resourceVersion") != obj[
                "metadata"
            ].get("resourceVersion"):
                self.on_change("ADDED" if before is None else "MODIFIED", obj, before)
        for key in old.keys() - fresh.keys():
            self.on_change("DELETED", None, old[key])  # gone while we were not watching
        self._rv = rv
        self.synced.set()
        log.debug("%s: listed %d at resourceVersion %s", self.name, len(fresh), rv)

    async def _watch(self) -> None:
        params = {
            "watch": "1",
            "resourceVersion": self._rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        try:
            async for event in self.client.stream(self.path, params, WATCH_SECONDS + 30):
                self._event(event)
        except StreamError as err:
            if err.code == 410:
                raise Gone() from None
            raise

    def _event(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise RuntimeError(f"watch {self.path}: {obj.get('message')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._rv = str(rv)
        if kind == "BOOKMARK":
            return
        slim = self.project(obj)
        key = self.key(slim)
        before = self.items.get(key)
        if kind == "DELETED":
            self.items.pop(key, None)
            self.on_change(kind, None, before or slim)
        else:
            self.items[key] = slim
            self.on_change(str(kind), slim, before)


class ClusterView:
    """Nodes and Pods, kept by the informers, indexed the way the site loops read them.

    The view knows no Site: which site a node belongs to is the Sites' selectors' business
    (``Operator.sites_selecting``). A change calls ``wake_labels`` with the labels of the
    node concerned (before and after, or of the node a pod runs on), and ``wake_site`` for
    a lease pod, which carries its site's label."""

    def __init__(
        self,
        client: Client,
        wake_labels: Callable[[Mapping[str, str]], None],
        wake_site: Callable[[str], None],
        namespaces: list[str],
    ):
        self.wake_labels, self.wake_site = wake_labels, wake_site
        self.nodes: dict[str, Obj] = {}
        self.nodes_by_site_label: dict[str, dict[str, Obj]] = {}
        self.pods_by_node: dict[str, dict[Key, Obj]] = {}
        self.lease_pods_by_site: dict[str, dict[Key, Obj]] = {}
        # What changed when, for the sites' snapshot tokens (``site_version``): the stamp of
        # the last node or pod event, and of the last change under each site label (a node
        # with the label, or a pod on such a node) and of each site's lease pods. Stamps
        # come from one counter for the whole process (a view made again never repeats a
        # token of the one before); what never changed counts from the view's birth.
        self.born = self.changes = stamp()
        self._label_changed: dict[str, int] = {}
        self._lease_pods_changed: dict[str, int] = {}
        self.informers = [Informer(client, "/api/v1/nodes", projections.node, self._node, "nodes")]
        pod_paths = (
            [f"/api/v1/namespaces/{ns}/pods" for ns in namespaces]
            if namespaces
            else ["/api/v1/pods"]
        )
        self.informers += [
            Informer(client, path, projections.pod, self._pod, f"pods {path}") for path in pod_paths
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(i.run(), name=i.name) for i in self.informers]

    async def synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def nodes_for(self, selector: LabelSelector) -> list[Obj]:
        """The nodes ``selector`` selects (the site label, when it names one, narrows the
        search; the selector alone decides)."""
        label = selector.site_label()
        candidates = (
            self.nodes_by_site_label.get(label, {}) if label is not None else self.nodes
        ).values()
        return [n for n in candidates if selector.matches(n["metadata"].get("labels"))]

    def site_version(self, site: str, selector: LabelSelector | None) -> Hashable:
        """Changes with every event that can change what ``site`` gathers from the view:
        its nodes (by its site label, or any node when its selector names none), the pods
        on them, and its lease pods."""
        label = selector.site_label() if selector is not None else None
        nodes = self._label_changed.get(label, self.born) if label is not None else self.changes
        return (label is None, nodes, self._lease_pods_changed.get(site, self.born))

    # --- indexes, kept on every change -------------------------------------------------
    def _node(self, kind: str, obj: Obj | None, old: Obj | None) -> None:
        self.changes = stamp()
        for node, add in ((old, False), (obj, True)):
            if node is None:
                continue
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            label = labels.get(SITE_LABEL)
            if label is not None:
                self._label_changed[label] = self.changes
            if add:
                self.nodes[name] = node
                if label is not None:
                    self.nodes_by_site_label.setdefault(label, {})[name] = node
            else:
                self.nodes.pop(name, None)
                if label is not None:
                    by_name = self.nodes_by_site_label.get(label, {})
                    by_name.pop(name, None)
                    if not by_name:
                        self.nodes_by_site_label.pop(label, None)
            self.wake_labels(labels)

    def _pod_node(self, pod: Obj) -> str | None:
        return (pod.get("spec") or {}).get("nodeName") or (
            pod["metadata"].get("annotations") or {}
        ).get(PLANNED_NODE_ANNOTATION)

    def _pod(self, kind: str, obj: Obj | None, old: Obj | None) -> None:
        self.changes = stamp()
        for pod, add in ((old, False), (obj, True)):
            if pod is None:
                continue
            key = Informer.key(pod)
            node = self._pod_node(pod)
            labels = pod["metadata"].get("labels") or {}
            lease_site = labels.get(SITE_LABEL) if _gated(labels) else None
            host = self.nodes.get(node) if node else None
            label = ((host["metadata"].get("labels") or {}).get(SITE_LABEL)) if host else None
            if label is not None:
                self._label_changed[label] = self.changes
            if lease_site:
                self._lease_pods_changed[lease_site] = self.changes
            if node:
                on_node = self.pods_by_node.setdefault(node, {})
                if add:
                    on_node[key] = pod
                else:
                    on_node.pop(key, None)
                    if not on_node:
                        del self.pods_by_node[node]
            if lease_site:
                of_site = self.lease_pods_by_site.setdefault(lease_site, {})
                if add:
                    of_site[key] = pod
                else:
                    of_site.pop(key, None)
                    if not of_site:
                        del self.lease_pods_by_site[lease_site]
        pod = obj or old
        assert pod is not None
        labels = pod["metadata"].get("labels") or {}
        if _gated(labels) and labels.get(SITE_LABEL):
            self.wake_site(labels[SITE_LABEL])
        host = self.nodes.get(self._pod_node(pod) or "")
        if host is not None:
            self.wake_labels(host["metadata"].get("labels") or {})
