"""Hashprice, in USD per PH/s per day, from the Luxor Hashrate Index shape.

The index serves ``GET …/hashprice?currency=USD&hashunit=PHS&bucket=1H&span=1D`` as
``{"data": [{"timestamp": "2026-07-14T18:00:00.000Z", "price": 48.91}, …]}``: one price per
bucket, USD per unit of hashrate (``hashunit``: PHS or THS) per day. The newest point is the
reading; a point per TH/s is scaled to per PH/s. Zero, negative, NaN or missing prices are
refused: a miner that believes mining earns nothing curtails everything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from dualcap.signals.freshness import Signal, read_source
from dualcap.signals.reading import SignalError

HashUnit = Literal["PHS", "THS"]
PER_PH = {"PHS": 1.0, "THS": 1000.0}  # a price per TH/s, times 1000, is per PH/s
MAX_USD_PER_PH_DAY = 100_000.0  # the Site's own bound on hashpriceUSDPerPHDay


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, bool):
        raise SignalError("Unparseable", f"{where}: timestamp {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # milliseconds or seconds
        return datetime.fromtimestamp(seconds, UTC)
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise SignalError("Unparseable", f"{where}: timestamp {value!r} is not ISO 8601") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def unit_of(location: str, default: HashUnit = "PHS") -> HashUnit:
    """The ``hashunit`` a URL asks for; a ``currency`` other than USD is refused."""
    query = parse_qs(urlparse(location).query)
    currency = (query.get("currency") or ["USD"])[0].upper()
    if currency != "USD":
        raise SignalError("WrongCurrency", f"{location}: currency {currency}, USD expected")
    unit = (query.get("hashunit") or [default])[0].upper()
    if unit not in PER_PH:
        raise SignalError("Unparseable", f"{location}: hashunit {unit!r} is neither PHS nor THS")
    return unit  # type: ignore[return-value]


def parse(text: str, unit: HashUnit = "PHS", where: str = "<hashprice>") -> Signal[float]:
    """The newest hashprice in a Hashrate Index document, in USD per PH/s per day."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise SignalError("Unparseable", f"{where}: not valid JSON: {err}") from None
    points = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(points, list):
        raise SignalError("Unparseable", f"{where}: a JSON object with a 'data' list expected")
    if not points:
        raise SignalError("NoData", f"{where}: no hashprice points")
    dated = []
    for i, point in enumerate(points):
        if not isinstance(point, Mapping) or "timestamp" not in point:
            raise SignalError("Unparseable", f"{where}: data[{i}] has no timestamp")
        dated.append((_timestamp(point["timestamp"], f"{where}: data[{i}]"), i, point))
    observed_at, i, newest = max(dated, key=lambda d: (d[0], d[1]))
    raw = newest.get("price")
    if raw is None or isinstance(raw, bool):
        raise SignalError("MissingPrice", f"{where}: data[{i}] has no price")
    try:
        price = float(raw)
    except (TypeError, ValueError):
        raise SignalError("BadHashprice", f"{where}: data[{i}] price {raw!r}") from None
    if not math.isfinite(price) or price <= 0:
        raise SignalError(
            "BadHashprice", f"{where}: data[{i}] price {raw!r}: a positive number expected"
        )
    per_ph = price * PER_PH[unit]
    if per_ph > MAX_USD_PER_PH_DAY:
        raise SignalError(
            "BadHashprice",
            f"{where}: {per_ph:,.0f} USD/PH/day is beyond {MAX_USD_PER_PH_DAY:,.0f}"
            " (a price per EH/s?)",
        )
    return Signal(round(per_ph, 6), observed_at, where)


async def load(
    location: str, unit: HashUnit | None = None, timeout_seconds: float = 10.0
) -> Signal[float]:
    """The newest hashprice from a file or a URL; a URL's ``hashunit`` query names its unit
    unless ``unit`` is given."""
    chosen = unit or unit_of(location)
    return parse(await read_source(location, timeout_seconds), chosen, location)
