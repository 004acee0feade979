"""The site meter closes the loop (the real operator, pymodbus's own Modbus TCP server
holding a SunSpec meter's registers): the meter bounds the committed draw from below, an
unmodelled load it shows is shed, and a meter gone quiet keeps that load as a reserve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dualcap_sandbox.sunspec import SunSpecMeterPeer
from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import API, curtailed, http


@pytest.fixture
async def meter() -> AsyncIterator[SunSpecMeterPeer]:
    peer = await SunSpecMeterPeer().start()
    try:
        yield peer
    finally:
        await peer.stop()


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


async def test_the_meter_bounds_the_draw_and_an_unmodelled_load_is_shed(
    site: Running, meter: SunSpecMeterPeer
) -> None:
    sb = site.sb
    before = await site.settle()
    modelled = before["committedKW"]
    meter.set_watts(modelled * 1000, scale=4)  # the meter agrees with the model
    spec = {
        "sunspec": {"host": "127.0.0.1", "port": meter.port},
        "pollSeconds": 1,
        "timeoutSeconds": 1,
        "staleAfterSeconds": 3,
    }
    code, body = await http(sb, "PATCH", f"{API}/sites/{SITE}", {"spec": {"meter": spec}})
    assert code == 200, body

    status = await site.settle()
    for _ in range(40):
        if status.get("meteredKW") is not None:
            break
        status = await site.settle()
    assert abs(status["meteredKW"] - modelled) < 10 and status["unmodelledKW"] < 10
    assert conditions(status)["Metered"] == ("True", "MeterFresh")
    assert conditions(status)["MeterAgrees"][0] == "True"
    shed_before = len(curtailed(sb))

    # 5 MW appear on the meter that nobody declared (a chiller plant): counted and shed.
    # The meter follows the site's true draw: the parts as the cluster has them, plus it.
    async def follow(extra_kw: float) -> None:
        while True:
            s = (sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE) or {})["status"]
            parts = s["committedKW"] - s.get("unmodelledKW", 0.0)
            meter.set_watts((parts + extra_kw) * 1000, scale=4)
            await asyncio.sleep(0.2)

    follower = asyncio.create_task(follow(5_000))
    try:
        for _ in range(60):
            status = await site.settle()
            if status.get("unmodelledKW", 0) > 4_000 and status["committedKW"] <= 49_500:
                break
        assert status["unmodelledKW"] > 4_000
        assert status["committedKW"] <= status["limitKW"] == 49_500
        # enough for 5 MW (2.6 MW a controller at the PUE), and no runaway: the meter is
        # compared with the model as it was when it was read
        assert shed_before + 2 <= len(curtailed(sb)) <= shed_before + 4
    finally:
        follower.cancel()

    # The meter goes quiet: the model counts again, the unmodelled load stays as a reserve.
    await meter.stop()
    site.clock.advance(seconds=10)
    for _ in range(40):
        status = await site.settle()
        if conditions(status)["Metered"][0] == "False":
            break
    assert conditions(status)["Metered"][0] == "False"
    assert status["unmodelledKW"] > 4_000 and status["committedKW"] <= 49_500
    events = {e["reason"] for e in sb.store.list_objects(sb.store.rt("", "events"))}
    assert events & {"MeterStale", "Unreachable", "Timeout"}  # told as it went quiet
