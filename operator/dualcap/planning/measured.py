"""What the miner agents measured: MinerBlock reports read, their recent history, and
what a fresh report makes of a controller's draw and state.

A report counts only while it is fresh (newer than the Site's ``staleAfterSeconds``); a
stale or missing one counts as none (nameplate power, nothing confirmed on its strength).
A mining block counts at the *peak* of its reports over the last few minutes, since
miners' draw swings with temperature and tuning and the envelope must hold at the swing's
top; a sleeping block counts at what it measures asleep. The history is kept here as a
plain data structure (the operator feeds it from MinerBlock events; `dualcap plan` from
the reports in its file), so the planner stays pure.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dualcap.api.common import parse_rfc3339
from dualcap.api.site import ControllerState
from dualcap.planning.entities import BlockReport

__all__ = ["BlockReport", "History", "measured_draw", "measured_state", "report_from"]

PEAK_WINDOW = timedelta(minutes=5)
# Miners that hash less than this share of their nameplate are not up yet (waking, or
# boards failing): they may draw their full share any moment, so they count at it.
UP_HASHRATE_FRACTION = 0.8


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _kw(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def report_from(block: Mapping[str, Any]) -> BlockReport | None:
    """The report in a MinerBlock object's status; None when there is none or it does not
    add up (a report that cannot be read counts as no report)."""
    meta = block.get("metadata") or {}
    status = block.get("status") or {}
    if not isinstance(status, Mapping):
        return None
    counts = [_count(status.get(k)) for k in ("miners", "mining", "sleeping", "unreachable")]
    power, hashrate = _kw(status.get("powerKW")), _kw(status.get("hashrateTHs"))
    raw_at = status.get("observedAt")
    if None in counts or power is None or hashrate is None or not isinstance(raw_at, str):
        return None
    miners, mining, sleeping, unreachable = (c for c in counts if c is not None)
    if mining + sleeping + unreachable > miners:
        return None
    try:
        observed_at = parse_rfc3339(raw_at)
    except ValueError:
        return None
    node = str((block.get("spec") or {}).get("nodeName") or meta.get("name") or "")
    # Miners that draw but do not hash yet (waking) say nothing of what the block earns.
    scaled = hashrate * miners / mining if mining and hashrate > 0 else None
    return BlockReport(
        node, observed_at, miners, mining, sleeping, unreachable, power, hashrate, scaled
    )


class History:
    """Recent reports per block: the peak of the mining ones, and the last mining hashrate."""

    def __init__(self, window: timedelta = PEAK_WINDOW):
        self.window = window
        self._reports: dict[str, deque[BlockReport]] = {}
        self._mining_hashrate: dict[str, float] = {}

    def observe(self, report: BlockReport) -> None:
        reports = self._reports.setdefault(report.node, deque())
        if reports and reports[-1].observed_at >= report.observed_at:
            return  # the same report again (or an older one): nothing new
        reports.append(report)
        if report.mining_hashrate_ths is not None:
            self._mining_hashrate[report.node] = report.mining_hashrate_ths
        while reports and report.observed_at - reports[0].observed_at > self.window:
            reports.popleft()

    def forget(self, node: str) -> None:
        self._reports.pop(node, None)
        self._mining_hashrate.pop(node, None)

    def nodes(self) -> list[str]:
        return list(self._reports)

    def report(self, node: str) -> BlockReport | None:
        """The latest report of ``node``, its power the peak of the recent ones while any
        miner mines (asleep: as measured now)."""
        reports = self._reports.get(node)
        if not reports:
            return None
        latest = reports[-1]
        power = latest.power_kw
        if latest.mining or latest.unreachable:
            power = max(r.power_kw for r in reports)
        return replace(
            latest,
            power_kw=power,
            mining_hashrate_ths=self._mining_hashrate.get(node, latest.mining_hashrate_ths),
        )


def measured_state(
    state: ControllerState,
    marks_complete: bool,
    curtailed_at: datetime | None,
    report: BlockReport | None,
) -> ControllerState:
    """A controller's state under curtailment MinerAgent: a curtailment is confirmed only by
    a fresh report newer than the curtailment in which every miner is measured asleep."""
    if state not in (ControllerState.CURTAILING, ControllerState.CURTAILED):
        return state
    confirmed = (
        marks_complete
        and report is not None
        and report.asleep
        and (curtailed_at is None or report.observed_at > curtailed_at)
    )
    return ControllerState.CURTAILED if confirmed else ControllerState.CURTAILING


def measured_draw(
    nameplate_it_kw: float, nameplate_ths: float, report: BlockReport
) -> tuple[float, float, float, float]:
    """(IT kW while mining, TH/s, IT kW asleep, IT kW while being curtailed) of a block
    with a fresh ``report``.

    While mining (what it draws mining, and so what resuming it costs): the recent peak of
    the reachable miners, with every miner that sleeps or does not answer at its full share
    of the nameplate (it may draw it any moment: a resume wakes it, a reboot mines), and
    the mining ones at no less than their share while they hash under
    ``UP_HASHRATE_FRACTION`` of their nameplate (waking); when nothing mines now, the
    nameplate. Being curtailed: the recent peak (which covers it
    mining before), unreachable miners at their share. Asleep: what it measures asleep.
    Hashrate: what the block mines at, measured (failing hashboards earn less per kW),
    else the nameplate."""
    share_kw = nameplate_it_kw / report.miners if report.miners else nameplate_it_kw
    unreachable_kw = report.unreachable * share_kw
    if report.mining:
        drawn = report.power_kw
        share_ths = nameplate_ths / report.miners if report.miners else nameplate_ths
        if report.hashrate_ths < UP_HASHRATE_FRACTION * share_ths * report.mining:
            # Not up yet: a waking block draws a part of what it will in a minute (counted
            # at that part, the plan resumed more than the ramp allows and left the limit).
            drawn = max(drawn, report.mining * share_kw)
        mining_kw = drawn + unreachable_kw + report.sleeping * share_kw
    else:
        mining_kw = nameplate_it_kw
    ths = report.mining_hashrate_ths if report.mining_hashrate_ths is not None else nameplate_ths
    asleep_kw = report.power_kw + unreachable_kw
    curtailing_kw = report.power_kw + unreachable_kw
    return mining_kw, ths, asleep_kw, curtailing_kw
