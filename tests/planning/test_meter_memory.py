"""The meter's rules between plans, as data in and out (``planning.meter``): what a reading
is compared with, when the unmodelled load may fall, and since when the meter disagrees.

The reserve after a silence: the meter went quiet with 3,000 kW of unmodelled load kept;
when it came back, its first reading (taken while a resumed block still ramped, so showing
less) dropped the reserve within a second, although the docs say the load falls only once
the readings of a whole staleAfterSeconds show less."""

from __future__ import annotations

from datetime import timedelta

from dualcap.planning import plan
from dualcap.planning.entities import LivePrices, MeterState
from dualcap.planning.meter import MeterMemory, prepared, remembered
from tests.planning.builders import T0, asics, budget, site, snapshot

STALE = 30.0
POLL = 5.0


def reading(kw: float, at_s: float) -> MeterState:
    return MeterState(
        metered_kw=kw,
        metered_at=T0 + timedelta(seconds=at_s),
        stale_after_seconds=STALE,
        poll_seconds=POLL,
        disagreement_kw=100_000.0,
    )


def step(memory: MeterMemory, kw: float, at_s: float, reserve: float) -> tuple[float, MeterMemory]:
    """One reconcile half a second after a reading: (the unmodelled load counted, the
    memory after it). Two blocks of 1,000 kW mine: the model is 2,000 kW."""
    now = T0 + timedelta(seconds=at_s + 0.5)
    state = prepared(reading(kw, at_s), memory, reserve)
    snap = snapshot(site(), budget(limit_kw=100_000), *asics(2), meter=state, now=now)
    p = plan(snap, now)
    assert p.meter is not None and p.meter.fresh
    memory = remembered(
        memory,
        now,
        p.meter.modelled_kw,
        state,
        p.meter.fresh,
        p.meter.measured_unmodelled_kw,
        p.meter.disagreeing_since,
    )
    return p.meter.unmodelled_kw, memory


def test_after_a_silence_the_reserve_falls_only_after_a_whole_window_of_readings() -> None:
    # The meter comes back (nothing remembered: a silence, or a restarted operator) and
    # reads 2,500 kW: 500 kW beyond the model, less than the 3,000 kW kept.
    memory = MeterMemory()
    counted, memory = step(memory, 2_500, 0, reserve=3_000)
    assert counted == 3_000  # not 500: one reading after a silence does not drop it
    reserve = counted
    for at in (5, 10, 15, 20, 25, 30):  # the readings of the window after it show less
        counted, memory = step(memory, 2_500, at, reserve=reserve)
        assert counted == 3_000, at
        reserve = counted
    counted, memory = step(memory, 2_500, 35, reserve=reserve)  # a whole window on
    assert counted == 500


def test_a_meter_that_never_went_quiet_follows_its_readings_window() -> None:
    memory = MeterMemory()
    counted, memory = step(memory, 5_000, 0, reserve=0)
    assert counted == 3_000
    counted, memory = step(memory, 2_500, 5, reserve=counted)
    assert counted == 3_000  # within the window of the 3,000 kW reading
    for at in range(10, 40, 5):
        counted, memory = step(memory, 2_500, at, reserve=counted)
    assert counted == 500  # once the readings of a whole window showed less


def test_the_memory_keeps_only_what_the_rules_need() -> None:
    memory = MeterMemory()
    for at in range(0, 900, 5):
        _, memory = step(memory, 2_100, at, reserve=0)
    assert len(memory.modelled) <= 61 and len(memory.unmodelled) <= 61  # five minutes


def test_disagreement_is_data_and_the_plan_wakes_when_it_has_lasted() -> None:
    now = T0 + timedelta(seconds=1)
    state = MeterState(
        metered_kw=5_000,
        metered_at=T0,
        stale_after_seconds=STALE,
        disagreement_kw=100,
        disagreement_seconds=120,
    )
    snap = snapshot(site(), budget(limit_kw=100_000), *asics(2), meter=state, now=now)
    p = plan(snap, now)
    assert p.meter is not None and p.meter.disagreeing_since == now
    assert not p.meter.disagreement_lasted
    assert p.next_wakeup is not None and p.next_wakeup <= now + timedelta(seconds=120)
    since = now - timedelta(seconds=121)
    later = snapshot(
        site(),
        budget(limit_kw=100_000),
        *asics(2),
        meter=prepared(state, MeterMemory(disagreeing_since=since), 0),
        now=now,
    )
    p = plan(later, now)
    assert p.meter is not None and p.meter.disagreeing_since == since
    assert p.meter.disagreement_lasted


def test_a_price_feed_going_stale_is_a_wakeup_of_the_plan() -> None:
    stale_at = T0 + timedelta(minutes=7)
    prices = LivePrices(40.0, None, True, "Fresh", "ercot-rt: 60 s old", stale_at)
    snap = snapshot(site(), budget(limit_kw=100_000), *asics(2), prices=prices)
    p = plan(snap, T0)
    assert p.prices is not None and p.prices.energy_source == "feed"
    assert p.next_wakeup == stale_at
