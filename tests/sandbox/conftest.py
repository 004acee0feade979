"""A fresh sandbox cluster per test, an HTTP client for it, and waiting with deadlines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dualcap_sandbox.app import Sandbox
from dualcap_sandbox.cluster import Behaviour
from tests.conftest import CRDS


class Client:
    """A thin HTTP client: what any Kubernetes client sends, nothing more."""

    def __init__(self, base: str, session: aiohttp.ClientSession):
        self.base = base
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ctype: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = (
            None if body is None else (body if isinstance(body, bytes | str) else json.dumps(body))
        )
        h = {"Content-Type": ctype, **(headers or {})}
        async with self.session.request(
            method, self.base + path, data=data, params=params, headers=h
        ) as resp:
            raw = await resp.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = raw.decode()
            return resp.status, doc, dict(resp.headers)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        code, doc, _ = await self.request("GET", path, **kw)
        return code, doc

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        code, doc, _ = await self.request("POST", path, body, **kw)
        return code, doc

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        code, doc, _ = await self.request("PUT", path, body, **kw)
        return code, doc

    async def patch(
        self, path: str, body: Any, ctype: str = "application/merge-patch+json", **kw: Any
    ) -> tuple[int, Any]:
        code, doc, _ = await self.request("PATCH", path, body, ctype=ctype, **kw)
        return code, doc

    async def delete(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        code, doc, _ = await self.request("DELETE", path, body, **kw)
        return code, doc

    async def watch(
        self, path: str, params: dict[str, str], count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """The first ``count`` events of a watch (fewer if it ends first)."""
        events: list[dict[str, Any]] = []
        q = {"watch": "true", **params}
        async with self.session.get(
            self.base + path, params=q, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                return [{"type": "ERROR", "code": resp.status, "object": await resp.json()}]
            async for line in resp.content:
                if line.strip():
                    events.append(json.loads(line))
                    if len(events) >= count:
                        break
        return events


async def watching(sandbox: Sandbox, n: int = 1) -> None:
    """Until ``n`` watches are open on the sandbox."""

    async def opened() -> bool:
        return sandbox.store.open_watches() >= n

    await wait_for(opened, timeout=5, interval=0.005, what=f"{n} open watches")


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour(pod_termination_seconds=0.05)


@pytest.fixture
async def sandbox(behaviour: Behaviour, tmp_path: Path) -> AsyncIterator[Sandbox]:
    sb = Sandbox(behaviour=behaviour, bookmark_seconds=0.2)
    await sb.start()
    sb.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(sandbox.url, session)


@pytest.fixture
def with_crds(sandbox: Sandbox) -> Sandbox:
    from dualcap.manifests import load_objects

    sandbox.load_objects(load_objects(str(CRDS)))
    return sandbox
