"""The real operator (kopf, in-process) against a fresh sandbox, with a clock the test
drives, and a monitor that checks the envelope invariant on every change of the cluster."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dualcap.api.site import ControllerState
from dualcap.cluster.operator import Operator
from dualcap.cluster.settings import OperatorSettings
from dualcap.handlers.run import OperatorThread
from dualcap.planning import build_fleet
from dualcap.planning.plan import site_envelope
from dualcap_sandbox.app import Sandbox
from tests.conftest import CRDS, EXAMPLES, wall_clock_examples
from tests.sandbox.conftest import wait_for

NIGHT = datetime(2026, 7, 14, 11, 0, tzinfo=UTC)  # 06:00 in Texas: cheap energy, no window
SITE = "tx-rockdale-1"
WRITES = ("create", "update", "patch", "delete", "deletecollection")


class Clock:
    def __init__(self, now: datetime = NIGHT):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def cluster_objects(sb: Sandbox) -> list[dict[str, Any]]:
    out = []
    for rt in sb.store.types():
        if rt.kind in ("Site", "PowerBudget", "ComputeLease", "Node", "Pod"):
            out.extend(sb.store.list_objects(rt))
    return out


@dataclass
class Monitor:
    """Checks, on every write to the cluster, that committed draw is above the limit only
    by what curtailments already issued will free (docs/architecture.md §4, make before break), and never worse than it
    was unless the limit itself dropped."""

    sb: Sandbox
    clock: Clock
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    # whether the write being checked is the operator's: a node added with its miners
    # running, or a node whose status goes stale, raises the draw without the operator
    blame: Callable[[], bool] | None = None
    # what the check reads of the cluster (with curtailment MinerAgent: the MinerBlocks too)
    objects: Callable[[Sandbox], list[dict[str, Any]]] = cluster_objects

    def check(self, *_: Any) -> None:
        self.samples += 1
        fleet = build_fleet(self.objects(self.sb), self.clock())
        for name, snap in fleet.sites.items():
            envelope = site_envelope(snap, self.clock())
            if snap.site is None or envelope is None or snap.site.metadata.deletion_timestamp:
                continue  # a Site being deleted is no longer kept in its envelope (onDelete)
            limit = envelope.envelope.limit_kw
            pue = snap.pue
            committed = snap.fixed_kw + pue * (
                sum(c.committed_it_kw for c in snap.controllers)
                + sum(n.idle_kw + n.foreign_gpus * n.per_gpu_kw for n in snap.gpu_nodes.values())
                + sum(
                    p.gpus * snap.gpu_nodes[p.node].per_gpu_kw
                    if p.node in snap.gpu_nodes
                    else p.gpus * snap.max_per_gpu_kw
                    for lease in snap.leases
                    for p in lease.pods
                    if not p.terminal
                )
            )
            in_flight = pue * sum(
                c.power_kw for c in snap.controllers if c.state is ControllerState.CURTAILING
            )
            excess = committed - in_flight - limit
            before = self._last.get(name)
            if (
                excess > 1e-6
                and before is not None
                and excess > before[0] + 1e-6
                and limit >= before[1] - 1e-6
                and (self.blame is None or self.blame())
            ):
                self.violations.append(
                    f"{name}: committed {committed:,.1f} kW, in flight {in_flight:,.1f}, limit {limit:,.1f}: worse than {before[0]:,.1f}"
                )
            self._last[name] = (excess, limit)


@dataclass
class Running:
    """The operator in its own thread and event loop, as it would be in its own process,
    with the test's clock and the sandbox it runs against."""

    sb: Sandbox
    settings: OperatorSettings  # its clock is the test's
    clock: Clock
    monitor: Monitor
    thread: OperatorThread | None = None
    state: Operator = field(init=False)

    def __post_init__(self) -> None:
        self.state = self._operator()

    def _operator(self) -> Operator:
        return Operator(replace(self.settings, clock=self.clock))

    async def start(self) -> None:
        self.state = self._operator()  # a new one each time, as a new process would be
        self.thread = OperatorThread(self.state)
        await asyncio.to_thread(self.thread.start)

    async def shutdown(self) -> None:
        if self.thread:
            await asyncio.to_thread(self.thread.stop)
            self.thread = None

    def _observed(self, site: str) -> bool:
        """The site's budget and leases are all observed at their latest generation."""
        for plural in ("powerbudgets", "computeleases"):
            rt = self.sb.store.rt("dualcap.io", plural)
            for obj in self.sb.store.list_objects(rt):  # type: ignore[arg-type]
                if obj["spec"].get("siteRef") != site:
                    continue
                if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"][
                    "generation"
                ]:
                    return False
        return True

    async def reconciled(self, n: int = 2, site: str = SITE, timeout: float = 20.0) -> None:
        """Wakes the site and waits until ``n`` more reconciles have run (the first may have
        begun before the caller's change)."""
        mark = self.state.reconciles + n

        async def done() -> bool:
            self.state.wake(site)
            return self.state.reconciles >= mark

        await wait_for(done, timeout=timeout, interval=0.02, what=f"{n} more reconciles")

    def writes(self) -> int:
        return sum(n for (verb, *_), n in self.sb.api.audit.requests.items() if verb in WRITES)

    async def settle(self, timeout: float = 20.0, site: str = SITE) -> dict[str, Any]:
        """Until the Site is Ready (nothing in flight); returns its status."""
        deadline = asyncio.get_running_loop().time() + timeout
        rt = self.sb.store.rt("dualcap.io", "sites")
        mark = self.state.reconciles + 2  # reconciles that began after the caller's change
        while True:
            self.state.wake(site)
            obj = self.sb.store.get(rt, None, site)  # type: ignore[arg-type]
            status = (obj or {}).get("status") or {}
            ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
            fresh = self.state.reconciles >= mark and self._observed(site)
            if (
                fresh
                and ready
                and ready[0]["status"] == "True"
                and status.get("observedGeneration") == obj["metadata"]["generation"]
            ):  # type: ignore[index]
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"site {site} did not settle in {timeout}s: {ready}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def sandbox(tmp_path, monkeypatch) -> AsyncIterator[Sandbox]:
    from dualcap_sandbox.cluster import Behaviour

    sb = Sandbox(behaviour=Behaviour(pod_termination_seconds=0.1), bookmark_seconds=1.0)
    await sb.start()
    kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def miners_started(sandbox: Sandbox, timeout: float = 10.0) -> None:
    """Until the miner DaemonSet runs a pod on every ASIC controller (the site starts
    mining, as a real one would)."""

    async def started() -> bool:
        objects = cluster_objects(sandbox)
        asics = {
            o["metadata"]["name"]
            for o in objects
            if o["kind"] == "Node"
            and (o["metadata"].get("labels") or {}).get("dualcap.io/role") == "asic"
        }
        running = {
            o["spec"].get("nodeName")
            for o in objects
            if o["kind"] == "Pod"
            and (o["metadata"].get("labels") or {}).get("app") == "miner-agent"
            and (o.get("status") or {}).get("phase") == "Running"
        }
        return bool(asics) and asics <= running

    await wait_for(started, timeout=timeout, what="the DaemonSet's miners running")


