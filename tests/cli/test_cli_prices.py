"""`dualcap prices`: the price in force from a report, or the reason it cannot be read."""

from __future__ import annotations

import json

from dualcap.cli import main
from tests.peers.feeds import DATA


def test_prints_the_price_in_force_as_json(capsys):
    code = main(
        [
            "prices",
            "-f",
            str(DATA / "np6-905-cd_spp_node_zone_hub_2026-07-14.json"),
            "-p",
            "HB_NORTH",
            "--at",
            "2026-07-14T22:50:00Z",
            "--hashprice",
            str(DATA / "luxor_hashprice_usd_phs_1h.json"),
            "-o",
            "json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["usdPerMWh"] == 8950.15
    assert doc["ageSeconds"] == 300.0
    assert len(doc["intervals"]) == 12
    assert doc["hashpriceUSDPerPHDay"] == 48.484


def test_a_fall_back_file_without_its_dst_flags_is_an_error(tmp_path, capsys):
    text = (DATA / "np6-905-cd_rt_spp_2026-11-01_fallback.csv").read_text().replace(",Y\n", ",N\n")
    path = tmp_path / "rt.csv"
    path.write_text(text)
    assert main(["prices", "-f", str(path), "-p", "HB_HOUSTON"]) == 2
    assert "DuplicateInterval" in capsys.readouterr().err
