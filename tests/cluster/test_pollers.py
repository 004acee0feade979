"""One poller per Site, made again when its part of the spec changes (meters, GPU power,
price feeds share this)."""

from __future__ import annotations

import asyncio
from typing import Any

from dualcap.cluster.pollers import SitePollers, Tasks


class Recorder:
    def __init__(self, site: str, raw: Any) -> None:
        self.site, self.raw = site, raw
        self.tasks = Tasks()
        self.stopped = self.cancelled = False

    def start(self) -> None:
        self.tasks.spawn(asyncio.sleep(3600), f"poll {self.site}")

    def cancel(self) -> None:
        self.cancelled = True
        self.tasks.cancel()

    async def stop(self) -> None:
        self.stopped = True
        await self.tasks.stop()


def make(site: str, raw: Any) -> Recorder:
    if raw.get("bad"):
        raise ValueError("invalid")
    return Recorder(site, raw)


async def test_the_same_spec_keeps_its_poller_a_changed_one_is_made_again() -> None:
    pollers: SitePollers[Recorder] = SitePollers(make)
    first = await pollers.get("a", {"pollSeconds": 5})
    assert first is not None and first.tasks
    # key order does not matter: the same spec
    assert await pollers.get("a", {"pollSeconds": 5}) is first
    second = await pollers.get("a", {"pollSeconds": 10})
    assert second is not None and second is not first
    assert first.stopped and not first.tasks and second.tasks
    assert await pollers.get("a", None) is None and second.stopped
    assert list(pollers) == []


async def test_an_invalid_spec_runs_no_poller_and_forget_and_stop_end_them() -> None:
    pollers: SitePollers[Recorder] = SitePollers(make)
    assert await pollers.get("a", {"bad": True}) is None
    assert list(pollers) == []
    a = await pollers.get("a", {"pollSeconds": 5})
    b = await pollers.get("b", {"pollSeconds": 5})
    assert a is not None and b is not None and sorted(pollers) == ["a", "b"]
    pollers.forget("a")
    assert a.cancelled and list(pollers) == ["b"]
    await pollers.stop()
    assert b.stopped and list(pollers) == []
