"""GitOps as Argo CD and Flux apply: server-side apply under their field managers, again and
again, while the operator runs. No conflict, no field fought over: the operator owns status
(and kopf its finalizer and annotations), the GitOps tool owns spec, and a re-apply of an
unchanged manifest changes nothing at all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster, dualcap_process

pytestmark = pytest.mark.e2e

NS = "e2e-gitops"
SITE = "e2e-gitops"
ARGO = "argocd-controller"  # Argo CD's field manager for server-side apply
FLUX = "kustomize-controller"  # Flux's


def manifests(limit_kw: float = 300) -> dict[str, list[dict[str, Any]]]:
    api = "dualcap.io/v1alpha1"
    return {
        ARGO: [
            {"apiVersion": api, "kind": "Site", "metadata": {"name": SITE},
             "spec": {"nodeSelector": {"matchLabels": {"dualcap.io/site": SITE}},
                      "facility": {"pue": 1.1, "fixedKW": 5},
                      "asic": {"powerKW": 100, "hashrateTHs": 1000, "hashpriceUSDPerPHDay": 45,
                               "miningPodSelector": {"matchLabels": {"app": "miner"}}},
                      "gpu": {"powerPerGPUKW": 1.0, "idlePowerKW": 0.5}}},
            {"apiVersion": api, "kind": "PowerBudget", "metadata": {"name": SITE},
             "spec": {"siteRef": SITE, "limitKW": limit_kw, "energyPrice": {"usdPerMWh": 30}}},
        ],
        FLUX: [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {"apiVersion": api, "kind": "ComputeLease", "metadata": {"name": "train", "namespace": NS},
             "spec": {"siteRef": SITE, "gpus": 8, "gpusPerPod": 8, "priority": 5,
                      "pricePerGPUHourUSD": 2.0,
                      "template": {"spec": {"containers": [{"name": "m", "image": "registry.k8s.io/pause:3.9"}]}}}},
        ],
    }  # fmt: skip


def apply(cluster: Cluster, manager: str, docs: list[dict[str, Any]]) -> None:
    cluster.kubectl(
        "apply", "--server-side", f"--field-manager={manager}", "-f", "-",
        input=yaml.safe_dump_all(docs),
    )  # fmt: skip


@pytest.fixture
def operator_running(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "operator.log"
    proc = dualcap_process(
        ["run", "--kubeconfig", str(cluster.kubeconfig), "--liveness", "none",
         "--metrics-port", "0", "--log-format", "plain"],
        log,
    )  # fmt: skip
    try:
        yield log
    finally:
        proc.terminate()
        proc.wait(30)


def get(cluster: Cluster, *ref: str) -> dict[str, Any]:
    return dict(
        json.loads(cluster.kubectl("get", *ref, "-o", "json", "--show-managed-fields").stdout)
    )


def owners(obj: dict[str, Any]) -> dict[str, set[str]]:
    """manager -> the top-level parts (spec, status, metadata.x) of the fields it owns."""
    out: dict[str, set[str]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        parts = set()
        for key, sub in fields.items():
            name = key.removeprefix("f:")
            if name == "metadata":
                parts |= {f"metadata.{k.removeprefix('f:')}" for k in sub}
            else:
                parts.add(name)
        out.setdefault(entry["manager"], set()).update(parts)
    return out


def wait_ready(cluster: Cluster, *ref: str) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=90s", *ref)


def test_gitops_and_the_operator_never_fight(cluster: Cluster, operator_running: Path) -> None:
    refs = [("site", SITE), ("powerbudget", SITE), ("computelease", "train", "-n", NS)]
    try:
        for manager, docs in manifests().items():
            apply(cluster, manager, docs)
        wait_ready(cluster, f"site/{SITE}")
        wait_ready(cluster, f"powerbudget/{SITE}")
        deadline = time.monotonic() + 90
        while not (get(cluster, *refs[2]).get("status") or {}).get("phase"):
            assert time.monotonic() < deadline, "the lease got no status"
            time.sleep(0.5)

        # Settled: the operator writes nothing more (an idle site makes no writes).
        before = [get(cluster, *r)["metadata"]["resourceVersion"] for r in refs]
        for _ in range(5):
            for manager, docs in manifests().items():
                apply(cluster, manager, docs)  # no conflict: kubectl exits 0
        after = [get(cluster, *r)["metadata"]["resourceVersion"] for r in refs]
        assert after == before, "an unchanged re-apply (or the operator) wrote something"

        for r in refs:
            obj = get(cluster, *r)
            own = owners(obj)
            gitops = ARGO if r[0] != "computelease" else FLUX
            assert "spec" in own[gitops], own
            for manager, parts in own.items():
                if manager != gitops:
                    assert "spec" not in parts, f"{manager} owns spec fields of {r}: {own}"
                if manager in (ARGO, FLUX):
                    assert "status" not in parts, f"{manager} owns status of {r}: {own}"
            assert obj.get("status", {}).get("conditions"), f"the operator's status of {r} is gone"

        # A change in git goes through without --force-conflicts: nobody else owns the field.
        apply(cluster, ARGO, manifests(limit_kw=250)[ARGO])
        deadline = time.monotonic() + 90
        while (get(cluster, "powerbudget", SITE).get("status") or {}).get(
            "effectiveLimitKW"
        ) != 250:
            assert time.monotonic() < deadline, "the new limit was not taken up"
            time.sleep(0.5)
    finally:
        cluster.kubectl(
            "delete", "computelease", "train", "-n", NS, "--ignore-not-found", check=False
        )
        cluster.kubectl("delete", "powerbudget", SITE, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "site", SITE, "--ignore-not-found", "--timeout=60s", check=False)
        cluster.kubectl(
            "delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False
        )
