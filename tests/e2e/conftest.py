"""`make e2e`: the real-cluster tier.

By default on a local control plane built from the Go modules (`make kube-bins`): etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok, one cluster for the whole
run, tests isolated by namespace and names. With DUALCAP_E2E_KUBECONFIG (make e2e
E2E_KUBECONFIG=...) on that cluster instead (kind in the GitHub workflow); tests that need
kwok's nodes then skip.

Skipped unless DUALCAP_E2E=1 (set by `make e2e`). A failed test gets the control plane's
logs attached to its report.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.realcluster.launcher import (
    ControlPlane,
    LaunchError,
    default_bin_dir,
    missing_binaries,
    which_kubectl,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    kubeconfig: Path  # the admin's: for the tests' own set-up, never for the product
    local: ControlPlane | None  # None: a cluster DUALCAP_E2E_KUBECONFIG named

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        kubeconfig: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [which_kubectl(), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        r = subprocess.run(
            argv, capture_output=True, text=True, input=input, timeout=120, check=False
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
            )
        return r

    def token(self, namespace: str, service_account: str, *extra: str) -> str:
        """A token from the TokenRequest API, as a pod of that ServiceAccount would get."""
        return self.kubectl(
            "create", "token", "-n", namespace, service_account, "--duration=2h", *extra
        ).stdout.strip()

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that logs in with `token` and nothing else (no admin certificate)."""
        import yaml

        doc: dict[str, Any] = yaml.safe_load(self.kubeconfig.read_text())
        ctx_name = doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])
        out = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
            "current-context": "sa",
        }
        path.write_text(yaml.safe_dump(out))
        path.chmod(0o600)
        return path


def dualcap_process(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m dualcap ARGV` with its output in ``log``; KUBECONFIG is not passed on, so
    the process logs in only as its own --kubeconfig says."""
    import sys

    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dualcap", *argv], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def _reason() -> str | None:
    if os.environ.get("DUALCAP_E2E") != "1":
        return "the real-cluster tier runs with `make e2e` (a local control plane built from Go modules, or E2E_KUBECONFIG)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _reason()
    for item in items:
        if "e2e" in item.keywords and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("DUALCAP_E2E_KUBECONFIG")
    if external:
        c = Cluster(Path(external), None)
        probe = c.kubectl("version", "--request-timeout=5s", check=False)
        if probe.returncode != 0:
            pytest.fail(
                f"e2e: the cluster of {external} does not answer: {probe.stderr.strip()[:300]}"
            )
        yield c
        return
    # Kueue beside it when `make kube-bins` built it (make e2e does): the power check's tier
    kueue = not missing_binaries(default_bin_dir(), ("kueue",))
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), kueue=kueue)
    try:
        cp.start()
    except LaunchError as e:
        pytest.fail(f"e2e: the local control plane did not start: {e}", pytrace=False)
    try:
        yield Cluster(cp.kubeconfig, cp)
    finally:
        cp.stop()


CRDS = ("sites", "powerbudgets", "computeleases", "minerblocks")


@pytest.fixture(scope="session", autouse=True)
def crds(cluster: Cluster) -> None:
    """dualcap's CRDs, installed as `kubectl apply --server-side -f crds/` installs them."""
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", str(ROOT / "crds"))
    for name in CRDS:
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}.dualcap.io"
        )


@pytest.fixture
def local(cluster: Cluster) -> ControlPlane:
    """The local control plane itself (for tests that stop its components or need kwok)."""
    if cluster.local is None:
        pytest.skip("needs the local control plane (kwok nodes, components to stop)")
    return cluster.local


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        c = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(c, Cluster) and c.local is not None:
            report.sections.append(("control plane logs", c.local.logs()))
    return report


@pytest.fixture
def kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfig
