"""`dualcap simulate --fleet`: one queue for many sites, over a synthetic day.

A fleet of sites (5 to 150 MW) in four markets with price curves of different shapes
(an evening peak, a flat day, cheap hydro, negative prices overnight), summer-peak
windows at some, demand-response events at others, GPUs and miners at every one; and a
stream of jobs (GPUs, hours, what they pay). Every 5 minutes, the waiting jobs are placed
by a policy, and every site keeps itself inside its envelope as dualcap does: GPU load
first (a job is admitted only where its power fits beside the loads already admitted,
mining making room), and when the limit falls below what the GPUs draw, preemptible jobs
(the cheapest first) are evicted and wait again.

Three policies, the same sites, jobs and accounting:
- dualcap: `planning.placement.choose` on each site's offer (`planning.offer.Offer`), the
  rule of `dualcap fleet`: the best expected margin where the job fits now and for its
  duration; the offers read once a step, what is placed taken from them for the rest of
  the step, a job sent to a site waiting there until it fits (as `dualcap fleet` does);
- round robin: the next site in turn with the GPUs free (a job sent where the power is
  short waits there until it fits);
- most free GPUs: the site with the most GPUs free (likewise).

Accounting per policy: what jobs pay for the GPU-hours they run, mining revenue, energy
cost of everything drawn at each site's price, GPU-hours served, jobs waiting, evictions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dualcap.planning.offer import Offer, Room, Step, taken
from dualcap.planning.placement import Candidate, Job, choose

STEP = timedelta(minutes=5)
DAY = datetime(2026, 7, 14, tzinfo=UTC)
POLICIES = ("dualcap", "round-robin", "most-free-gpus")
MARKETS = {  # hourly price shape, USD/MWh (hour 0..23, site local = UTC here)
    "evening-peak": [28, 26, 25, 24, 24, 26, 32, 38, 40, 42, 45, 50, 58, 70, 95, 140, 210, 260, 180, 90, 60, 45, 36, 30],
    "flat": [42, 41, 40, 40, 41, 43, 46, 48, 49, 50, 50, 50, 50, 50, 51, 52, 54, 55, 53, 50, 48, 46, 44, 43],
    "hydro": [18, 17, 16, 16, 16, 17, 19, 21, 22, 22, 22, 22, 21, 21, 21, 22, 23, 24, 23, 22, 21, 20, 19, 18],
    "negative-nights": [-8, -12, -15, -10, -5, 5, 20, 35, 45, 48, 50, 52, 55, 58, 62, 70, 85, 95, 80, 55, 35, 15, 2, -4],
}  # fmt: skip
HASHPRICE = 45.0  # USD/PH/day
TH_PER_KW = 1000 / 3.5 * 0.1  # ~28.6 TH/s a kW (S19 XP-class efficiency, 35 J/TH)
PER_GPU_KW = 1.25  # facility kW of a busy GPU (PUE included)


@dataclass
class SimSite:
    name: str
    market: str
    limit_kw: float  # the interconnect
    gpus: int
    fixed_kw: float  # overhead no one can shed
    window: tuple[int, int, float] | None = None  # (from hour, to hour, limit kW)
    event: tuple[datetime, datetime, float] | None = None  # a DR event: start, end, limit kW

    def limit_at(self, at: datetime) -> float:
        limit = self.limit_kw
        h = at.hour
        if self.window and self.window[0] <= h < self.window[1]:
            limit = min(limit, self.window[2])
        if self.event and self.event[0] <= at < self.event[1]:
            limit = min(limit, self.event[2])
        return limit

    def price_at(self, at: datetime) -> float:
        return float(MARKETS[self.market][at.hour])

    def changes(self, start: datetime, hours: int = 12) -> list[datetime]:
        """When its limit or price changes within ``hours`` of ``start``."""
        out: list[datetime] = []
        at = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while at <= start + timedelta(hours=hours):
            out.append(at)
            at += timedelta(hours=1)
        if self.event:
            out += [t for t in self.event[:2] if start < t <= start + timedelta(hours=hours)]
        return sorted(set(out))


@dataclass
class SimJob:
    id: int
    arrives: datetime
    gpus: int
    hours: float
    usd_per_gpu_hour: float
    preemptible: bool
    left_hours: float = 0.0
    site: str | None = None  # where it runs or waits
    running: bool = False

    @property
    def kw(self) -> float:
        return self.gpus * PER_GPU_KW


def synthetic(
    seed: int = 1, sites: int = 40, jobs: int = 2_000
) -> tuple[list[SimSite], list[SimJob]]:
    """A seeded fleet and a day of jobs."""
    rng = random.Random(seed)
    fleet = []
    markets = list(MARKETS)
    for i in range(sites):
        size = rng.choice([5, 10, 20, 30, 50, 80, 100, 150]) * 1000.0
        # GPUs for 5 to 40 % of the interconnect: sites part way through their conversion
        gpus = int(rng.uniform(0.05, 0.4) * size / PER_GPU_KW) // 8 * 8
        site = SimSite(f"site-{i:02d}", markets[i % len(markets)], size, max(8, gpus), 0.01 * size)
        if rng.random() < 0.4:  # a summer-peak window at 35-60 % of the interconnect
            site.window = (15, 19, rng.uniform(0.35, 0.6) * size)
        if rng.random() < 0.25:  # a demand-response event, 2-4 h, to 10-30 %
            start = DAY + timedelta(hours=rng.randint(10, 18))
            site.event = (
                start,
                start + timedelta(hours=rng.randint(2, 4)),
                rng.uniform(0.1, 0.3) * size,
            )
        fleet.append(site)
    stream = []
    for j in range(jobs):
        arrives = DAY + timedelta(minutes=rng.uniform(0, 20 * 60))
        stream.append(SimJob(
            j, arrives, rng.choice([64, 128, 256, 512, 1024, 2048]), rng.choice([0.5, 1, 2, 4, 8, 12]),
            round(rng.uniform(1.5, 4.0), 2), rng.random() < 0.7,
        ))  # fmt: skip
    return fleet, sorted(stream, key=lambda j: j.arrives)


@dataclass
class Totals:
    gpu_usd: float = 0.0
    mining_usd: float = 0.0
    energy_usd: float = 0.0
    energy_mwh: float = 0.0
    gpu_hours: float = 0.0
    evictions: int = 0
    waiting: list[int] = field(default_factory=list)  # jobs waiting, each step
    net: list[float] = field(default_factory=list)  # cumulative net USD, each step

    @property
    def net_usd(self) -> float:
        return self.gpu_usd + self.mining_usd - self.energy_usd


def mining_usd_per_kwh() -> float:
    return TH_PER_KW * HASHPRICE / 1000 / 24


def offer_of(site: SimSite, running_kw: float, used_gpus: int, now: datetime) -> Offer:
    """The site's offer as its dualcap would publish it (planning.offer's shape)."""
    limit = site.limit_at(now)
    price = site.price_at(now)
    mining_kw = (
        max(0.0, limit - site.fixed_kw - running_kw) if mining_usd_per_kwh() * 1000 > price else 0.0
    )
    free = max(0.0, limit - site.fixed_kw - running_kw - mining_kw)
    lost = max(0.0, mining_usd_per_kwh() * 1000 - price)
    room = tuple(r for r in (Room(free, 0.0), Room(mining_kw, lost)) if r.kw > 0)
    ahead = tuple(Step(t, site.limit_at(t), site.price_at(t)) for t in site.changes(now))
    return Offer(now, site.gpus - used_gpus, PER_GPU_KW, limit, free, room, price, ahead)


def run_policy(policy: str, sites: list[SimSite], jobs: list[SimJob]) -> Totals:
    jobs = [
        SimJob(j.id, j.arrives, j.gpus, j.hours, j.usd_per_gpu_hour, j.preemptible, j.hours)
        for j in jobs
    ]
    by_name = {s.name: s for s in sites}
    totals = Totals()
    turn = 0
    now = DAY
    end = DAY + timedelta(hours=24)
    hours = STEP.total_seconds() / 3600
    while now < end:
        arrived = [j for j in jobs if j.arrives <= now and j.left_hours > 0]
        running = {s.name: [j for j in arrived if j.running and j.site == s.name] for s in sites}
        # 1. every site inside its envelope: preemptible jobs evicted, the cheapest first
        for s in sites:
            floor = s.fixed_kw
            drawn = sum(j.kw for j in running[s.name])
            for j in sorted(running[s.name], key=lambda j: j.usd_per_gpu_hour):
                if floor + drawn <= s.limit_at(now) + 1e-6:
                    break
                if j.preemptible:
                    j.running, j.site = False, None
                    drawn -= j.kw
                    totals.evictions += 1
            running[s.name] = [j for j in running[s.name] if j.running]
        # 2. the waiting jobs placed (or, sent somewhere, admitted when their power fits)
        used = {n: sum(j.gpus for j in r) for n, r in running.items()}
        load = {n: sum(j.kw for j in r) for n, r in running.items()}
        offers: dict[str, Offer] = {}
        if policy == "dualcap":
            offers = {s.name: offer_of(s, load[s.name], used[s.name], now) for s in sites}
        for j in [j for j in arrived if not j.running]:
            if j.site is None:
                j.site, turn = _place(policy, j, sites, used, offers, now, turn)
                if j.site is not None and offers:  # as `dualcap fleet`: taken for this pass
                    offers[j.site] = taken(offers[j.site], j.gpus, j.kw)
            if j.site is None:
                continue
            s = by_name[j.site]
            if (
                used[s.name] + j.gpus <= s.gpus
                and s.fixed_kw + load[s.name] + j.kw <= s.limit_at(now) + 1e-6
            ):
                j.running = True
                used[s.name] += j.gpus
                load[s.name] += j.kw
        # 3. the step accounted
        step_net = 0.0
        for s in sites:
            gpu_kw = load[s.name]
            price = s.price_at(now)
            margin = mining_usd_per_kwh() * 1000 - price
            mining_kw = max(0.0, s.limit_at(now) - s.fixed_kw - gpu_kw) if margin > 0 else 0.0
            kwh = (gpu_kw + mining_kw + s.fixed_kw) * hours
            gpu_usd = (
                sum(j.gpus * j.usd_per_gpu_hour for j in arrived if j.running and j.site == s.name)
                * hours
            )
            totals.gpu_usd += gpu_usd
            totals.gpu_hours += used[s.name] * hours
            totals.mining_usd += mining_kw * hours * mining_usd_per_kwh()
            totals.energy_usd += kwh * price / 1000
            totals.energy_mwh += kwh / 1000
            step_net += gpu_usd + mining_kw * hours * mining_usd_per_kwh() - kwh * price / 1000
        for j in arrived:
            if j.running:
                j.left_hours -= hours
                if j.left_hours <= 1e-9:
                    j.running, j.left_hours = False, 0.0
        totals.waiting.append(sum(1 for j in arrived if not j.running and j.left_hours > 0))
        totals.net.append((totals.net[-1] if totals.net else 0.0) + step_net)
        now += STEP
    return totals


def _place(
    policy: str,
    j: SimJob,
    sites: list[SimSite],
    used: dict[str, int],
    offers: dict[str, Offer],
    now: datetime,
    turn: int,
) -> tuple[str | None, int]:
    if policy == "dualcap":
        candidates = [Candidate(s.name, offers[s.name]) for s in sites]
        choice = choose(Job(j.gpus, j.usd_per_gpu_hour, j.left_hours), candidates, now)
        return (choice.chosen.name if choice.chosen else None), turn
    free = [s for s in sites if s.gpus - used[s.name] >= j.gpus]
    if not free:
        return None, turn
    if policy == "round-robin":
        for k in range(len(sites)):
            s = sites[(turn + k) % len(sites)]
            if s in free:
                return s.name, turn + k + 1
        return None, turn
    best = max(free, key=lambda s: (s.gpus - used[s.name], s.name))
    return best.name, turn


def simulate_fleet(seed: int = 1, sites: int = 40, jobs: int = 2_000) -> dict[str, Totals]:
    fleet, stream = synthetic(seed, sites, jobs)
    return {p: run_policy(p, fleet, stream) for p in POLICIES}


def report(results: dict[str, Totals], sites: int, jobs: int, out: Callable[[str], None]) -> None:
    out(f"dualcap simulate --fleet: {sites} sites, {jobs} jobs over a day (5-minute steps)")
    out(f"{'policy':<16} {'net USD':>12} {'GPU USD':>11} {'mining USD':>11} {'energy USD':>11}"
        f" {'GPU-hours':>10} {'waiting (mean/max)':>19} {'evictions':>9} {'MWh':>8}")  # fmt: skip
    for name, t in results.items():
        mean = sum(t.waiting) / max(1, len(t.waiting))
        out(f"{name:<16} {t.net_usd:>12,.0f} {t.gpu_usd:>11,.0f} {t.mining_usd:>11,.0f}"
            f" {t.energy_usd:>11,.0f} {t.gpu_hours:>10,.0f} {mean:>12.1f}/{max(t.waiting):<6d}"
            f" {t.evictions:>9d} {t.energy_mwh:>8,.0f}")  # fmt: skip
    d = results["dualcap"]
    others = ", ".join(
        f"{n}: {d.net_usd - t.net_usd:+,.0f} USD" for n, t in results.items() if n != "dualcap"
    )
    out(f"dualcap against the naive placements: {others}")


def chart(results: dict[str, Totals], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = len(next(iter(results.values())).net)
    hours = [i * STEP.total_seconds() / 3600 for i in range(steps)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    colors = {"dualcap": "#2e7d32", "round-robin": "#1565c0", "most-free-gpus": "#ef6c00"}
    for name, t in results.items():
        top.plot(hours, [v / 1000 for v in t.net], label=name, color=colors[name], lw=1.8)
        bottom.plot(hours, t.waiting, label=name, color=colors[name], lw=1.2)
    top.set_ylabel("net, thousand USD")
    top.set_title("dualcap simulate --fleet: the same sites and jobs, three placements")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("jobs waiting")
    bottom.set_xlabel("hour of the day (UTC)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(
    seed: int, sites: int, jobs: int, output: str | None, out: Callable[[str], None] = print
) -> int:
    if sites < 1 or jobs < 1:
        raise ValueError("--sites and --jobs must be at least 1")
    results = simulate_fleet(seed, sites, jobs)
    report(results, sites, jobs, out)
    if output:
        chart(results, output)
        out(f"chart: {output}")
    if not math.isfinite(results["dualcap"].net_usd):
        return 1
    return 0
