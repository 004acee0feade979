"""The power admission check's life beside a site, on the sandbox with Kueue's own CRDs (as
`make kube-bins` copies them from Kueue's module; skipped without them): Kueue installed
while the operator runs, its checks kept Active (or told why not), a Workload deleted
before it was decided, and Kueue removed again: the site reconciles throughout, the
operator never fails a reconcile. (The check's decisions on Workloads, written with
server-side apply, run against real Kueue in tests/e2e/test_kueue.py.)"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from dualcap.manifests import load_objects
from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import http
from tests.sandbox.conftest import wait_for

KUEUE = "/apis/kueue.x-k8s.io/v1beta2"


def kueue_crds() -> Path | None:
    cache = Path(os.environ.get("DUALCAP_CACHE", Path.home() / ".cache" / "dualcap"))
    found = sorted(cache.glob("kube-*/kueue/crds"))
    return found[-1] if found else None


def check(name: str, site: str) -> dict:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "AdmissionCheck",
        "metadata": {"name": name},
        "spec": {
            "controllerName": "dualcap.io/power",
            "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": site},
        },
    }


async def test_kueue_installed_and_removed_while_the_operator_runs(site: Running) -> None:
    crds = kueue_crds()
    if crds is None:
        pytest.skip("Kueue's CRDs are copied from its Go module by `make kube-bins`")
    sb = site.sb
    await site.shutdown()
    site.settings = replace(site.settings, kueue_discovery_seconds=0.2)
    await site.start()
    await site.settle()

    # Kueue installed: the check naming the site is kept Active, one naming no Site is not.
    sb.load_objects(load_objects(str(crds)))
    for name, target in (("power", SITE), ("power-nowhere", "nowhere")):
        code, body = await http(sb, "POST", f"{KUEUE}/admissionchecks", check(name, target))
        assert code == 201, body

    def active(name: str) -> dict | None:
        obj = sb.store.get(sb.store.rt("kueue.x-k8s.io", "admissionchecks"), None, name)
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Active"), None)

    async def both_told() -> bool:
        return active("power") is not None and active("power-nowhere") is not None

    await wait_for(both_told, timeout=10, what="the checks' Active conditions")
    assert active("power")["status"] == "True"  # type: ignore[index]
    nowhere = active("power-nowhere")
    assert nowhere is not None and nowhere["status"] == "False"
    assert nowhere["reason"] == "SiteNotFound" and "nowhere" in nowhere["message"]

    # A Workload listing the check, deleted before Kueue reserved quota: nothing written.
    workload = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": "train", "namespace": "research"},
        "spec": {
            "queueName": "team",
            "podSets": [
                {
                    "name": "main",
                    "count": 1,
                    "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                }
            ],
        },
    }
    code, body = await http(sb, "POST", f"{KUEUE}/namespaces/research/workloads", workload)
    assert code == 201, body
    status = await site.settle()
    assert "workloads" not in status or status["workloads"]["admitted"] == 0
    code, _ = await http(sb, "DELETE", f"{KUEUE}/namespaces/research/workloads/train")
    assert code == 200
    await site.settle()

    # Kueue removed: the check stops, the site goes on.
    for crd in load_objects(str(crds)):
        name = crd["metadata"]["name"]
        code, _ = await http(
            sb, "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        )
        assert code in (200, 404)
    kueue = site.state.kueue
    assert kueue is not None

    async def stopped() -> bool:
        return not kueue.served

    await wait_for(stopped, timeout=10, what="the operator to see Kueue gone")
    reconciles = site.state.reconciles
    await site.settle()
    assert site.state.reconciles > reconciles
