"""The randomized fault campaign, small budget (`make test`); `make soak` runs a large one.

Prints its figures (pytest -s shows them; `make soak` prints them always)."""

from __future__ import annotations

import os

from tests.campaign.campaign import campaign

SEQUENCES = int(os.environ.get("DUALCAP_CAMPAIGN_SEQUENCES", "2"))
STEPS = int(os.environ.get("DUALCAP_CAMPAIGN_STEPS", "10"))
SEED = int(os.environ.get("DUALCAP_CAMPAIGN_SEED", "1"))


async def test_campaign_finds_no_violation() -> None:
    stats = await campaign(SEQUENCES, STEPS, SEED, shrink_failures=False)
    print(f"\ncampaign: {stats.line()}")
    assert stats.sequences == SEQUENCES and stats.steps == SEQUENCES * STEPS
    assert stats.violations == [], "\n".join(stats.violations)
    assert stats.writes > 0  # the operator did act


async def test_campaign_traffic_stays_inside_the_chart_role() -> None:
    import pytest

    pytest.importorskip("helm_python", reason="helm-python-sdk is part of the test extras")
    from tests.chart.test_chart import rules

    stats = await campaign(1, STEPS, SEED + 100, shrink_failures=False)
    assert stats.violations == [], "\n".join(stats.violations)
    assert stats.traffic and stats.traffic <= rules({})
