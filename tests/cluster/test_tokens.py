"""A site's snapshot token: its entities and gathered objects are kept while the token
holds, so the token must change with every event that can change what the site reads.

Random sequences of the events the operator's informers and handlers see (nodes added,
relabelled and deleted, pods coming and going on them, lease pods, leases, budgets, a
Site's selector changed, Kueue objects), applied through the same handlers; after every
step each site's kept objects must equal a fresh gathering, and its snapshot built with
the token must equal one built from nothing. A missed change here would plan on a view
that is gone."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from dualcap.api.names import LEASE_LABEL, SITE_LABEL
from dualcap.cluster.informer import ClusterView
from dualcap.cluster.kueue import KueueView
from dualcap.cluster.operator import Operator
from dualcap.planning import ParseCache
from dualcap.planning.snapshot import build_one

Obj = dict[str, Any]
NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
NODES = [f"n{i}" for i in range(6)]
PODS = [f"p{i}" for i in range(8)]


def site(name: str, rv: int, selector: dict[str, str] | None) -> Obj:
    spec: dict[str, Any] = {
        "facility": {"pue": 1.1},
        "asic": {"powerKW": 100, "hashrateTHs": 1000, "hashpriceUSDPerPHDay": 45,
                 "nodeSelector": {"matchLabels": {"role": "asic"}},
                 "miningPodSelector": {"matchLabels": {"app": "miner"}}},
        "gpu": {"powerPerGPUKW": 1.0, "nodeSelector": {"matchLabels": {"role": "gpu"}}},
    }  # fmt: skip
    if selector is not None:
        spec["nodeSelector"] = {"matchLabels": selector}
    return {"apiVersion": "dualcap.io/v1alpha1", "kind": "Site",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(rv)},
            "spec": spec}  # fmt: skip


class World:
    """The operator's views, fed event by event, and the objects as they stand."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rv = 10
        self.op = Operator()
        self.view = ClusterView(None, lambda labels: None, lambda site: None, [])  # type: ignore[arg-type]
        self.kueue = KueueView(None, lambda site: None)  # type: ignore[arg-type]
        self.kueue.served = True
        self.op.view, self.op.kueue = self.view, self.kueue
        self.nodes: dict[str, Obj] = {}
        self.pods: dict[str, Obj] = {}
        self.leases: dict[str, Obj] = {}
        self.budgets: dict[str, Obj] = {}
        self.sites = {"a": site("a", 1, None), "b": site("b", 1, {"zone": "z1"})}
        for name, body in self.sites.items():
            self.op.resources.site_event(name, body)

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def step(self) -> str:
        rng = self.rng
        what = rng.choice(["node", "node", "node-delete", "pod", "pod", "pod", "pod-delete",
                           "lease", "budget", "site", "check"])  # fmt: skip
        if what == "node":
            name = rng.choice(NODES)
            labels = {"role": rng.choice(["asic", "gpu"])}
            if (label := rng.choice(["a", "b", None])) is not None:
                labels[SITE_LABEL] = label
            if rng.random() < 0.5:
                labels["zone"] = "z1"
            old = self.nodes.get(name)
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels,
                                 "resourceVersion": self.next_rv()},
                    "spec": {}, "status": {"allocatable": {"nvidia.com/gpu": "8"},
                                           "conditions": [{"type": "Ready", "status": rng.choice(["True", "True", "False"])}]}}  # fmt: skip
            self.nodes[name] = node
            self.view._node("MODIFIED" if old else "ADDED", node, old)
        elif what == "node-delete" and self.nodes:
            name = rng.choice(sorted(self.nodes))
            self.view._node("DELETED", None, self.nodes.pop(name))
        elif what == "pod":
            name = rng.choice(PODS)
            old = self.pods.get(name)
            labels: dict[str, str] = {"app": "miner"}
            if rng.random() < 0.5:
                labels = {SITE_LABEL: rng.choice(["a", "b"]), LEASE_LABEL: rng.choice(["l0", "l1"])}
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                                "labels": labels, "resourceVersion": self.next_rv()},
                   "spec": {"containers": [{"name": "c", "image": "x",
                                            "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
                   "status": {"phase": rng.choice(["Pending", "Running"])}}  # fmt: skip
            node = (old or {}).get("spec", {}).get("nodeName") or rng.choice([*NODES, None])
            if node is not None:
                pod["spec"]["nodeName"] = node
            self.pods[name] = pod
            self.view._pod("MODIFIED" if old else "ADDED", pod, old)
        elif what == "pod-delete" and self.pods:
            name = rng.choice(sorted(self.pods))
            self.view._pod("DELETED", None, self.pods.pop(name))
        elif what == "lease":
            name = rng.choice(["l0", "l1"])
            if name in self.leases and rng.random() < 0.3:
                self.leases.pop(name)
                self.op.resources.lease_event(("ns", name), None)
            else:
                lease = {"apiVersion": "dualcap.io/v1alpha1", "kind": "ComputeLease",
                         "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                                      "resourceVersion": self.next_rv(),
                                      "creationTimestamp": "2026-07-14T10:00:00Z"},
                         "spec": {"siteRef": rng.choice(["a", "b"]), "gpus": 8,
                                  "gpusPerPod": 8, "priority": rng.randint(0, 5),
                                  "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip
                self.leases[name] = lease
                self.op.resources.lease_event(("ns", name), lease)
        elif what == "budget":
            name = rng.choice(["b0", "b1"])
            budget = {"apiVersion": "dualcap.io/v1alpha1", "kind": "PowerBudget",
                      "metadata": {"name": name, "uid": f"uid-{name}",
                                   "resourceVersion": self.next_rv()},
                      "spec": {"siteRef": rng.choice(["a", "b"]),
                               "limitKW": rng.choice([100, 500, 1000])}}  # fmt: skip
            self.budgets[name] = budget
            self.op.resources.budget_event(name, budget)
        elif what == "site":
            name = rng.choice(["a", "b"])
            body = site(name, self.rv, rng.choice([None, {"zone": "z1"}]))
            self.next_rv()
            self.sites[name] = body
            self.op.resources.site_event(name, body)
        elif what == "check":
            check = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
                     "metadata": {"name": "power", "uid": "uid-check",
                                  "resourceVersion": self.next_rv()},
                     "spec": {"controllerName": "dualcap.io/power",
                              "parameters": {"apiGroup": "dualcap.io", "kind": "Site",
                                             "name": rng.choice(["a", "b"])}}}  # fmt: skip
            self.kueue._on_check("MODIFIED", check, self.kueue.checks.get("power"))
        return what


@pytest.mark.parametrize("seed", range(40))
def test_a_kept_site_is_what_a_fresh_build_would_be(seed: int) -> None:
    world = World(random.Random(seed))
    cache = ParseCache()
    kept_hits = 0
    seen: set[str] = set()  # what the snapshots held: the test judged real entities
    for step in range(60):
        what = world.step()
        for name in ("a", "b"):
            body = world.op.resources.sites[name]
            token = world.op.site_token(name, world.view)
            before = world.op._gathered.get(name)
            objects = world.op.gather_kept(name, world.view, token)
            kept_hits += before is not None and before[1] is objects
            fresh = world.op.gather(name, world.view)
            assert objects == fresh, (
                f"seed {seed}, step {step} ({what}): site {name} kept stale objects"
            )
            snap = build_one(body, objects, NOW, cache, {}, token=token)
            assert snap.site is not None, snap.problems
            seen |= {"controllers"} if snap.controllers else set()
            seen |= {"gpu nodes"} if snap.gpu_nodes else set()
            seen |= {"leases"} if snap.leases else set()
            seen |= {"lease pods"} if any(lease.pods for lease in snap.leases) else set()
            seen |= {"orphan pods"} if snap.orphan_pods else set()
            assert snap == build_one(body, fresh, NOW, ParseCache(), {}), (
                f"seed {seed}, step {step} ({what}): site {name} kept a stale snapshot"
            )
    assert kept_hits > 0  # the tokens did hold somewhere: the test judged the kept path
    assert "leases" in seen and seen & {"controllers", "gpu nodes"}, seen


def test_a_build_without_the_token_drops_what_was_kept() -> None:
    """The resync builds without the token: whatever a token failed to see is gone then."""
    cache = ParseCache()
    body = site("a", 1, None)
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n0", "uid": "uid-n0", "resourceVersion": "5",
                         "labels": {SITE_LABEL: "a", "role": "asic"}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    assert len(build_one(body, [node], NOW, cache, {}, token=1).controllers) == 1
    # a change the token did not see: kept, wrongly
    assert len(build_one(body, [], NOW, cache, {}, token=1).controllers) == 1
    # the resync's build, without the token, sees it, and drops what was kept
    assert build_one(body, [], NOW, cache, {}).controllers == []
    assert build_one(body, [], NOW, cache, {}, token=1).controllers == []
