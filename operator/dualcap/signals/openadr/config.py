"""The VEN's configuration file: the VTN, TLS and signing, the sites and their floors."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dualcap.api.budget import MAX_LIMIT_KW
from dualcap.signals.openadr.names import MAX_LEAD_SECONDS


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class SiteConfig(_Model):
    """One site this VEN speaks for."""

    name: str = Field(description="The Site's name (the budget's siteRef).")
    interconnect_kw: float = Field(alias="interconnectKW", gt=0, le=MAX_LIMIT_KW)
    floor_kw: float | None = Field(
        default=None,
        alias="floorKW",
        ge=0,
        description="What the site cannot shed, in kW, when the Site's status has no floorKW.",
    )
    resource_ids: tuple[str, ...] = Field(
        default=(),
        alias="resourceIDs",
        description="Events targeting these resources go to this site; with none, every event of the VEN.",
    )


class TlsConfig(_Model):
    ca_file: str | None = Field(default=None, alias="caFile")
    cert_file: str | None = Field(default=None, alias="certFile")
    key_file: str | None = Field(default=None, alias="keyFile")
    check_hostname: bool = Field(default=True, alias="checkHostname")


class SigningConfig(_Model):
    """XML signatures (OpenADR 2.0b): ours with cert/key, the VTN's checked by fingerprint."""

    cert_file: str = Field(alias="certFile")
    key_file: str = Field(alias="keyFile")
    passphrase_file: str | None = Field(
        default=None, alias="passphraseFile", description="A file holding the key's passphrase."
    )
    vtn_fingerprint: str | None = Field(default=None, alias="vtnFingerprint")


class Config(_Model):
    """The VEN's configuration file, e.g.::

        vtnURL: https://vtn.aggregator.example/OpenADR2/Simple/2.0b
        venName: dualcap-rockdale
        pollIntervalSeconds: 10
        simpleLevels: {1: 30000, 2: 15000, 3: 5000}   # kW the site may draw at each level
        tls: {caFile: /tls/ca.crt, certFile: /tls/tls.crt, keyFile: /tls/tls.key}
        signing: {certFile: /tls/tls.crt, keyFile: /tls/tls.key, vtnFingerprint: "AB:CD:..."}
        sites:
          - {name: tx-rockdale-1, interconnectKW: 45000, floorKW: 2000, resourceIDs: [rockdale-1]}

    Plain ``http://`` only with ``insecure: true``.
    """

    vtn_url: str = Field(alias="vtnURL")
    ven_name: str = Field(alias="venName")
    ven_id: str | None = Field(default=None, alias="venID")
    sites: tuple[SiteConfig, ...] = Field(min_length=1)
    simple_levels: dict[int, float] = Field(
        default_factory=dict,
        alias="simpleLevels",
        description="SIMPLE level (1-3) -> the site limit in kW; level 0 is normal operation.",
    )
    poll_interval_seconds: float = Field(default=10.0, alias="pollIntervalSeconds", gt=0, le=86_400)
    lead_time_seconds: int = Field(default=120, alias="leadTimeSeconds", ge=0, le=MAX_LEAD_SECONDS)
    open_ended_hours: float = Field(default=1.0, alias="openEndedHours", gt=0, le=24)
    insecure: bool = Field(default=False, description="Allow plain HTTP to the VTN.")
    tls: TlsConfig | None = None
    signing: SigningConfig | None = None
    request_timeout_seconds: float = Field(default=10.0, alias="requestTimeoutSeconds", gt=0)

    @field_validator("simple_levels")
    @classmethod
    def _levels(cls, value: dict[int, float]) -> dict[int, float]:
        for level, kw in value.items():
            if level not in (1, 2, 3) or not 0 <= kw <= MAX_LIMIT_KW:
                raise ValueError(f"simpleLevels: level {level} -> {kw} kW (levels 1-3, kW >= 0)")
        return value

    @model_validator(mode="after")
    def _transport(self) -> Config:
        if self.vtn_url.startswith("http://") and not self.insecure:
            raise ValueError("vtnURL is plain http: set insecure: true to allow it")
        if not self.vtn_url.startswith(("http://", "https://")):
            raise ValueError("vtnURL must be an http(s) URL")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("sites: a site is named twice")
        return self


class ConfigError(Exception):
    pass


def load_config(path: str | Path) -> Config:
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    try:
        return Config.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
