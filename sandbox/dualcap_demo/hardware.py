"""The demo site's hardware: fake LuxOS miners behind every ASIC controller, a real dualcap
agent driving each block, and a SunSpec site meter.

Every controller node gets a block of fake miners (dualcap_sandbox.luxos: one loopback
address 127.0.x.y each, the firmware's API on port 4028, spoken to by the real pyasic-rs),
each at its share of the controller's modelled draw, so that a block measures what the
operator models for it, give or take the firmware's ±1 %. A real agent (dualcap.agent) per
controller reads its Node's curtailment marks, sleeps and wakes the block through the
firmware and reports what the miners measure in the node's MinerBlock; the agents run in a
thread and event loop of their own, as they would on their own nodes. The site meter
(dualcap_sandbox.sunspec: Modbus TCP on 127.0.0.1) reads what the site really draws: the
fakes' true draw and the GPU nodes' modelled draw at the site's PUE, the facility's fixed
draw, and a cooling load that nobody declared - the unmodelled load the operator finds.

The firmware's timing and the agents' interval are wall-clock seconds, while the operator
judges the age of a report (and of a meter reading) on the site clock, which runs ``speed``
times faster: the Site's staleAfterSeconds are set from the speed, and the agents stamp
their reports with the site clock (``ReportClock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PER_BLOCK = 4  # fake miners per controller: each stands for a quarter of a container
SLEEP_SECONDS = 0.4  # the fakes' firmware, wall clock: falling asleep ...
# ... and waking (the planner counts a block that does not hash at its nameplate yet at
# its full share, so a report caught half-way through a wake costs nothing in safety).
WAKE_SECONDS = 1.0
INTERVAL = 1.0  # the agents' interval, wall clock
FAST = 0.25  # and how often they look while commands are taking effect
MINER_TIMEOUT = 2.0  # the agents' bound on one call to a miner
# No two containers hash alike: a block's miners hash at one of these shares of their
# controller's nameplate hashrate (in turn, so every five blocks average to it).
HASHRATE_SPREAD = (1.04, 1.02, 1.0, 0.98, 0.96)
COOLING_KW = 300.0  # what the meter reads beyond the model: cooling nobody declared
METER_POLL_SECONDS = 1.0  # wall clock
# A report (or a meter reading) counts as stale after this much wall time, at the speed
# of the site clock: a few of the agents' intervals (and meter polls), with room for a
# loaded machine.
STALE_WALL_SECONDS = 6.0


def stale_after_seconds(speed: float) -> int:
    """The Site's staleAfterSeconds (site clock) at ``speed`` (within the Site's bounds)."""
    return int(min(3600, max(5, math.ceil(speed * STALE_WALL_SECONDS))))


class ReportClock:
    """The agents' clock: the site clock - or, while the demo cuts the site clock ahead,
    the moment it cuts to, so that every MinerBlock is fresh when the site clock is there
    (a cut of hours would otherwise leave every report hours old until the next one)."""

    def __init__(self, site: Callable[[], datetime]):
        self.site = site
        self.ahead: datetime | None = None

    def __call__(self) -> datetime:
        now, ahead = self.site(), self.ahead
        return ahead if ahead is not None and ahead > now else now


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _float(annotations: dict[str, Any], key: str, default: Any) -> float:
    value = annotations.get(key)
    return float(value if value is not None else default)


def open_fleet(count: int) -> Any:
    """``count`` fake miners on 127.0.x.y: a free range of x, below the tests' ranges."""
    from dualcap_sandbox.luxos import FakeFleet

    for _attempt in range(20):
        fleet = FakeFleet(
            count,
            sleep_seconds=SLEEP_SECONDS,
            wake_seconds=WAKE_SECONDS,
            base=f"127.0.{random.randint(16, 240)}.0",
        )
        try:
            return fleet.__enter__()
        except OSError:
            with contextlib.suppress(Exception):
                fleet.__exit__()
    raise RuntimeError("no free range of loopback addresses for the demo's miners")


