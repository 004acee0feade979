"""A sandbox Kubernetes API with the CRDs and the example Site, the operator's client
logged in to it as the adapter would be, and openleadr's VTN on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf
import pytest

from dualcap.client import Client
from dualcap_sandbox.app import Sandbox
from tests.conftest import CRDS, EXAMPLES
from tests.peers.vtn import Vtn


@dataclass
class Cluster:
    sb: Sandbox
    client: Client

    async def budget(self, name: str) -> dict[str, Any] | None:
        got = await self.client.request("GET", f"/apis/dualcap.io/v1alpha1/powerbudgets/{name}")
        return got.body if got.ok else None


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "") -> Any:
    """Wait for ``check`` to return something truthy, within a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def cluster(tmp_path, monkeypatch) -> AsyncIterator[Cluster]:
    from dualcap.manifests import load_objects

    sb = Sandbox()
    await sb.start()
    kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    sb.load_objects(load_objects(str(CRDS)))
    sb.load_objects([o for o in load_objects(str(EXAMPLES)) if o.get("kind") == "Site"])
    info = kopf.login_with_kubeconfig(
        logger=logging.getLogger("test"), settings=kopf.OperatorSettings()
    )
    assert info is not None
    client = Client(info)
    try:
        yield Cluster(sb, client)
    finally:
        await client.close()
        await sb.stop()


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    v = Vtn()
    await v.start()
    try:
        yield v
    finally:
        await v.stop()
