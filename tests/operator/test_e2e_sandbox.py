"""The e2e scenario (tests/e2e/scenario.py) against the sandbox: the same code `make e2e`
runs on a real cluster, here with the sandbox's kubeconfig and a `dualcap run` process."""

from __future__ import annotations

from pathlib import Path

from dualcap_sandbox.app import Sandbox
from tests.e2e.scenario import Target, connect, run_scenario


async def test_e2e_scenario_on_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    from dualcap.manifests import load_objects
    from tests.conftest import CRDS

    sandbox.load_objects(load_objects(str(CRDS)))
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    client = connect(kubeconfig)
    log = tmp_path / "operator.log"
    try:
        await run_scenario(Target(client, kubeconfig, real=False, timeout=30), log)
    except BaseException:
        print(log.read_text() if log.exists() else "(no operator log)")
        raise
    finally:
        await client.close()
