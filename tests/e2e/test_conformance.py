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
# Of those, the ones that run here today. The others assume a cluster of their own, empty
# at the start (they reuse names such as node "n" that an earlier test left, or compare a
# whole list with what they made, where kwok's nodes and the other tests' objects are):
# made independent of what else the cluster holds, they join this list.
ON_A_SHARED_CLUSTER = [
    "test_conflict_on_a_stale_resource_version",
    "test_custom_resources_are_validated_pruned_and_defaulted",
    "test_discovery",
    "test_delete_collection",
    "test_delete_with_finalizers",
    "test_dry_run_persists_nothing",
    "test_eviction",
    "test_generation_and_the_status_subresource",
    "test_label_and_field_selectors_on_list",
    "test_openapi_for_kubectl",
    "test_resource_version_is_cluster_wide_and_changes_on_every_write",
    "test_scope_is_enforced",
    "test_server_side_apply_creates_and_updates",
    "test_tables_for_kubectl_get",
]


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


def test_the_list_names_portable_tests() -> None:
    assert set(ON_A_SHARED_CLUSTER) <= set(PORTABLE), set(ON_A_SHARED_CLUSTER) - set(PORTABLE)


@pytest.mark.parametrize("name", ON_A_SHARED_CLUSTER)
async def test_the_sandbox_conformance_test_holds_on_the_real_apiserver(
    name: str, client: Client
) -> None:
    fn = getattr(api, name)
    kwargs: dict[str, Any] = {"client": client}
    if "with_crds" in inspect.signature(fn).parameters:
        kwargs["with_crds"] = None  # the CRDs: installed for the session
    await fn(**kwargs)
