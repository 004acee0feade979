"""Demand response end to end: openleadr's own VTN, the adapter's VEN writing its own
PowerBudget, and the real operator keeping the example site inside the dispatched limit
beside its GitOps budget (budgets compose)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import kopf
import pytest

from dualcap.cluster.client import Client
from dualcap.cluster.operator import Operator
from dualcap.manifests import load_objects
from dualcap.signals.openadr import Adapter
from tests.conftest import CRDS, EXAMPLES
from tests.operator.conftest import Monitor, Running
from tests.peers_dr.test_openadr_e2e import config
from tests.peers_dr.vtn import Vtn, load_dispatch

SITE = "tx-rockdale-1"


class WallClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    v = Vtn()
    await v.start()
    try:
        yield v
    finally:
        await v.stop()


@pytest.fixture
async def operated(sandbox) -> AsyncIterator[Running]:
    sandbox.load_objects(load_objects(str(CRDS)))
    sandbox.load_objects(load_objects(str(EXAMPLES)))
    await asyncio.sleep(0.3)  # the DaemonSet's miners start
    wall = WallClock()
    monitor = Monitor(sandbox, wall)  # type: ignore[arg-type]
    running = Running(sandbox, Operator(safety_period=timedelta(seconds=0.3)), wall, monitor)  # type: ignore[arg-type]
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown()


async def test_a_dispatch_on_the_vtn_brings_the_site_inside_it(operated: Running, vtn: Vtn) -> None:
    site = operated
    await site.settle()
    info = kopf.login_with_kubeconfig(
        logger=logging.getLogger("test"), settings=kopf.OperatorSettings()
    )
    assert info is not None
    client = Client(info)
    stop = asyncio.Event()
    adapter = Adapter(config(vtn), client)
    task = asyncio.create_task(adapter.run(stop))
    try:
        # An ERS-style dispatch to 15 MW, under way now.
        vtn.send(load_dispatch("ers-now", datetime.now(UTC) - timedelta(minutes=1), 60, 15_000))
        status: dict = {}
        for _ in range(100):
            status = await site.settle(timeout=30)
            if status.get("bindingBudget") == f"openadr-{SITE}":
                break
            await asyncio.sleep(0.1)
        assert status["bindingBudget"] == f"openadr-{SITE}"
        assert status["limitKW"] <= 15_000 and status["committedKW"] <= status["limitKW"]
        assert vtn.answer("ers-now") == "optIn"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.close()
