"""`dualcap-demo`: the real operator on a local sandbox cluster, through an accelerated day.

The sandbox (an in-process Kubernetes API with a scheduler, kubelets and taint eviction)
is loaded with the examples; the operator runs in its own thread against it, on a site
clock that the demo moves: it cuts from one moment of the day to a few minutes before the
next while the site is settled, then lets the site clock run (30x by default) through the
moment until the operator has settled again. Leases arrive, the summer-peak window and an
ERS dispatch cut the limit, the dispatch ends, a lease ends, mining resumes.

The site's miners are there too (``hardware``): every ASIC controller has a block of fake
LuxOS miners, driven through their firmware by a real dualcap agent (the Site's
curtailment is MinerAgent), and the site has a SunSpec meter that reads what the fakes
really draw, the rest of the site as modelled, and a cooling load nobody declared. So a
curtailment shows as firmware commands and then as watts: on the MinerBlocks, on the
meter, in the Site's measured and unmodelled draw.

What the view and the summary report is measured on the cluster itself, not taken from
the operator: every tick the demo builds the planner's snapshot of the sandbox's objects
and reads the committed draw, the limit and the revenue from it (with the MinerBlocks'
reports, and the unmodelled load the operator counts from the meter, off the Site).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

SITE = "tx-rockdale-1"
LOCAL = ZoneInfo("America/Chicago")
DAY = datetime(2026, 7, 14, tzinfo=LOCAL)  # a Tuesday in July: summer-peak window applies
LEAD = timedelta(minutes=3)  # the site clock cuts to this long before each moment
AFTER = timedelta(minutes=2)  # and runs at least this long past it
TICK = 0.2  # seconds of wall time between two looks at the cluster


class SiteClock:
    """Site time: ``base`` at wall ``mono``, advancing ``speed`` times faster than the wall."""

    def __init__(self, start: datetime, speed: float):
        self._state = (start, time.monotonic(), speed)

    def __call__(self) -> datetime:
        base, mono, speed = self._state
        return base + timedelta(seconds=(time.monotonic() - mono) * speed)

    def jump(self, to: datetime) -> None:
        self._state = (to, time.monotonic(), self._state[2])

    def set_speed(self, speed: float) -> None:
        self._state = (self(), time.monotonic(), speed)

    @property
    def speed(self) -> float:
        return self._state[2]


def _lease(name: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {
            "siteRef": SITE,
            "gpus": 16,
            "gpusPerPod": 8,
            "start": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "priority": 50,
            "preemptible": False,
            "pricePerGPUHourUSD": 1.85,
            "template": {"spec": {"containers": [{"name": "finetune", "image": "nemo:24.07"}]}},
        },
    }


@dataclass
class Moment:
    at: datetime
    story: str
    action: Callable[[Any], None] | None = None


def moments() -> list[Moment]:
    at = DAY.replace

    def new_lease(sb: Any) -> None:
        sb.api.create_object(_lease("finetune-demo", at(hour=12), at(hour=18)))

    return [
        Moment(at(hour=11), "the examples applied: leases run, mining fills the 49.5 MW envelope"),
        Moment(at(hour=12), "a lease arrives: finetune-demo, 16 GPUs until 18:00", new_lease),
        Moment(
            at(hour=14), "ERS dispatch to 8 MW (2 min lead time), summer-peak window at 140 USD/MWh"
        ),
        Moment(at(hour=17), "ERS over: the window's 30 MW, but mining above break-even stays off"),
        Moment(at(hour=18), "finetune-demo ends: its pods go, its GPUs are free"),
        Moment(at(hour=19), "window and peak price over: mining resumes, 10 MW a minute"),
    ]


@dataclass
class Sample:
    at: datetime
    limit_kw: float  # the operator's target: the envelope, lowered ahead of cuts by the lead time
    envelope_kw: float  # the envelope itself at this moment (no lead time)
    committed_kw: float  # the parts (modelled_kw) and the unmodelled load
    draw: dict[str, float]  # kW by kind: mining, gpu, overhead, unmodelled
    controllers: dict[str, int]
    leases: dict[str, int]
    gpus_leased: int
    gpus_total: int
    revenue: dict[str, float]  # USD/h by kind: mining, gpu
    energy_cost: float  # USD/h
    settled: bool
    in_flight: int
    ramp_held: int = 0  # controllers the plan would resume now but for the ramp limit
    modelled_kw: float = 0.0  # the sum of the parts (mining as measured where reported)
    unmodelled_kw: float = 0.0  # what the operator counts beyond the parts, from the meter
    metered_kw: float | None = None  # what the operator last read off the meter
    meter_kw: float | None = None  # what the meter reads now (the site's true draw)
    measured_kw: float = 0.0  # the reporting blocks as their MinerBlocks measure them
    nameplate_kw: float = 0.0  # the same blocks by their nameplate
    reporting: int = 0  # blocks with a fresh MinerBlock report
    blocks: int = 0
    firmware: dict[str, int] = field(default_factory=dict)  # the fake miners by phase


@dataclass
class LimitChange:
    at: datetime
    before: float
    after: float
    wall: float
    compliant_wall: float | None = None
    compliant_at: datetime | None = None


@dataclass
class Ledger:
    """Energy, money and time over the envelope, integrated over the site clock."""

    energy_kwh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("mining", "gpu", "overhead", "unmodelled"), 0.0))  # fmt: skip
    revenue_usd: dict[str, float] = field(default_factory=lambda: {"mining": 0.0, "gpu": 0.0})
    energy_cost_usd: float = 0.0
    over_seconds: float = 0.0
    over_metered_seconds: float = 0.0  # the meter (the true draw) above the envelope
    metered_kwh: float = 0.0
    meter_reads: int = 0  # how often the operator read the meter
    measured_kwh: float = 0.0  # the reporting blocks, measured ...
    nameplate_kwh: float = 0.0  # ... and by nameplate
    changes: list[LimitChange] = field(default_factory=list)
    last: Sample | None = None

    def add(self, s: Sample) -> None:
        last = self.last
        if last is not None:
            hours = max(0.0, (s.at - last.at).total_seconds()) / 3600
            for kind, kw in last.draw.items():
                self.energy_kwh[kind] += kw * hours
            for kind, usd in last.revenue.items():
                self.revenue_usd[kind] += usd * hours
            self.energy_cost_usd += last.energy_cost * hours
            if last.committed_kw > last.envelope_kw + 1e-6:
                self.over_seconds += hours * 3600
            if last.meter_kw is not None:
                self.metered_kwh += last.meter_kw * hours
                if last.meter_kw > last.envelope_kw + 1e-6:
                    self.over_metered_seconds += hours * 3600
            self.measured_kwh += last.measured_kw * hours
            self.nameplate_kwh += last.nameplate_kw * hours
            if abs(s.limit_kw - last.limit_kw) > 1e-6:
                self.changes.append(LimitChange(s.at, last.limit_kw, s.limit_kw, time.monotonic()))
        for change in self.changes:
            if change.compliant_wall is None and s.committed_kw <= s.limit_kw + 1e-6:
                change.compliant_wall = time.monotonic()
                change.compliant_at = s.at
        self.last = s


def _without_ramp(snap: Any) -> Any:
    """The same site with no ramp limit: where the ramp is taking it."""
    site = snap.site
    if site is None:
        return snap
    behavior = site.spec.behavior.model_copy(update={"max_ramp_up_kw_per_minute": 10_000_000.0})
    spec = site.spec.model_copy(update={"behavior": behavior})
    return dataclasses.replace(snap, site=site.model_copy(update={"spec": spec}))


def observe(sb: Any, at: datetime, hardware: Any = None, history: Any = None) -> Sample:
    """The site as the cluster has it (the planner's conservative accounting; with
    ``history``, a planning.measured.History kept across looks, the MinerBlocks' reports
    counted as the operator counts them: a mining block at its recent peak, a sleeping
    one at the hashrate it last mined at).

    It is settled once the operator has nothing left to do at this moment: no command to
    send or waiting, nothing in flight, and no resume held back by the ramp limit (the
    ramp spreads a resumption over minutes; the moment lasts until it is done) - and,
    with the site's ``hardware``, once no miner is still falling asleep or waking (as
    the miners really are) and every block's fresh report says it did what its Node's
    marks ask.
    """
    from dualcap.planning import build_fleet, plan
    from dualcap.planning.envelope import compose
    from dualcap.planning.measured import report_from

    firmware = hardware.phases() if hardware is not None else None
    objects = []
    for rt in sb.store.types():
        if rt.kind in ("Site", "PowerBudget", "ComputeLease", "Node", "Pod", "MinerBlock"):
            objects.extend(sb.store.list_objects(rt))
    reports = None
    if history is not None:
        for obj in objects:
            report = report_from(obj) if obj.get("kind") == "MinerBlock" else None
            if report is not None:
                history.observe(report)
        reports = {n: r for n in history.nodes() if (r := history.report(n)) is not None}
    snap = build_fleet(objects, now=at, reports=reports).sites[SITE]  # fresh on the site clock
    p = plan(snap, at)
    envelope = p.limit_kw or 0.0
    if snap.budgets:  # the limit itself, without lead time
        specs = {
            n: b.spec.model_copy(update={"lead_time_seconds": 0}) for n, b in snap.budgets.items()
        }
        envelope = compose(specs, at).envelope.limit_kw
    phases: dict[str, int] = {}
    for obj in objects:
        if obj.get("kind") == "ComputeLease":
            phase = (obj.get("status") or {}).get("phase") or "Pending"
            phases[phase] = phases.get(phase, 0) + 1
    site = next(o for o in objects if o.get("kind") == "Site")
    status = site.get("status") or {}
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
    observed = status.get("observedGeneration") == site["metadata"].get("generation")
    quiet = not p.schedule.now and not p.schedule.deferred and not p.in_flight
    ramp_held = len(set(plan(_without_ramp(snap), at).mining) - set(p.mining))
    # The meter is the operator's to read: what it read, and what it counts beyond the parts
    # (its reading against the parts as they were when it was taken), from the Site.
    unmodelled = float(status.get("unmodelledKW") or 0.0)
    metered = status.get("meteredKW")
    miners = p.miners
    return Sample(
        at=at,
        limit_kw=p.limit_kw or 0.0,
        envelope_kw=envelope,
        committed_kw=p.committed_kw + unmodelled,
        draw={
            "mining": p.committed.mining_kw,
            "gpu": p.committed.gpu_kw,
            "overhead": p.committed.overhead_kw,
            "unmodelled": unmodelled,
        },
        controllers=dict(p.controllers),
        leases=phases,
        gpus_leased=p.gpus_leased,
        gpus_total=p.gpus_total,
        revenue={"mining": p.mining_revenue_usd_per_hour, "gpu": p.lease_revenue_usd_per_hour},
        energy_cost=p.energy_cost_usd_per_hour,
        settled=ready
        and observed
        and quiet
        and not ramp_held
        and (firmware is None or (not _moving(firmware) and _carried_out(snap))),
        in_flight=p.in_flight,
        ramp_held=ramp_held,
        modelled_kw=p.committed_kw,
        unmodelled_kw=unmodelled,
        metered_kw=None if metered is None else float(metered),
        measured_kw=miners.measured_kw if miners else 0.0,
        nameplate_kw=miners.modelled_kw if miners else 0.0,
        reporting=miners.reporting if miners else 0,
        blocks=miners.blocks if miners else 0,
        firmware=dict(firmware or {}),
        meter_kw=hardware.metered_kw() if hardware is not None else None,
    )


def _moving(firmware: dict[str, int]) -> int:
    return firmware.get("waking", 0) + firmware.get("falling-asleep", 0)


def _carried_out(snap: Any) -> bool:
    """Every block reports (fresh) what its Node's marks ask: all asleep, or all mining."""
    return all(
        c.report is not None
        and (c.report.asleep if c.marked else c.report.mining == c.report.miners)
        for c in snap.controllers
        if c.dispatchable
    )


