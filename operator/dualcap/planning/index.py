"""A fleet's objects grouped once for fast per-site lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dualcap.api.common import (
    LEASE_LABEL,
    SITE_LABEL,
    LabelSelector,
)
from dualcap.api.names import WORKLOAD_LABEL
from dualcap.planning.entities import (
    BlockReport,
)
from dualcap.planning.fields import Obj, pod_node
from dualcap.planning.measured import report_from


class ObjectIndex:
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
        # Kueue: the AdmissionChecks, the Workloads, and the pods of Workloads dualcap's
        # power check admitted (labelled by its podSetUpdates), by site
        self.checks: list[Obj] = []
        self.workloads: list[Obj] = []
        self.workload_pods_by_site: dict[str, list[Obj]] = defaultdict(list)
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
                if labels and SITE_LABEL in labels:
                    if LEASE_LABEL in labels:
                        lease_pods[labels[SITE_LABEL]].append(obj)
                    elif WORKLOAD_LABEL in labels:
                        self.workload_pods_by_site[labels[SITE_LABEL]].append(obj)
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
            elif kind == "Workload":
                self.workloads.append(obj)
            elif kind == "AdmissionCheck":
                self.checks.append(obj)
            elif kind == "MinerBlock":
                report = report_from(obj)
                if report is not None:
                    self.reports[report.node] = report

    def candidates(self, selector: LabelSelector) -> list[Obj]:
        """The nodes that may match ``selector``: those with its site label, when it asks
        for one; else every node."""
        site = (selector.match_labels or {}).get(SITE_LABEL)
        return self.nodes_by_site_label.get(site, []) if site is not None else self.nodes
