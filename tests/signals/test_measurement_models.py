"""The meter and GPU power models: defaults, bounds, and CEL rules that agree with the code."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from pydantic import BaseModel, ValidationError

from dualcap.api.crd import structural
from dualcap.api.measurement import (
    DCGM_POWER_QUERY,
    GpuPowerQuery,
    MeterSpec,
)

SUNSPEC = {"sunspec": {"host": "10.0.0.5"}}
PROM = {"prometheus": {"url": "http://prometheus.monitoring:9090", "query": "sum(site_w)"}}
SECRET = {"secretKeyRef": {"name": "meter-creds", "key": "url"}}


def test_sunspec_meter_defaults() -> None:
    meter = MeterSpec.model_validate(SUNSPEC)
    assert meter.sunspec is not None
    assert (meter.sunspec.port, meter.sunspec.unit_id, meter.sunspec.base_address) == (502, 1, None)
    assert meter.sunspec.sign == "Import"
    assert (meter.poll_seconds, meter.timeout_seconds, meter.stale_after_seconds) == (5, 2, 30)
    assert meter.to_dict()["sunspec"] == {
        "host": "10.0.0.5",
        "port": 502,
        "unitId": 1,
        "sign": "Import",
    }


def test_prometheus_meter_with_url_from_a_secret() -> None:
    meter = MeterSpec.model_validate(
        {"prometheus": {"urlFrom": SECRET, "query": "x", "bearerTokenFrom": SECRET}}
    )
    assert meter.prometheus is not None and meter.prometheus.url_from is not None
    assert meter.prometheus.url_from.secret_key_ref.key == "url"


def test_gpu_power_query_defaults_to_dcgm_with_both_label_spellings() -> None:
    gpu = GpuPowerQuery.model_validate({"url": "http://127.0.0.1:9090"})
    assert gpu.query == DCGM_POWER_QUERY
    assert "Hostname" in gpu.query and "hostname" in gpu.query
    assert gpu.stale_after_seconds == 30


def test_the_readme_shows_the_default_gpu_query_the_code_has() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = [
        line.split("query:", 1)[1].split("#", 1)[0].strip()
        for line in readme.splitlines()
        if "DCGM_FI_DEV_POWER_USAGE" in line and "query:" in line and "# the default" in line
    ]
    assert shown == [DCGM_POWER_QUERY]


BAD_METERS: list[tuple[str, dict[str, Any]]] = [
    ("neither source", {}),
    ("both sources", {**SUNSPEC, **PROM}),
    ("port 0", {"sunspec": {"host": "m", "port": 0}}),
    ("unit id 256", {"sunspec": {"host": "m", "unitId": 256}}),
    ("base address past the map", {"sunspec": {"host": "m", "baseAddress": 70000}}),
    ("unknown sign", {"sunspec": {"host": "m", "sign": "Positive"}}),
    ("host with a scheme", {"sunspec": {"host": "tcp://m"}}),
    ("url and urlFrom", {"prometheus": {"url": "http://p:9090", "urlFrom": SECRET, "query": "x"}}),
    ("no url at all", {"prometheus": {"query": "x"}}),
    ("not an http url", {"prometheus": {"url": "ftp://p", "query": "x"}}),
    ("empty query", {"prometheus": {"url": "http://p:9090", "query": ""}}),
    ("timeout above poll", {**SUNSPEC, "pollSeconds": 2, "timeoutSeconds": 3}),
    ("stale before a poll", {**SUNSPEC, "pollSeconds": 10, "staleAfterSeconds": 5}),
    ("poll below a second", {**SUNSPEC, "pollSeconds": 0.5}),
    ("negative tolerance", {**SUNSPEC, "disagreementKW": -1}),
    (
        "secret key with a slash",
        {"prometheus": {"urlFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}, "query": "x"}},
    ),
]


@pytest.mark.parametrize(("case", "body"), BAD_METERS, ids=[c for c, _ in BAD_METERS])
def test_bad_meters_are_refused(case: str, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MeterSpec.model_validate(body)


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema the model becomes inside a CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _rules(schema: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    """(path, rule) for every CEL rule in a structural schema."""
    out = [(path, r["rule"]) for r in schema.get("x-kubernetes-validations", [])]
    for name, sub in (schema.get("properties") or {}).items():
        out += _rules(sub, f"{path}.{name}")
    return out


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """The object as the API server stores it: schema defaults filled in."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and "default" in sub:
            out[name] = sub["default"]
        if name in out:
            out[name] = _defaulted(sub, out[name])
    return out


def _cel_accepts(model: type[BaseModel], body: dict[str, Any]) -> bool:
    schema = schema_of(model)
    obj = _defaulted(schema, body)
    env = celpy.Environment()
    for path, rule in _rules(schema):
        target: Any = obj
        for part in [p for p in path.split(".") if p]:
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            continue
        program = env.program(env.compile(rule))
        if not bool(program.evaluate({"self": json_to_cel(target)})):
            return False
    return True


CEL_CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (MeterSpec, SUNSPEC),
    (MeterSpec, PROM),
    (MeterSpec, {}),
    (MeterSpec, {**SUNSPEC, **PROM}),
    (MeterSpec, {**SUNSPEC, "pollSeconds": 2, "timeoutSeconds": 3}),
    (MeterSpec, {**SUNSPEC, "pollSeconds": 10, "staleAfterSeconds": 5}),
    (MeterSpec, {"prometheus": {"url": "http://p:9090", "urlFrom": SECRET, "query": "x"}}),
    (MeterSpec, {"prometheus": {"query": "x"}}),
    (GpuPowerQuery, {"url": "http://p:9090"}),
    (GpuPowerQuery, {"urlFrom": SECRET}),
    (GpuPowerQuery, {}),
    (GpuPowerQuery, {"url": "http://p:9090", "pollSeconds": 5, "staleAfterSeconds": 2}),
]


@pytest.mark.parametrize(("model", "body"), CEL_CASES)
def test_cel_rules_agree_with_the_models(model: type[BaseModel], body: dict[str, Any]) -> None:
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert _cel_accepts(model, body) == accepted


@pytest.mark.parametrize("model", [MeterSpec, GpuPowerQuery])
def test_schema_is_structural_and_documented(model: type[BaseModel]) -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        assert "anyOf" not in node and "oneOf" not in node and "$ref" not in node, path
        for name, sub in (node.get("properties") or {}).items():
            assert sub.get("description"), f"{path}.{name} has no description"
            walk(sub, f"{path}.{name}")

    walk(schema_of(model), model.__name__)
