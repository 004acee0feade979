"""The GPUs' own power, through a real Prometheus (Debian's) scraping a fake DCGM exporter:
a fresh reading of a GPU node replaces its idle power (its lease pods keep their
nameplate), and a node whose series goes away counts at nameplate again once its last
reading is stale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.operator.conftest import Running
from tests.operator.test_operator import API, http
from tests.peers.prometheus import FakeExporter, Prometheus, PrometheusUnavailable

SITE = "tx-rockdale-1"
NODES = [f"gpu-h100-{i:02d}" for i in range(1, 9)]
GPU_WATTS = 60.0  # every GPU nearly idle: 0.48 kW a node against the model's 1.2 idle


def label(i: int) -> str:
    return "Hostname" if i % 2 else "hostname"


@pytest.fixture(scope="module")
def dcgm() -> Iterator[tuple[FakeExporter, Prometheus]]:
    exporter = FakeExporter().start()
    for i, node in enumerate(NODES):  # older exporters label Hostname, newer hostname
        for gpu in range(8):
            exporter.set_gpu(node, gpu, GPU_WATTS, host_label=label(i))
    server = Prometheus([exporter.target])
    try:
        server.start()
    except PrometheusUnavailable as err:
        exporter.stop()
        pytest.skip(f"no real Prometheus to test against: {err}")
    try:
        server.wait_for(
            "DCGM_FI_DEV_POWER_USAGE", lambda r: len(r) == 8 * len(NODES), deadline_seconds=30
        )
        yield exporter, server
    finally:
        server.stop()
        exporter.stop()


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


async def test_gpu_nodes_count_at_what_they_measure(wall_site: Running, dcgm) -> None:
    exporter, prometheus = dcgm
    site = wall_site
    before = await site.settle()
    query = {
        "url": prometheus.url,
        "pollSeconds": 1,
        "timeoutSeconds": 1,
        "staleAfterSeconds": 3,
    }
    patch = {"spec": {"gpu": {"powerQuery": query}}}
    code, body = await http(site.sb, "PATCH", f"{API}/sites/{SITE}", patch)
    assert code == 200, body
    status = before
    for _ in range(60):
        status = await site.settle()
        if (status["gpus"].get("measuredNodes") or 0) == len(NODES):
            break
    assert status["gpus"]["measuredNodes"] == len(NODES)
    assert conditions(status)["GpuPowerMeasured"] == ("True", "MeasurementsFresh")
    busy = status["gpus"]["leased"] // 8
    # a busy node: its lease pod at nameplate, its idle 1.2 kW replaced by the measured rest
    # (none); an idle node: 0.48 kW measured instead of 1.2
    saved = 1.08 * (busy * 1.2 + (len(NODES) - busy) * (1.2 - 8 * GPU_WATTS / 1000))
    assert before["draw"]["gpuKW"] - status["draw"]["gpuKW"] == pytest.approx(saved, abs=0.5)

    # One node's exporter goes quiet: once its last reading is stale it counts at nameplate.
    for gpu in range(8):
        exporter.remove(
            "DCGM_FI_DEV_POWER_USAGE",
            {
                "gpu": str(gpu),
                "UUID": f"GPU-{NODES[0]}-{gpu:04d}",
                "pci_bus_id": f"00000000:{gpu + 7:02X}:00.0",
                "device": f"nvidia{gpu}",
                "modelName": "NVIDIA H100 80GB HBM3",
                label(0): NODES[0],
                "DCGM_FI_DRIVER_VERSION": "550.54.15",
            },
        )
    for _ in range(80):
        status = await site.settle()
        if conditions(status)["GpuPowerMeasured"][0] == "False":
            break
        await asyncio.sleep(0.1)
    assert conditions(status)["GpuPowerMeasured"] == ("False", "StaleMeasurements")
    assert status["gpus"]["measuredNodes"] == len(NODES) - 1
    assert NODES[0] in next(
        c["message"] for c in status["conditions"] if c["type"] == "GpuPowerMeasured"
    )
