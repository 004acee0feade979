"""The envelope: the effective limit of a site at a time, and when it changes next.

``limit = min(limitKW, active windows, active events) - margin``, where a window or event is
active from ``start - leadTime`` (so the site is inside the new envelope when it begins)
until its end. Recurring windows are evaluated in their own time zone, so "14:00-19:00
America/Chicago" follows daylight saving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dualcap.api.budget import EnergyPrice, PowerBudgetSpec
from dualcap.api.common import WEEKDAYS, RecurringWindow, parse_rfc3339

# Recurring windows are looked at this far ahead for the next change: a weekly pattern
# repeats within 8 days, a months filter within a year.
_HORIZON = timedelta(days=8)
_MONTH_HORIZON = timedelta(days=370)


@dataclass(frozen=True, slots=True)
class Interval:
    """One occurrence of a window or an event, in UTC."""

    kind: str  # "window" or "event"
    name: str
    start: datetime
    end: datetime
    value: float  # a limit in kW, or a price in USD/MWh


@dataclass(frozen=True, slots=True)
class LimitChange:
    at: datetime
    limit_kw: float


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope of a site at one instant."""

    limit_kw: float  # effective, margin deducted: what the plan must stay within
    raw_limit_kw: float  # before the margin
    active_windows: tuple[str, ...] = ()
    active_events: tuple[str, ...] = ()
    next_change: LimitChange | None = None
    energy_price_usd_per_mwh: float = 0.0
    next_price_change: datetime | None = None


def _occurrences(
    window: RecurringWindow, value: float, around: datetime, ahead: timedelta
) -> list[Interval]:
    """Occurrences of a recurring window that may overlap [around - 2 days, around + ahead]."""
    zone = ZoneInfo(window.timezone)
    local_today = around.astimezone(zone).date()
    start_clock = time.fromisoformat(window.start)
    end_clock = time.fromisoformat(window.end)
    crosses_midnight = end_clock <= start_clock
    days = set(window.days)
    months = set(window.months) if window.months else None
    out = []
    first = local_today - timedelta(days=2)
    for offset in range(ahead.days + 3):
        day: date = first + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        if months is not None and day.month not in months:
            continue
        end_day = day + timedelta(days=1) if crosses_midnight else day
        start = _local(day, start_clock, zone)
        end = _local(end_day, end_clock, zone)
        if end > start:
            out.append(Interval("window", window.name, start, end, value))
    return out


