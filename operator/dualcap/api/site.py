"""Site: one physical site — its nodes, its facility overhead, its miners and GPUs."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from dualcap.api.common import (
    ROLE_LABEL,
    SITE_LABEL,
    Condition,
    LabelSelector,
    Model,
    StatusModel,
    cel,
    check_name_length,
)
from dualcap.api.feeds import PriceFeeds
from dualcap.api.measurement import GpuPowerQuery, MeterSpec
from dualcap.api.meta import ObjectMeta


class Facility(Model):
    """Facility overhead: cooling, transformers, lighting — power the IT load does not see."""

    pue: float = Field(
        default=1.0,
        ge=1.0,
        le=3.0,
        description=(
            "Power usage effectiveness: facility draw per kW of IT load (1.03-1.5 in practice)."
            " Multiplies every controller, GPU node and lease pod."
        ),
    )
    fixed_kw: float = Field(
        default=0.0,
        alias="fixedKW",
        ge=0.0,
        le=1_000_000.0,
        description="Fixed facility draw in kW, drawn whatever runs (offices, lighting, SCADA).",
    )


class AsicSpec(Model):
    """The site's ASIC controllers: Nodes that each stand for a controllable block of miners."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.curtailment == 'MinerAgent' || has(self.miningPodSelector)",
                    "miningPodSelector is required with curtailment Eviction",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _pods_to_evict(self) -> AsicSpec:
        if self.curtailment == "Eviction" and self.mining_pod_selector is None:
            raise ValueError("miningPodSelector is required with curtailment Eviction")
        return self

    node_selector: LabelSelector = Field(
        default_factory=lambda: LabelSelector.of(**{ROLE_LABEL: "asic"}),
        alias="nodeSelector",
        json_schema_extra={"default": {"matchLabels": {ROLE_LABEL: "asic"}}},
        description=(
            "Which of the site's nodes are ASIC controllers."
            f" Default: matchLabels {{{ROLE_LABEL}: asic}}."
        ),
    )
    curtailment: Literal["Eviction", "MinerAgent"] = Field(
        default="Eviction",
        description=(
            "What turns a curtailment into watts. Eviction: the curtailment taint evicts the"
            " mining pods (miningPodSelector), whose own shutdown sleeps the miners; confirmed"
            " when none remains on the node. MinerAgent: dualcap's agent on the node sleeps"
            " and wakes the block's miners through their firmware and reports them in the"
            " node's MinerBlock; confirmed by a fresh report, newer than the curtailment,"
            " with no miner mining and none unreachable. With MinerAgent a fresh report's"
            " measured draw and hashrate replace the nameplate numbers."
        ),
    )
    mining_pod_selector: LabelSelector | None = Field(
        default=None,
        alias="miningPodSelector",
        description=(
            "The pods that do the mining on a controller node (typically a miner DaemonSet)."
            " With curtailment Eviction (required there), a curtailment is confirmed when none"
            " of them remains on the node."
        ),
    )
    stale_after_seconds: int = Field(
        default=60,
        alias="staleAfterSeconds",
        ge=5,
        le=3600,
        description=(
            "With curtailment MinerAgent: a MinerBlock report older than this counts as none"
            " (the block at its nameplate power, no curtailment confirmed, nothing resumed or"
            " admitted on its strength)."
        ),
    )
    power_kw: float = Field(
        alias="powerKW",
        gt=0.0,
        le=100_000.0,
        description=(
            "IT power of one controller while mining, in kW (e.g. a container of S21-class"
            " miners: ~1,900). A node's annotation dualcap.io/power-kw overrides it."
        ),
    )
    hashrate_ths: float = Field(
        alias="hashrateTHs",
        ge=0.0,
        le=100_000_000.0,
        description=(
            "Hashrate of one controller in TH/s. A node's annotation dualcap.io/hashrate-ths"
            " overrides it."
        ),
    )
    hashprice_usd_per_ph_day: float = Field(
        alias="hashpriceUSDPerPHDay",
        ge=0.0,
        le=100_000.0,
        description=(
            "Hashprice: expected mining revenue in USD per PH/s per day (35-60 in 2024-2026)."
        ),
    )


