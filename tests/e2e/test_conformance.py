"""The sandbox's API conformance tests (tests/sandbox/test_api.py) run against the real
kube-apiserver too: the same test functions, the same thin HTTP client, the real server.
Every test written only against the API (its `client`, the CRDs) runs here; the ones that
reach into the sandbox itself (its clock, its behaviour switches) cannot. A test that
passes on the sandbox and fails here shows where the sandbox is wrong."""

from __future__ import annotations

import inspect
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import tests.sandbox.test_api as api
from dualcap.login import load
from tests.e2e.conftest import Cluster
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.e2e

# Written only against the API: every parameter is the client or the CRDs.
PORTABLE = sorted(
    name
    for name, fn in vars(api).items()
    if name.startswith("test_")
    and inspect.iscoroutinefunction(fn)
    and set(inspect.signature(fn).parameters) <= {"client", "with_crds"}
)
# Every one of them runs here: each names its own objects (and labels what it lists and
# watches), so it holds on a cluster that kwok's nodes and the other tests share.


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[Client]:
    creds = load(str(cluster.kubeconfig))
    ctx = ssl.create_default_context(cafile=creds.ca_path)
    if creds.cert_path:
        ctx.load_cert_chain(creds.cert_path, creds.key_path)
    token = creds.bearer()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), headers=headers) as s:
        yield Client(creds.server, s)


@pytest.mark.parametrize("name", PORTABLE)
async def test_the_sandbox_conformance_test_holds_on_the_real_apiserver(
    name: str, client: Client
) -> None:
    fn = getattr(api, name)
    kwargs: dict[str, Any] = {"client": client}
    if "with_crds" in inspect.signature(fn).parameters:
        kwargs["with_crds"] = None  # the CRDs: installed for the session
    await fn(**kwargs)
