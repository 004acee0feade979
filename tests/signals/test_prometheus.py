"""The PromQL client against a real Prometheus scraping a fake DCGM exporter.

A stub of the query API stands in only where the test must control time or the wire
(an answer too slow, an answer that is not Prometheus's).
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from dualcap.api.measurement import DCGM_POWER_QUERY, GpuPowerQuery, MeterSpec
from dualcap.signals import prometheus as p
from dualcap.signals.prometheus import (
    PrometheusClient,
    PrometheusError,
    gpu_power_by_node,
    site_draw,
)
from dualcap_sandbox.sunspec import free_port
from tests.peers.prometheus import FakeExporter, Prometheus, QueryApiStub
from tests.signals.conftest import SITE_METRIC


async def site_failure(url: str, query: str, **kwargs: float | str) -> PrometheusError:
    with pytest.raises(PrometheusError) as caught:
        await site_draw(url, query, **kwargs)  # type: ignore[arg-type]
    return caught.value


async def gpu_failure(url: str, query: str, nodes: list[str]) -> PrometheusError:
    with pytest.raises(PrometheusError) as caught:
        await gpu_power_by_node(url, query, nodes)
    return caught.value


async def test_gpu_power_per_node_for_both_host_label_spellings(prometheus: Prometheus) -> None:
    power = await gpu_power_by_node(
        prometheus.url, DCGM_POWER_QUERY, ["gpu-1", "gpu-2", "gpu-without-exporter"]
    )
    assert {node: r.watts for node, r in power.items()} == {"gpu-1": 650.5, "gpu-2": 410.25}
    for reading in power.values():
        assert abs(reading.at - datetime.now(UTC)) < timedelta(seconds=10)


@pytest.mark.parametrize(
    ("query", "node", "watts"),
    [
        ("sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE)", "gpu-1", 650.5),
        ("sum by (hostname) (DCGM_FI_DEV_POWER_USAGE)", "gpu-2", 410.25),
    ],
)
async def test_each_exporter_generation_on_its_own(
    prometheus: Prometheus, query: str, node: str, watts: float
) -> None:
    power = await gpu_power_by_node(prometheus.url, query, [node])
    assert power[node].watts == watts


async def test_the_model_default_query_runs(prometheus: Prometheus) -> None:
    gpu = GpuPowerQuery.model_validate({"url": prometheus.url})
    assert gpu.url is not None
    power = await gpu_power_by_node(gpu.url, gpu.query, ["gpu-1"])
    assert power["gpu-1"].watts == 650.5


async def test_a_new_measurement_is_seen_after_the_next_scrape(
    prometheus: Prometheus, exporter: FakeExporter
) -> None:
    query = 'sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE{Hostname="gpu-live"})'
    async with PrometheusClient(prometheus.url) as client:
        for watts in (120.0, 695.5):
            exporter.set_gpu("gpu-live", 0, watts)
            prometheus.wait_for(query, lambda r, w=watts: bool(r) and float(r[0]["value"][1]) == w)
            assert (await client.gpu_power_by_node(query, ["gpu-live"]))["gpu-live"].watts == watts


async def test_several_series_for_one_node(prometheus: Prometheus) -> None:
    err = await gpu_failure(prometheus.url, "DCGM_FI_DEV_POWER_USAGE", ["gpu-1"])
    assert err.reason == p.SEVERAL_SERIES
    assert err.node == "gpu-1"


async def test_nan_for_a_node(prometheus: Prometheus) -> None:
    err = await gpu_failure(prometheus.url, DCGM_POWER_QUERY, ["gpu-1", "gpu-nan"])
    assert (err.reason, err.node) == (p.NOT_A_NUMBER, "gpu-nan")


async def test_a_bad_node_elsewhere_does_not_matter(prometheus: Prometheus) -> None:
    """gpu-nan reads NaN, but this site's nodes are fine."""
    power = await gpu_power_by_node(prometheus.url, DCGM_POWER_QUERY, ["gpu-2"])
    assert set(power) == {"gpu-2"}


async def test_series_without_a_host_label(prometheus: Prometheus) -> None:
    err = await gpu_failure(prometheus.url, "sum(DCGM_FI_DEV_POWER_USAGE)", ["gpu-1"])
    assert err.reason == p.NO_HOST_LABEL


async def test_gpu_query_with_no_series(prometheus: Prometheus) -> None:
    err = await gpu_failure(prometheus.url, "DCGM_FI_DEV_POWER_USAGE{gpu='99'}", ["gpu-1"])
    assert err.reason == p.NO_SERIES


