"""The operator on the sandbox: the example site through its scenarios (issue 5)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp

from dualcap.api.common import CURTAILED_AT_ANNOTATION, CURTAILED_TAINT_KEY
from tests.operator.conftest import SITE, WRITES, Running, cluster_objects
from tests.sandbox.conftest import wait_for

API = "/apis/dualcap.io/v1alpha1"


async def http(
    sb, method: str, path: str, body: Any = None, ctype: str = "application/merge-patch+json"
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            sb.url + path,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": ctype},
        ) as r,
    ):
        return r.status, await r.json()


def nodes(sb) -> dict[str, dict]:
    rt = sb.store.rt("", "nodes")
    return {n["metadata"]["name"]: n for n in sb.store.list_objects(rt)}


def lease_pods(sb) -> list[dict]:
    rt = sb.store.rt("", "pods")
    return [
        p
        for p in sb.store.list_objects(rt)
        if "dualcap.io/lease" in (p["metadata"].get("labels") or {})
    ]


def curtailed(sb) -> set[str]:
    return {
        n
        for n, o in nodes(sb).items()
        if any(
            t.get("key") == CURTAILED_TAINT_KEY for t in (o.get("spec") or {}).get("taints") or []
        )
    }


def lease(sb, ns: str, name: str) -> dict:
    return sb.store.get(sb.store.rt("dualcap.io", "computeleases"), ns, name)


async def set_event(sb, limit_kw: float | None, clock) -> None:
    events = (
        []
        if limit_kw is None
        else [
            {
                "name": "dr",
                "start": (clock() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (clock() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "limitKW": limit_kw,
            }
        ]
    )
    code, body = await http(sb, "PATCH", f"{API}/powerbudgets/{SITE}", {"spec": {"events": events}})
    assert code == 200, body


async def test_examples_reach_the_planned_state(site: Running) -> None:
    status = await site.settle()
    sb = site.sb
    # The 49.5 MW envelope holds 24 of the 25 controllers: the least efficient one goes.
    assert curtailed(sb) == {"asic-c25"}
    node = nodes(sb)["asic-c25"]
    assert (
        node["spec"]["unschedulable"] is True
        and CURTAILED_AT_ANNOTATION in node["metadata"]["annotations"]
    )
    assert status["controllers"]["mining"] == 24 and status["controllers"]["curtailed"] == 1
    assert status["committedKW"] <= status["limitKW"] == 49_500
    pods = sorted(p["metadata"]["name"] for p in lease_pods(sb))
    assert pods == [
        "batch-training-0",
        "batch-training-1",
        "batch-training-2",
        "batch-training-3",
        "llm-inference-0",
        "llm-inference-1",
    ]
    assert lease(sb, "acme", "llm-inference")["status"]["phase"] == "Running"
    assert lease(sb, "acme", "finetune-august")["status"]["phase"] == "Pending"
    conditions = {
        c["type"]: c["status"] for c in lease(sb, "acme", "llm-inference")["status"]["conditions"]
    }
    assert conditions == {"Admitted": "True", "Ready": "True", "Stalled": "False"}
    budget = sb.store.get(sb.store.rt("dualcap.io", "powerbudgets"), None, SITE)["status"]
    assert (
        budget["effectiveLimitKW"] == 49_500 and budget["nextChange"]["limitKW"] == 7_500
    )  # the ERS event, that afternoon
    # Every lease pod is hardened and placed by dualcap.
    for pod in lease_pods(sb):
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False and spec["nodeName"].startswith(
            "gpu-h100-"
        )
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ComputeLease"
    # Events tell the story.
    events = [e for e in sb.store.list_objects(sb.store.rt("", "events"))]
    assert {e["reason"] for e in events} >= {"Curtailed", "Admitted"}
    assert site.monitor.samples > 20


async def test_lease_pods_wait_for_the_curtailment_to_be_confirmed(site: Running) -> None:
    """The guaranteed lease's pods are created only once asic-c25's miner has stopped."""
    await site.settle()
    sb = site.sb
    events = [e for e in sb.store.list_objects(sb.store.rt("", "events"))]
    first_pod = min(p["metadata"]["creationTimestamp"] for p in lease_pods(sb))
    curtail = min(e["firstTimestamp"] for e in events if e["reason"] == "Curtailed")
    assert first_pod >= curtail
    # The monitor saw every write: committed draw never exceeded the limit beyond what the
    # issued curtailment was about to free (checked in the fixture's teardown).


async def test_a_demand_response_event(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    # 30% of the interconnect: mining is shed, the leases stay.
    await set_event(sb, 15_000, clock)
    status = await site.settle()
    assert status["committedKW"] <= 14_500
    assert len(curtailed(sb)) > 15
    assert len(lease_pods(sb)) == 6
    # Below what the leases need: the preemptible lease goes first, the guaranteed one stays.
    await set_event(sb, 700, clock)
    status = await site.settle()
    assert lease(sb, "research", "batch-training")["status"]["phase"] == "Preempted"
    assert lease(sb, "acme", "llm-inference")["status"]["phase"] == "Running"
    assert len(curtailed(sb)) == 25 and status["committedKW"] <= 200
    # The event ends: the lease runs again, mining comes back ramp-limited.
    clock.advance(minutes=10)  # past minCurtailedSeconds
    await set_event(sb, None, clock)
    await wait_for(
        lambda: _is_running(sb, "research", "batch-training"),
        timeout=15,
        what="batch-training running again",
    )
    resumed_first = 25 - len(curtailed(sb))
    assert 0 < resumed_first <= 6  # 10,000 kW a minute: 4-5 controllers
    for _ in range(6):
        clock.advance(minutes=1)
        await site.reconciled()
    await site.settle()
    assert curtailed(sb) == {"asic-c25"}


async def _is_running(sb, ns, name):
    return (lease(sb, ns, name).get("status") or {}).get("phase") == "Running"


async def test_lease_start_end_and_deletion(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    body = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": "later", "namespace": "acme"},
        "spec": {
            "siteRef": SITE,
            "gpus": 8,
            "gpusPerPod": 8,
            "start": (clock() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (clock() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    code, _ = await http(
        sb, "POST", f"{API}/namespaces/acme/computeleases", body, "application/json"
    )
    assert code == 201
    await site.settle()
    assert lease(sb, "acme", "later")["status"]["phase"] == "Pending"
    clock.advance(minutes=6)
    await site.settle()
    assert lease(sb, "acme", "later")["status"]["phase"] == "Running"
    assert "later-0" in {p["metadata"]["name"] for p in lease_pods(sb)}
    clock.advance(minutes=30)
    await site.settle()
    assert lease(sb, "acme", "later")["status"]["phase"] == "Completed"
    assert "later-0" not in {p["metadata"]["name"] for p in lease_pods(sb)}
    # Deleting a running lease: its pods go (owner references), its power to mining.
    code, _ = await http(sb, "DELETE", f"{API}/namespaces/research/computeleases/batch-training")
    assert code == 200
    await wait_for(
        lambda: _no_pods_of(sb, "batch-training"), timeout=10, what="batch-training's pods gone"
    )
    await site.settle()


async def _no_pods_of(sb, name):
    return not any(p["metadata"]["labels"]["dualcap.io/lease"] == name for p in lease_pods(sb))


async def test_priority_is_never_inverted(site: Running) -> None:
    sb = site.sb
    await site.settle()
    # All 64 GPUs: 48 leased; a 16-GPU high-priority lease takes the last 16, then a
    # low-priority one waits; freeing nothing, the high one is never displaced by it.
    for name, prio in (("vip", 1000), ("low", -5)):
        body = {
            "apiVersion": "dualcap.io/v1alpha1",
            "kind": "ComputeLease",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {
                "siteRef": SITE,
                "gpus": 16,
                "gpusPerPod": 8,
                "priority": prio,
                "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
            },
        }
        await http(sb, "POST", f"{API}/namespaces/acme/computeleases", body, "application/json")
    await site.settle()
    assert lease(sb, "acme", "vip")["status"]["phase"] == "Running"
    low = lease(sb, "acme", "low")["status"]
    assert (
        low["phase"] == "Pending"
        and {c["type"]: c["reason"] for c in low["conditions"]}["Admitted"] == "InsufficientGPUs"
    )


async def test_a_node_cordoned_by_a_person_is_left_alone(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    _code, _ = await http(sb, "PATCH", "/api/v1/nodes/asic-c03", {"spec": {"unschedulable": True}})
    await site.settle()
    status = await site.settle()
    assert status["heldNodes"] == ["asic-c03"]
    await set_event(sb, 5_000, clock)
    await site.settle()
    held = nodes(sb)["asic-c03"]
    assert held["spec"]["unschedulable"] is True and "taints" not in held["spec"]
    assert CURTAILED_AT_ANNOTATION not in (held["metadata"].get("annotations") or {})
    await set_event(sb, None, clock)
    clock.advance(minutes=30)
    await site.settle()
    assert nodes(sb)["asic-c03"]["spec"]["unschedulable"] is True  # never uncordoned


async def test_an_idle_site_makes_no_writes(site: Running) -> None:
    await site.settle()
    await site.reconciled()  # the status writes of the settling reconciles are done
    before, reconciles = site.writes(), site.state.reconciles
    by_agent = dict(site.sb.api.audit.by_agent)

    def written() -> dict[tuple[str, ...], int]:
        """The writes since ``by_agent``, by client and resource (what a failure shows)."""
        now = site.sb.api.audit.by_agent
        return {
            k: n - by_agent.get(k, 0) for k, n in now.items()
            if k[1] in WRITES and n != by_agent.get(k, 0)
        }  # fmt: skip

    await wait_for(
        lambda: _reconciled(site, reconciles + 10), timeout=10, what="10 more reconciles"
    )
    assert site.writes() == before, written()
    # Restarted on a settled cluster: still nothing to write.
    await site.shutdown()
    await site.start()
    await wait_for(lambda: _reconciled(site, 5), timeout=10, what="5 reconciles after the restart")
    assert site.writes() == before, written()


async def _reconciled(site, n):
    return site.state.reconciles >= n


async def test_it_converges_through_api_faults(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    sb.faults.add(method="PATCH", path="/api/v1/nodes/", code=500, times=5)
    sb.faults.add(method="PATCH", path="/api/v1/nodes/", code=429, times=3, retry_after=1)
    sb.faults.add(method="PATCH", path="/api/v1/nodes/", code=409, times=2)
    sb.faults.add(method="PATCH", path="/api/v1/nodes/", code=500, times=2, ambiguous=True)
    await set_event(sb, 20_000, clock)

    async def hit() -> bool:
        return sb.faults.injected >= 1

    await wait_for(hit, timeout=10, what="the operator's first faulted write")
    sb.store.close_watches()  # and the watches drop
    status = await site.settle(timeout=30)
    assert status["committedKW"] <= 19_500
    assert sb.faults.injected >= 10


async def test_nodes_and_pods_outside_the_site_are_untouched(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    other = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "elsewhere",
            "labels": {"dualcap.io/site": "other", "dualcap.io/role": "asic"},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    unlabelled = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "plain", "labels": {"dualcap.io/role": "asic"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    for body in (other, unlabelled):
        await http(sb, "POST", "/api/v1/nodes", body, "application/json")
    await site.reconciled()  # the operator has seen them
    before = {n: nodes(sb)[n]["metadata"]["resourceVersion"] for n in ("elsewhere", "plain")}
    pods_before = {
        (p["metadata"]["namespace"], p["metadata"]["name"])
        for p in cluster_objects(sb)
        if p["kind"] == "Pod" and p["spec"].get("nodeName") in ("elsewhere", "plain")
    }
    await set_event(sb, 3_000, clock)
    await site.settle()
    assert {
        n: nodes(sb)[n]["metadata"]["resourceVersion"] for n in ("elsewhere", "plain")
    } == before
    pods_after = {
        (p["metadata"]["namespace"], p["metadata"]["name"])
        for p in cluster_objects(sb)
        if p["kind"] == "Pod" and p["spec"].get("nodeName") in ("elsewhere", "plain")
    }
    assert pods_after == pods_before and len(pods_before) == 2  # their miners run on


async def test_a_lease_for_an_unknown_site_is_stalled_and_the_rest_carries_on(
    site: Running,
) -> None:
    sb = site.sb
    await site.settle()
    body = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": "lost", "namespace": "acme"},
        "spec": {
            "siteRef": "nowhere",
            "gpus": 8,
            "gpusPerPod": 8,
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    await http(sb, "POST", f"{API}/namespaces/acme/computeleases", body, "application/json")

    async def stalled():
        conds = (lease(sb, "acme", "lost").get("status") or {}).get("conditions") or []
        return any(
            c["type"] == "Stalled" and c["status"] == "True" and c["reason"] == "SiteNotFound"
            for c in conds
        )

    await wait_for(stalled, timeout=10, what="the lease Stalled")

    async def event():
        return [
            e
            for e in sb.store.list_objects(sb.store.rt("", "events"))
            if e["involvedObject"]["name"] == "lost"
        ]

    events = await wait_for(event, timeout=5, what="an Event on the lease")
    assert events[0]["reason"] == "SiteNotFound" and events[0]["type"] == "Warning"
    await site.settle()


def stalled_on_missing_site(obj: dict | None) -> bool:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(
        c["type"] == "Stalled" and c["status"] == "True" and c["reason"] == "SiteNotFound"
        for c in conds
    )


def events_about(sb, name: str) -> list[dict]:
    return [
        e
        for e in sb.store.list_objects(sb.store.rt("", "events"))
        if e["involvedObject"]["name"] == name
    ]


async def test_a_budget_for_an_unknown_site_is_stalled_with_an_event(site: Running) -> None:
    sb = site.sb
    before = await site.settle()
    body = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": "misspelt"},
        "spec": {"siteRef": "tx-rockdal-1", "limitKW": 1_000},
    }
    code, out = await http(sb, "POST", f"{API}/powerbudgets", body, "application/json")
    assert code == 201, out
    rt = sb.store.rt("dualcap.io", "powerbudgets")

    async def stalled():
        return stalled_on_missing_site(sb.store.get(rt, None, "misspelt"))

    await wait_for(stalled, timeout=10, what="the budget Stalled")
    status = sb.store.get(rt, None, "misspelt")["status"]
    assert "tx-rockdal-1" in status["conditions"][0]["message"]

    async def posted():
        return events_about(sb, "misspelt")

    events = await wait_for(posted, timeout=5, what="an Event on the budget")
    assert [(e["reason"], e["type"], e["involvedObject"]["kind"]) for e in events] == [
        ("SiteNotFound", "Warning", "PowerBudget")
    ]
    after = await site.settle()  # the site it did not name is untouched
    assert after["limitKW"] == before["limitKW"]


async def test_deleting_the_site_releases_its_controllers(site: Running) -> None:
    sb, clock = site.sb, site.clock
    await site.settle()
    await set_event(sb, 10_000, clock)
    await site.settle()
    assert len(curtailed(sb)) > 10
    await http(sb, "DELETE", f"{API}/sites/{SITE}")

    async def released():
        return sb.store.get(
            sb.store.rt("dualcap.io", "sites"), None, SITE
        ) is None and not curtailed(sb)

    await wait_for(released, timeout=15, what="the site gone and its controllers released")
    assert not any(
        CURTAILED_AT_ANNOTATION in (n["metadata"].get("annotations") or {})
        for n in nodes(sb).values()
    )
    # its budget names nothing now, and says so
    rt = sb.store.rt("dualcap.io", "powerbudgets")

    async def budget_stalled():
        return stalled_on_missing_site(sb.store.get(rt, None, SITE))

    await wait_for(budget_stalled, timeout=10, what="the budget Stalled: SiteNotFound")


async def test_stale_telemetry_is_counted_at_full_power(site: Running) -> None:
    """A node whose kubelet stops reporting (NotReady: its status is stale) counts at full
    power; dualcap neither resumes it nor spends the power it might be drawing."""
    sb, clock = site.sb, site.clock
    await site.settle()
    await set_event(sb, 20_000, clock)
    await site.settle()
    stale = sorted(curtailed(sb))[0]
    assert sb.cluster is not None
    # The node going stale raises the committed draw by itself, not by dualcap's doing.
    site.monitor.blame = lambda: False
    sb.cluster.set_node_ready(stale, False)
    site.monitor.blame = None
    clock.advance(minutes=10)  # past minCurtailedSeconds: resuming is allowed again
    await set_event(sb, None, clock)
    for _ in range(8):  # ramp-limited resume, a minute at a time
        clock.advance(minutes=1)
        await site.reconciled()

    async def counted():
        rt = sb.store.rt("dualcap.io", "sites")
        status = (sb.store.get(rt, None, SITE) or {}).get("status") or {}
        return status if (status.get("controllers") or {}).get("unready") == 1 else None

    status = await wait_for(counted, timeout=15, what="the stale node counted as unready")
    assert stale in curtailed(sb)  # not resumed on stale data
    assert status["committedKW"] <= status["limitKW"]
    # Its full power is in the committed draw: every other controller cannot also mine.
    assert status["controllers"]["mining"] <= 23
