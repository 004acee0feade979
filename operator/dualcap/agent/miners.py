"""Driving a block's miners through asic-rs (pyasic-rs): identify, measure, pause, resume.

Wire protocols are asic-rs's business. What is ours: every call is bounded in time (a
miner that never answers costs one timeout, never a hang), the block is driven
concurrently under a semaphore, and a miner's state is judged from what it measures - it
sleeps when its hashrate is 0 and its draw below the sleep threshold, whatever its
firmware's "is mining" flag says (asic-rs's LuxOS backend always says it mines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from dualcap.agent.credentials import Credentials

log = logging.getLogger("dualcap.agent")

State = Literal["mining", "sleeping", "unreachable"]
Desired = Literal["sleep", "mine"]

NO_ANSWER = "no answer"
UNKNOWN_DEVICE = "answers, but not as a miner asic-rs knows"
CONTESTED = "also named by another node's dualcap.io/miners: left alone"


@dataclass
class Reading:
    ip: str
    state: State
    watts: float | None = None
    ths: float | None = None
    problem: str | None = None  # why it is unreachable, or why a command failed

    @property
    def sleeping(self) -> bool:
        return self.state == "sleeping"


@dataclass
class _Handle:
    miner: Any = None  # a pyasic_rs.Miner once identified
    identified_at: float = -1e9  # last identification attempt (monotonic)
    problem: str | None = None
    command: tuple[Desired, float] | None = None  # last command sent and when
    last: Reading | None = None  # as last measured
    measured_at: float = -1e9  # when (monotonic)


def _ths(hashrate: Any) -> float | None:
    if hashrate is None:
        return None
    from pyasic_rs.data import HashRateUnit

    return float(hashrate.as_unit(HashRateUnit.TH).value)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


async def _port_open(ip: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


class Driver:
    """The miners of one block, as asic-rs sees them."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        sleep_watts: float = 100.0,
        timeout: float = 6.0,
        concurrency: int = 64,
    ):
        from pyasic_rs import MinerFactory

        self.credentials = credentials
        self.sleep_watts = sleep_watts
        self.timeout = timeout
        self._factory = MinerFactory().with_identification_timeout_secs(max(1, int(timeout)))
        self._limit = asyncio.Semaphore(concurrency)
        self._handles: dict[str, _Handle] = {}
        self.commands_sent = 0
        self.commands_new = 0

    def forget(self, keep: set[str]) -> None:
        """Drop what is known of miners no longer in the block."""
        for ip in [ip for ip in self._handles if ip not in keep]:
            del self._handles[ip]

    async def step(
        self,
        ips: list[str],
        desired: Desired | None,
        *,
        allow_resume: bool,
        contested: set[str],
        resend_after: float,
        reuse_since: float | None = None,
        reuse_for: float = 0.0,
    ) -> list[Reading]:
        """Measure every miner and command those not in the desired state; concurrent,
        bounded, every call time-limited.

        A miner measured in the desired state since `reuse_since` (and since its last
        command), less than `reuse_for` seconds ago, keeps that reading instead of being
        measured again: while a block changes state, the quick looks are at the miners
        still changing, and the rest are measured again at the next look after that."""
        return list(
            await asyncio.gather(
                *(
                    self._one(ip, desired, allow_resume, ip in contested, resend_after,
                              reuse_since, reuse_for)
                    for ip in ips
                )
            )
        )  # fmt: skip

    @staticmethod
    def _on_target(reading: Reading, desired: Desired | None) -> bool:
        if reading.problem is not None:
            return False
        if desired == "sleep":
            return reading.sleeping
        return desired == "mine" and reading.state == "mining" and (reading.ths or 0.0) > 0.0

    def _reusable(
        self, handle: _Handle, desired: Desired | None, since: float | None, within: float
    ) -> Reading | None:
        last = handle.last
        if since is None or last is None or handle.miner is None:
            return None
        if handle.measured_at < since or time.monotonic() - handle.measured_at >= within:
            return None
        if handle.command is not None and handle.command[1] >= handle.measured_at:
            return None  # commanded since: what it does now is unknown
        return replace(last) if self._on_target(last, desired) else None

    async def act(
        self, ips: list[str], desired: Desired, *, allow_resume: bool, contested: set[str]
    ) -> int:
        """Command at once, without measuring first, every miner last measured out of the
        desired state (and not commanded so since): a change of mind reaches the miners
        without waiting for a look at the block. Concurrent, bounded, time-limited; what
        the miners make of it is for the next look. Returns how many were commanded."""

        async def one(ip: str, handle: _Handle, action: Desired) -> None:
            async with self._limit:
                await self._command(handle, action)

        calls = []
        for ip in ips:
            handle = self._handles.get(ip)
            if ip in contested or handle is None or handle.miner is None or handle.last is None:
                continue  # never measured (or left alone): the look decides
            action = self._action(handle.last, desired, allow_resume)
            last = handle.command
            if action is None or (last and last[0] == action and last[1] >= handle.measured_at):
                continue
            calls.append(one(ip, handle, action))
        await asyncio.gather(*calls)
        return len(calls)

    async def _identify(self, ip: str, handle: _Handle, retry_after: float) -> bool:
        now = time.monotonic()
        if handle.miner is not None:
            return True
        if now - handle.identified_at < retry_after:
            return False
        handle.identified_at = now
        try:
            miner = await asyncio.wait_for(self._factory.get_miner(ip), self.timeout + 1)
        except asyncio.CancelledError:
            handle.identified_at = -1e9  # cut short, not failed: try again at the next look
            raise
        except TimeoutError:
            miner, handle.problem = None, NO_ANSWER
        except Exception as err:  # asic-rs raises RuntimeError on what it cannot read
            miner, handle.problem = None, f"identification failed: {_short(err)}"
        if miner is None:
            if handle.problem is None or handle.problem == UNKNOWN_DEVICE:
                answers = await _port_open(ip, 4028, 1.0) or await _port_open(ip, 80, 1.0)
                handle.problem = UNKNOWN_DEVICE if answers else NO_ANSWER
            return False
        login = self.credentials.for_firmware(str(miner.firmware))
        if login is not None:
            miner.set_auth(login.username, login.password)
        handle.miner, handle.problem = miner, None
        return True

    async def _measure(self, handle: _Handle) -> tuple[float | None, float | None]:
        miner = handle.miner

        async def both() -> tuple[Any, Any]:
            # awaited inside a task: when a look is cut short, the gather's CancelledError
            # is retrieved here (wait_for on the bare gather left it "never retrieved")
            return await asyncio.gather(miner.get_hashrate(), miner.get_wattage())

        hashrate, watts = await asyncio.wait_for(both(), self.timeout)
        return _ths(hashrate), (None if watts is None else float(watts))

    def _state(self, ths: float | None, watts: float | None) -> State:
        if ths is not None and ths <= 0.0 and watts is not None and watts < self.sleep_watts:
            return "sleeping"
        return "mining"  # hashing, drawing above idle, or not proven asleep: counted as mining

    async def _one(
        self,
        ip: str,
        desired: Desired | None,
        allow_resume: bool,
        contested: bool,
        resend_after: float,
        reuse_since: float | None = None,
        reuse_for: float = 0.0,
    ) -> Reading:
        handle = self._handles.setdefault(ip, _Handle())
        if not contested:
            kept = self._reusable(handle, desired, reuse_since, reuse_for)
            if kept is not None:
                return kept
        async with self._limit:
            if contested:
                return Reading(ip, "unreachable", problem=CONTESTED)
            if not await self._identify(ip, handle, resend_after):
                return Reading(ip, "unreachable", problem=handle.problem or NO_ANSWER)
            try:
                ths, watts = await self._measure(handle)
            except TimeoutError:
                ths = watts = None
                handle.problem = NO_ANSWER
            except Exception as err:
                ths = watts = None
                handle.problem = f"measurement failed: {_short(err)}"
            if ths is None and watts is None:
                # gone (or rebooting): identify it again, at most once per resend_after
                handle.miner = None
                handle.identified_at = time.monotonic()
                return Reading(ip, "unreachable", problem=handle.problem or NO_ANSWER)
            reading = Reading(ip, self._state(ths, watts), watts, ths)
            handle.last, handle.measured_at = replace(reading), time.monotonic()
            action = self._action(reading, desired, allow_resume)
            if action is not None and self._due(handle, action, resend_after):
                reading.problem = await self._command(handle, action)
            return reading

    @staticmethod
    def _action(reading: Reading, desired: Desired | None, allow_resume: bool) -> Desired | None:
        if desired == "sleep" and not reading.sleeping:
            return "sleep"
        if desired == "mine" and reading.sleeping and allow_resume:
            return "mine"
        return None

    @staticmethod
    def _due(handle: _Handle, action: Desired, resend_after: float) -> bool:
        last = handle.command
        # a little early rather than an interval late: cycles are not exactly one apart
        due = time.monotonic() - last[1] >= 0.8 * resend_after if last else True
        return last is None or last[0] != action or due

    async def _command(self, handle: _Handle, action: Desired) -> str | None:
        miner = handle.miner
        supported = miner.supports_pause if action == "sleep" else miner.supports_resume
        if not supported:
            return f"its firmware ({miner.firmware}) cannot {'pause' if action == 'sleep' else 'resume'}"
        if handle.command is None or handle.command[0] != action:
            self.commands_new += 1  # a change of mind, not a re-send
        handle.command = (action, time.monotonic())
        self.commands_sent += 1
        try:
            call = miner.pause() if action == "sleep" else miner.resume()
            accepted = await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            return f"{'pause' if action == 'sleep' else 'resume'} got no answer"
        except Exception as err:
            return f"{'pause' if action == 'sleep' else 'resume'} refused: {_short(err)}"
        if not accepted:
            return f"{'pause' if action == 'sleep' else 'resume'} refused by the miner"
        return None
