"""A site's offer to the fleet: GPUs free, room cheapest first (the headroom free, each
mining controller at the margin lost by curtailing it), the envelope and price ahead; and
its status: rewritten only on a material change or when due for refresh."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dualcap.api.objects import rfc3339
from dualcap.cluster.status import offer_refresh_at, offer_status
from dualcap.planning import plan
from dualcap.planning.offer import MAX_TIERS, Offer, Room, offer
from tests.planning.builders import (
    T0,
    asic,
    asics,
    budget,
    event,
    gpu_nodes,
    site,
    snapshot,
    window,
)

# 4 controllers of 1,000 kW earning 50,000 TH/s x 45 USD/PH/day = 93.75 USD/h each; at
# 20 USD/MWh their energy costs 20 USD/h: 73.75 USD/h lost per MW curtailed.
LOST = 73.75


def offer_of(*parts, now=T0) -> Offer | None:
    snap = snapshot(*parts, now=now)
    return offer(snap, plan(snap, now), now)


def test_room_is_the_headroom_then_the_miners_at_their_margin() -> None:
    o = offer_of(site(), budget(limit_kw=5_000, price=20), *asics(4), *gpu_nodes(2))
    assert o is not None
    assert o.gpus_free == 16 and o.per_gpu_kw == pytest.approx(1.0)
    assert o.limit_kw == 5_000 and o.free_kw == pytest.approx(1_000)
    assert o.room == (Room(1_000, 0.0), Room(4_000, pytest.approx(LOST)))
    assert o.available_kw == pytest.approx(5_000) and o.floor_kw == pytest.approx(0)
    assert o.energy_usd_per_mwh == 20 and o.ahead == ()


def test_miners_that_do_not_pay_are_free_room_and_dear_ones_come_last() -> None:
    cheap = asic("cheap", hashrate_ths=10_000)  # 18.75 USD/h: at 20 USD/MWh it loses money
    dear = asic("dear", hashrate_ths=100_000)
    o = offer_of(site(), budget(limit_kw=10_000, price=20), cheap, dear, *gpu_nodes(1))
    assert o is not None
    lost = [r.lost_usd_per_mwh for r in o.room]
    assert lost == sorted(lost) and lost[0] == 0.0
    assert lost[-1] == pytest.approx(187.5 - 20)


def test_tiers_are_merged_to_a_few() -> None:
    parts = [a for i in range(20) for a in asic(f"a{i:02d}", hashrate_ths=40_000 + 1_000 * i)]
    o = offer_of(site(), budget(limit_kw=30_000, price=20), *parts)
    assert o is not None and len(o.room) <= MAX_TIERS
    assert o.available_kw == pytest.approx(30_000)
    lost = [r.lost_usd_per_mwh for r in o.room]
    assert lost == sorted(lost)


def test_the_envelope_and_price_ahead() -> None:
    # T0 is 12:00 UTC: the 14:00-19:00 window (3,000 kW, lead time 120 s) and a price
    # window 17:00-21:00 come within the 12 hours told
    peak = window("peak", "14:00", "19:00", limit_kw=3_000)
    price_peak = {"name": "p", "start": "17:00", "end": "21:00", "timezone": "UTC", "usdPerMWh": 90}
    o = offer_of(site(), budget(limit_kw=5_000, price=20, windows=[peak], price_windows=[price_peak]),
                 *asics(4))  # fmt: skip
    assert o is not None
    told = [(s.at - T0, s.limit_kw, s.energy_usd_per_mwh) for s in o.ahead]
    assert told == [
        (timedelta(hours=2, minutes=-2), 3_000, 20),
        (timedelta(hours=5), 3_000, 90),
        (timedelta(hours=7), 5_000, 90),
        (timedelta(hours=9), 5_000, 20),
    ]


def test_no_offer_without_an_envelope() -> None:
    assert offer_of(site(), *asics(2)) is None  # no PowerBudget: the site holds
    assert offer_of(site(suspend=True), budget(limit_kw=5_000), *asics(2)) is None


def test_the_status_is_kept_until_it_changes_or_is_due() -> None:
    o = offer_of(site(), budget(limit_kw=5_000, price=20), *asics(4), *gpu_nodes(2))
    assert o is not None
    first = offer_status(o, 60, None, T0)
    assert first is not None
    assert first["observedAt"] == rfc3339(T0)
    assert first["validUntil"] == rfc3339(T0 + timedelta(seconds=180))
    assert first["room"][1] == {"kw": 4_000.0, "lostUSDPerMWh": 73.8}  # rounded to 0.1
    assert offer_refresh_at(first, 60) == T0 + timedelta(seconds=60)
    # 30 s later, the room moved by 20 kW (measured draw): the same status, nothing written
    drift = replace(o, free_kw=o.free_kw - 20, room=(Room(980, 0.0), *o.room[1:]))
    assert offer_status(drift, 60, first, T0 + timedelta(seconds=30)) == first
    # 60 s after: written again, observed anew
    later = offer_status(drift, 60, first, T0 + timedelta(seconds=60))
    assert later is not None and later["observedAt"] == rfc3339(T0 + timedelta(seconds=60))
    # a material change (a GPU taken) is written at once
    fewer = replace(o, gpus_free=8)
    changed = offer_status(fewer, 60, first, T0 + timedelta(seconds=5))
    assert changed is not None and changed["gpusFree"] == 8
    assert changed["observedAt"] == rfc3339(T0 + timedelta(seconds=5))
    assert offer_status(None, 60, first, T0) is None


def test_the_envelope_ahead_sees_a_cut_behind_a_change_that_does_not_bind() -> None:
    # budget a: 90 kW from +1 h (above b's 50: nothing changes), then 30 kW from +2 h to
    # +3 h; budget b: 50 kW. The site's limit: 50, 30 from +2 h, 50 from +3 h.
    a = budget(limit_kw=100, lead_seconds=0, name="a", events=[
        event("e1", T0 + timedelta(hours=1), T0 + timedelta(hours=10), 90),
        event("e2", T0 + timedelta(hours=2), T0 + timedelta(hours=3), 30),
    ])  # fmt: skip
    b = budget(limit_kw=50, lead_seconds=0, name="b")
    o = offer_of(site(), a, b, *asics(1))
    assert o is not None and o.limit_kw == 50
    assert [(s.at - T0, s.limit_kw) for s in o.ahead] == [
        (timedelta(hours=2), 30),
        (timedelta(hours=3), 50),
    ]
