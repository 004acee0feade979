"""kopf peering: two operators on one cluster, only the one of higher priority acts; when
it goes, the other takes over (issue 8: "with kopf peering on, two operators never both
act"). Real `dualcap run` processes; the peering CRD and object come from the chart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dualcap_sandbox.app import Sandbox
from tests.operator.conftest import operator_process
from tests.operator.test_operator import curtailed, set_event
from tests.operator.test_restart import settled, site_status
from tests.sandbox.conftest import wait_for

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is part of the test extras")
CHART = Path(__file__).resolve().parents[2] / "charts" / "dualcap"


def start(priority: int, log: Path) -> subprocess.Popen[bytes]:
    return operator_process(None, log, "--peering", "dualcap", "--priority", str(priority))


def pids_that_wrote(sb: Sandbox, since: dict[str, int]) -> set[int]:
    out = set()
    for agent, n in sb.api.audit.writers.items():
        if agent.startswith("dualcap/") and n > since.get(agent, 0):
            out.add(int(agent.rsplit("pid ", 1)[1].rstrip(")")))
    return out


async def test_two_operators_never_both_act(sandbox: Sandbox, tmp_path: Path) -> None:
    from dualcap.manifests import load_objects
    from tests.conftest import CRDS, wall_clock_examples

    sb = sandbox
    rendered = helm.Chart.load(str(CHART)).render({"peering": {"enabled": True}}, name="dualcap")
    peering = [
        doc
        for path, text in rendered.items()
        if "peering" in path
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    sb.load_objects(load_objects(str(CRDS)) + peering)
    sb.load_objects(wall_clock_examples())
    logs = [tmp_path / "low.log", tmp_path / "high.log"]
    low, high = start(10, logs[0]), start(20, logs[1])
    procs: list[subprocess.Popen[bytes]] = [low, high]
    try:
        await wait_for(lambda: settled(sb, 1e9), timeout=60, what="the site to settle")
        assert pids_that_wrote(sb, {}) == {high.pid}
        # The standby saw the other within its grace period: it has written nothing.

        # The active one stops (a rolling update, a drained node): the standby takes over
        # and answers a limit cut.
        high.send_signal(signal.SIGTERM)
        await asyncio.to_thread(high.wait, 30)
        before = dict(sb.api.audit.writers)
        await set_event(sb, 15_000, lambda: datetime.now(UTC))
        try:
            await wait_for(lambda: settled(sb, 15_001), timeout=40, what="the standby to take over")
        except AssertionError:
            print(site_status(sb))
            pods = sb.store.list_objects(sb.store.rt("", "pods"))  # type: ignore[arg-type]
            on = {p["spec"].get("nodeName"): p["metadata"]["name"] for p in pods}
            print({n: on.get(n) for n in curtailed(sb)})
            raise
        assert curtailed(sb)
        assert pids_that_wrote(sb, before) == {low.pid}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
        if os.environ.get("DUALCAP_TEST_LOGS"):
            for log in logs:
                print(log.read_text())

    traffic = {(g, f"{r}/{s}" if s else r, v) for (a, v, g, r, s, _), _n in sb.api.audit.by_agent.items() if a == "kopf" and g == "kopf.dev"}  # fmt: skip
    assert traffic <= {
        ("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch", "patch")
    }
    assert {v for _, _, v in traffic} >= {"list", "watch", "patch"}
