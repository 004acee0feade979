"""OpenADR 2.0b VEN adapter: demand-response events from an aggregator's VTN, written as
the events of a PowerBudget of the adapter's own, one per site (``openadr-<site>``).

The adapter never edits a budget it did not create, and GitOps never edits the adapter's:
one writer per object. Each OpenADR event becomes one budget event per signal interval,
with the limit from the ``LOAD_DISPATCH`` setpoint (converted to kW from the signal's unit
and SI scale) or from the ``SIMPLE`` level through the configured table. Modifications
replace what an event delivered, cancellations remove it. The adapter opts in when every
limit of the event is at or above the site's non-curtailable floor and opts out, with the
reason, otherwise: an opted-out event is not delivered, the site cannot honour it anyway.

What was delivered is also written on the budget (annotation ``openadr.dualcap.io/events``)
so that a restarted adapter, or one whose VTN is unreachable, keeps every event it
delivered until the event's end: a silent VTN is not a cancellation.

The mapping (``decide``) is pure; ``Adapter`` is the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import signal
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dualcap.api.budget import MAX_LIMIT_KW, PowerBudget
from dualcap.api.names import API_VERSION
from dualcap.signals.freshness import Signal, SignalAge

log = logging.getLogger("dualcap.openadr")

ADAPTER_LABEL = "dualcap.io/adapter"
ADAPTER = "openadr"
EVENTS_ANNOTATION = "openadr.dualcap.io/events"
VTN_ANNOTATION = "openadr.dualcap.io/vtn"
BUDGETS = "/apis/dualcap.io/v1alpha1/powerbudgets"
SITES = "/apis/dualcap.io/v1alpha1/sites"
SOURCE = "openadr"
MAX_LEAD_SECONDS = 86_400  # the budget's own bound on leadTimeSeconds
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


# --------------------------------------------------------------------------- config


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class SiteConfig(_Model):
    """One site this VEN speaks for."""

    name: str = Field(description="The Site's name (the budget's siteRef).")
    interconnect_kw: float = Field(alias="interconnectKW", gt=0, le=MAX_LIMIT_KW)
    floor_kw: float | None = Field(
        default=None,
        alias="floorKW",
        ge=0,
        description="What the site cannot shed, in kW, when the Site's status has no floorKW.",
    )
    resource_ids: tuple[str, ...] = Field(
        default=(),
        alias="resourceIDs",
        description="Events targeting these resources go to this site; with none, every event of the VEN.",
    )


class TlsConfig(_Model):
    ca_file: str | None = Field(default=None, alias="caFile")
    cert_file: str | None = Field(default=None, alias="certFile")
    key_file: str | None = Field(default=None, alias="keyFile")
    check_hostname: bool = Field(default=True, alias="checkHostname")


class SigningConfig(_Model):
    """XML signatures (OpenADR 2.0b): ours with cert/key, the VTN's checked by fingerprint."""

    cert_file: str = Field(alias="certFile")
    key_file: str = Field(alias="keyFile")
    passphrase_file: str | None = Field(
        default=None, alias="passphraseFile", description="A file holding the key's passphrase."
    )
    vtn_fingerprint: str | None = Field(default=None, alias="vtnFingerprint")


