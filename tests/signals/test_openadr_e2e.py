"""The adapter's VEN against openleadr's own VTN on loopback, writing its budget into the
sandbox Kubernetes API: registration, an event with lead time, a modification, a
cancellation, an opt-out, and a VTN that goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dualcap.signals.openadr import EVENTS_ANNOTATION, Adapter, Config
from tests.peers.openadr_fixtures import Cluster, until
from tests.peers.vtn import Vtn, load_dispatch, simple

SITE = "tx-rockdale-1"
BUDGET = f"openadr-{SITE}"


def config(vtn: Vtn, **extra: Any) -> Config:
    return Config.model_validate(
        {
            "vtnURL": vtn.url,
            "venName": "dualcap-rockdale",
            "insecure": True,
            "pollIntervalSeconds": 0.2,
            "leadTimeSeconds": 120,
            "simpleLevels": {1: 30_000, 2: 15_000, 3: 1_000},
            "sites": [{"name": SITE, "interconnectKW": 45_000, "floorKW": 2_000}],
            **extra,
        }
    )


class Running:
    def __init__(self, adapter: Adapter):
        self.adapter = adapter
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Adapter:
        self.task = asyncio.create_task(self.adapter.run(self.stop))
        return self.adapter

    async def __aexit__(self, *_: Any) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def adapter(cluster: Cluster, vtn: Vtn) -> AsyncIterator[Adapter]:
    async with Running(Adapter(config(vtn), cluster.client)) as a:
        await until(lambda: _true(a.registered), what="registration")
        yield a


async def _true(value: Any) -> Any:
    return value


def events_of(budget: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list(((budget or {}).get("spec") or {}).get("events") or [])


def decisions_of(budget: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    raw = (((budget or {}).get("metadata") or {}).get("annotations") or {}).get(EVENTS_ANNOTATION)
    return {d["eventID"]: d for d in json.loads(raw or "[]")}


async def test_registration(adapter: Adapter, vtn: Vtn):
    assert vtn.registrations == ["dualcap-rockdale"]
    assert adapter._ven.ven_id == "ven-rockdale-1"
    await until(lambda: _true(vtn.polls >= 3), what="polls")
    assert adapter.metrics.value(SITE, "openadr") is not None


async def test_event_with_lead_time_modification_and_cancellation(
    adapter: Adapter, vtn: Vtn, cluster: Cluster
):
    start = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    vtn.send(
        load_dispatch(
            "ers-1",
            start,
            60,
            12_000,
            notification=timedelta(minutes=10),
            ramp_up=timedelta(minutes=5),
        )
    )

    async def delivered(limit: float) -> dict[str, Any] | None:
        b = await cluster.budget(BUDGET)
        return b if [e["limitKW"] for e in events_of(b)] == [limit] else None

    budget = await until(lambda: delivered(12_000), what="the event in the budget")
    assert budget["metadata"]["labels"]["dualcap.io/adapter"] == "openadr"
    assert budget["spec"]["siteRef"] == SITE and budget["spec"]["limitKW"] == 45_000
    assert budget["spec"]["leadTimeSeconds"] == 300  # the ramp-up, within the notification
    (event,) = events_of(budget)
    assert event["name"] == "ers-1-0"
    assert event["start"] == start.isoformat().replace("+00:00", "Z")
    assert event["end"] == (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    await until(lambda: _true(vtn.answer("ers-1") == "optIn"), what="optIn")

    vtn.send(load_dispatch("ers-1", start, 90, 8_000, modification=1))
    budget = await until(lambda: delivered(8_000), what="the modification")
    assert events_of(budget)[0]["end"] == (start + timedelta(minutes=90)).isoformat().replace(
        "+00:00", "Z"
    )
    assert decisions_of(budget)["ers-1"]["modificationNumber"] == 1

    vtn.send(load_dispatch("ers-1", start, 90, 8_000, modification=2, status="cancelled"))

    async def removed() -> bool:
        b = await cluster.budget(BUDGET)
        return b is not None and events_of(b) == [] and "ers-1" not in decisions_of(b)

    await until(removed, what="the cancellation")
    await until(
        lambda: _true(len([a for a in vtn.answers if a[0] == "ers-1"]) == 3), what="three answers"
    )


async def test_an_event_below_the_floor_is_opted_out_with_the_reason(
    adapter: Adapter, vtn: Vtn, cluster: Cluster
):
    start = datetime.now(UTC) + timedelta(minutes=30)
    vtn.send(simple("ers-deep", start, 60, level=3))  # 1,000 kW, below the 2,000 kW floor
    await until(lambda: _true(vtn.answer("ers-deep") == "optOut"), what="optOut")
    budget = await cluster.budget(BUDGET)
    assert events_of(budget) == []
    decision = decisions_of(budget)["ers-deep"]
    assert (decision["opt"], decision["reason"]) == ("optOut", "BelowFloor")
    assert "floor" in decision["message"]


async def test_the_sites_own_floor_wins_over_the_config(
    adapter: Adapter, vtn: Vtn, cluster: Cluster
):
    from dualcap.signals.openadr import floor_from_site

    patched = await cluster.client.patch(
        f"/apis/dualcap.io/v1alpha1/sites/{SITE}/status", {"status": {"floorKW": 500}}
    )
    site = (await cluster.client.request("GET", f"/apis/dualcap.io/v1alpha1/sites/{SITE}")).body
    if not patched.ok or floor_from_site(site) is None:
        pytest.skip("the Site's status has no floorKW field in this CRD yet")
    vtn.send(simple("ers-level3", datetime.now(UTC) + timedelta(minutes=30), 60, level=3))
    await until(lambda: _true(vtn.answer("ers-level3") == "optIn"), what="optIn at a 500 kW floor")


async def test_a_vtn_that_goes_away_takes_nothing_delivered_with_it(
    adapter: Adapter, vtn: Vtn, cluster: Cluster
):
    start = datetime.now(UTC) - timedelta(minutes=1)  # under way
    vtn.send(load_dispatch("ers-now", start, 30, 20_000))

    async def delivered() -> bool:
        return [e["name"] for e in events_of(await cluster.budget(BUDGET))] == ["ers-now-0"]

    await until(delivered, what="the event")
    await vtn.stop()
    polls = vtn.polls
    first_age = adapter.metrics.value(SITE, "openadr") or 0.0
    failed = len(unreachable(adapter))

    async def polled_in_vain() -> bool:  # several polls against a closed port
        return len(unreachable(adapter)) >= min(failed + 3, 20)

    await until(polled_in_vain, what="three polls of the closed port")
    assert vtn.polls == polls
    assert await delivered()
    assert (adapter.metrics.value(SITE, "openadr") or 0.0) > first_age + 0.5
    # a restart while the VTN is still down keeps it too
    async with Running(Adapter(adapter.config, cluster.client)) as again:

        async def refused() -> bool:
            return bool(unreachable(again))

        await until(refused, what="the restarted adapter finding the VTN down")
        assert not again.registered
    assert await delivered()


def unreachable(adapter: Adapter) -> list[str]:
    return [p for p in adapter.problems if p.startswith("Unreachable")]


async def test_a_vtn_answering_garbage(cluster: Cluster):
    from aiohttp import web

    from tests.peers.vtn import free_port

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="application/xml")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        cfg = Config.model_validate(
            {
                "vtnURL": f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
                "venName": "v",
                "insecure": True,
                "pollIntervalSeconds": 0.1,
                "sites": [{"name": SITE, "interconnectKW": 45_000}],
            }
        )
        async with Running(Adapter(cfg, cluster.client)) as a:
            await until(lambda: _true(len(a.problems) >= 2), what="problems reported")
            assert not a.registered
        assert await cluster.budget(BUDGET) is None
    finally:
        await runner.cleanup()


async def test_an_open_ended_event_stays_in_force_until_the_vtn_ends_it(cluster: Cluster, vtn: Vtn):
    cfg = config(vtn, openEndedHours=0.002)  # 7.2 s at a time, renewed at half time
    async with Running(Adapter(cfg, cluster.client)) as a:
        await until(lambda: _true(a.registered), what="registration")
        vtn.send(load_dispatch("ers-open", datetime.now(UTC) - timedelta(seconds=1), 0, 18_000))

        async def end() -> str | None:
            got = events_of(await cluster.budget(BUDGET))
            return got[0]["end"] if got else None

        first = await until(end, what="the open-ended event")
        await until(lambda: _later(end, first), timeout=15, what="its end renewed")
        vtn.send(
            load_dispatch(
                "ers-open", datetime.now(UTC), 0, 18_000, modification=1, status="cancelled"
            )
        )

        async def gone() -> bool:
            return await end() is None

        await until(gone, what="the cancellation")


async def _later(end: Any, first: str) -> bool:
    now = await end()
    return now is not None and now > first
