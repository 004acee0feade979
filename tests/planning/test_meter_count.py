"""What a fresh meter reading counts as unmodelled load, as the planner decides it: the
reading is compared with the model as it was when read (the highest model since a poll
before it) and with the model now; between the two, the last count stands."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dualcap.planning.entities import MeterState
from dualcap.planning.plan import plan
from tests.planning.builders import T0, asic, asics, budget, site, snapshot

READ = MeterState(metered_kw=None, metered_at=T0, stale_after_seconds=10, poll_seconds=2)


def counted(
    metered_kw: float, curtailed: int, then_kw: float, reserve_kw: float
) -> tuple[float, timedelta]:
    """Five blocks of 1,000 kW, ``curtailed`` of them confirmed asleep (the model now:
    5,000 kW less theirs); returns the unmodelled load and when the plan wakes."""
    snap = snapshot(
        site(),
        budget(limit_kw=100_000),
        *asics(5 - curtailed),
        *(
            o
            for i in range(curtailed)
            for o in asic(f"z{i}", mining=False, curtailed_at=T0 - timedelta(minutes=1))
        ),
        meter=replace(READ, metered_kw=metered_kw, modelled_then_kw=then_kw, reserve_kw=reserve_kw),
    )
    p = plan(snap, T0 + timedelta(seconds=0.5))
    assert p.meter is not None and p.meter.fresh and p.next_wakeup is not None
    return p.meter.unmodelled_kw, p.next_wakeup - T0


LATER = timedelta(seconds=3)  # 1.5 polls on: a newer reading may show more
STALE = timedelta(seconds=10)  # only the reading going stale


@pytest.mark.parametrize(
    ("metered", "curtailed", "then", "reserve", "unmodelled", "wake"),
    [
        # no change of the model since a poll before the reading: what it shows
        (8_000, 0, 5_000, 0, 3_000, STALE),
        (8_000, 0, 5_000, 1_000, 3_000, STALE),
        (4_000, 0, 5_000, 3_000, 0, STALE),  # the meter reads below the model: nothing
        # a block curtailed after the last count, the meter has seen it: the count stands
        # (it was 2,000, which resumed the block: a flap over the limit every other poll)
        (7_000, 1, 5_000, 3_000, 3_000, STALE),
        # the meter has not seen the curtailment yet: no runaway (not 4,000)
        (8_000, 1, 5_000, 3_000, 3_000, LATER),
        # more load while the drop is within the poll: at least what is sure, and a
        # re-plan once a newer reading is past the drop
        (10_000, 1, 5_000, 3_000, 5_000, LATER),
        # the load went away while the drop is within the poll: it falls
        (4_000, 1, 5_000, 3_000, 0, STALE),
        (5_000, 1, 5_000, 3_000, 1_000, STALE),
    ],
)
def test_a_reading_counts_between_the_model_then_and_now(
    metered: float,
    curtailed: int,
    then: float,
    reserve: float,
    unmodelled: float,
    wake: timedelta,
) -> None:
    assert counted(metered, curtailed, then, reserve) == (pytest.approx(unmodelled), wake)
