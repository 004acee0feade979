"""Time over the envelope and compliance are judged as the utility judges the site: on a
fresh meter reading where one exists, else on the committed draw."""

from __future__ import annotations

from datetime import UTC, datetime

from dualcap.cluster.metrics import judged_kw
from dualcap.planning.decisions import MeterOutcome

AT = datetime(2026, 7, 14, 18, 0, tzinfo=UTC)


def outcome(metered_kw: float | None, fresh: bool) -> MeterOutcome:
    return MeterOutcome(
        metered_kw=metered_kw,
        metered_at=AT if metered_kw is not None else None,
        fresh=fresh,
        modelled_kw=40_000.0,
        unmodelled_kw=0.0,
        reason="MeterFresh" if fresh else "MeterStale",
        message="",
        disagrees=False,
    )


def test_a_fresh_meter_is_the_judge_above_or_below_the_model() -> None:
    assert judged_kw(40_000.0, outcome(51_000.0, fresh=True)) == 51_000.0
    assert judged_kw(40_000.0, outcome(38_000.0, fresh=True)) == 38_000.0


def test_without_a_fresh_reading_the_committed_draw_is() -> None:
    assert judged_kw(40_000.0, None) == 40_000.0
    assert judged_kw(40_000.0, outcome(51_000.0, fresh=False)) == 40_000.0
    assert judged_kw(40_000.0, outcome(None, fresh=False)) == 40_000.0
