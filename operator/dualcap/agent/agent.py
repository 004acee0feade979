"""The agent's loop: its Node in, its miners driven, its MinerBlock out.

Level-based: at start, on every change of its Node (a watch) and every interval, the agent
takes the desired state from the Node's curtailment marks (marked: every miner sleeps;
unmarked: every miner mines), measures every miner, re-sends the command to those that
have not complied, and writes the block's MinerBlock status. While commands are taking
effect it looks again every half second, so the report follows the firmware, not the interval.

A change of the marks is acted on at once: a look in progress is cut short, and every
miner last measured out of the new desired state is commanded before anything is measured
again. The quick looks that follow measure only the miners not yet seen in the desired
state since the change (the rest keep that reading until the next look at the interval):
on a loaded controller the miners still changing are what the report waits for.

It never wakes a miner while it cannot see its Node: with the API unreachable (or the Node
gone) it keeps the last desired state and sends sleep only. Bad input - a malformed or
oversized `dualcap.io/miners`, a miner named by two nodes, a device asic-rs does not know,
refused commands, a miner that never answers - is reported on the MinerBlock's conditions
and in an Event; the rest of the block keeps working and the loop never dies of it.

The pieces: `settings.AgentSettings` (how it runs), `node.NodeView` (what it knows of its
Node), `miners.Driver` (the miners), `status` (what its report says), `reporter.Reporter`
(what it writes); the `Agent` paces the commands and runs the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dualcap.agent import status
from dualcap.agent.kube import Kube
from dualcap.agent.miners import Desired, Driver
from dualcap.agent.node import NodeView
from dualcap.agent.reporter import Reporter
from dualcap.agent.settings import AgentSettings

log = logging.getLogger("dualcap.agent")


class Agent:
    def __init__(
        self, kube: Kube, node_name: str, driver: Driver, settings: AgentSettings | None = None
    ):
        self.settings = settings or AgentSettings()
        self.driver = driver
        self.wake = asyncio.Event()
        self.changed = asyncio.Event()  # the Node's marks now say otherwise than `desired`
        self.node = NodeView(kube, node_name, self.settings, self.wake, self.changed)
        self.reporter = Reporter(kube, node_name, self.settings)
        self.cycles = 0
        self.last_summary: status.Summary | None = None
        self._commanded_at = -1e9  # the last new command sent (monotonic)
        self._acted: Desired | None = None  # the desired state the miners were last driven to
        self._acted_at = -1e9  # since when (monotonic)

    async def cycle(self) -> bool:
        """One convergence step; True while commands are still taking effect."""
        self.cycles += 1
        node, interval = self.node, self.settings.interval
        await node.look_if_due()
        if node.body is None:
            return False  # never seen: nothing to drive, and nothing to decide on
        if node.read():
            self.driver.forget(set(node.addresses))
        if node.overlaps_due():
            await node.look_for_overlaps()
        if node.desired is not None and node.desired != self._acted:
            # a change of mind: command the miners now, from what they last measured,
            # and look at them once they have had a moment to act on it
            desired, self._acted_at = node.desired, time.monotonic()
            commanded = await self.driver.act(
                node.addresses,
                desired,
                allow_resume=node.visible,
                contested=set(node.contested),
            )
            self._acted = desired  # not before: cut short, the next cycle acts on the rest
            log.debug("desired %s: %d miners commanded at once", node.desired, commanded)
            if commanded:
                self._commanded_at = time.monotonic()
                return True
        at = self.settings.clock()
        started = time.monotonic()
        sent, sent_all = self.driver.commands_new, self.driver.commands_sent
        readings = await self.driver.step(
            node.addresses,
            node.desired,
            allow_resume=node.visible,
            contested=set(node.contested),
            resend_after=interval,
            reuse_since=self._acted_at,
            reuse_for=interval * 0.8,
        )
        if self.driver.commands_new != sent:  # re-sends do not prolong the quick looks
            self._commanded_at = time.monotonic()
        summary = status.Summary.of(readings)
        log.debug(
            "cycle %d (%s): %d miners in %.2fs, %d commands (%d new): %s",
            self.cycles,
            node.desired,
            len(readings),
            time.monotonic() - started,
            self.driver.commands_sent - sent_all,
            self.driver.commands_new - sent,
            summary,
        )
        self.last_summary = summary
        problems = status.problems(node, readings)
        wanted = status.conditions(readings, problems, node.desired)
        await self.reporter.report(summary, wanted, problems, at)
        reachable_off = [
            r
            for r in readings
            if r.state != "unreachable"
            and node.desired is not None
            and r.sleeping != (node.desired == "sleep")
            and (node.desired == "sleep" or node.visible)
        ]
        # off target, or drawing but not hashing yet (waking, still falling asleep): look
        # again soon - for a while after a command, so that a miner that refuses or never
        # hashes is looked at every interval, not every second forever
        ramping = any(r.state == "mining" and r.ths == 0.0 for r in readings)
        recent = time.monotonic() - self._commanded_at < self.settings.transition_seconds
        return (bool(reachable_off) or ramping) and recent

    async def _one_cycle(self) -> bool:
        """A cycle, cut short when the Node's marks change under it: the miners are then
        commanded at once rather than after the rest of a look at the old state."""
        cycle = asyncio.create_task(self.cycle())
        changed = asyncio.create_task(self.changed.wait())
        try:
            await asyncio.wait({cycle, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            if not cycle.done():
                cycle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cycle
        if cycle.cancelled():
            log.debug("node %s: marks changed during a cycle: starting again", self.node.name)
            return True
        try:
            return cycle.result()
        except Exception:  # one bad cycle must not end the agent
            log.exception("cycle failed")
            return False

    async def run(self, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self.node.watch())
        try:
            while not stop.is_set():
                self.wake.clear()  # a Node change during the cycle wakes the next one
                self.changed.clear()
                pending = await self._one_cycle()
                waits = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
                _, rest = await asyncio.wait(
                    waits,
                    timeout=self.settings.fast if pending else self.settings.interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in rest:
                    task.cancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
