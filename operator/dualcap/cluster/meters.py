"""The site meters: one poller per Site with ``spec.meter``, polling on its own schedule.

A poller keeps its meter's last good reading and its last error; the site's reconcile
reads both (``MeterState``) and the planner decides what they are worth (fresh, stale,
the reserve kept). A poller wakes its site when a reading changes by more than a little,
so an unmodelled load that appears on the meter is acted on within one poll interval, and
whenever its state changes (a first reading, an error, another error, good again); a
reading going stale wakes the site through the plan, which wakes when the next one does.
Secret-held URLs and tokens are read through the operator's client when the poller
starts, and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from datetime import datetime

from dualcap.api.measurement import GpuPowerQuery, MeterSpec, PrometheusEndpoint, ValueFrom
from dualcap.client import Client
from dualcap.cluster.pollers import Changes, Tasks
from dualcap.planning.entities import GpuPowerState, MeterState
from dualcap.signals.meter import SunSpecMeterClient
from dualcap.signals.prometheus import PrometheusClient
from dualcap.signals.reading import Reading, SignalError

log = logging.getLogger("dualcap")
WAKE_ON_CHANGE_KW = 1.0  # a reading this far from the last one wakes the site


async def secret_value(client: Client, ref: ValueFrom, namespace: str) -> str:
    """The value a ``...From`` field names (a key of a Secret); raises SignalError."""
    key = ref.secret_key_ref
    ns = key.namespace or namespace
    resp = await client.request("GET", f"/api/v1/namespaces/{ns}/secrets/{key.name}")
    if not resp.ok:
        raise SignalError("SecretUnavailable", f"Secret {ns}/{key.name}: {resp.code} {resp.reason}")
    data = (resp.body or {}).get("data") or {}
    if key.key not in data:
        raise SignalError("SecretUnavailable", f"Secret {ns}/{key.name} has no key {key.key!r}")
    return base64.b64decode(data[key.key]).decode().strip()


async def endpoint_secrets(
    client: Client, endpoint: PrometheusEndpoint, namespace: str
) -> tuple[str, str | None]:
    """A Prometheus endpoint's URL and bearer token, read from their Secrets where they
    are kept there; raises SignalError."""
    url = endpoint.url
    if url is None:
        assert endpoint.url_from is not None  # the model allows exactly one
        url = await secret_value(client, endpoint.url_from, namespace)
    token = None
    if endpoint.bearer_token_from is not None:
        token = await secret_value(client, endpoint.bearer_token_from, namespace)
    return url, token


class MeterPoller:
    """Polls one site's meter until stopped."""

    def __init__(
        self,
        site: str,
        spec: MeterSpec,
        client: Client,
        namespace: str,
        wake: Callable[[], None],
        clock: Callable[[], datetime],
    ):
        self.site, self.spec, self.client, self.namespace = site, spec, client, namespace
        self.wake, self.clock = wake, clock
        self.reading: Reading | None = None
        self.error: SignalError | None = None
        self._changes = Changes(wake)
        self._tasks = Tasks()

    def state(self) -> MeterState:
        return MeterState(
            metered_kw=self.reading.kw if self.reading else None,
            metered_at=self.reading.at if self.reading else None,
            stale_after_seconds=self.spec.stale_after_seconds,
            error_reason=self.error.reason if self.error else None,
            error_message=self.error.message if self.error else None,
            disagreement_kw=self.spec.disagreement_kw,
            disagreement_seconds=self.spec.disagreement_seconds,
            poll_seconds=self.spec.poll_seconds,
        )

    def start(self) -> None:
        if not self._tasks:
            self._tasks.spawn(self._run(), f"meter {self.site}")

    def cancel(self) -> None:
        """Stops polling (from synchronous code: the task ends at its next await)."""
        self._tasks.cancel()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _read_once(self, read: Callable[[], object]) -> None:
        try:
            reading = await read()  # type: ignore[misc]
        except SignalError as err:
            self._failed(err)
            return
        before = self.reading
        self.reading, self.error = reading, None
        moved = before is not None and abs(reading.kw - before.kw) >= WAKE_ON_CHANGE_KW
        self._changes.saw(None, moved)

    def _failed(self, err: SignalError) -> None:
        self.error = err
        if self._changes.saw(err.reason):
            log.warning("site %s: meter: %s", self.site, err)

    async def _run(self) -> None:
        spec = self.spec
        if spec.sunspec is not None:
            meter = SunSpecMeterClient(
                spec.sunspec, timeout_seconds=spec.timeout_seconds, clock=self.clock
            )
            try:
                while True:
                    await self._read_once(meter.read)
                    await asyncio.sleep(spec.poll_seconds)
            finally:
                meter.close()
        assert spec.prometheus is not None
        query = spec.prometheus
        while True:  # the Secret is read again after a failure (it may be created late)
            try:
                url, token = await endpoint_secrets(self.client, query, self.namespace)
            except SignalError as err:
                self._failed(err)
                await asyncio.sleep(spec.poll_seconds)
                continue
            async with PrometheusClient(
                url, timeout_seconds=spec.timeout_seconds, bearer_token=token
            ) as prom:
                while True:
                    await self._read_once(lambda: prom.site_draw(query.query))
                    await asyncio.sleep(spec.poll_seconds)


class GpuPowerPoller:
    """Polls one site's GPU power query; keeps each node's last good reading."""

    def __init__(
        self,
        site: str,
        spec: GpuPowerQuery,
        client: Client,
        namespace: str,
        nodes: Callable[[], list[str]],
        wake: Callable[[], None],
    ):
        self.site, self.spec, self.client, self.namespace = site, spec, client, namespace
        self.nodes, self.wake = nodes, wake
        self.readings: dict[str, Reading] = {}
        self.error: SignalError | None = None
        self._changes = Changes(wake)
        self._tasks = Tasks()

    def state(self) -> GpuPowerState:
        return GpuPowerState(
            readings={n: (r.kw, r.at) for n, r in self.readings.items()},
            stale_after_seconds=self.spec.stale_after_seconds,
            error_reason=self.error.reason if self.error else None,
            error_message=self.error.message if self.error else None,
        )

    def start(self) -> None:
        if not self._tasks:
            self._tasks.spawn(self._run(), f"gpu power {self.site}")

    def cancel(self) -> None:
        self._tasks.cancel()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _run(self) -> None:
        spec = self.spec
        while True:
            try:
                url, token = await endpoint_secrets(self.client, spec, self.namespace)
            except SignalError as err:
                self._failed(err)
                await asyncio.sleep(spec.poll_seconds)
                continue
            async with PrometheusClient(
                url, timeout_seconds=spec.timeout_seconds, bearer_token=token
            ) as prom:
                while True:
                    try:
                        got = await prom.gpu_power_by_node(spec.query, self.nodes())
                    except SignalError as err:
                        self._failed(err)
                    else:
                        self.poll_answered(got)
                    await asyncio.sleep(spec.poll_seconds)

    def poll_answered(self, got: dict[str, Reading]) -> None:
        """A good answer: kept; the site woken if a node got its first reading, a reading
        moved by WAKE_ON_CHANGE_KW or more, or the query failed before."""
        moved = any(
            n not in self.readings or abs(r.kw - self.readings[n].kw) >= WAKE_ON_CHANGE_KW
            for n, r in got.items()
        )
        self.readings.update(got)
        self.error = None
        self._changes.saw(None, moved)

    def _failed(self, err: SignalError) -> None:
        self.error = err
        if self._changes.saw(err.reason):
            log.warning("site %s: GPU power: %s", self.site, err)
