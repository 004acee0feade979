"""Fault injection: failing requests (409, 429 with Retry-After, 500), ambiguous failures,
latency, dropped watches, nodes going NotReady."""

from __future__ import annotations

import asyncio
import time

from tests.sandbox.conftest import wait_for, watching

NODES = "/api/v1/nodes"


def node(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


async def test_chosen_requests_fail_a_number_of_times(client, sandbox) -> None:
    sandbox.faults.add(method="POST", path="/nodes$", code=500, times=2)
    assert (await client.post(NODES, node("a")))[0] == 500
    assert (await client.post(NODES, node("a")))[0] == 500
    assert (await client.post(NODES, node("a")))[0] == 201
    assert sandbox.faults.injected == 2


async def test_429_carries_retry_after(client, sandbox) -> None:
    sandbox.faults.add(method="GET", path="/nodes", code=429, retry_after=3)
    code, body, headers = await client.request("GET", NODES)
    assert code == 429 and headers["Retry-After"] == "3" and body["reason"] == "TooManyRequests"


async def test_conflict_injected(client, sandbox) -> None:
    await client.post(NODES, node("a"))
    sandbox.faults.add(method="PATCH", path="/nodes/a", code=409)
    code, body = await client.patch(f"{NODES}/a", {"metadata": {"labels": {"x": "1"}}})
    assert code == 409 and body["reason"] == "Conflict"


async def test_ambiguous_failure_takes_effect(client, sandbox) -> None:
    sandbox.faults.add(method="POST", path="/nodes$", code=500, ambiguous=True)
    code, _ = await client.post(NODES, node("a"))
    assert code == 500
    assert (await client.get(f"{NODES}/a"))[0] == 200  # the write happened


async def test_latency(client, sandbox) -> None:
    sandbox.faults.add(path="/nodes", code=0, latency_seconds=0.2, times=1)
    t = time.monotonic()
    code, _ = await client.get(NODES)
    assert code == 200 and time.monotonic() - t >= 0.2


async def test_dropped_watches_end_the_stream(client, sandbox) -> None:
    task = asyncio.create_task(client.watch(NODES, {"resourceVersion": "1"}, 10, timeout=5))
    await watching(sandbox)
    assert sandbox.store.close_watches() >= 1
    events = await asyncio.wait_for(task, 2)
    assert events == []


async def test_a_node_goes_not_ready_and_comes_back(client, sandbox) -> None:
    await client.post(NODES, node("n"))
    sandbox.cluster.set_node_ready("n", False)

    async def ready_status():
        _, n = await client.get(f"{NODES}/n")
        return next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")

    assert await ready_status() == "Unknown"
    sandbox.cluster.set_node_ready("n", True)
    await wait_for(lambda: _eq(ready_status(), "True"))


async def _eq(coro, value):
    return (await coro) == value
