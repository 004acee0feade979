"""A real Prometheus scraping a fake DCGM exporter, once for the whole session; and, for the
OpenADR tests, a sandbox cluster and openleadr's VTN on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.prometheus import FakeExporter, Prometheus, PrometheusUnavailable

SITE_METRIC = "site_active_power_watts"


def seed(exporter: FakeExporter) -> None:
    """What the exporter serves from the start (tests that change series use their own)."""
    exporter.set_gpu("gpu-1", 0, 350.5)  # an older exporter: Hostname
    exporter.set_gpu("gpu-1", 1, 300.0)
    exporter.set_gpu("gpu-2", 0, 200.0, host_label="hostname")  # a newer one: hostname
    exporter.set_gpu("gpu-2", 1, 210.25, host_label="hostname")
    exporter.set_gpu("gpu-other-site", 0, 400.0)
    exporter.set_gpu("gpu-nan", 0, float("nan"))
    exporter.set_gpu("gpu-nan", 1, 300.0)
    exporter.set(SITE_METRIC, {"site": "west"}, 1_234_567.0, "The site meter's active power (W).")
    exporter.set(SITE_METRIC, {"site": "backfeed"}, -5000.0)


@pytest.fixture(scope="session")
def exporter() -> Iterator[FakeExporter]:
    fake = FakeExporter().start()
    seed(fake)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: FakeExporter) -> Iterator[Prometheus]:
    server = Prometheus([exporter.target])
    try:
        server.start()
    except PrometheusUnavailable as err:
        pytest.skip(f"no real Prometheus to test against: {err}")
    try:
        # The first scrape, by condition (Prometheus staggers its first scrape).
        server.wait_for(f"{SITE_METRIC}", lambda result: len(result) == 2, deadline_seconds=30)
        yield server
    finally:
        server.stop()


# The OpenADR tests' sandbox cluster and VTN (tests/peers/openadr_fixtures.py)
from tests.peers.openadr_fixtures import cluster, vtn  # noqa: E402, F401
