"""The loop closed through the firmware: the real operator, the real agents (one per ASIC
controller) and fake LuxOS miners driven by the real pyasic-rs, on the sandbox.

A Site with `curtailment: MinerAgent`: a budget cut is confirmed only when the blocks'
MinerBlocks say their miners sleep (and the fakes really do); the Site counts the blocks
at what they measure; an agent that goes silent makes its block count at nameplate again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from dualcap.api.marks import is_marked
from dualcap.api.minerblock import MINERS_ANNOTATION
from dualcap.cluster.settings import OperatorSettings
from dualcap_sandbox.luxos import FakeFleet
from tests.agent import conftest as agent_conftest
from tests.agent.conftest import World, until
from tests.operator.conftest import Monitor, Running, WallClock
from tests.operator.test_operator import API, http

SITE = "agent-site"
BLOCKS = ("blk-a", "blk-b", "blk-c")
PER_BLOCK = 4
NAMEPLATE_KW = 14.0  # 4 miners of about 3.25 kW; the nameplate is a little above


def objects(limit_kw: float) -> list[dict[str, Any]]:
    site = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": SITE},
        "spec": {
            "asic": {
                "curtailment": "MinerAgent",
                "staleAfterSeconds": 5,
                "powerKW": NAMEPLATE_KW,
                "hashrateTHs": 480,
                "hashpriceUSDPerPHDay": 50,
            },
            "behavior": {
                "minMiningSeconds": 0,
                "minCurtailedSeconds": 0,
                "maxRampUpKWPerMinute": 100000,
            },
        },
    }
    budget = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": SITE},
        "spec": {"siteRef": SITE, "limitKW": limit_kw},
    }
    return [site, budget]


def controller(name: str, miners: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"dualcap.io/site": SITE, "dualcap.io/role": "asic"},
            "annotations": {MINERS_ANNOTATION: miners},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


world = agent_conftest.world  # the agents' fixture: the sandbox, their Kube, the fleet


@pytest.fixture
def fleet() -> Any:
    with FakeFleet(len(BLOCKS) * PER_BLOCK, sleep_seconds=1.0, wake_seconds=2.0) as f:
        yield f


@pytest.fixture
async def closed(world: World, monkeypatch, tmp_path) -> AsyncIterator[Running]:
    sb, fleet = world.sb, world.fleet
    monkeypatch.setenv("KUBECONFIG", str(sb.write_kubeconfig(tmp_path / "op-kubeconfig")))
    addresses = fleet.addresses
    for i, name in enumerate(BLOCKS):
        ips = addresses[i * PER_BLOCK : (i + 1) * PER_BLOCK]
        sb.api.create_object(controller(name, fleet.annotation(ips)))
        world.start_agent(name, interval=1.0)
    sb.load_objects(objects(limit_kw=100.0))
    # The operator runs on the wall clock here: the agents' reports carry wall-clock times.
    wall = WallClock()
    monitor = Monitor(sb, wall)  # type: ignore[arg-type]
    settings = OperatorSettings(safety_period=timedelta(seconds=0.3))
    running = Running(sb, settings, wall, monitor)  # type: ignore[arg-type]
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown()


def site_status(sb) -> dict[str, Any]:
    return (sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE) or {}).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def marked(sb) -> set[str]:
    rt = sb.store.rt("", "nodes")
    return {n["metadata"]["name"] for n in sb.store.list_objects(rt) if is_marked(n)}


async def test_a_cut_is_confirmed_by_the_miners_themselves(closed: Running, world: World) -> None:
    sb, fleet = closed.sb, world.fleet
    status = await closed.settle(timeout=40, site=SITE)
    for _ in range(100):  # until every agent has reported (they start with the operator)
        if status["miners"]["reporting"] == 3:
            break
        await asyncio.sleep(0.1)
        status = await closed.settle(timeout=40, site=SITE)
    miners = status["miners"]
    assert miners["blocks"] == 3 and miners["reporting"] == 3
    # measured: 12 fakes of about 3.25 kW, against a nameplate of 3 x 14 kW
    assert 30 < miners["measuredKW"] < miners["modelledKW"] == pytest.approx(42.0)
    assert condition(status, "Measured")["status"] == "True"

    code, body = await http(sb, "PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"limitKW": 20}})
    assert code == 200, body
    status = await closed.settle(timeout=40, site=SITE)
    assert status["controllers"]["curtailed"] == 2 and status["committedKW"] <= 20
    cut = marked(sb)
    assert len(cut) == 2
    # The firmware, not the model, says so: the fakes of the cut blocks really sleep.
    asleep = sum(1 for m in fleet if m.phase() == "asleep")
    assert asleep == 2 * PER_BLOCK
    assert fleet.true_watts() / 1000 <= 20

    # One curtailed block's agent goes silent: its report goes stale, the block counts at
    # nameplate again (not confirmed), and the Site says which block is unmeasured.
    silent = sorted(cut)[0]
    _agent, task, stop = world.agents.pop(silent)
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)

    async def stale() -> bool:
        closed.state.wake(SITE)
        s = site_status(sb)
        return silent in ((s.get("miners") or {}).get("unreported") or [])

    await until(stale, timeout=20)
    status = site_status(sb)
    assert condition(status, "Measured")["status"] == "False"
    assert condition(status, "Measured")["reason"] == "StaleMeasurements"
    assert silent in marked(sb)  # never resumed on the strength of a stale report
