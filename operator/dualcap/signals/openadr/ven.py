"""The VEN: registers with the VTN, polls it, answers each event and writes the budgets;
``run`` is the `dualcap openadr` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from dualcap.signals.freshness import Signal, SignalAge
from dualcap.signals.openadr.budget import (
    BudgetWriteError,
    budget_body,
    budget_name,
    decisions_from_budget,
    write_budget,
)
from dualcap.signals.openadr.config import Config, ConfigError, SiteConfig, TlsConfig, load_config
from dualcap.signals.openadr.mapping import (
    Decision,
    Opt,
    _seconds,
    decide,
    floor_from_site,
    overall_opt,
    sites_for,
    targets_of,
)
from dualcap.signals.openadr.names import BUDGETS, SITES, SOURCE

log = logging.getLogger("dualcap.openadr")
# The adapter's problems, the reasons of dualcap_openadr_problems_total (anything else: Other)
PROBLEMS = (
    "Unreachable", "RefusedAnswer", "BadResponse", "NotRegistered", "UnknownTarget",
    "BudgetWriteFailed", "InvalidBudget", "Other",
)  # fmt: skip


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
    # dualcap_openadr_events{site,opt} and dualcap_openadr_problems_total{reason}, beside
    # dualcap_signal_age_seconds in the registry of ``metrics``
    _held: Gauge = field(init=False)
    _problems: Counter = field(init=False)

    def __post_init__(self) -> None:
        registry = self.metrics.registry
        self._held = Gauge(
            "dualcap_openadr_events",
            "OpenADR events the adapter holds for each site (not yet ended), by the answer it"
            " gave the VTN: optIn or optOut.",
            ["site", "opt"],
            registry=registry,
        )
        self._problems = Counter(
            "dualcap_openadr_problems",
            "Problems of the adapter by reason: Unreachable, RefusedAnswer, BadResponse,"
            " NotRegistered, UnknownTarget, BudgetWriteFailed, InvalidBudget, Other.",
            ["reason"],
            registry=registry,
        )
        for site in self.config.sites:
            for opt in ("optIn", "optOut"):
                self._held.labels(site.name, opt)
        for reason in PROBLEMS:
            self._problems.labels(reason)

    def count_held(self) -> None:
        """The held events by answer, for ``dualcap_openadr_events``."""
        now = self.clock()
        for site in self.config.sites:
            held = [
                d for d in self.decisions.get(site.name, {}).values()
                if d.end is None or d.end > now
            ]  # fmt: skip
            for opt in ("optIn", "optOut"):
                self._held.labels(site.name, opt).set(sum(1 for d in held if d.opt == opt))

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
        self._problems.labels(reason if reason in PROBLEMS else "Other").inc()
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
        self.count_held()

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
