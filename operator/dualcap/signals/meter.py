"""A SunSpec AC meter (models 201-204) read over Modbus TCP with pymodbus.

A SunSpec device's holding registers start with the marker "SunS" at a base address
(40000, 0 or 50000), followed by a chain of models, each a header (ID, length L) and L
registers, ended by ID 0xFFFF. An AC meter is the first of models 201 (single phase), 202
(split phase), 203 (wye) or 204 (delta): all four put the total real power ``W`` (int16)
at offset 16 of the model body and its scale factor ``W_SF`` (sunssf) at offset 20. The
site's draw is ``W * 10**W_SF`` watts, its sign set by the meter's convention.

The client keeps its connection and what it discovered between polls, so a steady poll is
one request of five registers; any failure forgets both and the next poll starts afresh.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from dualcap.api.measurement import SUNSPEC_BASE_ADDRESSES, SunSpecMeter
from dualcap.signals.reading import Reading, SignalError, utc_now

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL_ID = 0xFFFF
METER_MODELS = frozenset({201, 202, 203, 204})
W_OFFSET = 16  # within the model body (after ID and L)
W_SF_OFFSET = 20
NOT_IMPLEMENTED = 0x8000  # int16 and sunssf: the point is not implemented
SCALE_FACTOR_RANGE = range(-10, 11)
MAX_MODELS = 128  # a chain longer than this is not a SunSpec map
MODBUS_ADDRESSES = 65536

# Stable reasons (a condition's reason).
UNREACHABLE = "Unreachable"
TIMEOUT = "Timeout"
NO_SUNSPEC_MARKER = "NoSunSpecMarker"
NO_METER_MODEL = "NoMeterModel"
BAD_REGISTER_MAP = "BadRegisterMap"
SCALE_FACTOR_OUT_OF_RANGE = "ScaleFactorOutOfRange"
NOT_IMPLEMENTED_REASON = "NotImplemented"
NEGATIVE_READING = "NegativeReading"
DEVICE_ERROR = "DeviceError"

# The unit id keyword: `slave` before pymodbus 3.10, `device_id` since.
_UNIT_KEYWORD = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    else "slave"
)


class MeterError(SignalError):
    """The meter could not be read; ``reason`` is one of the constants above, and
    ``exception_code`` the Modbus exception code when the device answered with one."""

    def __init__(self, reason: str, message: str, exception_code: int | None = None) -> None:
        super().__init__(reason, message)
        self.exception_code = exception_code


@dataclass(frozen=True)
class MeterModel:
    """Where the meter's model sits in the register map."""

    base: int  # address of the "SunS" marker
    model_id: int  # 201..204
    body: int  # address of the model body (after ID and L)


def to_int16(register: int) -> int:
    return register - 0x10000 if register & 0x8000 else register


def site_watts(w: int, w_sf: int, sign: str) -> float:
    """The site's draw in W from the raw ``W`` and ``W_SF`` registers (uint16 each)."""
    if w == NOT_IMPLEMENTED:
        raise MeterError(NOT_IMPLEMENTED_REASON, "W reads 0x8000: the meter does not implement W")
    if w_sf == NOT_IMPLEMENTED:
        raise MeterError(
            NOT_IMPLEMENTED_REASON, "W_SF reads 0x8000: the meter does not implement W_SF"
        )
    scale = to_int16(w_sf)
    if scale not in SCALE_FACTOR_RANGE:
        raise MeterError(
            SCALE_FACTOR_OUT_OF_RANGE,
            f"W_SF is {scale}; a SunSpec scale factor lies in -10..10",
        )
    watts = to_int16(w) * math.pow(10, scale)
    draw = watts if sign == "Import" else -watts
    if draw < 0:
        raise MeterError(
            NEGATIVE_READING,
            f"the meter reads {watts:g} W, a site draw of {draw:g} W under the {sign} sign"
            " convention: the site would be exporting (check the meter's sign setting)",
        )
    return draw + 0.0  # -0.0 is 0


