"""The pure mapping from an OpenADR event (openleadr's parsed dict) to what it means for
one site: the budget events, the lead time, the opt-in or -out and why."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from dualcap.signals.openadr.config import SiteConfig
from dualcap.signals.openadr.names import MAX_LEAD_SECONDS

SI_SCALE = {
    "p": 1e-12,
    "n": 1e-9,
    "micro": 1e-6,
    "m": 1e-3,
    "c": 1e-2,
    "d": 1e-1,
    "none": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
}
Opt = Literal["optIn", "optOut"]


@dataclass(frozen=True)
class Decision:
    """What one OpenADR event (at one modification) means for one site."""

    event_id: str
    modification_number: int
    site: str
    opt: Opt
    reason: str  # CanComply, BelowFloor, NoUsableSignal, InvalidSetpoint, Cancelled, Completed
    message: str
    events: tuple[dict[str, Any], ...] = ()  # budget events: name, start, end, limitKW
    lead_time_seconds: int = 0
    ends_at: str | None = None  # when the OpenADR event ends: the decision is kept till then

    @property
    def end(self) -> datetime | None:
        ends = [parse_time(e["end"]) for e in self.events]
        if self.ends_at:
            ends.append(parse_time(self.ends_at))
        return max(ends, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "eventID": self.event_id,
            "modificationNumber": self.modification_number,
            "opt": self.opt,
            "reason": self.reason,
            "message": self.message,
            "leadTimeSeconds": self.lead_time_seconds,
            "events": list(self.events),
            "endsAt": self.ends_at,
        }

    @classmethod
    def from_json(cls, site: str, doc: Mapping[str, Any]) -> Decision:
        return cls(
            event_id=str(doc["eventID"]),
            modification_number=int(doc.get("modificationNumber", 0)),
            site=site,
            opt="optOut" if doc.get("opt") == "optOut" else "optIn",
            reason=str(doc.get("reason", "")),
            message=str(doc.get("message", "")),
            events=tuple(dict(e) for e in doc.get("events") or []),
            lead_time_seconds=int(doc.get("leadTimeSeconds", 0)),
            ends_at=str(doc["endsAt"]) if doc.get("endsAt") else None,
        )


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):  # {"duration": timedelta} in some openleadr shapes
        return _seconds(value.get("duration"))
    return 0.0


def event_name(event_id: str, uid: int) -> str:
    """A DNS label for one interval of an event, stable across modifications."""
    slug = re.sub(r"[^a-z0-9-]+", "-", event_id.lower()).strip("-")
    if slug != event_id or len(slug) > 48 or not slug:
        digest = hashlib.sha256(event_id.encode()).hexdigest()[:8]
        slug = f"{slug[:39].strip('-') or 'event'}-{digest}"
    return f"{slug}-{uid}"


def targets_of(event: Mapping[str, Any]) -> set[str]:
    """The resource IDs an event targets (empty: the whole VEN)."""
    found: set[str] = set()
    by_type = event.get("targets_by_type") or {}
    found.update(str(r) for r in by_type.get("resource_id") or [])
    for target in event.get("targets") or []:
        if isinstance(target, Mapping) and target.get("resource_id"):
            found.add(str(target["resource_id"]))
    return found


def sites_for(event: Mapping[str, Any], sites: Sequence[SiteConfig]) -> list[SiteConfig]:
    wanted = targets_of(event)
    if not wanted:
        return list(sites)
    return [s for s in sites if wanted & set(s.resource_ids)]


def _kw(payload: float, measurement: Mapping[str, Any] | None) -> float | None:
    """A setpoint in kW from the signal's measurement (unit W, SI scale); a setpoint with
    no measurement is taken as kW, as the LOAD_DISPATCH profile of the programme states."""
    if not measurement:
        return payload
    unit = str(measurement.get("unit") or "W")
    scale = str(measurement.get("scale") or "none")
    if unit != "W" or scale not in SI_SCALE:
        return None
    return payload * SI_SCALE[scale] / 1000.0


def _signals(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = event.get("event_signals") or []
    if isinstance(raw, Mapping):
        raw = raw.get("event_signals") or []
    return [s for s in raw if isinstance(s, Mapping)]


def _limits(
    event: Mapping[str, Any], levels: Mapping[int, float]
) -> tuple[list[tuple[int, float, float, float | None]], str] | str:
    """[(uid, offset s, duration s, limit kW or None for normal operation)], source; or why
    the event has no usable signal."""
    signals = _signals(event)
    dispatch = [s for s in signals if s.get("signal_name") == "LOAD_DISPATCH"]
    simple = [s for s in signals if s.get("signal_name") == "SIMPLE"]
    chosen: Mapping[str, Any]
    if dispatch:
        chosen = dispatch[0]
        if chosen.get("signal_type") != "setpoint":
            return (
                f"LOAD_DISPATCH of type {chosen.get('signal_type')!r}: only setpoint is supported"
            )
    elif simple:
        chosen = simple[0]
    else:
        names = ", ".join(sorted({str(s.get("signal_name")) for s in signals})) or "none"
        return f"no LOAD_DISPATCH or SIMPLE signal (signals: {names})"
    intervals = sorted(
        (i for i in chosen.get("intervals") or [] if isinstance(i, Mapping)),
        key=lambda i: int(i.get("uid") or 0),
    )
    if not intervals:
        return f"{chosen.get('signal_name')}: no intervals"
    out: list[tuple[int, float, float, float | None]] = []
    offset = 0.0
    for n, interval in enumerate(intervals):
        raw_uid = interval.get("uid")
        uid = int(raw_uid) if isinstance(raw_uid, int | str) and str(raw_uid).isdigit() else n
        duration = _seconds(interval.get("duration"))
        try:
            payload = float(interval.get("signal_payload"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"interval {uid}: payload {interval.get('signal_payload')!r} is not a number"
        if not math.isfinite(payload):
            return f"interval {uid}: payload {payload} is not finite"
        limit: float | None
        if chosen.get("signal_name") == "LOAD_DISPATCH":
            limit = _kw(payload, chosen.get("measurement"))
            if limit is None:
                m = chosen.get("measurement") or {}
                return f"LOAD_DISPATCH in {m.get('scale')}{m.get('unit')}: a power in W expected"
        else:
            level = int(payload)
            if level != payload or level not in (0, 1, 2, 3):
                return f"interval {uid}: SIMPLE level {payload} is not 0-3"
            if level == 0:
                limit = None  # normal operation
            elif level in levels:
                limit = float(levels[level])
            else:
                return f"interval {uid}: SIMPLE level {level} has no limit in simpleLevels"
        out.append((uid, offset, duration, limit))
        offset += duration
    return out, str(chosen.get("signal_name"))


def lead_time_seconds(event: Mapping[str, Any], default: int) -> int:
    """The ramp-up period, else the site's default; never more than the notification
    period (the VTN cannot ask for a ramp before its notice)."""
    period = event.get("active_period") or {}
    ramp = _seconds(period.get("ramp_up") or period.get("ramp_up_period"))
    notice = _seconds(period.get("notification") or period.get("notification_period"))
    lead = ramp if ramp > 0 else float(default)
    if notice > 0:
        lead = min(lead, notice)
    return int(min(MAX_LEAD_SECONDS, max(0.0, lead)))


def decide(
    event: Mapping[str, Any],
    site: SiteConfig,
    floor_kw: float | None,
    levels: Mapping[int, float],
    now: datetime,
    default_lead_seconds: int = 120,
    open_ended: timedelta = timedelta(hours=1),
) -> Decision:
    """One parsed OpenADR event (openleadr's dict) -> what it means for one site."""
    descriptor = event.get("event_descriptor") or {}
    event_id = str(descriptor.get("event_id") or "")
    modification = int(descriptor.get("modification_number") or 0)

    period = event.get("active_period") or {}
    start = period.get("dtstart")
    total = _seconds(period.get("duration"))
    ends_at = now
    if isinstance(start, datetime) and start.tzinfo is not None:
        ends_at = start + timedelta(seconds=total) if total > 0 else max(start, now) + open_ended

    def out(opt: Opt, reason: str, message: str, **kw: Any) -> Decision:
        return Decision(
            event_id, modification, site.name, opt, reason, message, ends_at=stamp(ends_at), **kw
        )

    if descriptor.get("event_status") == "cancelled":
        ends_at = now
        return out("optIn", "Cancelled", f"event {event_id} cancelled by the VTN")
    if not isinstance(start, datetime) or start.tzinfo is None:
        return out("optOut", "NoUsableSignal", f"event {event_id}: no dtstart")
    limits = _limits(event, levels)
    if isinstance(limits, str):
        return out("optOut", "NoUsableSignal", f"event {event_id}: {limits}")
    intervals, source = limits
    events: list[dict[str, Any]] = []
    for uid, offset, duration, limit in intervals:
        begin = start + timedelta(seconds=offset)
        # A duration of 0 is "until further notice": in force for the next hour, renewed
        # on every poll until the VTN ends it.
        seconds = duration if duration > 0 else (total if total > 0 and len(intervals) == 1 else 0)
        end = begin + timedelta(seconds=seconds) if seconds > 0 else max(begin, now) + open_ended
        if limit is None or end <= now:
            continue
        if limit < 0:
            return out(
                "optOut",
                "InvalidSetpoint",
                f"event {event_id}: setpoint {limit:,.1f} kW is negative",
            )
        if limit > site.interconnect_kw:
            return out(
                "optOut",
                "InvalidSetpoint",
                f"event {event_id}: setpoint {limit:,.1f} kW is above the interconnect"
                f" limit {site.interconnect_kw:,.1f} kW",
            )
        events.append(
            {
                "name": event_name(event_id, uid),
                "start": stamp(begin),
                "end": stamp(end),
                "limitKW": round(limit, 3),
            }
        )
    if not events:
        return out("optIn", "Completed", f"event {event_id}: nothing left to curtail for")
    lowest = min(e["limitKW"] for e in events)
    if floor_kw is not None and lowest < floor_kw:
        return out(
            "optOut",
            "BelowFloor",
            f"event {event_id}: limit {lowest:,.1f} kW is below the site's non-curtailable"
            f" floor of {floor_kw:,.1f} kW",
        )
    return out(
        "optIn",
        "CanComply",
        f"event {event_id}: {len(events)} interval(s) from {source}, lowest {lowest:,.1f} kW",
        events=tuple(events),
        lead_time_seconds=lead_time_seconds(event, default_lead_seconds),
    )


def overall_opt(decisions: Iterable[Decision]) -> Opt:
    """The VEN's answer for an event: in only if every site it reaches can comply."""
    return "optOut" if any(d.opt == "optOut" for d in decisions) else "optIn"


def floor_from_site(site: Mapping[str, Any] | None) -> float | None:
    """The Site's status.floorKW, if it reports one."""
    status = (site or {}).get("status") or {}
    value = status.get("floorKW")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
