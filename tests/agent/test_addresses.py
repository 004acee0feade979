"""The block's miners from `dualcap.io/miners`: addresses, ranges, CIDRs; bad values."""

from __future__ import annotations

import time

from dualcap.agent.addresses import parse_miners
from dualcap.agent.credentials import Credentials, Login


def test_addresses_ranges_and_cidrs() -> None:
    parsed = parse_miners(" 10.0.0.9, 10.0.1.1-3 ,10.0.2.0/30,10.0.3.4/32, 10.0.0.9 ")
    assert parsed.ok
    assert parsed.addresses == [
        "10.0.0.9",
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
        "10.0.2.1",
        "10.0.2.2",
        "10.0.3.4",
    ]


def test_empty_and_absent() -> None:
    assert parse_miners(None).addresses == [] and parse_miners(None).ok
    assert parse_miners(" , ").addresses == []


def test_malformed_entries_are_reported_and_the_rest_kept() -> None:
    parsed = parse_miners("10.0.0.1, 10.0.0.300, banana, 10.0.0.9-4, 10.0.0.5-999, 10.0.0.2")
    assert parsed.addresses == ["10.0.0.1", "10.0.0.2"]
    assert len(parsed.errors) == 4 and not parsed.too_many
    assert any("banana" in e for e in parsed.errors)
    assert any("backwards" in e for e in parsed.errors)


def test_a_hundred_thousand_addresses_are_refused_whole_and_fast() -> None:
    t = time.monotonic()
    parsed = parse_miners("10.0.0.0/8")  # 16 million
    assert parsed.too_many and parsed.addresses == []
    value = ",".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000))
    parsed = parse_miners(value)
    assert parsed.too_many and parsed.addresses == []
    assert "more than 4096" in parsed.errors[-1]
    assert time.monotonic() - t < 5


def test_overlaps_inside_one_value_do_not_count_twice() -> None:
    parsed = parse_miners("10.0.0.0/20, 10.0.0.0/20")  # 4094 hosts, named twice
    assert parsed.ok and len(parsed.addresses) == 4094


def test_credentials_by_firmware_never_shown(tmp_path) -> None:
    (tmp_path / "luxos.username").write_text("root\n")
    (tmp_path / "luxos.password").write_text("s3cret\n")
    (tmp_path / "BraiinsOS.username").write_text("admin")
    (tmp_path / "junk").write_text("x")
    creds = Credentials(str(tmp_path))
    assert creds.for_firmware("LuxOS") == Login("root", "s3cret")
    assert creds.for_firmware("Braiins OS") == Login("admin", "")
    assert creds.for_firmware("VNish") is None
    assert "s3cret" not in repr(creds.for_firmware("LuxOS")) + repr(creds)
    assert Credentials(None).for_firmware("LuxOS") is None
    assert Credentials(str(tmp_path / "absent")).for_firmware("LuxOS") is None
