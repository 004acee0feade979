"""ComputeLease: a tenant's GPUs at a site for a time, run as pods dualcap creates."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic.config import JsonDict

from dualcap.api.common import (
    CURTAILED_TAINT_KEY,
    Condition,
    Model,
    ObjectName,
    Rfc3339,
    StatusModel,
    cel,
    check_name_length,
    parse_rfc3339,
)
from dualcap.api.meta import ObjectMeta

MAX_PODS_PER_LEASE = 1000
PRESERVE: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class _Open(BaseModel):
    """Part of a Kubernetes type: the fields dualcap checks are declared, the rest kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", json_schema_extra=PRESERVE)


class SecurityContextFragment(_Open):
    """A container's securityContext (the fields dualcap checks; the rest is kept)."""

    privileged: bool | None = Field(default=None, description="Must not be true.")


class ContainerFragment(_Open):
    """A container of the pod template (core/v1 Container)."""

    model_config = ConfigDict(
        json_schema_extra={
            **PRESERVE,
            "x-kubernetes-validations": [
                cel(
                    "!has(self.securityContext) || !has(self.securityContext.privileged)"
                    " || !self.securityContext.privileged",
                    "privileged containers are not allowed in lease pods",
                )
            ],
        }
    )

    name: str = Field(description="Container name (DNS label).", max_length=63)
    image: str | None = Field(default=None, description="Container image.")
    security_context: SecurityContextFragment | None = Field(
        default=None, alias="securityContext", description="Container security context."
    )


class TolerationFragment(_Open):
    """A toleration (core/v1 Toleration)."""

    key: str | None = Field(default=None, description="Taint key; empty with Exists: any.")
    operator: str | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = Field(default=None, description="Taint value for Equal.")
    effect: str | None = Field(default=None, description="NoSchedule, PreferNoSchedule, NoExecute.")

    def tolerates_curtailment(self) -> bool:
        if self.key:
            return self.key == CURTAILED_TAINT_KEY
        return self.operator == "Exists"


_TEMPLATE_SPEC_RULES: list[JsonValue] = [
    cel(
        "!has(self.nodeName)",
        "dualcap places lease pods itself: the template must not set nodeName",
        fieldPath=".nodeName",
        reason="FieldValueForbidden",
    ),
    cel(
        "!has(self.tolerations) || !self.tolerations.exists(t, has(t.key) && size(t.key) > 0"
        f" ? t.key == '{CURTAILED_TAINT_KEY}' : has(t.operator) && t.operator == 'Exists')",
        f"lease pods must not tolerate the curtailment taint {CURTAILED_TAINT_KEY}",
        fieldPath=".tolerations",
        reason="FieldValueForbidden",
    ),
    cel("!has(self.hostNetwork) || !self.hostNetwork", "hostNetwork is not allowed"),
    cel("!has(self.hostPID) || !self.hostPID", "hostPID is not allowed"),
    cel("!has(self.hostIPC) || !self.hostIPC", "hostIPC is not allowed"),
]


class PodSpecFragment(_Open):
    """The pod spec of the template (core/v1 PodSpec); placement is dualcap's."""

    model_config = ConfigDict(
        json_schema_extra={**PRESERVE, "x-kubernetes-validations": _TEMPLATE_SPEC_RULES}
    )

    containers: list[ContainerFragment] = Field(
        min_length=1, max_length=64, description="The pod's containers (at least one)."
    )
    node_name: str | None = Field(
        default=None, alias="nodeName", description="Forbidden: dualcap places lease pods."
    )
    host_network: bool | None = Field(default=None, alias="hostNetwork", description="Forbidden.")
    host_pid: bool | None = Field(default=None, alias="hostPID", description="Forbidden.")
    host_ipc: bool | None = Field(default=None, alias="hostIPC", description="Forbidden.")
    tolerations: list[TolerationFragment] | None = Field(
        default=None,
        max_length=64,
        description="Tolerations; the curtailment taint must not be tolerated.",
    )

    @model_validator(mode="after")
    def _placement_is_ours(self) -> PodSpecFragment:
        if self.node_name:
            raise ValueError("dualcap places lease pods itself: the template must not set nodeName")
        if any(t.tolerates_curtailment() for t in self.tolerations or []):
            raise ValueError(
                f"lease pods must not tolerate the curtailment taint {CURTAILED_TAINT_KEY}"
            )
        for field in ("host_network", "host_pid", "host_ipc"):
            if getattr(self, field):
                raise ValueError(f"{PodSpecFragment.model_fields[field].alias} is not allowed")
        for container in self.containers:
            if container.security_context and container.security_context.privileged:
                raise ValueError("privileged containers are not allowed in lease pods")
        return self


class TemplateMetadata(_Open):
    """Labels and annotations copied onto every lease pod."""

    labels: dict[str, str] | None = Field(default=None, description="Pod labels.")
    annotations: dict[str, str] | None = Field(default=None, description="Pod annotations.")


