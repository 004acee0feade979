"""A SunSpec AC meter on loopback for tests and the demo (never in the product): pymodbus's
own Modbus TCP server holding the registers.

The register map is what a real meter holds: the marker "SunS" at a base address, the
common model 1 (manufacturer, model, serial number), a meter model (203 by default: wye,
three phase) with ``W`` and ``W_SF`` where the SunSpec model puts them, then the end marker
0xFFFF. The test (or the demo) sets the power at run time; every read sees the current value.

Variants (keyword arguments): another base address, no marker, no meter model, a chain
without end marker, a bad scale factor (set it), a slow answer (``delay_seconds``, read on
every request). Stopped and started again, it answers on the same port.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

SUNS = [0x5375, 0x6E53]
END = [0xFFFF, 0]
NOT_IMPLEMENTED = 0x8000
COMMON_LENGTH = 66
METER_LENGTH = 105
W_OFFSET, W_SF_OFFSET = 16, 20


def uint16(value: int) -> int:
    if not -0x8000 <= value <= 0xFFFF:
        raise ValueError(f"{value} does not fit in a register")
    return value & 0xFFFF


def text(value: str, registers: int) -> list[int]:
    """A SunSpec string point: ASCII, two characters a register, NUL-padded."""
    raw = value.encode("ascii").ljust(registers * 2, b"\0")[: registers * 2]
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def common_model(serial: str) -> list[int]:
    body = (
        text("dualcap", 16)  # Mn
        + text("test meter", 16)  # Md
        + text("", 8)  # Opt
        + text("1.0", 8)  # Vr
        + text(serial, 16)  # SN
        + [1, NOT_IMPLEMENTED]  # DA, Pad
    )
    assert len(body) == COMMON_LENGTH
    return [1, COMMON_LENGTH, *body]


def meter_model(model_id: int) -> list[int]:
    body = [NOT_IMPLEMENTED] * METER_LENGTH
    body[14], body[15] = 6000, uint16(-2)  # Hz, Hz_SF: 60.00 Hz
    return [model_id, METER_LENGTH, *body]


def fitting_scale(watts: float) -> int:
    """The smallest scale factor (at least 0) at which ``watts`` fits in an int16 register."""
    scale = 0
    while abs(round(watts / 10**scale)) > 0x7FFF and scale < 10:
        scale += 1
    return scale


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (as the kernel saw it a moment ago)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SunSpecMeterPeer:
    """One meter on 127.0.0.1; ``port`` is known once started."""

    def __init__(
        self,
        *,
        base: int = 40000,
        unit_id: int = 1,
        model_id: int | None = 203,
        marker: bool = True,
        end_marker: bool = True,
        delay_seconds: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        serial: str = "DC-0001",
        reading: Callable[[], float] | None = None,
    ) -> None:
        """``reading``: the watts the meter holds, asked at every read (set at the finest
        scale that fits); without it the test sets them (``set_watts``)."""
        self.base = base
        self.reading = reading
        self.unit_id = unit_id
        self.host = host
        self.delay_seconds = delay_seconds
        self.reads = 0
        registers = (SUNS if marker else [0, 0]) + common_model(serial)
        self.meter_body: int | None = None
        if model_id is not None:
            self.meter_body = base + len(registers) + 2
            registers += meter_model(model_id)
        if end_marker:
            registers += END
        self.registers = registers
        self.port = port  # 0: the kernel picks one at the first start; a restart keeps it
        self._server: ModbusTcpServer | None = None

    def set_raw(self, w: int, w_sf: int) -> None:
        """Set the W and W_SF registers as a meter would hold them (int16 each)."""
        if self.meter_body is None:
            raise ValueError("this register map has no meter model")
        offset = self.meter_body - self.base
        self.registers[offset + W_OFFSET] = uint16(w)
        self.registers[offset + W_SF_OFFSET] = uint16(w_sf)

    def set_watts(self, watts: float, scale: int = 0) -> None:
        """Set the meter's reading: W = watts / 10**scale, rounded as a meter does."""
        self.set_raw(round(watts / 10**scale), scale)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> None:
        self.reads += 1
        if self.reading is not None:
            watts = self.reading()
            self.set_watts(watts, fitting_scale(watts))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        current_registers[:] = self.registers

    async def start(self) -> SunSpecMeterPeer:
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(self.base, values=list(self.registers), datatype=DataType.REGISTERS)],
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        listener: Any = self._server.transport
        self.port = int(listener.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> SunSpecMeterPeer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
