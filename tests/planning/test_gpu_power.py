"""GPU nodes' measured power in the accounting: the measurement replaces the idle power and
the foreign GPUs; lease pods keep their nameplate; stale readings count as none."""

from __future__ import annotations

from datetime import timedelta

from dualcap.planning import plan
from dualcap.planning.entities import GpuPowerState
from tests.planning.builders import T0, budget, gpu_node, site, snapshot

NODE = gpu_node("g1", gpus=8, annotations={"dualcap.io/idle-power-kw": "2.0"})


def measured(state: GpuPowerState):
    return snapshot(site(), budget(), NODE, gpu_power=state)


def test_a_fresh_reading_replaces_the_idle_power() -> None:
    modelled = plan(snapshot(site(), budget(), NODE), T0).committed.gpu_kw
    snap = measured(GpuPowerState({"g1": (0.3, T0)}, stale_after_seconds=30))
    measured_kw = plan(snap, T0).committed.gpu_kw
    node = snap.gpu_nodes["g1"]
    assert node.measured_baseline_kw == 0.3 and measured_kw < modelled
    assert snap.gpu_unreported == []
    # the plan wakes when the reading goes stale, to count the node as modelled again
    assert plan(snap, T0).next_wakeup == T0 + timedelta(seconds=30)


def test_a_stale_reading_counts_as_none() -> None:
    modelled = plan(snapshot(site(), budget(), NODE), T0).committed.gpu_kw
    old = T0 - timedelta(seconds=31)
    snap = measured(GpuPowerState({"g1": (0.3, old)}, stale_after_seconds=30))
    assert plan(snap, T0).committed.gpu_kw == modelled and snap.gpu_unreported == ["g1"]


def test_a_burst_above_the_nameplate_counts_higher() -> None:
    modelled = plan(snapshot(site(), budget(), NODE), T0).committed.gpu_kw
    snap = measured(GpuPowerState({"g1": (50.0, T0)}, stale_after_seconds=30))
    assert plan(snap, T0).committed.gpu_kw > modelled
