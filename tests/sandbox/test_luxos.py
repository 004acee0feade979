"""The real pyasic-rs against the fake LuxOS fleet: it identifies the fakes as LuxOS,
measures them, pauses and resumes them, and meets every fault the way it would meet a
real miner's."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from pyasic_rs import MinerFactory

from dualcap_sandbox.luxos import MODEL, FakeFleet, _addresses


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Polls ``check`` (the fake miner's physical state) until true; fails after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def fleet() -> Iterator[FakeFleet]:
    with FakeFleet(6, sleep_seconds=0.6, wake_seconds=1.2) as f:
        yield f


@pytest.fixture(autouse=True)
def healthy(fleet: FakeFleet) -> Iterator[None]:
    for m in fleet:
        m.force("mining")
    yield
    for ip, m in fleet.miners.items():
        if m.faults.unreachable:
            fleet.set_unreachable(ip, False)
        m.faults.__init__()  # type: ignore[misc]
        m.force("mining")


def raw(ip: str, payload: bytes) -> dict:
    """One request as asic-rs writes it, read to the terminator the way it reads."""
    with socket.create_connection((ip, 4028), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\x00"):
            chunk = s.recv(8192)
            if not chunk:
                break
            data += chunk
    return json.loads(data.rstrip(b"\x00"))


def test_loopback_addresses_beyond_127_0_0_1_are_bindable() -> None:
    # Linux routes all of 127/8 to lo: one fake per address needs no set-up
    s = socket.socket()
    try:
        s.bind(("127.77.3.9", 0))
        assert s.getsockname()[0] == "127.77.3.9"
    finally:
        s.close()


def test_addresses_skip_network_and_broadcast() -> None:
    ips = _addresses("127.200.7.250", 8)
    assert ips[:5] == [f"127.200.7.{i}" for i in range(250, 255)]
    assert ips[5:] == ["127.200.8.1", "127.200.8.2", "127.200.8.3"]


def test_the_wire_shapes_asic_rs_reads(fleet: FakeFleet) -> None:
    ip = fleet.addresses[0]
    # the identification probe has no terminator; the reply names LUXminer and the model
    version = raw(ip, b'{"command":"version"}')
    assert version["STATUS"][0]["STATUS"] == "S"
    assert "LUXMINER" in json.dumps(version).upper()
    assert version["VERSION"][0]["Type"] == MODEL
    # later commands end with a newline
    stats = raw(ip, b'{"command":"stats"}\n')
    assert stats["STATS"][1]["GHS 5s"] > 100_000
    power = raw(ip, b'{"command":"power"}\n')
    assert power["POWER"][0]["Watts"] > 3000
    assert raw(ip, b'{"command":"session"}\n')["SESSION"][0]["SessionID"] == ""
    sid = raw(ip, b'{"command":"logon"}\n')["SESSION"][0]["SessionID"]
    assert sid
    assert raw(ip, b'{"command":"logon"}\n')["STATUS"][0]["STATUS"] == "E"  # one session
    bad = raw(ip, b'{"command":"curtail","parameter":"nope,sleep"}\n')
    assert bad["STATUS"][0]["STATUS"] == "E"
    good = raw(ip, json.dumps({"command": "curtail", "parameter": f"{sid},sleep"}).encode())
    assert good["STATUS"][0]["STATUS"] == "S"
    assert fleet.miners[ip].phase() == "falling-asleep"
    chips = raw(ip, b'{"command":"healthchipget","parameter":"0"}\n')
    assert chips["STATUS"][0]["STATUS"] == "S" and chips["CHIPS"][0]["Board"] == 0
    assert raw(ip, b'{"command":"nonsense"}\n')["STATUS"][0]["Msg"] == "Invalid command"


def test_web_root_identifies_luxos(fleet: FakeFleet) -> None:
    if not fleet.web:
        pytest.skip("binding port 80 needs root here")
    ip = fleet.addresses[0]
    with socket.create_connection((ip, 80), timeout=5) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {ip}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(8192):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"Luxor Firmware" in data


async def test_pyasic_identifies_measures_pauses_and_resumes(fleet: FakeFleet) -> None:
    ip = fleet.addresses[1]
    fake = fleet.miners[ip]
    miner = await MinerFactory().get_miner(ip)
    assert miner is not None
    assert miner.firmware == "LuxOS" and "S19" in miner.model
    assert miner.supports_pause and miner.supports_resume
    hashrate = await miner.get_hashrate()
    assert hashrate is not None and 110 < float(hashrate) < 130  # TH/s
    watts = await miner.get_wattage()
    assert watts is not None and 3000 < watts < 3500

    assert await miner.pause() is True
    assert fake.sent("curtail")[-1].endswith(",sleep")
    assert fake.true_ths() == 0.0  # hashing stops at once; the draw takes its time
    assert fake.true_watts() > 1000
    await until(lambda: fake.phase() == "asleep", "asleep")
    assert fake.true_watts() == 25.0
    assert float(await miner.get_hashrate()) == 0.0
    assert (await miner.get_wattage()) < 30
    # asic-rs's LuxOS backend says "mining" whatever the miner does
    assert await miner.get_is_mining() is True

    assert await miner.resume() is True
    assert fake.sent("curtail")[-1].endswith(",wakeup")
    assert fake.phase() == "waking" and fake.true_ths() == 0.0
    await until(lambda: fake.true_watts() > 25, "drawing more than asleep")
    assert fake.phase() == "waking" and fake.true_watts() < 3250  # ramping
    await until(lambda: fake.phase() == "mining", "mining")
    assert float(await miner.get_hashrate()) > 110
    # asic-rs reuses the open session: one logon for both commands
    assert len(fake.sent("logon")) == 1


async def test_faults_as_pyasic_meets_them(fleet: FakeFleet) -> None:
    f = MinerFactory()
    unknown, refusing, nologon, off = fleet.addresses[2:6]

    fleet.miners[unknown].faults.unknown_device = True
    assert await f.get_miner(unknown) is None

    miner = await f.get_miner(refusing)
    assert miner is not None
    fleet.miners[refusing].faults.refuse = {"curtail"}
    with pytest.raises(RuntimeError, match="error status"):
        await miner.pause()
    assert fleet.miners[refusing].phase() == "mining"

    miner = await f.get_miner(nologon)
    assert miner is not None
    fleet.miners[nologon].faults.logon_refused = True
    with pytest.raises(RuntimeError, match="session"):
        await miner.pause()

    miner = await f.get_miner(off)
    assert miner is not None
    fleet.set_unreachable(off)
    assert await miner.get_hashrate() is None
    assert await miner.get_wattage() is None
    assert await f.get_miner(off) is None


async def test_slow_and_silent_miners(fleet: FakeFleet) -> None:
    ip = fleet.addresses[0]
    miner = await MinerFactory().get_miner(ip)
    assert miner is not None
    fleet.miners[ip].faults.delay = 0.5
    t = time.monotonic()
    assert (await miner.get_wattage()) > 3000
    assert time.monotonic() - t >= 0.5
    fleet.miners[ip].faults.delay = 0.0
    fleet.set_silent(ip)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(miner.get_wattage(), 1.0)


async def test_reboot_into_mining_and_the_stale_summary(fleet: FakeFleet) -> None:
    ip = fleet.addresses[1]
    fake = fleet.miners[ip]
    fake.faults.flag_mining_while_asleep = True
    miner = await MinerFactory().get_miner(ip)
    assert miner is not None
    assert await miner.pause()
    await until(lambda: fake.phase() == "asleep", "asleep")
    summary = raw(ip, b'{"command":"summary"}\n')
    assert summary["SUMMARY"][0]["GHS 5s"] > 0  # the flag lies
    assert float(await miner.get_hashrate()) == 0.0  # the measurement does not
    fake.reboot_into_mining()
    assert fake.phase() == "waking"
    await until(lambda: fake.phase() == "mining", "mining")
    assert fake.true_watts() == fake.nominal_watts
    # the reboot dropped the session: asic-rs logs on again
    assert await miner.pause()
    assert len(fake.sent("logon")) == 2


async def test_every_command_asic_rs_sends_is_one_the_fake_answers(fleet: FakeFleet) -> None:
    ip = fleet.addresses[2]
    fake = fleet.miners[ip]
    miner = await MinerFactory().get_miner(ip)
    assert miner is not None
    # identification went to both ports asic-rs probes: the web root and the RPC API
    if fleet.web:
        assert fake.web_requests and fake.web_requests[0].startswith("GET / HTTP/1.1")
    assert {"version", "devdetails"} <= {c for _, c, _ in fake.commands}
    data = await miner.get_data()
    assert data.wattage is not None and data.wattage > 3000
    assert data.hashrate is not None and float(data.hashrate) > 110
    sent = {c for _, c, _ in fake.commands}
    assert {"voltageget", "healthchipget", "config", "devs"} <= sent
    assert all(hasattr(fake, "_cmd_" + c) for c in sent), sent
