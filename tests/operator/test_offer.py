"""The site's offer to a fleet (spec.offer) on the running operator: published in the
Site's status and the metrics, rewritten when it changes materially or is due for
refresh, and nothing else written while the site is idle."""

from __future__ import annotations

from datetime import timedelta

from dualcap.api.objects import parse_rfc3339
from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import API, http, set_event


async def test_the_offer_is_published_refreshed_and_follows_a_cut(site: Running) -> None:
    sb, clock = site.sb, site.clock
    code, body = await http(sb, "PATCH", f"{API}/sites/{SITE}", {"spec": {"offer": {"refreshSeconds": 60}}})  # fmt: skip
    assert code == 200, body
    status = await site.settle()
    for _ in range(20):
        if status.get("offer"):
            break
        status = await site.settle()
    o = status["offer"]
    assert o["gpusFree"] == status["gpus"]["free"] and o["limitKW"] == status["limitKW"]
    assert o["freeKW"] <= o["availableKW"] <= o["limitKW"]
    assert o["room"][0]["lostUSDPerMWh"] == 0.0 and len(o["room"]) >= 2  # headroom, then miners
    assert parse_rfc3339(o["validUntil"]) - parse_rfc3339(o["observedAt"]) == timedelta(minutes=3)
    assert site.state.metrics is not None
    registry = site.state.metrics.registry
    assert registry.get_sample_value("dualcap_site_offer_gpus", {"site": SITE}) == o["gpusFree"]
    available = registry.get_sample_value("dualcap_site_offer_watts", {"site": SITE, "kind": "available"})  # fmt: skip
    # the gauge follows every plan; the status only material changes (1 % of the limit)
    assert available is not None and abs(available / 1000 - o["availableKW"]) <= 0.01 * o["limitKW"]

    # Idle: nothing written until the refresh is due (the test's clock stands still) ...
    await site.reconciled()
    before = site.writes()
    await site.reconciled(5)
    assert site.writes() == before
    # ... then the offer alone, observed anew
    clock.advance(seconds=61)
    await site.reconciled(3)
    status = await site.settle()
    assert parse_rfc3339(status["offer"]["observedAt"]) - parse_rfc3339(o["observedAt"]) >= timedelta(seconds=61)  # fmt: skip

    # A cut: the offer follows it at once
    await set_event(sb, 15_000, clock)
    status = await site.settle()
    assert status["offer"]["limitKW"] == status["limitKW"] < o["limitKW"]

    # spec.offer removed: the offer goes
    code, body = await http(sb, "PATCH", f"{API}/sites/{SITE}", {"spec": {"offer": None}})
    assert code == 200, body
    status = await site.settle()
    for _ in range(20):
        if "offer" not in status:
            break
        status = await site.settle()
    assert "offer" not in status
    assert registry.get_sample_value("dualcap_site_offer_gpus", {"site": SITE}) is None
