"""A fleet of fake LuxOS miners for tests and the demo (never in the product): each one listens on its own loopback address
(127.x.y.z) on port 4028 (LuxOS's cgminer-style JSON API) and on port 80 (the web root
asic-rs probes to identify firmware), and answers what the real asic-rs (pyasic-rs) sends.

Wire shapes, as read in asic-rs's source (asic-rs-core/src/util.rs, factory.rs and
asic-rs-firmwares/luxminer):
- identification: asic-rs opens 127.x.y.z:4028 and writes `{"command":"version"}` with no
  terminator (and `{"command":"devdetails"}` for other firmwares), then reads until `\\0`,
  `\\n` or EOF. A LuxOS miner is one whose upper-cased reply contains "LUXMINER"; its model
  is `VERSION[0].Type` ("Antminer S19k Pro"). In parallel it GETs `http://127.x.y.z/` and
  takes a body containing "Luxor Firmware" as LuxOS too.
- every later command is its own connection: `{"command":"stats"}` + `\\n`; replies are
  accepted when `STATUS[0].STATUS` is "S" or "I". Hashrate is `STATS[1]["GHS 5s"]` (GH/s),
  wattage `POWER[0].Watts`. `get_data()` also sends config, devs, events, fans, pools,
  profiles, summary, temps, and `voltageget` / `healthchipget` with a board ("0".."2").
- privileged commands: asic-rs first sends `session`; a non-empty `SESSION[0].SessionID` is
  reused, otherwise it sends `logon` (no credentials) and takes `SESSION[0].SessionID`;
  then `{"command":"curtail","parameter":"<SessionID>,sleep"}` (or `,wakeup`). pause() and
  resume() return True exactly when the reply's status is a success.
- asic-rs's LuxOS backend reports `is_mining` True whatever the miner does (its
  parse_is_mining is the trait's default), which is why dualcap judges sleep from
  measured hashrate and wattage.

The state machine follows the firmware's timing: `curtail sleep` stops hashing at once and
the draw falls to the sleeping draw over `sleep_seconds`; `curtail wakeup` ramps the draw
back up over `wake_seconds` and hashing resumes when the ramp ends. The true draw and
hashrate are read by the test (`true_watts()`, `true_ths()`), independently of what the
API reports. Faults: unreachable (nothing listens), silent (accepts, never answers), slow
(every reply delayed), refusing commands, rebooting into mining, a summary that still
shows hashing while asleep, a logon refused (LuxOS's form of wrong credentials), and an
unknown device (a cgminer that is not LuxOS).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import random
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

RPC_PORT = 4028
WEB_PORT = 80
VERSION = "2025.4.8.220305"
DESCRIPTION = f"LUXminer {VERSION}-57b389c7"
MODEL = "Antminer S19k Pro"


@dataclass
class Faults:
    """What is wrong with one miner; the test flips these while the fleet runs."""

    unreachable: bool = False  # nothing listens on its address: connections are refused
    silent: bool = False  # accepts connections and never answers (a hung API)
    delay: float = 0.0  # every reply waits this long (a slow, loaded controller)
    refuse: set[str] = field(default_factory=set)  # commands answered with STATUS "E"
    logon_refused: bool = False  # `logon` fails: the API will not open a session
    flag_mining_while_asleep: bool = False  # summary keeps the last hashing figures
    unknown_device: bool = False  # answers `version` as a plain cgminer, not LuxOS


@dataclass
class FakeMiner:
    ip: str
    nominal_watts: float = 3250.0
    nominal_ths: float = 120.0
    sleep_watts: float = 25.0
    sleep_seconds: float = 3.0
    wake_seconds: float = 8.0
    faults: Faults = field(default_factory=Faults)
    # state: where the miner is heading and since when; the draw ramps from `_from_watts`
    _target: str = "mining"
    _since: float = field(default_factory=lambda: time.monotonic() - 3600.0)
    _from_watts: float = 3250.0
    _session: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    commands: list[tuple[float, str, str | None]] = field(default_factory=list, repr=False)
    web_requests: list[str] = field(default_factory=list, repr=False)  # request lines on :80
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    # --- the physical truth, for the test -------------------------------------------------
    def phase(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._phase(now)

    def _phase(self, now: float) -> str:
        elapsed = now - self._since
        if self._target == "asleep":
            return "falling-asleep" if elapsed < self.sleep_seconds else "asleep"
        return "waking" if elapsed < self.wake_seconds else "mining"

    def true_watts(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._watts(now)

    def _watts(self, now: float) -> float:
        elapsed = now - self._since
        if self._target == "asleep":
            end, span = self.sleep_watts, self.sleep_seconds
        else:
            end, span = self.nominal_watts, self.wake_seconds
        if span <= 0 or elapsed >= span:
            return end
        return self._from_watts + (end - self._from_watts) * (elapsed / span)

    def true_ths(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self.nominal_ths if self._phase(now) == "mining" else 0.0

    def _go(self, target: str, now: float) -> None:
        if target == self._target:
            return  # LuxOS ignores a sleep while asleep (or falling asleep), a wakeup awake
        self._from_watts = self._watts(now)
        self._target, self._since = target, now

    def reboot_into_mining(self) -> None:
        """The controller rebooted (a power blip, a watchdog): it comes back mining."""
        now = time.monotonic()
        with self._lock:
            self._from_watts = self.sleep_watts
            self._target, self._since, self._session = "mining", now, ""

    def force(self, target: str) -> None:
        """Put the miner in `target` ("mining" or "asleep") at once (test set-up)."""
        with self._lock:
            self._target, self._since = target, time.monotonic() - 3600.0
            self._from_watts = self.nominal_watts if target == "mining" else self.sleep_watts

    def sent(self, command: str) -> list[str | None]:
        with self._lock:
            return [p for _, c, p in self.commands if c == command]

    # --- the wire ---------------------------------------------------------------------------
    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        command = str(request.get("command", ""))
        parameter = request.get("parameter")
        now = time.monotonic()
        with self._lock:
            self.commands.append((now, command, None if parameter is None else str(parameter)))
            if len(self.commands) > 10_000:
                del self.commands[:5_000]
            if command in self.faults.refuse:
                return _status("E", 45, f"Access denied to '{command}' command")
            handler = getattr(self, "_cmd_" + command, None)
            if handler is None:
                return _status("E", 14, "Invalid command")
            reply: dict[str, Any] = handler(now, parameter)
            return reply

    def _cmd_version(self, now: float, _: Any) -> dict[str, Any]:
        if self.faults.unknown_device:
            return {
                "STATUS": [
                    {
                        "STATUS": "S",
                        "When": int(time.time()),
                        "Code": 22,
                        "Msg": "CGMiner versions",
                        "Description": "cgminer 4.11.1",
                    }
                ],
                "VERSION": [{"CGMiner": "4.11.1", "API": "3.7"}],
                "id": 1,
            }
        return _ok(
            22,
            "LUXminer versions",
            VERSION=[
                {
                    "API": "3.7",
                    "CompileTime": "Tue Apr  8 22:05:35 UTC 2025",
                    "LUXminer": f"{VERSION}-57b389c7",
                    "Miner": VERSION,
                    "Type": MODEL,
                }
            ],
        )

    def _cmd_devdetails(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(
            69,
            "Device Details",
            DEVDETAILS=[
                {"DEVDETAILS": i, "Name": "", "ID": i, "Driver": "bitmain", "Model": MODEL}
                for i in range(3)
            ],
        )

    def _ghs(self, now: float) -> float:
        if self._phase(now) != "mining":
            return 0.0
        return self.nominal_ths * 1000.0 * self._rng.uniform(0.985, 1.015)

    def _cmd_stats(self, now: float, _: Any) -> dict[str, Any]:
        ghs = self._ghs(now)
        elapsed = int(now - self._since)
        return _ok(
            70,
            "LUXminer stats",
            STATS=[
                {"CompileTime": "Tue Apr  8 22:05:35 UTC 2025", "Miner": VERSION, "Type": MODEL},
                {
                    "Elapsed": elapsed,
                    "GHS 5s": round(ghs, 2),
                    "GHS av": round(ghs, 2),
                    "ID": "BTM_SOC0",
                    "STATS": 0,
                    "miner_count": 3,
                    "rate_unit": "GH",
                    "chain_rate1": f"{ghs / 3:.2f}",
                    "chain_rate2": f"{ghs / 3:.2f}",
                    "chain_rate3": f"{ghs / 3:.2f}",
                    "total_rateideal": self.nominal_ths * 1000.0,
                },
            ],
        )

    def _cmd_summary(self, now: float, _: Any) -> dict[str, Any]:
        ghs = self._ghs(now)
        if self.faults.flag_mining_while_asleep and ghs == 0.0:
            ghs = self.nominal_ths * 1000.0  # the last figures before it went to sleep
        return _ok(
            11,
            "Summary",
            SUMMARY=[
                {
                    "Elapsed": int(now - self._since),
                    "GHS 5s": round(ghs, 2),
                    "GHS av": round(ghs, 2),
                    "Accepted": 1483,
                    "Rejected": 1,
                    "Hardware Errors": 0,
                }
            ],
        )

    def _cmd_power(self, now: float, _: Any) -> dict[str, Any]:
        watts = self._watts(now) * self._rng.uniform(0.99, 1.01)
        return _ok(311, "Power usage", POWER=[{"PSU": False, "Watts": round(watts)}])

    def _cmd_config(self, now: float, _: Any) -> dict[str, Any]:
        octets = [int(o) for o in self.ip.split(".")]
        return _ok(
            33,
            "LUXminer config",
            CONFIG=[
                {
                    "ASC Count": 3,
                    "ControlBoardType": "cvitek",
                    "CurtailMode": "Sleep" if self._target == "asleep" else "None",
                    "Hostname": f"lux-{octets[2]}-{octets[3]}",
                    "IPAddr": self.ip,
                    "MACAddr": "62:f7:5e:{:02x}:{:02x}:{:02x}".format(*octets[1:]),
                    "Model": MODEL,
                    "NameplateTHS": self.nominal_ths,
                    "OS": "LuxOS",
                    "Profile": "default",
                    "RedLed": "off",
                    "SerialNumber": "FAKE{:03d}{:03d}{:03d}".format(*octets[1:]),
                    "SystemStatus": "Normal",
                }
            ],
        )

    def _cmd_session(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(11, "Session", SESSION=[{"SessionID": self._session}])

    def _cmd_logon(self, now: float, _: Any) -> dict[str, Any]:
        if self.faults.logon_refused:
            return _status("E", 45, "Access denied: logon refused")
        if self._session:
            return _status("E", 84, "Another session is active")
        self._session = secrets.token_hex(4)
        return _ok(84, "Session created", SESSION=[{"SessionID": self._session}])

    def _cmd_logoff(self, now: float, parameter: Any) -> dict[str, Any]:
        if not self._session or str(parameter or "") != self._session:
            return _status("E", 89, "Invalid session id")
        self._session = ""
        return _ok(85, "Session terminated")

    def _cmd_curtail(self, now: float, parameter: Any) -> dict[str, Any]:
        session, _, action = str(parameter or "").partition(",")
        if not self._session or session != self._session:
            return _status("E", 89, "Invalid session id")
        if action == "sleep":
            self._go("asleep", now)
            return _ok(120, "Curtail: sleep")
        if action == "wakeup":
            self._go("mining", now)
            return _ok(120, "Curtail: wakeup")
        return _status("E", 121, f"Invalid curtail mode '{action}'")

    def _cmd_rebootdevice(self, now: float, parameter: Any) -> dict[str, Any]:
        if not self._session or str(parameter or "") != self._session:
            return _status("E", 89, "Invalid session id")
        self._from_watts = self.sleep_watts
        self._target, self._since, self._session = "mining", now, ""
        return _ok(100, "Rebooting device")

    def _cmd_pools(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(7, "1 Pool(s)", POOLS=[])

    def _cmd_devs(self, now: float, _: Any) -> dict[str, Any]:
        ghs = self._ghs(now)
        return _ok(
            9,
            "3 ASC(s)",
            DEVS=[
                {
                    "ASC": i,
                    "ID": i,
                    "Enabled": "Y",
                    "Status": "Alive",
                    "MHS 5s": ghs * 1000.0 / 3,
                    "Nominal MHS": self.nominal_ths * 1e6 / 3,
                }
                for i in range(3)
            ],
        )

    def _cmd_fans(self, now: float, _: Any) -> dict[str, Any]:
        rpm = 0 if self._phase(now) == "asleep" else 4200
        return _ok(202, "4 Fan(s)", FANS=[{"FAN": i, "RPM": rpm, "Speed": 60} for i in range(4)])

    def _cmd_temps(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(201, "3 Temp(s)", TEMPS=[], METADATA=[])

    def _cmd_events(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(330, "Events", EVENTS=[])

    def _board(self, parameter: Any) -> int | None:
        text = str(parameter or "").strip()
        return int(text) if text.isdigit() and int(text) < 3 else None

    def _cmd_voltageget(self, now: float, parameter: Any) -> dict[str, Any]:
        board = self._board(parameter)
        if board is None:
            return _status("E", 308, f"Invalid board '{parameter}'")
        volts = 0.0 if self._phase(now) == "asleep" else 13.8
        return _ok(307, "Get Voltage", VOLTAGE=[{"Board": board, "Voltage": volts}])

    def _cmd_healthchipget(self, now: float, parameter: Any) -> dict[str, Any]:
        board = self._board(parameter)
        if board is None:
            return _status("E", 308, f"Invalid board '{parameter}'")
        ghs = self._ghs(now) / 3 / 4  # four chips per board are enough for a reader
        chips = [
            {"Board": board, "Chip": c, "Frequency": 300, "GHS 5m": round(ghs, 2), "Healthy": "Y"}
            for c in range(4)
        ]
        return _ok(320, "Chip health", CHIPS=chips)

    def _cmd_profiles(self, now: float, _: Any) -> dict[str, Any]:
        return _ok(322, "Profiles", PROFILES=[])


async def _hang() -> None:
    """A silent miner's answer: none, for longer than any client waits. Cancelled when the
    fleet stops, it ends quietly (asyncio's stream callback would log the cancellation)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(30)


def _status(status: str, code: int, msg: str) -> dict[str, Any]:
    return {
        "STATUS": [
            {
                "STATUS": status,
                "When": int(time.time()),
                "Code": code,
                "Msg": msg,
                "Description": DESCRIPTION,
            }
        ],
        "id": 1,
    }


def _ok(code: int, msg: str, **sections: Any) -> dict[str, Any]:
    reply = _status("S", code, msg)
    reply.update(sections)
    return reply


def _parse_request(buffer: bytes) -> dict[str, Any] | None:
    """One complete JSON request, or None while more bytes are needed. asic-rs writes its
    identification probe with no terminator, later commands with a newline."""
    text = buffer.decode("utf-8", "replace").strip().strip("\x00")
    if not text:
        return None
    try:
        request = json.loads(text)
    except json.JSONDecodeError:
        return None
    return request if isinstance(request, dict) else {"command": ""}


WEB_PAGE = (
    b"<!DOCTYPE html><html><head><title>Luxor Firmware</title></head>"
    b"<body><div id='app'></div></body></html>"
)


class FakeFleet:
    """Fake LuxOS miners on loopback addresses, served from a thread of their own (so any
    client - the agent in-process, or as a subprocess - reaches them as real network
    peers). Use as a context manager; `fleet.miners` maps address -> FakeMiner."""

    def __init__(
        self,
        count: int,
        *,
        web: bool = True,
        sleep_seconds: float = 1.0,
        wake_seconds: float = 2.0,
        base: str | None = None,
    ) -> None:
        self.count = count
        self.web = web
        self.sleep_seconds = sleep_seconds
        self.wake_seconds = wake_seconds
        self._base = base
        self.miners: dict[str, FakeMiner] = {}
        self._servers: dict[str, list[asyncio.base_events.Server]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # --- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> FakeFleet:
        self._thread.start()
        for _attempt in range(20):
            base = self._base or f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.0"
            addresses = _addresses(base, self.count)
            try:
                self._call(self._start_all(addresses))
            except PermissionError:
                # port 80 needs root (or CAP_NET_BIND_SERVICE): asic-rs identifies a
                # LuxOS miner by its RPC reply alone, so serve without the web root
                self._call(self._stop_all())
                self.web = False
                continue
            except OSError:
                self._call(self._stop_all())
                if self._base:
                    raise
                continue
            break
        else:
            raise RuntimeError("no free block of loopback addresses for the fake fleet")
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stop_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_all(self, addresses: list[str]) -> None:
        self.miners = {
            ip: FakeMiner(ip, sleep_seconds=self.sleep_seconds, wake_seconds=self.wake_seconds)
            for ip in addresses
        }
        for ip in addresses:
            await self._listen(ip)

    async def _listen(self, ip: str) -> None:
        miner = self.miners[ip]
        servers = [
            await asyncio.start_server(
                functools.partial(self._serve_rpc, miner), ip, RPC_PORT, backlog=64
            )
        ]
        if self.web:
            servers.append(
                await asyncio.start_server(
                    functools.partial(self._serve_web, miner), ip, WEB_PORT, backlog=64
                )
            )
        self._servers[ip] = servers

    async def _close(self, ip: str) -> None:
        for server in self._servers.pop(ip, []):
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _stop_all(self) -> None:
        for ip in list(self._servers):
            await self._close(ip)
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- faults that change the network ------------------------------------------------------
    def set_unreachable(self, ip: str, unreachable: bool = True) -> None:
        """Nothing listens on the miner's address (switched off, unplugged): refused."""
        self.miners[ip].faults.unreachable = unreachable
        self._call(self._close(ip) if unreachable else self._listen(ip))

    def set_silent(self, ip: str, silent: bool = True) -> None:
        """The miner accepts connections and never answers."""
        self.miners[ip].faults.silent = silent

    # --- the wire ------------------------------------------------------------------------------
    async def _serve_rpc(
        self, miner: FakeMiner, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            buffer = b""
            request = None
            for _ in range(64):  # a request is one small JSON object: bounded reads
                chunk = await asyncio.wait_for(reader.read(8192), 10)
                if not chunk:
                    break
                buffer += chunk
                request = _parse_request(buffer)
                if request is not None:
                    break
            if request is None:
                return
            if miner.faults.silent:
                await _hang()
                return
            if miner.faults.delay:
                await asyncio.sleep(miner.faults.delay)
            reply = miner.answer(request)
            writer.write(json.dumps(reply).encode() + b"\x00")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_web(
        self, miner: FakeMiner, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            with miner._lock:
                miner.web_requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            if miner.faults.silent:
                await _hang()
                return
            known = not miner.faults.unknown_device and head.startswith(b"GET / ")
            body = WEB_PAGE if known else b"not found"
            status = b"200 OK" if known else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Connection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- views for the test -----------------------------------------------------------------------
    @property
    def addresses(self) -> list[str]:
        return list(self.miners)

    def annotation(self, addresses: Iterable[str] | None = None) -> str:
        """The `dualcap.io/miners` value naming these miners (default: all), as a range."""
        ips = sorted(addresses or self.miners, key=lambda a: ipaddress.IPv4Address(a))
        first, last = ips[0], ips[-1]
        span = int(ipaddress.IPv4Address(last)) - int(ipaddress.IPv4Address(first)) + 1
        if span == len(ips) and first.rsplit(".", 1)[0] == last.rsplit(".", 1)[0]:
            return f"{first}-{last.rsplit('.', 1)[1]}"
        return ",".join(ips)

    def true_watts(self) -> float:
        return sum(m.true_watts() for m in self.miners.values())

    def true_ths(self) -> float:
        return sum(m.true_ths() for m in self.miners.values())

    def phases(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.miners.values():
            phase = m.phase()
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def __iter__(self) -> Iterator[FakeMiner]:
        return iter(self.miners.values())


def _addresses(base: str, count: int) -> list[str]:
    """`count` addresses from base's /16 upward, skipping .0 and .255 of each /24."""
    start = int(ipaddress.IPv4Address(base))
    out: list[str] = []
    n = start
    while len(out) < count:
        if n & 0xFF not in (0, 255):
            out.append(str(ipaddress.IPv4Address(n)))
        n += 1
    return out
