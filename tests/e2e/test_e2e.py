"""The end-to-end scenario on a real cluster (`make e2e`): the same steps as the sandbox's
(tests/operator/test_e2e_sandbox.py), judged by the real apiserver, its taint-eviction and
garbage-collection controllers, the real scheduler and kwok's kubelets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.scenario import Target, connect, run_scenario

pytestmark = pytest.mark.e2e


async def test_scenario_on_a_real_cluster(cluster: Cluster, tmp_path: Path) -> None:
    client = connect(cluster.kubeconfig)
    try:
        log = tmp_path / "operator.log"
        try:
            target = Target(
                client, cluster.kubeconfig, real=True, timeout=120, kwok=cluster.local is not None
            )
            await run_scenario(target, log)
        except BaseException:
            print(log.read_text() if log.exists() else "(no operator log)")
            raise
    finally:
        await client.close()
