"""The SunSpec meter client against pymodbus's own Modbus TCP server holding a meter's map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dualcap.api.measurement import SunSpecMeter
from dualcap.signals import meter as m
from dualcap.signals.meter import MeterError, SunSpecMeterClient, read_meter
from dualcap_sandbox.sunspec import NOT_IMPLEMENTED, SunSpecMeterPeer, free_port


def spec(peer: SunSpecMeterPeer, **extra: Any) -> SunSpecMeter:
    return SunSpecMeter.model_validate({"host": "127.0.0.1", "port": peer.port, **extra})


async def failure(peer: SunSpecMeterPeer, timeout_seconds: float = 2.0, **extra: Any) -> MeterError:
    with pytest.raises(MeterError) as caught:
        await read_meter(spec(peer, **extra), timeout_seconds=timeout_seconds)
    return caught.value


@pytest.mark.parametrize("scale", [-2, -1, 0, 1, 2])
@pytest.mark.parametrize(
    ("sign", "raw"),
    [("Import", 12345), ("Export", -12345), ("Import", 0), ("Export", 0)],
)
async def test_reading_scaled_and_signed(scale: int, sign: str, raw: int) -> None:
    async with SunSpecMeterPeer() as peer:
        peer.set_raw(raw, scale)
        reading = await read_meter(spec(peer, sign=sign))
    assert reading.watts == pytest.approx(abs(raw) * 10.0**scale)
    assert abs(reading.at - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("model_id", [201, 202, 203, 204])
async def test_every_ac_meter_model_is_read(model_id: int) -> None:
    async with SunSpecMeterPeer(model_id=model_id) as peer:
        peer.set_watts(1_850_000, 2)
        async with SunSpecMeterClient(spec(peer)) as client:
            assert (await client.read()).watts == 1_850_000
            assert client.model is not None and client.model.model_id == model_id


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_marker_discovered_at_each_standard_base(base: int) -> None:
    async with SunSpecMeterPeer(base=base) as peer:
        peer.set_watts(900_000, 2)
        async with SunSpecMeterClient(spec(peer)) as client:
            assert (await client.read()).watts == 900_000
            assert client.model is not None and client.model.base == base


async def test_a_configured_base_address_is_the_only_one_tried() -> None:
    async with SunSpecMeterPeer(base=1000) as peer:
        peer.set_watts(700, 0)
        assert (await read_meter(spec(peer, baseAddress=1000))).watts == 700
        err = await failure(peer)
        assert err.reason == m.NO_SUNSPEC_MARKER
        assert "40000, 0, 50000" in err.message


async def test_unit_id_is_sent() -> None:
    async with SunSpecMeterPeer(unit_id=7) as peer:
        peer.set_watts(1234, 0)
        assert (await read_meter(spec(peer, unitId=7))).watts == 1234


async def test_the_value_follows_the_meter_one_request_per_poll() -> None:
    async with SunSpecMeterPeer() as peer, SunSpecMeterClient(spec(peer)) as client:
        peer.set_watts(1_000_000, 2)
        assert (await client.read()).watts == 1_000_000
        before = peer.reads
        for watts in (1_100_000, 1_250_000, 800_000):
            peer.set_watts(watts, 2)
            assert (await client.read()).watts == watts
        assert peer.reads - before == 3  # discovery is kept between polls


async def test_a_meter_that_asks_for_its_reading_holds_a_whole_site() -> None:
    # The demo's meter: the watts asked at every read, tens of MW at the scale that fits
    # W's int16 (49.8 MW at W_SF 4: 10 kW steps), a few kW at W_SF 0.
    held = [49_812_345.0]
    async with (
        SunSpecMeterPeer(reading=lambda: held[0]) as peer,
        SunSpecMeterClient(spec(peer)) as client,
    ):
        assert (await client.read()).watts == 49_810_000
        held[0] = 2_345.0
        assert (await client.read()).watts == 2_345


async def test_a_failed_poll_starts_afresh_and_recovers() -> None:
    async with SunSpecMeterPeer() as peer, SunSpecMeterClient(spec(peer)) as client:
        peer.set_raw(100, 11)
        with pytest.raises(MeterError) as caught:
            await client.read()
        assert caught.value.reason == m.SCALE_FACTOR_OUT_OF_RANGE
        assert client.model is None
        peer.set_raw(100, 1)
        assert (await client.read()).watts == 1000


async def test_unreachable() -> None:
    port = free_port()
    meter = SunSpecMeter(host="127.0.0.1", port=port)
    with pytest.raises(MeterError) as caught:
        await read_meter(meter, timeout_seconds=1.0)
    assert caught.value.reason == m.UNREACHABLE
    assert str(port) in caught.value.message


async def test_timeout() -> None:
    async with SunSpecMeterPeer(delay_seconds=1.5) as peer:
        peer.set_watts(1000)
        err = await failure(peer, timeout_seconds=0.3)
    assert err.reason == m.TIMEOUT


async def test_no_sunspec_marker() -> None:
    async with SunSpecMeterPeer(marker=False) as peer:
        assert (await failure(peer)).reason == m.NO_SUNSPEC_MARKER


async def test_no_meter_model() -> None:
    async with SunSpecMeterPeer(model_id=None) as peer:
        err = await failure(peer)
    assert err.reason == m.NO_METER_MODEL
    assert "[1]" in err.message  # the common model was found


async def test_a_chain_without_end_marker_is_a_bad_register_map() -> None:
    async with SunSpecMeterPeer(model_id=None, end_marker=False) as peer:
        assert (await failure(peer)).reason == m.BAD_REGISTER_MAP


@pytest.mark.parametrize("w_sf", [11, -11, 127, -32767])
async def test_scale_factor_out_of_range(w_sf: int) -> None:
    async with SunSpecMeterPeer() as peer:
        peer.set_raw(1000, w_sf)
        err = await failure(peer)
    assert err.reason == m.SCALE_FACTOR_OUT_OF_RANGE
    assert str(w_sf) in err.message


@pytest.mark.parametrize(("w", "w_sf"), [(NOT_IMPLEMENTED, 0), (1000, NOT_IMPLEMENTED)])
async def test_not_implemented(w: int, w_sf: int) -> None:
    async with SunSpecMeterPeer() as peer:
        peer.registers[peer.meter_body - peer.base + 16] = w  # type: ignore[operator]
        peer.registers[peer.meter_body - peer.base + 20] = w_sf  # type: ignore[operator]
        assert (await failure(peer)).reason == m.NOT_IMPLEMENTED_REASON


@pytest.mark.parametrize(("sign", "raw"), [("Import", -500), ("Export", 500)])
async def test_negative_reading(sign: str, raw: int) -> None:
    async with SunSpecMeterPeer() as peer:
        peer.set_raw(raw, 1)
        err = await failure(peer, sign=sign)
    assert err.reason == m.NEGATIVE_READING
    assert sign in err.message


@pytest.mark.parametrize(
    ("w", "w_sf", "sign", "watts"),
    [
        (0x7FFF, 0, "Import", 32767.0),
        (0x8001, 0, "Export", 32767.0),  # int16 -32767
        (1, -10, "Import", 1e-10),
        (1, 10, "Import", 1e10),
    ],
)
def test_register_semantics(w: int, w_sf: int, sign: str, watts: float) -> None:
    assert m.site_watts(w, w_sf & 0xFFFF, sign) == pytest.approx(watts)


async def test_a_meter_that_goes_away_fails_within_the_timeout_then_is_unreachable() -> None:
    peer = await SunSpecMeterPeer().start()
    peer.set_watts(1000)
    async with SunSpecMeterClient(spec(peer), timeout_seconds=0.5) as client:
        assert (await client.read()).watts == 1000
        await peer.stop()
        reasons = []
        for _ in range(2):
            with pytest.raises(MeterError) as caught:
                await client.read()
            reasons.append(caught.value.reason)
    assert reasons[0] in (m.TIMEOUT, m.UNREACHABLE)
    assert reasons[1] == m.UNREACHABLE
