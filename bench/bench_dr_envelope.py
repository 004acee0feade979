"""From an event created on the VTN to the site inside its new envelope.

openleadr's own VTN (this process, 127.0.0.1), `dualcap openadr` and `dualcap run` (each
its own process, as in their pods) on the sandbox (this process) holding the example site
(bench/loopsite.py: its GitOps budget a flat 50 MW). Each round creates one LOAD_DISPATCH
event, under way now, at a random phase of the VEN's poll cycle, each lower than the last;
timed from then: the VTN handing it to a poll, the adapter's budget written (the site's
composed envelope at the event's limit), and the site inside it: the operator's marks on
enough blocks that the modelled draw, with every marked block off, is at or under the
envelope's limit. Target: the VEN's poll interval plus 5 s. Prints figures; asserts
nothing (bench_openadr.py times the adapter alone).

    BENCH_POLL_SECONDS (default 2), BENCH_EVENTS (default 5)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.peers.vtn import Vtn, load_dispatch

from loopsite import (
    SITE,
    SiteWatch,
    median_max,
    operator_process,
    run_operator,
    settled,
    site_objects,
    start_sandbox,
    stop_process,
)

POLL = float(os.environ.get("BENCH_POLL_SECONDS", "2"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "5"))
LIMITS_KW = [40_000 - 6_000 * n for n in range(EVENTS)]  # 40, 34, 28, 22, 16 MW


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("openleadr").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dr-envelope-"))
    sb, kubeconfig = await start_sandbox(tmp, site_objects(limit_kw=50_000))
    vtn = Vtn(poll_seconds=POLL)
    await vtn.start()
    config = tmp / "openadr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "vtnURL": vtn.url,
                "venName": "bench-ven",
                "insecure": True,
                "pollIntervalSeconds": POLL,
                "sites": [{"name": SITE, "interconnectKW": 50_000, "floorKW": 2_000}],
            }
        )
    )
    watch = SiteWatch(sb).start()
    op_log, ven_log = tmp / "operator.log", tmp / "openadr.log"
    op = run_operator(kubeconfig, op_log)
    ven = operator_process(kubeconfig, ven_log, "openadr", "--config", str(config))
    handed: list[float] = []  # created -> the VTN hands it to a poll
    written: list[float] = []  # created -> the adapter's budget in the envelope
    inside: list[float] = []  # created -> the site inside the new envelope
    operator: list[float] = []  # budget written -> inside (the operator's part)
    marked: list[int] = []
    stayed_all = True
    try:
        await settled(sb, 60, lambda s: True)
        deadline = time.monotonic() + 30
        while not vtn.registrations:
            if time.monotonic() > deadline:
                raise SystemExit(f"the VEN did not register (its log: {ven_log})")
            await asyncio.sleep(0.05)
        await watch.inside_to_stay(watch.sample().at, hold=1, timeout=30)
        rng = random.Random(1)
        for n, kw in enumerate(LIMITS_KW):
            await asyncio.sleep(rng.uniform(0, POLL))  # a random phase of the poll cycle
            before = watch.sample()
            t0 = time.monotonic()
            created_at = datetime.now(UTC)
            vtn.send(load_dispatch(f"bench-{n}", created_at - timedelta(minutes=1), 60, kw))
            budget = await watch.until(
                t0, lambda s, kw=kw: s.limit_kw <= kw, POLL + 30, f"event {n} in the envelope"
            )
            runs, stayed = await watch.inside_to_stay(budget.at, hold=2, timeout=POLL + 30)
            if runs is None:
                raise SystemExit(f"event {n}: the site never came inside {budget.limit_kw:,.0f} kW")
            stayed_all &= stayed
            delivered = vtn.delivered_at[(f"bench-{n}", 0)]
            handed.append((delivered - created_at).total_seconds())
            written.append(budget.at - t0)
            inside.append(runs.first_inside - t0)
            operator.append(runs.first_inside - budget.at)
            marked.append(len(watch.sample().marked - before.marked))
        answers = [vtn.answer(f"bench-{n}") for n in range(EVENTS)]
    finally:
        stop_process(ven, ven_log)
        stop_process(op, op_log)
        await vtn.stop()
        await sb.stop()
    print(
        f"OpenADR event on the VTN -> the site inside its new envelope ({EVENTS} events under"
        f" way, {LIMITS_KW[0] / 1000:g} to {LIMITS_KW[-1] / 1000:g} MW, VEN poll {POLL:g} s,"
        f" site {SITE})"
    )
    print(median_max("created -> handed to the VEN's poll", handed))
    print(median_max("created -> the adapter's budget in the envelope", written))
    print(median_max("created -> inside the new envelope", inside))
    print(median_max("budget written -> inside (the operator)", operator))
    print(f"  target: the VEN's poll interval plus 5 s ({POLL + 5:g} s)")
    print(
        f"  blocks marked an event: {', '.join(map(str, marked))}; answers: {', '.join(map(str, answers))};"
        f" {'stayed inside every time' if stayed_all else 'left the envelope again at least once'}"
    )
    print("  each (inside): " + ", ".join(f"{t:.2f}" for t in inside))


if __name__ == "__main__":
    asyncio.run(main())