def operator_saw(state: Any, node: str) -> datetime | None:
    """When the block of ``node`` was last observed, as the operator has its reports."""
    with contextlib.suppress(RuntimeError):  # its history changing under the look
        report = state.history.report(node)
        return report.observed_at if report is not None else None
    return None


def recent_events(sb: Any, n: int = 6) -> list[str]:
    events = sorted(
        sb.store.list_objects(sb.store.rt("", "events")),
        key=lambda e: (
            e.get("lastTimestamp") or "",
            int(e["metadata"].get("resourceVersion") or 0),
        ),
    )
    out = []
    for e in events[-n:]:
        ts = e.get("lastTimestamp") or ""
        when = (
            datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(LOCAL).strftime("%H:%M")
            if ts
            else "     "
        )
        out.append(f"{when} {e.get('type', ''):<7} {e.get('reason', ''):<12} {e.get('message', '')}"[:110])  # fmt: skip
    return out


def _bar(value: float, limit: float, width: int = 40) -> str:
    if limit <= 0:
        return ""
    full = min(width, round(width * value / limit))
    over = value > limit + 1e-6
    return "[" + ("!" if over else "#") * full + "." * (width - full) + "]"


def _metered(s: Sample) -> str:
    meter = "" if s.meter_kw is None else f"{s.meter_kw:,.0f} kW "
    read = "no reading yet" if s.metered_kw is None else f"read {s.metered_kw:,.0f}"
    return f"{meter}({read})"