@pytest.fixture
async def site(sandbox: Sandbox, clock: Clock) -> AsyncIterator[Running]:
    """The example site in the sandbox, its miners running, and the operator on it."""
    from dualcap.manifests import load_objects

    sandbox.load_objects(load_objects(str(CRDS)))
    sandbox.load_objects(load_objects(str(EXAMPLES)))
    monitor = Monitor(sandbox, clock)
    await miners_started(sandbox)
    sandbox.store.listeners.append(monitor.check)
    running = Running(
        sandbox, OperatorSettings(safety_period=timedelta(seconds=0.3)), clock, monitor
    )
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown()
        assert monitor.violations == [], monitor.violations[:3]


class WallClock:
    """The wall clock, for tests whose peers (Prometheus, a VTN) keep real time."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
async def wall_site(sandbox: Sandbox) -> AsyncIterator[Running]:
    """The example site and the operator on the wall clock (no envelope monitor: the
    peers' own timing decides when the site is inside)."""
    from dualcap.manifests import load_objects

    sandbox.load_objects(load_objects(str(CRDS)))
    sandbox.load_objects(wall_clock_examples())
    await miners_started(sandbox)
    wall = WallClock()
    monitor = Monitor(sandbox, wall)  # type: ignore[arg-type]
    settings = OperatorSettings(safety_period=timedelta(seconds=0.3))
    running = Running(sandbox, settings, wall, monitor)  # type: ignore[arg-type]
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown()


def operator_process(kubeconfig: str | None, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A real `dualcap run` process (a kill is a kill), its output appended to ``log``."""
    env = dict(os.environ) if kubeconfig is None else dict(os.environ, KUBECONFIG=kubeconfig)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dualcap", "run", "--liveness", "none", "--metrics-port", "0",
             "--log-format", "plain", *args],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
