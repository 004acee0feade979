"""Live price feeds (``spec.prices``): one poller per Site and feed, on its own schedule.

Each keeps the feed's last good reading (``signals.freshness.Feed``: a failed read keeps
it and says why; past ``staleAfterSeconds`` it is no longer offered) and exports its age as
``dualcap_signal_age_seconds{site,source}``. The reconcile asks for the prices in force;
what is missing or stale falls back to the static values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from dualcap.api.feeds import PriceFeeds
from dualcap.cluster.pollers import Changes, Tasks
from dualcap.planning.entities import LivePrices
from dualcap.signals import hashprice, prices
from dualcap.signals.freshness import Feed, SignalAge
from dualcap.signals.prices import PriceInterval

log = logging.getLogger("dualcap")


class PricePoller:
    def __init__(
        self,
        site: str,
        spec: PriceFeeds,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        ages: SignalAge | None,
    ):
        self.site, self.spec, self.clock, self.wake = site, spec, clock, wake
        self.energy: Feed[list[PriceInterval]] | None = None
        self.hash: Feed[float] | None = None
        if spec.energy is not None:
            e = spec.energy
            self.energy = Feed(
                lambda: prices.load(e.source, e.settlement_point, e.market, now=self.clock()),
                site,
                f"ercot-{e.market}",
                timedelta(seconds=e.stale_after_seconds),
                ages,
            )
        if spec.hashprice is not None:
            h = spec.hashprice
            self.hash = Feed(
                lambda: hashprice.load(h.source),
                site,
                "hashprice",
                timedelta(seconds=h.stale_after_seconds),
                ages,
            )
        self._tasks = Tasks()

    def start(self) -> None:
        if self._tasks:
            return
        if self.energy is not None and self.spec.energy is not None:
            every = self.spec.energy.poll_seconds
            self._tasks.spawn(self._poll(self.energy, every), f"energy price {self.site}")
        if self.hash is not None and self.spec.hashprice is not None:
            every = self.spec.hashprice.poll_seconds
            self._tasks.spawn(self._poll(self.hash, every), f"hashprice {self.site}")

    def cancel(self) -> None:
        self._tasks.cancel()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _poll(self, feed: Feed, every: float) -> None:  # type: ignore[type-arg]
        changes = Changes(self.wake)
        while True:
            await self.refresh(feed, changes)
            await asyncio.sleep(every)

    async def refresh(self, feed: Feed, changes: Changes) -> None:  # type: ignore[type-arg]
        """One read of ``feed``; the site is woken by a new reading and by every change of
        the feed's error (good -> failing, one failure -> another, failing -> good)."""
        before = feed.last
        await feed.refresh(self.clock())
        if feed.error is not None:
            log.warning("site %s: %s: %s", self.site, feed.source, feed.error)
        changes.saw(feed.error.reason if feed.error else None, feed.last is not before)

    def now(self) -> LivePrices:
        now = self.clock()
        reasons, messages = [], []
        energy = None
        if self.energy is not None:
            reason, message = self.energy.state(now)
            intervals = self.energy.value(now)
            if intervals is not None:
                energy = prices.price_at(intervals, now)
                if energy is None:
                    reason, message = (
                        "OutsideSeries",
                        f"{self.energy.source}: no interval covers now",
                    )
            reasons.append(reason)
            messages.append(message)
        value = None
        if self.hash is not None:
            reason, message = self.hash.state(now)
            value = self.hash.value(now)
            reasons.append(reason)
            messages.append(message)
        bad = [r for r in reasons if r != "Fresh"]
        stale_at = [
            at for f in (self.energy, self.hash) if f is not None and (at := f.stale_at(now))
        ]
        return LivePrices(
            energy,
            value,
            not bad,
            bad[0] if bad else "Fresh",
            "; ".join(messages),
            min(stale_at, default=None),
        )
