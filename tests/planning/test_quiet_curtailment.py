"""A block being curtailed whose agent has gone quiet (curtailment MinerAgent, no fresh
MinerBlock report): nothing carries the curtailment to its miners, so the power it draws
is not about to be freed - the rest of the site makes room for it. Found by the meter
campaign (tests/campaign/meter.py, seed 5): a block whose agent had been killed was
curtailed by a cut and then counted as freeing its power for good, and the site stayed
above the limit."""

from __future__ import annotations

from dualcap.api.site import ControllerState
from dualcap.planning import plan
from dualcap.planning.commands import Kind
from tests.planning.builders import T0, asic, budget, site, snapshot


def miner_agent_site() -> dict:
    obj = site()
    obj["spec"]["asic"] = {**obj["spec"]["asic"], "curtailment": "MinerAgent", "staleAfterSeconds": 60}  # fmt: skip
    return obj


def test_a_quiet_block_being_curtailed_frees_nothing_so_another_is_curtailed() -> None:
    # 1,000 kW each; no MinerBlock reports at all: every block counts at its nameplate.
    snap = snapshot(
        miner_agent_site(),
        budget(limit_kw=2_500),
        asic("a", curtailed_at=T0, mining=False),
        asic("b"),
        asic("c"),
    )
    assert snap.controllers[0].state is ControllerState.CURTAILING
    assert "a" in snap.unreported
    p = plan(snap, T0)
    assert len(p.mining) == 1  # b and c do not both fit beside a's 1,000 kW
    assert [c.name for c in p.commands if c.kind is Kind.CURTAIL] in (["b"], ["c"])


def test_with_room_for_it_nothing_more_is_curtailed() -> None:
    snap = snapshot(
        miner_agent_site(),
        budget(limit_kw=3_500),
        asic("a", curtailed_at=T0, mining=False),
        asic("b"),
        asic("c"),
    )
    p = plan(snap, T0)
    assert sorted(p.mining) == ["b", "c"]
    assert not [c for c in p.commands if c.kind is Kind.CURTAIL and c.name != "a"]
