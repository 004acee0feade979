"""Hashprice in the Luxor Hashrate Index shape, per PH/s per day."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dualcap.signals.hashprice import parse, unit_of
from dualcap.signals.reading import SignalError

DATA = Path(__file__).resolve().parent.parent / "peers" / "data"


def doc(*points: object) -> str:
    return json.dumps({"data": list(points)})


def test_newest_point_is_the_reading():
    signal = parse((DATA / "luxor_hashprice_usd_phs_1h.json").read_text(), "PHS", "luxor")
    assert signal.observed_at == datetime(2026, 7, 14, 18, tzinfo=UTC)
    assert signal.value == pytest.approx(48.484)
    assert signal.source == "luxor"


def test_per_terahash_is_scaled_to_per_petahash():
    per_th = parse((DATA / "luxor_hashprice_usd_ths_1h.json").read_text(), "THS")
    per_ph = parse((DATA / "luxor_hashprice_usd_phs_1h.json").read_text(), "PHS")
    assert per_th.value == pytest.approx(per_ph.value, rel=1e-5)


def test_epoch_timestamps_in_seconds_or_milliseconds():
    assert (
        parse(doc({"timestamp": 1784052000, "price": 45})).observed_at
        == parse(doc({"timestamp": 1784052000000, "price": 45})).observed_at
    )


def test_the_unit_and_currency_come_from_the_url():
    assert unit_of("http://127.0.0.1/hashprice?currency=USD&hashunit=THS&bucket=1H") == "THS"
    assert unit_of("/var/lib/hashprice.json") == "PHS"
    with pytest.raises(SignalError) as err:
        unit_of("http://127.0.0.1/hashprice?currency=BTC&hashunit=PHS")
    assert err.value.reason == "WrongCurrency"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "Unparseable"),
        ('{"points": []}', "Unparseable"),
        (doc(), "NoData"),
        (doc({"price": 40}), "Unparseable"),
        (doc({"timestamp": "yesterday", "price": 40}), "Unparseable"),
        (doc({"timestamp": "2026-07-14T18:00:00Z"}), "MissingPrice"),
        (doc({"timestamp": "2026-07-14T18:00:00Z", "price": None}), "MissingPrice"),
        (doc({"timestamp": "2026-07-14T18:00:00Z", "price": 0}), "BadHashprice"),
        (doc({"timestamp": "2026-07-14T18:00:00Z", "price": -3.2}), "BadHashprice"),
        ('{"data": [{"timestamp": "2026-07-14T18:00:00Z", "price": NaN}]}', "BadHashprice"),
        (doc({"timestamp": "2026-07-14T18:00:00Z", "price": "lots"}), "BadHashprice"),
        (doc({"timestamp": "2026-07-14T18:00:00Z", "price": 4.8e7}), "BadHashprice"),
        # an older good point does not stand in for a bad newest one
        (
            doc(
                {"timestamp": "2026-07-14T17:00:00Z", "price": 48},
                {"timestamp": "2026-07-14T18:00:00Z", "price": 0},
            ),
            "BadHashprice",
        ),
    ],
)
def test_bad_hashprice_is_refused(text: str, reason: str):
    with pytest.raises(SignalError) as err:
        parse(text)
    assert err.value.reason == reason