class GpuSpec(Model):
    """The site's GPU nodes, where lease pods run."""

    power_query: GpuPowerQuery | None = Field(
        default=None,
        alias="powerQuery",
        description=(
            "The GPUs' own power from Prometheus, per node (typically NVIDIA DCGM exporter's"
            " DCGM_FI_DEV_POWER_USAGE, W, by Hostname or hostname). A fresh reading of a node"
            " replaces its idle power and the GPUs of pods that are not dualcap's; its lease"
            " pods keep their nameplate (a pod just placed may draw it any moment)."
        ),
    )

    node_selector: LabelSelector = Field(
        default_factory=lambda: LabelSelector.of(**{ROLE_LABEL: "gpu"}),
        alias="nodeSelector",
        json_schema_extra={"default": {"matchLabels": {ROLE_LABEL: "gpu"}}},
        description=(
            f"Which of the site's nodes are GPU nodes. Default: matchLabels {{{ROLE_LABEL}: gpu}}."
        ),
    )
    resource_name: str = Field(
        default="nvidia.com/gpu",
        alias="resourceName",
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        max_length=253,
        description="The extended resource that counts GPUs on a node and in a pod.",
    )
    power_per_gpu_kw: float = Field(
        alias="powerPerGPUKW",
        gt=0.0,
        le=100.0,
        description=(
            "IT power of one busy GPU with its share of the server, in kW (an 8 x H100 server"
            " draws ~10 kW: ~1.2 per GPU). A node's annotation dualcap.io/power-per-gpu-kw"
            " overrides it."
        ),
    )
    idle_power_kw: float = Field(
        default=0.0,
        alias="idlePowerKW",
        ge=0.0,
        le=1_000.0,
        description=(
            "IT power of a GPU node with no lease, in kW; always drawn. A node's annotation"
            " dualcap.io/idle-power-kw overrides it."
        ),
    )


class Behavior(Model):
    """How fast and how often dualcap changes what runs."""

    min_mining_seconds: int = Field(
        default=300,
        alias="minMiningSeconds",
        ge=0,
        le=86_400,
        description=(
            "After a resume, a controller mines at least this long before it is curtailed for"
            " economic reasons. The envelope never waits for it."
        ),
    )
    min_curtailed_seconds: int = Field(
        default=300,
        alias="minCurtailedSeconds",
        ge=0,
        le=86_400,
        description="After a curtailment, a controller stays curtailed at least this long.",
    )
    max_ramp_up_kw_per_minute: float = Field(
        default=5000.0,
        alias="maxRampUpKWPerMinute",
        gt=0.0,
        le=10_000_000.0,
        description=(
            "Most mining power (facility kW) resumed per minute; increases beyond wait for the"
            " next reconcile. Lease pods are not ramp-limited. Decreases are never limited."
        ),
    )
    on_delete: Literal["Release", "Retain"] = Field(
        default="Release",
        alias="onDelete",
        description=(
            "When the Site is deleted: Release resumes the controllers dualcap curtailed"
            " (from then on nothing keeps the site inside its envelope); Retain leaves them"
            " curtailed."
        ),
    )


class OfferSpec(Model):
    """Publishing the site's offer for a fleet (`dualcap fleet` on a MultiKueue manager)."""

    refresh_seconds: int = Field(
        default=60,
        alias="refreshSeconds",
        ge=10,
        le=3600,
        description=(
            "The offer in status.offer is rewritten when it changes, and at least this often"
            " (its observedAt moves), so that a fleet can tell a live site from a silent one:"
            " it holds an offer older than three times this stale."
        ),
    )


class SiteSpec(Model):
    """What a site is made of and how dualcap runs it."""

    node_selector: LabelSelector | None = Field(
        default=None,
        alias="nodeSelector",
        description=(
            f"Which nodes belong to the site. Default: matchLabels {{{SITE_LABEL}: <site name>}}."
        ),
    )
    facility: Facility = Field(
        default_factory=Facility,
        description="Facility overhead (PUE and fixed kW).",
        json_schema_extra={"default": {}},  # the API server then fills its fields' defaults
    )
    asic: AsicSpec | None = Field(
        default=None,
        description=(
            "The ASIC controllers and mining economics. Absent on a GPU-only site: no node"
            " is a controller, nothing is mined."
        ),
    )
    gpu: GpuSpec | None = Field(
        default=None,
        description=(
            "The GPU nodes. Absent on a mining-only site (every site starts as one): no node"
            " is a GPU node and no lease is admitted."
        ),
    )
    behavior: Behavior = Field(
        default_factory=Behavior,
        description="Hysteresis, ramp limit and deletion policy.",
        json_schema_extra={"default": {}},
    )
    prices: PriceFeeds | None = Field(
        default=None,
        description=(
            "Live price feeds (ERCOT energy prices, the Hashrate Index hashprice) used while"
            " fresh; the static prices are the fallback."
        ),
    )
    meter: MeterSpec | None = Field(
        default=None,
        description=(
            "The site's revenue meter (a SunSpec AC meter over Modbus TCP, or a PromQL"
            " expression). Its reading bounds the committed draw from below: what it reads"
            " beyond the sum of the parts is counted as unmodelled load."
        ),
    )
    suspend: bool = Field(
        default=False,
        description=(
            "Stop changing the site: no curtailment, resume, admission or preemption. Status"
            " is still reported. For maintenance windows."
        ),
    )
    offer: OfferSpec | None = Field(
        default=None,
        description=(
            "Publish what the site offers a new GPU load in status.offer (GPUs free, room"
            " under the envelope and at what lost mining margin, the envelope and the price"
            " ahead), for a fleet that places work across sites. Absent: nothing published."
        ),
    )


