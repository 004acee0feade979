"""Kueue Workloads under dualcap's power admission check, decided by the plan: one more GPU
load of the site, as a ComputeLease is (table tests). A Workload is admitted (AdmitWorkload:
the check's Ready) only when it fits the envelope, after the curtailments that make room
are confirmed; preemptible ones are evicted (EvictWorkload: the check's Retry) lowest
priority first when the envelope falls and the miners alone cannot make room; what can
never fit is rejected; one asking no GPUs needs no power."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dualcap.api.conditions import Reason
from dualcap.cluster.kueue import wanted_check
from dualcap.planning import plan
from dualcap.planning.commands import Kind
from dualcap.planning.decisions import Plan
from tests.planning.builders import SITE, T0, asic, asics, budget, gpu_nodes, site, snapshot

CHECK = "power"


def check(name: str = CHECK, site_name: str = SITE, controller: str = "dualcap.io/power") -> dict:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "AdmissionCheck",
        "metadata": {"name": name},
        "spec": {
            "controllerName": controller,
            "parameters": {"apiGroup": "dualcap.io", "kind": "Site", "name": site_name},
        },
    }


def workload(
    name: str,
    pods: int = 1,
    gpus: int = 8,
    *,
    priority: int = 0,
    preemptible: bool = False,
    state: str = "Pending",
    reserved: bool = True,
    finished: bool = False,
    on: list[str] | None = None,  # the nodes of its running pods
    ns: str = "ai",
) -> list[dict]:
    conditions = []
    if reserved:
        conditions.append({"type": "QuotaReserved", "status": "True"})
    if finished:
        conditions.append({"type": "Finished", "status": "True"})
    container: dict[str, Any] = {"name": "c", "image": "trainer"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    obj = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-07-14T11:00:00Z",
            "labels": {"dualcap.io/preemptible": "true"} if preemptible else {},
        },
        "spec": {
            "priority": priority,
            "podSets": [{"name": "main", "count": pods, "template": {"spec": {"containers": [container]}}}],
        },
        "status": {
            "conditions": conditions,
            "admissionChecks": [{"name": CHECK, "state": state, "message": ""}],
        },
    }  # fmt: skip
    out = [obj]
    for i, node in enumerate(on or []):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{i}",
                    "namespace": ns,
                    "uid": f"uid-{name}-{i}",
                    "labels": {"dualcap.io/workload": name, "dualcap.io/site": SITE},
                },
                "spec": {"nodeName": node, "containers": [container]},
                "status": {"phase": "Running"},
            }
        )
    return out


def planned(*parts: Any, limit_kw: float) -> Plan:
    snap = snapshot(site(), budget(limit_kw=limit_kw), check(), *parts)
    return plan(snap, T0)


def cmds(p: Plan, kind: Kind) -> list[str]:
    return [c.name for c in p.schedule.now if c.kind is kind]


def decision(p: Plan, name: str) -> Any:
    return next(d for d in p.leases if d.lease.name == name)


def test_admitted_when_it_fits_counting_as_a_lease_would() -> None:
    # two GPU nodes of 8; 8 GPUs x 1 kW = 8 kW beside 2 miners of 1,000 kW
    p = planned(*gpu_nodes(2), *asics(2), *workload("train"), limit_kw=3_000)
    assert cmds(p, Kind.ADMIT_WORKLOAD) == ["train"]
    d = decision(p, "train")
    assert d.runs and d.kw == pytest.approx(8.0) and d.admitted_now
    assert p.gpus_leased == 8


def test_miners_make_room_first_and_the_admission_waits_for_them() -> None:
    # 2,000 kW of miners under a 1,500 kW limit and a 16 kW Workload: one miner curtailed
    # now, the admission deferred until the curtailment is confirmed (make before break)
    p = planned(*gpu_nodes(2), *asics(2), *workload("train", 2), limit_kw=2_005)
    assert cmds(p, Kind.CURTAIL) and not cmds(p, Kind.ADMIT_WORKLOAD)
    assert [c.name for c in p.schedule.deferred if c.kind is Kind.ADMIT_WORKLOAD] == ["train"]
    d = decision(p, "train")
    wanted = wanted_check(d, True, p.in_flight)
    assert wanted is not None and wanted.state == "Pending"
    assert "to be confirmed" in wanted.message and "16 kW" in wanted.message


def test_no_room_says_how_much_it_needs() -> None:
    # a non-preemptible lease... nothing to curtail: the limit is below the GPU load
    p = planned(*gpu_nodes(2), *workload("train", 2), limit_kw=10)
    d = decision(p, "train")
    assert not d.runs and d.reason == Reason.INSUFFICIENT_POWER
    wanted = wanted_check(d, False, p.in_flight)
    assert wanted is not None and wanted.state == "Pending" and "needs 16 kW" in wanted.message


def test_a_cut_evicts_preemptible_workloads_lowest_priority_first() -> None:
    # three admitted Workloads of 8 kW, all miners already curtailed; the limit falls to 12 kW
    parts = [
        *gpu_nodes(3),
        *asic("a00", mining=False, curtailed_at=T0 - timedelta(hours=1)),
        *workload("low", priority=1, preemptible=True, state="Ready", on=["g00"]),
        *workload("mid", priority=5, preemptible=True, state="Ready", on=["g01"]),
        *workload("kept", priority=0, state="Ready", on=["g02"]),  # not preemptible
    ]
    p = planned(*parts, limit_kw=17)
    assert cmds(p, Kind.EVICT_WORKLOAD) == ["low"]
    assert decision(p, "kept").runs and decision(p, "mid").runs
    p = planned(*parts, limit_kw=9)
    assert sorted(cmds(p, Kind.EVICT_WORKLOAD)) == ["low", "mid"]
    assert decision(p, "kept").runs  # non-preemptible: kept while it alone fits
    evicted = next(c for c in p.schedule.now if c.name == "low")
    assert evicted.is_decrease and evicted.delta_kw == pytest.approx(-8.0)


def test_miners_alone_cover_a_cut_and_no_workload_is_evicted() -> None:
    parts = [
        *gpu_nodes(1),
        *asics(2),
        *workload("train", preemptible=True, state="Ready", on=["g00"]),
    ]
    p = planned(*parts, limit_kw=1_100)
    assert cmds(p, Kind.CURTAIL) and not cmds(p, Kind.EVICT_WORKLOAD)
    assert decision(p, "train").runs


@pytest.mark.parametrize(
    ("parts", "state", "reason"),
    [
        # more GPUs than the site has: rejected, with the reason
        (workload("huge", 3, 8), "Rejected", Reason.NEVER_FITS),
        # a pod larger than any node
        (workload("wide", 1, 16), "Rejected", Reason.NEVER_FITS),
        # no GPUs: no power to make room for
        (workload("cpu", 4, 0), "Ready", Reason.NO_GPUS),
    ],
)
def test_what_can_never_fit_is_rejected_and_no_gpus_is_ready(
    parts: list, state: str, reason: Reason
) -> None:
    p = planned(*gpu_nodes(2), *parts, limit_kw=100_000)
    d = decision(p, parts[0]["metadata"]["name"])
    assert d.reason == reason and not cmds(p, Kind.ADMIT_WORKLOAD)
    wanted = wanted_check(d, False, p.in_flight)
    assert wanted is not None and wanted.state == state


def test_kueue_business_is_left_to_kueue() -> None:
    # quota not reserved yet, or finished: no command, nothing written
    p = planned(
        *gpu_nodes(2),
        *workload("queued", reserved=False),
        *workload("done", state="Ready", finished=True),
        limit_kw=100_000,
    )
    assert not p.schedule.now
    for name in ("queued", "done"):
        assert wanted_check(decision(p, name), False, p.in_flight) is None


def test_its_pods_count_once_not_also_as_the_nodes_other_load() -> None:
    # the Workload's running pod is not in the node's baseline (foreign GPUs): 8 kW once
    p = planned(*gpu_nodes(1), *workload("train", state="Ready", on=["g00"]), limit_kw=100_000)
    assert p.committed.gpu_kw == pytest.approx(8.0)
    # a pod of a Workload that is gone still counts until it is gone, and is not deleted
    orphan = workload("gone", state="Ready", on=["g00"])[1:]
    p = planned(*gpu_nodes(1), *orphan, limit_kw=100_000)
    assert p.committed.gpu_kw == pytest.approx(8.0) and not p.schedule.now


def test_a_check_of_another_controller_or_site_is_not_ours() -> None:
    other = check("other", controller="example.com/other")
    snap = snapshot(site(), budget(limit_kw=100), other, *gpu_nodes(1), *workload("x"))
    assert [d.lease.name for d in plan(snap, T0).leases] == []


def test_one_evicted_is_left_to_kueue_its_pods_counted_until_gone() -> None:
    # The check said Retry: Kueue suspends its Job; no second Retry, no admission meanwhile
    # even with room, its running pod still counted
    parts = [*gpu_nodes(1), *workload("going", state="Retry", on=["g00"], preemptible=True)]
    p = planned(*parts, limit_kw=100_000)
    assert not p.schedule.now and p.committed.gpu_kw == pytest.approx(8.0)
    d = decision(p, "going")
    assert not d.runs and wanted_check(d, False, p.in_flight) is None
    # rejected once: left so (Kueue deactivates it), nothing written again
    p = planned(*gpu_nodes(1), *workload("big", 2, 8, state="Rejected"), limit_kw=100_000)
    d = decision(p, "big")
    assert d.reason == Reason.NEVER_FITS and not p.schedule.now


def test_an_evicted_workload_is_not_evicted_again_while_its_job_stops() -> None:
    # Kueue evicted it and reset the check to Pending; its pod still runs while the Job is
    # suspended: no second Retry (which would hold it out), the pod counted until gone
    parts = [
        *gpu_nodes(1),
        *workload("low", state="Pending", reserved=False, on=["g00"], preemptible=True),
    ]
    parts[1]["status"]["conditions"].append({"type": "Evicted", "status": "True"})
    p = planned(*parts, limit_kw=5)
    assert not p.schedule.now and p.committed.gpu_kw == pytest.approx(8.0)
    # a Retry that landed after Kueue's reset is taken back
    parts[1]["status"]["admissionChecks"][0]["state"] = "Retry"
    d = decision(planned(*parts, limit_kw=5), "low")
    wanted = wanted_check(d, False, 0)
    assert wanted is not None and wanted.state == "Pending"