def _local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time in a zone as UTC. In a spring-forward gap the clock is read as the
    time after the jump; in a fall-back overlap, the first occurrence."""
    naive = datetime.combine(day, clock)
    aware = naive.replace(tzinfo=zone, fold=0)
    # Round-trip through UTC: a time in a gap comes back shifted, which is what we want.
    return aware.astimezone(ZoneInfo("UTC"))


def _intervals(spec: PowerBudgetSpec, now: datetime, ahead: timedelta) -> list[Interval]:
    out: list[Interval] = []
    for window in spec.windows or []:
        out.extend(_occurrences(window, window.limit_kw, now, ahead))
    for event in spec.events or []:
        out.append(
            Interval(
                "event",
                event.name,
                parse_rfc3339(event.start),
                parse_rfc3339(event.end),
                event.limit_kw,
            )
        )
    return out


def _margin(spec: PowerBudgetSpec, limit_kw: float) -> float:
    if spec.safety_margin_kw is not None:
        return spec.safety_margin_kw
    if spec.safety_margin_percent is not None:
        return limit_kw * spec.safety_margin_percent / 100.0
    return 0.0


def _limit_at(
    spec: PowerBudgetSpec, intervals: list[Interval], at: datetime, lead: timedelta
) -> tuple[float, list[Interval]]:
    active = [i for i in intervals if i.start - lead <= at < i.end]
    raw = min([spec.limit_kw, *(i.value for i in active)])
    return raw, active


def _price_at(price: EnergyPrice | None, intervals: list[Interval], at: datetime) -> float:
    if price is None:
        return 0.0
    active = [i.value for i in intervals if i.start <= at < i.end]
    return max(active) if active else price.usd_per_mwh


def _price_intervals(price: EnergyPrice | None, now: datetime, ahead: timedelta) -> list[Interval]:
    if price is None:
        return []
    out: list[Interval] = []
    for window in price.windows or []:
        out.extend(_occurrences(window, window.usd_per_mwh, now, ahead))
    return out


def evaluate(spec: PowerBudgetSpec, now: datetime) -> Envelope:
    """The envelope of a PowerBudget at ``now`` (an aware datetime)."""
    lead = timedelta(seconds=spec.lead_time_seconds)
    uses_months = any(w.months for w in spec.windows or [])
    ahead = _MONTH_HORIZON if uses_months else _HORIZON
    intervals = _intervals(spec, now, ahead)
    raw, active = _limit_at(spec, intervals, now, lead)
    limit = max(0.0, raw - _margin(spec, raw))

    # Candidate instants where the limit may change: every boundary after now.
    boundaries = sorted(
        {b for i in intervals for b in (i.start - lead, i.end) if now < b <= now + ahead}
    )
    next_change = None
    for at in boundaries:
        later_raw, _ = _limit_at(spec, intervals, at, lead)
        later = max(0.0, later_raw - _margin(spec, later_raw))
        if later != limit:
            next_change = LimitChange(at, later)
            break

    price_intervals = _price_intervals(
        spec.energy_price, now, _HORIZON if not uses_months else ahead
    )
    price = _price_at(spec.energy_price, price_intervals, now)
    price_changes = sorted({b for i in price_intervals for b in (i.start, i.end) if b > now})
    next_price = next(
        (at for at in price_changes if _price_at(spec.energy_price, price_intervals, at) != price),
        None,
    )
    return Envelope(
        limit_kw=limit,
        raw_limit_kw=raw,
        active_windows=tuple(sorted({i.name for i in active if i.kind == "window"})),
        active_events=tuple(sorted({i.name for i in active if i.kind == "event"})),
        next_change=next_change,
        energy_price_usd_per_mwh=price,
        next_price_change=next_price,
    )


@dataclass(frozen=True, slots=True)
class SiteEnvelope:
    """The envelope of a site named by several PowerBudgets: at every instant the lowest
    limit of them all, each evaluated with its own windows, events, lead time and margin."""

    envelope: Envelope  # the composite: limit, next change across all, the price
    by_budget: dict[str, Envelope]  # each budget's own
    binding: str  # the budget whose limit is the site's now (the first by name on a tie)
    next_change_budget: str | None = None  # whose limit makes the next change
    price_budget: str | None = None  # the one budget the energy price comes from


def compose(
    budgets: dict[str, PowerBudgetSpec], now: datetime, price_from: str | None = None
) -> SiteEnvelope:
    """The site's envelope at ``now`` from its budgets (by name, at least one). The energy
    price comes from ``price_from`` (one source per site), else the first by name."""
    names = sorted(budgets)
    own = {name: evaluate(budgets[name], now) for name in names}
    binding = min(names, key=lambda n: (own[n].limit_kw, n))
    limit = own[binding].limit_kw
    # The next change of the lowest limit is at one of the budgets' own next changes.
    change, change_by = None, None
    for at in sorted({e.next_change.at for e in own.values() if e.next_change}):
        later = {n: evaluate(budgets[n], at).limit_kw for n in names}
        low = min(names, key=lambda n: (later[n], n))
        if later[low] != limit:
            change, change_by = LimitChange(at, later[low]), low
            break
    price_name = price_from if price_from in own else names[0]
    price = own[price_name]
    active = [e for e in own.values() if e.limit_kw == limit]
    composite = Envelope(
        limit_kw=limit,
        raw_limit_kw=own[binding].raw_limit_kw,
        active_windows=tuple(sorted({w for e in active for w in e.active_windows})),
        active_events=tuple(sorted({w for e in active for w in e.active_events})),
        next_change=change,
        energy_price_usd_per_mwh=price.energy_price_usd_per_mwh,
        next_price_change=price.next_price_change,
    )
    return SiteEnvelope(composite, own, binding, change_by, price_name)
