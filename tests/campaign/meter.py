"""The campaign with a site meter: the MinerAgent campaign (tests.campaign.miners: the real
operator, an agent per controller, fake LuxOS miners whose true draw is known) with a
real SunSpec meter on the Site (pymodbus's own Modbus TCP server, dualcap_sandbox.sunspec),
read by the operator over Modbus TCP as on a real site.

The campaign drives the meter from the truth: the fixed load, plus PUE times every fake's
physical draw and the GPU nodes as modelled, plus an *unmodelled* load nobody declared
(a chiller plant, a contractor's crane: the steps switch it on, change and off). And the
meter fails, as steps: it stops (the server gone: connection refused), goes silent (it
accepts and never answers in time), answers slowly (within the timeout), and sticks at
an old value (it lies low once the truth rises above it: the model still counts; stuck
high, the operator sheds for a load that has gone, which is safe); healed by a step or
after the sequence.

Invariant, on the fakes: the METERED draw (the true draw with the unmodelled load) stays
within the limit except while commands already sent take effect. See `MeterRun.metered`
for its grace periods; the MinerAgent campaign's own invariants all hold as well. And
while the operator says its meter is not fresh, the unmodelled load it counts (the
Site's status) never drops: the last one is kept as a reserve.

    python -m tests.campaign.campaign --mode meter --sequences 5 --steps 30
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from dualcap.planning import build_fleet, plan
from dualcap_sandbox.sunspec import SunSpecMeterPeer, free_port
from tests.campaign.campaign import SITE, Step
from tests.campaign.miners import (
    CURTAIL_GRACE,
    FIXED_KW,
    NOISE,
    PUE,
    REACT_SECONDS,
    Draw,
    MinerRun,
)
from tests.campaign.miners import generate as generate_miners
from tests.campaign.miners import site_objects as miner_site_objects

POLL_SECONDS = 1.0  # the Site's meter: pollSeconds,
METER_TIMEOUT = 1.0  # timeoutSeconds,
METER_STALE = 3.0  # staleAfterSeconds
SILENT_SECONDS = 30.0  # a silent meter's delay: far beyond the timeout
SLOW_SECONDS = 0.5  # a slow meter's: within it
SCALE = 1  # W_SF: the meter's W register counts 10 W (int16: up to 327 kW)
# An unmodelled load that appears (or grows) is on the meter at its next poll (a poll
# interval, and a read in flight up to its timeout); the reading is compared with the
# highest model since a poll before it (a curtailment the meter had not seen yet is no
# unmodelled load), so it counts fully at the poll after; the poller wakes the site, whose
# reconcile counts it (and writes it to the Site's status, whence the reserve comes) ...
SEEN_LOAD_SECONDS = POLL_SECONDS + METER_TIMEOUT + POLL_SECONDS + REACT_SECONDS
# ... and the blocks it curtails for it fall asleep within CURTAIL_GRACE.
DETECT_LOAD_SECONDS = SEEN_LOAD_SECONDS + CURTAIL_GRACE
# The loads the steps switch on (kW): on this 60 kW site as 2-5 MW on the examples' 50 MW
UNMODELLED_KW = (0.0, 4.0, 8.0, 12.0)

METER_KINDS = (
    "meter_load", "meter_load", "meter_load", "meter_stop", "meter_silent", "meter_slow",
    "meter_freeze", "meter_heal", "meter_heal",
)  # fmt: skip
METER_FAULT_KINDS = {"meter_stop", "meter_silent", "meter_slow", "meter_freeze"}
METER_SHARE = 0.4  # of the steps


def generate(seed: int, steps: int) -> list[Step]:
    """The MinerAgent campaign's sequence of the seed, METER_SHARE of its steps replaced by
    the meter's (the same seed always gives the same steps)."""
    out = generate_miners(seed, steps)
    rng = random.Random(f"meter-{seed}")
    for i in range(steps):
        if rng.random() >= METER_SHARE:
            continue
        kind = rng.choice(METER_KINDS)
        a: dict[str, Any] = {}
        if kind == "meter_load":
            a = {"kw": rng.choice(UNMODELLED_KW)}
        # a load is given the time to be learnt (DETECT_LOAD_SECONDS) now and then
        pauses = [1.0, 4.0, 8.0, 14.0] if kind == "meter_load" else [0.3, 0.6, 1.0, 2.0, 4.0]
        a["pause"] = rng.choice(pauses)
        out[i] = Step(kind, a)
    return out


