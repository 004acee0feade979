"""RBAC from traffic: every request the operator (its own client and kopf) sends to the
sandbox across a scenario that uses every write it has, checked against the chart's
ClusterRole: nothing outside it, and no grant unused (issues 6 and 8)."""

from __future__ import annotations

import pytest

from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import API, _is_running, curtailed, http, set_event
from tests.sandbox.conftest import wait_for

pytest.importorskip("helm_python", reason="helm-python-sdk is part of the test extras")
from tests.chart.test_chart import rules

OPERATOR_AGENTS = ("dualcap", "kopf")


def used(site: Running) -> set[tuple[str, str, str]]:
    out = set()
    for (agent, verb, group, plural, sub, _namespaced), _n in site.sb.api.audit.by_agent.items():
        if agent in OPERATOR_AGENTS:
            out.add((group, f"{plural}/{sub}" if sub else plural, verb))
    return out


async def test_the_operator_uses_exactly_the_chart_role(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    # Below what the leases need: curtail everything, preempt (delete pods).
    await set_event(sb, 700, clock)
    await site.settle()
    # Power returns, but a pod squats the name of the lease's first pod: the create meets
    # 409 AlreadyExists, the operator reads the pod, finds it is not the lease's and
    # leaves it alone; once the squatter is gone the lease runs.
    squatter = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "batch-training-0", "namespace": "research"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "nodeName": "nowhere"},
    }
    code, body = await http(
        sb, "POST", "/api/v1/namespaces/research/pods", squatter, "application/json"
    )
    assert code == 201, body
    clock.advance(minutes=10)
    await set_event(sb, None, clock)

    async def read_back() -> bool:
        return any(
            k[0] == "dualcap" and k[1] == "get" and k[3] == "pods" for k in sb.api.audit.by_agent
        )

    await wait_for(read_back, timeout=15, what="the operator reading the squatter back")
    pod = sb.store.get(sb.store.rt("", "pods"), "research", "batch-training-0")
    assert "dualcap.io/lease" not in (pod["metadata"].get("labels") or {})  # untouched
    await http(sb, "DELETE", "/api/v1/namespaces/research/pods/batch-training-0")
    await wait_for(lambda: _is_running(sb, "research", "batch-training"), timeout=15, what="re-run")
    # A lease for a Site that does not exist: a Warning Event.
    lost = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": "lost", "namespace": "acme"},
        "spec": {"siteRef": "nowhere", "gpus": 8, "gpusPerPod": 8,
                 "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }  # fmt: skip
    await http(sb, "POST", f"{API}/namespaces/acme/computeleases", lost, "application/json")
    # The Site deleted: its controllers released, kopf's finalizer removed.
    await http(sb, "DELETE", f"{API}/sites/{SITE}")

    async def gone() -> bool:
        return sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE) is None  # type: ignore[arg-type]

    await wait_for(gone, timeout=15, what="the site deleted")
    assert not curtailed(sb)  # released before the finalizer went

    granted = rules({})
    traffic = used(site)
    assert traffic - granted == set(), "used but not granted"
    assert granted - traffic == set(), "granted but never used"
