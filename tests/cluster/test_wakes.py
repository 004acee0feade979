"""Every change of a signal's state wakes its site: a poller wakes it when its state
changes (a first reading, good -> error, one error -> another, error -> good), and the
plan wakes it when a fresh reading goes stale. Before this, a GPU query that failed and
then answered the same values again left the site on its error until the resync, and a
price feed going stale switched to the static price only at the next reconcile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dualcap.api.feeds import PriceFeeds
from dualcap.api.measurement import GpuPowerQuery, MeterSpec
from dualcap.cluster.feeds import PricePoller
from dualcap.cluster.meters import GpuPowerPoller, MeterPoller
from dualcap.cluster.pollers import Changes
from dualcap.signals.reading import Reading, SignalError

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_changes_wake_on_the_first_state_every_change_and_a_move() -> None:
    wakes = Wakes()
    changes = Changes(wakes)
    assert changes.saw(None) and wakes.count == 1  # the first state
    assert not changes.saw(None) and wakes.count == 1
    assert changes.saw("Unreachable") and wakes.count == 2
    assert not changes.saw("Unreachable")
    assert changes.saw("HttpError") and wakes.count == 3  # one error -> another
    assert changes.saw(None) and wakes.count == 4  # good again
    assert changes.saw(None, moved=True) and wakes.count == 5


def gpu_poller(wakes: Wakes) -> GpuPowerPoller:
    spec = GpuPowerQuery.model_validate({"url": "http://127.0.0.1:9"})
    return GpuPowerPoller("s", spec, None, "default", lambda: ["gpu-1"], wakes)  # type: ignore[arg-type]


def test_gpu_power_answering_again_after_an_error_wakes_the_site_at_once() -> None:
    wakes = Wakes()
    poller = gpu_poller(wakes)
    poller.poll_answered({"gpu-1": Reading(4000.0, T0)})
    assert wakes.count == 1 and poller.state().error_reason is None
    poller._failed(SignalError("SeveralSeries", "two series for gpu-1"))
    assert wakes.count == 2 and poller.state().error_reason == "SeveralSeries"
    poller._failed(SignalError("SeveralSeries", "two series for gpu-1"))
    assert wakes.count == 2  # the same error again: nothing new to act on
    # the same values as before the error: still a change of state, the site is woken
    poller.poll_answered({"gpu-1": Reading(4000.0, T0 + timedelta(seconds=2))})
    assert wakes.count == 3 and poller.state().error_reason is None
    poller.poll_answered({"gpu-1": Reading(4300.0, T0 + timedelta(seconds=4))})
    assert wakes.count == 3  # moved by less than a kW
    poller.poll_answered({"gpu-1": Reading(5300.0, T0 + timedelta(seconds=6))})
    assert wakes.count == 4


async def test_the_meter_answering_again_after_an_error_wakes_the_site_at_once() -> None:
    wakes = Wakes()
    spec = MeterSpec.model_validate(
        {"prometheus": {"url": "http://127.0.0.1:9", "query": "sum(site_watts)"}}
    )
    poller = MeterPoller("s", spec, None, "default", wakes, lambda: T0)  # type: ignore[arg-type]
    answers: list[Reading | SignalError] = [
        Reading(900_000.0, T0),
        SignalError("Unreachable", "connection refused"),
        SignalError("Unreachable", "connection refused"),
        Reading(900_000.0, T0 + timedelta(seconds=10)),  # the same draw, good again
        Reading(900_400.0, T0 + timedelta(seconds=20)),
    ]

    async def read() -> Reading:
        answer = answers.pop(0)
        if isinstance(answer, SignalError):
            raise answer
        return answer

    seen = []
    for _ in range(5):
        await poller._read_once(read)
        seen.append((wakes.count, poller.state().error_reason))
    assert seen == [(1, None), (2, "Unreachable"), (2, "Unreachable"), (3, None), (3, None)]


async def test_a_price_feed_failing_and_recovering_wakes_and_going_stale_is_a_wakeup(
    tmp_path: Path,
) -> None:
    doc = tmp_path / "hashprice.json"
    doc.write_text(json.dumps({"data": [{"timestamp": T0.isoformat(), "price": 50.0}]}))
    spec = PriceFeeds.model_validate(
        {"hashprice": {"source": str(doc), "pollSeconds": 60, "staleAfterSeconds": 600}}
    )
    now = [T0 + timedelta(seconds=30)]
    wakes = Wakes()
    poller = PricePoller("s", spec, lambda: now[0], wakes, None)
    assert poller.hash is not None
    changes = Changes(wakes)
    await poller.refresh(poller.hash, changes)
    assert wakes.count == 1
    prices = poller.now()
    assert prices.fresh and prices.hashprice == 50.0
    assert prices.stale_at == T0 + timedelta(seconds=600)  # the plan wakes the site then
    doc.write_text("not json")
    await poller.refresh(poller.hash, changes)
    assert wakes.count == 2  # good -> failing: the condition says why
    await poller.refresh(poller.hash, changes)
    assert wakes.count == 2
    now[0] = T0 + timedelta(seconds=601)
    prices = poller.now()
    assert not prices.fresh and prices.hashprice is None and prices.stale_at is None
    assert prices.reason == "Stale"
