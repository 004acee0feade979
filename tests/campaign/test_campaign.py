"""The randomized fault campaign, small budget (`make test`); `make soak` runs a large one.

Prints its figures (pytest -s shows them; `make soak` prints them always)."""

from __future__ import annotations

import os

from tests.campaign.campaign import Stats, campaign

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


# The MinerAgent campaign (tests.campaign.miners): fake miners, their agents, the true draw.
MINER_SEEDS = [int(s) for s in os.environ.get("DUALCAP_CAMPAIGN_MINER_SEEDS", "21").split(",")]
MINER_STEPS = int(os.environ.get("DUALCAP_CAMPAIGN_MINER_STEPS", "12"))


async def seeded(mode: str, seeds: list[int], steps: int) -> Stats:
    """One sequence of ``steps`` for each seed (each replays alone: its seed is its first)."""
    stats = Stats()
    for seed in seeds:
        one = await campaign(1, steps, seed, shrink_failures=False, mode=mode)
        stats.sequences += one.sequences
        stats.steps += one.steps
        stats.writes += one.writes
        stats.samples += one.samples
        stats.miner_faults += one.miner_faults
        stats.meter_faults += one.meter_faults
        stats.agent_kills += one.agent_kills
        stats.agent_restarts += one.agent_restarts
        stats.restarts += one.restarts
        stats.kinds += one.kinds
        stats.violations += one.violations
    print(f"\ncampaign ({mode}): {stats.line()}")
    return stats


async def test_miner_campaign_keeps_the_true_draw_within_the_limit() -> None:
    stats = await seeded("miners", MINER_SEEDS, MINER_STEPS)
    assert stats.steps == len(MINER_SEEDS) * MINER_STEPS
    assert stats.violations == [], "\n".join(stats.violations)
    assert stats.writes > 0 and stats.samples > 0 and stats.miner_faults > 0


# The meter campaign (tests.campaign.meter): the same with a SunSpec site meter, an
# unmodelled load and the meter's faults. Seed 86: 12 kW of unmodelled load, a cut to 15 kW
# (below what the load and the fixed load leave: everything is shed), the meter silent.
METER_SEEDS = [int(s) for s in os.environ.get("DUALCAP_CAMPAIGN_METER_SEEDS", "86").split(",")]
METER_STEPS = int(os.environ.get("DUALCAP_CAMPAIGN_METER_STEPS", "10"))


async def test_meter_campaign_keeps_the_metered_draw_within_the_limit() -> None:
    stats = await seeded("meter", METER_SEEDS, METER_STEPS)
    assert stats.steps == len(METER_SEEDS) * METER_STEPS
    assert stats.violations == [], "\n".join(stats.violations)
    assert stats.writes > 0 and stats.samples > 0 and stats.meter_faults > 0
    assert stats.kinds["meter_load"] > 0
