"""The pure mapping from an OpenADR event (openleadr's parsed dict) to budget events."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dualcap.api.budget import PowerBudget
from dualcap.signals.openadr import (
    Config,
    SiteConfig,
    budget_body,
    decide,
    decisions_from_budget,
    event_name,
    floor_from_site,
    lead_time_seconds,
    overall_opt,
    sites_for,
)

NOW = datetime(2026, 7, 14, 19, 0, tzinfo=UTC)
SITE = SiteConfig(name="tx-rockdale-1", interconnectKW=45_000, floorKW=2_000)
LEVELS = {1: 30_000.0, 2: 15_000.0, 3: 1_000.0}
KW = {"name": "customUnit", "description": "RealPower", "unit": "W", "scale": "k"}


def interval(payload: float, minutes: float = 60, uid: int = 0) -> dict[str, Any]:
    return {"duration": timedelta(minutes=minutes), "signal_payload": payload, "uid": uid}


def signal(
    name: str, *intervals: dict[str, Any], kind: str | None = None, measurement: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "signal_name": name,
        "signal_type": kind or ("setpoint" if name == "LOAD_DISPATCH" else "level"),
        "signal_id": "sig",
        "intervals": list(intervals),
    }
    if measurement is not None:
        out["measurement"] = measurement
    return out


def event(
    *signals: dict[str, Any],
    event_id: str = "ers-2026-07-14-a",
    start: datetime = NOW + timedelta(minutes=10),
    minutes: float | None = None,
    status: str = "far",
    modification: int = 0,
    notification: float | None = None,
    ramp_up: float | None = None,
    targets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    total = (
        minutes
        if minutes is not None
        else sum(i["duration"].total_seconds() / 60 for i in signals[0]["intervals"])
        if signals
        else 60
    )
    period: dict[str, Any] = {"dtstart": start, "duration": timedelta(minutes=total)}
    if notification is not None:
        period["notification"] = timedelta(minutes=notification)
    if ramp_up is not None:
        period["ramp_up"] = timedelta(minutes=ramp_up)
    return {
        "event_descriptor": {
            "event_id": event_id,
            "modification_number": modification,
            "event_status": status,
            "market_context": "oadr://ercot/ers",
        },
        "active_period": period,
        "event_signals": list(signals),
        "targets": targets or [{"ven_id": "ven-1"}],
        "response_required": "always",
    }


def run(e: dict[str, Any], floor: float | None = 2_000, site: SiteConfig = SITE):
    return decide(e, site, floor, LEVELS, NOW, 120)


def test_a_load_dispatch_setpoint_in_kilowatts():
    d = run(event(signal("LOAD_DISPATCH", interval(12_000), measurement=KW)))
    assert (d.opt, d.reason) == ("optIn", "CanComply")
    assert d.events == (
        {
            "name": "ers-2026-07-14-a-0",
            "start": "2026-07-14T19:10:00Z",
            "end": "2026-07-14T20:10:00Z",
            "limitKW": 12_000,
        },
    )


@pytest.mark.parametrize(
    ("scale", "payload", "kw"),
    [
        ("none", 12_000_000, 12_000),
        ("k", 12_000, 12_000),
        ("M", 12, 12_000),
        (None, 12_000_000, 12_000),
    ],
)
def test_setpoint_units_are_converted_to_kilowatts(scale, payload, kw):
    measurement = {"unit": "W", "scale": scale} if scale is not None else {"unit": "W"}
    d = run(event(signal("LOAD_DISPATCH", interval(payload), measurement=measurement)))
    assert d.events[0]["limitKW"] == kw


def test_a_setpoint_without_a_measurement_is_taken_as_kilowatts():
    assert run(event(signal("LOAD_DISPATCH", interval(9_500)))).events[0]["limitKW"] == 9_500


def test_simple_levels_through_the_table_and_level_zero_is_normal():
    d = run(event(signal("SIMPLE", interval(0, 30, 0), interval(2, 30, 1), interval(1, 30, 2))))
    assert d.opt == "optIn"
    assert [(e["name"], e["start"], e["limitKW"]) for e in d.events] == [
        ("ers-2026-07-14-a-1", "2026-07-14T19:40:00Z", 15_000),
        ("ers-2026-07-14-a-2", "2026-07-14T20:10:00Z", 30_000),
    ]


def test_load_dispatch_wins_over_simple():
    d = run(
        event(
            signal("SIMPLE", interval(3)), signal("LOAD_DISPATCH", interval(20_000), measurement=KW)
        )
    )
    assert d.events[0]["limitKW"] == 20_000


@pytest.mark.parametrize(
    ("e", "reason", "words"),
    [
        (
            event(signal("ELECTRICITY_PRICE", interval(80), kind="price")),
            "NoUsableSignal",
            "ELECTRICITY_PRICE",
        ),
        (event(signal("SIMPLE", interval(2)), event_id="x"), "NoUsableSignal", None),  # see below
        (
            event(signal("LOAD_DISPATCH", interval(0.5), kind="multiplier")),
            "NoUsableSignal",
            "multiplier",
        ),
        (
            event(signal("LOAD_DISPATCH", interval(5), measurement={"unit": "A", "scale": "none"})),
            "NoUsableSignal",
            "W expected",
        ),
        (
            event(signal("LOAD_DISPATCH", interval(-100), measurement=KW)),
            "InvalidSetpoint",
            "negative",
        ),
        (
            event(signal("LOAD_DISPATCH", interval(60_000), measurement=KW)),
            "InvalidSetpoint",
            "interconnect",
        ),
        (event(signal("SIMPLE", interval(7))), "NoUsableSignal", "0-3"),
        (
            event(signal("LOAD_DISPATCH", interval(1_500), measurement=KW)),
            "BelowFloor",
            "2,000.0 kW",
        ),
        (event(signal("SIMPLE", interval(3))), "BelowFloor", "floor"),
        (
            event(signal("LOAD_DISPATCH", interval(float("nan")), measurement=KW)),
            "NoUsableSignal",
            "finite",
        ),
    ],
)
def test_an_event_the_site_cannot_honour_is_opted_out_with_the_reason(e, reason, words):
    if words is None:  # a SIMPLE level that the table does not map
        d = decide(e, SITE, 2_000, {1: 30_000.0}, NOW, 120)
        words = "simpleLevels"
    else:
        d = run(e)
    assert (d.opt, d.reason) == ("optOut", reason)
    assert words in d.message
    assert d.events == ()


def test_at_the_floor_is_still_in():
    assert run(event(signal("LOAD_DISPATCH", interval(2_000), measurement=KW))).opt == "optIn"


def test_without_a_known_floor_every_limit_is_in():
    assert run(event(signal("SIMPLE", interval(3))), floor=None).opt == "optIn"


def test_cancelled_and_completed_events_deliver_nothing():
    cancelled = run(event(signal("SIMPLE", interval(2)), status="cancelled", modification=1))
    assert (cancelled.opt, cancelled.reason, cancelled.events) == ("optIn", "Cancelled", ())
    over = run(event(signal("SIMPLE", interval(2)), start=NOW - timedelta(hours=2)))
    assert (over.reason, over.events) == ("Completed", ())


def test_an_event_under_way_keeps_only_what_is_left():
    d = run(
        event(
            signal("SIMPLE", interval(1, 30, 0), interval(2, 30, 1)),
            start=NOW - timedelta(minutes=40),
        )
    )
    assert [e["name"] for e in d.events] == ["ers-2026-07-14-a-1"]


def test_an_open_ended_event_lasts_an_hour_past_now():
    e = event(signal("SIMPLE", interval(2, 0)), minutes=0, start=NOW - timedelta(minutes=5))
    d = decide(e, SITE, 2_000, LEVELS, NOW, 120, timedelta(hours=1))
    assert d.events[0]["end"] == "2026-07-14T20:00:00Z"


def test_lead_time_from_ramp_up_bounded_by_notification():
    assert lead_time_seconds(event(signal("SIMPLE", interval(2))), 120) == 120
    assert lead_time_seconds(event(signal("SIMPLE", interval(2)), ramp_up=5), 120) == 300
    assert lead_time_seconds(event(signal("SIMPLE", interval(2)), notification=1), 120) == 60
    assert (
        lead_time_seconds(event(signal("SIMPLE", interval(2)), notification=10, ramp_up=15), 120)
        == 600
    )
    d = run(event(signal("SIMPLE", interval(2)), notification=10, ramp_up=5))
    assert d.lead_time_seconds == 300


def test_event_names_are_dns_labels():
    assert event_name("ers-1", 0) == "ers-1-0"
    for raw in ("ERS_2026/07/14#A", "x" * 80, "---", "Événement"):
        name = event_name(raw, 3)
        assert len(name) <= 63 and name.endswith("-3")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert event_name("ERS_A", 0) != event_name("ers-a", 0)


def test_targets_pick_sites():
    a = SiteConfig(name="a", interconnectKW=10, resourceIDs=("res-a",))
    b = SiteConfig(name="b", interconnectKW=10, resourceIDs=("res-b",))
    ven_wide = event(signal("SIMPLE", interval(1)))
    to_b = event(signal("SIMPLE", interval(1)), targets=[{"resource_id": "res-b"}])
    to_nobody = event(signal("SIMPLE", interval(1)), targets=[{"resource_id": "res-z"}])
    assert [s.name for s in sites_for(ven_wide, [a, b])] == ["a", "b"]
    assert [s.name for s in sites_for(to_b, [a, b])] == ["b"]
    assert sites_for(to_nobody, [a, b]) == []


def test_the_vens_answer_is_out_when_any_site_is_out():
    ok = run(event(signal("SIMPLE", interval(2))))
    out = run(event(signal("SIMPLE", interval(3))))
    assert overall_opt([ok]) == "optIn"
    assert overall_opt([ok, out]) == "optOut"


def test_floor_from_the_site_status():
    assert floor_from_site({"status": {"floorKW": 3_200}}) == 3_200.0
    assert floor_from_site({"status": {}}) is None
    assert floor_from_site({"status": {"floorKW": "lots"}}) is None
    assert floor_from_site(None) is None


def test_the_budget_is_valid_and_carries_its_decisions():
    ins = run(event(signal("SIMPLE", interval(2)), ramp_up=5))
    outs = run(event(signal("SIMPLE", interval(3)), event_id="ers-b"))
    body = budget_body(SITE, [ins, outs], NOW, 120, "https://vtn.example/OpenADR2/Simple/2.0b")
    budget = PowerBudget.model_validate(body)
    assert budget.metadata.name == "openadr-tx-rockdale-1"
    assert body["metadata"]["labels"] == {"dualcap.io/adapter": "openadr"}
    assert budget.spec.site_ref == "tx-rockdale-1" and budget.spec.limit_kw == 45_000
    assert budget.spec.lead_time_seconds == 300
    assert [e.name for e in budget.spec.events or []] == ["ers-2026-07-14-a-0"]
    carried = decisions_from_budget("tx-rockdale-1", body)
    assert {(d.event_id, d.opt, d.reason) for d in carried} == {
        ("ers-2026-07-14-a", "optIn", "CanComply"),
        ("ers-b", "optOut", "BelowFloor"),
    }
    again = budget_body(SITE, carried, NOW, 120, "https://vtn.example/OpenADR2/Simple/2.0b")
    assert again == body


def test_ended_decisions_leave_the_budget():
    d = run(event(signal("SIMPLE", interval(2))))
    later = NOW + timedelta(hours=2)
    body = budget_body(SITE, [d], later, 120, "u")
    assert (
        body["spec"]["events"] == []
        and json.loads(body["metadata"]["annotations"]["openadr.dualcap.io/events"]) == []
    )


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"vtnURL": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b"}, "insecure"),
        ({"vtnURL": "ftp://vtn"}, "http"),
        ({"simpleLevels": {4: 100}}, "levels 1-3"),
        ({"sites": []}, "at least 1"),
    ],
)
def test_config_refuses(doc, words):
    base = {
        "vtnURL": "https://vtn.example/OpenADR2/Simple/2.0b",
        "venName": "ven",
        "sites": [{"name": "s", "interconnectKW": 10}],
    }
    with pytest.raises(ValueError, match=words):
        Config.model_validate({**base, **doc})


def test_plain_http_with_the_explicit_flag():
    c = Config.model_validate(
        {
            "vtnURL": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b",
            "venName": "ven",
            "insecure": True,
            "sites": [{"name": "s", "interconnectKW": 10}],
        }
    )
    assert c.insecure and c.poll_interval_seconds == 10.0


def test_an_events_own_ramp_up_is_its_lead_time_even_below_the_configs():
    """The config's 120 s is for events without a ramp-up: an event asking 12 s cuts the
    site 12 s before it starts (it took the larger, 120 s, and cut 108 s early)."""
    quick = run(event(signal("SIMPLE", interval(2)), ramp_up=0.2))  # 12 s
    body = budget_body(SITE, [quick], NOW, 120, "u")
    assert body["spec"]["leadTimeSeconds"] == 12
    plain = run(event(signal("SIMPLE", interval(2)), event_id="ers-plain"))
    assert budget_body(SITE, [plain], NOW, 120, "u")["spec"]["leadTimeSeconds"] == 120
    # one lead a budget: of two events, the larger lead counts (the earlier cut is safe)
    assert budget_body(SITE, [quick, plain], NOW, 120, "u")["spec"]["leadTimeSeconds"] == 120
    assert budget_body(SITE, [], NOW, 120, "u")["spec"]["leadTimeSeconds"] == 120
