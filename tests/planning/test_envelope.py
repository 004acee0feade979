"""The envelope: limits from windows (midnight, DST, months), events, lead time, margins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dualcap.api.budget import PowerBudget
from dualcap.planning.envelope import evaluate
from tests.planning.builders import budget, event, window


def env(at: datetime, **kw):
    return evaluate(PowerBudget.model_validate(budget(**kw)).spec, at)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


TUE = utc(2026, 7, 14, 12, 0)  # Tuesday


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"limit_kw": 10_000}, 10_000),
        ({"limit_kw": 10_000, "margin_kw": 500}, 9_500),
        ({"limit_kw": 10_000, "margin_percent": 5}, 9_500),
    ],
    ids=["plain", "margin-kw", "margin-percent"],
)
def test_limit_and_margin(kw, expected) -> None:
    assert env(TUE, **kw).limit_kw == expected


def test_margin_percent_applies_to_the_lower_limit() -> None:
    e = env(
        utc(2026, 7, 14, 15),
        limit_kw=10_000,
        margin_percent=10,
        windows=[window(start="14:00", end="16:00", limit_kw=4_000)],
    )
    assert e.limit_kw == pytest.approx(3_600)


@pytest.mark.parametrize(
    ("at", "active"),
    [
        (utc(2026, 7, 14, 13, 59), False),  # before (lead time 0)
        (utc(2026, 7, 14, 14, 0), True),  # start is inclusive
        (utc(2026, 7, 14, 18, 59), True),
        (utc(2026, 7, 14, 19, 0), False),  # end is exclusive
        (utc(2026, 7, 18, 15, 0), False),  # Saturday: not in days
    ],
)
def test_window_on_weekdays(at, active) -> None:
    w = window(start="14:00", end="19:00", limit_kw=3_000, days=["Mon", "Tue", "Wed", "Thu", "Fri"])
    e = env(at, limit_kw=10_000, windows=[w], lead_seconds=0)
    assert (e.limit_kw == 3_000) is active
    assert (e.active_windows == ("w",)) is active


@pytest.mark.parametrize(
    ("at", "active"),
    [
        (utc(2026, 7, 17, 22, 30), True),  # Friday night, after start
        (utc(2026, 7, 18, 5, 59), True),  # Saturday morning: the Friday window runs on
        (utc(2026, 7, 18, 6, 0), False),
        (utc(2026, 7, 18, 23, 0), False),  # Saturday night: Saturday is not in days
        (utc(2026, 7, 17, 3, 0), True),  # Friday early: Thursday's window
    ],
)
def test_window_past_midnight(at, active) -> None:
    w = window(start="22:00", end="06:00", limit_kw=1_000, days=["Thu", "Fri"])
    assert (env(at, limit_kw=10_000, windows=[w], lead_seconds=0).limit_kw == 1_000) is active


@pytest.mark.parametrize(
    ("at", "active"),
    [
        # 14:00-19:00 America/Chicago: CDT (UTC-5) in July, CST (UTC-6) in January.
        (utc(2026, 7, 14, 19, 0), True),
        (utc(2026, 7, 14, 23, 59), True),
        (utc(2026, 7, 15, 0, 0), False),
        (utc(2026, 1, 13, 19, 30), False),
        (utc(2026, 1, 13, 20, 0), True),
        (utc(2026, 1, 14, 0, 30), True),
        (utc(2026, 1, 14, 1, 0), False),
    ],
)
def test_window_follows_daylight_saving(at, active) -> None:
    w = window(start="14:00", end="19:00", limit_kw=2_000, tz="America/Chicago")
    assert (env(at, limit_kw=10_000, windows=[w], lead_seconds=0).limit_kw == 2_000) is active


def test_window_on_the_spring_forward_night() -> None:
    """01:00-04:00 local on 8 March 2026 (clocks jump 02:00 -> 03:00) lasts two real hours."""
    w = window(start="01:00", end="04:00", limit_kw=500, tz="America/Chicago", days=["Sun"])
    b = dict(limit_kw=10_000, windows=[w], lead_seconds=0)
    assert env(utc(2026, 3, 8, 6, 59), **b).limit_kw == 10_000
    assert env(utc(2026, 3, 8, 7, 0), **b).limit_kw == 500  # 01:00 CST
    assert env(utc(2026, 3, 8, 8, 59), **b).limit_kw == 500  # 03:59 CDT
    assert env(utc(2026, 3, 8, 9, 0), **b).limit_kw == 10_000  # 04:00 CDT


def test_window_start_in_the_spring_forward_gap_starts_after_the_jump() -> None:
    w = window(start="02:30", end="05:00", limit_kw=500, tz="America/Chicago", days=["Sun"])
    b = dict(limit_kw=10_000, windows=[w], lead_seconds=0)
    assert env(utc(2026, 3, 8, 8, 29), **b).limit_kw == 10_000
    assert env(utc(2026, 3, 8, 8, 30), **b).limit_kw == 500  # 02:30 read as 03:30 CDT


def test_window_on_the_fall_back_night_uses_the_first_occurrence() -> None:
    w = window(start="01:30", end="03:00", limit_kw=500, tz="America/Chicago", days=["Sun"])
    b = dict(limit_kw=10_000, windows=[w], lead_seconds=0)
    assert env(utc(2026, 11, 1, 6, 29), **b).limit_kw == 10_000
    assert env(utc(2026, 11, 1, 6, 30), **b).limit_kw == 500  # first 01:30 (CDT)
    assert env(utc(2026, 11, 1, 8, 59), **b).limit_kw == 500  # 02:59 CST
    assert env(utc(2026, 11, 1, 9, 0), **b).limit_kw == 10_000


def test_months_filter() -> None:
    w = window(start="14:00", end="19:00", limit_kw=3_000, months=[6, 7, 8, 9])
    assert env(utc(2026, 7, 14, 15), limit_kw=10_000, windows=[w]).limit_kw == 3_000
    assert env(utc(2026, 11, 17, 15), limit_kw=10_000, windows=[w]).limit_kw == 10_000


def test_event_and_window_overlap_lowest_wins() -> None:
    at = utc(2026, 7, 14, 15)
    e = env(
        at,
        limit_kw=10_000,
        windows=[window(start="14:00", end="19:00", limit_kw=6_000)],
        events=[event("dr", at - timedelta(minutes=5), at + timedelta(hours=1), 2_000)],
    )
    assert e.limit_kw == 2_000
    assert e.active_windows == ("w",) and e.active_events == ("dr",)
    e = env(
        at,
        limit_kw=10_000,
        windows=[window(start="14:00", end="19:00", limit_kw=1_000)],
        events=[event("dr", at, at + timedelta(hours=1), 2_000)],
    )
    assert e.limit_kw == 1_000


def test_an_event_higher_than_the_interconnect_does_not_raise_it() -> None:
    e = env(TUE, limit_kw=10_000, events=[event("x", TUE, TUE + timedelta(hours=1), 50_000)])
    assert e.limit_kw == 10_000


@pytest.mark.parametrize(
    ("starts_in", "counts"),
    [
        (timedelta(seconds=90), True),
        (timedelta(seconds=120), True),
        (timedelta(seconds=150), False),
    ],
)
def test_lead_time(starts_in, counts) -> None:
    ev = event("ers", TUE + starts_in, TUE + timedelta(hours=2), 1_000)
    assert (env(TUE, limit_kw=10_000, lead_seconds=120, events=[ev]).limit_kw == 1_000) is counts


def test_lead_time_does_not_extend_the_end() -> None:
    ev = event("ers", TUE - timedelta(hours=1), TUE, 1_000)
    assert env(TUE, limit_kw=10_000, lead_seconds=600, events=[ev]).limit_kw == 10_000


def test_next_change_counts_the_lead_time_and_the_margin() -> None:
    ev = event("ers", TUE + timedelta(hours=1), TUE + timedelta(hours=2), 1_000)
    e = env(TUE, limit_kw=10_000, margin_kw=100, lead_seconds=120, events=[ev])
    assert e.next_change is not None
    assert e.next_change.at == TUE + timedelta(minutes=58)
    assert e.next_change.limit_kw == 900
    during = env(
        TUE + timedelta(hours=1), limit_kw=10_000, margin_kw=100, lead_seconds=120, events=[ev]
    )
    assert during.next_change is not None
    assert during.next_change.at == TUE + timedelta(hours=2)
    assert during.next_change.limit_kw == 9_900


def test_next_change_skips_boundaries_that_change_nothing() -> None:
    # A window higher than the interconnect starts and ends without changing the limit.
    ev = event("x", TUE + timedelta(hours=3), TUE + timedelta(hours=4), 500)
    e = env(
        TUE,
        limit_kw=10_000,
        lead_seconds=0,
        windows=[window(start="13:00", end="14:00", limit_kw=20_000)],
        events=[ev],
    )
    assert e.next_change is not None and e.next_change.at == TUE + timedelta(hours=3)


def test_next_change_of_a_recurring_window_is_found_days_ahead() -> None:
    sat = utc(2026, 7, 18, 12)
    e = env(
        sat,
        limit_kw=10_000,
        lead_seconds=0,
        windows=[window(start="14:00", end="19:00", limit_kw=3_000, days=["Mon"])],
    )
    assert e.next_change is not None and e.next_change.at == utc(2026, 7, 20, 14)


def test_no_change_ahead() -> None:
    assert env(TUE, limit_kw=10_000).next_change is None


def test_energy_price_windows_highest_wins_and_next_price_change() -> None:
    at = utc(2026, 7, 14, 15)
    pw = [
        window("peak", "14:00", "19:00", usdPerMWh=140),
        window("scarcity", "15:00", "16:00", usdPerMWh=2_000),
    ]
    for w in pw:
        w.pop("limitKW")
    e = env(at, price=28, price_windows=pw)
    assert e.energy_price_usd_per_mwh == 2_000
    assert e.next_price_change == utc(2026, 7, 14, 16)
    assert env(utc(2026, 7, 14, 10), price=28, price_windows=pw).energy_price_usd_per_mwh == 28


def test_no_energy_price_means_free_energy() -> None:
    assert env(TUE).energy_price_usd_per_mwh == 0.0
