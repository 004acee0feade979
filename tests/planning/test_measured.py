"""MinerBlock reports as the planner counts them: read strictly, the recent peak kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dualcap.planning.measured import History, measured_draw, report_from

T0 = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


def block(at: datetime = T0, **status: object) -> dict:
    base = {
        "miners": 200,
        "mining": 200,
        "sleeping": 0,
        "unreachable": 0,
        "powerKW": 700.0,
        "hashrateTHs": 40_000.0,
        "observedAt": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    base.update(status)
    return {"kind": "MinerBlock", "metadata": {"name": "asic-c01"}, "status": base}


def test_a_report_is_read() -> None:
    r = report_from(block())
    assert r is not None and r.node == "asic-c01" and r.observed_at == T0
    assert (r.miners, r.mining, r.power_kw, r.mining_hashrate_ths) == (200, 200, 700.0, 40_000.0)


@pytest.mark.parametrize(
    "status",
    [
        {"powerKW": float("nan")},
        {"powerKW": -1.0},
        {"mining": -1},
        {"mining": 150, "sleeping": 100},  # more than the block has
        {"observedAt": "yesterday"},
        {"observedAt": None},
        {"miners": True},
    ],
)
def test_a_report_that_does_not_add_up_is_no_report(status: dict) -> None:
    assert report_from(block(**status)) is None


def test_no_status_is_no_report() -> None:
    assert report_from({"kind": "MinerBlock", "metadata": {"name": "x"}}) is None


def test_freshness() -> None:
    r = report_from(block())
    assert r is not None
    assert r.fresh(T0 + timedelta(seconds=60), timedelta(seconds=60))
    assert not r.fresh(T0 + timedelta(seconds=61), timedelta(seconds=60))


def test_a_mining_block_counts_at_its_recent_peak() -> None:
    h = History(window=timedelta(minutes=5))
    for minute, kw in ((0, 700.0), (1, 760.0), (2, 690.0)):
        h.observe(report_from(block(T0 + timedelta(minutes=minute), powerKW=kw)))  # type: ignore[arg-type]
    assert h.report("asic-c01").power_kw == 760.0  # type: ignore[union-attr]
    # The peak ages out of the window.
    h.observe(report_from(block(T0 + timedelta(minutes=7), powerKW=680.0)))  # type: ignore[arg-type]
    assert h.report("asic-c01").power_kw == 690.0  # type: ignore[union-attr]


def test_a_sleeping_block_counts_at_what_it_measures_asleep() -> None:
    h = History()
    h.observe(report_from(block(T0, powerKW=720.0)))  # type: ignore[arg-type]
    asleep = block(T0 + timedelta(seconds=30), mining=0, sleeping=200, powerKW=5.0, hashrateTHs=0)
    h.observe(report_from(asleep))  # type: ignore[arg-type]
    r = h.report("asic-c01")
    assert r is not None and r.asleep and r.power_kw == 5.0
    # Its economics when it mines again: the hashrate it last mined at.
    assert r.mining_hashrate_ths == 40_000.0


def test_an_old_report_again_changes_nothing() -> None:
    h = History()
    h.observe(report_from(block(T0 + timedelta(minutes=1), powerKW=700.0)))  # type: ignore[arg-type]
    h.observe(report_from(block(T0, powerKW=900.0)))  # type: ignore[arg-type]
    assert h.report("asic-c01").power_kw == 700.0  # type: ignore[union-attr]


def test_unmeasured_blocks_have_no_report() -> None:
    assert History().report("nowhere") is None


def test_a_waking_block_counts_its_mining_miners_at_their_share() -> None:
    # 200 miners of 3.5 kW and 200 TH/s at their nameplate (700 kW, 40,000 TH/s).
    waking = report_from(block(powerKW=210.0, hashrateTHs=4_000.0))  # drawing 30 %, hashing 10 %
    assert waking is not None
    mining_kw, _, _, _ = measured_draw(700.0, 40_000.0, waking)
    assert mining_kw == 700.0  # not 210: it will draw its full share within the minute
    half = report_from(block(mining=100, sleeping=100, powerKW=120.0, hashrateTHs=0.0))
    assert half is not None
    assert measured_draw(700.0, 40_000.0, half)[0] == 700.0


def test_an_up_block_counts_at_what_it_measures() -> None:
    up = report_from(block(powerKW=660.0, hashrateTHs=39_000.0))
    assert up is not None
    assert measured_draw(700.0, 40_000.0, up)[0] == 660.0  # measured beats the nameplate
    # a block hashing at 85 % of its nameplate (a board or two failing) is up too
    worn = report_from(block(powerKW=620.0, hashrateTHs=34_000.0))
    assert worn is not None
    assert measured_draw(700.0, 40_000.0, worn)[0] == 620.0