class Config(_Model):
    """The VEN's configuration file, e.g.::

        vtnURL: https://vtn.aggregator.example/OpenADR2/Simple/2.0b
        venName: dualcap-rockdale
        pollIntervalSeconds: 10
        simpleLevels: {1: 30000, 2: 15000, 3: 5000}   # kW the site may draw at each level
        tls: {caFile: /tls/ca.crt, certFile: /tls/tls.crt, keyFile: /tls/tls.key}
        signing: {certFile: /tls/tls.crt, keyFile: /tls/tls.key, vtnFingerprint: "AB:CD:..."}
        sites:
          - {name: tx-rockdale-1, interconnectKW: 45000, floorKW: 2000, resourceIDs: [rockdale-1]}

    Plain ``http://`` only with ``insecure: true``.
    """

    vtn_url: str = Field(alias="vtnURL")
    ven_name: str = Field(alias="venName")
    ven_id: str | None = Field(default=None, alias="venID")
    sites: tuple[SiteConfig, ...] = Field(min_length=1)
    simple_levels: dict[int, float] = Field(
        default_factory=dict,
        alias="simpleLevels",
        description="SIMPLE level (1-3) -> the site limit in kW; level 0 is normal operation.",
    )
    poll_interval_seconds: float = Field(default=10.0, alias="pollIntervalSeconds", gt=0, le=86_400)
    lead_time_seconds: int = Field(default=120, alias="leadTimeSeconds", ge=0, le=MAX_LEAD_SECONDS)
    open_ended_hours: float = Field(default=1.0, alias="openEndedHours", gt=0, le=24)
    insecure: bool = Field(default=False, description="Allow plain HTTP to the VTN.")
    tls: TlsConfig | None = None
    signing: SigningConfig | None = None
    request_timeout_seconds: float = Field(default=10.0, alias="requestTimeoutSeconds", gt=0)

    @field_validator("simple_levels")
    @classmethod
    def _levels(cls, value: dict[int, float]) -> dict[int, float]:
        for level, kw in value.items():
            if level not in (1, 2, 3) or not 0 <= kw <= MAX_LIMIT_KW:
                raise ValueError(f"simpleLevels: level {level} -> {kw} kW (levels 1-3, kW >= 0)")
        return value

    @model_validator(mode="after")
    def _transport(self) -> Config:
        if self.vtn_url.startswith("http://") and not self.insecure:
            raise ValueError("vtnURL is plain http: set insecure: true to allow it")
        if not self.vtn_url.startswith(("http://", "https://")):
            raise ValueError("vtnURL must be an http(s) URL")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("sites: a site is named twice")
        return self


class ConfigError(Exception):
    pass


def load_config(path: str | Path) -> Config:
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    try:
        return Config.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


# --------------------------------------------------------------------------- mapping


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
        ends = [_parse(e["end"]) for e in self.events]
        if self.ends_at:
            ends.append(_parse(self.ends_at))
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


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stamp(at: datetime) -> str:
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
            event_id, modification, site.name, opt, reason, message, ends_at=_stamp(ends_at), **kw
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
                "start": _stamp(begin),
                "end": _stamp(end),
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


def budget_name(site: str) -> str:
    return f"openadr-{site}"


def budget_body(
    site: SiteConfig,
    decisions: Iterable[Decision],
    now: datetime,
    default_lead_seconds: int,
    vtn_url: str,
) -> dict[str, Any]:
    """The adapter's PowerBudget for one site: the events of every opted-in decision that
    has not ended, and every decision (opt-outs with their reasons) in an annotation."""
    kept = sorted(
        (d for d in decisions if d.end is None or d.end > now),
        key=lambda d: d.event_id,
    )
    live = [d for d in kept if d.opt == "optIn" and d.events]
    events = sorted(
        (e for d in live for e in d.events if _parse(e["end"]) > now),
        key=lambda e: (e["start"], e["name"]),
    )
    # Each event's lead is its own ramp-up when it has one (the config's default when it
    # has none); a budget has one lead time, so the largest of the live events' counts.
    lead = max((d.lead_time_seconds for d in live), default=default_lead_seconds)
    return {
        "apiVersion": API_VERSION,
        "kind": "PowerBudget",
        "metadata": {
            "name": budget_name(site.name),
            "labels": {ADAPTER_LABEL: ADAPTER},
            "annotations": {
                VTN_ANNOTATION: vtn_url,
                EVENTS_ANNOTATION: json.dumps(
                    [d.to_json() for d in kept if d.reason not in ("Cancelled", "Completed")],
                    sort_keys=True,
                    separators=(",", ":"),
                ),
            },
        },
        "spec": {
            "siteRef": site.name,
            "limitKW": site.interconnect_kw,
            "leadTimeSeconds": lead,
            "events": events,
        },
    }