class ControllerState(StrEnum):
    """An ASIC controller as dualcap sees it, and what it counts for."""

    MINING = "Mining"  # not curtailed by dualcap: counts at full power
    CURTAILING = "Curtailing"  # curtailed by dualcap, not confirmed yet: full power
    CURTAILED = "Curtailed"  # curtailed by dualcap and confirmed: what it draws asleep
    HELD = "Held"  # cordoned by a person: left alone; full power while miners run
    UNREADY = "Unready"  # NotReady or unknown: full power, no commands


class ControllerCounts(StatusModel):
    """ASIC controllers by state."""

    total: int = Field(default=0, description="ASIC controller nodes at the site.")
    mining: int = Field(default=0, description="Controllers mining.")
    curtailed: int = Field(default=0, description="Controllers curtailed by dualcap (confirmed).")
    curtailing: int = Field(
        default=0, description="Controllers curtailed by dualcap, mining pods still stopping."
    )
    held: int = Field(
        default=0,
        description="Controllers cordoned by a person: dualcap leaves them alone.",
    )
    unready: int = Field(default=0, description="Controllers NotReady or unknown (full power).")


class GpuCounts(StatusModel):
    """GPUs by state."""

    total: int = Field(default=0, description="GPUs on schedulable GPU nodes.")
    leased: int = Field(default=0, description="GPUs used by lease pods.")
    free: int = Field(default=0, description="GPUs not used by a lease.")
    measured_nodes: int | None = Field(
        default=None,
        alias="measuredNodes",
        description="GPU nodes counted at what they measure (spec.gpu.powerQuery).",
    )


class DrawByKind(StatusModel):
    """Facility draw in kW split by what draws it (PUE share included in each)."""

    mining_kw: float = Field(default=0.0, alias="miningKW", description="ASIC controllers.")
    gpu_kw: float = Field(default=0.0, alias="gpuKW", description="GPU nodes and lease pods.")
    overhead_kw: float = Field(
        default=0.0, alias="overheadKW", description="Fixed facility overhead."
    )


class PricesInUse(StatusModel):
    """The prices the plan uses now."""

    energy_usd_per_mwh: float | None = Field(
        default=None, alias="energyUSDPerMWh", description="The energy price in use."
    )
    energy_source: str | None = Field(
        default=None, alias="energySource", description="feed, or budget (the static price)."
    )
    hashprice_usd_per_ph_day: float | None = Field(
        default=None, alias="hashpriceUSDPerPHDay", description="The hashprice in use."
    )
    hashprice_source: str | None = Field(
        default=None, alias="hashpriceSource", description="feed, or spec (the static one)."
    )


class SiteLimitChange(StatusModel):
    """When the site's envelope changes next, to what, and by which budget."""

    at: str = Field(description="When (RFC 3339).")
    limit_kw: float = Field(alias="limitKW", description="The envelope from then on, in kW.")
    budget: str | None = Field(default=None, description="The PowerBudget that makes it.")


class MeasuredMining(StatusModel):
    """With curtailment MinerAgent: the ASIC controllers as their MinerBlocks measure them."""

    blocks: int = Field(default=0, description="ASIC controllers dualcap may dispatch.")
    reporting: int = Field(
        default=0, description="Of them, with a fresh MinerBlock report (measured)."
    )
    measured_kw: float = Field(
        default=0.0,
        alias="measuredKW",
        description="Facility kW the reporting blocks are counted at, from their reports.",
    )
    modelled_kw: float = Field(
        default=0.0,
        alias="modelledKW",
        description="Facility kW the same blocks would be counted at by their nameplate.",
    )
    unreported: list[str] | None = Field(
        default=None,
        description=("Blocks with no fresh report, counted at nameplate (the first 20 by name)."),
    )


