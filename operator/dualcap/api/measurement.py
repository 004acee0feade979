"""Where a site's measured power comes from: its revenue meter and its GPUs' own telemetry.

The utility judges a site by its meter, not by a sum of nameplate numbers. These models say
how to read that meter (a SunSpec AC meter over Modbus TCP, or a PromQL expression against a
Prometheus) and how to read the GPU nodes' measured draw (a PromQL expression per node, as
NVIDIA's DCGM exporter publishes it). The clients that read them live in ``dualcap.signals``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from dualcap.api.common import DNS_SUBDOMAIN_PATTERN, Model, cel

# Where a SunSpec device's register map starts when none is configured, in the order the
# SunSpec specification lists them: 40000 is the usual base, 0 and 50000 the alternatives.
SUNSPEC_BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)

# A Secret's data key: what the API server accepts ([-._a-zA-Z0-9]+).
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# A host name or an IPv4/IPv6 address (no scheme, no port).
HOST_PATTERN = r"^[A-Za-z0-9:]([-A-Za-z0-9.:]*[A-Za-z0-9])?$"
URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s]*)?$"

# NVIDIA's DCGM exporter: W per GPU. Its host label is `Hostname` in older releases and
# `hostname` in newer ones; summing by both keeps whichever the exporter sets.
DCGM_POWER_QUERY = "sum by (Hostname, hostname) (DCGM_FI_DEV_POWER_USAGE)"


class SecretKeySelector(Model):
    """One key of a Secret (core/v1 SecretKeySelector, with a namespace: a Site has none)."""

    name: str = Field(
        description="The Secret's name.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    key: str = Field(
        description="The key in the Secret's data whose value is used.",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
    )
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The Secret's namespace. Default: the namespace the operator runs in.",
    )


class ValueFrom(Model):
    """A value kept in a Secret rather than in the Site."""

    secret_key_ref: SecretKeySelector = Field(
        alias="secretKeyRef", description="The Secret and key that hold the value."
    )


class PrometheusEndpoint(Model):
    """A Prometheus HTTP API: its URL, given here or in a Secret, and an optional token."""

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=URL_PATTERN,
        description=(
            "Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090"
            " (the client appends /api/v1/query). Exactly one of url and urlFrom."
        ),
    )
    url_from: ValueFrom | None = Field(
        default=None,
        alias="urlFrom",
        description="The base URL, read from a Secret (when it embeds credentials).",
    )
    bearer_token_from: ValueFrom | None = Field(
        default=None,
        alias="bearerTokenFrom",
        description="A bearer token sent as the Authorization header, read from a Secret.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.url) != has(self.urlFrom)", "exactly one of url and urlFrom")
            ]
        }
    )

    @model_validator(mode="after")
    def _one_url(self) -> PrometheusEndpoint:
        if (self.url is None) == (self.url_from is None):
            raise ValueError("exactly one of url and urlFrom")
        return self


class PrometheusQuery(PrometheusEndpoint):
    """The site's draw as a PromQL expression: one series, in W."""

    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "A PromQL instant query that yields exactly one series: the site's draw in W,"
            ' e.g. sum(site_meter_active_power_watts{site="west-texas-1"}).'
        ),
    )


