"""The site meter in the plan: what it reads beyond the parts counts as unmodelled load,
and a reading that shows less does not erase it while the model is above the truth (a
curtailment in flight, a reading of the last staleAfterSeconds that showed more). Found
by the meter campaign (tests/campaign/meter.py): each curtailment forgot the load, freed
its power for a resume, and the metered draw went over the limit until it was learnt
again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dualcap.planning import plan
from dualcap.planning.entities import MeterState
from tests.planning.builders import T0, asic, budget, site, snapshot

STALE = 30.0


def meter(metered_kw: float, **kw: float) -> MeterState:
    return MeterState(metered_kw=metered_kw, metered_at=T0, stale_after_seconds=STALE, **kw)


def counted(parts: list, state: MeterState, limit_kw: float = 10_000) -> tuple[float, list[str]]:
    """(the unmodelled load counted, the blocks that mine once the plan has taken effect)"""
    snap = snapshot(site(), budget(limit_kw=limit_kw), *parts, meter=state)
    p = plan(snap, T0 + timedelta(seconds=1))
    assert p.meter is not None
    return p.meter.unmodelled_kw, p.mining


MINING = [*asic("a"), *asic("b")]  # 1,000 kW each, the model: 2,000 kW
# a curtailed unconfirmed (its miner still seen): counted at 1,000 kW though it has stopped
CURTAILING = [*asic("a", curtailed_at=T0, mining=True), *asic("b")]


@pytest.mark.parametrize(
    ("parts", "state", "unmodelled"),
    [
        (MINING, meter(2_500), 500),  # the meter beyond the parts
        (MINING, meter(1_800), 0),  # below the model: lowers nothing, counts none
        (MINING, meter(2_100, reserve_kw=500), 100),  # nothing in flight: the reading counts
        # a curtailment in flight: the meter shows the block stopped (1,000 kW + the
        # load) while the model still counts it; the load last counted stays
        (CURTAILING, meter(1_500, reserve_kw=500), 500),
        (CURTAILING, meter(2_700, reserve_kw=500), 700),  # more shows: more counts
        # a reading of the last staleAfterSeconds showed more: it still counts
        (MINING, meter(2_000, recent_unmodelled_kw=400), 400),
        (MINING, meter(2_300, recent_unmodelled_kw=200), 300),
    ],
    ids=[
        "beyond-the-parts",
        "below-the-model",
        "falls-when-nothing-is-in-flight",
        "kept-while-a-curtailment-is-in-flight",
        "rises-while-a-curtailment-is-in-flight",
        "recent-reading-still-counts",
        "newer-reading-shows-more",
    ],
)
def test_the_unmodelled_load_counted(parts: list, state: MeterState, unmodelled: float) -> None:
    assert counted(parts, state)[0] == pytest.approx(unmodelled)


def test_a_curtailment_in_flight_frees_no_power_for_a_resume_through_the_meter() -> None:
    # Limit 1,700 kW with 500 kW unmodelled: one block fits. a is being curtailed, b
    # mines; the meter, which sees a stopped, reads 1,500. Counting no unmodelled load
    # then would leave room for both blocks (2,000 <= 1,700 + ...) - it must not.
    unmodelled, mining = counted(CURTAILING, meter(1_500, reserve_kw=500), limit_kw=1_700)
    assert unmodelled == 500
    assert mining == ["b"]


def test_a_stale_meter_keeps_the_reserve_not_the_recent_peak_alone() -> None:
    late = MeterState(
        metered_kw=2_000,
        metered_at=T0 - timedelta(seconds=2 * STALE),
        stale_after_seconds=STALE,
        reserve_kw=300,
        recent_unmodelled_kw=0.0,
    )
    assert counted(MINING, late)[0] == 300
