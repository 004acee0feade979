"""Every query of the Grafana dashboard, run against a real Prometheus (Debian's) scraping
a running operator, returns data; and no series the operator exports would explode
Prometheus's cardinality.

The site is the MinerAgent site of tests/operator/test_miner_agent.py (three blocks of
fake LuxOS miners, a real agent each, the real operator), given a SunSpec meter (pymodbus),
price feeds and an event ahead, then cut and restored so that curtailments, resumes and a
time to compliance are recorded.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dualcap.cluster import metrics as m
from dualcap_sandbox.app import free_port
from dualcap_sandbox.sunspec import SunSpecMeterPeer
from tests.operator.conftest import Running
from tests.operator.test_miner_agent import SITE, site_status

# the MinerAgent site's fixtures, used by name
from tests.operator.test_miner_agent import closed as closed
from tests.operator.test_miner_agent import fleet as fleet
from tests.operator.test_miner_agent import world as world
from tests.operator.test_operator import API, http
from tests.peers.prometheus import Prometheus, PrometheusUnavailable, find_prometheus
from tests.sandbox.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "dualcap" / "dashboards" / "dualcap.json"
# What Grafana puts in for its own variables when it runs a panel's query
GRAFANA = {"$__rate_interval": "2m", "$__interval": "15s", "$__range": "5m"}
# Labels a dualcap series may carry, and the values each may take (site: any Site's name)
ALLOWED = {
    "kind": {*m.DRAW_KINDS, *m.COMMAND_KINDS.values(), "gpu", *m.WAIT_KINDS, *m.OFFER_KINDS},
    "state": {*m.CONTROLLER_STATES, *m.MINER_STATES, *m.BLOCK_STATES, "leased", "free"},
    "phase": set(m.PHASES),
    "result": {"success", "error"},
    "input": set(m.INPUTS),
    "source": {"ercot-rt", "ercot-dam", "hashprice", "openadr"},
    "le": None,  # histogram buckets: fixed in the code
    "code": None,  # HTTP status codes
}
SCRAPE = {"__name__", "instance", "job"}
# Series per metric name and site: the largest is a histogram's buckets
MAX_SERIES_PER_SITE = 16


def panel_queries() -> list[tuple[str, str]]:
    """(where, expr) of every PromQL query in the dashboard: panels and annotations."""
    board = json.loads(DASHBOARD.read_text())
    found = [(f"annotation {a['name']}", a["expr"]) for a in board["annotations"]["list"]]
    for panel in board["panels"]:
        for target in panel.get("targets") or []:
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return found


def substitute(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    return expr.replace("$site", SITE)


def price_feeds(tmp: Path) -> dict[str, Any]:
    """An ERCOT real-time price file and a hashprice file, both from another day: the
    feeds answer, and are stale (what the dashboard's input panels show)."""
    energy = tmp / "np6-905-cd_rt_spp.csv"
    energy.write_text(
        "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
        "SettlementPointPrice,DSTFlag\n07/14/2026,7,1,HB_WEST,HU,28.00,N\n"
    )
    hashprice = tmp / "hashprice.json"
    hashprice.write_text(
        json.dumps({"data": [{"timestamp": "2026-07-14T10:00:00Z", "price": 52.5}]})
    )
    return {
        "energy": {"source": str(energy), "settlementPoint": "HB_WEST", "pollSeconds": 5},
        "hashprice": {"source": str(hashprice), "pollSeconds": 5},
    }


async def until(what: str, check: Any, timeout: float = 40.0) -> Any:
    return await wait_for(check, timeout=timeout, interval=0.2, what=what)


async def test_every_dashboard_query_returns_data_from_a_running_operator(
    closed: Running, tmp_path: Path
) -> None:
    if find_prometheus() is None:
        pytest.skip("no Prometheus binary (`make test` installs Debian's prometheus package)")
    sb, state = closed.sb, closed.state
    assert state.metrics is not None
    meter = await SunSpecMeterPeer().start()
    port = free_port()
    state.metrics.serve(port, addr="127.0.0.1")
    try:
        server = Prometheus([f"127.0.0.1:{port}"], job="dualcap").start()
    except PrometheusUnavailable as err:
        pytest.skip(str(err))
    try:
        await closed.settle(timeout=40, site=SITE)

        async def reporting() -> bool:
            state.wake(SITE)
            return (site_status(sb).get("miners") or {}).get("reporting") == 3

        await until("every block reporting", reporting)
        meter.set_watts(site_status(sb)["committedKW"] * 1000, scale=4)
        start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        site_patch = {"spec": {
            "meter": {"sunspec": {"host": "127.0.0.1", "port": meter.port}, "pollSeconds": 1,
                      "timeoutSeconds": 1, "staleAfterSeconds": 5},
            "prices": price_feeds(tmp_path),
        }}  # fmt: skip
        code, body = await http(sb, "PATCH", f"{API}/sites/{SITE}", site_patch)
        assert code == 200, body.get("message")
        event = {"name": "ahead", "start": start, "end": end, "limitKW": 60}
        code, body = await http(
            sb, "PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"events": [event]}}
        )
        assert code == 200, body

        async def metered() -> bool:
            state.wake(SITE)
            meter.set_watts(site_status(sb).get("committedKW", 0) * 1000, scale=4)
            return site_status(sb).get("meteredKW") is not None

        await until("the meter read", metered)

        def scraped(promql: str) -> Any:
            async def check() -> Any:
                return await asyncio.to_thread(server.query, promql)

            return check

        # Prometheus finds its target after its first discovery interval (5 s): the cut
        # comes once it scrapes the operator, so that the scrapes see the counters move.
        await until("the operator scraped", scraped(f'dualcap_site_limit_watts{{site="{SITE}"}}'))

        # A cut (two blocks curtailed and confirmed asleep), then the limit back: resumes.
        for limit in (20, 100):
            code, body = await http(
                sb, "PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"limitKW": limit}}
            )
            assert code == 200, body
            await closed.settle(timeout=40, site=SITE)
            meter.set_watts(site_status(sb)["committedKW"] * 1000, scale=4)

        await until("the resumes scraped", scraped(
            'increase(dualcap_commands_total{kind="resume"}[1m]) > 0'
        ))  # fmt: skip
        await until("the compliance time scraped", scraped(
            "dualcap_envelope_compliance_seconds_count > 0"
        ))  # fmt: skip

        # The site variable's query (Grafana's label_values) lists the site.
        values = await asyncio.to_thread(
            server.api, "label/site/values", **{"match[]": "dualcap_site_limit_watts"}
        )
        assert SITE in values

        empty = []
        queries = panel_queries()
        assert len(queries) >= 25
        for where, expr in queries:
            result = await asyncio.to_thread(server.query, substitute(expr))
            numbers = [float(r["value"][1]) for r in result]
            if not [v for v in numbers if not math.isnan(v)]:
                empty.append(f"{where}: {substitute(expr)} -> {result}")
        assert empty == [], "\n".join(empty)

        # Cardinality: bounded label names and values, a bounded number of series a site.
        series = await asyncio.to_thread(
            server.api, "series", **{"match[]": '{__name__=~"dualcap_.+"}'}
        )
        assert len(series) > 50
        per_site: Counter[tuple[str, str]] = Counter()
        for s in series:
            labels = set(s) - SCRAPE
            assert labels <= {"site", *ALLOWED}, s
            for label in labels - {"site"}:
                allowed = ALLOWED[label]
                if allowed is None:
                    assert re.fullmatch(r"[0-9.+Inf]+", s[label]), s
                else:
                    assert s[label] in allowed, s
            per_site[(s["__name__"], s.get("site", ""))] += 1
        worst = max(per_site.items(), key=lambda kv: kv[1])
        assert worst[1] <= MAX_SERIES_PER_SITE, worst
    finally:
        await asyncio.to_thread(server.stop)
        await meter.stop()
