"""How old an outside input is: every adapter's reading carries when it was observed.

A reading is fresh while it is younger than the adapter's limit; past it, the consumer
falls back to its static value. The age is exported as ``dualcap_signal_age_seconds``
so a stalled feed shows on a dashboard before it shows in a bill.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Gauge

from dualcap.signals.reading import SignalError

T = TypeVar("T")


@dataclass(frozen=True)
class Signal(Generic[T]):
    """One reading of an outside input: its value, when the source observed it (aware
    datetime) and where it came from (a URL, a file, a VTN)."""

    value: T
    observed_at: datetime
    source: str

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at must carry a time zone")

    def age(self, now: datetime) -> float:
        """Seconds since the observation; a reading from a clock ahead of ours is 0 old."""
        return max(0.0, (now - self.observed_at).total_seconds())

    def fresh(self, now: datetime, stale_after: timedelta | float) -> bool:
        limit = stale_after.total_seconds() if isinstance(stale_after, timedelta) else stale_after
        return self.age(now) <= limit


class SignalAge:
    """The ``dualcap_signal_age_seconds{site,source}`` gauge. ``source`` is the kind of
    input (``openadr``, ``ercot-rt``, ``hashprice``), never a URL: labels stay bounded."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.gauge = Gauge(
            "dualcap_signal_age_seconds",
            "Age of the latest outside input an adapter holds, in seconds.",
            ["site", "source"],
            registry=self.registry,
        )

    def observe(self, site: str, source: str, signal: Signal[object], now: datetime) -> float:
        age = signal.age(now)
        self.gauge.labels(site=site, source=source).set(age)
        return age

    def value(self, site: str, source: str) -> float | None:
        return self.registry.get_sample_value(
            "dualcap_signal_age_seconds", {"site": site, "source": source}
        )


async def read_source(location: str, timeout_seconds: float = 10.0) -> str:
    """The text at a file path or an http(s) URL; anything else, or a failure to read it,
    is a ``SignalError`` (``Unreachable`` or ``HttpError``)."""
    if location.startswith(("http://", "https://")):
        import aiohttp

        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=timeout_seconds)
                ) as session,
                session.get(location) as resp,
            ):
                body = await resp.text(errors="replace")
                if resp.status != 200:
                    raise SignalError(
                        "HttpError", f"{location}: HTTP {resp.status}: {body[:120]!r}"
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as err:
            raise SignalError("Unreachable", f"{location}: {err!r}") from err
    import asyncio
    from pathlib import Path

    try:
        return await asyncio.to_thread(Path(location).read_text)
    except (OSError, UnicodeDecodeError) as err:
        raise SignalError("Unreachable", f"{location}: {err}") from err


class Feed(Generic[T]):
    """The latest good reading of one input for one site. A failed read keeps the reading
    it had (and says why it could not refresh); a reading past ``stale_after`` is no longer
    offered, so the consumer falls back to its static value and says so."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Signal[T]]],
        site: str,
        source: str,
        stale_after: timedelta,
        metrics: SignalAge | None = None,
    ):
        self.read = read
        self.site = site
        self.source = source
        self.stale_after = stale_after
        self.metrics = metrics
        self.last: Signal[T] | None = None
        self.error: SignalError | None = None

    async def refresh(self, now: datetime) -> Signal[T] | None:
        try:
            self.last = await self.read()
            self.error = None
        except SignalError as err:
            self.error = err
        if self.metrics is not None and self.last is not None:
            self.metrics.observe(self.site, self.source, self.last, now)  # type: ignore[arg-type]
        return self.last

    def value(self, now: datetime) -> T | None:
        """The reading's value while it is fresh, else None."""
        if self.last is None or not self.last.fresh(now, self.stale_after):
            return None
        return self.last.value

    def stale_at(self, now: datetime) -> datetime | None:
        """When the reading fresh at ``now`` goes stale (None: none is fresh)."""
        if self.last is None or not self.last.fresh(now, self.stale_after):
            return None
        return self.last.observed_at + self.stale_after

    def state(self, now: datetime) -> tuple[str, str]:
        """(reason, message) for a condition: Fresh, Stale, or NoReading."""
        if self.last is None:
            why = f": {self.error.message}" if self.error else ""
            return "NoReading", f"{self.source}: nothing read yet{why}"
        age = self.last.age(now)
        if not self.last.fresh(now, self.stale_after):
            why = (
                f"; the last read failed: {self.error.reason}: {self.error.message}"
                if self.error
                else ""
            )
            return "Stale", f"{self.source}: the reading is {age:.0f} s old{why}"
        return "Fresh", f"{self.source}: {age:.0f} s old"
