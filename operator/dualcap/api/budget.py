"""PowerBudget: the power envelope of one site, and the price of energy there."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from dualcap.api.common import (
    Condition,
    Model,
    ObjectName,
    RecurringWindow,
    Rfc3339,
    StatusModel,
    WindowName,
    cel,
    parse_rfc3339,
    unique,
)
from dualcap.api.meta import ObjectMeta

MAX_LIMIT_KW = 10_000_000.0  # 10 GW: far above any single interconnect
MAX_USD_PER_MWH = 100_000.0  # ERCOT's cap is 5,000; leave room for any market


class LimitWindow(RecurringWindow):
    """A recurring lower limit: summer afternoons, coincident-peak (4CP) hours."""

    limit_kw: float = Field(
        alias="limitKW",
        ge=0.0,
        le=MAX_LIMIT_KW,
        description="The site limit in kW while the window is active.",
    )


class LimitEvent(Model):
    """A one-off lower limit: a demand-response dispatch (ERCOT ERS, ECRS), an outage."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("timestamp(self.end) > timestamp(self.start)", "end must be after start")
            ]
        }
    )

    name: WindowName = Field(description="A name unique among the events (DNS label).")
    start: Rfc3339 = Field(
        description="When the limit starts (RFC 3339, e.g. 2026-07-14T19:00:00Z)."
    )
    end: Rfc3339 = Field(description="When the limit ends (RFC 3339).")
    limit_kw: float = Field(
        alias="limitKW", ge=0.0, le=MAX_LIMIT_KW, description="The site limit in kW meanwhile."
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> LimitEvent:
        if parse_rfc3339(self.end) <= parse_rfc3339(self.start):
            raise ValueError(f"event {self.name}: end must be after start")
        return self

    @field_validator("start", "end")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_rfc3339(value)
        return value


class PriceWindow(RecurringWindow):
    """A recurring energy price: time-of-use tariffs, expected peak prices."""

    usd_per_mwh: float = Field(
        alias="usdPerMWh",
        ge=-MAX_USD_PER_MWH,
        le=MAX_USD_PER_MWH,
        description="Energy price in USD/MWh while the window is active (may be negative).",
    )


class EnergyPrice(Model):
    """The price of energy at the site: drives economic curtailment of mining."""

    usd_per_mwh: float = Field(
        alias="usdPerMWh",
        ge=-MAX_USD_PER_MWH,
        le=MAX_USD_PER_MWH,
        description="Energy price in USD/MWh outside any window (may be negative).",
    )
    windows: list[PriceWindow] | None = Field(
        default=None,
        max_length=64,
        description="Recurring prices; where several are active, the highest applies.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_names(self) -> EnergyPrice:
        unique([w.name for w in self.windows or []], "price window name")
        return self


class PowerBudgetSpec(Model):
    """The envelope: the interconnect limit, lowered by windows and events."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.safetyMarginKW) && has(self.safetyMarginPercent))",
                    "set safetyMarginKW or safetyMarginPercent, not both",
                ),
                cel(
                    "!has(self.safetyMarginKW) || self.safetyMarginKW < self.limitKW",
                    "safetyMarginKW must be below limitKW",
                    fieldPath=".safetyMarginKW",
                ),
            ]
        }
    )

    site_ref: ObjectName = Field(
        alias="siteRef", description="The name of the Site this envelope belongs to."
    )
    limit_kw: float = Field(
        alias="limitKW",
        gt=0.0,
        le=MAX_LIMIT_KW,
        description="The interconnect limit in kW: the most the site may ever draw.",
    )
    safety_margin_kw: float | None = Field(
        default=None,
        alias="safetyMarginKW",
        ge=0.0,
        le=MAX_LIMIT_KW,
        description="Kept free below every limit, in kW (meter error, load swings).",
    )
    safety_margin_percent: float | None = Field(
        default=None,
        alias="safetyMarginPercent",
        ge=0.0,
        le=50.0,
        description="Kept free below every limit, in percent of that limit. Default: no margin.",
    )
    lead_time_seconds: int = Field(
        default=120,
        alias="leadTimeSeconds",
        ge=0,
        le=86_400,
        description=(
            "A lower limit that starts within this time already counts, so the site is inside"
            " the new envelope when it begins."
        ),
    )
    windows: list[LimitWindow] | None = Field(
        default=None,
        max_length=64,
        description="Recurring lower limits (the lowest active one applies).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    events: list[LimitEvent] | None = Field(
        default=None,
        max_length=256,
        description="One-off lower limits, e.g. demand-response dispatches.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    energy_price: EnergyPrice | None = Field(
        default=None,
        alias="energyPrice",
        description="The price of energy. Without it, energy is taken as free: mining always pays.",
    )

    @model_validator(mode="after")
    def _margins(self) -> PowerBudgetSpec:
        unique([w.name for w in self.windows or []], "window name")
        unique([e.name for e in self.events or []], "event name")
        if self.safety_margin_kw is not None and self.safety_margin_percent is not None:
            raise ValueError("set safetyMarginKW or safetyMarginPercent, not both")
        if self.safety_margin_kw is not None and self.safety_margin_kw >= self.limit_kw:
            raise ValueError("safetyMarginKW must be below limitKW")
        return self


class LimitChange(StatusModel):
    """When the effective limit changes next, and to what."""

    at: str = Field(description="When (RFC 3339), lead time included.")
    limit_kw: float = Field(alias="limitKW", description="The effective limit from then, in kW.")


class PowerBudgetStatus(StatusModel):
    """The envelope as dualcap applies it now."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The metadata.generation this status was computed from.",
    )
    effective_limit_kw: float | None = Field(
        default=None,
        alias="effectiveLimitKW",
        description="The limit in force now, lead time counted and safety margin deducted.",
    )
    active_windows: list[str] | None = Field(
        default=None, alias="activeWindows", description="Windows counted now."
    )
    active_events: list[str] | None = Field(
        default=None, alias="activeEvents", description="Events counted now."
    )
    energy_price_usd_per_mwh: float | None = Field(
        default=None, alias="energyPriceUSDPerMWh", description="The energy price now."
    )
    next_change: LimitChange | None = Field(
        default=None, alias="nextChange", description="The next change of the effective limit."
    )
    binding: bool | None = Field(
        default=None,
        description=(
            "Whether this budget's limit is its site's envelope now: a site named by several"
            " PowerBudgets keeps the lowest limit of them all."
        ),
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class PowerBudget(Model):
    """The power envelope of one site: interconnect limit, recurring windows, one-off events."""

    api_version: Literal["dualcap.io/v1alpha1"] = Field(
        default="dualcap.io/v1alpha1", alias="apiVersion", description="dualcap.io/v1alpha1"
    )
    kind: Literal["PowerBudget"] = Field(default="PowerBudget", description="PowerBudget")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")
    spec: PowerBudgetSpec = Field(description="The envelope.")
    status: PowerBudgetStatus | None = Field(default=None, description="Written by dualcap.")
