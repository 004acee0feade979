"""Prices and hashprice read over HTTP from a local server serving the published shapes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dualcap.signals import hashprice, prices
from dualcap.signals.reading import SignalError
from tests.peers.feeds import DATA, ERCOT_ROUTES, Feed


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    f = Feed(routes=dict(ERCOT_ROUTES))
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def test_real_time_prices_from_the_api_json(feed: Feed):
    url = f"{feed.url}/api/public-reports/np6-905-cd/spp_node_zone_hub?deliveryDateFrom=2026-07-14&settlementPoint=HB_HOUSTON"
    now = datetime(2026, 7, 14, 22, 50, tzinfo=UTC)
    signal = await prices.load(url, "HB_HOUSTON", now=now)
    assert prices.price_at(signal.value, now) == 9000.0
    # as new as its newest interval that has ended: 17:30-17:45 CDT
    assert signal.observed_at == datetime(2026, 7, 14, 22, 45, tzinfo=UTC)
    assert signal.age(now) == 300.0
    assert signal.source == url


async def test_fall_back_csv_and_day_ahead_over_http(feed: Feed):
    rt = await prices.load(f"{feed.url}/reports/np6-905-cd/rt_spp_fallback.csv", "LZ_WEST")
    assert len(rt.value) == 20 and min(i.usd_per_mwh for i in rt.value) < 0
    read_at = datetime(2026, 7, 14, 12, tzinfo=UTC)
    dam = await prices.load(
        f"{feed.url}/reports/np4-190-cd/dam_spp.csv", "HB_HOUSTON", "dam", now=read_at
    )
    assert len(dam.value) == 24
    assert dam.observed_at == read_at  # a forecast, all ahead: as new as the read


async def test_day_ahead_from_the_api_json(feed: Feed):
    url = f"{feed.url}/api/public-reports/np4-190-cd/dam_stlmnt_pnt_prices?deliveryDateFrom=2026-11-01&settlementPoint=HB_HOUSTON"
    dam = await prices.load(url, "HB_HOUSTON", "dam", now=datetime(2026, 10, 31, 19, tzinfo=UTC))
    assert len(dam.value) == 25


async def test_hashprice_per_petahash_either_unit(feed: Feed):
    phs = await hashprice.load(
        f"{feed.url}/hi-api/hashrateindex/hashprice?currency=USD&hashunit=PHS&bucket=1H&span=1D"
    )
    ths = await hashprice.load(
        f"{feed.url}/hi-api/ths/hashprice?currency=USD&hashunit=THS&bucket=1H&span=1D"
    )
    assert phs.value == pytest.approx(48.484)
    assert ths.value == pytest.approx(phs.value, rel=1e-5)
    assert phs.observed_at == datetime(2026, 7, 14, 18, tzinfo=UTC)


async def test_a_feed_answering_errors_or_garbage(feed: Feed):
    path = "/api/public-reports/np6-905-cd/spp_node_zone_hub"
    feed.broken[path] = (503, "<html>Service Unavailable</html>")
    with pytest.raises(SignalError) as err:
        await prices.load(feed.url + path, "HB_HOUSTON")
    assert err.value.reason == "HttpError"
    feed.broken[path] = (200, "<html>maintenance</html>")
    with pytest.raises(SignalError) as err:
        await prices.load(feed.url + path, "HB_HOUSTON")
    assert err.value.reason == "Unparseable"
    feed.broken["/hi-api/hashrateindex/hashprice"] = (
        200,
        '{"data": [{"timestamp": "2026-07-14T18:00:00Z", "price": 0}]}',
    )
    with pytest.raises(SignalError) as err:
        await hashprice.load(feed.url + "/hi-api/hashrateindex/hashprice")
    assert err.value.reason == "BadHashprice"


async def test_a_feed_that_is_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SignalError) as err:
        await prices.load(f"http://127.0.0.1:{port}/rt.csv", "HB_HOUSTON", timeout_seconds=2)
    assert err.value.reason == "Unreachable"
    with pytest.raises(SignalError) as err:
        await hashprice.load(str(DATA / "no-such-file.json"))
    assert err.value.reason == "Unreachable"


async def test_a_feed_keeps_its_last_good_reading_and_goes_stale(feed: Feed):
    from datetime import timedelta

    from dualcap.signals.freshness import Feed as SignalFeed
    from dualcap.signals.freshness import SignalAge

    url = f"{feed.url}/hi-api/hashrateindex/hashprice?currency=USD&hashunit=PHS"
    metrics = SignalAge()
    hp = SignalFeed(
        lambda: hashprice.load(url), "tx-rockdale-1", "hashprice", timedelta(hours=2), metrics
    )
    at = datetime(2026, 7, 14, 18, 30, tzinfo=UTC)
    assert hp.state(at)[0] == "NoReading"
    await hp.refresh(at)
    assert hp.value(at) == pytest.approx(48.484)
    assert hp.state(at) == ("Fresh", "hashprice: 1800 s old")
    assert metrics.value("tx-rockdale-1", "hashprice") == 1800.0

    feed.broken["/hi-api/hashrateindex/hashprice"] = (502, "<html>Bad Gateway</html>")
    later = at + timedelta(hours=1)
    await hp.refresh(later)
    assert hp.value(later) == pytest.approx(48.484)  # the last good reading, still fresh
    assert hp.error is not None and hp.error.reason == "HttpError"
    assert metrics.value("tx-rockdale-1", "hashprice") == 5400.0

    stale = at + timedelta(hours=3)
    assert hp.value(stale) is None  # the consumer falls back to the Site's static hashprice
    reason, message = hp.state(stale)
    assert reason == "Stale" and "HttpError" in message
