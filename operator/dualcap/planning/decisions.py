"""What a plan decides: its draws, its commands, each lease's phase and why, and why it
holds when it holds. Reasons are enums (``dualcap.api.conditions``): status and events are
decided from them, never from the words of a message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dualcap.api.conditions import HoldReason, Reason
from dualcap.api.lease import LeasePhase
from dualcap.planning.accounting import Draw
from dualcap.planning.commands import Command, Kind, Schedule
from dualcap.planning.entities import Lease, Problem
from dualcap.planning.envelope import Envelope, SiteEnvelope


@dataclass(frozen=True, slots=True)
class Hold:
    """Why nothing is increased at a site (and nothing curtailed for economics)."""

    reason: HoldReason
    message: str


@dataclass(frozen=True, slots=True)
class MeterOutcome:
    """What the site meter counted for in this plan."""

    metered_kw: float | None
    metered_at: datetime | None
    fresh: bool
    modelled_kw: float  # the committed draw by the parts (measured where fresh)
    unmodelled_kw: float  # counted: the meter beyond the parts, or the reserve kept
    reason: str  # MeterFresh, MeterStale, NoReading or the poll's error reason
    message: str
    disagrees: bool  # the meter and the parts differ by more than the tolerance
    disagreement_seconds: float = 120.0  # for how long before it is reported
    measured_unmodelled_kw: float = 0.0  # this reading's own: the meter beyond the parts
    disagreeing_since: datetime | None = None  # while they differ: since when
    disagreement_lasted: bool = False  # they have differed for disagreement_seconds


@dataclass(frozen=True, slots=True)
class GpuPowerSummary:
    """With spec.gpu.powerQuery: which GPU nodes count at what they measure."""

    nodes: int
    reporting: int
    unreported: list[str]
    error_reason: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class PricesUsed:
    """With spec.prices: the prices the plan used and where they came from."""

    energy_usd_per_mwh: float
    energy_source: str  # feed or budget
    hashprice: float | None
    hashprice_source: str  # feed or spec
    fresh: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class MinerSummary:
    """With curtailment MinerAgent: what the reports say against the nameplate model."""

    blocks: int
    reporting: int
    measured_kw: float  # facility kW of the reporting blocks, as counted (measured)
    modelled_kw: float  # facility kW of the same blocks by nameplate
    unreported: list[str]
    # The miners of the reporting blocks by state (their fresh reports summed)
    miners: int = 0
    mining: int = 0
    sleeping: int = 0
    unreachable: int = 0
    # The largest share of a reporting block's miners that do not answer (0 to 1)
    worst_unreachable_share: float = 0.0


@dataclass(slots=True)
class LeaseDecision:
    """What the plan does with one lease, and why."""

    lease: Lease
    phase: LeasePhase
    runs: bool  # runs once the plan has taken effect
    reason: Reason
    message: str
    gpus: int = 0  # GPUs it holds in the planned state
    kw: float = 0.0  # facility kW of its pods in the planned state
    pods: list[str] = field(default_factory=list)  # pod names in the planned state
    admitted_now: bool = False
    preempted_now: bool = False


@dataclass(slots=True)
class Plan:
    site: str
    at: datetime
    envelope: Envelope | None
    limit_kw: float | None  # None: no usable envelope (hold)
    committed: Draw
    planned: Draw
    commands: list[Command]
    schedule: Schedule
    mining: list[str]  # controllers mining once the plan has taken effect
    leases: list[LeaseDecision]
    controllers: dict[str, int]  # by state now: mining, curtailing, curtailed, held, unready
    held_nodes: list[str]
    gpus_total: int
    gpus_leased: int
    mining_revenue_usd_per_hour: float
    lease_revenue_usd_per_hour: float
    energy_cost_usd_per_hour: float
    energy_price_usd_per_mwh: float
    next_wakeup: datetime | None
    problems: list[Problem]
    hold: Hold | None = None  # why nothing is increased (no envelope, suspended, ...)
    in_flight: int = 0  # curtailments not yet confirmed + lease pods not yet gone
    miners: MinerSummary | None = None  # curtailment MinerAgent only
    budgets: SiteEnvelope | None = None  # each budget's envelope, which one binds
    meter: MeterOutcome | None = None  # with spec.meter
    floor_kw: float = 0.0  # what no command can shed (facility kW)
    prices: PricesUsed | None = None  # with spec.prices
    gpu_power: GpuPowerSummary | None = None  # with spec.gpu.powerQuery

    @property
    def hold_reason(self) -> str | None:
        """The hold's message, for people."""
        return self.hold.message if self.hold else None

    @property
    def committed_kw(self) -> float:
        return self.committed.total_kw

    @property
    def planned_kw(self) -> float:
        return self.planned.total_kw

    @property
    def headroom_kw(self) -> float | None:
        return None if self.limit_kw is None else self.limit_kw - self.committed_kw

    @property
    def within_envelope(self) -> bool | None:
        return None if self.limit_kw is None else self.committed_kw <= self.limit_kw + 1e-6

    def commands_of(self, kind: Kind) -> list[Command]:
        return [c for c in self.commands if c.kind is kind]


@dataclass(slots=True)
class Orders:
    """What the steps of a plan emit as they decide: commands, and when to look again."""

    decreases: list[Command] = field(default_factory=list)  # curtailments, pod deletions
    creates: list[Command] = field(default_factory=list)  # lease pods
    resumes: list[Command] = field(default_factory=list)
    wakeups: list[datetime] = field(default_factory=list)

    def commands(self) -> list[Command]:
        return [*self.decreases, *self.creates, *self.resumes]
