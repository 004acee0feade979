"""Live prices on the sandbox with the real operator: an ERCOT real-time price in the
NP6-905 shape and a Hashrate Index hashprice, read from files, replace the static prices
while they cover now; past the series, the static price counts again (and the Site says
so). The user's spec is never written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import API, curtailed, http

HEADER = "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag"


def price_file(tmp: Path, usd_per_mwh: float) -> Path:
    # The operator's clock stands at 2026-07-14 06:00 CDT: hour ending 07 covers it.
    rows = [
        f"07/14/2026,{hour},{i},HB_WEST,HU,{usd_per_mwh:.2f},N"
        for hour in (7,)
        for i in (1, 2, 3, 4)
    ]
    path = tmp / "np6-905-cd_rt_spp.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


async def test_a_price_spike_from_the_feed_curtails_mining_and_falls_back(
    site: Running, tmp_path: Path
) -> None:
    sb = site.sb
    before = await site.settle()
    assert len(curtailed(sb)) == 1
    hashprice = tmp_path / "hashprice.json"
    hashprice.write_text(
        json.dumps({"data": [{"timestamp": "2026-07-14T10:00:00Z", "price": 52.5}]})
    )
    feeds = {
        "energy": {"source": str(price_file(tmp_path, 900.0)), "settlementPoint": "HB_WEST", "pollSeconds": 5},
        "hashprice": {"source": str(hashprice), "pollSeconds": 5},
    }  # fmt: skip
    code, body = await http(sb, "PATCH", f"{API}/sites/{SITE}", {"spec": {"prices": feeds}})
    assert code == 200, body
    status = before
    for _ in range(60):
        status = await site.settle()
        if (status.get("prices") or {}).get("energySource") == "feed":
            break
    prices = status["prices"]
    assert prices["energyUSDPerMWh"] == 900.0 and prices["energySource"] == "feed"
    assert prices["hashpriceUSDPerPHDay"] == 52.5 and prices["hashpriceSource"] == "feed"
    assert conditions(status)["PricesFresh"] == ("True", "Fresh")
    # 900 USD/MWh is far above every controller's break-even: mining stops.
    assert len(curtailed(sb)) == 25
    site_obj = sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE)
    assert site_obj["spec"]["asic"]["hashpriceUSDPerPHDay"] == 45  # the spec is untouched

    # Two hours on, the series no longer covers now: the budget's static price counts.
    site.clock.advance(hours=2)
    for _ in range(60):
        status = await site.settle()
        if status["prices"]["energySource"] == "budget":
            break
    assert status["prices"]["energySource"] == "budget"
    assert conditions(status)["PricesFresh"][0] == "False"  # stale, or outside its series
    site.clock.advance(minutes=10)  # past minCurtailedSeconds: mining may resume
    status = await site.settle()
    assert len(curtailed(sb)) < 25
    assert before["revenueUSDPerHour"] > 0
