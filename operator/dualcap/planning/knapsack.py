"""Which controllers mine: a 0/1 knapsack of profit (USD/h) in the power left (kW).

Greedy by profit density is close to optimal when many controllers fit, and can be far off
when few do (one big controller left out of a small remainder). So: greedy first, then an
exact search over the *core* — the items nearest the greedy break point, where the optimum
differs from greedy (Balas & Zemel; Pisinger's core algorithms) — with every item before
the core fixed in and every item after it fixed out. The exact part keeps a Pareto frontier
of (weight, value) states, which stays small because controllers come in few types.

Forced items model hysteresis: ``forced_in`` must mine if they fit (a controller resumed
less than ``minMiningSeconds`` ago), ``forced_out`` must not (curtailed less than
``minCurtailedSeconds`` ago). When even the forced-in items do not fit, the least
profitable per kW are dropped first: the envelope always wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

CORE_HALF_WIDTH = 12  # items on each side of the break point searched exactly
MAX_FRONTIER = 4096  # frontier states kept (never reached with few controller types)
# A change of the mining set must gain more than this share of what it gives up: the
# firmware reports draw and hashrate to about 1 %, and equal blocks must not swap on that.
STATUS_QUO_MARGIN = 0.03


class Item(NamedTuple):
    key: int
    weight: float  # kW (> 0)
    value: float  # USD/h (may be negative)


def _density(item: Item) -> float:
    return item.value / item.weight


def shed_to_fit(items: Sequence[Item], capacity: float) -> list[Item]:
    """Keep the most profitable-per-kW items whose weights fit; drop from the least."""
    kept = sorted(items, key=lambda i: (-_density(i), i.key))
    total = sum(i.weight for i in kept)
    while kept and total > capacity + 1e-9:
        total -= kept.pop().weight
    return kept


def solve(
    items: Iterable[Item],
    capacity: float,
    forced_in: frozenset[int] = frozenset(),
    forced_out: frozenset[int] = frozenset(),
    prefer: frozenset[int] = frozenset(),
) -> set[int]:
    """Keys of the chosen items: maximum total value with total weight <= capacity."""
    pool = [i for i in items if i.key not in forced_out] if forced_out else list(items)
    forced = [i for i in pool if i.key in forced_in] if forced_in else []
    kept_forced = shed_to_fit(forced, capacity)
    chosen = {i.key for i in kept_forced}
    room = capacity - sum(i.weight for i in kept_forced)
    limit = room + 1e-9
    optional = [
        i
        for i in pool
        if i.value > 0 and i.weight <= limit and (not forced_in or i.key not in forced_in)
    ]
    if not optional or room <= 0:
        return chosen
    # A bonus for the status quo: a change must gain more than measurement noise, or two
    # blocks of one model, measured a per cent apart, swap back and forth (and among
    # equal choices nothing changes).
    scale = max(abs(i.value) for i in optional)
    bonus = scale * 1e-9

    def val(i: Item) -> float:
        if i.key not in prefer:
            return i.value
        return i.value * (1.0 + STATUS_QUO_MARGIN) + bonus

    densest = sorted((-val(i) / i.weight, i.key, i) for i in optional)
    optional = [i for _, _, i in densest]
    total = 0.0
    brk = len(optional)
    for n, (_, weight, _) in enumerate(optional):
        if total + weight > limit:
            brk = n
            break
        total += weight
    if brk == len(optional):
        return chosen | {i.key for i in optional}

    lo = max(0, brk - CORE_HALF_WIDTH)
    hi = min(len(optional), brk + CORE_HALF_WIDTH)
    fixed = optional[:lo]
    core = optional[lo:hi]
    core_room = room - sum(i.weight for i in fixed)
    picked = _exact(core, core_room, val)
    # Items after the core may still fill what the core leaves (greedy fill).
    left = core_room - sum(i.weight for i in picked)
    tail = []
    for item in optional[hi:]:
        if item.weight <= left + 1e-9:
            tail.append(item)
            left -= item.weight
    return chosen | {i.key for i in fixed} | {i.key for i in picked} | {i.key for i in tail}


# A chosen set as a linked list: (item, rest) or None, so states share their tails.
Chain = tuple[Item, "Chain"] | None
State = tuple[float, float, Chain]


def _exact(core: Sequence[Item], room: float, value_of: Callable[[Item], float]) -> list[Item]:
    """Best subset of ``core`` within ``room``: dynamic programming over a Pareto frontier."""
    frontier: list[State] = [(0.0, 0.0, None)]
    for item in core:
        w, v = item.weight, value_of(item)
        grown: list[State] = [
            (fw + w, fv + v, (item, chain)) for fw, fv, chain in frontier if fw + w <= room + 1e-9
        ]
        if not grown:
            continue
        merged = sorted(frontier + grown, key=lambda s: (s[0], -s[1]))
        frontier = []
        best = float("-inf")
        for state in merged:
            if state[1] > best + 1e-12:
                frontier.append(state)
                best = state[1]
        if len(frontier) > MAX_FRONTIER:
            # Thin evenly by weight; keeps the extremes. Not reached with few item types.
            step = len(frontier) / MAX_FRONTIER
            frontier = [frontier[int(k * step)] for k in range(MAX_FRONTIER)] + [frontier[-1]]
    best_state = max(frontier, key=lambda s: (s[1], -s[0]))
    out: list[Item] = []
    chain = best_state[2]
    while chain is not None:
        item, chain = chain
        out.append(item)
    return out