def _phases(s: Sample) -> str:
    f = s.firmware
    told = [(f.get(k, 0), label) for k, label in _PHASES]
    return ", ".join(f"{n} {label}" for n, label in told if n) or "none"


_PHASES = (("mining", "mining"), ("waking", "waking"), ("falling-asleep", "falling asleep"), ("asleep", "asleep"))  # fmt: skip


def power_line(s: Sample) -> str:
    """The miners as they are, as measured against their model, and the meter."""
    return (
        f"miners {_phases(s)} | measured {s.measured_kw:,.0f} kW (model {s.nameplate_kw:,.0f},"
        f" {s.reporting}/{s.blocks} blocks) | meter {_metered(s)}: modelled"
        f" {s.modelled_kw:,.0f} + unmodelled {s.unmodelled_kw:,.0f}"
    )


def firmware_line(s: Sample) -> str:
    """The fake miners as they really are (not as reported)."""
    f = s.firmware
    return (
        f"miners  {f.get('mining', 0):>3} mining   {f.get('waking', 0):>3} waking"
        f"   {f.get('falling-asleep', 0):>3} falling asleep   {f.get('asleep', 0):>3} asleep"
    )


CHANGE_KW = 250.0  # off a terminal, a change of the committed draw worth a line


class View:
    """A live view on a terminal; on anything else, a line per change worth telling (the
    measured draw moves with the firmware's noise at every report: a line when the state
    changes, or the committed draw by more than CHANGE_KW)."""

    def __init__(self, out: TextIO, live: bool | None = None):
        self.out = out
        self.live = out.isatty() if live is None else live
        self._last_line = ""
        self._last_kw: float | None = None
        self._events_seen: set[str] = set()

    def cut(self, frm: datetime, to: datetime) -> None:
        if not self.live:
            print(
                f"\n   (the site clock cuts from {frm.astimezone(LOCAL):%H:%M} to {to.astimezone(LOCAL):%H:%M}:"
                " the site is settled; the meter's last reading is that old until its next poll)",
                file=self.out,
                flush=True,
            )

    def moment(self, m: Moment) -> None:
        if not self.live:
            print(f"\n== {m.at:%H:%M} CDT  {m.story}", file=self.out, flush=True)

    def show(self, s: Sample, story: str, speed: float, events: list[str]) -> None:
        c, lp = s.controllers, s.leases
        if self.live:
            lines = [
                f"dualcap-demo  {SITE}   {s.at.astimezone(LOCAL):%a %d %b %H:%M:%S} CDT   site clock x{speed:.0f}",
                f"  {story}",
                "",
                f"  limit      {s.limit_kw:>9,.0f} kW    committed {s.committed_kw:>9,.0f} kW    headroom {s.limit_kw - s.committed_kw:>9,.0f} kW",
                f"             {_bar(s.committed_kw, s.limit_kw)}",
                f"  draw       mining {s.draw['mining']:>9,.0f} kW   gpu {s.draw['gpu']:>6,.0f} kW   overhead {s.draw['overhead']:>6,.0f} kW   unmodelled {s.draw['unmodelled']:>5,.0f} kW",
                f"  measured   mining {s.measured_kw:>9,.0f} kW   model (nameplate) {s.nameplate_kw:>9,.0f} kW   MinerBlocks reporting {s.reporting} of {s.blocks}",
                f"  meter      {_metered(s):>16}   modelled {s.modelled_kw:>9,.0f} kW   unmodelled {s.unmodelled_kw:>6,.0f} kW",
                f"  firmware   {firmware_line(s)}",
                f"  miners     mining {c.get('mining', 0):>3}   curtailing {c.get('curtailing', 0):>3}   curtailed {c.get('curtailed', 0):>3}   held {c.get('held', 0):>3}   waiting for the ramp {s.ramp_held:>3}",
                f"  leases     {'   '.join(f'{k.lower()} {v}' for k, v in sorted(lp.items()))}",
                f"  GPUs       leased {s.gpus_leased} of {s.gpus_total}",
                f"  revenue    mining {s.revenue['mining']:>7,.0f} USD/h   gpu {s.revenue['gpu']:>6,.0f} USD/h   energy {s.energy_cost:>7,.0f} USD/h",
                "",
                "  last events:",
                *[f"    {e}" for e in events],
            ]  # fmt: skip
            self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
            self.out.flush()
            return
        state = (
            f"  mining {c.get('mining', 0):>2}  curtailed {c.get('curtailed', 0):>2}"
            f"  leases {', '.join(f'{k.lower()} {v}' for k, v in sorted(lp.items()))}"
            + (f"  ({s.ramp_held} waiting for the ramp)" if s.ramp_held else "")
        )
        key = f"{s.limit_kw:.0f} {c.get('curtailing', 0)} {s.reporting} {s.metered_kw is None} {_phases(s)}{state}"  # fmt: skip
        moved = self._last_kw is None or abs(s.committed_kw - self._last_kw) > CHANGE_KW
        if key != self._last_line or moved:
            print(
                f"{s.at.astimezone(LOCAL):%H:%M:%S}  limit {s.limit_kw:>7,.0f} kW  committed {s.committed_kw:>7,.0f} kW"
                + state,
                file=self.out,
            )
            print(f"          power  {power_line(s)}", file=self.out, flush=True)
            self._last_line, self._last_kw = key, s.committed_kw
        for e in events:
            if e not in self._events_seen:
                self._events_seen.add(e)
                print(f"          event  {e}", file=self.out, flush=True)