class PodTemplate(_Open):
    """A PodTemplateSpec: what each of the lease's pods runs."""

    metadata: TemplateMetadata | None = Field(default=None, description="Pod labels, annotations.")
    spec: PodSpecFragment = Field(description="The pod spec (core/v1 PodSpec).")


class LeasePhase(StrEnum):
    """Where a lease is in its life."""

    PENDING = "Pending"  # waiting for its start, GPUs or power
    ADMITTED = "Admitted"  # admitted, its pods not all there yet
    RUNNING = "Running"  # all its pods exist
    PREEMPTED = "Preempted"  # stopped for the envelope or a lease of higher priority
    COMPLETED = "Completed"  # past its end, or being deleted
    FAILED = "Failed"  # cannot run as written


class ComputeLeaseSpec(Model):
    """GPUs at a site for a time, run as pods of the template."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.gpus % self.gpusPerPod == 0",
                    "gpus must be a multiple of gpusPerPod",
                    fieldPath=".gpus",
                ),
                cel(
                    f"self.gpus / self.gpusPerPod <= {MAX_PODS_PER_LEASE}",
                    f"a lease runs at most {MAX_PODS_PER_LEASE} pods (gpus / gpusPerPod)",
                    fieldPath=".gpus",
                ),
                cel(
                    "!has(self.start) || !has(self.end)"
                    " || timestamp(self.end) > timestamp(self.start)",
                    "end must be after start",
                    fieldPath=".end",
                ),
            ]
        }
    )

    site_ref: ObjectName = Field(alias="siteRef", description="The name of the Site.")
    gpus: int = Field(ge=1, le=1_000_000, description="GPUs leased in all.")
    gpus_per_pod: int = Field(
        default=1,
        alias="gpusPerPod",
        ge=1,
        le=64,
        description=(
            "GPUs per pod, all on one node. The lease runs gpus / gpusPerPod pods, all or none."
        ),
    )
    start: Rfc3339 | None = Field(
        default=None, description="When the lease begins (RFC 3339). Default: at once."
    )
    end: Rfc3339 | None = Field(
        default=None, description="When the lease ends (RFC 3339). Default: open-ended."
    )
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="Higher first. Among equals, the older lease goes first.",
    )
    preemptible: bool = Field(
        default=False,
        description=(
            "May be stopped to keep the site inside its envelope before any non-preemptible"
            " lease. A non-preemptible lease, once running, is stopped only when the envelope"
            " cannot hold it even with all mining and preemptible leases stopped."
        ),
    )
    price_per_gpu_hour_usd: float = Field(
        default=0.0,
        alias="pricePerGPUHourUSD",
        ge=0.0,
        le=10_000.0,
        description="What the tenant pays per GPU-hour, in USD (for revenue reporting).",
    )
    template: PodTemplate = Field(
        description=(
            "The pod template of each lease pod. dualcap sets placement (the site's GPU nodes),"
            " the GPU requests and limits, labels and owner; the template must not set nodeName"
            " or tolerate the curtailment taint."
        )
    )

    @field_validator("start", "end")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rfc3339(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ComputeLeaseSpec:
        if self.gpus % self.gpus_per_pod:
            raise ValueError(
                f"gpus ({self.gpus}) must be a multiple of gpusPerPod ({self.gpus_per_pod})"
            )
        if self.gpus // self.gpus_per_pod > MAX_PODS_PER_LEASE:
            raise ValueError(f"a lease runs at most {MAX_PODS_PER_LEASE} pods (gpus / gpusPerPod)")
        if self.start and self.end and parse_rfc3339(self.end) <= parse_rfc3339(self.start):
            raise ValueError("end must be after start")
        return self

    @property
    def pod_count(self) -> int:
        return self.gpus // self.gpus_per_pod


class ComputeLeaseStatus(StatusModel):
    """The lease as dualcap last saw it."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The metadata.generation this status was computed from.",
    )
    phase: LeasePhase | None = Field(
        default=None,
        description="Pending, Admitted, Running, Preempted, Completed or Failed.",
    )
    site: str | None = Field(default=None, description="The site the lease runs at.")
    admitted_gpus: int | None = Field(
        default=None, alias="admittedGPUs", description="GPUs admitted (all of them, or none)."
    )
    pods: list[str] | None = Field(default=None, description="Names of the lease's pods.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Admitted, Ready, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ComputeLease(Model):
    """A tenant's lease of GPUs at a site: admitted by the power it needs, run as pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "size(self.metadata.name) <= 63",
                    "metadata.name: a ComputeLease name is used as a label value: at most 63 characters",
                ),
            ]
        }
    )

    api_version: Literal["dualcap.io/v1alpha1"] = Field(
        default="dualcap.io/v1alpha1", alias="apiVersion", description="dualcap.io/v1alpha1"
    )
    kind: Literal["ComputeLease"] = Field(default="ComputeLease", description="ComputeLease")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")
    spec: ComputeLeaseSpec = Field(description="The lease.")
    status: ComputeLeaseStatus | None = Field(default=None, description="Written by dualcap.")

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> ComputeLease:
        check_name_length(self.metadata, "ComputeLease")
        return self
