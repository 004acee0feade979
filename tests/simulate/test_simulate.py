"""`dualcap simulate`: the accounting, the policies, the shipped scenarios, bad input."""

from __future__ import annotations

import csv
import json
import re
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dualcap.simulate import ScenarioError, Totals, account, load, simulate
from tests.cli.test_cli_plan import run_cli
from tests.conftest import EXAMPLES

SCENARIOS = EXAMPLES / "scenarios"
HOURS = 2
DATA = Path(__file__).resolve().parent.parent / "peers" / "data"
RT_DAY = DATA / "np6-905-cd_rt_spp_2026-07-14_synthetic.csv"  # 96 intervals, 2 points
RT_FALLBACK = DATA / "np6-905-cd_rt_spp_2026-11-01_fallback.csv"  # 00:00 CDT..04:00 CST
DAM_DAY = DATA / "np4-190-cd_dam_spp_2026-07-15.csv"
DAM_FALLBACK = DATA / "np4-190-cd_dam_stlmnt_pnt_prices_2026-11-01_fallback.json"  # 25 hours
CENTRAL = ZoneInfo("America/Chicago")


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

    snap = build_fleet(sc.objects, sc.start).sites[sc.site]
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
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPriceUSDPerMWh: 1\nenergyPrices: {file: p.csv, settlementPoint: HB_HOUSTON}\n",
            "energyPriceUSDPerMWh or energyPrices, not both",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPrices: {file: p.csv, market: dam}\n",
            "which settlement point",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPrices: {file: p.csv, settlementPoint: HB_HOUSTON, market: spot}\n",
            "market 'spot': rt \\(NP6-905\\) or dam",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPrices: {path: p.csv}\n",
            "energyPrices: unknown field 'path'",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPrices: {}\n",
            "no price report: give energyPrices.file",
        ),
        (
            "siteObjects: site\nstart: '2026-07-14T00:00:00-05:00'\nhours: 1\nenergyPrices: p.csv\n",
            "energyPrices: a mapping with file, settlementPoint, market expected",
        ),
    ],
)
def test_bad_scenarios_get_one_clear_line(capsys, tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[")):
        load(path)
    code, _, err = run_cli(capsys, "simulate", str(path))
    assert code == 2 and err.startswith("dualcap simulate: error:") and err.count("\n") == 1


# --- energy prices from an ERCOT report ----------------------------------------------------


def on_report(
    tmp_path: Path, start: str, hours: float, prices: str, step: int = 5, **extra: str
) -> Path:
    """A scenario at the example site whose energy price is ``prices`` (a YAML line)."""
    more = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return write(tmp_path, f"""\
        name: on a report
        siteObjects: site
        start: "{start}"
        timezone: America/Chicago
        hours: {hours}
        stepMinutes: {step}
        {prices}
        hashpriceUSDPerPHDay: 45
        envelope: {{events: []}}
        """ + more)  # fmt: skip


def rows(path: Path, point: str) -> list[dict[str, str]]:
    with path.open() as f:
        return [r for r in csv.DictReader(f) if r.get("SettlementPointName", r.get("SettlementPoint")) == point]  # fmt: skip


def test_a_day_on_the_real_time_report(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(DATA)  # the report's path is the scenario's, relative
    path = on_report(
        tmp_path,
        "2026-07-14T00:00:00-05:00",
        24,
        f"energyPrices: {{file: data/{RT_DAY.name}, settlementPoint: hb_houston}}",
    )
    sc = load(path)
    assert sc.price_file is not None and sc.price_file.market == "rt"
    # Each 5-minute step has the price of its 15-minute interval, in the report's order:
    # a July day in Central daylight time, DeliveryHour 1 interval 1 at 00:00 local.
    published = [float(r["SettlementPointPrice"]) for r in rows(RT_DAY, "HB_HOUSTON")]
    assert len(published) == 96
    assert sc.prices == [published[i // 3] for i in range(288)]
    r = simulate(sc)
    d = r.totals["dualcap"]
    assert r.prices == sc.prices and len(r.times) == 288 and d.over_steps == 0
    assert r.times[0].astimezone(CENTRAL).strftime("%H:%M %Z") == "00:00 CDT"
    assert d.net_usd > r.totals["always-mine"].net_usd
    assert d.net_usd > r.totals["fixed-split"].net_usd
    # The real-time spike (412.60 at 17:15 local) is far above every controller's
    # break-even: nothing mines through it, while always-mine does.
    spike = [i for i, p in enumerate(r.prices) if p > 250]
    assert [r.times[i].astimezone(CENTRAL).strftime("%H:%M") for i in (spike[0], spike[-1])] == ["17:15", "17:40"]  # fmt: skip
    assert all(d.series["mining"][i] == 0 for i in spike)
    assert all(r.totals["always-mine"].series["mining"][i] > 0 for i in spike)


def test_negative_prices_are_simulated_as_published(tmp_path: Path) -> None:
    path = on_report(
        tmp_path,
        "2026-07-14T00:00:00-05:00",
        HOURS,
        f"energyPrices: {{file: {RT_DAY}, settlementPoint: HB_HOUSTON}}",
    )
    sc = load(path, settlement_point="LZ_WEST")  # the command line's point over the file's
    published = [float(r["SettlementPointPrice"]) for r in rows(RT_DAY, "LZ_WEST")]
    assert sc.prices == [published[i // 3] for i in range(HOURS * 12)]
    assert min(sc.prices) < 0
    d = simulate(sc).totals["dualcap"]
    cost = sum(
        (m + g + o) * p / 1000 / 12
        for m, g, o, p in zip(d.series["mining"], d.series["gpu"], d.series["overhead"], sc.prices, strict=True)
    )  # fmt: skip
    assert d.energy_cost_usd == pytest.approx(cost)
    assert d.energy_kwh["mining"] > 0  # a negative price is paid for mining, not refused


def test_an_afternoon_at_the_offer_cap_from_the_api_json(tmp_path: Path) -> None:
    json_report = DATA / "np6-905-cd_spp_node_zone_hub_2026-07-14.json"
    path = on_report(
        tmp_path,
        "2026-07-14T16:00:00-05:00",
        3,
        f"energyPrices: {{file: {json_report}, settlementPoint: HB_HOUSTON, market: rt}}",
    )
    r = simulate(load(path))
    d = r.totals["dualcap"]
    # As `dualcap prices` reads it at 22:50Z: 9,000 USD/MWh.
    at_cap = [i for i, t in enumerate(r.times) if t.astimezone(CENTRAL).strftime("%H:%M") == "17:50"]  # fmt: skip
    assert [r.prices[i] for i in at_cap] == [9000.0]
    assert all(d.series["mining"][i] == 0 for i, p in enumerate(r.prices) if p >= 1000)
    assert d.net_usd > r.totals["always-mine"].net_usd and d.over_steps == 0


def test_a_day_on_the_day_ahead_report(tmp_path: Path) -> None:
    path = on_report(
        tmp_path,
        "2026-07-15T00:00:00-05:00",
        24,
        f"energyPrices: {{file: {DAM_DAY}, settlementPoint: HB_HOUSTON, market: dam}}",
    )
    sc = load(path)
    hourly = {int(r["HourEnding"][:2]): float(r["SettlementPointPrice"]) for r in rows(DAM_DAY, "HB_HOUSTON")}  # fmt: skip
    assert sorted(hourly) == list(range(1, 25))
    # Hour ending h covers local [h-1:00, h:00): twelve 5-minute steps each.
    assert sc.prices == [hourly[i // 12 + 1] for i in range(288)]


def test_the_fall_back_day_has_25_hours_of_day_ahead_prices(tmp_path: Path) -> None:
    path = on_report(
        tmp_path,
        "2026-11-01T00:00:00-05:00",
        25,
        f"energyPrices: {{file: {DAM_FALLBACK}, settlementPoint: HB_HOUSTON, market: dam}}",
        step=60,
    )
    sc = load(path)
    data = json.loads(DAM_FALLBACK.read_text())["data"]
    assert sc.steps == 25 and sc.prices == [row[3] for row in data]
    r = simulate(sc)
    local = [t.astimezone(CENTRAL).strftime("%H %Z") for t in r.times]
    # 01:00 twice, daylight then standard time, each with its own price (16.9, then 15.8
    # with DSTFlag set); the scenario ends at local midnight.
    assert local[:4] == ["00 CDT", "01 CDT", "01 CST", "02 CST"] and local[-1] == "23 CST"
    assert r.prices[1:3] == [16.9, 15.8]
    assert r.totals["dualcap"].over_steps == 0


def test_the_fall_back_hour_of_real_time_prices(tmp_path: Path) -> None:
    path = on_report(
        tmp_path,
        "2026-11-01T00:00:00-05:00",
        5,
        f"energyPrices: {{file: {RT_FALLBACK}, settlementPoint: HB_HOUSTON}}",
    )
    sc = load(path)
    by_time = {
        (sc.start + i * sc.step).astimezone(CENTRAL).strftime("%H:%M %Z"): p
        for i, p in enumerate(sc.prices)
    }
    assert sc.steps == 60 and len(by_time) == 60
    # The repeated hour, the first pass (DSTFlag N) then the second (Y): as `dualcap prices`
    # prices 06:20Z and 07:20Z.
    assert by_time["01:20 CDT"] == 23.25 and by_time["01:20 CST"] == 24.73


def test_a_step_longer_than_an_interval_pays_their_mean(tmp_path: Path) -> None:
    path = on_report(
        tmp_path,
        "2026-11-01T00:00:00-05:00",
        5,
        f"energyPrices: {{file: {RT_FALLBACK}, settlementPoint: HB_HOUSTON}}",
        step=60,
    )
    published = [float(r["SettlementPointPrice"]) for r in rows(RT_FALLBACK, "HB_HOUSTON")]
    assert load(path).prices == pytest.approx(
        [sum(published[4 * h : 4 * h + 4]) / 4 for h in range(5)]
    )


def without_row(tmp_path: Path, source: Path, drop: str) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(drop)]
    assert len(kept) == len(lines) - 1
    out = tmp_path / "gap.csv"
    out.write_text("".join(kept))
    return out


@pytest.mark.parametrize(
    ("start", "hours", "report", "point", "message"),
    [
        # a report that ends before the scenario does: its end is the first uncovered time
        ("2026-11-01T00:00:00-05:00", 6, "fallback", "HB_HOUSTON",
         "has no HB_HOUSTON price for 2026-11-01T10:00Z \\(2026-11-01 04:00 CST\\), the first time"),
        # one that starts after it: the scenario's start
        ("2026-10-31T23:00:00-05:00", 2, "fallback", "HB_HOUSTON",
         "has no HB_HOUSTON price for 2026-11-01T04:00Z \\(2026-10-31 23:00 CDT\\), the first time"),
        ("2026-11-01T00:00:00-05:00", 1, "fallback", "HB_NOWHERE",
         "UnknownSettlementPoint: .* no prices for 'HB_NOWHERE' \\(points: HB_HOUSTON, LZ_WEST\\)"),
        # the second pass through the repeated hour, first interval, deleted
        ("2026-11-01T00:00:00-05:00", 1, "gap", "HB_HOUSTON",
         "Gap: .* no price from 2026-11-01T07:00Z to 2026-11-01T07:15Z"),
        ("2026-11-01T00:00:00-05:00", 1, "missing", "HB_HOUSTON", "missing.csv: No such file"),
    ],
)  # fmt: skip
def test_a_report_that_cannot_price_the_scenario_is_refused(
    capsys, tmp_path: Path, start: str, hours: int, report: str, point: str, message: str
) -> None:
    file = {
        "fallback": RT_FALLBACK,
        "gap": without_row(tmp_path, RT_FALLBACK, "11/01/2026,2,1,HB_HOUSTON,HU,24.36,Y"),
        "missing": tmp_path / "missing.csv",
    }[report]
    path = on_report(
        tmp_path, start, hours, f"energyPrices: {{file: {file}, settlementPoint: {point}}}"
    )
    with pytest.raises(ScenarioError, match=f"{re.escape(str(path))}: energyPrices: .*{message}"):
        load(path)
    code, _, err = run_cli(capsys, "simulate", str(path))
    assert code == 2 and err.startswith("dualcap simulate: error:") and err.count("\n") == 1


def test_the_command_line_prices_a_shipped_scenario_from_a_report(capsys) -> None:
    scenario = str(SCENARIOS / "ercot-summer-day.yaml")
    code, text, err = run_cli(
        capsys, "simulate", scenario, "--prices", str(RT_DAY), "--settlement-point", "HB_HOUSTON"
    )
    assert code == 0, err
    assert f"energy prices: HB_HOUSTON (real time, NP6-905) from {RT_DAY}" in text
    assert "dualcap earns" in text and "steps over the envelope" in text
    # The day-ahead report is for the next day: refused, naming the scenario's start.
    code, _, err = run_cli(
        capsys, "simulate", scenario, "--prices", str(DAM_DAY),
        "--settlement-point", "HB_HOUSTON", "--market", "dam",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert f"--prices: {DAM_DAY} has no HB_HOUSTON price for 2026-07-14T05:00Z" in err
    code, _, err = run_cli(capsys, "simulate", scenario, "--settlement-point", "HB_HOUSTON")
    assert code == 2 and "no price report: give energyPrices.file" in err
    code, _, err = run_cli(capsys, "simulate", scenario, "--prices", str(RT_DAY))
    assert code == 2 and "which settlement point?" in err
