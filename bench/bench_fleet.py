"""Benchmark: the fleet's placement (README, Performance). Prints figures; asserts nothing.

2,000 waiting Workloads placed over 40 site offers (each with room tiers and a day of
changes ahead), as one pass of `dualcap fleet` decides them: target under 100 ms.

make bench-fleet      # or: .venv/bin/python bench/bench_fleet.py
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from dualcap.planning.offer import Offer, Room, Step
from dualcap.planning.placement import Candidate, Job, choose

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


def offers(rng: random.Random, n: int = 40) -> list[Candidate]:
    out = []
    for i in range(n):
        limit = rng.uniform(5_000, 150_000)
        free = rng.uniform(0, 0.2) * limit
        tiers = [Room(free, 0.0)] + [
            Room(rng.uniform(0.02, 0.1) * limit, rng.uniform(5, 80)) for _ in range(7)
        ]
        ahead = tuple(
            Step(NOW + timedelta(minutes=rng.randint(10, 720)), rng.uniform(0.3, 1.0) * limit,
                 rng.uniform(10, 300))
            for _ in range(rng.randint(0, 16))
        )  # fmt: skip
        ahead = tuple(sorted(ahead, key=lambda s: s.at))
        o = Offer(NOW, rng.randint(0, 512), rng.uniform(1.0, 1.4), limit, free, tuple(tiers),
                  rng.uniform(15, 90), ahead)  # fmt: skip
        out.append(
            Candidate(f"site-{i:02d}", o if i % 13 else None, None if i % 13 else "offer stale")
        )
    return out


def main() -> None:
    rng = random.Random(7)
    candidates = offers(rng)
    jobs = [
        Job(rng.choice((1, 8, 16, 32, 64)), rng.uniform(1.0, 4.0), rng.choice((0.5, 1, 4, 12, 48)))
        for _ in range(2_000)
    ]  # fmt: skip
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        placed = sum(1 for j in jobs if choose(j, candidates, NOW).chosen is not None)
        runs.append((time.perf_counter() - t) * 1000)
    print("dualcap fleet placement benchmark (one core of this machine)")
    print(f"  2,000 waiting Workloads over 40 site offers ({placed} placed):"
          f" median {statistics.median(runs):.1f} ms, max {max(runs):.1f} ms (target 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
