"""What the agent writes: its block's MinerBlock (created when missing, its status written
when it changed or a report is due) and a Warning Event for each problem, once per message.

Conditions and Events are built by `dualcap.api.objects` (as the operator builds its own);
what they say, by `dualcap.agent.status`.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from dualcap.agent.kube import Kube
from dualcap.agent.settings import AgentSettings
from dualcap.agent.status import Summary, block_status
from dualcap.api.names import API_VERSION
from dualcap.api.objects import Wanted, event, set_conditions

log = logging.getLogger("dualcap.agent")
BLOCKS = "/apis/dualcap.io/v1alpha1/minerblocks"
MERGE = "application/merge-patch+json"


class Reporter:
    def __init__(self, kube: Kube, node_name: str, settings: AgentSettings):
        """Reads ``settings.clock`` (the stamps), ``interval`` (a report is due that often)
        and ``events_namespace``."""
        self.kube = kube
        self.node_name = node_name
        self.settings = settings
        self.block: dict[str, Any] | None = None  # the MinerBlock as last read or written
        self._conditions: dict[str, dict[str, Any]] = {}  # type -> as last made
        self._written: tuple[Any, ...] | None = None  # what the last report said
        self._written_at = -1e9  # when (monotonic)
        self._written_observed: datetime | None = None  # the observedAt last written
        self._events: dict[str, str] = {}  # reason -> last message posted

    async def report(
        self, summary: Summary, wanted: list[Wanted], problems: dict[str, str], at: datetime
    ) -> None:
        """The status, when it changed or a report is due; then the Events of new problems."""
        conditions = self.conditions(wanted)
        key = (
            summary,
            tuple((c["type"], c["status"], c["reason"], c["message"]) for c in conditions),
        )
        # A report is due an interval after the last, on the wall clock or on the agent's
        # clock (the operator judges its age on the latter: one that jumps ahead makes it due)
        interval = self.settings.interval
        last = self._written_observed
        due = time.monotonic() - self._written_at >= interval * 0.9 or (
            last is not None and (at - last).total_seconds() >= interval * 0.9
        )
        if (key != self._written or due) and await self.write_status(summary, conditions, at):
            self._written, self._written_at = key, time.monotonic()
            self._written_observed = at
            log.debug(
                "MinerBlock written: %d mining, %d sleeping", summary.mining, summary.sleeping
            )
        await self.post_events(problems)

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

    def _generation(self) -> int | None:
        return ((self.block or {}).get("metadata") or {}).get("generation")

    def conditions(self, wanted: list[Wanted]) -> list[dict[str, Any]]:
        """The conditions ``wanted``, each keeping its lastTransitionTime while its status
        holds (from those last made, or those the MinerBlock had)."""
        made = set_conditions(
            list(self._conditions.values()), wanted, self._generation(), self.settings.clock()
        )
        self._conditions.update((c["type"], c) for c in made)
        return made

    async def write_status(
        self, summary: Summary, conditions: list[dict[str, Any]], at: datetime
    ) -> bool:
        if not await self.ensure_block():
            return False
        body = block_status(summary, conditions, at, self._generation())
        reply = await self.kube.request(
            "PATCH", f"{BLOCKS}/{self.node_name}/status", {"status": body}, MERGE
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
            body = event(
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
            namespace = self.settings.events_namespace
            reply = await self.kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
            if reply.ok:
                self._events[reason] = message
            log.warning("%s: %s", reason, message)
        for reason in [r for r in self._events if r not in problems]:
            del self._events[reason]  # resolved: report it again if it comes back
