"""Per-kind write semantics below the HTTP layer (the registry's strategies), where they
differ from the generic path: graceful pods, namespace lifecycle, secrets."""

from __future__ import annotations

import pytest

from dualcap_sandbox.cluster import Behaviour
from dualcap_sandbox.registry import strategy_for
from dualcap_sandbox.registry.core import NamespaceStrategy, SecretStrategy
from dualcap_sandbox.registry.custom import CustomResourceStrategy
from dualcap_sandbox.registry.pods import PodStrategy
from tests.sandbox.conftest import wait_for
from tests.sandbox.test_cluster import NODES, PODS, gpu_pod, node, phase

NS = "/api/v1/namespaces"


def test_each_kind_has_its_strategy(sandbox) -> None:
    rt = sandbox.store.rt
    assert isinstance(strategy_for(rt("", "pods")), PodStrategy)
    assert isinstance(strategy_for(rt("", "namespaces")), NamespaceStrategy)
    assert isinstance(strategy_for(rt("", "secrets")), SecretStrategy)
    assert type(strategy_for(rt("", "events"))).__name__ == "Strategy"  # the default


async def _is(coro, value) -> bool:
    return (await coro) == value


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour(pod_termination_seconds=0.5)


async def test_a_terminating_pod_stays_through_writes_until_its_kubelet_is_done(client) -> None:
    await client.post(NODES, node("n"))
    await client.post(PODS, gpu_pod("p", 0, nodeName="n"))
    await wait_for(lambda: _is(phase(client, "p"), "Running"), what="Running")
    code, p = await client.delete(f"{PODS}/p")
    assert code == 200 and p["metadata"]["deletionGracePeriodSeconds"] == 30
    # A client's write to the terminating pod (a label) does not finish its deletion.
    code, p = await client.patch(f"{PODS}/p", {"metadata": {"labels": {"seen": "yes"}}})
    assert code == 200 and p["metadata"]["deletionTimestamp"]
    code, _ = await client.get(f"{PODS}/p")
    assert code == 200
    await wait_for(lambda: _is(phase(client, "p"), None), what="the pod gone")


async def test_a_pod_deleted_with_grace_zero_goes_at_once_even_while_terminating(client) -> None:
    await client.post(NODES, node("n"))
    for name in ("p", "q"):
        await client.post(PODS, gpu_pod(name, 0, nodeName="n"))
    code, _ = await client.delete(f"{PODS}/p", params={"gracePeriodSeconds": "0"})
    assert code == 200 and (await client.get(f"{PODS}/p"))[0] == 404
    code, q = await client.delete(f"{PODS}/q")
    assert code == 200 and q["metadata"]["deletionTimestamp"]  # terminating
    code, _ = await client.delete(f"{PODS}/q", params={"gracePeriodSeconds": "0"})  # forced
    assert code == 200 and (await client.get(f"{PODS}/q"))[0] == 404


async def test_content_of_a_terminating_namespace_can_be_updated_not_created(client) -> None:
    await client.post(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["x/y"]}}
    assert (await client.post(f"{NS}/t/configmaps", cm))[0] == 201
    code, ns = await client.delete(f"{NS}/t")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, err = await client.post(f"{NS}/t/configmaps", {**cm, "metadata": {"name": "d"}})
    assert code == 403 and "being terminated" in err["message"]
    # Removing the finalizer that holds the content is an update: allowed, and it finishes
    # the configmap's deletion (the namespace controller had marked it).
    code, _ = await client.patch(f"{NS}/t/configmaps/c", {"metadata": {"finalizers": None}})
    assert code == 200
    await wait_for(lambda: _is(_code(client.get(f"{NS}/t")), 404), what="the namespace gone")


async def _code(coro) -> int:
    return (await coro)[0]


async def test_secret_string_data_is_merged_into_data(client) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "YQ=="},
        "stringData": {"b": "bee"},
    }
    code, s = await client.post(f"{NS}/default/secrets", secret)
    assert code == 201 and s["data"] == {"a": "YQ==", "b": "YmVl"} and s["type"] == "Opaque"
    assert "stringData" not in s
    code, s = await client.patch(f"{NS}/default/secrets/s", {"stringData": {"a": "x"}})
    assert code == 200 and s["data"]["a"] == "eA==" and "stringData" not in s


def test_custom_resources_count_every_non_metadata_change_as_a_generation() -> None:
    strategy = CustomResourceStrategy()
    old = {"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}}
    assert not strategy.spec_changed(None, old, {**old, "status": {"y": 2}})  # type: ignore[arg-type]
    assert strategy.spec_changed(None, old, {**old, "extra": 1})  # type: ignore[arg-type]
