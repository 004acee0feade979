"""One `dualcap fleet` acts at a time: a coordination.k8s.io Lease, as client-go's leader
election keeps one.

The holder renews the Lease every pass; another takes it over once the holder's renewal
has not moved for the Lease's duration, measured on its own clock since it last saw the
renewal change (so clocks skewed between the two do not matter). Every write carries the
Lease's resourceVersion: of two that try at once, one wins. A holder that stops hands
the Lease over at once (it empties the holder).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dualcap.client import Client

log = logging.getLogger("dualcap.fleet")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{}/leases"


def _micro(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leader:
    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str = "dualcap-fleet",
        duration_seconds: int = 15,
        identity: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ticker: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.path = LEASES.format(namespace)
        self.name = name
        self.duration = duration_seconds
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}"
        self.clock = clock
        self.ticker = ticker
        self.leading = False
        self._seen: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._seen_at = 0.0  # when it last changed, on our ticker

    def _spec(self, transitions: int, acquired: str | None = None) -> dict[str, Any]:
        now = _micro(self.clock())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def hold(self) -> bool:
        """Takes or renews the Lease; True while this process leads."""
        was = self.leading
        self.leading = await self._hold()
        if self.leading != was:
            log.info("%s the lead (Lease %s, as %s)", "took" if self.leading else "lost", self.name, self.identity)  # fmt: skip
        return self.leading

    async def _hold(self) -> bool:
        got = await self.client.request("GET", f"{self.path}/{self.name}")
        if got.code == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": self._spec(0),
            }
            return (await self.client.create(self.path, body)).ok
        if not got.ok:
            log.warning("Lease %s: %s %s", self.name, got.code, got.message)
            return False
        lease = got.body
        spec = lease.get("spec") or {}
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if (holder, renewed) != self._seen:
            self._seen, self._seen_at = (holder, renewed), self.ticker()
        mine = holder == self.identity
        expired = not holder or self.ticker() - self._seen_at > int(spec.get("leaseDurationSeconds") or self.duration)  # fmt: skip
        if not mine and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        body = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": self._spec(transitions, spec.get("acquireTime") if mine else None),
        }
        return (await self.client.patch(f"{self.path}/{self.name}", body)).ok

    async def release(self) -> None:
        """Hands the Lease over at once (on a clean stop)."""
        if not self.leading:
            return
        got = await self.client.request("GET", f"{self.path}/{self.name}")
        if got.ok and (got.body.get("spec") or {}).get("holderIdentity") == self.identity:
            await self.client.patch(
                f"{self.path}/{self.name}",
                {"metadata": {"resourceVersion": got.body["metadata"]["resourceVersion"]},
                 "spec": {"holderIdentity": None}},
            )  # fmt: skip
        self.leading = False
