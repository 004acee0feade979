"""The fleet's choice among the sites' offers: table tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dualcap.planning.offer import Offer, Room, Step
from dualcap.planning.placement import Candidate, Job, choose, fit

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
JOB = Job(gpus=8, usd_per_gpu_hour=2.0, hours=4)  # pays 16 USD/h; 8 kW at 1 kW a GPU


def site_offer(
    *,
    gpus: int = 16,
    free: float = 100.0,
    mining: float = 0.0,
    lost: float = 50.0,
    price: float = 30.0,
    limit: float = 1_000.0,
    ahead: tuple[Step, ...] = (),
    per_gpu: float = 1.0,
) -> Offer:
    room = tuple(r for r in (Room(free, 0.0), Room(mining, lost)) if r.kw > 0)
    return Offer(NOW, gpus, per_gpu, limit, free, room, price, ahead)


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        # headroom: 16 - 8 kW x 30 USD/MWh = 15.76 USD/h
        (site_offer(), (pytest.approx(15.76), 8.0, 0)),
        # no headroom: 8 kW of mining at 50 USD/MWh lost, on top of the energy
        (site_offer(free=0, mining=100), (pytest.approx(16 - 0.24 - 0.4), 8.0, 0)),
        # half and half: 4 kW free, 4 kW displaced
        (site_offer(free=4, mining=100), (pytest.approx(16 - 0.24 - 0.2), 8.0, 0)),
        ("too few GPUs", "4 GPUs free, needs 8"),
        ("no room", "needs 8 kW, 5 kW of room"),
        # a cut during the job: the limit drops to 905 kW at 14:00 while 900 cannot be shed
        ("cut during", "905 kW limit from 14:00 UTC, during the job"),
        # a cut after the job ends does not matter, nor a deep one the room can take
        ("cut after", (pytest.approx(15.76), 8.0, 0)),
        ("cut coverable", (pytest.approx(15.76), 8.0, 1)),
        # the price ahead: 30 for 2 h then 130 for 2 h: 80 on average
        ("price rises", (pytest.approx(16 - 8 * 80 / 1000), 8.0, 1)),
        # a site's GPUs at 1.3 kW (PUE and hotter GPUs): 10.4 kW
        (site_offer(per_gpu=1.3), (pytest.approx(16 - 10.4 * 0.03), pytest.approx(10.4), 0)),
    ],
)
def test_fit(offer, expected) -> None:
    named = {
        "too few GPUs": site_offer(gpus=4),
        "no room": site_offer(free=5),
        "cut during": site_offer(limit=1_000, free=100, ahead=(Step(at(2), 905, 30),)),
        "cut after": site_offer(ahead=(Step(at(5), 0, 30),)),
        "cut coverable": site_offer(limit=1_000, free=100, ahead=(Step(at(1), 950, 30),)),
        "price rises": site_offer(ahead=(Step(at(2), 1_000, 130),)),
    }
    o = named[offer] if isinstance(offer, str) else offer
    assert fit(JOB, o, NOW) == expected


def test_the_best_margin_wins_and_every_other_site_says_why() -> None:
    cheap = site_offer(price=20)
    dear = site_offer(price=90)
    full = site_offer(gpus=0)
    choice = choose(JOB, [
        Candidate("tx-rockdale-1", dear), Candidate("ga-lagrange-2", cheap),
        Candidate("ny-massena", full), Candidate("on-kapuskasing", None, "offer stale (5 min old)"),
    ], NOW)  # fmt: skip
    assert choice.chosen is not None and choice.chosen.name == "ga-lagrange-2"
    assert choice.reasons["ny-massena"] == "0 GPUs free, needs 8"
    assert choice.reasons["on-kapuskasing"] == "offer stale (5 min old)"
    assert choice.message.startswith("placed at ga-lagrange-2: 15.84 USD/h margin (8 kW); not at")
    assert "not at ny-massena: 0 GPUs free, needs 8" in choice.message


def test_ties_go_to_the_steadier_envelope_then_the_name() -> None:
    steady = site_offer()
    changing = site_offer(ahead=(Step(at(1), 990, 30), Step(at(2), 1_000, 30)))
    choice = choose(JOB, [Candidate("a", changing), Candidate("b", steady)], NOW)
    assert choice.chosen is not None and choice.chosen.name == "b"
    choice = choose(JOB, [Candidate("b", steady), Candidate("a", site_offer())], NOW)
    assert choice.chosen is not None and choice.chosen.name == "a"


def test_nowhere_to_go() -> None:
    choice = choose(
        JOB, [Candidate("a", site_offer(gpus=0)), Candidate("b", None, "unreachable")], NOW
    )
    assert choice.chosen is None
    assert choice.message == "no site fits: not at a: 0 GPUs free, needs 8; not at b: unreachable"
    assert choose(JOB, [], NOW).message == "no site fits: no worker cluster"


def test_a_change_since_the_offer_was_written_counts_as_now() -> None:
    # written at 12:00 with 100 kW free under 1,000; at 13:00 the limit fell to 905 (900
    # cannot be shed): at 13:30 only 5 kW are left, and the price is 13:00's
    o = site_offer(limit=1_000, free=100, ahead=(Step(at(1), 905, 90),))
    later = NOW + timedelta(hours=1, minutes=30)
    assert fit(JOB, o, later) == "needs 8 kW, 5 kW of room"
    roomy = site_offer(limit=1_000, free=100, ahead=(Step(at(1), 1_000, 90),))
    assert fit(JOB, roomy, later) == (pytest.approx(16 - 8 * 90 / 1000), 8.0, 0)
