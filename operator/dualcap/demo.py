"""`dualcap demo`: the example site through a summer day, planned offline.

The planner runs at each moment of a scripted day; its commands are applied to the objects
as an ideal cluster would (curtailments confirmed by the next reconcile, pods created where
planned), and it runs again until the site settles. Every line is a reconcile.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from dualcap.planning import build_fleet, plan
from dualcap.planning.world import apply, miner_pod

SITE = "tx-rockdale-1"
LOCAL = ZoneInfo("America/Chicago")
RECONCILE = timedelta(seconds=30)
FOLLOW = timedelta(minutes=10)  # follow the plan's own wake-ups this far ahead

MOMENTS: Sequence[tuple[str, str]] = (
    ("2026-07-14T11:00:00Z", "night: leases arrive; mining fills the 49.5 MW envelope"),
    ("2026-07-14T18:58:00Z", "ERS dispatch to 8 MW starts in 2 min (lead time): shed mining"),
    ("2026-07-14T19:30:00Z", "ERS active; peak price 140 USD/MWh"),
    ("2026-07-14T22:00:00Z", "ERS over; summer-peak window (30 MW), price still 140: no mining"),
    ("2026-07-15T00:00:00Z", "window and peak price over: mining resumes, 10 MW a minute"),
    ("2026-08-01T00:00:00Z", "finetune-august starts"),
    ("2026-08-15T00:00:00Z", "finetune-august ends: its GPUs free, its power to mining"),
)


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run(examples: Path, out: TextIO = sys.stdout, max_reconciles: int = 20) -> int:
    from dualcap.cli import load_objects

    objects = load_objects(str(examples))
    site_obj = next(o for o in objects if o.get("kind") == "Site")
    miner_labels = site_obj["spec"]["asic"]["miningPodSelector"]["matchLabels"]
    # The miner DaemonSet's pods, one per controller (a cluster would have them running).
    for node in [o for o in objects if o.get("kind") == "Node"]:
        if node["metadata"]["labels"].get("dualcap.io/role") == "asic":
            objects.append(miner_pod(node["metadata"]["name"], miner_labels))

    header = f"{'time (CDT)':<17} {'limit':>8} {'committed':>10} {'planned':>9} {'mine':>5} {'GPUs':>5}  commands"
    over_seconds = 0.0
    for moment, story in MOMENTS:
        at = _t(moment)
        print(f"\n== {at.astimezone(LOCAL):%a %d %b %H:%M} CDT  {story}", file=out)
        print(header, file=out)
        for _ in range(max_reconciles):
            p = plan(build_fleet(objects).sites[SITE], at)
            issued = p.schedule.now
            counts: dict[str, int] = {}
            for c in issued:
                counts[c.kind.value] = counts.get(c.kind.value, 0) + 1
            waiting = len(p.schedule.deferred)
            summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"
            if waiting:
                summary += f"; {waiting} waiting"
            limit = p.limit_kw or 0.0
            if p.committed_kw > limit + 1e-6:
                over_seconds += RECONCILE.total_seconds()
                summary += "   (outside: curtailments being confirmed)"
            print(
                f"{at.astimezone(LOCAL):%a %d %b %H:%M:%S} {limit:>8,.0f} {p.committed_kw:>10,.0f}"
                f" {p.planned_kw:>9,.0f} {len(p.mining):>5} {p.gpus_leased:>5}  {summary}",
                file=out,
            )
            wake = p.next_wakeup
            if not issued and not waiting and wake is not None and wake - at <= FOLLOW:
                at = wake  # the operator wakes then (ramp window, hysteresis) and goes on
                continue
            if not issued and not waiting:
                rev = p.mining_revenue_usd_per_hour + p.lease_revenue_usd_per_hour
                print(
                    f"{'':17} settled: revenue {rev:,.0f} USD/h (mining {p.mining_revenue_usd_per_hour:,.0f},"
                    f" leases {p.lease_revenue_usd_per_hour:,.0f}), energy {p.energy_cost_usd_per_hour:,.0f} USD/h"
                    f" at {p.energy_price_usd_per_mwh:,.0f} USD/MWh",
                    file=out,
                )
                break
            objects = apply(objects, issued, at, SITE, miner_labels=miner_labels)
            at += RECONCILE
    print(
        "\nThis is the planner alone, offline (`dualcap plan` at each step). To watch the"
        "\noperator apply it to a cluster: `make sandbox`, then `make run` with that kubeconfig.",
        file=out,
    )
    return 0