async def test_site_draw_one_series_in_watts(prometheus: Prometheus) -> None:
    meter = MeterSpec.model_validate(
        {"prometheus": {"url": prometheus.url, "query": f'sum({SITE_METRIC}{{site="west"}})'}}
    )
    assert meter.prometheus is not None and meter.prometheus.url is not None
    reading = await site_draw(meter.prometheus.url, meter.prometheus.query)
    assert reading.watts == 1_234_567.0
    assert reading.kw == pytest.approx(1234.567)


async def test_a_scalar_is_one_value(prometheus: Prometheus) -> None:
    query = "scalar(sum(DCGM_FI_DEV_POWER_USAGE{Hostname='gpu-1'}))"
    assert (await site_draw(prometheus.url, query)).watts == 650.5


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sum(", p.BAD_QUERY),  # Prometheus's own parse error
        ("sum by (site) (", p.BAD_QUERY),
        ("no_such_metric_anywhere", p.NO_SERIES),
        ("DCGM_FI_DEV_POWER_USAGE", p.SEVERAL_SERIES),
        ('sum(DCGM_FI_DEV_POWER_USAGE{Hostname="gpu-nan"})', p.NOT_A_NUMBER),
        ("vector(1/0)", p.NOT_A_NUMBER),  # +Inf
        (f'{SITE_METRIC}{{site="backfeed"}}', p.NEGATIVE),
        (f"{SITE_METRIC}[1m]", p.BAD_RESPONSE),  # a range vector
        ('"a string"', p.BAD_RESPONSE),
        # Many-to-many matching: it parses, and fails when evaluated.
        ("DCGM_FI_DEV_POWER_USAGE + on(gpu) DCGM_FI_DEV_POWER_USAGE", p.QUERY_FAILED),
    ],
)
async def test_site_draw_failures_from_a_real_prometheus(
    prometheus: Prometheus, query: str, reason: str
) -> None:
    err = await site_failure(prometheus.url, query)
    assert err.reason == reason, err.message


async def test_bad_query_carries_prometheus_words(prometheus: Prometheus) -> None:
    err = await site_failure(prometheus.url, "sum(")
    assert "parse error" in err.message


async def test_unreachable() -> None:
    err = await site_failure(f"http://127.0.0.1:{free_port()}", "up", timeout_seconds=1.0)
    assert err.reason == p.UNREACHABLE


async def test_timeout() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2.0)
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    async with QueryApiStub(slow) as stub:
        err = await site_failure(stub.url, "up", timeout_seconds=0.3)
    assert err.reason == p.TIMEOUT


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (502, "<html><body>Bad Gateway</body></html>", "text/html"),
        (200, '{"status": "success"}', "application/json"),
        (
            200,
            '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}}',
            "application/json",
        ),
        (503, '{"message": "upstream down"}', "application/json"),
    ],
)
async def test_bad_response(status: int, body: str, content_type: str) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    async with QueryApiStub(answer) as stub:
        err = await site_failure(stub.url, "up")
    assert err.reason == p.BAD_RESPONSE, err.message


async def test_bearer_token_is_sent_and_a_refusal_reported() -> None:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.Response(status=401, text="Unauthorized")
        form = await request.post()
        assert form["query"] == "site_w"
        return web.json_response(
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "value": [1.7e9, "42.5"]}],
                },
            }
        )

    async with QueryApiStub(guarded) as stub:
        assert (await site_draw(stub.url, "site_w", bearer_token="s3cret")).watts == 42.5
        err = await site_failure(stub.url, "site_w", bearer_token="wrong")
    assert err.reason == p.UNAUTHORIZED


async def test_a_shared_session_is_reused_and_left_open(prometheus: Prometheus) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            await site_draw(prometheus.url, f'sum({SITE_METRIC}{{site="west"}})', session=session)
        assert not session.closed


async def test_credentials_in_the_url_are_used_and_never_reported() -> None:
    async def basic(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(b"reader:hunter2").decode():
            return web.Response(status=401)
        return web.Response(status=502, text="<html>proxy error</html>", content_type="text/html")

    async with QueryApiStub(basic) as stub:
        err = await site_failure(f"http://reader:hunter2@127.0.0.1:{stub.port}", "up")
    assert err.reason == p.BAD_RESPONSE  # past the authentication
    assert "hunter2" not in str(err) and "reader" not in str(err)
