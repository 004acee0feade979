"""Shapes shared by the three resources: selectors, conditions, recurring windows.

Every field carries a description: it becomes the CRD's OpenAPI description and so the text
of `kubectl explain`. CEL rules (``x-kubernetes-validations``) live beside the model they
check, in ``json_schema_extra``, so the CRD and the code can never disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

# The group, version and keys live in names.py (no pydantic there, for the agent).
from dualcap.api.names import API_VERSION as API_VERSION
from dualcap.api.names import CURTAILED_AT_ANNOTATION as CURTAILED_AT_ANNOTATION
from dualcap.api.names import CURTAILED_TAINT_KEY as CURTAILED_TAINT_KEY
from dualcap.api.names import GROUP as GROUP
from dualcap.api.names import HASHRATE_THS_ANNOTATION as HASHRATE_THS_ANNOTATION
from dualcap.api.names import IDLE_POWER_KW_ANNOTATION as IDLE_POWER_KW_ANNOTATION
from dualcap.api.names import LEASE_LABEL as LEASE_LABEL
from dualcap.api.names import POWER_KW_ANNOTATION as POWER_KW_ANNOTATION
from dualcap.api.names import POWER_PER_GPU_KW_ANNOTATION as POWER_PER_GPU_KW_ANNOTATION
from dualcap.api.names import ROLE_LABEL as ROLE_LABEL
from dualcap.api.names import SITE_LABEL as SITE_LABEL
from dualcap.api.names import VERSION as VERSION
from dualcap.api.objects import parse_rfc3339 as parse_rfc3339

# RFC 3339 date-time with an explicit offset (what `kubectl` and GitOps tools write).
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# IANA names look like Area/Location[/Sub]; "UTC" too. Whether the zone exists is checked
# by the operator (it reports Stalled), since CEL knows no time zone database.
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"
# A DNS-1123 subdomain: what Kubernetes accepts as a cluster-scoped object name.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Month = Annotated[int, Field(ge=1, le=12)]
Rfc3339 = Annotated[str, StringConstraints(pattern=RFC3339_PATTERN, max_length=64)]
# HH:MM: five characters (the bound also keeps the CEL cost of comparing two of them small:
# the real apiserver refused the PowerBudget CRD without it, 2x over its budget).
Clock = Annotated[str, StringConstraints(pattern=CLOCK_PATTERN, max_length=5)]
WindowName = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
ObjectName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]


def cel(rule: str, message: str, **extra: str) -> JsonDict:
    """One ``x-kubernetes-validations`` entry."""
    out: JsonDict = {"rule": rule, "message": message}
    out.update(extra)
    return out


class Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused.

    Refusing unknown fields matters offline (`dualcap plan` on a file with a typo says so);
    in a cluster the CRD has already pruned them.
    """

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        strict=True,  # "yes" is not a bool and "16" not an int, as for the API server
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as it appears in the API (aliases, no unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(Model):
    """Status is written by the operator; read it leniently (an older operator's fields)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=False)


Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def unique(values: list[Any] | None, what: str) -> None:
    """Refuse duplicates, as ``x-kubernetes-list-type: set`` / ``map`` does."""
    seen: set[Any] = set()
    for value in values or []:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def check_name_length(metadata: Any, kind: str) -> None:
    name = getattr(metadata, "name", None) or ""
    if len(name) > 63:
        raise ValueError(f"a {kind} name is used as a label value: at most 63 characters")


class LabelSelectorRequirement(Model):
    """One set-based requirement of a label selector (metav1.LabelSelectorRequirement)."""

    key: str = Field(description="The label key the requirement applies to.", min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] | None = Field(
        default=None,
        description="The values for In and NotIn (non-empty); empty for Exists and DoesNotExist.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
                    " : !has(self.values) || size(self.values) == 0",
                    "values must be non-empty for In and NotIn, and empty for Exists and"
                    " DoesNotExist",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values must be non-empty for operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values must be empty for operator {self.operator}")
        return self


class LabelSelector(Model):
    """A Kubernetes label selector (metav1.LabelSelector): every term must match."""

    match_labels: dict[str, str] | None = Field(
        default=None,
        alias="matchLabels",
        description="Labels that must be present with exactly these values.",
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        alias="matchExpressions",
        description="Set-based requirements; all must hold.",
    )

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and (not present or labels[req.key] not in (req.values or [])):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in (req.values or []):
                return False
        return True

    @classmethod
    def of(cls, **labels: str) -> LabelSelector:
        return cls(match_labels=dict(labels))

    def to_query(self) -> str:
        """The selector as the API's ``labelSelector`` parameter: the server selects exactly
        what ``matches`` selects."""
        terms = [f"{k}={v}" for k, v in sorted((self.match_labels or {}).items())]
        for req in self.match_expressions or []:
            values = ",".join(sorted(req.values or []))
            terms.append(
                {
                    "In": f"{req.key} in ({values})",
                    "NotIn": f"{req.key} notin ({values})",
                    "Exists": req.key,
                    "DoesNotExist": f"!{req.key}",
                }[req.operator]
            )
        return ",".join(terms)

    def site_label(self) -> str | None:
        """The value of ``dualcap.io/site`` every selected node must carry, if the selector
        says so: a fast path to the nodes of a site (never a substitute for ``matches``)."""
        return (self.match_labels or {}).get(SITE_LABEL)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A metav1.Condition: one aspect of the object's state, as kstatus and Flux read it."""

    type: str = Field(description="The aspect: Ready, Reconciling, Stalled, Admitted, ...")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The metadata.generation this condition was computed from.",
    )
    last_transition_time: str = Field(
        alias="lastTransitionTime",
        description="When the status last changed (RFC 3339).",
    )
    reason: str = Field(
        description="A CamelCase word a program can switch on.",
        max_length=1024,
    )
    message: str = Field(
        default="",
        description="What a person needs to know, in a sentence.",
        max_length=32768,
    )


class RecurringWindow(Model):
    """A weekly recurring period: the given days, from start to end in a time zone.

    An end before the start means the window runs past midnight into the next day; it is
    active on the listed day from start, and on the next day until end.
    """

    name: WindowName = Field(description="A name unique in its list (DNS label).")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        description="Days of the week on which the window starts (Mon..Sun). Default: every day.",
        min_length=1,
        max_length=7,
        json_schema_extra={"x-kubernetes-list-type": "set", "default": list(WEEKDAYS)},
    )
    months: list[Month] | None = Field(
        default=None,
        min_length=1,
        max_length=12,
        description="Months (1-12) in which the window applies, e.g. [6, 7, 8, 9]. Default: all.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    start: Clock = Field(description="Local start time, HH:MM (24-hour clock).")
    end: Clock = Field(
        description="Local end time, HH:MM. Before start: the window runs past midnight."
    )
    timezone: str = Field(
        default="UTC",
        description="IANA time zone of start and end, e.g. America/Chicago (DST applies).",
        pattern=TIMEZONE_PATTERN,
        max_length=64,
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [cel("self.start != self.end", "start and end must differ")]
        }
    )

    @model_validator(mode="after")
    def _well_formed(self) -> RecurringWindow:
        if self.start == self.end:
            raise ValueError(f"window {self.name}: start and end must differ")
        unique(self.days, "day")
        unique(self.months, "month")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA time zone {value!r}") from err
        return value
