"""What the agent knows of its Node: the Node itself (a GET, and a watch that wakes the
loop on every change of it), the miners its `dualcap.io/miners` annotation names, the
desired state its curtailment marks say, and the miners another node names too.

While it cannot see its Node (the API unreachable, the Node gone) it keeps the last desired
state; while the annotation names too many miners it keeps the last valid set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dualcap.agent.addresses import Parsed, parse_miners
from dualcap.agent.kube import Kube, WatchGone
from dualcap.agent.miners import Desired
from dualcap.agent.settings import AgentSettings
from dualcap.api.marks import is_marked
from dualcap.api.names import MINERS_ANNOTATION

log = logging.getLogger("dualcap.agent")
PAGE, MAX_PAGES = 100, 1000  # node list pages when looking for miners named twice
# the API server may answer a list with metadata only: a Node's status is most of it
METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class NodeView:
    def __init__(
        self,
        kube: Kube,
        name: str,
        settings: AgentSettings,
        wake: asyncio.Event,
        changed: asyncio.Event,
    ):
        """The watch sets ``wake`` on every change of the Node, and ``changed`` when its
        marks now say otherwise than ``desired``."""
        self.kube = kube
        self.name = name
        self.settings = settings
        self.wake = wake
        self.changed = changed
        self.body: dict[str, Any] | None = None  # the Node as last seen
        self.visible = False  # the last look at the Node succeeded
        self._looked = -1e9
        self.parsed = Parsed()
        self.annotation: str | None = None
        self._parsed_once = False
        self.addresses: list[str] = []  # the last valid set
        self.desired: Desired | None = None
        self.contested: dict[str, str] = {}  # address -> another node naming it
        self._overlap_looked = -1e9

    @property
    def path(self) -> str:
        return f"/api/v1/nodes/{self.name}"

    async def look(self) -> None:
        self._looked = time.monotonic()
        reply = await self.kube.request("GET", self.path)
        if reply.ok and isinstance(reply.body, dict):
            self.body, self.visible = reply.body, True
        else:
            self.visible = False
            log.warning("cannot see node %s: %s %s", self.name, reply.code, reply.message)

    async def look_if_due(self) -> None:
        """A look when the Node was never seen, or an interval after the last one."""
        if self.body is None or time.monotonic() - self._looked >= self.settings.interval:
            await self.look()

    async def watch(self) -> None:
        """Wake the loop on every change of the Node; the loop's own GETs stay the truth."""
        backoff = 1.0
        for _ in iter(int, 1):  # until cancelled; every pass is one bounded watch request
            rv = ((self.body or {}).get("metadata") or {}).get("resourceVersion")
            params = {"fieldSelector": f"metadata.name={self.name}", "timeoutSeconds": "300"}
            if rv:
                params["resourceVersion"] = rv
            started = time.monotonic()
            try:
                async for event in self.kube.watch("/api/v1/nodes", params, timeout=330):
                    obj = event.get("object") or {}
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.body, self.visible = obj, True
                        now = "sleep" if is_marked(obj) else "mine"
                        if self.desired is not None and now != self.desired:
                            log.debug("node %s: marks changed", self.name)
                            self.changed.set()
                        self.wake.set()
                    elif event.get("type") == "DELETED":
                        self.visible = False
                        self.wake.set()
                    elif event.get("type") == "BOOKMARK" and self.body is not None:
                        new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if new_rv:
                            self.body.setdefault("metadata", {})["resourceVersion"] = new_rv
            except WatchGone:
                await self.look()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.info("node watch ended: %s", type(err).__name__)
            if time.monotonic() - started > 30:
                backoff = 1.0  # a watch that lasted: start the next one at once
                continue
            await asyncio.sleep(backoff)  # one that ended at once (errors, 410s): back off
            backoff = min(backoff * 2, 30.0)

    def read(self) -> bool:
        """The miners and the desired state, from the Node as last seen; True when the
        annotation gave a new valid set of miners (the block changed)."""
        node = self.body or {}
        value = ((node.get("metadata") or {}).get("annotations") or {}).get(MINERS_ANNOTATION)
        changed = False
        if value != self.annotation or not self._parsed_once:
            self.annotation, self._parsed_once = value, True
            self.parsed = parse_miners(value)
            if not self.parsed.too_many:
                self.addresses = self.parsed.addresses
                self._overlap_looked = -1e9  # the block changed: look for overlaps now
                changed = True
        if self.visible:
            self.desired = "sleep" if is_marked(node) else "mine"
        return changed

    def overlaps_due(self) -> bool:
        return (
            self.visible
            and time.monotonic() - self._overlap_looked >= self.settings.overlap_seconds
        )

    async def look_for_overlaps(self) -> None:
        """Addresses another node also names: neither agent drives them (they would fight).

        Counted as done only once done: a look cut short (a cycle cancelled when the marks
        change) is made again before any miner is driven."""
        started = time.monotonic()
        mine = set(self.addresses)
        if not mine:
            self.contested, self._overlap_looked = {}, started
            return
        contested: dict[str, str] = {}
        params = {"limit": str(PAGE)}
        for _ in range(MAX_PAGES):  # pages of metadata only: bounded memory on any cluster
            reply = await self.kube.request("GET", "/api/v1/nodes", params=params, accept=METADATA)
            if not reply.ok or not isinstance(reply.body, dict):
                self._overlap_looked = started
                return  # keep what was known
            for node in reply.body.get("items") or []:
                meta = node.get("metadata") or {}
                value = (meta.get("annotations") or {}).get(MINERS_ANNOTATION)
                if not value or meta.get("name") == self.name:
                    continue
                for ip in parse_miners(value).addresses:
                    if ip in mine:
                        contested.setdefault(ip, str(meta.get("name")))
            token = (reply.body.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {"limit": str(PAGE), "continue": token}
        self.contested, self._overlap_looked = contested, started
