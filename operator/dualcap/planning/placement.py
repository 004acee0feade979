"""Where a GPU job earns the most: the fleet's choice among the sites' offers (pure).

For a job of ``gpus`` GPUs paying ``usd_per_gpu_hour`` for ``hours``, at each site whose
offer is fresh:

- it must fit now: enough GPUs free, and its kW (GPUs x the site's kW per GPU) within the
  site's room (the headroom, then miners curtailed);
- and for its duration: at every change of the envelope ahead, the new limit minus what
  the site cannot shed must still hold it;
- its expected margin per hour is what it pays, minus its energy at the site's price
  (averaged over its duration, from the prices ahead), minus the mining margin it
  displaces (the room it takes, cheapest first, at each tier's lost margin).

The site with the best margin is chosen; on a tie, the one whose envelope changes less
often during the job, then by name. Every site not chosen gets its reason.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dualcap.planning.offer import Offer


@dataclass(frozen=True, slots=True)
class Job:
    gpus: int
    usd_per_gpu_hour: float
    hours: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A worker cluster: its offer, or why there is none usable (unreachable, stale...)."""

    name: str
    offer: Offer | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Fit:
    name: str
    margin_usd_per_hour: float
    kw: float
    changes: int  # changes of the envelope during the job


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: Fit | None
    # by cluster: why (not) there, formatted only when asked (a pass decides thousands)
    # (a site where it fits: its margin, USD/h)
    why: dict[str, _No | float] = field(default_factory=dict)

    @property
    def reasons(self) -> dict[str, str]:
        return {
            name: MARGIN.format(no) if isinstance(no, float) else str(no)
            for name, no in self.why.items()
        }

    @property
    def message(self) -> str:
        """One line for people: where, why, and why not elsewhere."""
        reasons = self.reasons
        if self.chosen is None:
            why = "; ".join(f"not at {n}: {r}" for n, r in sorted(reasons.items()))
            return f"no site fits: {why}" if why else "no site fits: no worker cluster"
        c = self.chosen
        others = "; ".join(f"not at {n}: {r}" for n, r in sorted(reasons.items()) if n != c.name)
        head = f"placed at {c.name}: {c.margin_usd_per_hour:,.2f} USD/h margin ({c.kw:,.0f} kW)"
        return f"{head}; {others}" if others else head


@dataclass(frozen=True, slots=True)
class _No:
    """Why not there, formatted only when asked."""

    template: str
    args: tuple[object, ...]

    def __str__(self) -> str:
        return self.template.format(*self.args)


NO_GPUS = "{} GPUs free, needs {}"
NO_ROOM = "needs {:,.0f} kW, {:,.0f} kW of room"
CUT = "{:,.0f} kW limit from {:%H:%M} UTC, during the job"
MARGIN = "{:,.2f} USD/h margin"


def fit(job: Job, o: Offer, now: datetime) -> tuple[float, float, int] | str:
    """(margin USD/h, kW, changes during the job) where the job fits at ``o``; else why not."""
    got = _fit(job, o, now, now + timedelta(hours=job.hours))
    return str(got) if isinstance(got, _No) else got


def _fit(job: Job, o: Offer, now: datetime, end: datetime) -> tuple[float, float, int] | _No:
    kw = job.gpus * o.per_gpu_kw
    if o.gpus_free < job.gpus:
        return _No(NO_GPUS, (o.gpus_free, job.gpus))
    available, price_now = o.available_kw, o.energy_usd_per_mwh
    if o.ahead:
        at = o.ahead_at
        first = bisect_right(at, now)
        during = o.ahead[first : bisect_left(at, end)]
        if first:  # changes since the offer was written: the latest is the site's now
            current = o.ahead[first - 1]
            available = min(available, max(0.0, current.limit_kw - o.floor_kw))
            price_now = current.energy_usd_per_mwh
    else:
        during = ()
    if available + 1e-6 < kw:
        return _No(NO_ROOM, (kw, available))
    for s in during:
        if s.limit_kw - o.floor_kw + 1e-6 < kw:
            return _No(CUT, (s.limit_kw, s.at))
    price = _average_price(o, now, end) if during else price_now
    displaced, left = 0.0, kw
    for tier in o.room:
        take = min(left, tier.kw)
        displaced += take * tier.lost_usd_per_mwh / 1000.0
        left -= take
        if left <= 0:
            break
    margin = float(job.gpus * job.usd_per_gpu_hour - kw * price / 1000.0 - displaced)
    return margin, kw, len(during)


def _average_price(o: Offer, start: datetime, end: datetime) -> float:
    """The energy price averaged over [start, end), from the offer's price now and ahead."""
    total = (end - start).total_seconds()
    if total <= 0:
        return o.energy_usd_per_mwh
    acc, at, price = 0.0, start, o.energy_usd_per_mwh
    for s in o.ahead:
        if s.at <= at:
            price = s.energy_usd_per_mwh
            continue
        if s.at >= end:
            break
        acc += price * (s.at - at).total_seconds()
        at, price = s.at, s.energy_usd_per_mwh
    acc += price * (end - at).total_seconds()
    return acc / total


def choose(job: Job, candidates: list[Candidate], now: datetime) -> Choice:
    why: dict[str, _No | float] = {}
    end = now + timedelta(hours=job.hours)
    best: tuple[float, int, str] | None = None
    chosen: Fit | None = None
    for c in candidates:
        if c.offer is None:
            why[c.name] = _No("{}", (c.problem or "no offer",))
            continue
        got = _fit(job, c.offer, now, end)
        if isinstance(got, _No):
            why[c.name] = got
            continue
        margin, kw, changes = got
        why[c.name] = margin
        key = (-round(margin, 2), changes, c.name)
        if best is None or key < best:
            best, chosen = key, Fit(c.name, margin, kw, changes)
    return Choice(chosen, why)
