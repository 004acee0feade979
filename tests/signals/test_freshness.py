"""A reading knows its age; the age is a metric."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dualcap.signals.freshness import Signal, SignalAge

AT = datetime(2026, 7, 14, 18, tzinfo=UTC)


def test_age_and_freshness():
    s = Signal(42.0, AT, "luxor")
    assert s.age(AT + timedelta(seconds=90)) == 90.0
    assert s.fresh(AT + timedelta(seconds=90), timedelta(minutes=2))
    assert not s.fresh(AT + timedelta(seconds=121), 120)
    assert s.age(AT - timedelta(seconds=5)) == 0.0  # a source clock ahead of ours


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        Signal(1, datetime(2026, 7, 14, 18), "file")


def test_the_metric_per_site_and_source():
    metric = SignalAge()
    metric.observe("tx-rockdale-1", "hashprice", Signal(48.0, AT, "x"), AT + timedelta(seconds=30))
    metric.observe("tx-rockdale-1", "ercot-rt", Signal([], AT, "x"), AT + timedelta(seconds=300))
    assert metric.value("tx-rockdale-1", "hashprice") == 30.0
    assert metric.value("tx-rockdale-1", "ercot-rt") == 300.0
    assert metric.value("tx-rockdale-1", "openadr") is None
