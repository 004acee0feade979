"""The operator killed (SIGKILL) in the middle of a curtail batch and started again.

Here the operator is a real `dualcap run` process on the wall clock, so that a kill is a
kill: nothing of it survives to finish the batch, exactly as after a crash or an OOM.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dualcap.api.common import CURTAILED_AT_ANNOTATION, CURTAILED_TAINT_KEY
from dualcap_sandbox.app import Sandbox
from tests.operator.conftest import SITE, Monitor, operator_process
from tests.operator.test_operator import curtailed, lease_pods, nodes, set_event
from tests.sandbox.conftest import wait_for


def site_status(sb: Sandbox) -> dict[str, Any]:
    obj = sb.store.get(sb.store.rt("dualcap.io", "sites"), None, SITE)  # type: ignore[arg-type]
    return (obj or {}).get("status") or {}


def budget_generation(sb: Sandbox) -> int:
    obj = sb.store.get(sb.store.rt("dualcap.io", "powerbudgets"), None, SITE)  # type: ignore[arg-type]
    return int(obj["metadata"]["generation"])  # type: ignore[index]


async def settled(sb: Sandbox, limit_below: float) -> bool:
    status = site_status(sb)
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
    return ready and status.get("limitKW", limit_below) < limit_below


@pytest.fixture
def wall() -> Any:
    return lambda: datetime.now(UTC)


async def test_killed_mid_batch_it_converges_with_no_duplicates_or_orphans(
    sandbox: Sandbox, wall: Any, tmp_path: Path
) -> None:
    from dualcap.manifests import load_objects
    from tests.conftest import CRDS, wall_clock_examples

    sb = sandbox
    sb.load_objects(load_objects(str(CRDS)))
    sb.load_objects(wall_clock_examples())
    monitor = Monitor(sb, wall)
    sb.store.listeners.append(monitor.check)
    log = tmp_path / "operator.log"
    op = operator_process(None, log)
    try:
        await wait_for(lambda: settled(sb, 1e9), timeout=60, what="the site to settle")
        pods_before = Counter(p["metadata"]["name"] for p in lease_pods(sb))
        assert pods_before and max(pods_before.values()) == 1

        # A limit cut that curtails most controllers; half of the node writes are slow,
        # and the operator is killed once the fast half has landed.
        sb.faults.add(method="PATCH", path=r"/api/v1/nodes/asic-c(1|2)", code=0, times=-1,
                      latency_seconds=3.0)  # fmt: skip
        await set_event(sb, 15_000, wall)

        async def some_landed() -> bool:
            return len(curtailed(sb)) >= 3

        await wait_for(some_landed, timeout=30, what="the first curtails")
        op.send_signal(signal.SIGKILL)
        op.wait(10)
        half = curtailed(sb)
        sb.faults.clear()
        assert len(half) > 0, half

        op = operator_process(None, log)
        await wait_for(lambda: settled(sb, 15_001), timeout=60, what="convergence after restart")
        status = site_status(sb)
        assert status["committedKW"] <= 15_000 * 0.99
        assert status.get("observedGeneration") is not None

        # No orphaned marks: taint, cordon and annotation go together, and only where
        # dualcap curtailed; nothing curtailed twice; the count agrees with the status.
        final = curtailed(sb)
        assert half <= final and len(half) < len(final), (half, final)
        for name, node in nodes(sb).items():
            tainted = name in final
            annotated = CURTAILED_AT_ANNOTATION in (node["metadata"].get("annotations") or {})
            cordoned = bool((node.get("spec") or {}).get("unschedulable"))
            taints = [
                t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") == CURTAILED_TAINT_KEY
            ]  # fmt: skip
            assert tainted == annotated == cordoned, name
            assert len(taints) <= 1, name
        assert status["controllers"]["curtailed"] + status["controllers"].get("curtailing", 0) == len(final)  # fmt: skip
        # No duplicate lease pods: the same pods as before, each once.
        after = Counter(p["metadata"]["name"] for p in lease_pods(sb))
        assert after == pods_before
        assert monitor.violations == [], monitor.violations[:3]
    finally:
        op.send_signal(signal.SIGKILL)
        op.wait(10)
        if log.exists() and os.environ.get("DUALCAP_TEST_LOGS"):
            print(log.read_text())
