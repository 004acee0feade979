"""A live price crossing a block's break-even -> its economic curtailment (issue 15).

The example site (bench/loopsite.py, a limit high enough that power curtails nothing) with
spec.prices: an ERCOT real-time settlement point price feed, served in the NP6-905 CSV
shape by an HTTP server on 127.0.0.1 (this process), read by the real operator (`dualcap
run`, its own process) on the sandbox (this process). The series covers the hours around
now at one price, which the benchmark changes.

At 28 USD/MWh every block mines. Each repeat, at a random phase of the feed's poll cycle,
the price goes to 90 USD/MWh: above the break-even of the five older S19 XP blocks (~81
USD/MWh at the site's PUE and the 45 USD/PH/day hashprice), below that of the S21 blocks
(~99). Timed from then: the first poll of the feed that carries it, and those five blocks
marked. Then the price goes back and they resume. Target: one price poll plus one
reconcile. Prints figures; asserts nothing.

    BENCH_POLL_SECONDS (default 5, the feed's minimum), BENCH_REPEATS (default 5)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dualcap.signals.prices import CENTRAL
from loopsite import (
    SITE,
    SiteWatch,
    median_max,
    run_operator,
    settled,
    site_objects,
    start_sandbox,
    stop_process,
)

POLL = float(os.environ.get("BENCH_POLL_SECONDS", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
LOW, HIGH = 28.0, 90.0  # USD/MWh: between the S19 XP's break-even and the S21's
S19XP = frozenset(f"asic-c{i}" for i in range(21, 26))  # examples/40-nodes.yaml
POINT = "HB_WEST"
HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
    "SettlementPointPrice,DSTFlag"
)


class PriceFeed:
    """NP6-905-CD as CSV: 15-minute intervals from two hours ago to four hours on, all at
    ``usd_per_mwh``; notes when each request was answered."""

    def __init__(self) -> None:
        self.usd_per_mwh = LOW
        self.served: list[tuple[float, float]] = []  # (monotonic time, price served)
        self.url = ""
        self._runner: web.AppRunner | None = None

    def csv(self) -> str:
        now = datetime.now(UTC)
        start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        rows = [HEADER]
        for k in range(-8, 16):
            local = (start + timedelta(minutes=15 * k)).astimezone(CENTRAL)
            rows.append(
                f"{local:%m/%d/%Y},{local.hour + 1},{local.minute // 15 + 1},{POINT},HU,"
                f"{self.usd_per_mwh:.2f},{'Y' if local.fold else 'N'}"
            )
        return "\n".join(rows) + "\n"

    async def _handle(self, request: web.Request) -> web.Response:
        self.served.append((time.monotonic(), self.usd_per_mwh))
        return web.Response(text=self.csv(), content_type="text/csv")

    async def start(self) -> PriceFeed:
        app = web.Application()
        app.router.add_get("/reports/np6-905-cd/rt_spp.csv", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/reports/np6-905-cd/rt_spp.csv"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-price-"))
    log = tmp / "operator.log"
    feed = await PriceFeed().start()
    objects = site_objects(limit_kw=60_000)
    for obj in objects:
        if obj.get("kind") == "Site":
            obj["spec"]["prices"] = {
                "energy": {
                    "source": feed.url,
                    "settlementPoint": POINT,
                    "pollSeconds": POLL,
                    "staleAfterSeconds": 3600,
                }
            }
    sb, kubeconfig = await start_sandbox(tmp, objects)
    watch = SiteWatch(sb).start()
    op = run_operator(kubeconfig, log)
    read: list[float] = []  # price changed -> the first poll of the feed that carries it
    first: list[float] = []  # -> the first of the five marked
    curtailed: list[float] = []  # -> all five marked
    after_read: list[float] = []  # the poll -> all five marked
    resumed: list[float] = []  # price back -> none of them marked
    others: set[str] = set()  # anything else marked on the way (there should be nothing)
    try:
        await settled(sb, 60, lambda s: (s.get("prices") or {}).get("energyUSDPerMWh") == LOW)
        await watch.until(watch.sample().at, lambda s: not s.marked, 30, "every block mining")
        rng = random.Random(1)
        for n in range(REPEATS):
            await asyncio.sleep(rng.uniform(0, POLL))  # a random phase of the poll cycle
            t0 = time.monotonic()
            feed.usd_per_mwh = HIGH
            done = await watch.until(t0, lambda s: s.marked >= S19XP, POLL + 30, f"repeat {n}")
            one = watch.first_since(t0, lambda s: bool(s.marked & S19XP))
            poll = next(t for t, price in feed.served if t >= t0 and price == HIGH)
            read.append(poll - t0)
            first.append((one or done).at - t0)
            curtailed.append(done.at - t0)
            after_read.append(done.at - poll)
            others |= done.marked - S19XP
            t1 = time.monotonic()
            feed.usd_per_mwh = LOW
            back = await watch.until(t1, lambda s: not s.marked, POLL + 30, f"repeat {n} resumed")
            resumed.append(back.at - t1)
    finally:
        stop_process(op, log)
        await sb.stop()
        await feed.stop()
    print(
        f"Live ERCOT price crossing a block's break-even -> its curtailment ({REPEATS} repeats,"
        f" feed poll {POLL:g} s, {LOW:g} -> {HIGH:g} USD/MWh at {POINT}, site {SITE})"
    )
    print(median_max("price changes -> the first feed poll of it", read))
    print(median_max("price changes -> the first S19 XP block marked", first))
    print(median_max("price changes -> all five marked", curtailed))
    print(median_max("that poll -> all five marked (the reconcile)", after_read))
    print(median_max("price back -> all five resumed", resumed))
    print(f"  target: one price poll ({POLL:g} s) plus one reconcile")
    print(f"  other blocks marked on the way: {sorted(others) or 'none'}")
    print("  each (curtailed): " + ", ".join(f"{t:.2f}" for t in curtailed))


if __name__ == "__main__":
    asyncio.run(main())