def summary(ledger: Ledger, out: TextIO, wall: float) -> None:
    print("\n== summary", file=out)
    print("limit changes (time to compliance: wall clock, and on the site clock):", file=out)
    for ch in ledger.changes:
        if ch.compliant_wall is None or ch.compliant_at is None:
            took = "not yet"
        else:
            took = f"{ch.compliant_wall - ch.wall:5.2f} s  ({(ch.compliant_at - ch.at).total_seconds():4.0f} s site)"
        print(
            f"  {ch.at.astimezone(LOCAL):%H:%M:%S}  {ch.before:>9,.0f} -> {ch.after:>9,.0f} kW   compliant after {took}",
            file=out,
        )
    print(
        f"time over the envelope (site clock, the limit without lead time): {ledger.over_seconds:,.0f} s",
        file=out,
    )
    print(
        f"time over the envelope on the meter (the true draw): {ledger.over_metered_seconds:,.0f} s",
        file=out,
    )
    e, r = ledger.energy_kwh, ledger.revenue_usd
    print(
        f"energy: mining {e['mining'] / 1000:,.1f} MWh, GPU {e['gpu'] / 1000:,.1f} MWh,"
        f" overhead {e['overhead'] / 1000:,.1f} MWh, unmodelled {e['unmodelled'] / 1000:,.1f} MWh",
        file=out,
    )
    print(
        f"the meter: {ledger.metered_kwh / 1000:,.1f} MWh, read {ledger.meter_reads:,} times; the miners as their agents measured"
        f" them: {ledger.measured_kwh / 1000:,.1f} MWh, by nameplate {ledger.nameplate_kwh / 1000:,.1f} MWh",
        file=out,
    )
    net = r["mining"] + r["gpu"] - ledger.energy_cost_usd
    print(
        f"revenue: mining {r['mining']:,.0f} USD, GPU leases {r['gpu']:,.0f} USD;"
        f" energy cost {ledger.energy_cost_usd:,.0f} USD; net {net:,.0f} USD",
        file=out,
    )
    print(f"({wall:.0f} s of wall time)", file=out, flush=True)


