"""The run's figures as text."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from dualcap.simulate.scenario import KINDS, POLICIES
from dualcap.simulate.stepping import Result


def report(r: Result, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    sc = r.scenario
    print(f"scenario: {sc.name}", file=out)
    if sc.description:
        print("  " + sc.description.replace("\n", "\n  "), file=out)
    print(
        f"site {sc.site}, from {sc.start.astimezone(sc.tz):%Y-%m-%d %H:%M %Z}, {sc.steps} steps of"
        f" {sc.step.total_seconds() / 60:.0f} min ({r.reconciles} plans)",
        file=out,
    )
    if sc.price_file:
        print(f"energy prices: {sc.price_file.describe()}", file=out)
    print(file=out)
    cols = [
        f"{n if n != 'fixed-split' else f'fixed-split {sc.split_percent:.0f}%'}" for n in POLICIES
    ]
    print(f"{'':28}" + "".join(f"{c:>18}" for c in cols), file=out)

    def row(label: str, values: Sequence[float], fmt: str = "{:>18,.0f}") -> None:
        print(f"{label:28}" + "".join(fmt.format(v) for v in values), file=out)

    t = [r.totals[n] for n in POLICIES]
    for kind in KINDS:
        row(f"energy {kind} (MWh)", [x.energy_kwh[kind] / 1000 for x in t], "{:>18,.1f}")
    row("revenue mining (USD)", [x.revenue_usd["mining"] for x in t])
    row("revenue GPU leases (USD)", [x.revenue_usd["gpu"] for x in t])
    row("GPU-hours leased", [x.gpu_hours for x in t])
    row("energy cost (USD)", [x.energy_cost_usd for x in t])
    row("net (USD)", [x.net_usd for x in t])
    row("steps over the envelope", [x.over_steps for x in t])
    d = r.totals["dualcap"].net_usd
    print(
        f"\ndualcap earns {d - r.totals['always-mine'].net_usd:+,.0f} USD against always-mine and"
        f" {d - r.totals['fixed-split'].net_usd:+,.0f} USD against the fixed split.",
        file=out,
    )
