"""Bad resources are refused by the CRD (OpenAPI constraints and CEL rules) and by the models.

Every case starts from a valid example and breaks one thing. The CRD side runs the real CEL
rules through cel-python; the model side is what `dualcap plan` and the operator parse with.
A final test checks that every CEL rule in the CRDs is exercised by some case here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest

from dualcap.api import ComputeLease, PowerBudget, Site
from dualcap.api.crd import all_crds
from dualcap.api.minerblock import MinerBlock
from dualcap_sandbox.schema import validate_custom_resource
from tests.api.test_examples import CUSTOM
from tests.conftest import crd_schemas

MODELS = {
    "Site": Site,
    "PowerBudget": PowerBudget,
    "ComputeLease": ComputeLease,
    "MinerBlock": MinerBlock,
}
BASE = {o["kind"] if o["kind"] != "ComputeLease" else o["metadata"]["name"]: o for o in CUSTOM}
# the agent writes MinerBlocks; no example carries one
BASE["MinerBlock"] = {
    "apiVersion": "dualcap.io/v1alpha1",
    "kind": "MinerBlock",
    "metadata": {"name": "asic-001"},
    "spec": {"nodeName": "asic-001"},
}
DELETE = object()


@dataclass
class Bad:
    id: str
    base: str  # "Site", "PowerBudget" or a lease name
    changes: dict[str, Any]  # dotted path -> new value (DELETE removes it)
    error: str  # expected in the CRD's error text
    model_rejects: bool = True  # the model refuses it too (False: a CRD-only rule)


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj.setdefault(part, {})
    last: Any = int(parts[-1]) if isinstance(obj, list) else parts[-1]
    if value is DELETE:
        del obj[last]
    elif isinstance(obj, list) and last == len(obj):
        obj.append(value)
    else:
        obj[last] = value


W = "spec.windows.0"
EV = "spec.events.0"
TPL = "spec.template.spec"
CASES = [
    # --- MinerBlock
    Bad(
        "minerblock-not-named-after-node",
        "MinerBlock",
        {"spec.nodeName": "asic-002"},
        "a MinerBlock is named after its node",
    ),
    Bad("minerblock-bad-node-name", "MinerBlock", {"spec.nodeName": "Asic_1"}, "should match"),
    # --- Site
    Bad("site-pue-below-1", "Site", {"spec.facility.pue": 0.9}, "greater than or equal to 1"),
    Bad("site-pue-absurd", "Site", {"spec.facility.pue": 12}, "less than or equal to 3"),
    Bad("site-negative-fixed", "Site", {"spec.facility.fixedKW": -1}, "greater than or equal to 0"),
    Bad("site-zero-asic-power", "Site", {"spec.asic.powerKW": 0}, "should be greater than 0"),
    Bad(
        "site-asic-power-string", "Site", {"spec.asic.powerKW": "1900kW"}, "must be of type number"
    ),
    Bad(
        "site-no-mining-pods",
        "Site",
        {"spec.asic.miningPodSelector": DELETE},
        "miningPodSelector is required with curtailment Eviction",
    ),
    Bad(
        "site-meter-two-kinds",
        "Site",
        {
            "spec.meter": {
                "sunspec": {"host": "10.0.0.5"},
                "prometheus": {"url": "http://prometheus:9090", "query": "site_watts"},
            }
        },
        "exactly one of sunspec and prometheus",
    ),
    Bad(
        "site-meter-url-twice",
        "Site",
        {
            "spec.meter": {
                "prometheus": {
                    "url": "http://prometheus:9090",
                    "urlFrom": {"secretKeyRef": {"name": "prom", "key": "url"}},
                    "query": "site_watts",
                }
            }
        },
        "exactly one of url and urlFrom",
    ),
    Bad(
        "site-meter-timeout-past-poll",
        "Site",
        {"spec.meter": {"sunspec": {"host": "10.0.0.5"}, "pollSeconds": 2, "timeoutSeconds": 5}},
        "timeoutSeconds must not exceed pollSeconds",
    ),
    Bad(
        "site-meter-stale-before-poll",
        "Site",
        {
            "spec.meter": {
                "sunspec": {"host": "10.0.0.5"},
                "pollSeconds": 10,
                "staleAfterSeconds": 5,
            }
        },
        "staleAfterSeconds must be at least pollSeconds",
    ),
    Bad(
        "site-negative-hashprice",
        "Site",
        {"spec.asic.hashpriceUSDPerPHDay": -5},
        "greater than or equal to 0",
    ),
    Bad(
        "site-gpu-power-absurd",
        "Site",
        {"spec.gpu.powerPerGPUKW": 500},
        "less than or equal to 100",
    ),
    Bad("site-bad-resource-name", "Site", {"spec.gpu.resourceName": "nvidia gpu"}, "should match"),
    Bad(
        "site-bad-on-delete",
        "Site",
        {"spec.behavior.onDelete": "Delete"},
        'supported values: "Release", "Retain"',
    ),
    Bad("site-ramp-zero", "Site", {"spec.behavior.maxRampUpKWPerMinute": 0}, "greater than 0"),
    Bad(
        "site-hysteresis-negative",
        "Site",
        {"spec.behavior.minMiningSeconds": -1},
        "greater than or equal to 0",
    ),
    Bad(
        "site-hysteresis-float",
        "Site",
        {"spec.behavior.minCurtailedSeconds": 1.5},
        "must be of type integer",
    ),
    Bad(
        "site-selector-bad-operator",
        "Site",
        {"spec.nodeSelector.matchExpressions": [{"key": "a", "operator": "Is"}]},
        "supported values",
    ),
    Bad(
        "site-selector-in-without-values",
        "Site",
        {"spec.nodeSelector.matchExpressions": [{"key": "a", "operator": "In"}]},
        "values must be non-empty for In and NotIn",
    ),
    Bad("site-name-too-long", "Site", {"metadata.name": "s" * 64}, "at most 63 characters"),
    # --- PowerBudget
    Bad("budget-no-site", "PowerBudget", {"spec.siteRef": DELETE}, "spec.siteRef: Required value"),
    Bad("budget-site-uppercase", "PowerBudget", {"spec.siteRef": "TX_Rockdale"}, "should match"),
    Bad("budget-zero-limit", "PowerBudget", {"spec.limitKW": 0}, "should be greater than 0"),
    Bad("budget-absurd-limit", "PowerBudget", {"spec.limitKW": 1e12}, "less than or equal to"),
    Bad(
        "budget-margin-above-limit",
        "PowerBudget",
        {"spec.safetyMarginKW": 60000},
        "safetyMarginKW must be below limitKW",
    ),
    Bad("budget-both-margins", "PowerBudget", {"spec.safetyMarginPercent": 2}, "not both"),
    Bad(
        "budget-margin-percent-absurd",
        "PowerBudget",
        {"spec.safetyMarginKW": DELETE, "spec.safetyMarginPercent": 80},
        "less than or equal to 50",
    ),
    Bad(
        "budget-lead-negative",
        "PowerBudget",
        {"spec.leadTimeSeconds": -10},
        "greater than or equal to 0",
    ),
    Bad("window-bad-start", "PowerBudget", {f"{W}.start": "2pm"}, "should match"),
    Bad("window-hour-25", "PowerBudget", {f"{W}.end": "25:00"}, "should match"),
    Bad(
        "window-start-equals-end", "PowerBudget", {f"{W}.end": "14:00"}, "start and end must differ"
    ),
    Bad("window-bad-day", "PowerBudget", {f"{W}.days": ["Monday"]}, "supported values"),
    Bad("window-duplicate-day", "PowerBudget", {f"{W}.days": ["Mon", "Mon"]}, "Duplicate value"),
    Bad("window-no-days", "PowerBudget", {f"{W}.days": []}, "at least 1 items"),
    Bad("window-month-13", "PowerBudget", {f"{W}.months": [13]}, "less than or equal to 12"),
    Bad(
        "window-bad-timezone-syntax",
        "PowerBudget",
        {f"{W}.timezone": "Central Time"},
        "should match",
    ),
    Bad("window-negative-limit", "PowerBudget", {f"{W}.limitKW": -1}, "greater than or equal to 0"),
    Bad("window-no-name", "PowerBudget", {f"{W}.name": DELETE}, "Required value"),
    Bad(
        "window-duplicate-name",
        "PowerBudget",
        {"spec.windows.1": {"name": "summer-peak", "start": "01:00", "end": "02:00", "limitKW": 1}},
        "Duplicate value",
    ),
    Bad(
        "event-end-before-start",
        "PowerBudget",
        {f"{EV}.end": "2026-07-14T18:00:00Z"},
        "end must be after start",
    ),
    Bad("event-not-rfc3339", "PowerBudget", {f"{EV}.start": "July 14, 7pm"}, "should match"),
    Bad("event-no-offset", "PowerBudget", {f"{EV}.start": "2026-07-14T19:00:00"}, "should match"),
    Bad("event-missing-limit", "PowerBudget", {f"{EV}.limitKW": DELETE}, "Required value"),
    Bad(
        "price-absurd", "PowerBudget", {"spec.energyPrice.usdPerMWh": 1e9}, "less than or equal to"
    ),
    Bad(
        "too-many-events",
        "PowerBudget",
        {
            "spec.events": [
                {
                    "name": f"e{i}",
                    "start": "2026-07-14T19:00:00Z",
                    "end": "2026-07-14T20:00:00Z",
                    "limitKW": 1,
                }
                for i in range(257)
            ]
        },
        "must have at most 256 items",
    ),
    # --- ComputeLease
    Bad(
        "lease-gpus-not-multiple",
        "llm-inference",
        {"spec.gpus": 12},
        "gpus must be a multiple of gpusPerPod",
    ),
    Bad("lease-zero-gpus", "llm-inference", {"spec.gpus": 0}, "greater than or equal to 1"),
    Bad(
        "lease-too-many-pods",
        "batch-training",
        {"spec.gpus": 1001, "spec.gpusPerPod": 1},
        "at most 1000 pods",
    ),
    Bad(
        "lease-gpus-per-pod-65",
        "llm-inference",
        {"spec.gpusPerPod": 65},
        "less than or equal to 64",
    ),
    Bad(
        "lease-end-before-start",
        "finetune-august",
        {"spec.end": "2026-07-01T00:00:00Z"},
        "end must be after start",
    ),
    Bad("lease-bad-start", "llm-inference", {"spec.start": "tomorrow"}, "should match"),
    Bad(
        "lease-negative-price",
        "llm-inference",
        {"spec.pricePerGPUHourUSD": -2},
        "greater than or equal to 0",
    ),
    Bad(
        "lease-priority-absurd", "llm-inference", {"spec.priority": 10**9}, "less than or equal to"
    ),
    Bad(
        "lease-preemptible-string",
        "llm-inference",
        {"spec.preemptible": "yes"},
        "must be of type boolean",
    ),
    Bad("lease-no-template", "llm-inference", {"spec.template": DELETE}, "Required value"),
    Bad("lease-no-containers", "llm-inference", {f"{TPL}.containers": []}, "at least 1 items"),
    Bad(
        "lease-node-name",
        "llm-inference",
        {f"{TPL}.nodeName": "gpu-h100-01"},
        "must not set nodeName",
    ),
    Bad(
        "lease-tolerates-curtailment",
        "llm-inference",
        {
            f"{TPL}.tolerations": [
                {"key": "dualcap.io/curtailed", "operator": "Exists", "effect": "NoExecute"}
            ]
        },
        "must not tolerate the curtailment taint",
    ),
    Bad(
        "lease-tolerates-everything",
        "llm-inference",
        {f"{TPL}.tolerations": [{"operator": "Exists"}]},
        "must not tolerate the curtailment taint",
    ),
    Bad(
        "lease-host-network",
        "llm-inference",
        {f"{TPL}.hostNetwork": True},
        "hostNetwork is not allowed",
    ),
    Bad("lease-host-pid", "llm-inference", {f"{TPL}.hostPID": True}, "hostPID is not allowed"),
    Bad("lease-host-ipc", "llm-inference", {f"{TPL}.hostIPC": True}, "hostIPC is not allowed"),
    Bad(
        "lease-privileged",
        "llm-inference",
        {f"{TPL}.containers.0.securityContext": {"privileged": True}},
        "privileged containers are not allowed",
    ),
    Bad(
        "lease-name-too-long", "llm-inference", {"metadata.name": "l" * 64}, "at most 63 characters"
    ),
]


def _build(case: Bad) -> dict[str, Any]:
    obj = copy.deepcopy(BASE[case.base])
    for path, value in case.changes.items():
        _set(obj, path, value)
    return obj


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_crd_refuses(case: Bad, schemas) -> None:
    obj = _build(case)
    _, errors = validate_custom_resource(obj, schemas[obj["kind"]])
    text = "; ".join(map(str, errors))
    assert errors, f"{case.id}: accepted by the CRD"
    assert case.error in text, text


@pytest.mark.parametrize("case", [c for c in CASES if c.model_rejects], ids=lambda c: c.id)
def test_model_refuses(case: Bad) -> None:
    obj = _build(case)
    with pytest.raises(pydantic.ValidationError):
        MODELS[obj["kind"]].model_validate(obj)


def test_every_cel_rule_is_exercised() -> None:
    messages = set()
    for crd in all_crds():

        def collect(node: dict[str, Any]) -> None:
            for rule in node.get("x-kubernetes-validations", []):
                messages.add(rule["message"])
            for sub in (node.get("properties") or {}).values():
                collect(sub)
            if isinstance(node.get("items"), dict):
                collect(node["items"])

        collect(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    schemas = crd_schemas()
    hit = set()
    for case in CASES:
        obj = _build(case)
        _, errors = validate_custom_resource(obj, schemas[obj["kind"]])
        hit |= {m for m in messages for e in errors if m in e.message}
    assert messages - hit == set()


def test_unknown_fields_are_pruned_by_the_crd_and_refused_by_the_model(schemas) -> None:
    obj = copy.deepcopy(BASE["PowerBudget"])
    obj["spec"]["limitkw"] = 1  # a typo
    stored, errors = validate_custom_resource(obj, schemas["PowerBudget"])
    assert errors == [] and "limitkw" not in stored["spec"]
    with pytest.raises(pydantic.ValidationError, match="limitkw"):
        PowerBudget.model_validate(obj)


def test_unknown_timezone_is_refused_by_the_model() -> None:
    """CEL knows no tz database: the CRD checks the syntax, the model the zone itself."""
    obj = copy.deepcopy(BASE["PowerBudget"])
    obj["spec"]["windows"][0]["timezone"] = "America/Atlantis"
    with pytest.raises(pydantic.ValidationError, match="unknown IANA time zone"):
        PowerBudget.model_validate(obj)
