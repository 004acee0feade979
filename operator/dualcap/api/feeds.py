"""Live price feeds of a Site: the energy price and the hashprice the planner uses while
they are fresh, the static values (the PowerBudget's energyPrice, the Site's
hashpriceUSDPerPHDay) as the fallback. The feeds never write the user's spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dualcap.api.common import Model

SOURCE_PATTERN = r"^(https?://\S+|/\S+)$"


class EnergyPriceFeed(Model):
    """ERCOT settlement point prices (the NP6-905 real-time report or the NP4-190 day-ahead
    report, as CSV or as the public API's JSON)."""

    source: str = Field(
        max_length=2048,
        pattern=SOURCE_PATTERN,
        description="An http(s) URL or an absolute file path the operator can read.",
    )
    settlement_point: str = Field(
        alias="settlementPoint",
        min_length=1,
        max_length=64,
        description="The settlement point priced: a hub, load zone or resource node (HB_WEST).",
    )
    market: Literal["rt", "dam"] = Field(
        default="rt", description="rt: real-time settlement point prices; dam: day-ahead."
    )
    poll_seconds: float = Field(
        default=60.0, alias="pollSeconds", ge=5.0, le=86_400.0, description="How often it is read."
    )
    stale_after_seconds: float = Field(
        default=900.0,
        alias="staleAfterSeconds",
        ge=5.0,
        le=604_800.0,
        description=(
            "A feed not read successfully for this long falls back to the static price (a"
            " feed whose intervals do not cover now falls back at once)."
        ),
    )


class HashpriceFeed(Model):
    """The Hashrate Index hashprice (its JSON shape: data points of price and timestamp)."""

    source: str = Field(
        max_length=2048,
        pattern=SOURCE_PATTERN,
        description=(
            "An http(s) URL or an absolute file path; a URL's hashunit query (PHS or THS)"
            " names the unit."
        ),
    )
    poll_seconds: float = Field(
        default=300.0,
        alias="pollSeconds",
        ge=5.0,
        le=86_400.0,
        description="How often it is read.",
    )
    stale_after_seconds: float = Field(
        default=7200.0,
        alias="staleAfterSeconds",
        ge=5.0,
        le=604_800.0,
        description="Older than this, the Site's static hashpriceUSDPerPHDay is used.",
    )


class PriceFeeds(Model):
    """Live prices for the site's economics; each falls back to its static value."""

    energy: EnergyPriceFeed | None = Field(
        default=None, description="The energy price, over the PowerBudget's energyPrice."
    )
    hashprice: HashpriceFeed | None = Field(
        default=None, description="The hashprice, over spec.asic.hashpriceUSDPerPHDay."
    )
