"""MinerBlock: what the miner agent measures on the miners of one ASIC controller.

One MinerBlock per ASIC controller node, cluster-scoped and named after the node. The
agent on that node creates it and writes its status every interval: how many miners the
block has, how many mine, sleep or cannot be reached, and the measured sums of their draw
and hashrate. A miner sleeps when its measured hashrate is 0 and its measured draw is
below the agent's sleep threshold, whatever its firmware's "is mining" flag says.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from dualcap.api.common import Condition, Model, ObjectName, Rfc3339, StatusModel, cel
from dualcap.api.meta import ObjectMeta

# The agent's annotation, limit and reasons live in names.py (no pydantic, for the agent).
from dualcap.api.names import COMMAND_FAILED as COMMAND_FAILED
from dualcap.api.names import CONTESTED_MINERS as CONTESTED_MINERS
from dualcap.api.names import CONVERGED as CONVERGED
from dualcap.api.names import CONVERGING as CONVERGING
from dualcap.api.names import INVALID_MINERS as INVALID_MINERS
from dualcap.api.names import MAX_BLOCK_MINERS as MAX_BLOCK_MINERS
from dualcap.api.names import MINERS_ANNOTATION as MINERS_ANNOTATION
from dualcap.api.names import MINERS_UNREACHABLE as MINERS_UNREACHABLE
from dualcap.api.names import NO_MINERS as NO_MINERS
from dualcap.api.names import NODE_UNAVAILABLE as NODE_UNAVAILABLE


class MinerBlockSpec(Model):
    """Which node the block belongs to; the agent on that node fills it in."""

    node_name: ObjectName = Field(
        alias="nodeName", description="The ASIC controller Node whose miners this reports."
    )


class MinerBlockStatus(StatusModel):
    """The block's miners as the agent last measured them."""

    miners: int | None = Field(
        default=None, ge=0, description="Miners named by the node's dualcap.io/miners."
    )
    mining: int | None = Field(
        default=None, ge=0, description="Miners measured hashing (or drawing above idle)."
    )
    sleeping: int | None = Field(
        default=None, ge=0, description="Miners measured asleep: no hashrate, idle draw."
    )
    unreachable: int | None = Field(
        default=None,
        ge=0,
        description="Miners that did not answer, or not as a known miner (count at full power).",
    )
    power_kw: float | None = Field(
        default=None,
        alias="powerKW",
        ge=0.0,
        description="Sum of the measured draw of the miners that answered, in kW.",
    )
    hashrate_ths: float | None = Field(
        default=None,
        alias="hashrateTHs",
        ge=0.0,
        description="Sum of the measured hashrate of the miners that answered, in TH/s.",
    )
    observed_at: Rfc3339 | None = Field(
        default=None,
        alias="observedAt",
        description="When these measurements were taken (RFC 3339): a report goes stale.",
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The metadata.generation this status was computed from.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Reconciling and Stalled, with what is wrong with the block.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class MinerBlock(Model):
    """The miners of one ASIC controller, as its agent measures them."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.spec.nodeName == self.metadata.name",
                    "spec.nodeName: a MinerBlock is named after its node",
                ),
            ]
        }
    )

    api_version: Literal["dualcap.io/v1alpha1"] = Field(
        default="dualcap.io/v1alpha1", alias="apiVersion", description="dualcap.io/v1alpha1"
    )
    kind: Literal["MinerBlock"] = Field(default="MinerBlock", description="MinerBlock")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")
    spec: MinerBlockSpec = Field(description="The node this block belongs to.")
    status: MinerBlockStatus | None = Field(default=None, description="Written by the agent.")

    @model_validator(mode="after")
    def _named_after_node(self) -> MinerBlock:
        if self.metadata.name and self.metadata.name != self.spec.node_name:
            raise ValueError("spec.nodeName: a MinerBlock is named after its node")
        return self

    @property
    def name(self) -> str:
        return self.metadata.name or ""
