"""Credentials as users have them, against the real apiserver: a kubeconfig whose user is an
exec credential plugin (how EKS, GKE and AKS users log in), a token the apiserver accepts,
then revoked under the running processes (its ServiceAccount deleted and made again): the
next request is refused with 401, the plugin runs again and the new token carries on."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster, dualcap_process

pytestmark = pytest.mark.e2e

SA = "e2e-exec"
SITE = "e2e-exec"
NODE = "e2e-exec-node"


def plugin(tmp_path: Path) -> Path:
    """An exec credential plugin: hands out the token in token.txt, counts its runs."""
    script = tmp_path / "plugin.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"here = pathlib.Path({str(tmp_path)!r})\n"
        "with open(here / 'runs', 'a') as f: f.write('x')\n"
        "expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        "  'status': {'token': (here / 'token.txt').read_text().strip(),\n"
        "             'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n"
    )
    return script


def exec_kubeconfig(cluster: Cluster, tmp_path: Path, script: Path) -> Path:
    admin: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "eks",
        "clusters": [{"name": "eks", "cluster": server["cluster"]}],
        "users": [{"name": "eks", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
            "args": [str(script)], "interactiveMode": "Never"}}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
    }  # fmt: skip
    path = tmp_path / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def grant(cluster: Cluster, tmp_path: Path) -> None:
    """(Re)make the ServiceAccount and hand its new token to the plugin."""
    cluster.kubectl("create", "serviceaccount", SA, "-n", "default")
    (tmp_path / "token.txt").write_text(cluster.token("default", SA))


def revoke(cluster: Cluster) -> None:
    cluster.kubectl("delete", "serviceaccount", SA, "-n", "default", "--wait=true")


@pytest.fixture
def exec_login(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    cluster.kubectl(
        "create", "clusterrolebinding", SA, "--clusterrole=cluster-admin",
        f"--serviceaccount=default:{SA}",
    )  # fmt: skip
    grant(cluster, tmp_path)
    try:
        yield exec_kubeconfig(cluster, tmp_path, plugin(tmp_path))
    finally:
        cluster.kubectl("delete", "clusterrolebinding", SA, "--ignore-not-found", check=False)
        cluster.kubectl(
            "delete", "serviceaccount", SA, "-n", "default", "--ignore-not-found", check=False
        )


def wait(what: str, check: Any, logs: list[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            text = "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{text}")
        time.sleep(0.5)


def test_an_exec_plugin_logs_in_and_is_run_again_when_its_token_is_revoked(
    cluster: Cluster, exec_login: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    op_log, agent_log = tmp_path / "operator.log", tmp_path / "agent.log"
    budget = {"apiVersion": "dualcap.io/v1alpha1", "kind": "PowerBudget", "metadata": {"name": SITE},
              "spec": {"siteRef": SITE, "limitKW": 300}}  # fmt: skip
    site = {"apiVersion": "dualcap.io/v1alpha1", "kind": "Site", "metadata": {"name": SITE},
            "spec": {"asic": {"curtailment": "MinerAgent", "powerKW": 100, "hashrateTHs": 1000,
                              "hashpriceUSDPerPHDay": 45}}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([site, budget]))
    with_agent = cluster.local is not None  # the agent needs a node: kwok's
    if with_agent:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))  # fmt: skip
    operator = dualcap_process(["run", "--kubeconfig", str(exec_login), "--liveness", "none",
                      "--metrics-port", "0", "--log-format", "plain"], op_log)  # fmt: skip
    agent = (
        dualcap_process(["agent", "--kubeconfig", str(exec_login), "--node", NODE, "--interval", "1"], agent_log)
        if with_agent else None
    )  # fmt: skip

    def effective(limit: float) -> bool:
        r = cluster.kubectl("get", "powerbudget", SITE, "-o", "json", check=False)
        return (
            r.returncode == 0
            and (json.loads(r.stdout).get("status") or {}).get("effectiveLimitKW") == limit
        )

    def block_reported_after(t: float) -> bool:
        r = cluster.kubectl("get", "minerblock", NODE, "-o", "json", check=False)
        if r.returncode != 0:
            return False
        observed = (json.loads(r.stdout).get("status") or {}).get("observedAt")
        return bool(observed) and _epoch(observed) > t

    try:
        wait(
            "the operator's first status, logged in through the plugin",
            lambda: effective(300),
            [op_log],
        )
        if agent:
            wait("the agent's first report", lambda: block_reported_after(0), [agent_log])
        first_runs = len(runs.read_text())

        old = cluster.token_kubeconfig(
            tmp_path / "old.kubeconfig", (tmp_path / "token.txt").read_text()
        )
        revoke(cluster)  # every token the plugin gave so far is now refused (401) ...

        def refused() -> bool:  # ... once the apiserver's token cache has let it go
            r = cluster.kubectl("get", "--raw", "/api", kubeconfig=old, check=False)
            return r.returncode != 0 and "Unauthorized" in r.stderr

        wait("the old token refused", refused, [])
        grant(cluster, tmp_path)
        revoked_at = time.time()
        cluster.kubectl(
            "patch", "powerbudget", SITE, "--type=merge", "-p", '{"spec": {"limitKW": 250}}'
        )
        wait("the operator's status after the revocation", lambda: effective(250), [op_log])
        if agent:
            wait("the agent reporting after the revocation", lambda: block_reported_after(revoked_at + 1),
                 [agent_log])  # fmt: skip
        assert len(runs.read_text()) > first_runs, "the plugin was not run again"
        assert operator.poll() is None and (agent is None or agent.poll() is None)
    finally:
        for proc in (operator, agent):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        cluster.kubectl("delete", "powerbudget", SITE, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "site", SITE, "--ignore-not-found", "--wait=false", check=False)
        if with_agent:
            cluster.kubectl("delete", "minerblock", NODE, "--ignore-not-found", check=False)
            cluster.kubectl("delete", "node", NODE, "--ignore-not-found", check=False)


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
