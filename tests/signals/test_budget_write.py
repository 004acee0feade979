"""The adapter's budget writes against the sandbox API: created, left alone when nothing
changed, retried on a conflict, and never written over a budget that is not its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dualcap.signals.openadr import (
    BUDGETS,
    BudgetWriteError,
    SiteConfig,
    budget_body,
    decide,
    write_budget,
)
from tests.peers.openadr_fixtures import Cluster

NOW = datetime.now(UTC).replace(microsecond=0)
SITE = SiteConfig(name="tx-rockdale-1", interconnectKW=45_000, floorKW=2_000)


def body(kw: float = 12_000) -> dict[str, Any]:
    event = {
        "event_descriptor": {"event_id": "ers-w", "modification_number": 0, "event_status": "far"},
        "active_period": {"dtstart": NOW + timedelta(minutes=10), "duration": timedelta(hours=1)},
        "event_signals": [
            {
                "signal_name": "LOAD_DISPATCH",
                "signal_type": "setpoint",
                "intervals": [{"duration": timedelta(hours=1), "signal_payload": kw, "uid": 0}],
            }
        ],
    }
    return budget_body(SITE, [decide(event, SITE, 2_000, {}, NOW, 120)], NOW, 120, "https://vtn")


class Meddler:
    """The real client, with another writer's patch slipped in before the first patch."""

    def __init__(self, client: Any):
        self.client = client
        self.meddled = 0

    async def request(self, *args: Any, **kw: Any) -> Any:
        return await self.client.request(*args, **kw)

    async def create(self, *args: Any) -> Any:
        return await self.client.create(*args)

    async def patch(self, path: str, patch: Any) -> Any:
        if not self.meddled:
            self.meddled += 1
            other = {"metadata": {"annotations": {"someone.example/else": "was here"}}}
            assert (await self.client.patch(path, other)).ok
        return await self.client.patch(path, patch)


async def test_created_then_unchanged_then_updated(cluster: Cluster):
    assert await write_budget(cluster.client, body()) is True
    assert await write_budget(cluster.client, body()) is False  # nothing to say
    assert await write_budget(cluster.client, body(9_000)) is True
    got = await cluster.budget("openadr-tx-rockdale-1")
    assert got["spec"]["events"][0]["limitKW"] == 9_000
    assert got["metadata"]["generation"] == 2


async def test_a_conflict_is_retried_on_the_latest_version(cluster: Cluster):
    assert await write_budget(cluster.client, body())
    meddler = Meddler(cluster.client)
    assert await write_budget(meddler, body(8_000)) is True
    got = await cluster.budget("openadr-tx-rockdale-1")
    assert meddler.meddled == 1
    assert cluster.client.errors.get(409) == 1  # the stale resourceVersion was refused once
    assert got["spec"]["events"][0]["limitKW"] == 8_000
    assert got["metadata"]["annotations"]["someone.example/else"] == "was here"


async def test_a_budget_that_is_not_ours_is_never_touched(cluster: Cluster):
    theirs = body()
    theirs["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "argocd"}
    theirs["spec"]["events"] = []
    assert (await cluster.client.create(BUDGETS, theirs)).ok
    with pytest.raises(BudgetWriteError, match="not ours"):
        await write_budget(cluster.client, body())
    got = await cluster.budget("openadr-tx-rockdale-1")
    assert got["spec"]["events"] == []
