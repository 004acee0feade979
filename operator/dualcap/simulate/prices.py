"""A scenario's energy prices: by hour, or from an ERCOT settlement point price report."""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dualcap.signals.prices as ercot
from dualcap.signals.reading import SignalError
from dualcap.simulate.scenario import MARKETS, PRICE_FILE_KEYS, PriceFile, ScenarioError


def price_file(
    doc: Mapping[str, Any],
    scenario_dir: Path,
    where: str,
    file: str | None,
    settlement_point: str | None,
    market: str | None,
) -> PriceFile | None:
    """The scenario's ``energyPrices`` with the command line's ``--prices``,
    ``--settlement-point`` and ``--market`` over it; None when neither names a report."""
    given = doc.get("energyPrices")
    if given is not None and not isinstance(given, dict):
        raise ScenarioError(
            f"{where}: energyPrices: a mapping with {', '.join(PRICE_FILE_KEYS)} expected"
        )
    spec = dict(given or {})
    unknown = sorted(set(spec) - set(PRICE_FILE_KEYS))
    if unknown:
        raise ScenarioError(
            f"{where}: energyPrices: unknown field {unknown[0]!r}"
            f" (fields: {', '.join(PRICE_FILE_KEYS)})"
        )
    if given is not None and "energyPriceUSDPerMWh" in doc:
        raise ScenarioError(f"{where}: give energyPriceUSDPerMWh or energyPrices, not both")
    if given is None and file is None and settlement_point is None and market is None:
        return None
    if file is not None:  # the command line's, relative to where it runs
        path = Path(file)
    elif "file" in spec:  # the scenario's, relative to the scenario
        path = Path(os.path.normpath(scenario_dir / str(spec["file"])))  # no a/../b shown
    else:
        raise ScenarioError(
            f"{where}: no price report: give energyPrices.file in the scenario, or --prices FILE"
        )
    point = settlement_point or spec.get("settlementPoint")
    if not point or not str(point).strip():
        raise ScenarioError(
            f"{where}: energyPrices: which settlement point? give settlementPoint"
            " (or --settlement-point), e.g. HB_HOUSTON"
        )
    chosen = str(market or spec.get("market", "rt")).lower()
    if chosen not in MARKETS:
        raise ScenarioError(
            f"{where}: energyPrices: market {chosen!r}: rt (NP6-905) or dam (NP4-190) expected"
        )
    return PriceFile(path, str(point).strip(), "rt" if chosen == "rt" else "dam")


def step_prices(
    source: PriceFile,
    start: datetime,
    steps: int,
    step: timedelta,
    tz: ZoneInfo,
    where: str,
) -> list[float]:
    """USD/MWh at each step from the report: the price of the settlement interval that
    covers the step, or the time-weighted mean of the intervals when a step spans several
    (an hour's step on 15-minute prices). The readers place each interval in UTC from
    Central prevailing time and its DST flag, and refuse a gap or a duplicate, so a series
    that starts by the scenario's start and ends after its end covers every step."""
    try:
        text = source.path.read_text()
    except OSError as err:
        raise ScenarioError(f"{where}: {source.path}: {err.strerror}") from None
    try:
        intervals = ercot.parse(text, source.settlement_point, source.market, str(source.path))
    except SignalError as err:
        raise ScenarioError(f"{where}: {err.reason}: {err.message}") from None
    end = start + steps * step
    first, last = intervals[0].start, intervals[-1].end
    uncovered = start if first > start else last if last < end else None
    if uncovered is not None:
        utc = "%Y-%m-%dT%H:%MZ"
        raise ScenarioError(
            f"{where}: {source.path} has no {source.settlement_point.upper()}"
            f" price for {uncovered.astimezone(UTC):{utc}}"
            f" ({uncovered.astimezone(tz):%Y-%m-%d %H:%M %Z}), the first time of the scenario"
            f" it does not cover: it covers {first:{utc}}..{last:{utc}}, the scenario"
            f" {start.astimezone(UTC):{utc}}..{end.astimezone(UTC):{utc}}"
        )
    starts = [i.start for i in intervals]
    out = []
    for n in range(steps):
        at = start + n * step
        k = bisect.bisect_right(starts, at) - 1
        if at + step <= intervals[k].end:
            out.append(intervals[k].usd_per_mwh)
        else:
            spanned = intervals[k : bisect.bisect_left(starts, at + step)]
            out.append(ercot.energy_price_series(spanned, at, 1, step)[0])
    return out
