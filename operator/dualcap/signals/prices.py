"""ERCOT settlement point prices, in the shapes ERCOT publishes them.

Real time: report NP6-905-CD ("Settlement Point Prices at Resource Nodes, Hubs and Load
Zones"), 15-minute intervals, as its CSV (``DeliveryDate, DeliveryHour, DeliveryInterval,
SettlementPointName, SettlementPointType, SettlementPointPrice, DSTFlag``) or as the public
API's JSON (``{"_meta": …, "report": …, "fields": [{"name": "deliveryDate", …}, …],
"data": [[…], …]}``). Day ahead: NP4-190-CD, hourly (``DeliveryDate, HourEnding,
SettlementPoint, SettlementPointPrice, DSTFlag``), kept as a forecast.

Times are Central prevailing time: ``DeliveryHour`` h covers local [h-1:00, h:00), and on
the fall-back day the repeated hour comes twice, the second time with ``DSTFlag`` set.
Prices may be negative, and the offer cap (9,000 USD/MWh in some years) is a real price:
both are kept as published. A series with a gap or a duplicated interval is refused, not
repaired: a guessed price is worse than a stale one the consumer knows is stale.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dualcap.api.budget import MAX_USD_PER_MWH
from dualcap.signals.freshness import Signal, read_source
from dualcap.signals.reading import SignalError

CENTRAL = ZoneInfo("America/Chicago")
Market = Literal["rt", "dam"]
INTERVAL = {"rt": timedelta(minutes=15), "dam": timedelta(hours=1)}

# Column names, lowercased, as either shape spells them; the API says ``settlementPoint``
# where the real-time CSV says ``SettlementPointName``.
_ALIASES = {"settlementpointname": "settlementpoint"}
_NEEDED: dict[Market, tuple[str, ...]] = {
    "rt": (
        "deliverydate",
        "deliveryhour",
        "deliveryinterval",
        "settlementpoint",
        "settlementpointprice",
    ),
    "dam": ("deliverydate", "hourending", "settlementpoint", "settlementpointprice"),
}


@dataclass(frozen=True)
class PriceInterval:
    """One settlement interval at one settlement point; ``start``/``end`` in UTC."""

    start: datetime
    end: datetime
    usd_per_mwh: float
    settlement_point: str
    point_type: str = ""


def _rows_from_json(doc: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(doc, Mapping) or "data" not in doc:
        raise SignalError("Unparseable", f"{where}: a JSON object with 'data' expected")
    data = doc["data"]
    if not isinstance(data, list):
        raise SignalError("Unparseable", f"{where}: 'data' must be a list")
    fields = doc.get("fields") or []
    names = [str(f.get("name", "")) if isinstance(f, Mapping) else str(f) for f in fields]
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(data):
        if isinstance(row, Mapping):
            rows.append(dict(row))
        elif isinstance(row, list) and names and len(row) == len(names):
            rows.append(dict(zip(names, row, strict=True)))
        else:
            raise SignalError(
                "Unparseable", f"{where}: data[{i}] does not match 'fields' ({len(names)} names)"
            )
    return rows


def _rows_from_csv(text: str, where: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or len(reader.fieldnames) < 2:
        raise SignalError("Unparseable", f"{where}: not a CSV with a header row")
    rows = list(reader)
    if any(None in row for row in rows):
        raise SignalError("Unparseable", f"{where}: a row has more cells than the header")
    return rows


def _normalised(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        k = str(key).strip().lower().replace(" ", "")
        out[_ALIASES.get(k, k)] = value.strip() if isinstance(value, str) else value
    return out


def _delivery_date(value: Any, where: str) -> date:
    text = str(value)
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise SignalError(
        "Unparseable", f"{where}: delivery date {text!r} is neither MM/DD/YYYY nor YYYY-MM-DD"
    )


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("y", "true", "1"):
        return True
    if text in ("n", "false", "0", ""):
        return False
    raise SignalError("Unparseable", f"{where}: DSTFlag {value!r} is neither Y nor N")


def _int(value: Any, low: int, high: int, what: str, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SignalError("Unparseable", f"{where}: {what} {value!r} is not a number") from None
    if not low <= number <= high:
        raise SignalError("Unparseable", f"{where}: {what} {number} is outside {low}..{high}")
    return number


def _price(value: Any, where: str) -> float:
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise SignalError("BadPrice", f"{where}: price {value!r} is not a number") from None
    if not math.isfinite(price):
        raise SignalError("BadPrice", f"{where}: price {value!r} is not finite")
    if abs(price) > MAX_USD_PER_MWH:
        raise SignalError(
            "PriceOutOfRange", f"{where}: {price} USD/MWh is beyond ±{MAX_USD_PER_MWH:,.0f}"
        )
    return price


def central_to_utc(day: date, minutes: int, repeated: bool, where: str) -> datetime:
    """Local Central time ``minutes`` after midnight of ``day`` in UTC; ``repeated`` picks
    the second pass through the fall-back hour. A time the spring-forward skips, or a
    repeat flag outside the repeated hour, is refused."""
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    first = wall.replace(tzinfo=CENTRAL, fold=0)
    if first.astimezone(UTC).astimezone(CENTRAL).replace(tzinfo=None) != wall:
        raise SignalError(
            "NonexistentTime", f"{where}: {wall:%Y-%m-%d %H:%M} does not exist in Central time"
        )
    second = wall.replace(tzinfo=CENTRAL, fold=1)
    if repeated and first.utcoffset() == second.utcoffset():
        raise SignalError(
            "BadDSTFlag", f"{where}: DSTFlag set on {wall:%Y-%m-%d %H:%M}, which is not repeated"
        )
    return (second if repeated else first).astimezone(UTC)


def _interval(row: dict[str, Any], market: Market, where: str) -> PriceInterval:
    missing = [c for c in _NEEDED[market] if c not in row]
    if missing:
        raise SignalError("MissingColumn", f"{where}: no column {missing[0]!r}")
    day = _delivery_date(row["deliverydate"], where)
    repeated = _flag(row.get("dstflag", "N"), where)
    if market == "rt":
        hour = _int(row["deliveryhour"], 1, 24, "DeliveryHour", where)
        interval = _int(row["deliveryinterval"], 1, 4, "DeliveryInterval", where)
        minutes = (hour - 1) * 60 + (interval - 1) * 15
    else:
        text = str(row["hourending"]).strip()
        hour = _int(text.split(":")[0], 1, 24, "HourEnding", where)
        if ":" in text and text.split(":", 1)[1] not in ("00", "0"):
            raise SignalError("Unparseable", f"{where}: HourEnding {text!r} is not on the hour")
        minutes = (hour - 1) * 60
    start = central_to_utc(day, minutes, repeated, where)
    return PriceInterval(
        start=start,
        end=start + INTERVAL[market],
        usd_per_mwh=_price(row["settlementpointprice"], where),
        settlement_point=str(row["settlementpoint"]).upper(),
        point_type=str(row.get("settlementpointtype") or ""),
    )


def check_series(intervals: Sequence[PriceInterval], where: str) -> list[PriceInterval]:
    """Sorted, with neither duplicates nor gaps (``DuplicateInterval``, ``Gap``)."""
    out = sorted(intervals, key=lambda i: i.start)
    if not out:
        raise SignalError("NoIntervals", f"{where}: no price intervals")
    for before, after in itertools.pairwise(out):
        if after.start == before.start:
            raise SignalError(
                "DuplicateInterval",
                f"{where}: two prices for the interval starting {before.start:%Y-%m-%dT%H:%MZ}"
                " (a fall-back hour without DSTFlag on its repeat?)",
            )
        if after.start < before.end:
            raise SignalError(
                "OverlappingIntervals",
                f"{where}: intervals starting {before.start:%Y-%m-%dT%H:%MZ} and"
                f" {after.start:%Y-%m-%dT%H:%MZ} overlap",
            )
        if after.start > before.end:
            raise SignalError(
                "Gap",
                f"{where}: no price from {before.end:%Y-%m-%dT%H:%MZ} to"
                f" {after.start:%Y-%m-%dT%H:%MZ}",
            )
    return out


def parse(
    text: str, settlement_point: str, market: Market = "rt", where: str = "<prices>"
) -> list[PriceInterval]:
    """The intervals of one settlement point from an NP6-905 (``rt``) or NP4-190 (``dam``)
    CSV or API JSON text; every defect is a ``SignalError``."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise SignalError("Unparseable", f"{where}: empty")
    if stripped[0] in "{[":
        try:
            doc = json.loads(stripped)
        except ValueError as err:
            raise SignalError("Unparseable", f"{where}: not valid JSON: {err}") from None
        rows = _rows_from_json(doc, where)
    else:
        rows = _rows_from_csv(stripped, where)
    return select(rows, settlement_point, market, where)