class Agents:
    """One dualcap agent per controller, in a thread and event loop of their own."""

    def __init__(self, kubeconfig: Path, nodes: list[str], clock: Callable[[], datetime]):
        self.kubeconfig, self.nodes, self.clock = kubeconfig, nodes, clock
        self.agents: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="dualcap-demo-agents", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or self._failed is not None:
            raise RuntimeError(f"the agents did not start: {self._failed!r}")

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        # Every agent's Kube blocks a worker thread on its Node watch and one on a request:
        # the default executor (a handful of threads on 2 cores) would queue them.
        loop.set_default_executor(
            ThreadPoolExecutor(2 * len(self.nodes) + 8, thread_name_prefix="demo-agent")
        )
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as err:
            self._failed = err
            ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        from dualcap.agent.agent import Agent
        from dualcap.agent.credentials import Credentials
        from dualcap.agent.kube import Kube, load_connection
        from dualcap.agent.miners import Driver
        from dualcap.agent.settings import AgentSettings

        stop = self._stop = asyncio.Event()
        conn = load_connection(str(self.kubeconfig))
        kubes = [Kube(conn) for _ in self.nodes]
        self.agents = [
            Agent(
                kube,
                name,
                Driver(Credentials(None), timeout=MINER_TIMEOUT, concurrency=16),
                AgentSettings(interval=INTERVAL, fast=FAST, overlap_seconds=60.0, clock=self.clock),
            )
            for kube, name in zip(kubes, self.nodes, strict=True)
        ]
        tasks = [asyncio.create_task(agent.run(stop)) for agent in self.agents]
        ready.set()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for kube in kubes:
                await kube.close()

    def wake(self) -> None:
        """Every agent looks at its block now (and reports, when its report is due)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for agent in self.agents:
                loop.call_soon_threadsafe(agent.wake.set)

    def stop(self, timeout: float = 20.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class Hardware:
    """The fakes, the meter and the agents of the demo's site: ``start``, ``start_agents``,
    ``stop``. ``declared_kw`` is what the demo's model says the rest of the site draws (the
    GPU nodes at the site's PUE, the facility's fixed draw); the meter adds it up with the
    fakes' true draw and the cooling."""

    def __init__(self, site: str, clock: Callable[[], datetime], speed: float):
        self.site, self.speed = site, speed
        self.report_clock = ReportClock(clock)
        self.fleet: Any = None
        self.meter: Any = None
        self.agents: Agents | None = None
        self.blocks: dict[str, list[str]] = {}  # controller -> its miners' addresses
        self.pue = 1.0
        self.declared_kw = 0.0

    # --- the site's draw, as the meter reads it -------------------------------------------
    def mining_it_kw(self) -> float:
        """What the fakes really draw (IT kW), not what their firmware reports."""
        return float(self.fleet.true_watts()) / 1000.0 if self.fleet is not None else 0.0

    def phases(self) -> dict[str, int]:
        """The fakes by phase, as they really are: mining, waking, falling-asleep, asleep."""
        return dict(self.fleet.phases()) if self.fleet is not None else {}

    def metered_kw(self) -> float:
        return self.pue * self.mining_it_kw() + self.declared_kw + COOLING_KW

    async def start(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Start the fakes and the meter; returns ``objects`` as the demo loads them: the
        Site with curtailment MinerAgent and its meter, every controller naming its block
        of miners, and no mining DaemonSet (the agents are in-process)."""
        from dualcap.api.names import (
            HASHRATE_THS_ANNOTATION,
            MINERS_ANNOTATION,
            POWER_KW_ANNOTATION,
            ROLE_LABEL,
            SITE_LABEL,
        )
        from dualcap_sandbox.sunspec import SunSpecMeterPeer

        objects = copy.deepcopy(objects)
        site = next(
            o for o in objects if o.get("kind") == "Site" and o["metadata"]["name"] == self.site
        )
        spec = site["spec"]
        asic = spec["asic"]
        self.pue = float((spec.get("facility") or {}).get("pue", 1.0))
        controllers = [
            o
            for o in objects
            if o.get("kind") == "Node"
            and _labels(o).get(SITE_LABEL) == self.site
            and _labels(o).get(ROLE_LABEL) == "asic"
        ]
        self.fleet = await asyncio.to_thread(open_fleet, len(controllers) * PER_BLOCK)
        addresses = self.fleet.addresses
        for i, node in enumerate(controllers):
            name = node["metadata"]["name"]
            block = addresses[i * PER_BLOCK : (i + 1) * PER_BLOCK]
            self.blocks[name] = block
            annotations = node["metadata"].setdefault("annotations", {})
            kw = _float(annotations, POWER_KW_ANNOTATION, asic["powerKW"])
            ths = _float(annotations, HASHRATE_THS_ANNOTATION, asic["hashrateTHs"])
            share = HASHRATE_SPREAD[i % len(HASHRATE_SPREAD)] / PER_BLOCK
            for ip in block:
                miner = self.fleet.miners[ip]
                miner.nominal_watts, miner.nominal_ths = kw * 1000.0 / PER_BLOCK, ths * share
                miner.force("mining")
            annotations[MINERS_ANNOTATION] = self.fleet.annotation(block)
        self.meter = await SunSpecMeterPeer(
            reading=lambda: 1000.0 * self.metered_kw(), serial="DEMO-0001"
        ).start()
        stale = stale_after_seconds(self.speed)
        mining_pods = (asic.pop("miningPodSelector", None) or {}).get("matchLabels") or {}
        asic["curtailment"] = "MinerAgent"
        asic["staleAfterSeconds"] = stale
        spec["meter"] = {
            "sunspec": {"host": "127.0.0.1", "port": self.meter.port},
            "pollSeconds": METER_POLL_SECONDS,
            "timeoutSeconds": METER_POLL_SECONDS,
            "staleAfterSeconds": stale,
            # the cooling (300 kW) is told as unmodelled load, not as a disagreement
            "disagreementKW": 2 * COOLING_KW,
        }

        def mining_daemonset(obj: dict[str, Any]) -> bool:
            if obj.get("kind") != "DaemonSet" or not mining_pods:
                return False
            template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
            labels = template.get("labels") or {}
            return all(labels.get(k) == v for k, v in mining_pods.items())

        return [o for o in objects if not mining_daemonset(o)]

    async def start_agents(self, kubeconfig: Path, sb: Any, timeout: float = 10.0) -> bool:
        """Start the agents; True once every block has reported (within ``timeout``)."""
        self.agents = Agents(kubeconfig, list(self.blocks), self.report_clock)
        await asyncio.to_thread(self.agents.start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        never = datetime.min.replace(tzinfo=UTC)
        while loop.time() < deadline:
            if all(at > never for at in self.observed(sb).values()):
                return True
            await asyncio.sleep(0.05)
        return False

    async def report_ahead(
        self,
        to: datetime,
        sb: Any,
        seen: Callable[[str], datetime | None] = lambda _: None,
        timeout: float = 5.0,
    ) -> bool:
        """Before the site clock cuts to ``to``: the agents stamp ``to`` on their next
        reports, and are woken to write them; True once every MinerBlock carries it, and
        ``seen`` (when the operator last saw a block observed) says it has them too."""
        self.report_clock.ahead = to
        if self.agents is None:
            return True
        self.agents.wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            stored = self.observed(sb)
            if all(at >= to and (seen(n) or at) >= to for n, at in stored.items()):
                return True
            await asyncio.sleep(0.05)
        return False

    def observed(self, sb: Any) -> dict[str, datetime]:
        """When each block's MinerBlock was observed (a block not reporting: never)."""
        from dualcap.api.common import parse_rfc3339

        out = dict.fromkeys(self.blocks, datetime.min.replace(tzinfo=UTC))
        for block in sb.store.list_objects(sb.store.rt("dualcap.io", "minerblocks")):
            name = block["metadata"]["name"]
            at = (block.get("status") or {}).get("observedAt")
            if name in out and at:
                out[name] = parse_rfc3339(at)
        return out

    async def stop(self) -> None:
        if self.agents is not None:
            await asyncio.to_thread(self.agents.stop)
            self.agents = None
        if self.meter is not None:
            await self.meter.stop()
            self.meter = None
        if self.fleet is not None:
            await asyncio.to_thread(self.fleet.__exit__)
            self.fleet = None
