"""What every poller of outside input shares: its background tasks, and one poller per
Site made from a part of the Site's spec and made again when that part changes.

The pollers themselves (``meters``, ``feeds``) only read and keep what they read; the
site's reconcile asks them for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Generic, Protocol, TypeVar


class Tasks:
    """A poller's background tasks: started once; cancelled from synchronous code (they
    end at their next await) or cancelled and awaited."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def cancel(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Changes:
    """Wakes a site when what its poller reports changes state: no reading -> a reading,
    good -> an error, one error -> another, an error -> good. A change of value wakes it
    too when the poller says so (each decides what change of value matters)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._state: Any = None
        self._seen = False

    def saw(self, state: Any, moved: bool = False) -> bool:
        """Records ``state`` (hashable, compared with the last one); wakes the site if it
        differs or ``moved``. True if it woke it."""
        changed = not self._seen or state != self._state
        self._state, self._seen = state, True
        if changed or moved:
            self._wake()
        return changed or moved


class Poller(Protocol):
    def start(self) -> None: ...

    def cancel(self) -> None: ...

    async def stop(self) -> None: ...


P = TypeVar("P", bound=Poller)


class SitePollers(Generic[P]):
    """One poller per site. ``make(site, raw)`` builds one from the raw part of the Site's
    spec and raises ValueError when that part does not validate (the planner reports an
    invalid Site; no poller runs for it)."""

    def __init__(self, make: Callable[[str, Any], P]) -> None:
        self._make = make
        self._by_site: dict[str, tuple[str, P]] = {}

    async def get(self, site: str, raw: Any) -> P | None:
        """The site's poller for ``raw`` (None: the Site has none, or it is invalid),
        started when new; a poller for an older spec is stopped first."""
        key = json.dumps(raw, sort_keys=True) if raw is not None else None
        current = self._by_site.get(site)
        if current is not None and current[0] != key:
            del self._by_site[site]
            await current[1].stop()
            current = None
        if key is None:
            return None
        if current is None:
            try:
                poller = self._make(site, raw)
            except ValueError:
                return None
            poller.start()
            current = self._by_site[site] = (key, poller)
        return current[1]

    def forget(self, site: str) -> None:
        """Drops the site's poller (from synchronous code)."""
        current = self._by_site.pop(site, None)
        if current is not None:
            current[1].cancel()

    async def stop(self) -> None:
        pollers, self._by_site = list(self._by_site.values()), {}
        for _, poller in pollers:
            await poller.stop()

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_site)
