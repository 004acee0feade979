"""The real agent (in-process) against the sandbox and a block of fake LuxOS miners driven
by the real pyasic-rs: nothing of the product is replaced."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from dualcap.agent.agent import Agent
from dualcap.agent.credentials import Credentials
from dualcap.agent.kube import Kube, load_connection
from dualcap.agent.miners import Driver
from dualcap.agent.settings import AgentSettings
from dualcap.api.marks import curtail_patch, resume_patch
from dualcap.api.minerblock import MINERS_ANNOTATION
from dualcap_sandbox.app import Sandbox
from dualcap_sandbox.cluster import Behaviour
from dualcap_sandbox.luxos import FakeFleet
from tests.conftest import CRDS

MERGE = "application/merge-patch+json"
BLOCKS = "/apis/dualcap.io/v1alpha1/minerblocks"


async def until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"not within {timeout}s (last: {last!r})")


def node(name: str, miners: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"dualcap.io/role": "asic"}}
    if miners is not None:
        meta["annotations"] = {MINERS_ANNOTATION: miners}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {}}


@dataclass
class World:
    sb: Sandbox
    kube: Kube
    fleet: FakeFleet
    agents: dict[str, tuple[Agent, asyncio.Task[None], asyncio.Event]] = field(default_factory=dict)

    def add_node(self, name: str, miners: str | None) -> None:
        self.sb.api.create_object(node(name, miners))

    def start_agent(
        self,
        name: str,
        interval: float = 1.0,
        credentials: str | None = None,
        transition_seconds: float = 60.0,
        concurrency: int = 64,
        **options: Any,
    ) -> Agent:
        driver = Driver(Credentials(credentials), timeout=2.0, concurrency=concurrency)
        settings = AgentSettings(
            interval=interval,
            overlap_seconds=interval,
            transition_seconds=transition_seconds,
            **options,
        )
        agent = Agent(self.kube, name, driver, settings)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        self.agents[name] = (agent, task, stop)
        return agent

    async def stop_agents(self) -> None:
        for _, _task, stop in self.agents.values():
            stop.set()
        for _, task, _ in self.agents.values():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)

    async def get_node(self, name: str) -> dict[str, Any]:
        reply = await self.kube.request("GET", f"/api/v1/nodes/{name}")
        assert reply.ok, reply
        return reply.body

    async def patch_node(self, name: str, patch: dict[str, Any]) -> None:
        reply = await self.kube.request("PATCH", f"/api/v1/nodes/{name}", patch, MERGE)
        assert reply.ok, reply

    async def curtail(self, name: str) -> None:
        await self.patch_node(name, curtail_patch(await self.get_node(name), datetime.now(UTC)))

    async def resume(self, name: str) -> None:
        await self.patch_node(name, resume_patch(await self.get_node(name), datetime.now(UTC)))

    async def annotate(self, name: str, miners: str) -> None:
        await self.patch_node(name, {"metadata": {"annotations": {MINERS_ANNOTATION: miners}}})

    async def block(self, name: str) -> dict[str, Any]:
        reply = await self.kube.request("GET", f"{BLOCKS}/{name}")
        return reply.body if reply.ok else {}

    async def status(self, name: str) -> dict[str, Any]:
        return (await self.block(name)).get("status") or {}

    async def condition(self, name: str, type_: str) -> dict[str, Any]:
        for cond in (await self.status(name)).get("conditions") or []:
            if cond["type"] == type_:
                return cond
        return {}

    async def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        reply = await self.kube.request("GET", "/api/v1/namespaces/default/events")
        items = reply.body.get("items") or [] if reply.ok else []
        return [e for e in items if reason is None or e.get("reason") == reason]


@pytest.fixture
def fleet() -> Iterator[FakeFleet]:
    with FakeFleet(12, sleep_seconds=1.0, wake_seconds=2.0) as f:
        yield f


@pytest.fixture
async def world(tmp_path, fleet: FakeFleet) -> AsyncIterator[World]:
    sb = Sandbox(behaviour=Behaviour(pod_termination_seconds=0.1), bookmark_seconds=1.0)
    await sb.start()
    sb.load_files([str(CRDS)])
    kube = Kube(load_connection(str(sb.write_kubeconfig(tmp_path / "kubeconfig"))))
    w = World(sb, kube, fleet)
    try:
        yield w
    finally:
        await w.stop_agents()
        await kube.close()
        await sb.stop()