class SunSpecMeter(Model):
    """A SunSpec AC meter (models 201-204) read over Modbus TCP."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=HOST_PATTERN,
        description="The meter's (or its gateway's) host name or IP address.",
    )
    port: int = Field(default=502, ge=1, le=65535, description="Modbus TCP port.")
    unit_id: int = Field(
        default=1,
        alias="unitId",
        ge=0,
        le=255,
        description="Modbus unit (slave) id of the meter behind the gateway.",
    )
    base_address: int | None = Field(
        default=None,
        alias="baseAddress",
        ge=0,
        le=65535,
        description=(
            "Register address of the SunSpec marker 'SunS'. Default: discovered by trying"
            " 40000, 0 and 50000 in turn."
        ),
    )
    sign: Literal["Import", "Export"] = Field(
        default="Import",
        description=(
            "What a positive W means. Import: power drawn from the grid into the site (the"
            " site's draw is W). Export: power sent to the grid (the site's draw is -W)."
        ),
    )


def _poll_seconds(what: str) -> Any:
    return Field(
        default=5.0,
        alias="pollSeconds",
        ge=1.0,
        le=3600.0,
        description=f"How often {what}, in seconds.",
    )


def _timeout_seconds(what: str) -> Any:
    return Field(
        default=2.0,
        alias="timeoutSeconds",
        gt=0.0,
        le=60.0,
        description=f"How long {what} may take before it counts as failed, in seconds.",
    )


def _stale_after_seconds(description: str) -> Any:
    return Field(
        default=30.0, alias="staleAfterSeconds", ge=1.0, le=86_400.0, description=description
    )


# A poll's timing: the CRD's rules, and the same checks offline.
TIMING_RULES = [
    cel("self.timeoutSeconds <= self.pollSeconds", "timeoutSeconds must not exceed pollSeconds"),
    cel(
        "self.staleAfterSeconds >= self.pollSeconds",
        "staleAfterSeconds must be at least pollSeconds",
    ),
]


def _check_timing(poll: float, timeout: float, stale_after: float) -> None:
    if timeout > poll:
        raise ValueError("timeoutSeconds must not exceed pollSeconds")
    if stale_after < poll:
        raise ValueError("staleAfterSeconds must be at least pollSeconds")


class MeterSpec(Model):
    """The site's revenue meter: what the utility measures the site by."""

    sunspec: SunSpecMeter | None = Field(
        default=None, description="A SunSpec AC meter over Modbus TCP."
    )
    prometheus: PrometheusQuery | None = Field(
        default=None, description="A PromQL expression giving the site's draw in W."
    )
    poll_seconds: float = _poll_seconds("the meter is read")
    timeout_seconds: float = _timeout_seconds("one reading")
    stale_after_seconds: float = _stale_after_seconds(
        "A reading older than this no longer bounds the committed draw; the last"
        " unmodelled load is then kept as a reserve."
    )
    disagreement_kw: float = Field(
        default=100.0,
        alias="disagreementKW",
        ge=0.0,
        le=1_000_000.0,
        description=(
            "How far, in kW, the meter and the model may differ before it is reported"
            " (after disagreementSeconds)."
        ),
    )
    disagreement_seconds: float = Field(
        default=120.0,
        alias="disagreementSeconds",
        ge=0.0,
        le=86_400.0,
        description=(
            "How long the meter and the model must differ by more than disagreementKW"
            " before a condition and an Event say so, in seconds."
        ),
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.sunspec) != has(self.prometheus)",
                    "exactly one of sunspec and prometheus",
                ),
                *TIMING_RULES,
            ]
        }
    )

    @model_validator(mode="after")
    def _one_source(self) -> MeterSpec:
        if (self.sunspec is None) == (self.prometheus is None):
            raise ValueError("exactly one of sunspec and prometheus")
        _check_timing(self.poll_seconds, self.timeout_seconds, self.stale_after_seconds)
        return self


class GpuPowerQuery(PrometheusEndpoint):
    """The GPU nodes' measured draw: a PromQL expression with one series per node, in W."""

    query: str = Field(
        default=DCGM_POWER_QUERY,
        min_length=1,
        max_length=4096,
        description=(
            "A PromQL instant query that yields one series per GPU node in W, labelled with"
            " the node's name as Hostname or hostname (both DCGM exporter spellings)."
            f" Default: {DCGM_POWER_QUERY}."
        ),
    )
    poll_seconds: float = _poll_seconds("the query is run")
    timeout_seconds: float = _timeout_seconds("one query")
    stale_after_seconds: float = _stale_after_seconds(
        "A node's measurement older than this no longer replaces its modelled draw"
        " (idle power plus per-GPU nameplate)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.url) != has(self.urlFrom)", "exactly one of url and urlFrom"),
                *TIMING_RULES,
            ]
        }
    )

    @model_validator(mode="after")
    def _timing_fits(self) -> GpuPowerQuery:
        _check_timing(self.poll_seconds, self.timeout_seconds, self.stale_after_seconds)
        return self