class SunSpecMeterClient:
    """Reads one SunSpec meter, poll after poll, over one Modbus TCP connection (one poll
    at a time: the poll loop awaits each read before the next)."""

    def __init__(
        self,
        meter: SunSpecMeter,
        *,
        timeout_seconds: float = 2.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.meter = meter
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self._client: AsyncModbusTcpClient | None = None
        self._model: MeterModel | None = None

    @property
    def where(self) -> str:
        return f"{self.meter.host}:{self.meter.port} unit {self.meter.unit_id}"

    @property
    def model(self) -> MeterModel | None:
        """The meter model found by the last successful poll."""
        return self._model

    async def read(self) -> Reading:
        """One reading of the site's draw; raises MeterError."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._read()
        except TimeoutError as err:
            self.close()
            raise MeterError(
                TIMEOUT, f"{self.where} did not answer within {self.timeout_seconds:g} s"
            ) from err
        except MeterError:
            self.close()
            raise
        except (OSError, ModbusException) as err:
            self.close()
            raise MeterError(UNREACHABLE, f"{self.where}: {err}") from err

    def close(self) -> None:
        """Drop the connection and what was discovered (the next read starts afresh)."""
        if self._client is not None:
            self._client.close()
        self._client = None
        self._model = None

    async def __aenter__(self) -> SunSpecMeterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _read(self) -> Reading:
        client = await self._connect()
        if self._model is None:
            self._model = await self._discover(client)
        w, _, _, _, w_sf = await self._registers(client, self._model.body + W_OFFSET, 5)
        return Reading(watts=site_watts(w, w_sf, self.meter.sign), at=self.clock())

    async def _connect(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        # No retries and no reconnecting of its own: the poll loop is the retry.
        client = AsyncModbusTcpClient(
            self.meter.host,
            port=self.meter.port,
            timeout=self.timeout_seconds,
            retries=0,
            reconnect_delay=0,
        )
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as err:
            client.close()
            raise MeterError(UNREACHABLE, f"cannot connect to {self.where}: {err}") from err
        if not connected:
            client.close()
            raise MeterError(UNREACHABLE, f"cannot connect to {self.where}")
        self._client = client
        return client

    async def _registers(self, client: AsyncModbusTcpClient, address: int, count: int) -> list[int]:
        """``count`` holding registers from ``address``; a Modbus exception response raises
        MeterError(DeviceError) with its code in ``exception_code``."""
        if address + count > MODBUS_ADDRESSES:
            raise MeterError(
                BAD_REGISTER_MAP,
                f"{self.where}: the register map runs past address 65535",
            )
        kwargs: dict[str, Any] = {"count": count, _UNIT_KEYWORD: self.meter.unit_id}
        try:
            response = await client.read_holding_registers(address, **kwargs)
        except ConnectionException as err:
            raise MeterError(UNREACHABLE, f"{self.where}: connection lost: {err}") from err
        except ModbusIOException as err:
            raise MeterError(TIMEOUT, f"{self.where}: no answer: {err}") from err
        except ModbusException as err:
            raise MeterError(DEVICE_ERROR, f"{self.where}: {err}") from err
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise MeterError(
                DEVICE_ERROR,
                f"{self.where} refused to read {count} registers at {address}"
                f" (Modbus exception code {code})",
                exception_code=code,
            )
        registers = list(response.registers)
        if len(registers) != count:
            raise MeterError(
                DEVICE_ERROR,
                f"{self.where} answered {len(registers)} registers at {address}, not {count}",
            )
        return registers

    async def _discover(self, client: AsyncModbusTcpClient) -> MeterModel:
        bases = (
            (self.meter.base_address,)
            if self.meter.base_address is not None
            else SUNSPEC_BASE_ADDRESSES
        )
        for base in bases:
            try:
                marker = await self._registers(client, base, 2)
            except MeterError as err:
                if err.reason != DEVICE_ERROR:
                    raise
                continue  # nothing readable there: try the next base
            if tuple(marker) == SUNS_MARKER:
                return await self._walk(client, base)
        tried = ", ".join(str(b) for b in bases)
        raise MeterError(
            NO_SUNSPEC_MARKER,
            f"{self.where}: no SunSpec marker 'SunS' at {tried}",
        )

    async def _walk(self, client: AsyncModbusTcpClient, base: int) -> MeterModel:
        address = base + 2
        seen: list[int] = []
        for _ in range(MAX_MODELS):
            try:
                model_id, length = await self._registers(client, address, 2)
            except MeterError as err:
                if err.reason != DEVICE_ERROR:
                    raise
                raise MeterError(
                    BAD_REGISTER_MAP,
                    f"{self.where}: the model chain from {base} breaks off at {address}"
                    f" (models {seen}, no end marker): {err.message}",
                ) from err
            if model_id == END_MODEL_ID:
                raise MeterError(
                    NO_METER_MODEL,
                    f"{self.where}: no AC meter model (201-204) in the SunSpec map at {base};"
                    f" models found: {seen}",
                )
            if model_id in METER_MODELS:
                if length < W_SF_OFFSET + 1:
                    raise MeterError(
                        BAD_REGISTER_MAP,
                        f"{self.where}: model {model_id} at {address} is {length} registers"
                        f" long, too short to hold W_SF",
                    )
                return MeterModel(base=base, model_id=model_id, body=address + 2)
            seen.append(model_id)
            address += 2 + length
        raise MeterError(
            BAD_REGISTER_MAP,
            f"{self.where}: more than {MAX_MODELS} models in the SunSpec map at {base}",
        )


async def read_meter(
    meter: SunSpecMeter,
    *,
    timeout_seconds: float = 2.0,
    clock: Callable[[], datetime] = utc_now,
) -> Reading:
    """One reading over a fresh connection (discovery included); raises MeterError."""
    async with SunSpecMeterClient(meter, timeout_seconds=timeout_seconds, clock=clock) as c:
        return await c.read()
