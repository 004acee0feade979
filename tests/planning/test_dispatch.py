"""Dispatch (docs/architecture.md §4): leases by priority, all or nothing, the shed order, mining by
profit with hysteresis and ramp, people's cordons, make-before-break."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dualcap.planning import Kind, plan
from dualcap.planning.world import apply
from tests.planning.builders import (
    SITE,
    T0,
    asic,
    asics,
    budget,
    flatten,
    gpu_node,
    gpu_nodes,
    lease,
    lease_pod,
    running,
    site,
    snapshot,
)


def run(*parts, at=T0, limit_kw=1e6, price=None, site_kw=None, **budget_kw):
    return plan(
        snapshot(
            site(**(site_kw or {})), budget(limit_kw=limit_kw, price=price, **budget_kw), *parts
        ),
        at,
    )


def phases(p) -> dict[str, str]:
    return {d.lease.name: d.phase for d in p.leases}


def reasons(p) -> dict[str, str]:
    return {d.lease.name: d.reason for d in p.leases}


def names(p, kind: Kind) -> list[str]:
    return sorted(c.name for c in p.commands if c.kind is kind)


# --- leases -------------------------------------------------------------------------------


def test_priority_orders_admission() -> None:
    p = run(gpu_nodes(1), lease("low", priority=1), lease("high", priority=9))
    assert phases(p) == {"high": "Admitted", "low": "Pending"}
    assert reasons(p)["low"] == "InsufficientGPUs"


def test_among_equal_priorities_the_older_goes_first() -> None:
    older = lease("b-older", created=T0 - timedelta(hours=1))
    newer = lease("a-newer", created=T0)
    assert phases(run(gpu_nodes(1), newer, older)) == {"a-newer": "Pending", "b-older": "Admitted"}


def test_all_or_nothing() -> None:
    p = run(gpu_nodes(2), lease("big", gpus=24))
    assert phases(p) == {"big": "Pending"}
    assert names(p, Kind.CREATE_POD) == []


def test_packing_fails_on_fragmentation() -> None:
    # 8 GPUs free in all, but 4 on each node: a pod of 8 fits nowhere.
    parts = [gpu_nodes(2), lease("other", gpus=8, per_pod=4, priority=9)]
    parts += [lease_pod("other", 0, "g00", 4), lease_pod("other", 1, "g01", 4)]
    p = run(*parts, lease("eight", gpus=8, per_pod=8))
    assert reasons(p)["eight"] == "InsufficientGPUs"


def test_best_fit_keeps_whole_nodes_free() -> None:
    # g00 has 4 free, g01 8: a 4-GPU pod goes to g00, so g01 stays whole.
    parts = [gpu_nodes(2), *running(lease("x", gpus=4, per_pod=4, priority=9), ["g00"])]
    p = run(*parts, lease("four", gpus=4, per_pod=4), lease("eight", gpus=8, per_pod=8))
    creates = {c.name: c.node for c in p.commands if c.kind is Kind.CREATE_POD}
    assert creates == {"four-0": "g00", "eight-0": "g01"}


def test_power_limits_admission_and_a_smaller_lease_backfills() -> None:
    # 3 kW left for leases: the 16-GPU lease (16 kW) does not fit, the 2-GPU one does.
    p = run(
        gpu_nodes(3),
        lease("big", gpus=16, priority=9),
        lease("small", gpus=2, per_pod=2),
        limit_kw=3,
    )
    assert phases(p) == {"big": "Pending", "small": "Admitted"}
    assert reasons(p)["big"] == "InsufficientPower"


def test_mining_is_curtailed_to_admit_a_lease() -> None:
    p = run(asics(3), gpu_nodes(1), lease("l", gpus=8), limit_kw=2_500)
    assert phases(p)["l"] == "Admitted"
    assert len(names(p, Kind.CURTAIL)) == 1  # 3,000 kW mining + 8 kW lease in 2,500 kW
    assert p.planned_kw <= 2_500


def test_a_lease_waits_for_its_start_and_goes_at_its_end() -> None:
    future = lease("later", start=T0 + timedelta(hours=1))
    ended = lease("ended", end=T0 - timedelta(seconds=1))
    parts = [gpu_nodes(2), future, *running(ended, ["g00"])[1:], ended]
    p = run(*parts)
    assert phases(p) == {"later": "Pending", "ended": "Completed"}
    assert reasons(p)["later"] == "NotStarted"
    assert names(p, Kind.DELETE_POD) == ["ended-0"]
    assert p.next_wakeup == T0 + timedelta(hours=1)


def test_an_open_lease_ends_on_time() -> None:
    p = run(gpu_nodes(1), *running(lease("l", end=T0 + timedelta(minutes=5)), ["g00"]))
    assert phases(p) == {"l": "Running"}
    assert p.next_wakeup == T0 + timedelta(minutes=5)


def test_running_non_preemptible_lease_is_not_displaced_by_a_higher_priority_one() -> None:
    parts = [gpu_nodes(1), *running(lease("kept", priority=1), ["g00"]), lease("vip", priority=100)]
    p = run(*parts)
    assert phases(p) == {"kept": "Running", "vip": "Pending"}
    assert names(p, Kind.DELETE_POD) == []


def test_a_higher_priority_lease_takes_the_gpus_of_a_lower_preemptible_one() -> None:
    parts = [
        gpu_nodes(1),
        *running(lease("spot", priority=1, preemptible=True), ["g00"]),
        lease("vip", priority=100),
    ]
    p = run(*parts)
    assert phases(p) == {"spot": "Preempted", "vip": "Admitted"}
    assert reasons(p)["spot"] == "PreemptedByPriority"
    assert names(p, Kind.DELETE_POD) == ["spot-0"]


def test_every_higher_priority_lease_may_take_the_gpus_of_lower_preemptible_ones() -> None:
    # Three waiting leases above three running preemptible ones on three full nodes: each
    # takes the GPUs of the lowest still running (a second steal must not count the first
    # victim again, or the third finds the pool empty although spot-0 still runs).
    spots = [
        o
        for i in range(3)
        for o in running(
            lease(f"spot-{i}", priority=1, preemptible=True, created=T0 - timedelta(hours=i)),
            [f"g0{i}"],
        )
    ]
    vips = [lease(f"vip-{i}", priority=10 - i) for i in range(3)]
    p = run(gpu_nodes(3), *spots, *vips)
    assert phases(p) == {
        **{f"vip-{i}": "Admitted" for i in range(3)},
        **{f"spot-{i}": "Preempted" for i in range(3)},
    }
    assert set(reasons(p)[f"spot-{i}"] for i in range(3)) == {"PreemptedByPriority"}


def test_a_higher_priority_lease_uses_free_gpus_before_taking_any() -> None:
    parts = [
        gpu_nodes(2),
        *running(lease("spot", priority=1, preemptible=True), ["g00"]),
        lease("vip", priority=100),
    ]
    assert phases(run(*parts)) == {"spot": "Running", "vip": "Admitted"}


def test_a_lower_priority_lease_never_displaces_a_higher_one() -> None:
    parts = [
        gpu_nodes(1),
        *running(lease("high", priority=9, preemptible=True), ["g00"]),
        lease("low", priority=1),
    ]
    assert phases(run(*parts)) == {"high": "Running", "low": "Pending"}


def test_missing_pods_of_a_running_lease_are_created_again() -> None:
    parts = [gpu_nodes(2), lease("l", gpus=16), lease_pod("l", 0, "g00", 8)]
    p = run(*parts)
    creates = [c for c in p.commands if c.kind is Kind.CREATE_POD]
    assert [(c.name, c.node) for c in creates] == [("l-1", "g01")]
    assert phases(p) == {"l": "Admitted"}


def test_finished_pods_are_deleted_so_they_can_be_recreated() -> None:
    parts = [gpu_nodes(1), lease("l"), lease_pod("l", 0, "g00", 8, phase="Failed")]
    p = run(*parts)
    assert names(p, Kind.DELETE_POD) == ["l-0"]


def test_orphan_lease_pods_are_deleted() -> None:
    p = run(gpu_nodes(1), lease_pod("gone", 0, "g00", 8))
    assert names(p, Kind.DELETE_POD) == ["gone-0"]
    assert p.commands[0].reason == "LeaseGone"


def test_an_invalid_lease_fails_and_keeps_its_pods() -> None:
    bad = lease("bad")
    bad["spec"]["template"]["spec"]["nodeName"] = "g00"
    p = run(gpu_nodes(1), bad, lease_pod("bad", 0, "g00", 8))
    assert phases(p) == {"bad": "Failed"}
    assert p.commands == []  # loses nothing
    assert p.committed_kw == pytest.approx(8)


def test_template_node_selector_and_tolerations_are_respected() -> None:
    tainted = gpu_node("g-tainted", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])
    h100 = gpu_node("g-h100", labels={"gpu": "h100"})
    a100 = gpu_node("g-a100", labels={"gpu": "a100"})
    wants_h100 = lease(
        "h", template_spec={"containers": [{"name": "c"}], "nodeSelector": {"gpu": "h100"}}
    )
    tolerant = lease(
        "t",
        created=T0 + timedelta(seconds=2),
        template_spec={
            "containers": [{"name": "c"}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "nodeSelector": {"dualcap.io/role": "gpu"},
        },
    )
    plain = lease("p", created=T0 + timedelta(seconds=1))
    p = run(tainted, h100, a100, wants_h100, tolerant, plain)
    nodes = {c.lease: c.node for c in p.commands if c.kind is Kind.CREATE_POD}
    assert nodes["h"] == "g-h100"
    assert nodes["p"] == "g-a100"  # never the tainted node
    assert nodes["t"] == "g-tainted"


def test_cordoned_and_unready_gpu_nodes_get_no_new_pods() -> None:
    p = run(gpu_node("g1", cordoned=True), gpu_node("g2", ready=False), lease("l"))
    assert reasons(p) == {"l": "InsufficientGPUs"}


# --- the shed order -----------------------------------------------------------------------


def test_shed_order_unprofitable_mining_first() -> None:
    # b is unprofitable at this price (much lower hashrate); a pays.
    parts = [*asic("a", hashrate_ths=60_000), *asic("b", hashrate_ths=10_000)]
    p = run(*parts, price=50)
    assert names(p, Kind.CURTAIL) == ["b"]
    assert p.commands[0].reason == "Unprofitable"


def test_shed_order_least_profitable_per_kw_next() -> None:
    parts = [*asic("eff", hashrate_ths=60_000), *asic("old", hashrate_ths=40_000)]
    assert names(run(*parts, limit_kw=1_500), Kind.CURTAIL) == ["old"]


def test_shed_order_mining_before_any_lease() -> None:
    parts = [*asics(2), gpu_nodes(1), *running(lease("spot", preemptible=True), ["g00"])]
    p = run(*parts, limit_kw=10)
    assert names(p, Kind.CURTAIL) == ["a00", "a01"]
    assert phases(p) == {"spot": "Running"}


def test_shed_order_preemptible_lowest_priority_newest_first() -> None:
    leases = [
        running(
            lease("p5-old", priority=5, preemptible=True, created=T0 - timedelta(hours=2)), ["g00"]
        ),
        running(
            lease("p5-new", priority=5, preemptible=True, created=T0 - timedelta(hours=1)), ["g01"]
        ),
        running(lease("p9", priority=9, preemptible=True), ["g02"]),
    ]
    p = run(gpu_nodes(3), *leases, limit_kw=17)
    assert phases(p) == {"p5-old": "Running", "p5-new": "Preempted", "p9": "Running"}
    p = run(gpu_nodes(3), *leases, limit_kw=9)
    assert phases(p) == {"p5-old": "Preempted", "p5-new": "Preempted", "p9": "Running"}


def test_preemptible_before_non_preemptible_whatever_the_priority() -> None:
    leases = [
        running(lease("guaranteed-low", priority=1), ["g00"]),
        running(lease("spot-high", priority=99, preemptible=True), ["g01"]),
    ]
    p = run(gpu_nodes(2), *leases, limit_kw=9)
    assert phases(p) == {"guaranteed-low": "Running", "spot-high": "Preempted"}
    assert reasons(p)["spot-high"] == "InsufficientPower"


def test_non_preemptible_leases_are_stopped_only_when_physically_necessary() -> None:
    leases = [
        running(lease("g-old", priority=5, created=T0 - timedelta(hours=2)), ["g00"]),
        running(lease("g-new", priority=5, created=T0 - timedelta(hours=1)), ["g01"]),
    ]
    p = run(gpu_nodes(2), *leases, limit_kw=16)
    assert phases(p) == {"g-old": "Running", "g-new": "Running"}
    p = run(gpu_nodes(2), *leases, limit_kw=12)
    assert phases(p) == {"g-old": "Running", "g-new": "Preempted"}
    assert reasons(p)["g-new"] == "EnvelopeTooLow"


def test_the_gpus_of_a_shed_lease_go_to_a_smaller_one_that_fits() -> None:
    # "big" alone needs 16 kW and is shed at 12; "small" (older, so decided first) fits on
    # the GPUs big frees, although big's own turn comes after it.
    parts = [
        gpu_nodes(2),
        *running(lease("big", gpus=16), ["g00", "g01"]),
        lease("small", created=T0 - timedelta(hours=1)),
    ]
    p = run(*parts, limit_kw=12)
    assert phases(p) == {"big": "Preempted", "small": "Admitted"}
    assert reasons(p)["big"] == "EnvelopeTooLow"


def test_a_preempted_lease_runs_again_when_power_returns() -> None:
    p = run(gpu_nodes(1), lease("spot", preemptible=True, phase="Preempted"), limit_kw=100)
    assert phases(p) == {"spot": "Admitted"}
    p = run(gpu_nodes(1), lease("spot", preemptible=True, phase="Preempted"), limit_kw=1)
    assert phases(p) == {"spot": "Preempted"}  # still waiting: stays Preempted


# --- mining economics, hysteresis, ramp ----------------------------------------------------

S21 = {"power_kw": 1900.0, "hashrate_ths": 108_000.0}


@pytest.mark.parametrize(
    ("price", "mines"), [(100, True), (106, True), (107, False), (140, False), (-20, True)]
)
def test_economic_curtailment_at_breakeven(price, mines) -> None:
    """An S21 at 45 USD/PH/day earns 202.5 USD/h on 1,900 kW: break-even ~106.6 USD/MWh."""
    p = run(*asic("s21", **S21), price=price)
    assert (p.mining == ["s21"]) is mines


def test_breakeven_includes_the_pue() -> None:
    # With PUE 1.08 the same S21 costs 1.08x as much energy: break-even ~98.7 USD/MWh.
    assert run(*asic("s21", **S21), price=97, site_kw={"pue": 1.08}).mining == ["s21"]
    assert run(*asic("s21", **S21), price=100, site_kw={"pue": 1.08}).mining == []


def test_hysteresis_keeps_a_recently_resumed_controller_mining() -> None:
    parts = asic("a", resumed_at=T0 - timedelta(seconds=60), **S21)
    p = run(*parts, price=140, site_kw={"min_mining_seconds": 300})
    assert p.mining == ["a"]
    assert p.next_wakeup == T0 + timedelta(seconds=240)
    later = run(
        *parts, at=T0 + timedelta(seconds=241), price=140, site_kw={"min_mining_seconds": 300}
    )
    assert later.mining == []


def test_hysteresis_never_delays_a_shed() -> None:
    parts = asic("a", resumed_at=T0 - timedelta(seconds=10))
    p = run(*parts, limit_kw=500, site_kw={"min_mining_seconds": 300})
    assert names(p, Kind.CURTAIL) == ["a"]


def test_hysteresis_keeps_a_recently_curtailed_controller_curtailed() -> None:
    parts = asic("a", curtailed_at=T0 - timedelta(seconds=60), mining=False)
    p = run(*parts, site_kw={"min_curtailed_seconds": 300})
    assert names(p, Kind.RESUME) == []
    assert p.next_wakeup == T0 + timedelta(seconds=240)
    p = run(*parts, at=T0 + timedelta(seconds=240), site_kw={"min_curtailed_seconds": 300})
    assert names(p, Kind.RESUME) == ["a"]


def test_ramp_limit_on_resumes() -> None:
    parts = asics(5, curtailed_at=T0 - timedelta(hours=1), mining=False)
    p = run(*parts, site_kw={"ramp_kw_per_minute": 2_500})
    assert len(names(p, Kind.RESUME)) == 2
    assert p.next_wakeup is not None


def test_ramp_counts_what_was_resumed_in_the_last_minute() -> None:
    parts = [*asics(2, prefix="r", resumed_at=T0 - timedelta(seconds=30))]
    parts += asics(3, curtailed_at=T0 - timedelta(hours=1), mining=False)
    p = run(*parts, site_kw={"ramp_kw_per_minute": 2_500})
    assert names(p, Kind.RESUME) == []
    assert p.next_wakeup == T0 + timedelta(seconds=30)


def test_mining_fills_the_remainder_better_than_greedy() -> None:
    # 3,000 kW: greedy by density takes the 2,000 kW controller (best per kW) and stops;
    # two 1,500 kW controllers earn more together.
    parts = [
        *asic("big", power_kw=2000, hashrate_ths=120_000),
        *asic("m1", power_kw=1500, hashrate_ths=85_000),
        *asic("m2", power_kw=1500, hashrate_ths=85_000),
    ]
    p = run(*parts, limit_kw=3_000)
    assert p.mining == ["m1", "m2"]


# --- sites of one kind ---------------------------------------------------------------------


def test_a_mining_only_site_mines_and_curtails_and_admits_no_lease() -> None:
    parts = [*asics(3), gpu_nodes(1), lease("l")]
    p = run(*parts, limit_kw=2_500, site_kw={"without": ("gpu",)})
    assert p.gpus_total == 0 and p.committed.gpu_kw == 0  # a gpu-role node is no GPU node
    assert len(p.mining) == 2 and names(p, Kind.CURTAIL) == ["a02"]
    assert phases(p) == {"l": "Pending"} and reasons(p) == {"l": "InsufficientGPUs"}
    assert p.hold is None and p.mining_revenue_usd_per_hour > 0


def test_a_gpu_only_site_runs_leases_and_mines_nothing() -> None:
    parts = [*asics(2), gpu_nodes(1), lease("l")]
    p = run(*parts, limit_kw=100, site_kw={"without": ("asic",)})
    assert sum(p.controllers.values()) == 0 and p.committed.mining_kw == 0
    assert phases(p) == {"l": "Admitted"} and names(p, Kind.CREATE_POD) == ["l-0"]
    assert p.mining == [] and p.mining_revenue_usd_per_hour == 0
    assert p.hold is None


# --- people, suspension, holds -------------------------------------------------------------


def test_a_node_cordoned_by_a_person_is_left_alone() -> None:
    parts = [*asic("held", cordoned=True), *asics(2)]
    p = run(*parts, limit_kw=1_500)
    assert "held" not in names(p, Kind.CURTAIL) + names(p, Kind.RESUME)
    assert p.held_nodes == ["held"]
    # Its miners still run: 1,000 kW that no command can free. One more must go.
    assert len(names(p, Kind.CURTAIL)) == 2


def test_a_held_node_without_miners_is_not_free_power_for_resumes() -> None:
    p = run(
        *asic("held", cordoned=True, mining=False),
        *asic("c", curtailed_at=T0 - timedelta(hours=1), mining=False),
        limit_kw=1_000,
    )
    assert names(p, Kind.RESUME) == ["c"]
    assert p.planned_kw == 1_000


def test_no_budget_holds_the_site() -> None:
    p = plan(
        snapshot(
            site(),
            *asics(2, curtailed_at=T0 - timedelta(hours=1), mining=False),
            gpu_nodes(1),
            lease("l"),
        ),
        T0,
    )
    assert p.hold_reason and "PowerBudget" in p.hold_reason
    assert p.commands_of(Kind.RESUME) == [] and p.commands_of(Kind.CREATE_POD) == []
    assert phases(p) == {"l": "Pending"}


def test_no_budget_still_removes_the_pods_of_an_ended_lease() -> None:
    ended = lease("ended", end=T0 - timedelta(minutes=1))
    p = plan(snapshot(site(), gpu_nodes(1), *running(ended, ["g00"])), T0)
    assert [c.name for c in p.schedule.now] == ["ended-0"]


def test_a_suspended_site_gets_no_commands() -> None:
    p = run(*asics(3), limit_kw=1_000, site_kw={"suspend": True})
    assert p.commands == [] and p.schedule.now == ()


def test_an_invalid_site_gets_no_plan() -> None:
    bad = site()
    bad["spec"]["asic"]["powerKW"] = -5
    p = plan(snapshot(bad, budget()), T0)
    assert p.commands == [] and "invalid" in (p.hold_reason or "")


# --- make before break ---------------------------------------------------------------------


def test_lease_pods_wait_until_the_curtailment_is_confirmed() -> None:
    objects = flatten(site(), budget(limit_kw=2_100), asics(3), gpu_nodes(1), lease("l", gpus=8))
    p = plan(snapshot(*objects), T0)
    curtail = p.commands_of(Kind.CURTAIL)
    assert [c.kind for c in p.schedule.now] == [Kind.CURTAIL]
    assert {c.kind for c in p.schedule.deferred} == {Kind.CREATE_POD}
    # Unconfirmed (miner pods still there): the pods still wait.
    objects = apply(objects, p.schedule.now, T0, SITE, miner_labels={"app": "miner"}, confirm=False)
    p = plan(snapshot(*objects), T0 + timedelta(seconds=5))
    assert p.schedule.now == () and {c.kind for c in p.schedule.deferred} == {Kind.CREATE_POD}
    # Confirmed: now they go.
    objects = apply(objects, curtail, T0, SITE, miner_labels={"app": "miner"}, confirm=True)
    p = plan(snapshot(*objects), T0 + timedelta(seconds=10))
    assert {c.kind for c in p.schedule.now} == {Kind.CREATE_POD}
    assert p.committed_kw + sum(c.delta_kw for c in p.schedule.now) <= 2_100


def test_a_settled_site_plans_nothing() -> None:
    objects = flatten(site(), budget(limit_kw=2_100), asics(3), gpu_nodes(1), lease("l", gpus=8))
    at = T0
    for _ in range(5):
        p = plan(snapshot(*objects), at)
        objects = apply(objects, p.schedule.now, at, SITE, miner_labels={"app": "miner"})
        at += timedelta(seconds=30)
    p = plan(snapshot(*objects), at)
    assert p.commands == []
    assert phases(p) == {"l": "Running"}
