"""Power accounting (docs/architecture.md §3): conservative committed draw, planned draw, overrides."""

from __future__ import annotations

import pytest

from dualcap.api.site import ControllerState
from dualcap.planning import plan
from tests.planning.builders import (
    T0,
    asic,
    budget,
    gpu_node,
    lease,
    lease_pod,
    miner,
    node,
    site,
    snapshot,
)


def committed(*parts, **site_kw) -> float:
    return plan(snapshot(site(**site_kw), budget(), *parts), T0).committed_kw


def state(*parts) -> ControllerState:
    return snapshot(site(), budget(), *parts).controllers[0].state


@pytest.mark.parametrize(
    ("parts", "expected_state", "kw"),
    [
        (asic("a"), ControllerState.MINING, 1000),
        (asic("a", mining=False), ControllerState.MINING, 1000),  # not curtailed: counts
        (asic("a", curtailed_at=T0, mining=False), ControllerState.CURTAILED, 0),
        (asic("a", curtailed_at=T0, mining=True), ControllerState.CURTAILING, 1000),
        (
            [*asic("a", curtailed_at=T0, mining=False), miner("a", terminating=True)],
            ControllerState.CURTAILING,
            1000,
        ),
        (asic("a", ready=False), ControllerState.UNREADY, 1000),
        (asic("a", curtailed_at=T0, mining=False, ready=False), ControllerState.UNREADY, 1000),
        (asic("a", cordoned=True), ControllerState.HELD, 1000),  # held, miners still running
        (asic("a", cordoned=True, mining=False), ControllerState.HELD, 0),
    ],
    ids=[
        "mining",
        "mining-no-pod-seen",
        "curtailed-confirmed",
        "curtailed-unconfirmed",
        "miner-still-terminating",
        "notready",
        "curtailed-but-notready",
        "held-mining",
        "held-stopped",
    ],
)
def test_controller_states_count_conservatively(parts, expected_state, kw) -> None:
    assert state(parts) is expected_state
    assert committed(parts) == pytest.approx(kw)


def test_a_node_without_conditions_counts_as_not_ready() -> None:
    n = asic("a", mining=False)
    del n[0]["status"]["conditions"]
    assert state(n) is ControllerState.UNREADY


def test_half_done_marks_are_not_confirmed() -> None:
    # The annotation without the taint (someone removed it): not confirmed, full power.
    parts = asic(
        "a",
        mining=False,
        annotations={"dualcap.io/curtailed-at": "2026-07-14T11:00:00Z"},
        cordoned=True,
    )
    assert state(parts) is ControllerState.CURTAILING
    assert committed(parts) == 1000


def test_pue_and_fixed_overhead() -> None:
    assert committed(asic("a"), asic("b"), pue=1.1, fixed_kw=150) == pytest.approx(150 + 1.1 * 2000)


def test_node_annotations_override_site_defaults() -> None:
    parts = [
        *asic("a", power_kw=1650),
        gpu_node(
            "g",
            annotations={"dualcap.io/idle-power-kw": "2.5", "dualcap.io/power-per-gpu-kw": "1.5"},
        ),
    ]
    parts += [lease("l", gpus=8), lease_pod("l", 0, "g", 8)]
    assert committed(*parts) == pytest.approx(1650 + 2.5 + 8 * 1.5)


def test_invalid_annotation_falls_back_and_is_reported() -> None:
    snap = snapshot(site(), budget(), asic("a", annotations={"dualcap.io/power-kw": "lots"}))
    assert snap.controllers[0].power_kw == 1000
    assert [p.reason for p in snap.problems] == ["InvalidAnnotation"]


@pytest.mark.parametrize(
    ("pod_kw", "kw"),
    [
        ({"phase": "Pending"}, 8),  # created, not running yet: counts
        ({"terminating": True}, 8),  # being deleted: counts until gone
        ({"phase": "Succeeded"}, 0),  # finished: gone from the GPUs
        ({"phase": "Failed"}, 0),
    ],
    ids=["pending", "terminating", "succeeded", "failed"],
)
def test_lease_pods_count_from_creation_until_gone(pod_kw, kw) -> None:
    parts = [gpu_node("g"), lease("l"), lease_pod("l", 0, "g", 8, **pod_kw)]
    assert committed(*parts, per_gpu_kw=1.0) == pytest.approx(kw)


def test_an_unbound_pod_counts_at_the_highest_kw_per_gpu() -> None:
    parts = [gpu_node("g1"), gpu_node("g2", annotations={"dualcap.io/power-per-gpu-kw": "1.4"})]
    parts += [lease("l"), lease_pod("l", 0, None, 8)]
    assert committed(*parts, per_gpu_kw=1.0) == pytest.approx(8 * 1.4)


def test_gpu_pods_that_are_not_dualcap_leases_count_too() -> None:
    foreign = lease_pod("x", 0, "g", 4)
    del foreign["metadata"]["labels"]["dualcap.io/lease"]
    assert committed(gpu_node("g"), foreign, per_gpu_kw=1.0) == pytest.approx(4)


def test_idle_gpu_nodes_always_draw() -> None:
    assert committed(gpu_node("g1"), gpu_node("g2", ready=False), idle_kw=2.0) == pytest.approx(4.0)


def test_nodes_of_other_sites_and_roles_are_not_counted() -> None:
    other = asic("x", site_name="elsewhere")
    no_role = node("y", "storage")
    assert committed(asic("a"), other, no_role) == 1000


def test_planned_draw_is_the_draw_once_the_plan_took_effect() -> None:
    p = plan(snapshot(site(), budget(limit_kw=2_500), *[asic(f"a{i}") for i in range(4)]), T0)
    assert p.committed_kw == 4000
    assert p.planned_kw == 2000
    assert len(p.mining) == 2