def decisions_from_budget(site: str, budget: Mapping[str, Any] | None) -> list[Decision]:
    """What an earlier run delivered, read back from its budget's annotation."""
    annotations = ((budget or {}).get("metadata") or {}).get("annotations") or {}
    try:
        docs = json.loads(annotations.get(EVENTS_ANNOTATION) or "[]")
        return [Decision.from_json(site, d) for d in docs if isinstance(d, Mapping)]
    except (ValueError, KeyError, TypeError):
        log.warning(
            "budget %s: unreadable %s annotation, ignored", budget_name(site), EVENTS_ANNOTATION
        )
        return []


# --------------------------------------------------------------------------- I/O


class BudgetWriteError(Exception):
    pass


async def write_budget(client: Any, body: dict[str, Any], attempts: int = 5) -> bool:
    """Create or update the adapter's budget: a merge patch carrying the resourceVersion it
    was computed against, retried on a conflict; a budget of that name that is not the
    adapter's is never touched. Returns whether anything was written."""
    PowerBudget.model_validate(body)  # the API would refuse it anyway; say why here
    name = body["metadata"]["name"]
    path = f"{BUDGETS}/{name}"
    for _ in range(attempts):
        got = await client.request("GET", path)
        if got.code == 404:
            made = await client.create(BUDGETS, body)
            if made.ok:
                return True
            if made.code == 409:
                continue
            raise BudgetWriteError(f"create {name}: {made.code} {made.message}")
        if not got.ok:
            raise BudgetWriteError(f"get {name}: {got.code} {got.message}")
        current = got.body
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(ADAPTER_LABEL) != ADAPTER:
            raise BudgetWriteError(
                f"PowerBudget {name} exists and is not labelled {ADAPTER_LABEL}={ADAPTER}: not ours"
            )
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        wanted = body["metadata"]["annotations"]
        if current.get("spec") == body["spec"] and all(
            annotations.get(k) == v for k, v in wanted.items()
        ):
            return False
        patch = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "labels": body["metadata"]["labels"],
                "annotations": wanted,
            },
            "spec": body["spec"],
        }
        done = await client.patch(path, patch)
        if done.ok:
            return True
        if done.code != 409:
            raise BudgetWriteError(f"patch {name}: {done.code} {done.message}")
    raise BudgetWriteError(f"{name}: still conflicting after {attempts} attempts")


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.vtn_url.startswith("https://"):
        return None
    tls = config.tls or TlsConfig()
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.check_hostname = tls.check_hostname
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


