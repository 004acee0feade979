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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dualcap.agent.kube import Kube
from dualcap.agent.miners import CONTESTED, Desired, Driver, Reading
from dualcap.agent.node import NodeView
from dualcap.agent.settings import AgentSettings
from dualcap.api.names import (
    API_VERSION,
    COMMAND_FAILED,
    CONTESTED_MINERS,
    CONVERGED,
    CONVERGING,
    INVALID_MINERS,
    MINERS_ANNOTATION,
    MINERS_UNREACHABLE,
    NO_MINERS,
    NODE_UNAVAILABLE,
)
from dualcap.api.objects import condition, rfc3339
from dualcap.api.objects import event as event_body

log = logging.getLogger("dualcap.agent")
BLOCKS = "/apis/dualcap.io/v1alpha1/minerblocks"
MERGE = "application/merge-patch+json"


def _list(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class Summary:
    miners: int
    mining: int
    sleeping: int
    unreachable: int
    power_kw: float
    hashrate_ths: float

    @classmethod
    def of(cls, readings: list[Reading]) -> Summary:
        return cls(
            miners=len(readings),
            mining=sum(r.state == "mining" for r in readings),
            sleeping=sum(r.state == "sleeping" for r in readings),
            unreachable=sum(r.state == "unreachable" for r in readings),
            power_kw=round(sum(r.watts or 0.0 for r in readings) / 1000.0, 3),
            hashrate_ths=round(sum(r.ths or 0.0 for r in readings), 1),
        )


class Agent:
    def __init__(
        self, kube: Kube, node_name: str, driver: Driver, settings: AgentSettings | None = None
    ):
        self.settings = settings or AgentSettings()
        self.kube = kube
        self.node_name = node_name
        self.driver = driver
        self.wake = asyncio.Event()
        self.changed = asyncio.Event()  # the Node's marks now say otherwise than `desired`
        self.node = NodeView(kube, node_name, self.settings, self.wake, self.changed)
        self.block: dict[str, Any] | None = None
        self._conditions: dict[str, dict[str, Any]] = {}
        self._written: tuple[Any, ...] | None = None
        self._written_at = -1e9
        self._written_observed: datetime | None = None  # the observedAt last written
        self._events: dict[str, str] = {}  # reason -> last message posted
        self.last_summary: Summary | None = None
        self.cycles = 0
        self._commanded_at = -1e9
        self._acted: Desired | None = None  # the desired state the miners were last driven to
        self._acted_at = -1e9  # since when (monotonic)

    # --- the MinerBlock ---------------------------------------------------------------------------
    async def ensure_block(self) -> bool:
        if self.block is not None:
            return True
        path = f"{BLOCKS}/{self.node_name}"
        reply = await self.kube.request("GET", path)
        if reply.code == 404:
            body = {
                "apiVersion": API_VERSION,
                "kind": "MinerBlock",
                "metadata": {
                    "name": self.node_name,
                    "labels": {"app.kubernetes.io/managed-by": "dualcap-agent"},
                },
                "spec": {"nodeName": self.node_name},
            }
            reply = await self.kube.request("POST", BLOCKS, body)
            if reply.code == 409:
                reply = await self.kube.request("GET", path)
        if reply.ok and isinstance(reply.body, dict):
            self.block = reply.body
            for cond in (reply.body.get("status") or {}).get("conditions") or []:
                self._conditions[cond.get("type")] = cond
            return True
        log.warning("cannot create MinerBlock %s: %s %s", self.node_name, reply.code, reply.message)
        return False

    def _condition(self, type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        generation = ((self.block or {}).get("metadata") or {}).get("generation")
        wanted = (type_, status, reason, message)
        cond = condition(wanted, self._conditions.get(type_), generation, self.settings.clock())
        self._conditions[type_] = cond
        return cond

    def problems(self, readings: list[Reading]) -> dict[str, str]:
        """Reason -> message for what is wrong with the block now."""
        out: dict[str, str] = {}
        if self.node.annotation is None or not self.node.annotation.strip():
            out[NO_MINERS] = f"node {self.node_name} has no {MINERS_ANNOTATION} annotation"
        elif self.node.parsed.errors:
            kept = f"; driving the last valid {len(self.node.addresses)} miners"
            out[INVALID_MINERS] = f"{MINERS_ANNOTATION}: " + "; ".join(self.node.parsed.errors)
            if self.node.parsed.too_many:
                out[INVALID_MINERS] += kept
        contested = sorted(ip for ip in self.node.contested if ip in set(self.node.addresses))
        if contested:
            pairs = [f"{ip} (also {self.node.contested[ip]})" for ip in contested]
            out[CONTESTED_MINERS] = (
                f"{len(contested)} miners are named by another node too, and left alone: "
                + _list(pairs)
            )
        down = [r for r in readings if r.state == "unreachable" and r.problem != CONTESTED]
        if down:
            out[MINERS_UNREACHABLE] = f"{len(down)} miners unreachable: " + _list(
                [f"{r.ip} ({r.problem})" for r in down]
            )
        refused = [r for r in readings if r.state != "unreachable" and r.problem]
        if refused:
            out[COMMAND_FAILED] = f"{len(refused)} miners did not take a command: " + _list(
                [f"{r.ip} ({r.problem})" for r in refused]
            )
        if not self.node.visible:
            out[NODE_UNAVAILABLE] = (
                f"cannot see node {self.node_name}: keeping the last desired state "
                f"({self.node.desired or 'none'}), waking no miner"
            )
        return out

    def conditions(self, readings: list[Reading], problems: dict[str, str]) -> list[dict[str, Any]]:
        off_target = [
            r
            for r in readings
            if r.state != "unreachable" and (r.sleeping != (self.node.desired == "sleep"))
        ]
        stalled = next((r for r in (NO_MINERS, INVALID_MINERS) if r in problems), None)
        converging = bool(off_target) and self.node.desired is not None
        ready_reason = next(
            (
                r
                for r in (NODE_UNAVAILABLE, INVALID_MINERS, NO_MINERS, COMMAND_FAILED)
                if r in problems
            ),
            None,
        )
        if ready_reason is None and converging:
            ready_reason = CONVERGING
        if ready_reason is None and (
            MINERS_UNREACHABLE in problems or CONTESTED_MINERS in problems
        ):
            ready_reason = (
                MINERS_UNREACHABLE if MINERS_UNREACHABLE in problems else CONTESTED_MINERS
            )
        want = {"sleep": "asleep", "mine": "mining", None: "unknown"}[self.node.desired]
        if ready_reason is None:
            ready = self._condition("Ready", True, CONVERGED, f"all {len(readings)} miners {want}")
        elif ready_reason == CONVERGING:
            ready = self._condition(
                "Ready", False, CONVERGING, f"{len(off_target)} miners not yet {want}"
            )
        else:
            ready = self._condition("Ready", False, ready_reason, problems[ready_reason])
        return [
            ready,
            self._condition(
                "Reconciling",
                converging,
                CONVERGING if converging else CONVERGED,
                f"{len(off_target)} miners not yet {want}" if converging else "",
            ),
            self._condition(
                "Stalled",
                stalled is not None,
                stalled or CONVERGED,
                problems.get(stalled or "", ""),
            ),
        ]

    async def write_status(
        self, summary: Summary, conditions: list[dict[str, Any]], at: datetime
    ) -> bool:
        if not await self.ensure_block():
            return False
        assert self.block is not None
        status = {
            "miners": summary.miners,
            "mining": summary.mining,
            "sleeping": summary.sleeping,
            "unreachable": summary.unreachable,
            "powerKW": summary.power_kw,
            "hashrateTHs": summary.hashrate_ths,
            "observedAt": rfc3339(at, micro=True),
            "observedGeneration": (self.block.get("metadata") or {}).get("generation"),
            "conditions": conditions,
        }
        if status["observedGeneration"] is None:
            del status["observedGeneration"]
        reply = await self.kube.request(
            "PATCH", f"{BLOCKS}/{self.node_name}/status", {"status": status}, MERGE
        )
        if reply.code == 404:
            self.block = None  # deleted under us: create it again next time
            return False
        if not reply.ok:
            log.warning("MinerBlock status not written: %s %s", reply.code, reply.message)
            return False
        if isinstance(reply.body, dict):
            self.block = reply.body
        return True

    async def post_events(self, problems: dict[str, str]) -> None:
        for reason, message in problems.items():
            if self._events.get(reason) == message:
                continue
            if self.block is None and not await self.ensure_block():
                return
            assert self.block is not None
            meta = self.block.get("metadata") or {}
            event = event_body(
                {"apiVersion": API_VERSION, "kind": "MinerBlock", "metadata": meta},
                "Warning",
                reason,
                message,
                self.settings.clock(),
                component="dualcap-agent",
                instance=self.node_name,
                namespace=self.settings.events_namespace,
                host=self.node_name,
            )
            reply = await self.kube.request(
                "POST", f"/api/v1/namespaces/{self.settings.events_namespace}/events", event
            )
            if reply.ok:
                self._events[reason] = message
            log.warning("%s: %s", reason, message)
        for reason in [r for r in self._events if r not in problems]:
            del self._events[reason]  # resolved: report it again if it comes back

    # --- the loop -----------------------------------------------------------------------------------
    async def cycle(self) -> bool:
        """One convergence step; True while commands are still taking effect."""
        self.cycles += 1
        node = self.node
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
            resend_after=self.settings.interval,
            reuse_since=self._acted_at,
            reuse_for=self.settings.interval * 0.8,
        )
        if self.driver.commands_new != sent:  # re-sends do not prolong the quick looks
            self._commanded_at = time.monotonic()
        summary = Summary.of(readings)
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
        problems = self.problems(readings)
        conditions = self.conditions(readings, problems)
        key = (
            summary,
            tuple((c["type"], c["status"], c["reason"], c["message"]) for c in conditions),
        )
        # A report is due an interval after the last, on the wall clock or on the agent's
        # clock (the operator judges its age on the latter: one that jumps ahead makes it due)
        last = self._written_observed
        due = time.monotonic() - self._written_at >= self.settings.interval * 0.9 or (
            last is not None and (at - last).total_seconds() >= self.settings.interval * 0.9
        )
        if (key != self._written or due) and await self.write_status(summary, conditions, at):
            self._written, self._written_at = key, time.monotonic()
            self._written_observed = at
            log.debug(
                "MinerBlock written: %d mining, %d sleeping", summary.mining, summary.sleeping
            )
        await self.post_events(problems)
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
