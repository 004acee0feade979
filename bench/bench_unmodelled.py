"""An unmodelled load on the site meter -> the site back inside its limit (issue 14).

The example site (bench/loopsite.py) with a SunSpec meter: pymodbus's own Modbus TCP
server on 127.0.0.1, polled by the real operator (`dualcap run`, its own process) on the
sandbox (this process). The meter reads the site's true draw: the model's draw with every
block the operator has marked counted off (curtailment Eviction), plus the load nobody
modelled, updated on every write to the cluster.

Each repeat, at a random phase of the meter's poll cycle, STEP kW more of unmodelled load
appears on the meter (a chiller plant), taking the site above its limit; timed from then:
the first meter read that carries it (detection), the operator's first mark, and the site
back inside its limit (judged on the metered draw). Target: one poll interval plus the
curtailment's own time. Prints figures; asserts nothing.

    BENCH_POLL_SECONDS (default 2), BENCH_REPEATS (default 5), BENCH_STEP_KW (default 3000),
    BENCH_TRACE=1 (each step's timeline: meter reads, marks, the Site's counts)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dualcap_sandbox.sunspec import SunSpecMeterPeer
from loopsite import (
    SITE,
    Sample,
    SiteWatch,
    median_max,
    run_operator,
    settled,
    site_objects,
    start_sandbox,
    stop_process,
)

POLL = float(os.environ.get("BENCH_POLL_SECONDS", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
STEP_KW = float(os.environ.get("BENCH_STEP_KW", "3000"))
STAY_SECONDS = 6 * POLL + 5  # how long a step waits for the site to stay inside
TRACE = bool(os.environ.get("BENCH_TRACE"))  # print each step's timeline
LIMIT_KW = 50_000


class TimedMeter(SunSpecMeterPeer):
    """The meter peer, noting when each read was served."""

    def __init__(self) -> None:
        super().__init__()
        self.read_at: list[float] = []

    async def _action(self, *args: Any) -> None:
        self.read_at.append(time.monotonic())
        await super()._action(*args)


STATUSES: list[tuple[float, str]] = []  # with BENCH_TRACE: the Site's counts as written


def note_status(rt: Any, type_: str, obj: Any, old: Any) -> None:
    st = (obj or {}).get("status") or {}
    if rt.kind == "Site" and st != ((old or {}).get("status") or {}):
        STATUSES.append(
            (
                time.monotonic(),
                "status: metered {} unmodelled {} committed {} limit {}".format(
                    st.get("meteredKW"),
                    st.get("unmodelledKW"),
                    st.get("committedKW"),
                    st.get("limitKW"),
                ),
            )
        )


def trace(n: int, t0: float, watch: SiteWatch, meter: TimedMeter, before: Sample) -> None:
    """Step n's timeline: meter reads, and each change of the draw or of the marks."""
    print(
        f"step {n}: {before.draw_kw:,.0f} kW of {before.limit_kw:,.0f}, {len(before.marked)} marked"
    )
    events = [(t, "meter read") for t in meter.read_at if t >= t0]
    events += [(t, what) for t, what in STATUSES if t >= t0]
    last = before
    for s in watch.samples:
        if s.at < t0 or (s.draw_kw == last.draw_kw and s.marked == last.marked):
            continue
        change = f"+{sorted(s.marked - last.marked)} -{sorted(last.marked - s.marked)}"
        events.append((s.at, f"draw {s.draw_kw:,.0f} limit {s.limit_kw:,.0f} marks {change}"))
        last = s
    for t, what in sorted(events):
        print(f"  {t - t0:6.2f} s  {what}")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-unmodelled-"))
    log = tmp / "operator.log"
    meter = await TimedMeter().start()
    objects = site_objects(LIMIT_KW)
    for obj in objects:
        if obj.get("kind") == "Site":
            obj["spec"]["meter"] = {
                "sunspec": {"host": "127.0.0.1", "port": meter.port},
                "pollSeconds": POLL,
                "timeoutSeconds": 1,
                "staleAfterSeconds": 3 * POLL,
            }
    sb, kubeconfig = await start_sandbox(tmp, objects)

    def follow(sample: Sample) -> None:
        meter.set_watts(sample.draw_kw * 1000, scale=4)

    watch = SiteWatch(sb, on_sample=follow).start()
    if TRACE:
        sb.store.listeners.append(note_status)
    op = run_operator(kubeconfig, log)
    detect: list[float] = []
    first_mark: list[float] = []
    inside: list[float] = []
    own: list[float] = []  # inside, less the detection: the curtailment's own time
    stay: list[float] = []  # the last time it came inside, to stay for 3 polls
    excursions: list[int] = []  # back above the limit after the first time inside
    above_after: list[float] = []  # seconds above it after the first time inside
    shed: list[int] = []
    headroom: list[float] = []  # under the limit once settled (a block is ~2,000 kW)
    never = 0
    try:
        await settled(sb, 60, lambda s: s.get("meteredKW") is not None)
        _, stayed = await watch.inside_to_stay(watch.sample().at, hold=3 * POLL, timeout=60)
        if not stayed:
            print("  (the site did not stay inside its limit before the first step)")
        rng = random.Random(1)
        for n in range(REPEATS):
            await asyncio.sleep(rng.uniform(0, POLL))  # a random phase of the poll cycle
            before = watch.sample()
            watch.unmodelled_kw += STEP_KW
            above = watch.sample()
            t0 = above.at
            if above.draw_kw <= above.limit_kw:
                print(f"  step {n}: {above.draw_kw:,.0f} kW is not above {above.limit_kw:,.0f}")
            runs, stayed = await watch.inside_to_stay(t0, hold=3 * POLL, timeout=STAY_SECONDS)
            if TRACE:
                trace(n, t0, watch, meter, before)
            if runs is None:
                print(f"  step {n}: never inside its limit in {STAY_SECONDS:g} s")
                never += 1
                continue
            marked = watch.first_since(t0, lambda s, b=before: bool(s.marked - b.marked))
            read = next(t for t in meter.read_at if t >= t0)
            detect.append(read - t0)
            first_mark.append((marked.at if marked else runs.first_inside) - t0)
            inside.append(runs.first_inside - t0)
            own.append(runs.first_inside - read)
            if stayed and runs.stays_inside is not None:
                stay.append(runs.stays_inside - t0)
            excursions.append(runs.excursions)
            above_after.append(runs.outside_after_first_seconds)
            end = watch.sample()
            shed.append(len(end.marked - before.marked))
            headroom.append(end.limit_kw - end.draw_kw)
        status = await settled(sb, 30, lambda s: True)
    finally:
        stop_process(op, log)
        await sb.stop()
        await meter.stop()
    total = watch.unmodelled_kw
    print(
        f"Unmodelled load on the site meter -> the site inside its limit ({REPEATS} steps of"
        f" {STEP_KW:,.0f} kW, meter poll {POLL:g} s, site {SITE}, limit {LIMIT_KW:,} kW less"
        f" a 500 kW margin)"
    )
    print(median_max("load appears -> the first meter read of it", detect))
    print(median_max("load appears -> the operator's first mark", first_mark))
    print(median_max("load appears -> inside (on the metered draw)", inside))
    print(median_max("first read of it -> inside (curtailment's own)", own))
    print(median_max("load appears -> inside to stay (3 polls)", stay))
    print(
        f"  stayed inside for 3 polls within {STAY_SECONDS:g} s: {len(stay)} of {REPEATS} steps"
        f" (never inside: {never})"
    )
    print(
        f"  back above the limit after the first time inside: {', '.join(map(str, excursions))}"
        f" times a step, for {', '.join(f'{t:.1f}' for t in above_after)} s"
    )
    print(f"  target: one poll interval ({POLL:g} s) plus the curtailment's own time")
    print(
        f"  blocks marked a step: {', '.join(map(str, shed))}, leaving"
        f" {', '.join(f'{h:,.0f}' for h in headroom)} kW under the limit; the operator counts"
        f" {status.get('unmodelledKW', 0):,.0f} kW unmodelled of the {total:,.0f} kW"
    )
    print("  each (inside): " + ", ".join(f"{t:.2f}" for t in inside))


if __name__ == "__main__":
    asyncio.run(main())