class LeaseCounts(StatusModel):
    """The site's ComputeLeases by phase."""

    pending: int = Field(default=0, description="Waiting for their start, GPUs or power.")
    admitted: int = Field(default=0, description="Admitted, pods not all running yet.")
    running: int = Field(default=0, description="All pods running.")
    preempted: int = Field(default=0, description="Stopped for the envelope; will run again.")
    completed: int = Field(default=0, description="Past their end.")
    failed: int = Field(default=0, description="Cannot run as written.")


class WorkloadCounts(StatusModel):
    """The Kueue Workloads gated by the site's power admission check."""

    admitted: int = Field(default=0, description="Admitted by the check (Ready): they may run.")
    pending: int = Field(
        default=0, description="Quota reserved by Kueue, waiting for the check (power, GPUs)."
    )
    kw: float = Field(
        default=0.0, description="Facility kW of the admitted ones in the planned state."
    )
    names: list[str] | None = Field(
        default=None,
        max_length=50,
        description="The admitted ones, namespace/name (the first 50 by priority).",
    )


class OfferRoom(StatusModel):
    """Room for new load, at the mining margin the site would lose by using it."""

    kw: float = Field(description="Facility kW.")
    lost_usd_per_mwh: float = Field(
        alias="lostUSDPerMWh",
        description=(
            "The mining margin lost per MWh used (0: headroom, or miners that do not pay)."
        ),
    )


class OfferStep(StatusModel):
    """A change of the envelope or of the energy price ahead."""

    at: str = Field(description="From when (RFC 3339).")
    limit_kw: float = Field(alias="limitKW", description="The limit from then on, in kW.")
    energy_usd_per_mwh: float = Field(
        alias="energyUSDPerMWh", description="The energy price from then on, USD/MWh."
    )


class SiteOffer(StatusModel):
    """What the site offers a new GPU load (spec.offer): advice for a fleet, never a
    promise; the site's own power check decides admission."""

    observed_at: str = Field(alias="observedAt", description="When (RFC 3339).")
    valid_until: str = Field(
        alias="validUntil",
        description="Stale from then on unless rewritten (three times spec.offer.refreshSeconds).",
    )
    gpus_free: int = Field(alias="gpusFree", description="GPUs not used by a lease or Workload.")
    per_gpu_kw: float = Field(
        alias="perGPUKW", description="Facility kW of one busy GPU (the site's highest)."
    )
    limit_kw: float = Field(alias="limitKW", description="The limit now, in kW.")
    free_kw: float = Field(alias="freeKW", description="Headroom under the limit now, in kW.")
    available_kw: float = Field(
        alias="availableKW",
        description="All the room: the headroom and every mining controller curtailed, in kW.",
    )
    room: list[OfferRoom] = Field(
        default_factory=list, max_length=8, description="The room, cheapest first."
    )
    energy_usd_per_mwh: float = Field(
        alias="energyUSDPerMWh", description="The energy price now, USD/MWh."
    )
    ahead: list[OfferStep] = Field(
        default_factory=list,
        max_length=16,
        description="Changes of the limit or the price over the next 12 hours.",
    )


