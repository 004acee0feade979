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

import bisect
import copy
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml

import dualcap.signals.prices as ercot
from dualcap.api.names import API_VERSION
from dualcap.planning import build_fleet, plan
from dualcap.planning.accounting import (
    breakeven_usd_per_mwh,
    energy_cost_usd_per_hour,
    gpu_baseline_it_kw,
    mining_revenue_usd_per_hour,
)
from dualcap.planning.entities import SiteSnapshot
from dualcap.planning.plan import site_envelope
from dualcap.planning.world import apply, miner_pod
from dualcap.signals.reading import SignalError

KINDS = ("mining", "gpu", "overhead")
POLICIES = ("dualcap", "always-mine", "fixed-split")


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; the message says where and why."""


@dataclass
class Arrival:
    name: str
    namespace: str
    at: datetime
    hours: float
    gpus: int
    gpus_per_pod: int
    priority: int
    preemptible: bool
    price: float  # USD per GPU-hour


@dataclass(frozen=True)
class PriceFile:
    """An ERCOT settlement point price report standing for the scenario's energy price:
    real time (``rt``, NP6-905-CD, 15-minute intervals) or day ahead (``dam``, NP4-190-CD,
    hourly), as its CSV or the public API's JSON."""

    path: Path
    settlement_point: str
    market: ercot.Market

    def describe(self) -> str:
        kind = "real time, NP6-905" if self.market == "rt" else "day ahead, NP4-190"
        return f"{self.settlement_point.upper()} ({kind}) from {self.path}"


