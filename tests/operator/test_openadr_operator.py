"""Demand response end to end: openleadr's own VTN, the adapter's VEN writing its own
PowerBudget, and the real operator keeping the example site inside the dispatched limit
beside its GitOps budget (budgets compose)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import kopf

from dualcap.client import Client
from dualcap.signals.openadr import Adapter
from tests.operator.conftest import Running
from tests.peers.openadr_fixtures import vtn as vtn  # the VTN fixture, used by name
from tests.peers.vtn import Vtn, load_dispatch
from tests.signals.test_openadr_e2e import config

SITE = "tx-rockdale-1"


async def test_a_dispatch_on_the_vtn_brings_the_site_inside_it(
    wall_site: Running, vtn: Vtn
) -> None:
    site = wall_site
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
