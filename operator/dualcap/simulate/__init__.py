"""`dualcap simulate SCENARIO`: the planning core stepped over a day or a week.

A scenario (YAML, see examples/scenarios/) names a directory of site objects (the Site, its
nodes and PowerBudget: the examples), a start, a length and a step, and the series that
move a site's economics: energy price by hour or an ERCOT price report at one settlement
point, hashprice, the envelope's windows and events, and lease arrivals. At every step
the planner runs on the site's objects, its commands are applied as an ideal cluster
would (planning.world), and it runs again until it has nothing left to do at that step;
then the step is accounted: energy by kind, revenue by kind and energy cost.

Two naive policies run on the same series for comparison, with the same accounting:
- always-mine: leases admitted as they fit, every controller the envelope allows mines,
  whatever the price;
- fixed-split: a fixed share of the base limit for GPUs, the rest always mining.
"""

from __future__ import annotations

import sys
from typing import TextIO

from dualcap.simulate.charting import chart as chart
from dualcap.simulate.reading import load as load
from dualcap.simulate.reporting import report as report
from dualcap.simulate.scenario import KINDS as KINDS
from dualcap.simulate.scenario import MARKETS as MARKETS
from dualcap.simulate.scenario import POLICIES as POLICIES
from dualcap.simulate.scenario import PRICE_FILE_KEYS as PRICE_FILE_KEYS
from dualcap.simulate.scenario import Arrival as Arrival
from dualcap.simulate.scenario import PriceFile as PriceFile
from dualcap.simulate.scenario import Scenario as Scenario
from dualcap.simulate.scenario import ScenarioError as ScenarioError
from dualcap.simulate.stepping import Result as Result
from dualcap.simulate.stepping import Totals as Totals
from dualcap.simulate.stepping import account as account
from dualcap.simulate.stepping import naive as naive
from dualcap.simulate.stepping import simulate as simulate


def run(
    path: str,
    output: str | None,
    out: TextIO | None = None,
    prices: str | None = None,
    settlement_point: str | None = None,
    market: str | None = None,
) -> int:
    out = out or sys.stdout
    sc = load(path, prices, settlement_point, market)
    result = simulate(sc)
    report(result, out)
    if output:
        chart(result, output)
        print(f"chart: {output}", file=out)
    return 0
