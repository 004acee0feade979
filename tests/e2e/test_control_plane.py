"""The local control plane's own promise: a control loop that exits is started again, as
the kubelet restarts a static pod. kube-scheduler exits by design when it judges its
cache corrupted (it met that after a watch re-listed across an etcd compaction) and
counts on exactly this; without it, the cluster stops scheduling for the rest of the run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.realcluster.launcher import ControlPlane

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["kube-scheduler", "kube-controller-manager"])
def test_a_control_loop_that_dies_is_started_again(local: ControlPlane, name: str) -> None:
    comp = local.components[name]
    assert comp.proc is not None
    before = local.restarts.get(name, 0)
    old_pid = comp.proc.pid
    os.killpg(old_pid, signal.SIGKILL)
    port = "scheduler" if name == "kube-scheduler" else "controller_manager"
    healthy = local._component_healthy(port)
    deadline = time.monotonic() + 60
    while not (comp.proc is not None and comp.proc.pid != old_pid and healthy()):
        assert time.monotonic() < deadline, f"{name} not started again:\n{local.logs()}"
        time.sleep(0.2)
    assert local.restarts[name] == before + 1
    assert f"[launcher] {name} exited with code -9" in comp.log.read_text()
