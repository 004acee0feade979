"""Prometheus metrics of the operator (`dualcap run --metrics-port N`, path /metrics).

Base units (watts, joules, seconds), `_total` counters, and bounded labels: `site`, and
small fixed sets (`kind`, `state`, `phase`, `result`, `code`); never a lease or a pod name.
Each operator has its own registry, so tests can run several side by side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from dualcap.api.conditions import Reason as R
from dualcap.api.lease import LeasePhase
from dualcap.cluster.apply import Outcome
from dualcap.cluster.status import lease_counts
from dualcap.planning.commands import Kind
from dualcap.planning.decisions import LeaseDecision, MeterOutcome, Plan
from dualcap.planning.offer import Offer

KW = 1000.0  # watts in a kilowatt
DRAW_KINDS = ("mining", "gpu", "overhead")
CONTROLLER_STATES = ("mining", "curtailing", "curtailed", "held", "unready")
PHASES = ("pending", "admitted", "running", "preempted", "completed", "failed")
MINER_STATES = ("mining", "sleeping", "unreachable")
BLOCK_STATES = ("reporting", "stale")
INPUTS = ("meter", "gpu_power", "prices")  # the outside inputs a Site may name
WAIT_KINDS = ("lease", "workload")
OFFER_KINDS = ("free", "available")
# Why a lease or Workload is waiting for power (not for its start, nor for GPUs)
POWER_WAITS = frozenset({R.INSUFFICIENT_POWER, R.ENVELOPE_TOO_LOW, R.WAITING_FOR_CONFIRMATION})
COMMAND_KINDS = {
    Kind.CURTAIL: "curtail",
    Kind.RESUME: "resume",
    Kind.CREATE_POD: "create_pod",
    Kind.DELETE_POD: "delete_pod",
    Kind.ADMIT_WORKLOAD: "admit_workload",
    Kind.EVICT_WORKLOAD: "evict_workload",
}
# Time to compliance spans sub-second (no change needed) to minutes (slow miners).
COMPLIANCE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, float("inf"))
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))


@dataclass
class _SiteTrack:
    at: datetime
    draw_w: dict[str, float]
    over: bool
    limit_kw: float | None
    change_at: datetime | None = None  # an envelope change not yet complied with
    # since when each lease or Workload (by key) has waited for power without a break
    waiting: dict[tuple[str, str], datetime] = field(default_factory=dict)


class _ApiErrors(Collector):
    def __init__(self, source: Callable[[], Mapping[int, int]]):
        self.source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "dualcap_api_errors",
            "Kubernetes API requests that failed, by HTTP status code (0: no response).",
            labels=["code"],
        )
        for code, n in sorted(self.source().items()):
            family.add_metric([str(code)], n)
        yield family


class Metrics:
    def __init__(self, clock: Callable[[], datetime]):
        self.clock = clock
        self.registry = CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, ["site", *labels], registry=r)

        self.limit = gauge("dualcap_site_limit_watts", "The site's effective power limit.")
        self.committed = gauge(
            "dualcap_site_committed_watts",
            "Facility power the site may draw now, counted conservatively.",
        )
        self.metered = gauge(
            "dualcap_site_metered_watts",
            "What the site meter last read (sites with spec.meter; absent while stale).",
        )
        self.unmodelled = gauge(
            "dualcap_site_unmodelled_watts",
            "Load the meter reads beyond the sum of the parts, counted (the reserve while"
            " the meter is stale).",
        )
        self.planned = gauge(
            "dualcap_site_planned_watts", "Facility power once the current plan has taken effect."
        )
        self.headroom = gauge(
            "dualcap_site_headroom_watts", "The limit minus the committed draw (negative: over)."
        )
        self.draw = gauge(
            "dualcap_site_draw_watts",
            "Committed facility power by kind: mining, gpu, overhead (fixed load and PUE).",
            "kind",
        )
        self.controllers = gauge("dualcap_site_controllers", "ASIC controllers by state.", "state")
        self.gpus = gauge("dualcap_site_gpus", "GPUs on the site's GPU nodes by state.", "state")
        self.leases = gauge("dualcap_site_leases", "ComputeLeases of the site by phase.", "phase")
        self.workloads = gauge(
            "dualcap_site_workloads",
            "Kueue Workloads under the site's power check by phase (as leases: pending,"
            " admitted, running, preempted, completed, failed).",
            "phase",
        )
        self.waiting = gauge(
            "dualcap_site_power_wait_seconds",
            "How long the longest waiting lease or Workload of each kind has waited for"
            " power without a break (0: none waits; counted since the operator started).",
            "kind",
        )
        self.next_limit = gauge(
            "dualcap_site_next_limit_watts",
            "The site's limit after its next change (absent: no change ahead).",
        )
        self.next_change = gauge(
            "dualcap_site_next_limit_change_timestamp_seconds",
            "When the site's limit next changes, in Unix seconds (absent: no change ahead).",
        )
        self.inputs = gauge(
            "dualcap_site_input_fresh",
            "Whether each outside input the Site names is fresh and answering (1) or stale,"
            " silent or failing (0): input is meter, gpu_power or prices.",
            "input",
        )
        self.blocks = gauge(
            "dualcap_site_blocks",
            "MinerAgent blocks by state: reporting (a fresh MinerBlock report) or stale"
            " (none: the agent down, unreachable or not yet reporting).",
            "state",
        )
        self.miners = gauge(
            "dualcap_site_miners",
            "Miners of the reporting blocks by state: mining, sleeping, unreachable.",
            "state",
        )
        self.offer = gauge(
            "dualcap_site_offer_watts",
            "With spec.offer, the room the site offers a new GPU load: free (the headroom)"
            " or available (the headroom and every mining controller curtailed).",
            "kind",
        )
        self.offer_gpus = gauge(
            "dualcap_site_offer_gpus", "With spec.offer, the GPUs the site offers (free)."
        )
        self.worst_block = gauge(
            "dualcap_site_block_unreachable_ratio",
            "The largest share (0 to 1) of one reporting block's miners that do not answer.",
        )
        self.revenue = gauge(
            "dualcap_site_revenue_usd_per_hour",
            "Estimated revenue per hour at the current plan, by kind: mining, gpu.",
            "kind",
        )
        self.cost = gauge(
            "dualcap_site_energy_cost_usd_per_hour",
            "Estimated energy cost per hour of the committed draw at the current price.",
        )
        self.energy = Counter(
            "dualcap_site_energy_joules",
            "Energy drawn by kind (integral of the committed draw): rate() gives watts.",
            ["site", "kind"],
            registry=r,
        )
        self.over = Counter(
            "dualcap_site_over_envelope_seconds",
            "Time the site spent above its limit: the meter's reading where a fresh one"
            " exists, else the committed draw (only while curtailments confirm).",
            ["site"],
            registry=r,
        )
        self.compliance = Histogram(
            "dualcap_envelope_compliance_seconds",
            "From a change of the site's limit to the first reconcile that finds the site"
            " within it (judged on a fresh meter reading where there is one, else the"
            " committed draw).",
            ["site"],
            buckets=COMPLIANCE_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            "dualcap_reconciles",
            "Site reconciles by result: success or error.",
            ["site", "result"],
            registry=r,
        )
        self.duration = Histogram(
            "dualcap_reconcile_duration_seconds",
            "Wall time of a site reconcile (snapshot, plan, writes, status).",
            ["site"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            "dualcap_commands",
            "Commands issued to the cluster by kind: curtail, resume, create_pod, delete_pod,"
            " admit_workload, evict_workload.",
            ["site", "kind"],
            registry=r,
        )
        self.stale = Counter(
            "dualcap_stale_objects",
            "Objects the operator's view still held after the API had deleted them (found "
            "and dropped by a resync; kopf keeps them after a watch re-list).",
            ["site"],
            registry=r,
        )
        self._tracks: dict[str, _SiteTrack] = {}
        self._api_errors: Callable[[], Mapping[int, int]] = dict

        r.register(_ApiErrors(lambda: self._api_errors()))

    def api_errors_from(self, source: Callable[[], Mapping[int, int]]) -> None:
        self._api_errors = source

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    # --- recording -----------------------------------------------------------------------

    def stale_found(self, site: str, n: int) -> None:
        self.stale.labels(site).inc(n)

    def reconciled(self, site: str, seconds: float, ok: bool) -> None:
        self.reconciles.labels(site, "success" if ok else "error").inc()
        self.duration.labels(site).observe(seconds)

    def plan_applied(self, p: Plan, outcome: Outcome | None) -> None:
        """After each reconcile: the site's gauges, energy and time over the envelope."""
        site, now = p.site, self.clock()
        draw_w = {
            "mining": p.committed.mining_kw * KW,
            "gpu": p.committed.gpu_kw * KW,
            "overhead": p.committed.overhead_kw * KW,
        }
        limit_kw = p.limit_kw
        over = limit_kw is not None and judged_kw(p.committed_kw, p.meter) > limit_kw + 1e-6
        track = self._tracks.get(site)
        if track is not None:
            dt = max(0.0, (now - track.at).total_seconds())
            for kind, watts in track.draw_w.items():
                self.energy.labels(site, kind).inc(watts * dt)
            if track.over:
                self.over.labels(site).inc(dt)
            change_at = track.change_at
            if limit_kw is not None and track.limit_kw is not None and limit_kw != track.limit_kw:
                change_at = change_at or now
        else:
            change_at = None
            self.over.labels(site)  # present from the first scrape, at zero
            self.stale.labels(site)
            for kind in DRAW_KINDS:
                self.energy.labels(site, kind)
            for kind in COMMAND_KINDS.values():
                self.commands.labels(site, kind)
            self.compliance.labels(site)
        if change_at is not None and not over:
            self.compliance.labels(site).observe(max(0.0, (now - change_at).total_seconds()))
            change_at = None
        self._tracks[site] = _SiteTrack(now, draw_w, over, limit_kw, change_at)

        if limit_kw is not None:
            self.limit.labels(site).set(limit_kw * KW)
            self.headroom.labels(site).set((limit_kw - p.committed_kw) * KW)
        self.committed.labels(site).set(p.committed_kw * KW)
        if p.meter is not None:
            self.unmodelled.labels(site).set(p.meter.unmodelled_kw * KW)
            if p.meter.fresh and p.meter.metered_kw is not None:
                self.metered.labels(site).set(p.meter.metered_kw * KW)
            else:
                _remove(self.metered, (site,))
        self.planned.labels(site).set(p.planned_kw * KW)
        for kind, watts in draw_w.items():
            self.draw.labels(site, kind).set(watts)
        for state in CONTROLLER_STATES:
            self.controllers.labels(site, state).set(p.controllers.get(state, 0))
        self.gpus.labels(site, "leased").set(p.gpus_leased)
        self.gpus.labels(site, "free").set(max(0, p.gpus_total - p.gpus_leased))
        leases = [d for d in p.leases if d.lease.workload is None]
        workloads = [d for d in p.leases if d.lease.workload is not None]
        for gauge_, decisions in ((self.leases, leases), (self.workloads, workloads)):
            counts = lease_counts(decisions)
            for phase in PHASES:
                gauge_.labels(site, phase).set(counts.get(phase, 0))
        self._tracks[site].waiting = self._record_waits(
            site, now, track.waiting if track is not None else {},
            {"lease": leases, "workload": workloads},
        )  # fmt: skip
        self._record_inputs(p)
        self.revenue.labels(site, "mining").set(p.mining_revenue_usd_per_hour)
        self.revenue.labels(site, "gpu").set(p.lease_revenue_usd_per_hour)
        self.cost.labels(site).set(p.energy_cost_usd_per_hour)
        if outcome is not None:
            for cmd in [*outcome.done, *(c for c, _ in outcome.failures)]:
                self.commands.labels(site, COMMAND_KINDS[cmd.kind]).inc()

    def _record_waits(
        self,
        site: str,
        now: datetime,
        before: Mapping[tuple[str, str], datetime],
        by_kind: Mapping[str, list[LeaseDecision]],
    ) -> dict[tuple[str, str], datetime]:
        """The longest wait for power of each kind; since when each one waits."""
        waiting: dict[tuple[str, str], datetime] = {}
        for kind, decisions in by_kind.items():
            longest = 0.0
            for d in decisions:
                if (
                    d.phase in (LeasePhase.PENDING, LeasePhase.PREEMPTED)
                    and not d.runs
                    and (d.reason in POWER_WAITS)
                ):
                    since = waiting[d.lease.key] = before.get(d.lease.key, now)
                    longest = max(longest, (now - since).total_seconds())
            self.waiting.labels(site, kind).set(longest)
        return waiting

    def _record_inputs(self, p: Plan) -> None:
        site = p.site
        env = p.envelope
        if env is not None and env.next_change is not None:
            self.next_limit.labels(site).set(env.next_change.limit_kw * KW)
            self.next_change.labels(site).set(env.next_change.at.timestamp())
        else:
            _remove(self.next_limit, (site,))
            _remove(self.next_change, (site,))
        fresh = {
            "meter": None if p.meter is None else p.meter.fresh,
            "gpu_power": None
            if p.gpu_power is None
            else p.gpu_power.error_reason is None and not p.gpu_power.unreported,
            "prices": None if p.prices is None else p.prices.fresh,
        }
        for name, value in fresh.items():
            if value is None:
                _remove(self.inputs, (site, name))
            else:
                self.inputs.labels(site, name).set(1 if value else 0)
        m = p.miners
        if m is None:
            for state in BLOCK_STATES:
                _remove(self.blocks, (site, state))
            for state in MINER_STATES:
                _remove(self.miners, (site, state))
            _remove(self.worst_block, (site,))
            return
        self.blocks.labels(site, "reporting").set(m.reporting)
        self.blocks.labels(site, "stale").set(m.blocks - m.reporting)
        self.miners.labels(site, "mining").set(m.mining)
        self.miners.labels(site, "sleeping").set(m.sleeping)
        self.miners.labels(site, "unreachable").set(m.unreachable)
        self.worst_block.labels(site).set(m.worst_unreachable_share)

    def offer_made(self, site: str, o: Offer | None) -> None:
        """The site's offer (spec.offer), or None: its series go."""
        if o is None:
            for kind in OFFER_KINDS:
                _remove(self.offer, (site, kind))
            _remove(self.offer_gpus, (site,))
            return
        self.offer.labels(site, "free").set(o.free_kw * KW)
        self.offer.labels(site, "available").set(o.available_kw * KW)
        self.offer_gpus.labels(site).set(o.gpus_free)

    def forget(self, site: str) -> None:
        """A deleted Site: its series go (counters too: a new Site of that name starts anew)."""
        self._tracks.pop(site, None)
        for metric in (
            self.limit, self.committed, self.planned, self.headroom, self.cost, self.over,
            self.metered, self.unmodelled, self.next_limit, self.next_change, self.worst_block,
            self.offer_gpus,
            self.compliance, self.duration, self.stale,
        ):  # fmt: skip
            _remove(metric, (site,))
        for metric, values in (
            (self.draw, DRAW_KINDS),
            (self.energy, DRAW_KINDS),
            (self.controllers, CONTROLLER_STATES),
            (self.gpus, ("leased", "free")),
            (self.leases, PHASES),
            (self.workloads, PHASES),
            (self.waiting, WAIT_KINDS),
            (self.inputs, INPUTS),
            (self.blocks, BLOCK_STATES),
            (self.miners, MINER_STATES),
            (self.offer, OFFER_KINDS),
            (self.revenue, ("mining", "gpu")),
            (self.reconciles, ("success", "error")),
            (self.commands, tuple(COMMAND_KINDS.values())),
        ):
            for value in values:
                _remove(metric, (site, value))


def _remove(metric: Gauge | Counter | Histogram, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def judged_kw(committed_kw: float, meter: MeterOutcome | None) -> float:
    """The draw the site is judged by, as the utility does: a fresh meter reading where
    there is one, else the committed draw (the model, counted conservatively)."""
    if meter is not None and meter.fresh and meter.metered_kw is not None:
        return meter.metered_kw
    return committed_kw
