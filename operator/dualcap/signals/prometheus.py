"""PromQL instant queries against a Prometheus HTTP API (``/api/v1/query``), with aiohttp.

Two uses: the site's draw as one series in W (``site_draw``), and the GPU nodes' measured
draw as one series per node (``gpu_power_by_node``), typically summed from NVIDIA's DCGM
exporter whose host label is ``Hostname`` in older releases and ``hostname`` in newer ones.

A reading's time is the query's evaluation time as Prometheus reports it. Prometheus itself
drops a series whose target stopped answering after its lookback delta (5 minutes by
default), so a query may return a value for that long after the exporter went quiet; a
query that must see that sooner can say so itself (e.g. ``... and on() (time() -
timestamp(up{job="dcgm"}) < 30)``).

Every failure raises ``PrometheusError`` with a stable ``reason``; a per-node problem
(several series for one node, NaN, a negative value) fails the whole query, as the safe
fallback (the model) is the same for every node.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from dualcap.signals.reading import Reading, SignalError

# Stable reasons (a condition's reason).
BAD_QUERY = "BadQuery"
QUERY_FAILED = "QueryFailed"
NO_SERIES = "NoSeries"
SEVERAL_SERIES = "SeveralSeries"
NOT_A_NUMBER = "NotANumber"
NEGATIVE = "Negative"
UNREACHABLE = "Unreachable"
TIMEOUT = "Timeout"
BAD_RESPONSE = "BadResponse"
UNAUTHORIZED = "Unauthorized"
NO_HOST_LABEL = "NoHostLabel"

HOST_LABELS = ("Hostname", "hostname")  # DCGM exporter: older, newer


class PrometheusError(SignalError):
    """A query that gave no usable reading; ``node`` names the GPU node it concerns, if one."""

    def __init__(self, reason: str, message: str, node: str | None = None) -> None:
        super().__init__(reason, message)
        self.node = node


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels, its value and its evaluation time."""

    labels: dict[str, str]
    value: float
    at: datetime

    def describe(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return "{" + inner + "}"


class PrometheusClient:
    """Instant queries against one Prometheus; shares an aiohttp session when given one."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 2.0,
        bearer_token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v1/query"
        # What messages name: the endpoint without credentials (conditions and Events are
        # readable by anyone who can read the Site).
        self.where = str(URL(self.endpoint).with_user(None))
        self.timeout_seconds = timeout_seconds
        self.headers = {"Accept": "application/json"}
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        self._session = session
        self._owned: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        if self._owned is None or self._owned.closed:
            self._owned = aiohttp.ClientSession()
        return self._owned

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.close()
            self._owned = None

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def query(self, promql: str) -> list[Sample]:
        """The instant vector ``promql`` evaluates to now; raises PrometheusError."""
        body = await self._post(promql)
        if body.get("status") != "success":
            raise _api_error(body, promql)
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(BAD_RESPONSE, f"{self.where}: no data in the answer")
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return [_sample({}, result, self.where)]
        if kind != "vector" or not isinstance(result, list):
            raise PrometheusError(
                BAD_RESPONSE,
                f"{promql!r} gives a {kind}, not an instant vector",
            )
        samples = []
        for entry in result:
            if not isinstance(entry, dict) or not isinstance(entry.get("metric"), dict):
                raise PrometheusError(BAD_RESPONSE, f"{self.where}: malformed series {entry!r}")
            samples.append(_sample(entry["metric"], entry.get("value"), self.where))
        return samples

    async def _post(self, promql: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with self._client().post(
                self.endpoint, data={"query": promql}, headers=self.headers, timeout=timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as err:
            raise PrometheusError(
                TIMEOUT, f"{self.where} did not answer within {self.timeout_seconds:g} s"
            ) from err
        except aiohttp.ClientConnectionError as err:
            raise PrometheusError(UNREACHABLE, f"cannot reach {self.where}: {err}") from err
        except aiohttp.ClientError as err:
            raise PrometheusError(BAD_RESPONSE, f"{self.where}: {err}") from err
        if status in (401, 403):
            raise PrometheusError(UNAUTHORIZED, f"{self.where} answered HTTP {status}")
        try:
            body = json.loads(raw)
        except ValueError as err:
            raise PrometheusError(
                BAD_RESPONSE,
                f"{self.where} answered HTTP {status} that is not JSON: {raw[:120]!r}",
            ) from err
        if not isinstance(body, dict):
            raise PrometheusError(BAD_RESPONSE, f"{self.where} answered HTTP {status}: {body!r}")
        if status != 200 and body.get("status") != "error":
            raise PrometheusError(BAD_RESPONSE, f"{self.where} answered HTTP {status}")
        return body

    async def site_draw(self, promql: str) -> Reading:
        """The site's draw: ``promql`` must give exactly one series, in W."""
        samples = await self.query(promql)
        if not samples:
            raise PrometheusError(NO_SERIES, f"{promql!r} returns no series")
        if len(samples) > 1:
            shown = ", ".join(s.describe() for s in samples[:3])
            raise PrometheusError(
                SEVERAL_SERIES,
                f"{promql!r} returns {len(samples)} series, not one: {shown}",
            )
        return _reading(samples[0], promql)

    async def gpu_power_by_node(self, promql: str, nodes: Iterable[str]) -> dict[str, Reading]:
        """Each of ``nodes``' measured draw in W, from one series per node labelled
        ``Hostname`` or ``hostname``. Nodes without a series are left out; series of hosts
        not in ``nodes`` are ignored."""
        wanted = set(nodes)
        samples = await self.query(promql)
        if not samples:
            raise PrometheusError(NO_SERIES, f"{promql!r} returns no series")
        by_node: dict[str, Sample] = {}
        labelled = 0
        for sample in samples:
            host = host_of(sample.labels)
            if host is None:
                continue
            labelled += 1
            if host not in wanted:
                continue
            if host in by_node:
                raise PrometheusError(
                    SEVERAL_SERIES,
                    f"{promql!r} returns several series for node {host}:"
                    f" {by_node[host].describe()}, {sample.describe()}"
                    " (sum them by Hostname or hostname)",
                    node=host,
                )
            by_node[host] = sample
        if not labelled:
            raise PrometheusError(
                NO_HOST_LABEL,
                f"{promql!r} returns {len(samples)} series, none labelled Hostname or hostname"
                " (sum them by Hostname or hostname)",
            )
        return {host: _reading(sample, promql, node=host) for host, sample in by_node.items()}


def host_of(labels: dict[str, str]) -> str | None:
    for name in HOST_LABELS:
        if labels.get(name):
            return labels[name]
    return None


def _api_error(body: dict[str, Any], promql: str) -> PrometheusError:
    kind = str(body.get("errorType", ""))
    text = str(body.get("error", "no error given"))
    if kind == "bad_data":
        return PrometheusError(BAD_QUERY, f"{promql!r}: {text}")
    if kind == "timeout":
        return PrometheusError(TIMEOUT, f"{promql!r}: Prometheus gave up: {text}")
    if kind:
        return PrometheusError(QUERY_FAILED, f"{promql!r}: {kind}: {text}")
    return PrometheusError(BAD_RESPONSE, f"{promql!r}: status {body.get('status')!r}: {text}")


def _sample(labels: dict[str, Any], value: Any, where: str) -> Sample:
    if not (isinstance(value, list) and len(value) == 2):
        raise PrometheusError(BAD_RESPONSE, f"{where}: malformed sample {value!r}")
    stamp, number = value
    try:
        at = datetime.fromtimestamp(float(stamp), UTC)
        parsed = float(number)  # "NaN", "+Inf" and "-Inf" too, as Prometheus writes them
    except (TypeError, ValueError, OverflowError) as err:
        raise PrometheusError(BAD_RESPONSE, f"{where}: malformed sample {value!r}") from err
    return Sample(labels={str(k): str(v) for k, v in labels.items()}, value=parsed, at=at)


def _reading(sample: Sample, promql: str, node: str | None = None) -> Reading:
    what = f"node {node}" if node else f"{promql!r}"
    if math.isnan(sample.value) or math.isinf(sample.value):
        raise PrometheusError(NOT_A_NUMBER, f"{what} reads {sample.value}", node=node)
    if sample.value < 0:
        raise PrometheusError(NEGATIVE, f"{what} reads {sample.value:g} W", node=node)
    return Reading(watts=sample.value + 0.0, at=sample.at)


async def site_draw(
    url: str,
    query: str,
    *,
    timeout_seconds: float = 2.0,
    bearer_token: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Reading:
    """The site's draw in W from one PromQL instant query; raises PrometheusError."""
    async with PrometheusClient(
        url, timeout_seconds=timeout_seconds, bearer_token=bearer_token, session=session
    ) as client:
        return await client.site_draw(query)


async def gpu_power_by_node(
    url: str,
    query: str,
    nodes: Iterable[str],
    *,
    timeout_seconds: float = 2.0,
    bearer_token: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> dict[str, Reading]:
    """Measured GPU power per node in W from one PromQL instant query; raises
    PrometheusError."""
    async with PrometheusClient(
        url, timeout_seconds=timeout_seconds, bearer_token=bearer_token, session=session
    ) as client:
        return await client.gpu_power_by_node(query, nodes)
