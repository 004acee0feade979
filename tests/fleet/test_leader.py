"""Two `dualcap fleet` replicas, one acting: the Lease on the sandbox's API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dualcap.client import Client
from dualcap.fleet.leader import Leader
from dualcap_sandbox.app import Sandbox
from tests.e2e.scenario import connect


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[Client]:
    sb = Sandbox()
    await sb.start()
    c = connect(sb.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield c
    finally:
        await c.close()
        await sb.stop()


async def test_one_leads_the_other_takes_over_when_it_stops_renewing(client: Client) -> None:
    ticks = Ticker()
    a = Leader(client, "default", identity="a", duration_seconds=15, ticker=ticks)
    b = Leader(client, "default", identity="b", duration_seconds=15, ticker=ticks)
    assert await a.hold() and not await b.hold()
    ticks.now = 10
    assert await a.hold() and not await b.hold()  # renewed: b sees the renewal move
    ticks.now = 24  # 14 s since b last saw it move: not yet
    assert not await b.hold()
    ticks.now = 26  # a silent for longer than the Lease: b takes over
    assert await b.hold()
    assert not await a.hold()  # a is out until b stops
    got = await client.request(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/dualcap-fleet"
    )
    assert got.body["spec"]["holderIdentity"] == "b" and got.body["spec"]["leaseTransitions"] == 1


async def test_a_clean_stop_hands_the_lease_over_at_once(client: Client) -> None:
    ticks = Ticker()
    a = Leader(client, "default", identity="a", ticker=ticks)
    b = Leader(client, "default", identity="b", ticker=ticks)
    assert await a.hold() and not await b.hold()
    await a.release()
    assert await b.hold()
