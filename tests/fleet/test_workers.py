"""The fleet's workers, on two sandboxes (a manager with Kueue's own CRDs, a worker with
dualcap's and a running operator publishing its Site's offer): each MultiKueueCluster
connected through its Secret, or why not; each worker's offer, or why none."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dualcap.client import Client
from dualcap.fleet.workers import Workers
from dualcap.manifests import load_objects
from dualcap.planning.offer import Offer
from dualcap_sandbox.app import Sandbox, kubeconfig
from tests.e2e.scenario import connect
from tests.operator.conftest import SITE, Running
from tests.operator.conftest import clock as clock  # the operator's fixtures, used by name
from tests.operator.conftest import sandbox as sandbox
from tests.operator.conftest import site as site
from tests.operator.test_kueue_operator import kueue_crds
from tests.operator.test_operator import API, http


def secret(name: str, kubeconfig: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "kueue-system"},
            "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}}  # fmt: skip


def cluster(name: str, source: dict) -> dict:
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "MultiKueueCluster",
            "metadata": {"name": name}, "spec": {"clusterSource": source}}  # fmt: skip


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Client]]:
    crds = kueue_crds()
    if crds is None:
        pytest.skip("Kueue's CRDs are copied from its Go module by `make kube-bins`")
    sb = Sandbox()
    await sb.start()
    sb.load_objects(load_objects(str(crds)))
    client = connect(sb.write_kubeconfig(tmp_path / "manager.kubeconfig"))
    try:
        yield sb, client
    finally:
        await client.close()
        await sb.stop()


async def test_workers_and_their_offers_or_why_not(
    site: Running, manager: tuple[Sandbox, Client], tmp_path: Path
) -> None:
    msb, mclient = manager
    worker_kubeconfig = yaml.safe_dump(kubeconfig(site.sb.url))
    dead = yaml.safe_load(worker_kubeconfig)
    dead["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:1"
    msb.load_objects([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}},
        secret("good", worker_kubeconfig),
        secret("garbage", "this: [is not a kubeconfig"),
        secret("dead", yaml.safe_dump(dead)),
        secret("bad-ca", yaml.safe_dump({**dead, "clusters": [{"name": dead["clusters"][0]["name"],
               "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": "bm90IGEgY2VydA=="}}]})),
        secret("exec", yaml.safe_dump({**dead, "users": [{"name": dead["users"][0]["name"] if dead.get("users") else "u",
               "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": [str(tmp_path / "pwned")]}}}]})),
        cluster("site-good", {"kubeConfig": {"locationType": "Secret", "location": "good"}}),
        cluster("site-garbage", {"kubeConfig": {"locationType": "Secret", "location": "garbage"}}),
        cluster("site-missing", {"kubeConfig": {"locationType": "Secret", "location": "nothing"}}),
        cluster("site-dead", {"kubeConfig": {"locationType": "Secret", "location": "dead"}}),
        cluster("site-profile", {"clusterProfileRef": {"name": "p"}}),
        cluster("site-bad-ca", {"kubeConfig": {"locationType": "Secret", "location": "bad-ca"}}),
        cluster("site-exec", {"kubeConfig": {"locationType": "Secret", "location": "exec"}}),
    ])  # fmt: skip
    workers = Workers(mclient)
    try:
        found = await workers.discover()
        assert sorted(found) == ["site-bad-ca", "site-dead", "site-exec", "site-garbage", "site-good", "site-missing", "site-profile"]  # fmt: skip
        # a kubeconfig whose CA is not a certificate: said, never a fleet hung on it
        assert found["site-bad-ca"].client is None and found["site-bad-ca"].problem
        # an exec plugin in a worker's kubeconfig is refused, never run
        assert "exec plugins are not allowed" in str(found["site-exec"].problem)
        assert not (tmp_path / "pwned").exists()
        assert "ClusterProfile is not supported" in str(found["site-profile"].problem)
        assert "kueue-system/nothing: 404" in str(found["site-missing"].problem)
        assert "kubeconfig" in str(found["site-garbage"].problem)
        now = datetime.now(UTC)

        # a worker whose Site publishes no offer
        await site.settle()
        got = await workers.candidate(found["site-good"], now)
        assert got.offer is None and f"{SITE}: no offer" in str(got.problem)
        # a worker that does not answer
        got = await workers.candidate(found["site-dead"], now)
        assert got.offer is None and str(got.problem).startswith("unreachable (no answer from")

        # spec.offer set: its offer, read back as the site wrote it
        code, body = await http(site.sb, "PATCH", f"{API}/sites/{SITE}", {"spec": {"offer": {"refreshSeconds": 60}}})  # fmt: skip
        assert code == 200, body
        for _ in range(40):
            status = await site.settle()
            if status.get("offer"):
                break
        got = await workers.candidate(found["site-good"], site.clock())
        assert isinstance(got.offer, Offer) and got.offer.gpus_free == status["offer"]["gpusFree"]
        # seen unchanged for longer than it is valid, on the fleet's own clock: stale
        later = site.clock() + timedelta(minutes=4)
        got = await workers.candidate(found["site-good"], later)
        assert got.offer is None and "stale" in str(got.problem)

        # a Secret replaced: the worker connected anew
        code, body = await http(msb, "PATCH", "/api/v1/namespaces/kueue-system/secrets/garbage",
                                {"data": secret("", worker_kubeconfig)["data"]})  # fmt: skip
        assert code == 200, body
        found = await workers.discover()
        assert found["site-garbage"].problem is None and found["site-garbage"].client is not None
    finally:
        await workers.close()
