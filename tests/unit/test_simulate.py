"""`dualcap simulate`: the accounting, the policies, the shipped scenarios, bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dualcap.simulate import ScenarioError, Totals, account, load, simulate
from tests.conftest import EXAMPLES
from tests.unit.test_cli_plan import run_cli

SCENARIOS = EXAMPLES / "scenarios"
HOURS = 2


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "site").symlink_to(EXAMPLES)
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def flat(tmp_path: Path, price: float, hashprice: float = 45, leases: str = "") -> Path:
    return write(tmp_path, f"""\
        name: flat
        siteObjects: site
        start: "2026-03-10T00:00:00-05:00"
        timezone: America/Chicago
        hours: {HOURS}
        stepMinutes: 5
        energyPriceUSDPerMWh: {price}
        hashpriceUSDPerPHDay: {hashprice}
        envelope: {{events: []}}
        {leases}
        """)  # fmt: skip


def test_account_by_hand() -> None:
    sc = load(SCENARIOS / "ercot-summer-day.yaml")
    from dualcap.planning import build_fleet

    snap = build_fleet(sc.objects).sites[sc.site]
    c = next(c for c in snap.controllers if c.power_kw == 1900)
    t = Totals()
    account(t, snap, {c.name}, [(8, 2.0)], 10_000, price=50, hashprice=45, hours=0.5)
    pue, nodes = snap.pue, [n for n in snap.gpu_nodes.values() if n.schedulable]
    gpu_kw = pue * (sum(n.idle_kw for n in nodes) + 8 * snap.max_per_gpu_kw)
    assert t.energy_kwh["mining"] == pytest.approx(pue * 1900 * 0.5)
    assert t.energy_kwh["gpu"] == pytest.approx(gpu_kw * 0.5)
    assert t.energy_kwh["overhead"] == pytest.approx(snap.fixed_kw * 0.5)
    assert t.revenue_usd["mining"] == pytest.approx(c.hashrate_ths * 45 / 1000 / 24 * 0.5)
    assert t.revenue_usd["gpu"] == pytest.approx(8 * 2.0 * 0.5)
    total_kw = pue * 1900 + gpu_kw + snap.fixed_kw
    assert t.energy_cost_usd == pytest.approx(total_kw * 50 / 1000 * 0.5)
    assert t.gpu_hours == pytest.approx(4.0) and t.over_steps == 0
    assert t.net_usd == pytest.approx(t.revenue_usd["mining"] + 8 - t.energy_cost_usd)


def test_cheap_energy_mines_what_the_envelope_allows(tmp_path: Path) -> None:
    r = simulate(load(flat(tmp_path, price=20)))
    d, a = r.totals["dualcap"], r.totals["always-mine"]
    steps = HOURS * 12
    assert len(d.series["mining"]) == steps
    # Every step accounted: energy is the sum of the draw series over 5-minute steps.
    assert d.energy_kwh["mining"] == pytest.approx(sum(d.series["mining"]) / 12)
    assert all(sum(k) <= lim + 1e-6 for *k, lim in zip(*(d.series[x] for x in ("mining", "gpu", "overhead", "limit")), strict=True))  # fmt: skip
    # Below every controller's break-even, dualcap mines as much as always-mine (±1 unit
    # of knapsack rounding) and earns as much.
    assert d.energy_kwh["mining"] >= a.energy_kwh["mining"] * 0.96
    assert d.net_usd >= a.net_usd * 0.96 and d.over_steps == 0


def test_expensive_energy_stops_mining_and_beats_always_mine(tmp_path: Path) -> None:
    r = simulate(load(flat(tmp_path, price=500)))
    d, a = r.totals["dualcap"], r.totals["always-mine"]
    assert d.energy_kwh["mining"] == 0 and d.revenue_usd["mining"] == 0
    assert a.energy_kwh["mining"] > 0 and a.net_usd < d.net_usd < 0  # fixed load still costs


def test_leases_run_before_mining_and_end(tmp_path: Path) -> None:
    leases = """leases:
          - {name: a, namespace: acme, arriveAfterHours: 0.5, hours: 1, gpus: 16, pricePerGPUHourUSD: 2}
        """
    r = simulate(load(flat(tmp_path, price=20, leases=leases)))
    d = r.totals["dualcap"]
    assert d.gpu_hours == pytest.approx(16.0)  # 16 GPUs for one hour
    assert d.revenue_usd["gpu"] == pytest.approx(32.0)


@pytest.mark.parametrize("without", ["gpu", "asic"])
def test_a_site_of_one_kind_simulates(tmp_path: Path, without: str) -> None:
    leases = """leases:
          - {name: a, namespace: acme, arriveAfterHours: 0.5, hours: 1, gpus: 16, pricePerGPUHourUSD: 2}
        """
    sc = load(flat(tmp_path, price=20, leases=leases))
    del next(o for o in sc.objects if o["kind"] == "Site")["spec"][without]
    d = simulate(sc).totals["dualcap"]
    assert d.over_steps == 0
    if without == "gpu":  # mining-only: it mines, and admits no lease
        assert d.revenue_usd["mining"] > 0 and d.gpu_hours == 0
    else:  # GPU-only: the lease runs, nothing is mined
        assert d.revenue_usd["mining"] == 0 and d.gpu_hours == pytest.approx(16.0)


@pytest.mark.parametrize("name", ["ercot-summer-day", "ercot-scarcity-2023-08-17"])
def test_shipped_scenarios(name: str, tmp_path: Path) -> None:
    sc = load(SCENARIOS / f"{name}.yaml")
    assert "synthetic" in sc.name.lower()
    text = (SCENARIOS / f"{name}.yaml").read_text()
    assert "SYNTHETIC DATA" in text
    r = simulate(sc)
    d = r.totals["dualcap"]
    assert d.over_steps == 0 and len(r.times) == 288
    assert d.net_usd > r.totals["always-mine"].net_usd
    assert d.net_usd > r.totals["fixed-split"].net_usd
    if "scarcity" in name:
        assert max(r.prices) >= 1000
        # No mining while prices are in the thousands.
        hot = [i for i, p in enumerate(r.prices) if p >= 1000]
        assert hot and all(d.series["mining"][i] == 0 for i in hot)


def test_cli_writes_a_chart(capsys, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "day.png"
    code, text, err = run_cli(
        capsys, "simulate", str(SCENARIOS / "ercot-summer-day.yaml"), "-o", str(out)
    )
    assert code == 0, err
    assert "dualcap earns" in text and f"chart: {out}" in text
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: x\n", "missing field 'siteObjects'"),
        ("siteObjects: nowhere\nstart: x\nhours: 1\n", "does not exist"),
        ("siteObjects: site\nstart: 2026-07-14T00:00:00\nhours: 1\n", "UTC offset"),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\ntimezone: Mars/Base\n",
            "timezone",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPriceUSDPerMWh: [-1]\nhashpriceUSDPerPHDay: 1\n",
            "non-negative",
        ),
        ("siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 0\n", "hours must be"),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPriceUSDPerMWh: 1\nhashpriceUSDPerPHDay: 1\nleases: [{name: a}]\n",
            "leases[0]",
        ),
        ("- a list\n", "a mapping expected"),
    ],
)
def test_bad_scenarios_get_one_clear_line(capsys, tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[")):
        load(path)
    code, _, err = run_cli(capsys, "simulate", str(path))
    assert code == 2 and err.startswith("dualcap simulate: error:") and err.count("\n") == 1