def select(
    rows: Iterable[Mapping[str, Any]], settlement_point: str, market: Market, where: str
) -> list[PriceInterval]:
    wanted = settlement_point.strip().upper()
    seen: set[str] = set()
    picked: list[PriceInterval] = []
    for number, raw in enumerate(rows, start=1):
        row = _normalised(raw)
        if "settlementpoint" not in row:
            raise SignalError("MissingColumn", f"{where}: no settlement point column")
        name = str(row["settlementpoint"]).upper()
        seen.add(name)
        if name == wanted:
            picked.append(_interval(row, market, f"{where} row {number}"))
    if not picked:
        known = ", ".join(sorted(seen)[:8]) or "none"
        raise SignalError(
            "UnknownSettlementPoint", f"{where}: no prices for {wanted!r} (points: {known})"
        )
    return check_series(picked, where)


def price_at(intervals: Sequence[PriceInterval], now: datetime) -> float | None:
    """The price of the interval that contains ``now``, or None outside the series."""
    starts = [i.start for i in intervals]
    k = bisect.bisect_right(starts, now) - 1
    if k >= 0 and intervals[k].start <= now < intervals[k].end:
        return intervals[k].usd_per_mwh
    return None


def energy_price_series(
    intervals: Sequence[PriceInterval],
    start: datetime,
    steps: int,
    step: timedelta = timedelta(hours=1),
) -> list[float]:
    """USD/MWh for each of ``steps`` periods from ``start``, each the time-weighted mean
    of the intervals over it: the hourly ``energyPriceUSDPerMWh`` series of a simulate
    scenario. A period the intervals do not cover entirely is a ``Gap``."""
    if steps < 1 or step <= timedelta(0):
        raise ValueError("steps and step must be positive")
    out: list[float] = []
    for n in range(steps):
        lo, hi = start + n * step, start + (n + 1) * step
        covered, weighted = 0.0, 0.0
        for i in intervals:
            overlap = (min(hi, i.end) - max(lo, i.start)).total_seconds()
            if overlap > 0:
                covered += overlap
                weighted += overlap * i.usd_per_mwh
        if covered + 1e-6 < step.total_seconds():
            raise SignalError(
                "Gap", f"no price for all of {lo:%Y-%m-%dT%H:%MZ}..{hi:%Y-%m-%dT%H:%MZ}"
            )
        out.append(round(weighted / covered, 4))
    return out


async def load(
    location: str,
    settlement_point: str,
    market: Market = "rt",
    now: datetime | None = None,
    timeout_seconds: float = 10.0,
) -> Signal[list[PriceInterval]]:
    """Prices from a file or an http(s) URL. The reading is as new as its newest interval
    that has ended, and never newer than when it was read; a day-ahead forecast, all in
    the future, is as new as the read."""
    text = await read_source(location, timeout_seconds)
    intervals = parse(text, settlement_point, market, location)
    read_at = now or datetime.now(UTC)
    ended = [i.end for i in intervals if i.end <= read_at]
    return Signal(intervals, max(ended) if ended else read_at, location)
