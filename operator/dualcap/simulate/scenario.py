"""A simulation's scenario: its YAML read and checked, the site's objects, the series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dualcap.signals.prices as ercot

KINDS = ("mining", "gpu", "overhead")
POLICIES = ("dualcap", "always-mine", "fixed-split")


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; the message says where and why."""


@dataclass
class Arrival:
    name: str
    namespace: str
    at: datetime
    hours: float
    gpus: int
    gpus_per_pod: int
    priority: int
    preemptible: bool
    price: float  # USD per GPU-hour


@dataclass(frozen=True)
class PriceFile:
    """An ERCOT settlement point price report standing for the scenario's energy price:
    real time (``rt``, NP6-905-CD, 15-minute intervals) or day ahead (``dam``, NP4-190-CD,
    hourly), as its CSV or the public API's JSON."""

    path: Path
    settlement_point: str
    market: ercot.Market

    def describe(self) -> str:
        kind = "real time, NP6-905" if self.market == "rt" else "day ahead, NP4-190"
        return f"{self.settlement_point.upper()} ({kind}) from {self.path}"


@dataclass
class Scenario:
    name: str
    description: str
    objects: list[dict[str, Any]]
    site: str
    start: datetime
    steps: int
    step: timedelta
    # USD/MWh by local hour of day (24) or by hour of the scenario; one per step when they
    # come from an ERCOT report (price_file)
    prices: list[float]
    hashprices: list[float]  # USD/PH/day, same convention
    tz: ZoneInfo
    arrivals: list[Arrival]
    split_percent: float
    price_file: PriceFile | None = None

    def energy_price(self, index: int, at: datetime) -> float:
        """USD/MWh at step ``index``, which starts at ``at``."""
        return self.prices[index] if self.price_file else self.hourly(self.prices, at)

    def hourly(self, series: list[float], at: datetime) -> float:
        if len(series) == 1:
            return series[0]
        if len(series) == 24:
            return series[at.astimezone(self.tz).hour]
        index = int((at - self.start).total_seconds() // 3600)
        return series[min(index, len(series) - 1)]


MARKETS = ("rt", "dam")
PRICE_FILE_KEYS = ("file", "settlementPoint", "market")