@dataclass
class Adapter:
    """The VEN: registers, polls, decides, writes budgets. ``client`` is the operator's
    Kubernetes client (``dualcap.client.Client``)."""

    config: Config
    client: Any
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: SignalAge = field(default_factory=SignalAge)
    decisions: dict[str, dict[str, Decision]] = field(default_factory=dict)  # site -> event id
    last_contact: datetime | None = None
    registered: bool = False
    problems: list[str] = field(default_factory=list)  # the latest ones, for logs and tests
    written: int = 0
    _dirty: set[str] = field(default_factory=set)
    _ven: Any = None
    _answers: int = 0  # messages received from the VTN, valid or not
    _contacts: int = 0  # polls answered with a valid message

    # -- the VEN side

    def _make_ven(self) -> Any:
        from openleadr import OpenADRClient

        adapter = self

        class Ven(OpenADRClient):  # type: ignore[misc]
            async def poll(self) -> Any:
                result = await super().poll()
                adapter._contact(result)
                return result if isinstance(result, tuple) else (None, {})

        signing = self.config.signing
        ven = Ven(
            ven_name=self.config.ven_name,
            vtn_url=self.config.vtn_url,
            ven_id=self.config.ven_id,
            cert=signing.cert_file if signing else None,
            key=signing.key_file if signing else None,
            passphrase=(
                Path(signing.passphrase_file).read_text().strip()
                if signing and signing.passphrase_file
                else None
            ),
            vtn_fingerprint=signing.vtn_fingerprint if signing else None,
            disable_signature=signing is None,
            show_fingerprint=False,
        )
        ven.add_hook("after_receive_xml", self._answered)
        ven.add_handler("on_event", self.on_event)
        ven.add_handler("on_update_event", self.on_event)
        return ven

    async def _session(self) -> Any:
        import aiohttp

        context = _ssl_context(self.config)
        return aiohttp.ClientSession(
            headers={"content-type": "application/xml"},
            connector=aiohttp.TCPConnector(ssl=context if context is not None else True),
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_seconds),
        )

    def _answered(self, _xml: str) -> None:
        self._answers += 1

    def _contact(self, result: Any) -> None:
        if isinstance(result, tuple) and result[0] is not None:
            self.last_contact = self.clock()
            self._contacts += 1

    def _silence(self, answers_before: int) -> None:
        """Why a request got nothing usable: no answer, or an answer openleadr refused."""
        if self._answers > answers_before:
            self._problem(
                "RefusedAnswer",
                f"VTN {self.config.vtn_url} answered with a message that failed its schema,"
                " signature or fingerprint check (openleadr's log says which)",
            )
        else:
            self._problem("Unreachable", f"VTN {self.config.vtn_url} did not answer")

    async def _register(self) -> bool:
        ven = self._ven
        before = self._answers
        kind, payload = await ven.query_registration()
        if kind is None:
            self._silence(before)
            return False
        self.last_contact = self.clock()
        await ven.create_party_registration(
            ven_id=ven.ven_id, request_id=(payload.get("response") or {}).get("request_id")
        )
        if not ven.registration_id:
            self._problem("NotRegistered", f"VTN {self.config.vtn_url} refused the registration")
            return False
        log.info(
            "registered with %s as %s (%s)", self.config.vtn_url, ven.ven_id, ven.registration_id
        )
        await ven.sync_events()
        return True

    def _problem(self, reason: str, message: str) -> None:
        repeated = bool(self.problems) and self.problems[-1].startswith(f"{reason}:")
        self.problems = [*self.problems[-19:], f"{reason}: {message}"]
        if not repeated:  # a VTN down for an hour is one line, not one per poll
            log.warning("%s: %s", reason, message)

    async def on_event(self, event: Mapping[str, Any]) -> Opt:
        now = self.clock()
        self.last_contact = now
        reached = sites_for(event, self.config.sites)
        descriptor = event.get("event_descriptor") or {}
        if not reached:
            self._problem(
                "UnknownTarget",
                f"event {descriptor.get('event_id')} targets {sorted(targets_of(event))}, no site of ours",
            )
            return "optOut"
        made = []
        for site in reached:
            floor = await self._floor(site)
            decision = decide(
                event,
                site,
                floor,
                self.config.simple_levels,
                now,
                self.config.lead_time_seconds,
                timedelta(hours=self.config.open_ended_hours),
            )
            made.append(decision)
            self.decisions.setdefault(site.name, {})[decision.event_id] = decision
            self._dirty.add(site.name)
            level = logging.WARNING if decision.opt == "optOut" else logging.INFO
            log.log(
                level, "%s %s (%s): %s", site.name, decision.opt, decision.reason, decision.message
            )
        await self.flush()
        return overall_opt(made)

    async def _floor(self, site: SiteConfig) -> float | None:
        got = await self.client.request("GET", f"{SITES}/{site.name}")
        from_status = floor_from_site(got.body) if got.ok else None
        return from_status if from_status is not None else site.floor_kw

    # -- the budget side

    async def restore(self) -> None:
        """What earlier runs delivered, from the budgets they wrote."""
        for site in self.config.sites:
            got = await self.client.request("GET", f"{BUDGETS}/{budget_name(site.name)}")
            if got.ok:
                for d in decisions_from_budget(site.name, got.body):
                    self.decisions.setdefault(site.name, {})[d.event_id] = d

    async def flush(self) -> None:
        """Write the budgets of the sites whose decisions changed (and prune ended ones)."""
        now = self.clock()
        for site in self.config.sites:
            held = self.decisions.get(site.name, {})
            ended = [k for k, d in held.items() if d.end is not None and d.end <= now]
            for k in ended:
                del held[k]
                self._dirty.add(site.name)
            if site.name not in self._dirty:
                continue
            body = budget_body(
                site, held.values(), now, self.config.lead_time_seconds, self.config.vtn_url
            )
            try:
                if await write_budget(self.client, body):
                    self.written += 1
                self._dirty.discard(site.name)
            except BudgetWriteError as err:
                self._problem("BudgetWriteFailed", str(err))
            except ValidationError as err:
                self._problem(
                    "InvalidBudget", f"{budget_name(site.name)}: {err.errors()[0]['msg']}"
                )
                self._dirty.discard(site.name)

    def _renew_open_ended(self) -> None:
        """Re-decide events with no end of their own, so they stay in force until the VTN
        ends them; and let go of openleadr's copies of events that are over."""
        ven = self._ven
        if ven is None:
            return
        now = self.clock()
        horizon = timedelta(hours=self.config.open_ended_hours)
        keep = []
        for event in ven.received_events:
            period = event.get("active_period") or {}
            ids = (event.get("event_descriptor") or {}).get("event_id")
            start = period.get("dtstart")
            duration = _seconds(period.get("duration"))
            if (
                isinstance(start, datetime)
                and duration > 0
                and start + timedelta(seconds=duration) <= now
            ):
                continue
            keep.append(event)
            if duration == 0:
                for site in sites_for(event, self.config.sites):
                    held = self.decisions.get(site.name, {})
                    if ids not in held or held[ids].reason != "CanComply":
                        continue
                    left = (held[ids].end or now) - now
                    if left > horizon / 2:  # renewed at half time: one write per half hour
                        continue
                    # its floor was checked when it came: only its end moves
                    renewed = decide(
                        event,
                        site,
                        None,
                        self.config.simple_levels,
                        now,
                        self.config.lead_time_seconds,
                        horizon,
                    )
                    if renewed.reason == "CanComply" and renewed != held[ids]:
                        held[ids] = renewed
                        self._dirty.add(site.name)
        ven.received_events[:] = keep

    def observe_age(self) -> None:
        now = self.clock()
        if self.last_contact is not None:
            for site in self.config.sites:
                self.metrics.observe(
                    site.name, SOURCE, Signal(None, self.last_contact, self.config.vtn_url), now
                )

    async def step(self) -> None:
        """One tick: register if need be, else poll; then write what changed."""
        if self._ven is None:
            self._ven = self._make_ven()
            self._ven.client_session = await self._session()
        try:
            if not self.registered:
                self.registered = await self._register()
            else:
                before, contacts = self._answers, self._contacts
                await self._ven._poll()
                if self._contacts == contacts:
                    self._silence(before)
        except Exception as err:  # a VTN answering garbage must not stop the adapter
            self._problem(
                "BadResponse", f"VTN {self.config.vtn_url}: {err.__class__.__name__}: {err}"
            )
        if self.registered and self._ven.registration_id is None:
            self.registered = False  # the VTN cancelled our registration: register again
        self._renew_open_ended()
        await self.flush()
        self.observe_age()

    async def run(self, stop: asyncio.Event) -> None:
        await self.restore()
        try:
            while not stop.is_set():
                await self.step()
                interval = self.config.poll_interval_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._ven is not None and self._ven.client_session is not None:
            await self._ven.client_session.close()
        self._ven = None


def quiet_openleadr() -> None:
    """openleadr's logger to WARNING (it logs a line per poll at INFO). Its client module
    sets that logger to INFO when imported, so it is imported first: a level set before
    would be overridden when the VEN is made."""
    import openleadr.client  # noqa: F401

    logging.getLogger("openleadr").setLevel(logging.WARNING)


def run(
    config_path: str,
    metrics_port: int = 0,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """``dualcap openadr --config FILE``: until interrupted."""
    from prometheus_client import start_http_server

    from dualcap.client import Client, connection_info
    from dualcap.login import CredentialsError
    from dualcap.login import load as load_credentials

    config = load_config(config_path)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_openleadr()
    try:
        creds = load_credentials(kubeconfig, context)
    except CredentialsError as err:
        raise ConfigError(str(err)) from None

    async def main() -> None:
        client = Client(connection_info(creds), credentials=creds)
        adapter = Adapter(config, client)
        if metrics_port:
            start_http_server(metrics_port, registry=adapter.metrics.registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):  # a pod's stop: finish the tick, close
            loop.add_signal_handler(number, stop.set)
        try:
            await adapter.run(stop)
        finally:
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
