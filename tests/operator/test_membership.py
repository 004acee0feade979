"""Which nodes belong to a Site is decided by its selector alone, whatever form it takes:
the operator's view, its resync against the API and the release of a deleted Site agree.

A second site, `yard-7`, selects its six controllers by `matchExpressions` on a label of
its own (`rack`), not by `dualcap.io/site`: once its view was checked against the API it
counted 0 of them (their draw unseen), and deleting it released none of its curtailed ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from dualcap.api.marks import is_marked
from dualcap.cluster.settings import OperatorSettings
from tests.operator.conftest import Clock, Monitor, Running
from tests.operator.test_operator import API, http, nodes
from tests.sandbox.conftest import wait_for

YARD = "yard-7"
RACKS = ("r7a", "r7b")


def yard_objects(limit_kw: float) -> list[dict[str, Any]]:
    site = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": YARD},
        "spec": {
            "nodeSelector": {
                "matchExpressions": [{"key": "rack", "operator": "In", "values": list(RACKS)}]
            },
            "asic": {
                "miningPodSelector": {"matchLabels": {"app": "yard-miner"}},
                "powerKW": 1000,
                "hashrateTHs": 60000,
                "hashpriceUSDPerPHDay": 50,
            },
            "gpu": {"powerPerGPUKW": 1.2},
            "behavior": {"minMiningSeconds": 0, "minCurtailedSeconds": 0},
        },
    }
    budget = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": YARD},
        "spec": {"siteRef": YARD, "limitKW": limit_kw},
    }
    out: list[dict[str, Any]] = [site, budget]
    for i in range(6):
        name = f"yard-c{i}"
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"rack": RACKS[i % 2], "dualcap.io/role": "asic"},
                },
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"yard-miner-{i}",
                    "namespace": "mining",
                    "labels": {"app": "yard-miner"},
                },
                "spec": {"nodeName": name, "containers": [{"name": "m", "image": "miner"}]},
                "status": {"phase": "Running"},
            }
        )
    return out


@pytest.fixture
async def yard(sandbox, clock: Clock) -> AsyncIterator[Running]:
    from dualcap.manifests import load_objects
    from tests.conftest import CRDS

    sandbox.load_objects(load_objects(str(CRDS)))
    sandbox.load_objects(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mining"}}]
    )
    sandbox.load_objects(yard_objects(limit_kw=3500))
    monitor = Monitor(sandbox, clock)
    sandbox.store.listeners.append(monitor.check)
    running = Running(
        sandbox,
        OperatorSettings(safety_period=timedelta(seconds=0.3), resync_seconds=0.5),
        clock,
        monitor,
    )
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown()
        assert monitor.violations == [], monitor.violations[:3]


def yard_marked(sb) -> set[str]:
    return {n for n, o in nodes(sb).items() if n.startswith("yard-") and is_marked(o)}


async def test_a_site_selected_by_expressions_keeps_its_nodes_across_resyncs(yard) -> None:
    status = await yard.settle(site=YARD)
    # 3,500 kW holds three 1,000 kW controllers: three are curtailed.
    assert status["controllers"]["total"] == 6
    assert len(yard_marked(yard.sb)) == 3
    # Resyncs every 0.5 s: let several pass; the view and the plan stay the same.
    reconciler = yard.state.reconciler
    assert reconciler is not None
    for _ in range(4):
        seen = reconciler.resyncs

        async def resynced(seen: int = seen) -> bool:
            yard.state.wake(YARD)
            return reconciler.resyncs > seen

        await wait_for(resynced, timeout=10, interval=0.05, what="a resync")
        status = await yard.settle(site=YARD)
        assert status["controllers"]["total"] == 6, status["controllers"]
        assert status["controllers"]["curtailed"] == 3
    assert len(yard_marked(yard.sb)) == 3


async def test_release_with_a_custom_selector_releases_every_curtailed_node(yard) -> None:
    await yard.settle(site=YARD)
    assert len(yard_marked(yard.sb)) == 3
    code, body = await http(yard.sb, "DELETE", f"{API}/sites/{YARD}")
    assert code == 200, body

    async def released() -> bool:
        return not yard_marked(yard.sb)

    await wait_for(released, timeout=15, what="every curtailed yard controller released")
    for name, node in nodes(yard.sb).items():
        if name.startswith("yard-"):
            assert not (node.get("spec") or {}).get("unschedulable"), name