@dataclass
class Scenario:
    name: str
    description: str
    objects: list[dict[str, Any]]
    site: str
    start: datetime
    steps: int
    step: timedelta
    # USD/MWh by local hour of day (24) or by hour of the scenario; one per step when they
    # come from an ERCOT report (price_file)
    prices: list[float]
    hashprices: list[float]  # USD/PH/day, same convention
    tz: ZoneInfo
    arrivals: list[Arrival]
    split_percent: float
    price_file: PriceFile | None = None

    def energy_price(self, index: int, at: datetime) -> float:
        """USD/MWh at step ``index``, which starts at ``at``."""
        return self.prices[index] if self.price_file else self.hourly(self.prices, at)

    def hourly(self, series: list[float], at: datetime) -> float:
        if len(series) == 1:
            return series[0]
        if len(series) == 24:
            return series[at.astimezone(self.tz).hour]
        index = int((at - self.start).total_seconds() // 3600)
        return series[min(index, len(series) - 1)]


def _need(doc: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in doc:
        raise ScenarioError(f"{path}: missing field {key!r}")
    return doc[key]


def _series(value: Any, key: str, path: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ScenarioError(f"{path}: {key}: numbers expected, got {value!r}") from None
    if not out or any(math.isnan(v) or v < 0 for v in out):
        raise ScenarioError(f"{path}: {key}: non-negative numbers expected")
    return out


MARKETS = ("rt", "dam")
PRICE_FILE_KEYS = ("file", "settlementPoint", "market")


def _price_file(
    doc: Mapping[str, Any],
    scenario_dir: Path,
    where: str,
    file: str | None,
    settlement_point: str | None,
    market: str | None,
) -> PriceFile | None:
    """The scenario's ``energyPrices`` with the command line's ``--prices``,
    ``--settlement-point`` and ``--market`` over it; None when neither names a report."""
    given = doc.get("energyPrices")
    if given is not None and not isinstance(given, dict):
        raise ScenarioError(
            f"{where}: energyPrices: a mapping with {', '.join(PRICE_FILE_KEYS)} expected"
        )
    spec = dict(given or {})
    unknown = sorted(set(spec) - set(PRICE_FILE_KEYS))
    if unknown:
        raise ScenarioError(
            f"{where}: energyPrices: unknown field {unknown[0]!r}"
            f" (fields: {', '.join(PRICE_FILE_KEYS)})"
        )
    if given is not None and "energyPriceUSDPerMWh" in doc:
        raise ScenarioError(f"{where}: give energyPriceUSDPerMWh or energyPrices, not both")
    if given is None and file is None and settlement_point is None and market is None:
        return None
    if file is not None:  # the command line's, relative to where it runs
        path = Path(file)
    elif "file" in spec:  # the scenario's, relative to the scenario
        path = Path(os.path.normpath(scenario_dir / str(spec["file"])))  # no a/../b shown
    else:
        raise ScenarioError(
            f"{where}: no price report: give energyPrices.file in the scenario, or --prices FILE"
        )
    point = settlement_point or spec.get("settlementPoint")
    if not point or not str(point).strip():
        raise ScenarioError(
            f"{where}: energyPrices: which settlement point? give settlementPoint"
            " (or --settlement-point), e.g. HB_HOUSTON"
        )
    chosen = str(market or spec.get("market", "rt")).lower()
    if chosen not in MARKETS:
        raise ScenarioError(
            f"{where}: energyPrices: market {chosen!r}: rt (NP6-905) or dam (NP4-190) expected"
        )
    return PriceFile(path, str(point).strip(), "rt" if chosen == "rt" else "dam")


def _step_prices(
    source: PriceFile,
    start: datetime,
    steps: int,
    step: timedelta,
    tz: ZoneInfo,
    where: str,
) -> list[float]:
    """USD/MWh at each step from the report: the price of the settlement interval that
    covers the step, or the time-weighted mean of the intervals when a step spans several
    (an hour's step on 15-minute prices). The readers place each interval in UTC from
    Central prevailing time and its DST flag, and refuse a gap or a duplicate, so a series
    that starts by the scenario's start and ends after its end covers every step."""
    try:
        text = source.path.read_text()
    except OSError as err:
        raise ScenarioError(f"{where}: {source.path}: {err.strerror}") from None
    try:
        intervals = ercot.parse(text, source.settlement_point, source.market, str(source.path))
    except SignalError as err:
        raise ScenarioError(f"{where}: {err.reason}: {err.message}") from None
    end = start + steps * step
    first, last = intervals[0].start, intervals[-1].end
    uncovered = start if first > start else last if last < end else None
    if uncovered is not None:
        utc = "%Y-%m-%dT%H:%MZ"
        raise ScenarioError(
            f"{where}: {source.path} has no {source.settlement_point.upper()}"
            f" price for {uncovered.astimezone(UTC):{utc}}"
            f" ({uncovered.astimezone(tz):%Y-%m-%d %H:%M %Z}), the first time of the scenario"
            f" it does not cover: it covers {first:{utc}}..{last:{utc}}, the scenario"
            f" {start.astimezone(UTC):{utc}}..{end.astimezone(UTC):{utc}}"
        )
    starts = [i.start for i in intervals]
    out = []
    for n in range(steps):
        at = start + n * step
        k = bisect.bisect_right(starts, at) - 1
        if at + step <= intervals[k].end:
            out.append(intervals[k].usd_per_mwh)
        else:
            spanned = intervals[k : bisect.bisect_left(starts, at + step)]
            out.append(ercot.energy_price_series(spanned, at, 1, step)[0])
    return out


def load(
    path: str | Path,
    prices: str | None = None,
    settlement_point: str | None = None,
    market: str | None = None,
) -> Scenario:
    """The scenario at ``path``; ``prices``, ``settlement_point`` and ``market`` (the
    command line's) replace its energy price with an ERCOT report's."""
    from dualcap.manifests import load_objects

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as err:
        raise ScenarioError(f"{p}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{p}: not YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{p}: a mapping expected")
    where = str(p)
    site_dir = (p.parent / str(_need(doc, "siteObjects", where))).resolve()
    if not site_dir.exists():
        raise ScenarioError(f"{where}: siteObjects: {site_dir} does not exist")
    objects = [o for o in load_objects(str(site_dir)) if o.get("kind") != "ComputeLease"]
    sites = [o for o in objects if o.get("kind") == "Site"]
    if len(sites) != 1:
        raise ScenarioError(f"{where}: siteObjects: exactly one Site expected, found {len(sites)}")
    site = sites[0]["metadata"]["name"]
    try:
        start = datetime.fromisoformat(str(_need(doc, "start", where)))
    except ValueError:
        raise ScenarioError(f"{where}: start: an RFC 3339 time with an offset expected") from None
    if start.tzinfo is None:
        raise ScenarioError(f"{where}: start: give the UTC offset, e.g. 2026-07-14T00:00:00-05:00")
    try:
        tz = ZoneInfo(str(doc.get("timezone", "UTC")))
    except Exception:
        raise ScenarioError(f"{where}: timezone: unknown {doc.get('timezone')!r}") from None
    hours = float(_need(doc, "hours", where))
    step_minutes = float(doc.get("stepMinutes", 5))
    if not 0 < hours <= 24 * 31 or not 0 < step_minutes <= 60:
        raise ScenarioError(f"{where}: hours must be in (0, 744] and stepMinutes in (0, 60]")
    extra = doc.get("extraGpuNodes") or 0
    if not isinstance(extra, int) or not 0 <= extra <= 10_000:
        raise ScenarioError(f"{where}: extraGpuNodes: an integer in [0, 10000] expected")
    if extra and not sites[0].get("spec", {}).get("gpu"):
        raise ScenarioError(f"{where}: extraGpuNodes: the Site has no spec.gpu")
    objects += _gpu_nodes(site, sites[0], extra)
    envelope = doc.get("envelope") or {}
    for obj in objects:  # the scenario's envelope replaces the budget's windows and events
        if obj.get("kind") == "PowerBudget":
            for key in ("limitKW", "windows", "events", "leadTimeSeconds"):
                if key in envelope:
                    obj["spec"][key] = envelope[key]
    arrivals = []
    for i, a in enumerate(doc.get("leases") or []):
        w = f"{where}: leases[{i}]"
        try:
            at = start + timedelta(hours=float(_need(a, "arriveAfterHours", w)))
            arrivals.append(
                Arrival(
                    name=str(_need(a, "name", w)),
                    namespace=str(a.get("namespace", "default")),
                    at=at,
                    hours=float(_need(a, "hours", w)),
                    gpus=int(_need(a, "gpus", w)),
                    gpus_per_pod=int(a.get("gpusPerPod", 8)),
                    priority=int(a.get("priority", 0)),
                    preemptible=bool(a.get("preemptible", False)),
                    price=float(_need(a, "pricePerGPUHourUSD", w)),
                )
            )
        except (TypeError, ValueError) as err:
            raise ScenarioError(f"{w}: {err}") from None
    steps, step = int(hours * 60 / step_minutes), timedelta(minutes=step_minutes)
    source = _price_file(doc, p.parent, where, prices, settlement_point, market)
    if source is None:
        series = _series(_need(doc, "energyPriceUSDPerMWh", where), "energyPriceUSDPerMWh", where)
    else:
        given_as = "--prices" if prices is not None else "energyPrices"
        series = _step_prices(source, start, steps, step, tz, f"{where}: {given_as}")
    return Scenario(
        name=str(doc.get("name", p.stem)),
        description=str(doc.get("description", "")).strip(),
        objects=objects,
        site=site,
        start=start,
        steps=steps,
        step=step,
        prices=series,
        hashprices=_series(
            _need(doc, "hashpriceUSDPerPHDay", where), "hashpriceUSDPerPHDay", where
        ),
        tz=tz,
        arrivals=arrivals,
        split_percent=float(doc.get("fixedSplitGPUPercent", 30)),
        price_file=source,
    )


def _gpu_nodes(site: str, site_obj: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` more 8-GPU servers, labelled as the site's GPU nodes (a hall being built)."""
    spec = site_obj["spec"]
    if not count:
        return []
    labels = {
        **((spec.get("nodeSelector") or {}).get("matchLabels") or {"dualcap.io/site": site}),
        **((spec["gpu"].get("nodeSelector") or {}).get("matchLabels") or {}),
    }
    resource = spec["gpu"].get("resourceName", "nvidia.com/gpu")
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": f"sim-gpu-{i:04d}", "labels": dict(labels), "uid": f"sim-gpu-{i}"},
            "spec": {},
            "status": {
                "allocatable": {resource: "8"},
                "capacity": {resource: "8"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(count)
    ]


# --- accounting ---------------------------------------------------------------------------


@dataclass
class Totals:
    energy_kwh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    revenue_usd: dict[str, float] = field(default_factory=lambda: {"mining": 0.0, "gpu": 0.0})
    energy_cost_usd: float = 0.0
    gpu_hours: float = 0.0
    over_steps: int = 0
    # per step, for the chart: kW by kind and the limit
    series: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in (*KINDS, "limit")})  # fmt: skip

    @property
    def net_usd(self) -> float:
        return sum(self.revenue_usd.values()) - self.energy_cost_usd


def account(
    totals: Totals,
    snap: SiteSnapshot,
    mining: set[str],
    leased_gpus: Sequence[tuple[int, float]],
    limit_kw: float,
    price: float,
    hashprice: float,
    hours: float,
) -> None:
    """One step of a policy: which controllers mine, which GPUs are leased at what price."""
    pue = snap.pue
    by_name = {c.name: c for c in snap.controllers}
    mining_it = sum(by_name[n].power_kw for n in mining if n in by_name)
    used = sum(g for g, _ in leased_gpus)
    nodes = [n for n in snap.gpu_nodes.values() if n.schedulable]
    gpu_it = gpu_baseline_it_kw(nodes) + used * (snap.max_per_gpu_kw if nodes else 0.0)
    draw = {"mining": pue * mining_it, "gpu": pue * gpu_it, "overhead": snap.fixed_kw}
    for kind, kw in draw.items():
        totals.energy_kwh[kind] += kw * hours
        totals.series[kind].append(kw)
    totals.series["limit"].append(limit_kw)
    hashrate = sum(by_name[n].hashrate_ths for n in mining if n in by_name)
    totals.revenue_usd["mining"] += mining_revenue_usd_per_hour(hashrate, hashprice) * hours
    totals.revenue_usd["gpu"] += sum(g * p for g, p in leased_gpus) * hours
    totals.gpu_hours += used * hours
    totals.energy_cost_usd += energy_cost_usd_per_hour(sum(draw.values()), price) * hours
    if sum(draw.values()) > limit_kw + 1e-6:
        totals.over_steps += 1


def _active(arrivals: Sequence[Arrival], at: datetime) -> list[Arrival]:
    live = [a for a in arrivals if a.at <= at < a.at + timedelta(hours=a.hours)]
    return sorted(live, key=lambda a: (-a.priority, a.at, a.name))


def naive(
    snap: SiteSnapshot,
    arrivals: Sequence[Arrival],
    at: datetime,
    limit_kw: float,
    gpu_cap_kw: float | None,
) -> tuple[set[str], list[tuple[int, float]]]:
    """always-mine (``gpu_cap_kw`` None) or fixed-split: leases first as they fit (within
    the GPU share), then every controller that fits, in name order, whatever the price."""
    pue = snap.pue
    nodes = [n for n in snap.gpu_nodes.values() if n.schedulable]
    free = sum(n.gpus for n in nodes)
    gpu_kw = pue * gpu_baseline_it_kw(nodes)
    per_gpu = pue * (snap.max_per_gpu_kw if nodes else 0.0)
    room = limit_kw - snap.fixed_kw - gpu_kw
    leased: list[tuple[int, float]] = []
    for a in _active(arrivals, at):
        kw = a.gpus * per_gpu
        cap_ok = gpu_cap_kw is None or gpu_kw + kw <= gpu_cap_kw
        if a.gpus <= free and kw <= room and cap_ok:
            leased.append((a.gpus, a.price))
            free -= a.gpus
            room -= kw
            gpu_kw += kw
    if gpu_cap_kw is not None:
        room = min(room, limit_kw - snap.fixed_kw - gpu_cap_kw)
    mining: set[str] = set()
    for c in sorted(snap.controllers, key=lambda c: c.name):
        if pue * c.power_kw <= room:
            mining.add(c.name)
            room -= pue * c.power_kw
    return mining, leased


# --- the run ------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: Scenario
    totals: dict[str, Totals]
    times: list[datetime]
    prices: list[float]
    breakeven: list[float]  # USD/MWh at which a typical controller's mining pays its energy
    reconciles: int


def _lease_object(a: Arrival, site: str) -> dict[str, Any]:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeLease",
        "metadata": {
            "name": a.name,
            "namespace": a.namespace,
            "uid": f"sim-{a.namespace}-{a.name}",
            "generation": 1,
            "creationTimestamp": a.at.astimezone(ZoneInfo("UTC")).strftime(stamp),
        },
        "spec": {
            "siteRef": site,
            "gpus": a.gpus,
            "gpusPerPod": a.gpus_per_pod,
            "priority": a.priority,
            "preemptible": a.preemptible,
            "pricePerGPUHourUSD": a.price,
            "start": a.at.astimezone(ZoneInfo("UTC")).strftime(stamp),
            "end": (a.at + timedelta(hours=a.hours)).astimezone(ZoneInfo("UTC")).strftime(stamp),
            "template": {"spec": {"containers": [{"name": "main", "image": "sim"}]}},
        },
    }


def simulate(sc: Scenario, max_reconciles: int = 12) -> Result:
    objects = copy.deepcopy(sc.objects)
    site_obj = next(o for o in objects if o.get("kind") == "Site")
    asic = site_obj["spec"].get("asic")  # none on a GPU-only site
    miner_labels = asic["miningPodSelector"]["matchLabels"] if asic else None
    for node in [o for o in objects if o.get("kind") == "Node"]:
        if miner_labels and node["metadata"].get("labels", {}).get("dualcap.io/role") == "asic":
            objects.append(miner_pod(node["metadata"]["name"], miner_labels))
    totals = {name: Totals() for name in POLICIES}
    times: list[datetime] = []
    prices: list[float] = []
    breakeven: list[float] = []
    arrived: set[str] = set()
    hours = sc.step.total_seconds() / 3600
    reconciles = 0
    base_limit = next(o for o in objects if o.get("kind") == "PowerBudget")["spec"]["limitKW"]
    for i in range(sc.steps):
        at = sc.start + i * sc.step
        price, hashprice = sc.energy_price(i, at), sc.hourly(sc.hashprices, at)
        for obj in objects:  # this hour's economics
            if obj.get("kind") == "PowerBudget":
                obj["spec"]["energyPrice"] = {"usdPerMWh": price}
            elif obj.get("kind") == "Site" and obj["spec"].get("asic"):
                obj["spec"]["asic"]["hashpriceUSDPerPHDay"] = hashprice
        for a in sc.arrivals:
            if a.at <= at and a.name not in arrived:
                arrived.add(a.name)
                objects.append(_lease_object(a, sc.site))
        for _ in range(max_reconciles):
            p = plan(build_fleet(objects, at).sites[sc.site], at)
            reconciles += 1
            if not p.schedule.now:
                break
            objects = apply(objects, p.schedule.now, at, sc.site, miner_labels=miner_labels)
        snap = build_fleet(objects, at).sites[sc.site]
        envelope = site_envelope(snap, at)
        assert envelope is not None
        limit = envelope.envelope.limit_kw
        leased = [
            (d.gpus, d.lease.spec.price_per_gpu_hour_usd)
            for d in p.leases
            if d.runs and d.lease.spec is not None
        ]
        account(totals["dualcap"], snap, set(p.mining), leased, limit, price, hashprice, hours)
        for name, cap in (
            ("always-mine", None),
            ("fixed-split", sc.split_percent / 100 * base_limit),
        ):
            mining, leased_naive = naive(snap, sc.arrivals, at, limit, cap)
            account(totals[name], snap, mining, leased_naive, limit, price, hashprice, hours)
        times.append(at)
        prices.append(price)
        typical = max(snap.controllers, key=lambda c: c.power_kw, default=None)
        breakeven.append(
            breakeven_usd_per_mwh(typical, hashprice, snap.pue) if typical else math.nan
        )
    return Result(sc, totals, times, prices, breakeven, reconciles)


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


def chart(r: Result, path: str | Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise ScenarioError("--output needs matplotlib: pip install 'dualcap[chart]'") from None
    t = r.totals["dualcap"]
    local = [x.astimezone(r.scenario.tz) for x in r.times]
    mw = {k: [v / 1000 for v in t.series[k]] for k in (*KINDS, "limit")}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    top.stackplot(
        local,
        mw["overhead"],
        mw["gpu"],
        mw["mining"],
        labels=["overhead (fixed load)", "GPU leases", "mining"],
        colors=["#9e9e9e", "#2e7d32", "#f9a825"],
        step="post",
        alpha=0.9,
    )
    top.step(local, mw["limit"], where="post", color="#c62828", lw=2, label="envelope (limit)")
    naive_total = [sum(v) / 1000 for v in zip(*(r.totals["always-mine"].series[k] for k in KINDS), strict=True)]  # fmt: skip
    top.step(local, naive_total, where="post", color="#1565c0", lw=1.2, ls="--", label="always-mine: total draw")  # fmt: skip
    top.set_ylabel("MW")
    top.set_title(f"dualcap simulate: {r.scenario.name}  (site {r.scenario.site})")
    top.legend(loc="lower left", fontsize=8, ncol=3)
    top.set_ylim(0, max(mw["limit"] + [1]) * 1.12)
    top.grid(alpha=0.3)
    source = r.scenario.price_file
    price_label = "energy price"
    if source:
        price_label += f", {source.settlement_point.upper()} ({source.market.upper()})"
    bottom.step(local, r.prices, where="post", color="#6a1b9a", lw=1.5, label=price_label)
    bottom.step(local, r.breakeven, where="post", color="#ef6c00", lw=1.2, ls=":", label="mining break-even (the largest controller)")  # fmt: skip
    bottom.set_ylabel("USD/MWh")
    if min(r.prices) > 0 and max(r.prices) > 20 * max(1.0, min(r.prices)):
        bottom.set_yscale("log")
    elif max(r.prices) > 20 * max(1.0, abs(min(r.prices))):  # negative prices: no log scale
        bottom.set_yscale("symlog", linthresh=50)
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=r.scenario.tz))  # type: ignore[no-untyped-call]
    bottom.set_xlabel(f"local time ({r.scenario.tz.key})")
    nets = "   ".join(f"{n}: {r.totals[n].net_usd:,.0f} USD" for n in POLICIES)
    fig.text(0.01, 0.005, f"net over the scenario: {nets}", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
