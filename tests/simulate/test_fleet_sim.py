"""`dualcap simulate --fleet`: the fleet rule against round robin and most-free-GPUs on a
synthetic day; the same sites, jobs and accounting for all three."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualcap.cli import main
from dualcap.simulate.fleet import POLICIES, simulate_fleet, synthetic


def test_the_synthetic_fleet_is_what_the_issue_asks() -> None:
    sites, jobs = synthetic(seed=1)
    assert len(sites) == 40 and len(jobs) == 2_000
    assert {s.market for s in sites} == {"evening-peak", "flat", "hydro", "negative-nights"}
    assert min(s.limit_kw for s in sites) == 5_000 and max(s.limit_kw for s in sites) == 150_000
    assert any(s.window for s in sites) and any(s.event for s in sites)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fleet_rule_earns_more_and_keeps_fewer_waiting(seed: int) -> None:
    results = simulate_fleet(seed=seed, sites=20, jobs=800)
    assert set(results) == set(POLICIES)
    d = results["dualcap"]
    for name, t in results.items():
        assert t.net_usd == pytest.approx(t.gpu_usd + t.mining_usd - t.energy_usd)
        assert t.net[-1] == pytest.approx(t.net_usd)
        if name != "dualcap":
            assert d.net_usd >= t.net_usd, name
            assert d.gpu_hours >= t.gpu_hours - 1e-6, name
            assert sum(d.waiting) <= sum(t.waiting), name


def test_the_command_prints_the_table_and_draws_the_chart(tmp_path: Path, capsys) -> None:
    chart = tmp_path / "fleet.png"
    assert main(["simulate", "--fleet", "--sites", "6", "--jobs", "60", "-o", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "dualcap against the naive placements: round-robin:" in out
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert main(["simulate", "--fleet", "examples/scenarios/ercot-summer-day.yaml"]) == 2
    assert main(["simulate", "--fleet", "--sites", "0"]) == 2
    assert main(["simulate"]) == 2