class MeterRun(MinerRun):
    """One sequence of the MinerAgent campaign with a SunSpec meter on the Site."""

    def site_objects(self) -> list[dict[str, Any]]:
        objects = miner_site_objects()
        self.meter = SunSpecMeterPeer(port=free_port())
        site = next(o for o in objects if o["kind"] == "Site")
        site["spec"]["meter"] = {
            "sunspec": {"host": self.meter.host, "port": self.meter.port},
            "pollSeconds": POLL_SECONDS,
            "timeoutSeconds": METER_TIMEOUT,
            "staleAfterSeconds": METER_STALE,
        }
        return objects

    def load(self) -> None:
        super().load()
        self.unmodelled_kw = 0.0  # the load on the meter nobody declared
        # The part of it the operator can know of (see `metered`), and a rise it will.
        self.known_kw = 0.0
        self.owed: tuple[float, float, float] | None = None  # (kW, seen at, known from)
        self.stopped = self.silent = self.frozen = False
        self.fault_since: float | None = None  # the meter failing (stopped, silent, stuck)
        self.settling = False
        self.metered_over: str | None = None

    async def prepare(self) -> None:
        logging.getLogger("pymodbus").setLevel(logging.WARNING)  # the server's frames
        self.meter.set_watts(FIXED_KW * 1000, scale=SCALE)
        await self.meter.start()
        await super().prepare()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.meter.stop()

    # -- steps ----------------------------------------------------------------------------
    async def do(self, step: Step) -> None:
        kind, a, now = step.kind, step.args, time.monotonic()
        if kind in METER_FAULT_KINDS:
            self.stats.meter_faults += 1
        if kind == "meter_load":
            self.set_unmodelled(a["kw"], now)
        elif kind == "meter_stop":
            if not self.stopped:
                await self.meter.stop()
                self.stopped = True
                self.failing(now)
        elif kind == "meter_silent":
            self.meter.delay_seconds = SILENT_SECONDS
            self.silent = True
            self.failing(now)
        elif kind == "meter_slow":
            if not self.silent:
                self.meter.delay_seconds = SLOW_SECONDS
        elif kind == "meter_freeze":
            self.frozen = True
            self.failing(now)
            # the operator follows it down: nothing of the load is known until it is healed
            self.known_kw, self.owed = 0.0, None
        elif kind == "meter_heal":
            await self.heal_meter()
        else:
            await super().do(step)

    def failing(self, now: float) -> None:
        if self.fault_since is None:
            self.fault_since = now
        if self.owed is not None and now < self.owed[1]:
            self.owed = None  # a rise the operator may not have counted: now unknowable

    def set_unmodelled(self, kw: float, now: float) -> None:
        self.unmodelled_kw = kw
        if kw <= self.known_kw:
            self.known_kw, self.owed = kw, None
        elif self.fault_since is None:
            self.owed = (kw, now + SEEN_LOAD_SECONDS, now + DETECT_LOAD_SECONDS)

    async def heal_meter(self) -> None:
        if self.stopped:
            await self.meter.start()
            self.stopped = False
        self.meter.delay_seconds = 0.0
        self.silent = self.frozen = False
        if self.fault_since is not None:
            self.fault_since = None
            now = time.monotonic()
            if self.unmodelled_kw > self.known_kw:
                kw = self.unmodelled_kw
                self.owed = (kw, now + SEEN_LOAD_SECONDS, now + DETECT_LOAD_SECONDS)

    async def heal(self) -> None:
        await self.heal_meter()
        self.set_unmodelled(0.0, time.monotonic())
        # Settled, the meter reads no more than the model (the fakes' ±1 % would show as a
        # few hundred W of unmodelled load that the campaign's own plan, which has no
        # meter, does not count, and the two plans could differ by one block)
        self.settling = True
        await super().heal()

    # -- the meter follows the truth -------------------------------------------------------
    def metered_kw(self, d: Draw) -> float:
        """What the meter reads now: the truth."""
        return FIXED_KW + PUE * (d.truth + d.gpu_it) + self.unmodelled_kw

    def drive(self, d: Draw) -> None:
        if self.frozen:
            return  # it lies low: stuck at what it last read
        kw = self.metered_kw(d)
        if self.settling:
            modelled = plan(build_fleet(self.objects(), now := datetime.now(UTC)).sites[SITE], now)
            kw = min(kw, modelled.committed.total_kw)
        self.meter.set_watts(kw * 1000, scale=SCALE)

    def true_draw(self) -> None:
        self.stats.samples += 1
        d = self.draw()
        if d is None:
            return
        self.check_true_draw(d)
        self.drive(d)
        self.metered(d)

    def metered(self, d: Draw) -> None:
        """The METERED draw stays within the limit except while commands already sent
        take effect.

        The metered draw: the true draw (`MinerRun.true_draw`: its miners counted, with
        their grace periods) plus the unmodelled load the operator can know of:
        - a load that appears or grows is known DETECT_LOAD_SECONDS after it did (one poll
          in flight + one more poll, a reconcile, then the curtailment's firmware time:
          13 s with the campaign's constants); one that shrinks or goes is known at once;
        - while the meter fails (stopped, silent, stuck at an old value) a rise is not
          known at all unless it was on the meter SEEN_LOAD_SECONDS (6 s) before the
          failure (then it is known as above), and a meter healed shows it
          DETECT_LOAD_SECONDS after the heal;
          what was known before the failure stays known (the operator keeps the last
          unmodelled load as a reserve and must go on covering it - except under a meter
          stuck low: it reads fresh, so the operator follows it (the model still counts,
          which `MinerRun.true_draw` holds, but the unmodelled load is the fault's own);
        - a rise due to be known while the operator was down (killed) is known
          DETECT_LOAD_SECONDS after the restarted operator first writes.
        The limit: `MinerRun.limit_in_force`, and no lower than what no command sheds -
        the fixed load, the known unmodelled load, the GPU nodes idle, the stuck miners
        at their full share and every other miner asleep. Tolerance: the miners' NOISE.
        An excess is reported once per episode, with the draw's parts."""
        now = d.now
        if self.owed is not None and now >= self.owed_from(self.owed[2]):
            self.known_kw, self.owed = self.owed[0], None
        known = min(self.known_kw, self.unmodelled_kw)
        if self.frozen:
            known = 0.0
        total = FIXED_KW + PUE * (d.counted + d.gpu_it) + known
        floor = FIXED_KW + PUE * (d.gpu_idle + d.stuck + d.asleep) + known
        limit = max(d.limit, floor)
        tolerance = NOISE * PUE * d.truth
        if total > limit + tolerance + 1e-6:
            if self.metered_over is None:
                self.metered_over = (
                    f"metered draw {total:.2f} kW above the limit {limit:.2f} kW"
                    f" (+{tolerance:.2f} tolerance): unmodelled {known:.2f} known of"
                    f" {self.unmodelled_kw:.2f}; {self.meter_state()}; {self.describe(d)}"
                )
                self.violations.append(self.metered_over)
        else:
            self.metered_over = None

    def owed_from(self, due: float) -> float:
        """A rise due to be known at ``due``, unless the operator was killed before then: it
        is known DETECT_LOAD_SECONDS after the restarted operator first writes."""
        if self.killed_at is None or self.killed_at >= due:
            return due
        if self.ready_at is None:
            return float("inf")
        return max(due, self.ready_at + DETECT_LOAD_SECONDS)

    def meter_state(self) -> str:
        what = [w for w, on in (("stopped", self.stopped), ("silent", self.silent), ("frozen", self.frozen)) if on]  # fmt: skip
        status = (self.sb.store.get(self.sb.store.rt("dualcap.io", "sites"), None, SITE) or {}).get("status") or {}  # fmt: skip
        return (
            f"meter {'/'.join(what) or 'answering'}, the Site says metered"
            f" {status.get('meteredKW')}, unmodelled {status.get('unmodelledKW')},"
            f" committed {status.get('committedKW')}"
        )

    # -- the reserve -----------------------------------------------------------------------
    def monitor(self, rt: Any = None, kind: str = "", obj: Any = None, old: Any = None) -> None:
        if rt is not None and rt.kind == "Site" and obj is not None and old is not None:
            self.reserve_kept(old.get("status") or {}, obj.get("status") or {})
        super().monitor(rt, kind, obj, old)

    def reserve_kept(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """While the Site says its meter is not fresh, the unmodelled load it counts never
        drops (what it last counted is the reserve), across restarts of the operator."""
        metered = {c["type"]: c["status"] for c in after.get("conditions") or []}.get("Metered")
        was, now = before.get("unmodelledKW"), after.get("unmodelledKW")
        if self.verbose and (was != now or before.get("meteredKW") != after.get("meteredKW")):
            print(f"    {time.monotonic():.1f} Site: metered {after.get('meteredKW')} ({metered}), unmodelled {now}, committed {after.get('committedKW')}", flush=True)  # fmt: skip
        if not isinstance(was, int | float) or was <= 0 or metered != "False":
            return
        if not isinstance(now, int | float) or now < was - 1e-6:
            self.violations.append(
                f"the meter not fresh, the Site's unmodelled load dropped from {was} to {now}"
            )