async def play(
    examples: Path,
    out: TextIO | None = None,
    speed: float = 30.0,
    keep_running: bool = False,
    kubeconfig: Path | None = None,
    live: bool | None = None,
    max_phase_seconds: float = 20.0,
    chart: Path | None = None,
) -> Ledger:
    from dualcap.cluster.operator import Operator
    from dualcap.cluster.settings import OperatorSettings
    from dualcap.handlers.run import OperatorThread
    from dualcap.planning.measured import History
    from dualcap_demo.hardware import Hardware
    from dualcap_sandbox.app import Sandbox
    from dualcap_sandbox.cluster import Behaviour
    from dualcap_sandbox.manifests import read_objects

    out = out or sys.stdout
    started = time.monotonic()
    script = moments()
    clock = SiteClock(script[0].at, speed)
    sb = Sandbox(behaviour=Behaviour(pod_termination_seconds=0.3), bookmark_seconds=1.0)
    await sb.start()
    tmp = Path(tempfile.mkdtemp(prefix="dualcap-demo-"))
    path = sb.write_kubeconfig(kubeconfig or tmp / "kubeconfig")
    os.environ["KUBECONFIG"] = str(path)
    crds = examples.parent / "crds"
    sb.load_files([str(crds)])
    hardware = Hardware(SITE, clock, speed)
    state = Operator(OperatorSettings(clock=clock, safety_period=timedelta(seconds=30)))
    op = OperatorThread(state)
    view = View(out, live)
    ledger = Ledger()
    history = History()
    looks: list[list[Sample]] = [[] for _ in script]  # by moment, for the chart
    current = 0

    def look(at: datetime | None = None) -> Sample:
        s = observe(sb, at or clock(), hardware, history)
        hardware.declared_kw = s.draw["gpu"] + s.draw["overhead"]  # the meter reads them too
        looks[current].append(s)
        return s

    try:
        sb.load_objects(await hardware.start(read_objects(examples)))
        look()
        await hardware.start_agents(path, sb)  # the operator finds every block reported
        await asyncio.to_thread(op.start)
        for i, m in enumerate(script):
            if i > 0 and clock() < m.at - LEAD:
                ledger.add(look())
                # the site is settled: cut to just before the moment, the miners' reports
                # stamped with that time first, so that none is stale when the clock is there
                await hardware.report_ahead(m.at - LEAD, sb, lambda n: operator_saw(state, n))
                view.cut(clock(), m.at - LEAD)
                clock.jump(m.at - LEAD)
                hardware.report_clock.ahead = None
            view.moment(m)
            current = i
            deadline = time.monotonic() + max_phase_seconds
            acted = m.action is None
            while True:
                now = clock()
                if not acted and now >= m.at:
                    m.action(sb)  # type: ignore[misc]
                    acted = True
                state.wake(SITE)
                s = look(now)
                ledger.add(s)
                view.show(s, f"{m.at:%H:%M}  {m.story}", clock.speed, recent_events(sb))
                if (acted and now >= m.at + AFTER and s.settled) or time.monotonic() > deadline:
                    if i == 0:  # the day is counted from the operator's first settled state
                        ledger = Ledger(last=s)
                    break
                await asyncio.sleep(TICK)
        ledger.meter_reads = hardware.meter.reads if hardware.meter is not None else 0
        summary(ledger, out, time.monotonic() - started)
        if chart is not None:
            from dualcap_demo.chart import draw

            over = ledger.over_metered_seconds
            footer = (
                f"time over the envelope: {ledger.over_seconds:,.0f} s on the model,"
                f" {over:,.0f} s on the meter; the site clock runs only around each moment"
            )
            try:
                draw(script, looks, chart, LOCAL, f"dualcap-demo: {SITE}, a summer day", footer)
                print(f"the day as a chart: {chart}", file=out, flush=True)
            except ImportError:
                print("no chart: it needs matplotlib (pip install 'dualcap[chart]')", file=out)
        if keep_running:
            clock.set_speed(1.0)
            print(
                f"\nThe sandbox and the operator keep running (site clock now at wall speed)."
                f"\n  export KUBECONFIG={path}\n  kubectl get sites,powerbudgets,computeleases,minerblocks -A"
                f"\nCtrl-C to stop.",
                file=out,
                flush=True,
            )
            with contextlib.suppress(asyncio.CancelledError):
                while True:
                    await asyncio.sleep(1.0)
                    state.wake(SITE)
                    look()
        return ledger
    finally:
        await asyncio.to_thread(op.stop)
        await hardware.stop()
        await sb.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(
    examples: Path,
    speed: float = 30.0,
    keep_running: bool = False,
    kubeconfig: Path | None = None,
    out: TextIO | None = None,
    chart: Path | None = None,
) -> int:
    logging.getLogger("kopf").setLevel(logging.ERROR)  # the view tells the story
    logging.getLogger("dualcap").setLevel(logging.ERROR)  # the agents' too
    logging.getLogger("asic_rs").setLevel(logging.ERROR)
    # pymodbus logs a dump of its last frames with an error (a poll cut short as the demo
    # stops its meter): the Site's Metered condition says what the meter does
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(play(examples, out, speed, keep_running, kubeconfig, chart=chart))
    return 0
