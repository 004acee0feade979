"""The chart with the real Helm 4 CLI, and dualcap running as the chart's ServiceAccounts.

The operator is a real `dualcap run` process on this machine, logged in with a token the
TokenRequest API issued for the chart's ServiceAccount: every request it makes is decided
by the real RBAC authorizer, so the scenario passing proves the chart's ClusterRole enough
(and a request outside it is refused). The agent's ValidatingAdmissionPolicy is evaluated
by the real apiserver on real pod-bound tokens.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.scenario import Target, connect, run_scenario
from tests.realcluster.launcher import default_bin_dir

pytestmark = pytest.mark.e2e

NS = "dualcap-system"
RELEASE = "dualcap"
CHART = ROOT / "charts" / "dualcap"
# The operator pod the chart deploys stays Pending: this test runs the operator itself, as
# the chart's ServiceAccount, so that two operators never act on one site.
PARKED = ["--set-string", "nodeSelector.dualcap\\.io/e2e=parked",
          "--set-string", "agent.nodeSelector.dualcap\\.io/e2e=parked",
          "--set-string", "openadr.nodeSelector.dualcap\\.io/e2e=parked"]  # fmt: skip


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = default_bin_dir() / "helm"
    if not binary.exists():
        pytest.fail(f"no helm at {binary}: run `make kube-bins`")
    r = subprocess.run(
        [str(binary), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check and r.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
        )
    return r


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[str]:
    helm(cluster, "install", RELEASE, str(CHART), "-n", NS, "--create-namespace",
         "--set", "agent.enabled=true", *PARKED)  # fmt: skip
    try:
        yield RELEASE
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout=120s", check=False)
        cluster.kubectl(
            "delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False
        )


def test_helm_installs_the_chart(cluster: Cluster, release: str) -> None:
    status = json.loads(helm(cluster, "status", release, "-n", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    for crd in ("sites", "powerbudgets", "computeleases", "minerblocks"):
        cluster.kubectl("get", f"crd/{crd}.dualcap.io")
    for kind, name in (
        ("serviceaccount", RELEASE), ("clusterrole", RELEASE), ("clusterrolebinding", RELEASE),
        ("deployment", RELEASE), ("daemonset", f"{RELEASE}-agent"),
        ("serviceaccount", f"{RELEASE}-agent"),
        ("validatingadmissionpolicy", f"{RELEASE}-agent-own-minerblock"),
    ):  # fmt: skip
        cluster.kubectl("get", kind, name, "-n", NS)


async def test_the_operator_runs_as_the_charts_service_account(
    cluster: Cluster, release: str, tmp_path: Path
) -> None:
    token = cluster.token(NS, RELEASE)
    operator_kubeconfig = cluster.token_kubeconfig(tmp_path / "operator.kubeconfig", token)

    # The authorizer says what the role allows, and refuses what it does not.
    def can(verb: str, resource: str) -> bool:
        r = cluster.kubectl(
            "auth", "can-i", verb, resource, kubeconfig=operator_kubeconfig, check=False
        )
        return r.stdout.strip() == "yes"

    assert (
        can("patch", "nodes") and can("create", "pods") and can("patch", "sites.dualcap.io/status")
    )
    assert (
        not can("delete", "nodes")
        and not can("get", "secrets")
        and not can("create", "clusterroles")
    )

    client = connect(cluster.kubeconfig)
    try:
        log = tmp_path / "operator.log"
        target = Target(
            client, cluster.kubeconfig, real=True, timeout=120, kwok=cluster.local is not None,
            operator_kubeconfig=operator_kubeconfig,
        )  # fmt: skip
        try:
            await run_scenario(target, log)
        except BaseException:
            print(log.read_text() if log.exists() else "(no operator log)")
            raise
        text = log.read_text()
        assert "Forbidden" not in text and " 403" not in text, "the operator was refused something"
    finally:
        await client.close()


def test_the_agent_policy_binds_a_token_to_its_node(
    cluster: Cluster, release: str, tmp_path: Path
) -> None:
    if cluster.local is None:
        pytest.skip("creates kwok nodes")
    agent_sa = f"{RELEASE}-agent"
    for node in ("e2e-vap-a", "e2e-vap-b"):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))  # fmt: skip
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "e2e-agent-on-a", "namespace": NS},
        "spec": {"nodeName": "e2e-vap-a", "serviceAccountName": agent_sa,
                 "containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.9"}]},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        bound = cluster.token(
            NS, agent_sa, "--bound-object-kind=Pod", "--bound-object-name=e2e-agent-on-a"
        )
        kc = cluster.token_kubeconfig(tmp_path / "agent.kubeconfig", bound)

        def block(name: str) -> str:
            return json.dumps({"apiVersion": "dualcap.io/v1alpha1", "kind": "MinerBlock",
                               "metadata": {"name": name}, "spec": {"nodeName": name}})  # fmt: skip

        own = cluster.kubectl(
            "create", "-f", "-", input=block("e2e-vap-a"), kubeconfig=kc, check=False
        )
        assert own.returncode == 0, own.stderr
        other = cluster.kubectl(
            "create", "-f", "-", input=block("e2e-vap-b"), kubeconfig=kc, check=False
        )
        assert other.returncode != 0
        assert "may write only MinerBlock e2e-vap-a" in other.stderr, other.stderr

        unbound = cluster.token_kubeconfig(
            tmp_path / "unbound.kubeconfig", cluster.token(NS, agent_sa)
        )
        none = cluster.kubectl(
            "create", "-f", "-", input=block("e2e-vap-b"), kubeconfig=unbound, check=False
        )
        assert none.returncode != 0 and "names no node" in none.stderr, none.stderr
    finally:
        cluster.kubectl(
            "delete",
            "pod",
            "-n",
            NS,
            "e2e-agent-on-a",
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )
        cluster.kubectl(
            "delete", "minerblock", "e2e-vap-a", "e2e-vap-b", "--ignore-not-found", check=False
        )
        cluster.kubectl(
            "delete", "node", "e2e-vap-a", "e2e-vap-b", "--ignore-not-found", check=False
        )


def test_helm_upgrades_the_release(cluster: Cluster, release: str) -> None:
    helm(cluster, "upgrade", release, str(CHART), "-n", NS, "--reuse-values",
         "--set", "operator.logLevel=debug")  # fmt: skip
    dep = json.loads(cluster.kubectl("get", "deployment", release, "-n", NS, "-o", "json").stdout)
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--verbose" in args
    history = json.loads(helm(cluster, "history", release, "-n", NS, "-o", "json").stdout)
    assert [h["status"] for h in history][-1] == "deployed" and len(history) == 2


def test_helm_uninstall_removes_the_release(cluster: Cluster, release: str) -> None:
    helm(cluster, "uninstall", release, "-n", NS, "--wait", "--timeout=120s")
    for kind, name in (
        ("clusterrole", RELEASE),
        ("validatingadmissionpolicy", f"{RELEASE}-agent-own-minerblock"),
    ):
        r = cluster.kubectl("get", kind, name, check=False)
        assert r.returncode != 0 and "NotFound" in r.stderr, r.stderr
    # The CRDs stay (Helm never deletes what crds/ installed): the users' Sites survive.
    cluster.kubectl("get", "crd/sites.dualcap.io")