class SiteStatus(StatusModel):
    """The site as dualcap last saw it."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The metadata.generation this status was computed from.",
    )
    limit_kw: float | None = Field(
        default=None,
        alias="limitKW",
        description="The effective envelope now, safety margin deducted, in kW.",
    )
    committed_kw: float | None = Field(
        default=None,
        alias="committedKW",
        description=(
            "Facility draw counted conservatively, in kW: a controller counts at full power"
            " until its curtailment is confirmed (no mining pod left), a NotReady node at"
            " full power, a lease pod from its creation until it is gone."
        ),
    )
    planned_kw: float | None = Field(
        default=None,
        alias="plannedKW",
        description="Facility draw once the current plan has taken effect, in kW.",
    )
    headroom_kw: float | None = Field(
        default=None, alias="headroomKW", description="limitKW minus committedKW."
    )
    draw: DrawByKind | None = Field(default=None, description="Committed draw by kind, in kW.")
    controllers: ControllerCounts | None = Field(
        default=None, description="ASIC controllers by state."
    )
    held_nodes: list[str] | None = Field(
        default=None,
        alias="heldNodes",
        description="Controllers cordoned by a person (not by dualcap), left alone.",
    )
    floor_kw: float | None = Field(
        default=None,
        alias="floorKW",
        description=(
            "What dualcap cannot shed, in kW: facility overhead, the GPU nodes' baseline,"
            " controllers held by a person or NotReady, sleeping miners, unmodelled load."
            " A demand-response adapter opts out of an event whose limit is below it."
        ),
    )
    prices: PricesInUse | None = Field(
        default=None, description="With spec.prices: the prices in use now, and from where."
    )
    binding_budget: str | None = Field(
        default=None,
        alias="bindingBudget",
        description=(
            "The PowerBudget whose limit is the envelope now (the lowest of every budget"
            " naming the site)."
        ),
    )
    next_change: SiteLimitChange | None = Field(
        default=None,
        alias="nextChange",
        description="The next change of the envelope, across every budget naming the site.",
    )
    metered_kw: float | None = Field(
        default=None,
        alias="meteredKW",
        description="What the site meter last read, in kW (spec.meter).",
    )
    metered_at: str | None = Field(
        default=None, alias="meteredAt", description="When the meter was last read (RFC 3339)."
    )
    meter_disagreeing_since: str | None = Field(
        default=None,
        alias="meterDisagreeingSince",
        description=(
            "Since when the meter and the model have differed by more than"
            " spec.meter.disagreementKW (RFC 3339; absent while they agree). MeterAgrees turns"
            " False once this is spec.meter.disagreementSeconds old."
        ),
    )
    unmodelled_kw: float | None = Field(
        default=None,
        alias="unmodelledKW",
        description=(
            "Load the meter reads beyond the sum of the parts (cooling, lighting, what nobody"
            " declared), counted in committedKW; kept as a reserve while the meter is stale."
        ),
    )
    miners: MeasuredMining | None = Field(
        default=None,
        description="With curtailment MinerAgent: measured against modelled mining draw.",
    )
    gpus: GpuCounts | None = Field(default=None, description="GPUs by state.")
    leases: LeaseCounts | None = Field(default=None, description="ComputeLeases by phase.")
    workloads: WorkloadCounts | None = Field(
        default=None,
        description="With a Kueue power admission check naming the site: its Workloads.",
    )
    offer: SiteOffer | None = Field(
        default=None, description="With spec.offer: what the site offers a new GPU load."
    )
    revenue_usd_per_hour: float | None = Field(
        default=None,
        alias="revenueUSDPerHour",
        description="Estimated revenue of the planned state (mining and leases), USD/hour.",
    )
    energy_cost_usd_per_hour: float | None = Field(
        default=None,
        alias="energyCostUSDPerHour",
        description="Estimated energy cost of the planned state, USD/hour.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, WithinEnvelope, Reconciling, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Site(Model):
    """A physical site whose power envelope dualcap keeps, with its miners and GPU nodes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "size(self.metadata.name) <= 63",
                    "metadata.name: a Site name is used as a label value: at most 63 characters",
                ),
            ]
        }
    )

    api_version: Literal["dualcap.io/v1alpha1"] = Field(
        default="dualcap.io/v1alpha1", alias="apiVersion", description="dualcap.io/v1alpha1"
    )
    kind: Literal["Site"] = Field(default="Site", description="Site")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")
    spec: SiteSpec = Field(description="The site.")
    status: SiteStatus | None = Field(default=None, description="Written by dualcap.")

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> Site:
        check_name_length(self.metadata, "Site")
        return self

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    def node_selector(self) -> LabelSelector:
        """Which nodes belong to the site: its ``spec.nodeSelector``, by default the label
        ``dualcap.io/site: <name>``."""
        return self.spec.node_selector or default_node_selector(self.name)


def default_node_selector(site: str) -> LabelSelector:
    return LabelSelector.of(**{SITE_LABEL: site})


def node_selector_of(site: Mapping[str, Any]) -> LabelSelector | None:
    """Which nodes belong to the Site object ``site`` (a plain object, as the API returns
    it): the one decision of site membership, for the planner, the operator's view, its
    resync against the API and the release of a deleted Site. None when the selector is
    invalid: such a Site selects no node (and is reported invalid by the planner)."""
    name = str((site.get("metadata") or {}).get("name") or "")
    raw = (site.get("spec") or {}).get("nodeSelector")
    if raw is None:
        return default_node_selector(name)
    try:
        return LabelSelector.model_validate(raw)
    except ValueError:
        return None
