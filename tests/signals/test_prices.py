"""ERCOT settlement point prices: the NP6-905 and NP4-190 shapes, Central time and DST,
and every defect refused with its reason."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualcap.signals.prices import energy_price_series, parse, price_at
from dualcap.signals.reading import SignalError

DATA = Path(__file__).resolve().parent.parent / "peers" / "data"
FALLBACK_CSV = (DATA / "np6-905-cd_rt_spp_2026-11-01_fallback.csv").read_text()
SUMMER_JSON = (DATA / "np6-905-cd_spp_node_zone_hub_2026-07-14.json").read_text()
DAM_CSV = (DATA / "np4-190-cd_dam_spp_2026-07-15.csv").read_text()
HEADER = "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def test_fall_back_day_has_five_hours_of_intervals_in_four_local_hours():
    intervals = parse(FALLBACK_CSV, "HB_HOUSTON")
    assert len(intervals) == 20
    # 00:00 CDT is 05:00Z; the repeated 01:00 hour is 06:00Z (CDT) and then 07:00Z (CST)
    assert intervals[0].start == utc(2026, 11, 1, 5, 0)
    assert [i.start for i in intervals[4:13:4]] == [
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 8),
    ]
    assert intervals[-1].end == utc(2026, 11, 1, 10, 0)
    assert all(b.start == a.end for a, b in itertools.pairwise(intervals))


def test_the_repeat_of_the_fall_back_hour_has_its_own_price():
    intervals = parse(FALLBACK_CSV, "HB_HOUSTON")
    assert price_at(intervals, utc(2026, 11, 1, 6, 5)) == 22.88  # 01:05 CDT
    assert price_at(intervals, utc(2026, 11, 1, 7, 5)) == 24.36  # 01:05 CST


def test_negative_prices_are_kept():
    intervals = parse(FALLBACK_CSV, "lz_west")
    assert intervals[0].settlement_point == "LZ_WEST"
    assert intervals[0].point_type == "LZ"
    assert all(i.usd_per_mwh < 0 for i in intervals)
    assert price_at(intervals, utc(2026, 11, 1, 5, 0)) == -3.1


def test_api_json_with_fields_and_the_offer_cap():
    intervals = parse(SUMMER_JSON, "HB_HOUSTON")
    assert len(intervals) == 12
    assert intervals[0].start == utc(2026, 7, 14, 21, 0)  # hour 17 = 16:00 CDT
    # hour 18, interval 4: 17:45-18:00 CDT
    assert price_at(intervals, utc(2026, 7, 14, 22, 50)) == 9000.0
    assert price_at(intervals, utc(2026, 7, 14, 20, 59)) is None
    assert price_at(intervals, utc(2026, 7, 15, 0, 0)) is None  # just past the last interval


def test_api_json_rows_as_objects():
    doc = json.loads(SUMMER_JSON)
    names = [f["name"] for f in doc["fields"]]
    doc["data"] = [dict(zip(names, row, strict=True)) for row in doc["data"]]
    assert parse(json.dumps(doc), "HB_NORTH")[7].usd_per_mwh == 8950.15


def test_day_ahead_is_hourly_hour_ending():
    intervals = parse(DAM_CSV, "HB_HOUSTON", market="dam")
    assert len(intervals) == 24
    assert intervals[0].start == utc(2026, 7, 15, 5)  # HE 01:00 = 00:00-01:00 CDT
    assert intervals[0].end - intervals[0].start == timedelta(hours=1)
    assert intervals[-1].end == utc(2026, 7, 16, 5)
    assert price_at(intervals, utc(2026, 7, 15, 22, 30)) == 182.6  # 17:30 CDT, HE 18


def test_energy_price_series_is_hourly_means():
    intervals = parse(SUMMER_JSON, "HB_HOUSTON")
    series = energy_price_series(intervals, utc(2026, 7, 14, 21), 3)
    assert series[0] == pytest.approx((48.12 + 55.9 + 61.3 + 72.05) / 4)
    assert series[1] == pytest.approx((88.4 + 140.77 + 412.5 + 9000.0) / 4)
    with pytest.raises(SignalError) as err:
        energy_price_series(intervals, utc(2026, 7, 14, 21), 4)
    assert err.value.reason == "Gap"


def test_dam_series_matches_the_day_ahead_hours():
    intervals = parse(DAM_CSV, "LZ_HOUSTON", market="dam")
    assert energy_price_series(intervals, utc(2026, 7, 15, 5), 24)[17] == 183.95


@pytest.mark.parametrize(
    ("text", "point", "reason"),
    [
        ("", "HB_HOUSTON", "Unparseable"),
        ("\x00\x01garbage", "HB_HOUSTON", "Unparseable"),
        ("{not json", "HB_HOUSTON", "Unparseable"),
        ('{"fields": []}', "HB_HOUSTON", "Unparseable"),
        ('{"fields": [{"name": "a"}], "data": [[1, 2]]}', "HB_HOUSTON", "Unparseable"),
        (FALLBACK_CSV, "HB_NOWHERE", "UnknownSettlementPoint"),
        (
            csv("07/14/2026,1,1,HB_HOUSTON,HU,20.0,N", "07/14/2026,1,3,HB_HOUSTON,HU,21.0,N"),
            "HB_HOUSTON",
            "Gap",
        ),
        (
            csv("07/14/2026,1,1,HB_HOUSTON,HU,20.0,N", "07/14/2026,1,1,HB_HOUSTON,HU,21.0,N"),
            "HB_HOUSTON",
            "DuplicateInterval",
        ),
        # a fall-back day whose repeated hour lost its DSTFlag
        (
            csv("11/01/2026,2,1,HB_HOUSTON,HU,20.0,N", "11/01/2026,2,1,HB_HOUSTON,HU,21.0,N"),
            "HB_HOUSTON",
            "DuplicateInterval",
        ),
        (csv("07/14/2026,2,1,HB_HOUSTON,HU,20.0,Y"), "HB_HOUSTON", "BadDSTFlag"),
        (csv("03/08/2026,3,1,HB_HOUSTON,HU,20.0,N"), "HB_HOUSTON", "NonexistentTime"),
        (csv("07/14/2026,25,1,HB_HOUSTON,HU,20.0,N"), "HB_HOUSTON", "Unparseable"),
        (csv("07/14/2026,1,5,HB_HOUSTON,HU,20.0,N"), "HB_HOUSTON", "Unparseable"),
        (csv("14.07.2026,1,1,HB_HOUSTON,HU,20.0,N"), "HB_HOUSTON", "Unparseable"),
        (csv("07/14/2026,1,1,HB_HOUSTON,HU,NaN,N"), "HB_HOUSTON", "BadPrice"),
        (csv("07/14/2026,1,1,HB_HOUSTON,HU,,N"), "HB_HOUSTON", "BadPrice"),
        (csv("07/14/2026,1,1,HB_HOUSTON,HU,250000,N"), "HB_HOUSTON", "PriceOutOfRange"),
        (
            "DeliveryDate,DeliveryHour,SettlementPointName,SettlementPointPrice\n07/14/2026,1,HB_HOUSTON,2\n",
            "HB_HOUSTON",
            "MissingColumn",
        ),
    ],
)
def test_bad_input_is_refused_with_its_reason(text: str, point: str, reason: str):
    with pytest.raises(SignalError) as err:
        parse(text, point, where="prices.csv")
    assert err.value.reason == reason
    assert "prices.csv" in err.value.message


def test_spring_forward_day_skips_hour_ending_three():
    rows = [
        f"03/08/2026,{h},{i},HB_HOUSTON,HU,{h + i / 10},N" for h in (1, 2, 4) for i in range(1, 5)
    ]
    intervals = parse(csv(*rows), "HB_HOUSTON")
    assert len(intervals) == 12
    assert intervals[8].start == utc(2026, 3, 8, 8)  # 03:00 CDT follows 01:59 CST
    assert intervals[7].end == intervals[8].start


def test_an_unknown_point_names_some_that_are_known():
    with pytest.raises(SignalError) as err:
        parse(SUMMER_JSON, "HB_WEST")
    assert "HB_HOUSTON" in err.value.message and "HB_NORTH" in err.value.message


def test_day_ahead_api_json_on_the_fall_back_day():
    text = (DATA / "np4-190-cd_dam_stlmnt_pnt_prices_2026-11-01_fallback.json").read_text()
    intervals = parse(text, "HB_HOUSTON", market="dam")
    assert len(intervals) == 25  # a 25-hour day
    assert intervals[0].start == utc(2026, 11, 1, 5)
    assert intervals[-1].end == utc(2026, 11, 2, 6)  # midnight CST
    assert price_at(intervals, utc(2026, 11, 1, 6, 30)) == 16.9  # 01:30 CDT
    assert price_at(intervals, utc(2026, 11, 1, 7, 30)) == 15.8  # 01:30 CST, the repeat
    assert energy_price_series(intervals, utc(2026, 11, 1, 5), 25)[2] == 15.8
