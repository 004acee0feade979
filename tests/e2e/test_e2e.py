"""The end-to-end scenario on a real cluster (`make e2e`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.scenario import Target, connect, run_scenario

pytestmark = pytest.mark.e2e


async def test_scenario_on_a_real_cluster(kubeconfig: Path, tmp_path: Path) -> None:
    client = connect(kubeconfig)
    try:
        log = tmp_path / "operator.log"
        try:
            await run_scenario(Target(client, kubeconfig, real=True, timeout=180), log)
        except BaseException:
            print(log.read_text() if log.exists() else "(no operator log)")
            raise
    finally:
        await client.close()
