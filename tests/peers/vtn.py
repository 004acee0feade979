"""openleadr's own VTN (``OpenADRServer``) on 127.0.0.1, driven by a test: events are
delivered through its ``on_poll`` handler, because its ``add_event`` drops the
notification and ramp-up periods; the VEN's opt answers are recorded."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import OpenADRServer, objects

VEN_ID = "ven-rockdale-1"
PATH = "/OpenADR2/Simple/2.0b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_dispatch(
    event_id: str,
    start: datetime,
    minutes: float,
    kw: float,
    notification: timedelta | None = None,
    ramp_up: timedelta | None = None,
    modification: int = 0,
    status: str = "far",
) -> objects.Event:
    return _event(
        event_id,
        start,
        minutes,
        "LOAD_DISPATCH",
        "setpoint",
        kw,
        notification,
        ramp_up,
        modification,
        status,
    )


def simple(
    event_id: str,
    start: datetime,
    minutes: float,
    level: int,
    modification: int = 0,
    status: str = "far",
) -> objects.Event:
    return _event(
        event_id, start, minutes, "SIMPLE", "level", level, None, None, modification, status
    )


def _event(
    event_id: str,
    start: datetime,
    minutes: float,
    name: str,
    kind: str,
    payload: float,
    notification: timedelta | None,
    ramp_up: timedelta | None,
    modification: int,
    status: str,
) -> objects.Event:
    duration = timedelta(minutes=minutes)
    measurement = (
        objects.Measurement(name="realPower", description="RealPower", unit="W", scale="k")
        if name == "LOAD_DISPATCH"
        else None
    )
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id=event_id,
            modification_number=modification,
            market_context="oadr://ercot.example/ers",
            event_status=status,
            created_date_time=datetime.now(UTC),
        ),
        active_period=objects.ActivePeriod(
            dtstart=start,
            duration=duration,
            notification_period=notification,
            ramp_up_period=ramp_up,
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[
                    objects.Interval(
                        dtstart=start, duration=duration, signal_payload=payload, uid=0
                    )
                ],
                signal_name=name,
                signal_type=kind,
                signal_id=f"{event_id}-signal",
                measurement=measurement,
            )
        ],
        targets=[objects.Target(ven_id=VEN_ID)],
        response_required="always",
    )
    if status == "cancelled":  # Event() sets the status from the times, as cancel_event does after
        event.event_descriptor.event_status = status
    return event


@dataclass
class Vtn:
    port: int = field(default_factory=free_port)
    poll_seconds: float = 0.2
    registrations: list[str] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (event_id, opt_type)
    polls: int = 0
    pending: list[objects.Event] = field(default_factory=list)
    active: dict[str, objects.Event] = field(default_factory=dict)
    delivered_at: dict[tuple[str, int], datetime] = field(default_factory=dict)
    server: OpenADRServer | None = None
    tls: dict[str, Any] = field(default_factory=dict)  # OpenADRServer's cert/http_* arguments

    @property
    def url(self) -> str:
        scheme = "https" if self.tls.get("http_cert") else "http"
        return f"{scheme}://127.0.0.1:{self.port}{PATH}"

    def send(self, event: objects.Event) -> None:
        """Deliver on the VEN's next poll (a new event, a modification or a cancellation)."""
        self.active[event.event_descriptor.event_id] = event
        self.pending.append(event)

    def answer(self, event_id: str) -> str | None:
        got = [opt for e, opt in self.answers if e == event_id]
        return got[-1] if got else None

    def _register(self, payload: dict[str, Any]) -> tuple[str, str]:
        self.registrations.append(payload.get("ven_name", ""))
        return VEN_ID, f"reg-{len(self.registrations)}"

    def _poll(self, ven_id: str) -> Any:
        self.polls += 1
        if not self.pending:
            return None
        events, self.pending = self.pending, []
        now = datetime.now(UTC)
        for e in events:
            d = e.event_descriptor
            self.delivered_at[(d.event_id, d.modification_number)] = now
        return "oadrDistributeEvent", {"events": [asdict(e) for e in events]}

    def _request_event(self, ven_id: str) -> Any:
        live = [e for e in self.active.values() if e.event_descriptor.event_status != "cancelled"]
        return [asdict(e) for e in live] or None

    def _created(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.answers.append((event_id, opt_type))

    async def start(self) -> None:
        server = OpenADRServer(
            vtn_id="TEST_VTN",
            http_host="127.0.0.1",
            http_port=self.port,
            requested_poll_freq=timedelta(seconds=self.poll_seconds),
            show_fingerprint=False,
            **self.tls,
        )
        server.add_handler("on_create_party_registration", self._register)
        server.add_handler("on_poll", self._poll)
        server.add_handler("on_request_event", self._request_event)
        server.add_handler("on_created_event", self._created)
        await server.run()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
